"""A fake Asterisk manager (AMI server) for tests, the demo and load runs; never in the call path.

It reproduces what /work/shared/asterisk-real/ recorded from Asterisk 22.10.1 (README facts 12-22):
the banner, Login (delayed failure then close; FullyBooted + SuccessfulAuth on success), Permission
denied before login, Logoff, Ping, unknown actions (+ RequestBadFormat), Getvar/Setvar (+ VarSet),
Command, CoreStatus, queue membership actions and their events, the QueueStatus / QueueSummary /
CoreShowChannels event lists with Asterisk's header order, Originate (async: queued response, then
an OriginateResponse event carrying the same ActionID), PlayDTMF, Hangup and BlindTransfer (the
event follows; `transfer_hook` tells the owner). `blind_transfer` and
`attended_transfer` raise the events a phone's transfer raises, as Asterisk 22 writes them.

Test controls: `emit` / `emit_packet` broadcast events to every event connection, `replay` plays
recorded event packets, `kill_connections` drops every client abruptly, `answer_pings = False`
makes the manager ignore Ping (a dead link as the client sees it), `originate_hook` and
`dtmf_hook` let the owner decide what an Originate or a key press does.

Each connection processes its actions one at a time, as Asterisk's per-session manager thread
does: a failed Login's one-second delay or PlayDTMF's duration holds that connection's later
actions back, but not other connections.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal, TypeAlias

from centralino.asterisk.ami import (
    AmiAction,
    AmiServerConnection,
    ConnectionClosed,
    Headers,
    RemoteProtocolError,
    encode_packet,
)

__all__ = [
    "AmiServer",
    "OriginateOutcome",
    "OriginateRequest",
    "SimBridge",
    "SimChannel",
    "SimQueue",
    "SimQueueEntry",
    "SimQueueMember",
    "TranscriptPacket",
    "load_ami_transcript",
    "parse_ami_transcript",
]

log = logging.getLogger(__name__)

# A client that reads nothing while we broadcast events would grow our write buffer forever;
# Asterisk drops such sessions after its write timeout, we drop them past 4 MiB unsent.
MAX_PENDING_WRITE_BYTES = 4 * 1024 * 1024
_READ_CHUNK = 64 * 1024

# Contexts of the recorded dialplan (extensions.conf beside the transcripts); an Originate of a
# `Local/x@ctx` channel whose ctx is not here fails like `Local/s@nosuchcontext` did.
DEFAULT_CONTEXTS = frozenset({"ivr-test", "caller-sim", "queue-test", "agents", "audiosocket-test"})
DEFAULT_VERSION_LINE = (
    "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-22 16:36:38 UTC"
)
_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})
_CALLERID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _parse_callerid(text: str) -> tuple[str, str]:
    """``"Mario Rossi" <+390212345678>`` → (num, name); a bare number → (num, '<unknown>')."""
    match = _CALLERID.match(text)
    if match is None:
        return (text.strip() or "<unknown>", "<unknown>")
    name = match.group("qname") if match.group("qname") is not None else match.group("name")
    return (match.group("num") or "<unknown>", (name or "").strip() or "<unknown>")


# --- Simulated state ---------------------------------------------------------------------------
@dataclass(slots=True)
class SimChannel:
    """A channel as AMI describes it (the standard channel header block, in Asterisk's order)."""

    name: str
    uniqueid: str
    linkedid: str
    state: int = 0
    caller_id_num: str = "<unknown>"
    caller_id_name: str = "<unknown>"
    connected_line_num: str = "<unknown>"
    connected_line_name: str = "<unknown>"
    language: str = "en"
    account_code: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""
    created_at: float = 0.0
    variables: dict[str, str] = field(default_factory=dict)

    def headers(self, prefix: str = "") -> list[tuple[str, str]]:
        """The snapshot block; `prefix` names the channel's role in bridge events
        (`Transferer`, `OrigTransferer`...), as ast_manager_build_channel_state_string_prefix."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", _STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.caller_id_num),
            (f"{prefix}CallerIDName", self.caller_id_name),
            (f"{prefix}ConnectedLineNum", self.connected_line_num),
            (f"{prefix}ConnectedLineName", self.connected_line_name),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.account_code),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]


@dataclass(slots=True)
class SimBridge:
    """A bridge as AMI describes it (the bridge snapshot block, in Asterisk's order). Dial's
    two-party bridge between PJSIP channels without direct media is `basic`/`simple_bridge`."""

    uniqueid: str
    type: str = "basic"
    technology: str = "simple_bridge"
    creator: str = ""
    name: str = ""
    num_channels: int = 2
    video_source_mode: str = "none"  # none | talker | single
    video_source: str = ""

    def headers(self, prefix: str = "") -> list[tuple[str, str]]:
        """As ast_manager_build_bridge_state_string_prefix: BridgeVideoSource only in the
        talker/single modes and when a source is set."""
        out = [
            (f"{prefix}BridgeUniqueid", self.uniqueid),
            (f"{prefix}BridgeType", self.type),
            (f"{prefix}BridgeTechnology", self.technology),
            (f"{prefix}BridgeCreator", self.creator),
            (f"{prefix}BridgeName", self.name),
            (f"{prefix}BridgeNumChannels", str(self.num_channels)),
            (f"{prefix}BridgeVideoSourceMode", self.video_source_mode),
        ]
        if self.video_source_mode in ("talker", "single") and self.video_source:
            out.append((f"{prefix}BridgeVideoSource", self.video_source))
        return out


@dataclass(slots=True)
class SimQueueMember:
    interface: str
    name: str
    state_interface: str
    membership: str = "dynamic"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: int = 0
    status: int = 1  # device state: 1 NOT_INUSE, 2 INUSE (fact 20)
    paused: bool = False
    paused_reason: str = ""
    ringinuse: int = 0
    wrapuptime: int = 0

    def event_headers(self, queue: str) -> list[tuple[str, str]]:
        """Header order of QueueMemberAdded/Status/Pause/Removed (fact 18)."""
        return [
            ("Queue", queue),
            ("MemberName", self.name),
            ("Interface", self.interface),
            ("StateInterface", self.state_interface),
            ("Membership", self.membership),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
            ("LastPause", str(self.last_pause)),
            ("LoginTime", str(self.login_time)),
            ("InCall", str(self.in_call)),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", self.paused_reason),
            ("Ringinuse", str(self.ringinuse)),
            ("Wrapuptime", str(self.wrapuptime)),
        ]

    def status_headers(self, queue: str) -> list[tuple[str, str]]:
        """Header order of QueueStatus's QueueMember item (Name/Location, no Ringinuse)."""
        return [
            ("Queue", queue),
            ("Name", self.name),
            ("Location", self.interface),
            ("StateInterface", self.state_interface),
            ("Membership", self.membership),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
            ("LastPause", str(self.last_pause)),
            ("LoginTime", str(self.login_time)),
            ("InCall", str(self.in_call)),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", self.paused_reason),
            ("Wrapuptime", str(self.wrapuptime)),
        ]


@dataclass(slots=True)
class SimQueueEntry:
    """A caller waiting in a queue (QueueEntry exists only while a caller waits, fact 18)."""

    channel: SimChannel
    joined_at: float
    priority: int = 0


@dataclass(slots=True)
class SimQueue:
    name: str
    strategy: str = "ringall"
    max: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    service_level: int = 0
    weight: int = 0
    members: dict[str, SimQueueMember] = field(default_factory=dict)
    entries: list[SimQueueEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """What an Originate asked for, handed to `AmiServer.originate_hook`."""

    action_id: str | None
    channel: str
    context: str
    exten: str
    priority: str
    application: str
    data: str
    caller_id: str
    variables: tuple[str, ...]
    is_async: bool
    created: tuple[SimChannel, ...]  # the channels the peer created for it (Local: ;1 and ;2)


@dataclass(frozen=True, slots=True)
class OriginateOutcome:
    """What the hook decided: answered (Reason 4) or failed with an AMI reason code."""

    answered: bool = True
    reason: int = 4


OriginateHook: TypeAlias = Callable[[OriginateRequest], Awaitable[OriginateOutcome]]
DtmfHook: TypeAlias = Callable[[SimChannel, str, int], Awaitable[None]]


# --- Transcripts -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TranscriptPacket:
    """One entry of an AMI transcript: a banner, a packet, or Asterisk's EOF."""

    t_s: float
    direction: Literal["<<<", ">>>"]
    kind: Literal["banner", "packet", "eof"]
    headers: Headers
    wire: bytes  # the bytes as they were on the wire (CRLF restored)


_MARKER = re.compile(r"^\[t=\s*(?P<t>[0-9.]+)\] (?P<dir><<<|>>>)(?P<rest>.*)$")


def parse_ami_transcript(text: str) -> list[TranscriptPacket]:
    """Parse the recorder's format (README "How to read the transcripts", AMI files)."""
    out: list[TranscriptPacket] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _MARKER.match(lines[i])
        i += 1
        if match is None:
            continue
        t_s = float(match.group("t"))
        direction: Literal["<<<", ">>>"] = "<<<" if match.group("dir") == "<<<" else ">>>"
        rest = match.group("rest").strip()
        if rest.startswith("(banner)"):
            wire = ast.literal_eval(rest.removeprefix("(banner)").strip())
            assert isinstance(wire, bytes)
            out.append(TranscriptPacket(t_s, direction, "banner", (), wire))
            continue
        if rest.startswith("(EOF"):
            out.append(TranscriptPacket(t_s, direction, "eof", (), b""))
            continue
        body: list[str] = []
        while i < len(lines) and lines[i] != "":
            body.append(lines[i])
            i += 1
        headers = tuple((k, v.lstrip(" ")) for k, _, v in (line.partition(":") for line in body))
        wire = ("\r\n".join(body) + "\r\n\r\n").encode("utf-8")
        out.append(TranscriptPacket(t_s, direction, "packet", headers, wire))
    return out


def load_ami_transcript(path: str | Path) -> list[TranscriptPacket]:
    return parse_ami_transcript(Path(path).read_text(encoding="utf-8"))


# --- Sessions --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Session:
    number: int
    writer: asyncio.StreamWriter
    peer: str
    local: str
    codec: AmiServerConnection
    session_id: str
    started_at: float
    authenticated: bool = False
    username: str = ""
    events: bool = True
    event_mask: frozenset[str] | None = None  # None = every class
    closed: bool = False

    def is_open(self) -> bool:
        return not self.closed

    def wants(self, headers: Sequence[tuple[str, str]]) -> bool:
        if not (self.authenticated and self.events and not self.closed):
            return False
        if self.event_mask is None:
            return True
        privilege = next((v for k, v in headers if k.lower() == "privilege"), None)
        if privilege is None:
            return True
        return bool(self.event_mask & {c.strip() for c in privilege.split(",")})


_Handler: TypeAlias = Callable[["AmiServer", _Session, AmiAction], Awaitable[None]]


def _ami_address(host: str, port: int) -> str:
    return f"IPV4/TCP/{host}/{port}"


class AmiServer:
    """The fake manager. ``await start()``, connect to ``.port``, ``await stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        secret: str = "admin-secret",
        auth_failure_delay_s: float = 1.0,
        banner_version: str = "11.0.0",
        clock: Callable[[], float] = time.time,
        contexts: Iterable[str] = DEFAULT_CONTEXTS,
        queues: Iterable[str] = ("support",),
        commands: Mapping[str, Sequence[str]] | None = None,
        originate_hook: OriginateHook | None = None,
        dtmf_hook: DtmfHook | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.username = username
        self._secret = secret
        self.auth_failure_delay_s = auth_failure_delay_s
        self.banner_version = banner_version
        self._clock = clock
        self.contexts = set(contexts)
        self.commands: dict[str, Sequence[str]] = {"core show version": [DEFAULT_VERSION_LINE]}
        self.commands.update(commands or {})
        self.originate_hook = originate_hook
        self.dtmf_hook = dtmf_hook
        # Test controls.
        self.answer_pings = True
        # State.
        self.queues: dict[str, SimQueue] = {name: SimQueue(name=name) for name in queues}
        self.channels: dict[str, SimChannel] = {}
        self.globals: dict[str, str] = {}
        self.actions_received: list[AmiAction] = []
        # A BlindTransfer action's (transferer channel, exten, context), for the owner to play.
        self.transfer_hook: Callable[[str, str, str], None] | None = None
        self.connections_total = 0
        self.processed_calls = 0
        self._started_at = clock()
        self._server: asyncio.Server | None = None
        self._sessions: dict[int, _Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._uniqueid_seq = itertools.count()
        self._local_seq = itertools.count()
        self._session_seq = itertools.count(1)

    # --- lifecycle ---
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        self._started_at = self._clock()

    @property
    def port(self) -> int:
        return self._port

    @property
    def connections(self) -> int:
        """Open client connections."""
        return len(self._sessions)

    @property
    def event_connections(self) -> int:
        return sum(1 for s in self._sessions.values() if s.authenticated and s.events)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions.values()):
            session.closed = True
            session.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def kill_connections(self) -> int:
        """Drop every client connection abruptly (no Goodbye); returns how many."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.closed = True
            session.writer.transport.abort()
        return len(sessions)

    def inject_raw(self, data: bytes) -> None:
        """Write `data` as-is to every logged-in connection (for bad-input tests)."""
        for session in list(self._sessions.values()):
            if session.authenticated:
                self._write(session, data)

    # --- events ---
    def emit(self, event_name: str, **headers: str | int) -> None:
        """Broadcast ``Event: event_name`` + `headers` (keyword order) to event connections."""
        self.emit_packet([("Event", event_name), *((k, str(v)) for k, v in headers.items())])

    def emit_packet(self, headers: Sequence[tuple[str, str]]) -> None:
        """Broadcast one packet given as ordered pairs (use this for keys like ``Cause-txt``)."""
        data = encode_packet(headers)
        for session in list(self._sessions.values()):
            if session.wants(headers):
                self._write(session, data)

    async def replay(self, packets: Iterable[TranscriptPacket], *, time_scale: float = 0.0) -> int:
        """Broadcast the recorded ``<<<`` event packets in order; returns how many were sent.

        `time_scale` 1.0 keeps the recorded gaps, 0.0 sends them back to back (yielding between
        packets so clients read as they go).
        """
        sent = 0
        last_t: float | None = None
        for packet in packets:
            if packet.direction != "<<<" or packet.kind != "packet":
                continue
            if not any(k.lower() == "event" for k, _ in packet.headers):
                continue
            if last_t is not None:
                await asyncio.sleep(max(0.0, packet.t_s - last_t) * time_scale)
            last_t = packet.t_s
            self.emit_packet(packet.headers)
            sent += 1
        return sent

    # --- state helpers for tests and the demo ---
    def new_uniqueid(self) -> str:
        return f"{int(self._clock())}.{next(self._uniqueid_seq)}"

    def add_channel(self, name: str, *, announce: bool = True, **fields: object) -> SimChannel:
        """Create a channel (fields as in `SimChannel`), emit Newchannel unless told not to."""
        uniqueid = self.new_uniqueid()
        channel = SimChannel(name=name, uniqueid=uniqueid, linkedid=uniqueid)
        for key, value in fields.items():
            setattr(channel, key, value)
        channel.created_at = self._clock()
        self.channels[name] = channel
        if announce:
            self.announce_channel(channel)
        return channel

    def announce_channel(self, channel: SimChannel) -> None:
        self.emit_packet([("Event", "Newchannel"), ("Privilege", "call,all"), *channel.headers()])

    def hangup_channel(
        self, name: str, *, cause: int = 16, cause_txt: str = "Normal Clearing"
    ) -> None:
        channel = self.channels.pop(name)
        self.processed_calls += 1
        for queue in self.queues.values():
            queue.entries = [e for e in queue.entries if e.channel is not channel]
        self.emit_packet(
            [
                ("Event", "Hangup"),
                ("Privilege", "call,all"),
                *channel.headers(),
                ("Cause", str(cause)),
                ("Cause-txt", cause_txt),
            ]
        )

    # --- a Dial's events, as Asterisk 22 writes them (tests/simulator/fixtures/real_dial.txt) ---
    def channel_event(self, event_name: str, channel: SimChannel, *extra: tuple[str, str]) -> None:
        """`Newchannel`, `Newstate`, `HangupRequest` (extra `Cause`), `SoftHangupRequest`...:
        the channel's snapshot block, then `extra`."""
        self.emit_packet(
            [("Event", event_name), ("Privilege", "call,all"), *channel.headers(), *extra]
        )

    def hangup_event(
        self, channel: SimChannel, *, cause: int = 16, cause_txt: str = "Normal Clearing"
    ) -> None:
        """`Hangup` for a channel this server does not track (`hangup_channel` for those it does).
        Asterisk's causes seen after Dial: 16 Normal Clearing, 0 Unknown (the leg Dial created
        for an unanswered, busy or congested call), 3 No route to destination."""
        self.channel_event("Hangup", channel, ("Cause", str(cause)), ("Cause-txt", cause_txt))

    def dial_event(
        self,
        event_name: Literal["DialBegin", "DialState", "DialEnd"],
        caller: SimChannel,
        dest: SimChannel,
        *,
        dial_string: str = "",
        status: str = "",
    ) -> None:
        """`DialBegin` (ending in `DialString`), `DialState` and `DialEnd` (ending in
        `DialStatus`): the caller's snapshot, then the dialled channel's with the `Dest` prefix."""
        headers = [
            ("Event", event_name),
            ("Privilege", "call,all"),
            *caller.headers(),
            *dest.headers("Dest"),
        ]
        if event_name == "DialBegin":
            headers.append(("DialString", dial_string))
        else:
            headers.append(("DialStatus", status))
        self.emit_packet(headers)

    def bridge_event(
        self,
        event_name: Literal["BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy"],
        bridge: SimBridge,
        channel: SimChannel | None = None,
    ) -> None:
        """A bridge event: the bridge block (`BridgeNumChannels` as it is after the change), then
        the channel's snapshot for BridgeEnter and BridgeLeave."""
        headers = [("Event", event_name), ("Privilege", "call,all"), *bridge.headers()]
        if channel is not None:
            headers += channel.headers()
        self.emit_packet(headers)

    def blind_transfer(
        self,
        *,
        transferer: SimChannel,
        transferee: SimChannel | None,
        bridge: SimBridge | None,
        context: str,
        extension: str,
        result: str = "Success",
        is_external: bool = True,
    ) -> None:
        """Emit `BlindTransfer` as Asterisk 22 writes it (stasis_bridges.c, the documented
        order): Result, the Transferer and Transferee snapshots, the bridge, IsExternal, Context,
        Extension. The transferee is absent when the bridge held more than two channels;
        `is_external` is Yes for a phone's SIP REFER, No for a DTMF feature transfer."""
        headers: list[tuple[str, str]] = [
            ("Event", "BlindTransfer"),
            ("Privilege", "call,all"),
            ("Result", result),
            *transferer.headers("Transferer"),
        ]
        if transferee is not None:
            headers += transferee.headers("Transferee")
        if bridge is not None:
            headers += bridge.headers()
        headers += [
            ("IsExternal", "Yes" if is_external else "No"),
            ("Context", context),
            ("Extension", extension),
        ]
        self.emit_packet(headers)

    def attended_transfer(
        self,
        *,
        orig_transferer: SimChannel,
        second_transferer: SimChannel,
        orig_bridge: SimBridge | None = None,
        second_bridge: SimBridge | None = None,
        transferee: SimChannel | None = None,
        target: SimChannel | None = None,
        dest_type: Literal["Bridge", "App", "Link", "Threeway", "Fail"] = "Bridge",
        dest_bridge: str = "",
        dest_app: str = "",
        locals_: tuple[SimChannel, SimChannel] | None = None,
        dest_transferer_channel: str = "",
        result: str = "Success",
        is_external: bool = False,
    ) -> None:
        """Emit `AttendedTransfer` in the order Asterisk 22 writes it (attended_transfer_to_ami):
        Result, OrigTransferer, OrigBridge, SecondTransferer, SecondBridge, Transferee,
        TransferTarget, IsExternal, then DestType and its own headers (Bridge: DestBridgeUniqueid;
        App: DestApp; Link: the LocalOne/LocalTwo snapshots; Threeway: DestBridgeUniqueid and
        DestTransfererChannel). The documentation lists DestType before Transferee; the wire
        has it last."""
        headers: list[tuple[str, str]] = [
            ("Event", "AttendedTransfer"),
            ("Privilege", "call,all"),
            ("Result", result),
            *orig_transferer.headers("OrigTransferer"),
        ]
        if orig_bridge is not None:
            headers += orig_bridge.headers("Orig")
        headers += second_transferer.headers("SecondTransferer")
        if second_bridge is not None:
            headers += second_bridge.headers("Second")
        if transferee is not None:
            headers += transferee.headers("Transferee")
        if target is not None:
            headers += target.headers("TransferTarget")
        headers += [("IsExternal", "Yes" if is_external else "No"), ("DestType", dest_type)]
        if dest_type == "Bridge":
            headers.append(("DestBridgeUniqueid", dest_bridge))
        elif dest_type == "App":
            headers.append(("DestApp", dest_app))
        elif dest_type == "Link":
            if locals_ is None:
                raise ValueError("a Link transfer names its two Local channels")
            headers += locals_[0].headers("LocalOne") + locals_[1].headers("LocalTwo")
        elif dest_type == "Threeway":
            headers += [
                ("DestBridgeUniqueid", dest_bridge),
                ("DestTransfererChannel", dest_transferer_channel),
            ]
        self.emit_packet(headers)

    def queue_caller_join(self, queue_name: str, channel_name: str, *, priority: int = 0) -> int:
        """Put a channel in a queue's waiting list, emit QueueCallerJoin; returns its position."""
        queue = self.queues[queue_name]
        channel = self.channels[channel_name]
        queue.entries.append(
            SimQueueEntry(channel=channel, joined_at=self._clock(), priority=priority)
        )
        position = len(queue.entries)
        self.emit_packet(
            [
                ("Event", "QueueCallerJoin"),
                ("Privilege", "agent,all"),
                *channel.headers(),
                ("Queue", queue_name),
                ("Position", str(position)),
                ("Count", str(position)),
            ]
        )
        return position

    def queue_caller_leave(self, queue_name: str, channel_name: str) -> None:
        """Take a channel off the waiting list (handed to a member or gone), QueueCallerLeave."""
        queue = self.queues[queue_name]
        position = next(
            i for i, e in enumerate(queue.entries, start=1) if e.channel.name == channel_name
        )
        entry = queue.entries.pop(position - 1)
        self.emit_packet(
            [
                ("Event", "QueueCallerLeave"),
                ("Privilege", "agent,all"),
                *entry.channel.headers(),
                ("Queue", queue_name),
                ("Position", str(position)),
                ("Count", str(len(queue.entries))),
            ]
        )

    def set_member_status(
        self, queue_name: str, interface: str, *, status: int, in_call: int | None = None
    ) -> None:
        """Change a member's device state (1 NOT_INUSE, 2 INUSE...) and emit QueueMemberStatus."""
        queue = self.queues[queue_name]
        member = queue.members[interface]
        member.status = status
        if in_call is not None:
            member.in_call = in_call
        self._member_event("QueueMemberStatus", queue, member)

    # --- connection handling ---
    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio owns this callback task and trips over it if it ends cancelled (3.11 logs
        # "Exception in callback"), so the session runs in a task we own and can cancel.
        session_task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(session_task)
        session_task.add_done_callback(self._tasks.discard)
        await asyncio.wait({session_task})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        local = writer.get_extra_info("sockname") or ("?", 0)
        number = next(self._session_seq)
        session = _Session(
            number=number,
            writer=writer,
            peer=_ami_address(peer[0], peer[1]),
            local=_ami_address(local[0], local[1]),
            codec=AmiServerConnection(),
            session_id=f"0x{0x55EF1B04A000 + number * 0x10:x}",
            started_at=self._clock(),
        )
        self._sessions[number] = session
        self.connections_total += 1
        try:
            writer.write(AmiServerConnection.banner(self.banner_version))
            while session.is_open():
                data = await reader.read(_READ_CHUNK)
                for item in session.codec.receive_data(data):
                    if isinstance(item, ConnectionClosed):
                        session.closed = True
                        break
                    self.actions_received.append(item)
                    await self._dispatch(session, item)
                    if not session.is_open():
                        break
        except RemoteProtocolError as exc:
            log.warning("AMI peer: garbage from client %s: %s; closing", session.peer, exc)
        except (ConnectionError, OSError) as exc:
            log.debug("AMI peer: connection %s lost: %s", session.peer, exc)
        finally:
            session.closed = True
            self._sessions.pop(number, None)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _write(self, session: _Session, data: bytes) -> None:
        if session.closed or session.writer.is_closing():
            return
        if session.writer.transport.get_write_buffer_size() > MAX_PENDING_WRITE_BYTES:
            log.warning("AMI peer: client %s is not reading; dropping it", session.peer)
            session.closed = True
            session.writer.transport.abort()
            return
        session.writer.write(data)

    def _respond(
        self,
        session: _Session,
        action: AmiAction,
        response: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._write(session, AmiServerConnection.send_response(response, action.action_id, headers))

    def _ok(self, session: _Session, action: AmiAction, message: str) -> None:
        self._respond(session, action, "Success", [("Message", message)])

    def _error(self, session: _Session, action: AmiAction, message: str) -> None:
        self._respond(session, action, "Error", [("Message", message)])

    def _event_tv(self, at: float | None = None) -> str:
        moment = datetime.fromtimestamp(self._clock() if at is None else at, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"

    def _security_event(self, session: _Session, name: str, severity: str) -> list[tuple[str, str]]:
        return [
            ("Event", name),
            ("Privilege", "security,all"),
            ("EventTV", self._event_tv()),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", "1"),
        ]

    async def _dispatch(self, session: _Session, action: AmiAction) -> None:
        name = action.name.lower()
        if not action.name:
            self._error(session, action, "Missing action in request")
            return
        if not session.authenticated and name not in ("login", "logoff", "challenge"):
            self._error(session, action, "Permission denied")
            return
        handler = self._handlers.get(name)
        if handler is None:
            self._error(
                session,
                action,
                f"Invalid/unknown command: {action.name}. "
                "Use Action: ListCommands to show available commands.",
            )
            self.emit_packet(
                [
                    *self._security_event(session, "RequestBadFormat", "Error"),
                    ("SessionID", session.session_id),
                    ("LocalAddress", session.local),
                    ("RemoteAddress", session.peer),
                    ("RequestType", f"Action: {action.name}"),
                    ("SessionTV", self._event_tv(session.started_at)),
                    ("AccountID", session.username),
                ]
            )
            return
        await handler(self, session, action)

    # --- actions ---
    async def _login(self, session: _Session, action: AmiAction) -> None:
        username = action.get("Username", "") or ""
        if username != self.username or action.get("Secret") != self._secret:
            # Asterisk answers a failed login about a second later, then hangs up (fact 13).
            await asyncio.sleep(self.auth_failure_delay_s)
            self._error(session, action, "Authentication failed")
            session.closed = True
            return
        events = (action.get("Events") or "on").strip().lower()
        session.authenticated = True
        session.username = username
        session.events = events not in ("off", "no", "false", "0")
        if session.events and events not in ("on", "yes", "true", "1", "all"):
            session.event_mask = frozenset(c.strip() for c in events.split(",") if c.strip())
        self._ok(session, action, "Authentication accepted")
        uptime = str(int(self._clock() - self._started_at))
        booted = [
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Uptime", uptime),
            ("LastReload", uptime),
            ("Status", "Fully Booted"),
        ]
        if session.wants(booted):
            self._write(session, encode_packet(booted))
        self.emit_packet(
            [
                *self._security_event(session, "SuccessfulAuth", "Informational"),
                ("AccountID", username),
                ("SessionID", session.session_id),
                ("LocalAddress", session.local),
                ("RemoteAddress", session.peer),
                ("UsingPassword", "0"),
                ("SessionTV", self._event_tv(session.started_at)),
            ]
        )

    async def _logoff(self, session: _Session, action: AmiAction) -> None:
        self._respond(session, action, "Goodbye", [("Message", "Thanks for all the fish.")])
        session.closed = True

    async def _challenge(self, session: _Session, action: AmiAction) -> None:
        self._error(session, action, "Must specify AuthType")

    async def _ping(self, session: _Session, action: AmiAction) -> None:
        if not self.answer_pings:
            return
        self._respond(
            session, action, "Success", [("Ping", "Pong"), ("Timestamp", f"{self._clock():.6f}")]
        )

    async def _getvar(self, session: _Session, action: AmiAction) -> None:
        variable = action.get("Variable")
        if not variable:
            self._error(session, action, "No variable specified")
            return
        channel_name = action.get("Channel")
        if channel_name:
            channel = self.channels.get(channel_name)
            if channel is None:
                self._error(session, action, "No such channel")
                return
            value = channel.variables.get(variable, "")
        else:
            value = self.globals.get(variable, "")
        self._respond(session, action, "Success", [("Variable", variable), ("Value", value)])

    async def _setvar(self, session: _Session, action: AmiAction) -> None:
        variable = action.get("Variable")
        if not variable:
            self._error(session, action, "No variable specified")
            return
        value = action.get("Value", "") or ""
        channel_name = action.get("Channel")
        if channel_name:
            channel = self.channels.get(channel_name)
            if channel is None:
                self._error(session, action, "No such channel")
                return
            channel.variables[variable] = value
            where = channel.headers()
        else:
            self.globals[variable] = value
            where = [("Channel", "none"), ("Uniqueid", "none")]
        self._ok(session, action, "Variable Set")
        self.emit_packet(
            [
                ("Event", "VarSet"),
                ("Privilege", "dialplan,all"),
                *where,
                ("Variable", variable),
                ("Value", value),
            ]
        )

    async def _command(self, session: _Session, action: AmiAction) -> None:
        command = " ".join((action.get("Command") or "").split())
        if command == "core show uptime":
            seconds = int(self._clock() - self._started_at)
            lines: Sequence[str] = [
                f"System uptime: {seconds} seconds",
                f"Last reload: {seconds} seconds",
            ]
        elif command in self.commands:
            lines = self.commands[command]
        else:
            self._respond(
                session,
                action,
                "Error",
                [
                    ("Message", "Command output follows"),
                    (
                        "Output",
                        f"No such command '{command}' "
                        f"(type 'core show help {command}' for other possible commands)",
                    ),
                ],
            )
            return
        self._respond(
            session,
            action,
            "Success",
            [("Message", "Command output follows"), *(("Output", line) for line in lines)],
        )

    async def _corestatus(self, session: _Session, action: AmiAction) -> None:
        start = datetime.fromtimestamp(self._started_at, UTC)
        self._respond(
            session,
            action,
            "Success",
            [
                ("CoreStartupDate", start.strftime("%Y-%m-%d")),
                ("CoreStartupTime", start.strftime("%H:%M:%S")),
                ("CoreReloadDate", start.strftime("%Y-%m-%d")),
                ("CoreReloadTime", start.strftime("%H:%M:%S")),
                ("CoreCurrentCalls", str(len({c.linkedid for c in self.channels.values()}))),
                ("CoreProcessedCalls", str(self.processed_calls)),
            ],
        )

    def _member_event(self, name: str, queue: SimQueue, member: SimQueueMember) -> None:
        self.emit_packet(
            [("Event", name), ("Privilege", "agent,all"), *member.event_headers(queue.name)]
        )

    async def _queueadd(self, session: _Session, action: AmiAction) -> None:
        queue_name, interface = action.get("Queue"), action.get("Interface")
        if not queue_name:
            self._error(session, action, "'Queue' not specified.")
            return
        if not interface:
            self._error(session, action, "'Interface' not specified.")
            return
        queue = self.queues.get(queue_name)
        if queue is None:
            self._error(session, action, "Unable to add interface to queue: No such queue")
            return
        if interface in queue.members:
            self._error(session, action, "Unable to add interface: Already there")
            return
        member = SimQueueMember(
            interface=interface,
            name=action.get("MemberName") or interface,
            state_interface=action.get("StateInterface") or interface,
            penalty=int(action.get("Penalty") or 0),
            login_time=int(self._clock()),
            paused=_true(action.get("Paused")),
            paused_reason=action.get("Reason", "") or "",
        )
        queue.members[interface] = member
        self._ok(session, action, "Added interface to queue")
        self._member_event("QueueMemberAdded", queue, member)

    async def _queueremove(self, session: _Session, action: AmiAction) -> None:
        queue_name, interface = action.get("Queue"), action.get("Interface")
        if not queue_name or not interface:
            self._error(session, action, "Need 'Queue' and 'Interface' parameters.")
            return
        queue = self.queues.get(queue_name)
        if queue is None:
            self._error(session, action, "Unable to remove interface from queue: No such queue")
            return
        member = queue.members.pop(interface, None)
        if member is None:
            self._error(session, action, "Unable to remove interface: Not there")
            return
        self._ok(session, action, "Removed interface from queue")
        self._member_event("QueueMemberRemoved", queue, member)

    async def _queuepause(self, session: _Session, action: AmiAction) -> None:
        interface, paused_text = action.get("Interface"), action.get("Paused")
        if not interface or paused_text is None:
            self._error(session, action, "Need 'Interface' and 'Paused' parameters.")
            return
        paused = _true(paused_text)
        queue_name = action.get("Queue")
        targets = [
            q
            for q in self.queues.values()
            if (not queue_name or q.name == queue_name) and interface in q.members
        ]
        if not targets:
            self._error(session, action, "Interface not found")
            return
        self._ok(
            session,
            action,
            "Interface paused successfully" if paused else "Interface unpaused successfully",
        )
        for queue in targets:
            member = queue.members[interface]
            member.paused = paused
            member.paused_reason = (action.get("Reason") or "") if paused else ""
            if paused:
                member.last_pause = int(self._clock())
            self._member_event("QueueMemberPause", queue, member)

    async def _queuereset(self, session: _Session, action: AmiAction) -> None:
        queue_name = action.get("Queue")
        for queue in self.queues.values():
            if not queue_name or queue.name == queue_name:
                queue.holdtime = queue.talktime = queue.completed = queue.abandoned = 0
        self._ok(session, action, "Queue stats reset successfully")

    def _send_list(
        self,
        session: _Session,
        action: AmiAction,
        *,
        message: str,
        items: list[list[tuple[str, str]]],
        complete: str,
    ) -> None:
        """Fact 17: start response, one event per item, then the Complete event with ListItems."""
        action_id = action.action_id
        self._respond(session, action, "Success", [("EventList", "start"), ("Message", message)])
        for item in items:
            self._write(session, encode_packet(item))
        tail = [("Event", complete)]
        if action_id is not None:
            tail.append(("ActionID", action_id))
        tail += [("EventList", "Complete"), ("ListItems", str(len(items)))]
        self._write(session, encode_packet(tail))

    @staticmethod
    def _with_id(action: AmiAction, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        action_id = action.action_id
        return headers if action_id is None else [*headers, ("ActionID", action_id)]

    async def _queuestatus(self, session: _Session, action: AmiAction) -> None:
        wanted = action.get("Queue")
        now = self._clock()
        items: list[list[tuple[str, str]]] = []
        for queue in self.queues.values():
            if wanted and queue.name != wanted:
                continue
            params = [
                ("Event", "QueueParams"),
                ("Queue", queue.name),
                ("Max", str(queue.max)),
                ("Strategy", queue.strategy),
                ("Calls", str(len(queue.entries))),
                ("Holdtime", str(queue.holdtime)),
                ("TalkTime", str(queue.talktime)),
                ("Completed", str(queue.completed)),
                ("Abandoned", str(queue.abandoned)),
                ("ServiceLevel", str(queue.service_level)),
                ("ServicelevelPerf", "0.0"),
                ("ServicelevelPerf2", "0.0"),
                ("Weight", str(queue.weight)),
            ]
            items.append(self._with_id(action, params))
            for member in queue.members.values():
                items.append(
                    self._with_id(
                        action, [("Event", "QueueMember"), *member.status_headers(queue.name)]
                    )
                )
            for position, entry in enumerate(queue.entries, start=1):
                ch = entry.channel
                items.append(
                    self._with_id(
                        action,
                        [
                            ("Event", "QueueEntry"),
                            ("Queue", queue.name),
                            ("Position", str(position)),
                            ("Channel", ch.name),
                            ("Uniqueid", ch.uniqueid),
                            ("CallerIDNum", ch.caller_id_num),
                            ("CallerIDName", ch.caller_id_name),
                            ("ConnectedLineNum", ch.connected_line_num),
                            ("ConnectedLineName", ch.connected_line_name),
                            ("Wait", str(int(now - entry.joined_at))),
                            ("Priority", str(entry.priority)),
                        ],
                    )
                )
        self._send_list(
            session,
            action,
            message="Queue status will follow",
            items=items,
            complete="QueueStatusComplete",
        )

    async def _queuesummary(self, session: _Session, action: AmiAction) -> None:
        wanted = action.get("Queue")
        now = self._clock()
        items: list[list[tuple[str, str]]] = []
        for queue in self.queues.values():
            if wanted and queue.name != wanted:
                continue
            members = queue.members.values()
            available = sum(1 for m in members if m.status == 1 and not m.paused)
            longest = max((int(now - e.joined_at) for e in queue.entries), default=0)
            items.append(
                self._with_id(
                    action,
                    [
                        ("Event", "QueueSummary"),
                        ("Queue", queue.name),
                        ("LoggedIn", str(len(queue.members))),
                        ("Available", str(available)),
                        ("Callers", str(len(queue.entries))),
                        ("HoldTime", str(queue.holdtime)),
                        ("TalkTime", str(queue.talktime)),
                        ("LongestHoldTime", str(longest)),
                    ],
                )
            )
        self._send_list(
            session,
            action,
            message="Queue summary will follow",
            items=items,
            complete="QueueSummaryComplete",
        )

    async def _coreshowchannels(self, session: _Session, action: AmiAction) -> None:
        now = self._clock()
        items: list[list[tuple[str, str]]] = []
        for ch in self.channels.values():
            seconds = max(0, int(now - ch.created_at))
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            head: list[tuple[str, str]] = [("Event", "CoreShowChannel")]
            if action.action_id is not None:
                head.append(("ActionID", action.action_id))  # second header here (fact 17)
            items.append(
                [
                    *head,
                    *ch.headers(),
                    ("Application", ch.application),
                    ("ApplicationData", ch.application_data),
                    ("Duration", duration),
                    ("BridgeId", ch.bridge_id),
                ]
            )
        self._send_list(
            session,
            action,
            message="Channels will follow",
            items=items,
            complete="CoreShowChannelsComplete",
        )

    async def _originate(self, session: _Session, action: AmiAction) -> None:
        dial = action.get("Channel")
        if not dial:
            self._error(session, action, "Channel not specified")
            return
        is_async = _true(action.get("Async"))
        caller_num, caller_name = _parse_callerid(action.get("CallerID") or "")
        tech, _, resource = dial.partition("/")
        created: list[SimChannel] = []
        if tech.lower() == "local":
            exten, _, rest = resource.partition("@")
            local_context = rest.split("/", 1)[0] or "default"
            base = f"{tech}/{exten}@{local_context}"  # a `/n` option is not part of the name
            suffix = f"{next(self._local_seq):08x}"
            one = self.add_channel(
                f"{base}-{suffix};1",
                announce=False,
                state=0,
                context=local_context,
                exten=exten or "s",
            )
            two = self.add_channel(
                f"{base}-{suffix};2",
                announce=False,
                state=4,
                context=local_context,
                exten=exten or "s",
                linkedid=one.linkedid,
            )
            created = [one, two]
            known = local_context in self.contexts
        else:
            name = f"{dial}-{next(self._local_seq):08x}"
            created = [self.add_channel(name, announce=False, state=0)]
            known = True
        request = OriginateRequest(
            action_id=action.action_id,
            channel=dial,
            context=action.get("Context") or "",
            exten=action.get("Exten") or "",
            priority=action.get("Priority") or "1",
            application=action.get("Application") or "",
            data=action.get("Data") or "",
            caller_id=action.get("CallerID") or "",
            variables=tuple(action.get_all("Variable")),
            is_async=is_async,
            created=tuple(created),
        )
        if is_async:
            # Fact 19: the queued response comes first, then the new channels appear.
            self._ok(session, action, "Originate successfully queued")
            for channel in created:
                self.announce_channel(channel)
            self._spawn(
                self._run_originate(
                    session=session,
                    action=action,
                    request=request,
                    known=known,
                    num=caller_num,
                    name=caller_name,
                )
            )
        else:
            for channel in created:
                self.announce_channel(channel)
            outcome = await self._decide_originate(request, known, caller_num, caller_name)
            self._finish_originate(request, outcome)
            if outcome.answered:
                self._ok(session, action, "Originate successfully queued")
            else:
                self._error(session, action, "Originate failed")

    async def _decide_originate(
        self, request: OriginateRequest, known: bool, num: str, name: str
    ) -> OriginateOutcome:
        """Answer the call and place ``;1`` in the requested dialplan spot, then ask the hook.

        The hook runs last so it can move the channel on (e.g. to the step holding AGI()).
        """
        if not known:
            return OriginateOutcome(answered=False, reason=0)
        first = request.created[0]
        for ch in request.created:
            ch.state = 6
            ch.caller_id_num = ch.connected_line_num = num
            ch.caller_id_name = ch.connected_line_name = name
        if request.context:
            first.context, first.exten = request.context, request.exten or "s"
            first.priority = int(request.priority) if request.priority.isdigit() else 1
        if self.originate_hook is None:
            return OriginateOutcome()
        return await self.originate_hook(request)

    def _finish_originate(
        self, request: OriginateRequest, outcome: OriginateOutcome
    ) -> SimChannel | None:
        if outcome.answered:
            return request.created[0]
        for ch in reversed(request.created):
            if ch.name in self.channels:
                self.hangup_channel(ch.name, cause=0, cause_txt="Unknown")
        return None

    async def _run_originate(
        self,
        *,
        session: _Session,
        action: AmiAction,
        request: OriginateRequest,
        known: bool,
        num: str,
        name: str,
    ) -> None:
        outcome = await self._decide_originate(request, known, num, name)
        channel = self._finish_originate(request, outcome)
        first = request.created[0]
        headers: list[tuple[str, str]] = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
        if request.action_id is not None:
            headers.append(("ActionID", request.action_id))
        headers += [
            ("Response", "Success" if outcome.answered else "Failure"),
            ("Channel", first.name if channel is not None else request.channel),
            ("Context", request.context),
            ("Exten", request.exten),
            ("Reason", str(outcome.reason)),
            ("Uniqueid", first.uniqueid if channel is not None else "<null>"),
            ("CallerIDNum", num),
            ("CallerIDName", name),
        ]
        self.emit_packet(headers)

    async def _playdtmf(self, session: _Session, action: AmiAction) -> None:
        channel_name, digit = action.get("Channel"), action.get("Digit")
        if not channel_name:
            self._error(session, action, "Channel not specified")
            return
        if not digit:
            self._error(session, action, "No digit specified")
            return
        channel = self.channels.get(channel_name)
        if channel is None:
            self._error(session, action, "Channel not found")
            return
        duration_ms = int(action.get("Duration") or 250)
        # The key arrives on the other half of a Local pair (README: PlayDTMF on ;2 → ;1).
        target = channel
        if channel_name.endswith(";2"):
            target = self.channels.get(channel_name[:-1] + "1", channel)
        # Asterisk holds the response for the tone's duration (~120 ms for Duration: 120).
        await asyncio.sleep(duration_ms / 1000)
        self._ok(session, action, "DTMF successfully queued")
        base = [("Privilege", "dtmf,all"), *target.headers(), ("Digit", digit[0])]
        self.emit_packet([("Event", "DTMFBegin"), *base, ("Direction", "Received")])
        self.emit_packet(
            [
                ("Event", "DTMFEnd"),
                *base,
                ("DurationMs", str(duration_ms)),
                ("Direction", "Received"),
            ]
        )
        if self.dtmf_hook is not None:
            await self.dtmf_hook(target, digit[0], duration_ms)

    async def _hangup(self, session: _Session, action: AmiAction) -> None:
        channel_name = action.get("Channel")
        if not channel_name or channel_name not in self.channels:
            self._error(session, action, "No such channel")
            return
        self._ok(session, action, "Channel Hungup")
        self.hangup_channel(channel_name)

    async def _blindtransfer(self, session: _Session, action: AmiAction) -> None:
        """As Asterisk's manager action: the transferer's bridged peer goes to Exten@Context;
        the `BlindTransfer` event follows (is_external No: not a phone's REFER)."""
        channel_name, exten = action.get("Channel"), action.get("Exten")
        context = action.get("Context") or "default"
        channel = self.channels.get(channel_name or "")
        if channel is None or not exten:
            self._error(session, action, "No such channel" if channel is None else "No exten")
            return
        if not channel.bridge_id:
            self._error(session, action, "Transferer is not bridged")
            return
        peer = next(
            (
                c
                for c in self.channels.values()
                if c.bridge_id == channel.bridge_id and c.name != channel.name
            ),
            None,
        )
        self._ok(session, action, "Transfer succeeded")
        bridge = SimBridge(uniqueid=channel.bridge_id, num_channels=2)
        self.blind_transfer(
            transferer=channel,
            transferee=peer,
            bridge=bridge,
            context=context,
            extension=exten,
            is_external=False,
        )
        if self.transfer_hook is not None:
            self.transfer_hook(channel.name, exten, context)

    _handlers: ClassVar[dict[str, _Handler]] = {
        "login": _login,
        "logoff": _logoff,
        "challenge": _challenge,
        "ping": _ping,
        "getvar": _getvar,
        "setvar": _setvar,
        "command": _command,
        "corestatus": _corestatus,
        "queueadd": _queueadd,
        "queueremove": _queueremove,
        "queuepause": _queuepause,
        "queuereset": _queuereset,
        "queuestatus": _queuestatus,
        "queuesummary": _queuesummary,
        "coreshowchannels": _coreshowchannels,
        "originate": _originate,
        "playdtmf": _playdtmf,
        "hangup": _hangup,
        "blindtransfer": _blindtransfer,
    }
