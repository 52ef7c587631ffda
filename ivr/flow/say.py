"""Numbers, amounts and dates, said right in each language.

Asterisk speaks numbers with the channel's language (`SAY NUMBER` → `ast_say_number_full_it`
for `it`), which is right for Italian cardinals (ventuno, ventotto, mille, duemila). Two things
are not, so they are built here from our own prompts:

- Amounts: "1 euro" is "un euro" in Italian, and Asterisk would say "uno euro"; and a unit
  agrees with its count in both languages ("one euro"/"two euros", "un centesimo"/"centesimi").
  `amount_parts` gives the sequence: a number or one of our prompts, in order.
- Dates: `SAY DATE` has no Italian branch in main/say.c (`say_date` falls through to the
  English one: weekday, month, day, in English order); `say_date_with_format` does have
  `ast_say_date_with_format_it`. So a date is said with the `SayUnixTime` application and a
  format per language (`date_format`), which the channel's language selects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Final, Literal
from zoneinfo import ZoneInfo

from ivr.ports import Channel

# Our prompts for amounts (their texts per language: centralino/prompts.py).
SOUND_EURO_ONE = "centralino/euro-one"  # "one euro" / "un euro"
SOUND_EUROS = "centralino/euro"  # "euros" / "euro"
SOUND_AND = "centralino/and"  # "and" / "e"
SOUND_CENT_ONE = "centralino/cent-one"  # "one cent" / "un centesimo"
SOUND_CENTS = "centralino/cents"  # "cents" / "centesimi"
AMOUNT_PROMPTS: Final = (SOUND_EURO_ONE, SOUND_EUROS, SOUND_AND, SOUND_CENT_ONE, SOUND_CENTS)

# SayUnixTime formats (main/say.c): A weekday, B month name, d day of month, Y year. English
# says the month before the day ("Monday, December eighth"); Italian the day first, with
# "primo" for the 1st ("lunedì otto dicembre").
DATE_FORMATS: Final[Mapping[str, str]] = MappingProxyType({"en": "ABdY", "it": "AdBY"})

# Noon: a date said at midnight could fall on the previous day across a DST change.
_NOON = time(12, 0)


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of what is said: a number Asterisk says, or one of our prompts."""

    kind: Literal["number", "prompt"]
    value: int | str


def amount_parts(cents: int) -> tuple[Part, ...]:
    """An amount in euro cents, as numbers and prompts (the prompts carry the language)."""
    if cents < 0:
        raise ValueError(f"cannot say a negative amount ({cents} cents)")
    euros, rest = divmod(cents, 100)
    parts: list[Part] = []
    if euros == 1:
        parts.append(Part("prompt", SOUND_EURO_ONE))
    elif euros or not rest:
        parts += [Part("number", euros), Part("prompt", SOUND_EUROS)]
    if rest:
        if euros:
            parts.append(Part("prompt", SOUND_AND))
        if rest == 1:
            parts.append(Part("prompt", SOUND_CENT_ONE))
        else:
            parts += [Part("number", rest), Part("prompt", SOUND_CENTS)]
    return tuple(parts)


def date_format(language: str | None) -> str:
    """The SayUnixTime format for a channel language (`it_IT` is Italian); English otherwise."""
    base = (language or "en").split("_")[0].lower()
    return DATE_FORMATS.get(base, DATE_FORMATS["en"])


def date_arguments(day: date, timezone: str, language: str | None) -> tuple[str, str, str]:
    """SayUnixTime's arguments (unixtime, timezone, format) for a calendar date."""
    at = datetime.combine(day, _NOON, tzinfo=ZoneInfo(timezone))
    return str(int(at.timestamp())), timezone, date_format(language)


async def say_amount(channel: Channel, cents: int) -> None:
    """Say an amount on the channel in its language (`amount_parts`)."""
    for part in amount_parts(cents):
        if part.kind == "number":
            await channel.say_number(int(part.value))
        else:
            await channel.stream_file(str(part.value))


async def say_date(channel: Channel, day: date, *, timezone: str, language: str | None) -> None:
    """Say a calendar date with SayUnixTime (see the module's note on SAY DATE in Italian)."""
    await channel.exec("SayUnixTime", *date_arguments(day, timezone, language))
