"""Callers' voices for tests and benchmarks: espeak-ng speech at telephone quality (8 kHz slin),
silence and noise around it, as AudioSocket would deliver it. A test tool, never the call path.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

SAMPLE_RATE_HZ = 8000
# espeak-ng voices per language; the rate is a little slower than espeak's default (175 wpm),
# closer to a caller answering a machine.
VOICES = {"en": "en-us", "it": "it"}
WORDS_PER_MINUTE = 150


class AudioToolMissing(RuntimeError):
    """espeak-ng or sox is not installed (scripts/prepare-machine.sh installs both)."""


def speak(text: str, language: str, *, words_per_minute: int = WORDS_PER_MINUTE) -> bytes:
    """`text` spoken by espeak-ng, resampled by sox to 8 kHz signed 16-bit mono (raw slin)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise AudioToolMissing(f"{tool} is not installed (run scripts/prepare-machine.sh)")
    voice = VOICES.get(language, language)
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    raw = subprocess.run(
        [
            *("sox", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE_HZ), "-c", "1"),
            *("-b", "16", "-e", "signed-integer", "-L", "-"),
        ],
        input=wav,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return raw


def silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * SAMPLE_RATE_HZ))


def add_noise(pcm: bytes, *, snr_db: float, rng: np.random.Generator) -> bytes:
    """White noise at `snr_db` below the speech's RMS (over the whole clip), clipped to 16 bits."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    noise = rng.normal(0.0, max(rms, 1.0) / 10 ** (snr_db / 20), samples.size)
    return np.clip(samples + noise, -32768, 32767).astype("<i2").tobytes()


def noise(seconds: float, *, dbfs: float, rng: np.random.Generator) -> bytes:
    """Stationary white noise at `dbfs` (a noisy line with nobody talking)."""
    n = round(seconds * SAMPLE_RATE_HZ)
    level = 32768.0 * 10 ** (dbfs / 20)
    return np.clip(rng.normal(0.0, level, n), -32768, 32767).astype("<i2").tobytes()


def frames(pcm: bytes, frame_bytes: int = 320) -> list[bytes]:
    """20 ms frames, the last one zero-padded (as AudioSocket sends them)."""
    return [
        pcm[i : i + frame_bytes].ljust(frame_bytes, b"\0") for i in range(0, len(pcm), frame_bytes)
    ]
