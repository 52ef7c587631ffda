"""The reports page in headless Chromium: a supervisor logs in, sees their team's figures for
today and the last weeks (charts and totals), not another team's, and downloads the CSV."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from acd.models import QueueEvent, QueueLogRow
from centralino.access.models import Role
from centralino.adapters.pg_context import PgTimelineStore
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.pg_reports import PgReportSource
from centralino.web.reports import ReportsConfig, add_reports
from context.models import ChannelKind, Direction, Interaction
from tests.web.auth_helpers import PASSWORD, add_user, make_access
from tests.web.browser import launch_browser, open_page
from tests.web.test_pages import build_site

E = QueueEvent
TEAMS = {"a1": frozenset({"blue"}), "a2": frozenset({"green"})}
CONFIG = ReportsConfig(
    sl_target_s={"billing": 20.0},
    teams_of=TEAMS,
    queue_teams={"billing": frozenset({"blue", "green"})},
)


def calls(agent: str, n: int, *, at: float, wait: float) -> list[QueueLogRow]:
    rows = []
    for i in range(n):
        item, t = f"{agent}-{at}-{i}", at + i
        rows += [
            QueueLogRow(t, "billing", item, E.ENTER),
            QueueLogRow(t + wait, "billing", item, E.CONNECT, agent, wait_s=wait),
            QueueLogRow(t + wait + 90, "billing", item, E.COMPLETE, agent, talk_s=90.0),
        ]
    return rows


async def test_a_supervisor_sees_their_team_and_downloads_the_csv(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    now = time.time()
    earlier = now - 600  # today (the page's zone is Europe/Rome) unless run at 00:00-00:10
    three_days_ago = now - 3 * 86400
    await PgQueueLog(pool=pg_pool).write(
        [
            *calls("a1", 3, at=earlier, wait=5),
            *calls("a2", 7, at=earlier, wait=40),
            *calls("a1", 4, at=three_days_ago, wait=30),
        ]
    )
    started = datetime.fromtimestamp(earlier, UTC)
    await PgTimelineStore(pool=pg_pool).append(
        Interaction(
            id=None,
            customer_id=None,
            channel=ChannelKind.VOICE,
            direction=Direction.INBOUND,
            started_at=started,
            ended_at=started + timedelta(seconds=95),
            agent_id="a1",
            queue="billing",
            outcome="answered",
            survey_score=4,
        )
    )
    access = make_access(pg_pool, redis_client, agent_teams=TEAMS)
    site = build_site(pg_pool, redis_client, access=access)
    add_reports(site.app, source=PgReportSource(pool=pg_pool), config=CONFIG)
    await add_user(access, "sup", Role.SUPERVISOR, teams={"blue"})
    async with TestServer(site.app, host="127.0.0.1", port=0) as server:
        access.allow_local(server.port or 0)
        base = f"http://127.0.0.1:{server.port}"
        async with launch_browser() as browser, open_page(browser) as w:
            page = w.page
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            await page.goto(base + "/")
            await page.wait_for_url(re.compile(r"/login\?next="), timeout=5000)
            await page.get_by_label("Username").fill("sup")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.get_by_role("link", name="Reports").click()
            await page.wait_for_url(base + "/reports", timeout=5000)

            today = page.get_by_test_id("today")
            weeks = page.get_by_test_id("weeks")
            blue_today = today.locator('tr[data-key="blue"]')
            await blue_today.wait_for(timeout=5000)
            cells = await blue_today.locator("td").all_inner_texts()
            assert cells[:4] == ["blue", "3", "3", "—"]  # offered, answered; no team abandons
            assert cells[4] == "100 %"
            assert cells[-1] == "4 (1)"  # satisfaction, one survey
            week_cells = await weeks.locator('tr[data-key="blue"] td').all_inner_texts()
            assert week_cells[:3] == ["blue", "7", "7"]
            assert await page.locator('tr[data-key="green"]').count() == 0
            assert "green" not in await page.locator("main").inner_text()
            assert await page.locator("#key option").all_inner_texts() == ["blue"]
            assert await today.get_by_test_id("chart-calls").locator("rect").count() == 2
            # Two days with calls: offered and answered bars each; 100 % today, 0 % before.
            assert await weeks.get_by_test_id("chart-calls").locator("rect").count() == 4
            sl = weeks.get_by_test_id("chart-sl").locator("rect")
            assert await sl.count() == 2
            assert await sl.evaluate_all("bars => bars.map(b => b.getAttribute('class'))") == [
                "s-sl miss",
                "s-sl",
            ]
            await w.screenshot("reports-supervisor")

            async with page.expect_download() as info:
                await page.locator("#csv-weeks").click()
            download = await info.value
            path = await download.path()
            body = path.read_text(encoding="utf-8")
            assert re.fullmatch(
                r"centralino-team-1d-\d{4}-\d\d-\d\d\.csv", download.suggested_filename
            )
            table = list(csv.DictReader(io.StringIO(body)))
            assert {r["key"] for r in table} == {"blue"}
            assert len(table) == 28
            assert sum(int(r["answered"]) for r in table) == 7
            assert w.errors == []
            # Every script, style and API call loaded (the browser's own favicon guess aside).
            assert [u for u in failed if not u.endswith("/favicon.ico")] == []

        async with launch_browser() as browser, open_page(browser, width=390, height=844) as w:
            await w.page.goto(base + "/login?next=/reports")
            await w.page.get_by_label("Username").fill("sup")
            await w.page.get_by_label("Password").fill(PASSWORD)
            await w.page.get_by_role("button", name="Log in").click()
            await w.page.locator('tr[data-key="blue"]').first.wait_for(timeout=5000)
            await w.screenshot("reports-supervisor-phone")
            assert w.errors == []
