"""The composition root: settings → pools and clients → stores → domain services → protocol
servers → web app, built top to bottom in one place and torn down in reverse.

`running(settings, ...)` is an async context manager yielding the live `Runtime`; `serve()` is
`centralino serve`; the demo (`centralino.demo.world`) wraps the same root with embedded storage,
demo backends and the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import numpy as np
import redis.asyncio as aioredis
from aiohttp import web

from acd.models import (
    ActionKind,
    AgentDefinition,
    QueueAction,
    QueuePolicy,
    RoutingStep,
    Strategy,
)
from acd.ports import SystemClock as AcdClock
from acd.service import Router
from centralino.adapters.http_client import HttpClient
from centralino.adapters.http_connector import (
    FactExtract,
    HttpBackendConfig,
    HttpConnector,
    HttpRequestSpec,
)
from centralino.adapters.pg_calls import ContextIdentityLinker, PgCallsFeed
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.record_spool import SpooledTimelineStore
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.adapters.redis_call_context import RedisCallContextStore
from centralino.ami_watch import DeviceWatch, DialWatch, TransferWatch
from centralino.asterisk.agi_server import AgiRouter, FastAgiServer
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.audiosocket_server import AudioSocketServer
from centralino.callbacks import CallbackDialer
from centralino.gc_tuning import startup_objects_frozen
from centralino.inbound_script import InboundHandler, audiosocket_call
from centralino.metrics import Metrics
from centralino.observability import register_checks, register_metrics
from centralino.recovery import LiveStateGuard
from centralino.settings import AgentSettings, QueueSettings, Settings, SettingsError
from centralino.speech import load_speech
from centralino.storage.connections import postgres_pool, redis_client
from centralino.storage.migrate import apply_migrations
from centralino.web.app import init_app
from centralino.web.desktop_ws import DesktopHub
from centralino.web.health import Readiness
from centralino.web.pages import AcdAgentControl, AcdWallboardFeed, add_pages
from contact.reconcile import ReconcilePolicy
from contact.rules import route_problems
from context.clock import SystemClock as ContextClock
from context.fanout import PreAnswerFanout
from context.identity import PhoneNormaliser
from context.service import ContextService
from ivr.inbound import FlowSettings
from ivr.intent import IntentModel
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
    ami: AmiClient | None
    web_runner: web.AppRunner
    http_port: int
    metrics: Metrics
    readiness: Readiness
    outcomes: dict[str, int] = field(default_factory=dict)
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
) -> AmiClient | None:
    if endpoint is None and not (settings.ami.enabled and settings.ami.secret is not None):
        return None
    host, port, user, secret = endpoint or (
        settings.ami.host,
        settings.ami.port,
        settings.ami.username,
        settings.ami.secret.get_secret_value() if settings.ami.secret else "",
    )
    return AmiClient(
        host=host,
        port=port,
        username=user,
        secret=secret,
        rng=np.random.default_rng(),
        ping_interval_s=settings.ami.ping_interval_s,
        # Every process sees every event (OriginateResponse too): ActionIDs tell whose it is.
        action_id_prefix=f"centralino-{owner}",
    )


async def _acd(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    ami: AmiClient | None,
    staff: _Staff,
    owner: str,
    live_check_s: float,
    reconcile: ReconcilePolicy | None,
) -> tuple[Router, RedisLiveStore]:
    # The router takes the dialer as its hook, so the dialer reaches it through a getter.
    callbacks = CallbackDialer(ami=ami, router=lambda: router) if ami is not None else None
    live = RedisLiveStore(client=redis)
    await live.load_scripts()
    queue_log = PgQueueLog(pool=pool)
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
    ami: AmiClient | None, settings: Settings, staff: _Staff, router: Router
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
    ami: AmiClient | None,
) -> web.Application:
    app = init_app(readiness=readiness, metrics_registry=metrics)
    app.router.add_get("/ws/agent/{agent_id}", hub.handle)
    add_pages(
        app,
        wallboard=AcdWallboardFeed(
            source=router, queues=[q.name for q in settings.acd.queues], now=context.clock.now
        ),
        agents=AcdAgentControl(desk=router, directory=live),
        calls=PgCallsFeed(pool=pool),
        linker=ContextIdentityLinker(context=context, phones=phones),
        about=_about(settings, ami),
    )
    return app


def _about(settings: Settings, ami: AmiClient | None) -> dict[str, str]:
    server = settings.server
    return {
        "FastAGI": f"{server.host}:{server.agi_port}",
        "AudioSocket": f"{server.host}:{server.audiosocket_port}",
        "AMI": "off" if ami is None else f"{ami.host}:{ami.port}",
    }


async def _start_ami(stack: AsyncExitStack, ami: AmiClient | None) -> None:
    if ami is None:
        return
    task = asyncio.create_task(_keep_ami_connected(ami), name="ami-connect")

    async def stop() -> None:
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
) -> AsyncIterator[Runtime]:
    """Build and start everything; on exit stop it in reverse order (graceful for calls).

    `reconcile`: how the periodic sweep frees what a failure left behind (agents reserved or
    busy, callers queued, with no channel on Asterisk); None turns it off, for a telephony peer
    whose channel list does not show its calls."""
    server = settings.server
    staff = _staff(settings, agents, agent_names)
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            postgres_pool(
                database_url,
                min_size=settings.database.pool_min,
                max_size=settings.database.pool_max,
            )
        )
        redis = await stack.enter_async_context(redis_client(redis_url))
        context, fanout, phones = await _context(
            stack, settings, pool=pool, redis=redis, backends=backends
        )
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        ami = _ami_client(settings, ami_endpoint, owner=owner)
        # AMI first: the start-up rebuild of the live state needs Asterisk's channels.
        await _start_ami(stack, ami)
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
        )
        answers, transfers = _telephony_watchers(ami, settings, staff, router)
        hub = DesktopHub(clock=context.clock, agents=staff.by_id.keys(), redis=redis)
        outcomes: dict[str, int] = {}
        inbound = InboundHandler(
            fanout=fanout,
            context=context,
            router=router,
            hub=hub,
            agents=staff.by_id,
            owners=staff.owners,
            model=IntentModel.train(),
            flow=flow or FlowSettings(),
            outcomes=outcomes,
            dial_watch=answers,
            transfer_watch=transfers,
            routes=settings.contact.routes(),
            queues=[q.name for q in settings.acd.queues],
        )
        agi, audiosocket = _protocol_servers(settings, inbound)
        speech = load_speech(settings.speech)  # a missing model stops the start here
        metrics, readiness = Metrics(), Readiness()
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
        )

        # Started in this order and stopped in the reverse one: on exit the FastAGI server
        # goes first, handing calls back to the dialplan while AMI (answers, transfers) and
        # the desktops still work; then the desktops are closed (an open one must not hold up
        # the web server), the web server, and (after the ACD) AMI last.
        runner, http_port = await _start_web(stack, app, settings)
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
            agents=staff.by_id,
            agi=agi,
            audiosocket=audiosocket,
            ami=ami,
            web_runner=runner,
            http_port=http_port,
            metrics=metrics,
            readiness=readiness,
            outcomes=outcomes,
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
    ):
        with startup_objects_frozen():
            await asyncio.Event().wait()  # until cancelled by a signal
    return 0
