from __future__ import annotations

import socket
from dataclasses import replace

import numpy as np
import pytest
from aiohttp import web

from centralino.adapters.http_client import HttpClient
from centralino.adapters.http_connector import (
    FactExtract,
    HttpBackendConfig,
    HttpConnector,
    HttpRequestSpec,
)
from centralino.demo.behaviour import Fault
from centralino.demo.erp import erp_backend_config, make_erp_app
from context.errors import BackendBadResponse, BackendUnavailable, ConfigurationError
from context.models import ConnectorQuery, Identity, IdentityKind
from tests.context.fakes import T0, FakeClock
from tests.demo.serve import serve


def _erp(**kw: object) -> web.Application:
    args: dict[str, object] = {
        "latency_ms": 0.0,
        "failure_rate": 0.0,
        "rng": np.random.default_rng(1),
    }
    args.update(kw)
    return make_erp_app(**args)  # type: ignore[arg-type]


def _phone(app: web.Application) -> Identity:
    from centralino.demo.erp import DATASET

    return Identity(IdentityKind.PHONE, app[DATASET].people[0].phone)


async def test_given_the_demo_erp_when_fetching_by_phone_then_mapped_facts(
    http_client: HttpClient,
) -> None:
    app = _erp()
    async with serve(app) as url:
        conn = HttpConnector(config=erp_backend_config(url), client=http_client, clock=FakeClock())
        facts = await conn.fetch(ConnectorQuery(identity=_phone(app)))
    kinds = {f.kind for f in facts}
    assert "erp_customer" in kinds and "invoice" in kinds
    assert all(f.source == "erp" and f.fetched_at == T0 for f in facts)
    customer = next(f for f in facts if f.kind == "erp_customer")
    assert set(customer.data) == {"code", "company", "contact"}
    invoice = next(f for f in facts if f.kind == "invoice")
    assert invoice.data["status"] in {"open", "overdue"} and invoice.data["currency"] == "EUR"


async def test_an_unknown_customer_is_no_facts_not_an_error(
    http_client: HttpClient,
) -> None:
    async with serve(_erp()) as url:
        conn = HttpConnector(config=erp_backend_config(url), client=http_client, clock=FakeClock())
        query = ConnectorQuery(identity=Identity(IdentityKind.PHONE, "+390299999999"))
        assert await conn.fetch(query) == []


@pytest.mark.parametrize(
    ("app_kw", "error"),
    [
        ({"failure_rate": 1.0}, BackendUnavailable),
        ({"fault": Fault.MALFORMED_JSON}, BackendBadResponse),
        ({"fault": Fault.OVERSIZED}, BackendBadResponse),
    ],
)
async def test_backend_faults_raise_connector_errors(
    http_client: HttpClient, app_kw: dict[str, object], error: type[Exception]
) -> None:
    app = _erp(**app_kw)
    async with serve(app) as url:
        conn = HttpConnector(config=erp_backend_config(url), client=http_client, clock=FakeClock())
        with pytest.raises(error):
            await conn.fetch(ConnectorQuery(identity=_phone(app)))


async def test_a_hanging_backend_times_out(http_client: HttpClient) -> None:
    app = _erp(fault=Fault.HANG)
    async with serve(app) as url:
        config = erp_backend_config(url, timeout_s=0.1)
        conn = HttpConnector(config=config, client=http_client, clock=FakeClock())
        with pytest.raises(TimeoutError):
            await conn.fetch(ConnectorQuery(identity=_phone(app)))


async def test_connection_refused_is_backend_unavailable(http_client: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connecting is refused
        conn = HttpConnector(
            config=erp_backend_config(f"http://127.0.0.1:{port}"),
            client=http_client,
            clock=FakeClock(),
        )
        with pytest.raises(BackendUnavailable):
            await conn.fetch(ConnectorQuery(identity=Identity(IdentityKind.PHONE, "+3902")))


async def test_auth_from_environment_links_and_quoting(http_client: HttpClient) -> None:
    seen: list[tuple[str, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.match_info["code"], request.headers.get("X-Api-Key")))
        return web.json_response({"rows": [{"n": 1, "deep": {"v": "x"}}, {"n": 2}]})

    app = web.Application()
    app.router.add_get("/c/{code}/rows", handler)
    config = HttpBackendConfig(
        name="billing",
        base_url="",
        needs_link="billing",
        auth_header="X-Api-Key",
        auth_env="BILLING_KEY",
        requests=(
            HttpRequestSpec(
                url_template="/c/{link}/rows",
                extracts=(FactExtract(kind="row", items_path="rows", fields={"v": "deep.v"}),),
            ),
        ),
    )
    async with serve(app) as url:
        conn = HttpConnector(
            config=replace(config, base_url=url),
            client=http_client,
            clock=FakeClock(),
            environ={"BILLING_KEY": "secret-1"},
        )
        facts = await conn.fetch(ConnectorQuery(identity=None, links={"billing": "A B/1"}))
    assert seen == [("A B/1", "secret-1")]
    assert [f.data for f in facts] == [{"v": "x"}, {"v": None}]
    with pytest.raises(ConfigurationError):
        HttpConnector(config=config, client=http_client, clock=FakeClock(), environ={})


async def test_a_wrong_shape_is_a_bad_response(http_client: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"rows": "not a list"})

    app = web.Application()
    app.router.add_get("/x", handler)
    async with serve(app) as url:
        config = HttpBackendConfig(
            name="x",
            base_url=url,
            requests=(HttpRequestSpec("/x?p={phone}", (FactExtract("row", "rows"),)),),
        )
        conn = HttpConnector(config=config, client=http_client, clock=FakeClock())
        with pytest.raises(BackendBadResponse):
            await conn.fetch(ConnectorQuery(identity=Identity(IdentityKind.PHONE, "+3902")))


def test_configuration_errors_are_ours(http_client: HttpClient) -> None:
    bad = HttpBackendConfig(
        name="x",
        base_url="http://h",
        requests=(HttpRequestSpec("/x?p={nope}", (FactExtract("row"),)),),
    )
    with pytest.raises(ConfigurationError):
        HttpConnector(config=bad, client=http_client, clock=FakeClock())
