"""The web chat: the visitor's widget page (`GET /chat`) and its WebSocket (`/ws/chat`), a
thin shell around `centralino.channels.webchat` and the message inbox. Every message is
acknowledged only once stored; the widget re-sends what was not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiohttp import WSMsgType, web

from centralino.channels.errors import MalformedPayload
from centralino.channels.webchat import (
    MAX_FRAME_BYTES,
    ChatHello,
    ChatText,
    parse_frame,
    to_message,
)
from centralino.web.pages import CSP, STATIC_DIR
from context.inbox import MessageInbox
from context.messages import MessageBatch

log = logging.getLogger(__name__)

# Chats open at once per process; far above a contact centre's web traffic, bounded all the same.
MAX_CHAT_CLIENTS = 2000
# A visitor who says nothing for this long is disconnected (the widget reconnects when needed).
IDLE_TIMEOUT_S = 30 * 60


@dataclass(slots=True)
class _Chat:
    inbox: MessageInbox
    now: Callable[[], datetime]
    recipient: str
    clients: int = 0


CHAT = web.AppKey("chat", _Chat)


def add_chat(
    app: web.Application,
    *,
    inbox: MessageInbox,
    now: Callable[[], datetime],
    recipient: str = "web-chat",
) -> None:
    app[CHAT] = _Chat(inbox, now, recipient)
    app.router.add_get("/chat", chat_page)
    app.router.add_get("/ws/chat", chat_ws)


async def chat_page(request: web.Request) -> web.FileResponse:
    response = web.FileResponse(STATIC_DIR / "chat.html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _frame(**fields: object) -> str:
    return orjson.dumps(fields).decode()


async def chat_ws(request: web.Request) -> web.StreamResponse:
    chat = request.app[CHAT]
    if chat.clients >= MAX_CHAT_CLIENTS:
        return web.json_response({"error": "too many chats open"}, status=503)
    ws = web.WebSocketResponse(
        heartbeat=30.0, max_msg_size=MAX_FRAME_BYTES, receive_timeout=IDLE_TIMEOUT_S
    )
    await ws.prepare(request)
    chat.clients += 1
    hello: ChatHello | None = None
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            try:
                frame = parse_frame(msg.data)
            except MalformedPayload as exc:
                log.warning("chat from %s: refused frame: %s", request.remote, exc)
                await ws.send_str(_frame(type="error", error=str(exc)))
                continue
            if isinstance(frame, ChatHello):
                hello = frame
                continue
            if hello is None:
                await ws.send_str(_frame(type="error", error="say hello first"))
                continue
            await ws.send_str(await _store(request, chat, hello, frame))
    except TimeoutError:
        pass  # idle visitor: closed below
    finally:
        chat.clients -= 1
        await ws.close()
    return ws


async def _store(request: web.Request, chat: _Chat, hello: ChatHello, text: ChatText) -> str:
    message = to_message(hello, text, recipient=chat.recipient, at=chat.now())
    try:
        (stored,) = await chat.inbox.receive(MessageBatch(messages=(message,)))
    except Exception as exc:  # the message's boundary: the widget sends it again
        log.warning("chat message %s not stored (%s: %s)", text.id, type(exc).__name__, exc)
        return _frame(type="retry", id=text.id)
    return _frame(type="ack", id=text.id, duplicate=stored.duplicate)
