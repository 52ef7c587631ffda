"""Team figures per board phase (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from context.board import PhaseFigures, phase_figures

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def test_counts_oldest_and_late_per_phase_in_board_order() -> None:
    entered = [
        ("new", NOW - timedelta(minutes=30)),
        ("new", NOW - timedelta(hours=2)),  # over the one-hour target
        ("waiting_customer", NOW - timedelta(days=9)),  # no target: never late
        ("archived", NOW),  # not a phase of this board: ignored
    ]
    figures = phase_figures(
        ("new", "triage", "waiting_customer"),
        entered,
        now=NOW,
        targets_s={"new": 3600.0, "triage": 7200.0},
    )
    assert figures == [
        PhaseFigures("new", 2, 7200.0, 3600.0, 1),
        PhaseFigures("triage", 0, None, 7200.0, 0),
        PhaseFigures("waiting_customer", 1, 9 * 86400.0, None, 0),
    ]


def test_a_clock_behind_the_entry_time_counts_zero_not_negative() -> None:
    (figure,) = phase_figures(("new",), [("new", NOW + timedelta(seconds=5))], now=NOW)
    assert figure.oldest_s == 0.0 and figure.late == 0
