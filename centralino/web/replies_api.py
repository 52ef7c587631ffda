"""`POST /api/messages`: send a reply on WhatsApp or SMS, once per idempotency key.

Body (JSON): `{"channel": "whatsapp"|"sms", "to": <wa_id or E.164>, "text": ...,
"idempotency_key": ..., "customer_id": <optional>}`; the key may come as the
`Idempotency-Key` header instead. Admins reply to anyone; an agent only to a contact whose open
conversation is theirs, a supervisor to one held by an agent of their teams (else 403).

    200 {"state": "accepted", "provider_message_id", "attempts"}   (also for a repeated key)
    400 a malformed request          409 the same key is being sent right now
    502 the provider refused it or stayed unavailable ("state": "failed", "error")
    503 no provider configured for the channel
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from centralino.access.models import Role
from centralino.web.auth import current_principal
from centralino.web.scopes import forbidden, may_reach_agent
from context.outbound import (
    BadReply,
    ChannelNotConfigured,
    ReplyInProgress,
    ReplyService,
    ReplyState,
)

log = logging.getLogger(__name__)

# A reply's JSON: 4096 characters of text (up to 4 bytes each) and a few short fields.
MAX_REQUEST_BYTES = 32 * 1024

BuildReplies = Callable[[aiohttp.ClientSession], ReplyService]
# (channel, contact) -> the agents holding an open conversation with that contact.
Holders = Callable[[str, str], Awaitable[set[str]]]


class _Replies:
    """Filled when the app starts: the service needs the providers' HTTP session."""

    service: ReplyService | None = None
    holders: Holders | None = None


REPLIES = web.AppKey("replies", _Replies)


def add_reply_api(
    app: web.Application, *, build: BuildReplies, holders: Holders | None = None
) -> None:
    """Register `POST /api/messages`; the providers' HTTP session lives in the app's
    cleanup context (opened at start, closed at shutdown). Without `holders` (no conversation
    routing) only admins reply."""
    holder = _Replies()
    holder.holders = holders
    app[REPLIES] = holder

    async def providers_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            holder.service = build(session)
            yield
            holder.service = None

    app.cleanup_ctx.append(providers_session)
    app.router.add_post("/api/messages", send_reply)


def _error(request: web.Request, status: int, why: str) -> web.Response:
    log.warning("%s refused (%d): %s", request.path, status, why)
    return web.json_response({"error": why}, status=status)


async def _may_reply(request: web.Request, channel: str, to: str) -> bool:
    if current_principal(request).role is Role.ADMIN:
        return True
    holders = request.app[REPLIES].holders
    if holders is None:
        return False
    return any(may_reach_agent(request, agent) for agent in await holders(channel, to))


async def send_reply(request: web.Request) -> web.Response:
    service = request.app[REPLIES].service
    if service is None:
        return _error(request, 503, "not started")
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        return _error(request, 413, f"request over {MAX_REQUEST_BYTES} bytes")
    raw = await request.content.read(MAX_REQUEST_BYTES + 1)
    if len(raw) > MAX_REQUEST_BYTES:
        return _error(request, 413, f"request over {MAX_REQUEST_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error(request, 400, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return _error(request, 400, "expected a JSON object")
    fields = {k: data.get(k) for k in ("channel", "to", "text")}
    key = data.get("idempotency_key") or request.headers.get("Idempotency-Key", "")
    customer_id = data.get("customer_id")
    if not all(isinstance(v, str) for v in fields.values()) or not isinstance(key, str):
        return _error(request, 400, "channel, to, text and idempotency_key are strings")
    if customer_id is not None and (not isinstance(customer_id, int) or customer_id < 1):
        return _error(request, 400, "customer_id is a positive integer")
    try:
        reply = service.request(
            idempotency_key=key,
            channel=str(fields["channel"]),
            to=str(fields["to"]),
            text=str(fields["text"]),
            customer_id=customer_id,
        )
        # Checked on the normalised recipient, the form conversations keep their contact in.
        if not await _may_reply(request, str(reply.channel), reply.recipient):
            return forbidden(request, f"no open conversation of yours with {reply.recipient}")
        record = await service.send(reply)
    except BadReply as exc:
        return _error(request, 400, str(exc))
    except ReplyInProgress as exc:
        return _error(request, 409, str(exc))
    except ChannelNotConfigured as exc:
        return _error(request, 503, str(exc))
    answer = {
        "idempotency_key": reply.idempotency_key,
        "state": str(record.state),
        "provider_message_id": record.provider_message_id,
        "attempts": record.attempts,
        "error": record.last_error,
    }
    if record.state is ReplyState.FAILED:
        log.warning("reply %s failed: %s", reply.idempotency_key, record.last_error)
        return web.json_response(answer, status=502)
    return web.json_response(answer)
