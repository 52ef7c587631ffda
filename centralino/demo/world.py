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
import random
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import aiohttp
import numpy as np
from aiohttp import web
from pydantic import SecretStr

from acd.models import AgentDefinition, AgentState
from centralino.access.passwords import Passwords
from centralino.adapters.http_connector import HttpBackendConfig
from centralino.adapters.pg_accounts import PgAccounts
from centralino.app import Runtime, bound_port, running
from centralino.demo.accounts import DemoLogins, ensure_demo_accounts, new_demo_password
from centralino.demo.crm import crm_backend_config, make_crm_app
from centralino.demo.dataset import DemoDataset, generate
from centralino.demo.erp import erp_backend_config, make_erp_app
from centralino.demo.providers import (
    DEMO_MAIL_DOMAIN,
    DemoMessagingProvider,
    DemoSendApis,
    demo_channel_settings,
    send_demo_email,
    with_demo_send_apis,
)
from centralino.demo.seed import seed_customers
from centralino.gc_tuning import startup_objects_frozen
from centralino.messaging import EMAIL_SERVER, webhook_secrets
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
from centralino.web.conversations_api import CONVERSATIONS
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


# The simulated agents answer a written conversation and close it after this long. Until they
# do, it holds their capacity, and voice goes only to agents with no other work.
DEMO_CONVERSATION_S = 30.0


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
    messaging: DemoMessagingProvider  # plays Meta and Twilio: signed webhooks into the demo
    send_apis: DemoSendApis  # plays their send APIs: replies go out (and report back) here

    @property
    def smtp_port(self) -> int:
        return self.runtime.web_runner.app[EMAIL_SERVER].port


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
    conversation_s: float = DEMO_CONVERSATION_S,
    managed_config: bool = False,
) -> AsyncIterator[DemoWorld]:
    demo = settings.demo
    rng = np.random.default_rng(demo.seed)
    settings = demo_channel_settings(settings)  # the webhooks' secrets and public URL
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
        providers_session = await stack.enter_async_context(aiohttp.ClientSession())

        async def serve(app: web.Application) -> str:
            return await serve_app(app, stack)

        settings, send_apis = await with_demo_send_apis(
            settings, session=providers_session, serve=serve, rng=random.Random(demo.seed)
        )
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
        # One WebSocket per desktop, each holding a connection for good: aiohttp's default
        # pool of 100 would leave the 101st desktop waiting forever (bench/wallboard.py: 200).
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
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
        closer = asyncio.create_task(
            close_handled_conversations(runtime, after_s=conversation_s * time_scale),
            name="demo-conversations",
        )

        async def stop_closer() -> None:
            closer.cancel()
            await asyncio.gather(closer, return_exceptions=True)

        stack.push_async_callback(stop_closer)
        yield DemoWorld(
            runtime=runtime,
            dataset=dataset,
            simulator=simulator,
            desktops=desktops,
            asterisk=asterisk,
            erp=erp,
            crm=crm,
            base_url=base_url,
            messaging=DemoMessagingProvider(
                session=session, base_url=base_url, secrets=webhook_secrets(runtime.settings)
            ),
            send_apis=send_apis,
            logins=logins,
        )


async def close_handled_conversations(runtime: Runtime, *, after_s: float) -> None:
    """Plays the agents' side of written conversations: each is closed `after_s` after it was
    assigned (through the same close the desktop uses), freeing the agent for calls."""
    conversations = runtime.web_runner.app[CONVERSATIONS]
    while True:
        await asyncio.sleep(max(0.05, min(after_s / 2, 2.0)))
        try:
            rows = await runtime.pool.fetch(
                "SELECT id, agent_id FROM conversations WHERE state = 'assigned'"
                " AND assigned_at < now() - make_interval(secs => $1)",
                after_s,
            )
            for row in rows:
                await conversations.close_conversation(row["id"], agent_id=row["agent_id"])
        except asyncio.CancelledError:
            raise
        except Exception:  # the demo's agents keep working through a storage outage
            log.exception("demo: closing handled conversations failed")


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
            print(_channels_banner(world), flush=True)
            print(await send_demo_messages(world), flush=True)
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
        f"    reports         {url}/reports   (the demo's calls, today and by day)\n"
        f"    agent desktop   {url}/desktop/agent101   (agents: {agents})\n"
        f"    home            {url}/\n"
        f"    log in          {url}/login   as admin, supervisor (teams: every demo team) or\n"
        f"                    an agent ({agents}); password: {world.logins.password}\n"
        f"    health          {url}/healthz   {url}/readyz   {url}/metrics\n"
        f"    FastAGI         {world.runtime.settings.server.host}:{world.runtime.agi.port}\n"
        "  Simulated callers dial in through FastAGI; the simulated agents' desktops acknowledge\n"
        "  every screen-pop; the demo ERP and CRM answer over HTTP with real latency.\n"
    )


def _channels_banner(world: DemoWorld) -> str:
    settings = world.runtime.settings

    def shown(value: SecretStr | None) -> str:
        return value.get_secret_value() if value is not None else "(unset)"

    url = world.base_url
    return (
        "  Messaging webhooks (secrets from the environment, random ones when unset):\n"
        f"    WhatsApp        {url}/webhooks/whatsapp\n"
        f"      CENTRALINO_WHATSAPP_APP_SECRET={shown(settings.whatsapp.app_secret)}\n"
        f"      CENTRALINO_WHATSAPP_VERIFY_TOKEN={shown(settings.whatsapp.verify_token)}\n"
        f"    Twilio SMS      {url}/webhooks/twilio/sms\n"
        f"      CENTRALINO_TWILIO_AUTH_TOKEN={shown(settings.twilio.auth_token)}\n"
        f"      CENTRALINO_SERVER_PUBLIC_URL={settings.server.public_url}\n"
        f"    timeline API    {url}/api/timeline?phone=<E.164>  (supervisors and admins)\n"
        f"    tickets board   {url}/board/<team>  (its supervisors and agents, admins)\n"
        f"    replies         POST {url}/api/messages (the demo's WhatsApp and Twilio APIs)\n"
        f"    email (SMTP)    {settings.email.host}:{world.smtp_port}"
        f"  for @{', @'.join(settings.email.domains)}\n"
    )


# What the demo's customers write when it starts (WhatsApp and SMS alike).
DEMO_TEXTS = (
    "Buongiorno, ho ricevuto la fattura ma l'importo non torna.",
    "Hello, when will my order ship?",
    "Grazie, tutto risolto!",
)
# A number no demo customer has: its SMS creates a new customer.
DEMO_STRANGER = "+393471234567"


async def send_demo_messages(world: DemoWorld) -> str:
    """A few WhatsApp and SMS messages from the demo's customers (and one stranger) through
    the demo providers, signed like the real ones; says where to see them."""
    people = [p for p in world.dataset.people if p.phone != world.dataset.shared_office_phone]
    sent: list[str] = []
    for person, text in zip(people[:3], DEMO_TEXTS, strict=False):
        await world.messaging.whatsapp(person.phone.removeprefix("+"), text, name=person.name)
        sent.append(f"WhatsApp from {person.name}")
    for person in people[3:5]:
        await world.messaging.sms(person.phone, "Please call me back about my invoice.")
        sent.append(f"SMS from {person.name}")
    await world.messaging.sms(DEMO_STRANGER, "Hi, I'd like a quote.")
    sent.append(f"SMS from {DEMO_STRANGER} (a new customer)")
    writer = people[5]
    await send_demo_email(
        host=world.runtime.settings.email.host,
        port=world.smtp_port,
        sender=writer.email,
        name=writer.name,
        subject="Richiesta di rimborso",
        text="Buongiorno, vorrei il rimborso dell'ultimo ordine.",
    )
    sent.append(f"email from {writer.name} to support@{DEMO_MAIL_DOMAIN}")
    phone = people[0].phone.removeprefix("+")
    token = world.logins.supervisor_token
    return (
        "  Demo messages sent through the demo providers: " + "; ".join(sent) + "\n"
        "    the supervisor's timeline, with an API token of theirs:\n"
        f"    curl -H 'Authorization: Bearer {token}' "
        f"'{world.base_url}/api/timeline?phone=%2B{phone}'\n"
    )


def _status(world: DemoWorld) -> str:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(world.runtime.outcomes.items())) or "none"
    return (
        f"  calls: {world.runtime.agi.calls_total} placed, "
        f"{world.runtime.agi.calls_active} in progress; outcomes: {outcomes}"
    )
