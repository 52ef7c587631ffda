"""The queue log in PostgreSQL: rows round-trip, filters hold, the wallboard rebuilds from it."""

from __future__ import annotations

import asyncpg

from acd.live import MemoryLiveStore
from acd.models import AgentDefinition, Offer, QueueEvent, QueueLogRow, QueuePolicy, WorkItem
from acd.service import Router
from acd.stats import wallboard_from_log
from centralino.adapters.pg_queue_log import PgQueueLog
from tests.acd.support import ManualClock


async def test_rows_round_trip_with_time_and_queue_filters(pg_pool: asyncpg.Pool) -> None:
    log = PgQueueLog(pool=pg_pool)
    rows = [
        QueueLogRow(10.0, "billing", "c1", QueueEvent.ENTER, data='{"priority":1}'),
        QueueLogRow(12.5, "billing", "c1", QueueEvent.CONNECT, "joe", "red", wait_s=2.5),
        QueueLogRow(13.0, "", "", QueueEvent.AGENT, "joe", data="busy"),
        QueueLogRow(14.0, "sales", "c2", QueueEvent.ABANDON, wait_s=7.0),
    ]
    await log.write(rows)
    assert await log.read(since=0.0) == rows
    assert await log.read(since=0.0, queue="billing") == rows[:3]  # agent rows always come
    assert await log.read(since=12.5, until=14.0) == rows[1:3]


async def test_router_events_land_in_postgres_and_rebuild_the_wallboard(
    pg_pool: asyncpg.Pool,
) -> None:
    clock = ManualClock(t=1_000_000.0)
    log = PgQueueLog(pool=pg_pool)
    router = Router(
        store=MemoryLiveStore(),
        queue_log=log,
        clock=clock,
        queues={"billing": QueuePolicy("billing", skill="billing")},
        agents={"joe": AgentDefinition("joe", {"billing": 3}, teams=frozenset({"red"}))},
        owner="p1",
    )
    await router.publish()
    await router.agent_login("joe")
    await router.agent_ready("joe")
    await router.enqueue(WorkItem("c1", "billing", clock.now()))
    await router.enqueue(WorkItem("c2", "billing", clock.now()))
    await router.route_now()
    offer = await router.wait_for_offer("c1", timeout=1.0)
    assert isinstance(offer, Offer)
    clock.advance(5.0)
    await router.accept(offer.reservation.reservation_id)
    await router.connected(offer.reservation.reservation_id)
    clock.advance(50.0)
    await router.abandon("c2")
    await router.completed("c1")
    stored = await log.read(since=0.0)
    assert [r.event for r in stored if r.item_id == "c1"] == [
        QueueEvent.ENTER,
        QueueEvent.OFFER,
        QueueEvent.CONNECT,
        QueueEvent.COMPLETE,
    ]
    snap = wallboard_from_log(stored, queue="billing", now=clock.now())
    assert (snap.answered, snap.abandoned, snap.service_level, snap.asa_s) == (1, 1, 0.5, 5.0)
    assert snap.agents_by_state == {"wrap_up": 1}
    live = await router.snapshot("billing")
    assert (live.answered, live.abandoned, live.waiting) == (1, 1, 0)
