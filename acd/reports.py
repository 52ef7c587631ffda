"""Contact-center reports: per queue, team or agent, by interval (15 min, hour, day) in a time
zone, rebuilt from queue-log rows and the post-call survey scores (pure).

Definitions (one call = one item entering one queue; its figures are counted in the interval in
which it ENTERED that queue, whenever it was answered or ended, so a call that waits across an
interval boundary counts once, where it started waiting):
- offered = answered + abandoned (short abandons excluded). A call an agent transferred back
  into the same queue is one call there (its first answer's wait counts); a call transferred or
  overflowed to another queue is a call of that queue too (it waited there anew). EXITs (queue
  full, no agents, maximum wait, callback unreached) are our decisions, not the caller's: they are
  neither answered nor abandoned, as on the wallboard (acd/stats.py).
- abandoned = the caller left before any answer in that queue after waiting at least
  `short_abandon_s`; shorter ones (a caller who hung up at once, a misdial) are `short_abandoned`,
  reported but left out of offered and service level.
- service level = answered within the queue's `sl_target_s` / offered (abandons are misses); per
  team and per agent, among their answered calls (nothing abandons *them*). None with no calls.
- ASA = mean wait of answered calls (the wait from the queue-log CONNECT row).
- AHT = mean (talk + wrap-up) of the conversations that ended with the agent: COMPLETE and
  TRANSFER rows give talk time; wrap-up is the time from the agent's `wrap_up` state (written
  with the end of the conversation) to their next state row. An agent freed at once wrapped up
  0 s; a wrap-up still running at the end of the rows read counts as talk only.
- transfers = TRANSFER rows, once per (call, agent, moment), so a row written twice counts once;
  callbacks = calls whose caller asked to be called back (CALLBACK rows), once per call.
- satisfaction = mean post-call survey score (1..5) of the interactions that started in the
  interval, with the number of scores; None with none.
- Per agent and per team: offered = distinct calls offered (rung) to them; answered, ASA, AHT,
  transfers by whoever answered; abandoned is None (calls abandon queues). A call's team is its
  agent's teams (an agent in two teams counts in both).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from acd.models import QueueEvent, QueueLogRow

# How long after the end of a period its calls' later rows are read (answer, transfer, wrap-up):
# longer than any wait (queues cap it at 30 min by default) plus any conversation we report.
PERIOD_TAIL_S = 6 * 3600.0
# A wrap-up longer than this is an agent who forgot to press ready, not handling time.
MAX_WRAP_UP_S = 3600.0
DEFAULT_SHORT_ABANDON_S = 5.0


class ReportTooLarge(Exception):
    """The period holds more rows than one report reads: ask for a shorter one."""


class Group(enum.StrEnum):
    QUEUE = "queue"
    TEAM = "team"
    AGENT = "agent"


class Interval(enum.StrEnum):
    QUARTER_HOUR = "15m"
    HOUR = "1h"
    DAY = "1d"


_SIZE_S = {Interval.QUARTER_HOUR: 900, Interval.HOUR: 3600}


@dataclass(frozen=True, slots=True)
class SurveyScores:
    """Survey scores of interactions that started in one 15-minute bin (epoch seconds, aligned
    to 900 s: every real zone's offset is a whole quarter of an hour, so such a bin never
    straddles a local hour or day), for one agent in one queue."""

    bin_start: float
    queue: str
    agent_id: str
    total: int
    count: int


@dataclass(slots=True)
class Figures:
    """One line of a report: one key (queue, team or agent) in one interval."""

    key: str
    start: float  # epoch seconds
    offered: int = 0
    answered: int = 0
    abandoned: int | None = 0
    short_abandoned: int = 0
    answered_within_sl: int = 0
    transfers: int = 0
    callbacks: int = 0
    wait_total_s: float = 0.0
    handled: int = 0  # conversations ended (COMPLETE or TRANSFER) with a talk time
    talk_total_s: float = 0.0
    wrap_total_s: float = 0.0
    survey_total: int = 0
    surveys: int = 0

    @property
    def service_level(self) -> float | None:
        base = self.offered if self.abandoned is not None else self.answered
        return self.answered_within_sl / base if base else None

    @property
    def asa_s(self) -> float | None:
        return self.wait_total_s / self.answered if self.answered else None

    @property
    def aht_s(self) -> float | None:
        if not self.handled:
            return None
        return (self.talk_total_s + self.wrap_total_s) / self.handled

    @property
    def satisfaction(self) -> float | None:
        return self.survey_total / self.surveys if self.surveys else None


@dataclass(frozen=True, slots=True)
class Report:
    group: Group
    interval: Interval
    zone: str
    starts: tuple[float, ...]  # every interval of the period, in order
    lines: tuple[Figures, ...]  # every key in every interval (zeros included), key then start
    keys: tuple[str, ...] = field(default=())


# --- intervals ----------------------------------------------------------------------------------


def floor_to_interval(ts: float, interval: Interval, zone: ZoneInfo) -> float:
    """The start (epoch seconds) of the interval holding `ts`, in `zone`'s wall clock: a
    quarter or an hour begins where the local clock shows :00/:15…, a day at local midnight (a
    DST day is 23 or 25 h long; the repeated hour of a fall-back is two hours)."""
    local = datetime.fromtimestamp(ts, zone)
    if interval is Interval.DAY:
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
        return midnight.timestamp()
    size = _SIZE_S[interval]
    offset = local.utcoffset()
    offset_s = offset.total_seconds() if offset is not None else 0.0
    return ts - ((ts + offset_s) % size)


def interval_starts(since: float, until: float, interval: Interval, zone: ZoneInfo) -> list[float]:
    """Every interval meeting [since, until), in order."""
    starts: list[float] = []
    t = floor_to_interval(since, interval, zone)
    while t < until:
        starts.append(t)
        if interval is Interval.DAY:
            day = datetime.fromtimestamp(t, zone).date() + timedelta(days=1)
            t = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        else:
            t = floor_to_interval(t + _SIZE_S[interval], interval, zone)
    return starts


# --- the calls in the rows ------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    """One item in one queue, from its first ENTER there."""

    queue: str
    entered_at: float
    offered_to: set[str] = field(default_factory=set)
    answered_by: str | None = None
    wait_s: float = 0.0
    abandoned_after_s: float | None = None
    callback: bool = False
    # (agent, talk_s, ended_at, transferred)
    conversations: list[tuple[str, float, float, bool]] = field(default_factory=list)
    transfer_keys: set[tuple[str, float]] = field(default_factory=set)


def _calls(rows: Iterable[QueueLogRow]) -> list[_Call]:
    """The calls (one per item and queue, in order of entry) and each agent's state rows."""
    calls: dict[tuple[str, str], _Call] = {}
    for row in sorted(rows, key=lambda r: r.ts):
        if row.event is QueueEvent.AGENT:
            continue
        key = (row.item_id, row.queue)
        if row.event is QueueEvent.ENTER:
            calls.setdefault(key, _Call(queue=row.queue, entered_at=row.ts))
            continue
        call = calls.get(key)
        if call is None:
            continue  # entered before the rows read: reported with its own period
        if row.event is QueueEvent.OFFER and row.agent_id:
            call.offered_to.add(row.agent_id)
        elif row.event is QueueEvent.CONNECT:
            if call.answered_by is None:
                call.answered_by = row.agent_id
                call.wait_s = row.wait_s if row.wait_s is not None else row.ts - call.entered_at
        elif row.event is QueueEvent.ABANDON:
            if call.answered_by is None and call.abandoned_after_s is None:
                waited = row.wait_s if row.wait_s is not None else row.ts - call.entered_at
                call.abandoned_after_s = waited
        elif row.event is QueueEvent.CALLBACK:
            call.callback = True
        elif row.event in (QueueEvent.COMPLETE, QueueEvent.TRANSFER):
            transferred = row.event is QueueEvent.TRANSFER
            if transferred:
                if (row.agent_id, row.ts) in call.transfer_keys:
                    continue  # the same transfer written twice
                call.transfer_keys.add((row.agent_id, row.ts))
            if row.talk_s is not None:
                call.conversations.append((row.agent_id, row.talk_s, row.ts, transferred))
    return sorted(calls.values(), key=lambda c: c.entered_at)


@dataclass(frozen=True, slots=True)
class WrapUp:
    """An agent's wrap-up after a conversation that ended at `at` (the moment of the COMPLETE
    or TRANSFER row and of the agent's `wrap_up` state row)."""

    agent_id: str
    at: float
    wrap_s: float


def wrap_ups_from_states(rows: Iterable[QueueLogRow]) -> list[WrapUp]:
    """Each `wrap_up` state row with the agent's next state row after it: the wrap-up lasted
    until then (at most MAX_WRAP_UP_S). One still running (no next row) has no known length
    and is left out: its conversation counts as talk only. The reference for the SQL of
    `PgReportSource`."""
    by_agent: dict[str, list[tuple[float, str]]] = {}
    for row in sorted((r for r in rows if r.event is QueueEvent.AGENT), key=lambda r: r.ts):
        by_agent.setdefault(row.agent_id, []).append((row.ts, row.data.split(":", 1)[0]))
    found = []
    for agent_id, states in by_agent.items():
        for (ts, state), (next_ts, _) in itertools.pairwise(states):
            if state == "wrap_up":
                found.append(WrapUp(agent_id, ts, min(next_ts - ts, MAX_WRAP_UP_S)))
    return found


@dataclass(frozen=True, slots=True)
class ReportInput:
    """What a report is computed from, as a store reads it for one period."""

    rows: list[QueueLogRow]  # the calls' rows (no agent state rows needed)
    surveys: list[SurveyScores]
    wrap_ups: list[WrapUp]


# --- the report -----------------------------------------------------------------------------------


def build_report(
    rows: Iterable[QueueLogRow],
    surveys: Iterable[SurveyScores] = (),
    *,
    wrap_ups: Iterable[WrapUp] | None = None,
    group: Group,
    interval: Interval,
    since: float,
    until: float,
    zone: ZoneInfo,
    sl_target_s: Mapping[str, float],
    default_sl_target_s: float = 20.0,
    teams_of: Mapping[str, Collection[str]] | None = None,
    keys: Collection[str] = (),
    visible: Callable[[str], bool] | None = None,
    short_abandon_s: float = DEFAULT_SHORT_ABANDON_S,
) -> Report:
    """The report of the calls that entered a queue in [since, until).

    `rows`: the queue log of those calls (rows of calls that entered earlier are ignored; rows
    after `until` of calls that entered before it are used). `wrap_ups`: the agents' wrap-ups;
    None: derived from the agents' state rows among `rows` (`wrap_ups_from_states`).
    `sl_target_s`: each queue's service-level threshold. `teams_of`: each agent's teams
    (group=team). `keys`: keys shown even with no calls (every interval zero). `visible`:
    which keys the reader may see (None: all). Raises ValueError for an empty or inverted
    period."""
    if not (math.isfinite(since) and math.isfinite(until)) or until <= since:
        raise ValueError("the period must end after it starts")
    teams = teams_of or {}
    starts = interval_starts(since, until, interval, zone)
    rows = list(rows)
    calls = _calls(rows)
    known = wrap_ups_from_states(rows) if wrap_ups is None else wrap_ups
    wrap_of = {(w.agent_id, w.at): w.wrap_s for w in known}
    table: dict[tuple[str, float], Figures] = {}

    def keys_for(agent_id: str | None, queue: str) -> Collection[str]:
        if group is Group.QUEUE:
            return (queue,) if queue else ()  # a survey of a call that never queued
        if not agent_id:
            return ()
        if group is Group.AGENT:
            return (agent_id,)
        return tuple(teams.get(agent_id, ()))

    def line(key: str, start: float) -> Figures:
        found = table.get((key, start))
        if found is None:
            found = table[(key, start)] = Figures(
                key=key, start=start, abandoned=0 if group is Group.QUEUE else None
            )
        return found

    for call in calls:
        if not since <= call.entered_at < until:
            continue
        start = floor_to_interval(call.entered_at, interval, zone)
        threshold = sl_target_s.get(call.queue, default_sl_target_s)
        within = call.answered_by is not None and call.wait_s <= threshold
        if group is Group.QUEUE:
            f = line(call.queue, start)
            if call.answered_by is not None:
                f.offered += 1
            elif call.abandoned_after_s is not None:
                if call.abandoned_after_s < short_abandon_s:
                    f.short_abandoned += 1
                else:
                    f.offered += 1
                    f.abandoned = (f.abandoned or 0) + 1
        else:
            offered_keys = {k for a in call.offered_to for k in keys_for(a, call.queue)}
            if call.answered_by is not None:
                offered_keys.update(keys_for(call.answered_by, call.queue))
            for key in offered_keys:
                line(key, start).offered += 1
        if call.answered_by is not None:
            for key in keys_for(call.answered_by, call.queue):
                f = line(key, start)
                f.answered += 1
                f.wait_total_s += call.wait_s
                f.answered_within_sl += within
        if call.callback:  # a queue's, or its answering agent's (and team's)
            for key in keys_for(call.answered_by, call.queue):
                line(key, start).callbacks += 1
        for agent_id, talk_s, ended_at, transferred in call.conversations:
            wrap = wrap_of.get((agent_id, ended_at), 0.0)
            for key in keys_for(agent_id, call.queue):
                f = line(key, start)
                f.handled += 1
                f.talk_total_s += talk_s
                f.wrap_total_s += wrap
                f.transfers += transferred

    for s in surveys:
        if not since <= s.bin_start < until:
            continue
        start = floor_to_interval(s.bin_start, interval, zone)
        for key in keys_for(s.agent_id, s.queue):
            f = line(key, start)
            f.survey_total += s.total
            f.surveys += s.count

    shown = set(keys) | {k for k, _ in table}
    if visible is not None:
        shown = {k for k in shown if visible(k)}
    ordered = sorted(shown)
    lines = tuple(table.get((k, t)) or line(k, t) for k in ordered for t in starts)
    return Report(
        group=group,
        interval=interval,
        zone=zone.key,
        starts=tuple(starts),
        lines=lines,
        keys=tuple(ordered),
    )


def totals(report: Report) -> list[Figures]:
    """Each key's figures over the whole period (start: the period's first interval)."""
    merged: dict[str, Figures] = {}
    for f in report.lines:
        t = merged.get(f.key)
        if t is None:
            t = merged[f.key] = Figures(
                key=f.key,
                start=report.starts[0] if report.starts else f.start,
                abandoned=None if f.abandoned is None else 0,
            )
        t.offered += f.offered
        t.answered += f.answered
        if t.abandoned is not None and f.abandoned is not None:
            t.abandoned += f.abandoned
        t.short_abandoned += f.short_abandoned
        t.answered_within_sl += f.answered_within_sl
        t.transfers += f.transfers
        t.callbacks += f.callbacks
        t.wait_total_s += f.wait_total_s
        t.handled += f.handled
        t.talk_total_s += f.talk_total_s
        t.wrap_total_s += f.wrap_total_s
        t.survey_total += f.survey_total
        t.surveys += f.surveys
    return [merged[k] for k in report.keys]
