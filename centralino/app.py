"""The composition root: settings → pools and clients → stores → domain services → protocol
servers → web app, built top to bottom in one place and torn down in reverse.

`running(settings, ...)` is an async context manager yielding the live `Runtime`; `serve()` is
`centralino serve`; the demo (`centralino.demo.world`) wraps the same root with embedded storage,
demo backends and the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace

import asyncpg
import numpy as np
import redis.asyncio as aioredis
from aiohttp import web

from acd.models import (
    ActionKind,
    AgentDefinition,
    AgentState,
    QueueAction,
    QueuePolicy,
    RoutingStep,
    Strategy,
)
from acd.ports import SystemClock as AcdClock
from acd.service import Router
from centralino.access.passwords import Passwords
from centralino.access.policy import LoginLimits, SessionPolicy
from centralino.adapters.call_journal import FileCallJournal
from centralino.adapters.http_client import HttpClient
from centralino.adapters.http_connector import (
    FactExtract,
    HttpBackendConfig,
    HttpConnector,
    HttpRequestSpec,
)
from centralino.adapters.pg_accounts import PgAccounts
from centralino.adapters.pg_calls import ContextIdentityLinker, PgCallsFeed, PgTeamSatisfaction
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_desk import PgDeskRecords
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.pg_reports import PgReportSource
from centralino.adapters.record_spool import SpooledTimelineStore
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.adapters.redis_call_context import RedisCallContextStore
from centralino.adapters.redis_login_limiter import RedisLoginLimiter
from centralino.adapters.wallboard_changes import NotifyingQueueLog, WallboardChanges
from centralino.admin.models import Builders, Config, bootstrap
from centralino.admin.store import PgConfigStore
from centralino.admin.watch import ConfigWatch
from centralino.ami_watch import DeviceWatch, DialWatch, TransferWatch
from centralino.asterisk.agi_server import AgiRouter, FastAgiServer
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import DEFAULT_SERVER, AmiGroup
from centralino.asterisk.audiosocket_server import AudioSocketServer
from centralino.callbacks import CallbackDialer
from centralino.desk_transfer import AmiDeskTransfer
from centralino.flows import FlowStore
from centralino.gc_tuning import startup_objects_frozen
from centralino.inbound_script import InboundHandler, audiosocket_call
from centralino.messaging import add_messaging
from centralino.metrics import Metrics
from centralino.observability import register_checks, register_metrics
from centralino.recovery import LiveStateGuard
from centralino.settings import AgentSettings, QueueSettings, Settings, SettingsError
from centralino.speech import load_speech
from centralino.storage.connections import postgres_pool, redis_client
from centralino.storage.migrate import apply_migrations
from centralino.supervision import Supervision
from centralino.web.admin import add_admin
from centralino.web.app import init_app
from centralino.web.auth import Access, AccessConfig, add_access, origins_from_urls
from centralino.web.desktop_api import ContextDeskTickets, DeskConfig, add_desktop_api
from centralino.web.desktop_ws import DesktopHub
from centralino.web.health import Readiness
from centralino.web.openapi import add_openapi
from centralino.web.pages import WALLBOARD_HUB, AcdAgentControl, AcdWallboardFeed, add_pages
from centralino.web.reports import ReportsConfig, add_reports, reports_config
from centralino.web.supervision import add_supervision
from contact.inbound import record_failed_call
from contact.ports import JournalEntry
from contact.reconcile import ReconcilePolicy
from contact.rules import route_problems
from context.clock import SystemClock as ContextClock
from context.fanout import PreAnswerFanout
from context.identity import PhoneNormaliser
from context.service import ContextService
from ivr.flow.check import reference_problems
from ivr.inbound import FlowSettings
from ivr.intent import INTENTS, IntentModel
from ivr.speech import RecognizerFactory

log = logging.getLogger(__name__)

# Connections per backend host: the fan-out runs one request per backend per call, and a burst
# of 200 calls must not queue behind a small pool (the tail of the screen-pop benchmark).
HTTP_CONNECTIONS_PER_HOST = 256
DEFAULT_RECONCILE = ReconcilePolicy()


def queue_policy(q: QueueSettings) -> QueuePolicy:
    steps = tuple(
        RoutingStep(
            after_s=s.after_s,
            preferred_only=s.preferred_only,
            min_level=s.min_level,
            action=QueueAction(ActionKind(s.action), target=s.target),
        )
        for s in q.steps
    )
    no_agents = QueueAction(ActionKind(q.on_no_agents))
    return QueuePolicy(
        name=q.name,
        skill=q.skill,
        steps=steps,
        strategy=Strategy(q.strategy),
        max_length=q.max_length,
        max_wait_s=q.max_wait_s,
        on_no_agents=no_agents,
        sl_target_s=q.sl_target_s,
        sl_goal=q.sl_goal,
    )


def agent_definition(a: AgentSettings) -> AgentDefinition:
    return AgentDefinition(
        agent_id=a.id,
        skills=dict(a.skills),
        teams=frozenset(a.teams),
        languages=frozenset(a.languages),
        endpoint=a.endpoint or f"PJSIP/{a.id}",
        wrap_up_s=a.wrap_up_s,
    )


def backend_configs(settings: Settings) -> list[HttpBackendConfig]:
    return [
        HttpBackendConfig(
            name=b.name,
            base_url=b.base_url,
            requests=tuple(
                HttpRequestSpec(
                    url_template=r.url_template,
                    extracts=tuple(
                        FactExtract(kind=e.kind, items_path=e.items_path, fields=dict(e.fields))
                        for e in r.extracts
                    ),
                )
                for r in b.requests
            ),
            needs_link=b.needs_link,
            auth_header=b.auth_header,
            auth_env=b.auth_env,
            timeout_s=b.timeout_ms / 1000,
            max_body_bytes=b.max_body_bytes,
        )
        for b in settings.context.backends
    ]


@dataclass(slots=True)
class Runtime:
    """Everything one Centralino process runs, for the CLI, the demo and the tests."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    context: ContextService
    fanout: PreAnswerFanout
    router: Router
    live: RedisLiveStore
    hub: DesktopHub
    agents: Mapping[str, AgentDefinition]
    agi: FastAgiServer
    audiosocket: AudioSocketServer
    ami: AmiGroup | None
    web_runner: web.AppRunner
    http_port: int
    metrics: Metrics
    readiness: Readiness
    outcomes: dict[str, int] = field(default_factory=dict)
    access: Access | None = None
    # language -> speech engine (settings [speech]); empty: DTMF only
    speech: Mapping[str, RecognizerFactory] = field(default_factory=dict)


async def _keep_ami_connected(client: AmiClient, initial_s: float = 0.5) -> None:
    """Connect in the background: Asterisk may start after us; the client reconnects itself
    once it has been connected, this loop only covers the first connection."""
    delay = initial_s
    while True:
        try:
            await client.connect()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, auth failure, timeout: say so and retry
            log.warning("AMI not reachable yet (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


@dataclass(frozen=True, slots=True)
class _Staff:
    """The agents, as the ACD, routing and the CRM's account owners know them."""

    definitions: Sequence[AgentDefinition]
    owners: Mapping[str, str]  # CRM account owner (agent id or name) -> agent id

    @property
    def by_id(self) -> dict[str, AgentDefinition]:
        return {a.agent_id: a for a in self.definitions}

    @property
    def endpoints(self) -> dict[str, str]:
        return {a.agent_id: a.endpoint for a in self.definitions}


def _staff(
    settings: Settings,
    agents: Sequence[AgentDefinition] | None,
    agent_names: Mapping[str, str] | None,
) -> _Staff:
    definitions = (
        list(agents) if agents is not None else [agent_definition(a) for a in settings.acd.agents]
    )
    owners = {a.agent_id: a.agent_id for a in definitions}
    owners.update({a.name: a.id for a in settings.acd.agents if a.name})
    owners.update(agent_names or {})
    problems = route_problems(
        settings.contact.routes(), queues=[q.name for q in settings.acd.queues], agents=definitions
    )
    if problems:
        raise SettingsError("contact.intents: " + "; ".join(problems))
    return _Staff(definitions=definitions, owners=owners)


async def _context(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    backends: Sequence[HttpBackendConfig] | None,
) -> tuple[ContextService, PreAnswerFanout, PhoneNormaliser]:
    http = await stack.enter_async_context(
        HttpClient(max_connections_per_origin=HTTP_CONNECTIONS_PER_HOST)
    )
    clock = ContextClock()
    phones = PhoneNormaliser(default_region=settings.context.default_region)
    # Entered after the pool, so it stops (its writer task with it) before the pool closes.
    timeline = await stack.enter_async_context(
        SpooledTimelineStore(
            inner=PgTimelineStore(pool=pool), spool_dir=settings.database.spool_dir
        )
    )
    context = ContextService(
        customers=PgCustomerStore(pool=pool),
        timeline=timeline,
        tickets=PgTicketStore(pool=pool),
        clock=clock,
        phones=phones,
    )
    configs = list(backends) if backends is not None else backend_configs(settings)
    call_context = RedisCallContextStore(redis=redis, ttl_s=settings.redis.call_context_ttl_s)
    stack.push_async_callback(call_context.aclose)
    fanout = PreAnswerFanout(
        service=context,
        connectors=[HttpConnector(config=c, client=http, clock=clock) for c in configs],
        call_context=call_context,
        clock=clock,
        deadline_s=settings.context.deadline_ms / 1000,
        source_timeouts_s={c.name: c.timeout_s for c in configs},
    )
    stack.push_async_callback(fanout.aclose)
    return context, fanout, phones


def _ami_client(
    settings: Settings, endpoint: tuple[str, int, str, str] | None, *, owner: str
) -> AmiGroup | None:
    """One AMI link per Asterisk server ([ami], then `ami.servers`), as one group."""
    if endpoint is None and not (settings.ami.enabled and settings.ami.secret is not None):
        return None
    host, port, user, secret = endpoint or (
        settings.ami.host,
        settings.ami.port,
        settings.ami.username,
        settings.ami.secret.get_secret_value() if settings.ami.secret else "",
    )

    def client(host: str, port: int, user: str, secret: str) -> AmiClient:
        return AmiClient(
            host=host,
            port=port,
            username=user,
            secret=secret,
            rng=np.random.default_rng(),
            ping_interval_s=settings.ami.ping_interval_s,
            # Every process sees every event (OriginateResponse too): ActionIDs tell whose.
            action_id_prefix=f"centralino-{owner}",
        )

    clients = {DEFAULT_SERVER: client(host, port, user, secret)}
    for server in settings.ami.servers:  # secrets checked present when the settings loaded
        secret = os.environ.get(server.secret_env, "")
        clients[server.name] = client(server.host, server.port, server.username, secret)
    placed = {agent_definition(a).endpoint: a.asterisk for a in settings.acd.agents if a.asterisk}
    return AmiGroup(clients, endpoints=placed)


async def _acd(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    ami: AmiGroup | None,
    staff: _Staff,
    owner: str,
    live_check_s: float,
    reconcile: ReconcilePolicy | None,
    changes: WallboardChanges | None = None,
) -> tuple[Router, RedisLiveStore]:
    # The router takes the dialer as its hook, so the dialer reaches it through a getter.
    callbacks = CallbackDialer(ami=ami, router=lambda: router) if ami is not None else None
    live = RedisLiveStore(client=redis)
    await live.load_scripts()
    queue_log = PgQueueLog(pool=pool)
    if changes is not None:  # every queue-log write pushes the wallboards at once
        queue_log = NotifyingQueueLog(pool=pool, changed=changes.changed)
    clock = AcdClock()
    router = Router(
        store=live,
        queue_log=queue_log,
        clock=clock,
        queues={q.name: queue_policy(q) for q in settings.acd.queues},
        agents=staff.by_id,
        owner=owner,
        on_detached_offer=callbacks,
    )
    guard = LiveStateGuard(
        redis=redis,
        router=router,
        queue_log=queue_log,
        clock=clock,
        agents=staff.endpoints,
        ami=ami,
        owner=owner,
        interval_s=live_check_s,
        reconcile=reconcile,
    )
    await guard.check()  # a fresh (or restarted) Redis: restore agents and callbacks
    await router.start()
    stack.push_async_callback(router.aclose)
    if callbacks is not None:
        stack.push_async_callback(callbacks.aclose)  # before the router: each releases its hold
    guard_task = asyncio.create_task(guard.run(), name="live-state-guard")

    async def stop_guard() -> None:
        guard.close()
        guard_task.cancel()
        await asyncio.gather(guard_task, return_exceptions=True)

    stack.push_async_callback(stop_guard)
    return router, live


def _telephony_watchers(
    ami: AmiGroup | None, settings: Settings, staff: _Staff, router: Router
) -> tuple[DialWatch | None, TransferWatch | None]:
    """AMI's word on answers, transfers and agents' phones (none without AMI)."""
    if ami is None:
        return None, None
    answers = DialWatch()
    answers.attach(ami)
    transfers = TransferWatch(queues=settings.acd.transfer_queues(), endpoints=staff.endpoints)
    transfers.attach(ami)

    async def force_logout(agent_id: str) -> object:
        return await router.agent_logout(agent_id, forced=True)

    DeviceWatch(endpoints=staff.endpoints, logout=force_logout).attach(ami)
    return answers, transfers


def _protocol_servers(
    settings: Settings, inbound: InboundHandler
) -> tuple[FastAgiServer, AudioSocketServer]:
    server = settings.server
    agi_router = AgiRouter()
    agi_router.add("inbound", inbound)
    agi = FastAgiServer(
        router=agi_router,
        host=server.host,
        port=server.agi_port,
        idle_timeout_s=server.idle_timeout_s,
        grace_s=server.grace_s,
    )
    audiosocket = AudioSocketServer(
        host=server.host, port=server.audiosocket_port, on_call=audiosocket_call
    )
    return agi, audiosocket


def _web_app(
    settings: Settings,
    *,
    metrics: Metrics,
    readiness: Readiness,
    hub: DesktopHub,
    router: Router,
    live: RedisLiveStore,
    pool: asyncpg.Pool,
    context: ContextService,
    phones: PhoneNormaliser,
    ami: AmiGroup | None,
    access: Access,
    teams: Mapping[str, frozenset[str]] | None = None,
    supervision: Supervision | None = None,
    reports: ReportsConfig | None = None,
    agents: Mapping[str, AgentDefinition] | None = None,
    admin: _Managed | None = None,
    flows: FlowStore | None = None,
) -> web.Application:
    app = init_app(readiness=readiness, metrics_registry=metrics)
    add_access(app, access)
    add_openapi(app)
    if admin is not None:
        add_admin(
            app,
            store=admin.store,
            flows=(lambda: flows.library) if flows is not None else None,
            reasons=lambda: admin.reasons,
        )
    if supervision is not None:
        add_supervision(app, supervision)
    if reports is not None:
        add_reports(app, source=PgReportSource(pool=pool), config=reports)
    app.router.add_get("/ws/agent/{agent_id}", hub.handle)
    add_pages(
        app,
        wallboard=AcdWallboardFeed(
            source=router,
            queues=[q.name for q in settings.acd.queues],
            now=context.clock.now,
            satisfaction=PgTeamSatisfaction(
                pool=pool, teams=dict(teams or {}), now=context.clock.now
            ),
        ),
        agents=AcdAgentControl(desk=router, directory=live),
        calls=PgCallsFeed(pool=pool),
        linker=ContextIdentityLinker(context=context, phones=phones),
        about=_about(settings, ami),
        notices=hub,
        not_ready_reasons=settings.acd.not_ready_reasons,
    )
    add_desktop_api(
        app,
        config=DeskConfig(
            not_ready_reasons=settings.acd.not_ready_reasons,
            outcomes=settings.acd.wrap_up_outcomes,
        ),
        records=PgDeskRecords(pool=pool),
        now=context.clock.now,
        tickets=ContextDeskTickets(context=context),
        transfer=AmiDeskTransfer(
            ami=ami, agents=agents or {}, queues=[q.name for q in settings.acd.queues]
        ),
    )
    add_messaging(app, settings, pool=pool, context=context, phones=phones, router=router, hub=hub)
    return app


def _access(
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    staff: _Staff,
    context: ContextService,
) -> Access:
    """Accounts in PostgreSQL, failed-login counters in Redis, the policy from settings."""
    a = settings.access
    return Access(
        accounts=PgAccounts(pool=pool),
        limiter=RedisLoginLimiter(
            redis=redis,
            limits=LoginLimits(
                max_failures_per_user=a.login_max_failures,
                max_failures_per_address=a.login_max_failures_per_address,
                window_s=a.login_window_s,
            ),
        ),
        passwords=Passwords(),
        config=AccessConfig(
            origins=origins_from_urls(a.public_urls),
            cookie_secure=a.cookie_secure,
            session=SessionPolicy(ttl_s=a.session_ttl_s, idle_s=a.session_idle_s),
            ws_recheck_s=a.ws_recheck_s,
        ),
        agent_teams={agent_id: d.teams for agent_id, d in staff.by_id.items()},
        now=context.clock.now,
    )


def _supervision(ami: AmiGroup | None, staff: _Staff, live: RedisLiveStore) -> Supervision:
    """Listen, whisper, barge: over AMI, for an agent the live state shows on a call."""

    async def state(agent_id: str) -> AgentState | None:
        return next((a.state for a in await live.agents() if a.agent_id == agent_id), None)

    return Supervision(ami=ami, agents=staff.by_id, agent_state=state)


def _about(settings: Settings, ami: AmiGroup | None) -> dict[str, str]:
    server = settings.server
    return {
        "FastAGI": f"{server.host}:{server.agi_port}",
        "AudioSocket": f"{server.host}:{server.audiosocket_port}",
        "AMI": "off" if ami is None else ami.describe(),
    }


async def _start_ami(stack: AsyncExitStack, ami: AmiGroup | None) -> None:
    if ami is None:
        return
    tasks = [
        asyncio.create_task(_keep_ami_connected(client), name=f"ami-connect-{name or 'main'}")
        for name, client in ami.clients.items()
    ]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await ami.close()

    stack.push_async_callback(stop)


async def _start_web(
    stack: AsyncExitStack, app: web.Application, settings: Settings
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, settings.server.host, settings.server.http_port)
    await site.start()
    return runner, bound_port(site)


async def _call_journal(
    stack: AsyncExitStack, settings: Settings, context: ContextService, *, database_url: str
) -> FileCallJournal:
    """Calls in progress, on disk beside the record spool: entering records the calls of
    processes that died (theirs are files nobody holds); see `adapters.call_journal`."""

    async def record_orphan(entry: JournalEntry) -> None:
        await record_failed_call(context, entry)

    return await stack.enter_async_context(
        FileCallJournal(
            directory=settings.database.spool_dir,
            scope=hashlib.sha256(database_url.encode()).hexdigest()[:12],
            record_orphan=record_orphan,
        )
    )


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    database_url: str,
    redis_url: str,
    backends: Sequence[HttpBackendConfig] | None = None,
    agents: Sequence[AgentDefinition] | None = None,
    agent_names: Mapping[str, str] | None = None,
    ami_endpoint: tuple[str, int, str, str] | None = None,
    flow: FlowSettings | None = None,
    owner: str | None = None,
    live_check_s: float = 2.0,
    reconcile: ReconcilePolicy | None = DEFAULT_RECONCILE,
    flows: FlowStore | None = None,
    sighup_reloads_flows: bool = False,
    managed_config: bool = False,
) -> AsyncIterator[Runtime]:
    """Build and start everything; on exit stop it in reverse order (graceful for calls).

    `reconcile`: how the periodic sweep frees what a failure left behind (agents reserved or
    busy, callers queued, with no channel on Asterisk); None turns it off, for a telephony peer
    whose channel list does not show its calls.

    `managed_config`: agents, teams, queues and not-ready reasons come from PostgreSQL (seeded
    from these settings at the first start, then managed through /api/admin and followed by
    every process: `centralino.admin`); `serve` and `centralino demo` turn it on."""
    server = settings.server
    staff = _staff(settings, agents, agent_names)
    # Before any connection: a flow with a problem (a missing prompt, an unknown queue) stops
    # the start with a message naming the flow and the step.
    flows = flows or FlowStore(settings=settings)
    async with AsyncExitStack() as stack:
        await _watch_flows(stack, flows, sighup=sighup_reloads_flows)
        pool = await stack.enter_async_context(
            postgres_pool(
                database_url,
                min_size=settings.database.pool_min,
                max_size=settings.database.pool_max,
            )
        )
        redis = await stack.enter_async_context(redis_client(redis_url))
        managed = None
        if managed_config:
            managed = await _managed_config(pool, settings, staff, agent_names, flows=flows)
            settings, staff = managed.settings, managed.staff
        context, fanout, phones = await _context(
            stack, settings, pool=pool, redis=redis, backends=backends
        )
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        ami = _ami_client(settings, ami_endpoint, owner=owner)
        # AMI first: the start-up rebuild of the live state needs Asterisk's channels.
        await _start_ami(stack, ami)
        changes = WallboardChanges(redis=redis)
        router, live = await _acd(
            stack,
            settings,
            pool=pool,
            redis=redis,
            ami=ami,
            staff=staff,
            owner=owner,
            live_check_s=live_check_s,
            reconcile=reconcile,
            changes=changes,
        )
        answers, transfers = _telephony_watchers(ami, settings, staff, router)
        agents_now = staff.by_id  # updated in place when the managed configuration changes
        hub = DesktopHub(clock=context.clock, agents=agents_now.keys(), redis=redis)
        outcomes: dict[str, int] = {}
        inbound = InboundHandler(
            fanout=fanout,
            context=context,
            router=router,
            hub=hub,
            agents=agents_now,
            owners=staff.owners,
            model=IntentModel.train(),
            flow=flow or FlowSettings(),
            outcomes=outcomes,
            dial_watch=answers,
            transfer_watch=transfers,
            routes=settings.contact.routes(),
            queues=[q.name for q in settings.acd.queues],
            journal=await _call_journal(stack, settings, context, database_url=database_url),
            flows=lambda: flows.library,
        )
        agi, audiosocket = _protocol_servers(settings, inbound)
        speech = load_speech(settings.speech)  # a missing model stops the start here
        metrics, readiness = Metrics(), Readiness()
        access = _access(settings, pool=pool, redis=redis, staff=staff, context=context)
        if managed is not None:
            await _follow_config(
                stack,
                managed,
                database_url=database_url,
                router=router,
                access=access,
                agents_now=agents_now,
                flows=flows,
                inbound=inbound,
            )
        app = _web_app(
            settings,
            metrics=metrics,
            readiness=readiness,
            hub=hub,
            router=router,
            live=live,
            pool=pool,
            context=context,
            phones=phones,
            ami=ami,
            teams={agent_id: a.teams for agent_id, a in staff.by_id.items()},
            access=access,
            supervision=_supervision(ami, staff, live),
            reports=reports_config(queues=settings.acd.queues, agents=staff.definitions),
            agents=staff.by_id,
            admin=managed,
            flows=flows,
        )

        # Started in this order and stopped in the reverse one: on exit the FastAGI server
        # goes first, handing calls back to the dialplan while AMI (answers, transfers) and
        # the desktops still work; then the desktops are closed (an open one must not hold up
        # the web server), the web server, and (after the ACD) AMI last.
        runner, http_port = await _start_web(stack, app, settings)
        if not settings.access.public_urls:
            access.allow_local(http_port, hosts=("127.0.0.1", "localhost", server.host))
            if server.host not in ("127.0.0.1", "localhost", "::1"):
                log.warning(
                    "access.public_urls is empty: pages answer only as %s; set "
                    "CENTRALINO_ACCESS_PUBLIC_URLS to the address people open",
                    ", ".join(sorted(map(str, access.config.origins))),
                )
        await _start_wallboard_changes(stack, changes, app)
        await hub.start()  # pops from the other processes; desktops held meanwhile are included
        stack.push_async_callback(hub.close)
        await audiosocket.start()
        stack.push_async_callback(audiosocket.stop)
        await agi.start()  # last: nothing is accepted before everything behind it exists
        stack.push_async_callback(agi.stop)

        runtime = Runtime(
            settings=settings,
            pool=pool,
            redis=redis,
            context=context,
            fanout=fanout,
            router=router,
            live=live,
            hub=hub,
            agents=agents_now,
            agi=agi,
            audiosocket=audiosocket,
            ami=ami,
            web_runner=runner,
            http_port=http_port,
            metrics=metrics,
            readiness=readiness,
            outcomes=outcomes,
            access=access,
            speech=speech,
        )
        register_checks(runtime)
        register_metrics(runtime)
        readiness.started.set()
        log.info(
            "Centralino ready: FastAGI %s:%d, AudioSocket %s:%d, HTTP http://%s:%d/",
            server.host,
            agi.port,
            server.host,
            audiosocket.port,
            server.host,
            http_port,
        )
        yield runtime
        log.info("stopping: no new calls; %d in progress", agi.calls_active)


async def _start_wallboard_changes(
    stack: AsyncExitStack, changes: WallboardChanges, app: web.Application
) -> None:
    """Changes from every process (queue-log writes) push this process's wallboards."""
    changes.listen(app[WALLBOARD_HUB].poke)
    await changes.start()
    stack.push_async_callback(changes.close)


ADMIN_BUILDERS = Builders(queue_policy=queue_policy, agent_definition=agent_definition)


@dataclass(frozen=True, slots=True)
class _Managed:
    """The configuration PostgreSQL holds, as the start of a process sees it."""

    store: PgConfigStore
    settings: Settings  # the TOML settings with acd.agents and acd.queues from the database
    staff: _Staff
    capacities: Mapping[str, AgentDefinition]  # agents given in code (the demo's): capacity kept
    reasons: list[str]  # the not-ready reasons' labels, updated in place by the watch


def _agent_settings(d: AgentDefinition, name: str) -> AgentSettings:
    return AgentSettings(
        id=d.agent_id,
        name=name,
        skills=dict(d.skills),
        teams=sorted(d.teams),
        languages=sorted(d.languages),
        endpoint=d.endpoint,
        wrap_up_s=d.wrap_up_s,
    )


def _managed_definition(a: AgentSettings, given: Mapping[str, AgentDefinition]) -> AgentDefinition:
    d = agent_definition(a)
    return replace(d, capacity=given[a.id].capacity) if a.id in given else d


async def _managed_config(
    pool: asyncpg.Pool,
    settings: Settings,
    staff: _Staff,
    agent_names: Mapping[str, str] | None,
    *,
    flows: FlowStore | None = None,
) -> _Managed:
    """Seed the tables from the settings at the first start (the bootstrap), then read them:
    from then on the database wins over the TOML file's agents and queues."""
    builders = ADMIN_BUILDERS
    if flows is not None:
        store_of_flows = flows

        def flow_problems(queues: Sequence[str]) -> list[str]:
            library = store_of_flows.library
            return reference_problems(
                library.flows, queues=queues, intents=INTENTS, hooks=store_of_flows.hooks
            )

        builders = replace(builders, flow_problems=flow_problems)
    store = PgConfigStore(pool=pool, settings=settings, builders=builders)
    names = {a.id: a.name for a in settings.acd.agents}
    agents = [_agent_settings(d, names.get(d.agent_id, "")) for d in staff.definitions]
    boot = settings.model_copy(update={"acd": settings.acd.model_copy(update={"agents": agents})})
    await store.seed(bootstrap(boot))
    config = await store.load()
    managed = settings.model_copy(
        update={
            "acd": settings.acd.model_copy(
                update={"agents": config.agent_settings(), "queues": config.queue_settings()}
            )
        }
    )
    given = staff.by_id
    definitions = [_managed_definition(a, given) for a in config.agent_settings()]
    return _Managed(
        store=store,
        settings=managed,
        staff=_staff(managed, definitions, agent_names),
        capacities=given,
        reasons=config.reason_labels(),
    )


async def _follow_config(
    stack: AsyncExitStack,
    managed: _Managed,
    *,
    database_url: str,
    router: Router,
    access: Access,
    agents_now: dict[str, AgentDefinition],
    flows: FlowStore | None = None,
    inbound: InboundHandler | None = None,
) -> ConfigWatch:
    """Apply every committed configuration change in this process (README "Administration"
    lists what follows at once and what waits for a restart)."""

    async def apply(config: Config) -> None:
        definitions = {
            a.id: _managed_definition(a, managed.capacities) for a in config.agent_settings()
        }
        await router.reconfigure(
            queues={q.name: queue_policy(q) for q in config.queue_settings()}, agents=definitions
        )
        agents_now.clear()
        agents_now.update(definitions)
        access.agent_teams = {agent_id: d.teams for agent_id, d in definitions.items()}
        managed.reasons[:] = config.reason_labels()
        if inbound is not None:  # the queues a FastAGI request's ?queue= may name
            inbound.queues = [q.name for q in config.queue_settings()]
        if flows is not None:  # a flow file reloaded later is checked against these queues
            acd = flows.settings.acd.model_copy(update={"queues": config.queue_settings()})
            flows.settings = flows.settings.model_copy(update={"acd": acd})

    watch = ConfigWatch(dsn=database_url, store=managed.store, apply=apply)
    await watch.start()
    stack.push_async_callback(watch.aclose)
    return watch


async def _watch_flows(stack: AsyncExitStack, flows: FlowStore, *, sighup: bool) -> None:
    """Reload flows when their files change, and on SIGHUP (`serve` only: tests and the demo
    share a process whose signals are not theirs)."""
    watcher = asyncio.create_task(flows.watch(), name="flows-watch")

    async def stop() -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    stack.push_async_callback(stop)
    if sighup:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, flows.request_reload)
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)


def bound_port(site: web.TCPSite) -> int:
    """The port a site listens on (aiohttp has no public accessor; port 0 picks one)."""
    sockets: list[socket.socket] = list(getattr(site._server, "sockets", None) or [])
    if not sockets:
        raise RuntimeError(f"{site.name} is not listening")
    return int(sockets[0].getsockname()[1])


async def migrate(settings: Settings) -> int:
    assert settings.database.url is not None
    conn = await asyncpg.connect(settings.database.url.get_secret_value())
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    print(f"{len(applied)} migration(s) applied")
    return 0


async def serve(settings: Settings) -> int:
    assert settings.database.url is not None and settings.redis.url is not None
    async with running(
        settings,
        database_url=settings.database.url.get_secret_value(),
        redis_url=settings.redis.url.get_secret_value(),
        sighup_reloads_flows=True,
        managed_config=True,
    ):
        with startup_objects_frozen():
            await asyncio.Event().wait()  # until cancelled by a signal
    return 0
