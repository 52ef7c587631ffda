"""The fake manager's transfer events: the headers Asterisk 22 sends, in its order, and what
Centralino's parsers make of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from centralino.ami_watch import attended_transfer, blind_transfer
from centralino.simulator.ami_server import AmiServer, SimBridge, SimChannel
from tests.simulator.test_ami_server import RawAmi

# The snapshot blocks (ast_manager_build_channel_state_string_prefix and
# ast_manager_build_bridge_state_string_prefix), as the AMI event documentation lists them.
CHANNEL = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
BRIDGE = (
    "BridgeUniqueid",
    "BridgeType",
    "BridgeTechnology",
    "BridgeCreator",
    "BridgeName",
    "BridgeNumChannels",
    "BridgeVideoSourceMode",
)
# docs.asterisk.org, Asterisk 22, AMI_Events/BlindTransfer ("Syntax").
BLIND_ORDER = (
    "Event",
    "Privilege",
    "Result",
    *(f"Transferer{k}" for k in CHANNEL),
    *(f"Transferee{k}" for k in CHANNEL),
    *BRIDGE,
    "IsExternal",
    "Context",
    "Extension",
)


def attended_order(dest: tuple[str, ...]) -> tuple[str, ...]:
    """main/stasis_bridges.c attended_transfer_to_ami: the wire order (the documentation lists
    DestType and its headers before Transferee; Asterisk writes them last)."""
    return (
        "Event",
        "Privilege",
        "Result",
        *(f"OrigTransferer{k}" for k in CHANNEL),
        *(f"Orig{k}" for k in BRIDGE),
        *(f"SecondTransferer{k}" for k in CHANNEL),
        *(f"Second{k}" for k in BRIDGE),
        *(f"Transferee{k}" for k in CHANNEL),
        *(f"TransferTarget{k}" for k in CHANNEL),
        "IsExternal",
        "DestType",
        *dest,
    )


def caller() -> SimChannel:
    return SimChannel(
        name="PJSIP/trunk-17000000001",
        uniqueid="1700000000.1",
        linkedid="1700000000.1",
        state=6,
        caller_id_num="+390212345678",
        caller_id_name="Mario Rossi",
        connected_line_num="101",
        connected_line_name="Agent 101",
        context="centralino-inbound",
        exten="+390200000000",
        priority=4,
    )


def agent(name: str = "PJSIP/agent101-00000002", uniqueid: str = "1700000000.2") -> SimChannel:
    return SimChannel(
        name=name,
        uniqueid=uniqueid,
        linkedid="1700000000.1",
        state=6,
        caller_id_num="101",
        caller_id_name="Agent 101",
        connected_line_num="+390212345678",
        connected_line_name="Mario Rossi",
        context="centralino-agents",
    )


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    peer = AmiServer(auth_failure_delay_s=0.05)
    await peer.start()
    yield peer
    await peer.stop()


async def test_blind_transfer_has_the_documented_headers_in_order(server: AmiServer) -> None:
    raw = await RawAmi.open(server.port)
    await raw.login()
    bridge = SimBridge(uniqueid="0d5e3f9a-8c1b-4d36-9a57-1b2c3d4e5f60")

    server.blind_transfer(
        transferer=agent(),
        transferee=caller(),
        bridge=bridge,
        context="centralino-transfer",
        extension="billing",
    )
    event = await raw.next_event("BlindTransfer")
    await raw.close()

    assert tuple(k for k, _ in event.headers) == BLIND_ORDER
    assert event["Result"] == "Success" and event["IsExternal"] == "Yes"
    assert event["TransfereeUniqueid"] == "1700000000.1"
    assert event["BridgeVideoSourceMode"] == "none"
    parsed = blind_transfer(event, queues={"billing@centralino-transfer": "billing"})
    assert parsed is not None
    assert (parsed.kind, parsed.uniqueid, parsed.linkedid) == (
        "blind",
        "1700000000.1",
        "1700000000.1",
    )
    assert (parsed.target, parsed.queue, parsed.transferer, parsed.external) == (
        "billing@centralino-transfer",
        "billing",
        "PJSIP/agent101-00000002",
        True,
    )


async def test_blind_transfer_from_a_conference_names_no_transferee(server: AmiServer) -> None:
    raw = await RawAmi.open(server.port)
    await raw.login()
    bridge = SimBridge(uniqueid="b", num_channels=3, video_source_mode="talker", video_source="x")

    server.blind_transfer(
        transferer=agent(),
        transferee=None,
        bridge=bridge,
        context="from-internal",
        extension="200",
        result="Not Permitted",
        is_external=False,
    )
    event = await raw.next_event("BlindTransfer")
    await raw.close()

    names = [k for k, _ in event.headers]
    assert not any(k.startswith("Transferee") for k in names)
    assert names[-5:] == ["BridgeVideoSourceMode", "BridgeVideoSource", *BLIND_ORDER[-3:]]
    assert blind_transfer(event, queues={}) is None  # only a success moved anyone


@pytest.mark.parametrize(
    ("dest_type", "dest_headers"),
    [
        ("Bridge", ("DestBridgeUniqueid",)),
        ("App", ("DestApp",)),
        ("Link", (*(f"LocalOne{k}" for k in CHANNEL), *(f"LocalTwo{k}" for k in CHANNEL))),
        ("Threeway", ("DestBridgeUniqueid", "DestTransfererChannel")),
        ("Fail", ()),
    ],
)
async def test_attended_transfer_has_asterisks_wire_order(
    server: AmiServer, dest_type: str, dest_headers: tuple[str, ...]
) -> None:
    raw = await RawAmi.open(server.port)
    await raw.login()
    consult = agent("PJSIP/agent101-00000003", "1700000000.3")
    target = SimChannel(
        name="PJSIP/agent102-00000004", uniqueid="1700000000.4", linkedid="1700000000.3"
    )
    locals_ = (
        SimChannel(name="Local/x@y-00000001;1", uniqueid="l1", linkedid="l1"),
        SimChannel(name="Local/x@y-00000001;2", uniqueid="l2", linkedid="l1"),
    )

    server.attended_transfer(
        orig_transferer=agent(),
        second_transferer=consult,
        orig_bridge=SimBridge(uniqueid="orig"),
        second_bridge=SimBridge(uniqueid="second"),
        transferee=caller(),
        target=target,
        dest_type=dest_type,  # type: ignore[arg-type]
        dest_bridge="orig",
        dest_app="Queue",
        locals_=locals_,
        dest_transferer_channel=consult.name,
    )
    event = await raw.next_event("AttendedTransfer")
    await raw.close()

    assert tuple(k for k, _ in event.headers) == attended_order(dest_headers)
    parsed = attended_transfer(event, agents_by_endpoint={"PJSIP/agent102": "agent102"})
    if dest_type == "Fail":
        assert parsed is None
        return
    assert parsed is not None
    assert (parsed.kind, parsed.uniqueid, parsed.target, parsed.queue) == (
        "attended",
        "1700000000.1",
        "agent:agent102",
        None,
    )
    assert parsed.transferer == "PJSIP/agent101-00000002"
