"""The demo ERP and CRM over real HTTP, and the whole pre-answer fan-out against them with
every fault the issue names: the call is never delayed past the deadline, nothing crashes,
and the pop says what is missing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date

import aiohttp
import numpy as np
import pytest

from centralino.adapters.http_client import HttpClient
from centralino.adapters.http_connector import HttpConnector
from centralino.demo.behaviour import BEHAVIOUR, Fault
from centralino.demo.crm import crm_backend_config, make_crm_app
from centralino.demo.dataset import XSS_NOTE, generate
from centralino.demo.erp import erp_backend_config, make_erp_app
from context.clock import SystemClock
from context.fanout import PreAnswerFanout
from context.models import ExternalLink, Identity, IdentityKind
from context.screen_pop import SourceStatus
from context.service import ContextService
from tests.context.fakes import MemoryCallContext, MemoryCustomers, MemoryTickets, MemoryTimeline
from tests.demo.serve import serve

TODAY = date(2026, 1, 15)
DATA = generate(np.random.default_rng(7), today=TODAY)
DEADLINE_S = 0.2
# How late a wait may return on a loaded 2-core CI machine (GC, other processes): a broken
# deadline would overshoot by the slow backend's full delay, well beyond this.
SCHEDULING_SLACK_S = 0.2


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def test_the_dataset_is_deterministic_and_has_the_demo_cases() -> None:
    again = generate(np.random.default_rng(7), today=TODAY)
    assert again == DATA
    assert generate(np.random.default_rng(8), today=TODAY) != DATA
    assert len(DATA.by_phone(DATA.shared_office_phone)) == 2
    assert any(n.text == XSS_NOTE for p in DATA.people for n in p.notes)


async def test_erp_serves_invoices_orders_and_shipments(session: aiohttp.ClientSession) -> None:
    person = DATA.people[0]
    app = make_erp_app(latency_ms=0, failure_rate=0, rng=np.random.default_rng(1), dataset=DATA)
    async with serve(app) as url:
        async with session.get(f"{url}/api/customers/{person.erp_code}/invoices") as r:
            invoices = (await r.json())["invoices"]
        async with session.get(f"{url}/api/customers/{person.erp_code}/orders") as r:
            assert r.status == 200
            assert "orders" in await r.json()
        async with session.get(f"{url}/api/customers", params={"phone": person.phone}) as r:
            assert [c["code"] for c in (await r.json())["customers"]] == [person.erp_code]
        async with session.get(f"{url}/api/customers/NOPE") as r:
            assert r.status == 404
    assert len(invoices) == len(person.invoices)
    for inv, raw in zip(invoices, person.invoices, strict=True):
        assert inv["due"] == raw.due.isoformat() and inv["amount"] == raw.amount
        assert inv["status"] == ("paid" if raw.paid else "overdue" if raw.due < TODAY else "open")


async def test_crm_serves_contacts_cases_and_raw_notes(session: aiohttp.ClientSession) -> None:
    person = DATA.people[0]
    app = make_crm_app(latency_ms=0, failure_rate=0, rng=np.random.default_rng(1), dataset=DATA)
    async with serve(app) as url:
        async with session.get(f"{url}/api/contacts/{person.crm_id}") as r:
            contact = await r.json()
        async with session.get(f"{url}/api/contacts/{person.crm_id}/notes") as r:
            notes = (await r.json())["notes"]
        async with session.get(
            f"{url}/api/contacts", params={"phone": DATA.shared_office_phone}
        ) as r:
            shared = (await r.json())["contacts"]
    assert contact["account_owner"] == person.account_owner
    assert XSS_NOTE in [n["text"] for n in notes]
    assert len(shared) == 2


async def test_latency_and_failure_rate_are_what_was_configured(
    session: aiohttp.ClientSession,
) -> None:
    app = make_erp_app(latency_ms=60, failure_rate=0.5, rng=np.random.default_rng(3), dataset=DATA)
    statuses = []
    async with serve(app) as url:
        started = time.monotonic()
        for _ in range(12):
            async with session.get(f"{url}/api/customers/{DATA.people[0].erp_code}") as r:
                statuses.append(r.status)
        per_request = (time.monotonic() - started) / 12
    assert per_request >= 0.06
    assert 2 <= statuses.count(500) <= 10 and statuses.count(200) >= 2
    assert app[BEHAVIOUR].requests == 12


class Rig:
    def __init__(self, client: HttpClient, erp_url: str, crm_url: str) -> None:
        clock = SystemClock()
        self.customers = MemoryCustomers()
        self.clock = clock
        self.fanout = PreAnswerFanout(
            service=ContextService(
                customers=self.customers,
                timeline=MemoryTimeline(),
                tickets=MemoryTickets(),
                clock=clock,
            ),
            connectors=[
                HttpConnector(config=erp_backend_config(erp_url), client=client, clock=clock),
                HttpConnector(
                    config=crm_backend_config(crm_url, timeout_s=0.5), client=client, clock=clock
                ),
            ],
            call_context=MemoryCallContext(),
            clock=clock,
            deadline_s=DEADLINE_S,
        )


@pytest.mark.parametrize(
    ("crm_kw", "status"),
    [
        ({"latency_ms": 20}, SourceStatus.OK),
        ({"latency_ms": 400}, SourceStatus.PENDING),  # slow: late, still arrives later
        ({"latency_ms": 0, "failure_rate": 1.0}, SourceStatus.FAILED),
        ({"latency_ms": 0, "fault": Fault.MALFORMED_JSON}, SourceStatus.FAILED),
        ({"latency_ms": 0, "fault": Fault.OVERSIZED}, SourceStatus.FAILED),
        ({"latency_ms": 0, "fault": Fault.HANG}, SourceStatus.PENDING),
    ],
)
async def test_fanout_over_http_never_delays_the_call_and_says_what_is_missing(
    http_client: HttpClient, crm_kw: dict[str, object], status: SourceStatus
) -> None:
    person = DATA.people[0]
    erp = make_erp_app(latency_ms=10, failure_rate=0, rng=np.random.default_rng(1), dataset=DATA)
    kw: dict[str, object] = {"failure_rate": 0.0, "rng": np.random.default_rng(2), "dataset": DATA}
    kw.update(crm_kw)
    crm = make_crm_app(**kw)  # type: ignore[arg-type]
    async with serve(erp) as erp_url, serve(crm) as crm_url:
        rig = Rig(http_client, erp_url, crm_url)
        await rig.customers.create(
            display_name=person.name,
            identities=[Identity(IdentityKind.PHONE, person.phone)],
            links=[ExternalLink("erp", person.erp_code), ExternalLink("crm", person.crm_id)],
        )
        started = time.monotonic()
        handle = rig.fanout.start(linkedid="call-1", caller_id=person.phone.replace("+39", ""))
        snap = await handle.wait()
        assert time.monotonic() - started < DEADLINE_S + SCHEDULING_SLACK_S
        pop = snap.screen_pop(rig.clock.now())
        await handle.aclose()
    assert snap.sources["erp"].status is SourceStatus.OK
    assert snap.sources["crm"].status is status
    assert pop["caller"] is not None and pop["caller"]["label"] == person.name
    assert any(f["kind"] == "invoice" for f in pop["facts"])
    if status is SourceStatus.OK:
        notes = [f["data"]["text"] for f in pop["facts"] if f["kind"] == "note"]
        assert XSS_NOTE in notes  # kept raw: the page renders it with textContent
        assert pop["missing"] == []
    else:
        assert f"crm: {status}" in pop["missing"]


async def test_garbage_caller_id_over_http_fans_out_nothing_and_pops_unknown(
    http_client: HttpClient,
) -> None:
    erp = make_erp_app(latency_ms=0, failure_rate=0, rng=np.random.default_rng(1), dataset=DATA)
    crm = make_crm_app(latency_ms=0, failure_rate=0, rng=np.random.default_rng(1), dataset=DATA)
    async with serve(erp) as erp_url, serve(crm) as crm_url:
        rig = Rig(http_client, erp_url, crm_url)
        handle = rig.fanout.start(linkedid="g", caller_id="\x00<script>%%%")
        pop = (await handle.wait()).screen_pop(rig.clock.now())
        await handle.aclose()
    assert pop["complete"] and pop["caller"] is not None
    assert pop["caller"]["label"] == "unknown number"
    assert erp[BEHAVIOUR].requests == 0 and crm[BEHAVIOUR].requests == 0
    assert sorted(pop["missing"]) == [
        "crm: skipped",
        "erp: skipped",
        "tickets: skipped",
        "timeline: skipped",
    ]
