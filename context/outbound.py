"""Replies on the written channels: one send per idempotency key, retried while the provider
is unavailable, then followed by its delivery state (context.messages).

A reply is claimed under its idempotency key before the provider is called, so a client that
submits twice (a double click, a retry after a timeout) gets the first attempt's outcome, not a
second message. The provider is retried on its transient failures (5xx, no connection) with a
back-off; a refusal (4xx: bad number, outside the 24-hour window) is final. A claim whose
process died mid-send is taken over after `stale_after_s`: the customer may then get the
message twice, which is the price of never losing one (providers offer no idempotency key).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from context.identity import InvalidIdentity, PhoneNormaliser, normalise_whatsapp_id
from context.messages import OutboundMessage
from context.models import CallerProblem, ChannelKind, Identity, IdentityKind
from context.ports import Clock
from context.service import ContextService

__all__ = [
    "MAX_REPLY_CHARS",
    "BadReply",
    "ChannelNotConfigured",
    "MessageSender",
    "OutboxStore",
    "ProviderRejected",
    "ProviderUnavailable",
    "ReplyInProgress",
    "ReplyRecord",
    "ReplyRequest",
    "ReplyService",
    "ReplyState",
]

# WhatsApp text messages hold 4096 characters; an SMS of 1600 is ten segments, Twilio's limit.
MAX_REPLY_CHARS = {ChannelKind.WHATSAPP: 4096, ChannelKind.SMS: 1600}
# Idempotency keys are client-made tokens (UUIDs and the like): bounded like any input.
MAX_KEY_CHARS = 128
DEFAULT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)


class ReplyState(enum.StrEnum):
    SENDING = "sending"
    ACCEPTED = "accepted"  # the provider took it; its delivery state follows on the message
    FAILED = "failed"


class BadReply(ValueError):
    """The request is wrong (the client's fault): unknown channel, bad number, empty text."""


class ChannelNotConfigured(RuntimeError):
    """No provider is configured for this channel (our configuration)."""


class ReplyInProgress(RuntimeError):
    """Another request with this idempotency key is being sent right now."""


class ProviderRejected(Exception):
    """The provider refused the message for good (its 4xx); the text says why."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed (5xx): worth retrying."""


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    idempotency_key: str
    channel: ChannelKind
    recipient: str  # normalised: wa_id for WhatsApp, E.164 for SMS
    text: str
    customer_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReplyRecord:
    request: ReplyRequest
    state: ReplyState
    attempts: int = 0
    provider_message_id: str | None = None
    last_error: str = ""


class MessageSender(Protocol):
    """A provider's send API for one channel."""

    @property
    def sender_address(self) -> str:
        """Our number or id as the provider shows it to the customer."""
        ...

    async def send(self, *, recipient: str, text: str, idempotency_key: str) -> str:
        """The provider's message id; raise ProviderRejected or ProviderUnavailable."""
        ...


class OutboxStore(Protocol):
    async def claim(self, request: ReplyRequest, *, stale_after_s: float) -> ReplyRecord | None:
        """Claim the key for sending: None when claimed now (new, or a stale claim taken
        over); else the record of the request that has it."""
        ...

    async def accept(self, request: ReplyRequest, message: OutboundMessage, attempts: int) -> None:
        """Mark the request accepted and store the outbound message, atomically."""
        ...

    async def fail(self, request: ReplyRequest, error: str, attempts: int) -> None: ...


Sleep = Callable[[float], Awaitable[None]]


class ReplyService:
    def __init__(
        self,
        *,
        store: OutboxStore,
        senders: Mapping[ChannelKind, MessageSender],
        clock: Clock,
        phones: PhoneNormaliser,
        backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
        stale_after_s: float = 120.0,
        sleep: Sleep = asyncio.sleep,
        context: ContextService | None = None,
    ) -> None:
        self._store = store
        self._senders = dict(senders)
        self._clock = clock
        self._phones = phones
        self._backoff_s = tuple(backoff_s)
        self._stale_after_s = stale_after_s
        self._sleep = sleep
        self._context = context

    def request(
        self,
        *,
        idempotency_key: str,
        channel: str,
        to: str,
        text: str,
        customer_id: int | None = None,
    ) -> ReplyRequest:
        """A checked request; raises BadReply saying what is wrong."""
        key = idempotency_key.strip()
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise BadReply(f"idempotency_key: 1 to {MAX_KEY_CHARS} printable characters")
        try:
            kind = ChannelKind(channel)
        except ValueError:
            raise BadReply(f"channel: {channel!r} is not a channel") from None
        if kind not in MAX_REPLY_CHARS:
            raise BadReply(f"channel: replies go out on whatsapp or sms, not {kind}")
        if not text.strip():
            raise BadReply("text: empty")
        if len(text) > MAX_REPLY_CHARS[kind]:
            raise BadReply(f"text: longer than {MAX_REPLY_CHARS[kind]} characters")
        return ReplyRequest(key, kind, self._recipient(kind, to), text, customer_id)

    def _recipient(self, channel: ChannelKind, to: str) -> str:
        if channel is ChannelKind.WHATSAPP:
            try:
                return normalise_whatsapp_id(to).value
            except InvalidIdentity as exc:
                raise BadReply(f"to: {exc}") from None
        phone = self._phones.normalise(to)
        if isinstance(phone, CallerProblem):
            raise BadReply(f"to: {to[:40]!r} is not a phone number ({phone})")
        return phone.value

    async def _customer_of(self, request: ReplyRequest) -> int | None:
        """The customer the reply goes on the timeline of: the one given, else the one the
        recipient resolves to (never guessed among several)."""
        if request.customer_id is not None or self._context is None:
            return request.customer_id
        kind = (
            IdentityKind.WHATSAPP if request.channel is ChannelKind.WHATSAPP else IdentityKind.PHONE
        )
        customer = (await self._context.resolve(Identity(kind, request.recipient))).customer
        return None if customer is None else customer.id

    async def send(self, request: ReplyRequest) -> ReplyRecord:
        """Send once per idempotency key; the record says how it went. Raises
        ChannelNotConfigured, or ReplyInProgress while another attempt holds the key."""
        sender = self._senders.get(request.channel)
        if sender is None:
            raise ChannelNotConfigured(f"no {request.channel} provider is configured")
        existing = await self._store.claim(request, stale_after_s=self._stale_after_s)
        if existing is not None:
            if existing.state is ReplyState.SENDING:
                raise ReplyInProgress(f"reply {request.idempotency_key!r} is being sent")
            return existing
        error = ""
        for attempt in range(1, len(self._backoff_s) + 2):
            try:
                provider_id = await sender.send(
                    recipient=request.recipient,
                    text=request.text,
                    idempotency_key=request.idempotency_key,
                )
            except ProviderRejected as exc:
                await self._store.fail(request, str(exc), attempt)
                return ReplyRecord(request, ReplyState.FAILED, attempt, last_error=str(exc))
            except ProviderUnavailable as exc:
                error = str(exc)
                if attempt <= len(self._backoff_s):
                    await self._sleep(self._backoff_s[attempt - 1])
                continue
            message = OutboundMessage(
                channel=request.channel,
                provider_message_id=provider_id,
                customer_id=await self._customer_of(request),
                sender=sender.sender_address,
                recipient=request.recipient,
                text=request.text,
                sent_at=self._clock.now(),
                raw={"idempotency_key": request.idempotency_key},
            )
            await self._store.accept(request, message, attempt)
            return ReplyRecord(request, ReplyState.ACCEPTED, attempt, provider_id)
        attempts = len(self._backoff_s) + 1
        await self._store.fail(request, error, attempts)
        return ReplyRecord(request, ReplyState.FAILED, attempts, last_error=error)
