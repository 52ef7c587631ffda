from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from context.clock import SystemClock
from context.errors import BackendBadResponse, BackendUnavailable, ConfigurationError
from context.fanout import PreAnswerFanout
from context.identity import PhoneNormaliser
from context.models import ConnectorQuery, ExternalLink, Fact, Identity, IdentityKind
from context.ports import Connector
from context.screen_pop import IvrSummary, SourceStatus, pop_from_fields
from context.service import ContextService
from tests.context.fakes import (
    MemoryCallContext,
    MemoryCustomers,
    MemoryTickets,
    MemoryTimeline,
    ScriptedConnector,
)
from tests.helpers import eventually

PHONE = Identity(IdentityKind.PHONE, "+390212345678")
DEADLINE_S = 0.15
# How late a wait may return on a loaded 2-core CI machine (GC, other processes): a broken
# deadline would overshoot by the slow backend's full delay, well beyond this.
SCHEDULING_SLACK_S = 0.2


class World:
    def __init__(self) -> None:
        self.clock = SystemClock()
        self.customers = MemoryCustomers()
        self.timeline = MemoryTimeline()
        self.tickets = MemoryTickets()
        self.live = MemoryCallContext()
        self.service = ContextService(
            customers=self.customers,
            timeline=self.timeline,
            tickets=self.tickets,
            clock=self.clock,
            phones=PhoneNormaliser(),
        )

    def fanout(
        self, connectors: Sequence[Connector], deadline_s: float = DEADLINE_S, **kw: Any
    ) -> PreAnswerFanout:
        return PreAnswerFanout(
            service=self.service,
            connectors=connectors,
            call_context=self.live,
            clock=self.clock,
            deadline_s=deadline_s,
            **kw,
        )


def answering(name: str, delay_s: float = 0.0, kind: str = "fact") -> ScriptedConnector:
    clock = SystemClock()

    async def script(query: ConnectorQuery) -> list[Fact]:
        await asyncio.sleep(delay_s)
        value = query.identity.value if query.identity else None
        return [Fact(name, kind, {"for": value, "links": dict(query.links)}, clock.now())]

    return ScriptedConnector(name, script)


def failing(name: str, exc: Exception) -> ScriptedConnector:
    async def script(query: ConnectorQuery) -> list[Fact]:
        raise exc

    return ScriptedConnector(name, script)


def hanging(name: str) -> ScriptedConnector:
    async def script(query: ConnectorQuery) -> list[Fact]:
        await asyncio.Event().wait()
        return []

    return ScriptedConnector(name, script)


async def test_given_fast_backends_when_a_known_customer_calls_then_all_before_deadline() -> None:
    w = World()
    mario = await w.customers.create(
        display_name="Mario Rossi", identities=[PHONE], links=[ExternalLink("erp", "E1")]
    )
    await w.service.open_ticket(customer_id=mario.id, title="Fattura", actor="ivr")
    erp_by_link = answering("erp")
    erp_by_link.needs_link = "erp"
    fan = w.fanout([answering("crm", 0.01), erp_by_link])
    handle = fan.start(linkedid="L1", caller_id="02 1234 5678")
    snap = await handle.wait()
    assert snap.complete and snap.missing == []
    assert snap.resolution is not None and snap.resolution.customer == mario
    assert {f.source for f in snap.facts} == {"crm", "erp"}
    assert erp_by_link.calls[0].links == {"erp": "E1"}  # looked up by its own id
    assert snap.open_tickets is not None and [t.title for t in snap.open_tickets] == ["Fattura"]
    pop = snap.screen_pop(w.clock.now())
    assert pop["caller"] is not None and pop["caller"]["label"] == "Mario Rossi"
    assert all(f["age_s"] >= 0 for f in pop["facts"])
    await handle.flushed()
    stored = pop_from_fields("L1", await w.live.read("L1"), pop_at := w.clock.now())
    assert stored == {**snap.screen_pop(pop_at), "generated_at": stored["generated_at"]}
    await handle.aclose()


async def test_given_a_slow_backend_then_deadline_holds_and_late_result_lands_live() -> None:
    w = World()
    await w.customers.create(display_name="Mario", identities=[PHONE])
    fan = w.fanout([answering("erp"), answering("crm", delay_s=DEADLINE_S + 0.5)])
    seen: list[str] = []
    started = time.monotonic()
    handle = fan.start(linkedid="L2", caller_id="+390212345678")
    handle.add_listener(lambda h, field: seen.append(field))
    snap = await handle.wait()
    waited = time.monotonic() - started
    assert waited < DEADLINE_S + SCHEDULING_SLACK_S
    assert not snap.complete
    assert snap.sources["crm"].status is SourceStatus.PENDING
    assert "crm: pending" in snap.screen_pop(w.clock.now())["missing"]

    async def crm_landed() -> bool:
        assert "source:crm" in seen
        fields = await w.live.read("L2")
        pop = pop_from_fields("L2", fields, w.clock.now())
        assert pop["complete"] and pop["missing"] == []
        return True

    # tests/helpers.eventually's `T | Awaitable[T]` makes mypy infer Never for async checks.
    await eventually(crm_landed, timeout=2.0)
    await handle.aclose()


@pytest.mark.parametrize(
    ("connector", "status"),
    [
        (failing("crm", BackendUnavailable("crm", "HTTP 500")), SourceStatus.FAILED),
        (failing("crm", BackendBadResponse("crm", "malformed JSON")), SourceStatus.FAILED),
        (failing("crm", RuntimeError("connector bug")), SourceStatus.FAILED),
        (hanging("crm"), SourceStatus.TIMED_OUT),
    ],
)
async def test_given_a_faulty_backend_then_call_not_delayed_and_pop_says_what_is_missing(
    connector: ScriptedConnector, status: SourceStatus
) -> None:
    w = World()
    fan = w.fanout([answering("erp"), connector], default_source_timeout_s=0.1)
    started = time.monotonic()
    handle = fan.start(linkedid="L3", caller_id="+390212345678")
    await handle.wait()
    assert time.monotonic() - started < DEADLINE_S + SCHEDULING_SLACK_S
    await eventually(lambda: _assert_status(handle.snapshot().sources["crm"].status, status))
    pop = handle.snapshot().screen_pop(w.clock.now())
    assert f"crm: {status}" in pop["missing"]
    assert [f["source"] for f in pop["facts"]] == ["erp"]
    await handle.aclose()


def _assert_status(actual: SourceStatus, expected: SourceStatus) -> None:
    assert actual is expected


async def test_given_a_backend_that_keeps_failing_then_the_breaker_stops_calling_it() -> None:
    w = World()
    crm = failing("crm", BackendUnavailable("crm", "HTTP 500"))
    fan = w.fanout([crm], breaker_failures=3, breaker_open_s=60.0)
    for i in range(5):
        handle = fan.start(linkedid=f"B{i}", caller_id="+390212345678")
        snap = await handle.wait()
        expected = SourceStatus.FAILED if i < 3 else SourceStatus.CIRCUIT_OPEN
        assert snap.sources["crm"].status is expected
        await handle.aclose()
    assert len(crm.calls) == 3


@pytest.mark.parametrize("caller_id", ["anonymous", "<unknown>", "", "abc<script>", "123"])
async def test_given_a_garbage_or_withheld_caller_id_then_nothing_crashes(caller_id: str) -> None:
    w = World()
    crm = answering("crm")
    fan = w.fanout([crm])
    handle = fan.start(linkedid="G1", caller_id=caller_id)
    snap = await handle.wait()
    assert snap.complete
    assert crm.calls == []  # nothing to look up by
    pop = snap.screen_pop(w.clock.now())
    assert pop["caller"] is not None
    assert pop["caller"]["label"] in {"unknown number", "withheld number"}
    assert pop["caller"]["status"] == "no_identity"
    assert "crm: skipped" in pop["missing"]
    await handle.aclose()


async def test_given_a_shared_number_then_ambiguous_is_reported_not_guessed() -> None:
    w = World()
    a = await w.customers.create(display_name="Anna", identities=[PHONE])
    b = await w.customers.create(display_name="Bruno", identities=[PHONE])
    handle = w.fanout([answering("crm")]).start(linkedid="A1", caller_id="+390212345678")
    snap = await handle.wait()
    caller = snap.screen_pop(w.clock.now())["caller"]
    assert caller is not None and caller["status"] == "ambiguous"
    assert caller["customer_id"] is None
    assert {c["customer_id"] for c in caller["candidates"]} == {a.id, b.id}
    assert caller["link_action"] is not None
    assert snap.sources["timeline"].status is SourceStatus.SKIPPED
    await handle.aclose()


async def test_given_an_unknown_number_then_the_pop_offers_to_link_it() -> None:
    w = World()
    handle = w.fanout([]).start(linkedid="U1", caller_id="3331234567")
    caller = (await handle.wait()).screen_pop(w.clock.now())["caller"]
    assert caller is not None and caller["label"] == "unknown number"
    assert caller["link_action"] == {
        "action": "link_identity",
        "identity_kind": "phone",
        "identity_value": "+393331234567",
    }
    await handle.aclose()


async def test_the_ivr_can_wait_for_identity_only() -> None:
    w = World()
    await w.customers.create(display_name="Mario", identities=[PHONE])
    # A long deadline, so that waiting for it instead of for identity alone is unmistakable.
    handle = w.fanout([hanging("crm")], deadline_s=2.0).start(
        linkedid="I1", caller_id="+390212345678"
    )
    started = time.monotonic()
    snap = await handle.wait(sources=["identity"])
    assert time.monotonic() - started < 1.0
    assert snap.resolution is not None and snap.resolution.customer is not None
    handle.set_ivr(
        IvrSummary(
            predicted_intent="invoice", confidence=0.8, transcript="fattura", steps=("menu: 2",)
        )
    )
    assert handle.snapshot().screen_pop(w.clock.now())["ivr"]["steps"] == ["menu: 2"]
    await handle.aclose()


async def test_call_end_cancels_what_is_still_running() -> None:
    w = World()
    fan = w.fanout([hanging("crm")])
    handle = fan.start(linkedid="C1", caller_id="+390212345678")
    await handle.wait()
    await handle.aclose()
    assert handle.snapshot().sources["crm"].status is SourceStatus.CANCELLED
    assert fan.get("C1") is None
    fields = await w.live.read("C1")
    assert '"cancelled"' in fields["source:crm"]


async def test_a_broken_live_store_does_not_break_the_call() -> None:
    w = World()
    w.live.fail = True
    handle = w.fanout([answering("crm")]).start(linkedid="S1", caller_id="+390212345678")
    snap = await handle.wait()
    assert snap.complete and snap.sources["crm"].status is SourceStatus.OK
    await handle.aclose()


async def test_writes_are_coalesced_into_few_round_trips() -> None:
    w = World()
    await w.customers.create(display_name="Mario", identities=[PHONE])
    handle = w.fanout([answering("a"), answering("b"), answering("c")]).start(
        linkedid="W1", caller_id="+390212345678"
    )
    await handle.wait()
    await handle.flushed()
    assert len(await w.live.read("W1")) >= 10
    assert w.live.writes <= 6
    await handle.aclose()


def test_misconfiguration_raises() -> None:
    w = World()
    with pytest.raises(ConfigurationError):
        w.fanout([answering("crm"), answering("crm")])
    with pytest.raises(ConfigurationError):
        w.fanout([answering("identity")])


async def test_one_fanout_per_linkedid() -> None:
    w = World()
    fan = w.fanout([])
    handle = fan.start(linkedid="D1", caller_id="")
    with pytest.raises(ConfigurationError):
        fan.start(linkedid="D1", caller_id="")
    await handle.aclose()


async def test_a_burst_of_calls_sends_the_slowest_sources_queries_first() -> None:
    """Each source's expected answer time is learnt; the queries of the calls starting in the
    same loop turn then go out slowest source first, so the request each pop waits for is not
    queued behind the fast ones of every other call."""
    world = World()
    order: list[str] = []

    def recording(name: str, delay_s: float) -> ScriptedConnector:
        async def script(query: ConnectorQuery) -> list[Fact]:
            order.append(name)
            await asyncio.sleep(delay_s)
            return []

        return ScriptedConnector(name, script)

    fanout = world.fanout(
        [recording("fast", 0.0), recording("slow", 0.06), recording("mid", 0.03)],
        deadline_s=1.0,
    )
    first = fanout.start(linkedid="learn", caller_id="+390212345678")
    await first.wait()
    await first.aclose()
    expected = fanout.expected_ms
    assert expected["slow"] > expected["mid"] > expected["fast"]
    order.clear()
    handles = [fanout.start(linkedid=f"b{i}", caller_id="+390212345678") for i in range(5)]
    await asyncio.gather(*(h.wait() for h in handles))
    assert order == ["slow"] * 5 + ["mid"] * 5 + ["fast"] * 5
    for h in handles:
        await h.aclose()


async def test_a_call_ending_before_its_queries_start_leaves_nothing_running() -> None:
    world = World()
    started: list[str] = []

    async def script(query: ConnectorQuery) -> list[Fact]:
        started.append("erp")
        return []

    fanout = world.fanout([ScriptedConnector("erp", script)])
    handle = fanout.start(linkedid="gone", caller_id="+390212345678")
    await handle.aclose()  # before the loop turn that would start the queries
    await asyncio.sleep(0.01)
    assert started == []
    assert handle.snapshot().sources["erp"].status is SourceStatus.CANCELLED
