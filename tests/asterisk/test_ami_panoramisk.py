"""panoramisk 1.4 against our fake manager behaves as panoramisk-check.txt recorded (fact 31/32).

This is the evidence behind docs/ami.md: the peer is faithful enough to reproduce panoramisk's
QueueAdd hang, and that hang is one reason Centralino uses its own AMI client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from panoramisk import Manager

from centralino.simulator.ami_server import AmiServer
from tests.helpers import eventually

QUEUEADD = {
    "Action": "QueueAdd",
    "Queue": "support",
    "Interface": "Local/agent101@agents/n",
    "MemberName": "Agent 101",
}


@pytest.fixture
async def manager() -> AsyncIterator[tuple[Manager, AmiServer]]:
    server = AmiServer(auth_failure_delay_s=0.05)
    await server.start()
    ami = Manager(
        host="127.0.0.1",
        port=server.port,
        username="admin",
        secret="admin-secret",
        ping_delay=60,
        reconnect_timeout=60,
        loop=asyncio.get_running_loop(),
    )
    await ami.connect()

    def logged_in() -> None:
        assert ami.authenticated

    await eventually(logged_in)
    yield ami, server
    ami.close()
    await server.stop()


async def test_panoramisk_reproduces_the_recorded_check(manager: tuple[Manager, AmiServer]) -> None:
    ami, server = manager
    pong = await ami.send_action({"Action": "Ping"})
    assert pong["Ping"] == "Pong"

    # Fact 31: the QueueAdd reply is taken for a list start; the future never resolves...
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ami.send_action(dict(QUEUEADD)), 0.5)
    # ...although the member was added, so the retry with as_list=False says "Already there".
    assert "Local/agent101@agents/n" in server.queues["support"].members
    retry = await ami.send_action(dict(QUEUEADD), as_list=False)
    assert (retry["Response"], retry["Message"]) == (
        "Error",
        "Unable to add interface: Already there",
    )

    # Fact 32: list actions come back as a Python list: response, items, Complete.
    status = await ami.send_action({"Action": "QueueStatus", "Queue": "support"})
    assert [m.get("Event") or m["Response"] for m in status] == [
        "Success",
        "QueueParams",
        "QueueMember",
        "QueueStatusComplete",
    ]
    channels = await ami.send_action({"Action": "CoreShowChannels"})
    assert [m.get("Event") or m["Response"] for m in channels] == [
        "Success",
        "CoreShowChannelsComplete",
    ]
    uptime = await ami.send_action({"Action": "Command", "Command": "core show uptime"})
    assert isinstance(uptime["Output"], list)
    assert len(uptime["Output"]) == 2
