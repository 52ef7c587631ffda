"""The web layer's ACD adapters (`AcdAgentControl`, `AcdWallboardFeed`) over the real router,
in-memory live store and queue log, served through the real pages (logged in as an admin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from acd.live import MemoryLiveStore, MemoryQueueLog
from acd.models import AgentDefinition, QueuePolicy, SkillRequirement, WorkItem
from acd.service import Router
from centralino.access.models import Role
from centralino.metrics import Metrics
from centralino.web.app import init_app
from centralino.web.auth import add_access
from centralino.web.health import Readiness
from centralino.web.pages import AcdAgentControl, AcdWallboardFeed, add_pages
from tests.acd.support import ManualClock
from tests.web.auth_helpers import add_user, login, make_access

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass
class Acd:
    router: Router
    store: MemoryLiveStore
    clock: ManualClock
    client: TestClient[web.Request, web.Application]


@pytest.fixture
async def acd(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[Acd]:
    clock = ManualClock(t=50_000.0)
    store = MemoryLiveStore()
    router = Router(
        store=store,
        queue_log=MemoryQueueLog(),
        clock=clock,
        queues={
            "sales": QueuePolicy("sales", skill="sales"),
            "support": QueuePolicy("support", skill="tech", sl_goal=0.9),
        },
        agents={
            "ann": AgentDefinition("ann", {"sales": 4}, teams=frozenset({"blue"})),
            "bob": AgentDefinition("bob", {"tech": 3, "sales": 2}, teams=frozenset({"red"})),
        },
        owner="web-test",
        tick_s=60.0,  # the test drives routing; the background pass only needs to exist
    )
    await router.start()
    readiness = Readiness()
    readiness.started.set()
    app = init_app(readiness=readiness, metrics_registry=Metrics())
    access = make_access(pg_pool, redis_client, agent_teams={"ann": {"blue"}, "bob": {"red"}})
    add_access(app, access)
    add_pages(
        app,
        agents=AcdAgentControl(desk=router, directory=store),
        wallboard=AcdWallboardFeed(source=router, queues=["sales", "support"], now=lambda: NOW),
    )
    try:
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            access.allow_local(client.port or 0)
            await add_user(access, "root", Role.ADMIN)
            await login(client, "root")
            yield Acd(router, store, clock, client)
    finally:
        await router.aclose()


async def test_desktop_buttons_drive_the_agent_state_machine(acd: Acd) -> None:
    c = acd.client
    assert (await (await c.get("/api/agents/ann")).json())["state"] == "logged_out"

    # A logged-out agent pressing Ready is logged in first.
    ready = await c.post("/api/agents/ann/state", json={"state": "ready"})
    assert ready.status == 200
    assert (await ready.json())["state"] == "ready"
    lunch = await c.post("/api/agents/ann/state", json={"state": "not_ready", "reason": "Lunch"})
    assert (await lunch.json())["reason"] == "Lunch"
    bye = await c.post("/api/agents/ann/state", json={"state": "logged_out"})
    assert (await bye.json())["state"] == "logged_out"
    statuses = {s.agent_id: s for s in await acd.store.agents()}
    assert statuses["ann"].state == "logged_out"

    # Not ready straight from logged out: logged in, with the reason.
    brb = await c.post("/api/agents/bob/state", json={"state": "not_ready", "reason": "Meeting"})
    body = await brb.json()
    assert (body["state"], body["reason"]) == ("not_ready", "Meeting")


async def test_unknown_and_illegal_requests(acd: Acd) -> None:
    c = acd.client
    assert (await c.get("/api/agents/zed")).status == 404
    assert (await c.get("/desktop/zed")).status == 404
    assert (await c.post("/api/agents/zed/state", json={"state": "ready"})).status == 404
    assert (await c.post("/api/agents/zed/state", json={"state": "logged_out"})).status == 404
    # Logging out twice: the state machine refuses, the desktop learns why.
    assert (await c.post("/api/agents/ann/state", json={"state": "logged_out"})).status == 409


async def test_wallboard_from_the_router(acd: Acd) -> None:
    c = acd.client
    await c.post("/api/agents/ann/state", json={"state": "ready"})
    await c.post("/api/agents/bob/state", json={"state": "not_ready", "reason": "Training"})
    call = WorkItem("call-1", "support", arrived_at=acd.clock.t, skills=(SkillRequirement("tech"),))
    await acd.router.enqueue(call)
    acd.clock.advance(42.0)
    assert await acd.router.route_now() == []  # bob, the one with tech, is not ready

    response = await c.get("/api/wallboard")
    assert response.status == 200, await response.text()
    view = await response.json()

    assert view["generated_at"] == NOW.isoformat()
    sales, support = view["queues"]
    assert (sales["queue"], support["queue"]) == ("sales", "support")
    assert support["waiting"] == 1
    assert support["longest_wait_s"] == pytest.approx(42.0)
    assert support["agents"] == {"not_ready": 1}  # only bob has the tech skill
    assert sales["agents"] == {"ready": 1, "not_ready": 1}
    assert support["sl_goal"] == 0.9
    assert support["service_level"] is None  # nothing offered yet today
    assert support["staffing"]["logged_in"] == 1
    assert isinstance(support["staffing"]["agents_needed"], int)
