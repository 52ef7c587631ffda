"""What a report reads from PostgreSQL for one period (acd/reports.py computes the figures).

Queue log: the rows of the calls that ENTERED a queue in the period (found through the partial
index of 0010_report_indexes.sql), including their rows after its end (a call answered after
midnight belongs to the day it entered), and the agents' wrap-ups (a window query over their
state rows, so that one row per wrap-up crosses the wire instead of every state change). The
counting itself stays in Python: it follows each call through transfers and re-entries, which
SQL would express only as a long window query that says less clearly what it counts.

Surveys: aggregated in SQL (sum and count per agent, queue and 15-minute bin), since one row per
rated call would only be summed again; a 15-minute bin lies within one local hour and day in
every real time zone, so the report re-bins it exactly.
"""

from __future__ import annotations

import asyncpg

from acd.models import QueueEvent, QueueLogRow
from acd.reports import (
    MAX_WRAP_UP_S,
    PERIOD_TAIL_S,
    ReportInput,
    ReportTooLarge,
    SurveyScores,
    WrapUp,
)

# One report reads at most this many queue-log rows: 93 days of a mid-size contact center
# (15k calls a day, ~6 rows each, plus agent states) fits; more is a period to narrow, not a
# page to render in one request.
MAX_REPORT_ROWS = 10_000_000
# Only the events the figures use: OFFER/REJECT/RONA noise is left in the table.
_EVENTS = [
    e.value
    for e in (
        QueueEvent.ENTER,
        QueueEvent.OFFER,
        QueueEvent.CONNECT,
        QueueEvent.ABANDON,
        QueueEvent.CALLBACK,
        QueueEvent.COMPLETE,
        QueueEvent.TRANSFER,
    )
]


class PgReportSource:
    def __init__(self, *, pool: asyncpg.Pool, max_rows: int = MAX_REPORT_ROWS) -> None:
        self._pool = pool
        self._max_rows = max_rows

    async def read(self, *, since: float, until: float) -> ReportInput:
        """Queue-log rows, wrap-ups and survey scores of the calls of [since, until) (epoch
        seconds)."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            calls = await conn.fetch(
                "SELECT ts, queue, item_id, event, agent_id, wait_s, talk_s FROM queue_log"
                " WHERE ts >= $1 AND ts < $2::float8 + $3::float8 AND event = ANY($4::text[])"
                " AND item_id IN (SELECT item_id FROM queue_log"
                "  WHERE event = 'enter' AND ts >= $1::float8 AND ts < $2::float8)"
                " ORDER BY ts, id LIMIT $5",
                since,
                until,
                PERIOD_TAIL_S,
                _EVENTS,
                self._max_rows + 1,
            )
            if len(calls) > self._max_rows:
                raise ReportTooLarge(f"more than {self._max_rows} queue-log rows")
            # acd.reports.wrap_ups_from_states in SQL: each wrap_up state row and the agent's
            # next state row, one row per wrap-up instead of every state change.
            wraps = await conn.fetch(
                "SELECT agent_id, ts, least(next_ts - ts, $4::float8) AS wrap_s FROM ("
                "  SELECT agent_id, ts, data,"
                "  lead(ts) OVER (PARTITION BY agent_id ORDER BY ts, id) AS next_ts"
                "  FROM queue_log WHERE event = 'agent' AND ts >= $1"
                "  AND ts < $2::float8 + $3::float8) s"
                " WHERE split_part(data, ':', 1) = 'wrap_up' AND next_ts IS NOT NULL LIMIT $5",
                since,
                until,
                PERIOD_TAIL_S,
                MAX_WRAP_UP_S,
                self._max_rows + 1,
            )
            if len(wraps) > self._max_rows:
                raise ReportTooLarge(f"more than {self._max_rows} wrap-ups")
            scores = await conn.fetch(
                "SELECT floor(extract(epoch FROM started_at) / 900) * 900 AS bin,"
                " coalesce(queue, '') AS queue, agent_id, sum(survey_score) AS total,"
                " count(*) AS n FROM interactions"
                " WHERE survey_score IS NOT NULL AND agent_id IS NOT NULL"
                " AND started_at >= to_timestamp($1) AND started_at < to_timestamp($2)"
                " GROUP BY 1, 2, 3",
                since,
                until,
            )
        return ReportInput(
            rows=[
                QueueLogRow(
                    ts=r["ts"],
                    queue=r["queue"],
                    item_id=r["item_id"],
                    event=QueueEvent(r["event"]),
                    agent_id=r["agent_id"],
                    wait_s=r["wait_s"],
                    talk_s=r["talk_s"],
                )
                for r in calls
            ],
            surveys=[
                SurveyScores(
                    bin_start=float(r["bin"]),
                    queue=r["queue"],
                    agent_id=r["agent_id"],
                    total=int(r["total"]),
                    count=int(r["n"]),
                )
                for r in scores
            ],
            wrap_ups=[WrapUp(r["agent_id"], r["ts"], r["wrap_s"]) for r in wraps],
        )
