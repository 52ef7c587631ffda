"""The asyncio AMI client against the fake manager: login, actions, lists, keepalive, reconnect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from centralino.asterisk.ami import (
    AmiAction,
    AmiEvent,
    AmiEventList,
    AmiServerConnection,
    LocalProtocolError,
    RemoteProtocolError,
)
from centralino.asterisk.ami_client import (
    AmiActionTimeout,
    AmiAuthenticationError,
    AmiClient,
    AmiConnectionLost,
)
from centralino.simulator.ami_server import AmiServer, SimQueueMember
from tests.helpers import eventually

FAST = {
    "ping_interval_s": 0.2,
    "ping_timeout_s": 0.4,
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
    "action_timeout_s": 2.0,
}


def make_client(port: int, *, secret: str = "admin-secret", **overrides: Any) -> AmiClient:
    options: dict[str, Any] = {**FAST, **overrides}
    return AmiClient(
        host="127.0.0.1",
        port=port,
        username="admin",
        secret=secret,
        rng=np.random.default_rng(7),
        **options,
    )


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    peer = AmiServer(auth_failure_delay_s=0.05)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def client(server: AmiServer) -> AsyncIterator[AmiClient]:
    ami = make_client(server.port)
    await ami.connect()
    yield ami
    await ami.close()


def check(condition: bool, message: str = "") -> None:
    assert condition, message


# --- login ----------------------------------------------------------------------------------
async def test_login_ok(server: AmiServer, client: AmiClient) -> None:
    assert client.connected
    assert client.banner_version == "11.0.0"
    login = server.actions_received[0]
    assert (login.name, login["Username"], login["Events"]) == ("Login", "admin", "on")


@pytest.mark.parametrize(("username", "secret"), [("admin", "wrong"), ("nobody", "x")])
async def test_bad_credentials_raise_a_clear_authentication_error(
    server: AmiServer, username: str, secret: str
) -> None:
    ami = make_client(server.port, secret=secret)
    ami.username = username
    with pytest.raises(AmiAuthenticationError, match="refused: Authentication failed") as info:
        await ami.connect()
    assert secret not in str(info.value) or secret == "x"
    assert not ami.connected
    await eventually(lambda: check(server.connections == 0))  # Asterisk hung up
    await ami.close()


async def test_unreachable_manager_raises_oserror() -> None:
    probe = AmiServer()
    await probe.start()
    port = probe.port
    await probe.stop()
    ami = make_client(port)
    with pytest.raises(OSError):
        await ami.connect()
    await ami.close()


# --- actions --------------------------------------------------------------------------------
async def test_responses_are_matched_by_action_id_amid_events(
    server: AmiServer, client: AmiClient
) -> None:
    seen: list[AmiEvent] = []
    client.subscribe("VarSet", seen.append)
    for i in range(10):
        server.globals[f"V{i}"] = f"value-{i}"

    async def noise() -> None:
        for i in range(50):
            server.emit("Newexten", Privilege="dialplan,all", Channel=f"Local/x-{i};1")
            await asyncio.sleep(0)

    noisy = asyncio.create_task(noise())
    gets = [client.action("Getvar", Variable=f"V{i}") for i in range(10)]
    sets = [client.action("Setvar", Variable=f"S{i}", Value=str(i)) for i in range(10)]
    results = await asyncio.gather(*gets, *sets)
    await noisy
    for i, response in enumerate(results[:10]):
        assert (response["Variable"], response["Value"]) == (f"V{i}", f"value-{i}")
    assert all(r.message == "Variable Set" for r in results[10:])
    assert len({r.action_id for r in results}) == 20
    await eventually(lambda: check(len(seen) == 10))
    assert sorted(e["Variable"] for e in seen) == sorted(f"S{i}" for i in range(10))
    assert client.events_total >= 60


async def test_error_responses_are_returned_and_can_raise(client: AmiClient) -> None:
    response = await client.action("QueueAdd", Queue="nosuchqueue", Interface="Local/1@agents")
    assert not response.ok
    assert response.message == "Unable to add interface to queue: No such queue"
    with pytest.raises(Exception, match="No such queue"):
        response.raise_for_error()


async def test_queueadd_resolves_where_panoramisk_hung(client: AmiClient) -> None:
    """README fact 31: panoramisk took QueueAdd's reply for a list start and never resolved."""
    response = await client.action(
        "QueueAdd", Queue="support", Interface="Local/agent101@agents/n", MemberName="Agent 101"
    )
    assert response.message == "Added interface to queue"


async def test_action_list_collects_items_until_complete(
    server: AmiServer, client: AmiClient
) -> None:
    server.queues["support"].members["Local/agent101@agents/n"] = SimQueueMember(
        interface="Local/agent101@agents/n",
        name="Agent 101",
        state_interface="Local/agent101@agents/n",
    )
    status = await client.action_list("QueueStatus", Queue="support")
    assert status.response.get("EventList") == "start"
    assert [e.name for e in status.events] == ["QueueParams", "QueueMember"]
    assert status.complete is not None
    assert (status.complete.name, status.complete["ListItems"]) == ("QueueStatusComplete", "2")
    assert all(e.action_id == status.response.action_id for e in status.events)


async def test_empty_list_and_non_list_answers(client: AmiClient) -> None:
    channels = await client.action_list("CoreShowChannels")
    assert channels.events == ()
    assert channels.complete is not None
    assert channels.complete["ListItems"] == "0"
    pong = await client.action_list("Ping")  # no EventList: resolves at once, empty
    assert pong == AmiEventList(response=pong.response, events=(), complete=None)
    assert pong.response["Ping"] == "Pong"


async def test_list_items_that_disagree_with_the_count_are_an_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = AmiServerConnection()
        writer.write(codec.banner())
        while data := await reader.read(4096):
            for action in codec.receive_data(data):
                if not isinstance(action, AmiAction):
                    break
                aid = action.action_id or ""
                if action.name == "Login":
                    writer.write(codec.send_response("Success", aid, [("Message", "ok")]))
                elif action.name == "Logoff":
                    writer.write(codec.send_response("Goodbye", aid, [("Message", "bye")]))
                elif action.name == "QueueStatus":
                    writer.write(codec.send_response("Success", aid, [("EventList", "start")]))
                    writer.write(codec.send_event("QueueParams", [("ActionID", aid)]))
                    complete = [("ActionID", aid), ("EventList", "Complete"), ("ListItems", "3")]
                    writer.write(codec.send_event("QueueStatusComplete", complete))
        writer.close()

    fake = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    ami = make_client(port, ping_interval_s=30)
    await ami.connect()
    with pytest.raises(RemoteProtocolError, match="ListItems says 3 but 1"):
        await ami.action_list("QueueStatus")
    await ami.close()
    fake.close()
    await fake.wait_closed()


async def test_originate_response_arrives_as_an_event_with_the_same_action_id(
    client: AmiClient,
) -> None:
    responses: list[AmiEvent] = []
    client.subscribe("OriginateResponse", responses.append)
    queued = await client.action(
        "Originate",
        Channel="Local/queuecaller@caller-sim",
        Context="queue-test",
        Exten="s",
        Priority=1,
        CallerID='"Mario Rossi" <+390212345678>',
        Async="true",
    )
    assert queued.message == "Originate successfully queued"
    await eventually(lambda: check(len(responses) == 1))
    event = responses[0]
    assert event.action_id == queued.action_id
    assert (event["Response"], event["Reason"], event["CallerIDName"]) == (
        "Success",
        "4",
        "Mario Rossi",
    )


async def test_event_stream_and_wildcard_subscription(server: AmiServer, client: AmiClient) -> None:
    everything: list[str] = []
    unsubscribe = client.subscribe("*", lambda e: everything.append(e.name))
    handled: list[str] = []

    async def slow(event: AmiEvent) -> None:
        await asyncio.sleep(0)
        handled.append(event["Channel"])

    client.subscribe("Hangup", slow)
    async with client.events("Hangup", "Newchannel") as stream:
        server.emit("Newexten", Channel="a")
        server.emit("Newchannel", Channel="b")
        server.emit("Hangup", Channel="c")
        got = [await anext(stream), await anext(stream)]
    assert [(e.name, e["Channel"]) for e in got] == [("Newchannel", "b"), ("Hangup", "c")]
    await eventually(lambda: check(handled == ["c"]))
    unsubscribe()
    server.emit("Newexten", Channel="d")
    await client.action("Ping")  # the event above was read before this response
    assert everything == ["Newexten", "Newchannel", "Hangup"]


async def test_crlf_in_a_value_raises_and_nothing_is_sent(
    server: AmiServer, client: AmiClient
) -> None:
    before = len(server.actions_received)
    with pytest.raises(LocalProtocolError):
        await client.action("Setvar", Variable="X", Value="1\r\nAction: Hangup")
    await client.action("Ping")
    assert [a.name for a in server.actions_received[before:]] == ["Ping"]


async def test_action_timeout(server: AmiServer, client: AmiClient) -> None:
    server.answer_pings = False
    with pytest.raises(AmiActionTimeout, match="no response to AMI Ping"):
        await client.action("Ping", timeout_s=0.1)


async def test_action_while_not_connected_fails_fast(server: AmiServer) -> None:
    ami = make_client(server.port)
    with pytest.raises(AmiConnectionLost, match="not connected"):
        await ami.action("Ping")


# --- keepalive and reconnect ------------------------------------------------------------------
async def test_dead_link_is_noticed_within_5_s_with_default_keepalive(server: AmiServer) -> None:
    ami = AmiClient(
        host="127.0.0.1",
        port=server.port,
        username="admin",
        secret="admin-secret",
        rng=np.random.default_rng(1),
        reconnect_initial_s=0.05,
    )
    await ami.connect()
    server.answer_pings = False
    started = time.monotonic()
    await eventually(lambda: check(not ami.connected), timeout=5.0)
    assert time.monotonic() - started < 5.0
    assert ami.ping_failures_total == 1
    server.answer_pings = True
    await eventually(lambda: check(ami.connected and ami.reconnects_total == 1), timeout=5.0)
    await ami.close()


async def test_killed_connection_fails_pending_reconnects_and_resyncs(server: AmiServer) -> None:
    ami = make_client(server.port, ping_interval_s=30)
    resynced: list[AmiEventList] = []

    async def resync() -> None:
        resynced.append(await ami.action_list("CoreShowChannels"))

    ami.on_reconnect(resync)
    await ami.connect()
    server.add_channel("Local/s@caller-sim-00000001;1", state=6)
    server.answer_pings = False
    pending = asyncio.create_task(ami.action("Ping"))
    await eventually(lambda: check(any(a.name == "Ping" for a in server.actions_received)))
    server.answer_pings = True
    assert server.kill_connections() == 1
    with pytest.raises(AmiConnectionLost, match="lost: connection closed by Asterisk"):
        await pending
    await eventually(lambda: check(len(resynced) == 1))
    assert ami.connected
    assert ami.reconnects_total == 1
    assert [e["Channel"] for e in resynced[0].events] == ["Local/s@caller-sim-00000001;1"]
    assert (await ami.action("Ping"))["Ping"] == "Pong"
    await ami.close()


async def test_reconnect_backs_off_until_the_manager_is_back(
    server: AmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    port = server.port
    ami = make_client(port, ping_interval_s=30, reconnect_initial_s=0.02, reconnect_max_s=0.1)
    hooks: list[int] = []

    async def hook() -> None:
        hooks.append(ami.reconnects_total)

    ami.on_reconnect(hook)
    await ami.connect()
    with caplog.at_level(logging.INFO, logger="centralino.asterisk.ami_client"):
        await server.stop()
        await eventually(
            lambda: check(
                sum(
                    "reconnect to" in r.getMessage() and "failed" in r.getMessage()
                    for r in caplog.records
                )
                >= 3
            ),
            timeout=5.0,
        )
        assert not ami.connected
        revived = AmiServer(port=port, auth_failure_delay_s=0.05)
        await revived.start()
        try:
            await eventually(lambda: check(hooks == [1] and ami.connected), timeout=5.0)
        finally:
            await ami.close()
            await revived.stop()
    delays = [
        float(r.getMessage().split(" in ")[1].split(" s")[0])
        for r in caplog.records
        if r.getMessage().startswith("AMI: reconnecting")
    ]
    assert len(delays) >= 3
    assert delays[1] > delays[0]  # exponential...
    assert max(delays) <= 0.1 * 1.2  # ...capped (jitter included)


def test_backoff_is_exponential_capped_and_jittered_by_the_given_rng() -> None:
    def delays(seed: int) -> list[float]:
        ami = AmiClient(
            host="h",
            port=1,
            username="u",
            secret="s",
            rng=np.random.default_rng(seed),
            reconnect_initial_s=0.5,
            reconnect_max_s=30.0,
            reconnect_multiplier=2.0,
            reconnect_jitter=0.2,
        )
        return [ami.reconnect_delay_s(attempt) for attempt in range(10)]

    first = delays(3)
    assert first == delays(3)  # reproducible from the seed
    assert first != delays(4)
    for attempt, delay in enumerate(first):
        base = min(30.0, 0.5 * 2**attempt)
        assert base * 0.8 <= delay <= base * 1.2


async def test_garbage_from_the_manager_closes_logs_and_reconnects(
    server: AmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    ami = make_client(server.port, ping_interval_s=30)
    await ami.connect()
    with caplog.at_level(logging.ERROR, logger="centralino.asterisk.ami_client"):
        server.inject_raw(b"\x00\xffthis is not AMI\r\n\r\n")
        await eventually(lambda: check(ami.protocol_errors_total == 1))
    assert any("garbage from 127.0.0.1" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    await eventually(lambda: check(ami.connected and ami.reconnects_total == 1))
    assert (await ami.action("Ping")).ok
    await ami.close()


async def test_close_logs_off_and_ends_streams(server: AmiServer) -> None:
    ami = make_client(server.port)
    await ami.connect()
    stream = ami.events()

    async def drain() -> list[AmiEvent]:
        return [event async for event in stream]

    reader = asyncio.create_task(drain())
    await ami.close()
    assert server.actions_received[-1].name == "Logoff"
    assert not ami.connected
    assert await asyncio.wait_for(reader, 1.0) == []
    with pytest.raises(AmiConnectionLost):
        await ami.action("Ping")
    await eventually(lambda: check(server.connections == 0))


async def test_async_hook_errors_are_logged_not_fatal(
    server: AmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    ami = make_client(server.port, ping_interval_s=30)
    calls: list[str] = []

    async def broken() -> None:
        calls.append("broken")
        raise RuntimeError("consumer bug")

    async def fine() -> None:
        calls.append("fine")

    ami.on_reconnect(broken)
    ami.on_reconnect(fine)
    await ami.connect()
    with caplog.at_level(logging.ERROR, logger="centralino.asterisk.ami_client"):
        server.kill_connections()
        await eventually(lambda: check(calls == ["broken", "fine"]))
    assert any("resync hook" in r.getMessage() for r in caplog.records)
    await ami.close()
