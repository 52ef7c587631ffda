"""Messages on the written channels (WhatsApp, SMS): what arrives, its delivery state, the
sender's identity and the store port. Pure: no I/O, no provider formats (those are parsed in
`centralino.channels`, which builds the objects below).

Delivery states move forward only. Providers deliver status callbacks at least once and in no
particular order (a `read` may overtake its `delivered`), so a late or repeated callback must
never move a message back. The states are totally ordered, and a callback applies only if it
moves the message up this order:

    queued < sent < failed < delivered < read

`failed` sits below `delivered`: a message the handset received did not fail, whatever order
the two callbacks came in (providers report a failure before any delivery, never after), so
the final state never depends on the arrival order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from context.identity import PhoneNormaliser, normalise, phone_twin
from context.models import (
    CallerProblem,
    ChannelKind,
    Direction,
    Identity,
    IdentityKind,
    JsonObject,
    ResolutionStatus,
)

__all__ = [
    "MAX_MESSAGE_TEXT_CHARS",
    "Attachment",
    "DeliveryState",
    "InboundMessage",
    "MessageBatch",
    "MessageKind",
    "MessageStore",
    "OutboundMessage",
    "Sender",
    "StatusUpdate",
    "StoredMessage",
    "TimelineItem",
    "fold_states",
    "may_advance",
    "sender_of",
    "states_before",
]

# WhatsApp text bodies are at most 4096 characters, a concatenated SMS about 1600; anything
# longer is cut (the raw payload keeps it whole) so one message cannot bloat the timeline.
MAX_MESSAGE_TEXT_CHARS = 4096


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"  # accepted by the provider, not yet handed to the network
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# The order in the module docstring, lowest first.
_ORDER: tuple[DeliveryState, ...] = (
    DeliveryState.QUEUED,
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.DELIVERED,
    DeliveryState.READ,
)
_RANK = {state: rank for rank, state in enumerate(_ORDER)}


def may_advance(current: DeliveryState | None, new: DeliveryState) -> bool:
    """Whether a callback saying `new` moves a message now in `current` forward."""
    return current is None or _RANK[new] > _RANK[current]


def states_before(new: DeliveryState) -> frozenset[DeliveryState]:
    """The states a message may be in for `new` to apply; the store updates only rows in one
    of them (or in none yet), so concurrent callbacks are decided by the row lock, not by a
    read followed by a write."""
    return frozenset(_ORDER[: _RANK[new]])


def fold_states(states: Sequence[DeliveryState]) -> DeliveryState | None:
    """The state after every callback in `states`, whatever order they arrived in."""
    return max(states, key=_RANK.__getitem__, default=None)


class MessageKind(enum.StrEnum):
    """Whether a person wrote it. Automated mail stays on the timeline, marked, but never
    creates a customer nor reaches an agent."""

    MESSAGE = "message"
    AUTO_REPLY = "auto_reply"  # out-of-office and other responders (RFC 3834)
    BOUNCE = "bounce"  # a delivery status notification (RFC 3464)


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a customer sent us, as the provider described it."""

    channel: ChannelKind
    provider_message_id: str  # WhatsApp's wamid, Twilio's MessageSid
    sender: str  # as the provider gave it (WhatsApp wa_id, SMS From number)
    recipient: str  # our number (WhatsApp phone_number_id's display number, SMS To)
    text: str
    provider_time: datetime | None
    raw: JsonObject  # the provider's own description of this message, stored as is
    sender_name: str = ""  # the WhatsApp profile name, the email's display name
    # Email threading: the provider ids this message answers (In-Reply-To, References).
    references: tuple[str, ...] = ()
    kind: MessageKind = MessageKind.MESSAGE
    attachments: tuple[Attachment, ...] = ()
    # How `sender` identifies the person when not the channel's own way (a chat visitor who
    # gave their email is known by it).
    sender_kind: IdentityKind | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A provider's callback about a message we sent."""

    channel: ChannelKind
    provider_message_id: str
    state: DeliveryState
    provider_time: datetime | None
    raw: JsonObject
    error: str = ""


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """What one webhook delivery carried; stored in one transaction."""

    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message we sent through a provider (recorded once the provider accepted it)."""

    channel: ChannelKind
    provider_message_id: str
    customer_id: int | None
    sender: str
    recipient: str
    text: str
    sent_at: datetime
    raw: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a message, normalised, and how to find or create its customer."""

    identity: Identity | None  # None: no usable identity (alphanumeric SMS sender, garbage)
    lookup: tuple[Identity, ...]  # the identity and its phone/WhatsApp twin
    # Two messages from one new sender must not create two customers: the store serialises
    # on this key, the same for an identity and its twin (the E.164 form).
    lock_key: str
    display_name: str
    problem: CallerProblem | None = None
    create_if_unknown: bool = True  # automated mail never creates a customer


def sender_of(message: InboundMessage, phones: PhoneNormaliser) -> Sender:
    """The sender's identity by channel (WhatsApp: the wa_id; SMS: an E.164 phone; email: the
    address), with the twin the resolution also looks under (context.identity.phone_twin)."""
    kind = message.sender_kind or _SENDER_KIND[message.channel]
    identity = normalise(kind, message.sender, phones)
    if identity is None:
        return Sender(
            identity=None,
            lookup=(),
            lock_key="",
            display_name=message.sender_name or message.sender,
            problem=CallerProblem.INVALID,
            create_if_unknown=False,
        )
    twin = phone_twin(identity)
    lookup = (identity,) if twin is None else (identity, twin)
    phone = identity if identity.kind is IdentityKind.PHONE else twin
    lock_key = str(phone or identity)
    shown = "+" + identity.value if identity.kind is IdentityKind.WHATSAPP else identity.value
    return Sender(
        identity=identity,
        lookup=lookup,
        lock_key=lock_key,
        display_name=message.sender_name.strip()[:200] or shown,
        create_if_unknown=message.kind is MessageKind.MESSAGE,
    )


_SENDER_KIND = {
    ChannelKind.WHATSAPP: IdentityKind.WHATSAPP,
    ChannelKind.SMS: IdentityKind.PHONE,
    ChannelKind.EMAIL: IdentityKind.EMAIL,
    ChannelKind.CHAT: IdentityKind.CHAT,
}


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What storing one inbound message did."""

    message_id: int
    duplicate: bool  # a provider retry: stored before, nothing written now
    resolution: ResolutionStatus  # found, not_found (a new customer was created), ambiguous…
    customer_id: int | None
    candidates: tuple[int, ...] = ()  # the customers an ambiguous sender may be
    thread_id: str | None = None  # email: the provider id of the thread's first message


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One entry of a customer's timeline, on any channel."""

    interaction_id: int
    channel: ChannelKind
    direction: Direction
    time: datetime
    text: str
    provider_message_id: str | None  # None for calls (see `linkedid`)
    linkedid: str | None = None
    delivery_state: DeliveryState | None = None


class MessageStore(Protocol):
    async def store_batch(
        self, batch: MessageBatch, senders: Sequence[Sender]
    ) -> list[StoredMessage]:
        """Store every message (with its sender, `senders[i]` for `batch.messages[i]`) and
        apply every status, all in one transaction. A message already stored (same channel and
        provider id) is reported `duplicate` and left as it is. Raises on storage failure, with
        nothing written."""
        ...

    async def record_outbound(self, message: OutboundMessage) -> int:
        """Store a message we sent (once per provider id); statuses that arrived before it
        are applied. Returns its id."""
        ...

    async def delivery_state(
        self, channel: ChannelKind, provider_message_id: str
    ) -> DeliveryState | None: ...

    async def timeline(self, customer_id: int, limit: int) -> list[TimelineItem]:
        """The customer's interactions on every channel, newest first."""
        ...
