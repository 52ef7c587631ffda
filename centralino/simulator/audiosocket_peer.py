"""The Asterisk side of AudioSocket, for tests, the demo and load runs (never the call path).

It behaves as Asterisk 22 did in ../shared/asterisk-real/audiosocket-frames.txt: connect, send the
UUID frame, wait 500 ms, then one 320-byte slin frame every 20 ms, DTMF frames slotted between
audio frames; a caller hangup is a plain close with no hangup frame (fact 29); after the server's
hangup frame it sends nothing more and closes (fact 28).

Pacing is scheduled on absolute times (start + n * 20 ms), so a late wake-up is caught up on the
next frame instead of accumulating drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import wave
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centralino.asterisk.audiosocket import (
    AUDIO_FRAME_BYTES,
    AUDIO_FRAME_SECONDS,
    SAMPLE_RATE_HZ,
    AudioFrame,
    AudioSocketDecoder,
    ConnectionClosed,
    ErrorFrame,
    HangupFrame,
    RemoteProtocolError,
    encode_audio,
    encode_dtmf,
    encode_uuid,
)

__all__ = [
    "AudioSocketPeer",
    "PlayResult",
    "load_wav_pcm",
    "synth_speech_pcm",
    "write_wav",
]

log = logging.getLogger(__name__)

# Asterisk's first audio frame came 500 ms after the UUID frame in both recorded calls (fact 26).
FIRST_AUDIO_DELAY_S = 0.5
READ_CHUNK_BYTES = 4096
# Audio the server sends back is kept for inspection up to 60 s (960 KB); beyond, only counted.
RECEIVED_AUDIO_LIMIT_BYTES = 60 * SAMPLE_RATE_HZ * 2

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PlayResult:
    frames_sent: int
    dtmf_sent: str
    stopped_by_server: bool  # the server hung up (or closed) before the audio ended
    max_lateness_s: float  # worst delay of a frame behind its scheduled time


class AudioSocketPeer:
    """An AudioSocket client playing Asterisk's part for one call.

    Use as `async with AudioSocketPeer(host=..., port=...) as peer:` (connects and sends the UUID;
    closes on exit, which is a caller hangup), then `await peer.play(pcm_or_wav_path, dtmf=...)`.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        call_uuid: uuid.UUID | None = None,
        first_audio_delay_s: float = FIRST_AUDIO_DELAY_S,
        frame_interval_s: float = AUDIO_FRAME_SECONDS,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.host = host
        self.port = port
        self.call_uuid = call_uuid if call_uuid is not None else uuid.uuid4()
        self.first_audio_delay_s = first_audio_delay_s
        self.frame_interval_s = frame_interval_s
        self._clock = clock
        self._sleep = sleep
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._uuid_sent_at: float | None = None
        self.received_audio = bytearray()
        self.received_frames = 0
        self.server_error: ErrorFrame | None = None
        self.protocol_error: str | None = None
        self.server_hung_up = asyncio.Event()  # hangup frame received
        self.server_closed = asyncio.Event()  # connection ended from the server's side

    async def __aenter__(self) -> AudioSocketPeer:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hangup()

    async def connect(self) -> None:
        """Open the TCP connection and send the UUID frame, as Asterisk does at once."""
        if self._writer is not None:
            raise RuntimeError("already connected")
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(encode_uuid(self.call_uuid))
        await self._writer.drain()
        self._uuid_sent_at = self._clock()
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop(self._reader))

    async def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes (bad-input tests)."""
        writer = self._require_writer()
        writer.write(data)
        await writer.drain()

    async def send_dtmf(self, digits: str) -> None:
        writer = self._require_writer()
        for digit in digits:
            writer.write(encode_dtmf(digit))
        await writer.drain()

    async def play(
        self,
        source: bytes | str | Path,
        *,
        dtmf: Iterable[tuple[float, str]] = (),
        stop_on_server_hangup: bool = True,
    ) -> PlayResult:
        """Stream `source` (raw slin bytes or an 8 kHz 16-bit mono WAV path) at real pacing.

        The first frame goes `first_audio_delay_s` after the UUID frame. `dtmf` holds
        `(seconds after the first audio frame, digits)`; each digit becomes a DTMF frame sent
        just before the audio frame due at that time. A final partial frame is zero-padded.
        """
        writer = self._require_writer()
        pcm = bytes(source) if isinstance(source, bytes | bytearray) else load_wav_pcm(source)
        if len(pcm) % 2:
            raise ValueError("slin audio must be whole 16-bit samples")
        frames = [
            pcm[i : i + AUDIO_FRAME_BYTES].ljust(AUDIO_FRAME_BYTES, b"\0")
            for i in range(0, len(pcm), AUDIO_FRAME_BYTES)
        ]
        dtmf_slots: dict[int, str] = {}
        for at_s, digits in dtmf:
            slot = min(max(0, round(at_s / self.frame_interval_s)), max(len(frames) - 1, 0))
            dtmf_slots[slot] = dtmf_slots.get(slot, "") + digits
        start = (self._uuid_sent_at or self._clock()) + self.first_audio_delay_s
        max_lateness = 0.0
        sent = 0
        dtmf_sent = ""
        stopped = False
        for index, frame in enumerate(frames):
            due = start + index * self.frame_interval_s  # absolute schedule: no drift
            delay = due - self._clock()
            if delay > 0:
                await self._sleep(delay)
            else:
                max_lateness = max(max_lateness, -delay)
            if self.server_closed.is_set() and stop_on_server_hangup:
                stopped = True
                break
            data = b"".join(encode_dtmf(d) for d in dtmf_slots.get(index, ""))
            try:
                writer.write(data + encode_audio(frame))
                await writer.drain()
            except ConnectionError:
                stopped = True
                break
            dtmf_sent += dtmf_slots.get(index, "")
            sent += 1
        return PlayResult(
            frames_sent=sent,
            dtmf_sent=dtmf_sent,
            stopped_by_server=stopped,
            max_lateness_s=max_lateness,
        )

    async def hangup(self) -> None:
        """Caller hangup: close the connection without a hangup frame, as Asterisk does."""
        writer = self._writer
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task

    async def wait_server_hangup(self, *, timeout_s: float = 5.0) -> None:
        """Wait until the server sent its hangup frame or closed the connection."""
        async with asyncio.timeout(timeout_s):
            await self.server_closed.wait()

    def _require_writer(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise RuntimeError("not connected: call connect() first")
        return self._writer

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = AudioSocketDecoder(expect_uuid=False)
        try:
            while not decoder.closed:
                data = await reader.read(READ_CHUNK_BYTES)
                for event in decoder.receive_data(data):
                    if isinstance(event, AudioFrame):
                        self.received_frames += 1
                        room = RECEIVED_AUDIO_LIMIT_BYTES - len(self.received_audio)
                        if room > 0:
                            self.received_audio += event.pcm[:room]
                    elif isinstance(event, HangupFrame):
                        self.server_hung_up.set()
                    elif isinstance(event, ErrorFrame):
                        self.server_error = event
                    elif isinstance(event, ConnectionClosed):
                        pass
        except RemoteProtocolError as exc:
            self.protocol_error = str(exc)
            log.warning("AudioSocket server %s:%d sent garbage: %s", self.host, self.port, exc)
        except ConnectionError:
            pass
        finally:
            self.server_closed.set()
        # After the server's hangup frame Asterisk sends nothing more and closes (fact 28).
        if self._writer is not None:
            self._writer.close()


def load_wav_pcm(path: str | Path) -> bytes:
    """The frames of an 8 kHz, 16-bit, mono WAV file (what AudioSocket carries)."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) != (SAMPLE_RATE_HZ, 2, 1):
            raise ValueError(
                f"{path}: need 8000 Hz 16-bit mono, got {wav.getframerate()} Hz"
                f" {8 * wav.getsampwidth()}-bit {wav.getnchannels()} channel(s)"
            )
        return wav.readframes(wav.getnframes())


def write_wav(path: str | Path, pcm: bytes) -> Path:
    """Write slin bytes as an 8 kHz 16-bit mono WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(pcm)
    return Path(path)


def synth_speech_pcm(*, duration_s: float, rng: np.random.Generator) -> bytes:
    """A speech-like test signal as slin bytes: voiced syllables separated by short pauses.

    Each syllable is a glottal-like harmonic series (pitch 100-220 Hz, gliding) shaped by two
    formant-ish emphases and a smooth envelope, plus a little noise; pauses are near-silent, as in
    the recorded calls. Deterministic for a given generator state.
    """
    n = round(duration_s * SAMPLE_RATE_HZ)
    out = np.zeros(n, dtype=np.float64)
    pos = 0
    while pos < n:
        syllable = int(rng.uniform(0.12, 0.3) * SAMPLE_RATE_HZ)
        end = min(pos + syllable, n)
        t = np.arange(end - pos) / SAMPLE_RATE_HZ
        f0 = rng.uniform(100.0, 220.0) * (1.0 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-9))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE_HZ
        formants = rng.uniform([300.0, 900.0], [800.0, 2300.0])
        voiced = np.zeros_like(t)
        for harmonic in range(1, 20):
            freq = harmonic * f0
            gain = sum(np.exp(-(((freq - f) / 150.0) ** 2)) for f in formants) + 0.05
            voiced += np.where(freq < SAMPLE_RATE_HZ / 2, gain / harmonic, 0.0) * np.sin(
                harmonic * phase
            )
        envelope = np.sin(np.pi * np.arange(end - pos) / max(end - pos, 1)) ** 2
        out[pos:end] = voiced * envelope * rng.uniform(0.3, 0.6)
        pos = end + int(rng.uniform(0.04, 0.15) * SAMPLE_RATE_HZ)  # pause between syllables
    out += rng.normal(0.0, 0.002, n)
    peak = np.max(np.abs(out)) or 1.0
    samples = np.clip(out / peak * 0.7 * 32767, -32768, 32767).astype("<i2")
    return samples.tobytes()
