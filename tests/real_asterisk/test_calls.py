"""Calls through a real Asterisk 22 into Centralino: the IVR, the queue, an agent's phone, the
records in PostgreSQL, and the links (AMI, AudioSocket) behaving as the real server makes them.

Each caller is an AMI Originate (driver.py); agents' phones are Local channels into the test
dialplan that ring, answer, talk a set time and hang up (harness.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

import aiohttp
import asyncpg
import pytest

from tests.helpers import eventually
from tests.real_asterisk.conftest import RealWorld
from tests.real_asterisk.driver import CallDriver, PlacedCall
from tests.real_asterisk.harness import AsteriskProcess

pytestmark = pytest.mark.asterisk

DID = "+390200000001"
SUPPORT_KEY = "3"  # ivr.intent's menu: 3 = support → the support queue


def known_caller(world: RealWorld) -> tuple[str, str]:
    """A customer with nothing overdue (that would be self-served first) and a number of
    their own (not the shared office line): (number, name)."""
    today = world.dataset.today
    shared = world.dataset.shared_office_phone
    person = next(
        p
        for p in world.dataset.people
        if p.phone != shared and not any(not i.paid and i.due < today for i in p.invoices)
    )
    return person.phone, person.name


async def interaction(pool: asyncpg.Pool, linkedid: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM interactions WHERE linkedid = $1", linkedid)
    assert row is not None, f"no interaction for {linkedid} yet"
    return row


async def queue_events(pool: asyncpg.Pool, item_id: str) -> list[str]:
    rows = await pool.fetch("SELECT event FROM queue_log WHERE item_id = $1 ORDER BY id", item_id)
    return [r["event"] for r in rows]


def agent_legs(driver: CallDriver, agent: str) -> list[str]:
    """Uniqueids of the `;1` halves of the agent's Local phone (what Dial rang)."""
    prefix = f"Local/{agent}@test-phones-"
    return [
        s.event.get("Uniqueid") or ""
        for s in driver.where(
            "Newchannel",
            lambda e: (
                (e.get("Channel") or "").startswith(prefix)
                and (e.get("Channel") or "").endswith(";1")
            ),
        )
    ]


async def answered_call(
    world: RealWorld,
    driver: CallDriver,
    pg_pool: asyncpg.Pool,
    *,
    language: str,
    talk_s: float = 3,
) -> tuple[PlacedCall, asyncpg.Record]:
    number, name = known_caller(world)
    for agent in world.desktops:
        await driver.phone(agent, ring_s=1, talk_s=talk_s)
    call = await driver.place(
        did=DID, caller_id=number, caller_name=name, language=language, patience_s=90
    )
    await driver.press_when_asked(call, SUPPORT_KEY)
    return call, await recorded(pg_pool, call, timeout=45)


async def recorded(pool: asyncpg.Pool, call: PlacedCall, *, timeout: float) -> asyncpg.Record:
    """The call's interaction row, once it is written."""
    return await eventually(lambda: interaction(pool, call.uniqueid), timeout=timeout, interval=0.2)


@pytest.mark.parametrize("language", ["en", "it"])
async def test_given_a_known_caller_when_an_agent_answers_then_pop_came_first_and_all_is_recorded(  # noqa: PLR0917
    centralino: RealWorld,
    driver: CallDriver,
    pg_pool: asyncpg.Pool,
    asterisk: AsteriskProcess,
    language: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_from = asterisk.log_size()

    with caplog.at_level(logging.WARNING):
        call, row = await answered_call(centralino, driver, pg_pool, language=language, talk_s=3)

    # Dial's -1 when the agent hangs up first is its normal end, not a failure worth a warning.
    assert not [r.getMessage() for r in caplog.records if "failed (result=-1)" in r.getMessage()]

    assert row["outcome"] == "answered", dict(row)
    agent = row["agent_id"]
    assert agent in centralino.desktops
    assert row["queue"] == "support"
    assert row["customer_id"] is not None
    # From the agent's answer to their hangup (the phone waits ~0.5 s after Answer, then 3 s);
    # not Dial's ANSWEREDTIME, which counts from the IVR's answer (test_asterisk_facts.py).
    assert row["talk_s"] == pytest.approx(3.5, abs=1)
    # The pop reached the agent's desktop and was acknowledged before the phone existed.
    pops = centralino.desktops[agent].pops
    assert pops and pops[-1]["linkedid"] == call.uniqueid
    acked_at: datetime = row["pop_acked_at"]
    assert acked_at is not None
    (leg,) = agent_legs(driver, agent)
    (created,) = driver.events("Newchannel", Uniqueid=leg)
    assert acked_at.timestamp() < created.timestamp
    # app_queue is not involved: the ACD's own queue log tells the story.
    events = await queue_events(pg_pool, call.uniqueid)
    assert events[0] == "enter" and "connect" in events and events[-1] == "complete", events
    # The call ran in the caller's language: Asterisk played the prompts in it.
    played = [
        line
        for line in asterisk.log_lines_since(log_from)
        if "Playing 'centralino/welcome" in line and call.call_id in line
    ]
    assert played and all(f"(language '{language}')" in line for line in played), played


async def test_given_five_callers_at_once_then_each_is_answered_exactly_once(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    for agent in centralino.desktops:
        await driver.phone(agent, ring_s=1, talk_s=2)
    numbers = [f"+39333100000{n}" for n in range(5)]  # strangers: no preferred agent

    calls = await asyncio.gather(
        *(driver.place(did=DID, caller_id=n, patience_s=90) for n in numbers)
    )
    await asyncio.gather(*(driver.press_when_asked(c, SUPPORT_KEY) for c in calls))

    rows = await asyncio.gather(*(recorded(pg_pool, c, timeout=60) for c in calls))
    assert [r["outcome"] for r in rows] == ["answered"] * 5, [dict(r) for r in rows]
    for call in calls:
        answers = driver.events("DialEnd", Uniqueid=call.uniqueid, DialStatus="ANSWER")
        # One DialEnd ANSWER is the Originate's own (the caller picking up), one the agent's.
        agent_answers = [
            a for a in answers if (a.event.get("DestChannel") or "").startswith("Local/agent")
        ]
        assert len(agent_answers) == 1, [a.event.get("DestChannel") for a in answers]
    total = await pg_pool.fetchval("SELECT count(*) FROM interactions")
    assert total == 5
    legs = [leg for agent in centralino.desktops for leg in agent_legs(driver, agent)]
    assert len(legs) == 5  # no agent was rung for a call someone else already had


async def test_given_the_ami_link_is_cut_then_the_app_says_so_and_recovers_for_the_next_call(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    ami = centralino.runtime.ami
    assert ami is not None and ami.connected
    reconnects = ami.reconnects_total

    await centralino.proxy.cut()

    def down() -> None:
        assert not ami.connected

    await eventually(down, timeout=10)
    status, checks = await readiness(centralino)
    assert status == 503 and checks["ami"]["ok"] is False, checks

    await centralino.proxy.restore()

    def up_again() -> None:
        assert ami.connected and ami.reconnects_total == reconnects + 1

    await eventually(up_again, timeout=30, interval=0.1)
    status, checks = await readiness(centralino)
    assert status == 200 and checks["ami"]["ok"] is True, checks
    call, row = await answered_call(centralino, driver, pg_pool, language="en", talk_s=2)
    assert row["outcome"] == "answered", dict(row)
    # The answer was seen on the new link: the ACD logged the connection as it happened.
    assert "connect" in await queue_events(pg_pool, call.uniqueid)


async def readiness(world: RealWorld) -> tuple[int, dict[str, dict[str, object]]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{world.base_url}/readyz") as response,
    ):
        body = await response.json()
    return response.status, body["checks"]


async def test_given_a_call_in_the_audiosocket_context_then_the_callers_audio_reaches_the_app(
    centralino: RealWorld, driver: CallDriver
) -> None:
    server = centralino.runtime.audiosocket
    calls_before, frames_before = server.calls_total, server.audio_frames_received

    call = await driver.place(
        did=DID,
        caller_id="+393331000099",
        says="demo-congrats",  # the caller talks: 30 s of a recorded voice
        context="test-audiosocket",
        variables={"TEST_AUDIOSOCKET_UUID": str(uuid.uuid4())},
    )

    def streaming() -> None:
        assert server.calls_total == calls_before + 1
        # 20 ms a frame: two seconds of the caller's audio
        assert server.audio_frames_received - frames_before >= 100

    await eventually(streaming, timeout=15, interval=0.05)
    await driver.hang_up(call)
    await eventually(lambda: driver.hung_up(call.uniqueid), timeout=10)


async def test_given_centralino_is_down_then_the_fallback_script_queues_a_vip_in_the_vip_queue(
    asterisk: AsteriskProcess, driver: CallDriver
) -> None:
    """Nothing listens on the FastAGI port: AGI() fails, agi_scripts/fallback_queue.py runs as a
    process AGI with the rules in centralino-fallback.conf (+390212345678 is vip) and the caller
    waits in the static queue app_queue holds for them."""
    call = await driver.place(did=DID, caller_id="+390212345678", caller_name="Mario Rossi")

    joined = await driver.wait_for(
        "QueueCallerJoin", lambda e: e.get("Uniqueid") == call.uniqueid, timeout=20
    )

    assert joined.event.get("Queue") == "fallback-vip"
    (status,) = driver.events("VarSet", Uniqueid=call.uniqueid, Variable="AGISTATUS")[:1]
    assert status.event.get("Value") == "FAILURE"
    chosen = driver.events("VarSet", Uniqueid=call.uniqueid, Variable="FALLBACK_PRIORITY")
    assert [c.event.get("Value") for c in chosen] == ["vip"]


async def test_given_the_offered_agent_does_not_answer_then_another_agent_gets_the_caller(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    """RONA against the real Dial: the phone rings out (DIALSTATUS NOANSWER), that agent goes
    not-ready, and the caller, back at the front of the queue, is answered by the next one."""
    router = centralino.runtime.router
    for agent in centralino.desktops:
        if agent != "agent101":
            await router.agent_not_ready(agent, "meeting")
    await driver.db_put("phone/agent101", "answer", "no")
    await driver.phone("agent102", ring_s=1, talk_s=2)
    call = await driver.place(did=DID, caller_id="+393331000055", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    await driver.wait_for(
        "DialBegin",
        lambda e: (
            e.get("Uniqueid") == call.uniqueid
            and (e.get("DestChannel") or "").startswith("Local/agent101@")
        ),
        timeout=30,
    )

    await router.agent_ready("agent102")  # comes back while agent101's phone rings out

    row = await recorded(pg_pool, call, timeout=60)
    assert row["outcome"] == "answered" and row["agent_id"] == "agent102", dict(row)
    statuses = [
        s.event.get("Value")
        for s in driver.events("VarSet", Uniqueid=call.uniqueid, Variable="DIALSTATUS")
    ]
    assert "NOANSWER" in statuses and statuses[-1] == "ANSWER", statuses
    events = await queue_events(pg_pool, call.uniqueid)
    assert "rona" in events and events[-1] == "complete", events
    states = {s.agent_id: s.state.value for s in await centralino.runtime.live.agents()}
    assert states["agent101"] == "not_ready"


async def test_given_the_agent_keys_a_blind_transfer_then_the_caller_is_answered_in_that_queue(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    """The agent's phone sends `##7002` (features.conf blindxfer, Dial's `t`): Asterisk moves
    the caller to 7002@centralino-transfer, the alias of the support queue; the same channel
    comes back over FastAGI and the next agent answers. Two legs, two interaction rows."""
    router = centralino.runtime.router
    for agent in centralino.desktops:
        if agent != "agent101":
            await router.agent_not_ready(agent, "meeting")
    await driver.phone("agent101", ring_s=1, talk_s=60)
    await driver.phone("agent102", ring_s=1, talk_s=2)
    call = await driver.place(did=DID, caller_id="+393331000044", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    answered = await driver.wait_for(
        "DialEnd",
        lambda e: (
            e.get("Uniqueid") == call.uniqueid
            and e.get("DialStatus") == "ANSWER"
            and (e.get("DestChannel") or "").startswith("Local/agent101@")
        ),
        timeout=40,
    )
    agent_phone = (answered.event.get("DestChannel") or "")[: -len(";1")] + ";2"
    await router.agent_ready("agent102")

    for digit in "##7002":  # the agent's keypad: what the phone sends reaches the bridge
        response = await driver.ami.action("PlayDTMF", Channel=agent_phone, Digit=digit)
        response.raise_for_error()

    transfer = await driver.wait_for(
        "BlindTransfer", lambda e: e.get("TransfereeUniqueid") == call.uniqueid, timeout=15
    )
    assert transfer.event.get("Result") == "Success"
    assert (transfer.event.get("Extension"), transfer.event.get("Context")) == (
        "7002",
        "centralino-transfer",
    )

    async def both_legs() -> list[asyncpg.Record]:
        rows = await pg_pool.fetch(
            "SELECT outcome, agent_id, queue FROM interactions WHERE linkedid = $1 ORDER BY id",
            call.uniqueid,
        )
        assert len(rows) == 2, [dict(r) for r in rows]
        return rows

    legs = await eventually(both_legs, timeout=45, interval=0.2)
    assert [tuple(r) for r in legs] == [
        ("transferred", "agent101", "support"),
        ("answered", "agent102", "support"),
    ]
    events = await queue_events(pg_pool, call.uniqueid)
    assert "transfer" in events and events[-1] == "complete", events


async def not_ready_all(world: RealWorld) -> None:
    for agent in world.desktops:
        await world.runtime.router.agent_not_ready(agent, "meeting")


async def on_hold(driver: CallDriver, call: PlacedCall) -> None:
    """The caller hears the music on hold Centralino started."""
    await driver.wait_for(
        "MusicOnHoldStart", lambda e: e.get("Uniqueid") == call.uniqueid, timeout=40
    )


async def test_given_the_caller_hangs_up_while_holding_then_the_call_is_an_abandon(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    await not_ready_all(centralino)
    call = await driver.place(did=DID, caller_id="+393331000033", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    await on_hold(driver, call)

    await driver.hang_up(call)

    row = await recorded(pg_pool, call, timeout=15)
    assert row["outcome"] == "abandoned" and row["agent_id"] is None, dict(row)
    assert await queue_events(pg_pool, call.uniqueid) == ["enter", "abandon"]
    assert centralino.runtime.agi.calls_active == 0


async def test_given_centralino_stops_while_a_caller_holds_then_a_static_queue_takes_them(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    """A graceful stop hands the queued caller back (CENTRALINO_STATUS=SHUTDOWN): the dialplan
    runs fallback_queue.py and app_queue holds the caller; the interaction says `returned`."""
    await not_ready_all(centralino)
    call = await driver.place(did=DID, caller_id="+393331000022", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    await on_hold(driver, call)

    await centralino.stop()

    joined = await driver.wait_for(
        "QueueCallerJoin", lambda e: e.get("Uniqueid") == call.uniqueid, timeout=20
    )
    assert joined.event.get("Queue") == "fallback-standard"
    statuses = driver.events("VarSet", Uniqueid=call.uniqueid, Variable="CENTRALINO_STATUS")
    assert statuses[-1].event.get("Value") == "SHUTDOWN"
    row = await recorded(pg_pool, call, timeout=10)
    assert row["outcome"] == "returned", dict(row)
