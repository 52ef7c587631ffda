"""The tickets' kanban board: a page per team (`GET /board/{team}`, columns = the pipeline's
phases) and its JSON API, for the team's supervisors and agents and for admins
(centralino/web/scopes.py; only admins see every team at once). The logged-in account is the
actor of a creation or a move.

    GET  /api/board?team=&pipeline=      the pipeline and its cards (customer, channel, owner,
                                         when the ticket entered its phase), and per phase the
                                         team's figures: tickets, oldest, late (context/board.py)
    POST /api/tickets                    {"title", "team", "owner"?, "channel"?, "customer_id"?,
                                          } → 201 {"id"}
    POST /api/tickets/{id}/move          {"from_phase", "to_phase", "reason"?}
    GET  /api/tickets/{id}/history       every phase it went through: who, when, why

A move names the phase the mover saw (`from_phase`): if the ticket has moved since, the
answer is 409 and nothing changes (two racing moves: one wins, the other is told). A move off
the pipeline's standard path (skipping, going back, reopening) needs a reason (400 without),
which the history keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from centralino.adapters.pg_board import PgBoard
from centralino.web.auth import current_principal
from centralino.web.pages import CSP, STATIC_DIR
from centralino.web.scopes import forbidden, may_see_team
from context.board import phase_figures
from context.errors import IllegalMove, NotFound, UnknownPhase
from context.service import ContextService
from context.tickets import Pipeline

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 200  # titles, names, reasons


@dataclass(frozen=True, slots=True)
class _Board:
    board: PgBoard
    context: ContextService
    now: Callable[[], datetime]


BOARD = web.AppKey("board", _Board)


def add_board(app: web.Application, *, board: PgBoard, context: ContextService) -> None:
    app[BOARD] = _Board(board, context, context.clock.now)
    app.router.add_get("/board/{team}", board_page)
    app.router.add_get("/api/board", get_board)
    app.router.add_post("/api/tickets", create_ticket)
    app.router.add_post("/api/tickets/{ticket_id}/move", move_ticket)
    app.router.add_get("/api/tickets/{ticket_id}/history", ticket_history)


async def board_page(request: web.Request) -> web.StreamResponse:
    # The page holds no data: everything comes through the API, checked again there.
    team = request.match_info["team"]
    if not may_see_team(request, team):
        return forbidden(request, f"the board of {team[:MAX_TEXT_CHARS]}")
    response = web.FileResponse(STATIC_DIR / "board.html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _error(request: web.Request, status: int, why: str) -> web.Response:
    log.warning("%s refused (%d): %s", request.path, status, why)
    return web.json_response({"error": why}, status=status)


def _pipeline(board: _Board, name: str) -> Pipeline | None:
    return board.context.pipelines.get(name)


async def get_board(request: web.Request) -> web.Response:
    board = request.app[BOARD]
    team = request.query.get("team", "")
    pipeline = _pipeline(board, request.query.get("pipeline", "default"))
    if pipeline is None or len(team) > MAX_TEXT_CHARS:
        return _error(request, 400, "unknown pipeline or bad team")
    if not may_see_team(request, team):
        return forbidden(request, f"the board of {team or 'every team'}")
    cards = await board.board.cards(team=team, pipeline=pipeline.name)
    now = board.now()
    figures = phase_figures(
        pipeline.phases,
        ((c["phase"], datetime.fromisoformat(c["phase_since"])) for c in cards),
        now=now,
    )
    return web.json_response(
        {
            "pipeline": {
                "name": pipeline.name,
                "phases": list(pipeline.phases),
                "standard_moves": sorted([a, b] for a, b in pipeline.standard_moves),
                "terminal": sorted(pipeline.terminal),
            },
            "cards": cards,
            "figures": [asdict(f) for f in figures],
            "now": now.isoformat(),
        }
    )


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    if (request.content_length or 0) > 8192:
        return None
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key, None if required else "")
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS or (required and not value):
        return None
    return value.strip()


async def create_ticket(request: web.Request) -> web.Response:
    board = request.app[BOARD]
    data = await _json_object(request)
    if data is None:
        return _error(request, 400, "expected a JSON object")
    fields = {k: _text(data, k, required=k in {"title", "team"}) for k in
              ("title", "team", "owner", "channel")}  # fmt: skip
    customer_id = data.get("customer_id")
    if any(v is None for v in fields.values()):
        return _error(request, 400, "title and team are required strings")
    if not may_see_team(request, str(fields["team"])):
        return forbidden(request, f"tickets of {fields['team']}")
    if customer_id is not None and not isinstance(customer_id, int):
        return _error(request, 400, "customer_id is an integer")
    pipeline = _pipeline(board, str(data.get("pipeline", "default")))
    if pipeline is None:
        return _error(request, 400, "unknown pipeline")
    try:
        ticket_id = await board.board.create(
            pipeline,
            title=str(fields["title"]),
            customer_id=customer_id,
            team=str(fields["team"]),
            owner=str(fields["owner"]),
            channel=str(fields["channel"]),
            actor=current_principal(request).username,
            now=board.now(),
        )
    except asyncpg.ForeignKeyViolationError:
        return _error(request, 400, f"no customer {customer_id}")
    return web.json_response({"id": ticket_id}, status=201)


async def _refuse_ticket(
    request: web.Request, board: _Board, ticket_id: int
) -> web.Response | None:
    """404 for no such ticket, 403 for another team's; None when the account may act on it."""
    team = await board.board.team_of(ticket_id)
    if team is None:
        return _error(request, 404, f"no ticket {ticket_id}")
    if not may_see_team(request, team):
        return forbidden(request, f"tickets of {team}")
    return None


def _ticket_id(request: web.Request) -> int | None:
    raw = request.match_info["ticket_id"]
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def move_ticket(request: web.Request) -> web.Response:
    board = request.app[BOARD]
    ticket_id = _ticket_id(request)
    data = await _json_object(request)
    if ticket_id is None or data is None:
        return _error(request, 400, "a ticket id and a JSON object are expected")
    from_phase, to_phase = _text(data, "from_phase"), _text(data, "to_phase")
    reason = _text(data, "reason", required=False)
    if from_phase is None or to_phase is None or reason is None:
        return _error(request, 400, "from_phase and to_phase are required strings")
    if (refused := await _refuse_ticket(request, board, ticket_id)) is not None:
        return refused
    actor = current_principal(request).username
    context = board.context
    try:
        ticket = await context.tickets.get(ticket_id)
    except NotFound as exc:
        return _error(request, 404, str(exc))
    pipeline = context.pipelines[ticket.pipeline]
    if ticket.phase != from_phase:
        return _error(request, 409, f"ticket {ticket_id} is now in {ticket.phase!r}")
    if to_phase not in pipeline.phases or to_phase == from_phase:
        return _error(request, 400, f"cannot move to {to_phase!r}")
    if not pipeline.is_standard(from_phase, to_phase) and not reason:
        return _error(request, 400, f"{from_phase} → {to_phase} is off the usual path: say why")
    try:
        move = await context.move_ticket(ticket_id, to_phase, actor=actor, reason=reason)
    except IllegalMove as exc:  # another move won the race meanwhile
        return _error(request, 409, str(exc))
    except UnknownPhase as exc:
        return _error(request, 400, str(exc))
    return web.json_response(
        {"id": ticket_id, "phase": move.ticket.phase, "out_of_order": move.opened.out_of_order}
    )


async def ticket_history(request: web.Request) -> web.Response:
    board = request.app[BOARD]
    ticket_id = _ticket_id(request)
    if ticket_id is None:
        return _error(request, 400, "a ticket id is a number")
    if (refused := await _refuse_ticket(request, board, ticket_id)) is not None:
        return refused
    try:
        await board.context.tickets.get(ticket_id)
    except NotFound as exc:
        return _error(request, 404, str(exc))
    history = await board.context.tickets.history(ticket_id)
    return web.json_response(
        [
            {
                "phase": h.phase,
                "from_phase": h.from_phase,
                "opened_at": h.opened_at.isoformat(),
                "closed_at": None if h.closed_at is None else h.closed_at.isoformat(),
                "out_of_order": h.out_of_order,
                "actor": h.actor,
                "reason": h.reason,
            }
            for h in history
        ]
    )
