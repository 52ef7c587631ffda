"""Speech engines from the settings: loaded once at start, one recogniser per call from them.

A configured model that is missing or broken stops the start with its name (never a caller
who finds out by silence); with no engines configured nothing is loaded (DTMF only).
"""

from __future__ import annotations

from collections.abc import Mapping

from centralino.settings import SpeechSettings
from ivr.speech import ListenSettings, RecognizerFactory


def load_speech(settings: SpeechSettings) -> Mapping[str, RecognizerFactory]:
    """language -> loaded engine (raises `ivr.speech.SpeechError` naming a bad model)."""
    engines: dict[str, RecognizerFactory] = {}
    for language, engine in sorted(settings.engines.items()):
        if engine.engine == "whisper":
            from centralino.adapters.speech_whisper import WhisperModel

            engines[language] = WhisperModel.load(
                engine.model,
                language=language,
                initial_prompt=engine.prompt,
                cache_dir=settings.cache_dir,
            )
        else:
            from centralino.adapters.speech_vosk import VoskModel

            engines[language] = VoskModel.load(engine.model)
    return engines


def listen_settings(settings: SpeechSettings) -> ListenSettings:
    return ListenSettings(
        no_input_ms=settings.no_input_ms,
        end_silence_ms=settings.end_silence_ms,
        max_speech_ms=settings.max_speech_ms,
    )
