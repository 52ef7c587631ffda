"""`POST /api/agents/{agent_id}/supervise` `{"mode": "listen"|"whisper"|"barge"}`: rings the
signed-in supervisor's own phone into the agent's call (`centralino.supervision`).

Who: a supervisor for their teams' agents, an admin for anyone (the route's AGENT_SCOPED rule
checks the teams; this handler checks the role, since an agent may reach their own path too).
Whose phone: the supervisor's account's agent id names it (`centralino user add … --agent-id`),
never the request: a request naming a phone could make any phone a listener. Audited.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from centralino.access.models import Role
from centralino.supervision import Supervision
from centralino.web.auth import current_principal, note_audit
from contact.supervision import SupervisionRefused

log = logging.getLogger(__name__)

SUPERVISION = web.AppKey("supervision", Supervision)
SUPERVISE_PATH = "/api/agents/{agent_id}/supervise"
_SUPERVISORS = frozenset({Role.SUPERVISOR, Role.ADMIN})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def supervise(request: web.Request) -> web.Response:
    principal = current_principal(request)
    if principal.role not in _SUPERVISORS:
        return _error(403, "only supervisors and admins supervise calls")
    agent_id = request.match_info["agent_id"]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "expected a JSON body")
    mode = body.get("mode") if isinstance(body, dict) else None
    if not isinstance(mode, str):
        return _error(400, 'expected {"mode": "listen" | "whisper" | "barge"}')
    supervision = request.app[SUPERVISION]
    phone = supervision.endpoint_of(principal.agent_id) if principal.agent_id else None
    if phone is None:
        return _error(409, "your account has no phone: give it an agent id with an endpoint")
    try:
        started = await supervision.spy(supervisor_endpoint=phone, agent_id=agent_id, mode=mode)
    except SupervisionRefused as exc:
        return _error(409, str(exc))
    note_audit(request, "supervision", agent_id, mode=started.request.mode.value, phone=phone)
    return web.json_response(
        {"agent_id": agent_id, "mode": started.request.mode.value, "phone": phone}
    )


def add_supervision(app: web.Application, supervision: Supervision) -> None:
    app[SUPERVISION] = supervision
    app.router.add_post(SUPERVISE_PATH, supervise)
