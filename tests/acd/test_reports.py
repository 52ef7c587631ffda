"""Reports from hand-made queue-log rows: intervals, zones, and the edge cases of counting."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acd.models import QueueEvent, QueueLogRow
from acd.reports import (
    Figures,
    Group,
    Interval,
    Report,
    SurveyScores,
    build_report,
    floor_to_interval,
    interval_starts,
    totals,
)

E = QueueEvent
UTC = ZoneInfo("UTC")
ROME = ZoneInfo("Europe/Rome")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()  # a Monday, 09:00 UTC


def row(
    ts: float,
    item: str,
    event: QueueEvent,
    *,
    queue: str = "billing",
    agent_id: str = "",
    wait_s: float | None = None,
    talk_s: float | None = None,
    data: str = "",
) -> QueueLogRow:
    return QueueLogRow(T0 + ts, queue, item, event, agent_id, "", wait_s, talk_s, data)


def answered(
    item: str, at: float, wait: float, talk: float, agent: str, *, queue: str = "billing"
) -> list[QueueLogRow]:
    return [
        row(at, item, E.ENTER, queue=queue),
        row(at + wait - 1, item, E.OFFER, queue=queue, agent_id=agent, wait_s=wait - 1),
        row(at + wait, item, E.CONNECT, queue=queue, agent_id=agent, wait_s=wait),
        row(at + wait + talk, item, E.COMPLETE, queue=queue, agent_id=agent, talk_s=talk),
        row(at + wait + talk, "", E.AGENT, queue="", agent_id=agent, data="ready"),
    ]


def report(rows: list[QueueLogRow], group: Group = Group.QUEUE, **kw: Any) -> Report:
    args: dict[str, Any] = {
        "group": group,
        "interval": Interval.HOUR,
        "since": T0,
        "until": T0 + 3 * 3600,
        "zone": UTC,
        "sl_target_s": {"billing": 20.0, "sales": 30.0},
        "teams_of": {"joe": {"red"}, "sue": {"blue"}, "max": {"red", "blue"}},
    }
    args.update(kw)
    return build_report(rows, **args)


def lines_of(rep: Report, key: str) -> list[Figures]:
    return [f for f in rep.lines if f.key == key]


def test_queue_figures_per_hour_with_an_empty_interval_in_between() -> None:
    rows = [
        *answered("c1", 10, 10, 100, "joe"),
        *answered("c2", 20, 40, 200, "sue"),  # answered after the 20 s threshold
        row(30, "c3", E.ENTER),
        row(90, "c3", E.ABANDON, wait_s=60.0),
        *answered("c4", 2 * 3600 + 5, 5, 60, "joe"),
    ]
    rep = report(rows)
    assert rep.starts == (T0, T0 + 3600, T0 + 7200)
    first, empty, third = lines_of(rep, "billing")
    assert (first.offered, first.answered, first.abandoned) == (3, 2, 1)
    assert first.answered_within_sl == 1
    assert first.service_level == pytest.approx(1 / 3)  # an abandon is a miss
    assert first.asa_s == pytest.approx(25.0)
    assert first.aht_s == pytest.approx(150.0)
    assert (empty.offered, empty.answered, empty.abandoned) == (0, 0, 0)
    assert empty.service_level is None and empty.asa_s is None and empty.aht_s is None
    assert (third.offered, third.answered, third.service_level) == (1, 1, 1.0)


def test_a_call_crossing_an_interval_boundary_counts_where_it_entered() -> None:
    # Entered at 09:59:50, answered at 10:00:30, talked until 10:05.
    rows = answered("c1", 3600 - 10, 40, 270, "joe")
    rep = report(rows)
    first, second, _ = lines_of(rep, "billing")
    assert (first.offered, first.answered, first.handled) == (1, 1, 1)
    assert first.answered_within_sl == 0  # waited 40 s
    assert (second.offered, second.answered, second.handled) == (0, 0, 0)


def test_a_call_that_entered_before_the_period_is_not_counted_in_it() -> None:
    rows = [row(-30, "old", E.ENTER), row(5, "old", E.CONNECT, agent_id="joe", wait_s=35.0)]
    rep = report(rows, keys=["billing"])
    assert all(f.offered == 0 and f.answered == 0 for f in rep.lines)
    assert len(rep.lines) == 3  # the key asked for, zero in every interval


def test_short_abandons_are_reported_apart_and_left_out_of_service_level() -> None:
    rows = [
        *answered("c1", 0, 5, 60, "joe"),
        row(10, "c2", E.ENTER),
        row(12, "c2", E.ABANDON, wait_s=2.0),  # hung up at once
        row(20, "c3", E.ENTER),
        row(80, "c3", E.ABANDON, wait_s=60.0),
    ]
    first = lines_of(report(rows), "billing")[0]
    assert (first.offered, first.abandoned, first.short_abandoned) == (2, 1, 1)
    assert first.service_level == pytest.approx(0.5)
    strict = lines_of(report(rows, short_abandon_s=0.0), "billing")[0]
    assert (strict.offered, strict.abandoned, strict.short_abandoned) == (3, 2, 0)


def test_transfers_count_once_and_the_target_queue_counts_its_own_call() -> None:
    rows = [
        row(0, "c1", E.ENTER),
        row(8, "c1", E.CONNECT, agent_id="joe", wait_s=8.0),
        row(68, "c1", E.TRANSFER, agent_id="joe", talk_s=60.0, data="sales"),
        row(68, "c1", E.TRANSFER, agent_id="joe", talk_s=60.0, data="sales"),  # written twice
        row(68, "", E.AGENT, queue="", agent_id="joe", data="wrap_up"),
        row(78, "", E.AGENT, queue="", agent_id="joe", data="ready"),
        row(70, "c1", E.ENTER, queue="sales"),
        row(95, "c1", E.CONNECT, queue="sales", agent_id="sue", wait_s=25.0),
        row(195, "c1", E.COMPLETE, queue="sales", agent_id="sue", talk_s=100.0),
    ]
    rep = report(rows)
    billing = lines_of(rep, "billing")[0]
    sales = lines_of(rep, "sales")[0]
    assert (billing.offered, billing.answered, billing.transfers, billing.handled) == (1, 1, 1, 1)
    assert billing.aht_s == pytest.approx(70.0)  # 60 s talk + 10 s wrap-up
    assert (sales.offered, sales.answered, sales.transfers) == (1, 1, 0)
    assert sales.answered_within_sl == 1  # sales' own threshold: 30 s
    agents = report(rows, Group.AGENT)
    assert lines_of(agents, "joe")[0].transfers == 1
    assert lines_of(agents, "sue")[0].transfers == 0


def test_a_call_transferred_back_into_the_same_queue_is_one_call_there() -> None:
    rows = [
        row(0, "c1", E.ENTER),
        row(10, "c1", E.CONNECT, agent_id="joe", wait_s=10.0),
        row(40, "c1", E.TRANSFER, agent_id="joe", talk_s=30.0),
        row(41, "c1", E.ENTER),
        row(90, "c1", E.CONNECT, agent_id="sue", wait_s=49.0),
        row(150, "c1", E.COMPLETE, agent_id="sue", talk_s=60.0),
    ]
    f = lines_of(report(rows), "billing")[0]
    assert (f.offered, f.answered, f.handled, f.transfers) == (1, 1, 2, 1)
    assert f.asa_s == pytest.approx(10.0)  # its first answer


def test_teams_and_agents_see_only_conversations_and_no_abandons() -> None:
    rows = [
        *answered("c1", 0, 10, 100, "joe"),
        *answered("c2", 5, 30, 100, "max"),  # red and blue
        row(40, "c3", E.ENTER),
        row(41, "c3", E.OFFER, agent_id="sue"),
        row(60, "c3", E.ABANDON, wait_s=20.0),
    ]
    teams = report(rows, Group.TEAM)
    red, blue = lines_of(teams, "red")[0], lines_of(teams, "blue")[0]
    assert (red.offered, red.answered, red.abandoned) == (2, 2, None)
    assert red.service_level == pytest.approx(0.5)  # among answered
    assert (blue.offered, blue.answered) == (2, 1)  # rung for c3 at sue's, which abandoned
    assert blue.service_level == 0.0
    agents = report(rows, Group.AGENT, visible=lambda a: a != "max")
    assert agents.keys == ("joe", "sue")


def test_callbacks_and_satisfaction() -> None:
    rows = [
        row(0, "c1", E.ENTER),
        row(30, "c1", E.CALLBACK, wait_s=30.0, data="+390612345"),
        row(300, "c1", E.CONNECT, agent_id="joe", wait_s=300.0),
        row(400, "c1", E.COMPLETE, agent_id="joe", talk_s=100.0),
    ]
    surveys = [
        SurveyScores(T0, "billing", "joe", total=9, count=2),
        SurveyScores(T0 + 3600, "billing", "sue", total=2, count=1),
        SurveyScores(T0 + 4 * 3600, "billing", "sue", total=5, count=1),  # after the period
        SurveyScores(T0, "", "sue", total=1, count=1),  # a call that never queued
    ]
    rep = report(rows, surveys=surveys)
    first, second, third = lines_of(rep, "billing")
    assert (first.callbacks, first.satisfaction, first.surveys) == (1, 4.5, 2)
    assert second.satisfaction == 2.0
    assert third.satisfaction is None
    assert rep.keys == ("billing",)
    team = report(rows, Group.TEAM, surveys=surveys)
    assert lines_of(team, "red")[0].callbacks == 1
    assert lines_of(team, "blue")[0].satisfaction == 1.0  # sue's, queued or not
    assert lines_of(team, "blue")[1].satisfaction == 2.0


def test_wrap_up_runs_until_the_agents_next_state_and_counts_in_aht() -> None:
    rows = [
        row(0, "c1", E.ENTER),
        row(5, "c1", E.CONNECT, agent_id="joe", wait_s=5.0),
        row(65, "c1", E.COMPLETE, agent_id="joe", talk_s=60.0),
        row(65, "", E.AGENT, queue="", agent_id="joe", data="wrap_up"),
        row(95, "", E.AGENT, queue="", agent_id="joe", data="ready"),
        row(100, "c2", E.ENTER),
        row(105, "c2", E.CONNECT, agent_id="sue", wait_s=5.0),
        row(145, "c2", E.COMPLETE, agent_id="sue", talk_s=40.0),
        row(145, "", E.AGENT, queue="", agent_id="sue", data="wrap_up"),  # still wrapping up
    ]
    f = lines_of(report(rows), "billing")[0]
    assert f.talk_total_s == 100.0 and f.wrap_total_s == 30.0
    assert f.aht_s == pytest.approx(65.0)


def test_days_follow_the_zones_midnight_and_dst() -> None:
    # Europe/Rome springs forward on 2026-03-29: that day is 23 hours long.
    since = datetime(2026, 3, 28, tzinfo=ROME).timestamp()
    until = datetime(2026, 3, 31, tzinfo=ROME).timestamp()
    starts = interval_starts(since, until, Interval.DAY, ROME)
    assert [b - a for a, b in itertools.pairwise(starts)] == [86400, 82800]
    late = datetime(2026, 3, 29, 23, 30, tzinfo=ROME).timestamp()
    assert floor_to_interval(late, Interval.DAY, ROME) == starts[1]
    assert floor_to_interval(late, Interval.HOUR, ROME) == late - 1800
    kathmandu = ZoneInfo("Asia/Kathmandu")  # +05:45
    t = datetime(2026, 3, 2, 10, 50, tzinfo=kathmandu).timestamp()
    assert (
        datetime.fromtimestamp(
            floor_to_interval(t, Interval.QUARTER_HOUR, kathmandu), kathmandu
        ).minute
        == 45
    )


def test_hours_of_a_zone_and_their_calls() -> None:
    rows = answered("c1", 1800, 5, 60, "joe")  # 09:30 UTC = 10:30 in Rome (winter)
    rep = report(rows, zone=ROME, interval=Interval.DAY)
    assert len(rep.starts) == 1
    assert datetime.fromtimestamp(rep.starts[0], ROME).hour == 0
    assert lines_of(rep, "billing")[0].answered == 1


def test_an_inverted_period_is_refused() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        report([], since=T0, until=T0)


def test_totals_add_up_every_interval_of_a_key() -> None:
    rows = [
        *answered("c1", 10, 10, 100, "joe"),
        row(30, "c3", E.ENTER),
        row(90, "c3", E.ABANDON, wait_s=60.0),
        *answered("c4", 2 * 3600 + 5, 30, 60, "joe"),
    ]
    rep = report(rows)
    (billing,) = totals(rep)
    assert (billing.key, billing.start) == ("billing", T0)
    assert (billing.offered, billing.answered, billing.abandoned) == (3, 2, 1)
    assert billing.service_level == pytest.approx(1 / 3)
    assert billing.aht_s == pytest.approx(80.0)
    (red,) = [t for t in totals(report(rows, Group.TEAM)) if t.key == "red"]
    assert (red.answered, red.abandoned) == (2, None)
