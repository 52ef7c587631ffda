"""Encoding the store's arguments and decoding its replies: raw values in, the domain's
dataclasses and errors out (and back). The `*_args` and `*_from` pairs are what the batch
path (`RedisLiveStore.command`/`execute`) uses in place of the store's methods."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from acd.errors import (
    DuplicateItem,
    IllegalTransition,
    StaleReservation,
    UnknownAgent,
)
from acd.models import (
    AgentState,
    AgentStatus,
    Channel,
    Reservation,
    RouteRequest,
    WaitingItem,
    WorkItem,
    queue_score,
)


def as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_float(value: Any) -> float:
    return float(as_str(value))


CHANNELS = {c.value: c for c in Channel}


def reservation_from(raw: Sequence[Any]) -> Reservation:
    """A raw reservation reply (of `route`, `take_offers`, `accept`, `connect`, `release`)."""
    # On every decision's path: one list, no per-field calls (about half the time of `as_str`).
    rid, item, agent, queue, ch, owner, created, expires, waited = [
        v.decode() if type(v) is bytes else str(v) for v in raw
    ]
    return Reservation(
        reservation_id=rid,
        item_id=item,
        agent_id=agent,
        queue=queue,
        channel=CHANNELS[ch],
        owner=owner,
        created_at=float(created),
        expires_at=float(expires),
        waited_s=float(waited),
    )


def waiting_from(raw: Sequence[Any]) -> WaitingItem:
    """A raw item reply (id, queue, priority, arrival, owner, callback, channel)."""
    iid, queue, pr, arr, own, cb, ch = (as_str(v) for v in raw)
    return WaitingItem(iid, queue, int(pr), float(arr), own, cb or None, CHANNELS[ch])


def reservations_from(raw: Sequence[Sequence[Any]]) -> list[Reservation]:
    """A raw `route` or `take_offers` reply."""
    return [reservation_from(r) for r in raw]


def status_from(raw: Sequence[Any]) -> AgentStatus:
    """A raw `agent_event` or `finish` reply."""
    agent_id, state, since, reason, ld_chat, ld_email, teams = (as_str(v) for v in raw[:7])
    load = {k: int(v) for k, v in (("chat", ld_chat), ("email", ld_email)) if int(v)}
    return AgentStatus(
        agent_id=agent_id,
        state=AgentState(state),
        since=float(since),
        reason=reason,
        load=load,
        teams=frozenset(t for t in teams.split(",") if t),
    )


def finished_from(raw: Sequence[Any]) -> tuple[AgentStatus, Reservation | None]:
    """A raw `finish` reply to `finish_args`: the status, and the reservation if one was made."""
    return status_from(raw), booked_from(raw)


def booked_from(raw: Sequence[Any]) -> Reservation | None:
    """The reservation a raw `finish` reply to `finish_args` carries, if the agent took an item
    (after the seven fields of the status)."""
    return reservation_from(raw[7]) if len(raw) > 7 else None


def domain_error(exc: ResponseError) -> Exception:
    """Turn the scripts' error replies into the domain's exceptions."""
    text = str(exc)
    for marker in ("ILLEGAL", "UNKNOWN_AGENT", "STALE", "DUPLICATE"):
        at = text.find(marker)
        if at >= 0:
            words = text[at:].split()
            if marker == "ILLEGAL":
                return IllegalTransition(AgentState(words[1]), words[2])
            if marker == "UNKNOWN_AGENT":
                return UnknownAgent(words[1])
            if marker == "STALE":
                return StaleReservation(words[1])
            return DuplicateItem(words[1])
    return exc


def add_item_args(
    item: WorkItem, *, steps: str, owner: str, entered_at: float, front: bool = False
) -> tuple[object, ...]:
    """The raw arguments of the `add_item` operation, for `RedisLiveStore.command`."""
    reqs = ",".join(f"{r.skill}={r.min_level}={int(r.relaxable)}" for r in item.requirements())
    return (
        item.item_id,
        item.queue,
        queue_score(item.priority, item.arrived_at, front=front),
        item.channel.value,
        item.priority,
        item.arrived_at,
        entered_at,
        reqs,
        ",".join(item.preferred_agents),
        steps,
        owner,
        item.callback_number or "",
        int(front),
        queue_score(item.priority, item.arrived_at, front=True),
    )


def add_and_route_args(
    item: WorkItem,
    *,
    steps: str,
    owner: str,
    entered_at: float,
    request: RouteRequest,
    window: int,
) -> tuple[object, ...]:
    """The raw arguments of `add_item` that also routes the item's queue (`add_and_route`), for
    `RedisLiveStore.command`; `added_from` decodes the reply."""
    args = add_item_args(item, steps=steps, owner=owner, entered_at=entered_at)
    return (*args, owner, request.strategy.value, window, request.ttl_s)


def added_from(raw: Sequence[Any]) -> tuple[int, list[Reservation]]:
    """A raw `add_item` reply to `add_and_route_args`: the position and the reservations."""
    position, made = raw
    return int(position), reservations_from(made)


def finish_args(
    agent_id: str,
    channel: Channel,
    now: float,
    *,
    worked_s: float,
    wrap_up_s: float,
    owner: str,
    requests: Sequence[RouteRequest],
    window: int,
) -> tuple[object, ...]:
    """The raw arguments of `finish` with agent-driven routing (`finish_and_route`), for
    `RedisLiveStore.command`; `finished_from` decodes the reply."""
    queues = [x for r in requests for x in (r.queue, r.ttl_s)]
    return (agent_id, channel.value, now, worked_s, wrap_up_s, owner, window, *queues)


def arg(value: object) -> str | int:
    kind = type(value)
    if kind is str or kind is int:
        return value  # type: ignore[return-value]
    if kind is float:
        return repr(value)
    if isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)
