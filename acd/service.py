"""The routing service: what the IVR, the agent desktop and the AMI listener call.

One `Router` per process. Work items enqueued here are "owned" by this process (it holds the
caller); the shared `LiveStore` makes every match atomic across processes. A background task
(`run`) routes on every local event and every `tick_s`, sweeps expired reservations and ended
wrap-ups, applies relaxation-step actions and keeps this process's heartbeat alive. Two events
match in the same store operation instead of waiting for that pass: an item entering its queue
while an agent is free (`add_and_route`), and an agent ending a conversation with no wrap-up,
who takes the best waiting item it fits (`finish_and_route`, agent-driven).

Flow for one call (the IVR side):

    ticket = await router.enqueue(item)              # position, expected wait, or an action
    while True:
        outcome = await router.wait_for_offer(item.item_id, timeout=30)
        if outcome is None: announce(await router.ticket(item.item_id)); continue
        if isinstance(outcome, QueueAction): ...      # callback offer, overflow note, exit
        offer = outcome                               # Offer(reservation, endpoint)
        await router.accept(offer.reservation.reservation_id)   # then screen-pop, Dial
        ... AMI: answered -> router.connected(rid); no answer -> router.ring_no_answer(rid)
    ... hangup: router.completed(item_id)  (or router.abandon(item_id) while waiting)
    ... AMI transfer instead: router.transferred(item_id, target=..., to_queue=...); the session
        the dialplan starts at a queue target calls router.rejoin(item_id) before enqueueing
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence

from acd import calls, desk, recovery, routing
from acd.calls import RING_TTL_MARGIN_S, TRANSFER_REJOIN_S
from acd.errors import AcdError
from acd.estimates import RateTracker
from acd.models import (
    KEEP_WAITING,
    AgentDefinition,
    AgentState,
    AgentStatus,
    Discarded,
    LiveSnapshot,
    QueueLogRow,
    QueuePolicy,
    Reservation,
    Ticket,
    WorkItem,
)
from acd.ports import Clock, LiveStore, QueueLogSink
from acd.queue_log import (
    item_data,
    item_from_enter,
    pending_transfer_from,
    pending_transfer_record,
)
from acd.recovery import ChannelFact, DeviceFact, RebuildPlan, RebuildReport, plan_rebuild
from acd.router_core import (
    AGENT_CACHE_S,
    MAX_PENDING_OUTCOMES,
    DetachedOfferHook,
    Outcome,
    RouterCore,
)
from acd.stats import WallboardSnapshot

log = logging.getLogger(__name__)


class Router:
    """Skills-based routing over a shared live store (see the module docstring).

    The Router owns its routing task; each operation is the function of the same name in the
    module of its job, which documents it: `acd.routing` (the pass), `acd.calls` (the IVR's
    API), `acd.desk` (agents and wallboard), `acd.recovery` (rebuild, reconciling sweep). They
    share one `acd.router_core.RouterCore`."""

    def __init__(
        self,
        *,
        store: LiveStore,
        queue_log: QueueLogSink,
        clock: Clock,
        queues: Mapping[str, QueuePolicy],
        agents: Mapping[str, AgentDefinition],
        owner: str,
        rates: RateTracker | None = None,
        window: int = 50,
        tick_s: float = 0.1,
        heartbeat_ttl_s: float = 10.0,
        on_detached_offer: DetachedOfferHook | None = None,
    ) -> None:
        self._core = RouterCore(
            store=store,
            queue_log=queue_log,
            clock=clock,
            queues=queues,
            agents=agents,
            owner=owner,
            rates=rates,
            window=window,
            heartbeat_ttl_s=heartbeat_ttl_s,
            on_detached_offer=on_detached_offer,
        )
        self._tick_s = tick_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def agent_ids(self) -> frozenset[str]:
        """The agents this router routes to (as configured)."""
        return frozenset(self._core.agents)

    async def publish(self) -> None:
        """Write the agent definitions to the live store (states of known agents are kept)."""
        core = self._core
        now = core.clock.now()
        for agent in core.agents.values():
            await core.store.put_agent(agent, now)
        await core.store.heartbeat(core.owner, now, ttl_s=core.heartbeat_ttl_s)

    async def reconfigure(
        self, *, queues: Mapping[str, QueuePolicy], agents: Mapping[str, AgentDefinition]
    ) -> None:
        """Take changed queue policies and agent definitions (the configuration changed while
        running): routing uses them from the next pass, and the agents' skills and teams are
        republished to the live store (states are kept). An agent that is gone is logged out
        first, so the live store stops offering them calls (every process tries; the ones
        after the first find them logged out already)."""
        for agent_id in [a for a in self._core.agents if a not in agents]:
            with contextlib.suppress(AcdError):
                await self.agent_logout(agent_id, forced=True)
        self._core.reconfigure(queues, agents)
        await self.publish()

    def queue_policies(self) -> dict[str, QueuePolicy]:
        return dict(self._core.queues)

    def agent_definitions(self) -> dict[str, AgentDefinition]:
        return dict(self._core.agents)

    async def start(self) -> None:
        """Publish agent definitions and start the routing task."""
        await self.publish()
        task = asyncio.create_task(self.run(), name=f"acd-route-{self._core.owner}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        # The flag, not only the cancellation, ends the loop: on Python 3.11 a cancel that lands
        # as `asyncio.timeout` expires is swallowed as a TimeoutError, and the loop would go on.
        self._closing = True
        self._core.wake()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> None:
        """Route on every wake-up and every tick until closed."""
        wake = self._core.wake_event
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_s):
                    await wake.wait()
            wake.clear()
            try:
                await self.route_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed pass (e.g. Redis blip) must not stop routing
                log.exception("routing pass failed; retrying on the next tick")

    def wake(self) -> None:
        self._core.wake()

    # --- the routing pass (acd.routing) -------------------------------------------------------

    async def route_now(self) -> list[Reservation]:
        return await routing.route_now(self._core)

    # --- the IVR's API (acd.calls) ------------------------------------------------------------

    async def enqueue(self, item: WorkItem) -> Ticket:
        return await calls.enqueue(self._core, item)

    async def wait_for_offer(self, item_id: str, timeout: float) -> Outcome | None:
        return await calls.wait_for_offer(self._core, item_id, timeout)

    async def ticket(self, item_id: str) -> Ticket:
        return await calls.ticket(self._core, item_id)

    async def expected_waits(self, queue: str) -> dict[str, float]:
        return await calls.expected_waits(self._core, queue)

    async def accept(self, reservation_id: str) -> Reservation:
        return await calls.accept(self._core, reservation_id)

    async def reject(self, reservation_id: str, *, reason: str = "rejected") -> None:
        await calls.reject(self._core, reservation_id, reason=reason)

    async def ring_no_answer(self, reservation_id: str) -> None:
        await calls.ring_no_answer(self._core, reservation_id)

    async def connected(self, reservation_id: str) -> None:
        await calls.connected(self._core, reservation_id)

    async def completed(self, item_id: str, *, wrap_up_s: float | None = None) -> None:
        await calls.completed(self._core, item_id, wrap_up_s=wrap_up_s)

    async def abandon(self, item_id: str, *, reason: str = "caller_hangup") -> None:
        await calls.abandon(self._core, item_id, reason=reason)

    async def hand_back(self, item_id: str, *, reason: str = "returned") -> None:
        await calls.hand_back(self._core, item_id, reason=reason)

    async def callback_unreached(self, item_id: str, *, status: str, max_attempts: int) -> bool:
        return await calls.callback_unreached(
            self._core, item_id, status=status, max_attempts=max_attempts
        )

    async def request_callback(self, item_id: str, number: str) -> Ticket:
        return await calls.request_callback(self._core, item_id, number)

    async def transferred(self, item_id: str, *, target: str, to_queue: str | None = None) -> None:
        await calls.transferred(self._core, item_id, target=target, to_queue=to_queue)

    async def rejoin(self, item_id: str) -> Ticket | None:
        return await calls.rejoin(self._core, item_id)

    async def transfer(self, item_id: str, *, to_queue: str) -> Ticket:
        return await calls.transfer(self._core, item_id, to_queue=to_queue)

    # --- the agent desktop's, AMI's and supervisor's API (acd.desk) ---------------------------

    async def agent_login(self, agent_id: str) -> AgentStatus:
        return await desk.agent_login(self._core, agent_id)

    async def agent_ready(self, agent_id: str) -> AgentStatus:
        return await desk.agent_ready(self._core, agent_id)

    async def agent_not_ready(self, agent_id: str, reason: str) -> AgentStatus:
        return await desk.agent_not_ready(self._core, agent_id, reason)

    async def agent_logout(self, agent_id: str, *, forced: bool = False) -> AgentStatus:
        return await desk.agent_logout(self._core, agent_id, forced=forced)

    async def snapshot(self, queue: str) -> WallboardSnapshot:
        return await desk.snapshot(self._core, queue)

    # --- recovery and the reconciling sweep (acd.recovery) ------------------------------------

    async def rebuild(
        self,
        *,
        devices: Iterable[DeviceFact],
        channels: Iterable[ChannelFact],
        rows: Sequence[QueueLogRow],
    ) -> RebuildReport:
        return await recovery.rebuild(self._core, devices=devices, channels=channels, rows=rows)

    async def live_snapshot(self) -> LiveSnapshot:
        return await recovery.live_snapshot(self._core)

    async def drop_item(self, item_id: str, *, reason: str, log_abandon: bool) -> Discarded | None:
        return await recovery.drop_item(self._core, item_id, reason=reason, log_abandon=log_abandon)

    async def free_agent(
        self,
        agent_id: str,
        *,
        state: AgentState,
        since: float,
        reason: str,
        conversation: tuple[str, str, float] | None = None,
    ) -> AgentStatus | None:
        return await recovery.free_agent(
            self._core,
            agent_id,
            state=state,
            since=since,
            reason=reason,
            conversation=conversation,
        )


__all__ = [
    "AGENT_CACHE_S",
    "KEEP_WAITING",
    "MAX_PENDING_OUTCOMES",
    "RING_TTL_MARGIN_S",
    "TRANSFER_REJOIN_S",
    "ChannelFact",
    "DetachedOfferHook",
    "DeviceFact",
    "Outcome",
    "RebuildPlan",
    "RebuildReport",
    "Router",
    "item_data",
    "item_from_enter",
    "pending_transfer_from",
    "pending_transfer_record",
    "plan_rebuild",
]
