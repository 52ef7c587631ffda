"""The demo's messaging: secrets set and shown, demo providers' messages on the timeline of the
running demo (the composition root's own webhooks and timeline API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from centralino.demo.world import (
    DEMO_STRANGER,
    DemoWorld,
    _channels_banner,
    demo_world,
    send_demo_messages,
)
from centralino.settings import DemoSettings, ServerSettings, Settings

API_TOKEN = "demo-test-token"


@pytest.fixture
async def world(
    pg_dsn: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    redis_client: object,
    tmp_path: Path,
    *,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[DemoWorld]:
    monkeypatch.setenv("CENTRALINO_API_TOKEN", API_TOKEN)
    settings = Settings(
        server=ServerSettings(host="127.0.0.1", agi_port=0, audiosocket_port=0, http_port=0),
        demo=DemoSettings(data_dir=tmp_path, agents=2, calls_per_minute=0, failure_rate=0.0),
    )
    async with demo_world(settings, database_url=pg_dsn, redis_url=redis_url) as w:
        yield w


async def timeline(world: DemoWorld, phone: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{world.base_url}/api/timeline",
            params={"phone": phone},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_the_demo_sets_and_prints_the_channel_secrets(world: DemoWorld) -> None:
    settings = world.runtime.settings
    assert settings.whatsapp.app_secret is not None and settings.twilio.auth_token is not None
    assert settings.server.public_url == world.base_url
    banner = _channels_banner(world)
    assert settings.whatsapp.app_secret.get_secret_value() in banner
    assert settings.twilio.auth_token.get_secret_value() in banner
    assert f"CENTRALINO_SERVER_PUBLIC_URL={world.base_url}" in banner


async def test_demo_messages_land_on_the_customers_timelines(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    shown = await send_demo_messages(world)
    assert "curl" in shown and API_TOKEN in shown
    people = [p for p in world.dataset.people if p.phone != world.dataset.shared_office_phone]
    status, data = await timeline(world, people[0].phone)
    assert status == 200
    items = data["items"]
    assert isinstance(items, list)
    assert [(i["channel"], i["direction"]) for i in items] == [("whatsapp", "inbound")]
    assert str(items[0]["provider_message_id"]).startswith("wamid.")
    status, data = await timeline(world, people[3].phone)
    assert status == 200
    sms_items = data["items"]
    assert isinstance(sms_items, list)
    assert [i["channel"] for i in sms_items] == ["sms"]
    status, data = await timeline(world, DEMO_STRANGER)
    assert status == 200 and data["customer"]["display_name"] == DEMO_STRANGER  # type: ignore[index]
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 6
