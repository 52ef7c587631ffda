"""The IVR's side of the Router (and the AMI events of a call): queue an item, wait for its offer
or action, accept, ring no answer, connected, completed, abandon, hand back, callbacks, transfers.
The module docstring of `acd.service` shows the flow for one call."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

from acd.errors import StaleReservation, UnknownItem
from acd.models import (
    Channel,
    QueueAction,
    QueueEvent,
    Reservation,
    SkillRequirement,
    Ticket,
    WorkItem,
)
from acd.policies import encode_steps
from acd.queue_log import item_data, pending_transfer_from, pending_transfer_record
from acd.router_core import Outcome, RouterCore, Tracked
from acd.routing import deliver_all
from acd.states import AgentEvent

# Reservations survive a ring this much longer than the ring timeout, so that a slow AMI event
# does not free an agent whose phone is still ringing.
RING_TTL_MARGIN_S = 5.0
# A call transferred to one of our queues waits for its caller to be held again (`rejoin`: the
# dialplan re-enters FastAGI within milliseconds); one not back after this long never will be.
TRANSFER_REJOIN_S = 120.0


async def enqueue(core: RouterCore, item: WorkItem) -> Ticket:
    """Queue a work item. The ticket says where it stands, or (position 0) which configured
    action applies instead: queue full, or nobody logged in who could take it."""
    policy = core.policy(item.queue)
    now = core.clock.now()
    statuses = await core.live_agents(now, fresh=True)
    serving = core.serving(item.queue, statuses)
    rows = [core.row(now, item.queue, item.item_id, QueueEvent.ENTER, data=item_data(item))]
    action: QueueAction | None = None
    if serving.logged_in <= 0:
        action = policy.on_no_agents
    elif len(await core.store.waiting(item.queue)) >= policy.max_length:
        action = policy.on_full
    if action is not None:
        rows.append(
            core.row(
                now, item.queue, item.item_id, QueueEvent.EXIT, wait=0.0, data=action.kind.value
            )
        )
        await core.queue_log.write(rows)
        return Ticket(item.item_id, item.queue, 0, math.inf, action)
    # Queued and, in the same step, matched if an agent is free for it.
    position, got = await core.store.add_and_route(
        item,
        steps=encode_steps(policy.steps),
        owner=core.owner,
        entered_at=now,
        request=core.request_of[item.queue],
        window=core.window,
    )
    # Tracked before the next await: a routing pass meanwhile must find its waiter.
    core.tracked[item.item_id] = Tracked(item=item, entered_at=now)
    try:
        await core.queue_log.write(rows)
    except BaseException:
        # The queue log is where an entry lasts (PostgreSQL down, or we were cancelled): the
        # caller goes back to the dialplan without it, so the live state must not keep a
        # phantom caller, nor an agent reserved for one. Undo, then say it failed.
        core.tracked.pop(item.item_id, None)
        await asyncio.shield(core.store.discard_item(item.item_id, now))
        raise
    core.rates.arrival(item.queue, now)
    # Reservations for other processes' items (older ones of this queue) reach them through
    # their inbox.
    await deliver_all(core, [r for r in got if r.owner == core.owner], now)
    core.wake()
    return Ticket(
        item.item_id, item.queue, position, core.estimate(item.queue, position, serving, now)
    )


async def wait_for_offer(core: RouterCore, item_id: str, timeout: float) -> Outcome | None:
    """The next offer or action for a queued item; None after `timeout` seconds (time to
    play an announcement). An `Offer` may go stale if not accepted within the queue's
    `offer_timeout_s`: `accept` then raises `StaleReservation` and the caller waits again."""
    tracked = core.track(item_id)
    try:
        async with asyncio.timeout(timeout):
            outcome = await tracked.outcomes.get()
    except TimeoutError:
        return None
    if tracked.exited and tracked.outcomes.empty():
        core.tracked.pop(item_id, None)
    return outcome


async def ticket(core: RouterCore, item_id: str) -> Ticket:
    """Current position and expected wait (for the periodic announcement)."""
    tracked = core.track(item_id)
    now = core.clock.now()
    position = await core.store.position(item_id)
    serving = core.serving(tracked.item.queue, await core.live_agents(now))
    return Ticket(
        item_id,
        tracked.item.queue,
        position,
        core.estimate(tracked.item.queue, position, serving, now),
    )


async def expected_waits(core: RouterCore, queue: str) -> dict[str, float]:
    """Expected remaining wait of every waiting item of `queue`, by item id."""
    now = core.clock.now()
    serving = core.serving(queue, await core.live_agents(now))
    waiting = await core.store.waiting(queue)
    return {w.item_id: core.estimate(queue, i + 1, serving, now) for i, w in enumerate(waiting)}


async def accept(core: RouterCore, reservation_id: str) -> Reservation:
    """The offer is taken: the agent's phone is about to ring (call just before Dial)."""
    item_id = core.reserved_item(reservation_id)
    tracked = core.tracked[item_id]
    policy = core.policy(tracked.item.queue)
    try:
        res = await core.store.accept(
            reservation_id, core.clock.now(), ttl_s=policy.ring_timeout_s + RING_TTL_MARGIN_S
        )
    except StaleReservation:
        core.by_reservation.pop(reservation_id, None)
        tracked.reservation = None
        raise
    tracked.reservation, tracked.rung = res, True
    return res


async def reject(core: RouterCore, reservation_id: str, *, reason: str = "rejected") -> None:
    """The agent declined the offer: agent NOT_READY(reason), item back to the front."""
    await _release(core, reservation_id, AgentEvent.REJECT, QueueEvent.REJECT, reason)


async def ring_no_answer(core: RouterCore, reservation_id: str) -> None:
    """RONA: agent NOT_READY("rona"), item back to the front of its queue. On a reservation
    that never rang (not `accept`ed: the Originate or Dial never started) the agent was not
    at fault: READY again, logged as a REJECT "never_rang" rather than a RONA."""
    tracked = core.tracked.get(core.reserved_item(reservation_id))
    if tracked is not None and not tracked.rung:
        await _release(
            core, reservation_id, AgentEvent.RING_NO_ANSWER, QueueEvent.REJECT, "never_rang"
        )
        return
    await _release(core, reservation_id, AgentEvent.RING_NO_ANSWER, QueueEvent.RONA, "rona")


async def _release(
    core: RouterCore, reservation_id: str, event: AgentEvent, logged: QueueEvent, reason: str
) -> None:
    item_id = core.reserved_item(reservation_id)
    now = core.clock.now()
    tracked = core.tracked[item_id]
    res = await core.store.release(reservation_id, now, event=event, reason=reason)
    core.by_reservation.pop(reservation_id, None)
    tracked.reservation, rung, tracked.rung = None, tracked.rung, False
    if res is None:
        raise StaleReservation(reservation_id)
    never_rang = event is AgentEvent.RING_NO_ANSWER and not rung
    agent_state = "ready" if never_rang else "not_ready"
    await core.queue_log.write(
        [
            core.row(now, res.queue, item_id, logged, res.agent_id, data=reason),
            core.agent_row(now, res.agent_id, f"{agent_state}:{reason}"),
        ]
    )
    core.wake()


async def connected(core: RouterCore, reservation_id: str) -> None:
    """AMI confirmed the agent answered (or a chat/email was opened)."""
    item_id = core.reserved_item(reservation_id)
    now = core.clock.now()
    tracked = core.tracked[item_id]
    try:
        res = await core.store.connect(reservation_id, now)
    except StaleReservation:
        core.by_reservation.pop(reservation_id, None)
        tracked.reservation = None
        raise
    core.by_reservation.pop(reservation_id, None)
    tracked.reservation, tracked.connected_at, tracked.agent_id = None, now, res.agent_id
    tracked.rung = False
    wait = now - tracked.item.arrived_at
    core.rates.waited(tracked.item.queue, wait, now, abandoned=False)
    await core.queue_log.write(
        [core.row(now, res.queue, item_id, QueueEvent.CONNECT, res.agent_id, wait=wait)]
    )


async def completed(core: RouterCore, item_id: str, *, wrap_up_s: float | None = None) -> None:
    """The conversation ended; the agent wraps up (voice) or frees a slot."""
    await _end_conversation(core, item_id, QueueEvent.COMPLETE, wrap_up_s=wrap_up_s)


async def _end_conversation(
    core: RouterCore,
    item_id: str,
    event: QueueEvent,
    *,
    wrap_up_s: float | None = None,
    data: str = "",
) -> None:
    """The agent's part of a connected item is over (`event`: COMPLETE or TRANSFER): talk
    time until now, then their wrap-up; the item is no longer tracked."""
    tracked = core.track(item_id)
    if tracked.connected_at is None:
        raise UnknownItem(item_id)
    now = core.clock.now()
    agent = core.agents.get(tracked.agent_id)
    wrap = wrap_up_s if wrap_up_s is not None else (agent.wrap_up_s if agent else 0.0)
    talk = now - tracked.connected_at
    made: Reservation | None = None
    if wrap <= 0 or tracked.item.channel is not Channel.VOICE:
        # Free at once: the agent takes its next item in the same step (agent-driven
        # routing), so a waiting caller does not wait for the next routing pass.
        _, made = await core.store.finish_and_route(
            tracked.agent_id,
            tracked.item.channel,
            now,
            worked_s=talk + wrap,
            wrap_up_s=wrap,
            owner=core.owner,
            requests=core.requests_for(tracked.agent_id),
            window=core.window,
        )
    else:
        await core.store.finish(
            tracked.agent_id, tracked.item.channel, now, worked_s=talk + wrap, wrap_up_s=wrap
        )
    core.rates.handled(tracked.item.queue, talk + wrap, now)
    del core.tracked[item_id]
    await core.queue_log.write(
        [
            core.row(
                now,
                tracked.item.queue,
                item_id,
                event,
                tracked.agent_id,
                talk=talk,
                data=data,
            ),
            core.agent_row(
                now,
                tracked.agent_id,
                "wrap_up" if tracked.item.channel is Channel.VOICE and wrap > 0 else "ready",
            ),
        ]
    )
    # A reservation for another process's item reaches it through its inbox.
    if made is not None and made.owner == core.owner:
        await deliver_all(core, [made], now)
    core.wake()


async def abandon(core: RouterCore, item_id: str, *, reason: str = "caller_hangup") -> None:
    """The caller left while waiting (or while an agent was reserved or ringing)."""
    await core.leave(item_id, QueueEvent.ABANDON, reason)


async def hand_back(core: RouterCore, item_id: str, *, reason: str = "returned") -> None:
    """We handed the caller back to the dialplan (shutting down) while they waited: they
    leave the queue as ABANDON would, logged as an EXIT of ours, not counted as the
    caller's abandon."""
    await core.leave(item_id, QueueEvent.EXIT, reason)


async def callback_unreached(
    core: RouterCore, item_id: str, *, status: str, max_attempts: int
) -> bool:
    """A connected callback whose customer was not reached (the dialplan's DIALSTATUS:
    NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, or NOTDIALED): the agent spoke to no one and
    is READY at once (no wrap-up), and the request goes back to the front of its queue,
    its place and routing steps kept — unless this was its `max_attempts`-th failed
    attempt (counted by this process), then it leaves with an EXIT row. Returns whether it
    was requeued. Raises UnknownItem unless the item is a connected callback here."""
    tracked = core.track(item_id)
    if tracked.connected_at is None or tracked.item.callback_number is None:
        raise UnknownItem(item_id)
    now = core.clock.now()
    agent_id = tracked.agent_id
    await core.store.finish(
        agent_id, Channel.VOICE, now, worked_s=now - tracked.connected_at, wrap_up_s=0.0
    )
    tracked.attempts += 1
    item = tracked.item
    data = f"callback_{status.lower()}"
    rows = [
        core.row(now, item.queue, item_id, QueueEvent.REJECT, agent_id, data=data),
        core.agent_row(now, agent_id, "ready"),
    ]
    requeue = tracked.attempts < max_attempts
    if requeue:
        policy = core.policy(item.queue)
        await core.store.add_item(
            item,
            steps=encode_steps(policy.steps),
            owner=core.owner,
            entered_at=tracked.entered_at,
            front=True,
        )
        tracked.connected_at, tracked.agent_id = None, ""
    else:
        del core.tracked[item_id]
        rows.append(
            core.row(
                now,
                item.queue,
                item_id,
                QueueEvent.EXIT,
                wait=now - item.arrived_at,
                data="callback_unreached",
            )
        )
    await core.queue_log.write(rows)
    core.agent_cache = (-math.inf, [])
    core.wake()
    return requeue


async def request_callback(core: RouterCore, item_id: str, number: str) -> Ticket:
    """The caller pressed the callback key: they may hang up and keep their place. When an
    agent is reserved for the item, `on_detached_offer(offer, item)` runs (Originate)."""
    tracked = core.track(item_id)
    now = core.clock.now()
    if await core.store.remove_item(item_id) is None:
        raise UnknownItem(item_id)
    item = replace(tracked.item, callback_number=number)
    policy = core.policy(item.queue)
    await core.store.add_item(
        item, steps=encode_steps(policy.steps), owner=core.owner, entered_at=tracked.entered_at
    )
    tracked.item, tracked.detached = item, True
    await core.queue_log.write(
        [
            core.row(
                now,
                item.queue,
                item_id,
                QueueEvent.CALLBACK,
                wait=now - item.arrived_at,
                data=number,
            )
        ]
    )
    return await ticket(core, item_id)


async def transferred(
    core: RouterCore, item_id: str, *, target: str, to_queue: str | None = None
) -> None:
    """The agent transferred a connected call (AMI BlindTransfer/AttendedTransfer): their
    part ends now, as if the conversation had ended (talk time until now, then their normal
    wrap-up), and a TRANSFER row names the target ("exten@context", an agent, an app).

    With `to_queue` (the target is one of our queues) the call is re-queued there once its
    caller is held again: `rejoin(item_id)`, from the FastAGI session the dialplan starts at
    the target. It competes as a fresh arrival for the target queue's skill; the first
    queue's preferred agents no longer apply. Raises UnknownItem unless the item is
    connected here, UnknownQueue for a queue we do not have (nothing is changed then)."""
    tracked = core.track(item_id)
    if tracked.connected_at is None:
        raise UnknownItem(item_id)
    target_policy = core.policy(to_queue) if to_queue is not None else None
    now = core.clock.now()
    if target_policy is not None:
        moved = replace(tracked.item, queue=target_policy.name, preferred_agents=())
        if target_policy.skill is not None:
            moved = replace(moved, skills=(SkillRequirement(target_policy.skill, 1),))
        # In the live store, not here: the caller's next session may land on any process.
        await core.store.park_transfer(
            item_id, pending_transfer_record(moved, at=now), ttl_s=TRANSFER_REJOIN_S
        )
    await _end_conversation(core, item_id, QueueEvent.TRANSFER, data=target)


async def rejoin(core: RouterCore, item_id: str) -> Ticket | None:
    """The caller of a call transferred to one of our queues is held by us again: queue it
    there now (ENTER in the target queue, waiting from now on). Returns its ticket (position
    0 with the queue's action when it cannot be queued, as `enqueue`), or None when no
    transfer of this item is pending, in any process (then it is a call like any other)."""
    record = await core.store.take_transfer(item_id)
    if record is None:
        return None
    item, at = pending_transfer_from(item_id, record)
    if core.clock.now() - at > TRANSFER_REJOIN_S:
        return None
    return await enqueue(core, replace(item, arrived_at=core.clock.now()))


async def transfer(core: RouterCore, item_id: str, *, to_queue: str) -> Ticket:
    """Move a connected item to another queue at once, its customer still held by the same
    owner (e.g. a chat): `transferred` then `rejoin`."""
    await transferred(core, item_id, target=to_queue, to_queue=to_queue)
    ticket = await rejoin(core, item_id)
    assert ticket is not None  # just recorded as pending
    return ticket
