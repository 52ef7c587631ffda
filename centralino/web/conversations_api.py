"""`GET /api/conversations?agent_id=`: an agent's open conversations with their messages;
`POST /api/conversations/{id}/close` `{"agent_id"}`: the agent is done with a WhatsApp,
SMS, email or chat conversation; its ACD capacity is freed. An agent reaches their own
conversations, a supervisor their teams' agents', an admin everyone's (centralino/web/scopes.py);
others are 403."""

from __future__ import annotations

import logging

from aiohttp import web

from centralino.conversations import ConversationRouter
from centralino.web.scopes import forbidden, may_reach_agent

log = logging.getLogger(__name__)

CONVERSATIONS = web.AppKey("conversations", ConversationRouter)
MAX_BODY_BYTES = 1024  # {"agent_id": "..."}


def add_conversation_api(app: web.Application, *, conversations: ConversationRouter) -> None:
    app[CONVERSATIONS] = conversations
    app.router.add_post("/api/conversations/{conversation_id}/close", close_conversation)
    app.router.add_get("/api/conversations", agent_conversations)


async def agent_conversations(request: web.Request) -> web.Response:
    """`GET /api/conversations?agent_id=`: the agent's open conversations and their messages."""
    agent_id = request.query.get("agent_id", "")
    if not agent_id or len(agent_id) > 64:
        return _error(request, 400, "agent_id is required")
    if not may_reach_agent(request, agent_id):
        return forbidden(request, f"conversations of {agent_id}")
    return web.json_response(await request.app[CONVERSATIONS].of_agent(agent_id))


async def close_conversation(request: web.Request) -> web.Response:
    raw_id = request.match_info["conversation_id"]
    if not raw_id.isdigit() or len(raw_id) > 18:
        return _error(request, 400, "the conversation id is a number")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _error(request, 413, "body too large")
    try:
        data = await request.json()
    except ValueError:
        return _error(request, 400, 'expected JSON {"agent_id": ...}')
    agent_id = data.get("agent_id") if isinstance(data, dict) else None
    if not isinstance(agent_id, str) or not agent_id:
        return _error(request, 400, "agent_id: a non-empty string")
    if not may_reach_agent(request, agent_id):
        return forbidden(request, f"conversations of {agent_id}")
    closed = await request.app[CONVERSATIONS].close_conversation(int(raw_id), agent_id=agent_id)
    if not closed:
        return _error(request, 404, f"no open conversation {raw_id} of {agent_id}")
    return web.json_response({"conversation_id": int(raw_id), "state": "closed"})


def _error(request: web.Request, status: int, why: str) -> web.Response:
    log.warning("%s refused (%d): %s", request.path, status, why)
    return web.json_response({"error": why}, status=status)
