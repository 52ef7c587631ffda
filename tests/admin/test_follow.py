"""A change made through one process takes effect in another without a restart: two routers
(two processes' worth: their own PostgreSQL listeners, their own live-store clients) on one
PostgreSQL and one Redis, wired by the composition root's own functions."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from types import SimpleNamespace

import asyncpg
import redis.asyncio as aioredis

from acd.live import MemoryQueueLog
from acd.models import Offer, SkillRequirement, WorkItem
from acd.service import Router
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.admin.models import Kind
from centralino.app import _follow_config, _managed_config, _staff, queue_policy
from centralino.inbound_script import InboundHandler
from centralino.settings import AgentSettings, QueueSettings
from centralino.web.auth import Access
from tests.acd.support import ManualClock
from tests.admin.conftest import SETTINGS
from tests.helpers import eventually
from tests.web.auth_helpers import make_access


async def _process(
    stack: AsyncExitStack,
    owner: str,
    *,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    dsn: str,
    clock: ManualClock,
    inbound: InboundHandler | None = None,
) -> tuple[Router, Access, dict[str, object]]:
    managed = await _managed_config(pool, SETTINGS, _staff(SETTINGS, None, None), None)
    live = RedisLiveStore(client=redis)
    await live.load_scripts()
    router = Router(
        store=live,
        queue_log=MemoryQueueLog(),
        clock=clock,
        queues={q.name: queue_policy(q) for q in managed.settings.acd.queues},
        agents=managed.staff.by_id,
        owner=owner,
    )
    await router.publish()
    access = make_access(pool, redis, agent_teams={})
    agents_now = managed.staff.by_id
    await _follow_config(
        stack,
        managed,
        database_url=dsn,
        router=router,
        access=access,
        agents_now=agents_now,
        inbound=inbound,
    )
    return router, access, agents_now  # type: ignore[return-value]


async def test_given_two_processes_when_one_changes_the_config_then_both_route_by_it(
    pg_pool: asyncpg.Pool, pg_dsn: str, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock()
    async with AsyncExitStack() as stack:
        one, _, _ = await _process(
            stack, "p1", pool=pg_pool, redis=redis_client, dsn=pg_dsn, clock=clock
        )
        # Only the attribute the watch sets is read: the FastAGI handler's known queues.
        inbound = SimpleNamespace(queues=["billing", "support", "sales"])
        two, access_two, agents_two = await _process(
            stack,
            "p2",
            pool=pg_pool,
            redis=redis_client,
            dsn=pg_dsn,
            clock=clock,
            inbound=inbound,  # type: ignore[arg-type]
        )
        await one.agent_login("a2")
        await one.agent_ready("a2")  # a2 knows support only: a billing call waits

        store = (await _managed_config(pg_pool, SETTINGS, _staff(SETTINGS, None, None), None)).store
        a2 = AgentSettings(id="a2", name="Bea", skills={"support": 2, "billing": 4}, teams=["blue"])
        await store.update(Kind.AGENTS, "a2", a2, version=1, actor="root")
        billing = QueueSettings(name="billing", skill="billing", sl_target_s=12)
        await store.update(Kind.QUEUES, "billing", billing, version=1, actor="root")

        for router in (one, two):
            await eventually(_follows(router))
        assert access_two.agent_teams["a2"] == frozenset({"blue"})
        await store.create(Kind.QUEUES, QueueSettings(name="vip", skill="support"), actor="root")
        await eventually(lambda: _has_queue(inbound.queues, "vip"))
        assert agents_two["a2"].skills["billing"] == 4  # type: ignore[attr-defined]

        call = WorkItem("c1", "billing", clock.now(), skills=(SkillRequirement("billing", 2),))
        await two.enqueue(call)
        await two.route_now()
        offer = await two.wait_for_offer("c1", timeout=2)
        assert isinstance(offer, Offer) and offer.reservation.agent_id == "a2"
        await two.abandon("c1")


def _has_queue(queues: list[str], name: str) -> None:
    assert name in queues


def _follows(router: Router) -> Callable[[], None]:
    def check() -> None:
        assert router.agent_definitions()["a2"].skills.get("billing") == 4
        assert router.queue_policies()["billing"].sl_target_s == 12

    return check
