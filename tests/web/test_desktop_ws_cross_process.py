"""Screen-pops, their updates and acks across processes: two hubs on one Redis, each behind its
own web server, as two Centralino processes behind a load balancer."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from centralino.web.desktop_ws import DesktopHub, pop_channel
from context.clock import SystemClock
from tests.demo.serve import serve
from tests.helpers import eventually

AGENTS = frozenset({"a1", "a2", "a7"})
POP = {"linkedid": "L1", "facts": [{"source": "crm", "data": {"text": "<b>VIP</b>"}}]}
Frames = list[dict[str, object]]


@dataclass(frozen=True, slots=True)
class Process:
    hub: DesktopHub
    url: str


@asynccontextmanager
async def _process(redis: aioredis.Redis) -> AsyncIterator[Process]:
    hub = DesktopHub(clock=SystemClock(), agents=AGENTS, redis=redis)
    await hub.start()
    app = web.Application()
    app.router.add_get("/ws/agent/{agent_id}", hub.handle)
    async with serve(app) as url:
        try:
            yield Process(hub, url)
        finally:
            await hub.close()  # the desktops first: an open one would hold up the web server


@pytest.fixture
async def two(
    redis_client: aioredis.Redis, redis_url: str
) -> AsyncIterator[tuple[Process, Process]]:
    # One client each, as two processes would have (redis_client is flushed before and after).
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        async with _process(clients[0]) as a, _process(clients[1]) as b:
            yield a, b
    finally:
        for client in clients:
            await client.aclose()


async def _desktop(ws: aiohttp.ClientWebSocketResponse, got: Frames, *, ack: bool = True) -> None:
    async for msg in ws:
        frame = json.loads(msg.data)
        got.append(frame)
        if ack and frame["type"] == "screen_pop":
            await ws.send_json({"type": "ack", "pop_id": frame["pop_id"]})


async def _held(redis: aioredis.Redis, agent_id: str, processes: int = 1) -> None:
    """Poll until that many processes listen for the agent's pops."""

    async def check() -> None:
        [(_, count)] = await redis.pubsub_numsub(pop_channel(agent_id))
        assert count == processes

    await eventually(check)


def _pops(got: Frames, pop_id: object | None = None) -> list[dict[str, object]]:
    return [f for f in got if f["type"] == "screen_pop" and pop_id in (None, f["pop_id"])]


def _true(condition: Callable[[], bool]) -> Callable[[], None]:
    def check() -> None:
        assert condition()

    return check


async def test_given_a_desktop_on_a_when_b_pushes_then_acked_once_and_updates_follow(
    two: tuple[Process, Process], redis_client: aioredis.Redis
) -> None:
    from context.models import ConnectorQuery, Fact
    from tests.context.fakes import ScriptedConnector, memory_fanout

    a, b = two
    clock = SystemClock()
    release = asyncio.Event()

    async def late(query: ConnectorQuery) -> list[Fact]:
        await release.wait()
        return [Fact("crm", "note", {"text": "late"}, clock.now())]

    fanout = memory_fanout(clock, [ScriptedConnector("crm", late)])
    got: Frames = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{a.url}/ws/agent/a7") as ws:
        desktop = asyncio.create_task(_desktop(ws, got))
        await _held(redis_client, "a7")
        assert not b.hub.is_connected("a7")  # the desktop is on the other process

        handle = fanout.start(linkedid="LIVE", caller_id="+390212345678")
        snap = await handle.wait()
        started = time.monotonic()
        assert await b.hub.push_screen_pop("a7", snap.screen_pop(clock.now()), timeout_s=1.5)
        assert time.monotonic() - started < 0.5  # the ack, not the timeout
        delivery = b.hub.last_delivery("LIVE")
        assert delivery is not None and delivery.acked_at is not None  # times kept by the pusher
        assert len(_pops(got)) == 1

        b.hub.follow("a7", handle)
        release.set()

        def updated() -> None:
            updates = [f for f in got if f["type"] == "pop_update"]
            assert updates
            payload = updates[-1]["payload"]
            assert isinstance(payload, dict) and payload["complete"] is True

        await eventually(updated)
        assert len(_pops(got)) == 1  # delivered once
        await handle.aclose()
        await ws.close()
        await desktop


async def test_given_no_desktop_anywhere_then_not_delivered_at_once(
    two: tuple[Process, Process],
) -> None:
    _, b = two
    started = time.monotonic()
    assert not await b.hub.push_screen_pop("a1", POP, timeout_s=5.0)
    assert time.monotonic() - started < 0.5  # PUBLISH reached nobody: no wait for the timeout


async def test_given_a_desktop_on_both_processes_then_each_socket_gets_each_pop_once(
    two: tuple[Process, Process], redis_client: aioredis.Redis
) -> None:
    a, b = two
    on_a: Frames = []
    on_b: Frames = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{a.url}/ws/agent/a2") as ws_a,
        session.ws_connect(f"{b.url}/ws/agent/a2") as ws_b,
    ):
        desktops = [
            asyncio.create_task(_desktop(ws_a, on_a)),
            asyncio.create_task(_desktop(ws_b, on_b)),
        ]
        await _held(redis_client, "a2", processes=2)
        for hub in (b.hub, a.hub, b.hub):
            assert await hub.push_screen_pop("a2", POP, timeout_s=1.5)
        await eventually(_true(lambda: len(_pops(on_a)) >= 3 and len(_pops(on_b)) >= 3))
        for got in (on_a, on_b):
            ids = [f["pop_id"] for f in _pops(got)]
            assert len(ids) == 3 and len(set(ids)) == 3  # each pop once on each socket
        await ws_a.close()
        await ws_b.close()
        await asyncio.gather(*desktops)


async def test_given_the_remote_desktop_leaves_before_acking_then_the_push_fails_quickly(
    two: tuple[Process, Process], redis_client: aioredis.Redis
) -> None:
    a, b = two
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{a.url}/ws/agent/a1")
        await _held(redis_client, "a1")
        push = asyncio.create_task(b.hub.push_screen_pop("a1", POP, timeout_s=5.0))
        frame = await asyncio.wait_for(ws.receive_json(), 2.0)
        assert frame["type"] == "screen_pop"
        await ws.close()  # the agent closes the tab instead of acking
        started = time.monotonic()
        assert not await push
        assert time.monotonic() - started < 2.0  # process A said so; not the 5 s timeout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on leaving: nothing listens there


async def test_given_redis_unreachable_then_local_pops_work_and_remote_ones_fail_fast() -> None:
    down = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=0.2
    )
    try:
        started = time.monotonic()
        async with _process(down) as a:
            assert time.monotonic() - started < 3.0
            got: Frames = []
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{a.url}/ws/agent/a7") as ws,
            ):
                desktop = asyncio.create_task(_desktop(ws, got))
                assert await a.hub.wait_connected("a7", timeout_s=2.0)
                assert await a.hub.push_screen_pop("a7", POP, timeout_s=1.5)  # local: no Redis
                assert await a.hub.push_update("a7", "L1", {**POP, "complete": True}) == 1
                await eventually(_true(lambda: got[-1]["type"] == "pop_update"))

                started = time.monotonic()
                assert not await a.hub.push_screen_pop("a1", POP, timeout_s=1.5)
                assert time.monotonic() - started < 0.5  # not the 1.5 s ack timeout
                await ws.close()
                await desktop
    finally:
        await down.aclose()


async def test_garbage_on_a_pop_channel_does_not_stop_the_listener(
    two: tuple[Process, Process], redis_client: aioredis.Redis
) -> None:
    a, b = two
    got: Frames = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{a.url}/ws/agent/a7") as ws:
        desktop = asyncio.create_task(_desktop(ws, got))
        await _held(redis_client, "a7")
        for garbage in (b"not json", b"[]", b'{"kind": "pop", "origin": "x"}', b'{"kind": 1}'):
            await redis_client.publish(pop_channel("a7"), garbage)
        assert await b.hub.push_screen_pop("a7", POP, timeout_s=1.5)
        await ws.close()
        await desktop


async def test_a_notice_reaches_the_agents_desktop_on_another_process(
    two: tuple[Process, Process], redis_client: aioredis.Redis
) -> None:
    a, b = two
    got: Frames = []
    notice = {"kind": "state_forced", "by": "<b>lead</b>", "state": "not_ready", "reason": "1:1"}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{a.url}/ws/agent/a2") as ws:
        desktop = asyncio.create_task(_desktop(ws, got))
        await _held(redis_client, "a2")
        assert await b.hub.push_notice("a2", notice) == 0  # none here: it goes through Redis
        await eventually(lambda: _equal(got, [{"type": "notice", "payload": notice}]))
        assert await a.hub.push_notice("a2", notice) == 1  # local, and not echoed back twice
        await eventually(lambda: _equal(len(got), 2))
        assert await b.hub.push_notice("a7", notice) == 0  # nobody anywhere: nothing breaks
        await ws.close()
        await desktop
    assert len(got) == 2


def _equal(a: object, b: object) -> None:
    assert a == b
