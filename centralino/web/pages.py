"""Browser pages: the index, the agent desktop and the supervisor wallboard, with their JSON
and WebSocket feeds.

Pages are static HTML shells (`static/`) whose small scripts fetch JSON and render every string
from data with `textContent`, never `innerHTML`: a CRM note holding `<script>` shows as text.
A Content-Security-Policy that allows only our own scripts backs that up.

The web layer reads the rest of Centralino through the Protocols below; the composition root
adapts the ACD and context services to them (`agent_view`, `wallboard_view` help with that).
Who may reach each route is `centralino.web.auth`'s business (its middleware runs first);
handlers here only narrow lists to what the account may see (`reachable_agents`) and note what
must be audited. The agent desktop's screen-pop WebSocket (`/ws/agent/{agent_id}`) belongs to
`centralino.web.desktop_ws`; the desktop page only connects to it.

Routes added by `add_pages`:
    GET  /                               index (links, readiness, recent calls)
    GET  /desktop/{agent_id}             agent desktop (404 for an unknown agent)
    GET  /wallboard                      supervisor wallboard
    GET  /static/...                     CSS and JS
    GET  /api/about                      {"name", "running": {label: detail}}
    GET  /api/agents                     [AgentView]
    GET  /api/agents/{agent_id}          AgentView, 404 if unknown
    POST /api/agents/{agent_id}/state    {"state": "ready"|"not_ready"|"logged_out",
                                          "reason": str} -> AgentView
    POST /api/identities/link            LinkRequest -> {"ok": true}
    GET  /api/calls/recent?limit=N       [CallSummary] (an agent's own calls, a supervisor's
                                         teams', every call for an admin)
    GET  /api/wallboard                  WallboardView
    GET  /ws/wallboard                   WebSocket: the server sends
                                         {"type": "wallboard", "data": WallboardView} on connect,
                                         on every change (`WallboardHub.poke`) and at least
                                         every `wallboard_interval_s`
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypedDict

from aiohttp import WSMsgType, web

from acd.errors import IllegalTransition, UnknownAgent
from acd.models import AgentState, AgentStatus
from acd.stats import WallboardSnapshot
from centralino.access.models import Role
from centralino.web.auth import current_principal, note_audit, reachable_agents

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

# The desktop offers these; anything else is a client bug (400).
SETTABLE_STATES = frozenset({"ready", "not_ready", "logged_out"})
# A not-ready reason is a short label chosen from a list ("Lunch"), not an essay.
MAX_REASON_CHARS = 64
# The index shows a screenful of calls; more belongs in reports.
MAX_RECENT_CALLS = 200
DEFAULT_RECENT_CALLS = 20
# JSON bodies we accept (state changes, identity links) are a few dozen bytes.
MAX_API_BODY_BYTES = 4096
# A wall screen sends nothing; anything bigger than this from it is garbage.
WALLBOARD_WS_MAX_MSG = 4096
# Wall screens per process; each costs one send per tick. Far above any real floor's screens.
MAX_WALLBOARD_CLIENTS = 256
# A screen that cannot take one snapshot in this long is stuck: drop it, it will reconnect.
WALLBOARD_SEND_TIMEOUT_S = 2.0
# A feed slower than this would make every screen lag; skip the tick and report it.
WALLBOARD_FEED_TIMEOUT_S = 2.0
# Pushed on change, a burst of events (a queue flooding) costs at most one snapshot per this
# long: 50 ms keeps the screen well inside its 300 ms target and the feed under 20 reads/s.
WALLBOARD_MIN_GAP_S = 0.05

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


# --- JSON shapes -----------------------------------------------------------------------------


class AgentView(TypedDict):
    agent_id: str
    state: str  # an acd.models.AgentState value
    since_epoch_s: float | None  # when the agent entered this state (epoch seconds)
    reason: str  # not-ready reason, "" otherwise
    teams: list[str]
    load: dict[str, int]  # channel -> items in progress


class CallSummary(TypedDict):
    """One line of the index's recent calls (every field but linkedid may be null)."""

    linkedid: str
    started_at: str | None  # ISO 8601 with offset
    caller: str | None  # customer name or "unknown number"
    number: str | None
    queue: str | None
    agent_id: str | None
    intent: str | None
    outcome: str | None
    wait_s: float | None
    talk_s: float | None


class StaffingView(TypedDict):
    agents_needed: int | None  # Erlang C: agents needed now to meet the SL goal
    logged_in: int  # agents of this queue in any state but logged out
    arrival_rate_per_h: float | None  # the load the advice is computed for
    aht_s: float | None


class QueueTile(TypedDict):
    queue: str
    waiting: int
    longest_wait_s: float
    agents: dict[str, int]  # agent state -> count, e.g. {"ready": 3, "busy": 5}
    service_level: float | None  # share 0..1 answered within sl_target_s; None: no calls yet
    sl_target_s: float
    sl_goal: float  # share 0..1
    asa_s: float | None
    abandon_rate: float | None  # share 0..1
    offered: int
    staffing: StaffingView | None


class TeamRow(TypedDict):
    team: str
    service_level: float | None  # share 0..1 of its answered calls within the SL threshold
    asa_s: float | None
    resolution_rate: float | None  # share 0..1 resolved on first contact
    satisfaction: float | None  # mean score, as the source gives it
    satisfaction_scale: float | None  # the score's maximum (e.g. 5)
    handled: int | None


class WallboardView(TypedDict):
    generated_at: str  # ISO 8601 with offset
    window_s: float | None  # statistics window the figures cover
    queues: list[QueueTile]
    teams: list[TeamRow]


class LinkRequest(TypedDict):
    identity_kind: str
    identity_value: str
    customer_id: int


# --- ports -----------------------------------------------------------------------------------


class AgentControl(Protocol):
    """The ACD as the desktop sees it."""

    async def list_agents(self) -> list[AgentView]: ...

    async def agent(self, agent_id: str) -> AgentView | None:
        """None for an agent the ACD does not know."""
        ...

    async def set_state(self, agent_id: str, state: str, reason: str) -> AgentView:
        """Move the agent to `state` (one of SETTABLE_STATES; a logged-out agent asking for
        "ready" is logged in first). Raises `acd.errors.UnknownAgent` (-> 404) or
        `acd.errors.IllegalTransition` (-> 409, e.g. logging out during a call)."""
        ...


class AgentNotices(Protocol):
    """Messages to an agent's desktops (`centralino.web.desktop_ws.DesktopHub` has this)."""

    async def push_notice(self, agent_id: str, notice: Mapping[str, Any]) -> int: ...


class WallboardFeed(Protocol):
    async def wallboard(self) -> WallboardView:
        """Figures as of now. Called once per tick for all screens, and per GET."""
        ...


class CallsFeed(Protocol):
    async def recent_calls(
        self, limit: int, *, agent_ids: Collection[str] | None = None
    ) -> list[CallSummary]:
        """The latest calls, newest first; only those of `agent_ids` unless it is None."""
        ...


class IdentityLinker(Protocol):
    async def link(self, *, identity_kind: str, identity_value: str, customer_id: int) -> None:
        """Attach an identity (an unknown caller's number) to a customer. Raises `LookupError`
        for an unknown customer (-> 404), `ValueError` for a malformed identity (-> 400)."""
        ...


# --- adapters' helpers -----------------------------------------------------------------------


def agent_view(status: AgentStatus) -> AgentView:
    return {
        "agent_id": status.agent_id,
        "state": str(status.state),
        "since_epoch_s": status.since,
        "reason": status.reason,
        "teams": sorted(status.teams),
        "load": dict(status.load),
    }


# The post-call survey's scale (ivr/flow `survey` steps: 1..5).
SURVEY_SCALE = 5.0


def wallboard_view(
    snapshots: Sequence[WallboardSnapshot],
    *,
    generated_at: datetime,
    window_s: float | None,
    satisfaction: Mapping[str, tuple[float, int]] | None = None,
) -> WallboardView:
    """The wallboard from the ACD's per-queue snapshots; teams merged across queues.

    Where nothing was offered yet, service level, ASA and abandon rate are shown as "no calls
    yet" (None) rather than the ACD's neutral 100 % / 0 s / 0 %.
    """
    queues: list[QueueTile] = []
    team_acc: dict[str, list[float]] = {}  # team -> [answered, within SL, wait sum]
    for snap in snapshots:
        logged_in = sum(n for state, n in snap.agents_by_state.items() if state != "logged_out")
        queues.append(
            {
                "queue": snap.queue,
                "waiting": snap.waiting,
                "longest_wait_s": snap.longest_wait_s,
                "agents": {str(state): n for state, n in snap.agents_by_state.items()},
                "service_level": snap.service_level if snap.offered else None,
                "sl_target_s": snap.sl_t_s,
                "sl_goal": snap.sl_goal,
                "asa_s": snap.asa_s if snap.answered else None,
                "abandon_rate": snap.abandon_rate if snap.offered else None,
                "offered": snap.offered,
                "staffing": {
                    "agents_needed": snap.agents_needed,
                    "logged_in": logged_in,
                    "arrival_rate_per_h": snap.arrival_rate_per_h,
                    "aht_s": snap.aht_s,
                },
            }
        )
        for team, figures in snap.teams.items():
            acc = team_acc.setdefault(team, [0.0, 0.0, 0.0])
            acc[0] += figures.answered
            acc[1] += figures.service_level * figures.answered
            acc[2] += figures.asa_s * figures.answered
    # Satisfaction: the mean post-call survey score of the team's agents' calls (a team rated
    # but without calls in the ACD's window still shows it).
    rated = satisfaction or {}
    for team in rated:
        team_acc.setdefault(team, [0.0, 0.0, 0.0])
    teams: list[TeamRow] = [
        {
            "team": team,
            "service_level": within / answered if answered else None,
            "asa_s": waits / answered if answered else None,
            "resolution_rate": None,
            "satisfaction": rated[team][0] if team in rated else None,
            "satisfaction_scale": SURVEY_SCALE if team in rated else None,
            "handled": int(answered),
        }
        for team, (answered, within, waits) in sorted(team_acc.items())
    ]
    return {
        "generated_at": generated_at.isoformat(),
        "window_s": window_s,
        "queues": queues,
        "teams": teams,
    }


class AgentDesk(Protocol):
    """What `AcdAgentControl` needs from the ACD router (`acd.service.Router` has these)."""

    async def agent_login(self, agent_id: str) -> AgentStatus: ...

    async def agent_ready(self, agent_id: str) -> AgentStatus: ...

    async def agent_not_ready(self, agent_id: str, reason: str) -> AgentStatus: ...

    async def agent_logout(self, agent_id: str, *, forced: bool = False) -> AgentStatus: ...


class AgentDirectory(Protocol):
    """Live agent states (`acd.ports.LiveStore` has this)."""

    async def agents(self) -> list[AgentStatus]: ...


class AcdAgentControl:
    """`AgentControl` over the ACD: the desktop's buttons become state-machine events."""

    def __init__(self, *, desk: AgentDesk, directory: AgentDirectory) -> None:
        self._desk = desk
        self._directory = directory

    async def list_agents(self) -> list[AgentView]:
        statuses = sorted(await self._directory.agents(), key=lambda s: s.agent_id)
        return [agent_view(s) for s in statuses]

    async def agent(self, agent_id: str) -> AgentView | None:
        for status in await self._directory.agents():
            if status.agent_id == agent_id:
                return agent_view(status)
        return None

    async def set_state(self, agent_id: str, state: str, reason: str) -> AgentView:
        if state not in SETTABLE_STATES:
            raise ValueError(f"state {state!r} is not one the desktop sets")
        if state == "logged_out":
            return agent_view(await self._desk.agent_logout(agent_id))
        current = await self.agent(agent_id)
        if current is None:
            raise UnknownAgent(agent_id)
        if current["state"] == AgentState.LOGGED_OUT:
            await self._desk.agent_login(agent_id)  # logging in lands in not ready
        if state == "ready":
            return agent_view(await self._desk.agent_ready(agent_id))
        return agent_view(await self._desk.agent_not_ready(agent_id, reason))


class QueueSnapshots(Protocol):
    """Per-queue wallboard figures (`acd.service.Router.snapshot`)."""

    async def snapshot(self, queue: str) -> WallboardSnapshot: ...


class TeamSatisfaction(Protocol):
    async def team_satisfaction(self) -> Mapping[str, tuple[float, int]]:
        """team -> (mean post-call survey score 1..5, number of scores), recent calls."""
        ...


class AcdWallboardFeed:
    """`WallboardFeed` over the ACD: every configured queue's snapshot, in the given order;
    the teams' satisfaction from the post-call surveys when a source is given."""

    def __init__(
        self,
        *,
        source: QueueSnapshots,
        queues: Sequence[str],
        now: Callable[[], datetime],
        window_s: float | None = None,
        satisfaction: TeamSatisfaction | None = None,
    ) -> None:
        self._source = source
        self._queues = list(queues)
        self._now = now
        self._window_s = window_s
        self._satisfaction = satisfaction

    async def wallboard(self) -> WallboardView:
        snapshots = await asyncio.gather(*(self._source.snapshot(q) for q in self._queues))
        rated = None
        if self._satisfaction is not None:
            rated = await self._satisfaction.team_satisfaction()
        return wallboard_view(
            snapshots, generated_at=self._now(), window_s=self._window_s, satisfaction=rated
        )


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, mappings and sequences to plain JSON values (NaN/inf -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# --- app keys and state ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Deps:
    wallboard: WallboardFeed
    agents: AgentControl
    calls: CallsFeed | None
    linker: IdentityLinker | None
    about: Mapping[str, str]
    notices: AgentNotices | None = None
    # The configured not-ready reasons an agent picks from (None: any short label).
    not_ready_reasons: frozenset[str] | None = None


class WallboardHub:
    """Every connected wall screen; one ticker fetches one snapshot per tick for all of them,
    and at once (at most one per `min_gap_s`) when told that something changed (`poke`)."""

    def __init__(
        self, *, feed: WallboardFeed, interval_s: float, min_gap_s: float = WALLBOARD_MIN_GAP_S
    ) -> None:
        self.feed = feed
        self.interval_s = interval_s
        self.clients: set[web.WebSocketResponse] = set()
        self.ticks = 0
        self.feed_errors = 0
        self._failing = False
        self._wake = asyncio.Event()
        self.min_gap_s = min_gap_s
        self.pushes = 0  # snapshots sent early because of a change
        self._changed = asyncio.Event()

    async def snapshot(self) -> Any:
        """The feed's figures as plain JSON values; None if the feed failed or was too slow."""
        try:
            async with asyncio.timeout(WALLBOARD_FEED_TIMEOUT_S):
                data = jsonable(await self.feed.wallboard())
        except Exception:  # a failing feed must not take the screens down; they keep the last
            self.feed_errors += 1
            if not self._failing:  # once per outage, not once per second
                log.exception("wallboard feed failed; screens keep their last figures")
            self._failing = True
            return None
        if self._failing:
            log.info("wallboard feed recovered after %d failures", self.feed_errors)
            self._failing = False
        return data

    async def snapshot_message(self) -> str | None:
        data = await self.snapshot()
        if data is None:
            return None
        return json.dumps({"type": "wallboard", "data": data}, allow_nan=False)

    async def _send(self, ws: web.WebSocketResponse, message: str) -> None:
        try:
            async with asyncio.timeout(WALLBOARD_SEND_TIMEOUT_S):
                await ws.send_str(message)
        except (TimeoutError, ConnectionError, RuntimeError):
            # Stuck or gone: closing ends its handler, which forgets it.
            self.clients.discard(ws)
            await ws.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            if not self.clients:
                await self._wake.wait()  # nobody watching: no feed calls
                self._wake.clear()
                next_tick = loop.time()
            self._changed.clear()  # a change from now on needs another snapshot
            taken = loop.time()
            message = await self.snapshot_message()
            self.ticks += 1
            if message is not None:
                await asyncio.gather(*(self._send(ws, message) for ws in list(self.clients)))
            # A slow feed delays the next tick rather than causing a burst of catch-up ticks.
            next_tick = max(next_tick + self.interval_s, loop.time())
            # Until the next tick, a change (`poke`) sends at once, but no sooner than the
            # minimum gap after the last snapshot: a burst of events is one snapshot. A slow
            # feed (a long day's queue log) spaces them further: busy at most half the time.
            spacing = max(self.min_gap_s, 2 * (loop.time() - taken))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_tick):
                    await self._changed.wait()
                    await asyncio.sleep(max(0.0, taken + spacing - loop.time()))
                    self.pushes += 1
                    next_tick = loop.time()

    def poke(self) -> None:
        """Something the wallboard shows changed (a call entered, an agent answered): push a
        fresh snapshot now instead of at the next tick. Cheap and safe to call often."""
        self._changed.set()

    def add(self, ws: web.WebSocketResponse) -> None:
        self.clients.add(ws)
        self._wake.set()

    async def close_all(self) -> None:
        for ws in list(self.clients):
            await ws.close(code=1001, message=b"server shutting down")
        self.clients.clear()


DEPS = web.AppKey("pages_deps", _Deps)
WALLBOARD_HUB = web.AppKey("wallboard_hub", WallboardHub)


# --- handlers --------------------------------------------------------------------------------


def _page(name: str) -> web.FileResponse:
    response = web.FileResponse(STATIC_DIR / name)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index_page(request: web.Request) -> web.StreamResponse:
    return _page("index.html")


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    return _page("wallboard.html")


async def desktop_page(request: web.Request) -> web.StreamResponse:
    agent_id = request.match_info["agent_id"]
    if await request.app[DEPS].agents.agent(agent_id) is None:
        return web.Response(
            status=404,
            text=f"Unknown agent: {agent_id}\n",  # text/plain: nothing here is markup
            content_type="text/plain",
        )
    return _page("desktop.html")


async def about_api(request: web.Request) -> web.Response:
    return web.json_response({"name": "Centralino", "running": dict(request.app[DEPS].about)})


async def list_agents(request: web.Request) -> web.Response:
    agents = await request.app[DEPS].agents.list_agents()
    visible = reachable_agents(request, ((a["agent_id"], a["teams"]) for a in agents))
    return web.json_response(jsonable([a for a in agents if a["agent_id"] in visible]))


async def get_agent(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent_id"]
    view = await request.app[DEPS].agents.agent(agent_id)
    if view is None:
        return _error(404, f"unknown agent {agent_id!r}")
    return web.json_response(jsonable(view))


async def json_body(
    request: web.Request, *, max_bytes: int = MAX_API_BODY_BYTES
) -> dict[str, Any] | web.Response:
    """The request's JSON object (at most `max_bytes`), or the error response to send instead.

    Requiring `application/json` keeps plain form posts out even before the access
    middleware's Origin and CSRF checks.
    """
    if request.content_type != "application/json":
        return _error(415, "send application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        return _error(413, "body too large")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        return _error(413, "body too large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    return body


async def set_agent_state(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent_id"]
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    state = body.get("state")
    reason = body.get("reason", "")
    if state not in SETTABLE_STATES:
        return _error(400, f"state must be one of {sorted(SETTABLE_STATES)}")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        return _error(400, f"reason must be a string of at most {MAX_REASON_CHARS} characters")
    reason = reason.strip()
    if state == "not_ready" and not reason:
        return _error(400, "not ready needs a reason")
    reasons = request.app[DEPS].not_ready_reasons
    own = current_principal(request).agent_id == agent_id
    # An agent picks one of the configured reasons; a supervisor forcing it may say why freely.
    if state == "not_ready" and own and reasons is not None and reason not in reasons:
        return _error(400, f"reason must be one of {sorted(reasons)}")
    try:
        view = await request.app[DEPS].agents.set_state(agent_id, state, reason)
    except UnknownAgent:
        return _error(404, f"unknown agent {agent_id!r}")
    except IllegalTransition as exc:
        return _error(409, str(exc))
    principal = current_principal(request)
    notices = request.app[DEPS].notices
    if principal.agent_id != agent_id:
        # Someone else (a supervisor, an admin) set it: audited, and the agent is told who.
        note_audit(request, "agent_state_forced", agent_id, state=state, reason=reason)
        if notices is not None:
            notice = {"kind": "state_forced", "by": principal.username}
            await notices.push_notice(agent_id, {**notice, "state": state, "reason": reason})
    log.info("agent %s state -> %s (%s) by %s", agent_id, state, reason or "-", principal.username)
    return web.json_response(jsonable(view))


async def link_identity(request: web.Request) -> web.Response:
    linker = request.app[DEPS].linker
    if linker is None:
        return _error(501, "linking numbers to customers is not configured")
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    kind, value, customer_id = (
        body.get("identity_kind"),
        body.get("identity_value"),
        body.get("customer_id"),
    )
    if not isinstance(kind, str) or not isinstance(value, str) or not kind or not value:
        return _error(400, "identity_kind and identity_value are required strings")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        return _error(400, "customer_id must be a positive integer")
    try:
        await linker.link(identity_kind=kind, identity_value=value, customer_id=customer_id)
    except LookupError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    note_audit(request, "identity_link", f"customer:{customer_id}", kind=kind, value=value[:128])
    return web.json_response({"ok": True})


async def recent_calls(request: web.Request) -> web.Response:
    calls = request.app[DEPS].calls
    try:
        limit = int(request.query.get("limit", DEFAULT_RECENT_CALLS))
    except ValueError:
        return _error(400, "limit must be an integer")
    limit = max(1, min(limit, MAX_RECENT_CALLS))
    if calls is None:
        return web.json_response([])
    agent_ids: set[str] | None = None
    if current_principal(request).role is not Role.ADMIN:
        agents = await request.app[DEPS].agents.list_agents()
        agent_ids = reachable_agents(request, ((a["agent_id"], a["teams"]) for a in agents))
    return web.json_response(jsonable(await calls.recent_calls(limit, agent_ids=agent_ids)))


async def get_wallboard(request: web.Request) -> web.Response:
    data = await request.app[WALLBOARD_HUB].snapshot()
    if data is None:
        return _error(503, "wallboard figures are unavailable right now")
    return web.json_response(data)


async def wallboard_ws(request: web.Request) -> web.StreamResponse:
    hub = request.app[WALLBOARD_HUB]
    if len(hub.clients) >= MAX_WALLBOARD_CLIENTS:
        return _error(503, "too many wallboards connected")
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=WALLBOARD_WS_MAX_MSG)
    await ws.prepare(request)
    first = await hub.snapshot_message()  # the screen is not blank until the next tick
    if first is not None:
        await ws.send_str(first)
    hub.add(ws)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                break
            # Screens have nothing to say; whatever they send is ignored.
    finally:
        hub.clients.discard(ws)
    return ws


# --- wiring ----------------------------------------------------------------------------------


def add_pages(
    app: web.Application,
    *,
    wallboard: WallboardFeed,
    agents: AgentControl,
    calls: CallsFeed | None = None,
    linker: IdentityLinker | None = None,
    about: Mapping[str, str] | None = None,
    wallboard_interval_s: float = 1.0,
    notices: AgentNotices | None = None,
    not_ready_reasons: Collection[str] | None = None,
) -> None:
    """Register the pages, their JSON API and the wallboard WebSocket on `app`.

    `about` lists what this process runs, shown on the index (e.g. {"FastAGI": "0.0.0.0:4573"}).
    `notices` tells an agent's desktop when someone else set their state.
    `not_ready_reasons`: the reasons an agent may choose (from `[acd] not_ready_reasons`).
    """
    if wallboard_interval_s <= 0:
        raise ValueError("wallboard_interval_s must be positive")
    app[DEPS] = _Deps(
        wallboard=wallboard,
        agents=agents,
        calls=calls,
        linker=linker,
        about=dict(about or {}),
        notices=notices,
        not_ready_reasons=frozenset(not_ready_reasons) if not_ready_reasons else None,
    )
    hub = WallboardHub(feed=wallboard, interval_s=wallboard_interval_s)
    app[WALLBOARD_HUB] = hub

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run(), name="wallboard-ticker")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close_screens(app: web.Application) -> None:
        await hub.close_all()

    app.cleanup_ctx.append(ticker)
    app.on_shutdown.append(close_screens)

    r = app.router
    r.add_get("/", index_page)
    r.add_get("/desktop/{agent_id}", desktop_page)
    r.add_get("/wallboard", wallboard_page)
    r.add_get("/api/about", about_api)
    r.add_get("/api/agents", list_agents)
    r.add_get("/api/agents/{agent_id}", get_agent)
    r.add_post("/api/agents/{agent_id}/state", set_agent_state)
    r.add_post("/api/identities/link", link_identity)
    r.add_get("/api/calls/recent", recent_calls)
    r.add_get("/api/wallboard", get_wallboard)
    r.add_get("/ws/wallboard", wallboard_ws)
    r.add_static("/static/", STATIC_DIR, append_version=False)
