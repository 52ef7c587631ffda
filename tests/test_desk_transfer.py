"""The desktop's transfer over AMI, against the simulated Asterisk: the agent's bridged channel
is found in CoreShowChannels and BlindTransfer'd to `<queue>@centralino-transfer`; Asterisk's
BlindTransfer event follows (what `centralino.ami_watch` acts on). Through the web route too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from acd.models import AgentDefinition
from centralino.access.models import Role
from centralino.adapters.pg_desk import PgDeskRecords
from centralino.asterisk.ami import AmiEvent
from centralino.asterisk.ami_client import AmiClient
from centralino.desk_transfer import AmiDeskTransfer, TransferRefused
from centralino.simulator.ami_server import AmiServer
from centralino.web.desktop_api import DeskConfig, add_desktop_api
from tests.helpers import eventually
from tests.web.auth_helpers import add_user, login
from tests.web.test_pages import build_site

AGENTS = {a: AgentDefinition(a, {"support": 3}, endpoint=f"PJSIP/{a}") for a in ("a1", "a2")}


@pytest_asyncio.fixture
async def asterisk() -> AsyncIterator[tuple[AmiServer, AmiClient]]:
    server = AmiServer(auth_failure_delay_s=0.05)
    await server.start()
    client = AmiClient(
        host="127.0.0.1",
        port=server.port,
        username="admin",
        secret="admin-secret",
        rng=np.random.default_rng(3),
        ping_interval_s=60.0,
    )
    await client.connect()
    try:
        yield server, client
    finally:
        await client.close()
        await server.stop()


def a_call(server: AmiServer, agent: str) -> None:
    server.add_channel("PJSIP/trunk-00000001", bridge_id="b-1", state=6)
    server.add_channel(f"PJSIP/{agent}-00000002", bridge_id="b-1", state=6)


async def test_the_agents_caller_is_blind_transferred_to_the_queue(
    asterisk: tuple[AmiServer, AmiClient],
) -> None:
    server, client = asterisk
    seen: list[AmiEvent] = []
    client.subscribe("BlindTransfer", seen.append)
    transfer = AmiDeskTransfer(ami=client, agents=AGENTS, queues=["billing", "support"])
    a_call(server, "a1")
    server.add_channel("PJSIP/a2-00000003")  # another agent's, not bridged: never picked

    channel = await transfer.transfer("a1", queue="billing")

    assert channel == "PJSIP/a1-00000002"
    sent = [a for a in server.actions_received if a.name == "BlindTransfer"]
    assert [(a.get("Channel"), a.get("Context"), a.get("Exten")) for a in sent] == [
        ("PJSIP/a1-00000002", "centralino-transfer", "billing")
    ]

    def event_arrived() -> None:
        assert len(seen) == 1
        event = seen[0]
        assert event.get("Result") == "Success"
        assert event.get("TransfererChannel") == "PJSIP/a1-00000002"
        assert event.get("TransfereeChannel") == "PJSIP/trunk-00000001"
        assert (event.get("Context"), event.get("Extension")) == ("centralino-transfer", "billing")

    await eventually(event_arrived, timeout=3)


async def test_no_call_unknown_queue_or_agent_are_refused(
    asterisk: tuple[AmiServer, AmiClient],
) -> None:
    server, client = asterisk
    transfer = AmiDeskTransfer(ami=client, agents=AGENTS, queues=["billing"])
    server.add_channel("PJSIP/a1-00000009")  # ringing, not bridged yet
    with pytest.raises(TransferRefused, match="no call in progress"):
        await transfer.transfer("a1", queue="billing")
    with pytest.raises(ValueError, match="no queue"):
        await transfer.transfer("a1", queue="<script>")
    with pytest.raises(LookupError):
        await transfer.transfer("zz", queue="billing")
    with pytest.raises(TransferRefused, match="AMI"):
        await AmiDeskTransfer(ami=None, agents=AGENTS, queues=["billing"]).transfer(
            "a1", queue="billing"
        )
    assert not [a for a in server.actions_received if a.name == "BlindTransfer"]


async def test_the_route_transfers_the_agents_own_call_and_audits_it(
    asterisk: tuple[AmiServer, AmiClient], pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    server, client = asterisk
    site = build_site(pg_pool, redis_client)
    add_desktop_api(
        site.app,
        config=DeskConfig(not_ready_reasons=("Break",), outcomes=("resolved",)),
        records=PgDeskRecords(pool=pg_pool),
        now=lambda: datetime.now(UTC),
        transfer=AmiDeskTransfer(ami=client, agents=AGENTS, queues=["billing"]),
    )
    async with TestClient(TestServer(site.app, host="127.0.0.1", port=0)) as c:
        site.access.allow_local(c.port or 0)
        await add_user(site.access, "ann", Role.AGENT, agent_id="a1", teams=["blue"])
        await login(c, "ann")
        config = await (await c.get("/api/desktop/a1/config")).json()
        assert config["transfer_queues"] == ["billing"]
        none = await c.post("/api/agents/a1/transfer", json={"queue": "billing"})
        assert none.status == 409  # no call yet
        a_call(server, "a1")
        assert (await c.post("/api/agents/a1/transfer", json={"queue": "nope"})).status == 400
        assert (await c.post("/api/agents/a2/transfer", json={"queue": "billing"})).status == 403
        ok = await c.post("/api/agents/a1/transfer", json={"queue": "billing"})
        assert ok.status == 200, await ok.text()
    audit = await pg_pool.fetch(
        "SELECT actor, action, target FROM audit_log WHERE action = 'call_transfer'"
    )
    assert [tuple(r) for r in audit] == [("ann", "call_transfer", "a1")]
