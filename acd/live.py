"""Live ACD state for one process: the reference semantics of `LiveStore`, pure and synchronous.

`LiveState` is what a simulation or a test drives directly; `MemoryLiveStore` wraps it in the
async `LiveStore` port. The Redis adapter implements the same operations in Lua; tests compare
the two.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from acd.errors import DuplicateItem, StaleReservation, UnknownAgent, UnknownItem
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
    RoutingStep,
    Strategy,
    WaitingItem,
    WorkItem,
    queue_score,
)
from acd.policies import Candidate, add_busy, demand_at, eligible, select
from acd.states import AgentEvent, transition


@dataclass(slots=True)
class _Agent:
    definition: AgentDefinition
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    reason: str = ""
    idle_since: float = 0.0
    busy_s: float = 0.0
    busy_at: float = 0.0
    load: dict[Channel, int] = field(default_factory=dict)
    wrap_until: float | None = None

    def available(self, channel: Channel) -> bool:
        if self.state is not AgentState.READY:
            return False
        cap = self.definition.capacity.of(channel)
        if channel is Channel.VOICE:
            return cap > 0 and not any(self.load.values())
        return self.load.get(channel, 0) < cap

    def status(self) -> AgentStatus:
        return AgentStatus(
            agent_id=self.definition.agent_id,
            state=self.state,
            since=self.since,
            reason=self.reason,
            load={k.value: v for k, v in self.load.items() if v},
            teams=self.definition.teams,
        )


@dataclass(slots=True)
class _Item:
    item: WorkItem
    steps: tuple[RoutingStep, ...]
    owner: str
    entered_at: float
    front: bool = False
    waiting: bool = True

    @property
    def score(self) -> float:
        return queue_score(self.item.priority, self.item.arrived_at, front=self.front)


def decode_steps(encoded: str) -> tuple[RoutingStep, ...]:
    """Inverse of `acd.policies.encode_steps` (only the routing fields travel)."""
    steps = []
    for part in encoded.split(";"):
        after, pref, level = part.split(":")
        steps.append(RoutingStep(float(after), pref == "P", int(level) or None))
    return tuple(steps)


class LiveState:
    """Agents, queues and reservations in memory, with the same rules as the Redis script."""

    def __init__(self) -> None:
        self._agents: dict[str, _Agent] = {}
        self._items: dict[str, _Item] = {}
        self._reservations: dict[str, Reservation] = {}
        self._owners: dict[str, float] = {}
        self._inbox: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        # Pending re-queues of transferred calls (opaque records, see Router.transferred).
        self.transfers: dict[str, str] = {}

    # --- agents ---

    def put_agent(self, agent: AgentDefinition, now: float) -> None:
        known = self._agents.get(agent.agent_id)
        if known is None:
            self._agents[agent.agent_id] = _Agent(definition=agent, since=now, idle_since=now)
        else:
            known.definition = agent

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    def agent_event(
        self, agent_id: str, event: AgentEvent, now: float, *, reason: str = ""
    ) -> AgentStatus:
        agent = self._agent(agent_id)
        new = transition(agent.state, event)
        if new is not agent.state:
            agent.since = now
            if new is AgentState.READY:
                agent.idle_since = now
        agent.state = new
        agent.reason = reason if new is AgentState.NOT_READY else ""
        if new is not AgentState.WRAP_UP:
            agent.wrap_until = None
        if new is AgentState.LOGGED_OUT:
            agent.load.clear()
        return agent.status()

    def agents(self) -> list[AgentStatus]:
        return [a.status() for a in self._agents.values()]

    # --- items ---

    def add_item(
        self, item: WorkItem, *, steps: str, owner: str, entered_at: float, front: bool = False
    ) -> int:
        known = self._items.get(item.item_id)
        if known is not None and known.waiting:
            raise DuplicateItem(item.item_id)
        self._items[item.item_id] = _Item(item, decode_steps(steps), owner, entered_at, front)
        return self.position(item.item_id)

    def add_and_route(
        self,
        item: WorkItem,
        *,
        steps: str,
        owner: str,
        entered_at: float,
        request: RouteRequest,
        window: int,
    ) -> tuple[int, list[Reservation]]:
        position = self.add_item(item, steps=steps, owner=owner, entered_at=entered_at)
        made = self.route(
            request.queue,
            entered_at,
            owner,
            strategy=request.strategy,
            window=window,
            ttl_s=request.ttl_s,
        )
        return position, made

    def remove_item(self, item_id: str) -> WaitingItem | None:
        entry = self._items.get(item_id)
        if entry is None or not entry.waiting:
            return None
        del self._items[item_id]
        return _waiting(entry)

    def _queue(self, queue: str) -> list[_Item]:
        entries = [e for e in self._items.values() if e.waiting and e.item.queue == queue]
        entries.sort(key=lambda e: (e.score, e.item.item_id))
        return entries

    def waiting(self, queue: str) -> list[WaitingItem]:
        return [_waiting(e) for e in self._queue(queue)]

    def position(self, item_id: str) -> int:
        entry = self._items.get(item_id)
        if entry is None or not entry.waiting:
            return 0
        ids = [e.item.item_id for e in self._queue(entry.item.queue)]
        return ids.index(item_id) + 1

    # --- routing ---

    def heartbeat(self, owner: str, now: float, *, ttl_s: float) -> None:
        self._owners[owner] = now + ttl_s

    def _alive(self, owner: str, now: float) -> bool:
        return self._owners.get(owner, float("-inf")) > now

    def candidates(self, channel: Channel, exclude: set[str]) -> list[Candidate]:
        return [
            Candidate(
                agent_id=a.definition.agent_id,
                skills=a.definition.all_skills(),
                idle_since=a.idle_since,
                busy_s=a.busy_s,
                busy_at=a.busy_at,
            )
            for a in self._agents.values()
            if a.available(channel) and a.definition.agent_id not in exclude
        ]

    def route(
        self, queue: str, now: float, owner: str, *, strategy: Strategy, window: int, ttl_s: float
    ) -> list[Reservation]:
        made: list[Reservation] = []
        for entry in self._queue(queue)[:window]:
            demand = demand_at(entry.item, _step(entry, now))
            pick = select(strategy, self.candidates(entry.item.channel, set()), demand, now)
            if pick is None:
                continue
            made.append(self._book(entry, self._agents[pick.agent_id], owner, now, ttl_s))
        return made

    def _book(
        self, entry: _Item, agent: _Agent, owner: str, now: float, ttl_s: float
    ) -> Reservation:
        """Reserve for the item's process, or adopt the item if its process died."""
        foreign = entry.owner != owner and self._alive(entry.owner, now)
        if not foreign:
            entry.owner = owner
        res = self._reserve(entry, agent, entry.owner, now, ttl_s)
        if foreign:
            self._inbox.setdefault(entry.owner, []).append(res.reservation_id)
        return res

    def finish_and_route(
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
        self.finish(agent_id, channel, now, worked_s=worked_s, wrap_up_s=wrap_up_s)
        agent = self._agents[agent_id]
        me = Candidate(
            agent_id=agent_id,
            skills=agent.definition.all_skills(),
            idle_since=agent.idle_since,
            busy_s=agent.busy_s,
            busy_at=agent.busy_at,
        )
        best: tuple[_Item, float] | None = None
        for request in requests:
            for entry in self._queue(request.queue)[:window]:
                if best is not None and entry.score >= best[0].score:
                    break  # later queues count only if strictly better
                if agent.available(entry.item.channel) and eligible(
                    me, demand_at(entry.item, _step(entry, now))
                ):
                    best = (entry, request.ttl_s)
                    break
        res = None if best is None else self._book(best[0], agent, owner, now, best[1])
        return agent.status(), res

    def take_offers(self, owner: str, *, limit: int = 1000) -> list[Reservation]:
        box = self._inbox.get(owner, [])
        taken, self._inbox[owner] = box[:limit], box[limit:]
        return [self._reservations[r] for r in taken if r in self._reservations]

    def _reserve(
        self, entry: _Item, agent: _Agent, owner: str, now: float, ttl_s: float
    ) -> Reservation:
        channel = entry.item.channel
        if channel is Channel.VOICE:
            self.agent_event(agent.definition.agent_id, AgentEvent.RESERVE, now)
        else:
            agent.load[channel] = agent.load.get(channel, 0) + 1
        entry.waiting = False
        res = Reservation(
            reservation_id=f"r{next(self._ids)}",
            item_id=entry.item.item_id,
            agent_id=agent.definition.agent_id,
            queue=entry.item.queue,
            channel=channel,
            owner=owner,
            created_at=now,
            expires_at=now + ttl_s,
            waited_s=now - entry.item.arrived_at,
        )
        self._reservations[res.reservation_id] = res
        return res

    def _held(self, reservation_id: str) -> Reservation:
        try:
            return self._reservations[reservation_id]
        except KeyError:
            raise StaleReservation(reservation_id) from None

    def accept(self, reservation_id: str, now: float, *, ttl_s: float) -> Reservation:
        res = self._held(reservation_id)
        if res.channel is Channel.VOICE:
            self.agent_event(res.agent_id, AgentEvent.ACCEPT, now)
        res = replace(res, expires_at=now + ttl_s)
        self._reservations[reservation_id] = res
        return res

    def connect(self, reservation_id: str, now: float) -> Reservation:
        res = self._held(reservation_id)
        if res.channel is Channel.VOICE:
            self.agent_event(res.agent_id, AgentEvent.ANSWER, now)
        del self._reservations[reservation_id]
        self._items.pop(res.item_id, None)
        return res

    def release(
        self, reservation_id: str, now: float, *, event: AgentEvent, reason: str = ""
    ) -> Reservation | None:
        res = self._reservations.get(reservation_id)
        if res is None:
            return None
        agent = self._agents.get(res.agent_id)
        moves = (
            agent is not None
            and res.channel is Channel.VOICE
            and agent.state in (AgentState.RESERVED, AgentState.RINGING)
        )
        if moves:
            assert agent is not None
            transition(agent.state, event)  # an illegal event raises before anything changes
        del self._reservations[reservation_id]
        if agent is not None:
            if res.channel is Channel.VOICE:
                if agent.state in (AgentState.RESERVED, AgentState.RINGING):
                    self.agent_event(res.agent_id, event, now, reason=reason)
            else:
                agent.load[res.channel] = max(0, agent.load.get(res.channel, 0) - 1)
                if event is not AgentEvent.EXPIRE and agent.state is AgentState.READY:
                    self.agent_event(res.agent_id, AgentEvent.NOT_READY, now, reason=reason)
        entry = self._items.get(res.item_id)
        if entry is not None:
            entry.waiting = True
            entry.front = True
        return res

    def finish(
        self, agent_id: str, channel: Channel, now: float, *, worked_s: float, wrap_up_s: float
    ) -> AgentStatus:
        agent = self._agent(agent_id)
        agent.busy_s, agent.busy_at = add_busy(agent.busy_s, agent.busy_at, worked_s, now)
        if channel is Channel.VOICE:
            self.agent_event(agent_id, AgentEvent.HANGUP, now)
            if wrap_up_s <= 0:
                return self.agent_event(agent_id, AgentEvent.WRAP_DONE, now)
            agent.wrap_until = now + wrap_up_s
        else:
            agent.load[channel] = max(0, agent.load.get(channel, 0) - 1)
        return agent.status()

    def sweep(self, now: float) -> tuple[list[Reservation], list[str]]:
        expired = [r for r in self._reservations.values() if r.expires_at <= now]
        released = [
            r
            for r in (self.release(r.reservation_id, now, event=AgentEvent.EXPIRE) for r in expired)
            if r is not None
        ]
        done = []
        for agent in self._agents.values():
            if agent.wrap_until is not None and agent.wrap_until <= now:
                self.agent_event(agent.definition.agent_id, AgentEvent.WRAP_DONE, now)
                done.append(agent.definition.agent_id)
        return released, done

    # --- the reconciling sweep's view and its fixes ---

    def snapshot(self, queues: Sequence[str]) -> LiveSnapshot:
        return LiveSnapshot(
            agents=tuple(self.agents()),
            reservations=tuple(self._reservations.values()),
            waiting=tuple(w for q in queues for w in self.waiting(q)),
            callbacks=frozenset(
                r.item_id
                for r in self._reservations.values()
                if (e := self._items.get(r.item_id)) is not None and e.item.callback_number
            ),
        )

    def discard_item(self, item_id: str, now: float) -> Discarded | None:
        entry = self._items.get(item_id)
        if entry is None:
            return None
        held = next((r for r in self._reservations.values() if r.item_id == item_id), None)
        res = None if held is None else self.release(held.reservation_id, now, event=_EXPIRE)
        del self._items[item_id]
        return Discarded(item=_waiting(entry), reservation=res)

    def reset_agent(
        self, agent_id: str, *, state: AgentState, since: float, now: float
    ) -> AgentStatus | None:
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not state or agent.since != since:
            return None
        if state is AgentState.BUSY:
            self.agent_event(agent_id, AgentEvent.HANGUP, now)
            return self.agent_event(agent_id, AgentEvent.WRAP_DONE, now)
        if state not in (AgentState.RESERVED, AgentState.RINGING):
            return None
        held = next(
            (
                r
                for r in self._reservations.values()
                if r.agent_id == agent_id and r.channel is Channel.VOICE
            ),
            None,
        )
        if held is not None:
            self.release(held.reservation_id, now, event=_EXPIRE)
            return agent.status()
        return self.agent_event(agent_id, _EXPIRE, now)


_EXPIRE = AgentEvent.EXPIRE


def _step(entry: _Item, now: float) -> RoutingStep:
    """The item's routing step now: the last one its time in the queue has reached."""
    step = entry.steps[0]
    for s in entry.steps:
        if s.after_s <= now - entry.entered_at:
            step = s
    return step


def _waiting(entry: _Item) -> WaitingItem:
    return WaitingItem(
        item_id=entry.item.item_id,
        queue=entry.item.queue,
        priority=entry.item.priority,
        arrived_at=entry.item.arrived_at,
        owner=entry.owner,
        callback_number=entry.item.callback_number,
        channel=entry.item.channel,
    )


class MemoryLiveStore:
    """`LiveStore` for a single process, over a `LiveState`."""

    def __init__(self, *, state: LiveState | None = None) -> None:
        self.state = state if state is not None else LiveState()

    async def put_agent(self, agent: AgentDefinition, now: float) -> None:
        self.state.put_agent(agent, now)

    async def agent_event(
        self, agent_id: str, event: AgentEvent, now: float, *, reason: str = ""
    ) -> AgentStatus:
        return self.state.agent_event(agent_id, event, now, reason=reason)

    async def add_item(
        self, item: WorkItem, *, steps: str, owner: str, entered_at: float, front: bool = False
    ) -> int:
        return self.state.add_item(
            item, steps=steps, owner=owner, entered_at=entered_at, front=front
        )

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
        return self.state.add_and_route(
            item, steps=steps, owner=owner, entered_at=entered_at, request=request, window=window
        )

    async def remove_item(self, item_id: str) -> WaitingItem | None:
        return self.state.remove_item(item_id)

    async def route(
        self, queue: str, now: float, owner: str, *, strategy: Strategy, window: int, ttl_s: float
    ) -> list[Reservation]:
        return self.state.route(queue, now, owner, strategy=strategy, window=window, ttl_s=ttl_s)

    async def route_many(
        self, requests: Sequence[RouteRequest], now: float, owner: str, *, window: int
    ) -> list[Reservation]:
        made: list[Reservation] = []
        for r in requests:
            made += self.state.route(
                r.queue, now, owner, strategy=r.strategy, window=window, ttl_s=r.ttl_s
            )
        return made

    async def take_offers(self, owner: str, *, limit: int = 1000) -> list[Reservation]:
        return self.state.take_offers(owner, limit=limit)

    async def accept(self, reservation_id: str, now: float, *, ttl_s: float) -> Reservation:
        return self.state.accept(reservation_id, now, ttl_s=ttl_s)

    async def connect(self, reservation_id: str, now: float) -> Reservation:
        return self.state.connect(reservation_id, now)

    async def release(
        self, reservation_id: str, now: float, *, event: AgentEvent, reason: str = ""
    ) -> Reservation | None:
        return self.state.release(reservation_id, now, event=event, reason=reason)

    async def finish(
        self, agent_id: str, channel: Channel, now: float, *, worked_s: float, wrap_up_s: float
    ) -> AgentStatus:
        return self.state.finish(agent_id, channel, now, worked_s=worked_s, wrap_up_s=wrap_up_s)

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
        return self.state.finish_and_route(
            agent_id,
            channel,
            now,
            worked_s=worked_s,
            wrap_up_s=wrap_up_s,
            owner=owner,
            requests=requests,
            window=window,
        )

    async def sweep(self, now: float) -> tuple[list[Reservation], list[str]]:
        return self.state.sweep(now)

    async def heartbeat(self, owner: str, now: float, *, ttl_s: float) -> None:
        self.state.heartbeat(owner, now, ttl_s=ttl_s)

    async def waiting(self, queue: str) -> list[WaitingItem]:
        return self.state.waiting(queue)

    async def park_transfer(self, item_id: str, record: str, *, ttl_s: float) -> None:
        # No clock here: the Router checks the record's age itself, as it does from Redis.
        self.state.transfers[item_id] = record

    async def take_transfer(self, item_id: str) -> str | None:
        return self.state.transfers.pop(item_id, None)

    async def position(self, item_id: str) -> int:
        return self.state.position(item_id)

    async def agents(self) -> list[AgentStatus]:
        return self.state.agents()

    async def snapshot(self, queues: Sequence[str]) -> LiveSnapshot:
        return self.state.snapshot(queues)

    async def discard_item(self, item_id: str, now: float) -> Discarded | None:
        return self.state.discard_item(item_id, now)

    async def reset_agent(
        self, agent_id: str, *, state: AgentState, since: float, now: float
    ) -> AgentStatus | None:
        return self.state.reset_agent(agent_id, state=state, since=since, now=now)


class MemoryQueueLog:
    """`QueueLogSink` in memory (tests, simulations)."""

    def __init__(self) -> None:
        self.rows: list[QueueLogRow] = []

    async def write(self, rows: Sequence[QueueLogRow]) -> None:
        self.rows.extend(rows)

    async def read(
        self, *, since: float, until: float | None = None, queue: str | None = None
    ) -> list[QueueLogRow]:
        return [
            r
            for r in sorted(self.rows, key=lambda r: r.ts)
            if r.ts >= since
            and (until is None or r.ts < until)
            and (queue is None or r.queue in (queue, ""))
        ]


__all__ = ["LiveState", "MemoryLiveStore", "MemoryQueueLog", "UnknownItem", "decode_steps"]
