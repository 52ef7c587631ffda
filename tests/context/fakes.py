"""In-memory stand-ins for the context ports, for pure tests (the real ones are tested against
PostgreSQL and Redis in tests/adapters)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from context.errors import IllegalMove, MergeError, NotFound
from context.fanout import PreAnswerFanout
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
from context.ports import Clock, Connector, ContextUpdate, TicketMove
from context.service import ContextService

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """Wall and monotonic time that only move when the test says so."""

    mono: float = 1000.0
    wall: datetime = T0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


class MemoryCustomers:
    def __init__(self) -> None:
        self.customers: dict[int, Customer] = {}
        self.ids: dict[int, set[Identity]] = {}
        self.link_map: dict[int, list[ExternalLink]] = {}
        self._next = itertools.count(1)
        self.delay_s = 0.0

    async def create(
        self,
        *,
        display_name: str,
        identities: Sequence[Identity] = (),
        links: Sequence[ExternalLink] = (),
    ) -> Customer:
        c = Customer(id=next(self._next), display_name=display_name, created_at=T0)
        self.customers[c.id] = c
        self.ids[c.id] = set(identities)
        self.link_map[c.id] = list(links)
        return c

    async def get(self, customer_id: int) -> Customer:
        if customer_id not in self.customers:
            raise NotFound(str(customer_id))
        return self.customers[customer_id]

    async def find_by_identity(self, identity: Identity) -> list[Customer]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return [
            c
            for c in self.customers.values()
            if c.merged_into is None and identity in self.ids[c.id]
        ]

    async def add_identity(self, customer_id: int, identity: Identity) -> None:
        self.ids[customer_id].add(identity)

    async def identities(self, customer_id: int) -> list[Identity]:
        return sorted(self.ids[customer_id], key=str)

    async def add_link(self, customer_id: int, link: ExternalLink) -> None:
        self.link_map[customer_id].append(link)

    async def links(self, customer_id: int) -> list[ExternalLink]:
        return list(self.link_map[customer_id])

    async def merge(self, *, keep_id: int, absorb_id: int) -> Customer:
        if keep_id == absorb_id:
            raise MergeError("self")
        keep = await self.get(keep_id)
        self.ids[keep_id] |= self.ids.pop(absorb_id)
        self.link_map[keep_id] += self.link_map.pop(absorb_id)
        self.customers[absorb_id] = replace(self.customers[absorb_id], merged_into=keep_id)
        return keep


class MemoryTimeline:
    def __init__(self) -> None:
        self.items: list[Interaction] = []

    async def append(self, interaction: Interaction) -> Interaction:
        stored = replace(interaction, id=len(self.items) + 1)
        self.items.append(stored)
        return stored

    async def recent(self, customer_id: int, limit: int) -> list[Interaction]:
        mine = [i for i in self.items if i.customer_id == customer_id]
        return sorted(mine, key=lambda i: i.started_at, reverse=True)[:limit]

    async def record_pop_delivery(
        self,
        *,
        linkedid: str,
        pushed_at: datetime | None,
        acked_at: datetime | None,
        ring_at: datetime | None,
    ) -> bool:
        return False


class MemoryTickets:
    def __init__(self) -> None:
        self.tickets: dict[int, Ticket] = {}
        self.activities: dict[int, list[PhaseActivity]] = {}

    async def create(self, ticket: Ticket, first: PhaseActivity) -> Ticket:
        stored = replace(ticket, id=len(self.tickets) + 1)
        self.tickets[stored.id] = stored
        self.activities[stored.id] = [replace(first, ticket_id=stored.id)]
        return stored

    async def get(self, ticket_id: int) -> Ticket:
        if ticket_id not in self.tickets:
            raise NotFound(str(ticket_id))
        return self.tickets[ticket_id]

    async def open_for_customer(self, customer_id: int) -> list[Ticket]:
        return [t for t in self.tickets.values() if t.customer_id == customer_id and t.is_open]

    async def apply_move(self, move: TicketMove) -> None:
        history = self.activities[move.ticket.id]
        if history[-1].phase != move.closed.phase or history[-1].closed_at is not None:
            raise IllegalMove("moved meanwhile")
        history[-1] = move.closed
        history.append(move.opened)
        self.tickets[move.ticket.id] = move.ticket

    async def history(self, ticket_id: int) -> list[PhaseActivity]:
        return list(self.activities[ticket_id])


class MemoryCallContext:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}
        self.writes = 0
        self.fail = False
        self._queues: list[tuple[str, asyncio.Queue[ContextUpdate]]] = []

    async def put(self, linkedid: str, fields: Mapping[str, str]) -> None:
        if self.fail:
            raise ConnectionError("live store down")
        self.writes += 1
        self.data.setdefault(linkedid, {}).update(fields)
        for lid, queue in self._queues:
            if lid == linkedid:
                for k, v in fields.items():
                    queue.put_nowait(ContextUpdate(linkedid, k, v))

    async def read(self, linkedid: str) -> dict[str, str]:
        return dict(self.data.get(linkedid, {}))

    async def updates(self, linkedid: str) -> AsyncIterator[ContextUpdate]:
        queue: asyncio.Queue[ContextUpdate] = asyncio.Queue()
        entry = (linkedid, queue)
        self._queues.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(entry)

    async def delete(self, linkedid: str) -> None:
        self.data.pop(linkedid, None)


@dataclass
class ScriptedConnector:
    """A connector whose answer is a coroutine the test provides."""

    name: str
    script: Callable[[ConnectorQuery], Awaitable[list[Fact]]]
    needs_link: str | None = None
    calls: list[ConnectorQuery] = field(default_factory=list)

    async def fetch(self, query: ConnectorQuery) -> list[Fact]:
        self.calls.append(query)
        return await self.script(query)


def memory_fanout(
    clock: Clock, connectors: Sequence[Connector], *, deadline_s: float = 0.05
) -> PreAnswerFanout:
    """A pre-answer fan-out over in-memory stores (for tests of what consumes its pops)."""
    return PreAnswerFanout(
        service=ContextService(
            customers=MemoryCustomers(),
            timeline=MemoryTimeline(),
            tickets=MemoryTickets(),
            clock=clock,
        ),
        connectors=connectors,
        call_context=MemoryCallContext(),
        clock=clock,
        deadline_s=deadline_s,
    )
