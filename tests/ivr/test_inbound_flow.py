"""The inbound flow, call by call, against a scripted channel and recorded service calls.

The end-to-end path (real FastAGI peer, Redis, PostgreSQL) is covered in tests/test_call_path.py;
here each branch of the caller's experience is pinned down with exact command sequences.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

from ivr.errors import ChannelHungUp
from ivr.inbound import (
    SOUND_MENU,
    SOUND_TRANSFERRED,
    SOUND_WELCOME,
    FlowSettings,
    InboundCall,
    run_inbound,
)
from ivr.intent import IntentModel
from ivr.ports import (
    AgentOffer,
    CallerKnowledge,
    DigitInput,
    QueuedCall,
    QueueRefusal,
    QueueRequest,
    QueueStatus,
)

MODEL = IntentModel.train()
FAST = FlowSettings(menu_timeout_ms=10, announce_every_s=1000, hold_poll_ms=10)


@dataclass
class ScriptedChannel:
    """Plays Asterisk: records commands; keys and dial results come from the script."""

    menu_keys: list[str] = field(default_factory=list)
    hold_keys: list[str | None] = field(default_factory=list)
    dial_status: list[str] = field(default_factory=list)
    hang_up_after: int | None = None
    leave_during: str | None = None  # the channel leaves during the command starting so
    log: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    hung_up: bool = False

    @property
    def uniqueid(self) -> str:
        return "1700000000.1"

    def _cmd(self, text: str) -> None:
        if self.hung_up:
            raise AssertionError(f"command after hangup: {text}")
        if self.hang_up_after is not None and len(self.log) >= self.hang_up_after:
            self.hung_up = True
            raise ChannelHungUp("caller hung up")
        self.log.append(text)
        if self.leave_during is not None and text.startswith(self.leave_during):
            self.hung_up = True
            raise ChannelHungUp(f"caller left during {text}")

    async def answer(self) -> None:
        self._cmd("ANSWER")

    async def hangup(self) -> None:
        self._cmd("HANGUP")

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        self._cmd(f"STREAM {name}")
        return None

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> DigitInput:
        self._cmd(f"GET DATA {prompt}")
        key = self.menu_keys.pop(0) if self.menu_keys else ""
        return DigitInput(key, timed_out=not key)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        self._cmd("WAIT")
        await asyncio.sleep(0)
        return self.hold_keys.pop(0) if self.hold_keys else None

    async def say_number(self, number: int) -> None:
        self._cmd(f"SAY {number}")

    async def say_digits(self, digits: str) -> None:
        self._cmd(f"SAY DIGITS {digits}")

    async def exec(self, application: str, *args: str) -> int:
        self._cmd(f"EXEC {application} {','.join(args)}")
        if application == "Dial":
            # As Asterisk 22 does (tests/simulator/fixtures/real_dial.txt): -1 when the agent
            # hangs up after answering, 0 otherwise; ANSWEREDTIME/DIALEDTIME are the caller
            # channel's up time and age (IVR included), empty when nobody answered.
            status = self.dial_status.pop(0)
            self.variables["DIALSTATUS"] = status
            self.variables["ANSWEREDTIME"] = "42" if status == "ANSWER" else ""
            self.variables["DIALEDTIME"] = "45" if status == "ANSWER" else ""
            return -1 if status == "ANSWER" else 0
        return 0

    async def get_variable(self, name: str) -> str | None:
        self._cmd(f"GET {name}")
        return self.variables.get(name) or None

    async def set_variable(self, name: str, value: str) -> None:
        self._cmd(f"SET {name}={value}")

    async def set_music(self, on: bool, moh_class: str = "default") -> None:
        self._cmd(f"MUSIC {'ON' if on else 'OFF'}")

    async def verbose(self, message: str, level: int = 1) -> None:
        self._cmd("VERBOSE")


@dataclass
class RecordingQueue(QueuedCall):
    offers: list[AgentOffer | QueueRefusal | None]
    events: list[str]
    # What the ACD side says when the channel leaves: "abandoned" unless an agent had answered.
    left_as: str = "abandoned"

    async def status(self) -> QueueStatus:
        return QueueStatus(position=3, expected_wait_s=125.0)

    async def next_offer(self, timeout_s: float) -> AgentOffer | QueueRefusal | None:
        await asyncio.sleep(0)
        return self.offers.pop(0) if self.offers else None

    async def ringing(self, offer: AgentOffer) -> bool:
        self.events.append(f"ringing {offer.agent_id}")
        return offer.reservation_id != "stale"

    async def answered(self, offer: AgentOffer) -> None:
        self.events.append(f"answered {offer.agent_id}")

    async def no_answer(self, offer: AgentOffer, *, reason: str) -> None:
        self.events.append(f"no_answer {offer.agent_id} {reason}")

    async def completed(self, offer: AgentOffer) -> None:
        self.events.append(f"completed {offer.agent_id}")

    async def channel_left(self, *, handed_back: bool = False) -> str:
        left_as = "returned" if handed_back and self.left_as == "abandoned" else self.left_as
        self.events.append(f"left {left_as}")
        return left_as

    async def callback_requested(self, number: str) -> None:
        self.events.append(f"callback {number}")


@dataclass
class RecordingServices:
    knowledge_value: CallerKnowledge
    queue: RecordingQueue | QueueRefusal
    events: list[str]
    requests: list[QueueRequest] = field(default_factory=list)
    # A pending transfer to one of our queues: where `resume_transfer` puts the caller.
    transferred_to: RecordingQueue | QueueRefusal | None = None
    knowledge_asked: int = 0

    async def knowledge(self, wait_s: float) -> CallerKnowledge:
        self.knowledge_asked += 1
        return self.knowledge_value

    async def note(self, step: str, detail: str = "") -> None:
        self.events.append(f"note {step}")

    async def predicted(
        self, intent: str, confidence: float, reasons: tuple[str, ...], *, transcript: str = ""
    ) -> None:
        self.events.append(f"intent {intent}")

    async def rated(self, score: int) -> None:
        self.events.append(f"rated {score}")

    async def resume_transfer(self) -> QueuedCall | QueueRefusal | None:
        if self.transferred_to is not None:
            self.events.append("resumed")
        return self.transferred_to

    async def enqueue(self, request: QueueRequest) -> QueuedCall | QueueRefusal:
        self.requests.append(request)
        return self.queue

    async def push_screen_pop(self, offer: AgentOffer) -> bool:
        self.events.append(f"pop {offer.agent_id}")
        return True

    async def finish(self, outcome: str, *, agent_id: str | None = None) -> None:
        self.events.append(f"finish {outcome} {agent_id}")


def knowledge(**overrides: object) -> CallerKnowledge:
    base: dict[str, object] = {
        "known_customer": True,
        "display_name": "Mario Rossi",
        "overdue_invoices": 0,
        "overdue_amount_cents": 0,
        "shipments_in_transit": 0,
        "open_tickets": 0,
        "open_ticket_topic": None,
        "preferred_agents": ("agent101",),
        "vip": False,
        "complete": True,
    }
    base.update(overrides)
    return CallerKnowledge(**base)  # type: ignore[arg-type]


OFFER_101 = AgentOffer("r1", "agent101", "PJSIP/agent101")
OFFER_102 = AgentOffer("r2", "agent102", "PJSIP/agent102")


async def run(channel: ScriptedChannel, services: RecordingServices) -> str:
    clock = itertools.count()
    return await run_inbound(
        InboundCall(uniqueid="1700000000.1", caller_id="+390212345678"),
        channel,
        services,
        model=MODEL,
        settings=FAST,
        monotonic=lambda: float(next(clock)),
    )


async def test_given_menu_choice_when_agent_answers_then_pop_precedes_ring() -> None:
    events: list[str] = []
    queue = RecordingQueue(offers=[None, OFFER_101], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["2"], dial_status=["ANSWER"])

    assert await run(channel, services) == "answered"

    assert services.requests[0].intent == "order_status"
    assert services.requests[0].preferred_agents == ("agent101",)
    assert events.index("pop agent101") < events.index("ringing agent101")
    assert "answered agent101" in events and "completed agent101" in events
    assert events[-1] == "finish answered agent101"
    dial = channel.log.index("EXEC Dial PJSIP/agent101,20,t")
    assert channel.log[dial - 1] == "MUSIC OFF"


async def test_given_no_answer_then_next_agent_is_tried() -> None:
    events: list[str] = []
    queue = RecordingQueue(offers=[OFFER_101, OFFER_102], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["3"], dial_status=["NOANSWER", "ANSWER"])

    assert await run(channel, services) == "answered"
    assert events.index("no_answer agent101 noanswer") < events.index("pop agent102")
    assert events[-1] == "finish answered agent102"


async def test_given_overdue_invoice_then_caller_self_serves() -> None:
    events: list[str] = []
    services = RecordingServices(
        knowledge(overdue_invoices=1, overdue_amount_cents=123456),
        RecordingQueue([], events),
        events,
    )
    channel = ScriptedChannel(menu_keys=["9"])

    assert await run(channel, services) == "self_served"
    assert "SAY 1234" in channel.log and channel.log[-1] == "HANGUP"
    assert services.requests == []


async def test_given_star_while_holding_then_callback_keeps_place() -> None:
    events: list[str] = []
    queue = RecordingQueue(offers=[], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["1"], hold_keys=[None, "*"])

    assert await run(channel, services) == "callback_requested"
    assert "callback +390212345678" in events
    assert not any(e.startswith("left") for e in events)


async def test_given_hangup_while_queued_then_abandon_is_recorded_once() -> None:
    events: list[str] = []
    queue = RecordingQueue(offers=[], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["1"], hang_up_after=18)

    assert await run(channel, services) == "abandoned"
    assert events.count("left abandoned") == 1
    assert events[-1] == "finish abandoned None"


async def test_given_hangup_during_menu_then_nothing_is_queued() -> None:
    events: list[str] = []
    services = RecordingServices(knowledge(), RecordingQueue([], events), events)
    channel = ScriptedChannel(hang_up_after=2)

    assert await run(channel, services) == "hangup_in_ivr"
    assert services.requests == []
    assert events == ["finish hangup_in_ivr None"]


@pytest.mark.parametrize("action", ["callback", "hangup"])
async def test_given_queue_refused_then_caller_hears_why(action: str) -> None:
    events: list[str] = []
    refusal = QueueRefusal(reason="no_agents", action=action)
    services = RecordingServices(knowledge(), refusal, events)
    channel = ScriptedChannel(menu_keys=["4"])

    outcome = await run(channel, services)
    assert outcome == ("callback_requested" if action == "callback" else "refused")
    assert channel.log[-1] == "HANGUP"


async def test_given_stale_offer_then_caller_keeps_waiting_without_dialling() -> None:
    events: list[str] = []
    stale = AgentOffer("stale", "agent103", "PJSIP/agent103")
    queue = RecordingQueue(offers=[stale, OFFER_101], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["1"], dial_status=["ANSWER"])

    assert await run(channel, services) == "answered"
    assert not any("agent103" in line for line in channel.log)


async def test_given_max_wait_action_while_holding_then_wait_ends() -> None:
    events: list[str] = []
    action = QueueRefusal(reason="max_wait", action="hangup")
    queue = RecordingQueue(offers=[None, action], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["1"])

    assert await run(channel, services) == "refused"
    assert not any(e.startswith("left") for e in events)
    assert channel.log[-1] == "HANGUP"


@pytest.mark.parametrize("ended", ["answered", "transferred"])
async def test_given_channel_leaves_mid_conversation_then_outcome_is_how_it_ended(
    ended: str,
) -> None:
    """Dial never returns: the caller hung up on the agent, or the agent transferred them. The
    queued call knows which (AMI), and that is the call's outcome, never an abandon."""
    events: list[str] = []
    queue = RecordingQueue(offers=[OFFER_101], events=events, left_as=ended)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["1"], leave_during="EXEC Dial")

    assert await run(channel, services) == ended

    assert events.count(f"left {ended}") == 1
    assert not any(e.startswith(("completed", "answered")) for e in events)
    assert events[-1] == f"finish {ended} None"  # the services know who had answered
    assert channel.log[-1] == "EXEC Dial PJSIP/agent101,20,t"


async def test_given_transferred_caller_then_straight_back_to_waiting_in_the_target_queue() -> None:
    events: list[str] = []
    queue = RecordingQueue(offers=[None, OFFER_102], events=events)
    # An overdue invoice would be read out to a new caller: never to a transferred one.
    services = RecordingServices(
        knowledge(overdue_invoices=1, overdue_amount_cents=123456),
        RecordingQueue([], events),
        events,
        transferred_to=queue,
    )
    channel = ScriptedChannel(dial_status=["ANSWER"])

    assert await run(channel, services) == "answered"

    assert channel.log[:2] == ["ANSWER", f"STREAM {SOUND_TRANSFERRED}"]
    assert f"STREAM {SOUND_WELCOME}" not in channel.log
    assert not any(c.startswith("GET DATA") or SOUND_MENU in c for c in channel.log)
    assert not any(c.startswith("SAY 1234") for c in channel.log)  # no self-service
    assert services.requests == [] and services.knowledge_asked == 0
    # Waiting as any caller in the queue does: the pop reaches the new agent before the ring.
    assert "MUSIC ON" in channel.log
    assert events.index("pop agent102") < events.index("ringing agent102")
    assert events[0] == "resumed" and events[-1] == "finish answered agent102"


async def test_given_transferred_caller_hangs_up_while_waiting_then_it_is_an_abandon() -> None:
    events: list[str] = []
    queue = RecordingQueue(offers=[], events=events)
    services = RecordingServices(knowledge(), queue, events, transferred_to=queue)
    channel = ScriptedChannel(leave_during=f"STREAM {SOUND_TRANSFERRED}")

    assert await run(channel, services) == "abandoned"
    assert events == ["resumed", "left abandoned", "finish abandoned None"]


async def test_given_transferred_caller_and_target_queue_refuses_then_caller_hears_why() -> None:
    events: list[str] = []
    refusal = QueueRefusal(reason="no_agents", action="hangup")
    services = RecordingServices(
        knowledge(), RecordingQueue([], events), events, transferred_to=refusal
    )
    channel = ScriptedChannel()

    assert await run(channel, services) == "refused"
    assert channel.log == ["ANSWER", "STREAM centralino/no-agents", "HANGUP"]
    assert services.requests == []


class _StoreDown(RecordingQueue):
    """The ACD's store fails while the caller holds (Redis down)."""

    async def status(self) -> QueueStatus:
        raise ConnectionError("Redis unavailable")

    async def channel_left(self, *, handed_back: bool = False) -> str:
        self.events.append(f"left handed_back={handed_back}")
        raise ConnectionError("Redis unavailable")


async def test_given_our_store_fails_mid_call_then_the_call_is_recorded_as_returned() -> None:
    """Seen with Redis killed: callers were recorded as hangup_in_ivr (blaming them) or not at
    all (the queue's bookkeeping raised before the record was written). Our failure hands
    the call back (the session says ERROR) and the record says so."""
    events: list[str] = []
    queue = _StoreDown(offers=[], events=events)
    services = RecordingServices(knowledge(), queue, events)
    channel = ScriptedChannel(menu_keys=["1"])

    with pytest.raises(ConnectionError):
        await run(channel, services)

    assert events[-2:] == ["left handed_back=True", "finish returned None"]
