"""Inbound email, sans-I/O: the bytes an SMTP transaction delivered to an `InboundMessage`,
with the standard library's `email` package (policy `default`: RFC 5322/6532, MIME decoded).

- Threading: `Message-ID`, `In-Reply-To` and `References` give the message's own id and the
  ids it answers; the store files it in the thread of the earliest one it knows. A message
  without a Message-ID gets one derived from its bytes, so a re-delivery is still recognised.
- What is not a customer writing: auto-replies (RFC 3834 `Auto-Submitted` other than `no`;
  the de-facto `X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply|bulk|junk`) and bounces
  (RFC 3464 `multipart/report; report-type=delivery-status`, or from MAILER-DAEMON/postmaster)
  are kept on the timeline, marked, and never create a customer or reach an agent.
- Loops: more `Received` headers than MAX_HOPS (RFC 5321 section 6.3) or our own loop header
  is refused.
- Attachments are kept up to MAX_ATTACHMENT_BYTES each and MAX_ATTACHMENTS in all; larger or
  further ones are listed by name and size only.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from centralino.channels.errors import MalformedPayload
from context.messages import MAX_MESSAGE_TEXT_CHARS, Attachment, InboundMessage, MessageKind
from context.models import ChannelKind, JsonValue

__all__ = [
    "LOOP_HEADER",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_HOPS",
    "MailLoop",
    "parse_email",
]

# RFC 5321 section 6.3 suggests treating 100 hops as a loop; real mail takes fewer than 20.
MAX_HOPS = 30
# We stamp what we send; seeing it come back is a loop between us and an auto-responder.
LOOP_HEADER = "X-Centralino-Loop"
# Customers send invoices and photos; 10 MiB each is generous, and the SMTP server refuses
# whole messages over its own size limit before they reach us.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 20
# Message-IDs are short; references lists of long threads are trimmed to their newest ids.
MAX_ID_CHARS = 998
MAX_REFERENCES = 50
_MSG_ID = re.compile(r"<([^<>\s]{1,998})>")
_TAGS = re.compile(r"<[^>]*>")
_PARSER = BytesParser(policy=email.policy.default)


class MailLoop(MalformedPayload):
    """The message has gone round in circles (too many hops, or our own loop header)."""


@dataclass(frozen=True, slots=True)
class _Body:
    text: str
    attachments: tuple[Attachment, ...]
    skipped: tuple[str, ...]


def parse_email(raw: bytes, *, recipients: tuple[str, ...] = ()) -> InboundMessage:
    """One delivered message; raise MalformedPayload (or MailLoop)."""
    if not raw.strip():
        raise MalformedPayload("empty message")
    try:
        message = _PARSER.parsebytes(raw)
    except (ValueError, TypeError, LookupError) as exc:  # the parser's own failures
        raise MalformedPayload(f"not a MIME message: {exc}") from None
    if not isinstance(message, EmailMessage):
        raise MalformedPayload("not a MIME message")
    if len(message.get_all("Received") or []) > MAX_HOPS:
        raise MailLoop(f"more than {MAX_HOPS} Received headers: a mail loop")
    if message.get(LOOP_HEADER) is not None:
        raise MailLoop(f"{LOOP_HEADER} present: our own message came back")
    sender = _address(message, "From")
    if not sender:
        raise MalformedPayload("no usable From address")
    message_id = _first_id(_header(message, "Message-ID"))
    if message_id is None:
        message_id = f"{hashlib.sha256(raw).hexdigest()[:40]}@centralino.invalid"
    references = _ids(_header(message, "References")) + _ids(_header(message, "In-Reply-To"))
    references = tuple(dict.fromkeys(r for r in references if r != message_id))[-MAX_REFERENCES:]
    body = _body(message)
    subject = _header(message, "Subject").strip()
    text = f"{subject}\n\n{body.text}".strip() if subject else body.text.strip()
    if body.skipped:
        text += "\n[not kept: " + ", ".join(body.skipped) + "]"
    recipient = _address(message, "To") or (recipients[0] if recipients else "")
    # Raw header values: no parsing (that could fail), kept as they came, bounded.
    headers: list[JsonValue] = [[k, str(v)[:2000]] for k, v in list(message.raw_items())[:200]]
    return InboundMessage(
        channel=ChannelKind.EMAIL,
        provider_message_id=message_id,
        sender=sender,
        recipient=recipient,
        text=text[:MAX_MESSAGE_TEXT_CHARS],
        provider_time=_date(message),
        raw={
            "headers": headers,
            "envelope_recipients": list[JsonValue](recipients),
            "skipped_attachments": list[JsonValue](body.skipped),
        },
        sender_name=_display_name(message),
        references=references,
        kind=_kind(message, sender),
        attachments=body.attachments,
    )


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError):  # a header the policy cannot decode
        return ""
    return "" if value is None else str(value)


def _address(message: Message, name: str) -> str:
    pairs = getaddresses([_header(message, name)])
    for _, address in pairs:
        if "@" in address:
            return address.strip()
    return ""


def _display_name(message: Message) -> str:
    for name, address in getaddresses([_header(message, "From")]):
        if "@" in address:
            return name.strip()[:200]
    return ""


def _first_id(value: str) -> str | None:
    ids = _ids(value)
    return ids[0] if ids else None


def _ids(value: str) -> tuple[str, ...]:
    return tuple(m[:MAX_ID_CHARS] for m in _MSG_ID.findall(value))


def _date(message: Message) -> datetime | None:
    value = _header(message, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _kind(message: Message, sender: str) -> MessageKind:
    report = message.get_content_type() == "multipart/report" and (
        message.get_param("report-type") == "delivery-status"
    )
    local = sender.split("@", 1)[0].lower()
    if report or local in {"mailer-daemon", "postmaster"}:
        return MessageKind.BOUNCE
    auto = _header(message, "Auto-Submitted").strip().lower()
    precedence = _header(message, "Precedence").strip().lower()
    if (
        (auto and not auto.startswith("no"))
        or message.get("X-Autoreply") is not None
        or message.get("X-Autorespond") is not None
        or precedence in {"auto_reply", "bulk", "junk"}
    ):
        return MessageKind.AUTO_REPLY
    return MessageKind.MESSAGE


def _body(message: EmailMessage) -> _Body:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except (KeyError, ValueError, TypeError):
        part = None
    text = ""
    if isinstance(part, EmailMessage):
        text = _text(part)
    attachments: list[Attachment] = []
    skipped: list[str] = []
    for item in message.iter_attachments() if message.is_multipart() else ():
        name = item.get_filename() or "attachment"
        try:
            content = item.get_payload(decode=True)
        except (ValueError, TypeError):
            content = None
        if not isinstance(content, bytes):
            continue  # a nested message or an undecodable part: the raw headers keep it
        if len(content) > MAX_ATTACHMENT_BYTES or len(attachments) >= MAX_ATTACHMENTS:
            skipped.append(f"{name} ({len(content)} bytes)")
            continue
        attachments.append(Attachment(name[:255], item.get_content_type(), content))
    return _Body(text, tuple(attachments), tuple(skipped))


def _text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, TypeError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = _TAGS.sub(" ", content)
    return re.sub(r"[ \t]+", " ", content).strip()
