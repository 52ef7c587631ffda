"""The caller's language and the conversation's times, as the real Asterisk reports them."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import pytest

from tests.helpers import eventually
from tests.real_asterisk.conftest import RealWorld
from tests.real_asterisk.driver import CallDriver
from tests.real_asterisk.test_calls import DID, SUPPORT_KEY, recorded

pytestmark = pytest.mark.asterisk


@pytest.fixture
def agent_languages() -> Mapping[str, frozenset[str]]:
    """Nobody here speaks Italian."""
    return {f"agent10{n}": frozenset({"en"}) for n in range(1, 6)}


async def test_given_an_italian_caller_and_only_english_agents_then_no_agent_takes_the_call(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    """The channel's language reaches FastAGI as `agi_language: it` (the dialplan sends no
    `?lang=`): it is the call's language, a requirement no English-only agent meets. Before,
    the app read only `?lang=` and an English-only agent took the Italian caller."""
    for agent in centralino.desktops:
        await driver.phone(agent, ring_s=1, talk_s=2)
    call = await driver.place(did=DID, caller_id="+393331000077", language="it", patience_s=20)
    await driver.press_when_asked(call, SUPPORT_KEY)

    row = await recorded(pg_pool, call, timeout=45)

    assert row["agent_id"] is None, dict(row)
    assert row["outcome"] == "abandoned"
    assert not driver.where(
        "DialBegin", lambda e: e.get("Uniqueid") == call.uniqueid
    )  # no English-only phone ever rang for them


async def test_given_the_ami_link_is_down_during_a_call_then_no_talk_time_is_made_up(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    """Without AMI the answer is learnt only when Dial returns, the conversation over: its
    length is unknown (Dial's own variables count the caller's channel). Before, the record
    said 0.005 s of talk for 3.5 s of conversation, and the wait swallowed ring and talk."""
    ami = centralino.runtime.ami
    assert ami is not None
    for agent in centralino.desktops:
        await driver.phone(agent, ring_s=1, talk_s=3)
    await centralino.proxy.cut()

    def down() -> None:
        assert not ami.connected

    await eventually(down, timeout=10)
    call = await driver.place(did=DID, caller_id="+393331000066", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)

    row = await recorded(pg_pool, call, timeout=60)

    assert row["outcome"] == "answered"
    assert row["agent_id"] is not None
    assert row["talk_s"] is None, dict(row)
    # Waited until the agent's phone rang, not through the ring and the conversation.
    (created,) = driver.events("Newchannel", Uniqueid=call.uniqueid)
    rang = driver.where("DialBegin", lambda e: e.get("Uniqueid") == call.uniqueid)[-1]
    assert row["wait_s"] is not None
    assert row["wait_s"] <= rang.timestamp - created.timestamp + 0.5, dict(row)
