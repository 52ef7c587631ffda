"""Ports the ACD drives: the shared live state, the queue-log sink, the clock.

`centralino.adapters.redis_acd.RedisLiveStore` implements `LiveStore` across processes (one
Lua script per operation, so every operation is atomic); `acd.live.MemoryLiveStore` implements
it for one process (tests, simulations). `centralino.adapters.pg_queue_log.PgQueueLog`
implements `QueueLogSink`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from acd.models import (
    AgentDefinition,
    AgentState,
    AgentStatus,
    Channel,
    Discarded,
    LiveSnapshot,
    QueueLogRow,
    Reservation,
    RouteRequest,
    Strategy,
    WaitingItem,
    WorkItem,
)
from acd.states import AgentEvent


class Clock(Protocol):
    def now(self) -> float:
        """Seconds (epoch seconds in production), never going backwards."""
        ...


class QueueLogSink(Protocol):
    async def write(self, rows: Sequence[QueueLogRow]) -> None: ...

    async def read(
        self, *, since: float, until: float | None = None, queue: str | None = None
    ) -> list[QueueLogRow]:
        """Rows with `since <= ts < until`, oldest first."""
        ...


class LiveStore(Protocol):
    """Agents, waiting items and reservations shared by every router process.

    Each method is atomic. `route` is the one decision point: it never gives one agent two
    reservations nor one item two agents, whichever processes call it concurrently.
    """

    async def put_agent(self, agent: AgentDefinition, now: float) -> None:
        """Add or redefine an agent (a new agent starts LOGGED_OUT; a known one keeps its state)."""
        ...

    async def agent_event(
        self, agent_id: str, event: AgentEvent, now: float, *, reason: str = ""
    ) -> AgentStatus:
        """Apply a state-machine event; raises `IllegalTransition` / `UnknownAgent`."""
        ...

    async def add_item(
        self, item: WorkItem, *, steps: str, owner: str, entered_at: float, front: bool = False
    ) -> int:
        """Queue an item (steps as `acd.policies.encode_steps`); returns its 1-based position."""
        ...

    async def add_and_route(
        self,
        item: WorkItem,
        *,
        steps: str,
        owner: str,
        entered_at: float,
        request: RouteRequest,
        window: int,
    ) -> tuple[int, list[Reservation]]:
        """`add_item`, then, in the same atomic step, `route` of the item's queue (`request`) at
        `entered_at`: a caller arriving while an agent is free is reserved at once. Returns the
        position the item entered at and every reservation made."""
        ...

    async def remove_item(self, item_id: str) -> WaitingItem | None:
        """Take a waiting item out of its queue (abandon, overflow); None if it was not waiting."""
        ...

    async def route(
        self,
        queue: str,
        now: float,
        owner: str,
        *,
        strategy: Strategy,
        window: int,
        ttl_s: float,
    ) -> list[Reservation]:
        """Match the first `window` waiting items, in queue order, to agents; return every
        reservation made. A reservation belongs to the item's process (its `owner`), which rings
        the agent: items of another live process are reserved for it and posted to its inbox
        (`take_offers`); items of a process whose heartbeat lapsed are adopted by `owner`.
        """
        ...

    async def route_many(
        self, requests: Sequence[RouteRequest], now: float, owner: str, *, window: int
    ) -> list[Reservation]:
        """`route` for each request in order, each atomic on its own as `route` is, in one
        exchange with the store (a routing pass over every queue costs one round trip, not
        one per queue); every reservation made, in order."""
        ...

    async def take_offers(self, owner: str, *, limit: int = 1000) -> list[Reservation]:
        """Reservations other processes made for `owner`'s items (still held), oldest first."""
        ...

    async def accept(self, reservation_id: str, now: float, *, ttl_s: float) -> Reservation:
        """The agent is being rung; the reservation now lasts `ttl_s` more seconds."""
        ...

    async def connect(self, reservation_id: str, now: float) -> Reservation:
        """The agent answered: the reservation ends, the agent works on the item."""
        ...

    async def release(
        self, reservation_id: str, now: float, *, event: AgentEvent, reason: str = ""
    ) -> Reservation | None:
        """Undo a reservation: the item goes back to the front of its queue; the agent takes
        `event` (REJECT, RING_NO_ANSWER after a ring -> not ready; EXPIRE, or RING_NO_ANSWER on
        a reservation that never rang -> ready). None if already gone. An illegal `event`
        raises `IllegalTransition` and changes nothing (the reservation stays held, expiring)."""
        ...

    async def finish(
        self, agent_id: str, channel: Channel, now: float, *, worked_s: float, wrap_up_s: float
    ) -> AgentStatus:
        """The agent finished an item: voice goes to WRAP_UP until `now + wrap_up_s`; other
        channels free a slot."""
        ...

    async def finish_and_route(
        self,
        agent_id: str,
        channel: Channel,
        now: float,
        *,
        worked_s: float,
        wrap_up_s: float,
        owner: str,
        requests: Sequence[RouteRequest],
        window: int,
    ) -> tuple[AgentStatus, Reservation | None]:
        """`finish`, then, in the same atomic step, agent-driven routing: if the agent is free
        (no wrap-up, or a free slot), it is reserved for the waiting item it should take next
        across `requests`' queues (in each, the first of the first `window` items it may take;
        of those, the best in queue order, the earlier request on a tie). The reservation
        belongs to the item's process as `route`'s do. Returns the status after both steps
        and the reservation, if one was made."""
        ...

    async def sweep(self, now: float) -> tuple[list[Reservation], list[str]]:
        """Release reservations past their expiry (agents READY, items back in front) and end
        timed wrap-ups; returns (expired reservations, agents whose wrap-up ended)."""
        ...

    async def heartbeat(self, owner: str, now: float, *, ttl_s: float) -> None:
        """Declare `owner` alive until `now + ttl_s`; its items are adopted once it lapses."""
        ...

    async def waiting(self, queue: str) -> list[WaitingItem]:
        """Items waiting in `queue`, in queue order."""
        ...

    async def park_transfer(self, item_id: str, record: str, *, ttl_s: float) -> None:
        """Keep a transferred call's pending re-queue (opaque `record`) for `ttl_s`, for
        whichever process the caller's next FastAGI session lands on."""
        ...

    async def take_transfer(self, item_id: str) -> str | None:
        """The pending re-queue of `item_id`, removed as it is read (one taker); None if none."""
        ...

    async def position(self, item_id: str) -> int:
        """1-based position of a waiting item in its queue; 0 if it is not waiting."""
        ...

    async def agents(self) -> list[AgentStatus]: ...

    async def snapshot(self, queues: Sequence[str]) -> LiveSnapshot:
        """Every agent, every held reservation and the items waiting in `queues`, in one
        atomic read (the reconciling sweep's view of the live state)."""
        ...

    async def discard_item(self, item_id: str, now: float) -> Discarded | None:
        """Take an item out of the live state whatever it is doing: waiting, it leaves its
        queue; reserved, its reservation is released (the agent READY, as on expiry) and the
        item is not requeued. None if the store holds no such item (already gone)."""
        ...

    async def reset_agent(
        self, agent_id: str, *, state: AgentState, since: float, now: float
    ) -> AgentStatus | None:
        """Free an agent stuck in a call state, only if it is still in `state` since `since`
        (as a snapshot saw it; anything newer is left alone): BUSY ends with no wrap-up;
        RESERVED or RINGING release the voice reservation holding it (the item back in front)
        or, when none is held, expire. The agent is READY after; None if nothing was done."""
        ...


class SystemClock:
    """`Clock` on the wall clock (epoch seconds), shared by every process on the machine."""

    def now(self) -> float:
        return time.time()
