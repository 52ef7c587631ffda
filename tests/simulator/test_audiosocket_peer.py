"""The AudioSocket peer behaves like Asterisk 22 did in audiosocket-frames.txt."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from centralino.asterisk.audiosocket import (
    AudioFrame,
    AudioSocketDecoder,
    AudioSocketEvent,
    AudioSocketUuid,
    ConnectionClosed,
    DtmfDigit,
    encode_audio,
    encode_hangup,
)
from centralino.simulator.audiosocket_peer import (
    AudioSocketPeer,
    load_wav_pcm,
    synth_speech_pcm,
    write_wav,
)
from tests.helpers import eventually

CALL_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


class RawServer:
    """A bare TCP server standing in for Centralino: records every byte with its arrival time,
    and can answer with audio then a hangup frame."""

    def __init__(self, *, reply_frames: int = 0, hangup_after_s: float | None = None) -> None:
        self.reply_frames = reply_frames
        self.hangup_after_s = hangup_after_s
        self.chunks: list[tuple[float, bytes]] = []
        self.done = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        for i in range(self.reply_frames):
            writer.write(encode_audio(bytes([i % 256, 0]) * 160))
        if self.hangup_after_s is not None:
            try:
                async with asyncio.timeout(self.hangup_after_s):
                    await self._record(reader, accepted)
            except TimeoutError:
                writer.write(encode_hangup())
                await writer.drain()
        else:
            await self._record(reader, accepted)
        writer.close()
        self.done.set()

    async def _record(self, reader: asyncio.StreamReader, accepted: float) -> None:
        while data := await reader.read(65536):
            self.chunks.append((time.monotonic() - accepted, data))

    def events(self) -> list[tuple[float, AudioSocketEvent]]:
        decoder = AudioSocketDecoder()
        out: list[tuple[float, AudioSocketEvent]] = []
        for t, data in self.chunks:
            out += [(t, e) for e in decoder.receive_data(data)]
        out += [(self.chunks[-1][0] if self.chunks else 0.0, e) for e in decoder.receive_data(b"")]
        return out

    @property
    def wire(self) -> bytes:
        return b"".join(data for _, data in self.chunks)


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    yield raw
    raw.server.close()
    await raw.server.wait_closed()


def _port(raw: RawServer) -> int:
    assert raw.server is not None
    port: int = raw.server.sockets[0].getsockname()[1]
    return port


async def test_given_a_wav_when_played_then_uuid_then_500ms_then_frames_every_20ms(
    raw_server: RawServer, tmp_path: Path
) -> None:
    pcm = synth_speech_pcm(duration_s=1.0, rng=np.random.default_rng(1))
    wav_path = write_wav(tmp_path / "speech.wav", pcm)
    async with AudioSocketPeer(
        host="127.0.0.1", port=_port(raw_server), call_uuid=CALL_UUID
    ) as peer:
        result = await peer.play(wav_path, dtmf=[(0.4, "5"), (0.8, "#")])
    await asyncio.wait_for(raw_server.done.wait(), 5)
    # byte-exact opening, as recorded: 01 00 10 + the raw UUID, then 10 01 40 + 320 bytes
    assert raw_server.wire.startswith(b"\x01\x00\x10" + CALL_UUID.bytes + b"\x10\x01\x40")
    events = raw_server.events()
    assert events[0][1] == AudioSocketUuid(CALL_UUID)
    assert events[-1][1] == ConnectionClosed()  # caller hangup = close, no hangup frame
    assert not raw_server.wire.endswith(b"\x00\x00\x00")
    audio = [(t, e) for t, e in events if isinstance(e, AudioFrame)]
    assert len(audio) == 50 == result.frames_sent
    assert b"".join(e.pcm for _, e in audio) == pcm
    assert 0.48 <= audio[0][0] <= 0.65  # first audio ~500 ms after the UUID (fact 26)
    span = audio[-1][0] - audio[0][0]
    assert 49 * 0.02 - 0.01 <= span <= 49 * 0.02 + 0.1  # paced, not bursted, no drift
    kinds = [e for _, e in events[1:-1]]
    assert kinds.index(DtmfDigit("5")) == 20  # just before the frame due at 0.4 s
    assert kinds.index(DtmfDigit("#")) == 41
    assert result.dtmf_sent == "5#"


async def test_given_a_sleep_that_oversleeps_then_schedule_stays_on_absolute_time(
    raw_server: RawServer,
) -> None:
    now = [1000.0]
    asked: list[float] = []

    async def lazy_sleep(seconds: float) -> None:
        asked.append(seconds)
        now[0] += seconds + 0.005  # every wake-up 5 ms late
        await asyncio.sleep(0)

    peer = AudioSocketPeer(
        host="127.0.0.1",
        port=_port(raw_server),
        first_audio_delay_s=0.5,
        clock=lambda: now[0],
        sleep=lazy_sleep,
    )
    async with peer:
        result = await peer.play(bytes(320 * 100))
    assert result.frames_sent == 100
    # Frame k is due at start + k * 20 ms: each sleep is shortened by the previous lateness,
    # so after 100 frames the clock is 5 ms late, not 500 ms.
    assert asked[0] == pytest.approx(0.5)
    assert all(s == pytest.approx(0.015) for s in asked[1:])
    assert now[0] == pytest.approx(1000.0 + 0.5 + 99 * 0.02 + 0.005)
    assert result.max_lateness_s == pytest.approx(0.0)


async def test_given_server_sends_audio_then_hangup_then_peer_records_and_stops() -> None:
    raw = RawServer(reply_frames=5, hangup_after_s=0.3)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    try:
        async with AudioSocketPeer(
            host="127.0.0.1", port=server.sockets[0].getsockname()[1], first_audio_delay_s=0
        ) as peer:
            result = await peer.play(bytes(320 * 100))  # 2 s of audio, cut at ~0.3 s
            assert peer.server_hung_up.is_set()
            assert peer.server_closed.is_set()
        assert result.stopped_by_server
        assert 5 <= result.frames_sent < 40
        assert peer.received_frames == 5
        assert peer.received_audio == b"".join(bytes([i, 0]) * 160 for i in range(5))
        assert peer.protocol_error is None
    finally:
        server.close()
        await server.wait_closed()


async def test_given_server_sends_garbage_then_peer_records_protocol_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x77\x00\x00")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        async with AudioSocketPeer(
            host="127.0.0.1", port=server.sockets[0].getsockname()[1]
        ) as peer:
            await peer.wait_server_hangup()
            assert peer.protocol_error is not None
            assert "0x77" in peer.protocol_error
            assert not peer.server_hung_up.is_set()
    finally:
        server.close()
        await server.wait_closed()


async def test_given_explicit_dtmf_then_frames_are_sent_at_once(raw_server: RawServer) -> None:
    async with AudioSocketPeer(host="127.0.0.1", port=_port(raw_server)) as peer:
        await peer.send_dtmf("12#")
        with pytest.raises(ValueError):
            await peer.send_dtmf("x")
    await asyncio.wait_for(raw_server.done.wait(), 5)
    digits = [e.digit for _, e in raw_server.events() if isinstance(e, DtmfDigit)]
    assert digits == ["1", "2", "#"]


async def test_given_unconnected_peer_then_misuse_raises() -> None:
    peer = AudioSocketPeer(host="127.0.0.1", port=9)
    with pytest.raises(RuntimeError):
        await peer.play(bytes(320))
    await peer.hangup()  # harmless when never connected


def test_synth_speech_is_deterministic_speech_like_slin() -> None:
    a = synth_speech_pcm(duration_s=2.0, rng=np.random.default_rng(3))
    b = synth_speech_pcm(duration_s=2.0, rng=np.random.default_rng(3))
    assert a == b
    assert len(a) == 2 * 8000 * 2
    samples = np.frombuffer(a, dtype="<i2").astype(np.float64)
    frames = samples.reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1))
    assert rms.max() > 3000  # voiced syllables
    assert (rms < 0.05 * rms.max()).sum() >= 5  # and pauses between them
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    assert freqs[np.argmax(spectrum)] < 2500  # energy where voices are


def test_wav_roundtrip_and_wrong_format_rejected(tmp_path: Path) -> None:
    pcm = struct.pack("<4h", 1, -1, 2, -2)
    assert load_wav_pcm(write_wav(tmp_path / "a.wav", pcm)) == pcm
    with wave.open(str(tmp_path / "b.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm)
    with pytest.raises(ValueError, match="8000 Hz 16-bit mono"):
        load_wav_pcm(tmp_path / "b.wav")


async def test_given_peer_closes_then_raw_server_sees_eof_at_frame_boundary(
    raw_server: RawServer,
) -> None:
    peer = AudioSocketPeer(host="127.0.0.1", port=_port(raw_server), first_audio_delay_s=0)
    await peer.connect()
    await peer.play(bytes(320 * 2))
    await peer.hangup()
    await eventually(lambda: _assert_true(raw_server.done.is_set()))
    assert len(raw_server.wire) == 19 + 2 * 323


def _assert_true(value: bool) -> None:
    assert value
