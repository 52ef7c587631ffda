"""Pages and their JSON/WebSocket feeds over real HTTP, with test doubles of the web layer's
own ports (AgentControl, WallboardFeed, CallsFeed, IdentityLinker), behind the real access
middleware (accounts in PostgreSQL, login counters in Redis); the client is logged in as an
admin unless a test says otherwise (tests/web/test_access.py covers who may do what)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from acd.errors import IllegalTransition, UnknownAgent
from acd.models import AgentState, AgentStatus
from acd.stats import TeamFigures, WallboardSnapshot
from centralino.access.models import Role
from centralino.metrics import Metrics
from centralino.web.app import init_app
from centralino.web.auth import Access, add_access
from centralino.web.health import Readiness
from centralino.web.pages import (
    STATIC_DIR,
    AgentNotices,
    AgentView,
    CallSummary,
    WallboardView,
    add_pages,
    agent_view,
    wallboard_view,
)
from tests.helpers import eventually
from tests.web.auth_helpers import add_user, login, make_access
from tests.web.browser import until

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

# --- test doubles of the web layer's ports ---------------------------------------------------


class FakeAgents:
    """AgentControl double: a dict of agents; records every state request."""

    def __init__(self, *ids: str) -> None:
        self.views: dict[str, AgentView] = {
            i: {
                "agent_id": i,
                "state": "not_ready",
                "since_epoch_s": T0.timestamp(),
                "reason": "Login",
                "teams": ["blue"],
                "load": {},
            }
            for i in ids
        }
        self.requests: list[tuple[str, str, str]] = []
        self.on_call: set[str] = set()

    async def list_agents(self) -> list[AgentView]:
        return [copy.deepcopy(v) for v in self.views.values()]

    async def agent(self, agent_id: str) -> AgentView | None:
        view = self.views.get(agent_id)
        return None if view is None else copy.deepcopy(view)

    async def set_state(self, agent_id: str, state: str, reason: str) -> AgentView:
        self.requests.append((agent_id, state, reason))
        if agent_id not in self.views:
            raise UnknownAgent(agent_id)
        if agent_id in self.on_call:
            raise IllegalTransition(AgentState.BUSY, state)
        view = self.views[agent_id]
        view["state"], view["reason"] = state, reason
        view["since_epoch_s"] = datetime.now(UTC).timestamp()
        return copy.deepcopy(view)


def queue_tile(queue: str, *, waiting: int, sl: float | None, needed: int = 6) -> dict[str, object]:
    return {
        "queue": queue,
        "waiting": waiting,
        "longest_wait_s": 75.0,
        "agents": {"ready": 2, "busy": 5, "wrap_up": 1, "not_ready": 1},
        "service_level": sl,
        "sl_target_s": 20.0,
        "sl_goal": 0.8,
        "asa_s": 14.2,
        "abandon_rate": 0.043,
        "offered": 188,
        "staffing": {
            "agents_needed": needed,
            "logged_in": 9,
            "arrival_rate_per_h": 120.0,
            "aht_s": 185.0,
        },
    }


class FakeWallboard:
    """WallboardFeed double: returns whatever the test put in `view`; can be told to fail."""

    def __init__(self) -> None:
        self.view: dict[str, object] = {
            "generated_at": T0.isoformat(),
            "window_s": 86400.0,
            "queues": [
                queue_tile("sales", waiting=3, sl=0.86),
                queue_tile("support", waiting=11, sl=0.62, needed=12),
            ],
            "teams": [
                {
                    "team": "blue",
                    "service_level": 0.91,
                    "asa_s": 9.0,
                    "resolution_rate": 0.78,
                    "satisfaction": 4.4,
                    "satisfaction_scale": 5.0,
                    "handled": 120,
                }
            ],
        }
        self.calls = 0
        self.fail = False

    async def wallboard(self) -> WallboardView:
        self.calls += 1
        if self.fail:
            raise RuntimeError("statistics store is down")
        return copy.deepcopy(self.view)  # type: ignore[return-value]


class FakeCalls:
    def __init__(self) -> None:
        self.limits: list[int] = []
        self.agent_filters: list[set[str] | None] = []
        self.calls: list[CallSummary] = [
            {
                "linkedid": f"1700000000.{n}",
                "started_at": (T0 - timedelta(minutes=n)).isoformat(),
                "caller": "Rossi Costruzioni" if n % 2 else "unknown number",
                "number": "+390212345678",
                "queue": "support",
                "agent_id": "a1",
                "intent": "invoice_status",
                "outcome": "resolved",
                "wait_s": 12.0,
                "talk_s": 190.0,
            }
            for n in range(5)
        ]

    async def recent_calls(
        self, limit: int, *, agent_ids: Collection[str] | None = None
    ) -> list[CallSummary]:
        self.limits.append(limit)
        self.agent_filters.append(None if agent_ids is None else set(agent_ids))
        calls = [c for c in self.calls if agent_ids is None or c["agent_id"] in agent_ids]
        return calls[:limit]


@dataclass
class FakeLinker:
    links: list[tuple[str, str, int]] = field(default_factory=list)

    async def link(self, *, identity_kind: str, identity_value: str, customer_id: int) -> None:
        if customer_id == 404:
            raise LookupError("no customer 404")
        self.links.append((identity_kind, identity_value, customer_id))


@dataclass
class Site:
    app: web.Application
    agents: FakeAgents
    wallboard: FakeWallboard
    calls: FakeCalls
    linker: FakeLinker
    access: Access


def build_site(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    *,
    with_calls: bool = True,
    with_linker: bool = True,
    interval_s: float = 0.05,
    access: Access | None = None,
    notices: AgentNotices | None = None,
) -> Site:
    readiness = Readiness()
    readiness.started.set()
    app = init_app(readiness=readiness, metrics_registry=Metrics())
    agents = FakeAgents("a1", "a2")
    access = access or make_access(
        pool, redis, agent_teams={a: v["teams"] for a, v in agents.views.items()}
    )
    add_access(app, access)
    site = Site(app, agents, FakeWallboard(), FakeCalls(), FakeLinker(), access)
    add_pages(
        app,
        wallboard=site.wallboard,
        agents=site.agents,
        calls=site.calls if with_calls else None,
        linker=site.linker if with_linker else None,
        about={"FastAGI": "127.0.0.1:4573", "AMI": "127.0.0.1:5038"},
        wallboard_interval_s=interval_s,
        notices=notices,
    )
    return site


@pytest.fixture
def site(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> Site:
    return build_site(pg_pool, redis_client)


@asynccontextmanager
async def serve(
    site: Site, *, as_user: str | None = "root"
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client of the site, logged in as an admin named `as_user` (None: not logged in)."""
    async with TestClient(TestServer(site.app, host="127.0.0.1", port=0)) as c:
        site.access.allow_local(c.port or 0)
        if as_user is not None:
            await add_user(site.access, as_user, Role.ADMIN)
            await login(c, as_user)
        yield c


@pytest.fixture
async def client(site: Site) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with serve(site) as c:
        yield c


# --- pages -----------------------------------------------------------------------------------


async def test_pages_are_served_with_a_strict_content_security_policy(
    client: TestClient[web.Request, web.Application],
) -> None:
    for path, marker in [
        ("/", "Recent calls"),
        ("/wallboard", "wallboard.js"),
        ("/desktop/a1", "desktop.js"),
    ]:
        response = await client.get(path)
        assert response.status == 200, path
        assert marker in await response.text()
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp


async def test_desktop_of_an_unknown_agent_is_404(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/desktop/nobody")
    assert response.status == 404
    assert response.content_type == "text/plain"


async def test_static_scripts_and_styles_are_served(
    client: TestClient[web.Request, web.Application],
) -> None:
    for name in [
        "ui.js",
        "desktop.js",
        "wallboard.js",
        "index.js",
        "centralino.css",
        "wallboard.css",
    ]:
        response = await client.get(f"/static/{name}")
        assert response.status == 200, name


def test_no_script_writes_markup_from_strings() -> None:
    """Guard for the XSS rule: data reaches the DOM only through textContent/createElement."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function"
    )
    for path in STATIC_DIR.glob("*.js"):
        assert not forbidden.search(path.read_text()), path.name
    for path in STATIC_DIR.glob("*.html"):
        html = path.read_text()
        assert "<script>" not in html and " style=" not in html, path.name  # CSP forbids both


# --- agents ----------------------------------------------------------------------------------


async def test_agents_list_and_one_agent(
    client: TestClient[web.Request, web.Application],
) -> None:
    listed = await (await client.get("/api/agents")).json()
    assert [a["agent_id"] for a in listed] == ["a1", "a2"]
    one = await client.get("/api/agents/a1")
    assert one.status == 200
    assert set(await one.json()) == set(AgentView.__annotations__)
    missing = await client.get("/api/agents/ghost")
    assert missing.status == 404
    assert "ghost" in (await missing.json())["error"]


async def test_state_change_reaches_agent_control(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    response = await client.post(
        "/api/agents/a1/state", json={"state": "not_ready", "reason": "Lunch"}
    )
    assert response.status == 200
    body = await response.json()
    assert (body["state"], body["reason"]) == ("not_ready", "Lunch")
    await client.post("/api/agents/a1/state", json={"state": "ready"})
    await client.post("/api/agents/a1/state", json={"state": "logged_out", "reason": ""})
    assert site.agents.requests == [
        ("a1", "not_ready", "Lunch"),
        ("a1", "ready", ""),
        ("a1", "logged_out", ""),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"state": "busy"}, 400),  # the ACD sets busy, the agent cannot
        ({"state": "not_ready"}, 400),  # a reason is required
        ({"state": "not_ready", "reason": "x" * 65}, 400),
        ({"state": "ready", "reason": 7}, 400),
        (["ready"], 400),
    ],
)
async def test_bad_state_requests_are_refused_without_calling_the_acd(
    site: Site, client: TestClient[web.Request, web.Application], body: object, status: int
) -> None:
    response = await client.post("/api/agents/a1/state", json=body)
    assert response.status == status
    assert "error" in await response.json()
    assert site.agents.requests == []


async def test_state_change_errors_map_to_http_statuses(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    unknown = await client.post("/api/agents/ghost/state", json={"state": "ready"})
    assert unknown.status == 404
    site.agents.on_call.add("a2")
    illegal = await client.post("/api/agents/a2/state", json={"state": "logged_out"})
    assert illegal.status == 409
    assert "illegal" in (await illegal.json())["error"]


async def test_state_change_needs_json_from_the_same_origin(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    form = await client.post("/api/agents/a1/state", data={"state": "ready"})
    assert form.status == 415
    cross = await client.post(
        "/api/agents/a1/state",
        json={"state": "ready"},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status == 403
    garbage = await client.post(
        "/api/agents/a1/state", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status == 400
    huge = await client.post(
        "/api/agents/a1/state",
        data=json.dumps({"state": "ready", "pad": "x" * 5000}),
        headers={"Content-Type": "application/json"},
    )
    assert huge.status == 413
    assert site.agents.requests == []


# --- identity links, recent calls, about ---------------------------------------------------------


async def test_link_identity(site: Site, client: TestClient[web.Request, web.Application]) -> None:
    ok = await client.post(
        "/api/identities/link",
        json={"identity_kind": "phone", "identity_value": "+390299999999", "customer_id": 7},
    )
    assert ok.status == 200
    assert site.linker.links == [("phone", "+390299999999", 7)]
    unknown = await client.post(
        "/api/identities/link",
        json={"identity_kind": "phone", "identity_value": "+390299999999", "customer_id": 404},
    )
    assert unknown.status == 404
    bad = await client.post(
        "/api/identities/link",
        json={"identity_kind": "phone", "identity_value": "+39", "customer_id": True},
    )
    assert bad.status == 400


async def test_link_identity_without_a_linker_is_501(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client, with_linker=False)
    async with serve(site) as client:
        response = await client.post(
            "/api/identities/link",
            json={"identity_kind": "phone", "identity_value": "+390299999999", "customer_id": 7},
        )
        assert response.status == 501


async def test_recent_calls_are_limited(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    calls = await (await client.get("/api/calls/recent?limit=2")).json()
    assert [c["linkedid"] for c in calls] == ["1700000000.0", "1700000000.1"]
    assert set(calls[0]) == set(CallSummary.__annotations__)
    await client.get("/api/calls/recent?limit=100000")
    await client.get("/api/calls/recent")
    assert site.calls.limits == [2, 200, 20]
    assert (await client.get("/api/calls/recent?limit=many")).status == 400


async def test_recent_calls_without_a_feed_are_empty(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client, with_calls=False)
    async with serve(site) as client:
        assert await (await client.get("/api/calls/recent")).json() == []


async def test_about_lists_what_runs(client: TestClient[web.Request, web.Application]) -> None:
    about = await (await client.get("/api/about")).json()
    assert about == {
        "name": "Centralino",
        "running": {"FastAGI": "127.0.0.1:4573", "AMI": "127.0.0.1:5038"},
    }


# --- wallboard -------------------------------------------------------------------------------


async def test_wallboard_json_has_the_documented_shape(
    client: TestClient[web.Request, web.Application],
) -> None:
    view = await (await client.get("/api/wallboard")).json()
    assert set(view) == set(WallboardView.__annotations__)
    assert [q["queue"] for q in view["queues"]] == ["sales", "support"]
    assert view["queues"][1]["staffing"]["agents_needed"] == 12


async def test_wallboard_json_is_503_when_the_feed_fails(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    site.wallboard.fail = True
    response = await client.get("/api/wallboard")
    assert response.status == 503


async def test_wallboard_socket_pushes_at_once_then_every_tick(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    async with client.ws_connect("/ws/wallboard") as ws:
        first = await ws.receive_json(timeout=2)
        assert first["type"] == "wallboard"
        assert first["data"]["queues"][0]["waiting"] == 3
        site.wallboard.view["queues"][0]["waiting"] = 9  # type: ignore[index]

        async def sees_nine() -> bool:
            msg = await ws.receive_json(timeout=2)
            assert msg["data"]["queues"][0]["waiting"] == 9
            return True

        await until(sees_nine, timeout=3)


async def test_wallboard_socket_survives_a_failing_feed(
    site: Site, client: TestClient[web.Request, web.Application]
) -> None:
    async with client.ws_connect("/ws/wallboard") as ws:
        await ws.receive_json(timeout=2)
        site.wallboard.fail = True
        before = site.wallboard.calls
        await eventually(lambda: _assert(site.wallboard.calls >= before + 3), timeout=3)
        site.wallboard.fail = False
        msg = await ws.receive(timeout=2)
        assert msg.type is WSMsgType.TEXT
        assert json.loads(msg.data)["type"] == "wallboard"


async def test_no_feed_calls_without_screens(site: Site) -> None:
    async with serve(site) as client:
        async with client.ws_connect("/ws/wallboard") as ws:
            await ws.receive_json(timeout=2)
        await eventually(lambda: _assert(not site.app[_hub_key()].clients), timeout=2)
        calls = site.wallboard.calls
        # The ticker sleeps on an event while nobody watches: a GET is the only feed call now.
        await client.get("/api/wallboard")
        assert site.wallboard.calls == calls + 1


def _hub_key() -> web.AppKey:  # type: ignore[type-arg]
    from centralino.web.pages import WALLBOARD_HUB

    return WALLBOARD_HUB


def _assert(condition: bool) -> None:
    assert condition


# --- converters from the ACD's types ---------------------------------------------------------


def snapshot(queue: str, **overrides: object) -> WallboardSnapshot:
    fields: dict[str, object] = {
        "queue": queue,
        "at": T0.timestamp(),
        "waiting": 4,
        "longest_wait_s": 33.0,
        "agents_by_state": {"ready": 1, "busy": 3, "logged_out": 2},
        "offered": 50,
        "answered": 45,
        "abandoned": 5,
        "service_level": 0.8,
        "asa_s": 12.0,
        "abandon_rate": 0.1,
        "arrival_rate_per_h": 60.0,
        "aht_s": 200.0,
        "agents_needed": 5,
        "sl_t_s": 20.0,
        "sl_goal": 0.8,
        "teams": {
            "blue": TeamFigures(answered=30, service_level=0.9, asa_s=10.0),
            "red": TeamFigures(answered=15, service_level=0.6, asa_s=16.0),
        },
    }
    fields.update(overrides)
    return WallboardSnapshot(**fields)  # type: ignore[arg-type]


def test_wallboard_view_from_acd_snapshots() -> None:
    view = wallboard_view(
        [
            snapshot("sales"),
            snapshot(
                "support",
                offered=0,
                answered=0,
                abandoned=0,
                service_level=1.0,
                teams={"blue": TeamFigures(answered=10, service_level=0.5, asa_s=30.0)},
            ),
        ],
        generated_at=T0,
        window_s=86400.0,
    )
    sales, support = view["queues"]
    assert sales["staffing"] == {
        "agents_needed": 5,
        "logged_in": 4,
        "arrival_rate_per_h": 60.0,
        "aht_s": 200.0,
    }
    assert (sales["service_level"], sales["asa_s"], sales["abandon_rate"]) == (0.8, 12.0, 0.1)
    # Nothing offered: "no calls yet", not the ACD's neutral 100 %.
    assert (support["service_level"], support["asa_s"], support["abandon_rate"]) == (
        None,
        None,
        None,
    )
    blue = next(t for t in view["teams"] if t["team"] == "blue")
    assert blue["handled"] == 40
    assert blue["service_level"] == pytest.approx((30 * 0.9 + 10 * 0.5) / 40)
    assert blue["asa_s"] == pytest.approx((30 * 10.0 + 10 * 30.0) / 40)
    assert json.loads(json.dumps(view)) == view


def test_agent_view_from_acd_status() -> None:
    status = AgentStatus(
        agent_id="a1",
        state=AgentState.NOT_READY,
        since=T0.timestamp(),
        reason="Lunch",
        load={"chat": 2},
        teams=frozenset({"red", "blue"}),
    )
    assert agent_view(status) == {
        "agent_id": "a1",
        "state": "not_ready",
        "since_epoch_s": T0.timestamp(),
        "reason": "Lunch",
        "teams": ["blue", "red"],
        "load": {"chat": 2},
    }
