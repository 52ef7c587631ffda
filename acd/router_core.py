"""The state one `acd.service.Router` shares between its parts (the routing pass, the IVR's,
the desk's and recovery's operations): its collaborators, the work items this process holds and
their pending outcomes, and the helpers every part uses (queue-log rows, estimates)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from acd.errors import StaleReservation, UnknownItem, UnknownQueue
from acd.estimates import RateTracker, Serving, count_serving, expected_wait_at
from acd.models import (
    AgentDefinition,
    AgentStatus,
    Offer,
    QueueAction,
    QueueEvent,
    QueueLogRow,
    QueuePolicy,
    Reservation,
    RouteRequest,
    WorkItem,
)
from acd.ports import Clock, LiveStore, QueueLogSink

# An item receives at most one offer or action per routing pass and the IVR drains them between
# announcements; more than this pending means the IVR stopped listening, so the oldest is dropped.
MAX_PENDING_OUTCOMES = 8
# Live agent figures (counts per queue for estimates) are re-read at most this often.
AGENT_CACHE_S = 1.0

Outcome = Offer | QueueAction
DetachedOfferHook = Callable[[Offer, WorkItem], Awaitable[None]]


@dataclass(slots=True)
class Tracked:
    """A work item this process holds (its caller, or its callback request)."""

    item: WorkItem
    entered_at: float
    step: int = 0
    outcomes: asyncio.Queue[Outcome] = field(
        default_factory=lambda: asyncio.Queue(MAX_PENDING_OUTCOMES)
    )
    reservation: Reservation | None = None
    connected_at: float | None = None
    agent_id: str = ""
    rung: bool = False  # the held reservation was accepted: the agent's phone rang
    detached: bool = False  # callback requested: no caller on the line
    attempts: int = 0  # callbacks placed that did not reach the customer
    exited: bool = False  # left by a configured action; dropped once the IVR has read it


def put_outcome(queue: asyncio.Queue[Outcome], outcome: Outcome) -> None:
    if queue.full():
        queue.get_nowait()  # the oldest is stale by now
    queue.put_nowait(outcome)


class RouterCore:
    """What a Router's parts share; built by `acd.service.Router`, passed to the functions of
    `acd.routing`, `acd.calls`, `acd.desk` and `acd.recovery`."""

    def __init__(
        self,
        *,
        store: LiveStore,
        queue_log: QueueLogSink,
        clock: Clock,
        queues: Mapping[str, QueuePolicy],
        agents: Mapping[str, AgentDefinition],
        owner: str,
        rates: RateTracker | None,
        window: int,
        heartbeat_ttl_s: float,
        on_detached_offer: DetachedOfferHook | None,
    ) -> None:
        self.store = store
        self.queue_log = queue_log
        self.clock = clock
        self.queues = dict(queues)
        self.route_requests = [
            RouteRequest(name, policy.strategy, policy.offer_timeout_s)
            for name, policy in self.queues.items()
        ]
        self.request_of = {r.queue: r for r in self.route_requests}
        self.agents = dict(agents)
        self.owner = owner
        self.rates = rates if rates is not None else RateTracker()
        self.window = window
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.on_detached = on_detached_offer
        self.tracked: dict[str, Tracked] = {}
        self.by_reservation: dict[str, str] = {}
        self.wake_event = asyncio.Event()
        self.agent_cache: tuple[float, list[AgentStatus]] = (-math.inf, [])

    def wake(self) -> None:
        """Have the routing task run a pass now."""
        self.wake_event.set()

    def reconfigure(
        self, queues: Mapping[str, QueuePolicy], agents: Mapping[str, AgentDefinition]
    ) -> None:
        """Route with these queue policies and agent definitions from the next pass on. A
        queue that is gone keeps its old policy while callers of ours still wait in it, so
        they are still served; it is dropped at the first reconfiguration after they left."""
        waiting = {t.item.queue for t in self.tracked.values()}
        kept = {q: p for q, p in self.queues.items() if q in waiting and q not in queues}
        self.queues = dict(queues) | kept
        self.route_requests = [
            RouteRequest(name, policy.strategy, policy.offer_timeout_s)
            for name, policy in self.queues.items()
        ]
        self.request_of = {r.queue: r for r in self.route_requests}
        self.agents = dict(agents)
        self.wake()

    def policy(self, queue: str) -> QueuePolicy:
        try:
            return self.queues[queue]
        except KeyError:
            raise UnknownQueue(queue) from None

    def track(self, item_id: str) -> Tracked:
        try:
            return self.tracked[item_id]
        except KeyError:
            raise UnknownItem(item_id) from None

    def reserved_item(self, reservation_id: str) -> str:
        try:
            return self.by_reservation[reservation_id]
        except KeyError:
            raise StaleReservation(reservation_id) from None

    def requests_for(self, agent_id: str) -> list[RouteRequest]:
        """The queues an agent may serve (those needing a skill it has, or none), in order."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return self.route_requests
        skills = agent.all_skills()
        return [
            r
            for r in self.route_requests
            if (skill := self.primary_skill(r.queue)) is None or skill in skills
        ]

    def primary_skill(self, queue: str) -> str | None:
        return self.policy(queue).skill

    async def live_agents(self, now: float, *, fresh: bool = False) -> list[AgentStatus]:
        at, cached = self.agent_cache
        if fresh or now - at > AGENT_CACHE_S:
            cached = await self.store.agents()
            self.agent_cache = (now, cached)
        return cached

    def serving(self, queue: str, statuses: list[AgentStatus]) -> Serving:
        # Queues with callers of ours waiting compete for shared agents (see count_serving).
        contended = {t.item.queue for t in self.tracked.values() if t.connected_at is None}
        return count_serving(
            statuses,
            self.agents,
            self.policy(queue).skill,
            (self.queues[q].skill for q in contended if q != queue and q in self.queues),
        )

    def estimate(
        self, queue: str, position: int, serving: Serving, now: float, *, waiting: bool = False
    ) -> float:
        if position <= 0:
            return 0.0
        agents, free = serving.agents, 0 if waiting else serving.free
        return expected_wait_at(
            position,
            agents=agents,
            aht_s=self.rates.aht(queue, now),
            patience_s=self.rates.patience(queue, now),
            free=free,
        )

    def row(
        self,
        now: float,
        queue: str,
        item_id: str,
        event: QueueEvent,
        agent_id: str = "",
        *,
        wait: float | None = None,
        talk: float | None = None,
        data: str = "",
    ) -> QueueLogRow:
        agent = self.agents.get(agent_id)
        team = min(agent.teams) if agent and agent.teams else ""
        return QueueLogRow(
            ts=now,
            queue=queue,
            item_id=item_id,
            event=event,
            agent_id=agent_id,
            team=team,
            wait_s=wait,
            talk_s=talk,
            data=data,
        )

    def agent_row(self, now: float, agent_id: str, data: str) -> QueueLogRow:
        return self.row(now, "", "", QueueEvent.AGENT, agent_id, data=data)

    async def leave(self, item_id: str, event: QueueEvent, reason: str) -> None:
        """The item leaves its queue for good (`event`: ABANDON, or our EXIT), whether waiting
        or reserved; one row for it, none when it was already gone."""
        tracked = self.track(item_id)
        if tracked.exited:  # already out of the queue by a configured action
            self.tracked.pop(item_id, None)
            return
        now = self.clock.now()
        # Waiting or reserved (by us, or by another process and not collected yet), in one
        # atomic step: a reservation is released as on expiry (the agent READY).
        gone = await self.store.discard_item(item_id, now)
        if tracked.reservation is not None:
            self.by_reservation.pop(tracked.reservation.reservation_id, None)
        if gone is not None and gone.reservation is not None:
            self.by_reservation.pop(gone.reservation.reservation_id, None)
        del self.tracked[item_id]
        if gone is None:
            return  # already taken out (by the reconciling sweep, which logged it): one row
        wait = now - tracked.item.arrived_at
        abandoned = event is QueueEvent.ABANDON
        self.rates.waited(tracked.item.queue, wait, now, abandoned=abandoned)
        await self.queue_log.write(
            [self.row(now, tracked.item.queue, item_id, event, wait=wait, data=reason)]
        )
        self.wake()
