"""Intent prediction: words, context priors and menu keys each move the prediction."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ivr.intent import INTENTS, IntentModel, Signals, tokens

MODEL = IntentModel.train()


def test_tokens_fold_accents_and_case() -> None:
    assert tokens("Il pacco NON è arrivato!") == ["il", "pacco", "non", "e", "arrivato"]


def test_speech_alone_picks_the_intent_it_describes() -> None:
    assert MODEL.predict(transcript="dov'è il mio ordine? la spedizione è in ritardo").intent == (
        "delivery"
    )
    assert MODEL.predict(transcript="ho una domanda sulla fattura da pagare").intent == "billing"
    assert MODEL.predict(transcript="the device does not work, technical problem").intent == (
        "support"
    )


def test_overdue_invoice_makes_billing_the_best_guess_before_a_word_is_said() -> None:
    silent = MODEL.predict(signals=Signals(known_customer=True))
    overdue = MODEL.predict(signals=Signals(known_customer=True, overdue_invoices=2))
    assert overdue.intent == "billing"
    assert overdue.scores["billing"] > silent.scores["billing"]
    assert any("overdue" in r for r in overdue.reasons)


def test_open_ticket_topic_sets_the_prior() -> None:
    p = MODEL.predict(signals=Signals(open_tickets=1, open_ticket_topic="delivery"))
    assert p.intent == "delivery"


def test_menu_key_outweighs_priors() -> None:
    p = MODEL.predict(signals=Signals(overdue_invoices=3), menu_key="3")
    assert p.intent == "support"
    assert "pressed 3 (support)" in p.reasons


def test_unknown_menu_key_is_ignored() -> None:
    assert MODEL.predict(menu_key="9") == MODEL.predict()


@given(
    text=st.text(max_size=200),
    overdue=st.integers(0, 5),
    transit=st.integers(0, 5),
    tickets=st.integers(0, 3),
    key=st.sampled_from([None, "0", "1", "2", "3", "4", "#"]),
)
def test_scores_are_a_probability_distribution(
    text: str, overdue: int, transit: int, tickets: int, key: str | None
) -> None:
    signals = Signals(overdue_invoices=overdue, shipments_in_transit=transit, open_tickets=tickets)
    p = MODEL.predict(signals=signals, transcript=text, menu_key=key)
    assert set(p.scores) == set(INTENTS)
    assert math.isclose(sum(p.scores.values()), 1.0, rel_tol=1e-9)
    assert all(0.0 <= v <= 1.0 for v in p.scores.values())
    assert p.confidence == max(p.scores.values())
