"""The written channels' services: messages in (stored, resolved to a customer, on the
timeline) and a customer's timeline out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from context.identity import PhoneNormaliser
from context.messages import (
    InboundMessage,
    MessageBatch,
    MessageStore,
    StoredMessage,
    TimelineItem,
    sender_of,
)
from context.models import Customer, Identity, ResolutionStatus
from context.service import ContextService

# A timeline page: enough for an agent or a report, bounded so one request stays cheap.
MAX_TIMELINE_ITEMS = 500


# Told of every message once it is stored (e.g. to route its conversation); must not block.
OnStored = Callable[[InboundMessage, StoredMessage], None]


class MessageInbox:
    """Stores what a webhook delivered, all of it or nothing (the provider then retries)."""

    def __init__(
        self, *, store: MessageStore, phones: PhoneNormaliser, on_stored: OnStored | None = None
    ) -> None:
        self._store = store
        self._phones = phones
        self._on_stored = on_stored

    async def receive(self, batch: MessageBatch) -> list[StoredMessage]:
        senders = [sender_of(m, self._phones) for m in batch.messages]
        stored = await self._store.store_batch(batch, senders)
        if self._on_stored is not None:
            for message, result in zip(batch.messages, stored, strict=True):
                self._on_stored(message, result)
        return stored


@dataclass(frozen=True, slots=True)
class CustomerTimeline:
    """A customer's timeline, or why there is none to show."""

    status: ResolutionStatus
    customers: tuple[Customer, ...] = ()
    items: tuple[TimelineItem, ...] = ()


class TimelineReader:
    """Finds the customer by an identity (the same resolution as calls and messages) and
    reads their timeline on every channel."""

    def __init__(self, *, context: ContextService, store: MessageStore) -> None:
        self._context = context
        self._store = store

    async def timeline(self, identity: Identity, *, limit: int) -> CustomerTimeline:
        """Raises `InvalidIdentity` for a malformed identity."""
        if not 1 <= limit <= MAX_TIMELINE_ITEMS:
            raise ValueError(f"limit must be 1 to {MAX_TIMELINE_ITEMS}, got {limit}")
        resolution = await self._context.resolve(identity)
        customer = resolution.customer
        if customer is None:
            return CustomerTimeline(resolution.status, resolution.customers)
        items = await self._store.timeline(customer.id, limit)
        return CustomerTimeline(resolution.status, resolution.customers, tuple(items))
