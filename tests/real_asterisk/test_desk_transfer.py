"""The desktop's transfer against the real Asterisk: AMI `BlindTransfer` of the agent's bridged
channel sends the caller to `support@centralino-transfer`; the caller comes back over FastAGI
and the next agent answers, as with a transfer keyed on the agent's phone."""

from __future__ import annotations

import asyncpg
import pytest

from centralino.desk_transfer import AmiDeskTransfer
from tests.helpers import eventually
from tests.real_asterisk.conftest import RealWorld
from tests.real_asterisk.driver import CallDriver
from tests.real_asterisk.test_calls import DID, SUPPORT_KEY, queue_events

pytestmark = pytest.mark.asterisk


async def test_given_the_agent_transfers_from_the_desktop_then_the_next_agent_answers(
    centralino: RealWorld, driver: CallDriver, pg_pool: asyncpg.Pool
) -> None:
    runtime = centralino.runtime
    for agent in centralino.desktops:
        if agent != "agent101":
            await runtime.router.agent_not_ready(agent, "meeting")
    await driver.phone("agent101", ring_s=1, talk_s=60)
    await driver.phone("agent102", ring_s=1, talk_s=2)
    call = await driver.place(did=DID, caller_id="+393331000045", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    await driver.wait_for(
        "DialEnd",
        lambda e: e.get("Uniqueid") == call.uniqueid and e.get("DialStatus") == "ANSWER",
        timeout=40,
    )
    await runtime.router.agent_ready("agent102")
    transfer = AmiDeskTransfer(
        ami=runtime.ami, agents=runtime.agents, queues=["support", "billing"]
    )

    await transfer.transfer("agent101", queue="support")

    event = await driver.wait_for(
        "BlindTransfer", lambda e: e.get("TransfereeUniqueid") == call.uniqueid, timeout=15
    )
    assert event.event.get("Result") == "Success"
    assert (event.event.get("Extension"), event.event.get("Context")) == (
        "support",
        "centralino-transfer",
    )

    async def both_legs() -> list[asyncpg.Record]:
        rows = await pg_pool.fetch(
            "SELECT outcome, agent_id, queue FROM interactions WHERE linkedid = $1 ORDER BY id",
            call.uniqueid,
        )
        assert len(rows) == 2, [dict(r) for r in rows]
        return rows

    legs = await eventually(both_legs, timeout=45, interval=0.2)
    assert [tuple(r) for r in legs] == [
        ("transferred", "agent101", "support"),
        ("answered", "agent102", "support"),
    ]
    assert "transfer" in await queue_events(pg_pool, call.uniqueid)
