"""The web chat over a real WebSocket against real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from centralino.adapters.pg_messages import PgMessageStore
from centralino.web.chat import add_chat
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox
from tests.context.fakes import FakeClock

Client = TestClient[web.Request, web.Application]


def make_app(pool: asyncpg.Pool) -> web.Application:
    app = web.Application()
    add_chat(
        app,
        inbox=MessageInbox(store=PgMessageStore(pool=pool), phones=PhoneNormaliser()),
        now=FakeClock().now,
    )
    return app


@pytest.fixture
async def client(pg_pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(pg_pool), host="127.0.0.1", port=0)) as c:
        yield c


async def test_the_widget_page_is_served_under_the_csp(client: Client) -> None:
    async with client.get("/chat") as resp:
        assert resp.status == 200
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert '<script type="module" src="/static/chat.js">' in await resp.text()


async def test_a_visitor_with_an_email_chats_onto_their_customer_record(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    async with client.ws_connect("/ws/chat") as ws:
        await ws.send_json(
            {"type": "hello", "visitor_id": "v-42", "name": "Anna", "email": "Anna@Example.it"}
        )
        await ws.send_json({"type": "message", "id": "m-1", "text": "Buongiorno"})
        assert await ws.receive_json() == {"type": "ack", "id": "m-1", "duplicate": False}
        # The widget re-sends after a reconnect: acknowledged, stored once.
        await ws.send_json({"type": "message", "id": "m-1", "text": "Buongiorno"})
        assert await ws.receive_json() == {"type": "ack", "id": "m-1", "duplicate": True}
    row = await pg_pool.fetchrow(
        "SELECT m.channel, m.body, i.identity_kind, i.identity_value, c.display_name"
        " FROM messages m JOIN interactions i ON i.id = m.interaction_id"
        " JOIN customers c ON c.id = i.customer_id"
    )
    assert row is not None and await pg_pool.fetchval("SELECT count(*) FROM messages") == 1
    assert tuple(row) == ("chat", "Buongiorno", "email", "anna@example.it", "Anna")


async def test_bad_frames_are_refused_and_the_chat_goes_on(
    client: Client, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    async with client.ws_connect("/ws/chat") as ws:
        await ws.send_json({"type": "message", "id": "m-0", "text": "too early"})
        assert (await ws.receive_json())["error"] == "say hello first"
        await ws.send_str("{garbage")
        assert "not JSON" in (await ws.receive_json())["error"]
        await ws.send_json({"type": "hello", "visitor_id": "v-7"})
        await ws.send_json({"type": "message", "id": "m-1", "text": "ok now"})
        assert (await ws.receive_json())["type"] == "ack"
    assert "refused frame" in caplog.text
    identity = await pg_pool.fetchrow("SELECT kind, value FROM customer_identities")
    assert identity is not None and tuple(identity) == ("chat", "v-7")


async def test_an_oversized_frame_closes_the_socket(client: Client, pg_pool: asyncpg.Pool) -> None:
    async with client.ws_connect("/ws/chat") as ws:
        await ws.send_str("x" * 64 * 1024)
        msg = await ws.receive()
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 0
