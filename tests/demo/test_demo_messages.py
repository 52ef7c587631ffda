"""The demo's messaging: secrets set and shown, demo providers' messages on the timeline of the
running demo (the composition root's own webhooks and timeline API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Locator

from centralino.demo.world import (
    DEMO_STRANGER,
    DemoWorld,
    _channels_banner,
    demo_world,
    send_demo_messages,
)
from centralino.settings import DemoSettings, ServerSettings, Settings
from centralino.web.auth import PROBES, ROUTE_RULES
from tests.helpers import eventually
from tests.web.browser import launch_browser, open_page, until


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(
    pg_dsn: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    redis_client: object,
    tmp_path: Path,
) -> AsyncIterator[DemoWorld]:
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
            headers=bearer(world.logins.supervisor_token),
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
    assert f"127.0.0.1:{world.smtp_port}" in banner


async def test_demo_messages_land_on_the_customers_timelines(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    shown = await send_demo_messages(world)
    assert "curl" in shown and world.logins.supervisor_token in shown
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
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{world.base_url}/api/timeline",
            params={"email": people[5].email},
            headers=bearer(world.logins.supervisor_token),
        ) as resp,
    ):
        mailed = await resp.json()
    assert [i["channel"] for i in mailed["items"]] == ["email"]
    assert mailed["items"][0]["text"].startswith("Richiesta di rimborso")
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 7


async def test_a_reply_goes_out_through_the_demo_providers_and_reports_back(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    people = [p for p in world.dataset.people if p.phone != world.dataset.shared_office_phone]
    await world.messaging.sms(people[1].phone, "Il rimborso?")

    async def assigned() -> None:  # a supervisor replies on a conversation of their teams
        state = await pg_pool.fetchval(
            "SELECT state FROM conversations WHERE contact = $1", people[1].phone
        )
        assert state == "assigned"

    await eventually(assigned, timeout=10)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{world.base_url}/api/messages",
            json={
                "channel": "sms",
                "to": people[1].phone,
                "text": "Il rimborso è partito.",
                "idempotency_key": "demo-reply-1",
            },
            headers=bearer(world.logins.supervisor_token),
        ) as resp,
    ):
        assert resp.status == 200
        sid = (await resp.json())["provider_message_id"]
    assert world.send_apis.received == [("sms", people[1].phone, "Il rimborso è partito.")]

    async def delivered() -> None:
        status, data = await timeline(world, people[1].phone)
        assert status == 200
        items = data["items"]
        assert isinstance(items, list)
        assert [
            (i["provider_message_id"], i["delivery_state"])
            for i in items
            if i["direction"] == "outbound"
        ] == [(sid, "delivered")]

    await eventually(delivered)


async def test_demo_messages_are_routed_to_agents_who_close_them(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    await send_demo_messages(world)

    async def routed() -> list[asyncpg.Record]:
        rows = await pg_pool.fetch(
            "SELECT id, channel, state, agent_id FROM conversations ORDER BY id"
        )
        # Seven contacts wrote (WhatsApp, SMS, email): a conversation and an agent each.
        assert len(rows) == 7 and all(r["state"] == "assigned" for r in rows)
        return rows

    rows = await eventually(routed, timeout=10)
    first = rows[0]
    url = f"{world.base_url}/api/conversations/{first['id']}/close"
    others = [a for a in world.logins.desktop_tokens if a != first["agent_id"]]
    async with aiohttp.ClientSession() as session:
        # Another agent may neither close it as its holder nor as themselves.
        other = bearer(world.logins.desktop_tokens[others[0]])
        for agent in (first["agent_id"], others[0]):
            async with session.post(url, json={"agent_id": agent}, headers=other) as resp:
                assert resp.status in (403, 404)
        async with session.post(url, json={"agent_id": first["agent_id"]}) as resp:
            assert resp.status == 401  # anonymous
        own = bearer(world.logins.desktop_tokens[first["agent_id"]])
        async with session.post(url, json={"agent_id": first["agent_id"]}, headers=own) as resp:
            assert resp.status == 200
    state = await pg_pool.fetchval("SELECT state FROM conversations WHERE id = $1", first["id"])
    assert state == "closed"


async def test_an_agent_sees_their_conversation_replies_and_follows_delivery(
    world: DemoWorld,
) -> None:
    headers = bearer(world.logins.supervisor_token)  # the supervisor sees every demo agent
    people = [p for p in world.dataset.people if p.phone != world.dataset.shared_office_phone]
    await world.messaging.sms(people[0].phone, "Quando arriva il rimborso?")

    async with aiohttp.ClientSession() as session:

        async def assigned() -> tuple[str, dict[str, Any]]:
            for agent in world.runtime.agents:
                async with session.get(
                    f"{world.base_url}/api/conversations",
                    params={"agent_id": agent},
                    headers=headers,
                ) as resp:
                    assert resp.status == 200
                    mine = await resp.json()
                if mine:
                    return agent, mine[0]
            raise AssertionError("no agent has the conversation yet")

        agent, conversation = await eventually(assigned, timeout=10)
        assert conversation["channel"] == "sms"
        assert str(conversation["customer"]).startswith(people[0].name)
        assert [m["text"] for m in conversation["messages"]] == ["Quando arriva il rimborso?"]
        tokens = world.logins.desktop_tokens
        mine_only = bearer(tokens[agent])
        (other,) = [a for a in tokens if a != agent]
        async with session.get(
            f"{world.base_url}/api/conversations",
            params={"agent_id": other},
            headers=mine_only,
        ) as resp:
            assert resp.status == 403  # another agent's conversations
        headers = mine_only  # the agent replies to their own conversation's contact
        async with session.post(
            f"{world.base_url}/api/messages",
            json={"channel": "sms", "to": conversation["contact"], "text": "Domani.",
                  "idempotency_key": "k-1", "customer_id": conversation["customer_id"]},
            headers=headers,
        ) as resp:  # fmt: skip
            assert resp.status == 200

        async def delivered() -> None:
            async with session.get(
                f"{world.base_url}/api/conversations", params={"agent_id": agent}, headers=headers
            ) as resp:
                (mine,) = await resp.json()
            assert [(m["direction"], m["text"], m["delivery_state"]) for m in mine["messages"]] == [
                ("inbound", "Quando arriva il rimborso?", None),
                ("outbound", "Domani.", "delivered"),
            ]

        await eventually(delivered, timeout=10)


async def test_the_desktop_panel_shows_the_conversation_and_sends_the_reply(
    world: DemoWorld,
) -> None:
    people = [p for p in world.dataset.people if p.phone != world.dataset.shared_office_phone]
    await world.messaging.whatsapp(people[2].phone.removeprefix("+"), "<b>Ciao</b>", name="Giulia")

    async def assigned_agent() -> str:
        agent = await world.runtime.pool.fetchval(
            "SELECT agent_id FROM conversations WHERE state = 'assigned'"
        )
        assert agent
        return str(agent)

    agent = await eventually(assigned_agent, timeout=10)
    async with launch_browser() as browser, open_page(browser) as watched:
        page = watched.page
        await page.goto(f"{world.base_url}/desktop/{agent}")  # to the login form, and back
        await page.get_by_label("Username").fill(agent)
        await page.get_by_label("Password").fill(world.logins.password)
        await page.get_by_role("button", name="Log in").click()
        conversation = page.locator("#conversations .conversation")
        await until(lambda: _visible_text(conversation, "<b>Ciao</b>"))
        await conversation.locator("input").fill("Arriva domani")
        await conversation.get_by_role("button", name="Send").click()
        await until(lambda: _visible_text(conversation, "Arriva domani · read"), timeout=10)
        assert watched.errors == []
    assert world.send_apis.received == [
        ("whatsapp", people[2].phone.removeprefix("+"), "Arriva domani")
    ]


async def _visible_text(locator: Locator, expected: str) -> None:
    assert expected in await locator.inner_text()


async def test_the_demos_agents_close_their_conversations_after_a_while(
    pg_dsn: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    redis_client: object,
    tmp_path: Path,
) -> None:
    settings = Settings(
        server=ServerSettings(host="127.0.0.1", agi_port=0, audiosocket_port=0, http_port=0),
        demo=DemoSettings(data_dir=tmp_path, agents=2, calls_per_minute=0, failure_rate=0.0),
    )
    async with demo_world(
        settings, database_url=pg_dsn, redis_url=redis_url, conversation_s=0.5
    ) as world:
        await send_demo_messages(world)

        async def all_closed() -> None:
            states = await pg_pool.fetch("SELECT state FROM conversations")
            assert len(states) == 7 and {r["state"] for r in states} == {"closed"}

        await eventually(all_closed, timeout=20)


# Every route of the written channels that needs an account: (method, path as requested).
PRIVATE_ROUTES = [
    ("GET", "/api/timeline?phone=%2B393331234567"),
    ("POST", "/api/messages"),
    ("GET", "/api/conversations?agent_id=agent101"),
    ("POST", "/api/conversations/1/close"),
    ("GET", "/api/board?team=sales"),
    ("POST", "/api/tickets"),
    ("POST", "/api/tickets/1/move"),
    ("GET", "/api/tickets/1/history"),
    ("GET", "/board/sales"),
]


async def test_anonymous_requests_to_the_messaging_routes_are_refused(world: DemoWorld) -> None:
    app = world.runtime.web_runner.app
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert served <= set(ROUTE_RULES) | PROBES  # every route has a rule
    async with aiohttp.ClientSession() as session:
        for method, path in PRIVATE_ROUTES:
            async with session.request(
                method, world.base_url + path, json={}, allow_redirects=False
            ) as resp:
                if path.startswith("/api/"):
                    assert resp.status == 401, (method, path)
                else:  # a page: to the login form
                    assert resp.status == 303, (method, path)
                    assert resp.headers["Location"].startswith("/login?next=")


async def test_the_api_description_matches_the_running_apps_json_routes(world: DemoWorld) -> None:
    app = world.runtime.web_runner.app
    served = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/")
        and r.method not in ("HEAD", "*")
    }
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{world.base_url}/api/openapi.json") as resp,
    ):
        doc = await resp.json()
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == served
    assert {"/api/timeline", "/api/messages", "/api/tickets"} <= set(doc["paths"])
    for item in doc["paths"].values():
        for operation in item.values():
            assert any(status.startswith("2") for status in operation["responses"])
