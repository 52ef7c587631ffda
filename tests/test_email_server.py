"""The SMTP server against real PostgreSQL, driven by the standard library's smtplib."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from email.message import EmailMessage

import asyncpg
import pytest

from centralino.adapters.pg_messages import PgMessageStore
from centralino.email_server import EmailServer, InboundMailHandler
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox

DOMAIN = "centralino.example"


async def start(pool: asyncpg.Pool, *, max_bytes: int = 1024 * 1024) -> EmailServer:
    inbox = MessageInbox(store=PgMessageStore(pool=pool), phones=PhoneNormaliser())
    server = EmailServer(
        handler=InboundMailHandler(inbox=inbox, domains=[DOMAIN]),
        host="127.0.0.1",
        port=0,
        max_message_bytes=max_bytes,
    )
    await server.start()
    return server


@pytest.fixture
async def smtp(pg_pool: asyncpg.Pool) -> AsyncIterator[EmailServer]:
    server = await start(pg_pool)
    try:
        yield server
    finally:
        await server.stop()


def mail(
    msg_id: str, *, sender: str = "Anna Bianchi <anna@example.it>", **headers: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"support@{DOMAIN}"
    message["Subject"] = "Ordine 4411"
    message["Message-ID"] = msg_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Quando arriva il mio ordine?")
    return message


async def send(
    server: EmailServer, message: EmailMessage, to: str = f"support@{DOMAIN}"
) -> dict[str, tuple[int, bytes]]:
    def deliver() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            return client.send_message(message, to_addrs=[to])

    return await asyncio.to_thread(deliver)


async def test_mail_is_stored_on_a_new_customers_timeline_and_a_redelivery_once(
    smtp: EmailServer, pg_pool: asyncpg.Pool
) -> None:
    message = mail("<o1@example.it>")
    message.add_attachment(b"photo", maintype="image", subtype="jpeg", filename="box.jpg")
    assert await send(smtp, message) == {}  # no recipient refused
    assert await send(smtp, message) == {}  # the sending server's retry
    row = await pg_pool.fetchrow(
        "SELECT m.channel, m.sender, m.body, m.thread_id, m.kind, i.customer_id, c.display_name"
        " FROM messages m JOIN interactions i ON i.id = m.interaction_id"
        " JOIN customers c ON c.id = i.customer_id"
    )
    assert row is not None and await pg_pool.fetchval("SELECT count(*) FROM messages") == 1
    assert (row["channel"], row["sender"], row["kind"]) == ("email", "anna@example.it", "message")
    assert row["body"].startswith("Ordine 4411") and row["thread_id"] == "o1@example.it"
    assert row["display_name"] == "Anna Bianchi"
    identity = await pg_pool.fetchval("SELECT value FROM customer_identities WHERE kind = 'email'")
    assert identity == "anna@example.it"
    attachment = await pg_pool.fetchrow(
        "SELECT filename, size_bytes, content FROM message_attachments"
    )
    assert attachment is not None and tuple(attachment) == ("box.jpg", 5, b"photo")


async def test_a_reply_joins_the_thread_and_the_customer(
    smtp: EmailServer, pg_pool: asyncpg.Pool
) -> None:
    await send(smtp, mail("<t1@example.it>"))
    await send(smtp, mail("<t2@example.it>", In_Reply_To="<t1@example.it>"))
    await send(
        smtp,
        mail(
            "<t3@example.it>",
            References="<t1@example.it> <t2@example.it>",
            In_Reply_To="<t2@example.it>",
        ),
    )
    rows = await pg_pool.fetch("SELECT provider_message_id, thread_id FROM messages ORDER BY id")
    assert [r["thread_id"] for r in rows] == ["t1@example.it"] * 3
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 1


async def test_auto_replies_and_bounces_create_no_customer(
    smtp: EmailServer, pg_pool: asyncpg.Pool
) -> None:
    await send(smtp, mail("<ooo@example.it>", Auto_Submitted="auto-replied"))
    await send(smtp, mail("<dsn@mx.example.it>", sender="MAILER-DAEMON@mx.example.it"))
    kinds = await pg_pool.fetch("SELECT kind, resolution FROM messages ORDER BY id")
    assert [(r["kind"], r["resolution"]) for r in kinds] == [
        ("auto_reply", "not_found"),
        ("bounce", "not_found"),
    ]
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 0


async def test_other_domains_loops_and_oversized_mail_are_refused(
    smtp: EmailServer, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send(smtp, mail("<x1@example.it>"), to="someone@elsewhere.example")
    assert refused.value.recipients["someone@elsewhere.example"][0] == 550
    looped = mail("<x2@example.it>", X_Centralino_Loop="1")
    with pytest.raises(smtplib.SMTPDataError) as loop:
        await send(smtp, looped)
    assert loop.value.smtp_code == 554
    big = await start(pg_pool, max_bytes=2048)
    try:
        message = mail("<x3@example.it>")
        message.set_content("x" * 4096)
        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as too_big:
            await send(big, message)
        assert too_big.value.smtp_code == 552
    finally:
        await big.stop()
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 0
    assert "not ours" in caplog.text and "our own message came back" in caplog.text


async def test_storage_down_is_a_temporary_451_and_the_retry_stores(
    pg_dsn: str, pg_pool: asyncpg.Pool
) -> None:
    broken = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    assert broken is not None
    await broken.close()  # every use now fails, as with the database gone
    down = await start(broken)
    try:
        with pytest.raises(smtplib.SMTPDataError) as temporary:
            await send(down, mail("<r1@example.it>"))
        assert temporary.value.smtp_code == 451
    finally:
        await down.stop()
    up = await start(pg_pool)
    try:
        assert await send(up, mail("<r1@example.it>")) == {}
    finally:
        await up.stop()
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 1
