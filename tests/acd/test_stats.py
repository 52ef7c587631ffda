"""Wallboard figures rebuilt from queue-log rows alone."""

from __future__ import annotations

import queueing_models
from acd.models import QueueEvent, QueueLogRow
from acd.stats import wallboard_from_log

E = QueueEvent


def row(
    ts: float,
    item: str,
    event: QueueEvent,
    *,
    queue: str = "billing",
    agent_id: str = "",
    team: str = "",
    wait_s: float | None = None,
    talk_s: float | None = None,
    data: str = "",
) -> QueueLogRow:
    return QueueLogRow(ts, queue, item, event, agent_id, team, wait_s, talk_s, data)


ROWS = [
    row(0.0, "c1", E.ENTER),
    row(1.0, "c2", E.ENTER),
    row(2.0, "c3", E.ENTER),
    row(3.0, "c4", E.ENTER),
    row(4.0, "x1", E.ENTER, queue="sales"),
    row(5.0, "c1", E.OFFER, agent_id="joe"),
    row(10.0, "c1", E.CONNECT, agent_id="joe", team="red", wait_s=10.0),
    row(31.0, "c2", E.CONNECT, agent_id="sue", team="blue", wait_s=30.0),
    row(40.0, "c3", E.ABANDON, wait_s=38.0),
    row(70.0, "c1", E.COMPLETE, agent_id="joe", talk_s=60.0),
    row(91.0, "c2", E.COMPLETE, agent_id="sue", talk_s=60.0),
    row(92.0, "c4", E.RONA, agent_id="joe"),
    row(0.5, "", E.AGENT, queue="", agent_id="joe", data="ready"),
    row(0.6, "", E.AGENT, queue="", agent_id="sue", data="ready"),
    row(92.0, "", E.AGENT, queue="", agent_id="joe", data="not_ready:rona"),
    row(93.0, "x1", E.OVERFLOW, queue="sales", data="billing"),
    row(93.0, "x1", E.ENTER, queue="billing"),
]


def test_wallboard_figures_follow_the_documented_definitions() -> None:
    snap = wallboard_from_log(
        ROWS, queue="billing", now=100.0, sl_t_s=20.0, sl_goal=0.8, rate_window_s=100.0
    )
    assert (snap.offered, snap.answered, snap.abandoned) == (3, 2, 1)
    assert snap.service_level == 1 / 3  # c1 within 20 s; c2 late; c3 abandoned
    assert snap.asa_s == 20.0
    assert snap.abandon_rate == 1 / 3
    assert snap.waiting == 2  # c4 (back after RONA) and x1 (overflowed in)
    assert snap.longest_wait_s == 97.0
    assert snap.agents_by_state == {"ready": 1, "not_ready": 1}
    assert snap.aht_s == 60.0
    assert snap.arrival_rate_per_h == 5 * 36.0  # 5 entries in the last 100 s
    assert snap.agents_needed == queueing_models.agents_for_service_level(
        5 / 100.0, 60.0, 0.8, 20.0
    )
    assert snap.teams["red"].service_level == 1.0
    assert snap.teams["blue"].asa_s == 30.0


def test_an_empty_log_gives_a_quiet_board() -> None:
    snap = wallboard_from_log([], queue="billing", now=0.0)
    assert (snap.offered, snap.waiting, snap.service_level, snap.agents_needed) == (0, 0, 1.0, 0)
