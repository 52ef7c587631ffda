"""asyncio shell around the AudioSocket codec: one task per connection, one handler per call.

Asterisk's `AudioSocket(uuid,host:port)` connects here, sends the UUID frame, then 20 ms audio
frames and DTMF. The handler (`on_call(session)`) reads events from `session` and may send audio
back or hang up. Incoming events go through a bounded queue: a handler that reads slowly stops the
reader, the kernel's TCP window fills, and memory stays bounded (backpressure, never buffering).

A peer that breaks the protocol (unknown kind, oversized frame, a length that lies) has its
connection closed and logged with its address; other calls are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from centralino.asterisk.audiosocket import (
    AudioFrame,
    AudioSocketDecoder,
    AudioSocketError,
    AudioSocketEvent,
    ConnectionClosed,
    DtmfDigit,
    ErrorFrame,
    HangupFrame,
    RemoteProtocolError,
    encode_audio,
    encode_hangup,
)
from centralino.logs import bind_call

__all__ = ["AudioSocketServer", "AudioSocketSession", "SessionClosed"]

log = logging.getLogger(__name__)

# Bytes per read: a dozen audio frames; also bounds what one read can add to the codec's buffer.
READ_CHUNK_BYTES = 4096
# Events queued between the reader and the handler: 50 frames = 1 s of audio. A slower handler
# stops the reader (backpressure) instead of growing memory.
EVENT_QUEUE_LIMIT = 50
# Asterisk sends the UUID at once on connect; a silent client is not Asterisk.
UUID_TIMEOUT_S = 5.0
# Asterisk sends a frame every 20 ms while the channel has media: a silent minute is a dead link.
IDLE_TIMEOUT_S = 60.0

CallHandler = Callable[["AudioSocketSession"], Awaitable[None]]


class SessionClosed(AudioSocketError):
    """Sending on a session whose connection has ended (caller hung up or we hung up)."""


class AudioSocketSession:
    """One AudioSocket call as the handler sees it.

    Iterate it (`async for event in session`) to receive `AudioFrame`, `DtmfDigit`, `ErrorFrame`
    and `HangupFrame` events; iteration always ends with one `ConnectionClosed` (whatever the
    reason, see `close_reason`). `send_audio` and `hangup` talk back to Asterisk.
    """

    def __init__(
        self,
        *,
        call_uuid: uuid.UUID,
        peer: str,
        writer: asyncio.StreamWriter,
        queue_limit: int = EVENT_QUEUE_LIMIT,
    ) -> None:
        self.uuid = call_uuid
        self.peer = peer
        self._writer = writer
        self._queue: asyncio.Queue[AudioSocketEvent] = asyncio.Queue(maxsize=queue_limit)
        self._finished = False  # ConnectionClosed already handed to the consumer
        self._closing = False
        self.close_reason: str | None = None
        self.frames_sent = 0

    @property
    def closed(self) -> bool:
        return self._closing

    def __aiter__(self) -> AsyncIterator[AudioSocketEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[AudioSocketEvent]:
        while not self._finished:
            event = await self._queue.get()
            if isinstance(event, ConnectionClosed):
                self._finished = True
            yield event

    async def next_event(self) -> AudioSocketEvent:
        """The next event; after the final `ConnectionClosed`, keeps returning it."""
        if self._finished:
            return ConnectionClosed()
        event = await self._queue.get()
        if isinstance(event, ConnectionClosed):
            self._finished = True
        return event

    async def send_audio(self, pcm: bytes) -> None:
        """Send one audio frame (slin 8 kHz, 16-bit LE mono) and wait for the socket to drain."""
        if self._closing:
            raise SessionClosed(f"call {self.uuid} already ended ({self.close_reason})")
        frame = encode_audio(pcm)
        try:
            self._writer.write(frame)
            await self._writer.drain()
        except ConnectionError as exc:
            self._mark_closed(f"write failed: {exc!r}")
            raise SessionClosed(f"call {self.uuid}: connection lost while sending") from exc
        self.frames_sent += 1

    async def hangup(self) -> None:
        """Send the hangup frame and close: Asterisk's AudioSocket() then returns (fact 28)."""
        if self._closing:
            return
        self._mark_closed("hangup by us")
        with contextlib.suppress(ConnectionError):
            self._writer.write(encode_hangup())
            await self._writer.drain()
        self._writer.close()

    def _mark_closed(self, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self.close_reason = reason

    async def _deliver(self, event: AudioSocketEvent) -> None:
        await self._queue.put(event)  # blocks while the queue is full: that is the backpressure


class AudioSocketServer:
    """Accepts AudioSocket connections from Asterisk and runs `on_call(session)` for each.

    Counters (for metrics) are plain attributes: `connections_total`, `calls_total`,
    `protocol_errors`, `handler_errors`, `frames_received`, `audio_frames_received`,
    `dtmf_received`, `bytes_received`; `active_calls` is a property.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        on_call: CallHandler,
        queue_limit: int = EVENT_QUEUE_LIMIT,
        uuid_timeout_s: float = UUID_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self._host = host
        self._port = port
        self._on_call = on_call
        self._queue_limit = queue_limit
        self._uuid_timeout_s = uuid_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._sessions: set[AudioSocketSession] = set()
        self.connections_total = 0
        self.calls_total = 0
        self.protocol_errors = 0
        self.handler_errors = 0
        self.frames_received = 0
        self.audio_frames_received = 0
        self.dtmf_received = 0
        self.bytes_received = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port=0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("AudioSocketServer is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def active_calls(self) -> int:
        return len(self._sessions)

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("AudioSocketServer already started")
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, limit=READ_CHUNK_BYTES
        )
        log.info("AudioSocket listening on %s:%d", self._host, self.port)

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop accepting, let calls finish for `grace_s`, then hang up and cancel the rest."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        pending = set(self._connections)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        if pending:
            log.warning(
                "AudioSocket stop: hanging up %d call(s) after %.1f s", len(pending), grace_s
            )
            for session in list(self._sessions):
                await session.hangup()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        peer = _peer_name(writer)
        decoder = AudioSocketDecoder(expect_uuid=True)
        try:
            with bind_call(peer=peer):
                call_uuid = await self._read_uuid(reader, decoder, peer)
                if call_uuid is None:
                    return
                with bind_call(audiosocket_uuid=str(call_uuid)):
                    await self._run_call(reader, writer, decoder, call_uuid, peer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_uuid(
        self, reader: asyncio.StreamReader, decoder: AudioSocketDecoder, peer: str
    ) -> uuid.UUID | None:
        try:
            async with asyncio.timeout(self._uuid_timeout_s):
                while decoder.uuid is None:
                    # Read no further than the UUID frame (19 bytes): the rest belongs to the call.
                    data = await reader.read(max(1, 19 - decoder.buffered))
                    self.bytes_received += len(data)
                    events = decoder.receive_data(data)
                    if any(isinstance(e, ConnectionClosed) for e in events):
                        log.info("AudioSocket peer %s closed before sending its UUID", peer)
                        return None
        except RemoteProtocolError as exc:
            self.protocol_errors += 1
            log.warning("AudioSocket protocol error from %s: %s; closing", peer, exc)
            return None
        except TimeoutError:
            self.protocol_errors += 1
            log.warning(
                "AudioSocket peer %s sent no UUID within %.1f s", peer, self._uuid_timeout_s
            )
            return None
        except ConnectionError as exc:
            log.info("AudioSocket peer %s dropped before its UUID: %r", peer, exc)
            return None
        self.frames_received += 1
        return decoder.uuid

    async def _run_call(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: AudioSocketDecoder,
        call_uuid: uuid.UUID,
        peer: str,
    ) -> None:
        session = AudioSocketSession(
            call_uuid=call_uuid, peer=peer, writer=writer, queue_limit=self._queue_limit
        )
        self.calls_total += 1
        self._sessions.add(session)
        reader_task = asyncio.get_running_loop().create_task(
            self._read_frames(reader, decoder, session)
        )
        try:
            await self._on_call(session)
        except SessionClosed:
            log.debug("AudioSocket handler stopped: call %s already ended", call_uuid)
        except Exception:
            self.handler_errors += 1
            log.exception("AudioSocket handler failed for call %s from %s", call_uuid, peer)
        finally:
            # A handler that returns leaves the call: hang up so Asterisk's AudioSocket() returns.
            await session.hangup()
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader_task
            self._sessions.discard(session)

    async def _read_frames(
        self, reader: asyncio.StreamReader, decoder: AudioSocketDecoder, session: AudioSocketSession
    ) -> None:
        peer = session.peer
        try:
            while True:
                try:
                    async with asyncio.timeout(self._idle_timeout_s):
                        data = await reader.read(READ_CHUNK_BYTES)
                except TimeoutError:
                    log.warning(
                        "AudioSocket peer %s idle for %.0f s; closing", peer, self._idle_timeout_s
                    )
                    session._mark_closed("idle timeout")
                    break
                self.bytes_received += len(data)
                events = decoder.receive_data(data)
                for event in events:
                    if isinstance(event, ConnectionClosed):
                        session._mark_closed("caller hung up (EOF)")
                        continue  # delivered once, below
                    self._count(event)
                    if isinstance(event, HangupFrame):
                        session._mark_closed("hangup frame from Asterisk")
                    elif isinstance(event, ErrorFrame):
                        log.warning("AudioSocket error frame from %s: %s", peer, event.description)
                    await session._deliver(event)
                if decoder.closed:
                    break
        except RemoteProtocolError as exc:
            self.protocol_errors += 1
            log.warning("AudioSocket protocol error from %s: %s; closing", peer, exc)
            session._mark_closed(f"protocol error: {exc}")
        except ConnectionError as exc:
            log.info("AudioSocket connection from %s lost: %r", peer, exc)
            session._mark_closed(f"connection lost: {exc!r}")
        session._mark_closed("closed")  # keeps an earlier, more precise reason
        session._writer.close()
        await session._deliver(ConnectionClosed())

    def _count(self, event: AudioSocketEvent) -> None:
        self.frames_received += 1
        if isinstance(event, AudioFrame):
            self.audio_frames_received += 1
        elif isinstance(event, DtmfDigit):
            self.dtmf_received += 1


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return str(peername)
