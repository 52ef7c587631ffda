"""Child-process bodies for the Redis ACD tests (kept light: spawned processes import this)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from acd.models import Channel, SkillRequirement, Strategy, WorkItem
from centralino.adapters.redis_acd import RedisLiveStore

# A racer gives up after this long: the test fails on a missing result instead of hanging.
RACER_DEADLINE_S = 60.0


async def _racer(
    url: str, prefix: str, owner: str, n_items: int, barrier: Any
) -> list[tuple[str, str, str]]:
    client = aioredis.Redis.from_url(url)
    store = RedisLiveStore(client=client, prefix=prefix)
    got: list[tuple[str, str, str]] = []
    try:
        await store.heartbeat(owner, time.time(), ttl_s=30.0)
        for i in range(n_items):
            item = WorkItem(f"{owner}-{i}", "race", time.time())
            await store.add_item(item, steps="0.0:-:0", owner=owner, entered_at=time.time())
        await asyncio.to_thread(barrier.wait, 60.0)  # everyone routes at once
        deadline = time.monotonic() + RACER_DEADLINE_S
        while time.monotonic() < deadline:
            routed = await store.route(
                "race", time.time(), owner, strategy=Strategy.LONGEST_IDLE, window=40, ttl_s=30.0
            )
            # Ours, plus those other racers reserved for our items.
            made = [r for r in routed if r.owner == owner] + await store.take_offers(owner)
            for res in made:
                # Independent check, outside the script: a plain counter per agent, held while
                # the agent works on the item. Two holders at once would read 2.
                holders = await client.incr(f"{prefix}check:{res.agent_id}")
                got.append((res.item_id, res.agent_id, "ok" if holders == 1 else "double"))
                await store.accept(res.reservation_id, time.time(), ttl_s=30.0)
                await store.connect(res.reservation_id, time.time())
                await client.decr(f"{prefix}check:{res.agent_id}")
                await store.finish(
                    res.agent_id, Channel.VOICE, time.time(), worked_s=1.0, wrap_up_s=0.0
                )
            idle = not routed and not made and not await store.waiting("race")
            if idle and not await client.zcard(f"{prefix}rvx"):  # nothing held by anyone
                break
    finally:
        await client.aclose()
    return got


def race_process(args: tuple[str, str, str, int, Any, Any]) -> None:
    """Body of one racing process: (redis url, prefix, owner, items, barrier, result queue)."""
    url, prefix, owner, n_items, barrier, out = args
    out.put(asyncio.run(_racer(url, prefix, owner, n_items, barrier)))


async def _doomed(url: str, prefix: str, conn: Any, callback: str | None) -> None:
    client = aioredis.Redis.from_url(url)
    store = RedisLiveStore(client=client, prefix=prefix)
    now = time.time()
    await store.heartbeat("doomed", now, ttl_s=0.5)
    item = WorkItem(
        "call-1", "sales", now, skills=(SkillRequirement("sales", 1),), callback_number=callback
    )
    await store.add_item(item, steps="0.0:-:0", owner="doomed", entered_at=now)
    made = await store.route(
        "sales", now, "doomed", strategy=Strategy.LONGEST_IDLE, window=5, ttl_s=0.5
    )
    await store.accept(made[0].reservation_id, time.time(), ttl_s=0.5)  # ringing, then dies
    conn.send((made[0].reservation_id, made[0].agent_id))
    await asyncio.Event().wait()  # hang until killed


def doomed_process(url: str, prefix: str, conn: Any, callback: str | None = None) -> None:
    """Queue call-1 (a callback request to `callback`, if given), ring an agent for it, die."""
    asyncio.run(_doomed(url, prefix, conn, callback))
