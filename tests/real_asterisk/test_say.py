"""Amounts and dates said by the real Asterisk with Debian's recorded packs, in Italian and in
English: the files Asterisk plays, in the order it plays them, are what a caller hears."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.helpers import eventually
from tests.real_asterisk.conftest import RealWorld
from tests.real_asterisk.driver import CallDriver, PlacedCall
from tests.real_asterisk.harness import AsteriskProcess
from tests.real_asterisk.test_calls import DID

pytestmark = pytest.mark.asterisk

# The number dialled picks the line, and the line its language (not the caller's channel).
LINES = {"it": DID, "en": "+390200000002"}
# file.c and res_agi.c both log what they play, res_agi with its options in between.
_PLAYING = re.compile(r"Playing '([^']+?)\.\w+' .*?\(language '(\w+)'\)")


@pytest.fixture
def flows() -> Mapping[str, dict[str, Any]]:
    """On the test DID: a language, then an amount and a date typed on the keypad, said back."""

    def line(language: str) -> dict[str, Any]:
        return {
            "numbers": [LINES[language]],
            "language": language,
            "start": "amount",
            "steps": {
                "amount": {
                    "type": "ask",
                    "prompt": "beep",
                    "var": "cents",
                    "max_digits": 4,
                    "timeout_ms": 3000,
                    "next": "say_amount",
                },
                "say_amount": {
                    "type": "say",
                    "kind": "amount",
                    "value": "vars.cents",
                    "next": "day",
                },
                "day": {
                    "type": "ask",
                    "prompt": "beep",
                    "var": "day",
                    "max_digits": 8,
                    "timeout_ms": 3000,
                    "next": "say_day",
                },
                "say_day": {"type": "say", "kind": "date", "value": "vars.day", "next": "bye"},
                "bye": {"type": "hangup"},
            },
        }

    return {"say_it": line("it"), "say_en": line("en")}


@pytest.fixture
def sounds_checked() -> bool:
    return True  # the amounts' prompts and the digits exist in both languages, or no start


async def _type(driver: CallDriver, call: PlacedCall, digits: str, after: int) -> None:
    """Once the `after`-th GET DATA of the call runs, the caller types `digits`."""

    def asked() -> None:
        runs = driver.where(
            "AGIExecStart",
            lambda e: (
                e.get("Uniqueid") == call.uniqueid
                and (e.get("Command") or "").startswith("GET DATA")
            ),
        )
        assert len(runs) >= after

    await eventually(asked, timeout=20)
    for digit in digits:
        response = await driver.ami.action("PlayDTMF", Channel=call.caller_channel, Digit=digit)
        response.raise_for_error()


@pytest.mark.parametrize("language", ["it", "en"])
async def test_amounts_and_dates_are_said_in_the_callers_language(
    centralino: RealWorld, driver: CallDriver, asterisk: AsteriskProcess, language: str
) -> None:
    log_from = asterisk.log_size()
    other = "en" if language == "it" else "it"
    call = await driver.place(
        did=LINES[language], caller_id="+393331000099", language=other, patience_s=30
    )
    await _type(driver, call, "2101", after=1)  # 21 euro and 1 cent
    await _type(driver, call, "20261208", after=2)  # Tuesday 8 December 2026

    # The flow hangs up once the date is said.
    await eventually(lambda: driver.hung_up(call.uniqueid), timeout=30)
    lines = [ln for ln in asterisk.log_lines_since(log_from) if call.call_id in ln]
    files = [(m[1], m[2]) for ln in lines for m in [_PLAYING.search(ln)] if m]
    names = [f for f, _ in files if f != "beep"]
    assert {lang for _, lang in files} == {language}
    amount = names[: names.index("centralino/cent-one") + 1]
    date_part = names[len(amount) :]
    assert date_part[0] == "digits/day-2"  # Tuesday
    if language == "it":
        # "ventuno euro e un centesimo": Asterisk's Italian 21 is one recorded word; then
        # "martedì otto dicembre": the day before the month (SAY DATE would put it after).
        assert amount == ["digits/21", "centralino/euro", "centralino/and", "centralino/cent-one"]
        assert date_part.index("digits/8") < date_part.index("digits/mon-11")
    else:
        # "twenty one euros and one cent"; "Tuesday, December eighth".
        assert amount == [
            "digits/20",
            "digits/1",
            "centralino/euro",
            "centralino/and",
            "centralino/cent-one",
        ]
        assert date_part.index("digits/mon-11") < date_part.index("digits/h-8")
