"""End to end with the simulated Asterisk: the number dialled picks the flow, whose language
is set on the channel, and the call is queued where the flow's queue step says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from centralino.demo.world import DemoWorld, demo_world
from centralino.settings import DemoSettings, ServerSettings, Settings
from centralino.simulator.callcenter import Caller
from tests.helpers import eventually
from tests.test_call_path import FAST_FLOW, known_caller, reliable_phones

ENGLISH_LINE = "0200000100"


@pytest.fixture
async def world(
    pg_dsn: str, redis_url: str, pg_pool: asyncpg.Pool, redis_client: object, tmp_path: Path
) -> AsyncIterator[DemoWorld]:
    settings = Settings(
        server=ServerSettings(host="127.0.0.1", agi_port=0, audiosocket_port=0, http_port=0),
        demo=DemoSettings(
            data_dir=tmp_path, agents=3, erp_latency_ms=30, crm_latency_ms=60, failure_rate=0.0
        ),
        flows={
            "english_line": {
                "numbers": [ENGLISH_LINE],
                "language": "en",
                "start": "menu",
                "steps": {
                    "menu": {
                        "type": "menu",
                        "prompt": "centralino/menu",
                        "options": {"4": {"intent": "sales", "next": "queue"}},
                        "next": "queue",
                    },
                    "queue": {"type": "queue", "queue": "sales", "priority": 3},
                },
            }
        },
    )
    async with demo_world(
        settings, database_url=pg_dsn, redis_url=redis_url, time_scale=0.01, flow=FAST_FLOW
    ) as w:
        reliable_phones(w)
        yield w


async def test_given_the_english_line_is_dialled_then_its_flow_runs_in_english(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    base = known_caller(world, key="4")
    caller = Caller(
        number=base.number, name=base.name, menu_keys="4", patience_s=600, dnid=ENGLISH_LINE
    )

    result = await asyncio.wait_for(world.simulator.call(caller), 30)

    assert result.answered
    assert any("CHANNEL(language)" in c and "en" in c for c in result.commands), result.commands
    assert not any("centralino/welcome" in c for c in result.commands)  # not the default flow

    async def row() -> asyncpg.Record:
        found = await pg_pool.fetchrow(
            "SELECT queue, intent, outcome FROM interactions WHERE linkedid = $1",
            result.uniqueid,
        )
        assert found is not None
        return found

    recorded = await eventually(row, timeout=5)
    assert (recorded["queue"], recorded["intent"], recorded["outcome"]) == (
        "sales",
        "sales",
        "answered",
    )


async def test_given_another_number_then_the_default_flow_welcomes_the_caller(
    world: DemoWorld,
) -> None:
    result = await asyncio.wait_for(world.simulator.call(known_caller(world, key="4")), 30)

    assert result.answered
    assert any("centralino/welcome" in c for c in result.commands)
    assert not any("CHANNEL(language)" in c for c in result.commands)
