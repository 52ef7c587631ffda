"""Fixtures for tests against a real Asterisk 22 (marker `asterisk`).

- `asterisk` (session): found (CENTRALINO_ASTERISK_HOME, else ../shared/asterisk/*.tar.xz),
  extracted once, configured from asterisk_conf/ with test overrides (harness.py), started,
  stopped at the end. Where there is none, every `asterisk` test is skipped and pytest's
  summary shows one line saying why.
- `redis_url` (session): a redis-server of this session's own (concurrent runs flush theirs).
- `driver`: the project's AmiClient logged in as the test user, placing calls (driver.py).
- `centralino`: the app (`centralino.app.running`) against that Asterisk, with real PostgreSQL
  and Redis, the demo ERP/CRM over HTTP, agents whose phones are `Local/<id>@test-phones`, and
  desktops that acknowledge every screen-pop; its AMI link runs through a proxy the test owns.
- `agi_probe`: a bare FastAGI server in Centralino's place, for facts about Asterisk itself.

A failing test's report carries what Asterisk logged while it ran.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
import asyncpg
import numpy as np
import pytest

from acd.models import AgentDefinition, AgentState
from centralino.access.passwords import Passwords
from centralino.adapters.pg_accounts import PgAccounts
from centralino.app import Runtime, running
from centralino.asterisk.agi import AgiEnvironment, AgiResponse
from centralino.asterisk.agi_server import AgiCall, AgiRouter, FastAgiServer
from centralino.asterisk.ami_client import AmiClient
from centralino.demo.accounts import desktop_tokens, new_demo_password
from centralino.demo.crm import crm_backend_config, make_crm_app
from centralino.demo.dataset import DemoDataset, generate
from centralino.demo.erp import erp_backend_config, make_erp_app
from centralino.demo.seed import seed_customers
from centralino.demo.world import demo_agents, serve_app
from centralino.settings import AcdSettings, IvrSettings, ServerSettings, Settings
from centralino.simulator.callcenter import SimulatedDesktop, open_desktops
from ivr.inbound import FlowSettings
from tests.helpers import eventually
from tests.real_asterisk.driver import AmiProxy, CallDriver
from tests.real_asterisk.harness import (
    AMI_USER,
    DRIVER_USER,
    AsteriskProcess,
    AsteriskUnavailable,
    asterisk_tree,
    free_port,
    locate_asterisk,
    private_redis,
    render,
)

_UNAVAILABLE = pytest.StashKey[str]()
_SKIP_PREFIX = "real Asterisk not available: "
_PROCESS = pytest.StashKey[AsteriskProcess]()
_LOG_OFFSET = pytest.StashKey[int]()

# Agents' phones in the test dialplan, and a flow tuned for a test's patience (not a caller's).
PHONE_CONTEXT = "test-phones"
TEST_FLOW = FlowSettings(menu_timeout_ms=6000, hold_poll_ms=200, ring_timeout_s=10)
AGENTS = 5
TRANSFER_TARGETS = {
    "7001@centralino-transfer": "billing",
    "7002@centralino-transfer": "support",
    "7003@centralino-transfer": "sales",
}


def _why_unavailable(config: pytest.Config) -> str:
    """'' if a real Asterisk can be used here, else the reason (computed once)."""
    if _UNAVAILABLE not in config.stash:
        try:
            locate_asterisk(os.environ)
            config.stash[_UNAVAILABLE] = ""
        except AsteriskUnavailable as exc:
            config.stash[_UNAVAILABLE] = f"{_SKIP_PREFIX}{exc}"
    return config.stash[_UNAVAILABLE]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [i for i in items if i.get_closest_marker("asterisk") is not None]
    why = _why_unavailable(config) if marked else ""
    for item in marked if why else ():
        item.add_marker(pytest.mark.skip(reason=why))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        _path, _line, reason = report.longrepr
        if reason.startswith(f"Skipped: {_SKIP_PREFIX}") or reason.startswith(_SKIP_PREFIX):
            # One place for every such skip, so `-ra` prints one line saying why, not one a test.
            # (no line: pytest itself folds marker skips at setup that way)
            report.longrepr = cast("tuple[str, int, str]", (__file__, None, reason))
    process = item.config.stash.get(_PROCESS, None)
    if report.failed and process is not None and item.get_closest_marker("asterisk"):
        offset = item.stash.get(_LOG_OFFSET, 0)
        lines = process.log_lines_since(offset)[-150:]
        report.sections.append(("real Asterisk messages.log", "\n".join(lines)))
    return report


@pytest.fixture(scope="session")
def redis_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of this session's own: several runs of this suite (or of the whole suite,
    which flushes its database at will) share the machine, and a live call must not lose its
    state to another run's FLUSHDB. Without a redis-server binary, the suite's Redis."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield redis_url
        return
    with private_redis(binary, tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def asterisk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsteriskProcess]:
    source = locate_asterisk(os.environ)
    base = tmp_path_factory.mktemp("asterisk")
    tree = asterisk_tree(source, base / "tree")
    layout = render(
        tree=tree,
        base=base,
        ami_port=free_port(),
        sip_port=free_port(),
        agi_port=free_port(),
        audiosocket_port=free_port(),
        ami_secret=secrets.token_hex(12),
        driver_secret=secrets.token_hex(12),
    )
    process = AsteriskProcess(layout)
    process.start()
    request.config.stash[_PROCESS] = process
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _log_offset(request: pytest.FixtureRequest) -> None:
    process = request.config.stash.get(_PROCESS, None)
    if process is not None:
        request.node.stash[_LOG_OFFSET] = process.log_size()


@pytest.fixture
async def driver(asterisk: AsteriskProcess) -> AsyncIterator[CallDriver]:
    """The test's own AMI session (all rights); on exit every channel is hung up."""
    client = AmiClient(
        host="127.0.0.1",
        port=asterisk.layout.ami_port,
        username=DRIVER_USER,
        secret=asterisk.layout.driver_secret,
        rng=np.random.default_rng(),
    )
    await client.connect()
    driver = CallDriver(ami=client)
    driver.start()
    await client.action("DBDelTree", Family="phone")
    try:
        yield driver
    finally:
        driver.close()
        await client.action("Command", Command="channel request hangup all")

        async def no_channels() -> None:
            listing = await client.action_list("CoreShowChannels")
            assert not listing.events, [e.get("Channel") for e in listing.events]

        try:
            await eventually(no_channels, timeout=10)
        finally:
            await client.close()


@dataclass(slots=True)
class RealWorld:
    runtime: Runtime
    dataset: DemoDataset
    desktops: dict[str, SimulatedDesktop]
    proxy: AmiProxy
    base_url: str
    agents: list[AgentDefinition]
    stop: Callable[[], Awaitable[None]]  # stops the app now (the fixture's exit then does nothing)


def phone_endpoint(agent_id: str) -> str:
    return f"Local/{agent_id}@{PHONE_CONTEXT}"


@pytest.fixture
def agent_languages() -> Mapping[str, frozenset[str]]:
    """Languages an agent speaks, by agent id (a test module may override this fixture);
    agents not named speak what the demo's do (Italian and English)."""
    return {}


@pytest.fixture
def flows() -> Mapping[str, dict[str, Any]]:
    """Call flows by name, as `[flows.<name>]` documents (a test module may override this
    fixture); none: the built-in default flow."""
    return {}


@pytest.fixture
def sounds_checked() -> bool:
    """Whether Centralino checks the flows' prompts against this Asterisk's sounds at start."""
    return False


@pytest.fixture
async def centralino(
    *,
    agent_languages: Mapping[str, frozenset[str]],
    flows: Mapping[str, dict[str, Any]],
    sounds_checked: bool,
    asterisk: AsteriskProcess,
    pg_dsn: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    redis_client: object,
) -> AsyncIterator[RealWorld]:
    """Centralino running against the real Asterisk; every agent logged in and ready."""
    layout = asterisk.layout
    settings = Settings(
        # The numeric aliases of [centralino-transfer] (as in centralino.example.toml).
        acd=AcdSettings(transfer_targets=TRANSFER_TARGETS),
        server=ServerSettings(
            host="127.0.0.1",
            agi_port=layout.agi_port,
            audiosocket_port=layout.audiosocket_port,
            http_port=0,
            grace_s=2.0,
        ),
        flows=dict(flows),
        ivr=IvrSettings(
            sounds=(
                {lang: [layout.data / "sounds" / lang] for lang in ("en", "it")}
                if sounds_checked
                else {}
            )
        ),
    )
    rng = np.random.default_rng(7)
    dataset = generate(rng, today=datetime.now(UTC).date())
    async with AsyncExitStack() as stack:
        erp_url = await serve_app(
            make_erp_app(
                latency_ms=20, failure_rate=0.0, rng=np.random.default_rng(8), dataset=dataset
            ),
            stack,
        )
        crm_url = await serve_app(
            make_crm_app(
                latency_ms=30, failure_rate=0.0, rng=np.random.default_rng(9), dataset=dataset
            ),
            stack,
        )
        proxy = AmiProxy(target_port=layout.ami_port, listen_port=free_port())
        await proxy.start()
        stack.push_async_callback(proxy.aclose)
        definitions, names = demo_agents(AGENTS)
        agents = [
            AgentDefinition(
                agent_id=d.agent_id,
                skills=d.skills,
                teams=d.teams,
                languages=agent_languages.get(d.agent_id, d.languages),
                endpoint=phone_endpoint(d.agent_id),
                wrap_up_s=0.0,
            )
            for d in definitions
        ]
        runtime = await stack.enter_async_context(
            running(
                settings,
                database_url=pg_dsn,
                redis_url=redis_url,
                backends=[
                    erp_backend_config(erp_url, timeout_s=1.0),
                    crm_backend_config(crm_url, timeout_s=1.0),
                ],
                agents=agents,
                agent_names=names,
                ami_endpoint=("127.0.0.1", proxy.port, AMI_USER, layout.ami_secret),
                flow=TEST_FLOW,
                owner="real-asterisk",
            )
        )
        await seed_customers(runtime.context, dataset)
        # The desktops log in as their agents' accounts (API tokens), as the demo's do.
        tokens = await desktop_tokens(
            PgAccounts(pool=runtime.pool),
            agents=agents,
            password_hash=Passwords().hash(new_demo_password()),
            now=runtime.context.clock.now(),
        )
        base_url = f"http://127.0.0.1:{runtime.http_port}"
        session = await stack.enter_async_context(aiohttp.ClientSession())
        desktops = await open_desktops(
            stack,
            base_url=base_url,
            agent_ids=[a.agent_id for a in agents],
            session=session,
            ack_delay_s=0.05,
            tokens=tokens,
        )
        for a in agents:
            state = (await runtime.router.agent_login(a.agent_id)).state
            if state is AgentState.NOT_READY:
                await runtime.router.agent_ready(a.agent_id)
        ami = runtime.ami
        assert ami is not None

        def linked() -> None:
            assert ami.connected, "Centralino's AMI link is not up yet"

        await eventually(linked, timeout=10)
        yield RealWorld(
            runtime=runtime,
            dataset=dataset,
            desktops=desktops,
            proxy=proxy,
            base_url=base_url,
            agents=agents,
            stop=stack.aclose,
        )


ProbeScript = Callable[[AgiCall], Awaitable[None]]


@dataclass(slots=True)
class AgiProbe:
    """A bare FastAGI server on the port the dialplan calls, in place of Centralino: each call
    runs `script` (default: answer and wait for the hangup); what it saw is kept."""

    server: FastAgiServer
    sessions: list[AgiEnvironment] = field(default_factory=list)
    script: ProbeScript | None = None
    replies: dict[str, list[AgiResponse]] = field(default_factory=dict)

    async def __call__(self, call: AgiCall) -> None:
        self.sessions.append(call.env)
        if self.script is not None:
            await self.script(call)
            return
        await call.channel.answer()
        while True:
            await call.channel.wait_for_digit(1000)  # raises ChannelHungUp when it is over


@pytest.fixture
async def agi_probe(asterisk: AsteriskProcess) -> AsyncIterator[AgiProbe]:
    router = AgiRouter()
    server = FastAgiServer(router=router, host="127.0.0.1", port=asterisk.layout.agi_port)
    probe = AgiProbe(server=server)
    router.add("inbound", probe)
    await server.start()
    try:
        yield probe
    finally:
        await server.stop()
