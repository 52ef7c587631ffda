"""The agent desktop's own API: its configuration (not-ready reasons, wrap-up outcome codes,
keyboard shortcuts), the wrap-up outcome of a call and notes on a call or a customer.

Who may call these is `centralino.web.auth`'s business (`Rule.AGENT_SCOPED`: an agent on their
own desktop, a supervisor for their teams' agents, an admin for anyone); every change is
audited here (`note_audit`) with who did it for which agent.

Routes added by `add_desktop_api`:
    GET  /api/desktop/{agent_id}/config     DeskConfigView
    POST /api/agents/{agent_id}/outcome     {"linkedid", "outcome"} -> {"ok": true}
                                            (404: no record of that call for that agent yet)
    GET  /api/agents/{agent_id}/notes       ?customer_id=N&linkedid=X -> [NoteView]
    POST /api/agents/{agent_id}/notes       {"text", "customer_id"?, "linkedid"?} -> NoteView
    POST /api/agents/{agent_id}/tickets     {"customer_id", "title"} -> TicketMoveView (opened)
    POST /api/agents/{agent_id}/tickets/{ticket_id}/move
                                            {"to_phase", "reason"} -> TicketMoveView; a move off
                                            the pipeline's standard path needs a reason (400)
    POST /api/agents/{agent_id}/transfer    {"queue"} -> {"ok": true}: the agent's caller to
                                            `<queue>@centralino-transfer` (409: no call)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypedDict

from aiohttp import web

from centralino.desk_transfer import TransferRefused
from centralino.web.auth import current_principal, note_audit
from centralino.web.pages import json_body
from context.errors import IllegalMove, NotFound, UnknownPhase
from context.service import ContextService
from context.tickets import DEFAULT_PIPELINE, Pipeline

log = logging.getLogger(__name__)

# Notes are a few sentences typed during a call; an essay belongs in a ticket.
MAX_NOTE_CHARS = 2000
# A linkedid is Asterisk's "1712345678.42" (or a chat's id): short.
MAX_LINKEDID_CHARS = 64
MAX_BODY_BYTES = 8192  # a note of MAX_NOTE_CHARS in UTF-8 plus the JSON around it
MAX_TITLE_CHARS = 200  # a ticket's title is a line, its story goes in notes
MAX_MOVE_REASON_CHARS = 500


class ShortcutView(TypedDict):
    key: str
    action: str
    label: str


# The desktop's shortcuts, documented on the page; keys are `KeyboardEvent.key` values.
SHORTCUTS: tuple[ShortcutView, ...] = (
    {"key": "r", "action": "ready", "label": "Ready"},
    {"key": "n", "action": "not_ready", "label": "Not ready (with the chosen reason)"},
    {"key": "w", "action": "wrap_up_done", "label": "Wrap-up done: save the outcome, go ready"},
)


class DeskConfigView(TypedDict):
    not_ready_reasons: list[str]
    outcomes: list[str]
    shortcuts: list[ShortcutView]
    ticket_phases: list[str]  # the pipeline's phases in board order ([] without tickets)
    transfer_queues: list[str]  # where the current call can be transferred ([]: nowhere)


class NoteView(TypedDict):
    id: int
    customer_id: int | None
    linkedid: str | None
    agent_id: str
    author: str
    body: str
    created_at: str  # ISO 8601 with offset


class TicketMoveView(TypedDict):
    id: int
    title: str
    phase: str
    out_of_order: bool  # the move skipped the pipeline's standard path (with its reason)


class DeskTickets(Protocol):
    """Tickets as the desktop works them (`ContextDeskTickets` over `context`)."""

    def phases(self) -> list[str]: ...

    async def open(self, *, customer_id: int, title: str, actor: str) -> TicketMoveView:
        """Raises `LookupError` for an unknown customer."""
        ...

    async def move(
        self, ticket_id: int, to_phase: str, *, actor: str, reason: str
    ) -> TicketMoveView:
        """Raises `LookupError` (unknown ticket), `ValueError` (unknown phase, illegal move,
        or a move off the standard path without a reason)."""
        ...


class ContextDeskTickets:
    """`DeskTickets` over the context service: its pipeline decides what is standard."""

    def __init__(self, *, context: ContextService) -> None:
        self._context = context

    def _pipeline(self) -> Pipeline:
        return self._context.pipelines[DEFAULT_PIPELINE.name]

    def phases(self) -> list[str]:
        return list(self._pipeline().phases)

    async def open(self, *, customer_id: int, title: str, actor: str) -> TicketMoveView:
        try:
            await self._context.customers.get(customer_id)
        except NotFound as exc:
            raise LookupError(str(exc)) from exc
        ticket = await self._context.open_ticket(customer_id=customer_id, title=title, actor=actor)
        return {
            "id": ticket.id,
            "title": ticket.title,
            "phase": ticket.phase,
            "out_of_order": False,
        }

    async def move(
        self, ticket_id: int, to_phase: str, *, actor: str, reason: str
    ) -> TicketMoveView:
        try:
            ticket = await self._context.tickets.get(ticket_id)
        except NotFound as exc:
            raise LookupError(str(exc)) from exc
        pipeline = self._context.pipelines.get(ticket.pipeline, self._pipeline())
        if not pipeline.is_standard(ticket.phase, to_phase) and not reason:
            raise ValueError(
                f"{ticket.phase} -> {to_phase} is not the usual path: say why (reason)"
            )
        try:
            move = await self._context.move_ticket(ticket_id, to_phase, actor=actor, reason=reason)
        except (UnknownPhase, IllegalMove) as exc:
            raise ValueError(str(exc)) from exc
        moved = move.ticket
        return {
            "id": moved.id,
            "title": moved.title,
            "phase": moved.phase,
            "out_of_order": move.opened.out_of_order,
        }


class DeskTransfer(Protocol):
    """`centralino.desk_transfer.AmiDeskTransfer`."""

    queues: list[str]

    async def transfer(self, agent_id: str, *, queue: str) -> str:
        """The agent's caller to `queue`; raises `ValueError` (unknown queue), `LookupError`
        (unknown agent) or `TransferRefused` (no call, AMI down or refusing) -> 409."""
        ...


class DeskRecords(Protocol):
    """What lasts (`centralino.adapters.pg_desk.PgDeskRecords`)."""

    async def set_outcome(
        self, *, linkedid: str, agent_id: str, code: str, by: str, at: datetime
    ) -> bool: ...

    async def add_note(
        self,
        *,
        agent_id: str,
        author: str,
        body: str,
        customer_id: int | None,
        linkedid: str | None,
    ) -> NoteView: ...

    async def notes(self, *, customer_id: int | None, linkedid: str | None) -> list[NoteView]: ...


@dataclass(frozen=True, slots=True)
class DeskConfig:
    not_ready_reasons: Sequence[str]
    outcomes: Sequence[str]


@dataclass(frozen=True, slots=True)
class _Desk:
    config: DeskConfig
    records: DeskRecords
    now: Callable[[], datetime]
    tickets: DeskTickets | None = None
    transfer: DeskTransfer | None = None


DESK = web.AppKey("desk", _Desk)


def _error(status: int, message: str) -> web.Response:
    log.info("desktop API refused (%d): %s", status, message)
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object posted (the pages' reader, with room for a note); refusals logged."""
    body = await json_body(request, max_bytes=MAX_BODY_BYTES)
    if isinstance(body, web.Response):
        log.info("desktop API refused (%d): %s", body.status, body.text)
    return body


def _linkedid(value: object) -> str | web.Response | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_LINKEDID_CHARS:
        return _error(400, f"linkedid must be a string of at most {MAX_LINKEDID_CHARS} characters")
    return value


def _customer_id(value: object) -> int | web.Response | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return _error(400, "customer_id must be a positive integer")
    return value


async def desk_config(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    config = desk.config
    view: DeskConfigView = {
        "not_ready_reasons": list(config.not_ready_reasons),
        "outcomes": list(config.outcomes),
        "shortcuts": list(SHORTCUTS),
        "ticket_phases": desk.tickets.phases() if desk.tickets is not None else [],
        "transfer_queues": list(desk.transfer.queues) if desk.transfer is not None else [],
    }
    return web.json_response(view)


async def set_outcome(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    agent_id = request.match_info["agent_id"]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    linkedid, outcome = _linkedid(body.get("linkedid")), body.get("outcome")
    if isinstance(linkedid, web.Response):
        return linkedid
    if linkedid is None:
        return _error(400, "linkedid is required")
    if not isinstance(outcome, str) or outcome not in desk.config.outcomes:
        return _error(400, f"outcome must be one of {list(desk.config.outcomes)}")
    principal = current_principal(request)
    stored = await desk.records.set_outcome(
        linkedid=linkedid, agent_id=agent_id, code=outcome, by=principal.username, at=desk.now()
    )
    if not stored:
        return _error(404, f"no record of call {linkedid} for agent {agent_id} yet")
    note_audit(request, "wrap_up_outcome", agent_id, linkedid=linkedid, outcome=outcome)
    return web.json_response({"ok": True})


async def list_notes(request: web.Request) -> web.Response:
    linkedid = _linkedid(request.query.get("linkedid"))
    if isinstance(linkedid, web.Response):
        return linkedid
    raw_customer = request.query.get("customer_id")
    customer_id: int | web.Response | None = None
    if raw_customer:
        customer_id = _customer_id(int(raw_customer) if raw_customer.isdigit() else -1)
    if isinstance(customer_id, web.Response):
        return customer_id
    if customer_id is None and linkedid is None:
        return _error(400, "give customer_id or linkedid")
    notes = await request.app[DESK].records.notes(customer_id=customer_id, linkedid=linkedid)
    return web.json_response(notes)


async def add_note(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent_id"]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTE_CHARS:
        return _error(400, f"text must be 1..{MAX_NOTE_CHARS} characters")
    linkedid, customer_id = _linkedid(body.get("linkedid")), _customer_id(body.get("customer_id"))
    if isinstance(linkedid, web.Response):
        return linkedid
    if isinstance(customer_id, web.Response):
        return customer_id
    if customer_id is None and linkedid is None:
        return _error(400, "a note belongs to a call (linkedid) or a customer (customer_id)")
    principal = current_principal(request)
    try:
        note = await request.app[DESK].records.add_note(
            agent_id=agent_id,
            author=principal.username,
            body=text.strip(),
            customer_id=customer_id,
            linkedid=linkedid,
        )
    except LookupError as exc:
        return _error(404, str(exc))
    note_audit(
        request,
        "desk_note",
        agent_id,
        note_id=note["id"],
        customer_id=customer_id,
        linkedid=linkedid,
    )
    return web.json_response(note)


async def open_ticket(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    if desk.tickets is None:
        return _error(501, "tickets are not configured")
    agent_id = request.match_info["agent_id"]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    title, customer_id = body.get("title"), _customer_id(body.get("customer_id"))
    if isinstance(customer_id, web.Response):
        return customer_id
    if customer_id is None:
        return _error(400, "customer_id is required")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS:
        return _error(400, f"title must be 1..{MAX_TITLE_CHARS} characters")
    actor = current_principal(request).username
    try:
        ticket = await desk.tickets.open(customer_id=customer_id, title=title.strip(), actor=actor)
    except LookupError as exc:
        return _error(404, str(exc))
    note_audit(request, "ticket_open", agent_id, ticket_id=ticket["id"], customer_id=customer_id)
    return web.json_response(ticket)


async def move_ticket(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    if desk.tickets is None:
        return _error(501, "tickets are not configured")
    agent_id = request.match_info["agent_id"]
    raw_id = request.match_info["ticket_id"]
    if not raw_id.isdigit():
        return _error(400, "ticket id must be a positive integer")
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    to_phase, reason = body.get("to_phase"), body.get("reason", "")
    if not isinstance(to_phase, str) or to_phase not in desk.tickets.phases():
        return _error(400, f"to_phase must be one of {desk.tickets.phases()}")
    if not isinstance(reason, str) or len(reason) > MAX_MOVE_REASON_CHARS:
        return _error(400, f"reason must be a string of at most {MAX_MOVE_REASON_CHARS} characters")
    actor = current_principal(request).username
    try:
        moved = await desk.tickets.move(int(raw_id), to_phase, actor=actor, reason=reason.strip())
    except LookupError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    note_audit(
        request,
        "ticket_move",
        agent_id,
        ticket_id=moved["id"],
        to_phase=to_phase,
        out_of_order=moved["out_of_order"],
        reason=reason.strip(),
    )
    return web.json_response(moved)


async def transfer_call(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    if desk.transfer is None:
        return _error(501, "transfers are not configured")
    agent_id = request.match_info["agent_id"]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    queue = body.get("queue")
    if not isinstance(queue, str) or queue not in desk.transfer.queues:
        return _error(400, f"queue must be one of {desk.transfer.queues}")
    try:
        channel = await desk.transfer.transfer(agent_id, queue=queue)
    except LookupError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    except TransferRefused as exc:  # no call, or the link failed: the agent sees why
        return _error(409, str(exc))
    note_audit(request, "call_transfer", agent_id, queue=queue, channel=channel)
    return web.json_response({"ok": True, "queue": queue})


def add_desktop_api(
    app: web.Application,
    *,
    config: DeskConfig,
    records: DeskRecords,
    now: Callable[[], datetime],
    tickets: DeskTickets | None = None,
    transfer: DeskTransfer | None = None,
) -> None:
    app[DESK] = _Desk(config=config, records=records, now=now, tickets=tickets, transfer=transfer)
    r = app.router
    r.add_get("/api/desktop/{agent_id}/config", desk_config)
    r.add_post("/api/agents/{agent_id}/outcome", set_outcome)
    r.add_get("/api/agents/{agent_id}/notes", list_notes)
    r.add_post("/api/agents/{agent_id}/notes", add_note)
    r.add_post("/api/agents/{agent_id}/tickets", open_ticket)
    r.add_post("/api/agents/{agent_id}/tickets/{ticket_id}/move", move_ticket)
    r.add_post("/api/agents/{agent_id}/transfer", transfer_call)
