"""The composition root with the managed configuration on (as `serve` and `centralino demo`
run): the admin API changes the running router, and a restart starts from the database."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import asyncpg

from centralino.demo.world import demo_world
from centralino.settings import DemoSettings, ServerSettings, Settings
from tests.helpers import eventually, web_login


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        server=ServerSettings(host="127.0.0.1", agi_port=0, audiosocket_port=0, http_port=0),
        demo=DemoSettings(data_dir=tmp_path, agents=3, failure_rate=0.0),
    )


async def test_given_a_running_app_when_an_admin_changes_a_skill_then_it_routes_by_it_and_keeps_it(
    pg_dsn: str, redis_url: str, pg_pool: asyncpg.Pool, redis_client: object, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    async with demo_world(
        settings, database_url=pg_dsn, redis_url=redis_url, managed_config=True
    ) as world:
        router = world.runtime.router
        before = router.agent_definitions()["agent101"]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            csrf = await web_login(http, world.base_url, "admin", world.logins.password)
            headers = {"X-CSRF-Token": csrf, "Origin": world.base_url}
            async with http.get(world.base_url + "/api/admin/agents/agent101") as r:
                assert r.status == 200
                row = await r.json()
            assert row["skills"] == dict(before.skills)
            skills = {**row["skills"], "vip": 5}
            async with http.put(
                world.base_url + "/api/admin/agents/agent101",
                json={**row, "skills": skills},
                headers=headers,
            ) as r:
                assert r.status == 200, await r.text()
            async with http.put(
                world.base_url + "/api/admin/not-ready-reasons/lunch",
                json={"code": "lunch", "label": "Pausa pranzo", "version": 1},
                headers=headers,
            ) as r:
                assert r.status == 200, await r.text()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await web_login(http, world.base_url, "agent101", world.logins.password)

            async def offered() -> None:
                async with http.get(world.base_url + "/api/not-ready-reasons") as r:
                    labels = await r.json()
                assert "Pausa pranzo" in labels and "Lunch" not in labels

            await eventually(offered)

        def follows() -> None:
            assert router.agent_definitions()["agent101"].skills.get("vip") == 5
            assert world.runtime.agents["agent101"].skills.get("vip") == 5

        await eventually(follows)
        assert router.agent_definitions()["agent101"].capacity == before.capacity

    # A restart: the settings still say what they said; the database wins.
    async with demo_world(
        settings, database_url=pg_dsn, redis_url=redis_url, managed_config=True
    ) as world:
        assert world.runtime.router.agent_definitions()["agent101"].skills.get("vip") == 5
