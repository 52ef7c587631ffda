from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from centralino.adapters.redis_call_context import RedisCallContextStore
from context.clock import SystemClock
from context.fanout import PreAnswerFanout
from context.models import ConnectorQuery, Fact
from context.ports import ContextUpdate
from context.screen_pop import pop_from_fields
from context.service import ContextService
from tests.context.fakes import MemoryCustomers, MemoryTickets, MemoryTimeline, ScriptedConnector
from tests.helpers import eventually


async def test_fields_are_written_with_ttl_and_read_back(redis_client: aioredis.Redis) -> None:
    store = RedisCallContextStore(redis=redis_client, ttl_s=120)
    await store.put("L1", {"a": '{"x":1}', "b": "[]"})
    await store.put("L1", {"b": "[1]"})
    assert await store.read("L1") == {"a": '{"x":1}', "b": "[1]"}
    ttl = await redis_client.ttl(store.key("L1"))
    assert 0 < ttl <= 120
    await store.delete("L1")
    assert await store.read("L1") == {}


async def test_subscribers_see_each_update_live(redis_client: aioredis.Redis) -> None:
    store = RedisCallContextStore(redis=redis_client, ttl_s=60)
    got: list[ContextUpdate] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        updates = store.updates("L2")
        subscribed.set()
        async for update in updates:
            got.append(update)

    task = asyncio.create_task(listen())
    await subscribed.wait()

    async def publish_until_seen() -> None:
        # The subscription is only live once SUBSCRIBE went through: keep writing until seen.
        await store.put("L2", {"source:crm": '{"status":"ok"}'})
        assert ContextUpdate("L2", "source:crm", '{"status":"ok"}') in got

    await eventually(publish_until_seen, timeout=3.0, interval=0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_late_backend_result_reaches_redis_after_the_deadline(
    redis_client: aioredis.Redis,
) -> None:
    clock = SystemClock()

    async def slow(query: ConnectorQuery) -> list[Fact]:
        await asyncio.sleep(0.15)
        return [Fact("crm", "note", {"text": "<b>hi</b>"}, clock.now())]

    store = RedisCallContextStore(redis=redis_client, ttl_s=60)
    fanout = PreAnswerFanout(
        service=ContextService(
            customers=MemoryCustomers(),
            timeline=MemoryTimeline(),
            tickets=MemoryTickets(),
            clock=clock,
        ),
        connectors=[ScriptedConnector("crm", slow)],
        call_context=store,
        clock=clock,
        deadline_s=0.05,
    )
    handle = fanout.start(linkedid="L3", caller_id="+390212345678")
    snap = await handle.wait()
    assert "crm" in snap.missing

    async def landed() -> bool:
        pop = pop_from_fields("L3", await store.read("L3"), clock.now())
        assert pop["complete"]
        assert [f["data"]["text"] for f in pop["facts"]] == ["<b>hi</b>"]
        return True

    await eventually(landed, timeout=3.0)
    await handle.aclose()
