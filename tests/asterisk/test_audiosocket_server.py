"""AudioSocketServer driven by the simulator's AudioSocket peer and by raw hostile sockets."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest

from centralino.asterisk.audiosocket import (
    AudioFrame,
    AudioSocketEvent,
    ConnectionClosed,
    DtmfDigit,
    encode_audio,
    encode_dtmf,
    encode_uuid,
)
from centralino.asterisk.audiosocket_server import (
    AudioSocketServer,
    AudioSocketSession,
    SessionClosed,
)
from centralino.simulator.audiosocket_peer import AudioSocketPeer, synth_speech_pcm
from tests.helpers import eventually

CALL_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
Handler = Callable[[AudioSocketSession], Awaitable[None]]


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Awaitable[AudioSocketServer]]]:
    servers: list[AudioSocketServer] = []

    async def make(on_call: Handler, **kwargs: float) -> AudioSocketServer:
        server = AudioSocketServer(host="127.0.0.1", port=0, on_call=on_call, **kwargs)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace_s=0.5)


class Recorder:
    """A handler that records every event and echoes audio back, hanging up after `hangup_after`
    audio frames (never if None)."""

    def __init__(self, *, hangup_after: int | None = None) -> None:
        self.hangup_after = hangup_after
        self.calls: dict[uuid.UUID, list[AudioSocketEvent]] = {}
        self.sessions: list[AudioSocketSession] = []

    async def __call__(self, session: AudioSocketSession) -> None:
        self.sessions.append(session)
        events = self.calls.setdefault(session.uuid, [])
        audio = 0
        async for event in session:
            events.append(event)
            if isinstance(event, AudioFrame):
                audio += 1
                await session.send_audio(event.pcm)
                if self.hangup_after is not None and audio >= self.hangup_after:
                    await session.hangup()
                    return


async def test_given_a_call_when_peer_streams_with_dtmf_then_events_arrive_and_echo_returns(
    make_server: Callable[..., Awaitable[AudioSocketServer]],
) -> None:
    recorder = Recorder(hangup_after=15)
    server = await make_server(recorder)
    pcm = synth_speech_pcm(duration_s=1.0, rng=np.random.default_rng(7))
    peer = AudioSocketPeer(
        host="127.0.0.1", port=server.port, call_uuid=CALL_UUID, first_audio_delay_s=0.02
    )
    async with peer:
        result = await peer.play(pcm, dtmf=[(0.1, "5"), (0.2, "#")])
        await peer.wait_server_hangup(timeout_s=2)
    assert peer.server_hung_up.is_set()
    assert result.stopped_by_server
    assert 15 <= result.frames_sent < 50
    events = recorder.calls[CALL_UUID]
    audio = [e.pcm for e in events if isinstance(e, AudioFrame)]
    assert [e.digit for e in events if isinstance(e, DtmfDigit)] == ["5", "#"]
    assert events.index(DtmfDigit("5")) == 5  # sent before the 6th audio frame (t = 0.1 s)
    assert b"".join(audio) == pcm[: 15 * 320]
    await eventually(lambda: _assert_equal(bytes(peer.received_audio), pcm[: 15 * 320]))
    assert server.calls_total == 1
    assert server.dtmf_received == 2
    assert server.audio_frames_received >= 15
    assert server.protocol_errors == 0
    await eventually(lambda: _assert_equal(server.active_calls, 0))


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected


async def test_given_caller_hangs_up_then_handler_sees_connection_closed_and_sending_fails(
    make_server: Callable[..., Awaitable[AudioSocketServer]],
) -> None:
    outcome: dict[str, object] = {}

    async def handler(session: AudioSocketSession) -> None:
        events = [event async for event in session]
        outcome["events"] = events
        outcome["reason"] = session.close_reason
        outcome["next"] = await session.next_event()
        try:
            await session.send_audio(bytes(320))
        except SessionClosed as exc:
            outcome["send"] = exc

    server = await make_server(handler)
    async with AudioSocketPeer(
        host="127.0.0.1", port=server.port, call_uuid=CALL_UUID, first_audio_delay_s=0
    ) as peer:
        await peer.play(bytes(320 * 3))
    await eventually(lambda: _assert_equal("send" in outcome, True))
    events = outcome["events"]
    assert isinstance(events, list)
    assert events == [AudioFrame(bytes(320))] * 3 + [ConnectionClosed()]
    assert outcome["reason"] == "caller hung up (EOF)"
    assert outcome["next"] == ConnectionClosed()
    assert isinstance(outcome["send"], SessionClosed)


async def test_given_slow_consumer_then_reader_stops_and_memory_stays_bounded(
    make_server: Callable[..., Awaitable[AudioSocketServer]],
) -> None:
    consume = asyncio.Event()
    received: list[bytes] = []
    queue_limit = 10

    async def handler(session: AudioSocketSession) -> None:
        await consume.wait()
        async for event in session:
            if isinstance(event, AudioFrame):
                received.append(event.pcm)

    server = await make_server(handler, queue_limit=queue_limit)
    frames = [i.to_bytes(2, "little") * 160 for i in range(3000)]  # ~1 MB, numbered frames
    peer = AudioSocketPeer(host="127.0.0.1", port=server.port, call_uuid=CALL_UUID)
    async with peer:
        sender = asyncio.create_task(peer.send_raw(b"".join(encode_audio(f) for f in frames)))
        (session,) = await eventually(lambda: _one(server))
        await eventually(lambda: _assert_equal(session._queue.full(), True))
        # The reader is parked on the full queue: at most one read's worth (4096 B = 12 frames)
        # beyond the queue has been decoded, however much the peer has written.
        assert server.audio_frames_received <= queue_limit + 13
        consume.set()
        await sender
        await eventually(lambda: _assert_equal(len(received), len(frames)), timeout=10)
    assert received == frames


def _one(server: AudioSocketServer) -> list[AudioSocketSession]:
    sessions = list(server._sessions)
    assert len(sessions) == 1
    return sessions


@pytest.mark.parametrize(
    ("garbage", "logged"),
    [
        (encode_uuid(CALL_UUID) + b"\x10\x01\x40" + bytes(100), "EOF inside a frame"),
        (encode_uuid(CALL_UUID) + b"\x42\x00\x01x", "unknown frame kind 0x42"),
        (encode_uuid(CALL_UUID) + b"\x10\xff\xff" + bytes(10), "over the 4096-byte limit"),
        (b"\x10\x01\x40" + bytes(320), "first frame must be the UUID"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "unknown frame kind 0x47"),
        (encode_uuid(CALL_UUID) + encode_dtmf("1") + b"\x03\x00\x01Z", "bad DTMF"),
    ],
)
async def test_given_bad_input_then_connection_closed_logged_and_other_call_unaffected(
    make_server: Callable[..., Awaitable[AudioSocketServer]],
    caplog: pytest.LogCaptureFixture,
    garbage: bytes,
    logged: str,
) -> None:
    recorder = Recorder()
    server = await make_server(recorder)
    good = AudioSocketPeer(
        host="127.0.0.1", port=server.port, call_uuid=uuid.uuid4(), first_audio_delay_s=0
    )
    caplog.set_level(logging.INFO, logger="centralino.asterisk.audiosocket_server")
    async with good:
        await good.play(bytes(320 * 2))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        local_port = writer.get_extra_info("sockname")[1]
        writer.write(garbage)
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) in (b"", b"\x00\x00\x00")
        writer.close()
        await eventually(lambda: _assert_equal(server.protocol_errors, 1))
        # the good call keeps going after the garbage connection was dropped
        await good.play(bytes(320 * 3))
        await eventually(lambda: _assert_equal(len(recorder.calls[good.call_uuid]), 5))
        assert not good.server_closed.is_set()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(logged in m and f"127.0.0.1:{local_port}" in m for m in messages), messages
    await eventually(lambda: _assert_equal(server.active_calls, 0))


async def test_given_client_silent_then_closed_after_uuid_timeout(
    make_server: Callable[..., Awaitable[AudioSocketServer]],
) -> None:
    server = await make_server(Recorder(), uuid_timeout_s=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert server.protocol_errors == 1
    assert server.calls_total == 0


async def test_given_handler_raises_then_call_hung_up_and_server_keeps_serving(
    make_server: Callable[..., Awaitable[AudioSocketServer]],
) -> None:
    async def handler(session: AudioSocketSession) -> None:
        await session.next_event()
        raise RuntimeError("flow bug")

    server = await make_server(handler)
    for _ in range(2):
        async with AudioSocketPeer(
            host="127.0.0.1", port=server.port, first_audio_delay_s=0
        ) as peer:
            await peer.play(bytes(320))
            await peer.wait_server_hangup()
            assert peer.server_hung_up.is_set()
    assert server.handler_errors == 2
    assert server.calls_total == 2


async def test_given_calls_in_progress_when_stopped_then_they_are_hung_up_after_grace() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(session: AudioSocketSession) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a flow that never ends by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = AudioSocketServer(host="127.0.0.1", port=0, on_call=handler)
    await server.start()
    port = server.port
    async with AudioSocketPeer(host="127.0.0.1", port=port) as peer:
        await started.wait()
        await server.stop(grace_s=0.1)
        await peer.wait_server_hangup()
        assert peer.server_hung_up.is_set()
    assert cancelled.is_set()
    assert server.active_connections == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(RuntimeError):
        _ = server.port
