"""The chat widget's frames (sans-I/O)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralino.channels.errors import MalformedPayload
from centralino.channels.webchat import ChatHello, ChatText, parse_frame, to_message
from context.models import ChannelKind, IdentityKind

AT = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


def test_hello_and_message_frames() -> None:
    hello = parse_frame('{"type":"hello","visitor_id":"v-1","name":"Anna","email":"a@b.it"}')
    assert hello == ChatHello("v-1", "Anna", "a@b.it", "")
    assert parse_frame('{"type":"message","id":"m-1","text":"ciao"}') == ChatText("m-1", "ciao")


def test_a_visitor_is_known_by_email_then_phone_then_visitor_id() -> None:
    text = ChatText("m-1", "ciao")
    by_email = to_message(
        ChatHello("v-1", email="a@b.it", phone="+39333"), text, recipient="w", at=AT
    )
    assert (by_email.sender, by_email.sender_kind) == ("a@b.it", IdentityKind.EMAIL)
    by_phone = to_message(ChatHello("v-1", phone="+393331234567"), text, recipient="w", at=AT)
    assert by_phone.sender_kind is IdentityKind.PHONE
    anonymous = to_message(ChatHello("v-1"), text, recipient="w", at=AT)
    assert (anonymous.sender, anonymous.sender_kind) == ("v-1", IdentityKind.CHAT)
    assert anonymous.channel is ChannelKind.CHAT
    assert anonymous.provider_message_id == "v-1:m-1"  # a re-send is the same message


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("nope", "not JSON"),
        ("[]", "JSON object"),
        ('{"type":"typing"}', "type"),
        ('{"type":"hello"}', "visitor_id"),
        ('{"type":"hello","visitor_id":"a b"}', "visitor_id"),
        ('{"type":"message","id":"m","text":"  "}', "text"),
        ('{"type":"message","text":"hi"}', "id"),
        ('{"type":"hello","visitor_id":"v","email":' + '"' + "x" * 300 + '"}', "email"),
        ('{"type":"message","id":"m","text":"' + "x" * 5000 + '"}', "text"),
    ],
)
def test_refused_frames(frame: str, why: str) -> None:
    with pytest.raises(MalformedPayload, match=why):
        parse_frame(frame)


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_malformed(frame: str) -> None:
    with contextlib.suppress(MalformedPayload):
        parse_frame(frame)
