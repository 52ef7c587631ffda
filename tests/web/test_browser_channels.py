"""The board and the chat widget in headless Chromium, against real PostgreSQL: the pages'
JavaScript really moves tickets and sends messages, and shows data as text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from centralino.access.models import Role
from centralino.adapters.pg_board import PgBoard
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_messages import PgMessageStore
from centralino.web.auth import add_access
from centralino.web.board import add_board
from centralino.web.chat import add_chat
from centralino.web.pages import STATIC_DIR
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox
from context.service import ContextService
from context.tickets import DEFAULT_PIPELINE
from tests.context.fakes import FakeClock
from tests.web.auth_helpers import PASSWORD, add_user, make_access
from tests.web.browser import launch_browser, open_page, until

SCRIPTED_TITLE = "<img src=x onerror=alert(1)> refund"


@pytest.fixture
async def server(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[TestServer]:
    context = ContextService(
        customers=PgCustomerStore(pool=pg_pool),
        timeline=PgTimelineStore(pool=pg_pool),
        tickets=PgTicketStore(pool=pg_pool),
        clock=FakeClock(),
    )
    app = web.Application()
    access = make_access(pg_pool, redis_client, agent_teams={})
    add_access(app, access)
    await add_user(access, "sup", Role.SUPERVISOR, teams={"blue"})
    add_board(app, board=PgBoard(pool=pg_pool), context=context)
    add_chat(
        app,
        inbox=MessageInbox(store=PgMessageStore(pool=pg_pool), phones=PhoneNormaliser()),
        now=FakeClock().now,
    )
    app.router.add_static("/static/", STATIC_DIR)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    access.allow_local(server.port or 0)
    try:
        yield server
    finally:
        await server.close()


async def test_the_board_moves_a_card_and_shows_titles_as_text(
    server: TestServer, pg_pool: asyncpg.Pool
) -> None:
    ticket_id = await PgBoard(pool=pg_pool).create(
        DEFAULT_PIPELINE,
        title=SCRIPTED_TITLE,
        customer_id=None,
        team="blue",
        owner="agent101",
        channel="email",
        actor="sup",
        now=FakeClock().now(),
    )
    async with launch_browser() as browser, open_page(browser) as watched:
        page = watched.page
        # The page takes the login session: the login form, then back to the board.
        await page.goto(str(server.make_url("/board/blue")))
        await page.get_by_label("Username").fill("sup")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(str(server.make_url("/board/blue")), timeout=5000)
        card = page.locator(".column[data-phase=new] .card")
        await until(lambda: _count(card, 1))
        assert SCRIPTED_TITLE in await card.inner_text()
        await card.get_by_role("button", name="▶").click()

        async def moved() -> None:
            phase = await pg_pool.fetchval("SELECT phase FROM tickets WHERE id = $1", ticket_id)
            assert phase == "triage"

        await until(moved)
        await until(lambda: _count(page.locator(".column[data-phase=triage] .card"), 1))
        assert watched.errors == [] and watched.dialogs == []


async def _count(locator: object, expected: int) -> None:
    from playwright.async_api import Locator

    assert isinstance(locator, Locator)
    assert await locator.count() == expected


async def test_the_chat_widget_sends_and_shows_the_ack(
    server: TestServer, pg_pool: asyncpg.Pool
) -> None:
    async with launch_browser() as browser, open_page(browser) as watched:
        page = watched.page
        await page.goto(str(server.make_url("/chat")))
        await until(lambda: _pill(page, "connected"))
        await page.fill("#email", "anna@example.it")
        await page.click("#who button")
        await page.fill("#text", "Buongiorno, <b>aiuto</b>")
        await page.press("#text", "Enter")

        async def stored() -> None:
            row = await pg_pool.fetchrow("SELECT body, sender FROM messages")
            assert row is not None and tuple(row) == ("Buongiorno, <b>aiuto</b>", "anna@example.it")

        await until(stored)
        await until(lambda: _count(page.locator("#messages li", has_text="sent"), 1))
        assert "<b>aiuto</b>" in await page.locator("#messages li").inner_text()
        assert watched.errors == []


async def _pill(page: object, label: str) -> None:
    from playwright.async_api import Page

    assert isinstance(page, Page)
    assert await page.locator("#chat-state").inner_text() == label
