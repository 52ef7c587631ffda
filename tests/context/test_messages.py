"""Delivery states move forward only; senders resolve by channel (pure)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from context.identity import PhoneNormaliser
from context.messages import (
    DeliveryState,
    InboundMessage,
    fold_states,
    may_advance,
    sender_of,
    states_before,
)
from context.models import CallerProblem, ChannelKind, Identity, IdentityKind

Q, S, F, D, R = (
    DeliveryState.QUEUED,
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.DELIVERED,
    DeliveryState.READ,
)


def test_states_only_move_forward() -> None:
    assert may_advance(None, S)
    assert may_advance(S, D) and may_advance(D, R) and may_advance(S, R)
    assert not may_advance(R, D)  # a late "delivered" after "read"
    assert not may_advance(D, D)
    assert not may_advance(D, F)  # delivered means it did not fail
    assert may_advance(F, D)  # whatever order the two arrived in


def test_states_before_is_what_may_advance_says() -> None:
    for new in DeliveryState:
        assert states_before(new) == {s for s in DeliveryState if may_advance(s, new)}


@given(st.lists(st.sampled_from(list(DeliveryState)), min_size=1, max_size=8))
def test_the_final_state_does_not_depend_on_arrival_order(states: list[DeliveryState]) -> None:
    finals = set()
    for order in itertools.islice(itertools.permutations(states), 50):
        current = None
        for state in order:
            if may_advance(current, state):
                current = state
        finals.add(current)
    assert finals == {fold_states(states)}


def message(channel: ChannelKind, sender: str, name: str = "") -> InboundMessage:
    return InboundMessage(
        channel=channel,
        provider_message_id="m1",
        sender=sender,
        recipient="x",
        text="",
        provider_time=None,
        raw={},
        sender_name=name,
    )


def test_a_whatsapp_sender_is_found_under_its_phone_twin_too() -> None:
    sender = sender_of(message(ChannelKind.WHATSAPP, "393331234567", "Mario"), PhoneNormaliser())
    assert sender.identity == Identity(IdentityKind.WHATSAPP, "393331234567")
    assert Identity(IdentityKind.PHONE, "+393331234567") in sender.lookup
    assert sender.display_name == "Mario"


def test_an_sms_sender_and_its_whatsapp_twin_share_the_lock_key() -> None:
    phones = PhoneNormaliser()
    sms = sender_of(message(ChannelKind.SMS, "+39 333 123 4567"), phones)
    wa = sender_of(message(ChannelKind.WHATSAPP, "393331234567"), phones)
    assert sms.identity == Identity(IdentityKind.PHONE, "+393331234567")
    assert sms.lock_key == wa.lock_key
    assert sms.display_name == "+393331234567"


def test_an_alphanumeric_sms_sender_has_no_identity() -> None:
    sender = sender_of(message(ChannelKind.SMS, "ACME"), PhoneNormaliser())
    assert sender.identity is None and sender.lookup == () and sender.lock_key == ""
    assert sender.problem is CallerProblem.INVALID
