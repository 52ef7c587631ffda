"""Demo CRM: contacts, account owner, open cases, last contacts and notes.

Same behaviour knobs and dataset as the demo ERP (`erp.py`). Notes are free text as users typed
them, including one holding `<script>` (the desktop must show it as text). Endpoints (JSON):
- `GET /api/contacts?phone=+39...` -> {"contacts": [contact, ...]} (two for a shared number)
- `GET /api/contacts/{id}` -> contact with its account owner (404 if unknown)
- `GET /api/contacts/{id}/cases` -> {"cases": [...]} (open ones first)
- `GET /api/contacts/{id}/notes` -> {"notes": [...]}
- `GET /api/contacts/{id}/activities` -> {"last_contacts": [...]}
- `GET /api/lookup?phone=+39...` -> {"contacts", "open_cases", "notes", "last_contacts"} in one
  round trip (404 if unknown)
"""

from __future__ import annotations

from datetime import date

import numpy as np
from aiohttp import web

from centralino.adapters.http_connector import FactExtract, HttpBackendConfig, HttpRequestSpec
from centralino.demo.behaviour import Fault, demo_app
from centralino.demo.dataset import Case, DemoDataset, LastContact, Note, Person, dataset_or_default

DATASET: web.AppKey[DemoDataset] = web.AppKey("demo_crm_dataset", DemoDataset)


def _contact(p: Person) -> dict[str, object]:
    return {
        "id": p.crm_id,
        "name": p.name,
        "company": p.company,
        "phone": p.phone,
        "email": p.email,
        "account_owner": p.account_owner,
    }


def _case(c: Case, contact_id: str) -> dict[str, object]:
    return {
        "id": c.id,
        "contact_id": contact_id,
        "subject": c.subject,
        "status": c.status,
        "opened": c.opened.isoformat(),
    }


def _note(n: Note, contact_id: str) -> dict[str, object]:
    return {
        "contact_id": contact_id,
        "author": n.author,
        "created": n.created.isoformat(),
        "text": n.text,
    }


def _last(c: LastContact, contact_id: str) -> dict[str, object]:
    return {
        "contact_id": contact_id,
        "at": c.at.isoformat(),
        "channel": c.channel,
        "summary": c.summary,
    }


def _person(request: web.Request) -> Person:
    person = request.app[DATASET].by_crm_id(request.match_info["id"])
    if person is None:
        raise web.HTTPNotFound(text='{"error": "no such contact"}', content_type="application/json")
    return person


async def contacts(request: web.Request) -> web.Response:
    people = request.app[DATASET].by_phone(request.query.get("phone", ""))
    return web.json_response({"contacts": [_contact(p) for p in people]})


async def contact(request: web.Request) -> web.Response:
    return web.json_response(_contact(_person(request)))


async def cases(request: web.Request) -> web.Response:
    p = _person(request)
    ordered = sorted(p.cases, key=lambda c: (c.status != "open", c.opened))
    return web.json_response({"cases": [_case(c, p.crm_id) for c in ordered]})


async def notes(request: web.Request) -> web.Response:
    p = _person(request)
    return web.json_response({"notes": [_note(n, p.crm_id) for n in p.notes]})


async def activities(request: web.Request) -> web.Response:
    p = _person(request)
    return web.json_response({"last_contacts": [_last(c, p.crm_id) for c in p.last_contacts]})


async def lookup(request: web.Request) -> web.Response:
    people = request.app[DATASET].by_phone(request.query.get("phone", ""))
    if not people:
        raise web.HTTPNotFound(text='{"error": "unknown number"}', content_type="application/json")
    return web.json_response(
        {
            "contacts": [_contact(p) for p in people],
            "open_cases": [
                _case(c, p.crm_id) for p in people for c in p.cases if c.status == "open"
            ],
            "notes": [_note(n, p.crm_id) for p in people for n in p.notes],
            "last_contacts": [_last(c, p.crm_id) for p in people for c in p.last_contacts],
        }
    )


def make_crm_app(
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
    """The demo CRM; same knobs as `make_erp_app` (same `seed` → the same people)."""
    app = demo_app(
        latency_ms=latency_ms, failure_rate=failure_rate, rng=rng, jitter_ms=jitter_ms, fault=fault
    )
    app[DATASET] = dataset_or_default(dataset, seed=seed, today=today)
    app.router.add_get("/api/contacts", contacts)
    app.router.add_get("/api/contacts/{id}", contact)
    app.router.add_get("/api/contacts/{id}/cases", cases)
    app.router.add_get("/api/contacts/{id}/notes", notes)
    app.router.add_get("/api/contacts/{id}/activities", activities)
    app.router.add_get("/api/lookup", lookup)
    return app


def crm_backend_config(
    base_url: str, *, name: str = "crm", timeout_s: float = 1.0
) -> HttpBackendConfig:
    """How Centralino reaches this CRM: one look-up by the caller's number per call."""
    return HttpBackendConfig(
        name=name,
        base_url=base_url,
        timeout_s=timeout_s,
        requests=(
            HttpRequestSpec(
                url_template="/api/lookup?phone={phone}",
                extracts=(
                    FactExtract(
                        kind="contact",
                        items_path="contacts",
                        fields={
                            "id": "id",
                            "name": "name",
                            "company": "company",
                            "account_owner": "account_owner",
                        },
                    ),
                    FactExtract(kind="case", items_path="open_cases"),
                    FactExtract(kind="note", items_path="notes"),
                    FactExtract(kind="last_contact", items_path="last_contacts"),
                ),
            ),
        ),
    )
