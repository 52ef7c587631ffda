from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from centralino.web.desktop_ws import DesktopHub
from context.clock import SystemClock
from tests.demo.serve import serve
from tests.helpers import eventually

XSS = "<script>alert(1)</script>"
# The configured agents; the tests connect as these (and as an unknown id).
AGENTS = frozenset({"a1", "a2", "a3", "a4", "a7", "a9"})
POP = {"linkedid": "L1", "facts": [{"source": "crm", "data": {"text": XSS}}]}


@pytest.fixture
async def hub_url() -> AsyncIterator[tuple[DesktopHub, str]]:
    hub = DesktopHub(clock=SystemClock(), agents=AGENTS)
    app = web.Application()
    app.router.add_get("/ws/agent/{agent_id}", hub.handle)
    async with serve(app) as url:
        yield hub, url
        await hub.close()


async def _acking_desktop(
    ws: aiohttp.ClientWebSocketResponse, got: list[dict[str, object]]
) -> None:
    async for msg in ws:
        frame = json.loads(msg.data)
        got.append(frame)
        if frame["type"] == "screen_pop":
            await ws.send_json({"type": "ack", "pop_id": frame["pop_id"]})


async def test_given_a_desktop_when_a_pop_is_pushed_then_acked_and_times_recorded(
    hub_url: tuple[DesktopHub, str],
) -> None:
    hub, url = hub_url
    got: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws/agent/a7") as ws:
        desktop = asyncio.create_task(_acking_desktop(ws, got))
        assert await hub.wait_connected("a7", timeout_s=2.0)
        assert await hub.push_screen_pop("a7", POP, timeout_s=2.0)
        delivery = hub.last_delivery("L1")
        assert delivery is not None and delivery.agent_id == "a7"
        assert delivery.acked_at is not None and delivery.pushed_at <= delivery.acked_at
        assert delivery.ack_ms is not None and delivery.ack_ms >= 0
        assert got[0]["payload"] == POP  # HTML travels as raw text; the page uses textContent
        assert await hub.push_update("a7", "L1", {"source:crm": "late"}) == 1
        await eventually(lambda: _assert(got[-1]["type"] == "pop_update"))
        await ws.close()
        await desktop


def _assert(condition: bool) -> None:
    assert condition


async def test_no_desktop_means_not_delivered_at_once(hub_url: tuple[DesktopHub, str]) -> None:
    hub, _ = hub_url
    started = time.monotonic()
    assert not await hub.push_screen_pop("nobody", POP, timeout_s=5.0)
    assert time.monotonic() - started < 1.0  # not the 5 s timeout: nobody to wait for
    delivery = hub.last_delivery("L1")
    assert delivery is not None and delivery.acked_at is None


async def test_a_desktop_that_never_acks_times_out(hub_url: tuple[DesktopHub, str]) -> None:
    hub, url = hub_url
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws/agent/a1"):
        assert await hub.wait_connected("a1", timeout_s=2.0)
        started = time.monotonic()
        assert not await hub.push_screen_pop("a1", POP, timeout_s=0.1)
        assert time.monotonic() - started < 0.5


async def test_a_desktop_leaving_fails_the_push_quickly(hub_url: tuple[DesktopHub, str]) -> None:
    hub, url = hub_url
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/ws/agent/a2")
        assert await hub.wait_connected("a2", timeout_s=2.0)
        push = asyncio.create_task(hub.push_screen_pop("a2", POP, timeout_s=5.0))
        await ws.receive()  # the pop arrived; the agent closes the tab instead of acking
        await ws.close()
        started = time.monotonic()
        assert not await push
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("garbage", ["not json", '["ack"]', '{"type": "hello"}', b"\x00\x01"])
async def test_garbage_from_a_desktop_closes_its_socket(
    hub_url: tuple[DesktopHub, str], garbage: str | bytes
) -> None:
    hub, url = hub_url
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws/agent/a3") as ws:
        assert await hub.wait_connected("a3", timeout_s=2.0)
        if isinstance(garbage, bytes):
            await ws.send_bytes(garbage)
        else:
            await ws.send_str(garbage)
        msg = await ws.receive()
        assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
        assert ws.close_code == aiohttp.WSCloseCode.UNSUPPORTED_DATA or msg.data == 1003
    await eventually(lambda: _assert(not hub.is_connected("a3")))


async def test_an_oversized_desktop_message_is_refused(hub_url: tuple[DesktopHub, str]) -> None:
    hub, url = hub_url
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws/agent/a4") as ws:
        await ws.send_str(json.dumps({"type": "ping", "pad": "x" * 10_000}))
        msg = await ws.receive()
        assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
    await eventually(lambda: _assert(not hub.is_connected("a4")))


async def test_late_results_update_the_pop_live_on_the_desktop(
    hub_url: tuple[DesktopHub, str],
) -> None:
    from context.models import ConnectorQuery, Fact
    from tests.context.fakes import ScriptedConnector, memory_fanout

    hub, url = hub_url
    clock = SystemClock()
    release = asyncio.Event()

    async def late(query: ConnectorQuery) -> list[Fact]:
        await release.wait()
        return [Fact("crm", "note", {"text": XSS}, clock.now())]

    fanout = memory_fanout(clock, [ScriptedConnector("crm", late)])
    got: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws/agent/a9") as ws:
        desktop = asyncio.create_task(_acking_desktop(ws, got))
        assert await hub.wait_connected("a9", timeout_s=2.0)
        handle = fanout.start(linkedid="LIVE", caller_id="+390212345678")
        snap = await handle.wait()
        assert await hub.push_screen_pop("a9", snap.screen_pop(clock.now()), timeout_s=2.0)
        hub.follow("a9", handle)
        release.set()

        def updated() -> None:
            updates = [f for f in got if f["type"] == "pop_update"]
            assert updates
            payload = updates[-1]["payload"]
            assert isinstance(payload, dict) and payload["complete"] is True
            assert payload["facts"][0]["data"]["text"] == XSS

        await eventually(updated)
        await handle.aclose()
        await ws.close()
        await desktop


async def test_given_a_call_in_progress_when_the_desktop_reopens_then_it_shows_the_pop_again(
    hub_url: tuple[DesktopHub, str],
) -> None:
    hub, url = hub_url
    assert not await hub.push_screen_pop("a9", POP, timeout_s=0.1)  # nobody connected yet
    await hub.push_update("a9", "L1", {**POP, "complete": True})
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/ws/agent/a9") as ws:
            frame = await asyncio.wait_for(ws.receive_json(), 2)
        assert frame["type"] == "screen_pop"
        assert frame["payload"] == {**POP, "complete": True}  # the latest version of the pop

        hub.forget("L1")  # the call ended
        async with session.ws_connect(f"{url}/ws/agent/a9") as ws:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.receive_json(), 0.3)


async def test_pops_travel_uncompressed_even_when_the_browser_offers_deflate(
    hub_url: tuple[DesktopHub, str],
) -> None:
    """Compressing a pop cost more CPU between reservation and ring than the LAN saves."""
    _, url = hub_url
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/ws/agent/a1", compress=15) as ws,
    ):
        assert ws.compress == 0  # the server declined permessage-deflate


async def test_given_an_unknown_agent_id_then_refused_before_upgrade_and_nothing_kept(
    hub_url: tuple[DesktopHub, str],
) -> None:
    hub, url = hub_url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(f"{url}/ws/agent/intruder")
        assert info.value.status == 404
        async with session.ws_connect(f"{url}/ws/agent/a1") as ws:  # a known id still connects
            assert await hub.wait_connected("a1", timeout_s=2.0)
            await ws.close()
    assert not hub.is_connected("intruder")
    for state in (hub._sockets, hub._connected, hub._current):
        assert "intruder" not in state
