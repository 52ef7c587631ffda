"""`GET /api/reports` and `/api/reports.csv` over real PostgreSQL: figures per queue, team and
agent; a supervisor sees their teams, their agents and the queues they serve, an admin all;
bad parameters answer 400 saying why."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from acd.models import AgentDefinition, QueueEvent, QueueLogRow
from acd.reports import Figures, Group, Interval, Report
from centralino.access.models import Role
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.pg_reports import PgReportSource
from centralino.settings import QueueSettings
from centralino.web.auth import ROUTE_RULES
from centralino.web.openapi import add_openapi
from centralino.web.reports import ReportsConfig, add_reports, report_csv, reports_config
from tests.helpers import web_login
from tests.web.auth_helpers import PASSWORD, add_user, make_access
from tests.web.test_pages import build_site

E = QueueEvent
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp()
TEAMS = {"a1": frozenset({"blue"}), "a2": frozenset({"green"})}
CONFIG = ReportsConfig(
    sl_target_s={"billing": 20.0, "sales": 20.0},
    teams_of=TEAMS,
    queue_teams={"billing": frozenset({"blue", "green"}), "sales": frozenset({"green"})},
)
PERIOD = "from=2026-12-07&to=2026-12-08&tz=UTC"


def call(item: str, at: float, agent: str, queue: str, wait: float) -> list[QueueLogRow]:
    return [
        QueueLogRow(T0 + at, queue, item, E.ENTER),
        QueueLogRow(T0 + at + wait, queue, item, E.CONNECT, agent, wait_s=wait),
        QueueLogRow(T0 + at + wait + 60, queue, item, E.COMPLETE, agent, talk_s=60.0),
    ]


@dataclass
class World:
    url: str

    async def get(self, who: str, path: str) -> tuple[int, Any, dict[str, str]]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await web_login(http, self.url, who, PASSWORD)
            async with http.get(self.url + path) as r:
                body = await r.text()
                if r.content_type == "application/json":
                    return r.status, await r.json(), dict(r.headers)
                return r.status, body, dict(r.headers)


@pytest.fixture
async def world(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[World]:
    await PgQueueLog(pool=pg_pool).write(
        [
            *call("c1", 0, "a1", "billing", 5),
            *call("c2", 100, "a2", "billing", 50),
            *call("c3", 200, "a2", "sales", 5),
            *call("c4", 3600, "a1", "billing", 10),
        ]
    )
    access = make_access(pg_pool, redis_client, agent_teams=TEAMS)
    site = build_site(pg_pool, redis_client, access=access)
    add_reports(site.app, source=PgReportSource(pool=pg_pool), config=CONFIG)
    add_openapi(site.app)
    await add_user(access, "blue-lead", Role.SUPERVISOR, teams={"blue"})
    await add_user(access, "root", Role.ADMIN)
    await add_user(access, "ann", Role.AGENT, agent_id="a1", teams={"blue"})
    server = TestServer(site.app, host="127.0.0.1", port=0)
    await server.start_server()
    access.allow_local(server.port or 0)
    try:
        yield World(f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()


async def test_an_admin_sees_every_team_by_hour(world: World) -> None:
    status, body, headers = await world.get("root", f"/api/reports?group=team&interval=1h&{PERIOD}")
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert body["keys"] == ["blue", "green"]
    assert len(body["starts"]) == 24
    blue_9 = next(
        x for x in body["lines"] if x["key"] == "blue" and x["start"].startswith("2026-12-07T09")
    )
    assert (blue_9["answered"], blue_9["abandoned"], blue_9["service_level"]) == (1, None, 1.0)
    totals = {t["key"]: t for t in body["totals"]}
    assert totals["blue"]["answered"] == 2
    assert totals["green"]["answered"] == 2
    assert totals["green"]["service_level"] == 0.5  # c2 waited 50 s
    assert totals["green"]["aht_s"] == 60.0


async def test_a_supervisor_sees_only_their_team_agents_and_queues(world: World) -> None:
    q = f"interval=1d&{PERIOD}"
    _, teams, _ = await world.get("blue-lead", f"/api/reports?group=team&{q}")
    assert [t["key"] for t in teams["totals"]] == ["blue"]
    _, agents, _ = await world.get("blue-lead", f"/api/reports?group=agent&{q}")
    assert [(t["key"], t["answered"]) for t in agents["totals"]] == [("a1", 2)]
    _, queues, _ = await world.get("blue-lead", f"/api/reports?group=queue&{q}")
    assert [(t["key"], t["offered"]) for t in queues["totals"]] == [("billing", 3)]
    _, queues, _ = await world.get("root", f"/api/reports?group=queue&{q}")
    assert [t["key"] for t in queues["totals"]] == ["billing", "sales"]


async def test_an_agent_gets_no_reports(world: World) -> None:
    status, body, _ = await world.get("ann", f"/api/reports?group=team&interval=1d&{PERIOD}")
    assert status == 403, body


async def test_the_csv_export_is_an_attachment_with_a_header_row(world: World) -> None:
    status, body, headers = await world.get(
        "blue-lead", f"/api/reports.csv?group=agent&interval=1h&{PERIOD}"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == (
        'attachment; filename="centralino-agent-1h-2026-12-07.csv"'
    )
    table = list(csv.DictReader(io.StringIO(body)))
    assert len(table) == 24  # a1, every hour of the day
    assert {r["key"] for r in table} == {"a1"}
    nine = next(r for r in table if r["interval_start"] == "2026-12-07T09:00:00+00:00")
    assert (nine["answered"], nine["abandoned"], nine["service_level"]) == ("1", "", "1.0")
    assert body.startswith("group,key,interval_start,offered,answered,abandoned,")


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("interval=1h&" + PERIOD, "group is required"),
        ("group=customer&interval=1h&" + PERIOD, "group='customer'"),
        ("group=team&interval=5m&" + PERIOD, "interval='5m'"),
        ("group=team&interval=1h&from=yesterday&to=2026-12-08", "from='yesterday'"),
        ("group=team&interval=1h&from=2026-12-08&to=2026-12-07", "to must be after from"),
        ("group=team&interval=1d&from=2026-01-01&to=2026-12-07", "longer than 93 days"),
        ("group=team&interval=15m&from=2026-10-01&to=2026-12-07", "at most 31 days"),
        ("group=team&interval=1h&from=2026-12-07&to=2026-12-08&tz=Mars/Olympus", "tz="),
        ("group=team&interval=1h&from=2026-12-07&to=2026-12-08&tz=" + "x" * 100, "too long"),
    ],
)
async def test_bad_parameters_answer_400_saying_why(world: World, query: str, says: str) -> None:
    for path in ("/api/reports?", "/api/reports.csv?"):
        status, body, _ = await world.get("root", path + query)
        assert status == 400, body
        assert says in body["error"]


async def test_a_period_in_a_zone_starts_at_its_midnight(world: World) -> None:
    status, body, _ = await world.get(
        "root", "/api/reports?group=queue&interval=1d&from=2026-12-07&to=2026-12-08&tz=Europe/Rome"
    )
    assert status == 200
    assert body["starts"] == ["2026-12-07T00:00:00+01:00"]
    assert body["from"] == "2026-12-07T00:00:00+01:00"


async def test_the_reports_page_has_a_rule_and_a_strict_policy(world: World) -> None:
    assert ROUTE_RULES["/reports"] is ROUTE_RULES["/api/reports"]
    status, body, headers = await world.get("blue-lead", "/reports")
    assert status == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert '<script type="module" src="/static/reports.js">' in body
    status, _, _ = await world.get("ann", "/reports")
    assert status == 403


async def test_the_api_description_lists_the_report_routes(world: World) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{world.url}/api/openapi.json") as r:
        doc = await r.json()
    assert set(doc["paths"]["/api/reports"]) == {"get"}
    assert "text/csv" in doc["paths"]["/api/reports.csv"]["get"]["responses"]["200"]["content"]


async def test_bad_parameters_are_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="centralino.web.reports"):
        status, _, _ = await world.get("root", "/api/reports?group=team&interval=2h&" + PERIOD)
    assert status == 400
    assert any("interval='2h'" in r.getMessage() for r in caplog.records)


async def test_a_period_with_too_many_rows_is_refused_not_a_server_error(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    await PgQueueLog(pool=pg_pool).write(call("c1", 0, "a1", "billing", 5))
    access = make_access(pg_pool, redis_client, agent_teams=TEAMS)
    site = build_site(pg_pool, redis_client, access=access)
    add_reports(site.app, source=PgReportSource(pool=pg_pool, max_rows=2), config=CONFIG)
    await add_user(access, "root", Role.ADMIN)
    async with TestServer(site.app, host="127.0.0.1", port=0) as server:
        access.allow_local(server.port or 0)
        status, body, _ = await World(f"http://127.0.0.1:{server.port}").get(
            "root", f"/api/reports?group=queue&interval=1d&{PERIOD}"
        )
    assert status == 400
    assert "too many calls" in body["error"]


def test_csv_cells_are_quoted_and_never_formulas() -> None:
    report = Report(
        group=Group.AGENT,
        interval=Interval.DAY,
        zone="UTC",
        starts=(T0,),
        lines=(Figures(key='=HYPERLINK("x"),a', start=T0, answered=2, abandoned=None),),
        keys=('=HYPERLINK("x"),a',),
    )
    body = report_csv(report, ZoneInfo("UTC"))
    header, _, end = body.split("\r\n")
    assert header.split(",")[:3] == ["group", "key", "interval_start"]
    assert end == ""
    (parsed,) = csv.DictReader(io.StringIO(body))
    assert parsed["key"] == '\'=HYPERLINK("x"),a'  # quoted, and starts with ' not =
    assert (parsed["answered"], parsed["abandoned"], parsed["service_level"]) == ("2", "", "0.0")


def test_a_queue_is_served_by_the_teams_of_the_agents_with_its_skill() -> None:
    config = reports_config(
        queues=[
            QueueSettings(name="billing", skill="billing", sl_target_s=30),
            QueueSettings(name="general", skill=None),
            QueueSettings(name="sales", skill="sales"),
        ],
        agents=[
            AgentDefinition("a1", {"billing": 2}, teams=frozenset({"blue"})),
            AgentDefinition("a2", {"support": 5}, teams=frozenset({"green", "night"})),
        ],
    )
    assert config.sl_target_s == {"billing": 30.0, "general": 20.0, "sales": 20.0}
    assert config.queue_teams == {
        "billing": {"blue"},
        "general": {"blue", "green", "night"},
        "sales": set(),
    }
    assert config.teams_of["a2"] == {"green", "night"}
