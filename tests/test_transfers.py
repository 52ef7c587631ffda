"""Transfers from the agent's phone: AMI `BlindTransfer` / `AttendedTransfer` end the agent's part
of a call, write TRANSFER to the queue log and, for a target that is one of our queues, put the
caller back in a queue once the dialplan hands the channel back to us.

First `TransferWatch` on event objects over a real router (Redis live store, PostgreSQL queue
log), then whole calls through the simulated Asterisk, as in tests/test_call_path.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.models import (
    AgentDefinition,
    AgentState,
    Offer,
    QueuePolicy,
    SkillRequirement,
    WorkItem,
)
from acd.service import Router
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.ami_watch import (
    MalformedTransfer,
    TransferWatch,
    attended_transfer,
    blind_transfer,
)
from centralino.asterisk.ami import AmiEvent
from centralino.demo.world import DemoWorld
from centralino.simulator.ami_server import SimBridge, SimChannel
from contact.ports import CallTransfer
from ivr.inbound import SOUND_MENU, SOUND_TRANSFERRED, SOUND_WELCOME
from tests import test_call_path
from tests.acd.support import ManualClock
from tests.helpers import eventually
from tests.test_call_path import known_caller

CALL = "1700000000.1"  # the caller's channel: its uniqueid is the call's linkedid and item id
QUEUES = {
    "support": QueuePolicy("support", skill="support"),
    "billing": QueuePolicy("billing", skill="billing"),
}
AGENTS = {
    "amy": AgentDefinition("amy", {"support": 4}, endpoint="PJSIP/amy", wrap_up_s=5.0),
    "bob": AgentDefinition("bob", {"billing": 4}, endpoint="PJSIP/bob", wrap_up_s=5.0),
}
TARGETS = {"billing@centralino-transfer": "billing", "8001@centralino-agents": "billing"}


# --- TransferWatch on event objects ---------------------------------------------------------


@dataclass
class Desk:
    router: Router
    store: RedisLiveStore
    pool: asyncpg.Pool
    clock: ManualClock
    watch: TransferWatch
    seen: list[CallTransfer]

    async def connect_call(self) -> None:
        """amy answers CALL in the support queue; its conversation is watched for transfers."""
        for agent in AGENTS:
            await self.router.agent_login(agent)
            await self.router.agent_ready(agent)
        item = WorkItem(CALL, "support", self.clock.now(), skills=(SkillRequirement("support", 2),))
        await self.router.enqueue(item)
        await self.router.route_now()
        offer = await self.router.wait_for_offer(CALL, timeout=5.0)
        assert isinstance(offer, Offer) and offer.reservation.agent_id == "amy"
        await self.router.accept(offer.reservation.reservation_id)
        await self.router.connected(offer.reservation.reservation_id)

        async def on_transfer(transfer: CallTransfer) -> None:
            self.seen.append(transfer)
            await self.router.transferred(CALL, target=transfer.target, to_queue=transfer.queue)

        self.watch.watch(CALL, on_transfer)

    async def events(self) -> list[tuple[str, str, str, str]]:
        rows = await self.pool.fetch(
            "SELECT event, queue, agent_id, data FROM queue_log WHERE item_id = $1 ORDER BY id",
            CALL,
        )
        return [(r["event"], r["queue"], r["agent_id"], r["data"]) for r in rows]

    async def state(self, agent: str) -> AgentState:
        return {s.agent_id: s.state for s in await self.store.agents()}[agent]


@pytest.fixture
async def desk(redis_client: aioredis.Redis, pg_pool: asyncpg.Pool) -> Desk:
    clock = ManualClock()
    store = RedisLiveStore(client=redis_client, prefix="xfer:")
    router = Router(
        store=store,
        queue_log=PgQueueLog(pool=pg_pool),
        clock=clock,
        queues=QUEUES,
        agents=AGENTS,
        owner="p1",
    )
    await router.publish()
    watch = TransferWatch(
        queues=TARGETS, endpoints={a: d.endpoint for a, d in AGENTS.items()}, settle_s=0.5
    )
    return Desk(router, store, pg_pool, clock, watch, [])


def caller_channel(uniqueid: str = CALL) -> SimChannel:
    return SimChannel(
        name=f"PJSIP/trunk-{uniqueid.replace('.', '')}",
        uniqueid=uniqueid,
        linkedid=uniqueid,
        state=6,
        caller_id_num="+390212345678",
        caller_id_name="Mario Rossi",
        context="centralino-inbound",
        exten="+390200000000",
        priority=4,
    )


def agent_channel(name: str = "PJSIP/amy-00000002", linkedid: str = CALL) -> SimChannel:
    return SimChannel(
        name=name, uniqueid="1700000000.2", linkedid=linkedid, state=6, context="centralino-agents"
    )


def blind(
    exten: str,
    context: str,
    *,
    result: str = "Success",
    transferee: SimChannel | None = None,
    transferer: SimChannel | None = None,
    without: tuple[str, ...] = (),
) -> AmiEvent:
    """A BlindTransfer as Asterisk writes it (see tests/simulator/test_ami_transfer_events.py)."""
    headers = [
        ("Event", "BlindTransfer"),
        ("Privilege", "call,all"),
        ("Result", result),
        *(transferer or agent_channel()).headers("Transferer"),
        *(transferee or caller_channel()).headers("Transferee"),
        *SimBridge(uniqueid="9b2f").headers(),
        ("IsExternal", "Yes"),
        ("Context", context),
        ("Extension", exten),
    ]
    return AmiEvent(headers=tuple((k, v) for k, v in headers if k not in without))


def attended(target: SimChannel, *, dest_type: str = "Bridge") -> AmiEvent:
    consult = agent_channel("PJSIP/amy-00000003", linkedid="1700000000.3")
    headers = [
        ("Event", "AttendedTransfer"),
        ("Privilege", "call,all"),
        ("Result", "Success"),
        *agent_channel().headers("OrigTransferer"),
        *SimBridge(uniqueid="orig").headers("Orig"),
        *consult.headers("SecondTransferer"),
        *SimBridge(uniqueid="second").headers("Second"),
        *caller_channel().headers("Transferee"),
        *target.headers("TransferTarget"),
        ("IsExternal", "Yes"),
        ("DestType", dest_type),
        ("DestBridgeUniqueid", "orig"),
    ]
    return AmiEvent(headers=tuple(headers))


async def test_given_blind_transfer_to_a_queue_extension_then_the_call_is_requeued_there(
    desk: Desk,
) -> None:
    await desk.connect_call()
    desk.clock.advance(42.0)

    desk.watch.on_blind_transfer(blind("8001", "centralino-agents"))

    assert await desk.watch.settle(CALL)  # the transfer was handled
    assert [(t.kind, t.target, t.queue) for t in desk.seen] == [
        ("blind", "8001@centralino-agents", "billing")
    ]
    assert await desk.state("amy") is AgentState.WRAP_UP
    talk = await desk.pool.fetchval(
        "SELECT talk_s FROM queue_log WHERE item_id = $1 AND event = 'transfer'", CALL
    )
    assert talk == 42.0
    # The dialplan hands the channel back to us: the session's enqueue rejoins the queue.
    ticket = await desk.router.rejoin(CALL)
    assert ticket is not None and (ticket.queue, ticket.position) == ("billing", 1)
    await desk.router.route_now()
    offer = await desk.router.wait_for_offer(CALL, timeout=5.0)
    assert isinstance(offer, Offer) and offer.reservation.agent_id == "bob"
    events = await desk.events()
    assert [e[:3] for e in events] == [
        ("enter", "support", ""),
        ("offer", "support", "amy"),
        ("connect", "support", "amy"),
        ("transfer", "support", "amy"),
        ("enter", "billing", ""),
        ("offer", "billing", "bob"),
    ]
    assert events[3][3] == "8001@centralino-agents"
    entered = json.loads(events[4][3])  # the target queue's skill; the first queue's no longer
    assert (entered["skills"], entered["arrived_at"]) == ([["billing", 1, True]], 1042.0)
    assert desk.watch.transfers_total == 1


async def test_given_blind_transfer_outside_our_queues_then_the_agent_is_freed(
    desk: Desk,
) -> None:
    await desk.connect_call()

    desk.watch.on_blind_transfer(blind("200", "from-internal"))

    assert await desk.watch.settle(CALL)
    assert await desk.state("amy") is AgentState.WRAP_UP
    assert (await desk.events())[-1] == ("transfer", "support", "amy", "200@from-internal")
    assert await desk.router.rejoin(CALL) is None  # the caller left us
    agent_rows = await desk.pool.fetch(
        "SELECT data FROM queue_log WHERE event = 'agent' AND agent_id = 'amy' ORDER BY id"
    )
    assert agent_rows[-1]["data"] == "wrap_up"


async def test_given_attended_transfer_to_a_colleague_then_target_is_the_agent_and_no_requeue(
    desk: Desk,
) -> None:
    await desk.connect_call()
    bob_phone = SimChannel(name="PJSIP/bob-00000004", uniqueid="1700000000.4", linkedid="x")

    desk.watch.on_attended_transfer(attended(bob_phone))

    assert await desk.watch.settle(CALL)
    assert (await desk.events())[-1] == ("transfer", "support", "amy", "agent:bob")
    assert await desk.router.rejoin(CALL) is None
    assert desk.seen[0].transferer == "PJSIP/amy-00000002"


@pytest.mark.parametrize("result", ["Fail", "Invalid", "Not Permitted"])
async def test_given_failed_transfer_then_nothing_changes(
    desk: Desk, result: str, caplog: pytest.LogCaptureFixture
) -> None:
    await desk.connect_call()

    with caplog.at_level(logging.INFO, logger="centralino.ami_watch"):
        desk.watch.on_blind_transfer(blind("billing", "centralino-transfer", result=result))
        desk.watch.on_attended_transfer(attended(caller_channel("x"), dest_type="Fail"))

    assert not await desk.watch.settle(CALL)  # AMI said nothing about how it ended
    assert desk.seen == [] and desk.watch.ignored_total == 2
    assert "did not succeed" in caplog.text
    assert await desk.state("amy") is AgentState.BUSY
    assert [e for e, *_ in await desk.events()] == ["enter", "offer", "connect"]


async def test_given_transfer_of_a_call_that_is_not_ours_then_it_is_ignored(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    await desk.connect_call()
    stranger = caller_channel("1700000999.7")

    with caplog.at_level(logging.INFO, logger="centralino.ami_watch"):
        desk.watch.on_blind_transfer(
            blind(
                "billing",
                "centralino-transfer",
                transferee=stranger,
                transferer=agent_channel("PJSIP/amy-00000009", linkedid="1700000999.7"),
            )
        )

    assert "not one of our conversations" in caplog.text
    assert desk.seen == [] and desk.watch.transfers_total == 0
    assert await desk.state("amy") is AgentState.BUSY


@pytest.mark.parametrize(
    "without",
    [
        ("Result",),
        ("Extension",),
        ("Context",),
        ("TransfererChannel",),
        ("TransfereeUniqueid", "TransfereeLinkedid", "TransfererLinkedid"),
    ],
)
async def test_given_malformed_transfer_event_then_it_is_logged_and_ignored(
    desk: Desk, without: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    await desk.connect_call()

    with caplog.at_level(logging.WARNING, logger="centralino.ami_watch"):
        desk.watch.on_blind_transfer(blind("billing", "centralino-transfer", without=without))

    assert "malformed" in caplog.text and without[0] in caplog.text
    assert desk.watch.ignored_total == 1 and desk.seen == []
    assert await desk.state("amy") is AgentState.BUSY


async def test_given_transferee_missing_then_the_call_is_found_by_its_linkedid(desk: Desk) -> None:
    await desk.connect_call()
    event = blind("200", "from-internal")
    # A bridge of more than two channels names no transferee; the agent's leg still carries
    # the call's linkedid.
    headers = tuple((k, v) for k, v in event.headers if not k.startswith("Transferee"))

    desk.watch.on_blind_transfer(AmiEvent(headers=headers))

    assert await desk.watch.settle(CALL)
    assert desk.seen[0].uniqueid == "" and desk.seen[0].linkedid == CALL


async def test_given_hangup_request_then_the_conversation_settles_without_a_transfer(
    desk: Desk,
) -> None:
    await desk.connect_call()

    desk.watch.on_hangup_request(
        AmiEvent(
            headers=(
                ("Event", "HangupRequest"),
                ("Privilege", "call,all"),
                *caller_channel().headers(),
                ("Cause", "16"),
            )
        )
    )

    assert await desk.watch.settle(CALL)
    assert desk.seen == [] and await desk.state("amy") is AgentState.BUSY


async def test_a_callback_that_fails_is_logged_and_the_watch_goes_on(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(transfer: CallTransfer) -> None:
        raise RuntimeError("database down")

    desk.watch.watch("1700000000.9", broken)
    with caplog.at_level(logging.ERROR, logger="centralino.ami_watch"):
        desk.watch.on_blind_transfer(blind("200", "x", transferee=caller_channel("1700000000.9")))
        assert await desk.watch.settle("1700000000.9")  # settled all the same
    assert "database down" in caplog.text


@settings(max_examples=200, deadline=None)
@given(
    keep=st.lists(st.booleans(), min_size=64, max_size=64),
    result=st.sampled_from(["Success", "success", "Fail", "", "Not Permitted"]),
    dest_type=st.sampled_from(["Bridge", "App", "Link", "Threeway", "Fail", ""]),
)
def test_any_subset_of_a_transfer_events_headers_parses_or_is_malformed(
    keep: list[bool], result: str, dest_type: str
) -> None:
    """Whatever Asterisk (or a proxy) drops, the parsers return a transfer, None, or say the
    event is malformed; nothing else escapes into the AMI reader."""
    bob = SimChannel(name="PJSIP/bob-00000004", uniqueid="1700000000.4", linkedid="x")
    for event in (blind("billing", "centralino-transfer", result=result), attended(bob)):
        headers = [
            (k, result if k == "Result" else dest_type if k == "DestType" else v)
            for (k, v), kept in zip(event.headers, keep + [True] * 200, strict=False)
            if kept or k == "Event"
        ]
        partial = AmiEvent(headers=tuple(headers))
        for parse in (_parse_blind, _parse_attended):
            try:
                parsed = parse(partial)
            except MalformedTransfer:
                continue
            assert parsed is None or parsed.uniqueid or parsed.linkedid


def _parse_blind(event: AmiEvent) -> CallTransfer | None:
    return blind_transfer(event, queues=TARGETS)


def _parse_attended(event: AmiEvent) -> CallTransfer | None:
    return attended_transfer(event, agents_by_endpoint={"PJSIP/bob": "bob"})


# --- whole calls through the simulated Asterisk ---------------------------------------------


# The simulated call centre of the call-path tests (a pytest fixture, shared by name).
world = test_call_path.world


async def _queue_log(pool: asyncpg.Pool, item_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT id, event, queue, agent_id, data, talk_s FROM queue_log"
            " WHERE item_id = $1 ORDER BY id",
            item_id,
        )
    )


def _sessions(commands: list[str]) -> list[list[str]]:
    """A call's AGI commands split into its FastAGI sessions: each flow begins with ANSWER."""
    starts = [i for i, c in enumerate(commands) if c == "ANSWER"]
    assert starts and starts[0] == 0, commands
    return [commands[a:b] for a, b in zip(starts, [*starts[1:], len(commands)], strict=True)]


def _prompts(session: list[str]) -> list[str]:
    """The sounds a session played (STREAM FILE) or prompted with (GET DATA)."""
    return [c.split()[2] for c in session if c.startswith(("STREAM FILE", "GET DATA"))]


def _outcomes_are(world: DemoWorld, expected: dict[str, int]) -> None:
    assert {k: v for k, v in world.runtime.outcomes.items() if v} == expected


async def _metrics(world: DemoWorld) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{world.base_url}/metrics") as response,
    ):
        return await response.text()


async def _interactions(pool: asyncpg.Pool, linkedid: str, count: int) -> list[asyncpg.Record]:
    rows = list(
        await pool.fetch(
            "SELECT outcome, agent_id, queue, talk_s FROM interactions"
            " WHERE linkedid = $1 ORDER BY id",
            linkedid,
        )
    )
    assert len(rows) == count, rows
    return rows


@pytest.mark.parametrize("ami_lag_s", [0.0, 0.3], ids=["ami_first", "fastagi_first"])
async def test_given_agent_blind_transfers_to_a_queue_then_that_queues_agent_answers(
    world: DemoWorld, pg_pool: asyncpg.Pool, ami_lag_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    world.simulator.transfer_event_lag_s = ami_lag_s
    caller = replace(known_caller(world, key="3"), transfer_to="billing@centralino-transfer")

    with caplog.at_level(logging.INFO, logger="centralino.inbound_script"):
        result = await asyncio.wait_for(world.simulator.call(caller), 60)

    first, second = result.transferred_by, result.agent
    assert first is not None and second is not None
    assert result.sessions == 2 and result.answered  # the dialplan brought the caller back
    # The second session put the caller straight back to waiting: one short prompt, no welcome,
    # no menu (the simulated caller would press nothing: a menu would time out), no self-service.
    first_leg, second_leg = _sessions(result.commands)
    assert SOUND_WELCOME in _prompts(first_leg) and SOUND_MENU in _prompts(first_leg)
    assert second_leg[:2] == ["ANSWER", f'STREAM FILE {SOUND_TRANSFERRED} ""']
    assert SOUND_WELCOME not in _prompts(second_leg) and SOUND_MENU not in _prompts(second_leg)
    assert not any(c.startswith("GET DATA") for c in second_leg)
    dials = [c for c in second_leg if c.startswith("EXEC") and "Dial" in c]
    assert len(dials) == 1 and f"PJSIP/{second}" in dials[0]
    assert world.runtime.agents[second].skills.get("billing", 0) >= 1
    # ... and the new agent had the complete screen-pop of this call before their phone rang.
    pops = world.desktops[second].pops
    assert pops and pops[-1]["linkedid"] == result.uniqueid
    # Each session ended the way it did: metrics and the log say so.
    await eventually(lambda: _outcomes_are(world, {"transferred": 1, "answered": 1}), timeout=5)
    metrics = await _metrics(world)
    assert "centralino_calls_transferred_total 1.0" in metrics
    assert "centralino_calls_answered_total 1.0" in metrics
    assert "centralino_calls_abandoned_total 0.0" in metrics
    # The flow's own line (the FastAGI server logs its session's end too when INFO is on).
    ended = [
        r.getMessage()
        for r in caplog.records
        if r.name == "centralino.inbound_script" and r.getMessage().startswith("call ended: ")
    ]
    assert ended == ["call ended: transferred", "call ended: answered"]
    rows = await _queue_log(pg_pool, result.uniqueid)
    assert [(r["event"], r["queue"]) for r in rows] == [
        ("enter", "support"),
        ("offer", "support"),
        ("connect", "support"),
        ("transfer", "support"),
        ("enter", "billing"),
        ("offer", "billing"),
        ("connect", "billing"),
        ("complete", "billing"),
    ]
    transfer = rows[3]
    assert (transfer["agent_id"], transfer["data"]) == (first, "billing@centralino-transfer")
    assert transfer["talk_s"] is not None and transfer["talk_s"] >= 0
    assert rows[6]["agent_id"] == second
    # The transferring agent's part ended at the transfer: wrap-up, not a second finish.
    after = await pg_pool.fetch(
        "SELECT data FROM queue_log WHERE event = 'agent' AND agent_id = $1 AND id > $2"
        " ORDER BY id",
        first,
        transfer["id"],
    )
    assert after and after[0]["data"] == "wrap_up"
    legs = await eventually(lambda: _interactions(pg_pool, result.uniqueid, 2), timeout=5)
    assert [(r["outcome"], r["agent_id"]) for r in legs] == [
        ("transferred", first),
        ("answered", second),
    ]
    snap = await world.runtime.router.snapshot("billing")
    assert snap.answered == 1 and snap.waiting == 0
    # The first queue answered it once, never lost it, and its agent's talk is handled work.
    support = await world.runtime.router.snapshot("support")
    assert (support.offered, support.answered, support.abandoned) == (1, 1, 0)
    assert support.aht_s == pytest.approx(transfer["talk_s"])


async def test_given_transfer_outside_our_queues_then_only_the_agents_part_ends(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    caller = replace(known_caller(world, key="3"), transfer_to="200@from-internal")

    result = await asyncio.wait_for(world.simulator.call(caller), 60)

    assert result.sessions == 1 and result.transferred_to == "200@from-internal"
    agent = result.transferred_by
    assert agent is not None
    rows = await _queue_log(pg_pool, result.uniqueid)
    assert [r["event"] for r in rows] == ["enter", "offer", "connect", "transfer"]
    assert (rows[-1]["agent_id"], rows[-1]["data"]) == (agent, "200@from-internal")
    legs = await eventually(lambda: _interactions(pg_pool, result.uniqueid, 1), timeout=5)
    assert (legs[0]["outcome"], legs[0]["agent_id"]) == ("transferred", agent)
    await eventually(lambda: _outcomes_are(world, {"transferred": 1}), timeout=5)

    async def ready_again() -> None:  # wrap-up (3 s) ends; nothing keeps the agent busy
        states = {s.agent_id: s.state for s in await world.runtime.live.agents()}
        assert states[agent] is AgentState.READY, states

    await eventually(ready_again, timeout=15)


async def test_given_ami_never_reports_the_transfer_then_the_call_completes_once(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    # The report comes long after the flow stopped waiting for it (TRANSFER_SETTLE_S = 1 s):
    # the conversation is over as if the caller had hung up, and the session the dialplan
    # starts at the target queues the caller like any new call.
    world.simulator.transfer_event_lag_s = 4.0
    caller = replace(known_caller(world, key="3"), transfer_to="billing@centralino-transfer")

    result = await asyncio.wait_for(world.simulator.call(caller), 60)

    assert result.sessions == 2 and result.answered
    rows = await _queue_log(pg_pool, result.uniqueid)
    events = [(r["event"], r["queue"]) for r in rows]
    assert events[:4] == [
        ("enter", "support"),
        ("offer", "support"),
        ("connect", "support"),
        ("complete", "support"),
    ]
    assert events[4:] == [
        ("enter", "billing"),
        ("offer", "billing"),
        ("connect", "billing"),
        ("complete", "billing"),
    ]
    legs = await eventually(lambda: _interactions(pg_pool, result.uniqueid, 2), timeout=5)
    assert [r["outcome"] for r in legs] == ["answered", "answered"]
    # The first leg ended as a conversation the caller left: a completion, not an abandon.
    await eventually(lambda: _outcomes_are(world, {"answered": 2}), timeout=5)
    assert legs[0]["agent_id"] is not None
