"""Access control over real HTTP, as an attacker would try it: no login, wrong passwords,
guessing fast, forged, expired and revoked sessions, missing or stolen CSRF tokens, foreign
origins and rebound host names, an agent on another agent's desktop, a supervisor outside their
teams, a disabled account, a revoked token, an open redirect, markup in a username. Accounts
live in PostgreSQL, login counters in Redis; the pages' own ports are test doubles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestServer
from yarl import URL

from centralino.access import credentials
from centralino.access.models import Role
from centralino.access.policy import LoginLimits, SessionPolicy
from centralino.adapters.pg_accounts import PgAccounts
from centralino.web.auth import ROUTE_RULES, Access
from centralino.web.desktop_ws import DesktopHub
from centralino.web.openapi import add_openapi
from context.clock import SystemClock
from tests.helpers import eventually, web_login
from tests.web.auth_helpers import PASSWORD, add_user, make_access
from tests.web.test_pages import Site, build_site


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@dataclass
class World:
    site: Site
    access: Access
    accounts: PgAccounts
    hub: DesktopHub
    clock: Clock
    url: str
    origin: str

    def jar(self) -> aiohttp.ClientSession:
        """A browser-like client: keeps cookies (for an IP host too)."""
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    @asynccontextmanager
    async def logged_in(self, username: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
        async with self.jar() as http:
            csrf = await web_login(http, self.url, username, PASSWORD)
            yield http, csrf

    def headers(self, csrf: str | None = None, **more: str) -> dict[str, str]:
        found = {"Origin": self.origin, **more}
        if csrf is not None:
            found["X-CSRF-Token"] = csrf
        return found


@pytest.fixture
async def world(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[World]:
    clock = Clock()
    teams = {"a1": {"blue"}, "a2": {"green"}}
    access = make_access(
        pg_pool,
        redis_client,
        agent_teams=teams,
        now=clock,
        session=SessionPolicy(ttl_s=8 * 3600, idle_s=1800, touch_every_s=60),
        limits=LoginLimits(max_failures_per_user=3, max_failures_per_address=6, window_s=60),
        ws_recheck_s=0.1,
    )
    hub = DesktopHub(clock=SystemClock(), agents=teams.keys())
    site = build_site(pg_pool, redis_client, access=access, notices=hub)
    site.agents.views["a2"]["teams"] = ["green"]
    site.app.router.add_get("/ws/agent/{agent_id}", hub.handle)
    await add_user(access, "root", Role.ADMIN)
    await add_user(access, "blue-lead", Role.SUPERVISOR, teams={"blue"})
    await add_user(access, "ann", Role.AGENT, agent_id="a1", teams={"blue"})
    await add_user(access, "gus", Role.AGENT, agent_id="a2", teams={"green"})
    server = TestServer(site.app, host="127.0.0.1", port=0)
    await server.start_server()
    access.allow_local(server.port or 0)
    url = f"http://127.0.0.1:{server.port}"
    try:
        yield World(site, access, PgAccounts(pool=pg_pool), hub, clock, url, url)
    finally:
        await hub.close()
        await server.close()


async def actions(world: World) -> list[tuple[str | None, str, str | None]]:
    return [(e.actor, e.action, e.target) for e in await world.accounts.audit_entries()]


# --- nobody logged in --------------------------------------------------------------------------


async def test_without_a_login_pages_redirect_apis_say_401_and_probes_stay_open(
    world: World,
) -> None:
    async with world.jar() as http:
        for path in ["/", "/desktop/a1", "/wallboard?big=1"]:
            async with http.get(world.url + path, allow_redirects=False) as r:
                assert r.status == 303, path
                assert r.headers["Location"].startswith("/login?next=/")
        async with http.get(world.url + "/wallboard?big=1", allow_redirects=False) as r:
            location = urlsplit(r.headers["Location"])
            assert location.path == "/login"
            assert parse_qs(location.query) == {"next": ["/wallboard?big=1"]}
        for path in ["/api/agents", "/api/calls/recent", "/api/session", "/api/wallboard"]:
            async with http.get(world.url + path) as r:
                assert r.status == 401, path
                assert await r.json() == {"error": "login required"}
        async with http.post(
            world.url + "/api/identities/link",
            json={"identity_kind": "phone", "identity_value": "+390299999999", "customer_id": 1},
            headers=world.headers(),
        ) as r:
            assert r.status == 401
        async with http.post(world.url + "/api/agents/a1/state", json={"state": "logged_out"}) as r:
            assert r.status == 401
        with pytest.raises(WSServerHandshakeError) as refused:
            await http.ws_connect(world.url + "/ws/agent/a1", headers=world.headers())
        assert refused.value.status == 401
        for probe in ["/healthz", "/readyz", "/metrics"]:
            async with http.get(world.url + probe, headers={"Host": "anything:1"}) as r:
                assert r.status == 200, probe
                body = await r.text()
                assert "Rossi" not in body and "+39" not in body  # no customer data
    assert world.site.linker.links == [] and world.site.agents.requests == []


async def test_a_route_without_an_access_rule_is_closed(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client)

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="customers")

    site.app.router.add_get("/api/forgotten", secret)
    assert "/api/forgotten" not in ROUTE_RULES
    async with TestServer(site.app, host="127.0.0.1", port=0) as server:
        site.access.allow_local(server.port or 0)
        await add_user(site.access, "root", Role.ADMIN)
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await web_login(http, base, "root", PASSWORD)
            async with http.get(base + "/api/forgotten") as r:
                assert r.status == 403


# --- logging in --------------------------------------------------------------------------------


async def test_login_sets_a_hardened_session_cookie_and_lands_by_role(world: World) -> None:
    async with world.jar() as http:
        await web_login(http, world.url, "ann", PASSWORD)
        async with http.get(world.url + "/api/session") as r:
            me = await r.json()
        assert me["username"] == "ann" and me["role"] == "agent" and me["agent_id"] == "a1"
        assert me["csrf_token"] and me["teams"] == ["blue"]
    async with world.jar() as http:
        async with http.get(world.url + "/login?next=//evil.example/x") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
            assert 'name="next" value=""' in await r.text()  # the foreign next is dropped
        async with http.post(
            world.url + "/login",
            data={
                "username": "ANN",
                "password": PASSWORD,
                "csrf_token": nonce,
                "next": "//evil.example/x",
            },
            headers=world.headers(),
            allow_redirects=False,
        ) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/desktop/a1"  # open redirect refused: landing page
            cookie = r.cookies["centralino_session"]
            assert cookie["httponly"] is True and cookie["samesite"] == "Strict"
            assert cookie["path"] == "/" and int(cookie["max-age"]) == 8 * 3600
            assert not cookie["secure"]  # plain-HTTP test server, cookie_secure unset
    assert ("ann", "login", None) in await actions(world)


async def test_behind_https_the_cookie_is_secure_with_the_host_prefix(world: World) -> None:
    world.access.config.cookie_secure = True
    async with world.jar() as http:
        async with http.get(world.url + "/login") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
            assert r.cookies["centralino_login"]["secure"]
        async with http.post(  # a client keeps Secure cookies for https: hand it back here
            world.url + "/login",
            data={"username": "root", "password": PASSWORD, "csrf_token": nonce},
            headers=world.headers(Cookie=f"centralino_login={nonce}"),
            allow_redirects=False,
        ) as r:
            assert r.status == 303
            cookie = r.cookies["__Host-centralino_session"]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_wrong_passwords_are_refused_and_audited_then_rate_limited(world: World) -> None:
    async with world.jar() as http:
        for _ in range(3):
            async with http.get(world.url + "/login") as r:
                nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
            async with http.post(
                world.url + "/login",
                data={"username": "ann", "password": "wrong password!", "csrf_token": nonce},
                headers=world.headers(),
                allow_redirects=False,
            ) as r:
                assert r.status == 401
                text = await r.text()
                assert "Wrong username or password." in text
                assert "centralino_session" not in r.cookies
        # The right password no longer helps: the name is locked for the window.
        async with http.get(world.url + "/login") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
        async with http.post(
            world.url + "/login",
            data={"username": "ann", "password": PASSWORD, "csrf_token": nonce},
            headers=world.headers(),
            allow_redirects=False,
        ) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "60"
            assert "Too many failed attempts" in await r.text()
    # Another process sharing Redis refuses too: the counters are not per process.
    other = make_access(
        world.access.accounts._pool,  # type: ignore[attr-defined]
        world.access.limiter._redis,  # type: ignore[attr-defined]
        agent_teams={},
        limits=world.access.limiter.limits,
    )
    assert await other.limiter.blocked(username="ann", address="elsewhere")
    assert not await other.limiter.blocked(username="gus", address="elsewhere")
    entries = await actions(world)
    assert entries.count((None, "login_failed", "ann")) == 3
    assert (None, "login_blocked", "ann") in entries


async def test_many_names_from_one_address_are_limited_too(world: World) -> None:
    async with world.jar() as http:
        for n in range(6):
            async with http.get(world.url + "/login") as r:
                nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
            async with http.post(
                world.url + "/login",
                data={"username": f"guess{n}", "password": "p" * 12, "csrf_token": nonce},
                headers=world.headers(),
            ) as r:
                assert r.status == 401
        async with http.get(world.url + "/login") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
        async with http.post(
            world.url + "/login",
            data={"username": "root", "password": PASSWORD, "csrf_token": nonce},
            headers=world.headers(),
        ) as r:
            assert r.status == 429


async def test_login_form_needs_its_nonce_and_our_origin(world: World) -> None:
    async with world.jar() as http:
        async with http.get(world.url + "/login") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
        form = {"username": "root", "password": PASSWORD, "csrf_token": nonce}
        async with http.post(
            world.url + "/login", data=form, headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403
        async with http.post(world.url + "/login", data=form) as r:  # no Origin, no Referer
            assert r.status == 403
        async with http.post(
            world.url + "/login",
            data={**form, "csrf_token": "forged"},
            headers=world.headers(),
        ) as r:
            assert r.status == 403
            assert "The form expired" in await r.text()
    async with (  # the nonce cookie is missing altogether
        world.jar() as fresh,
        fresh.post(world.url + "/login", data=form, headers=world.headers()) as r,
    ):
        assert r.status == 403


async def test_markup_in_a_typed_username_is_shown_as_text(world: World) -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    async with world.jar() as http:
        async with http.get(world.url + "/login") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
            assert "script-src" not in r.headers["Content-Security-Policy"]  # no scripts at all
        async with http.post(
            world.url + "/login",
            data={"username": hostile, "password": PASSWORD, "csrf_token": nonce},
            headers=world.headers(),
        ) as r:
            assert r.status == 401
            page = await r.text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x" in page
    assert any(e[2] == hostile for e in await actions(world))  # audited as typed, as data


async def test_disabled_account_cannot_log_in_and_loses_its_session_and_tokens(
    world: World,
) -> None:
    token = credentials.new_api_token()
    ann = await world.accounts.account_by_name("ann")
    assert ann is not None
    await world.accounts.create_token(account_id=ann.id, token_digest=credentials.digest(token))
    async with world.logged_in("ann") as (http, _csrf):
        async with http.get(world.url + "/api/agents/a1") as r:
            assert r.status == 200
        await world.accounts.disable("ann", now=world.clock())
        async with http.get(world.url + "/api/agents/a1") as r:
            assert r.status == 401
    async with world.jar() as http:
        async with http.get(
            world.url + "/api/agents/a1", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 401
        async with http.get(world.url + "/login") as r:
            nonce = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
        async with http.post(
            world.url + "/login",
            data={"username": "ann", "password": PASSWORD, "csrf_token": nonce},
            headers=world.headers(),
        ) as r:
            assert r.status == 401


# --- sessions ----------------------------------------------------------------------------------


async def test_forged_expired_idle_and_logged_out_sessions_are_refused(world: World) -> None:
    async with world.jar() as http:
        http.cookie_jar.update_cookies(
            {"centralino_session": credentials.new_session_id()}, URL(world.url)
        )
        async with http.get(world.url + "/api/session") as r:
            assert r.status == 401  # forged
    async with world.logged_in("root") as (http, _):
        world.clock.advance(1799)
        async with http.get(world.url + "/api/session") as r:
            assert r.status == 200  # used within the idle time: touched
        world.clock.advance(1799)
        async with http.get(world.url + "/api/session") as r:
            assert r.status == 200
        world.clock.advance(1801)
        async with http.get(world.url + "/api/session") as r:
            assert r.status == 401  # idle
    async with world.logged_in("root") as (http, _):
        for _ in range(16):  # busy all day: never idle, but the shift ends
            world.clock.advance(1700)
            async with http.get(world.url + "/api/session") as r:
                assert r.status == 200
        world.clock.advance(1700)
        async with http.get(world.url + "/api/session") as r:
            assert r.status == 401  # 8 h absolute lifetime
    async with world.logged_in("root") as (http, csrf):
        stolen = http.cookie_jar.filter_cookies(URL(world.url))
        async with http.post(
            world.url + "/logout", headers=world.headers(csrf), allow_redirects=False
        ) as r:
            assert (r.status, r.headers["Location"]) == (303, "/login")
        async with world.jar() as replay:
            replay.cookie_jar.update_cookies(stolen, URL(world.url))
            async with replay.get(world.url + "/api/session") as r:
                assert r.status == 401  # revoked server-side, whoever kept a copy
    assert ("root", "logout", None) in await actions(world)


async def test_logout_needs_the_csrf_token(world: World) -> None:
    async with world.logged_in("root") as (http, _csrf):
        async with http.post(world.url + "/logout", headers=world.headers()) as r:
            assert r.status == 403
        async with http.post(
            world.url + "/logout", data={"csrf_token": "nope"}, headers=world.headers()
        ) as r:
            assert r.status == 403
        async with http.get(world.url + "/api/session") as r:
            assert r.status == 200  # still logged in: a foreign page cannot log us out
        async with http.post(
            world.url + "/logout",
            data={"csrf_token": _csrf},
            headers=world.headers(),
            allow_redirects=False,
        ) as r:
            assert r.status == 303  # the form field works as the header does


# --- CSRF and origins --------------------------------------------------------------------------


async def test_state_changes_need_the_sessions_csrf_token(world: World) -> None:
    body = {"state": "not_ready", "reason": "Lunch"}
    async with world.logged_in("ann") as (http, csrf), world.logged_in("gus") as (_, other):
        async with http.post(
            world.url + "/api/agents/a1/state", json=body, headers=world.headers()
        ) as r:
            assert r.status == 403
            assert "CSRF" in (await r.json())["error"]
        async with http.post(
            world.url + "/api/agents/a1/state", json=body, headers=world.headers("forged")
        ) as r:
            assert r.status == 403
        async with http.post(  # another session's token is no good either
            world.url + "/api/agents/a1/state", json=body, headers=world.headers(other)
        ) as r:
            assert r.status == 403
        assert world.site.agents.requests == []
        async with http.post(
            world.url + "/api/agents/a1/state", json=body, headers=world.headers(csrf)
        ) as r:
            assert r.status == 200
    assert world.site.agents.requests == [("a1", "not_ready", "Lunch")]


async def test_cross_origin_posts_are_refused_even_with_the_token(world: World) -> None:
    link = {"identity_kind": "phone", "identity_value": "+390299999999", "customer_id": 1}
    async with world.logged_in("ann") as (http, csrf):
        for origin in [
            "http://evil.example",
            "https://127.0.0.1:" + world.url.rsplit(":", 1)[1],  # scheme differs
            "http://127.0.0.1:1",  # port differs
            "null",
        ]:
            async with http.post(
                world.url + "/api/identities/link",
                json=link,
                headers={"Origin": origin, "X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 403, origin
        async with http.post(  # neither Origin nor Referer: not a page of ours
            world.url + "/api/identities/link", json=link, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 403
        assert world.site.linker.links == []
        async with http.post(  # a Referer from our pages will do when Origin is missing
            world.url + "/api/identities/link",
            json=link,
            headers={"Referer": world.url + "/desktop/a1", "X-CSRF-Token": csrf},
        ) as r:
            assert r.status == 200
    assert world.site.linker.links == [("phone", "+390299999999", 1)]
    assert ("ann", "identity_link", "customer:1") in await actions(world)


async def test_dns_rebinding_host_names_are_refused(world: World) -> None:
    port = world.url.rsplit(":", 1)[1]
    async with world.logged_in("root") as (http, csrf):
        for path in ["/", "/api/agents", "/login"]:
            async with http.get(
                world.url + path, headers={"Host": f"rebind.attacker.example:{port}"}
            ) as r:
                assert r.status == 421, path
        async with http.post(
            world.url + "/api/agents/a1/state",
            json={"state": "ready"},
            headers={
                "Host": f"rebind.attacker.example:{port}",
                "Origin": f"http://rebind.attacker.example:{port}",
                "X-CSRF-Token": csrf,
            },
        ) as r:
            assert r.status == 421
        async with http.get(world.url + "/api/agents", headers={"Host": f"localhost:{port}"}) as r:
            assert r.status == 200  # our own names answer
    assert world.site.agents.requests == []


async def test_websockets_need_the_session_and_our_origin(world: World) -> None:
    async with world.logged_in("ann") as (http, _):
        for headers in [{"Origin": "http://evil.example"}, {}]:
            with pytest.raises(WSServerHandshakeError) as refused:
                await http.ws_connect(world.url + "/ws/agent/a1", headers=headers)
            assert refused.value.status == 403
        assert not world.hub.is_connected("a1")
        async with http.ws_connect(world.url + "/ws/agent/a1", headers=world.headers()) as ws:
            await eventually(lambda: _true(world.hub.is_connected("a1")), timeout=3)
            pushed = asyncio.create_task(world.hub.push_screen_pop("a1", {"linkedid": "L1"}, 3))
            frame = await ws.receive_json(timeout=3)
            await ws.send_json({"type": "ack", "pop_id": frame["pop_id"]})
            assert await pushed


async def test_logging_out_closes_the_open_desktop_socket(world: World) -> None:
    async with world.logged_in("ann") as (http, csrf):
        ws = await http.ws_connect(world.url + "/ws/agent/a1", headers=world.headers())
        await eventually(lambda: _true(world.hub.is_connected("a1")), timeout=3)
        async with http.post(world.url + "/logout", headers=world.headers(csrf)) as r:
            assert r.status == 200  # followed to the login form
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await eventually(lambda: _true(not world.hub.is_connected("a1")), timeout=3)


def _true(value: bool) -> None:
    assert value


# --- who may reach whom ------------------------------------------------------------------------


async def test_an_agent_reaches_only_their_own_desktop_state_and_socket(world: World) -> None:
    async with world.logged_in("ann") as (http, csrf):
        async with http.get(world.url + "/desktop/a1") as r:
            assert r.status == 200
        async with http.get(world.url + "/desktop/a2") as r:
            assert r.status == 403
        async with http.get(world.url + "/api/agents/a2") as r:
            assert r.status == 403
        async with http.post(
            world.url + "/api/agents/a2/state",
            json={"state": "logged_out"},
            headers=world.headers(csrf),
        ) as r:
            assert r.status == 403
        with pytest.raises(WSServerHandshakeError) as refused:
            await http.ws_connect(world.url + "/ws/agent/a2", headers=world.headers())
        assert refused.value.status == 403
        async with http.get(world.url + "/wallboard") as r:
            assert r.status == 403  # supervision is for supervisors
        async with http.get(world.url + "/api/agents") as r:
            assert [a["agent_id"] for a in await r.json()] == ["a1"]
        async with http.get(world.url + "/api/calls/recent") as r:
            assert r.status == 200
        assert world.site.calls.agent_filters[-1] == {"a1"}
    assert world.site.agents.requests == []
    assert not world.hub.is_connected("a2")


async def test_a_supervisor_acts_within_their_teams_only_and_is_audited(world: World) -> None:
    async with (
        world.logged_in("ann") as (ann, _),
        ann.ws_connect(world.url + "/ws/agent/a1", headers=world.headers()) as desktop,
        world.logged_in("blue-lead") as (http, csrf),
    ):
        await eventually(lambda: _true(world.hub.is_connected("a1")), timeout=3)
        async with http.post(
            world.url + "/api/agents/a1/state",
            json={"state": "not_ready", "reason": "Coaching"},
            headers=world.headers(csrf),
        ) as r:
            assert r.status == 200
        # Ann's desktop is told who set her state, and why.
        assert await desktop.receive_json(timeout=3) == {
            "type": "notice",
            "payload": {
                "kind": "state_forced",
                "by": "blue-lead",
                "state": "not_ready",
                "reason": "Coaching",
            },
        }
        async with http.post(
            world.url + "/api/agents/a2/state",
            json={"state": "logged_out"},
            headers=world.headers(csrf),
        ) as r:
            assert r.status == 403
        async with http.get(world.url + "/desktop/a2") as r:
            assert r.status == 403
        async with http.get(world.url + "/api/agents") as r:
            assert [a["agent_id"] for a in await r.json()] == ["a1"]
        async with http.get(world.url + "/wallboard") as r:
            assert r.status == 200
        async with http.get(world.url + "/api/calls/recent") as r:
            assert r.status == 200
        assert world.site.calls.agent_filters[-1] == {"a1"}
    assert world.site.agents.requests == [("a1", "not_ready", "Coaching")]
    forced = [e for e in await world.accounts.audit_entries() if e.action == "agent_state_forced"]
    assert len(forced) == 1
    assert (forced[0].actor, forced[0].target) == ("blue-lead", "a1")
    assert forced[0].detail == {"state": "not_ready", "reason": "Coaching"}
    assert forced[0].remote == "127.0.0.1"


async def test_an_admin_reaches_everything(world: World) -> None:
    async with world.logged_in("root") as (http, _):
        async with http.get(world.url + "/api/agents") as r:
            assert [a["agent_id"] for a in await r.json()] == ["a1", "a2"]
        async with http.get(world.url + "/api/calls/recent") as r:
            assert len(await r.json()) == 5
            assert r.headers["Cache-Control"] == "no-store"
        assert world.site.calls.agent_filters[-1] is None
        async with http.get(world.url + "/desktop/ghost") as r:
            assert r.status == 404  # past the policy; the page itself does not know it


# --- API tokens --------------------------------------------------------------------------------


async def test_bearer_tokens_need_no_csrf_and_stop_when_revoked(world: World) -> None:
    gus = await world.accounts.account_by_name("gus")
    assert gus is not None
    token = credentials.new_api_token()
    token_id = await world.accounts.create_token(
        account_id=gus.id, token_digest=credentials.digest(token), label="script"
    )
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            world.url + "/api/agents/a2/state", json={"state": "ready"}, headers=auth
        ) as r:
            assert r.status == 200  # no cookie, no CSRF: browsers never send this by themselves
        async with http.post(
            world.url + "/api/agents/a1/state", json={"state": "ready"}, headers=auth
        ) as r:
            assert r.status == 403  # scoped to its account: gus is an agent of a2
        async with http.get(world.url + "/api/session", headers=auth) as r:
            me = await r.json()
            assert (me["username"], me["csrf_token"]) == ("gus", None)
        async with http.ws_connect(world.url + "/ws/agent/a2", headers=auth) as ws:
            assert not ws.closed
        async with http.post(world.url + "/logout", headers=auth) as r:
            assert r.status == 400
        async with http.get(
            world.url + "/api/session", headers={"Authorization": "Bearer cnt_forged"}
        ) as r:
            assert r.status == 401
        assert await world.accounts.revoke_token(token_id, now=world.clock())
        async with http.get(world.url + "/api/session", headers=auth) as r:
            assert r.status == 401
    assert world.site.agents.requests == [("a2", "ready", "")]


# --- the API description -----------------------------------------------------------------------


async def test_openapi_lists_exactly_the_json_routes_served(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client)
    add_openapi(site.app)
    served = {
        (r.resource.canonical, r.method.lower())
        for r in site.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/")
        and r.method not in ("HEAD", "*")
    }
    async with TestServer(site.app, host="127.0.0.1", port=0) as server:
        site.access.allow_local(server.port or 0)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/api/openapi.json") as r,
        ):
            assert r.status == 200  # no login: it describes, it holds no data
            doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == served
    for path, item in doc["paths"].items():
        assert ROUTE_RULES[path] is not None
        for operation in item.values():
            assert "200" in operation["responses"]


async def test_logging_in_again_ends_the_session_the_browser_had(world: World) -> None:
    async with world.logged_in("root") as (http, _):
        before = http.cookie_jar.filter_cookies(URL(world.url))
        await web_login(http, world.url, "blue-lead", PASSWORD)  # e.g. a planted session id
        async with world.jar() as replay:
            replay.cookie_jar.update_cookies(before, URL(world.url))
            async with replay.get(world.url + "/api/session") as r:
                assert r.status == 401
        async with http.get(world.url + "/api/session") as r:
            assert (await r.json())["username"] == "blue-lead"
