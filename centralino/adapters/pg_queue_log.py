"""asyncpg implementation of `acd.ports.QueueLogSink`: the `queue_log` table (0003_acd.sql)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from acd.models import QueueEvent, QueueLogRow

# One read returns at most this many rows: a day of a large contact center (100k calls, ~6 rows
# each) fits; a wallboard asking for more is a bug, not a workload.
MAX_ROWS_PER_READ = 1_000_000


class PgQueueLog:
    """Append-only queue log in PostgreSQL."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, rows: Sequence[QueueLogRow]) -> None:
        if not rows:
            return
        await self._pool.executemany(
            "INSERT INTO queue_log (ts, queue, item_id, event, agent_id, team, wait_s, talk_s,"
            " data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    r.ts,
                    r.queue,
                    r.item_id,
                    r.event.value,
                    r.agent_id,
                    r.team,
                    r.wait_s,
                    r.talk_s,
                    r.data,
                )
                for r in rows
            ],
        )

    async def read(
        self, *, since: float, until: float | None = None, queue: str | None = None
    ) -> list[QueueLogRow]:
        records = await self._pool.fetch(
            "SELECT ts, queue, item_id, event, agent_id, team, wait_s, talk_s, data"
            " FROM queue_log WHERE ts >= $1 AND ($2::float8 IS NULL OR ts < $2)"
            " AND ($3::text IS NULL OR queue = $3 OR queue = '') ORDER BY ts, id LIMIT $4",
            since,
            until,
            queue,
            MAX_ROWS_PER_READ,
        )
        return [
            QueueLogRow(
                ts=r["ts"],
                queue=r["queue"],
                item_id=r["item_id"],
                event=QueueEvent(r["event"]),
                agent_id=r["agent_id"],
                team=r["team"],
                wait_s=r["wait_s"],
                talk_s=r["talk_s"],
                data=r["data"],
            )
            for r in records
        ]
