"""Why is this caller calling? Intent prediction from what we know and what they say or press.

A multinomial naive Bayes over words (Italian and English examples shipped below) gives the
likelihood of each intent from speech; what we already know about the caller (an overdue invoice,
a shipment on the road, an open ticket) sets the prior; a DTMF menu choice is near-certain
evidence. Everything is pure and deterministic, so it is easy to test and to explain: each
prediction carries the reasons that moved it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

INTENTS: tuple[str, ...] = ("billing", "delivery", "support", "sales", "other")

# The IVR menu: key → intent. "0" asks for an operator without saying why.
MENU: Mapping[str, str] = {"1": "billing", "2": "delivery", "3": "support", "4": "sales"}

# Small built-in training set (the product's callers speak Italian first, English second).
_EXAMPLES: Mapping[str, tuple[str, ...]] = {
    "billing": (
        "fattura non pagata",
        "ho ricevuto una fattura sbagliata",
        "pagamento bonifico scadenza",
        "vorrei sapere lo stato della mia fattura",
        "addebito doppio sul conto",
        "rimborso nota di credito",
        "invoice payment due",
        "i was charged twice on my bill",
        "question about my invoice",
    ),
    "delivery": (
        "dove si trova il mio ordine",
        "spedizione in ritardo",
        "il pacco non è arrivato",
        "tracking della consegna",
        "corriere consegna ordine",
        "where is my order",
        "my parcel has not arrived",
        "delivery tracking shipment",
    ),
    "support": (
        "non funziona il prodotto",
        "ho un problema tecnico",
        "assistenza guasto riparazione",
        "errore del software",
        "la pratica aperta non è risolta",
        "it does not work",
        "technical problem with the device",
        "support ticket broken",
    ),
    "sales": (
        "vorrei acquistare",
        "preventivo offerta prezzo",
        "informazioni su un nuovo prodotto",
        "vorrei fare un ordine",
        "i want to buy",
        "price quote for a new product",
    ),
    "other": (
        "vorrei parlare con un operatore",
        "altro",
        "buongiorno",
        "speak to an operator",
        "something else",
    ),
}

_WORD = re.compile(r"[a-z0-9]+")
# Laplace smoothing: an unseen word neither vetoes nor favours an intent.
_ALPHA = 1.0
# A menu key is strong but not absolute evidence (people press the wrong key): 90% mass.
_MENU_CONFIDENCE = 0.9


def tokens(text: str) -> list[str]:
    """Lower-case ASCII words with accents folded (`è` → `e`)."""
    folded = unicodedata.normalize("NFKD", text.lower())
    ascii_text = folded.encode("ascii", "ignore").decode("ascii")
    return _WORD.findall(ascii_text)


@dataclass(frozen=True, slots=True)
class Signals:
    """What we already know about the caller when the call starts (from the fan-out)."""

    overdue_invoices: int = 0
    shipments_in_transit: int = 0
    open_tickets: int = 0
    open_ticket_topic: str | None = None  # one of INTENTS, if the open ticket has one
    known_customer: bool = False


@dataclass(frozen=True, slots=True)
class Prediction:
    intent: str
    confidence: float
    scores: Mapping[str, float]
    reasons: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class IntentModel:
    """Word likelihoods per intent, trained from examples."""

    log_likelihood: Mapping[str, Mapping[str, float]]
    log_unseen: Mapping[str, float]

    @classmethod
    def train(cls, examples: Mapping[str, Iterable[str]] = _EXAMPLES) -> IntentModel:
        counts = {
            intent: Counter(w for text in texts for w in tokens(text))
            for intent, texts in examples.items()
        }
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

    def predict(
        self, *, signals: Signals = Signals(), transcript: str = "", menu_key: str | None = None
    ) -> Prediction:
        log_score, reasons = _log_prior(signals)
        words = [w for w in tokens(transcript) if any(w in t for t in self.log_likelihood.values())]
        for intent in INTENTS:
            table = self.log_likelihood[intent]
            log_score[intent] += sum(table.get(w, self.log_unseen[intent]) for w in words)
        if words:
            reasons.append(f"said: {' '.join(words[:8])}")
        if menu_key is not None and menu_key in MENU:
            chosen = MENU[menu_key]
            for intent in INTENTS:
                share = _MENU_CONFIDENCE if intent == chosen else (1 - _MENU_CONFIDENCE) / 4
                log_score[intent] += math.log(share)
            reasons.append(f"pressed {menu_key} ({chosen})")
        probabilities = _softmax(log_score)
        best = max(INTENTS, key=lambda i: probabilities[i])
        return Prediction(best, probabilities[best], probabilities, tuple(reasons))


def _log_prior(signals: Signals) -> tuple[dict[str, float], list[str]]:
    """Context priors: each known fact multiplies the odds of the intents it explains."""
    weight = dict.fromkeys(INTENTS, 1.0)
    reasons: list[str] = []
    if signals.overdue_invoices:
        weight["billing"] *= 4.0
        reasons.append(f"{signals.overdue_invoices} overdue invoice(s)")
    if signals.shipments_in_transit:
        weight["delivery"] *= 3.0
        reasons.append(f"{signals.shipments_in_transit} shipment(s) in transit")
    if signals.open_tickets:
        topic = signals.open_ticket_topic if signals.open_ticket_topic in weight else "support"
        weight[topic] *= 3.0
        reasons.append(f"{signals.open_tickets} open ticket(s) about {topic}")
    if not signals.known_customer:
        weight["sales"] *= 1.5  # strangers call to buy more often than customers do
    total = sum(weight.values())
    return {i: math.log(w / total) for i, w in weight.items()}, reasons


def _softmax(log_score: Mapping[str, float]) -> dict[str, float]:
    top = max(log_score.values())
    exp = {i: math.exp(s - top) for i, s in log_score.items()}
    total = sum(exp.values())
    return {i: v / total for i, v in exp.items()}
