"""Intent prediction: words, context priors and menu keys each move the prediction; low
confidence asks instead of routing; accuracy on the held-out examples meets the target."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.intent import CONFIRM, INTENTS, MENU, ROUTE, IntentModel, Signals, load, tokens
from ivr.intent.dataset import DatasetError
from ivr.intent.naive_bayes import NaiveBayes

MODEL = IntentModel.train()
# The targets (bench/intent.py measures the same figures with more detail).
TEXT_ACCURACY_TARGET = 0.95
PER_UTTERANCE_MS_TARGET = 20.0


def test_labels_are_the_products_seven() -> None:
    assert INTENTS == (
        "billing",
        "order_status",
        "technical_support",
        "cancel",
        "agent",
        "sales",
        "account_update",
    )
    assert set(MENU.values()) == set(INTENTS)


def test_tokens_fold_accents_and_case() -> None:
    assert tokens("Il pacco NON è arrivato!") == ["il", "pacco", "non", "e", "arrivato"]


def test_examples_cover_every_label_in_both_languages_and_held_out_is_unseen() -> None:
    train, test = load("train"), load("test")
    assert len(train) + len(test) >= 600
    for split in (train, test):
        for language in ("en", "it"):
            assert {e.intent for e in split if e.language == language} == set(INTENTS)
    assert not {e.text for e in test} & {e.text for e in train}


def test_given_held_out_examples_then_accuracy_meets_the_target() -> None:
    test = load("test")
    right = [MODEL.classify(e.text).intent == e.intent for e in test]
    assert sum(right) / len(test) >= TEXT_ACCURACY_TARGET
    # Per language the bar is lower (84 utterances each: one error is 1.2 points); measured
    # 0.94 English, 0.98 Italian.
    for language in ("en", "it"):
        part = [r for r, e in zip(right, test, strict=True) if e.language == language]
        assert sum(part) / len(part) >= 0.9, language


def test_tf_idf_model_beats_the_old_naive_bayes_on_held_out() -> None:
    test = load("test")
    peer = NaiveBayes.train(load("train"))
    ours = sum(MODEL.classify(e.text).intent == e.intent for e in test)
    theirs = sum(peer.classify(e.text) == e.intent for e in test)
    assert ours > theirs


def test_training_is_deterministic_and_fast() -> None:
    times = []
    # CPU time of this thread, best of three: the test machine's cores are shared with other
    # work, which stretches wall-clock time but not the work done here.
    for _ in range(3):
        started = time.thread_time()
        again = IntentModel.train()
        times.append(time.thread_time() - started)
    assert min(times) < 1.0
    assert (again.classifier.weights == MODEL.classifier.weights).all()


def test_classification_is_fast() -> None:
    texts = [e.text for e in load("test")]
    started = time.perf_counter()
    for text in texts:
        MODEL.classify(text)
    per_utterance_ms = (time.perf_counter() - started) * 1000 / len(texts)
    assert per_utterance_ms < PER_UTTERANCE_MS_TARGET


def test_speech_alone_picks_the_intent_it_describes() -> None:
    said = {
        "dov'è il mio ordine? la spedizione è in ritardo": "order_status",
        "ho una domanda sulla fattura da pagare": "billing",
        "the device does not work": "technical_support",
        "I want to cancel my subscription": "cancel",
        "vorrei cambiare il mio indirizzo email": "account_update",
        "can I get a quote for your premium plan": "sales",
        "fatemi parlare con un operatore": "agent",
    }
    for text, intent in said.items():
        prediction = MODEL.classify(text)
        assert prediction.intent == intent, text
        assert prediction.action == ROUTE and prediction.evidence == "speech"
        assert any(r.startswith("said ") and r.endswith(intent) for r in prediction.reasons)


def test_overdue_invoice_makes_billing_the_best_guess_before_a_word_is_said() -> None:
    silent = MODEL.predict(signals=Signals(known_customer=True))
    overdue = MODEL.predict(signals=Signals(known_customer=True, overdue_invoices=2))
    assert overdue.intent == "billing"
    assert overdue.scores["billing"] > silent.scores["billing"]
    assert any("overdue" in r for r in overdue.reasons)
    assert overdue.evidence == "context"


def test_priors_shift_an_ambiguous_utterance() -> None:
    # "when will it arrive" could be a refund or a parcel: the shipment on the road decides.
    text = "when will it arrive"
    known = Signals(known_customer=True)
    plain = MODEL.predict(signals=known, transcript=text)
    on_the_road = MODEL.predict(
        signals=Signals(known_customer=True, shipments_in_transit=1), transcript=text
    )
    overdue = MODEL.predict(
        signals=Signals(known_customer=True, overdue_invoices=1), transcript=text
    )
    ticket = MODEL.predict(signals=Signals(known_customer=True, open_tickets=1), transcript=text)
    assert on_the_road.scores["order_status"] > plain.scores["order_status"]
    assert overdue.scores["billing"] > plain.scores["billing"]
    assert ticket.scores["technical_support"] > plain.scores["technical_support"]
    assert any("in transit → order_status" in r for r in on_the_road.reasons)


def test_open_ticket_topic_sets_the_prior() -> None:
    p = MODEL.predict(signals=Signals(open_tickets=1, open_ticket_topic="order_status"))
    assert p.intent == "order_status"


def test_dtmf_overrides_speech_and_priors() -> None:
    p = MODEL.predict(
        signals=Signals(overdue_invoices=3),
        transcript="I want to pay my invoice",
        menu_key="3",
    )
    assert p.intent == "technical_support"
    assert p.action == ROUTE and p.evidence == "dtmf"
    assert "pressed 3 (technical_support)" in p.reasons


def test_menu_zero_asks_for_a_person() -> None:
    assert MODEL.predict(menu_key="0").intent == "agent"


def test_unknown_menu_key_is_ignored() -> None:
    assert MODEL.predict(menu_key="9") == MODEL.predict()


@pytest.mark.parametrize(
    "text",
    [
        "",  # silence
        "hmm",  # a noise the recogniser wrote down
        "그 요금 청구서가 잘못되었습니다",  # another language the model does not know
        "Ich möchte mit jemandem sprechen bitte",
        "x" * 100_000,  # a huge line
        "\x00\x01\ufffd",
    ],
)
def test_given_bad_input_then_low_confidence_asks_to_confirm(text: str) -> None:
    p = MODEL.classify(text)
    if p.evidence == "none":  # nothing to go on: a person, not the first label
        assert p.intent == "agent"
    assert p.action == CONFIRM
    assert p.confidence < MODEL.confirm_below
    assert any("confirm" in r for r in p.reasons)


def test_confirmation_threshold_is_the_models_setting() -> None:
    strict = IntentModel.train(confirm_below=0.99)
    assert strict.classify("where is my parcel").action == CONFIRM
    assert MODEL.classify("where is my parcel").action == ROUTE


def test_malformed_examples_file_is_refused_naming_the_line() -> None:
    with pytest.raises(DatasetError, match="line 2: unknown intent 'weather'"):
        load("train", "train\tbilling\ten\tan invoice\ntrain\tweather\ten\train today\n")
    with pytest.raises(DatasetError, match="line 1: expected 4"):
        load("train", "train billing en no tabs\n")
    with pytest.raises(ValueError, match="no examples"):
        IntentModel.train([])


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=200),
    overdue=st.integers(0, 5),
    transit=st.integers(0, 5),
    tickets=st.integers(0, 3),
    key=st.sampled_from([None, "0", "1", "2", "3", "4", "5", "6", "#"]),
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
    assert p.action in (ROUTE, CONFIRM)
