"""`GET /api/conversations?agent_id=`: an agent's open conversations with their messages;
`POST /api/conversations/{id}/close` `{"agent_id"}`: the agent is done with a WhatsApp,
SMS, email or chat conversation; its ACD capacity is freed. Same `authorize` dependency as
the other APIs (until logins exist, the agent id is taken from the body)."""

from __future__ import annotations

import logging

from aiohttp import web

from centralino.conversations import ConversationRouter
from centralino.web.timeline_api import Authorize

log = logging.getLogger(__name__)

CONVERSATIONS = web.AppKey("conversations", ConversationRouter)
CONVERSATIONS_AUTHORIZE = web.AppKey("conversations_authorize", Authorize)
MAX_BODY_BYTES = 1024  # {"agent_id": "..."}


def add_conversation_api(
    app: web.Application, *, conversations: ConversationRouter, authorize: Authorize
) -> None:
    app[CONVERSATIONS] = conversations
    app[CONVERSATIONS_AUTHORIZE] = authorize
    app.router.add_post("/api/conversations/{conversation_id}/close", close_conversation)
    app.router.add_get("/api/conversations", agent_conversations)


async def agent_conversations(request: web.Request) -> web.Response:
    """`GET /api/conversations?agent_id=`: the agent's open conversations and their messages."""
    await request.app[CONVERSATIONS_AUTHORIZE](request)
    agent_id = request.query.get("agent_id", "")
    if not agent_id or len(agent_id) > 64:
        return _error(request, 400, "agent_id is required")
    return web.json_response(await request.app[CONVERSATIONS].of_agent(agent_id))


async def close_conversation(request: web.Request) -> web.Response:
    await request.app[CONVERSATIONS_AUTHORIZE](request)
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
    closed = await request.app[CONVERSATIONS].close_conversation(int(raw_id), agent_id=agent_id)
    if not closed:
        return _error(request, 404, f"no open conversation {raw_id} of {agent_id}")
    return web.json_response({"conversation_id": int(raw_id), "state": "closed"})


def _error(request: web.Request, status: int, why: str) -> web.Response:
    log.warning("%s refused (%d): %s", request.path, status, why)
    return web.json_response({"error": why}, status=status)
