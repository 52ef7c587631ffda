"""Reports: the `/reports` page, its JSON and its CSV export (figures: acd/reports.py).

    GET /reports                                  the page (today by hour, 4 weeks by day)
    GET /api/reports?group=&interval=&from=&to=[&tz=]      JSON
    GET /api/reports.csv?…                        the same lines as CSV (an attachment)

group: queue | team | agent; interval: 15m | 1h | 1d; from/to: ISO 8601 (a date, or a date and
time; without an offset they are read in `tz`); tz: an IANA zone (default UTC). The period is at
most `MAX_DAYS` long, and 15-minute lines at most `MAX_QUARTER_HOUR_DAYS`.

Who sees what (routes with the SUPERVISION rule: supervisors and admins):
- an admin: every queue, team and agent;
- a supervisor: their teams; the agents of their teams; and the queues their teams serve (a
  queue whose skill one of their agents has, or a queue without a skill). A queue's figures are
  the whole queue's, whichever team answered: the queue is theirs to watch too, and its
  abandons belong to no team.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from acd.models import AgentDefinition
from acd.reports import (
    Figures,
    Group,
    Interval,
    Report,
    ReportInput,
    ReportTooLarge,
    build_report,
    totals,
)
from centralino.access.models import Principal, Role
from centralino.web.auth import current_principal
from centralino.web.pages import CSP, STATIC_DIR

log = logging.getLogger(__name__)

# A quarter of a year: a QBR's figures in one request; longer belongs to an export job.
MAX_DAYS = 93
# 15-minute lines are for staffing a month: 31 days x 96 intervals per key.
MAX_QUARTER_HOUR_DAYS = 31
MAX_PARAM_CHARS = 64  # every parameter is a name, a zone or an ISO date; longer is garbage
# Spreadsheets run a cell starting with these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

REPORTS_PATH = "/api/reports"
REPORTS_CSV_PATH = "/api/reports.csv"


class ReportSource(Protocol):
    """What a report reads for one period (`PgReportSource`)."""

    async def read(self, *, since: float, until: float) -> ReportInput: ...


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    sl_target_s: Mapping[str, float]  # queue -> its service-level threshold
    teams_of: Mapping[str, Collection[str]]  # agent -> their teams
    queue_teams: Mapping[str, Collection[str]]  # queue -> the teams whose agents serve it
    default_zone: str = "UTC"


class QueueDefinition(Protocol):
    """What reports need of a queue's settings (`QueueSettings` has these)."""

    @property
    def name(self) -> str: ...

    @property
    def skill(self) -> str | None: ...

    @property
    def sl_target_s(self) -> float: ...


def reports_config(
    *, queues: Iterable[QueueDefinition], agents: Iterable[AgentDefinition]
) -> ReportsConfig:
    """Each queue's service-level threshold, each agent's teams, and the teams serving each
    queue: those with an agent who has its skill (every team, for a queue without a skill)."""
    agents = list(agents)
    queues = list(queues)
    return ReportsConfig(
        sl_target_s={q.name: q.sl_target_s for q in queues},
        teams_of={a.agent_id: a.teams for a in agents},
        queue_teams={
            q.name: frozenset(
                t
                for a in agents
                if q.skill is None or a.skills.get(q.skill, 0) > 0
                for t in a.teams
            )
            for q in queues
        },
    )


@dataclass(frozen=True, slots=True)
class ReportQuery:
    group: Group
    interval: Interval
    since: datetime
    until: datetime
    zone: ZoneInfo


class BadReportQuery(ValueError):
    """The request's parameters do not name a report we make (the client's fault: 400)."""


class ReportLine(TypedDict):
    key: str
    start: str  # ISO 8601 with the zone's offset
    offered: int
    answered: int
    abandoned: int | None  # None per team and agent
    short_abandoned: int
    answered_within_sl: int
    service_level: float | None
    asa_s: float | None
    aht_s: float | None
    talk_s: float | None  # mean talk per handled conversation
    wrap_up_s: float | None  # mean wrap-up per handled conversation
    handled: int
    transfers: int
    callbacks: int
    satisfaction: float | None
    surveys: int


# --- parameters ---------------------------------------------------------------------------------


def _param(query: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = query.get(name, default)
    if value is None or value == "":
        raise BadReportQuery(f"{name} is required")
    if len(value) > MAX_PARAM_CHARS:
        raise BadReportQuery(f"{name} is too long")
    return value


def _moment(text: str, name: str, zone: ZoneInfo) -> datetime:
    try:
        if len(text) == 10:  # a date: its midnight in the zone
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=zone)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadReportQuery(
            f"{name}={text!r}: expected an ISO 8601 date or date and time"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def parse_query(query: Mapping[str, str], *, default_zone: str = "UTC") -> ReportQuery:
    """The report a request asks for. Raises `BadReportQuery` saying what is wrong."""
    group_text = _param(query, "group")
    try:
        group = Group(group_text)
    except ValueError:
        raise BadReportQuery(
            f"group={group_text!r}: expected one of {', '.join(g.value for g in Group)}"
        ) from None
    interval_text = _param(query, "interval")
    try:
        interval = Interval(interval_text)
    except ValueError:
        raise BadReportQuery(
            f"interval={interval_text!r}: expected one of {', '.join(i.value for i in Interval)}"
        ) from None
    zone_name = _param(query, "tz", default_zone)
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadReportQuery(f"tz={zone_name!r}: expected an IANA time zone name") from None
    since = _moment(_param(query, "from"), "from", zone)
    until = _moment(_param(query, "to"), "to", zone)
    if until <= since:
        raise BadReportQuery("to must be after from")
    length = until - since
    if length > timedelta(days=MAX_DAYS):
        raise BadReportQuery(f"the period is longer than {MAX_DAYS} days")
    if interval is Interval.QUARTER_HOUR and length > timedelta(days=MAX_QUARTER_HOUR_DAYS):
        raise BadReportQuery(
            f"15-minute intervals cover at most {MAX_QUARTER_HOUR_DAYS} days; ask for 1h or 1d"
        )
    return ReportQuery(group=group, interval=interval, since=since, until=until, zone=zone)


# --- who sees what ------------------------------------------------------------------------------


def visible_keys(principal: Principal, group: Group, config: ReportsConfig) -> set[str] | None:
    """The keys of `group` this account may see; None: all (an admin)."""
    if principal.role is Role.ADMIN:
        return None
    if principal.role is not Role.SUPERVISOR:
        return set()
    mine = principal.teams
    if group is Group.TEAM:
        return set(mine)
    if group is Group.AGENT:
        agents = {a for a, teams in config.teams_of.items() if not mine.isdisjoint(teams)}
        if principal.agent_id is not None:
            agents.add(principal.agent_id)
        return agents
    return {q for q, teams in config.queue_teams.items() if not mine.isdisjoint(teams)}


def all_keys(group: Group, config: ReportsConfig) -> set[str]:
    if group is Group.QUEUE:
        return set(config.sl_target_s)
    if group is Group.AGENT:
        return set(config.teams_of)
    return {t for teams in config.teams_of.values() for t in teams}


# --- rendering ----------------------------------------------------------------------------------


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def line_json(f: Figures, zone: ZoneInfo) -> ReportLine:
    return {
        "key": f.key,
        "start": datetime.fromtimestamp(f.start, zone).isoformat(),
        "offered": f.offered,
        "answered": f.answered,
        "abandoned": f.abandoned,
        "short_abandoned": f.short_abandoned,
        "answered_within_sl": f.answered_within_sl,
        "service_level": _rounded(f.service_level, 4),
        "asa_s": _rounded(f.asa_s, 1),
        "aht_s": _rounded(f.aht_s, 1),
        "talk_s": _rounded(f.talk_total_s / f.handled if f.handled else None, 1),
        "wrap_up_s": _rounded(f.wrap_total_s / f.handled if f.handled else None, 1),
        "handled": f.handled,
        "transfers": f.transfers,
        "callbacks": f.callbacks,
        "satisfaction": _rounded(f.satisfaction, 2),
        "surveys": f.surveys,
    }


CSV_COLUMNS = (
    "group",
    "key",
    "interval_start",
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "answered_within_sl",
    "service_level",
    "asa_s",
    "aht_s",
    "talk_s",
    "wrap_up_s",
    "handled",
    "transfers",
    "callbacks",
    "satisfaction",
    "surveys",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def report_csv(report: Report, zone: ZoneInfo) -> str:
    """A header row, then one row per key and interval; RFC 4180 quoting, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for f in report.lines:
        line = line_json(f, zone)
        writer.writerow(
            [_cell(report.group.value), _cell(line["key"]), line["start"]]
            + [_cell(line[c]) for c in CSV_COLUMNS[3:]]  # type: ignore[literal-required]
        )
    return out.getvalue()


# --- handlers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Deps:
    source: ReportSource
    config: ReportsConfig


REPORTS = web.AppKey("reports", _Deps)


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _report(request: web.Request) -> tuple[ReportQuery, Report] | web.Response:
    deps = request.app[REPORTS]
    try:
        q = parse_query(request.query, default_zone=deps.config.default_zone)
    except BadReportQuery as exc:
        log.info("refused a report request (%s): %s", request.query_string[:200], exc)
        return _bad(str(exc))
    principal = current_principal(request)
    allowed = visible_keys(principal, q.group, deps.config)
    keys = all_keys(q.group, deps.config)
    visible: Callable[[str], bool] | None = None
    if allowed is not None:
        keys &= allowed
        visible = allowed.__contains__
    since, until = q.since.timestamp(), q.until.timestamp()
    try:
        data = await deps.source.read(since=since, until=until)
    except ReportTooLarge as exc:
        log.warning("refused a report of %s to %s: %s", q.since, q.until, exc)
        return _bad(f"the period holds too many calls for one report ({exc}): ask for less")
    report = build_report(
        data.rows,
        data.surveys,
        wrap_ups=data.wrap_ups,
        group=q.group,
        interval=q.interval,
        since=since,
        until=until,
        zone=q.zone,
        sl_target_s=deps.config.sl_target_s,
        teams_of=deps.config.teams_of,
        keys=keys,
        visible=visible,
    )
    return q, report


async def reports_api(request: web.Request) -> web.Response:
    made = await _report(request)
    if isinstance(made, web.Response):
        return made
    q, report = made
    response = web.json_response(
        {
            "group": q.group.value,
            "interval": q.interval.value,
            "tz": q.zone.key,
            "from": q.since.isoformat(),
            "to": q.until.isoformat(),
            "keys": list(report.keys),
            "starts": [datetime.fromtimestamp(t, q.zone).isoformat() for t in report.starts],
            "lines": [line_json(f, q.zone) for f in report.lines],
            "totals": [line_json(f, q.zone) for f in totals(report)],
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def reports_csv(request: web.Request) -> web.Response:
    made = await _report(request)
    if isinstance(made, web.Response):
        return made
    q, report = made
    name = f"centralino-{q.group.value}-{q.interval.value}-{q.since.date().isoformat()}.csv"
    response = web.Response(
        text=report_csv(report, q.zone), content_type="text/csv", charset="utf-8"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def reports_page(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(STATIC_DIR / "reports.html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def add_reports(app: web.Application, *, source: ReportSource, config: ReportsConfig) -> None:
    app[REPORTS] = _Deps(source=source, config=config)
    app.router.add_get("/reports", reports_page)
    app.router.add_get(REPORTS_PATH, reports_api)
    app.router.add_get(REPORTS_CSV_PATH, reports_csv)
