"""FastAGI server: a thin asyncio shell around the sans-I/O codec in `agi.py`.

One `AgiSession` per TCP connection: it is the asyncio `Protocol` (bytes in → codec → events)
and, once the environment has arrived, the `ivr.ports.Channel` the call's handler drives. A
Protocol rather than a StreamReader/StreamWriter pair keeps a held call to one slotted object,
the codec, the parsed environment and the handler's task (about 6 KiB against panoramisk's 11;
see bench/fastagi.py). The server accepts every pending connection per readiness event (uvloop's
own server accepts one per loop turn, which queues new calls for hundreds of ms under load),
and one sweep per `timeout_resolution_s` enforces the environment, idle and reply deadlines.

Limits: at most `max_connections` connections at once (beyond it a new one is closed at once,
so Asterisk's AGI() fails and the dialplan's fallback answers), and the whole environment within
`environment_timeout_s` of the connect. A connect-and-close without a byte is a health check,
logged at debug level. A `HANGUP` line while a command is outstanding ends the call at once.

Failure paths hand the call back to the dialplan by setting `CENTRALINO_STATUS` (NOROUTE, ERROR,
SHUTDOWN) before closing the socket; the dialplan's fallback branch reads it (and `AGISTATUS`).

Shutdown cannot interrupt a command Asterisk is running (AGI is one command at a time), so it
hands calls back at the next command boundary: each running call's next command raises
`CallHandedBack` (a WAIT FOR DIGIT in the hold loop returns within its poll), the flow records
how its call ended, and the session sets SHUTDOWN as its last word. A conversation (EXEC Dial)
runs on until the grace period ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast

from centralino.asterisk.agi import (
    MAX_LINE_BYTES,
    NEED_DATA,
    AgiEnvironment,
    AgiHangup,
    AgiResponse,
    AgiServerConnection,
    ConnectionClosed,
    Quoted,
    RemoteProtocolError,
)
from centralino.logs import bind_call
from ivr.errors import CallHandedBack, ChannelCommandError, ChannelHungUp
from ivr.ports import DigitInput

__all__ = [
    "ENVIRONMENT_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "STATUS_VARIABLE",
    "AgiCall",
    "AgiDeadChannel",
    "AgiHandler",
    "AgiRouter",
    "AgiSession",
    "FastAgiServer",
]

log = logging.getLogger(__name__)

# Channel variable the dialplan reads after AGI() returns to pick its fallback.
STATUS_VARIABLE: Final = "CENTRALINO_STATUS"
STATUS_VARIABLE_COMMAND: Final = "SET VARIABLE"

# Connections held at once. A large Asterisk box carries one to two thousand channels at once,
# and every channel inside AGI() holds one connection; twice that is still a few tens of MiB
# here (about 6 KiB a held call, bench/fastagi.py) and well under a raised descriptor limit.
# More than that is not a busy box but a fault (a dialplan loop, a flood, a leak): refusing
# new connections keeps the calls already running alive instead of running out of descriptors.
MAX_CONNECTIONS: Final = 4096
# Asterisk writes the whole environment (about 600 bytes) right after connecting: every line of
# every recorded call arrived in the same millisecond as the connect. 5 s leaves room for a
# loaded box and a couple of TCP retransmissions (the first comes after 1 s) while a peer that
# connects and dawdles (a scanner, a half-open socket) does not hold a slot for the 30 s
# `idle_timeout_s` meant for replies.
ENVIRONMENT_TIMEOUT_S: Final = 5.0
# How long stop() waits for cancelled calls to unwind before returning.
_CANCEL_WAIT_S: Final = 2.0
# Applications whose -1 result is their normal end (the called party hung up), not a failure.
_HANGUP_IS_NORMAL: Final = frozenset({"Dial", "Queue"})
# Connections accepted per readiness event; like asyncio's selector loop, about one backlog.
_ACCEPT_BATCH: Final = 256
# After accept() fails for lack of descriptors or memory, wait before trying again.
_ACCEPT_PAUSE_S: Final = 1.0

_EMPTY_ESCAPE: Final = Quoted("")
# Commands whose duration depends on the caller or on media (prompts, DTMF, applications such as
# Dial or Queue): they get `media_timeout_s` instead of the short `idle_timeout_s`.
_MEDIA_COMMANDS: Final = frozenset(
    {"STREAM FILE", "GET DATA", "WAIT FOR DIGIT", "SAY NUMBER", "SAY DIGITS", "EXEC", "RECORD FILE"}
)


class AgiDeadChannel(ChannelHungUp, ChannelCommandError):
    """Asterisk answered 511 (command not permitted on a dead channel): the caller is gone.

    It is both a `ChannelHungUp` (what a flow usually catches) and a `ChannelCommandError` with
    `code == 511` (what Asterisk said)."""


@dataclass(frozen=True, slots=True)
class AgiCall:
    """What a route handler receives: the environment, the channel to drive, who connected."""

    env: AgiEnvironment
    channel: AgiSession
    peer: str

    @property
    def query(self) -> Mapping[str, str]:
        return self.env.query


AgiHandler = Callable[[AgiCall], Awaitable[None]]


class AgiRouter:
    """Maps the script path of `agi://host:port/<script>?<query>` to a handler."""

    __slots__ = ("_routes",)

    def __init__(self) -> None:
        self._routes: dict[str, AgiHandler] = {}

    def add(self, script: str, handler: AgiHandler) -> None:
        key = script.strip("/")
        if not key or "?" in key:
            raise ValueError(f"route must be a bare script path, got {script!r}")
        if key in self._routes:
            raise ValueError(f"route {key!r} already registered")
        self._routes[key] = handler

    def lookup(self, script: str) -> AgiHandler | None:
        return self._routes.get(script.strip("/"))

    @property
    def scripts(self) -> tuple[str, ...]:
        return tuple(self._routes)


def _format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return str(peername)


class AgiSession(asyncio.Protocol):
    """One FastAGI connection; after the environment, the `ivr.ports.Channel` of its call.

    Once Asterisk reports a hangup (the `HANGUP` line, a 511 reply, EOF) every method raises
    `ChannelHungUp` without sending anything; 510 and 520 replies raise `ChannelCommandError`.
    Results of `-1` are ambiguous (missing sound file or hangup); the session asks
    `CHANNEL STATUS` once, which a dead channel answers with 511.
    """

    __slots__ = (
        "_closed",
        "_codec",
        "_command",
        "_deadline",
        "_env",
        "_handing_back",
        "_hung_up",
        "_loop",
        "_peer",
        "_server",
        "_status_said",
        "_task",
        "_timeout_s",
        "_transport",
        "_waiter",
    )

    def __init__(self, server: FastAgiServer) -> None:
        self._server = server
        # The server's loop: asyncio.get_running_loop() costs a getpid() syscall per call.
        loop = server._loop
        assert loop is not None, "sessions exist only while the server runs"
        self._loop = loop
        self._codec = AgiServerConnection(max_line_bytes=server.max_line_bytes)
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._env: AgiEnvironment | None = None
        # When the current wait (environment, then each reply) expires; checked by the server's
        # once-a-second sweep instead of one timer per command (see FastAgiServer._sweep).
        self._deadline = 0.0
        # The outstanding command's future (resolved by `_resolve`), its words and timeout (for
        # the error messages); a done waiter means nothing is outstanding for us any more.
        self._waiter: asyncio.Future[AgiResponse] | None = None
        self._command = ""
        self._timeout_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._hung_up = False
        self._closed = False
        self._handing_back = False
        self._status_said = False  # the handler set CENTRALINO_STATUS itself

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement its interface.
        self._transport = cast(asyncio.Transport, transport)
        self._peer = _format_peer(transport.get_extra_info("peername"))
        self._server._connections.add(self)
        self._deadline = self._loop.time() + self._server.environment_timeout_s

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return  # bytes that were in flight when we closed after an error
        reply = self._codec.receive_reply(data)
        if reply is not None:
            if type(reply) is AgiHangup:
                self._hangup_received()
            else:
                self._resolve(cast(AgiResponse, reply))
            return
        self._codec.receive_data(data)
        self._drain()

    def eof_received(self) -> bool:
        if self._closed:
            return False
        self._codec.receive_data(b"")
        self._drain()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._mark_closed("connection lost")
        # A settled waiter may hold an exception whose traceback refers back to this session.
        self._waiter = None

    def _drain(self) -> None:
        codec = self._codec
        while True:
            try:
                event = codec.next_event()
            except RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            if event is NEED_DATA:
                return
            if isinstance(event, AgiResponse):
                self._resolve(event)
            elif isinstance(event, AgiHangup):
                self._hangup_received()
            elif isinstance(event, AgiEnvironment):
                self._start_call(event)
            elif isinstance(event, ConnectionClosed):
                if self._env is None:
                    # Connected and closed without a byte: a TCP health check, not a fault.
                    log.debug("FastAGI connection from %s closed before any data", self._peer)
                self._close()
                return

    def _hangup_received(self) -> None:
        """The `HANGUP` line. With a command outstanding it crossed that command on the wire:
        the reply may come late or never (AGIEXITONHANGUP=yes), so the flow sees the hangup now
        instead of after the command's timeout; a late reply is consumed by the codec and
        dropped by `_resolve`."""
        self._hung_up = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._deadline = 0.0
            waiter.set_exception(ChannelHungUp(f"caller hung up during {self._command}"))

    def _start_call(self, env: AgiEnvironment) -> None:
        self._deadline = 0.0
        self._env = env
        server = self._server
        if server._stopping:
            # Accepted just before stop(): hand the call straight back to the dialplan.
            self.return_to_dialplan("SHUTDOWN")
            return
        task = self._loop.create_task(self._run(env))
        self._task = task
        server._tasks.add(task)
        task.add_done_callback(server._tasks.discard)

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self._server.protocol_errors_total += 1
        with bind_call(peer=self._peer, uniqueid=self._env.uniqueid if self._env else ""):
            log.warning("FastAGI protocol error from %s, closing: %s", self._peer, exc)
        self._close()

    def _expire(self) -> None:
        """Called by the server's sweep when the current wait passed its deadline."""
        self._deadline = 0.0
        waiter = self._waiter
        if waiter is not None and waiter.done():
            return  # the command's awaiter was cancelled: nobody waits for this reply
        with bind_call(peer=self._peer, uniqueid=self._env.uniqueid if self._env else ""):
            if self._env is None:
                log.warning(
                    "no complete FastAGI environment from %s within %.1fs, closing",
                    self._peer,
                    self._server.environment_timeout_s,
                )
            else:
                log.warning("no reply from Asterisk at %s in time, closing", self._peer)
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                ChannelHungUp(f"no reply to {self._command} within {self._timeout_s}s")
            )
        self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._mark_closed("connection closed")

    def _mark_closed(self, why: str) -> None:
        if self._closed:
            return
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ChannelHungUp(f"FastAGI {why}"))

    # ---- the call ---------------------------------------------------------------------------

    async def _run(self, env: AgiEnvironment) -> None:
        server = self._server
        server.calls_total += 1
        server.calls_active += 1
        try:
            with bind_call(uniqueid=env.uniqueid, peer=self._peer):
                handler = server.router.lookup(env.script)
                if handler is None:
                    log.warning("no FastAGI route for script %r from %s", env.script, self._peer)
                    await self._set_status("NOROUTE")
                    return
                log.info("call started: script=%s channel=%s", env.script, env.channel)
                try:
                    await handler(AgiCall(env=env, channel=self, peer=self._peer))
                except CallHandedBack:
                    log.info("call handed back to the dialplan: shutting down")
                except ChannelHungUp:
                    log.info("call ended: channel hung up")
                except Exception:
                    # Per-call boundary: the flow failed; hand the call back to the dialplan.
                    log.exception("FastAGI handler for %r failed", env.script)
                    await self._set_status("ERROR")
                else:
                    log.info("call ended: handler returned")
                if self._handing_back and not self._status_said:
                    await self._set_status("SHUTDOWN")
        finally:
            server.calls_active -= 1
            self._close()

    async def _set_status(self, value: str) -> None:
        if self._closed or self._hung_up or not self._codec.can_send:
            return
        with contextlib.suppress(ChannelHungUp, ChannelCommandError):
            await self.command(STATUS_VARIABLE_COMMAND, STATUS_VARIABLE, value)

    def hand_back(self) -> None:
        """Shutting down: the call's next command raises `CallHandedBack` (the one running now
        finishes first); a session idle between commands has its handler cancelled by the
        server if it does not end within the grace period."""
        self._handing_back = True

    def return_to_dialplan(self, status: str) -> None:
        """Set the status variable without waiting for the reply (if a command may be sent now)
        and close, so Asterisk leaves AGI() and the dialplan continues to its fallback."""
        if not self._closed and not self._hung_up and self._codec.can_send:
            assert self._transport is not None
            self._transport.write(
                self._codec.send_command(STATUS_VARIABLE_COMMAND, STATUS_VARIABLE, status)
            )
        self._close()

    # ---- low-level command ------------------------------------------------------------------

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def env(self) -> AgiEnvironment:
        if self._env is None:
            raise RuntimeError("the FastAGI environment has not arrived yet")
        return self._env

    @property
    def hung_up(self) -> bool:
        """True once Asterisk reported a hangup or the connection is gone."""
        return self._hung_up or self._closed

    async def command(
        self, command: str, *args: str | Quoted, timeout_s: float | None = None
    ) -> AgiResponse:
        """Send one command and return its 200 reply.

        Raises `ChannelHungUp` after a hangup (nothing is sent), `AgiDeadChannel` on 511,
        `ChannelCommandError` on 510/520, and `LocalProtocolError` on our own misuse (a CR/LF
        in a value, two commands at once)."""
        return await self._send(command, args, timeout_s)

    def _send(
        self, command: str, args: tuple[str | Quoted, ...], timeout_s: float | None = None
    ) -> asyncio.Future[AgiResponse]:
        """`command()` without its coroutine: send now and return the future `_resolve` settles
        (the Channel methods await it directly, one coroutine less per command)."""
        if self._hung_up:
            raise ChannelHungUp(f"channel hung up; {command} not sent")
        if self._closed:
            raise ChannelHungUp(f"FastAGI connection closed; {command} not sent")
        if args and args[0] == STATUS_VARIABLE:
            self._status_said = True
        elif self._handing_back:
            # Only the call's status may still be said: it is what the dialplan reads next.
            raise CallHandedBack(f"shutting down; {command} not sent")
        data = self._codec.send_command(command, *args)
        server = self._server
        if timeout_s is None:
            timeout_s = (
                server.media_timeout_s if command in _MEDIA_COMMANDS else server.idle_timeout_s
            )
        loop = self._loop
        waiter: asyncio.Future[AgiResponse] = loop.create_future()
        self._waiter = waiter
        self._command = command
        self._timeout_s = timeout_s
        self._deadline = loop.time() + timeout_s
        transport = self._transport
        assert transport is not None
        transport.write(data)
        server.commands_total += 1
        return waiter

    def _resolve(self, response: AgiResponse) -> None:
        """Settle the outstanding command: its 200 reply, or the error its code means."""
        waiter = self._waiter
        self._deadline = 0.0
        if waiter is None or waiter.done():
            return  # its awaiter was cancelled: nobody wants this reply
        code = response.code
        if code == 200:
            waiter.set_result(response)
        elif code == 511:
            self._hung_up = True
            waiter.set_exception(AgiDeadChannel(code, response.message))
        else:
            waiter.set_exception(ChannelCommandError(code, response.message))

    async def _failed(self, command: str, *, expected: bool = False) -> None:
        """`result=-1` means a hangup or an error (a missing sound file): ask CHANNEL STATUS,
        which a dead channel answers with 511, and raise ChannelHungUp if the caller is gone.
        `expected`: -1 is also the command's normal answer (see `exec`), so a live channel is
        no failure worth a warning."""
        if self.hung_up:
            raise ChannelHungUp(f"caller hung up during {command}")
        try:
            await self.command("CHANNEL STATUS")
        except ChannelHungUp as exc:
            raise ChannelHungUp(f"caller hung up during {command}") from exc
        if not expected:
            log.warning("%s failed (result=-1) on a live channel", command)

    async def _key(self, result: str, command: str) -> str | None:
        """STREAM FILE / WAIT FOR DIGIT convention: the key's ASCII code, 0 for none."""
        if result == "0":
            return None
        if result == "-1":
            await self._failed(command)
            return None
        try:
            code = int(result)
        except ValueError:
            raise ChannelCommandError(200, f"unexpected result {result!r}") from None
        if not 0 < code <= 0x10FFFF:
            raise ChannelCommandError(200, f"unexpected result {result!r}")
        return chr(code)

    # ---- ivr.ports.Channel ------------------------------------------------------------------

    @property
    def uniqueid(self) -> str:
        return self.env.uniqueid

    async def answer(self) -> None:
        response = await self._send("ANSWER", ())
        if response.result == "-1":
            await self._failed("ANSWER")
            raise ChannelCommandError(200, "ANSWER failed")

    async def hangup(self) -> None:
        await self._send("HANGUP", ())
        # Asterisk confirms with `HANGUP` ~40 ms later; nothing more may be sent from now on.
        self._hung_up = True

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        response = await self._send("STREAM FILE", (name, Quoted(escape_digits)))
        return await self._key(response.result, "STREAM FILE")

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> DigitInput:
        response = await self._send("GET DATA", (prompt, str(int(timeout_ms)), str(max_digits)))
        if response.result == "-1":
            await self._failed("GET DATA")
            return DigitInput(digits="", timed_out=False)
        # GET DATA returns the typed digits as text (`#` ends input and is dropped).
        return DigitInput(digits=response.result, timed_out=response.data == "timeout")

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        response = await self._send("WAIT FOR DIGIT", (str(int(timeout_ms)),))
        return await self._key(response.result, "WAIT FOR DIGIT")

    async def say_number(self, number: int) -> None:
        response = await self._send("SAY NUMBER", (str(int(number)), _EMPTY_ESCAPE))
        if response.result == "-1":
            await self._failed("SAY NUMBER")

    async def say_digits(self, digits: str) -> None:
        response = await self._send("SAY DIGITS", (digits, _EMPTY_ESCAPE))
        if response.result == "-1":
            await self._failed("SAY DIGITS")

    async def exec(self, application: str, *args: str) -> int:
        # res_agi passes only one argument string to the application: join with commas.
        if args:
            response = await self._send("EXEC", (application, ",".join(args)))
        else:
            response = await self._send("EXEC", (application,))
        if response.result == "-1":
            # An application's -1 asks the dialplan to hang up, and is Dial's normal return when
            # the agent hangs up first (DIALSTATUS says ANSWER): only a dead channel matters.
            await self._failed(f"EXEC {application}", expected=application in _HANGUP_IS_NORMAL)
        try:
            return int(response.result)
        except ValueError:
            raise ChannelCommandError(200, f"unexpected result {response.result!r}") from None

    async def get_variable(self, name: str) -> str | None:
        response = await self._send("GET VARIABLE", (name,))
        if response.result == "1":
            return response.data if response.data is not None else ""
        return None

    async def get_full_variable(self, expression: str) -> str | None:
        response = await self._send("GET FULL VARIABLE", (expression,))
        if response.result == "1":
            return response.data if response.data is not None else ""
        return None

    async def set_variable(self, name: str, value: str) -> None:
        await self._send("SET VARIABLE", (name, value))

    async def set_music(self, on: bool, moh_class: str = "default") -> None:
        if on:
            await self._send("SET MUSIC", ("ON", moh_class))
        else:
            await self._send("SET MUSIC", ("OFF",))

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._send("VERBOSE", (Quoted(message), str(int(level))))


class FastAgiServer:
    """Accepts FastAGI connections and runs each call's handler in its own task.

    Counters (`calls_total`, `calls_active`, `protocol_errors_total`, `commands_total`,
    `connections_refused_total`) are plain attributes for the composition root to export.

    `max_connections` caps the connections held at once (see MAX_CONNECTIONS); a connection
    beyond it is closed as soon as it is accepted. `environment_timeout_s` bounds the time from
    connect to the end of the environment (see ENVIRONMENT_TIMEOUT_S); `idle_timeout_s` bounds
    a reply to a short command, `media_timeout_s` one to a prompt or an application.
    """

    def __init__(
        self,
        *,
        router: AgiRouter,
        host: str = "127.0.0.1",
        port: int = 4573,
        idle_timeout_s: float = 30.0,
        media_timeout_s: float = 4 * 3600.0,
        grace_s: float = 10.0,
        max_line_bytes: int = MAX_LINE_BYTES,
        backlog: int = 1024,
        timeout_resolution_s: float = 1.0,
        max_connections: int = MAX_CONNECTIONS,
        environment_timeout_s: float = ENVIRONMENT_TIMEOUT_S,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.router = router
        self.host = host
        self._requested_port = port
        self.idle_timeout_s = idle_timeout_s
        self.media_timeout_s = media_timeout_s
        self.grace_s = grace_s
        self.max_line_bytes = max_line_bytes
        self._backlog = backlog
        # How often the deadline sweep runs: timeouts fire up to this much late.
        self.timeout_resolution_s = timeout_resolution_s
        self.max_connections = max_connections
        self.environment_timeout_s = environment_timeout_s
        self.connections_refused_total = 0
        # Refused since the last accepted connection: one warning per episode at the cap, not
        # one per connection (a flood would otherwise flood the log too).
        self._refused_in_a_row = 0
        self.calls_total = 0
        self.calls_active = 0
        self.protocol_errors_total = 0
        self.commands_total = 0
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._attaching: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[AgiSession] = set()
        self._stopping = False
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("server not started")
        port: int = self._listener.getsockname()[1]
        return port

    async def start(self) -> None:
        if self._listener is not None:
            raise RuntimeError("server already started")
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(self._backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self._accept_ready)
        self._sweeper = loop.create_task(self._sweep())
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    def _accept_ready(self) -> None:
        """Accept every pending connection (up to a batch) on one readiness event.

        uvloop's own `create_server` accepts one connection per loop turn; on a busy loop that
        caps call set-up at a few hundred calls/s and leaves new calls waiting hundreds of ms in
        the kernel's queue (bench/fastagi.py). asyncio's selector loop batches the same way."""
        sock = self._listener
        if sock is None:
            return
        loop = self._loop
        assert loop is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors or buffers: stop accepting for a moment instead of spinning.
                log.warning("FastAGI accept failed, pausing %.1fs: %s", _ACCEPT_PAUSE_S, exc)
                loop.remove_reader(sock.fileno())
                loop.call_later(_ACCEPT_PAUSE_S, self._resume_accepting)
                return
            if len(self._connections) + len(self._attaching) >= self.max_connections:
                self._refuse(conn)
                continue
            if self._refused_in_a_row:
                log.info(
                    "FastAGI below its cap of %d connections again; %d refused meanwhile",
                    self.max_connections,
                    self._refused_in_a_row,
                )
                self._refused_in_a_row = 0
            # No setblocking()/TCP_NODELAY here: the loop's transport sets both, and every
            # syscall counts at a thousand calls a second.
            task = loop.create_task(self._attach(conn))
            self._attaching.add(task)
            task.add_done_callback(self._attaching.discard)

    def _refuse(self, conn: socket.socket) -> None:
        """At the cap: close at once. Asterisk's AGI() sees the connection fail, sets AGISTATUS
        to FAILURE and the dialplan's fallback answers the call."""
        conn.close()
        self.connections_refused_total += 1
        self._refused_in_a_row += 1
        if self._refused_in_a_row == 1:
            log.warning(
                "FastAGI at its cap of %d connections (max_connections): closing new ones "
                "until a call ends; Asterisk falls back to the dialplan",
                self.max_connections,
            )

    def _resume_accepting(self) -> None:
        if self._listener is not None and self._loop is not None and not self._stopping:
            self._loop.add_reader(self._listener.fileno(), self._accept_ready)

    async def _attach(self, conn: socket.socket) -> None:
        try:
            loop = self._loop
            assert loop is not None
            await loop.connect_accepted_socket(lambda: AgiSession(self), sock=conn)
        except OSError as exc:
            conn.close()
            log.warning("FastAGI connection dropped before it started: %s", exc)

    async def _sweep(self) -> None:
        """Every `timeout_resolution_s`, expire connections whose current wait (environment or
        reply) passed its deadline. A sweep over the live connections costs less than an
        `asyncio.timeout` per command (a Timeout object and a timer handle armed and cancelled
        twenty times a call, ~12% of a call's CPU here), and a second of slack is nothing
        against timeouts of 30 s and more."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timeout_resolution_s)
            now = loop.time()
            for session in [s for s in self._connections if 0.0 < s._deadline <= now]:
                session._expire()

    async def stop(self) -> None:
        """Stop accepting; let running calls finish within `grace_s`; then hand the rest back to
        the dialplan (`CENTRALINO_STATUS=SHUTDOWN` where a command may be sent), close and cancel
        them."""
        if self._listener is None or self._stopping:
            return
        self._stopping = True
        listener = self._listener
        if self._loop is not None:
            self._loop.remove_reader(listener.fileno())
        listener.close()
        for attaching in list(self._attaching):
            attaching.cancel()
        for session in list(self._connections):
            if session._env is None:
                session._close()  # no call yet: Asterisk sees EOF and falls back on its own
        for session in list(self._connections):
            if session._task is not None:
                session.hand_back()
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.grace_s)
        else:
            pending = set()
        if pending:
            for session in list(self._connections):
                if session._task in pending:
                    session.return_to_dialplan("SHUTDOWN")
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=_CANCEL_WAIT_S)
            log.warning(
                "FastAGI shutdown: %d call(s) still running after %.1fs returned to the dialplan",
                len(pending),
                self.grace_s,
            )
        for session in list(self._connections):
            session._close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        self._listener = None
        self._stopping = False

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
