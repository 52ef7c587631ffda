"""`/healthz` is liveness (probes nothing); `/readyz` tells required from optional probes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centralino.metrics import Metrics
from centralino.web.app import init_app
from centralino.web.health import Readiness

Client = TestClient[web.Request, web.Application]


async def up() -> str:
    return "fine"


async def down() -> str:
    raise ConnectionError("refused")


@pytest.fixture
def readiness() -> Readiness:
    r = Readiness()
    r.started.set()
    return r


@pytest.fixture
async def client(readiness: Readiness) -> AsyncIterator[Client]:
    app = init_app(readiness=readiness, metrics_registry=Metrics())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        yield c


async def test_given_every_probe_up_then_ready(readiness: Readiness, client: Client) -> None:
    readiness.add("postgres", up)
    readiness.add("backend:crm", up, required=False)
    async with client.get("/readyz") as r:
        assert r.status == 200
        body = await r.json()
    assert body["status"] == "ready" and body["degraded"] == [] and body["unready"] == []
    assert body["checks"]["postgres"] == {"ok": True, "required": True, "detail": "fine"}
    assert body["checks"]["backend:crm"]["required"] is False


async def test_given_only_an_optional_probe_down_then_degraded_but_still_200(
    readiness: Readiness, client: Client
) -> None:
    readiness.add("postgres", up)
    readiness.add("backend:erp", up, required=False)
    readiness.add("backend:crm", down, required=False)
    async with client.get("/readyz") as r:
        assert r.status == 200
        body = await r.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["backend:crm"] and body["unready"] == []
    assert body["checks"]["backend:crm"]["ok"] is False
    assert "ConnectionError: refused" in body["checks"]["backend:crm"]["detail"]


async def test_given_a_required_probe_down_then_not_ready_503(
    readiness: Readiness, client: Client
) -> None:
    readiness.add("redis", down)
    readiness.add("backend:crm", down, required=False)
    async with client.get("/readyz") as r:
        assert r.status == 503
        body = await r.json()
    assert body["status"] == "not ready"
    assert body["unready"] == ["redis"] and body["degraded"] == ["backend:crm"]


async def test_healthz_runs_no_probe(readiness: Readiness, client: Client) -> None:
    """Liveness must not depend on PostgreSQL or Redis: a hung dependency is readiness's news."""
    probed = asyncio.Event()

    async def hangs() -> str:
        probed.set()
        await asyncio.Event().wait()
        return "never"

    readiness.add("postgres", hangs)
    async with client.get("/healthz") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"
    assert not probed.is_set()
