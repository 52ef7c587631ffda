"""What a report reads from PostgreSQL for one period (acd/reports.py computes the figures).

Queue log: the rows of the calls that ENTERED a queue in the period (found through the partial
index of 0010_report_indexes.sql), including their rows after its end (a call answered after
midnight belongs to the day it entered), plus the agents' state rows for the wrap-ups. The
counting itself stays in Python: it follows each call through transfers and re-entries, which
SQL would express only as a long window query that says less clearly what it counts.

Surveys: aggregated in SQL (sum and count per agent, queue and 15-minute bin), since one row per
rated call would only be summed again; a 15-minute bin lies within one local hour and day in
every real time zone, so the report re-bins it exactly.
"""

from __future__ import annotations

import asyncpg

from acd.models import QueueEvent, QueueLogRow
from acd.reports import PERIOD_TAIL_S, ReportTooLarge, SurveyScores

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

    async def read(
        self, *, since: float, until: float
    ) -> tuple[list[QueueLogRow], list[SurveyScores]]:
        """Queue-log rows and survey scores of the calls of [since, until) (epoch seconds)."""
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
            states = await conn.fetch(
                "SELECT ts, agent_id, split_part(data, ':', 1) AS state FROM queue_log"
                " WHERE event = 'agent' AND ts >= $1 AND ts < $2::float8 + $3::float8"
                " ORDER BY ts, id LIMIT $4",
                since,
                until,
                PERIOD_TAIL_S,
                self._max_rows + 1,
            )
            if len(states) > self._max_rows:
                raise ReportTooLarge(f"more than {self._max_rows} agent state rows")
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
        rows = [
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
        ]
        rows.extend(
            QueueLogRow(
                ts=r["ts"],
                queue="",
                item_id="",
                event=QueueEvent.AGENT,
                agent_id=r["agent_id"],
                data=r["state"],
            )
            for r in states
        )
        surveys = [
            SurveyScores(
                bin_start=float(r["bin"]),
                queue=r["queue"],
                agent_id=r["agent_id"],
                total=int(r["total"]),
                count=int(r["n"]),
            )
            for r in scores
        ]
        return rows, surveys
