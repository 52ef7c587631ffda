"""The contact's state table: every path ends once, with an outcome that says who ended it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contact.conversation import (
    TRANSITIONS,
    Contact,
    ContactEvent,
    ContactState,
    IllegalContactTransition,
)
from context.models import Outcome

E = ContactEvent


def run(*events: ContactEvent) -> Contact:
    contact = Contact(contact_id="c1")
    for event in events:
        contact.apply(event)
    return contact


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        ((E.HANGUP,), Outcome.HANGUP_IN_IVR),
        ((E.SELF_SERVE,), Outcome.SELF_SERVED),
        ((E.ENQUEUE, E.HANGUP), Outcome.ABANDONED),
        ((E.ENQUEUE, E.OFFER, E.RING, E.HANGUP), Outcome.ABANDONED),
        ((E.ENQUEUE, E.OFFER, E.RING, E.ANSWER, E.HANGUP), Outcome.ANSWERED),
        ((E.ENQUEUE, E.OFFER, E.RING, E.ANSWER, E.TRANSFER), Outcome.TRANSFERRED),
        (
            (E.ENQUEUE, E.OFFER, E.RING, E.NO_ANSWER, E.OFFER, E.STALE, E.CALLBACK),
            Outcome.CALLBACK_REQUESTED,
        ),
        ((E.ENQUEUE, E.HAND_BACK), Outcome.RETURNED),
        ((E.HAND_BACK,), Outcome.RETURNED),
        ((E.ENQUEUE, E.REFUSE), Outcome.REFUSED),
        # The conversation goes on in Asterisk: a served caller is never "returned".
        ((E.ENQUEUE, E.OFFER, E.RING, E.ANSWER, E.HAND_BACK), Outcome.ANSWERED),
    ],
)
def test_given_a_path_then_it_ends_with_its_outcome(
    events: tuple[ContactEvent, ...], outcome: Outcome
) -> None:
    contact = run(*events)
    assert contact.ended and contact.outcome is outcome


def test_given_an_ended_contact_then_a_second_end_raises() -> None:
    contact = run(E.ENQUEUE, E.OFFER, E.RING, E.ANSWER, E.TRANSFER)
    with pytest.raises(IllegalContactTransition, match="no transition from ended on hangup"):
        contact.apply(E.HANGUP)
    assert contact.outcome is Outcome.TRANSFERRED


def test_given_illegal_shortcuts_then_they_raise() -> None:
    for events in ((E.ANSWER,), (E.ENQUEUE, E.ANSWER), (E.ENQUEUE, E.TRANSFER), (E.OFFER,)):
        with pytest.raises(IllegalContactTransition):
            run(*events)


@given(st.lists(st.sampled_from(list(ContactEvent)), max_size=12))
def test_any_event_sequence_moves_by_the_table_or_raises(events: list[ContactEvent]) -> None:
    contact = Contact(contact_id="p")
    for event in events:
        before = contact.state
        if (before, event) in TRANSITIONS:
            contact.apply(event)
            assert contact.state is TRANSITIONS[(before, event)][0]
        else:
            with pytest.raises(IllegalContactTransition):
                contact.apply(event)
            assert contact.state is before  # nothing half-applied
    assert contact.ended == (contact.outcome is not None)
    if contact.connected:
        # Once an agent answered, the caller is never queued again nor counted as lost.
        assert contact.outcome in (None, Outcome.ANSWERED, Outcome.TRANSFERRED)


def test_every_end_has_an_outcome_and_nothing_leaves_the_end() -> None:
    for (state, _event), (after, outcome) in TRANSITIONS.items():
        assert state is not ContactState.ENDED
        assert (after is ContactState.ENDED) == (outcome is not None)
