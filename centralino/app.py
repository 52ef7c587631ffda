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
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.adapters.redis_call_context import RedisCallContextStore
from centralino.ami_watch import DeviceWatch, DialWatch, TransferWatch
from centralino.asterisk.agi_server import AgiCall, AgiRouter, FastAgiServer
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.audiosocket_server import AudioSocketServer, AudioSocketSession
from centralino.callbacks import CallbackDialer
from centralino.gc_tuning import startup_objects_frozen
from centralino.logs import bind_call
from centralino.metrics import Metrics
from centralino.recovery import LiveStateGuard
from centralino.settings import AgentSettings, QueueSettings, Settings, SettingsError
from centralino.storage.connections import postgres_pool, redis_client
from centralino.storage.migrate import apply_migrations
from centralino.web.app import init_app
from centralino.web.desktop_ws import DesktopHub
from centralino.web.health import Readiness
from centralino.web.pages import AcdAgentControl, AcdWallboardFeed, add_pages
from contact.inbound import InboundCallServices
from contact.rules import IntentRoute, route_problems
from context.circuit import BreakerState, CircuitBreaker
from context.clock import SystemClock as ContextClock
from context.fanout import PreAnswerFanout
from context.identity import PhoneNormaliser
from context.models import Outcome
from context.service import ContextService
from ivr.errors import CallHandedBack, ChannelHungUp
from ivr.inbound import FlowSettings, InboundCall, run_inbound
from ivr.intent import IntentModel

log = logging.getLogger(__name__)

STATUS_DONE = "DONE"
# Connections per backend host: the fan-out runs one request per backend per call, and a burst
# of 200 calls must not queue behind a small pool (the tail of the screen-pop benchmark).
HTTP_CONNECTIONS_PER_HOST = 256


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


class InboundHandler:
    """The `inbound` FastAGI script: every incoming call's flow."""

    def __init__(
        self,
        *,
        fanout: PreAnswerFanout,
        context: ContextService,
        router: Router,
        hub: DesktopHub,
        agents: Mapping[str, AgentDefinition],
        owners: Mapping[str, str],
        model: IntentModel,
        flow: FlowSettings,
        outcomes: dict[str, int],
        dial_watch: DialWatch | None,
        transfer_watch: TransferWatch | None = None,
        routes: Mapping[str, IntentRoute],
    ) -> None:
        self.routes = routes
        self.dial_watch = dial_watch
        self.transfer_watch = transfer_watch
        self.fanout = fanout
        self.context = context
        self.router = router
        self.hub = hub
        self.agents = agents
        self.owners = owners
        self.model = model
        self.flow = flow
        self.outcomes = outcomes

    async def __call__(self, call: AgiCall) -> None:
        env = call.env
        # The channel running the inbound AGI is the call's first channel, so its uniqueid is
        # the call's linkedid: the fan-out starts now, before the first command is even sent.
        linkedid = env.uniqueid
        with bind_call(uniqueid=env.uniqueid, linkedid=linkedid):
            handle = self.fanout.start(linkedid=linkedid, caller_id=env.callerid)
            services = InboundCallServices(
                uniqueid=env.uniqueid,
                linkedid=linkedid,
                caller_id=env.callerid if env.callerid != "unknown" else "",
                handle=handle,
                context=self.context,
                router=self.router,
                desk=self.hub,
                agents=self.agents,
                owners=self.owners,
                routes=self.routes,
                answers=self.dial_watch,
                transfers=self.transfer_watch,
            )
            query = call.query
            outcome = await run_inbound(
                InboundCall(
                    uniqueid=env.uniqueid,
                    caller_id=services.caller_id,
                    language=query.get("lang") or None,
                    queue=query.get("queue") or None,
                ),
                call.channel,
                services,
                model=self.model,
                settings=self.flow,
                monotonic=asyncio.get_running_loop().time,
            )
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            log.info("call ended: %s", outcome.value)
            if outcome is not Outcome.RETURNED and not call.channel.hung_up:
                # Handed back (shutdown), the session says SHUTDOWN itself; else we are done.
                with contextlib.suppress(ChannelHungUp, CallHandedBack):
                    await call.channel.set_variable("CENTRALINO_STATUS", STATUS_DONE)


async def _audiosocket_call(session: AudioSocketSession) -> None:
    """Live audio arrives here (speech recognition plugs in behind the Recognizer port);
    for now frames are consumed with backpressure and counted."""
    with bind_call(audiosocket=str(session.uuid)):
        frames = 0
        async for _event in session:
            frames += 1
        log.info("audiosocket call ended after %d events", frames)


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
) -> AsyncIterator[Runtime]:
    """Build and start everything; on exit stop it in reverse order (graceful for calls)."""
    server = settings.server
    metrics = Metrics()
    readiness = Readiness()
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            postgres_pool(
                database_url,
                min_size=settings.database.pool_min,
                max_size=settings.database.pool_max,
            )
        )
        redis = await stack.enter_async_context(redis_client(redis_url))
        http = await stack.enter_async_context(
            HttpClient(max_connections_per_origin=HTTP_CONNECTIONS_PER_HOST)
        )

        context_clock = ContextClock()
        phones = PhoneNormaliser(default_region=settings.context.default_region)
        context = ContextService(
            customers=PgCustomerStore(pool=pool),
            timeline=PgTimelineStore(pool=pool),
            tickets=PgTicketStore(pool=pool),
            clock=context_clock,
            phones=phones,
        )
        configs = list(backends) if backends is not None else backend_configs(settings)
        connectors = [HttpConnector(config=c, client=http, clock=context_clock) for c in configs]
        call_context = RedisCallContextStore(redis=redis, ttl_s=settings.redis.call_context_ttl_s)
        stack.push_async_callback(call_context.aclose)
        fanout = PreAnswerFanout(
            service=context,
            connectors=connectors,
            call_context=call_context,
            clock=context_clock,
            deadline_s=settings.context.deadline_ms / 1000,
            source_timeouts_s={c.name: c.timeout_s for c in configs},
        )
        stack.push_async_callback(fanout.aclose)

        definitions = (
            list(agents)
            if agents is not None
            else [agent_definition(a) for a in settings.acd.agents]
        )
        agent_map = {a.agent_id: a for a in definitions}
        # CRM account owners may be named by agent id or by the agent's name.
        owners = {a.agent_id: a.agent_id for a in definitions}
        owners.update({a.name: a.id for a in settings.acd.agents if a.name})
        owners.update(agent_names or {})
        queues = {q.name: queue_policy(q) for q in settings.acd.queues}
        routes = settings.contact.routes()
        problems = route_problems(routes, queues=queues, agents=definitions)
        if problems:
            raise SettingsError("contact.intents: " + "; ".join(problems))
        ami: AmiClient | None = None
        if ami_endpoint is not None or (settings.ami.enabled and settings.ami.secret is not None):
            host, port, user, secret = ami_endpoint or (
                settings.ami.host,
                settings.ami.port,
                settings.ami.username,
                settings.ami.secret.get_secret_value() if settings.ami.secret else "",
            )
            ami = AmiClient(
                host=host,
                port=port,
                username=user,
                secret=secret,
                rng=np.random.default_rng(),
                ping_interval_s=settings.ami.ping_interval_s,
            )

        callbacks: CallbackDialer | None = None
        if ami is not None:
            # The router takes the dialer as its hook, so the dialer reaches it through a getter.
            callbacks = CallbackDialer(ami=ami, router=lambda: router)
        live = RedisLiveStore(client=redis)
        await live.load_scripts()
        queue_log = PgQueueLog(pool=pool)
        acd_clock = AcdClock()
        owner_name = owner or f"{socket.gethostname()}:{os.getpid()}"
        router = Router(
            store=live,
            queue_log=queue_log,
            clock=acd_clock,
            queues=queues,
            agents=agent_map,
            owner=owner_name,
            on_detached_offer=callbacks,
        )
        guard = LiveStateGuard(
            redis=redis,
            router=router,
            queue_log=queue_log,
            clock=acd_clock,
            agents={a.agent_id: a.endpoint for a in definitions},
            ami=ami,
            owner=owner_name,
            interval_s=live_check_s,
        )
        await guard.check()  # a fresh (or restarted) Redis: restore agents and callbacks
        await router.start()
        stack.push_async_callback(router.aclose)
        guard_task = asyncio.create_task(guard.run(), name="live-state-guard")

        async def stop_guard() -> None:
            guard.close()
            guard_task.cancel()
            await asyncio.gather(guard_task, return_exceptions=True)

        stack.push_async_callback(stop_guard)

        hub = DesktopHub(clock=context_clock)

        dial_watch: DialWatch | None = None
        transfer_watch: TransferWatch | None = None
        if ami is not None:
            dial_watch = DialWatch()
            dial_watch.attach(ami)
            transfer_watch = TransferWatch(
                queues=settings.acd.transfer_queues(),
                endpoints={a.agent_id: a.endpoint for a in definitions},
            )
            transfer_watch.attach(ami)

            async def force_logout(agent_id: str) -> object:
                return await router.agent_logout(agent_id, forced=True)

            DeviceWatch(
                endpoints={a.agent_id: a.endpoint for a in definitions}, logout=force_logout
            ).attach(ami)

        outcomes: dict[str, int] = {}
        agi_router = AgiRouter()
        agi_router.add(
            "inbound",
            InboundHandler(
                fanout=fanout,
                context=context,
                router=router,
                hub=hub,
                agents=agent_map,
                owners=owners,
                model=IntentModel.train(),
                flow=flow or FlowSettings(),
                outcomes=outcomes,
                dial_watch=dial_watch,
                transfer_watch=transfer_watch,
                routes=routes,
            ),
        )
        agi = FastAgiServer(
            router=agi_router,
            host=server.host,
            port=server.agi_port,
            idle_timeout_s=server.idle_timeout_s,
            grace_s=server.grace_s,
        )
        audiosocket = AudioSocketServer(
            host=server.host, port=server.audiosocket_port, on_call=_audiosocket_call
        )

        app = init_app(readiness=readiness, metrics_registry=metrics)
        app.router.add_get("/ws/agent/{agent_id}", hub.handle)
        add_pages(
            app,
            wallboard=AcdWallboardFeed(source=router, queues=list(queues), now=context_clock.now),
            agents=AcdAgentControl(desk=router, directory=live),
            calls=PgCallsFeed(pool=pool),
            linker=ContextIdentityLinker(context=context, phones=phones),
            about={
                "FastAGI": f"{server.host}:{server.agi_port}",
                "AudioSocket": f"{server.host}:{server.audiosocket_port}",
                "AMI": "off" if ami is None else f"{ami.host}:{ami.port}",
            },
        )

        # Started in this order and stopped in the reverse one: on exit the FastAGI server
        # goes first, handing calls back to the dialplan while AMI (answers, transfers) and
        # the desktops still work; then the desktops are closed (an open one must not hold up
        # the web server), the web server, and AMI last.
        if ami is not None:
            ami_task = asyncio.create_task(_keep_ami_connected(ami), name="ami-connect")

            async def stop_ami() -> None:
                ami_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ami_task
                assert ami is not None
                await ami.close()

            stack.push_async_callback(stop_ami)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, server.host, server.http_port)
        await site.start()
        http_port = bound_port(site)
        stack.push_async_callback(hub.close)
        await audiosocket.start()
        stack.push_async_callback(audiosocket.stop)
        # Last: nothing is accepted before everything behind it exists.
        await agi.start()
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
            agents=agent_map,
            agi=agi,
            audiosocket=audiosocket,
            ami=ami,
            web_runner=runner,
            http_port=http_port,
            metrics=metrics,
            readiness=readiness,
            outcomes=outcomes,
        )
        _register_checks(runtime)
        _register_metrics(runtime)
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


def _register_checks(rt: Runtime) -> None:
    async def postgres() -> str:
        return f"select 1 -> {await rt.pool.fetchval('SELECT 1')}"

    async def redis() -> str:
        await rt.redis.ping()
        return "ping ok"

    async def fastagi() -> str:
        return f"listening on {rt.agi.port}, {rt.agi.calls_active} calls"

    async def audiosocket() -> str:
        return f"listening on {rt.audiosocket.port}"

    rt.readiness.add("postgres", postgres)
    rt.readiness.add("redis", redis)
    rt.readiness.add("fastagi", fastagi)
    rt.readiness.add("audiosocket", audiosocket)
    if rt.ami is not None:
        ami = rt.ami

        async def ami_link() -> str:
            if not ami.connected:
                raise ConnectionError("not connected to Asterisk's AMI")
            return f"connected to {ami.host}:{ami.port}"

        rt.readiness.add("ami", ami_link)
    for name in (c.name for c in rt.fanout.connectors):
        breaker = rt.fanout.breakers[name]

        async def backend(breaker: CircuitBreaker = breaker, name: str = name) -> str:
            if breaker.state is BreakerState.OPEN:
                raise ConnectionError(f"{name}: circuit open (backend keeps failing)")
            return f"circuit {breaker.state.value}"

        rt.readiness.add(f"backend:{name}", backend)


def _register_metrics(rt: Runtime) -> None:
    m = rt.metrics
    agi = rt.agi
    m.counter("centralino_agi_calls", "FastAGI sessions accepted", lambda: agi.calls_total)
    m.gauge("centralino_agi_calls_active", "FastAGI sessions in progress", lambda: agi.calls_active)
    m.counter(
        "centralino_agi_protocol_errors",
        "FastAGI connections closed for bad input",
        lambda: agi.protocol_errors_total,
    )
    m.counter("centralino_agi_commands", "AGI commands sent", lambda: agi.commands_total)
    aus = rt.audiosocket
    m.counter("centralino_audiosocket_calls", "AudioSocket calls", lambda: aus.calls_total)
    m.counter(
        "centralino_audiosocket_protocol_errors",
        "AudioSocket connections closed for bad input",
        lambda: aus.protocol_errors,
    )
    if rt.ami is not None:
        ami = rt.ami
        m.gauge("centralino_ami_connected", "1 while the AMI link is up", lambda: ami.connected)
        m.counter("centralino_ami_reconnects", "AMI reconnections", lambda: ami.reconnects_total)
        m.counter("centralino_ami_events", "AMI events received", lambda: ami.events_total)
    outcomes = rt.outcomes
    for outcome in Outcome:
        m.counter(
            f"centralino_calls_{outcome.value}",
            f"inbound calls that ended {outcome.value.replace('_', ' ')}",
            lambda o=outcome: outcomes.get(o, 0),  # type: ignore[misc]
        )


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
