"""The routing pass: heartbeat, sweep of expired reservations and ended wrap-ups, relaxation-step
actions (overflow, callback offer, exit), a match of every queue in the live store, and the
delivery of the reservations made for this process's items (to the waiting IVR, or to the
detached-offer hook of a callback request)."""

from __future__ import annotations

from dataclasses import replace

from acd.errors import UnknownQueue
from acd.models import (
    ActionKind,
    Offer,
    QueueAction,
    QueueEvent,
    QueueLogRow,
    Reservation,
    SkillRequirement,
    WorkItem,
)
from acd.policies import encode_steps, step_index
from acd.queue_log import item_data, item_from_enter
from acd.router_core import RouterCore, Tracked, put_outcome


async def route_now(core: RouterCore) -> list[Reservation]:
    """One pass: heartbeat, sweep, step actions, match every queue, collect reservations
    other processes made for our items. Returns this process's new reservations."""
    now = core.clock.now()
    await core.store.heartbeat(core.owner, now, ttl_s=core.heartbeat_ttl_s)
    expired, wrapped = await core.store.sweep(now)
    rows = [
        core.row(now, r.queue, r.item_id, QueueEvent.REJECT, r.agent_id, data="expired")
        for r in expired
    ]
    for res in expired:
        core.by_reservation.pop(res.reservation_id, None)
        tracked = core.tracked.get(res.item_id)
        if tracked is not None:
            tracked.reservation, tracked.rung = None, False
    for tracked in core.tracked.values():
        held = tracked.reservation
        if held is not None and held.expires_at <= now:  # swept by another process
            core.by_reservation.pop(held.reservation_id, None)
            tracked.reservation, tracked.rung = None, False
    rows += [core.agent_row(now, a, "ready:wrap_up_ended") for a in wrapped]
    rows += await _apply_steps(core, now)
    got = await core.store.route_many(core.route_requests, now, core.owner, window=core.window)
    # Reservations for other processes' items reach them through their inbox.
    made = [r for r in got if r.owner == core.owner]
    made.extend(await core.store.take_offers(core.owner))
    if rows:
        await core.queue_log.write(rows)
    await deliver_all(core, made, now)
    return made


async def deliver_all(core: RouterCore, made: list[Reservation], now: float) -> None:
    """Log the OFFER of reservations made for this process's items and hand each to its
    holder: the waiting IVR, or the detached-offer hook (an item nobody holds leaves)."""
    if not made:
        return
    await core.queue_log.write(
        [
            core.row(now, r.queue, r.item_id, QueueEvent.OFFER, r.agent_id, wait=r.waited_s)
            for r in made
        ]
    )
    for res in made:
        await _deliver(core, res)


async def _deliver(core: RouterCore, res: Reservation) -> None:
    core.by_reservation[res.reservation_id] = res.item_id
    agent = core.agents.get(res.agent_id)
    offer = Offer(reservation=res, endpoint=agent.endpoint if agent else "")
    tracked = core.tracked.get(res.item_id)
    if tracked is not None and not tracked.detached:
        tracked.reservation, tracked.rung = res, False
        put_outcome(tracked.outcomes, offer)
        return
    item = tracked.item if tracked is not None else None
    if tracked is not None:
        tracked.reservation = res
    if item is None:
        # Adopted from a dead process: rebuild what we know from the queue log.
        item = await _item_from_log(core, res.item_id, res.queue)
        core.tracked[res.item_id] = Tracked(
            item=item, entered_at=res.created_at, reservation=res, detached=True
        )
    if item.callback_number is None:
        # Adopted from a process that died holding its caller (or tracked here with no one
        # holding it): nobody can ring this agent through to that caller, and the detached
        # hook is for callback requests only. The agent is freed, the item leaves.
        await core.leave(res.item_id, QueueEvent.ABANDON, "caller_not_held")
        return
    if core.on_detached is None:
        await core.leave(res.item_id, QueueEvent.ABANDON, "no_detached_handler")
        return
    await core.on_detached(offer, item)


async def _item_from_log(core: RouterCore, item_id: str, queue: str) -> WorkItem:
    # An item still routed was queued within the longest max wait; a day covers it.
    rows = await core.queue_log.read(since=core.clock.now() - 86400.0, queue=queue)
    enter = [r for r in rows if r.item_id == item_id and r.event is QueueEvent.ENTER]
    callbacks = [r for r in rows if r.item_id == item_id and r.event is QueueEvent.CALLBACK]
    if enter:
        item = item_from_enter(enter[0])
    else:
        item = WorkItem(item_id=item_id, queue=queue, arrived_at=core.clock.now())
    if callbacks:
        item = replace(item, callback_number=callbacks[-1].data)
    return item


async def _apply_steps(core: RouterCore, now: float) -> list[QueueLogRow]:
    rows: list[QueueLogRow] = []
    for item_id, tracked in list(core.tracked.items()):
        if tracked.reservation is not None or tracked.connected_at is not None:
            continue
        if tracked.exited:
            continue
        policy = core.queues[tracked.item.queue]
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
            rows += await _act(core, item_id, tracked, action, now)
            if tracked.exited or action.kind is ActionKind.OVERFLOW:
                break
    return rows


async def _act(
    core: RouterCore, item_id: str, tracked: Tracked, action: QueueAction, now: float
) -> list[QueueLogRow]:
    item = tracked.item
    wait = now - item.arrived_at
    if action.kind is ActionKind.OVERFLOW:
        target = core.queues.get(action.target)
        if target is None:
            raise UnknownQueue(action.target)
        if await core.store.remove_item(item_id) is None:
            return []
        moved = replace(item, queue=target.name)
        if target.skill is not None:  # the target queue's agents decide: its skill applies
            moved = replace(moved, skills=(SkillRequirement(target.skill, 1),))
        await core.store.add_item(
            moved, steps=encode_steps(target.steps), owner=core.owner, entered_at=now
        )
        tracked.item, tracked.entered_at, tracked.step = moved, now, 0
        put_outcome(tracked.outcomes, action)
        return [
            core.row(now, item.queue, item_id, QueueEvent.OVERFLOW, wait=wait, data=target.name),
            core.row(now, target.name, item_id, QueueEvent.ENTER, wait=wait, data=item_data(moved)),
        ]
    if action.kind is ActionKind.CALLBACK:
        if not tracked.detached:
            put_outcome(tracked.outcomes, action)
        return []
    if action.kind is ActionKind.NONE:
        return []
    # voicemail / hangup: the item leaves the queue
    await core.store.remove_item(item_id)
    tracked.exited = True
    put_outcome(tracked.outcomes, action)
    return [core.row(now, item.queue, item_id, QueueEvent.EXIT, wait=wait, data=action.kind.value)]
