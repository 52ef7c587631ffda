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
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from acd.errors import StaleReservation, UnknownAgent, UnknownItem, UnknownQueue
from acd.estimates import RateTracker, Serving, count_serving, expected_wait_at
from acd.models import (
    KEEP_WAITING,
    ActionKind,
    AgentDefinition,
    AgentState,
    AgentStatus,
    Channel,
    Discarded,
    LiveSnapshot,
    Offer,
    QueueAction,
    QueueEvent,
    QueueLogRow,
    QueuePolicy,
    Reservation,
    RouteRequest,
    SkillRequirement,
    Ticket,
    WorkItem,
)
from acd.policies import encode_steps, step_index
from acd.ports import Clock, LiveStore, QueueLogSink
from acd.states import AgentEvent
from acd.stats import WallboardSnapshot, wallboard_from_log

log = logging.getLogger(__name__)

# An item receives at most one offer or action per routing pass and the IVR drains them between
# announcements; more than this pending means the IVR stopped listening, so the oldest is dropped.
MAX_PENDING_OUTCOMES = 8
# Reservations survive a ring this much longer than the ring timeout, so that a slow AMI event
# does not free an agent whose phone is still ringing.
RING_TTL_MARGIN_S = 5.0
# Live agent figures (counts per queue for estimates) are re-read at most this often.
AGENT_CACHE_S = 1.0
# A call transferred to one of our queues waits for its caller to be held again (`rejoin`: the
# dialplan re-enters FastAGI within milliseconds); one not back after this long never will be.
TRANSFER_REJOIN_S = 120.0

Outcome = Offer | QueueAction
DetachedOfferHook = Callable[[Offer, WorkItem], Awaitable[None]]


@dataclass(slots=True)
class _Tracked:
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


@dataclass(frozen=True, slots=True)
class DeviceFact:
    """From AMI DeviceStateList: is the agent's phone registered/usable."""

    agent_id: str
    available: bool


@dataclass(frozen=True, slots=True)
class ChannelFact:
    """From AMI CoreShowChannels: a live call and, if bridged to an agent, which one."""

    item_id: str
    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    agents: int
    busy: int
    requeued: int
    dropped: int


class Router:
    """Skills-based routing over a shared live store (see the module docstring)."""

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
        self._store = store
        self._log = queue_log
        self._clock = clock
        self._queues = dict(queues)
        self._route_requests = [
            RouteRequest(name, policy.strategy, policy.offer_timeout_s)
            for name, policy in self._queues.items()
        ]
        self._request_of = {r.queue: r for r in self._route_requests}
        self._agents = dict(agents)
        self._owner = owner
        self._rates = rates if rates is not None else RateTracker()
        self._window = window
        self._tick_s = tick_s
        self._hb_ttl = heartbeat_ttl_s
        self._on_detached = on_detached_offer
        self._tracked: dict[str, _Tracked] = {}
        self._by_reservation: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._agent_cache: tuple[float, list[AgentStatus]] = (-math.inf, [])
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def agent_ids(self) -> frozenset[str]:
        """The agents this router routes to (as configured)."""
        return frozenset(self._agents)

    # --- lifecycle -----------------------------------------------------------------------

    async def publish(self) -> None:
        """Write the agent definitions to the live store (states of known agents are kept)."""
        now = self._clock.now()
        for agent in self._agents.values():
            await self._store.put_agent(agent, now)
        await self._store.heartbeat(self._owner, now, ttl_s=self._hb_ttl)

    async def start(self) -> None:
        """Publish agent definitions and start the routing task."""
        await self.publish()
        task = asyncio.create_task(self.run(), name=f"acd-route-{self._owner}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        # The flag, not only the cancellation, ends the loop: on Python 3.11 a cancel that lands
        # as `asyncio.timeout` expires is swallowed as a TimeoutError, and the loop would go on.
        self._closing = True
        self._wake.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> None:
        """Route on every wake-up and every tick until closed."""
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.route_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed pass (e.g. Redis blip) must not stop routing
                log.exception("routing pass failed; retrying on the next tick")

    def wake(self) -> None:
        self._wake.set()

    # --- the routing pass ------------------------------------------------------------------

    async def route_now(self) -> list[Reservation]:
        """One pass: heartbeat, sweep, step actions, match every queue, collect reservations
        other processes made for our items. Returns this process's new reservations."""
        now = self._clock.now()
        await self._store.heartbeat(self._owner, now, ttl_s=self._hb_ttl)
        expired, wrapped = await self._store.sweep(now)
        rows = [
            self._row(now, r.queue, r.item_id, QueueEvent.REJECT, r.agent_id, data="expired")
            for r in expired
        ]
        for res in expired:
            self._by_reservation.pop(res.reservation_id, None)
            tracked = self._tracked.get(res.item_id)
            if tracked is not None:
                tracked.reservation, tracked.rung = None, False
        for tracked in self._tracked.values():
            held = tracked.reservation
            if held is not None and held.expires_at <= now:  # swept by another process
                self._by_reservation.pop(held.reservation_id, None)
                tracked.reservation, tracked.rung = None, False
        rows += [self._agent_row(now, a, "ready:wrap_up_ended") for a in wrapped]
        rows += await self._apply_steps(now)
        got = await self._store.route_many(
            self._route_requests, now, self._owner, window=self._window
        )
        # Reservations for other processes' items reach them through their inbox.
        made = [r for r in got if r.owner == self._owner]
        made.extend(await self._store.take_offers(self._owner))
        if rows:
            await self._log.write(rows)
        await self._deliver_all(made, now)
        return made

    async def _deliver_all(self, made: list[Reservation], now: float) -> None:
        if not made:
            return
        await self._log.write(
            [
                self._row(now, r.queue, r.item_id, QueueEvent.OFFER, r.agent_id, wait=r.waited_s)
                for r in made
            ]
        )
        for res in made:
            await self._deliver(res)

    async def _deliver(self, res: Reservation) -> None:
        self._by_reservation[res.reservation_id] = res.item_id
        agent = self._agents.get(res.agent_id)
        offer = Offer(reservation=res, endpoint=agent.endpoint if agent else "")
        tracked = self._tracked.get(res.item_id)
        if tracked is not None and not tracked.detached:
            tracked.reservation, tracked.rung = res, False
            _put(tracked.outcomes, offer)
            return
        item = tracked.item if tracked is not None else None
        if tracked is not None:
            tracked.reservation = res
        if item is None:
            # Adopted from a dead process: rebuild what we know from the queue log.
            item = await self._item_from_log(res.item_id, res.queue)
            self._tracked[res.item_id] = _Tracked(
                item=item, entered_at=res.created_at, reservation=res, detached=True
            )
        if item.callback_number is None:
            # Adopted from a process that died holding its caller (or tracked here with no one
            # holding it): nobody can ring this agent through to that caller, and the detached
            # hook is for callback requests only. The agent is freed, the item leaves.
            await self.abandon(res.item_id, reason="caller_not_held")
            return
        if self._on_detached is None:
            await self.abandon(res.item_id, reason="no_detached_handler")
            return
        await self._on_detached(offer, item)

    async def _item_from_log(self, item_id: str, queue: str) -> WorkItem:
        # An item still routed was queued within the longest max wait; a day covers it.
        rows = await self._log.read(since=self._clock.now() - 86400.0, queue=queue)
        enter = [r for r in rows if r.item_id == item_id and r.event is QueueEvent.ENTER]
        callbacks = [r for r in rows if r.item_id == item_id and r.event is QueueEvent.CALLBACK]
        if enter:
            item = item_from_enter(enter[0])
        else:
            item = WorkItem(item_id=item_id, queue=queue, arrived_at=self._clock.now())
        if callbacks:
            item = replace(item, callback_number=callbacks[-1].data)
        return item

    async def _apply_steps(self, now: float) -> list[QueueLogRow]:
        rows: list[QueueLogRow] = []
        for item_id, tracked in list(self._tracked.items()):
            if tracked.reservation is not None or tracked.connected_at is not None:
                continue
            if tracked.exited:
                continue
            policy = self._queues[tracked.item.queue]
            waited = now - tracked.entered_at
            index = step_index(policy, waited)
            actions: list[QueueAction] = []
            if index > tracked.step:
                for step in policy.steps[tracked.step + 1 : index + 1]:
                    if step.action.kind is not ActionKind.NONE:
                        actions.append(step.action)
                tracked.step = index
            if now - tracked.item.arrived_at >= policy.max_wait_s:
                actions.append(policy.on_max_wait)
            for action in actions:
                rows += await self._act(item_id, tracked, action, now)
                if tracked.exited or action.kind is ActionKind.OVERFLOW:
                    break
        return rows

    async def _act(
        self, item_id: str, tracked: _Tracked, action: QueueAction, now: float
    ) -> list[QueueLogRow]:
        item = tracked.item
        wait = now - item.arrived_at
        if action.kind is ActionKind.OVERFLOW:
            target = self._queues.get(action.target)
            if target is None:
                raise UnknownQueue(action.target)
            if await self._store.remove_item(item_id) is None:
                return []
            moved = replace(item, queue=target.name)
            if target.skill is not None:  # the target queue's agents decide: its skill applies
                moved = replace(moved, skills=(SkillRequirement(target.skill, 1),))
            await self._store.add_item(
                moved, steps=encode_steps(target.steps), owner=self._owner, entered_at=now
            )
            tracked.item, tracked.entered_at, tracked.step = moved, now, 0
            _put(tracked.outcomes, action)
            return [
                self._row(
                    now, item.queue, item_id, QueueEvent.OVERFLOW, wait=wait, data=target.name
                ),
                self._row(
                    now, target.name, item_id, QueueEvent.ENTER, wait=wait, data=item_data(moved)
                ),
            ]
        if action.kind is ActionKind.CALLBACK:
            if not tracked.detached:
                _put(tracked.outcomes, action)
            return []
        if action.kind is ActionKind.NONE:
            return []
        # voicemail / hangup: the item leaves the queue
        await self._store.remove_item(item_id)
        tracked.exited = True
        _put(tracked.outcomes, action)
        return [
            self._row(now, item.queue, item_id, QueueEvent.EXIT, wait=wait, data=action.kind.value)
        ]

    # --- the IVR's API ---------------------------------------------------------------------

    async def enqueue(self, item: WorkItem) -> Ticket:
        """Queue a work item. The ticket says where it stands, or (position 0) which configured
        action applies instead: queue full, or nobody logged in who could take it."""
        policy = self._policy(item.queue)
        now = self._clock.now()
        statuses = await self._live_agents(now, fresh=True)
        serving = self._serving(item.queue, statuses)
        rows = [self._row(now, item.queue, item.item_id, QueueEvent.ENTER, data=item_data(item))]
        action: QueueAction | None = None
        if serving.logged_in <= 0:
            action = policy.on_no_agents
        elif len(await self._store.waiting(item.queue)) >= policy.max_length:
            action = policy.on_full
        if action is not None:
            rows.append(
                self._row(
                    now, item.queue, item.item_id, QueueEvent.EXIT, wait=0.0, data=action.kind.value
                )
            )
            await self._log.write(rows)
            return Ticket(item.item_id, item.queue, 0, math.inf, action)
        # Queued and, in the same step, matched if an agent is free for it.
        position, got = await self._store.add_and_route(
            item,
            steps=encode_steps(policy.steps),
            owner=self._owner,
            entered_at=now,
            request=self._request_of[item.queue],
            window=self._window,
        )
        # Tracked before the next await: a routing pass meanwhile must find its waiter.
        self._tracked[item.item_id] = _Tracked(item=item, entered_at=now)
        try:
            await self._log.write(rows)
        except BaseException:
            # The queue log is where an entry lasts (PostgreSQL down, or we were cancelled): the
            # caller goes back to the dialplan without it, so the live state must not keep a
            # phantom caller, nor an agent reserved for one. Undo, then say it failed.
            self._tracked.pop(item.item_id, None)
            await asyncio.shield(self._store.discard_item(item.item_id, now))
            raise
        self._rates.arrival(item.queue, now)
        # Reservations for other processes' items (older ones of this queue) reach them through
        # their inbox.
        await self._deliver_all([r for r in got if r.owner == self._owner], now)
        self.wake()
        return Ticket(
            item.item_id, item.queue, position, self._estimate(item.queue, position, serving, now)
        )

    async def wait_for_offer(self, item_id: str, timeout: float) -> Outcome | None:
        """The next offer or action for a queued item; None after `timeout` seconds (time to
        play an announcement). An `Offer` may go stale if not accepted within the queue's
        `offer_timeout_s`: `accept` then raises `StaleReservation` and the caller waits again."""
        tracked = self._track(item_id)
        try:
            async with asyncio.timeout(timeout):
                outcome = await tracked.outcomes.get()
        except TimeoutError:
            return None
        if tracked.exited and tracked.outcomes.empty():
            self._tracked.pop(item_id, None)
        return outcome

    async def ticket(self, item_id: str) -> Ticket:
        """Current position and expected wait (for the periodic announcement)."""
        tracked = self._track(item_id)
        now = self._clock.now()
        position = await self._store.position(item_id)
        serving = self._serving(tracked.item.queue, await self._live_agents(now))
        return Ticket(
            item_id,
            tracked.item.queue,
            position,
            self._estimate(tracked.item.queue, position, serving, now),
        )

    async def expected_waits(self, queue: str) -> dict[str, float]:
        """Expected remaining wait of every waiting item of `queue`, by item id."""
        now = self._clock.now()
        serving = self._serving(queue, await self._live_agents(now))
        waiting = await self._store.waiting(queue)
        return {
            w.item_id: self._estimate(queue, i + 1, serving, now) for i, w in enumerate(waiting)
        }

    async def accept(self, reservation_id: str) -> Reservation:
        """The offer is taken: the agent's phone is about to ring (call just before Dial)."""
        item_id = self._reserved_item(reservation_id)
        tracked = self._tracked[item_id]
        policy = self._policy(tracked.item.queue)
        try:
            res = await self._store.accept(
                reservation_id, self._clock.now(), ttl_s=policy.ring_timeout_s + RING_TTL_MARGIN_S
            )
        except StaleReservation:
            self._by_reservation.pop(reservation_id, None)
            tracked.reservation = None
            raise
        tracked.reservation, tracked.rung = res, True
        return res

    async def reject(self, reservation_id: str, *, reason: str = "rejected") -> None:
        """The agent declined the offer: agent NOT_READY(reason), item back to the front."""
        await self._release(reservation_id, AgentEvent.REJECT, QueueEvent.REJECT, reason)

    async def ring_no_answer(self, reservation_id: str) -> None:
        """RONA: agent NOT_READY("rona"), item back to the front of its queue. On a reservation
        that never rang (not `accept`ed: the Originate or Dial never started) the agent was not
        at fault: READY again, logged as a REJECT "never_rang" rather than a RONA."""
        tracked = self._tracked.get(self._reserved_item(reservation_id))
        if tracked is not None and not tracked.rung:
            await self._release(
                reservation_id, AgentEvent.RING_NO_ANSWER, QueueEvent.REJECT, "never_rang"
            )
            return
        await self._release(reservation_id, AgentEvent.RING_NO_ANSWER, QueueEvent.RONA, "rona")

    async def _release(
        self, reservation_id: str, event: AgentEvent, logged: QueueEvent, reason: str
    ) -> None:
        item_id = self._reserved_item(reservation_id)
        now = self._clock.now()
        tracked = self._tracked[item_id]
        res = await self._store.release(reservation_id, now, event=event, reason=reason)
        self._by_reservation.pop(reservation_id, None)
        tracked.reservation, rung, tracked.rung = None, tracked.rung, False
        if res is None:
            raise StaleReservation(reservation_id)
        never_rang = event is AgentEvent.RING_NO_ANSWER and not rung
        agent_state = "ready" if never_rang else "not_ready"
        await self._log.write(
            [
                self._row(now, res.queue, item_id, logged, res.agent_id, data=reason),
                self._agent_row(now, res.agent_id, f"{agent_state}:{reason}"),
            ]
        )
        self.wake()

    async def connected(self, reservation_id: str) -> None:
        """AMI confirmed the agent answered (or a chat/email was opened)."""
        item_id = self._reserved_item(reservation_id)
        now = self._clock.now()
        tracked = self._tracked[item_id]
        try:
            res = await self._store.connect(reservation_id, now)
        except StaleReservation:
            self._by_reservation.pop(reservation_id, None)
            tracked.reservation = None
            raise
        self._by_reservation.pop(reservation_id, None)
        tracked.reservation, tracked.connected_at, tracked.agent_id = None, now, res.agent_id
        tracked.rung = False
        wait = now - tracked.item.arrived_at
        self._rates.waited(tracked.item.queue, wait, now, abandoned=False)
        await self._log.write(
            [self._row(now, res.queue, item_id, QueueEvent.CONNECT, res.agent_id, wait=wait)]
        )

    async def completed(self, item_id: str, *, wrap_up_s: float | None = None) -> None:
        """The conversation ended; the agent wraps up (voice) or frees a slot."""
        await self._end_conversation(item_id, QueueEvent.COMPLETE, wrap_up_s=wrap_up_s)

    async def _end_conversation(
        self, item_id: str, event: QueueEvent, *, wrap_up_s: float | None = None, data: str = ""
    ) -> None:
        """The agent's part of a connected item is over (`event`: COMPLETE or TRANSFER): talk
        time until now, then their wrap-up; the item is no longer tracked."""
        tracked = self._track(item_id)
        if tracked.connected_at is None:
            raise UnknownItem(item_id)
        now = self._clock.now()
        agent = self._agents.get(tracked.agent_id)
        wrap = wrap_up_s if wrap_up_s is not None else (agent.wrap_up_s if agent else 0.0)
        talk = now - tracked.connected_at
        made: Reservation | None = None
        if wrap <= 0 or tracked.item.channel is not Channel.VOICE:
            # Free at once: the agent takes its next item in the same step (agent-driven
            # routing), so a waiting caller does not wait for the next routing pass.
            _, made = await self._store.finish_and_route(
                tracked.agent_id,
                tracked.item.channel,
                now,
                worked_s=talk + wrap,
                wrap_up_s=wrap,
                owner=self._owner,
                requests=self._requests_for(tracked.agent_id),
                window=self._window,
            )
        else:
            await self._store.finish(
                tracked.agent_id, tracked.item.channel, now, worked_s=talk + wrap, wrap_up_s=wrap
            )
        self._rates.handled(tracked.item.queue, talk + wrap, now)
        del self._tracked[item_id]
        await self._log.write(
            [
                self._row(
                    now,
                    tracked.item.queue,
                    item_id,
                    event,
                    tracked.agent_id,
                    talk=talk,
                    data=data,
                ),
                self._agent_row(
                    now,
                    tracked.agent_id,
                    "wrap_up" if tracked.item.channel is Channel.VOICE and wrap > 0 else "ready",
                ),
            ]
        )
        # A reservation for another process's item reaches it through its inbox.
        if made is not None and made.owner == self._owner:
            await self._deliver_all([made], now)
        self.wake()

    async def abandon(self, item_id: str, *, reason: str = "caller_hangup") -> None:
        """The caller left while waiting (or while an agent was reserved or ringing)."""
        await self._leave(item_id, QueueEvent.ABANDON, reason)

    async def hand_back(self, item_id: str, *, reason: str = "returned") -> None:
        """We handed the caller back to the dialplan (shutting down) while they waited: they
        leave the queue as ABANDON would, logged as an EXIT of ours, not counted as the
        caller's abandon."""
        await self._leave(item_id, QueueEvent.EXIT, reason)

    async def _leave(self, item_id: str, event: QueueEvent, reason: str) -> None:
        tracked = self._track(item_id)
        if tracked.exited:  # already out of the queue by a configured action
            self._tracked.pop(item_id, None)
            return
        now = self._clock.now()
        # Waiting or reserved (by us, or by another process and not collected yet), in one
        # atomic step: a reservation is released as on expiry (the agent READY).
        gone = await self._store.discard_item(item_id, now)
        if tracked.reservation is not None:
            self._by_reservation.pop(tracked.reservation.reservation_id, None)
        if gone is not None and gone.reservation is not None:
            self._by_reservation.pop(gone.reservation.reservation_id, None)
        del self._tracked[item_id]
        if gone is None:
            return  # already taken out (by the reconciling sweep, which logged it): one row
        wait = now - tracked.item.arrived_at
        abandoned = event is QueueEvent.ABANDON
        self._rates.waited(tracked.item.queue, wait, now, abandoned=abandoned)
        await self._log.write(
            [self._row(now, tracked.item.queue, item_id, event, wait=wait, data=reason)]
        )
        self.wake()

    async def callback_unreached(self, item_id: str, *, status: str, max_attempts: int) -> bool:
        """A connected callback whose customer was not reached (the dialplan's DIALSTATUS:
        NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, or NOTDIALED): the agent spoke to no one and
        is READY at once (no wrap-up), and the request goes back to the front of its queue,
        its place and routing steps kept — unless this was its `max_attempts`-th failed
        attempt (counted by this process), then it leaves with an EXIT row. Returns whether it
        was requeued. Raises UnknownItem unless the item is a connected callback here."""
        tracked = self._track(item_id)
        if tracked.connected_at is None or tracked.item.callback_number is None:
            raise UnknownItem(item_id)
        now = self._clock.now()
        agent_id = tracked.agent_id
        await self._store.finish(
            agent_id, Channel.VOICE, now, worked_s=now - tracked.connected_at, wrap_up_s=0.0
        )
        tracked.attempts += 1
        item = tracked.item
        data = f"callback_{status.lower()}"
        rows = [
            self._row(now, item.queue, item_id, QueueEvent.REJECT, agent_id, data=data),
            self._agent_row(now, agent_id, "ready"),
        ]
        requeue = tracked.attempts < max_attempts
        if requeue:
            policy = self._policy(item.queue)
            await self._store.add_item(
                item,
                steps=encode_steps(policy.steps),
                owner=self._owner,
                entered_at=tracked.entered_at,
                front=True,
            )
            tracked.connected_at, tracked.agent_id = None, ""
        else:
            del self._tracked[item_id]
            rows.append(
                self._row(
                    now,
                    item.queue,
                    item_id,
                    QueueEvent.EXIT,
                    wait=now - item.arrived_at,
                    data="callback_unreached",
                )
            )
        await self._log.write(rows)
        self._agent_cache = (-math.inf, [])
        self.wake()
        return requeue

    async def request_callback(self, item_id: str, number: str) -> Ticket:
        """The caller pressed the callback key: they may hang up and keep their place. When an
        agent is reserved for the item, `on_detached_offer(offer, item)` runs (Originate)."""
        tracked = self._track(item_id)
        now = self._clock.now()
        if await self._store.remove_item(item_id) is None:
            raise UnknownItem(item_id)
        item = replace(tracked.item, callback_number=number)
        policy = self._policy(item.queue)
        await self._store.add_item(
            item, steps=encode_steps(policy.steps), owner=self._owner, entered_at=tracked.entered_at
        )
        tracked.item, tracked.detached = item, True
        await self._log.write(
            [
                self._row(
                    now,
                    item.queue,
                    item_id,
                    QueueEvent.CALLBACK,
                    wait=now - item.arrived_at,
                    data=number,
                )
            ]
        )
        return await self.ticket(item_id)

    async def transferred(self, item_id: str, *, target: str, to_queue: str | None = None) -> None:
        """The agent transferred a connected call (AMI BlindTransfer/AttendedTransfer): their
        part ends now, as if the conversation had ended (talk time until now, then their normal
        wrap-up), and a TRANSFER row names the target ("exten@context", an agent, an app).

        With `to_queue` (the target is one of our queues) the call is re-queued there once its
        caller is held again: `rejoin(item_id)`, from the FastAGI session the dialplan starts at
        the target. It competes as a fresh arrival for the target queue's skill; the first
        queue's preferred agents no longer apply. Raises UnknownItem unless the item is
        connected here, UnknownQueue for a queue we do not have (nothing is changed then)."""
        tracked = self._track(item_id)
        if tracked.connected_at is None:
            raise UnknownItem(item_id)
        target_policy = self._policy(to_queue) if to_queue is not None else None
        now = self._clock.now()
        if target_policy is not None:
            moved = replace(tracked.item, queue=target_policy.name, preferred_agents=())
            if target_policy.skill is not None:
                moved = replace(moved, skills=(SkillRequirement(target_policy.skill, 1),))
            # In the live store, not here: the caller's next session may land on any process.
            await self._store.park_transfer(
                item_id, pending_transfer_record(moved, at=now), ttl_s=TRANSFER_REJOIN_S
            )
        await self._end_conversation(item_id, QueueEvent.TRANSFER, data=target)

    async def rejoin(self, item_id: str) -> Ticket | None:
        """The caller of a call transferred to one of our queues is held by us again: queue it
        there now (ENTER in the target queue, waiting from now on). Returns its ticket (position
        0 with the queue's action when it cannot be queued, as `enqueue`), or None when no
        transfer of this item is pending, in any process (then it is a call like any other)."""
        record = await self._store.take_transfer(item_id)
        if record is None:
            return None
        item, at = pending_transfer_from(item_id, record)
        if self._clock.now() - at > TRANSFER_REJOIN_S:
            return None
        return await self.enqueue(replace(item, arrived_at=self._clock.now()))

    async def transfer(self, item_id: str, *, to_queue: str) -> Ticket:
        """Move a connected item to another queue at once, its customer still held by the same
        owner (e.g. a chat): `transferred` then `rejoin`."""
        await self.transferred(item_id, target=to_queue, to_queue=to_queue)
        ticket = await self.rejoin(item_id)
        assert ticket is not None  # just recorded as pending
        return ticket

    # --- the agent desktop's and AMI's API -------------------------------------------------

    async def agent_login(self, agent_id: str) -> AgentStatus:
        return await self._agent(agent_id, AgentEvent.LOGIN, "")

    async def agent_ready(self, agent_id: str) -> AgentStatus:
        return await self._agent(agent_id, AgentEvent.READY, "")

    async def agent_not_ready(self, agent_id: str, reason: str) -> AgentStatus:
        return await self._agent(agent_id, AgentEvent.NOT_READY, reason)

    async def agent_logout(self, agent_id: str, *, forced: bool = False) -> AgentStatus:
        """Logout (forced=True when AMI reports the device gone, from any state)."""
        event = AgentEvent.FORCE_LOGOUT if forced else AgentEvent.LOGOUT
        return await self._agent(agent_id, event, "device_gone" if forced else "")

    async def _agent(self, agent_id: str, event: AgentEvent, reason: str) -> AgentStatus:
        if agent_id not in self._agents:
            raise UnknownAgent(agent_id)
        now = self._clock.now()
        status = await self._store.agent_event(agent_id, event, now, reason=reason)
        data = status.state.value + (f":{reason}" if reason else "")
        await self._log.write([self._agent_row(now, agent_id, data)])
        self._agent_cache = (-math.inf, [])
        self.wake()
        return status

    # --- the supervisor's API --------------------------------------------------------------

    async def snapshot(self, queue: str) -> WallboardSnapshot:
        """Wallboard figures: today's statistics from the queue log (UTC day), live waiting
        calls and agent states from the live store."""
        policy = self._policy(queue)
        now = self._clock.now()
        rows = await self._log.read(since=now - now % 86400.0)
        snap = wallboard_from_log(
            rows, queue=queue, now=now, sl_t_s=policy.sl_target_s, sl_goal=policy.sl_goal
        )
        waiting = await self._store.waiting(queue)
        skill = self._primary_skill(queue)
        states: dict[str, int] = {}
        for status in await self._live_agents(now, fresh=True):
            agent = self._agents.get(status.agent_id)
            if status.state is AgentState.LOGGED_OUT:
                continue
            if agent is not None and (skill is None or skill in agent.all_skills()):
                states[status.state.value] = states.get(status.state.value, 0) + 1
        return replace(
            snap,
            waiting=len(waiting),
            longest_wait_s=max((now - w.arrived_at for w in waiting), default=0.0),
            agents_by_state=states,
        )

    # --- recovery --------------------------------------------------------------------------

    async def rebuild(
        self,
        *,
        devices: Iterable[DeviceFact],
        channels: Iterable[ChannelFact],
        rows: Sequence[QueueLogRow],
    ) -> RebuildReport:
        """Restore the live store after Redis lost it: agents from their device state, their
        last logged state and the calls bridged to them; waiting items from the queue log when
        their channel is still up (or they asked for a callback). Items come back owned by this
        process, in their original order. An agent the store already has out of LOGGED_OUT
        was changed since Redis lost its state (logged in from the desktop meanwhile): that
        is newer than the log, and is kept."""
        now = self._clock.now()
        plan = plan_rebuild(rows, devices=devices, channels=channels)
        for agent in self._agents.values():
            await self._store.put_agent(agent, now)
        current = {a.agent_id: a.state for a in await self._store.agents()}
        busy = 0
        for agent_id, (state, reason) in plan.agent_states.items():
            if agent_id not in self._agents:
                continue
            if current.get(agent_id, AgentState.LOGGED_OUT) is not AgentState.LOGGED_OUT:
                continue
            for event in _path_to(state):
                await self._store.agent_event(agent_id, event, now, reason=reason)
            busy += state is AgentState.BUSY
        for item_id, agent_id in plan.busy.items():
            if agent_id in self._agents and item_id in plan.items:
                self._tracked[item_id] = _Tracked(
                    item=plan.items[item_id], entered_at=now, connected_at=now, agent_id=agent_id
                )
        requeued = 0
        for item in plan.waiting:
            policy = self._queues.get(item.queue)
            if policy is None:
                continue
            await self._store.add_item(
                item,
                steps=encode_steps(policy.steps),
                owner=self._owner,
                entered_at=item.arrived_at,
            )
            self._tracked[item.item_id] = _Tracked(
                item=item, entered_at=item.arrived_at, detached=item.callback_number is not None
            )
            requeued += 1
        self.wake()
        return RebuildReport(
            agents=len(plan.agent_states), busy=busy, requeued=requeued, dropped=plan.dropped
        )

    # --- the reconciling sweep's reads and fixes (contact.reconcile decides) -----------------

    async def live_snapshot(self) -> LiveSnapshot:
        """Agents, held reservations and the items waiting in our queues, in one read."""
        return await self._store.snapshot(list(self._queues))

    async def drop_item(self, item_id: str, *, reason: str, log_abandon: bool) -> Discarded | None:
        """Take an item whose caller is gone out of the live state, whichever process owns it:
        a reservation it holds is released with the agent READY; it is not requeued. Writes
        its ABANDON row if `log_abandon` (once: nothing is written when the item was gone
        already, e.g. another process's sweep or its owner took it out first)."""
        now = self._clock.now()
        gone = await self._store.discard_item(item_id, now)
        tracked = self._tracked.pop(item_id, None)
        if tracked is not None and tracked.reservation is not None:
            self._by_reservation.pop(tracked.reservation.reservation_id, None)
        if gone is None:
            return None
        rows: list[QueueLogRow] = []
        wait = now - gone.item.arrived_at
        if log_abandon:
            self._rates.waited(gone.item.queue, wait, now, abandoned=True)
            rows.append(
                self._row(now, gone.item.queue, item_id, QueueEvent.ABANDON, wait=wait, data=reason)
            )
        res = gone.reservation
        if res is not None:
            self._by_reservation.pop(res.reservation_id, None)
            if res.channel is Channel.VOICE:
                rows.append(self._agent_row(now, res.agent_id, f"ready:{reason}"))
        if rows:
            await self._log.write(rows)
        self._agent_cache = (-math.inf, [])
        self.wake()
        return gone

    async def free_agent(
        self,
        agent_id: str,
        *,
        state: AgentState,
        since: float,
        reason: str,
        conversation: tuple[str, str, float] | None = None,
    ) -> AgentStatus | None:
        """Make an agent stuck in `state` READY, only if the store still has them in it since
        `since` (else None: something newer happened). `conversation` (item, queue, connected
        at) is the conversation of theirs the queue log has no end for: it gets its COMPLETE
        row now."""
        now = self._clock.now()
        status = await self._store.reset_agent(agent_id, state=state, since=since, now=now)
        if status is None:
            return None
        rows = [self._agent_row(now, agent_id, f"{status.state.value}:{reason}")]
        if conversation is not None:
            item_id, queue, connected_at = conversation
            rows.append(
                self._row(
                    now,
                    queue,
                    item_id,
                    QueueEvent.COMPLETE,
                    agent_id,
                    talk=max(0.0, now - connected_at),
                    data=reason,
                )
            )
        for item_id, tracked in list(self._tracked.items()):
            if tracked.connected_at is not None and tracked.agent_id == agent_id:
                del self._tracked[item_id]  # its end was never reported; it is logged above
            elif tracked.reservation is not None and tracked.reservation.agent_id == agent_id:
                self._by_reservation.pop(tracked.reservation.reservation_id, None)
                tracked.reservation, tracked.rung = None, False
        await self._log.write(rows)
        self._agent_cache = (-math.inf, [])
        self.wake()
        return status

    # --- helpers ---------------------------------------------------------------------------

    def _policy(self, queue: str) -> QueuePolicy:
        try:
            return self._queues[queue]
        except KeyError:
            raise UnknownQueue(queue) from None

    def _track(self, item_id: str) -> _Tracked:
        try:
            return self._tracked[item_id]
        except KeyError:
            raise UnknownItem(item_id) from None

    def _reserved_item(self, reservation_id: str) -> str:
        try:
            return self._by_reservation[reservation_id]
        except KeyError:
            raise StaleReservation(reservation_id) from None

    def _requests_for(self, agent_id: str) -> list[RouteRequest]:
        """The queues an agent may serve (those needing a skill it has, or none), in order."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return self._route_requests
        skills = agent.all_skills()
        return [
            r
            for r in self._route_requests
            if (skill := self._primary_skill(r.queue)) is None or skill in skills
        ]

    def _primary_skill(self, queue: str) -> str | None:
        return self._policy(queue).skill

    async def _live_agents(self, now: float, *, fresh: bool = False) -> list[AgentStatus]:
        at, cached = self._agent_cache
        if fresh or now - at > AGENT_CACHE_S:
            cached = await self._store.agents()
            self._agent_cache = (now, cached)
        return cached

    def _serving(self, queue: str, statuses: list[AgentStatus]) -> Serving:
        # Queues with callers of ours waiting compete for shared agents (see count_serving).
        contended = {t.item.queue for t in self._tracked.values() if t.connected_at is None}
        return count_serving(
            statuses,
            self._agents,
            self._policy(queue).skill,
            (self._queues[q].skill for q in contended if q != queue and q in self._queues),
        )

    def _estimate(
        self, queue: str, position: int, serving: Serving, now: float, *, waiting: bool = False
    ) -> float:
        if position <= 0:
            return 0.0
        agents, free = serving.agents, 0 if waiting else serving.free
        return expected_wait_at(
            position,
            agents=agents,
            aht_s=self._rates.aht(queue, now),
            patience_s=self._rates.patience(queue, now),
            free=free,
        )

    def _row(
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
        agent = self._agents.get(agent_id)
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

    def _agent_row(self, now: float, agent_id: str, data: str) -> QueueLogRow:
        return self._row(now, "", "", QueueEvent.AGENT, agent_id, data=data)


def _put(queue: asyncio.Queue[Outcome], outcome: Outcome) -> None:
    if queue.full():
        queue.get_nowait()  # the oldest is stale by now
    queue.put_nowait(outcome)


def _path_to(state: AgentState) -> list[AgentEvent]:
    """Events that take a fresh (LOGGED_OUT) agent to `state` through the state machine."""
    login = [AgentEvent.LOGIN]
    return {
        AgentState.LOGGED_OUT: [],
        AgentState.NOT_READY: login,
        AgentState.READY: [*login, AgentEvent.READY],
        AgentState.BUSY: [
            *login,
            AgentEvent.READY,
            AgentEvent.RESERVE,
            AgentEvent.ACCEPT,
            AgentEvent.ANSWER,
        ],
    }.get(state, [*login, AgentEvent.READY])


# --- queue-log encoding of items and the rebuild plan (pure) ---------------------------------


def item_data(item: WorkItem) -> str:
    """ENTER rows carry the item, so that it can be restored from the queue log."""
    return json.dumps(
        {
            "arrived_at": item.arrived_at,
            "channel": item.channel.value,
            "skills": [[r.skill, r.min_level, r.relaxable] for r in item.skills],
            "priority": item.priority,
            "preferred": list(item.preferred_agents),
            "language": item.language,
            "caller_id": item.caller_id,
        },
        separators=(",", ":"),
    )


def item_from_enter(row: QueueLogRow) -> WorkItem:
    return _item_from(row.item_id, row.queue, json.loads(row.data) if row.data else {}, row.ts)


def pending_transfer_record(item: WorkItem, *, at: float) -> str:
    """A transferred call's pending re-queue, as the live store keeps it for any process."""
    return json.dumps({"at": at, "queue": item.queue, "item": item_data(item)})


def pending_transfer_from(item_id: str, record: str) -> tuple[WorkItem, float]:
    data = json.loads(record)
    at = float(data["at"])
    return _item_from(item_id, str(data["queue"]), json.loads(data["item"]), at), at


def _item_from(item_id: str, queue: str, data: dict[str, Any], default_ts: float) -> WorkItem:
    return WorkItem(
        item_id=item_id,
        queue=queue,
        arrived_at=float(data.get("arrived_at", default_ts)),
        channel=Channel(data.get("channel", "voice")),
        skills=tuple(
            SkillRequirement(s, int(lv), bool(rx)) for s, lv, rx in data.get("skills", [])
        ),
        priority=int(data.get("priority", 0)),
        preferred_agents=tuple(data.get("preferred", [])),
        language=data.get("language"),
        caller_id=str(data.get("caller_id", "")),
    )


@dataclass(frozen=True, slots=True)
class RebuildPlan:
    agent_states: dict[str, tuple[AgentState, str]]
    busy: dict[str, str]  # item -> agent
    items: dict[str, WorkItem]
    waiting: list[WorkItem]  # in queue order (arrival)
    dropped: int  # queued per the log but with no live channel and no callback


_STILL_WAITING = {
    QueueEvent.ENTER,
    QueueEvent.REJECT,
    QueueEvent.RONA,
    QueueEvent.CALLBACK,
    QueueEvent.OFFER,
}


def plan_rebuild(
    rows: Sequence[QueueLogRow],
    *,
    devices: Iterable[DeviceFact],
    channels: Iterable[ChannelFact],
) -> RebuildPlan:
    """Combine AMI facts with the queue log into the live state to restore (pure)."""
    ordered = sorted(rows, key=lambda r: r.ts)
    last_agent: dict[str, tuple[AgentState, str]] = {}
    items: dict[str, WorkItem] = {}
    last_event: dict[str, QueueEvent] = {}
    callback: dict[str, str] = {}
    for row in ordered:
        if row.event is QueueEvent.AGENT:
            state_name, _, reason = row.data.partition(":")
            with contextlib.suppress(ValueError):
                last_agent[row.agent_id] = (AgentState(state_name), reason)
            continue
        if row.event is QueueEvent.ENTER:
            items[row.item_id] = item_from_enter(row)
        if row.event is QueueEvent.CALLBACK:
            callback[row.item_id] = row.data
        last_event[row.item_id] = row.event
    live_channels = {c.item_id: c.agent_id for c in channels}
    states: dict[str, tuple[AgentState, str]] = {}
    for device in devices:
        if not device.available:
            states[device.agent_id] = (AgentState.LOGGED_OUT, "")
            continue
        state, reason = last_agent.get(device.agent_id, (AgentState.LOGGED_OUT, ""))
        if state in (AgentState.RESERVED, AgentState.RINGING, AgentState.BUSY, AgentState.WRAP_UP):
            state, reason = AgentState.READY, ""  # unless a live channel says busy (below)
        states[device.agent_id] = (state, reason)
    busy: dict[str, str] = {}
    for item_id, agent_id in live_channels.items():
        if agent_id and agent_id in states and states[agent_id][0] is not AgentState.LOGGED_OUT:
            states[agent_id] = (AgentState.BUSY, "")
            busy[item_id] = agent_id
    waiting: list[WorkItem] = []
    dropped = 0
    for item_id, event in last_event.items():
        if event not in _STILL_WAITING or item_id not in items or item_id in busy:
            continue
        if item_id in live_channels:
            waiting.append(items[item_id])
        elif item_id in callback:
            waiting.append(replace(items[item_id], callback_number=callback[item_id]))
        else:
            dropped += 1
    waiting.sort(key=lambda i: i.arrived_at)
    return RebuildPlan(states, busy, items, waiting, dropped)


__all__ = [
    "KEEP_WAITING",
    "ChannelFact",
    "DeviceFact",
    "RebuildPlan",
    "RebuildReport",
    "Router",
    "item_data",
    "item_from_enter",
    "plan_rebuild",
]
