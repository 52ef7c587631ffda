"""The first intent model (multinomial naive Bayes over words), kept as the benchmark's peer.

bench/intent.py trains it on the same train split as `IntentModel` and compares accuracy and
speed in the same run. Not used on the call path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ivr.intent.dataset import Example
from ivr.intent.features import tokens

# Laplace smoothing: an unseen word neither vetoes nor favours an intent.
_ALPHA = 1.0


@dataclass(frozen=True, slots=True)
class NaiveBayes:
    """Word likelihoods per intent, trained from examples."""

    log_likelihood: Mapping[str, Mapping[str, float]]
    log_unseen: Mapping[str, float]

    @classmethod
    def train(cls, examples: Iterable[Example]) -> NaiveBayes:
        counts: dict[str, Counter[str]] = {}
        for example in examples:
            counts.setdefault(example.intent, Counter()).update(tokens(example.text))
        vocabulary = set().union(*counts.values())
        log_likelihood: dict[str, dict[str, float]] = {}
        log_unseen: dict[str, float] = {}
        for intent, counter in counts.items():
            total = sum(counter.values()) + _ALPHA * (len(vocabulary) + 1)
            log_likelihood[intent] = {
                w: math.log((counter[w] + _ALPHA) / total) for w in vocabulary
            }
            log_unseen[intent] = math.log(_ALPHA / total)
        return cls(log_likelihood=log_likelihood, log_unseen=log_unseen)

    def classify(self, transcript: str) -> str:
        words = [w for w in tokens(transcript) if any(w in t for t in self.log_likelihood.values())]
        scores = {
            intent: sum(table.get(w, self.log_unseen[intent]) for w in words)
            for intent, table in self.log_likelihood.items()
        }
        return max(scores, key=lambda i: scores[i])
