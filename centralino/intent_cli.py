"""`centralino intent classify`: utterances on stdin, one JSON object per line on stdout.

Each input line gives exactly one output line, in order, so the output can be pasted beside
the input: `{"text": …, "intent": …, "confidence": …}` (UTF-8; bytes that are not UTF-8 become
U+FFFD). A blank line (nothing but spaces) gives `{"text": "", "intent": null,
"confidence": null}`: no guess is made from silence. Words alone decide (no caller context, no
keys); a confidence below the model's `confirm_below` (0.5) is what the IVR would confirm with
the caller before routing. A line longer than `MAX_LINE_BYTES` is cut there (and a warning
logged on stderr).
"""

from __future__ import annotations

import logging
from typing import BinaryIO, TextIO

import orjson

from ivr.intent import IntentModel

log = logging.getLogger(__name__)

# Far beyond any utterance (a minute of speech is ~1 kB of text): bounds what one line costs.
MAX_LINE_BYTES = 64 * 1024


def classify_stream(model: IntentModel, source: BinaryIO, out: TextIO) -> int:
    """Classify every line of `source`; returns how many lines were read."""
    count = 0
    while True:
        raw = source.readline(MAX_LINE_BYTES)
        if not raw:
            return count
        count += 1
        if not raw.endswith(b"\n") and len(raw) == MAX_LINE_BYTES:
            skipped = _skip_rest_of_line(source)
            log.warning("line %d: longer than %d bytes, %d cut", count, MAX_LINE_BYTES, skipped)
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            row: dict[str, object] = {"text": "", "intent": None, "confidence": None}
        else:
            prediction = model.classify(text)
            row = {
                "text": text,
                "intent": prediction.intent,
                "confidence": round(prediction.confidence, 4),
            }
        out.write(orjson.dumps(row).decode() + "\n")
        out.flush()  # one answer per line as it comes: usable as a co-process


def _skip_rest_of_line(source: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = source.readline(MAX_LINE_BYTES)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped
