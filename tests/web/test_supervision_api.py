"""`POST /api/agents/{id}/supervise`: a supervisor's own phone rung into their team's agent's
call, over AMI (the simulated Asterisk records the Originate); everyone else refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from acd.models import AgentDefinition, AgentState
from centralino.access.models import Role
from centralino.adapters.pg_accounts import PgAccounts
from centralino.simulator.ami_server import AmiServer
from centralino.supervision import Supervision
from centralino.web.openapi import add_openapi
from centralino.web.supervision import add_supervision
from tests.helpers import sim_ami_client, web_login
from tests.web.auth_helpers import PASSWORD, add_user, make_access
from tests.web.test_pages import build_site

AGENTS = {
    "a1": AgentDefinition("a1", {"support": 3}, teams=frozenset({"blue"}), endpoint="PJSIP/a1"),
    "a2": AgentDefinition("a2", {"support": 3}, teams=frozenset({"green"}), endpoint="PJSIP/a2"),
    "boss": AgentDefinition("boss", {}, teams=frozenset({"blue"}), endpoint="PJSIP/boss"),
}


@dataclass
class World:
    url: str
    asterisk: AmiServer
    accounts: PgAccounts
    states: dict[str, AgentState]

    def originates(self) -> list[dict[str, str | None]]:
        return [
            {k: a.get(k) for k in ("Channel", "Context", "Exten", "Variable", "Async")}
            for a in self.asterisk.actions_received
            if a.name.lower() == "originate"
        ]

    async def post(
        self, who: str, agent: str, body: object, *, csrf: bool = True
    ) -> tuple[int, Any]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            token = await web_login(http, self.url, who, PASSWORD)
            headers = {"Origin": self.url, **({"X-CSRF-Token": token} if csrf else {})}
            async with http.post(
                f"{self.url}/api/agents/{agent}/supervise", json=body, headers=headers
            ) as response:
                return response.status, await response.json(content_type=None)


@pytest.fixture
async def world(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[World]:
    asterisk = AmiServer(auth_failure_delay_s=0.05)
    await asterisk.start()
    ami = sim_ami_client(asterisk.port, seed=3)
    await ami.connect()
    states = {"a1": AgentState.BUSY, "a2": AgentState.BUSY, "boss": AgentState.READY}

    async def state(agent_id: str) -> AgentState | None:
        return states.get(agent_id)

    access = make_access(pg_pool, redis_client, agent_teams={a: d.teams for a, d in AGENTS.items()})
    site = build_site(pg_pool, redis_client, access=access)
    add_supervision(site.app, Supervision(ami=ami, agents=AGENTS, agent_state=state))
    add_openapi(site.app)
    await add_user(access, "blue-lead", Role.SUPERVISOR, agent_id="boss", teams={"blue"})
    await add_user(access, "no-phone", Role.SUPERVISOR, teams={"blue"})
    await add_user(access, "ann", Role.AGENT, agent_id="a1", teams={"blue"})
    server = TestServer(site.app, host="127.0.0.1", port=0)
    await server.start_server()
    access.allow_local(server.port or 0)
    try:
        yield World(f"http://127.0.0.1:{server.port}", asterisk, PgAccounts(pool=pg_pool), states)
    finally:
        await server.close()
        await ami.close()
        await asterisk.stop()


async def test_a_supervisor_listens_to_their_teams_agent_from_their_own_phone(
    world: World,
) -> None:
    status, body = await world.post("blue-lead", "a1", {"mode": "whisper"})
    assert status == 200, body
    assert body == {"agent_id": "a1", "mode": "whisper", "phone": "PJSIP/boss"}
    assert world.originates() == [
        {
            "Channel": "PJSIP/boss",
            "Context": "centralino-supervise",
            "Exten": "whisper",
            "Variable": "SPY_TARGET=PJSIP/a1-",
            "Async": "true",
        }
    ]
    audit = [(e.actor, e.action, e.target) for e in await world.accounts.audit_entries()]
    assert ("blue-lead", "supervision", "a1") in audit


@pytest.mark.parametrize(
    ("who", "agent", "body", "status", "says"),
    [
        ("blue-lead", "a2", {"mode": "listen"}, 403, ""),  # another team's agent
        ("ann", "a1", {"mode": "listen"}, 403, "only supervisors"),  # an agent, own path
        ("no-phone", "a1", {"mode": "listen"}, 409, "no phone"),
        ("blue-lead", "a1", {"mode": "record"}, 409, "not one of"),
        ("blue-lead", "a1", ["listen"], 400, "mode"),
    ],
)
async def test_everyone_else_is_refused_and_nothing_rings(  # noqa: PLR0917
    world: World, who: str, agent: str, body: object, status: int, says: str
) -> None:
    got, answer = await world.post(who, agent, body)
    assert got == status, answer
    assert says in str(answer)
    assert world.originates() == []


async def test_an_agent_not_on_a_call_and_a_request_without_csrf_ring_nobody(
    world: World,
) -> None:
    world.states["a1"] = AgentState.READY
    status, body = await world.post("blue-lead", "a1", {"mode": "listen"})
    assert (status, "not on a call" in body["error"]) == (409, True)
    world.states["a1"] = AgentState.BUSY
    status, _ = await world.post("blue-lead", "a1", {"mode": "listen"}, csrf=False)
    assert status == 403
    assert world.originates() == []


async def test_the_api_description_lists_the_route_once_it_is_served(world: World) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{world.url}/api/openapi.json") as r:
        doc = await r.json()
    operation = doc["paths"]["/api/agents/{agent_id}/supervise"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["mode"]["enum"] == ["listen", "whisper", "barge"]
