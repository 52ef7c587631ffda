"""The agent desktop's API against real PostgreSQL (records, accounts, audit) and Redis (login
counters): configuration, wrap-up outcomes on the interaction record, notes; who may do what."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from centralino.access.models import Role
from centralino.adapters.pg_accounts import PgAccounts
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_desk import PgDeskRecords
from centralino.settings import AcdSettings
from centralino.web.desktop_api import ContextDeskTickets, DeskConfig, add_desktop_api
from centralino.web.openapi import add_openapi
from centralino.web.pages import DEPS
from context.clock import SystemClock
from context.service import ContextService
from tests.web.auth_helpers import add_user, login
from tests.web.test_pages import Site, build_site

REASONS = ("Break", "Lunch")
OUTCOMES = ("resolved", "follow_up")
HOSTILE = "<script>alert(1)</script> call back"


def desk_site(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> Site:
    site = build_site(pg_pool, redis_client)
    context = ContextService(
        customers=PgCustomerStore(pool=pg_pool),
        timeline=PgTimelineStore(pool=pg_pool),
        tickets=PgTicketStore(pool=pg_pool),
        clock=SystemClock(),
    )
    add_desktop_api(
        site.app,
        config=DeskConfig(not_ready_reasons=REASONS, outcomes=OUTCOMES),
        records=PgDeskRecords(pool=pg_pool),
        now=lambda: datetime.now(UTC),
        tickets=ContextDeskTickets(context=context),
    )
    return site


@asynccontextmanager
async def as_user(
    site: Site, username: str, role: Role, **kw: object
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(site.app, host="127.0.0.1", port=0)) as c:
        site.access.allow_local(c.port or 0)
        await add_user(site.access, username, role, **kw)  # type: ignore[arg-type]
        await login(c, username)
        yield c


async def a_call(pool: asyncpg.Pool, linkedid: str, agent_id: str) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO interactions (channel, direction, linkedid, agent_id, started_at)"
            " VALUES ('voice', 'inbound', $1, $2, now()) RETURNING id",
            linkedid,
            agent_id,
        )
    )


async def audit(pool: asyncpg.Pool) -> list[tuple[str | None, str, str | None]]:
    entries = await PgAccounts(pool=pool).audit_entries()
    return [(e.actor, e.action, e.target) for e in entries]


async def test_the_desktop_reads_its_reasons_outcomes_and_shortcuts(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)
    async with as_user(site, "ann", Role.AGENT, agent_id="a1", teams=["blue"]) as c:
        config = await (await c.get("/api/desktop/a1/config")).json()
        assert config["not_ready_reasons"] == list(REASONS)
        assert config["outcomes"] == list(OUTCOMES)
        assert {s["key"] for s in config["shortcuts"]} == {"r", "n", "w"}
        assert (await c.get("/api/desktop/a2/config")).status == 403  # not her desktop


async def test_a_wrap_up_outcome_lands_on_the_record_and_is_audited(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)
    record = await a_call(pg_pool, "1700000000.1", "a1")
    async with as_user(site, "ann", Role.AGENT, agent_id="a1", teams=["blue"]) as c:
        r = await c.post(
            "/api/agents/a1/outcome", json={"linkedid": "1700000000.1", "outcome": "follow_up"}
        )
        assert r.status == 200, await r.text()
        row = await pg_pool.fetchrow("SELECT * FROM interactions WHERE id = $1", record)
        assert row is not None
        assert (row["wrap_up_code"], row["wrap_up_by"]) == ("follow_up", "ann")
        assert ("ann", "wrap_up_outcome", "a1") in await audit(pg_pool)
        # Bad input: an unknown code, a call that is not hers, no linkedid, not JSON.
        bad = await c.post(
            "/api/agents/a1/outcome", json={"linkedid": "1700000000.1", "outcome": "<b>x"}
        )
        assert bad.status == 400
        other = await c.post(
            "/api/agents/a1/outcome", json={"linkedid": "9.9", "outcome": "resolved"}
        )
        assert other.status == 404
        assert (await c.post("/api/agents/a1/outcome", json={"outcome": "resolved"})).status == 400
        assert (await c.post("/api/agents/a1/outcome", data="resolved")).status == 415
        # Another agent's call, through another agent's desktop: forbidden before any lookup.
        await a_call(pg_pool, "1700000000.2", "a2")
        theirs = await c.post(
            "/api/agents/a2/outcome", json={"linkedid": "1700000000.2", "outcome": "resolved"}
        )
        assert theirs.status == 403
    row = await pg_pool.fetchrow(
        "SELECT wrap_up_code FROM interactions WHERE linkedid = '1700000000.2'"
    )
    assert row is not None and row["wrap_up_code"] is None


async def test_notes_are_stored_listed_as_text_and_audited(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)
    customer = await pg_pool.fetchval(
        "INSERT INTO customers (display_name) VALUES ('Ada') RETURNING id"
    )
    async with as_user(site, "ann", Role.AGENT, agent_id="a1", teams=["blue"]) as c:
        r = await c.post(
            "/api/agents/a1/notes",
            json={"text": HOSTILE, "customer_id": customer, "linkedid": "1700000000.3"},
        )
        assert r.status == 200, await r.text()
        note = await r.json()
        assert (note["body"], note["author"], note["customer_id"]) == (HOSTILE, "ann", customer)
        listed = await (await c.get(f"/api/agents/a1/notes?customer_id={customer}")).json()
        assert [n["body"] for n in listed] == [HOSTILE]
        by_call = await (await c.get("/api/agents/a1/notes?linkedid=1700000000.3")).json()
        assert [n["id"] for n in by_call] == [note["id"]]
        assert ("ann", "desk_note", "a1") in await audit(pg_pool)
        for body, status in [
            ({"text": "", "customer_id": customer}, 400),
            ({"text": "x" * 2001, "customer_id": customer}, 400),
            ({"text": "orphan"}, 400),  # neither a call nor a customer
            ({"text": "hi", "customer_id": "1"}, 400),
            ({"text": "hi", "customer_id": 999_999}, 404),
        ]:
            assert (await c.post("/api/agents/a1/notes", json=body)).status == status, body
        assert (await c.get("/api/agents/a1/notes")).status == 400
        assert (await c.get("/api/agents/a1/notes?customer_id=abc")).status == 400


async def test_a_supervisor_writes_on_their_teams_desktops_only(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)  # a1 and a2 are both in team blue
    async with as_user(site, "lead", Role.SUPERVISOR, teams=["red"]) as c:
        r = await c.post("/api/agents/a1/notes", json={"text": "hi", "linkedid": "1.1"})
        assert r.status == 403
    async with as_user(site, "blue-lead", Role.SUPERVISOR, teams=["blue"]) as c:
        r = await c.post("/api/agents/a1/notes", json={"text": "coached", "linkedid": "1.1"})
        assert r.status == 200
        assert (await r.json())["author"] == "blue-lead"


async def test_the_desk_without_csrf_or_from_another_origin_is_refused(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)
    async with as_user(site, "ann", Role.AGENT, agent_id="a1", teams=["blue"]) as c:
        no_csrf = await c.post(
            "/api/agents/a1/notes",
            json={"text": "hi", "linkedid": "1.1"},
            headers={"X-CSRF-Token": "forged"},
        )
        assert no_csrf.status == 403
        foreign = await c.post(
            "/api/agents/a1/notes",
            json={"text": "hi", "linkedid": "1.1"},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign.status == 403
    assert await pg_pool.fetchval("SELECT count(*) FROM desk_notes") == 0


async def test_an_agent_chooses_a_configured_reason_a_supervisor_any(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_site(pg_pool, redis_client)
    site.app[DEPS] = dataclasses.replace(site.app[DEPS], not_ready_reasons=frozenset(REASONS))
    async with as_user(site, "ann", Role.AGENT, agent_id="a1", teams=["blue"]) as c:
        made_up = await c.post("/api/agents/a1/state", json={"state": "not_ready", "reason": "Nap"})
        assert made_up.status == 400
        lunch = await c.post("/api/agents/a1/state", json={"state": "not_ready", "reason": "Lunch"})
        assert lunch.status == 200
    async with as_user(site, "blue-lead", Role.SUPERVISOR, teams=["blue"]) as c:
        forced = await c.post(
            "/api/agents/a1/state", json={"state": "not_ready", "reason": "Coaching"}
        )
        assert forced.status == 200


def test_reasons_and_outcomes_are_validated_as_settings() -> None:
    assert AcdSettings(not_ready_reasons=[" Lunch "]).not_ready_reasons == ["Lunch"]
    for bad in ([], [""], ["Lunch", "Lunch"], ["x" * 65]):
        with pytest.raises(ValidationError):
            AcdSettings(not_ready_reasons=bad)
    for bad_codes in ([], ["Resolved"], ["two words"], ["<b>"]):
        with pytest.raises(ValidationError):
            AcdSettings(wrap_up_outcomes=bad_codes)


async def test_openapi_describes_the_desk_routes(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)
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
            doc = await r.json()
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == served
    assert ("/api/agents/{agent_id}/notes", "post") in described


async def test_an_agent_opens_and_moves_a_ticket_off_path_only_with_a_reason(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = desk_site(pg_pool, redis_client)
    customer = await pg_pool.fetchval(
        "INSERT INTO customers (display_name) VALUES ('Ada') RETURNING id"
    )
    async with as_user(site, "ann", Role.AGENT, agent_id="a1", teams=["blue"]) as c:
        config = await (await c.get("/api/desktop/a1/config")).json()
        assert config["ticket_phases"][0] == "new"
        r = await c.post("/api/agents/a1/tickets", json={"customer_id": customer, "title": HOSTILE})
        assert r.status == 200, await r.text()
        ticket = await r.json()
        assert (ticket["title"], ticket["phase"]) == (HOSTILE, "new")
        move = f"/api/agents/a1/tickets/{ticket['id']}/move"
        # new -> triage is the usual path; triage -> resolved skips steps: a reason is needed.
        ok = await c.post(move, json={"to_phase": "triage"})
        assert (await ok.json())["out_of_order"] is False
        skip = await c.post(move, json={"to_phase": "resolved"})
        assert skip.status == 400 and "reason" in (await skip.json())["error"]
        assert await pg_pool.fetchval("SELECT phase FROM tickets WHERE id = $1", ticket["id"]) == (
            "triage"
        )
        reasoned = await c.post(move, json={"to_phase": "resolved", "reason": "fixed on the call"})
        assert reasoned.status == 200
        assert (await reasoned.json()) == {
            "id": ticket["id"],
            "title": HOSTILE,
            "phase": "resolved",
            "out_of_order": True,
        }
        history = await pg_pool.fetchrow(
            "SELECT out_of_order, reason, actor FROM ticket_phase_history"
            " WHERE ticket_id = $1 AND phase = 'resolved'",
            ticket["id"],
        )
        assert history is not None
        assert tuple(history) == (True, "fixed on the call", "ann")
        actions = [a for _, a, _ in await audit(pg_pool)]
        assert "ticket_open" in actions and actions.count("ticket_move") == 2
        # Bad input.
        for path, body, status in [
            (move, {"to_phase": "resolved", "reason": "again"}, 400),  # already there
            (move, {"to_phase": "limbo"}, 400),
            ("/api/agents/a1/tickets/999999/move", {"to_phase": "triage"}, 404),
            ("/api/agents/a1/tickets/x/move", {"to_phase": "triage"}, 400),
            ("/api/agents/a1/tickets", {"customer_id": 999_999, "title": "t"}, 404),
            ("/api/agents/a1/tickets", {"customer_id": customer, "title": " "}, 400),
            ("/api/agents/a1/tickets", {"title": "t"}, 400),
        ]:
            assert (await c.post(path, json=body)).status == status, (path, body)
        assert (await c.post(f"/api/agents/a2/tickets/{ticket['id']}/move", json={})).status == 403
