"""Twilio SMS webhook format: the signature over URL + sorted parameters, forms, callbacks."""

from __future__ import annotations

import contextlib
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralino.channels.errors import BadSignature, MalformedPayload
from centralino.channels.twilio_sms import check_signature, parse_form, parse_webhook, signature
from centralino.demo.providers import twilio_sms, twilio_status
from context.messages import DeliveryState
from context.models import ChannelKind

# Twilio's own documented example (twilio.com/docs/usage/security and its helper libraries'
# tests): this URL, these parameters and auth token 12345 give this signature.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_matches_twilios_documented_example() -> None:
    assert signature(DOC_URL, DOC_PARAMS, "12345") == DOC_SIGNATURE
    # Order of arrival does not matter: parameters are sorted by name.
    check_signature(DOC_URL, list(reversed(DOC_PARAMS)), DOC_SIGNATURE, "12345")


@pytest.mark.parametrize(
    ("url", "params", "header", "token"),
    [
        (DOC_URL, DOC_PARAMS, None, "12345"),
        (DOC_URL, DOC_PARAMS, "", "12345"),
        (DOC_URL, DOC_PARAMS, DOC_SIGNATURE, "54321"),
        ("https://mycompany.com/myapp.php?foo=1&bar=3", DOC_PARAMS, DOC_SIGNATURE, "12345"),
        (DOC_URL, [*DOC_PARAMS[:-1], ("To", "+18005551213")], DOC_SIGNATURE, "12345"),
    ],
)
def test_wrong_or_missing_signatures_are_refused(
    url: str, params: list[tuple[str, str]], header: str | None, token: str
) -> None:
    with pytest.raises(BadSignature):
        check_signature(url, params, header, token)


def test_an_incoming_sms() -> None:
    params = parse_form(urlencode(twilio_sms("SM123", "+393331234567", "Ciao & grazie")).encode())
    batch = parse_webhook(params)
    (message,) = batch.messages
    assert message.channel is ChannelKind.SMS
    assert message.provider_message_id == "SM123"
    assert message.sender == "+393331234567"
    assert message.recipient == "+390299999999"
    assert message.text == "Ciao & grazie"
    assert message.raw["Body"] == "Ciao & grazie"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("sent", DeliveryState.SENT),
        ("delivered", DeliveryState.DELIVERED),
        ("undelivered", DeliveryState.FAILED),
        ("read", DeliveryState.READ),
        ("queued", DeliveryState.QUEUED),
    ],
)
def test_status_callbacks(status: str, state: DeliveryState) -> None:
    batch = parse_webhook(twilio_status("SM9", status))
    assert batch.messages == ()
    assert [(s.provider_message_id, s.state) for s in batch.statuses] == [("SM9", state)]


def test_a_status_of_no_use_gives_an_empty_batch() -> None:
    batch = parse_webhook(twilio_status("SM9", "receiving"))
    assert batch.messages == () and batch.statuses == ()


@pytest.mark.parametrize(
    ("raw", "why"),
    [(b"", "empty"), (b"a=1&&b", "urlencoded"), (b"Body=%ff", "urlencoded"), (b"\xff=1", "UTF-8")],
)
def test_malformed_forms(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedPayload, match=why):
        parse_form(raw)


@pytest.mark.parametrize(
    "params",
    [
        [("From", "+39333"), ("To", "+39")],
        [("MessageSid", "SM1"), ("To", "+39")],
        [("MessageSid", "x" * 100), ("From", "+39"), ("To", "+39")],
    ],
)
def test_incomplete_webhooks_are_malformed(params: list[tuple[str, str]]) -> None:
    with pytest.raises(MalformedPayload):
        parse_webhook(params)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_malformed(raw: bytes) -> None:
    with contextlib.suppress(MalformedPayload):
        parse_webhook(parse_form(raw))
