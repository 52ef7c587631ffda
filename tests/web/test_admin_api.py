"""The administration API over HTTP: admins only; versions, field paths, check-config's
messages, the audit; described exactly by /api/openapi.json."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import hypothesis
import pytest
import redis.asyncio as aioredis
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from centralino.access import credentials
from centralino.access.models import Role
from centralino.adapters.pg_accounts import PgAccounts
from centralino.admin.store import PgConfigStore
from centralino.app import ADMIN_BUILDERS
from centralino.flows import FlowStore
from centralino.metrics import Metrics
from centralino.web.admin import add_admin
from centralino.web.app import init_app
from centralino.web.auth import ROUTE_RULES, Access, add_access
from centralino.web.health import Readiness
from centralino.web.openapi import add_openapi
from centralino.web.pages import STATIC_DIR
from tests.admin.conftest import SETTINGS
from tests.web.auth_helpers import add_user, login, make_access

Client = TestClient[web.Request, web.Application]


@dataclass
class AdminSite:
    app: web.Application
    access: Access
    store: PgConfigStore


def build_admin_site(pool: asyncpg.Pool, redis: aioredis.Redis) -> AdminSite:
    readiness = Readiness()
    readiness.started.set()
    app = init_app(readiness=readiness, metrics_registry=Metrics())
    access = make_access(pool, redis, agent_teams={"a1": {"blue"}, "a2": {"red"}})
    add_access(app, access)
    add_openapi(app)
    store = PgConfigStore(pool=pool, settings=SETTINGS, builders=ADMIN_BUILDERS)
    flows = FlowStore(settings=SETTINGS)
    add_admin(app, store=store, flows=lambda: flows.library)
    app.router.add_static("/static/", STATIC_DIR)  # the page's script (add_pages serves these)
    return AdminSite(app, access, store)


@pytest.fixture
async def site(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AdminSite:
    site = build_admin_site(pg_pool, redis_client)
    await site.store.seed()
    return site


@pytest.fixture
async def client(site: AdminSite) -> AsyncIterator[Client]:
    async with TestClient(TestServer(site.app, host="127.0.0.1", port=0)) as c:
        site.access.allow_local(c.port or 0)
        await add_user(site.access, "root", Role.ADMIN)
        await login(c, "root")
        yield c


async def admin_token(site: AdminSite, username: str = "robot") -> str:
    account = await add_user(site.access, username, Role.ADMIN)
    token = credentials.new_api_token()
    accounts = site.access.accounts
    assert isinstance(accounts, PgAccounts)
    await accounts.create_token(account_id=account.id, token_digest=credentials.digest(token))
    return token


async def test_only_admins_reach_the_configuration(site: AdminSite) -> None:
    async with TestClient(TestServer(site.app, host="127.0.0.1", port=0)) as c:
        site.access.allow_local(c.port or 0)
        response = await c.get("/api/admin/agents")
        assert response.status == 401
        await add_user(site.access, "lead", Role.SUPERVISOR, teams=["blue"])
        await login(c, "lead")
        for path in ("/api/admin/agents", "/api/admin/queues/billing", "/admin"):
            response = await c.get(path)
            assert response.status == 403, path
        response = await c.put("/api/admin/queues/billing", json={"name": "billing"})
        assert response.status == 403


async def test_given_a_version_read_when_updating_then_stale_writes_answer_409(
    client: Client,
) -> None:
    response = await client.get("/api/admin/agents/a1")
    assert response.status == 200
    assert response.headers["ETag"] == '"1"'
    a1 = await response.json()
    assert a1["skills"] == {"billing": 3, "support": 3, "sales": 2} and a1["version"] == 1
    changed = {**a1, "skills": {**a1["skills"], "sales": 4}}
    del changed["version"]
    response = await client.put("/api/admin/agents/a1", json=changed, headers={"If-Match": '"1"'})
    assert response.status == 200, await response.text()
    assert (await response.json())["version"] == 2 and response.headers["ETag"] == '"2"'
    response = await client.put(
        "/api/admin/agents/a1", json={**changed, "version": 2}, headers={"If-Match": '"1"'}
    )
    assert response.status == 409  # If-Match wins over the body's version
    response = await client.put("/api/admin/agents/a1", json={**changed, "version": 1})
    assert response.status == 409
    assert (await response.json())["version"] == 2
    response = await client.put("/api/admin/agents/a1", json=changed)
    assert response.status == 428
    response = await client.put("/api/admin/agents/a1", json=changed, headers={"If-Match": "x"})
    assert response.status == 400
    response = await client.get("/api/admin/agents/a1")
    assert (await response.json())["skills"]["sales"] == 4


async def test_bad_input_answers_422_with_the_field_path_or_check_configs_message(
    client: Client,
) -> None:
    response = await client.put(
        "/api/admin/queues/billing",
        json={"name": "billing", "steps": [{"after_s": 0, "min_level": 7}], "version": 1},
    )
    assert response.status == 422
    body = await response.json()
    assert [p["path"] for p in body["problems"]] == ["steps.0.min_level"]
    # a1 is the only billing agent: without the skill, billing's callers would never be served
    response = await client.put(
        "/api/admin/agents/a1",
        json={"id": "a1", "skills": {"support": 3, "sales": 2}, "teams": ["blue"], "version": 1},
    )
    assert response.status == 422
    [problem] = (await response.json())["problems"]
    # (account_update is routed to billing too, at level 1: both intents are named)
    assert problem["message"] == (
        "contact.intents: intent 'account_update': no agent has skill 'billing' at level 1 or "
        "more, so its callers could never be answered; intent 'billing': no agent has skill "
        "'billing' at level 2 or more, so its callers could never be answered"
    )
    response = await client.put(
        "/api/admin/agents/a2", json={"id": "a1", "skills": {}, "version": 1}
    )
    assert response.status == 409  # renaming through PUT
    response = await client.post(
        "/api/admin/teams", data="{", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    response = await client.delete("/api/admin/agents/ghost")
    assert response.status == 404


async def test_changes_are_audited_with_who_and_the_rows_before_and_after(
    client: Client, site: AdminSite
) -> None:
    response = await client.post("/api/admin/teams", json={"name": "green"})
    assert response.status == 201
    assert (await response.json()) == {"name": "green", "description": "", "version": 1}
    response = await client.post("/api/admin/teams", json={"name": "green"})
    assert response.status == 409
    response = await client.delete("/api/admin/teams/green", headers={"If-Match": '"1"'})
    assert response.status == 200
    assert await response.json() == {"deleted": "green", "version": 1}
    accounts = site.access.accounts
    assert isinstance(accounts, PgAccounts)
    entries = [e for e in await accounts.audit_entries() if e.action.startswith("config.")]
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("root", "config.delete", "teams/green"),
        ("root", "config.create", "teams/green"),
    ]
    assert entries[0].detail["before"] == {"name": "green", "description": ""}


async def test_bearer_tokens_need_no_csrf_and_flows_are_listed_read_only(
    site: AdminSite, client: Client
) -> None:
    token = await admin_token(site)
    async with TestClient(TestServer(site.app, host="127.0.0.1", port=0)) as c:
        site.access.allow_local(c.port or 0)
        auth = {"Authorization": f"Bearer {token}"}
        response = await c.get("/api/admin/not-ready-reasons", headers=auth)
        assert "Lunch" in [r["label"] for r in await response.json()]
        response = await c.get("/api/admin/flows", headers=auth)
        assert response.status == 200
        assert "default" in [f["name"] for f in await response.json()]
        response = await c.put(
            "/api/admin/not-ready-reasons/lunch",
            json={"code": "lunch", "label": "Pranzo", "version": 1},
            headers=auth,
        )
        assert response.status == 200


async def test_openapi_describes_exactly_the_admin_routes_served(client: Client) -> None:
    served = {
        (r.resource.canonical, r.method.lower())
        for r in client.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/")
        and r.method not in ("HEAD", "*")
    }
    response = await client.get("/api/openapi.json")
    doc = await response.json()
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == served
    assert ("/api/admin/queues/{name}", "put") in described
    for path in doc["paths"]:
        assert path in ROUTE_RULES


# --- the spec, fuzzed ----------------------------------------------------------------------------

# Examples per operation: 26 operations; the whole run stays well under a minute on a busy box.
FUZZ_EXAMPLES = 12


def _fuzz(doc: dict[str, Any], base_url: str, token: str) -> list[str]:
    """Run every admin operation of the spec with generated input against the live app; what
    failed (a 5xx, a status, header or body the spec does not describe)."""
    schema = schemathesis.openapi.from_dict(doc).include(path_regex="^/api/admin")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    auth = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 21, [op.label for op in operations]
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def run(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=base_url, headers=auth)
            case.validate_response(response, checks=checks)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    return failures


async def test_given_the_spec_when_fuzzed_then_no_server_error_and_every_answer_conforms(
    site: AdminSite,
) -> None:
    token = await admin_token(site)
    async with TestServer(site.app, host="127.0.0.1", port=0) as server:
        site.access.allow_local(server.port or 0)
        base_url = f"http://127.0.0.1:{server.port}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(base_url + "/api/openapi.json") as response,
        ):
            doc = await response.json()
        started = time.monotonic()
        failures = await asyncio.to_thread(_fuzz, doc, base_url, token)
        assert time.monotonic() - started < 60
    assert failures == []
