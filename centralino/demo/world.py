"""`make demo`: Centralino with everything around it simulated, on one machine.

- PostgreSQL and Redis: the configured URLs, else embedded servers in `demo.data_dir`;
- the demo ERP and CRM: aiohttp services with realistic latency and failures (the owners of
  customer data, reached over real HTTP at every call);
- Asterisk: the protocol-faithful simulator (an AMI server, callers on FastAGI, agents' phones);
- agents: simulated desktops that acknowledge every screen-pop (open the same desktop in a
  browser to watch it), logged in and ready.

`demo_world(...)` is also what the end-to-end tests run, with time compressed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import aiohttp
import numpy as np
from aiohttp import web

from acd.models import AgentDefinition, AgentState
from centralino.access.passwords import Passwords
from centralino.adapters.http_connector import HttpBackendConfig
from centralino.adapters.pg_accounts import PgAccounts
from centralino.app import Runtime, bound_port, running
from centralino.demo.accounts import DemoLogins, ensure_demo_accounts, new_demo_password
from centralino.demo.crm import crm_backend_config, make_crm_app
from centralino.demo.dataset import DemoDataset, generate
from centralino.demo.erp import erp_backend_config, make_erp_app
from centralino.demo.seed import seed_customers
from centralino.gc_tuning import startup_objects_frozen
from centralino.settings import Settings
from centralino.simulator.ami_server import AmiServer
from centralino.simulator.callcenter import (
    AgentPhone,
    CallSimulator,
    SimulatedDesktop,
    demo_callers,
    open_desktops,
)
from centralino.storage.embedded import embedded_postgres, embedded_redis
from contact.reconcile import ReconcilePolicy
from ivr.inbound import FlowSettings

log = logging.getLogger(__name__)

# The demo's agents: the CRM's account owners (so customers reach "their" agent first) and two
# more. Skills are proficiency 1..5. The green team works back to back (no wrap-up): an agent of
# theirs who hangs up takes the next waiting caller in the same step (agent-driven routing).
DEMO_AGENTS: Sequence[tuple[str, str, Mapping[str, int], str]] = (
    ("agent101", "Alessia Ferri", {"billing": 5, "support": 3, "logistics": 2, "sales": 2}, "blue"),
    ("agent102", "Roberto Villa", {"support": 5, "logistics": 4, "billing": 2}, "blue"),
    ("agent103", "Valentina Sala", {"sales": 5, "billing": 3, "support": 2}, "green"),
    ("agent104", "Matteo Fontana", {"logistics": 5, "support": 4, "sales": 2}, "green"),
    ("agent105", "Chiara Greco", {"billing": 4, "support": 4, "logistics": 3, "sales": 3}, "blue"),
    (
        "agent106",
        "Davide Marino",
        {"support": 3, "sales": 4, "logistics": 2, "billing": 2},
        "green",
    ),
)


def demo_agents(count: int) -> tuple[list[AgentDefinition], dict[str, str]]:
    chosen = [DEMO_AGENTS[i % len(DEMO_AGENTS)] for i in range(count)]
    definitions = [
        AgentDefinition(
            agent_id=agent_id if i < len(DEMO_AGENTS) else f"{agent_id}x{i}",
            skills=dict(skills),
            teams=frozenset({team}),
            languages=frozenset({"it", "en"}),
            endpoint=f"PJSIP/{agent_id if i < len(DEMO_AGENTS) else f'{agent_id}x{i}'}",
            wrap_up_s=0.0 if team == "green" else 3.0,
        )
        for i, (agent_id, _name, skills, team) in enumerate(chosen)
    ]
    names = {name: d.agent_id for d, (_id, name, _s, _t) in zip(definitions, chosen, strict=True)}
    return definitions, names


@dataclass(slots=True)
class DemoWorld:
    runtime: Runtime
    dataset: DemoDataset
    simulator: CallSimulator
    desktops: dict[str, SimulatedDesktop]
    asterisk: AmiServer
    erp: web.Application
    crm: web.Application
    base_url: str
    logins: DemoLogins


async def serve_app(app: web.Application, stack: AsyncExitStack) -> str:
    """Serve `app` on a free loopback port until `stack` closes; its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return f"http://127.0.0.1:{bound_port(site)}"


@asynccontextmanager
async def demo_world(
    settings: Settings,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    time_scale: float = 1.0,
    flow: FlowSettings | None = None,
    ready_agents: bool = True,
    ack_delay_s: float = 0.05,
    live_check_s: float = 2.0,
    managed_config: bool = False,
) -> AsyncIterator[DemoWorld]:
    demo = settings.demo
    rng = np.random.default_rng(demo.seed)
    async with AsyncExitStack() as stack:
        if database_url is None:
            if settings.database.url is not None:
                database_url = settings.database.url.get_secret_value()
            else:
                database_url = await stack.enter_async_context(embedded_postgres(demo.data_dir))
        if redis_url is None:
            if settings.redis.url is not None:
                redis_url = settings.redis.url.get_secret_value()
            else:
                redis_url = await stack.enter_async_context(embedded_redis(demo.data_dir))

        dataset = generate(np.random.default_rng(demo.seed), today=_today())
        erp = make_erp_app(
            latency_ms=demo.erp_latency_ms,
            failure_rate=demo.failure_rate,
            rng=np.random.default_rng(demo.seed + 1),
            jitter_ms=demo.erp_latency_ms * 0.3,
            dataset=dataset,
        )
        crm = make_crm_app(
            latency_ms=demo.crm_latency_ms,
            failure_rate=demo.failure_rate,
            rng=np.random.default_rng(demo.seed + 2),
            jitter_ms=demo.crm_latency_ms * 0.3,
            dataset=dataset,
        )
        erp_url = await serve_app(erp, stack)
        crm_url = await serve_app(crm, stack)
        backends: list[HttpBackendConfig] = [
            erp_backend_config(erp_url, timeout_s=0.35),
            crm_backend_config(crm_url, timeout_s=0.35),
        ]

        definitions, names = demo_agents(demo.agents)
        simulator = CallSimulator(
            agi_host=settings.server.host,
            agi_port=settings.server.agi_port,
            rng=rng,
            phones={d.agent_id: AgentPhone() for d in definitions},
            time_scale=time_scale,
        )
        stack.push_async_callback(simulator.aclose)
        ami_secret = secrets.token_hex(8)
        asterisk = AmiServer(
            username="centralino",
            secret=ami_secret,
            auth_failure_delay_s=0.2,
            originate_hook=simulator.originate,
        )
        simulator.ami = asterisk
        await asterisk.start()
        stack.push_async_callback(asterisk.stop)

        runtime = await stack.enter_async_context(
            running(
                settings,
                database_url=database_url,
                redis_url=redis_url,
                backends=backends,
                agents=definitions,
                agent_names=names,
                ami_endpoint=("127.0.0.1", asterisk.port, "centralino", ami_secret),
                flow=flow,
                owner="demo",
                live_check_s=live_check_s,
                # The simulated Asterisk lists its channels on AMI as a real one does, so the
                # reconciling sweep runs as in production (an agent left busy is freed).
                reconcile=ReconcilePolicy(),
                managed_config=managed_config,
            )
        )
        created = await seed_customers(runtime.context, dataset)
        if created:
            log.info("demo: %d customers created (identities and ERP/CRM links only)", created)

        password = demo.password.get_secret_value() if demo.password else new_demo_password()
        logins = await ensure_demo_accounts(
            PgAccounts(pool=runtime.pool),
            agents=definitions,
            password=password,
            passwords=Passwords(),
            now=runtime.context.clock.now(),
        )

        host = settings.server.host
        base_url = f"http://{host}:{runtime.http_port}"
        session = await stack.enter_async_context(aiohttp.ClientSession())
        desktops = await open_desktops(
            stack,
            base_url=base_url,
            agent_ids=[d.agent_id for d in definitions],
            session=session,
            ack_delay_s=ack_delay_s,
            tokens=logins.desktop_tokens,
        )
        if ready_agents:
            # Redis may remember agents from the previous demo run: log in only who is out.
            states = {s.agent_id: s.state for s in await runtime.live.agents()}
            for d in definitions:
                state = states.get(d.agent_id, AgentState.LOGGED_OUT)
                if state is AgentState.LOGGED_OUT:
                    state = (await runtime.router.agent_login(d.agent_id)).state
                if state is AgentState.NOT_READY:
                    await runtime.router.agent_ready(d.agent_id)

        simulator.agi_port = runtime.agi.port  # the configured port may be 0 (any free one)
        yield DemoWorld(
            runtime=runtime,
            dataset=dataset,
            simulator=simulator,
            desktops=desktops,
            asterisk=asterisk,
            erp=erp,
            crm=crm,
            base_url=base_url,
            logins=logins,
        )


def _today() -> date:
    return datetime.now(UTC).date()


async def run_demo(
    settings: Settings, *, duration_s: float | None, calls_per_minute: float | None
) -> int:
    rate = (
        calls_per_minute if calls_per_minute is not None else settings.demo.calls_per_minute
    ) / 60
    # The demo's agents and queues are managed like a server's (/admin, /api/admin).
    async with demo_world(settings, managed_config=True) as world:
        with startup_objects_frozen():
            numbers = [p.phone for p in world.dataset.people]
            print(_banner(world), flush=True)
            rng = np.random.default_rng(settings.demo.seed + 3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            next_report = started + 15
            while duration_s is None or loop.time() - started < duration_s:
                gap = float(rng.exponential(1 / rate)) if rate > 0 else 3600.0
                await asyncio.sleep(gap)
                if rate > 0:
                    world.simulator.start_call(demo_callers(rng, numbers))
                if loop.time() >= next_report:
                    next_report = loop.time() + 15
                    print(_status(world), flush=True)
            print(_status(world), flush=True)
    return 0


def _banner(world: DemoWorld) -> str:
    url = world.base_url
    agents = ", ".join(sorted(world.desktops))
    return (
        "\n  Centralino demo is running (Ctrl-C stops it)\n"
        f"    wallboard       {url}/wallboard\n"
        f"    agent desktop   {url}/desktop/agent101   (agents: {agents})\n"
        f"    home            {url}/\n"
        f"    log in          {url}/login   as admin, supervisor (teams: every demo team) or\n"
        f"                    an agent ({agents}); password: {world.logins.password}\n"
        f"    health          {url}/healthz   {url}/readyz   {url}/metrics\n"
        f"    FastAGI         {world.runtime.settings.server.host}:{world.runtime.agi.port}\n"
        "  Simulated callers dial in through FastAGI; the simulated agents' desktops acknowledge\n"
        "  every screen-pop; the demo ERP and CRM answer over HTTP with real latency.\n"
    )


def _status(world: DemoWorld) -> str:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(world.runtime.outcomes.items())) or "none"
    return (
        f"  calls: {world.runtime.agi.calls_total} placed, "
        f"{world.runtime.agi.calls_active} in progress; outcomes: {outcomes}"
    )
