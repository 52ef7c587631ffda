"""Listening to a caller: 20 ms audio frames in, speech events and text out.

AudioSocket delivers signed 16-bit little-endian mono audio at 8 kHz (slin), 20 ms a frame
(320 bytes). A `Listener` is fed those frames one at a time and says what happened:

- `SpeechStarted`: the caller started talking. This is the barge-in signal: the flow stops
  the prompt that is playing.
- `PartialText`: what a streaming engine (vosk) has understood so far.
- `FinalText`: the caller stopped talking (end of speech: `end_silence_ms` of silence after
  speech) and the engine's transcript of the utterance.
- `NoInput`: nobody spoke within `no_input_ms`.
- `NoMatch`: there was speech, but the engine made no words of it (noise, a cough, a
  language it does not know).

End of speech comes from an energy detector (`EnergyVad`) whose noise floor adapts to the line:
cheap (a few microseconds a frame), deterministic, and good enough on telephone audio, where
the engine itself is the expensive and the fallible part. The audio is the clock: timeouts are
counted in frames, so the whole is sans-I/O and tests feed it generated audio at any speed.

Engines implement the `Recognizer` port (centralino/adapters/speech_*.py: vosk streams,
faster-whisper transcribes each utterance after its end). They are synchronous and may be slow;
`listen()` runs them through the `offload` the composition root passes (a worker thread), so a
slow engine never blocks the event loop.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import numpy as np

SAMPLE_RATE_HZ = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE_HZ * FRAME_MS // 1000 * 2  # 160 samples of 16 bits

T = TypeVar("T")


class Offload(Protocol):
    """Runs a blocking call somewhere else (a worker thread) and awaits its result."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class SpeechError(Exception):
    """A recogniser failed (its model missing or broken, the engine crashed)."""


class Recognizer(Protocol):
    """A speech-to-text engine for one utterance at a time (not safe to share between calls:
    each call gets its own from a factory)."""

    @property
    def streaming(self) -> bool:
        """True if `accept` returns partial text as audio arrives (vosk); False if the engine
        only transcribes the whole utterance in `finish` (whisper)."""
        ...

    def accept(self, pcm: bytes) -> str | None:
        """Take more audio of the current utterance (slin, 8 kHz); the partial text if any."""
        ...

    def finish(self) -> str:
        """The utterance is over: its transcript ("" if no words), then ready for the next."""
        ...


class RecognizerFactory(Protocol):
    """A loaded model: gives each call its own recogniser (the model itself is shared)."""

    def recognizer(self) -> Recognizer: ...


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Barge-in: speech began `at_ms` after listening started."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class PartialText:
    text: str


@dataclass(frozen=True, slots=True)
class FinalText:
    text: str
    speech_ms: int  # how long the caller spoke (the engine's input)
    cut: bool = False  # True when max_speech_ms cut the caller off


@dataclass(frozen=True, slots=True)
class NoInput:
    waited_ms: int


@dataclass(frozen=True, slots=True)
class NoMatch:
    speech_ms: int


SpeechEvent = SpeechStarted | PartialText | FinalText | NoInput | NoMatch
Final = FinalText | NoInput | NoMatch  # what ends one listening turn


# --- voice activity --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenSettings:
    # Nobody spoke for this long after the question: no-input (the flow retries or offers DTMF).
    no_input_ms: int = 5000
    # Silence after speech that ends the utterance: long enough for a pause between words.
    end_silence_ms: int = 700
    # Voiced frames in a row before we call it speech: a click or a pop is one or two frames.
    start_frames: int = 3
    # A caller who talks this long is cut off and recognised as is (bounds the engine's input).
    max_speech_ms: int = 15000
    # A frame is voiced when it is this much louder than the noise floor (dB) ...
    threshold_db: float = 12.0
    # ... and louder than this absolute level (dBFS): digital silence has no floor to speak of.
    min_speech_dbfs: float = -45.0
    # Audio kept from before speech started (the first syllable's onset is below threshold).
    pre_roll_ms: int = 200


def frame_dbfs(pcm: bytes) -> float:
    """Level of one frame in dB relative to full scale (-inf dB for digital silence)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class EnergyVad:
    """Voiced or not, per frame, against a noise floor that follows the line's background."""

    # The floor follows quieter frames fast and louder ones slowly (a minimum-follower):
    # background noise is what the line sounds like when nobody talks.
    _DOWN = 0.5
    _UP = 0.02

    def __init__(self, settings: ListenSettings) -> None:
        self._settings = settings
        self.floor_dbfs: float | None = None

    def voiced(self, pcm: bytes) -> bool:
        level = frame_dbfs(pcm)
        floor = self.floor_dbfs
        if floor is None or not math.isfinite(floor):
            floor = level if math.isfinite(level) else -90.0
        voiced = (
            level >= self._settings.min_speech_dbfs and level >= floor + self._settings.threshold_db
        )
        if math.isfinite(level):
            rate = self._DOWN if level < floor else (0.0 if voiced else self._UP)
            floor += rate * (level - floor)
        self.floor_dbfs = floor
        return voiced


# --- one listening turn ------------------------------------------------------------------------


class Listener:
    """One question's answer: feed frames until an event of type `Final` comes out.

    States: waiting (for speech) → speaking → done. In `waiting`, frames go to a short ring
    buffer (the pre-roll); `start_frames` voiced frames start the utterance (`SpeechStarted`),
    and the engine gets the pre-roll and every frame from then on. `end_silence_ms` of silence,
    `max_speech_ms` of speech, or `end()` (the caller hung up) finish it.
    """

    def __init__(self, recognizer: Recognizer, settings: ListenSettings = ListenSettings()) -> None:
        self._recognizer = recognizer
        self._settings = settings
        self._vad = EnergyVad(settings)
        self._elapsed_ms = 0
        self._voiced_run = 0
        self._silent_ms = 0
        self._speech_ms = 0
        self._pending: list[bytes] = []  # pre-roll while waiting
        self._speaking = False
        self.done = False

    def feed(self, pcm: bytes) -> list[SpeechEvent]:
        """One 20 ms frame (a shorter or longer chunk counts for its own duration)."""
        if self.done:
            raise RuntimeError("this turn is over: start a new Listener")
        if len(pcm) % 2:
            raise ValueError("slin audio must be whole 16-bit samples")
        duration_ms = len(pcm) * 1000 // (2 * SAMPLE_RATE_HZ)
        self._elapsed_ms += duration_ms
        voiced = self._vad.voiced(pcm)
        events: list[SpeechEvent] = []
        if not self._speaking:
            self._pending.append(pcm)
            keep = max(self._settings.pre_roll_ms // FRAME_MS, self._settings.start_frames)
            del self._pending[:-keep]
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self._settings.start_frames:
                self._speaking = True
                events.append(SpeechStarted(at_ms=self._elapsed_ms))
                audio = b"".join(self._pending)
                self._pending.clear()
                self._speech_ms = len(audio) * 1000 // (2 * SAMPLE_RATE_HZ)
                events.extend(self._accept(audio))
            elif self._elapsed_ms >= self._settings.no_input_ms:
                self.done = True
                events.append(NoInput(waited_ms=self._elapsed_ms))
            return events
        self._speech_ms += duration_ms
        events.extend(self._accept(pcm))
        self._silent_ms = 0 if voiced else self._silent_ms + duration_ms
        if self._silent_ms >= self._settings.end_silence_ms:
            events.append(self._finish(cut=False))
        elif self._speech_ms >= self._settings.max_speech_ms:
            events.append(self._finish(cut=True))
        return events

    def end(self) -> Final:
        """The audio stopped (hangup, or the flow gave up waiting): finish what we have."""
        if self.done:
            raise RuntimeError("this turn is over already")
        if not self._speaking:
            self.done = True
            return NoInput(waited_ms=self._elapsed_ms)
        return self._finish(cut=False)

    def _accept(self, pcm: bytes) -> list[SpeechEvent]:
        partial = self._recognizer.accept(pcm)
        return [PartialText(partial)] if partial else []

    def _finish(self, *, cut: bool) -> Final:
        self.done = True
        text = " ".join(self._recognizer.finish().split())
        if not text:
            return NoMatch(speech_ms=self._speech_ms)
        return FinalText(text=text, speech_ms=self._speech_ms, cut=cut)


async def listen(
    frames: AsyncIterable[bytes],
    listener: Listener,
    *,
    offload: Offload,
) -> AsyncIterator[SpeechEvent]:
    """Drive `listener` with `frames` until it ends (or the frames do: a hangup); yields every
    event, the last one a `Final`. The engine runs through `offload` (e.g. a worker thread)."""
    async for pcm in frames:
        for event in await offload(partial(listener.feed, pcm)):
            yield event
        if listener.done:
            return
    if not listener.done:
        yield await offload(listener.end)
