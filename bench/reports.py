"""Reports benchmark: how long `/api/reports` takes to read and compute 4 weeks by day and one day
by hour, from a queue log in real PostgreSQL.

A throwaway database (created on the PostgreSQL at BENCH_PG_DSN, default the local one as
postgres, dropped at the end) gets BENCH_DAYS days (default 28) of BENCH_CALLS_PER_DAY calls
(default 3000): each enters one of 3 queues, ~8 % abandon, the rest are offered to, answered by
and completed by one of 40 agents in 4 teams (5 % transferred), with agent state rows and a
survey score on a third of them, as the router writes them (ENTER rows carry the item's JSON).

Measured for each period (best of 3, ms): the read (`PgReportSource.read`: the period's calls by
entry, their rows, agent states, surveys summed in SQL) and the computation (`build_report`,
per team). The peer, in the same run: `PgQueueLog.read`, the wallboard's plain read of every row
of the period (what a report would do without its own query), timed for the same period.
Run: `.venv/bin/python bench/reports.py`. The last line is the JSON summary.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np

from acd.reports import Group, Interval, Report, ReportInput, build_report
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.pg_reports import PgReportSource
from centralino.storage.migrate import apply_migrations

ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DAYS = int(os.environ.get("BENCH_DAYS", "28"))
CALLS_PER_DAY = int(os.environ.get("BENCH_CALLS_PER_DAY", "3000"))
QUEUES = ("billing", "support", "sales")
AGENTS = [f"agent{i:03d}" for i in range(40)]
TEAMS = {a: frozenset({f"team{i % 4}"}) for i, a in enumerate(AGENTS)}
ZONE = ZoneInfo("Europe/Rome")
END = datetime(2026, 12, 8, tzinfo=ZONE).timestamp()

Row = tuple[float, str, str, str, str, str, float | None, float | None, str]


def synthetic_log(rng: np.random.Generator) -> tuple[list[Row], list[tuple[object, ...]]]:
    rows: list[Row] = []
    interactions: list[tuple[object, ...]] = []
    start = END - DAYS * 86400
    arrivals = np.sort(rng.uniform(start, END, DAYS * CALLS_PER_DAY))
    for n, arrival in enumerate(arrivals):
        item, queue, t = f"call-{n}", QUEUES[n % 3], float(arrival)
        rows.append((t, queue, item, "enter", "", "", None, None, '{"channel":"voice"}'))
        wait = float(rng.exponential(25.0))
        if rng.random() < 0.08:
            rows.append((t + wait, queue, item, "abandon", "", "", wait, None, "caller_hangup"))
            continue
        agent = AGENTS[int(rng.integers(len(AGENTS)))]
        team = min(TEAMS[agent])
        talk = float(rng.gamma(4.0, 45.0))
        end = t + wait + talk
        event = "transfer" if rng.random() < 0.05 else "complete"
        rows += [
            (t + wait - 2, queue, item, "offer", agent, team, wait - 2, None, ""),
            (t + wait, queue, item, "connect", agent, team, wait, None, ""),
            (end, queue, item, event, agent, team, None, talk, ""),
            (end, "", "", "agent", agent, team, None, None, "wrap_up"),
            (end + 10, "", "", "agent", agent, team, None, None, "ready"),
        ]
        if rng.random() < 0.33:
            started = datetime.fromtimestamp(t, UTC)
            interactions.append(
                (
                    "voice",
                    "inbound",
                    agent,
                    queue,
                    started,
                    started + timedelta(seconds=wait + talk),
                    int(rng.integers(1, 6)),
                )
            )
    return rows, interactions


T = TypeVar("T")


async def best_ms(fn: Callable[[], Awaitable[T]], repeat: int = 3) -> tuple[float, T]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = await fn()
        best = min(best, (time.perf_counter() - t0) * 1000)
    assert value is not None
    return best, value


async def compute(data: ReportInput, *, since: float, interval: Interval) -> Report:
    return build_report(
        data.rows,
        data.surveys,
        wrap_ups=data.wrap_ups,
        group=Group.TEAM,
        interval=interval,
        since=since,
        until=END,
        zone=ZONE,
        sl_target_s=dict.fromkeys(QUEUES, 20.0),
        teams_of=TEAMS,
    )


async def main() -> None:
    name = f"centralino_bench_reports_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        assert pool is not None
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            rows, interactions = synthetic_log(np.random.default_rng(11))
            await conn.copy_records_to_table(
                "queue_log",
                records=rows,
                columns=[
                    "ts",
                    "queue",
                    "item_id",
                    "event",
                    "agent_id",
                    "team",
                    "wait_s",
                    "talk_s",
                    "data",
                ],
            )
            await conn.copy_records_to_table(
                "interactions",
                records=interactions,
                columns=[
                    "channel",
                    "direction",
                    "agent_id",
                    "queue",
                    "started_at",
                    "ended_at",
                    "survey_score",
                ],
            )
            await conn.execute("ANALYZE")
        print(f"queue log: {len(rows)} rows, {DAYS} days x {CALLS_PER_DAY} calls")
        source, plain = PgReportSource(pool=pool), PgQueueLog(pool=pool)
        results: dict[str, float] = {}
        for label, since, interval in (
            ("weeks", END - DAYS * 86400, Interval.DAY),
            ("day", END - 86400, Interval.HOUR),
        ):
            read_ms, data = await best_ms(functools.partial(source.read, since=since, until=END))
            build_ms, report = await best_ms(
                functools.partial(compute, data, since=since, interval=interval)
            )
            peer_ms, peer_rows = await best_ms(
                functools.partial(plain.read, since=since, until=END)
            )
            answered = sum(f.answered for f in report.lines)
            read_rows = len(data.rows) + len(data.wrap_ups)
            print(
                f"{label:>5}: read {read_ms:8.1f} ms ({read_rows} rows)  build {build_ms:8.1f}"
                f" ms  total {read_ms + build_ms:8.1f} ms  | peer PgQueueLog.read"
                f" {peer_ms:8.1f} ms ({len(peer_rows)} rows)  answered {answered}"
            )
            results[f"{label}_total_ms"] = round(read_ms + build_ms, 1)
            results[f"{label}_read_ms"] = round(read_ms, 1)
            results[f"{label}_peer_read_ms"] = round(peer_ms, 1)
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        json.dumps(
            {"bench": "reports", "rows": len(rows), "days": DAYS, **results},
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
