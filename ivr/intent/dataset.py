"""The example utterances the intent model learns from (`data/intents.tsv`, package data).

One file, four tab-separated columns: split, label, language, text. The `test` split is the
held-out part: `IntentModel.train()` reads only `train`, and accuracy is measured on `test`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

from ivr.intent.labels import INTENTS

Split = Literal["train", "test"]


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    intent: str
    language: str


class DatasetError(ValueError):
    """The examples file is malformed (our own package data: a bug, raised loudly)."""


def load(split: Split, text: str | None = None) -> tuple[Example, ...]:
    """The examples of one split, in file order; `text` parses that instead of the shipped file."""
    if text is None:
        text = resources.files("ivr.intent").joinpath("data/intents.tsv").read_text("utf-8")
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DatasetError(f"intents.tsv line {number}: expected 4 tab-separated columns")
        row_split, intent, language, utterance = parts
        if row_split not in ("train", "test"):
            raise DatasetError(f"intents.tsv line {number}: unknown split {row_split!r}")
        if intent not in INTENTS:
            raise DatasetError(f"intents.tsv line {number}: unknown intent {intent!r}")
        if row_split == split:
            examples.append(Example(text=utterance, intent=intent, language=language))
    return tuple(examples)
