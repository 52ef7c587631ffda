"""Twilio Programmable Messaging webhooks (SMS), sans-I/O.

Twilio POSTs `application/x-www-form-urlencoded` parameters (`MessageSid`, `From`, `To`,
`Body`, … for an incoming message; `MessageSid`, `MessageStatus`, `ErrorCode` for a status
callback of a message we sent) and signs them in `X-Twilio-Signature`: base64 of the
HMAC-SHA1, keyed with the account's auth token, of the full URL Twilio requested (as
configured in the console: scheme, host, path and query) followed by every POST parameter
sorted by name, each name immediately followed by its value. The URL is the public one,
which is why it is a setting (`server.public_url`): behind a proxy, the request we see is
not the one Twilio made. We answer TwiML; an empty `<Response/>` sends no reply.

https://www.twilio.com/docs/usage/webhooks/webhooks-security
https://www.twilio.com/docs/messaging/guides/webhook-request
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import parse_qsl

from centralino.channels.errors import BadSignature, MalformedPayload
from context.messages import (
    MAX_MESSAGE_TEXT_CHARS,
    DeliveryState,
    InboundMessage,
    MessageBatch,
    StatusUpdate,
)
from context.models import ChannelKind, JsonObject

__all__ = [
    "EMPTY_TWIML",
    "MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "check_signature",
    "parse_form",
    "parse_webhook",
    "signature",
]

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = "<Response/>"
# An SMS webhook is a few dozen short fields and a body of at most 1600 characters
# (percent-encoded, up to 9 bytes each for 3-byte characters): 64 KiB is several times that.
MAX_BODY_BYTES = 64 * 1024
# Twilio sends about 20 parameters (more with media: 2 per attachment, at most 10).
MAX_FIELDS = 200
MAX_SID_CHARS = 64

# Twilio's MessageStatus → our delivery states; inbound-side names (received, receiving) and
# unknown ones are ignored.
_STATES = {
    "accepted": DeliveryState.QUEUED,
    "scheduled": DeliveryState.QUEUED,
    "queued": DeliveryState.QUEUED,
    "sending": DeliveryState.QUEUED,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}


def signature(url: str, params: Sequence[tuple[str, str]], auth_token: str) -> str:
    """The `X-Twilio-Signature` Twilio computes for a POST of `params` to `url`. Parameters
    repeated under one name are taken sorted by value too, as Twilio's own libraries do."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check_signature(
    url: str, params: Sequence[tuple[str, str]], header: str | None, auth_token: str
) -> None:
    """Raise BadSignature unless `header` signs this URL and these parameters (constant-time
    comparison)."""
    if not header:
        raise BadSignature(f"no {SIGNATURE_HEADER} header")
    expected = signature(url, params, auth_token)
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise BadSignature(f"{SIGNATURE_HEADER} does not match {url} and its parameters")


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """A urlencoded body to its (name, value) pairs, in order; raise MalformedPayload."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("form body is not UTF-8") from None
    if not text:
        raise MalformedPayload("empty form body")
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"not a urlencoded form: {exc}") from None


def parse_webhook(params: Sequence[tuple[str, str]]) -> MessageBatch:
    """An incoming SMS, or a status callback (it carries `MessageStatus`), as a batch of one;
    a callback with a status of no use here gives an empty batch. Raise MalformedPayload."""
    fields = dict(params)  # Twilio never repeats a name in these; the last one wins
    sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
    sid = sid.strip()
    if not sid or len(sid) > MAX_SID_CHARS or not sid.isprintable():
        raise MalformedPayload("MessageSid missing or not a Twilio id")
    raw: JsonObject = dict(fields.items())
    status = fields.get("MessageStatus")
    if status is not None:
        state = _STATES.get(status.strip().lower())
        if state is None:
            return MessageBatch()
        error = " ".join(filter(None, (fields.get("ErrorCode"), fields.get("ErrorMessage"))))
        return MessageBatch(
            statuses=(
                StatusUpdate(
                    channel=ChannelKind.SMS,
                    provider_message_id=sid,
                    state=state,
                    provider_time=None,
                    raw=raw,
                    error=error[:500],
                ),
            )
        )
    sender = fields.get("From")
    recipient = fields.get("To")
    if not sender or recipient is None:
        raise MalformedPayload("an incoming message needs From and To")
    text = fields.get("Body", "")
    media = fields.get("NumMedia", "0")
    if media.isdigit() and int(media) > 0:
        text = f"{text} [{media} attachment(s)]".strip()
    return MessageBatch(
        messages=(
            InboundMessage(
                channel=ChannelKind.SMS,
                provider_message_id=sid,
                sender=sender,
                recipient=recipient,
                text=text[:MAX_MESSAGE_TEXT_CHARS],
                provider_time=None,  # Twilio's inbound webhook carries no timestamp
                raw=raw,
            ),
        )
    )
