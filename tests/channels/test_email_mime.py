"""Inbound email parsing (sans-I/O): text, threading, attachments, automated mail, loops."""

from __future__ import annotations

import contextlib
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralino.channels.email_mime import (
    LOOP_HEADER,
    MAX_ATTACHMENT_BYTES,
    MAX_HOPS,
    MailLoop,
    parse_email,
)
from centralino.channels.errors import MalformedPayload
from context.messages import MessageKind
from context.models import ChannelKind


def mail(
    *,
    sender: str = "Mario Rossi <Mario.Rossi@Example.it>",
    subject: str = "Fattura 2026/118",
    text: str = "Buongiorno,\nl'importo non torna.",
    msg_id: str | None = "<a1@mail.example.it>",
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@centralino.example"
    message["Subject"] = subject
    message["Date"] = "Tue, 08 Dec 2026 09:30:00 +0100"
    if msg_id:
        message["Message-ID"] = msg_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


def test_a_plain_message() -> None:
    parsed = parse_email(mail().as_bytes(), recipients=("support@centralino.example",))
    assert parsed.channel is ChannelKind.EMAIL
    assert parsed.provider_message_id == "a1@mail.example.it"
    assert parsed.sender == "Mario.Rossi@Example.it"
    assert parsed.sender_name == "Mario Rossi"
    assert parsed.recipient == "support@centralino.example"
    assert parsed.text == "Fattura 2026/118\n\nBuongiorno,\nl'importo non torna."
    assert parsed.provider_time is not None and parsed.provider_time.utcoffset() is not None
    assert parsed.kind is MessageKind.MESSAGE and parsed.references == ()


def test_a_reply_carries_its_references_oldest_first() -> None:
    reply = mail(
        msg_id="<a3@mail.example.it>",
        In_Reply_To="<a2@centralino.example>",
        References="<a1@mail.example.it> <a2@centralino.example>",
    )
    parsed = parse_email(reply.as_bytes())
    assert parsed.references == ("a1@mail.example.it", "a2@centralino.example")


def test_without_a_message_id_the_bytes_give_one() -> None:
    raw = mail(msg_id=None).as_bytes()
    first, again = parse_email(raw), parse_email(raw)
    assert first.provider_message_id == again.provider_message_id
    assert first.provider_message_id.endswith("@centralino.invalid")


def test_html_only_mail_is_read_without_its_tags() -> None:
    message = mail()
    message.set_content("<p>Hello <b>there</b></p>", subtype="html")
    assert "Hello there" in parse_email(message.as_bytes()).text


def test_attachments_are_kept_within_the_limit_and_listed_beyond() -> None:
    message = mail()
    message.add_attachment(
        b"%PDF-1.7 invoice", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    message.add_attachment(
        b"x" * (MAX_ATTACHMENT_BYTES + 1),
        maintype="application",
        subtype="octet-stream",
        filename="huge.bin",
    )
    parsed = parse_email(message.as_bytes())
    assert [(a.filename, a.content_type, a.content) for a in parsed.attachments] == [
        ("invoice.pdf", "application/pdf", b"%PDF-1.7 invoice")
    ]
    assert "huge.bin" in parsed.text and "not kept" in parsed.text
    assert parsed.text.startswith("Fattura 2026/118\n\nBuongiorno")


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"X_Autoreply": "yes"},
        {"Precedence": "auto_reply"},
        {"Precedence": "bulk"},
    ],
)
def test_auto_replies_are_recognised(headers: dict[str, str]) -> None:
    assert parse_email(mail(**headers).as_bytes()).kind is MessageKind.AUTO_REPLY


def test_auto_submitted_no_is_a_person() -> None:
    assert parse_email(mail(Auto_Submitted="no").as_bytes()).kind is MessageKind.MESSAGE


def test_bounces_are_recognised() -> None:
    daemon = mail(sender="Mail Delivery System <MAILER-DAEMON@mx.example.it>")
    assert parse_email(daemon.as_bytes()).kind is MessageKind.BOUNCE
    report = (
        b"From: postmaster@mx.example.it\r\nTo: support@centralino.example\r\n"
        b"Message-ID: <dsn1@mx.example.it>\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    parsed = parse_email(report)
    assert parsed.kind is MessageKind.BOUNCE and "Delivery failed." in parsed.text


def test_loops_are_refused() -> None:
    looped = mail()
    for i in range(MAX_HOPS + 1):
        looped["Received"] = f"from hop{i}.example by hop{i + 1}.example"
    with pytest.raises(MailLoop, match="Received"):
        parse_email(looped.as_bytes())
    ours = mail(**{LOOP_HEADER.replace("-", "_"): "1"})
    with pytest.raises(MailLoop, match=LOOP_HEADER):
        parse_email(ours.as_bytes())


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"Subject: hi\r\n\r\nno sender", "From"),
        (b"From: not an address\r\n\r\nbody", "From"),
    ],
)
def test_malformed_mail(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedPayload, match=why):
        parse_email(raw)


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_malformed(raw: bytes) -> None:
    with contextlib.suppress(MalformedPayload):
        parse_email(raw)


@given(st.text(max_size=200), st.text(max_size=60))
def test_any_header_and_body_text_parse_or_raise_malformed(body: str, header: str) -> None:
    raw = f"From: a@b.it\r\nSubject: {header}\r\nReferences: {header}\r\n\r\n{body}"
    with contextlib.suppress(MalformedPayload):
        parse_email(raw.encode("utf-8", "surrogatepass"))
