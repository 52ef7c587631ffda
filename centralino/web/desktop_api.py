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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypedDict

from aiohttp import web

from centralino.web.auth import current_principal, note_audit

log = logging.getLogger(__name__)

# Notes are a few sentences typed during a call; an essay belongs in a ticket.
MAX_NOTE_CHARS = 2000
# A linkedid is Asterisk's "1712345678.42" (or a chat's id): short.
MAX_LINKEDID_CHARS = 64
MAX_BODY_BYTES = 8192  # a note of MAX_NOTE_CHARS in UTF-8 plus the JSON around it

# The desktop's shortcuts, documented on the page; keys are `KeyboardEvent.key` values.
SHORTCUTS = (
    {"key": "r", "action": "ready", "label": "Ready"},
    {"key": "n", "action": "not_ready", "label": "Not ready (with the chosen reason)"},
    {"key": "w", "action": "wrap_up_done", "label": "Wrap-up done: save the outcome, go ready"},
)


class ShortcutView(TypedDict):
    key: str
    action: str
    label: str


class DeskConfigView(TypedDict):
    not_ready_reasons: list[str]
    outcomes: list[str]
    shortcuts: list[ShortcutView]


class NoteView(TypedDict):
    id: int
    customer_id: int | None
    linkedid: str | None
    agent_id: str
    author: str
    body: str
    created_at: str  # ISO 8601 with offset


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


DESK = web.AppKey("desk", _Desk)


def _error(status: int, message: str) -> web.Response:
    log.info("desktop API refused (%d): %s", status, message)
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return _error(415, "send application/json")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, "body too large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
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
    config = request.app[DESK].config
    view: DeskConfigView = {
        "not_ready_reasons": list(config.not_ready_reasons),
        "outcomes": list(config.outcomes),
        "shortcuts": [ShortcutView(**s) for s in SHORTCUTS],  # type: ignore[typeddict-item]
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


def add_desktop_api(
    app: web.Application,
    *,
    config: DeskConfig,
    records: DeskRecords,
    now: Callable[[], datetime],
) -> None:
    app[DESK] = _Desk(config=config, records=records, now=now)
    r = app.router
    r.add_get("/api/desktop/{agent_id}/config", desk_config)
    r.add_post("/api/agents/{agent_id}/outcome", set_outcome)
    r.add_get("/api/agents/{agent_id}/notes", list_notes)
    r.add_post("/api/agents/{agent_id}/notes", add_note)
