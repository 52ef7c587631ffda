"""The listening turn (ivr/speech.py) on generated telephone audio: end of speech, barge-in,
no-input, no-match, noise, a hangup mid-utterance. The engine here is a recording double that
says what it was given; the real engines are tested in tests/adapters/test_speech_engines.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import numpy as np
import pytest

from centralino.simulator.speech_audio import add_noise, frames, noise, silence, speak
from ivr.speech import (
    FRAME_BYTES,
    EnergyVad,
    FinalText,
    Listener,
    ListenSettings,
    NoInput,
    NoMatch,
    PartialText,
    SpeechError,
    SpeechEvent,
    SpeechStarted,
    frame_dbfs,
    listen,
)


class Tape:
    """A recogniser double: keeps the audio it was given; its 'transcript' is a label of how
    much audio that was, or nothing (`words=False`, a recogniser hearing only noise)."""

    streaming = True

    def __init__(self, *, words: bool = True, fail: bool = False) -> None:
        self.audio = bytearray()
        self.words = words
        self.fail = fail
        self.finished = 0

    def accept(self, pcm: bytes) -> str | None:
        if self.fail:
            raise SpeechError("engine crashed")
        self.audio += pcm
        return f"{len(self.audio)} bytes" if self.words else None

    def finish(self) -> str:
        self.finished += 1
        return f"heard {len(self.audio) // 320} frames" if self.words else ""


T = TypeVar("T")
UTTERANCE = speak("I would like to pay my invoice", "en")
QUICK = ListenSettings(no_input_ms=2000)


def run(audio: bytes, tape: Tape, settings: ListenSettings = QUICK) -> list[SpeechEvent]:
    listener = Listener(tape, settings)
    events: list[SpeechEvent] = []
    for frame in frames(audio):
        events += listener.feed(frame)
        if listener.done:
            break
    else:
        events.append(listener.end())
    return events


def test_given_speech_after_silence_then_barge_in_then_final_text_after_end_silence() -> None:
    tape = Tape()
    audio = silence(0.6) + UTTERANCE + silence(1.5)
    events = run(audio, tape)

    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(started) == 1
    assert 600 <= started[0].at_ms <= 900  # speech began at 0.6 s; 3 voiced frames to be sure
    assert any(isinstance(e, PartialText) for e in events)
    final = events[-1]
    assert isinstance(final, FinalText) and not final.cut
    speech_s = len(UTTERANCE) / 16000
    # the engine got the utterance (with the pre-roll) and the end silence, not the lead-in
    assert speech_s <= len(tape.audio) / 16000 <= speech_s + 0.2 + 0.7 + 0.1
    # it ended end_silence_ms after the speech, not at the end of the audio
    assert tape.finished == 1
    assert final.speech_ms == len(tape.audio) * 1000 // 16000


def test_given_only_silence_then_no_input_after_the_timeout() -> None:
    tape = Tape()
    events = run(silence(5.0), tape)
    assert events == [NoInput(waited_ms=2000)]
    assert tape.audio == b"" and tape.finished == 0


def test_given_stationary_line_noise_then_it_is_not_speech() -> None:
    rng = np.random.default_rng(7)
    events = run(noise(3.0, dbfs=-30, rng=rng), Tape())
    assert events == [NoInput(waited_ms=2000)]


def test_given_speech_over_noise_then_it_is_still_found() -> None:
    rng = np.random.default_rng(8)
    noisy = noise(0.8, dbfs=-40, rng=rng) + add_noise(UTTERANCE, snr_db=15, rng=rng)
    events = run(noisy + noise(1.5, dbfs=-40, rng=rng), Tape())
    assert any(isinstance(e, SpeechStarted) for e in events)
    assert isinstance(events[-1], FinalText)


def test_given_speech_the_engine_makes_no_words_of_then_no_match() -> None:
    events = run(silence(0.3) + UTTERANCE + silence(1.0), Tape(words=False))
    assert isinstance(events[0], SpeechStarted)
    assert isinstance(events[-1], NoMatch) and events[-1].speech_ms > 1000


def test_given_a_caller_who_never_stops_then_cut_at_max_speech() -> None:
    settings = ListenSettings(max_speech_ms=1000)
    events = run(UTTERANCE + UTTERANCE, Tape(), settings)
    final = events[-1]
    assert isinstance(final, FinalText) and final.cut and final.speech_ms >= 1000


def test_given_hangup_mid_utterance_then_end_finishes_what_was_heard() -> None:
    tape = Tape()
    listener = Listener(tape, QUICK)
    for frame in frames(UTTERANCE[: len(UTTERANCE) // 2]):
        listener.feed(frame)
    final = listener.end()
    assert isinstance(final, FinalText) and final.text.startswith("heard")
    with pytest.raises(RuntimeError):
        listener.feed(bytes(FRAME_BYTES))


def test_given_odd_bytes_then_refused_loudly() -> None:
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        Listener(Tape()).feed(b"\x00\x01\x02")


def test_levels_and_vad_floor() -> None:
    assert frame_dbfs(bytes(FRAME_BYTES)) == float("-inf")
    full = np.full(160, 32767, dtype="<i2").tobytes()
    assert frame_dbfs(full) == pytest.approx(0.0, abs=0.01)
    vad = EnergyVad(ListenSettings())
    assert not vad.voiced(bytes(FRAME_BYTES))  # digital silence is never speech
    assert vad.voiced(frames(UTTERANCE)[20]) or vad.voiced(frames(UTTERANCE)[25])


async def test_listen_runs_the_engine_through_offload_and_stops_at_the_final() -> None:
    offloaded: list[str] = []

    async def offload(fn: Callable[[], T]) -> T:
        offloaded.append("call")
        return await asyncio.to_thread(fn)

    async def source() -> AsyncIterator[bytes]:
        for frame in frames(silence(0.2) + UTTERANCE + silence(3.0)):
            yield frame

    listener = Listener(Tape(), QUICK)
    events = [e async for e in listen(source(), listener, offload=offload)]
    assert isinstance(events[-1], FinalText)
    assert listener.done and offloaded


async def test_listen_ends_with_the_audio_when_the_caller_hangs_up() -> None:
    async def source() -> AsyncIterator[bytes]:
        for frame in frames(silence(0.2) + UTTERANCE[:8000]):
            yield frame

    events = [e async for e in listen(source(), Listener(Tape(), QUICK), offload=asyncio.to_thread)]
    assert isinstance(events[0], SpeechStarted) and isinstance(events[-1], FinalText)
