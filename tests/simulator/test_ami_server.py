"""The fake AMI manager answers like Asterisk 22.10.1 did in the recorded transcripts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable

import pytest

from centralino.asterisk.ami import (
    AmiBanner,
    AmiClientConnection,
    AmiEvent,
    AmiResponse,
    ConnectionClosed,
    encode_packet,
)
from centralino.simulator.ami_server import (
    AmiServer,
    OriginateOutcome,
    OriginateRequest,
    SimQueueMember,
    TranscriptPacket,
    load_ami_transcript,
)
from centralino.simulator.transcripts import transcripts_dir
from tests.helpers import eventually

# Values that depend on the clock, the session or Asterisk's counters; everything else, header
# names and order included, must match the recording exactly.
VOLATILE = frozenset(
    {
        "Timestamp",
        "LoginTime",
        "LastCall",
        "LastPause",
        "CoreStartupDate",
        "CoreStartupTime",
        "CoreReloadDate",
        "CoreReloadTime",
        "CoreProcessedCalls",
        "Uniqueid",
        "Linkedid",
        "EventTV",
        "SessionTV",
        "SessionID",
        "LocalAddress",
        "RemoteAddress",
        "Uptime",
        "LastReload",
    }
)
_LOCAL_SUFFIX = re.compile(r"-[0-9a-f]{8};([12])")

Packet = AmiResponse | AmiEvent | ConnectionClosed


def mask(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (k, "<volatile>" if k in VOLATILE else _LOCAL_SUFFIX.sub(r"-XXXXXXXX;\1", v))
        for k, v in headers
    )


def transcript(name: str) -> list[TranscriptPacket]:
    return load_ami_transcript(transcripts_dir() / name)


def connections(name: str) -> list[list[TranscriptPacket]]:
    result: list[list[TranscriptPacket]] = []
    for packet in transcript(name):
        if packet.kind == "banner":
            result.append([])
        result[-1].append(packet)
    return result


def exchanges(
    conn: list[TranscriptPacket],
) -> list[tuple[TranscriptPacket, list[TranscriptPacket]]]:
    """(packet sent, packets received before the next send) for one connection."""
    out: list[tuple[TranscriptPacket, list[TranscriptPacket]]] = []
    for packet in conn:
        if packet.direction == ">>>":
            out.append((packet, []))
        elif out:
            out[-1][1].append(packet)
    return out


class RawAmi:
    """A bare socket speaking AMI through the client codec: no correlation, no magic."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.codec = AmiClientConnection()
        self.banner_bytes = b""
        self._ready: list[Packet] = []

    @classmethod
    async def open(cls, port: int) -> RawAmi:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        raw.banner_bytes = await reader.readline()
        assert list(raw.codec.receive_data(raw.banner_bytes)) == [AmiBanner(version="11.0.0")]
        return raw

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def login(self, events: str = "on", secret: str = "admin-secret") -> AmiResponse:
        await self.send(
            f"Action: Login\r\nActionID: l\r\nUsername: admin\r\nSecret: {secret}\r\n"
            f"Events: {events}\r\n\r\n".encode()
        )
        response = await self.next()
        assert isinstance(response, AmiResponse)
        return response

    async def next(self, timeout: float = 2.0) -> Packet:
        async with asyncio.timeout(timeout):
            while not self._ready:
                data = await self.reader.read(65536)
                for item in self.codec.receive_data(data):
                    assert not isinstance(item, AmiBanner)
                    self._ready.append(item)
        return self._ready.pop(0)

    async def next_event(self, *names: str, timeout: float = 2.0) -> AmiEvent:
        while True:
            packet = await self.next(timeout)
            if isinstance(packet, AmiEvent) and (not names or packet.name in names):
                return packet

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def replay_exchange(
    raw: RawAmi, sent: TranscriptPacket, expected: list[TranscriptPacket]
) -> None:
    await raw.send(sent.wire)
    for want in expected:
        got = await raw.next()
        if want.kind == "eof":
            assert got == ConnectionClosed(), f"after {sent.headers[0]}"
            continue
        assert not isinstance(got, ConnectionClosed)
        assert mask(got.headers) == mask(want.headers), f"answer to {sent.headers[:2]}"
        if not any(k in VOLATILE for k, _ in want.headers):
            assert encode_packet(got.headers) == want.wire  # byte-identical


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    peer = AmiServer(auth_failure_delay_s=0.05)
    await peer.start()
    yield peer
    await peer.stop()


def set_after_call_state(server: AmiServer, *, login_time: int = 1795365976) -> None:
    """The queue as it stood after the recorded call (Section 3 of ami-actions.txt)."""
    queue = server.queues["support"]
    queue.holdtime, queue.talktime, queue.completed = 2, 6, 1
    member = queue.members.get("Local/agent101@agents/n")
    if member is None:
        member = SimQueueMember(
            interface="Local/agent101@agents/n",
            name="Agent 101",
            state_interface="Local/agent101@agents/n",
            login_time=login_time,
        )
        queue.members[member.interface] = member
    member.calls_taken, member.last_call = 1, 1795365985


# --- responses, byte for byte -------------------------------------------------------------------
async def test_events_off_connection_reproduces_ami_actions_transcript(server: AmiServer) -> None:
    conn = connections("ami-actions.txt")[0]
    raw = await RawAmi.open(server.port)
    assert raw.banner_bytes == conn[0].wire == b"Asterisk Call Manager/11.0.0\r\n"
    steps = exchanges(conn)
    ids = [sent.headers[1][1] for sent, _ in steps]
    idle = steps[: ids.index("coreshowchannels-6") + 1]
    after_call = steps[ids.index("queuestatus-14") :]
    for sent, expected in idle:
        await replay_exchange(raw, sent, expected)
    set_after_call_state(server)
    for sent, expected in after_call:
        await replay_exchange(raw, sent, expected)
    await raw.close()


@pytest.mark.parametrize("index", [1, 2], ids=["denied-then-wrong-secret", "unknown-user"])
async def test_failed_logins_reproduce_the_transcript(server: AmiServer, index: int) -> None:
    conn = connections("ami-actions.txt")[index]
    raw = await RawAmi.open(server.port)
    for sent, expected in exchanges(conn):
        started = time.monotonic()
        await replay_exchange(raw, sent, expected)
        if sent.headers[0] == ("Action", "Login"):
            assert time.monotonic() - started >= server.auth_failure_delay_s
    await raw.close()


async def test_failed_login_waits_one_second_by_default() -> None:
    peer = AmiServer()
    assert peer.auth_failure_delay_s == 1.0


# --- events -------------------------------------------------------------------------------------
async def test_event_connection_sees_login_membership_and_other_connections_actions(
    server: AmiServer,
) -> None:
    recorded = connections("ami-queue-call.txt")[0]
    steps = exchanges(recorded)
    events = await RawAmi.open(server.port)

    login_sent, login_expected = steps[0]
    await replay_exchange(events, login_sent, login_expected[:3])  # Response, FullyBooted, own auth

    # A second (Events: off) connection logging in shows up as SuccessfulAuth here (fact 22).
    actions = await RawAmi.open(server.port)
    assert (await actions.login(events="off")).message == "Authentication accepted"
    other_auth = await events.next_event()
    assert mask(other_auth.headers) == mask(login_expected[3].headers)

    queueadd_sent, queueadd_expected = steps[1]
    await replay_exchange(events, queueadd_sent, queueadd_expected[:2])  # no DeviceStateChange

    # Originate (async): queued at once, then Newchannel x2 and OriginateResponse.
    originate_sent, originate_expected = steps[2]
    await events.send(originate_sent.wire)
    assert mask((await events.next()).headers) == mask(originate_expected[0].headers)  # type: ignore[union-attr]
    first_newchannel = next(p for p in originate_expected if p.headers[0][1] == "Newchannel")
    first_response = next(p for p in originate_expected if p.headers[0][1] == "OriginateResponse")
    got = [await events.next_event() for _ in range(3)]
    assert [e.name for e in got] == ["Newchannel", "Newchannel", "OriginateResponse"]
    assert mask(got[0].headers) == mask(first_newchannel.headers)
    assert mask(got[2].headers) == mask(first_response.headers)

    # Section 3 of the actions connection, as seen on the event connection.
    set_after_call_state(server)
    section3 = connections("ami-actions.txt")[0]
    for sent, _ in exchanges(section3):
        action_id = sent.headers[1][1]
        if action_id in {
            "queuepause-15",
            "queueremove-16",
            "nosuchaction-19",
            "setvar-21",
            "originate-25",
        }:
            await actions.send(sent.wire)
            await actions.next()
    interesting = {"QueueMemberPause", "QueueMemberRemoved", "RequestBadFormat", "VarSet"}
    interesting |= {"Newchannel", "Hangup"}
    tail = [
        p
        for p in recorded
        if p.t_s >= 13.5 and p.kind == "packet" and p.headers[0][0] == "Event"
        if p.headers[0][1] in interesting
    ]
    assert [p.headers[0][1] for p in tail] == [
        "QueueMemberPause",
        "QueueMemberRemoved",
        "RequestBadFormat",
        "VarSet",
        "Newchannel",
        "Newchannel",
        "Hangup",
        "Hangup",
    ]
    for want_packet in tail:
        got_event = await events.next_event(*interesting)
        assert mask(got_event.headers) == mask(want_packet.headers)
    await actions.close()
    await events.close()


async def test_playdtmf_answers_after_the_tone_and_raises_dtmf_events_on_the_other_half(
    server: AmiServer,
) -> None:
    async def reach_agi(request: OriginateRequest) -> OriginateOutcome:
        request.created[0].priority = 3  # the dialplan step holding AGI() (fact 1)
        return OriginateOutcome()

    server.originate_hook = reach_agi
    pressed: list[str] = []

    async def on_dtmf(channel: object, digit: str, duration_ms: int) -> None:
        pressed.append(digit)

    server.dtmf_hook = on_dtmf
    recorded = connections("ami-during-fastagi.txt")[0]
    steps = exchanges(recorded)
    raw = await RawAmi.open(server.port)
    await replay_exchange(raw, steps[0][0], steps[0][1])  # Response, FullyBooted, SuccessfulAuth
    originate_sent, originate_expected = steps[1]
    await raw.send(originate_sent.wire)
    assert mask((await raw.next()).headers) == mask(originate_expected[0].headers)  # type: ignore[union-attr]
    response = await raw.next_event("OriginateResponse")
    assert response["Response"] == "Success"
    assert response.action_id == "originate-2"

    dtmf_sent, dtmf_expected = steps[2]
    channel = response["Channel"][:-1] + "2"
    wire = dtmf_sent.wire.replace(b"Local/s@caller-sim-00000000;2", channel.encode())
    started = time.monotonic()
    await raw.send(wire)
    ack = await raw.next()
    assert time.monotonic() - started >= 0.12  # Duration: 120
    assert mask(ack.headers) == mask(dtmf_expected[0].headers)  # type: ignore[union-attr]
    begin = await raw.next_event("DTMFBegin")
    end = await raw.next_event("DTMFEnd")
    assert mask(begin.headers) == mask(dtmf_expected[1].headers)
    assert mask(end.headers) == mask(dtmf_expected[2].headers)
    assert pressed == ["5"]
    await raw.close()


async def test_replay_sends_every_recorded_event_byte_for_byte(server: AmiServer) -> None:
    packets = transcript("ami-queue-call.txt")
    recorded = [
        p
        for p in packets
        if p.direction == "<<<" and p.kind == "packet"
        if "Event" in dict(p.headers)
    ]
    raw = await RawAmi.open(server.port)
    await raw.login()
    await raw.next_event("SuccessfulAuth")
    sent = await server.replay(packets)
    assert sent == len(recorded) > 150
    for want in recorded:
        got = await raw.next()
        assert not isinstance(got, ConnectionClosed)
        assert encode_packet(got.headers) == want.wire
    await raw.close()


async def test_events_go_only_to_event_connections_and_respect_the_mask(
    server: AmiServer,
) -> None:
    everything = await RawAmi.open(server.port)
    await everything.login("on")
    agent_only = await RawAmi.open(server.port)
    await agent_only.login("agent")
    silent = await RawAmi.open(server.port)
    await silent.login("off")
    await eventually(lambda: _assert(server.event_connections == 2))

    server.emit("VarSet", Privilege="dialplan,all", Variable="X", Value="1")
    server.emit_packet([("Event", "QueueMemberPause"), ("Privilege", "agent,all"), ("Queue", "q")])
    assert (await everything.next_event("VarSet"))["Variable"] == "X"
    assert (await everything.next_event("QueueMemberPause"))["Queue"] == "q"
    assert (await agent_only.next_event())["Event"] == "QueueMemberPause"
    await silent.send(b"Action: Ping\r\nActionID: p\r\n\r\n")
    assert isinstance(await silent.next(), AmiResponse)  # no event came before the Pong
    for raw in (everything, agent_only, silent):
        await raw.close()


def _assert(condition: bool) -> None:
    assert condition


# --- test controls and bad input ----------------------------------------------------------------
async def test_pings_can_be_ignored_while_other_actions_answer(server: AmiServer) -> None:
    raw = await RawAmi.open(server.port)
    await raw.login("off")
    server.answer_pings = False
    await raw.send(b"Action: Ping\r\nActionID: p1\r\n\r\n")
    await raw.send(b"Action: Getvar\r\nActionID: g1\r\nVariable: NOPE\r\n\r\n")
    answer = await raw.next()
    assert answer.headers[:2] == (("Response", "Success"), ("ActionID", "g1"))  # type: ignore[union-attr]
    with pytest.raises(TimeoutError):
        await raw.next(timeout=0.2)
    await raw.close()


async def test_kill_connections_drops_every_client_without_goodbye(server: AmiServer) -> None:
    first, second = await RawAmi.open(server.port), await RawAmi.open(server.port)
    await first.login()
    await eventually(lambda: _assert(server.connections == 2))
    assert server.kill_connections() == 2
    for raw in (first, second):
        while (packet := await raw.next()) != ConnectionClosed():
            assert isinstance(packet, AmiEvent)  # only events queued before the kill
    await eventually(lambda: _assert(server.connections == 0))
    again = await RawAmi.open(server.port)  # still serving
    assert (await again.login()).ok
    for raw in (first, second, again):
        await raw.close()


async def test_garbage_from_a_client_closes_only_that_connection(
    server: AmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = await RawAmi.open(server.port)
    await good.login("off")
    bad = await RawAmi.open(server.port)
    with caplog.at_level(logging.WARNING, logger="centralino.simulator.ami_server"):
        await bad.send(b"\x16\x03\x01 this is not AMI\r\n\r\n")
        assert await bad.next() == ConnectionClosed()
    assert any(
        "garbage" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records
    )
    await good.send(b"Action: Ping\r\nActionID: p\r\n\r\n")
    pong = await good.next()
    assert isinstance(pong, AmiResponse)
    assert pong["Ping"] == "Pong"
    await good.close()
    await bad.close()


async def test_missing_action_and_unknown_command_output(server: AmiServer) -> None:
    raw = await RawAmi.open(server.port)
    await raw.login("off")
    await raw.send(b"ActionID: x\r\n\r\n")
    missing = await raw.next()
    assert isinstance(missing, AmiResponse)
    assert (missing.response, missing.message) == ("Error", "Missing action in request")
    await raw.send(b"Action: Command\r\nActionID: c\r\nCommand: core show uptime\r\n\r\n")
    uptime = await raw.next()
    assert isinstance(uptime, AmiResponse)
    assert [line.split(":")[0] for line in uptime.output] == ["System uptime", "Last reload"]
    await raw.send(b"Action: Command\r\nActionID: d\r\nCommand: nope\r\n\r\n")
    nope = await raw.next()
    assert isinstance(nope, AmiResponse)
    assert not nope.ok
    assert nope.output == [
        "No such command 'nope' (type 'core show help nope' for other possible commands)"
    ]
    await raw.close()


# --- the queue call's list actions (Sections 1b and 2 of ami-actions.txt) -----------------------
_CHANNEL_FIELDS = {
    "ChannelState": ("state", int),
    "CallerIDNum": ("caller_id_num", str),
    "CallerIDName": ("caller_id_name", str),
    "ConnectedLineNum": ("connected_line_num", str),
    "ConnectedLineName": ("connected_line_name", str),
    "Context": ("context", str),
    "Exten": ("exten", str),
    "Priority": ("priority", int),
    "Application": ("application", str),
    "ApplicationData": ("application_data", str),
    "BridgeId": ("bridge_id", str),
}


def load_channels(server: AmiServer, recorded: list[TranscriptPacket]) -> None:
    """Create the channels a recorded CoreShowChannels listed, with the values it showed."""
    server.channels.clear()
    for packet in recorded:
        fields = dict(packet.headers)
        if fields.get("Event") != "CoreShowChannel":
            continue
        values = {attr: kind(fields[key]) for key, (attr, kind) in _CHANNEL_FIELDS.items()}
        server.add_channel(fields["Channel"], announce=False, **values)


async def test_list_actions_during_the_queue_call_match_the_recording(server: AmiServer) -> None:
    steps = {
        sent.headers[1][1]: (sent, got)
        for sent, got in exchanges(connections("ami-actions.txt")[0])
    }
    raw = await RawAmi.open(server.port)
    await replay_exchange(raw, *steps["login-1"])
    queue = server.queues["support"]
    member = SimQueueMember(
        interface="Local/agent101@agents/n",
        name="Agent 101",
        state_interface="Local/agent101@agents/n",
        status=2,  # INUSE while ringing (fact 20)
    )
    queue.members[member.interface] = member

    # Section 1b: the caller waits, the agent rings.
    load_channels(server, steps["coreshowchannels-9"][1])
    server.queue_caller_join("support", "Local/queuecaller@caller-sim-0000000d;1")
    for action_id in ("queuestatus-7", "queuesummary-8", "coreshowchannels-9"):
        await replay_exchange(raw, *steps[action_id])

    # Section 2: bridged; the caller left the queue and talks to the agent.
    server.queue_caller_leave("support", "Local/queuecaller@caller-sim-0000000d;1")
    queue.holdtime = 2
    server.set_member_status("support", member.interface, status=2, in_call=1)
    load_channels(server, steps["coreshowchannels-12"][1])
    for channel in server.channels.values():
        channel.created_at -= 4  # Duration: 00:00:04
    for action_id in ("queuestatus-10", "queuesummary-11", "coreshowchannels-12", "ping-13"):
        await replay_exchange(raw, *steps[action_id])
    await raw.close()


async def test_queue_helpers_emit_events_shaped_like_the_recording(server: AmiServer) -> None:
    recorded = [p for p in transcript("ami-queue-call.txt") if p.kind == "packet"]

    def first(name: str, **match: str) -> TranscriptPacket:
        return next(
            p
            for p in recorded
            if dict(p.headers).get("Event") == name
            and all(dict(p.headers).get(k) == v for k, v in match.items())
        )

    raw = await RawAmi.open(server.port)
    await raw.login()
    join = first("QueueCallerJoin")
    fields = dict(join.headers)
    server.add_channel(
        fields["Channel"],
        announce=False,
        state=6,
        caller_id_num="+390212345678",
        caller_id_name="Mario Rossi",
        connected_line_num="+390212345678",
        connected_line_name="Mario Rossi",
        context="queue-test",
        exten="s",
        priority=3,
    )
    server.queues["support"].members["Local/agent101@agents/n"] = SimQueueMember(
        interface="Local/agent101@agents/n",
        name="Agent 101",
        state_interface="Local/agent101@agents/n",
    )
    server.queue_caller_join("support", fields["Channel"])
    assert mask((await raw.next_event("QueueCallerJoin")).headers) == mask(join.headers)
    server.set_member_status("support", "Local/agent101@agents/n", status=2)
    status = await raw.next_event("QueueMemberStatus")
    assert mask(status.headers) == mask(first("QueueMemberStatus", Status="2").headers)
    server.queue_caller_leave("support", fields["Channel"])
    leave = await raw.next_event("QueueCallerLeave")
    assert mask(leave.headers) == mask(first("QueueCallerLeave").headers)
    await raw.close()
