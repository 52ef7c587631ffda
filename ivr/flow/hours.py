"""Business hours and holidays, as a pure function of an aware instant.

Opening times are wall-clock times in the flow's timezone (`Europe/Rome`), so a DST change
moves them with the clocks: 09:00 is 09:00 local in winter and in summer. An interval whose
end is not after its start runs past midnight (`22:00-02:00` opens on its day at 22:00 and
closes at 02:00 the next day); `24:00` is the end of the day. A holiday closes the whole local
day, including the after-midnight tail of the previous day's overnight interval: on a holiday
nobody answers. Holidays are `YYYY-MM-DD` (once) or `MM-DD` (every year).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_ONCE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEARLY = re.compile(r"^(\d{2})-(\d{2})$")
_END_OF_DAY = time(23, 59, 59, 999999)


@dataclass(frozen=True, slots=True)
class Interval:
    start: time
    end: time  # not after `start`: the interval ends the next day at `end`
    to_midnight: bool = False  # "24:00": open to the end of the day

    @property
    def overnight(self) -> bool:
        return not self.to_midnight and self.end <= self.start


@dataclass(frozen=True, slots=True)
class BusinessHours:
    timezone: str
    weekly: Mapping[int, tuple[Interval, ...]]  # weekday (0 = Monday) -> intervals
    holidays_once: frozenset[date]
    holidays_yearly: frozenset[tuple[int, int]]  # (month, day)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays_once or (day.month, day.day) in self.holidays_yearly


def is_open(hours: BusinessHours, at: datetime) -> bool:
    """Whether the flow is open at the aware instant `at`."""
    if at.tzinfo is None:
        raise ValueError("is_open needs an aware datetime (a naive one has no place in time)")
    local = at.astimezone(hours.zone())
    today, now = local.date(), local.time().replace(tzinfo=None)
    if hours.is_holiday(today):
        return False
    for interval in hours.weekly.get(today.weekday(), ()):
        if interval.to_midnight and interval.start <= now:
            return True
        if interval.overnight and interval.start <= now:
            return True
        if not interval.overnight and interval.start <= now < interval.end:
            return True
    yesterday = today - timedelta(days=1)
    return any(
        interval.overnight and now < interval.end
        for interval in hours.weekly.get(yesterday.weekday(), ())
    )


def parse_hours(
    timezone: str, weekly: Mapping[str, Iterable[str]], holidays: Iterable[str]
) -> tuple[BusinessHours | None, list[str]]:
    """Build `BusinessHours` from the document's strings; the problems say which value is bad."""
    problems: list[str] = []
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone {timezone!r} is not an IANA zone (e.g. 'Europe/Rome')")
    table: dict[int, tuple[Interval, ...]] = {}
    for day, spans in weekly.items():
        if day not in DAYS:
            problems.append(f"weekly: {day!r} is not a day ({', '.join(DAYS)})")
            continue
        parsed: list[Interval] = []
        for span in spans:
            interval = _interval(span)
            if interval is None:
                problems.append(f"weekly.{day}: {span!r} is not HH:MM-HH:MM")
            else:
                parsed.append(interval)
        table[DAYS.index(day)] = tuple(parsed)
    once: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    for holiday in holidays:
        try:
            if _ONCE.match(holiday):
                once.add(date.fromisoformat(holiday))
                continue
            match = _YEARLY.match(holiday)
            if match is None:
                raise ValueError(holiday)
            month, day_of_month = int(match[1]), int(match[2])
            date(2024, month, day_of_month)  # a leap year: 02-29 is a valid yearly holiday
            yearly.add((month, day_of_month))
        except ValueError:
            problems.append(f"holidays: {holiday!r} is not YYYY-MM-DD or MM-DD")
    if problems:
        return None, problems
    return (
        BusinessHours(
            timezone=timezone,
            weekly=table,
            holidays_once=frozenset(once),
            holidays_yearly=frozenset(yearly),
        ),
        [],
    )


def _interval(span: str) -> Interval | None:
    match = _INTERVAL.match(span.strip())
    if match is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        return None
    if h2 == 24:
        return Interval(time(h1, m1), _END_OF_DAY, to_midnight=True)
    return Interval(time(h1, m1), time(h2, m2))
