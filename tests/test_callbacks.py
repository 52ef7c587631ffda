"""CallbackDialer against the AMI peer: asynchronous Originate (the AMI session stays free while
the agent rings), the outcome from the OriginateResponse matched by ActionID, the dialplan's
`CentralinoCallback` UserEvent deciding completed or not reached, and nothing left reserved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial

import pytest

from acd.live import MemoryLiveStore, MemoryQueueLog
from acd.models import AgentDefinition, AgentState, QueueEvent, QueuePolicy, WorkItem
from acd.service import Router
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import AmiGroup
from centralino.callbacks import CALLBACK_CONTEXT, CallbackDialer
from centralino.simulator.ami_server import AmiServer, OriginateOutcome, OriginateRequest
from tests.acd.support import ManualClock
from tests.helpers import eventually, sim_ami_client

NUMBER = "+390212345678"
AGENTS = {"ann": AgentDefinition("ann", {"sales": 3}, endpoint="PJSIP/ann", wrap_up_s=0.0)}


@dataclass
class Phone:
    """What the agent's phone does with an Originate (the peer's `originate_hook`)."""

    outcome: OriginateOutcome = field(default_factory=OriginateOutcome)
    ringing: asyncio.Event = field(default_factory=asyncio.Event)
    pick_up: asyncio.Event = field(default_factory=asyncio.Event)
    during: Callable[[], None] | None = None  # e.g. the dialplan's event in the same instant
    requests: list[OriginateRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pick_up.set()

    async def __call__(self, request: OriginateRequest) -> OriginateOutcome:
        self.requests.append(request)
        self.ringing.set()
        await self.pick_up.wait()
        if self.during is not None:
            self.during()
        return self.outcome


@dataclass
class Rig:
    asterisk: AmiServer
    ami: AmiClient
    phone: Phone
    router: Router
    store: MemoryLiveStore
    log: MemoryQueueLog
    dialer: CallbackDialer

    async def callback_requested(self, item_id: str = "c1") -> None:
        await self.router.agent_login("ann")
        await self.router.enqueue(WorkItem(item_id, "sales", 900.0))
        await self.router.request_callback(item_id, NUMBER)
        await self.router.agent_ready("ann")
        await self.router.route_now()  # ann is offered c1: the dialer starts

    def state(self) -> AgentState:
        return self.store.state.agents()[0].state

    def events(self, item_id: str = "c1") -> list[tuple[QueueEvent, str]]:
        return [(r.event, r.data) for r in self.log.rows if r.item_id == item_id]

    def user_event(self, status: str, item_id: str = "c1") -> None:
        self.asterisk.emit("UserEvent", UserEvent="CentralinoCallback", Id=item_id, Status=status)


async def _router_and_dialer(
    ami: AmiClient | AmiGroup, store: MemoryLiveStore, log: MemoryQueueLog, owner: str = "p1"
) -> tuple[Router, CallbackDialer]:
    """A router whose callback offers go to a dialer on `ami` (the dialer reaches the router
    through a getter: each needs the other)."""
    holder: list[Router] = []
    dialer = CallbackDialer(
        ami=ami, router=lambda: holder[0], ring_timeout_s=0.5, originate_margin_s=0.5
    )
    router = Router(
        store=store,
        queue_log=log,
        clock=ManualClock(),
        queues={"sales": QueuePolicy("sales", skill="sales")},
        agents=AGENTS,
        owner=owner,
        on_detached_offer=dialer,
    )
    holder.append(router)
    await router.publish()
    return router, dialer


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    phone = Phone()
    asterisk = AmiServer(auth_failure_delay_s=0.05, originate_hook=phone)
    await asterisk.start()
    ami = sim_ami_client(asterisk.port, seed=1, action_timeout_s=1.0)
    await ami.connect()
    store, log = MemoryLiveStore(), MemoryQueueLog()
    router, dialer = await _router_and_dialer(ami, store, log)
    try:
        yield Rig(asterisk, ami, phone, router, store, log, dialer)
    finally:
        await dialer.aclose()
        await ami.close()
        await asterisk.stop()


async def test_given_agent_ringing_then_the_ami_session_is_not_blocked(rig: Rig) -> None:
    """A synchronous Originate held the AMI session for the whole ring: the keepalive's Ping
    went unanswered and the link was declared dead. Now the Originate is queued at once."""
    rig.phone.pick_up.clear()
    await rig.callback_requested()
    await asyncio.wait_for(rig.phone.ringing.wait(), 2.0)
    pong = await rig.ami.action("Ping", timeout_s=0.5)  # answered while the agent rings
    assert pong.ok
    (originate,) = [a for a in rig.asterisk.actions_received if a.name.lower() == "originate"]
    assert originate.get("Async") == "true"
    assert (originate.get("Channel"), originate.get("Context")) == ("PJSIP/ann", CALLBACK_CONTEXT)
    assert originate.get("Exten") == NUMBER
    assert rig.state() is AgentState.RINGING
    rig.phone.pick_up.set()
    await eventually(lambda: _check(rig.state() is AgentState.BUSY), timeout=2.0)


async def test_given_customer_answers_then_completed_only_on_the_userevent(rig: Rig) -> None:
    await rig.callback_requested()
    await eventually(lambda: _check(rig.dialer.placed_total == 1), timeout=2.0)
    assert rig.state() is AgentState.BUSY
    rig.user_event("ANSWER", item_id="someone-else")  # another callback's: not ours
    rig.user_event("ANSWER")
    await eventually(lambda: _check(rig.dialer.completed_total == 1), timeout=2.0)
    assert rig.state() is AgentState.READY  # no wrap-up configured for ann
    assert [e for e, _ in rig.events()][-2:] == [QueueEvent.CONNECT, QueueEvent.COMPLETE]


async def test_given_customer_not_reached_then_back_in_front_until_attempts_run_out(
    rig: Rig,
) -> None:
    await rig.callback_requested()
    await rig.router.enqueue(WorkItem("c2", "sales", 950.0))  # arrived after c1's request
    await eventually(lambda: _check(rig.dialer.placed_total == 1), timeout=2.0)
    for attempt, status in enumerate(("NOANSWER", "BUSY"), start=1):
        rig.user_event(status)
        await eventually(partial(_unreached, rig, attempt), timeout=2.0)
        await eventually(lambda: _check(rig.state() is AgentState.READY), timeout=2.0)
        assert (QueueEvent.REJECT, f"callback_{status.lower()}") in rig.events()
        if attempt == 1:
            assert [w.item_id for w in await rig.store.waiting("sales")] == ["c1", "c2"]
            await rig.router.route_now()  # offered again, first in line: a second callback
            await eventually(lambda: _check(rig.dialer.placed_total == 2), timeout=2.0)
    # DEFAULT_MAX_ATTEMPTS is 3: a third failure drops it.
    await rig.router.route_now()
    await eventually(lambda: _check(rig.dialer.placed_total == 3), timeout=2.0)
    rig.user_event("CONGESTION")
    await eventually(lambda: _check(rig.dialer.unreached_total == 3), timeout=2.0)
    assert rig.events()[-1] == (QueueEvent.EXIT, "callback_unreached")
    assert "c1" not in [w.item_id for w in await rig.store.waiting("sales")]
    assert rig.dialer.completed_total == 0


async def test_given_customer_leg_fails_at_once_then_its_early_event_is_not_lost(
    rig: Rig,
) -> None:
    """CHANUNAVAIL: the dialplan's UserEvent may come in the same read as (here: before) the
    OriginateResponse, before the dialer listens for it."""
    rig.phone.during = lambda: rig.user_event("CHANUNAVAIL")
    await rig.callback_requested()
    await eventually(lambda: _check(rig.dialer.unreached_total == 1), timeout=2.0)
    assert rig.state() is AgentState.READY
    assert [w.item_id for w in await rig.store.waiting("sales")] == ["c1"]


async def test_given_agent_does_not_answer_then_ring_no_answer(rig: Rig) -> None:
    rig.phone.outcome = OriginateOutcome(answered=False, reason=3)
    await rig.callback_requested()
    await eventually(lambda: _check(rig.dialer.failed_total == 1), timeout=2.0)
    await eventually(lambda: _check(rig.state() is AgentState.NOT_READY), timeout=2.0)
    assert [w.item_id for w in await rig.store.waiting("sales")] == ["c1"]
    assert (QueueEvent.RONA, "rona") in rig.events()


async def test_given_no_originate_response_then_the_reservation_is_released(rig: Rig) -> None:
    rig.phone.pick_up.clear()  # rings for ever: no OriginateResponse comes
    await rig.callback_requested()
    await eventually(lambda: _check(rig.dialer.failed_total == 1), timeout=3.0)
    await eventually(lambda: _check(rig.state() is AgentState.NOT_READY), timeout=2.0)
    assert [w.item_id for w in await rig.store.waiting("sales")] == ["c1"]


async def test_given_an_error_after_accept_then_the_reservation_is_released(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(reservation_id: str) -> None:
        raise RuntimeError("store unreachable")

    monkeypatch.setattr(rig.router, "connected", broken)
    await rig.callback_requested()
    await eventually(lambda: _check(rig.state() is AgentState.NOT_READY), timeout=2.0)
    assert [w.item_id for w in await rig.store.waiting("sales")] == ["c1"]


def _check(condition: bool) -> None:
    assert condition


def _unreached(rig: Rig, n: int) -> None:
    assert rig.dialer.unreached_total == n


async def test_given_no_userevent_when_the_agents_channel_hangs_up_then_completed_apart(
    rig: Rig,
) -> None:
    """A dialplan (or the test peer) that emits no CentralinoCallback event: the agent's
    channel hanging up ends the callback, not counted as a customer reached."""
    await rig.callback_requested()
    await eventually(lambda: _check(rig.dialer.placed_total == 1), timeout=2.0)
    rig.asterisk.hangup_channel(rig.phone.requests[0].created[0].name)
    await eventually(lambda: _check(rig.dialer.unknown_total == 1), timeout=2.0)
    assert rig.state() is AgentState.READY
    assert rig.dialer.completed_total == 0
    assert rig.events()[-1][0] is QueueEvent.COMPLETE


async def test_given_the_agents_phone_is_on_another_asterisk_then_the_callback_is_placed_there(
    rig: Rig,
) -> None:
    """Two Asterisk servers: ann's phone is on the second (its settings say so), so the
    Originate goes there, and its outcome and UserEvent, raised there, complete the callback."""
    other_phone = Phone()
    other = AmiServer(auth_failure_delay_s=0.05, originate_hook=other_phone)
    await other.start()
    link = sim_ami_client(other.port, seed=2, action_timeout_s=1.0)
    await link.connect()
    group = AmiGroup({"": rig.ami, "milano": link}, endpoints={"PJSIP/ann": "milano"})
    store = MemoryLiveStore()
    router, dialer = await _router_and_dialer(group, store, MemoryQueueLog(), owner="p2")
    try:
        await router.agent_login("ann")
        await router.enqueue(WorkItem("c1", "sales", 900.0))
        await router.request_callback("c1", NUMBER)
        await router.agent_ready("ann")
        await router.route_now()
        await eventually(
            lambda: _check(store.state.agents()[0].state is AgentState.BUSY), timeout=2.0
        )
        assert [r.channel for r in other_phone.requests] == ["PJSIP/ann"]
        assert rig.phone.requests == []  # the first server never saw it
        other.emit("UserEvent", UserEvent="CentralinoCallback", Id="c1", Status="ANSWER")
        await eventually(lambda: _check(dialer.completed_total == 1), timeout=2.0)
    finally:
        await dialer.aclose()
        await link.close()
        await other.stop()
