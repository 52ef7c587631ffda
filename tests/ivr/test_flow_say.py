"""Amounts and dates said right in English and Italian (see ivr/flow/say.py for why SAY DATE
and a bare SAY NUMBER are not used for them)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ivr.flow.say import (
    SOUND_AND,
    SOUND_CENT_ONE,
    SOUND_CENTS,
    SOUND_EURO_ONE,
    SOUND_EUROS,
    Part,
    amount_parts,
    date_arguments,
    date_format,
)


def n(value: int) -> Part:
    return Part("number", value)


def p(sound: str) -> Part:
    return Part("prompt", sound)


@pytest.mark.parametrize(
    ("cents", "parts"),
    [
        (100, (p(SOUND_EURO_ONE),)),  # "un euro", never Asterisk's "uno euro"
        (200, (n(2), p(SOUND_EUROS))),
        (123456, (n(1234), p(SOUND_EUROS), p(SOUND_AND), n(56), p(SOUND_CENTS))),
        (101, (p(SOUND_EURO_ONE), p(SOUND_AND), p(SOUND_CENT_ONE))),
        (1, (p(SOUND_CENT_ONE),)),
        (50, (n(50), p(SOUND_CENTS))),
        (0, (n(0), p(SOUND_EUROS))),
        (2100, (n(21), p(SOUND_EUROS))),  # Asterisk's Italian says "ventuno" (elided) itself
    ],
)
def test_amounts_agree_with_their_count(cents: int, parts: tuple[Part, ...]) -> None:
    assert amount_parts(cents) == parts


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        amount_parts(-1)


def test_dates_use_each_languages_order() -> None:
    # English: weekday, month, day (ordinal), year; Italian: weekday, day, month, year.
    assert date_format("en") == "ABdY"
    assert date_format("it") == "AdBY"
    assert date_format("it_IT") == "AdBY"
    assert date_format(None) == "ABdY"
    assert date_format("xx") == "ABdY"


def test_a_date_is_said_at_local_noon_so_dst_never_moves_it_to_another_day() -> None:
    unixtime, zone, fmt = date_arguments(date(2026, 3, 29), "Europe/Rome", "it")  # DST day
    said = datetime.fromtimestamp(int(unixtime), UTC)
    assert said == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)  # 12:00 CEST
    assert (zone, fmt) == ("Europe/Rome", "AdBY")
