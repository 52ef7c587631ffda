"""Providers' webhooks: WhatsApp Cloud API and Twilio SMS. Thin shells: read the body within
its limit, check the signature, parse (centralino.channels), store (context.inbox), answer.

The answer is 2xx only once everything the delivery carried is committed in PostgreSQL; with
the database unreachable it is 503, so the provider retries and nothing is lost (a retry of
what was stored already is recognised and answered 200). A webhook whose secret is not set
answers 503 and says why in the log: it never accepts an unsigned delivery.

    GET  /webhooks/whatsapp       Meta's verification handshake → the challenge (text/plain)
    POST /webhooks/whatsapp       Meta's notifications (X-Hub-Signature-256) → 200
    POST /webhooks/twilio/sms     Twilio's SMS and status callbacks (X-Twilio-Signature) → TwiML
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from centralino.channels import twilio_sms, whatsapp
from centralino.channels.errors import BadSignature, HandshakeRefused, MalformedPayload
from context.inbox import MessageInbox
from context.messages import MessageBatch
from context.models import ResolutionStatus

log = logging.getLogger(__name__)

# Seconds a provider is asked to wait before retrying a delivery we could not store.
RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """Read from the environment by the composition root; None = that webhook is off (503)."""

    whatsapp_app_secret: str | None
    whatsapp_verify_token: str | None
    twilio_auth_token: str | None
    public_url: str | None  # what Twilio requested: https://host[:port] (no trailing slash)


@dataclass(frozen=True, slots=True)
class _Webhooks:
    inbox: MessageInbox
    secrets: WebhookSecrets
    whatsapp_max_bytes: int
    twilio_max_bytes: int


WEBHOOKS = web.AppKey("webhooks", _Webhooks)


def add_webhooks(
    app: web.Application,
    *,
    inbox: MessageInbox,
    secrets: WebhookSecrets,
    whatsapp_max_bytes: int = whatsapp.MAX_BODY_BYTES,
    twilio_max_bytes: int = twilio_sms.MAX_BODY_BYTES,
) -> None:
    app[WEBHOOKS] = _Webhooks(inbox, secrets, whatsapp_max_bytes, twilio_max_bytes)
    app.router.add_get("/webhooks/whatsapp", whatsapp_handshake)
    app.router.add_post("/webhooks/whatsapp", whatsapp_notification)
    app.router.add_post("/webhooks/twilio/sms", twilio_sms_webhook)


def _unavailable(why: str) -> web.Response:
    return web.Response(status=503, text=why + "\n", headers={"Retry-After": str(RETRY_AFTER_S)})


def _not_configured(request: web.Request, what: str) -> web.Response:
    log.error("webhook %s refused: %s is not set in the environment", request.path, what)
    return _unavailable(f"this webhook is not configured ({what} is not set)")


def _refused(request: web.Request, status: int, exc: Exception) -> web.Response:
    log.warning("webhook %s from %s refused (%d): %s", request.path, request.remote, status, exc)
    return web.Response(status=status, text=f"{exc}\n")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The raw body (signatures cover the exact bytes), refused with 413 beyond `limit`."""
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(request, limit, length)
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise _too_large(request, limit, len(body))
    return bytes(body)


def _too_large(request: web.Request, limit: int, size: int) -> web.HTTPRequestEntityTooLarge:
    log.warning(
        "webhook %s from %s refused (413): body of %d bytes or more, the limit is %d",
        request.path,
        request.remote,
        size,
        limit,
    )
    return web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)


async def _store(request: web.Request, batch: MessageBatch) -> web.Response | None:
    """Store the batch; None when done, else the 503 to answer. Any failure here (PostgreSQL
    down or restarting, the pool exhausted, a deadlock) means the same to the provider: try
    again later. Nothing was committed, so its retry stores everything."""
    try:
        stored = await request.app[WEBHOOKS].inbox.receive(batch)
    except Exception as exc:  # the request's boundary: a failure to store is a 503
        log.warning(
            "webhook %s: not stored, the provider will retry (%s: %s)",
            request.path,
            type(exc).__name__,
            exc,
        )
        return _unavailable("storage unavailable, retry later")
    for message, result in zip(batch.messages, stored, strict=True):
        if result.resolution is ResolutionStatus.AMBIGUOUS:
            log.warning(
                "%s message %s from %s: sender matches customers %s; not attached to any",
                message.channel,
                message.provider_message_id,
                message.sender,
                list(result.candidates),
            )
    return None


async def whatsapp_handshake(request: web.Request) -> web.Response:
    token = request.app[WEBHOOKS].secrets.whatsapp_verify_token
    if not token:
        return _not_configured(request, "CENTRALINO_WHATSAPP_VERIFY_TOKEN")
    try:
        challenge = whatsapp.verify_handshake(request.query, token)
    except HandshakeRefused as exc:
        return _refused(request, 403, exc)
    except MalformedPayload as exc:
        return _refused(request, 400, exc)
    return web.Response(text=challenge, content_type="text/plain")


async def whatsapp_notification(request: web.Request) -> web.Response:
    hooks = request.app[WEBHOOKS]
    secret = hooks.secrets.whatsapp_app_secret
    if not secret:
        return _not_configured(request, "CENTRALINO_WHATSAPP_APP_SECRET")
    body = await _read_body(request, hooks.whatsapp_max_bytes)
    try:
        whatsapp.check_signature(body, request.headers.get(whatsapp.SIGNATURE_HEADER), secret)
    except BadSignature as exc:
        return _refused(request, 401, exc)
    try:
        parsed = whatsapp.parse_notification(body)
    except MalformedPayload as exc:
        return _refused(request, 400, exc)
    if parsed.ignored:
        log.info("webhook %s: ignored %s", request.path, "; ".join(parsed.ignored))
    failed = await _store(request, parsed.batch)
    return failed or web.Response(text="ok", content_type="text/plain")


async def twilio_sms_webhook(request: web.Request) -> web.Response:
    hooks = request.app[WEBHOOKS]
    token = hooks.secrets.twilio_auth_token
    if not token:
        return _not_configured(request, "CENTRALINO_TWILIO_AUTH_TOKEN")
    if not hooks.secrets.public_url:
        return _not_configured(request, "server.public_url (CENTRALINO_SERVER_PUBLIC_URL)")
    signature = request.headers.get(twilio_sms.SIGNATURE_HEADER)
    if not signature:
        return _refused(request, 403, BadSignature(f"no {twilio_sms.SIGNATURE_HEADER} header"))
    body = await _read_body(request, hooks.twilio_max_bytes)
    try:
        params = twilio_sms.parse_form(body)
    except MalformedPayload as exc:
        # Unparsable parameters cannot be signed either: refused before any storage.
        return _refused(request, 400, exc)
    # The raw path: Twilio signs the URL as it requested it, percent-encoding included.
    url = hooks.secrets.public_url.rstrip("/") + request.raw_path
    try:
        twilio_sms.check_signature(url, params, signature, token)
    except BadSignature as exc:
        return _refused(request, 403, exc)
    try:
        batch = twilio_sms.parse_webhook(params)
    except MalformedPayload as exc:
        return _refused(request, 400, exc)
    failed = await _store(request, batch)
    return failed or web.Response(text=twilio_sms.EMPTY_TWIML, content_type="text/xml")
