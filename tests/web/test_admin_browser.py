"""The /admin page in headless Chromium: an admin edits an agent's skill level and a queue's
service-level threshold, and both are saved (read back from PostgreSQL); names with markup
show as text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from centralino.access.models import Role
from centralino.admin.models import Kind
from centralino.settings import AgentSettings
from tests.web.auth_helpers import PASSWORD, add_user
from tests.web.browser import launch_browser, open_page
from tests.web.test_admin_api import build_admin_site

MARKUP = "<img src=x onerror=alert(1)>Bea"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_browser() as b:
        yield b


async def test_an_admin_edits_a_skill_level_and_a_threshold_and_sees_them_saved(
    browser: Browser, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    site = build_admin_site(pg_pool, redis_client)
    await site.store.seed()
    a2 = AgentSettings(id="a2", name=MARKUP, skills={"support": 2}, teams=["red"])
    await site.store.update(Kind.AGENTS, "a2", a2, version=1, actor="setup")
    async with TestServer(site.app, host="127.0.0.1", port=0) as server:
        site.access.allow_local(server.port or 0)
        await add_user(site.access, "root", Role.ADMIN)
        base = f"http://127.0.0.1:{server.port}"
        async with open_page(browser) as w:
            page = w.page
            await page.goto(base + "/admin")
            await page.wait_for_url(re.compile(r"/login\?next="), timeout=5000)
            await page.get_by_label("Username").fill("root")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url(base + "/admin", timeout=5000)

            sales = page.get_by_test_id("skill-a1-sales")
            await sales.wait_for(timeout=5000)
            assert await sales.input_value() == "2"
            await sales.fill("4")
            await page.get_by_test_id("save-agent-a1").click()
            await page.locator("#notice", has_text="Saved agent a1").wait_for(timeout=5000)

            threshold = page.get_by_test_id("sl-billing")
            await threshold.fill("15")
            await page.get_by_test_id("save-queue-billing").click()
            await page.locator("#notice", has_text="Saved queue billing").wait_for(timeout=5000)

            # A change the configuration refuses is shown, with check-config's words.
            await page.get_by_test_id("skill-a1-billing").fill("0")
            await page.get_by_test_id("save-agent-a1").click()
            await page.locator("#notice", has_text="no agent has skill 'billing'").wait_for(
                timeout=5000
            )
            assert MARKUP in await page.locator("tr[data-agent=a2]").inner_text()
            await w.screenshot("admin")
            assert w.errors == [] and w.dialogs == []

    config = await site.store.load()
    a1 = config.find(Kind.AGENTS, "a1")
    billing = config.find(Kind.QUEUES, "billing")
    assert a1 is not None and a1.row.skills == {"billing": 3, "support": 3, "sales": 4}  # type: ignore[union-attr]
    assert billing is not None and billing.row.sl_target_s == 15  # type: ignore[union-attr]
