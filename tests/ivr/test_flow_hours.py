"""Business hours and holidays: wall-clock times in the flow's zone, across DST and midnight."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.flow.hours import BusinessHours, is_open, parse_hours

ROME = ZoneInfo("Europe/Rome")


def hours(weekly: dict[str, list[str]], holidays: list[str] | None = None) -> BusinessHours:
    parsed, problems = parse_hours("Europe/Rome", weekly, holidays or [])
    assert not problems and parsed is not None
    return parsed


OFFICE = hours(
    {d: ["09:00-13:00", "14:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    ["12-25", "2026-04-06"],
)


def rome(*fields: int) -> datetime:
    """Rome's wall time from (year, month, day, hour, minute[, second])."""
    year, month, day, hour, minute, *rest = fields
    return datetime(year, month, day, hour, minute, rest[0] if rest else 0, tzinfo=ROME)


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (rome(2026, 12, 7, 8, 59), False),  # Monday, a minute early
        (rome(2026, 12, 7, 9, 0), True),  # opening minute
        (rome(2026, 12, 7, 12, 59), True),
        (rome(2026, 12, 7, 13, 0), False),  # lunch: the end is exclusive
        (rome(2026, 12, 7, 17, 59, 59), True),
        (rome(2026, 12, 7, 18, 0), False),
        (rome(2026, 12, 12, 10, 0), False),  # Saturday: not listed, closed
        (rome(2026, 12, 25, 10, 0), False),  # yearly holiday on a Friday
        (rome(2027, 12, 27, 10, 0), True),  # a Monday after the holiday
        (rome(2026, 4, 6, 10, 0), False),  # one-off holiday (Easter Monday 2026)
        (rome(2027, 4, 6, 10, 0), True),  # ... not the next year (a Tuesday)
    ],
)
def test_given_office_hours_then_open_only_inside_them(at: datetime, open_: bool) -> None:
    assert is_open(OFFICE, at) is open_


def test_given_dst_changes_then_local_opening_time_moves_with_the_clocks() -> None:
    # 09:00 in Rome is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST).
    winter_open = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)  # Friday before the change
    summer_open = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Monday after
    assert is_open(OFFICE, winter_open)
    assert not is_open(OFFICE, datetime(2026, 3, 27, 7, 59, tzinfo=UTC))
    assert is_open(OFFICE, summer_open)
    assert not is_open(OFFICE, datetime(2026, 3, 30, 6, 59, tzinfo=UTC))
    # Autumn: back to CET; 17:59 local on the Monday after is 16:59 UTC.
    assert is_open(OFFICE, datetime(2026, 10, 26, 16, 59, tzinfo=UTC))
    assert not is_open(OFFICE, datetime(2026, 10, 26, 17, 0, tzinfo=UTC))


def test_given_overnight_interval_then_it_runs_past_midnight_into_the_next_day() -> None:
    night = hours({"fri": ["22:00-02:00"], "sat": ["10:00-24:00"]}, ["12-26"])
    assert is_open(night, rome(2026, 12, 4, 23, 30))  # Friday night
    assert is_open(night, rome(2026, 12, 5, 1, 59))  # Saturday small hours: Friday's tail
    assert not is_open(night, rome(2026, 12, 5, 2, 0))
    assert is_open(night, rome(2026, 12, 5, 23, 59, 59))  # 24:00 closes at midnight
    assert not is_open(night, rome(2026, 12, 6, 0, 0))
    # A holiday closes the whole day, Friday's after-midnight tail too (Sat 26 Dec 2026).
    assert not is_open(night, rome(2026, 12, 26, 1, 0))


def test_given_a_naive_datetime_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_open(OFFICE, datetime(2026, 12, 7, 10, 0))


@pytest.mark.parametrize(
    ("weekly", "holidays", "problem"),
    [
        ({"monday": ["09:00-13:00"]}, [], "'monday' is not a day"),
        ({"mon": ["9-13"]}, [], "'9-13' is not HH:MM-HH:MM"),
        ({"mon": ["25:00-26:00"]}, [], "is not HH:MM-HH:MM"),
        ({}, ["2026-02-30"], "'2026-02-30' is not YYYY-MM-DD or MM-DD"),
        ({}, ["13-01"], "'13-01' is not"),
    ],
)
def test_given_bad_hours_then_the_problem_names_the_value(
    weekly: dict[str, list[str]], holidays: list[str], problem: str
) -> None:
    parsed, problems = parse_hours("Europe/Rome", weekly, holidays)
    assert parsed is None
    assert any(problem in p for p in problems), problems


def test_given_unknown_timezone_then_it_is_a_problem() -> None:
    parsed, problems = parse_hours("Europe/Atlantis", {}, [])
    assert parsed is None and "not an IANA zone" in problems[0]
