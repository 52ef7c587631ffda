"""The flow engine, step by step, over the scripted channel of test_inbound_flow: menus and
their keys, language, hours, asks and says, speech with its DTMF fallback, the survey, and a
caller who leaves mid-flow."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from ivr.flow.document import parse_flow
from ivr.flow.engine import MAX_STEPS_PER_CALL
from ivr.flow.models import Flow
from ivr.inbound import InboundCall, run_inbound
from ivr.intent import MENU, IntentModel
from tests.ivr.test_inbound_flow import (
    FAST,
    OFFER_101,
    RecordingQueue,
    RecordingServices,
    ScriptedChannel,
    knowledge,
)

MODEL = IntentModel.train()
MONDAY_10 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Rome
SUNDAY_10 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def flow(name: str = "f", **document: Any) -> Flow:
    return parse_flow(name, document)


async def run(
    channel: ScriptedChannel,
    services: RecordingServices,
    the_flow: Flow,
    *,
    flows: dict[str, Flow] | None = None,
    now: datetime = MONDAY_10,
    speech: Any = None,
    language: str | None = None,
) -> str:
    clock = itertools.count()
    return await run_inbound(
        InboundCall(uniqueid="1700000000.1", caller_id="+390212345678", language=language),
        channel,
        services,
        model=MODEL,
        settings=FAST,
        monotonic=lambda: float(next(clock)),
        flow=the_flow,
        flows=flows,
        now=lambda: now,
        speech=speech,
    )


def world(
    *, offers: list[Any] | None = None, **known: Any
) -> tuple[list[str], RecordingQueue, RecordingServices]:
    events: list[str] = []
    queue = RecordingQueue(offers=offers or [], events=events)
    return events, queue, RecordingServices(knowledge(**known), queue, events)


LANGUAGE_MENU = flow(
    language="en",
    start="menu",
    steps={
        "menu": {
            "type": "menu",
            "prompt": "centralino/menu",
            "options": {"9": "italiano", "2": {"intent": "sales", "next": "queue"}},
            "retries": 1,
            "no_input": "bye",
        },
        "italiano": {"type": "language", "language": "it", "next": "menu"},
        "queue": {"type": "queue", "survey": "survey"},
        "survey": {
            "type": "survey",
            "prompt": "centralino/survey",
            "invalid": "centralino/survey-invalid",
            "thanks": "centralino/survey-thanks",
        },
        "bye": {"type": "hangup", "prompt": "vm-goodbye"},
    },
)


async def test_given_the_caller_switches_language_then_the_channel_and_the_queue_follow() -> None:
    _events, _, services = world(offers=[OFFER_101])
    channel = ScriptedChannel(menu_keys=["9", "2", "4"], dial_status=["ANSWER"])

    outcome = await run(channel, services, LANGUAGE_MENU, language="en")

    assert outcome == "answered"
    assert channel.log[:4] == [
        "ANSWER",
        "SET CHANNEL(language)=en",
        "GET DATA centralino/menu",
        "SET CHANNEL(language)=it",
    ]
    assert services.requests[0].intent == "sales"
    assert services.requests[0].language == "it"  # agents who speak Italian


async def test_given_a_survey_flow_then_dial_continues_and_the_score_is_kept() -> None:
    events, _, services = world(offers=[OFFER_101])
    channel = ScriptedChannel(menu_keys=["2", "7", "4"], dial_status=["ANSWER"])

    assert await run(channel, services, LANGUAGE_MENU) == "answered"

    # `g`: the caller stays with us after the agent hangs up.
    assert "EXEC Dial PJSIP/agent101,20,tg" in channel.log
    after = channel.log[channel.log.index("GET DIALSTATUS") + 1 :]
    assert after == [
        "GET DATA centralino/survey",  # 7 is not a score
        "STREAM centralino/survey-invalid",
        "GET DATA centralino/survey",
        "STREAM centralino/survey-thanks",
        "HANGUP",
    ]
    assert "rated 4" in events
    assert events[-1] == "finish answered agent101"


async def test_given_the_caller_hangs_up_during_the_survey_then_the_call_stays_answered() -> None:
    events, _, services = world(offers=[OFFER_101])
    channel = ScriptedChannel(
        menu_keys=["2"], dial_status=["ANSWER"], leave_during="GET DATA centralino/survey"
    )

    assert await run(channel, services, LANGUAGE_MENU) == "answered"
    assert not any(e.startswith("rated") for e in events)
    assert events[-1] == "finish answered agent101"


async def test_given_no_key_twice_then_no_input_step_runs() -> None:
    _events, _, services = world()
    channel = ScriptedChannel(menu_keys=["", ""])

    assert await run(channel, services, LANGUAGE_MENU) == "hangup_in_ivr"
    assert channel.log[-4:] == [
        "GET DATA centralino/menu",
        "GET DATA centralino/menu",
        "STREAM vm-goodbye",
        "HANGUP",
    ]
    assert services.requests == []


HOURS = flow(
    start="welcome",
    closed="closed",
    hours={"timezone": "Europe/Rome", "mon": ["09:00-18:00"], "holidays": ["12-25"]},
    steps={
        "welcome": {"type": "play", "prompt": "centralino/welcome", "next": "queue"},
        "queue": {"type": "queue", "queue": "sales", "intent": "sales", "priority": 7},
        "closed": {"type": "flow", "flow": "after_hours"},
    },
)
AFTER_HOURS = flow(
    "after_hours",
    start="message",
    steps={
        "message": {"type": "play", "prompt": "centralino/closed", "next": "vm"},
        "vm": {"type": "voicemail", "mailbox": "100@sales"},
    },
)


async def test_given_open_hours_then_the_queue_step_places_the_call_as_written() -> None:
    _events, _, services = world(offers=[OFFER_101])
    channel = ScriptedChannel(dial_status=["ANSWER"])

    assert await run(channel, services, HOURS, now=MONDAY_10) == "answered"
    request = services.requests[0]
    assert (request.queue, request.intent, request.priority) == ("sales", "sales", 7)
    assert "EXEC Dial PJSIP/agent101,20,t" in channel.log  # no survey: no `g`


async def test_given_closed_hours_then_another_flow_takes_a_message() -> None:
    events, _, services = world()
    channel = ScriptedChannel()
    flows = {"f": HOURS, "after_hours": AFTER_HOURS}

    outcome = await run(channel, services, HOURS, flows=flows, now=SUNDAY_10)

    assert outcome == "self_served"
    assert channel.log == [
        "ANSWER",
        "STREAM centralino/closed",
        "EXEC VoiceMail 100@sales,u",
        "HANGUP",
    ]
    assert "note hours" in events and "note flow" in events
    assert services.requests == []


ASK_AND_SAY = flow(
    start="code",
    language="it",
    steps={
        "code": {
            "type": "ask",
            "prompt": "centralino/code",
            "var": "code",
            "max_digits": 4,
            "no_input": "bye",
            "next": "known",
        },
        "known": {
            "type": "branch",
            "cases": [{"if": ["vars.code == 1234", "known_customer == true"], "next": "say"}],
            "otherwise": "bye",
        },
        "say": {"type": "say", "kind": "digits", "value": "vars.code", "next": "amount"},
        "amount": {"type": "say", "kind": "amount", "value": "overdue_amount_cents", "next": "bye"},
        "bye": {"type": "hangup", "prompt": "vm-goodbye", "outcome": "self_served"},
    },
)


async def test_given_digits_asked_then_a_branch_reads_them_and_they_are_said_back() -> None:
    _, _, services = world(overdue_amount_cents=100)
    channel = ScriptedChannel(menu_keys=["1234"])

    assert await run(channel, services, ASK_AND_SAY) == "self_served"
    assert channel.log[1:] == [
        "SET CHANNEL(language)=it",
        "GET DATA centralino/code",
        "SAY DIGITS 1234",
        "STREAM centralino/euro-one",  # "un euro"
        "STREAM vm-goodbye",
        "HANGUP",
    ]


async def test_given_the_wrong_code_then_the_branch_goes_otherwise() -> None:
    _, _, services = world()
    channel = ScriptedChannel(menu_keys=["9999"])

    await run(channel, services, ASK_AND_SAY)
    assert not any(c.startswith("SAY") for c in channel.log)


async def test_given_a_date_then_it_is_said_with_the_languages_format() -> None:
    dated = flow(
        start="ask",
        language="it",
        steps={
            "ask": {"type": "ask", "prompt": "p", "var": "day", "max_digits": 10, "next": "say"},
            "say": {"type": "say", "kind": "date", "value": "vars.day", "next": "bye"},
            "bye": {"type": "hangup"},
        },
    )
    _, _, services = world()
    channel = ScriptedChannel(menu_keys=["2026-12-08"])

    await run(channel, services, dated)
    # 2026-12-08 12:00 in Rome; Italian order: weekday, day, month, year.
    assert "EXEC SayUnixTime 1796727600,Europe/Rome,AdBY" in channel.log

    typed = ScriptedChannel(menu_keys=["20261208"])  # as digits on a keypad
    await run(typed, services, dated)
    assert "EXEC SayUnixTime 1796727600,Europe/Rome,AdBY" in typed.log


async def test_given_an_unsayable_value_then_the_call_goes_on() -> None:
    _, _, services = world()
    bad = flow(
        start="ask",
        steps={
            "ask": {"type": "ask", "prompt": "p", "var": "n", "next": "say"},
            "say": {"type": "say", "kind": "digits", "value": "vars.n", "next": "bye"},
            "bye": {"type": "hangup"},
        },
    )
    channel = ScriptedChannel(menu_keys=["*"])
    await run(channel, services, bad)
    assert channel.log[-1] == "HANGUP"
    assert "note say" in services.events


class Recogniser:
    def __init__(self, said: str | None = None, fails: bool = False) -> None:
        self.said = said
        self.fails = fails
        self.asked: list[tuple[str, str | None]] = []

    async def listen(self, prompt: str, *, timeout_ms: int, language: str | None) -> str | None:
        self.asked.append((prompt, language))
        if self.fails:
            raise RuntimeError("model crashed")
        return self.said


SPEECH_MENU = flow(
    start="menu",
    steps={
        "menu": {
            "type": "menu",
            "prompt": "centralino/menu",
            "speech": True,
            "intent_keys": True,
            "next": "queue",
        },
        "queue": {"type": "queue"},
    },
)


async def test_given_speech_then_the_utterance_sets_the_intent() -> None:
    _events, _, services = world(offers=[OFFER_101], known_customer=False)
    channel = ScriptedChannel(dial_status=["ANSWER"])
    recogniser = Recogniser("vorrei acquistare un nuovo prodotto, un preventivo")

    await run(channel, services, SPEECH_MENU, speech=recogniser)

    assert recogniser.asked == [("centralino/menu", None)]
    assert not any(c.startswith("GET DATA") for c in channel.log)
    assert services.requests[0].intent == "sales"


@pytest.mark.parametrize("recogniser", [None, Recogniser(fails=True), Recogniser(said="  ")])
async def test_given_no_usable_speech_then_the_menu_falls_back_to_dtmf(
    recogniser: Recogniser | None,
) -> None:
    events, _, services = world(offers=[OFFER_101])
    channel = ScriptedChannel(menu_keys=["1"], dial_status=["ANSWER"])

    await run(channel, services, SPEECH_MENU, speech=recogniser)

    assert "GET DATA centralino/menu" in channel.log
    assert services.requests[0].intent == MENU["1"]
    if recogniser is not None and recogniser.fails:
        assert "note speech" in events


async def test_given_the_caller_hangs_up_mid_flow_then_nothing_more_is_sent() -> None:
    events, _, services = world()
    channel = ScriptedChannel(leave_during="SET CHANNEL(language)")

    assert await run(channel, services, LANGUAGE_MENU) == "hangup_in_ivr"
    assert channel.log[-1] == "SET CHANNEL(language)=en"
    assert events == ["finish hangup_in_ivr None"]


async def test_given_a_caller_looping_through_a_menu_then_the_call_ends_after_the_limit() -> None:
    looping = flow(
        start="m",
        steps={
            "m": {"type": "menu", "prompt": "p", "options": {"1": "play"}, "next": "m2"},
            "play": {"type": "play", "prompt": "p", "next": "m"},
            "m2": {"type": "hangup"},
        },
    )
    _, _, services = world()
    channel = ScriptedChannel(menu_keys=["1"] * MAX_STEPS_PER_CALL)

    assert await run(channel, services, looping) == "hangup_in_ivr"
    assert channel.log[-2:] == ["STREAM vm-goodbye", "HANGUP"]
    assert "note flow" in services.events


async def test_given_an_action_returns_an_unmapped_result_then_the_call_is_handed_back() -> None:
    from ivr.flow.hooks import DEFAULT_HOOKS, ActionContext, ActionSpec

    async def wrong(ctx: ActionContext) -> str:
        return "surprise"

    hooks = DEFAULT_HOOKS.extended(actions={"wrong": ActionSpec(wrong, results=("ok",))})
    broken = flow(
        start="a",
        steps={
            "a": {"type": "action", "action": "wrong", "results": {"ok": "z"}},
            "z": {"type": "hangup"},
        },
    )
    _, _, services = world()
    channel = ScriptedChannel()
    with pytest.raises(RuntimeError, match="returned 'surprise'"):
        await run_inbound(
            InboundCall(uniqueid="1", caller_id="+39021"),
            channel,
            services,
            model=MODEL,
            settings=FAST,
            monotonic=lambda: 0.0,
            flow=broken,
            hooks=hooks,
        )
    assert services.events[-1] == "finish returned None"


async def test_given_a_transfer_step_then_answered_is_served_and_unanswered_goes_on() -> None:
    out = flow(
        start="t",
        steps={
            "t": {
                "type": "transfer",
                "endpoint": "PJSIP/reception",
                "timeout_s": 15,
                "next": "bye",
            },
            "bye": {"type": "hangup", "prompt": "vm-goodbye"},
        },
    )
    _, _, services = world()
    answered = ScriptedChannel(dial_status=["ANSWER"])
    assert await run(answered, services, out) == "self_served"
    assert "EXEC Dial PJSIP/reception,15,t" in answered.log

    _, _, services = world()
    busy = ScriptedChannel(dial_status=["BUSY"])
    assert await run(busy, services, out) == "hangup_in_ivr"
    assert busy.log[-2:] == ["STREAM vm-goodbye", "HANGUP"]


async def test_given_no_flow_language_then_dates_follow_the_channels_language() -> None:
    dated = flow(
        start="ask",
        steps={
            "ask": {"type": "ask", "prompt": "p", "var": "day", "max_digits": 8, "next": "say"},
            "say": {"type": "say", "kind": "date", "value": "vars.day", "next": "bye"},
            "bye": {"type": "hangup"},
        },
    )
    _, _, services = world()
    channel = ScriptedChannel(menu_keys=["20261208"])
    await run_inbound(
        InboundCall(uniqueid="1", caller_id="+39021", channel_language="it"),
        channel,
        services,
        model=MODEL,
        settings=FAST,
        monotonic=lambda: 0.0,
        flow=dated,
    )
    assert "EXEC SayUnixTime 1796727600,Europe/Rome,AdBY" in channel.log
    assert services.requests == []


class TypingAhead(ScriptedChannel):
    """A caller who knows the menu: presses `key` while `prompt` plays."""

    def __init__(self, prompt: str, key: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.prompt, self.key = prompt, key
        self.escapes: list[str] = []

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        await super().stream_file(name, escape_digits)
        self.escapes.append(escape_digits)
        return self.key if name == self.prompt and self.key in escape_digits else None


TYPE_AHEAD = flow(
    start="welcome",
    steps={
        "welcome": {
            "type": "play",
            "prompts": ["centralino/welcome", "centralino/other-language"],
            "type_ahead": True,
            "next": "menu",
        },
        "menu": {
            "type": "menu",
            "prompt": "centralino/menu",
            "options": {"2": "done"},
            "no_input": "bye",
            "next": "bye",
        },
        "done": {"type": "hangup", "outcome": "self_served"},
        "bye": {"type": "hangup"},
    },
)


async def test_given_a_key_during_a_type_ahead_prompt_then_it_answers_the_menu() -> None:
    _, _, services = world()
    channel = TypingAhead("centralino/welcome", "2")

    assert await run(channel, services, TYPE_AHEAD) == "self_served"
    # The key stopped the welcome; the rest of the prompt and the menu's own were skipped.
    assert channel.log == ["ANSWER", "STREAM centralino/welcome", "HANGUP"]
    assert channel.escapes == ["0123456789*#"]


async def test_given_a_key_during_a_plain_prompt_then_asterisk_ignores_it() -> None:
    plain = flow(
        start="welcome",
        steps={
            "welcome": {"type": "play", "prompt": "centralino/welcome", "next": "menu"},
            "menu": {
                "type": "menu",
                "prompt": "centralino/menu",
                "options": {"2": "done"},
                "next": "bye",
            },
            "done": {"type": "hangup", "outcome": "self_served"},
            "bye": {"type": "hangup"},
        },
    )
    _, _, services = world()
    channel = TypingAhead("centralino/welcome", "2", menu_keys=[""])

    assert await run(channel, services, plain) == "hangup_in_ivr"
    assert channel.escapes == [""]  # STREAM FILE with no escape digits: keys do not stop it
    assert "GET DATA centralino/menu" in channel.log
