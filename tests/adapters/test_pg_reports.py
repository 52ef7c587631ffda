"""A report's rows read from real PostgreSQL: the period's calls by entry, their later rows, the
agents' wrap-ups and the survey scores aggregated per 15 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from acd.models import QueueEvent, QueueLogRow
from acd.reports import (
    Group,
    Interval,
    ReportTooLarge,
    WrapUp,
    build_report,
    wrap_ups_from_states,
)
from centralino.adapters.pg_context import PgTimelineStore
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.pg_reports import PgReportSource
from context.models import ChannelKind, Direction, Interaction

E = QueueEvent
DAY = datetime(2026, 12, 7, tzinfo=UTC)
T0 = DAY.timestamp()
END = T0 + 86400


def row(ts: float, item: str, event: QueueEvent, **kw: object) -> QueueLogRow:
    return QueueLogRow(T0 + ts, str(kw.pop("queue", "billing")), item, event, **kw)  # type: ignore[arg-type]


def rated(agent: str, score: int, at_s: float) -> Interaction:
    at = DAY + timedelta(seconds=at_s)
    return Interaction(
        id=None,
        customer_id=None,
        channel=ChannelKind.VOICE,
        direction=Direction.INBOUND,
        started_at=at,
        ended_at=at + timedelta(seconds=120),
        agent_id=agent,
        queue="billing",
        outcome="answered",
        survey_score=score,
    )


ROWS = [
    # Entered the day before, answered in it: not this day's call.
    row(-60, "old", E.ENTER, data='{"arrived_at": 0}'),
    row(10, "old", E.CONNECT, agent_id="joe", wait_s=70.0),
    # Entered at 23:59:30, answered after midnight: this day's call.
    row(86370, "late", E.ENTER),
    row(86410, "late", E.CONNECT, agent_id="joe", wait_s=40.0),
    row(86470, "late", E.COMPLETE, agent_id="joe", talk_s=60.0),
    row(86470, "", E.AGENT, queue="", agent_id="joe", data="wrap_up"),
    row(86490, "", E.AGENT, queue="", agent_id="joe", data="ready:"),
    # An ordinary call at 09:00 and an abandon.
    row(32400, "c1", E.ENTER),
    row(32405, "c1", E.OFFER, agent_id="sue", wait_s=4.0),
    row(32406, "c1", E.CONNECT, agent_id="sue", wait_s=6.0),
    row(32506, "c1", E.TRANSFER, agent_id="sue", talk_s=100.0, data="sales"),
    row(32506, "", E.AGENT, queue="", agent_id="sue", data="ready"),
    row(40000, "", E.AGENT, queue="", agent_id="max", data="wrap_up"),  # still running
    row(32500, "c2", E.ENTER),
    row(32560, "c2", E.ABANDON, wait_s=60.0, data="caller_hangup"),
]


async def test_given_a_day_then_its_calls_are_read_by_entry_and_reported(
    pg_pool: asyncpg.Pool,
) -> None:
    await PgQueueLog(pool=pg_pool).write(ROWS)
    timeline = PgTimelineStore(pool=pg_pool)
    await timeline.append(rated("sue", 5, 32400))
    await timeline.append(rated("sue", 2, 32410))
    await timeline.append(rated("joe", 4, -600))  # the day before

    data = await PgReportSource(pool=pg_pool).read(since=T0, until=END)

    assert {r.item_id for r in data.rows} == {"late", "c1", "c2"}
    assert all(r.data == "" for r in data.rows if r.event is E.ENTER)  # the item's JSON: unread
    assert [(s.agent_id, s.total, s.count) for s in data.surveys] == [("sue", 7, 2)]
    assert data.surveys[0].bin_start == T0 + 32400
    # The SQL window query finds the wrap-ups the pure reference finds in the state rows.
    assert data.wrap_ups == wrap_ups_from_states(ROWS) == [WrapUp("joe", T0 + 86470, 20.0)]
    rep = build_report(
        data.rows,
        data.surveys,
        wrap_ups=data.wrap_ups,
        group=Group.QUEUE,
        interval=Interval.DAY,
        since=T0,
        until=END,
        zone=ZoneInfo("UTC"),
        sl_target_s={"billing": 20.0},
    )
    (day,) = rep.lines
    assert (day.offered, day.answered, day.abandoned, day.transfers) == (3, 2, 1, 1)
    assert day.answered_within_sl == 1
    assert day.aht_s == pytest.approx((60 + 20 + 100) / 2)  # joe's 20 s wrap-up counts
    assert day.satisfaction == pytest.approx(3.5)


async def test_given_more_rows_than_the_limit_then_the_read_is_refused(
    pg_pool: asyncpg.Pool,
) -> None:
    await PgQueueLog(pool=pg_pool).write(ROWS)
    with pytest.raises(ReportTooLarge):
        await PgReportSource(pool=pg_pool, max_rows=3).read(since=T0, until=END)


async def test_the_period_query_uses_the_entry_index(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")  # a tiny table: make the plan tell
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT item_id FROM queue_log"
                " WHERE event = 'enter' AND ts >= $1 AND ts < $2",
                T0,
                END,
            )
        )
        await conn.execute("RESET enable_seqscan")
    assert "queue_log_enter_ts" in plan
