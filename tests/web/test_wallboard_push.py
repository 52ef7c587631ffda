"""The wallboard pushes on change: a queue-log write in any process reaches every process's
screens at once (Redis pub/sub), not at the next tick; bursts are coalesced."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import redis.asyncio as aioredis

from acd.models import QueueEvent, QueueLogRow
from centralino.adapters.wallboard_changes import NotifyingQueueLog, WallboardChanges
from centralino.web.pages import WALLBOARD_HUB
from tests.helpers import eventually
from tests.web.test_pages import build_site, serve


def _assert(condition: bool) -> None:
    assert condition


async def test_a_poke_pushes_long_before_the_next_tick(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client, interval_s=30.0)  # the tick alone would take 30 s
    async with serve(site) as client, client.ws_connect("/ws/wallboard") as ws:
        first = await ws.receive_json(timeout=2)
        assert first["data"]["queues"][0]["waiting"] == 3
        await ws.receive_json(timeout=2)  # the ticker's own first snapshot
        site.wallboard.view["queues"][0]["waiting"] = 4  # type: ignore[index]
        started = time.monotonic()
        site.app[WALLBOARD_HUB].poke()
        pushed = await ws.receive_json(timeout=2)
        assert pushed["data"]["queues"][0]["waiting"] == 4
        assert time.monotonic() - started < 0.5
        assert site.app[WALLBOARD_HUB].pushes == 1


async def test_a_burst_of_pokes_is_one_or_two_snapshots(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client, interval_s=30.0)
    async with serve(site) as client, client.ws_connect("/ws/wallboard") as ws:
        await ws.receive_json(timeout=2)
        await ws.receive_json(timeout=2)
        before = site.wallboard.calls
        hub = site.app[WALLBOARD_HUB]
        for _ in range(50):
            hub.poke()
            await asyncio.sleep(0)
        await ws.receive_json(timeout=2)
        await asyncio.sleep(hub.min_gap_s * 3)
        assert 1 <= site.wallboard.calls - before <= 2


async def test_a_queue_log_write_in_one_process_pokes_every_process(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    here, there = WallboardChanges(redis=redis_client), WallboardChanges(redis=redis_client)
    poked: list[str] = []
    here.listen(lambda: poked.append("here"))
    there.listen(lambda: poked.append("there"))
    await here.start()
    await there.start()
    try:
        poked.clear()  # each listener's start-up delivery ("whatever changed meanwhile")
        log = NotifyingQueueLog(pool=pg_pool, changed=here.changed)
        await log.write(
            [QueueLogRow(ts=time.time(), queue="support", item_id="c1", event=QueueEvent.ENTER)]
        )
        await eventually(lambda: _assert(sorted(poked) == ["here", "there"]), timeout=2)
        assert await pg_pool.fetchval("SELECT count(*) FROM queue_log WHERE item_id = 'c1'") == 1
        await log.write([])  # nothing written: nobody poked
        await asyncio.sleep(0.1)
        assert len(poked) == 2
    finally:
        await here.close()
        await there.close()


async def test_redis_down_is_not_an_error_for_the_writer(pg_pool: asyncpg.Pool) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    changes = WallboardChanges(redis=dead)
    log = NotifyingQueueLog(pool=pg_pool, changed=changes.changed)
    await log.write(
        [QueueLogRow(ts=time.time(), queue="sales", item_id="c2", event=QueueEvent.ENTER)]
    )
    await asyncio.sleep(0.4)  # the publish fails in the background, quietly
    assert changes.published == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM queue_log WHERE item_id = 'c2'") == 1
    await changes.close()
    await dead.aclose()


async def test_a_slow_feed_is_asked_at_most_half_the_time_however_often_poked(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client, interval_s=30.0)
    feed = site.wallboard
    fast = feed.wallboard

    async def slow() -> object:
        await asyncio.sleep(0.1)  # a long day's queue log: 100 ms a snapshot
        return await fast()

    feed.wallboard = slow  # type: ignore[method-assign,assignment]
    async with serve(site) as client, client.ws_connect("/ws/wallboard") as ws:
        await ws.receive_json(timeout=2)
        hub = site.app[WALLBOARD_HUB]
        before = feed.calls
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0
        while loop.time() < end:  # a change every 10 ms for a second
            hub.poke()
            await asyncio.sleep(0.01)
        # 100 ms snapshots spaced 200 ms apart: about five, never back to back (ten).
        assert 3 <= feed.calls - before <= 7
