"""The tickets' kanban board API over real HTTP against real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centralino.access.models import Role
from centralino.adapters.pg_board import PgBoard
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.web.auth import add_access
from centralino.web.board import add_board
from context.service import ContextService
from tests.context.fakes import FakeClock
from tests.web.auth_helpers import add_token_user, login, make_access

Client = TestClient[web.Request, web.Application]
# Who acts (username -> API token): the blue team's supervisor and agents, a green agent.
TOKENS = {"sup": "sup-token", "amy": "amy-token", "bob": "bob-token", "gina": "gina-token"}
AGENT_TEAMS = {"a1": {"blue"}, "a2": {"blue"}, "g1": {"green"}}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


@pytest.fixture
async def client(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[Client]:
    context = ContextService(
        customers=PgCustomerStore(pool=pg_pool),
        timeline=PgTimelineStore(pool=pg_pool),
        tickets=PgTicketStore(pool=pg_pool),
        clock=FakeClock(),
    )
    app = web.Application()
    access = make_access(pg_pool, redis_client, agent_teams=AGENT_TEAMS)
    add_access(app, access)
    add_board(app, board=PgBoard(pool=pg_pool), context=context)
    await add_token_user(access, "sup", Role.SUPERVISOR, TOKENS["sup"], teams={"blue"})
    for name, agent in [("amy", "a1"), ("bob", "a2"), ("gina", "g1")]:
        await add_token_user(access, name, Role.AGENT, TOKENS[name], agent_id=agent)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        access.allow_local(c.port or 0)
        yield c


async def post(client: Client, url: str, body: dict[str, Any], who: str = "sup") -> tuple[int, Any]:
    async with client.post(url, json=body, headers=auth(who)) as resp:
        return resp.status, await resp.json()


async def get(client: Client, url: str, who: str = "sup") -> tuple[int, Any]:
    async with client.get(url, headers=auth(who)) as resp:
        return resp.status, await resp.json()


async def new_ticket(
    client: Client, title: str = "Rimborso ordine 4411", team: str = "blue"
) -> int:
    status, data = await post(
        client,
        "/api/tickets",
        {"title": title, "team": team, "owner": "agent101", "channel": "email"},
        who="sup" if team == "blue" else "gina",
    )
    assert status == 201
    return int(data["id"])


async def test_the_board_shows_a_teams_tickets_in_the_pipelines_columns(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    anna = await PgCustomerStore(pool=pg_pool).create(display_name="Anna Bianchi")
    status, _ = await post(
        client,
        "/api/tickets",
        {"title": "Fattura errata", "team": "blue", "customer_id": anna.id,
         "channel": "whatsapp", "owner": "agent102"},
    )  # fmt: skip
    assert status == 201
    await new_ticket(client, "Other team's", team="green")
    status, board = await get(client, "/api/board?team=blue")
    assert status == 200
    assert (
        board["pipeline"]["phases"][0] == "new"
        and ["new", "triage"] in board["pipeline"]["standard_moves"]
    )
    (card,) = board["cards"]
    assert (card["title"], card["phase"], card["customer"], card["channel"], card["owner"]) == (
        "Fattura errata", "new", "Anna Bianchi", "whatsapp", "agent102",
    )  # fmt: skip
    assert card["phase_since"]
    figures = {f["phase"]: f for f in board["figures"]}
    assert figures["new"]["tickets"] == 1 and figures["triage"]["tickets"] == 0
    assert figures["new"]["target_s"] == 3600.0


async def test_moves_along_the_path_and_off_it_with_a_reason(client: Client) -> None:
    ticket = await new_ticket(client)
    move = f"/api/tickets/{ticket}/move"
    along = {"from_phase": "new", "to_phase": "triage"}
    assert await post(client, move, along, "amy") == (
        200, {"id": ticket, "phase": "triage", "out_of_order": False},
    )  # fmt: skip
    status, data = await post(client, move, {"from_phase": "triage", "to_phase": "resolved"}, "amy")
    assert status == 400 and "say why" in data["error"]
    status, data = await post(
        client,
        move,
        {
            "from_phase": "triage",
            "to_phase": "resolved",
            "actor": "someone else",  # ignored: the logged-in account is the actor
            "reason": "fixed on the call",
        },
        "amy",
    )
    assert status == 200 and data["out_of_order"] is True
    status, history = await get(client, f"/api/tickets/{ticket}/history")
    assert status == 200
    assert [
        (h["phase"], h["from_phase"], h["out_of_order"], h["actor"], h["reason"]) for h in history
    ] == [
        ("new", None, False, "sup", ""),
        ("triage", "new", False, "amy", ""),
        ("resolved", "triage", True, "amy", "fixed on the call"),
    ]


async def test_two_racing_moves_one_wins_the_other_is_told(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    ticket = await new_ticket(client)
    move = f"/api/tickets/{ticket}/move"
    results = await asyncio.gather(
        post(client, move, {"from_phase": "new", "to_phase": "triage"}, "amy"),
        post(client, move, {"from_phase": "new", "to_phase": "closed", "reason": "dup"}, "bob"),
    )
    assert sorted(status for status, _ in results) == [200, 409]
    open_rows = await pg_pool.fetchval(
        "SELECT count(*) FROM ticket_phase_history WHERE ticket_id = $1 AND closed_at IS NULL",
        ticket,
    )
    assert (
        open_rows == 1
        and await pg_pool.fetchval(
            "SELECT count(*) FROM ticket_phase_history WHERE ticket_id = $1", ticket
        )
        == 2
    )
    # A move from a phase the ticket has left is a conflict, not a move.
    status, data = await post(client, move, {"from_phase": "new", "to_phase": "triage"}, "amy")
    assert status == 409 and "is now in" in data["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"from_phase": "new", "to_phase": "nowhere"},
        {"from_phase": "new", "to_phase": "new"},
        {"from_phase": "new"},
        {"from_phase": "new", "to_phase": "triage", "reason": "a" * 300},
    ],
)
async def test_bad_moves_are_400(client: Client, body: dict[str, Any]) -> None:
    ticket = await new_ticket(client)
    status, data = await post(client, f"/api/tickets/{ticket}/move", body)
    assert status == 400 and data["error"]


async def test_unknown_tickets_customers_and_no_token(client: Client) -> None:
    assert (
        await post(
            client,
            "/api/tickets/999/move",
            {"from_phase": "new", "to_phase": "triage"},
        )
    )[0] == 404
    assert (await get(client, "/api/tickets/999/history"))[0] == 404
    status, data = await post(
        client, "/api/tickets", {"title": "x", "team": "blue", "customer_id": 424242}
    )
    assert status == 400 and "no customer" in data["error"]
    async with client.get("/api/board?team=blue") as resp:
        assert resp.status == 401


async def test_a_board_is_its_teams_supervisors_and_agents_only(client: Client) -> None:
    ticket = await new_ticket(client)
    move = f"/api/tickets/{ticket}/move"
    assert (await get(client, "/api/board?team=blue", "bob"))[0] == 200  # a blue agent
    assert (await get(client, "/api/board?team=blue", "gina"))[0] == 403  # a green one
    assert (await get(client, "/api/board?team=", "sup"))[0] == 403  # every team: admins
    assert (await get(client, f"/api/tickets/{ticket}/history", "gina"))[0] == 403
    status, _ = await post(client, move, {"from_phase": "new", "to_phase": "triage"}, "gina")
    assert status == 403
    status, _ = await post(client, "/api/tickets", {"title": "x", "team": "blue"}, "gina")
    assert status == 403
    assert (await get(client, f"/api/tickets/{ticket}/history", "sup"))[1][-1]["phase"] == "new"


async def test_the_board_page_takes_the_login_session(client: Client) -> None:
    async with client.get("/board/blue", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
    await login(client, "sup")
    async with client.get("/board/blue") as resp:
        assert resp.status == 200
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert "token" not in (await resp.text()).lower()  # no API token field on the page
    async with client.get("/board/green") as resp:
        assert resp.status == 403
    # The page's script calls the API with the session cookie and its CSRF token.
    async with client.post("/api/tickets", json={"title": "From the page", "team": "blue"}) as resp:
        assert resp.status == 201
