"""TF-IDF features of an utterance: words, word pairs and character n-grams, accents folded.

Character n-grams (3 to 5, inside word boundaries) make the model robust to what speech
recognition does to words (`fatturazione` / `fattura`, `tracking` / `track in`); words and
word pairs carry the phrases (`non funziona`, `speak to`). Sublinear term frequency, smoothed
inverse document frequency and L2 normalisation, as in the usual TF-IDF.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from scipy import sparse

_WORD = re.compile(r"[a-z0-9]+")
_CHAR_NGRAMS = (3, 4, 5)
# A line longer than this is cut before featurising: no caller says 2,000 characters at once,
# and the cost of a prediction must stay bounded whatever reaches it (a CLI pipe, a bad ASR).
MAX_CHARS = 2000


def fold(text: str) -> str:
    """Lower case, accents folded (`è` → `e`), anything not a letter or digit a space."""
    decomposed = unicodedata.normalize("NFKD", text[:MAX_CHARS].lower())
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii")
    return " ".join(_WORD.findall(ascii_text))


def tokens(text: str) -> list[str]:
    """The folded words of `text`."""
    return fold(text).split()


def terms(text: str) -> Counter[str]:
    """Every feature of `text` with its count (prefixes keep the three kinds apart)."""
    words = tokens(text)
    counts: Counter[str] = Counter(f"w:{w}" for w in words)
    counts.update(f"b:{a}_{b}" for a, b in pairwise(words))
    for word in words:
        padded = f" {word} "
        for n in _CHAR_NGRAMS:
            counts.update(f"c:{padded[i : i + n]}" for i in range(len(padded) - n + 1))
    return counts


@dataclass(frozen=True, slots=True)
class Vectorizer:
    vocabulary: dict[str, int]
    names: tuple[str, ...]  # column → feature (for the reasons)
    idf: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[Vectorizer, sparse.csr_matrix]:
        """The vocabulary and idf of `texts`, and their matrix (each text featurised once)."""
        counted = [terms(text) for text in texts]
        document_frequency: Counter[str] = Counter()
        for counts in counted:
            document_frequency.update(counts.keys())
        # sorted: the same file always gives the same columns (deterministic weights)
        vocabulary = {term: i for i, term in enumerate(sorted(document_frequency))}
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + document_frequency[t])) + 1.0 for t in vocabulary])
        vectorizer = cls(vocabulary=vocabulary, names=tuple(vocabulary), idf=idf)
        return vectorizer, vectorizer._matrix([vectorizer._weigh(c) for c in counted])

    def row(self, text: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """The known features of one text as (columns, L2-normalised weights); empty when the
        text shares nothing with the training set (noise, another language)."""
        return self._weigh(terms(text))

    def _weigh(self, counted: Counter[str]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        found = [(self.vocabulary[t], c) for t, c in counted.items() if t in self.vocabulary]
        if not found:
            return np.empty(0, dtype=np.intp), np.empty(0)
        columns = np.fromiter((c for c, _ in found), dtype=np.intp, count=len(found))
        counts = np.fromiter((k for _, k in found), dtype=np.float64, count=len(found))
        weights = (1.0 + np.log(counts)) * self.idf[columns]
        return columns, weights / np.linalg.norm(weights)

    def matrix(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self._matrix([self.row(t) for t in texts])

    def _matrix(
        self, rows: Sequence[tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]]
    ) -> sparse.csr_matrix:
        indptr = np.cumsum([0, *(len(c) for c, _ in rows)])
        columns = np.concatenate([c for c, _ in rows]) if rows else np.empty(0, np.intp)
        values = np.concatenate([v for _, v in rows]) if rows else np.empty(0)
        return sparse.csr_matrix((values, columns, indptr), shape=(len(rows), len(self.vocabulary)))
