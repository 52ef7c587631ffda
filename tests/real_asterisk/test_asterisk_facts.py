"""What the real Asterisk 22 does where our code makes assumptions: measured, not remembered.

A bare FastAGI probe stands in for Centralino (conftest `agi_probe`) and runs the commands the
call flow runs, so each fact is about Asterisk and the project's dialplan, not about our flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from centralino.asterisk.agi import AgiResponse
from centralino.asterisk.agi_server import AgiCall
from ivr.errors import ChannelHungUp
from tests.helpers import eventually
from tests.real_asterisk.conftest import AgiProbe
from tests.real_asterisk.driver import CallDriver, PlacedCall

pytestmark = pytest.mark.asterisk

DID = "+390200000002"
DIAL_TIMES = ("DIALSTATUS", "ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS")


def last_value(driver: CallDriver, call: PlacedCall, variable: str) -> str | None:
    """The last value Asterisk set for `variable` on the call's channel (AMI VarSet)."""
    found = driver.events("VarSet", Uniqueid=call.uniqueid, Variable=variable)
    return found[-1].event.get("Value") if found else None


def agent_answer(driver: CallDriver, call: PlacedCall) -> float:
    """When the agent's phone answered (DialEnd ANSWER towards a test phone)."""
    found = driver.where(
        "DialEnd",
        lambda e: (
            e.get("Uniqueid") == call.uniqueid
            and e.get("DialStatus") == "ANSWER"
            and (e.get("DestChannel") or "").startswith("Local/agent")
        ),
    )
    assert len(found) == 1, [f.event.get("DestChannel") for f in found]
    return found[0].timestamp


async def test_given_the_agent_hangs_up_first_then_dial_says_minus_one_and_answer_with_the_callers_times(  # noqa: E501
    agi_probe: AgiProbe, driver: CallDriver
) -> None:
    """EXEC Dial returns `result=-1` although the caller is still there (no `g` option: the
    callee hanging up ends the caller's dialplan too), DIALSTATUS is ANSWER, and ANSWEREDTIME /
    DIALEDTIME measure the *caller's* channel since its answer / creation, IVR included, not the
    conversation."""
    await driver.phone("agent101", ring_s=1, talk_s=2)
    seen: dict[str, str | None] = {}
    dial: list[AgiResponse] = []

    async def script(call: AgiCall) -> None:
        channel = call.channel
        await channel.answer()
        await channel.exec("Wait", "3")  # what the IVR and the queue take before the Dial
        dial.append(await channel.command("EXEC", "Dial", "Local/agent101@test-phones,10"))
        for name in DIAL_TIMES:
            seen[name] = await channel.get_variable(name)
        seen["hung_up"] = str(channel.hung_up)

    agi_probe.script = script
    call = await driver.place(did=DID, caller_id="+390211111111", patience_s=60)

    def dial_done() -> None:
        assert "hung_up" in seen

    await eventually(dial_done, timeout=30)
    assert dial[0].code == 200 and dial[0].result == "-1"
    assert seen["hung_up"] == "False"  # the caller's channel is alive: -1 is not a hangup here
    assert seen["DIALSTATUS"] == "ANSWER"
    answered_ms = int(seen["ANSWEREDTIME_MS"] or 0)
    dialed_ms = int(seen["DIALEDTIME_MS"] or 0)
    # 3 s of IVR + 1 s ring + 2 s talk since the caller's channel answered, not 2 s of talk.
    assert 5500 <= answered_ms <= 8000, seen
    assert abs(dialed_ms - answered_ms) < 500, seen  # the caller answered as it was created
    assert int(seen["ANSWEREDTIME"] or 0) == answered_ms // 1000
    hung = driver.where(
        "Hangup", lambda e: (e.get("Channel") or "").startswith("Local/agent101@test-phones")
    )
    talk_s = hung[0].timestamp - agent_answer(driver, call)
    assert talk_s == pytest.approx(2, abs=0.7)  # the conversation itself, from AMI


async def test_given_the_caller_hangs_up_first_then_dial_says_minus_one_and_answer(
    agi_probe: AgiProbe, driver: CallDriver
) -> None:
    """The caller leaving mid-conversation: EXEC Dial also returns `result=-1`, then the
    `HANGUP` line; DIALSTATUS is ANSWER as when the agent hangs up: only the channel's state
    (or AMI) tells the two apart."""
    await driver.phone("agent102", ring_s=1, talk_s=60)
    dial: list[AgiResponse] = []
    ended: list[bool] = []

    async def script(call: AgiCall) -> None:
        channel = call.channel
        await channel.answer()
        dial.append(await channel.command("EXEC", "Dial", "Local/agent102@test-phones,10"))
        try:
            await channel.wait_for_digit(3000)
        except ChannelHungUp:
            ended.append(True)

    agi_probe.script = script
    call = await driver.place(did=DID, caller_id="+390211111112", patience_s=60)
    answered_at = await eventually(lambda: agent_answer(driver, call), timeout=20)
    await eventually(lambda: _after(answered_at, 1.0), timeout=5)  # a second of conversation

    await driver.hang_up(call)

    def dial_done() -> None:
        assert dial and ended

    await eventually(dial_done, timeout=10)
    assert dial[0].code == 200 and dial[0].result == "-1"
    assert last_value(driver, call, "DIALSTATUS") == "ANSWER"
    agent_legs = driver.where(
        "Hangup", lambda e: (e.get("Channel") or "").startswith("Local/agent102@test-phones")
    )
    assert len(agent_legs) == 2  # the agent's phone was hung up by Asterisk, both halves


def _after(moment: float, seconds: float) -> None:
    """Passes once `seconds` have gone by since `moment` (an AMI Timestamp)."""
    assert time.time() >= moment + seconds


async def test_given_an_italian_channel_then_fastagi_hears_agi_language_it_and_no_lang_query(
    agi_probe: AgiProbe, driver: CallDriver
) -> None:
    """The caller's language travels as `agi_language` (the channel's CHANNEL(language));
    [centralino-inbound] adds no `?lang=` to the AGI URL, so the query stays empty."""
    call = await driver.place(did=DID, caller_id="+390211111113", language="it")

    def in_session() -> None:
        assert agi_probe.sessions

    await eventually(in_session, timeout=10)
    await driver.hang_up(call)
    (env,) = agi_probe.sessions
    assert env.language == "it"
    assert env.script == "inbound" and dict(env.query) == {}


# ---- the project's dialplan around FastAGI ---------------------------------------------


async def test_given_a_transferred_caller_hangs_up_then_fastagi_is_not_asked_for_queue_h(
    agi_probe: AgiProbe, driver: CallDriver
) -> None:
    """Asterisk runs the `h` extension of the context a channel hangs up in, by pattern too:
    [centralino-transfer] once matched `h` with `_[a-z]!` and each hangup opened a second
    FastAGI session `inbound?queue=h` on a dead channel (seen on b1039d7)."""
    call = await driver.place(
        did=DID, caller_id="+390233333333", context="centralino-transfer", exten="support"
    )

    def in_session() -> None:
        assert agi_probe.sessions, "the transferred caller never reached FastAGI"

    await eventually(in_session, timeout=10)
    await driver.hang_up(call)
    await eventually(lambda: driver.hung_up(call.uniqueid), timeout=10)

    assert [s.query.get("queue") for s in agi_probe.sessions] == ["support"]


async def test_given_the_fastagi_socket_dies_mid_conversation_then_the_caller_is_not_queued_again(
    agi_probe: AgiProbe, driver: CallDriver
) -> None:
    """The app dies while the caller talks to an agent (Dial running inside FastAGI). Asterisk
    notices only when Dial returns: AGI() ends with AGISTATUS=SUCCESS and no CENTRALINO_STATUS,
    so the dialplan must tell by DIALSTATUS=ANSWER; on b1039d7 the caller went to the fallback
    queue and was served twice."""
    await driver.phone("agent103", ring_s=1, talk_s=3)
    dial: list[AgiResponse] = []

    async def script(call: AgiCall) -> None:
        channel = call.channel
        await channel.answer()
        dialling = asyncio.ensure_future(
            channel.command("EXEC", "Dial", "Local/agent103@test-phones,10")
        )

        def answered() -> None:
            assert driver.where(
                "DialEnd",
                lambda e: (
                    e.get("Uniqueid") == call.env.uniqueid
                    and e.get("DialStatus") == "ANSWER"
                    and (e.get("DestChannel") or "").startswith("Local/agent103")
                ),
            )

        await eventually(answered, timeout=10)
        channel.return_to_dialplan("")  # the socket closes under the running Dial
        with contextlib.suppress(ChannelHungUp):
            dial.append(await dialling)

    agi_probe.script = script
    placed = await driver.place(did=DID, caller_id="+390244444444", patience_s=60)

    def ended_or_requeued() -> None:
        requeued = driver.events("QueueCallerJoin", Uniqueid=placed.uniqueid)
        assert requeued or driver.events("Hangup", Uniqueid=placed.uniqueid)

    await eventually(ended_or_requeued, timeout=20)
    agistatus = [
        e.event.get("Value")
        for e in driver.events("VarSet", Uniqueid=placed.uniqueid, Variable="AGISTATUS")
    ]
    fallback = [
        e.event.get("Queue") for e in driver.events("QueueCallerJoin", Uniqueid=placed.uniqueid)
    ]
    assert fallback == [], f"AGISTATUS {agistatus}; caller queued again in {fallback}"
