"""Ports the context domain owns. Adapters in `centralino.adapters` implement them.

Stores return domain objects; the Redis side (`CallContextStore`) deals in JSON text so the
domain decides the format and the adapter only moves strings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from context.models import (
    ConnectorQuery,
    Customer,
    ExternalLink,
    Fact,
    Identity,
    Interaction,
    PhaseActivity,
    Ticket,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall time, for records and fact ages."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines and durations."""
        ...


class CustomerStore(Protocol):
    async def create(
        self,
        *,
        display_name: str,
        identities: Sequence[Identity] = (),
        links: Sequence[ExternalLink] = (),
    ) -> Customer: ...

    async def get(self, customer_id: int) -> Customer:
        """Raise `context.errors.NotFound` if there is no such customer."""
        ...

    async def find_by_identity(self, identity: Identity) -> list[Customer]:
        """Live (not merged-away) customers having this identity; several for shared numbers."""
        ...

    async def add_identity(self, customer_id: int, identity: Identity) -> None: ...

    async def identities(self, customer_id: int) -> list[Identity]: ...

    async def add_link(self, customer_id: int, link: ExternalLink) -> None: ...

    async def links(self, customer_id: int) -> list[ExternalLink]: ...

    async def merge(self, *, keep_id: int, absorb_id: int) -> Customer:
        """Move identities, links, interactions and tickets of `absorb_id` to `keep_id` (both
        timelines are kept, each interaction remembering its original owner); mark `absorb_id`
        merged. Raise `context.errors.MergeError` / `NotFound` on misuse."""
        ...


class TimelineStore(Protocol):
    async def append(self, interaction: Interaction) -> Interaction:
        """Store a new interaction; return it with its id."""
        ...

    async def recent(self, customer_id: int, limit: int) -> list[Interaction]:
        """The customer's last interactions on every channel, newest first."""
        ...

    async def record_pop_delivery(
        self,
        *,
        linkedid: str,
        pushed_at: datetime | None,
        acked_at: datetime | None,
        ring_at: datetime | None,
    ) -> bool:
        """Set the screen-pop push/ack and ring times on the call's interaction; False if the
        call has no interaction yet (the caller then passes the times to `append`)."""
        ...


@dataclass(frozen=True, slots=True)
class TicketMove:
    """What one ticket move changes: the new ticket state, the activity it closed and the one it
    opened. The store writes all three atomically."""

    ticket: Ticket
    closed: PhaseActivity
    opened: PhaseActivity


class TicketStore(Protocol):
    async def create(self, ticket: Ticket, first: PhaseActivity) -> Ticket:
        """Insert a ticket (its `id` is ignored and assigned) with its first phase activity."""
        ...

    async def get(self, ticket_id: int) -> Ticket: ...

    async def open_for_customer(self, customer_id: int) -> list[Ticket]: ...

    async def apply_move(self, move: TicketMove) -> None:
        """Persist a move planned by `context.tickets.plan_move`; raise `IllegalMove` if the
        ticket changed phase meanwhile (optimistic check on the closed activity's phase)."""
        ...

    async def history(self, ticket_id: int) -> list[PhaseActivity]:
        """Every phase activity of the ticket, oldest first (out-of-order moves included)."""
        ...


@dataclass(frozen=True, slots=True)
class ContextUpdate:
    """One field of a call's context changed (a source finished, the IVR added something)."""

    linkedid: str
    field: str
    value_json: str


class CallContextStore(Protocol):
    """Per-call context in the live store, under the call's linkedid, expiring after a TTL."""

    async def put(self, linkedid: str, fields: Mapping[str, str]) -> None:
        """Write these fields (JSON text each), refresh the TTL and announce each change to
        subscribers."""
        ...

    async def read(self, linkedid: str) -> dict[str, str]: ...

    def updates(self, linkedid: str) -> AsyncIterator[ContextUpdate]:
        """Changes to this call's context from now on (from any process), until cancelled."""
        ...

    async def delete(self, linkedid: str) -> None: ...


class Connector(Protocol):
    """An owner of data (ERP, CRM, ...) that answers with facts about a customer.

    `needs_link` names the external system whose id the connector looks up by (e.g. "erp");
    None means it can look up by the caller's identity directly, so the fan-out starts it at
    once instead of after identity resolution.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_link(self) -> str | None: ...

    async def fetch(self, query: ConnectorQuery) -> list[Fact]:
        """Raise `context.errors.ConnectorError` when the backend fails; return [] when it
        simply knows nothing about this customer."""
        ...
