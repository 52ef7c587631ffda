"""Why is this caller calling? Words, what we already know, and the key they pressed.

- Words: a TF-IDF (`features.py`) + multinomial logistic regression (`logreg.py`) trained at
  start from the shipped examples (`data/intents.tsv`, train split only; well under a second).
- Context: what the pre-answer fan-out found (an overdue invoice, a shipment on the road, an
  open ticket) multiplies the odds of the intents it explains (Bayes: the classifier was
  trained on balanced classes, so its probabilities stand for likelihoods under a flat prior).
- DTMF: a menu key overrides speech: the caller chose, we do not second-guess them.
- Low confidence never routes: the prediction's `action` is `confirm`, and the flow asks
  ("you are calling about an invoice, is that right?") or falls back to the menu.

Every prediction carries its reasons, in words an agent can read on the screen-pop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from ivr.intent.dataset import Example, load
from ivr.intent.features import Vectorizer, fold
from ivr.intent.labels import INTENTS, MENU
from ivr.intent.logreg import Softmax

ROUTE: Final = "route"
CONFIRM: Final = "confirm"

# Below this the flow confirms instead of routing. Chosen on the held-out split (bench/intent.py
# prints how many right and wrong answers fall either side): a wrong queue costs a transfer,
# a question costs two seconds.
CONFIRM_BELOW: Final = 0.5
# A menu key is strong but not absolute evidence (people press the wrong key): 90% mass.
_MENU_CONFIDENCE: Final = 0.9
# The penalty of the logistic regression (1/C), picked by 5-fold cross-validation on the train
# split (never on the held-out one): 1e-2 0.77, 1e-3 0.80, 3e-4 0.82, 1e-4 0.82.
_L2: Final = 3e-4


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
    # ROUTE: queue the call where `intent` leads; CONFIRM: ask first (or fall back to the menu).
    action: str = ROUTE
    # What decided: "dtmf", "speech", "context" (priors only) or "none" (nothing known).
    evidence: str = "none"
    transcript: str = ""

    @property
    def needs_confirmation(self) -> bool:
        return self.action == CONFIRM


@dataclass(frozen=True, slots=True, eq=False)
class IntentModel:
    """The trained classifier plus the rules that combine it with context and DTMF."""

    vectorizer: Vectorizer
    classifier: Softmax
    confirm_below: float = CONFIRM_BELOW

    @classmethod
    def train(
        cls, examples: Iterable[Example] | None = None, *, confirm_below: float = CONFIRM_BELOW
    ) -> IntentModel:
        """Train on `examples` (default: the shipped train split; never the held-out one)."""
        rows = tuple(examples) if examples is not None else load("train")
        if not rows:
            raise ValueError("no examples to train the intent model on")
        vectorizer, matrix = Vectorizer.fit([e.text for e in rows])
        labels = np.array([INTENTS.index(e.intent) for e in rows], dtype=np.intp)
        classifier = Softmax.fit(matrix, labels, len(INTENTS), l2=_L2)
        return cls(vectorizer=vectorizer, classifier=classifier, confirm_below=confirm_below)

    def classify(self, transcript: str) -> Prediction:
        """Words alone (no context, no key): what `centralino intent classify` prints."""
        return self.predict(signals=None, transcript=transcript)

    def predict(
        self,
        *,
        signals: Signals | None = Signals(),
        transcript: str = "",
        menu_key: str | None = None,
    ) -> Prediction:
        log_score, reasons = _log_prior(signals) if signals is not None else (_flat(), [])
        evidence = "context" if reasons else "none"
        columns, values = self.vectorizer.row(transcript)
        if len(columns):
            log_likelihood = self.classifier.log_proba(columns, values)
            for k, intent in enumerate(INTENTS):
                log_score[intent] += float(log_likelihood[k])
            evidence = "speech"
        elif fold(transcript):
            reasons.append("said nothing the model knows")
        probabilities = _softmax(log_score)
        if len(columns):
            best = max(INTENTS, key=lambda i: probabilities[i])
            reasons.append(self._explain(best, columns, values))
        if menu_key is not None and menu_key in MENU:
            chosen = MENU[menu_key]
            rest = 1.0 - probabilities[chosen]
            probabilities = {
                i: _MENU_CONFIDENCE
                if i == chosen
                else (1 - _MENU_CONFIDENCE) * (probabilities[i] / rest if rest > 0 else 1 / 6)
                for i in INTENTS
            }
            reasons.append(f"pressed {menu_key} ({chosen})")
            evidence = "dtmf"
        # Ties (nothing known, nothing said) go to a person, never to the first label.
        best = max(INTENTS, key=lambda i: (probabilities[i], i == "agent"))
        confidence = probabilities[best]
        action = ROUTE
        if evidence != "dtmf" and confidence < self.confirm_below:
            action = CONFIRM
            reasons.append(f"confidence {confidence:.2f} < {self.confirm_below:.2f}: confirm")
        return Prediction(
            intent=best,
            confidence=confidence,
            scores=probabilities,
            reasons=tuple(reasons),
            action=action,
            evidence=evidence,
            transcript=transcript,
        )

    def _explain(
        self, intent: str, columns: npt.NDArray[np.intp], values: npt.NDArray[np.float64]
    ) -> str:
        """The words that pushed hardest towards `intent` (whole words and pairs only)."""
        k = INTENTS.index(intent)
        weights = self.classifier.weights[columns]
        push = values * (weights[:, k] - weights.mean(axis=1))
        names = self.vectorizer.names
        words = [
            names[columns[j]][2:].replace("_", " ")
            for j in np.argsort(-push)
            if push[j] > 0 and names[columns[j]][0] in "wb"
        ]
        said = ", ".join(words[:3]) or "parts of words"
        return f"said {said} → {intent}"


def _flat() -> dict[str, float]:
    return dict.fromkeys(INTENTS, -math.log(len(INTENTS)))


def _log_prior(signals: Signals) -> tuple[dict[str, float], list[str]]:
    """Context priors: each known fact multiplies the odds of the intents it explains."""
    weight = dict.fromkeys(INTENTS, 1.0)
    reasons: list[str] = []
    if signals.overdue_invoices:
        # More likely than all six other intents together: a customer who owes money and calls
        # hears the self-service offer first (ivr/inbound.py asks for confidence >= 0.5).
        weight["billing"] *= 7.0
        reasons.append(f"{signals.overdue_invoices} overdue invoice(s) → billing")
    if signals.shipments_in_transit:
        weight["order_status"] *= 3.0
        reasons.append(f"{signals.shipments_in_transit} shipment(s) in transit → order_status")
    if signals.open_tickets:
        topic = (
            signals.open_ticket_topic
            if signals.open_ticket_topic in weight
            else "technical_support"
        )
        weight[topic] *= 3.0
        reasons.append(f"{signals.open_tickets} open ticket(s) → {topic}")
    if not signals.known_customer:
        weight["sales"] *= 1.5  # strangers call to buy more often than customers do
    total = sum(weight.values())
    return {i: math.log(w / total) for i, w in weight.items()}, reasons


def _softmax(log_score: Mapping[str, float]) -> dict[str, float]:
    top = max(log_score.values())
    exp = {i: math.exp(s - top) for i, s in log_score.items()}
    total = sum(exp.values())
    return {i: v / total for i, v in exp.items()}
