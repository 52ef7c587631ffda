"""The post-call survey on the real Asterisk: the agent hangs up, the caller stays on the line
(Dial's `g`), rates the call by DTMF, and the score lands on the interaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import pytest

from tests.real_asterisk.conftest import RealWorld
from tests.real_asterisk.driver import CallDriver
from tests.real_asterisk.test_calls import DID, SUPPORT_KEY, known_caller, recorded

pytestmark = pytest.mark.asterisk


@pytest.fixture
def flows() -> Mapping[str, dict[str, Any]]:
    """The default flow's menu and queue, with a survey after the conversation."""
    return {
        "default": {
            "start": "menu",
            "steps": {
                "menu": {
                    "type": "menu",
                    "prompt": "centralino/menu",
                    "intent_keys": True,
                    "next": "queue",
                },
                "queue": {"type": "queue", "survey": "survey"},
                "survey": {
                    "type": "survey",
                    "prompt": "centralino/survey",
                    "thanks": "centralino/survey-thanks",
                },
            },
        }
    }


@pytest.fixture
def sounds_checked() -> bool:
    return True  # every prompt of the flow exists in both languages, or the start fails


async def test_given_a_survey_flow_when_the_agent_hangs_up_then_the_caller_rates_the_call(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    number, name = known_caller(centralino)
    for agent in centralino.desktops:
        await driver.phone(agent, ring_s=1, talk_s=2)
    call = await driver.place(did=DID, caller_id=number, caller_name=name, patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)

    # After the agent's hangup the caller is still in our session, asked for a score.
    await driver.wait_for(
        "AGIExecStart",
        lambda e: (
            e.get("Uniqueid") == call.uniqueid and "centralino/survey" in (e.get("Command") or "")
        ),
        timeout=45,
    )
    response = await driver.ami.action("PlayDTMF", Channel=call.caller_channel, Digit="4")
    response.raise_for_error()

    row = await recorded(pg_pool, call, timeout=30)
    assert row["outcome"] == "answered", dict(row)
    assert row["agent_id"] in centralino.desktops
    assert row["survey_score"] == 4
    # Dial ran with `g`: the caller's channel went on after the agent's hangup.
    dials = driver.where(
        "AGIExecStart",
        lambda e: (
            e.get("Uniqueid") == call.uniqueid and (e.get("Command") or "").startswith("EXEC Dial")
        ),
    )
    assert dials and (dials[0].event.get("Command") or "").endswith(",tg"), dials
