"""Several Asterisk servers' AMI links as one group: events from all, actions to the phone's
server, lists merged; and the composition root building it from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from centralino.app import _ami_client
from centralino.asterisk.ami import AmiEvent
from centralino.asterisk.ami_group import AmiGroup
from centralino.settings import SettingsError, load_settings
from centralino.simulator.ami_server import AmiServer
from tests.asterisk.test_ami_client import make_client
from tests.helpers import eventually


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[AmiServer, AmiServer]]:
    servers = (AmiServer(auth_failure_delay_s=0.05), AmiServer(auth_failure_delay_s=0.05))
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


@pytest.fixture
async def group(two_servers: tuple[AmiServer, AmiServer]) -> AsyncIterator[AmiGroup]:
    rome, milan = two_servers
    clients = {"": make_client(rome.port), "milano": make_client(milan.port)}
    for client in clients.values():
        await client.connect()
    ami = AmiGroup(clients, endpoints={"PJSIP/agent201": "milano"})
    yield ami
    await ami.close()


async def test_events_from_every_server_reach_one_subscriber(
    two_servers: tuple[AmiServer, AmiServer], group: AmiGroup
) -> None:
    seen: list[str] = []

    def on_event(event: AmiEvent) -> None:
        seen.append(event.get("Device") or "")

    unsubscribe = group.subscribe("DeviceStateChange", on_event)
    rome, milan = two_servers
    rome.emit("DeviceStateChange", Device="PJSIP/agent101", State="UNAVAILABLE")
    milan.emit("DeviceStateChange", Device="PJSIP/agent201", State="UNAVAILABLE")
    await eventually(lambda: _assert(sorted(seen) == ["PJSIP/agent101", "PJSIP/agent201"]))
    unsubscribe()
    rome.emit("DeviceStateChange", Device="PJSIP/agent102", State="UNAVAILABLE")
    await asyncio.sleep(0.1)
    assert len(seen) == 2


async def test_a_phones_actions_go_to_its_own_server(
    two_servers: tuple[AmiServer, AmiServer], group: AmiGroup
) -> None:
    rome, milan = two_servers
    assert group.link("PJSIP/agent201") is group.clients["milano"]
    assert group.link("PJSIP/agent101") is group.clients[""]  # not placed: the default
    await group.link("PJSIP/agent201").action("Ping")
    assert [a.name for a in milan.actions_received if a.name == "Ping"] == ["Ping"]
    assert not [a for a in rome.actions_received if a.name == "Ping"]


async def test_channel_lists_are_merged_and_connected_means_every_link(
    two_servers: tuple[AmiServer, AmiServer], group: AmiGroup
) -> None:
    rome, milan = two_servers
    rome.add_channel("PJSIP/trunk-1")
    milan.add_channel("PJSIP/trunk-2")
    milan.add_channel("PJSIP/agent201-1")
    listing = await group.action_list("CoreShowChannels", timeout_s=2)
    assert sorted(e.get("Channel") or "" for e in listing.events) == [
        "PJSIP/agent201-1",
        "PJSIP/trunk-1",
        "PJSIP/trunk-2",
    ]
    assert group.connected
    assert milan.kill_connections() == 1
    await eventually(lambda: _assert(not group.connected))  # one server out of sight
    assert group.describe() == (f"127.0.0.1:{rome.port}, milano=127.0.0.1:{milan.port}")


def test_a_group_refuses_endpoints_on_unknown_servers() -> None:
    client = make_client(1)
    with pytest.raises(ValueError, match="unknown Asterisk servers"):
        AmiGroup({"": client}, endpoints={"PJSIP/a": "nowhere"})
    assert AmiGroup.of(client).link("PJSIP/anything") is client


def _settings_toml(secret_env: str = "AMI_SECRET_MILANO") -> dict[str, str]:
    return {
        "CENTRALINO_AMI_SECRET": "rome-secret",
        secret_env: "milan-secret",
    }


def test_the_settings_place_agents_on_servers_and_the_root_builds_one_link_each(
    tmp_path: object,
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.toml"
    path.write_text(
        "[ami]\nhost = '10.0.0.1'\n"
        "[[ami.servers]]\nname = 'milano'\nhost = '10.0.0.2'\n"
        "secret_env = 'AMI_SECRET_MILANO'\n"
        "[[acd.agents]]\nid = 'agent101'\nskills = { billing = 3, support = 3, sales = 3 }\n"
        "[[acd.agents]]\nid = 'agent201'\nasterisk = 'milano'\n"
        "skills = { billing = 3, support = 3, sales = 3 }\n",
        encoding="utf-8",
    )
    settings = load_settings(path, environ=_settings_toml())
    group = _ami_client(settings, None, owner="t")
    assert group is not None
    assert {n: (c.host, c.port) for n, c in group.clients.items()} == {
        "": ("10.0.0.1", 5038),
        "milano": ("10.0.0.2", 5038),
    }
    assert group.link("PJSIP/agent201") is group.clients["milano"]
    assert group.link("PJSIP/agent101") is group.clients[""]


def test_a_server_without_its_secret_or_an_agent_on_an_unknown_server_is_refused(
    tmp_path: object,
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.toml"
    path.write_text(
        "[[ami.servers]]\nname = 'milano'\nhost = '10.0.0.2'\nsecret_env = 'NOPE_UNSET'\n"
        "[[ami.servers]]\nname = 'milano'\nhost = '10.0.0.3'\nsecret_env = 'NOPE_UNSET'\n"
        "[[acd.agents]]\nid = 'agent301'\nasterisk = 'torino'\n"
        "skills = { billing = 3, support = 3, sales = 3 }\n",
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as error:
        load_settings(path, environ={"CENTRALINO_AMI_SECRET": "x"})
    text = str(error.value)
    assert "ami.servers[0].secret_env" in text and "NOPE_UNSET is not set" in text
    assert "ami.servers[1].name: 'milano' is used twice" in text
    assert "acd.agents[0].asterisk" in text and "'torino'" in text


def _assert(condition: bool) -> None:
    assert condition
