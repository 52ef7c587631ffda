"""End to end: simulated Asterisk (FastAGI callers, AMI, agents' phones) → Centralino → real
PostgreSQL and Redis, demo ERP/CRM over real HTTP, agent desktops on the WebSocket.

Time is compressed (time_scale) but every protocol message is the one a real call produces.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from centralino.demo.world import DemoWorld, demo_world
from centralino.settings import DemoSettings, ServerSettings, Settings
from centralino.simulator.callcenter import AgentPhone, Caller
from context.circuit import BreakerState
from ivr.inbound import FlowSettings
from tests.helpers import eventually, web_login

EXTENSIONS_CONF = Path(__file__).resolve().parents[1] / "asterisk_conf" / "extensions.conf"
FAST_FLOW = FlowSettings(menu_timeout_ms=2000, hold_poll_ms=50, announce_every_s=5.0)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        server=ServerSettings(host="127.0.0.1", agi_port=0, audiosocket_port=0, http_port=0),
        demo=DemoSettings(
            data_dir=tmp_path, agents=3, erp_latency_ms=30, crm_latency_ms=60, failure_rate=0.0
        ),
    )


@pytest.fixture
async def world(
    pg_dsn: str, redis_url: str, pg_pool: asyncpg.Pool, redis_client: object, tmp_path: Path
) -> AsyncIterator[DemoWorld]:
    # pg_pool and redis_client are requested for their side effect: both start out empty.
    async with demo_world(
        _settings(tmp_path),
        database_url=pg_dsn,
        redis_url=redis_url,
        time_scale=0.01,
        flow=FAST_FLOW,
    ) as w:
        reliable_phones(w)
        yield w


def reliable_phones(world: DemoWorld) -> None:
    """Every agent answers quickly and talks briefly (scaled by time_scale)."""
    for agent in list(world.simulator.phones):
        world.simulator.phones[agent] = AgentPhone(
            answer_probability=1.0, ring_s=(1.0, 2.0), talk_s=(5.0, 10.0)
        )


def known_caller(world: DemoWorld, key: str = "3") -> Caller:
    """A customer with nothing overdue (an overdue invoice would be self-served first) and a
    number of their own (not the shared office line)."""
    today = world.dataset.today
    shared = world.dataset.shared_office_phone
    person = next(
        p
        for p in world.dataset.people
        if p.phone != shared and not any(not i.paid and i.due < today for i in p.invoices)
    )
    return Caller(number=person.phone, name=person.name, menu_keys=key, patience_s=600)


async def test_given_known_caller_when_agent_answers_then_pop_was_acked_before_ring(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    result = await asyncio.wait_for(world.simulator.call(known_caller(world)), 30)

    assert result.answered and result.agent is not None
    assert any(c.startswith("EXEC Dial") for c in result.commands)
    assert result.commands[-1].startswith("SET VARIABLE CENTRALINO_STATUS")

    row = await eventually(
        lambda: _interaction(pg_pool, result.uniqueid),
        timeout=5,
    )
    assert row["outcome"] == "answered"
    assert row["agent_id"] == result.agent
    assert row["customer_id"] is not None
    assert row["pop_pushed_at"] <= row["pop_acked_at"] <= row["ring_at"]
    # the menu key decided the intent: the record says how sure and why
    assert row["intent"] == "technical_support"
    assert row["intent_confidence"] == pytest.approx(0.9)
    assert "pressed 3 (technical_support)" in row["intent_reasons"]
    desktop = world.desktops[result.agent]
    assert desktop.pops and desktop.pops[-1]["linkedid"] == result.uniqueid
    ivr = desktop.pops[-1]["ivr"]
    assert isinstance(ivr, dict) and "pressed 3 (technical_support)" in ivr["reasons"]
    caller = desktop.pops[-1]["caller"]
    assert isinstance(caller, dict) and caller["status"] == "found"

    events = [
        r["event"]
        for r in await pg_pool.fetch(
            "SELECT event FROM queue_log WHERE item_id = $1 ORDER BY id", result.uniqueid
        )
    ]
    assert events[0] == "enter"
    assert "connect" in events and events[-1] == "complete"


async def _interaction(pool: asyncpg.Pool, linkedid: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM interactions WHERE linkedid = $1", linkedid)
    assert row is not None
    return row


async def test_given_caller_hangs_up_in_queue_then_abandon_is_logged_and_nothing_more_is_sent(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    for agent in world.desktops:
        await world.runtime.router.agent_not_ready(agent, "meeting")
    caller = Caller(number="+390299887766", menu_keys="3", patience_s=1.0)

    result = await asyncio.wait_for(world.simulator.call(caller), 30)

    assert result.abandoned and not result.answered
    # After the hangup the server sent nothing but its own status bookkeeping.
    assert not any(c.startswith("EXEC Dial") for c in result.commands)
    row = await eventually(
        lambda: _interaction(pg_pool, result.uniqueid),
        timeout=5,
    )
    assert row["outcome"] == "abandoned"
    assert row["customer_id"] is None  # an unknown number stays unknown, never guessed
    events = [
        r["event"]
        for r in await pg_pool.fetch(
            "SELECT event FROM queue_log WHERE item_id = $1 ORDER BY id", result.uniqueid
        )
    ]
    assert events == ["enter", "abandon"]


async def test_given_garbage_on_another_connection_then_the_call_still_completes(
    world: DemoWorld,
) -> None:
    call = world.simulator.start_call(known_caller(world, key="1"))
    reader, writer = await asyncio.open_connection("127.0.0.1", world.runtime.agi.port)
    writer.write(b"\x00\xff garbage without any structure\n" * 3 + b"x" * 70_000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # the server closed it
    writer.close()

    result = await asyncio.wait_for(call, 30)
    assert result.answered
    assert world.runtime.agi.protocol_errors_total >= 1


async def test_given_ami_link_dropped_then_client_reconnects_and_readiness_recovers(
    world: DemoWorld,
) -> None:
    ami = world.runtime.ami
    assert ami is not None
    await eventually(lambda: _assert(ami.connected), timeout=5)
    before = ami.reconnects_total

    assert world.asterisk.kill_connections() >= 1

    await eventually(lambda: _assert(ami.reconnects_total > before and ami.connected), timeout=10)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{world.base_url}/readyz") as response,
    ):
        body = await response.json()
    assert response.status == 200, body
    assert body["checks"]["ami"]["ok"] is True


async def test_health_readiness_and_metrics_over_http(world: DemoWorld) -> None:
    await asyncio.wait_for(world.simulator.call(known_caller(world, key="4")), 30)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{world.base_url}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{world.base_url}/readyz") as r:
            checks = (await r.json())["checks"]
        assert {"postgres", "redis", "fastagi", "ami", "backend:erp", "backend:crm"} <= set(checks)
        async with http.get(f"{world.base_url}/metrics") as r:
            text = await r.text()
        async with http.get(f"{world.base_url}/api/calls/recent") as r:
            assert r.status == 401  # customers' names and numbers need a login
        await web_login(http, world.base_url, "admin", world.logins.password)
        async with http.get(f"{world.base_url}/api/calls/recent") as r:
            recent = await r.json()
    assert "centralino_agi_calls_total 1.0" in text
    assert "centralino_agi_connections_refused_total 0.0" in text
    assert "centralino_calls_answered_total 1.0" in text
    assert recent and recent[0]["outcome"] == "answered"


async def test_given_a_backend_circuit_open_then_readiness_is_degraded_not_unready(
    world: DemoWorld,
) -> None:
    breaker = world.runtime.fanout.breakers["crm"]
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{world.base_url}/readyz") as response,
    ):
        body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "degraded"
    assert body["degraded"] == ["backend:crm"] and body["unready"] == []
    assert body["checks"]["backend:crm"]["ok"] is False
    assert body["checks"]["postgres"]["ok"] is True


async def test_given_an_unknown_queue_in_the_agi_request_then_refused_before_the_flow(
    world: DemoWorld, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """`inbound?queue=<name>` comes from the dialplan's transfer context: a name we do not know
    is refused at once, so the dialplan's fallback answers the caller and the ACD never saw it."""
    from centralino.simulator.agi_peer import AgiPeer, environment_bytes

    uniqueid = "1795365745.77"
    peer = AgiPeer(
        host="127.0.0.1",
        port=world.runtime.agi.port,
        environment=environment_bytes(
            uniqueid=uniqueid,
            channel="Local/7999@centralino-transfer-00000001;2",
            network_script="inbound?queue=nosuchqueue",
            callerid=known_caller(world).number,
        ),
    )
    with caplog.at_level(logging.WARNING, logger="centralino.inbound_script"):
        await asyncio.wait_for(peer.run(), 10)

    assert peer.closed_by == "server"
    # Not answered, nothing played: the only word is the status the dialplan's fallback reads.
    assert peer.commands == ["SET VARIABLE CENTRALINO_STATUS NOROUTE"]
    assert peer.model.variables["CENTRALINO_STATUS"] == "NOROUTE"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("nosuchqueue" in w for w in warnings), warnings
    # Nothing recorded: no queue log row, nothing live, no interaction.
    assert (
        await pg_pool.fetchval("SELECT count(*) FROM queue_log WHERE item_id = $1", uniqueid) == 0
    )
    live = await world.runtime.router.live_snapshot()
    assert uniqueid not in repr(live)
    assert not world.runtime.outcomes or not any(world.runtime.outcomes.values())


def _assert(condition: bool) -> None:
    assert condition


async def test_simulate_load_run_drives_calls_through_the_server(
    world: DemoWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    from centralino.simulator.load import run_load

    before = world.runtime.agi.calls_total
    code = await asyncio.wait_for(
        run_load(
            host="127.0.0.1",
            port=world.runtime.agi.port,
            calls=6,
            concurrency=3,
            time_scale=0.01,
        ),
        60,
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "6 calls in" in out
    transfers = re.search(r"^transfers: (\d+)$", out, re.MULTILINE)
    assert transfers is not None, out
    # each transferred caller comes back through FastAGI once more
    assert world.runtime.agi.calls_total - before == 6 + int(transfers[1])


async def test_dialplan_contract_every_fastagi_script_has_a_route_and_every_route_is_used(
    world: DemoWorld,
) -> None:
    from centralino.asterisk.dialplan import agi_scripts_in_dialplan

    in_dialplan = agi_scripts_in_dialplan(EXTENSIONS_CONF)
    routed = set(world.runtime.agi.router.scripts)
    assert in_dialplan == routed, f"dialplan {in_dialplan} vs routes {routed}"


async def test_dialplan_contract_every_queue_is_a_transfer_target_reentering_a_route(
    world: DemoWorld,
) -> None:
    """`<queue>@centralino-transfer` exists for every queue this server runs, and hands the
    channel to a route we serve with that queue as the `queue` argument (what InboundHandler
    passes on as InboundCall.queue; tests/test_transfers.py drives such a session end to end)."""
    from urllib.parse import parse_qs, urlsplit

    from centralino.asterisk.dialplan import load_dialplan
    from centralino.settings import TRANSFER_CONTEXT
    from tests.test_asterisk_conf import Walk

    plan = load_dialplan(EXTENSIONS_CONF)
    routed = set(world.runtime.agi.router.scripts)
    queues = [q.name for q in world.runtime.settings.acd.queues]
    assert queues
    for queue in queues:
        trace = Walk(plan, {"inbound": {"AGISTATUS": "HANGUP"}}).run(TRANSFER_CONTEXT, queue)
        (request,) = [t[len("AGI(") : -1] for t in trace if t.startswith("AGI(agi://")]
        url = urlsplit(request)
        assert url.path.strip("/") in routed, (queue, request, routed)
        assert parse_qs(url.query) == {"queue": [queue]}


async def test_given_star_in_queue_when_an_agent_frees_up_then_ami_originates_the_callback(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    router = world.runtime.router
    for agent in world.desktops:
        await router.agent_not_ready(agent, "meeting")
    caller = Caller(number="+390233445566", menu_keys="4", star_for_callback=True, patience_s=600)

    result = await asyncio.wait_for(world.simulator.call(caller), 30)
    assert not result.answered and not result.abandoned
    assert result.commands[-1] == "HANGUP"  # we thanked the caller and hung up ourselves

    await router.agent_ready("agent103")  # the sales expert comes back

    async def completed() -> list[str]:
        rows = await pg_pool.fetch(
            "SELECT event FROM queue_log WHERE item_id = $1 ORDER BY id", result.uniqueid
        )
        events = [r["event"] for r in rows]
        assert events[-1] == "complete", events
        return events

    events = await eventually(completed, timeout=15)
    assert events[:2] == ["enter", "callback"] and "connect" in events
    originates = [a for a in world.asterisk.actions_received if a.name == "Originate"]
    assert originates and originates[-1].get("Exten") == "+390233445566"
    assert originates[-1].get("Context") == "centralino-callback"
    assert originates[-1].get("Channel") == "PJSIP/agent103"


async def test_given_an_agents_phone_goes_unavailable_then_ami_logs_them_out(
    world: DemoWorld,
) -> None:
    world.asterisk.emit("DeviceStateChange", Device="PJSIP/agent102", State="UNAVAILABLE")
    world.asterisk.emit("DeviceStateChange", Device="PJSIP/agent101", State="INUSE")

    async def states() -> dict[str, str]:
        found = {s.agent_id: s.state.value for s in await world.runtime.live.agents()}
        assert found["agent102"] == "logged_out", found
        return found

    found = await eventually(states, timeout=5)
    assert found["agent101"] == "ready"


async def test_given_redis_loses_the_live_state_then_it_is_rebuilt_and_calls_flow_again(
    pg_dsn: str, redis_url: str, pg_pool: asyncpg.Pool, redis_client: Any, tmp_path: Path
) -> None:
    async with demo_world(
        _settings(tmp_path),
        database_url=pg_dsn,
        redis_url=redis_url,
        time_scale=0.01,
        flow=FAST_FLOW,
        live_check_s=0.1,
    ) as world:
        reliable_phones(world)
        router = world.runtime.router
        await router.agent_not_ready("agent102", "lunch")
        assert (await world.simulator.call(known_caller(world))).answered

        await redis_client.flushdb()  # Redis restarted without persistence

        async def restored() -> dict[str, str]:
            states = {s.agent_id: s.state.value for s in await world.runtime.live.agents()}
            # Each agent's last state in the queue log (wrap-up resumes as ready).
            assert states == {"agent101": "ready", "agent102": "not_ready", "agent103": "ready"}
            return states

        await eventually(restored, timeout=5)
        result = await asyncio.wait_for(world.simulator.call(known_caller(world)), 30)
        assert result.answered


async def test_given_a_caller_queued_when_the_server_stops_then_they_are_handed_back_at_once(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    """SIGTERM's path (FastAgiServer.stop) with a caller waiting: the hold loop's pending
    command completes, the call is handed back with SHUTDOWN well within the grace period,
    and its record says it was returned, not abandoned by the caller."""
    for agent in world.desktops:
        await world.runtime.router.agent_not_ready(agent, "meeting")
    caller = Caller(number="+390299887766", menu_keys="3", patience_s=600)
    call = asyncio.ensure_future(world.simulator.call(caller))

    async def queued() -> None:
        assert [w.item_id for w in await world.runtime.live.waiting("support")]

    await eventually(queued, timeout=10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(world.runtime.agi.stop(), 10)
    took = loop.time() - started
    result = await asyncio.wait_for(call, 10)

    assert result.commands[-1] == "SET VARIABLE CENTRALINO_STATUS SHUTDOWN"
    assert not result.answered
    assert took < world.runtime.settings.server.grace_s / 2
    row = await eventually(lambda: _interaction(pg_pool, result.uniqueid), timeout=5)
    assert row["outcome"] == "returned"
    assert await world.runtime.live.waiting("support") == []  # nobody waits for no one
    log = await pg_pool.fetch(
        "SELECT event, data FROM queue_log WHERE item_id = $1 ORDER BY id", result.uniqueid
    )
    # Our exit, not the caller's abandon (which the wallboard counts against the queue).
    assert [r["event"] for r in log] == ["enter", "exit"]
    assert log[-1]["data"] == "returned"


class _TicketsDown:
    """The ticket store's database fails (a fault injected in front of the real store)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.attempts = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def create(self, *args: object, **kwargs: object) -> object:
        self.attempts += 1
        raise ConnectionError("tickets unavailable")


async def test_given_the_ticket_store_fails_then_the_answered_call_is_still_recorded(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    context = world.runtime.context
    real = context.tickets
    down = _TicketsDown(real)
    context.tickets = down  # type: ignore[assignment]
    try:
        result = await asyncio.wait_for(world.simulator.call(known_caller(world)), 30)
    finally:
        context.tickets = real
    assert result.answered
    row = await eventually(lambda: _interaction(pg_pool, result.uniqueid), timeout=5)
    assert row["outcome"] == "answered" and row["customer_id"] is not None
    assert down.attempts == 1  # a ticket was due (a known caller, answered) and failed
    assert row["ticket_id"] is None  # no ticket could be opened; the call is on record anyway


async def test_demo_creates_its_accounts_and_prints_how_to_log_in(
    world: DemoWorld, pg_pool: asyncpg.Pool
) -> None:
    from centralino.access.passwords import Passwords
    from centralino.adapters.pg_accounts import PgAccounts
    from centralino.demo.accounts import ensure_demo_accounts
    from centralino.demo.world import _banner

    banner = _banner(world)
    assert f"{world.base_url}/login" in banner and world.logins.password in banner
    assert world.logins.usernames == ("admin", "supervisor", "agent101", "agent102", "agent103")
    accounts = PgAccounts(pool=pg_pool)
    supervisor = await accounts.account_by_name("supervisor")
    assert supervisor is not None and supervisor.teams == {"blue", "green"}
    # The simulated desktops connected with their agents' API tokens.
    assert all(d.connected.is_set() for d in world.desktops.values())
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await web_login(http, world.base_url, "agent101", world.logins.password)
        async with http.get(f"{world.base_url}/api/agents") as r:
            assert [a["agent_id"] for a in await r.json()] == ["agent101"]
        async with http.get(f"{world.base_url}/desktop/agent102") as r:
            assert r.status == 403

    # A second start resets the password and replaces the desktops' tokens.
    old_token = world.logins.desktop_tokens["agent101"]
    again = await ensure_demo_accounts(
        accounts,
        agents=list(world.runtime.agents.values()),
        password="another demo password",
        passwords=Passwords(),
        now=world.runtime.context.clock.now(),
    )
    assert again.desktop_tokens["agent101"] != old_token
    async with aiohttp.ClientSession() as http:
        bearer = {"Authorization": f"Bearer {old_token}"}
        async with http.get(f"{world.base_url}/api/session", headers=bearer) as r:
            assert r.status == 401
        bearer = {"Authorization": f"Bearer {again.desktop_tokens['agent101']}"}
        async with http.get(f"{world.base_url}/api/session", headers=bearer) as r:
            assert (await r.json())["username"] == "agent101"
