"""What one process reports about itself: readiness checks and Prometheus metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from context.circuit import BreakerState, CircuitBreaker
from context.models import Outcome

if TYPE_CHECKING:
    from centralino.app import Runtime
    from centralino.asterisk.ami_client import AmiClient


def register_checks(rt: Runtime) -> None:
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
    # Live audio is an extra: without its listener calls are still answered and routed.
    rt.readiness.add("audiosocket", audiosocket, required=False)
    for server, client in rt.ami.clients.items() if rt.ami is not None else ():
        # One check per Asterisk server: "ami" for [ami], "ami:<name>" for the others.

        async def ami_link(client: AmiClient = client) -> str:
            if not client.connected:
                raise ConnectionError("not connected to Asterisk's AMI")
            return f"connected to {client.host}:{client.port}"

        rt.readiness.add(f"ami:{server}" if server else "ami", ami_link)
    for name in (c.name for c in rt.fanout.connectors):
        breaker = rt.fanout.breakers[name]

        async def backend(breaker: CircuitBreaker = breaker, name: str = name) -> str:
            if breaker.state is BreakerState.OPEN:
                raise ConnectionError(f"{name}: circuit open (backend keeps failing)")
            return f"circuit {breaker.state.value}"

        # Optional: with a backend's circuit open calls are still taken, the pop lacks its facts.
        rt.readiness.add(f"backend:{name}", backend, required=False)


def register_metrics(rt: Runtime) -> None:
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
    m.counter(
        "centralino_agi_connections_refused",
        "FastAGI connections closed at once: the connection cap was reached",
        lambda: agi.connections_refused_total,
    )
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
