"""Recovery: restoring the live store after Redis lost it (`rebuild`, planned by the pure
`plan_rebuild` from AMI facts and the queue log), and the conditional reads and fixes the
reconciling sweep applies (`contact.reconcile` decides which)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from acd.models import (
    AgentState,
    AgentStatus,
    Channel,
    Discarded,
    LiveSnapshot,
    QueueEvent,
    QueueLogRow,
    WorkItem,
)
from acd.policies import encode_steps
from acd.queue_log import item_from_enter
from acd.router_core import RouterCore, Tracked
from acd.states import AgentEvent


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


async def rebuild(
    core: RouterCore,
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
    now = core.clock.now()
    plan = plan_rebuild(rows, devices=devices, channels=channels)
    for agent in core.agents.values():
        await core.store.put_agent(agent, now)
    current = {a.agent_id: a.state for a in await core.store.agents()}
    busy = 0
    for agent_id, (state, reason) in plan.agent_states.items():
        if agent_id not in core.agents:
            continue
        if current.get(agent_id, AgentState.LOGGED_OUT) is not AgentState.LOGGED_OUT:
            continue
        for event in _path_to(state):
            await core.store.agent_event(agent_id, event, now, reason=reason)
        busy += state is AgentState.BUSY
    for item_id, agent_id in plan.busy.items():
        if agent_id in core.agents and item_id in plan.items:
            core.tracked[item_id] = Tracked(
                item=plan.items[item_id], entered_at=now, connected_at=now, agent_id=agent_id
            )
    requeued = 0
    for item in plan.waiting:
        policy = core.queues.get(item.queue)
        if policy is None:
            continue
        await core.store.add_item(
            item,
            steps=encode_steps(policy.steps),
            owner=core.owner,
            entered_at=item.arrived_at,
        )
        core.tracked[item.item_id] = Tracked(
            item=item, entered_at=item.arrived_at, detached=item.callback_number is not None
        )
        requeued += 1
    core.wake()
    return RebuildReport(
        agents=len(plan.agent_states), busy=busy, requeued=requeued, dropped=plan.dropped
    )


# --- the reconciling sweep's reads and fixes (contact.reconcile decides) ----------------------


async def live_snapshot(core: RouterCore) -> LiveSnapshot:
    """Agents, held reservations and the items waiting in our queues, in one read."""
    return await core.store.snapshot(list(core.queues))


async def drop_item(
    core: RouterCore, item_id: str, *, reason: str, log_abandon: bool
) -> Discarded | None:
    """Take an item whose caller is gone out of the live state, whichever process owns it:
    a reservation it holds is released with the agent READY; it is not requeued. Writes
    its ABANDON row if `log_abandon` (once: nothing is written when the item was gone
    already, e.g. another process's sweep or its owner took it out first)."""
    now = core.clock.now()
    gone = await core.store.discard_item(item_id, now)
    tracked = core.tracked.pop(item_id, None)
    if tracked is not None and tracked.reservation is not None:
        core.by_reservation.pop(tracked.reservation.reservation_id, None)
    if gone is None:
        return None
    rows: list[QueueLogRow] = []
    wait = now - gone.item.arrived_at
    if log_abandon:
        core.rates.waited(gone.item.queue, wait, now, abandoned=True)
        rows.append(
            core.row(now, gone.item.queue, item_id, QueueEvent.ABANDON, wait=wait, data=reason)
        )
    res = gone.reservation
    if res is not None:
        core.by_reservation.pop(res.reservation_id, None)
        if res.channel is Channel.VOICE:
            rows.append(core.agent_row(now, res.agent_id, f"ready:{reason}"))
    if rows:
        await core.queue_log.write(rows)
    core.agent_cache = (-math.inf, [])
    core.wake()
    return gone


async def free_agent(
    core: RouterCore,
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
    now = core.clock.now()
    status = await core.store.reset_agent(agent_id, state=state, since=since, now=now)
    if status is None:
        return None
    rows = [core.agent_row(now, agent_id, f"{status.state.value}:{reason}")]
    if conversation is not None:
        item_id, queue, connected_at = conversation
        rows.append(
            core.row(
                now,
                queue,
                item_id,
                QueueEvent.COMPLETE,
                agent_id,
                talk=max(0.0, now - connected_at),
                data=reason,
            )
        )
    for item_id, tracked in list(core.tracked.items()):
        if tracked.connected_at is not None and tracked.agent_id == agent_id:
            del core.tracked[item_id]  # its end was never reported; it is logged above
        elif tracked.reservation is not None and tracked.reservation.agent_id == agent_id:
            core.by_reservation.pop(tracked.reservation.reservation_id, None)
            tracked.reservation, tracked.rung = None, False
    await core.queue_log.write(rows)
    core.agent_cache = (-math.inf, [])
    core.wake()
    return status


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


# --- the rebuild plan (pure) ------------------------------------------------------------------


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
