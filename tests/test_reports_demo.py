"""The demo's reports: calls simulated end to end (FastAGI callers, AMI, agents' phones) show
up in `/api/reports` as the demo supervisor sees them, through the composition root's wiring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import pytest

from centralino.demo.world import DemoWorld, demo_world
from centralino.simulator.callcenter import Caller
from tests.helpers import web_login
from tests.test_call_path import FAST_FLOW, _settings, known_caller, reliable_phones


@pytest.fixture
async def world(
    pg_dsn: str, redis_url: str, pg_pool: asyncpg.Pool, redis_client: object, tmp_path: Path
) -> AsyncIterator[DemoWorld]:
    async with demo_world(
        _settings(tmp_path),
        database_url=pg_dsn,
        redis_url=redis_url,
        time_scale=0.01,
        flow=FAST_FLOW,
    ) as w:
        reliable_phones(w)
        yield w


async def test_given_demo_calls_then_the_supervisor_reports_show_them(world: DemoWorld) -> None:
    answered = await asyncio.wait_for(world.simulator.call(known_caller(world)), 30)
    assert answered.answered
    for agent in world.desktops:
        await world.runtime.router.agent_not_ready(agent, "meeting")
    abandoned = await asyncio.wait_for(
        world.simulator.call(Caller(number="+390299887766", menu_keys="3", patience_s=10.0)), 30
    )
    assert abandoned.abandoned

    now = time.time()
    period = {
        "from": datetime.fromtimestamp(now - 3600, UTC).isoformat(),
        "to": datetime.fromtimestamp(now + 3600, UTC).isoformat(),
        "interval": "1h",
    }
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await web_login(http, world.base_url, "supervisor", world.logins.password)
        async with http.get(f"{world.base_url}/api/reports?group=queue&{urlencode(period)}") as r:
            assert r.status == 200, await r.text()
            queues = {t["key"]: t for t in (await r.json())["totals"]}
        async with http.get(f"{world.base_url}/api/reports?group=agent&{urlencode(period)}") as r:
            agents = {t["key"]: t for t in (await r.json())["totals"]}
        async with http.get(f"{world.base_url}/reports") as r:
            assert r.status == 200
    assert sum(q["answered"] for q in queues.values()) == 1
    # Time is compressed 100x: the caller's 10 s of patience were 0.1 s, a short abandon.
    assert sum(q["short_abandoned"] for q in queues.values()) == 1
    assert sum(q["offered"] for q in queues.values()) == 1
    assert answered.agent is not None
    assert agents[answered.agent]["answered"] == 1
    assert agents[answered.agent]["aht_s"] > 0
