"""Who may act on which written conversation, team board or reply: the per-resource checks
behind the routes `ROUTE_RULES` opens to any account (centralino/web/auth.py). An agent acts on
their own conversations, a supervisor on their teams' agents', an admin on everything."""

from __future__ import annotations

import logging
from collections.abc import Collection

from aiohttp import web

from centralino.access.models import Principal, Role
from centralino.access.policy import can_reach_agent
from centralino.web.auth import ACCESS, current_principal

log = logging.getLogger(__name__)


def _agent_teams(request: web.Request, agent_id: str) -> Collection[str]:
    return request.app[ACCESS].agent_teams.get(agent_id, ())


def may_reach_agent(request: web.Request, agent_id: str) -> bool:
    return can_reach_agent(current_principal(request), agent_id, _agent_teams(request, agent_id))


def teams_of(request: web.Request, principal: Principal) -> frozenset[str]:
    """A supervisor's teams, or the teams an agent's ACD definition puts them in."""
    teams = set(principal.teams)
    if principal.agent_id is not None:
        teams.update(_agent_teams(request, principal.agent_id))
    return frozenset(teams)


def may_see_team(request: web.Request, team: str) -> bool:
    """A team's board: its supervisors and agents, and admins; every team's only admins."""
    principal = current_principal(request)
    if principal.role is Role.ADMIN:
        return True
    return bool(team) and team in teams_of(request, principal)


def forbidden(request: web.Request, what: str) -> web.Response:
    principal = current_principal(request)
    log.warning("%s (%s) refused %s: %s", principal.username, principal.role, request.path, what)
    return web.json_response({"error": f"forbidden: {what}"}, status=403)
