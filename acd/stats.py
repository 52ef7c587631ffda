"""Queue statistics and wallboard figures, rebuilt from queue-log rows alone (pure).

Definitions (per queue, over the rows given, normally "today"):
- offered = answered (CONNECT) + abandoned (ABANDON), each call once per queue: a call an agent
  transferred back into the same queue and answered again is one answered call (its first wait),
  and one answered there before it hung up waiting again is not also an abandon. Overflowed and
  exited calls are counted by the queue they end in; a call transferred to another queue is
  offered to that queue too (it waited there anew).
- service level = answered within t / offered (abandoned calls count as misses).
- ASA = mean wait of answered calls; abandon % = abandoned / offered.
- AHT = mean talk time of the conversations agents had in the queue: those that ended there
  (COMPLETE) and those an agent transferred on (TRANSFER: talk until the transfer).
- Per team: answered, answered within t / answered, ASA (abandoned calls have no team).
- Waiting calls: items whose last event leaves them queued (ENTER, REJECT, RONA, CALLBACK,
  OFFER not yet connected). Agents by state: the last AGENT row of each agent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from acd.estimates import staffing_advice
from acd.models import QueueEvent, QueueLogRow

_ENDS_WAIT = {
    QueueEvent.CONNECT,
    QueueEvent.ABANDON,
    QueueEvent.OVERFLOW,
    QueueEvent.EXIT,
    QueueEvent.COMPLETE,
    QueueEvent.TRANSFER,
}
# A conversation with an agent ended: talk time is handled work, whoever takes the call next.
_HANDLED = {QueueEvent.COMPLETE, QueueEvent.TRANSFER}


@dataclass(frozen=True, slots=True)
class TeamFigures:
    answered: int
    service_level: float  # among answered
    asa_s: float


@dataclass(frozen=True, slots=True)
class WallboardSnapshot:
    """What the supervisor wallboard shows for one queue."""

    queue: str
    at: float
    waiting: int
    longest_wait_s: float
    agents_by_state: Mapping[str, int]
    offered: int
    answered: int
    abandoned: int
    service_level: float  # today, answered within sl_t_s over offered; 1.0 with nothing offered
    asa_s: float
    abandon_rate: float
    arrival_rate_per_h: float
    aht_s: float
    agents_needed: int  # Erlang C staffing for sl_goal within sl_t_s at the current rate
    sl_t_s: float
    sl_goal: float
    teams: Mapping[str, TeamFigures] = field(default_factory=dict)


def wallboard_from_log(
    rows: Iterable[QueueLogRow],
    *,
    queue: str,
    now: float,
    sl_t_s: float = 20.0,
    sl_goal: float = 0.8,
    rate_window_s: float = 900.0,
    default_aht_s: float = 180.0,
) -> WallboardSnapshot:
    """Wallboard figures for `queue` from its queue-log rows (any order; all queues allowed)."""
    ordered = sorted(rows, key=lambda r: r.ts)
    answered_waits: list[float] = []
    team_waits: dict[str, list[float]] = {}
    answered_items: set[str] = set()
    abandoned_items: set[str] = set()
    talk: list[float] = []
    recent_enters = 0
    open_items: dict[str, float] = {}  # item -> entered at
    agent_state: dict[str, str] = {}
    for row in ordered:
        if row.event is QueueEvent.AGENT:
            agent_state[row.agent_id] = row.data.split(":", 1)[0]
            continue
        if row.queue != queue:
            if row.item_id in open_items and row.event is QueueEvent.ENTER:
                open_items.pop(row.item_id)  # moved to another queue
            continue
        if row.event is QueueEvent.ENTER:
            open_items[row.item_id] = row.ts
            if row.ts >= now - rate_window_s:
                recent_enters += 1
        elif row.event in _ENDS_WAIT:
            open_items.pop(row.item_id, None)
        if row.event is QueueEvent.CONNECT:
            if row.item_id not in answered_items:
                answered_items.add(row.item_id)
                wait = row.wait_s or 0.0
                answered_waits.append(wait)
                team_waits.setdefault(row.team, []).append(wait)
        elif row.event is QueueEvent.ABANDON:
            abandoned_items.add(row.item_id)
        elif row.event in _HANDLED and row.talk_s is not None:
            talk.append(row.talk_s)
    answered = len(answered_waits)
    abandoned = len(abandoned_items - answered_items)
    offered = answered + abandoned
    within = sum(1 for w in answered_waits if w <= sl_t_s)
    rate = recent_enters / rate_window_s
    aht = sum(talk) / len(talk) if talk else default_aht_s
    teams = {
        team: TeamFigures(
            answered=len(waits),
            service_level=sum(1 for w in waits if w <= sl_t_s) / len(waits),
            asa_s=sum(waits) / len(waits),
        )
        for team, waits in team_waits.items()
        if team
    }
    return WallboardSnapshot(
        queue=queue,
        at=now,
        waiting=len(open_items),
        longest_wait_s=max((now - t for t in open_items.values()), default=0.0),
        agents_by_state=dict(Counter(agent_state.values())),
        offered=offered,
        answered=answered,
        abandoned=abandoned,
        service_level=within / offered if offered else 1.0,
        asa_s=sum(answered_waits) / answered if answered else 0.0,
        abandon_rate=abandoned / offered if offered else 0.0,
        arrival_rate_per_h=rate * 3600.0,
        aht_s=aht,
        agents_needed=staffing_advice(arrival_rate=rate, aht_s=aht, goal=sl_goal, t_s=sl_t_s),
        sl_t_s=sl_t_s,
        sl_goal=sl_goal,
        teams=teams,
    )
