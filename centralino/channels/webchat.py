"""The web chat widget's WebSocket frames, sans-I/O: JSON text in, typed frames out.

    visitor → us   {"type": "hello", "visitor_id": "<the widget's own id>", "name"?, "email"?,
                    "phone"?}   first, once
                   {"type": "message", "id": "<the widget's id for this message>", "text"}
    us → visitor   {"type": "ack", "id", "duplicate"}    once the message is stored
                   {"type": "retry", "id"}                 storage failed: send it again later
                   {"type": "error", "error"}              the frame was refused

The widget keeps a message until its ack and re-sends it after a reconnect; the message's id
makes the re-send a duplicate, not a second message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from centralino.channels.errors import MalformedPayload
from context.identity import MAX_CHAT_ID_CHARS
from context.messages import MAX_MESSAGE_TEXT_CHARS, InboundMessage
from context.models import ChannelKind, IdentityKind

__all__ = ["MAX_FRAME_BYTES", "ChatHello", "ChatText", "parse_frame", "to_message"]

# A message of 4096 characters (up to 4 bytes each) and a few short fields.
MAX_FRAME_BYTES = 20 * 1024
MAX_FIELD_CHARS = 254  # an email address's maximum; names and phones are shorter


@dataclass(frozen=True, slots=True)
class ChatHello:
    visitor_id: str
    name: str = ""
    email: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class ChatText:
    id: str
    text: str


def parse_frame(data: str) -> ChatHello | ChatText:
    """One frame from the widget; raise MalformedPayload saying what is wrong."""
    if len(data) > MAX_FRAME_BYTES:
        raise MalformedPayload(f"frame over {MAX_FRAME_BYTES} bytes")
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise MalformedPayload("expected a JSON object")
    kind = frame.get("type")
    if kind == "hello":
        return ChatHello(
            visitor_id=_token(frame.get("visitor_id"), "visitor_id"),
            name=_optional(frame.get("name"), "name"),
            email=_optional(frame.get("email"), "email"),
            phone=_optional(frame.get("phone"), "phone"),
        )
    if kind == "message":
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            raise MalformedPayload("text: a non-empty string")
        if len(text) > MAX_MESSAGE_TEXT_CHARS:
            raise MalformedPayload(f"text: longer than {MAX_MESSAGE_TEXT_CHARS} characters")
        return ChatText(id=_token(frame.get("id"), "id"), text=text)
    raise MalformedPayload(f"type: expected 'hello' or 'message', got {str(kind)[:40]!r}")


def _token(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayload(f"{name}: a non-empty string")
    value = value.strip()
    if len(value) > MAX_CHAT_ID_CHARS or not value.isprintable() or " " in value:
        raise MalformedPayload(f"{name}: at most {MAX_CHAT_ID_CHARS} printable characters")
    return value


def _optional(value: object, name: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS or not value.isprintable():
        raise MalformedPayload(f"{name}: at most {MAX_FIELD_CHARS} printable characters")
    return value.strip()


def to_message(hello: ChatHello, text: ChatText, *, recipient: str, at: datetime) -> InboundMessage:
    """The message as the inbox stores it. The visitor is known by the email or phone they
    gave (so a chat lands on the same customer as their calls and mail), else by the widget's
    visitor id."""
    if hello.email:
        sender, kind = hello.email, IdentityKind.EMAIL
    elif hello.phone:
        sender, kind = hello.phone, IdentityKind.PHONE
    else:
        sender, kind = hello.visitor_id, IdentityKind.CHAT
    return InboundMessage(
        channel=ChannelKind.CHAT,
        provider_message_id=f"{hello.visitor_id}:{text.id}",
        sender=sender,
        recipient=recipient,
        text=text.text,
        provider_time=at,
        raw={"visitor_id": hello.visitor_id, "id": text.id, "name": hello.name},
        sender_name=hello.name,
        sender_kind=kind,
    )
