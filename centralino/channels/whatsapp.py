"""WhatsApp Cloud API webhooks (Meta), sans-I/O.

- Verification handshake: Meta GETs the callback URL with `hub.mode=subscribe`,
  `hub.verify_token=<the token configured in the app dashboard>` and `hub.challenge=<n>`;
  we answer the challenge as plain text if the token is ours.
- Notifications: Meta POSTs JSON, `{"object": "whatsapp_business_account", "entry": [{"id",
  "changes": [{"field": "messages", "value": {"metadata", "contacts": [...], "messages":
  [...], "statuses": [...]}}]}]}`, signed with `X-Hub-Signature-256: sha256=<hex>`, the
  HMAC-SHA256 of the raw body keyed with the app secret.

https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from centralino.channels.errors import BadSignature, HandshakeRefused, MalformedPayload
from context.messages import (
    MAX_MESSAGE_TEXT_CHARS,
    DeliveryState,
    InboundMessage,
    MessageBatch,
    StatusUpdate,
)
from context.models import ChannelKind, JsonObject

__all__ = [
    "MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "ParsedWebhook",
    "check_signature",
    "parse_notification",
    "sign",
    "verify_handshake",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
# Meta documents webhook payloads of up to 3 MB (batched notifications); refusing a larger
# body would make Meta retry it forever, accepting more would let anyone fill our memory.
MAX_BODY_BYTES = 3 * 1024 * 1024
# A challenge is a short number Meta picks; anything longer is not Meta.
MAX_CHALLENGE_CHARS = 256
# Provider ids (wamid.…) are about 60 characters; bounded like any untrusted input.
MAX_ID_CHARS = 256
_PREFIX = "sha256="

# Meta's status names → our delivery states; other names ("deleted", "warning") are ignored.
_STATES = {
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "failed": DeliveryState.FAILED,
}


def sign(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body` (for the demo provider and tests)."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def check_signature(body: bytes, header: str | None, app_secret: str) -> None:
    """Raise BadSignature unless `header` is the body's HMAC-SHA256 under `app_secret`
    (compared in constant time)."""
    if not header:
        raise BadSignature(f"no {SIGNATURE_HEADER} header")
    if not header.startswith(_PREFIX):
        raise BadSignature(f"{SIGNATURE_HEADER} is not 'sha256=<hex>'")
    if not hmac.compare_digest(header.encode(), sign(body, app_secret).encode()):
        raise BadSignature(f"{SIGNATURE_HEADER} does not match the body")


def verify_handshake(query: Mapping[str, str], verify_token: str) -> str:
    """The challenge to echo back; raise HandshakeRefused (wrong token or mode, a 403) or
    MalformedPayload (a missing or absurd challenge, a 400)."""
    mode = query.get("hub.mode")
    token = query.get("hub.verify_token", "")
    challenge = query.get("hub.challenge")
    if mode != "subscribe":
        raise HandshakeRefused(f"hub.mode is {mode!r}, not 'subscribe'")
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise HandshakeRefused("hub.verify_token does not match")
    if not challenge:
        raise MalformedPayload("no hub.challenge")
    if len(challenge) > MAX_CHALLENGE_CHARS or not challenge.isprintable():
        raise MalformedPayload("hub.challenge is not a short printable token")
    return challenge


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    batch: MessageBatch
    ignored: tuple[str, ...] = ()  # what was understood but has no use here, for the log


def parse_notification(body: bytes) -> ParsedWebhook:
    """A notification body to its messages and statuses; raise MalformedPayload."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None
    root = _object(payload, "the body")
    kind = root.get("object", "whatsapp_business_account")
    if kind != "whatsapp_business_account":
        raise MalformedPayload(f"object is {kind!r}, not 'whatsapp_business_account'")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    ignored: list[str] = []
    for e, entry in enumerate(_list(root.get("entry"), "entry", required=True)):
        changes = _object(entry, f"entry[{e}]").get("changes")
        for c, item in enumerate(_list(changes, f"entry[{e}].changes", required=True)):
            where = f"entry[{e}].changes[{c}]"
            change = _object(item, where)
            if change.get("field", "messages") != "messages":
                ignored.append(f"{where}: field {change.get('field')!r}")
                continue
            value = _object(change.get("value"), f"{where}.value")
            _parse_value(value, where, messages, statuses, ignored)
    return ParsedWebhook(MessageBatch(tuple(messages), tuple(statuses)), tuple(ignored))


def _parse_value(
    value: dict[str, Any],
    where: str,
    messages: list[InboundMessage],
    statuses: list[StatusUpdate],
    ignored: list[str],
) -> None:
    metadata = _object(value.get("metadata", {}), f"{where}.value.metadata")
    recipient = _text(
        metadata.get("display_phone_number") or metadata.get("phone_number_id") or "",
        f"{where}.value.metadata",
    )
    names: dict[str, str] = {}
    for i, item in enumerate(_list(value.get("contacts"), f"{where}.value.contacts")):
        contact = _object(item, f"{where}.value.contacts[{i}]")
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        wa_id = contact.get("wa_id")
        if isinstance(wa_id, str) and isinstance(name, str):
            names[wa_id] = name
    for i, item in enumerate(_list(value.get("messages"), f"{where}.value.messages")):
        at = f"{where}.value.messages[{i}]"
        message = _object(item, at)
        sender = _id(message.get("from"), f"{at}.from")
        raw: JsonObject = {"message": message, "metadata": metadata}
        if sender in names:
            raw["contact"] = {"wa_id": sender, "profile": {"name": names[sender]}}
        messages.append(
            InboundMessage(
                channel=ChannelKind.WHATSAPP,
                provider_message_id=_id(message.get("id"), f"{at}.id"),
                sender=sender,
                recipient=recipient,
                text=_message_text(message)[:MAX_MESSAGE_TEXT_CHARS],
                provider_time=_timestamp(message.get("timestamp"), f"{at}.timestamp"),
                raw=raw,
                sender_name=names.get(sender, ""),
            )
        )
    for i, item in enumerate(_list(value.get("statuses"), f"{where}.value.statuses")):
        at = f"{where}.value.statuses[{i}]"
        status = _object(item, at)
        name = _text(status.get("status"), f"{at}.status")
        state = _STATES.get(name)
        if state is None:
            ignored.append(f"{at}: status {name!r}")
            continue
        statuses.append(
            StatusUpdate(
                channel=ChannelKind.WHATSAPP,
                provider_message_id=_id(status.get("id"), f"{at}.id"),
                state=state,
                provider_time=_timestamp(status.get("timestamp"), f"{at}.timestamp"),
                raw=status,
                error=_error_text(status.get("errors")),
            )
        )


def _message_text(message: dict[str, Any]) -> str:
    """What the timeline shows for a message of any type (the raw payload keeps the rest)."""
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(body, dict):
        body = {}
    if kind == "text":
        return _text(body.get("body", ""), "text.body")
    if kind in {"image", "video", "document", "audio", "sticker"}:
        caption = body.get("caption") or body.get("filename") or ""
        return f"[{kind}] {caption}".strip() if isinstance(caption, str) else f"[{kind}]"
    if kind == "button":
        return str(body.get("text", ""))
    if kind == "interactive":
        for reply in ("button_reply", "list_reply"):
            chosen = body.get(reply)
            if isinstance(chosen, dict):
                return str(chosen.get("title", ""))
    if kind == "location":
        parts = [str(body.get(k)) for k in ("name", "address") if body.get(k)]
        where = ", ".join(parts) or f"{body.get('latitude')}, {body.get('longitude')}"
        return f"[location] {where}"
    if kind == "reaction":
        return f"[reaction] {body.get('emoji', '')}".strip()
    return f"[{kind}]" if isinstance(kind, str) else "[message]"


def _error_text(errors: object) -> str:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    return f"{first.get('code', '')} {first.get('title', '')}".strip()[:500]


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}: expected a JSON object")
    return value


def _list(value: object, where: str, *, required: bool = False) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where}: expected a JSON array")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: expected a string")
    return value


def _id(value: object, where: str) -> str:
    text = _text(value, where).strip()
    if not text or len(text) > MAX_ID_CHARS or not text.isprintable():
        raise MalformedPayload(f"{where}: expected a non-empty id of at most {MAX_ID_CHARS}")
    return text


def _timestamp(value: object, where: str) -> datetime | None:
    """Meta's timestamps are Unix seconds as a string of digits."""
    if value is None:
        return None
    text = _text(value, where)
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise MalformedPayload(f"{where}: expected Unix seconds, got {text[:40]!r}")
    return datetime.fromtimestamp(int(text), UTC)
