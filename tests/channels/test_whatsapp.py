"""WhatsApp Cloud API webhook format: signatures, handshake, notifications (sans-I/O)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralino.channels.errors import BadSignature, HandshakeRefused, MalformedPayload
from centralino.channels.whatsapp import (
    check_signature,
    parse_notification,
    sign,
    verify_handshake,
)
from centralino.demo.providers import body, whatsapp_status, whatsapp_text, whatsapp_value
from context.messages import DeliveryState
from context.models import ChannelKind

SECRET = "app-secret"


def test_signature_is_hmac_sha256_of_the_raw_body_in_hex() -> None:
    raw = b'{"object":"whatsapp_business_account","entry":[]}'
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert sign(raw, SECRET) == expected
    check_signature(raw, expected, SECRET)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no X-Hub-Signature-256"),
        ("", "no X-Hub-Signature-256"),
        ("sha1=abcd", "is not 'sha256=<hex>'"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(header: str | None, why: str) -> None:
    with pytest.raises(BadSignature, match=why):
        check_signature(b"{}", header, SECRET)


def test_a_signature_of_other_bytes_or_another_secret_is_refused() -> None:
    raw = body(whatsapp_text("wamid.1", "393331234567", "hi"))
    with pytest.raises(BadSignature):
        check_signature(raw + b" ", sign(raw, SECRET), SECRET)
    with pytest.raises(BadSignature):
        check_signature(raw, sign(raw, "other"), SECRET)


def test_handshake_echoes_the_challenge_for_our_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert verify_handshake(query, "tok") == "1158201444"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (
            {"hub.mode": "subscribe", "hub.verify_token": "bad", "hub.challenge": "1"},
            HandshakeRefused,
        ),
        (
            {"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "1"},
            HandshakeRefused,
        ),
        ({"hub.verify_token": "tok", "hub.challenge": "1"}, HandshakeRefused),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok"}, MalformedPayload),
        (
            {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "x" * 300},
            MalformedPayload,
        ),
    ],
)
def test_handshake_refusals(query: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_handshake(query, "tok")


def test_a_text_message_with_its_contact_name() -> None:
    parsed = parse_notification(
        body(whatsapp_text("wamid.A", "393331234567", "Ciao", name="Mario"))
    )
    (message,) = parsed.batch.messages
    assert message.channel is ChannelKind.WHATSAPP
    assert message.provider_message_id == "wamid.A"
    assert message.sender == "393331234567"
    assert message.recipient == "15550001111"
    assert message.text == "Ciao"
    assert message.sender_name == "Mario"
    assert message.provider_time == datetime.fromtimestamp(1_765_000_000, UTC)
    assert message.raw["message"]["id"] == "wamid.A"  # type: ignore[index,call-overload]
    assert parsed.batch.statuses == ()


def test_statuses_map_to_delivery_states_and_unknown_ones_are_ignored() -> None:
    payload = whatsapp_status("wamid.O", "failed")
    payload["entry"][0]["changes"][0]["value"]["statuses"].append(
        {"id": "wamid.O", "status": "deleted", "timestamp": "1765000200", "recipient_id": "1"}
    )
    parsed = parse_notification(body(payload))
    (status,) = parsed.batch.statuses
    assert status.state is DeliveryState.FAILED
    assert status.provider_message_id == "wamid.O"
    assert "131047" in status.error
    assert any("deleted" in note for note in parsed.ignored)


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "image", "image": {"id": "1", "caption": "the invoice"}}, "[image] the invoice"),
        ({"type": "button", "button": {"text": "Yes", "payload": "Y"}}, "Yes"),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "a", "title": "Billing"},
                },
            },
            "Billing",
        ),
        (
            {
                "type": "location",
                "location": {"latitude": 45.4, "longitude": 9.2, "name": "Office"},
            },
            "[location] Office",
        ),
        ({"type": "reaction", "reaction": {"message_id": "x", "emoji": "👍"}}, "[reaction] 👍"),
        ({"type": "unsupported", "errors": [{"code": 131051}]}, "[unsupported]"),
    ],
)
def test_non_text_messages_get_a_readable_text(message: dict[str, object], text: str) -> None:
    full = {"from": "393331234567", "id": "wamid.X", "timestamp": "1765000000", **message}
    parsed = parse_notification(body(whatsapp_value({"messages": [full]})))
    assert parsed.batch.messages[0].text == text


def test_changes_of_other_fields_are_ignored_not_refused() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [{"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}],
            }
        ],
    }
    parsed = parse_notification(body(payload))
    assert parsed.batch.messages == () and parsed.batch.statuses == ()
    assert parsed.ignored


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"object":"page","entry":[]}', "not 'whatsapp_business_account'"),
        (b'{"object":"whatsapp_business_account"}', "entry"),
        (
            b'{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"w"}]}}]}]}',
            "from",
        ),
        (
            b'{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"w","from":"1","timestamp":"yesterday"}]}}]}]}',
            "Unix seconds",
        ),
        (
            b'{"entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"","status":"read"}]}}]}]}',
            "id",
        ),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_notifications_say_what_is_wrong(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedPayload, match=why):
        parse_notification(raw)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_malformed(raw: bytes) -> None:
    with contextlib.suppress(MalformedPayload):
        parse_notification(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "entry",
                    "changes",
                    "field",
                    "value",
                    "messages",
                    "statuses",
                    "id",
                    "from",
                    "timestamp",
                    "type",
                    "text",
                    "body",
                    "status",
                    "contacts",
                    "metadata",
                    "wa_id",
                    "profile",
                    "name",
                    "errors",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_shape_parses_or_raises_malformed(value: object) -> None:
    with contextlib.suppress(MalformedPayload):
        parse_notification(orjson.dumps(value))
