"""Demo ERP: customers, invoices (due dates, amounts, paid or not), orders and shipments.

An aiohttp app with realistic, configurable latency and failure rate (`behaviour.py`); the data
is generated deterministically from a seed (`dataset.py`). Endpoints (JSON):
- `GET /api/customers?phone=+39...` -> {"customers": [customer, ...]}
- `GET /api/customers/{code}` -> customer (404 if unknown)
- `GET /api/customers/{code}/invoices` -> {"invoices": [...]}
- `GET /api/customers/{code}/orders` -> {"orders": [...]} (each with its shipment)
- `GET /api/lookup?phone=+39...` -> {"customers": [...], "open_invoices": [...],
  "recent_orders": [...]}: everything a pop needs in one round trip (404 if unknown)
"""

from __future__ import annotations

from datetime import date

import numpy as np
from aiohttp import web

from centralino.adapters.http_connector import FactExtract, HttpBackendConfig, HttpRequestSpec
from centralino.demo.behaviour import Fault, demo_app
from centralino.demo.dataset import DemoDataset, Invoice, Order, Person, dataset_or_default

DATASET: web.AppKey[DemoDataset] = web.AppKey("demo_dataset", DemoDataset)


def _customer(p: Person) -> dict[str, object]:
    return {
        "code": p.erp_code,
        "name": p.company,
        "contact": p.name,
        "phone": p.phone,
        "email": p.email,
    }


def _invoice(inv: Invoice, today: date) -> dict[str, object]:
    status = "paid" if inv.paid else ("overdue" if inv.due < today else "open")
    return {
        "number": inv.number,
        "issued": inv.issued.isoformat(),
        "due": inv.due.isoformat(),
        "amount": inv.amount,
        "currency": "EUR",
        "status": status,
    }


def _order(o: Order) -> dict[str, object]:
    shipment = None
    if o.carrier is not None:
        shipment = {
            "carrier": o.carrier,
            "tracking": o.tracking,
            "status": o.shipment_status,
            "eta": o.eta.isoformat() if o.eta else None,
        }
    return {
        "number": o.number,
        "placed": o.placed.isoformat(),
        "total": o.total,
        "currency": "EUR",
        "status": o.status,
        "shipment": shipment,
    }


def _person(request: web.Request) -> Person:
    person = request.app[DATASET].by_erp_code(request.match_info["code"])
    if person is None:
        raise web.HTTPNotFound(
            text='{"error": "no such customer"}', content_type="application/json"
        )
    return person


async def customers(request: web.Request) -> web.Response:
    people = request.app[DATASET].by_phone(request.query.get("phone", ""))
    return web.json_response({"customers": [_customer(p) for p in people]})


async def customer(request: web.Request) -> web.Response:
    return web.json_response(_customer(_person(request)))


async def invoices(request: web.Request) -> web.Response:
    today = request.app[DATASET].today
    return web.json_response({"invoices": [_invoice(i, today) for i in _person(request).invoices]})


async def orders(request: web.Request) -> web.Response:
    return web.json_response({"orders": [_order(o) for o in _person(request).orders]})


async def lookup(request: web.Request) -> web.Response:
    data = request.app[DATASET]
    people = data.by_phone(request.query.get("phone", ""))
    if not people:
        raise web.HTTPNotFound(text='{"error": "unknown number"}', content_type="application/json")
    return web.json_response(
        {
            "customers": [_customer(p) for p in people],
            "open_invoices": [
                _invoice(i, data.today) for p in people for i in p.invoices if not i.paid
            ],
            "recent_orders": [_order(o) for p in people for o in p.orders],
        }
    )


def make_erp_app(
    *,
    latency_ms: float,
    failure_rate: float,
    rng: np.random.Generator,
    jitter_ms: float = 0.0,
    fault: Fault = Fault.NONE,
    dataset: DemoDataset | None = None,
    seed: int = 7,
    today: date | None = None,
) -> web.Application:
    """The demo ERP. `rng` draws latency jitter and failures; the data comes from `dataset` or
    is generated from `seed` (and `today`, default 2026-01-15, so runs are reproducible)."""
    app = demo_app(
        latency_ms=latency_ms, failure_rate=failure_rate, rng=rng, jitter_ms=jitter_ms, fault=fault
    )
    app[DATASET] = dataset_or_default(dataset, seed=seed, today=today)
    app.router.add_get("/api/customers", customers)
    app.router.add_get("/api/customers/{code}", customer)
    app.router.add_get("/api/customers/{code}/invoices", invoices)
    app.router.add_get("/api/customers/{code}/orders", orders)
    app.router.add_get("/api/lookup", lookup)
    return app


def erp_backend_config(
    base_url: str, *, name: str = "erp", timeout_s: float = 1.0
) -> HttpBackendConfig:
    """How Centralino reaches this ERP: one look-up by the caller's number per call."""
    return HttpBackendConfig(
        name=name,
        base_url=base_url,
        timeout_s=timeout_s,
        requests=(
            HttpRequestSpec(
                url_template="/api/lookup?phone={phone}",
                extracts=(
                    FactExtract(
                        kind="erp_customer",
                        items_path="customers",
                        fields={"code": "code", "company": "name", "contact": "contact"},
                    ),
                    FactExtract(
                        kind="invoice",
                        items_path="open_invoices",
                        fields={
                            "number": "number",
                            "due": "due",
                            "amount": "amount",
                            "currency": "currency",
                            "status": "status",
                        },
                    ),
                    FactExtract(
                        kind="order",
                        items_path="recent_orders",
                        fields={
                            "number": "number",
                            "status": "status",
                            "total": "total",
                            "carrier": "shipment.carrier",
                            "tracking": "shipment.tracking",
                            "shipment_status": "shipment.status",
                            "eta": "shipment.eta",
                        },
                    ),
                ),
            ),
        ),
    )
