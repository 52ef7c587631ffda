"""The message store against real PostgreSQL: stored once, resolved like calls, on the
timeline beside calls, statuses forward only and in any order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_messages import PgMessageStore
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox, TimelineReader
from context.messages import (
    DeliveryState,
    InboundMessage,
    MessageBatch,
    OutboundMessage,
    StatusUpdate,
)
from context.models import (
    ChannelKind,
    Direction,
    Identity,
    IdentityKind,
    Interaction,
    ResolutionStatus,
)
from context.service import ContextService
from tests.context.fakes import FakeClock

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MARIO_WA = "393331234567"
MARIO_PHONE = Identity(IdentityKind.PHONE, "+393331234567")


def inbound(
    msg_id: str,
    sender: str = MARIO_WA,
    *,
    channel: ChannelKind = ChannelKind.WHATSAPP,
    text: str = "hello",
    at: datetime = T0,
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        provider_message_id=msg_id,
        sender=sender,
        recipient="15550001111",
        text=text,
        provider_time=at,
        raw={"id": msg_id, "text": text},
        sender_name="Mario Rossi",
    )


def status(msg_id: str, state: DeliveryState, *, error: str = "") -> StatusUpdate:
    return StatusUpdate(
        channel=ChannelKind.WHATSAPP,
        provider_message_id=msg_id,
        state=state,
        provider_time=T0,
        raw={"id": msg_id, "status": str(state)},
        error=error,
    )


def services(pool: asyncpg.Pool) -> tuple[ContextService, PgMessageStore, MessageInbox]:
    context = ContextService(
        customers=PgCustomerStore(pool=pool),
        timeline=PgTimelineStore(pool=pool),
        tickets=PgTicketStore(pool=pool),
        clock=FakeClock(),
    )
    store = PgMessageStore(pool=pool)
    return context, store, MessageInbox(store=store, phones=PhoneNormaliser())


async def test_an_unknown_sender_becomes_a_new_customer_with_the_message_on_the_timeline(
    pg_pool: asyncpg.Pool,
) -> None:
    context, store, inbox = services(pg_pool)
    (stored,) = await inbox.receive(MessageBatch(messages=(inbound("wamid.1"),)))
    assert stored.resolution is ResolutionStatus.NOT_FOUND and not stored.duplicate
    assert stored.customer_id is not None
    customer = await context.customers.get(stored.customer_id)
    assert customer.display_name == "Mario Rossi"
    # Found again by the phone number: a call from it lands on the same record.
    found = await context.resolve_caller("333 123 4567")
    assert found.status is ResolutionStatus.FOUND and found.customer == customer
    (item,) = await store.timeline(customer.id, 10)
    assert (item.channel, item.direction, item.text, item.provider_message_id) == (
        ChannelKind.WHATSAPP,
        Direction.INBOUND,
        "hello",
        "wamid.1",
    )
    raw = await pg_pool.fetchval(
        "SELECT raw->>'text' FROM messages WHERE id = $1", stored.message_id
    )
    assert raw == "hello"


async def test_a_provider_retry_is_never_stored_twice(pg_pool: asyncpg.Pool) -> None:
    _, _, inbox = services(pg_pool)
    batch = MessageBatch(messages=(inbound("wamid.R"),))
    (first,) = await inbox.receive(batch)
    results = await asyncio.gather(*(inbox.receive(batch) for _ in range(5)))
    assert all(r[0].duplicate and r[0].message_id == first.message_id for r in results)
    assert all(r[0].customer_id == first.customer_id for r in results)
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM interactions") == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 1


async def test_concurrent_first_messages_of_one_sender_create_one_customer(
    pg_pool: asyncpg.Pool,
) -> None:
    _, _, inbox = services(pg_pool)
    # WhatsApp and SMS from the same number, all at once: one customer (twins share a lock).
    batches = [MessageBatch(messages=(inbound(f"wamid.{i}"),)) for i in range(6)] + [
        MessageBatch(messages=(inbound(f"SM{i}", "+393331234567", channel=ChannelKind.SMS),))
        for i in range(6)
    ]
    results = await asyncio.gather(*(inbox.receive(b) for b in batches))
    assert len({r[0].customer_id for r in results}) == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 12


async def test_a_known_customer_is_found_by_the_phone_twin(pg_pool: asyncpg.Pool) -> None:
    context, store, inbox = services(pg_pool)
    mario = await context.customers.create(display_name="Mario", identities=[MARIO_PHONE])
    call = await context.record_interaction(
        Interaction(
            id=None,
            customer_id=mario.id,
            channel=ChannelKind.VOICE,
            direction=Direction.INBOUND,
            started_at=T0 - timedelta(hours=1),
            linkedid="1765.1",
            summary="asked about an invoice",
        )
    )
    (wa,) = await inbox.receive(MessageBatch(messages=(inbound("wamid.K"),)))
    (sms,) = await inbox.receive(
        MessageBatch(
            messages=(
                inbound("SMK", "+393331234567", channel=ChannelKind.SMS, at=T0 + timedelta(1)),
            )
        )
    )
    assert wa.resolution is sms.resolution is ResolutionStatus.FOUND
    assert wa.customer_id == sms.customer_id == mario.id
    items = await store.timeline(mario.id, 10)
    assert [(i.channel, i.provider_message_id, i.linkedid) for i in items] == [
        (ChannelKind.SMS, "SMK", None),
        (ChannelKind.WHATSAPP, "wamid.K", None),
        (ChannelKind.VOICE, None, "1765.1"),
    ]
    assert items[-1].interaction_id == call.id and items[-1].text == "asked about an invoice"


async def test_an_ambiguous_sender_is_reported_not_guessed(pg_pool: asyncpg.Pool) -> None:
    context, store, inbox = services(pg_pool)
    a = await context.customers.create(display_name="A", identities=[MARIO_PHONE])
    b = await context.customers.create(
        display_name="B", identities=[Identity(IdentityKind.WHATSAPP, MARIO_WA)]
    )
    (stored,) = await inbox.receive(MessageBatch(messages=(inbound("wamid.AMB"),)))
    assert stored.resolution is ResolutionStatus.AMBIGUOUS
    assert stored.customer_id is None and stored.candidates == (a.id, b.id)
    assert await store.timeline(a.id, 10) == [] and await store.timeline(b.id, 10) == []
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 2


async def test_a_sender_with_no_usable_identity_is_stored_without_a_customer(
    pg_pool: asyncpg.Pool,
) -> None:
    _, _, inbox = services(pg_pool)
    (stored,) = await inbox.receive(
        MessageBatch(messages=(inbound("SMX", "ACME", channel=ChannelKind.SMS),))
    )
    assert stored.resolution is ResolutionStatus.NO_IDENTITY and stored.customer_id is None
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 1


async def outbound(store: PgMessageStore, msg_id: str) -> None:
    await store.record_outbound(
        OutboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=msg_id,
            customer_id=None,
            sender="15550001111",
            recipient=MARIO_WA,
            text="your invoice is paid",
            sent_at=T0,
        )
    )


async def test_status_callbacks_out_of_order_never_move_back(pg_pool: asyncpg.Pool) -> None:
    _, store, inbox = services(pg_pool)
    await outbound(store, "wamid.O")
    assert await store.delivery_state(ChannelKind.WHATSAPP, "wamid.O") is DeliveryState.QUEUED
    for state, expected in [
        (DeliveryState.READ, DeliveryState.READ),
        (DeliveryState.DELIVERED, DeliveryState.READ),  # late: ignored
        (DeliveryState.SENT, DeliveryState.READ),
        (DeliveryState.FAILED, DeliveryState.READ),
        (DeliveryState.READ, DeliveryState.READ),  # a repeat
    ]:
        await inbox.receive(MessageBatch(statuses=(status("wamid.O", state),)))
        assert await store.delivery_state(ChannelKind.WHATSAPP, "wamid.O") is expected
    assert await pg_pool.fetchval("SELECT count(*) FROM message_status_events") == 4


async def test_a_failure_is_recorded_with_its_error(pg_pool: asyncpg.Pool) -> None:
    _, store, inbox = services(pg_pool)
    await outbound(store, "wamid.F")
    await inbox.receive(
        MessageBatch(
            statuses=(
                status("wamid.F", DeliveryState.SENT),
                status("wamid.F", DeliveryState.FAILED, error="131047 Re-engagement message"),
            )
        )
    )
    assert await store.delivery_state(ChannelKind.WHATSAPP, "wamid.F") is DeliveryState.FAILED
    error = await pg_pool.fetchval("SELECT delivery_error FROM messages")
    assert error == "131047 Re-engagement message"


async def test_statuses_that_overtake_the_message_apply_when_it_is_recorded(
    pg_pool: asyncpg.Pool,
) -> None:
    _, store, inbox = services(pg_pool)
    await inbox.receive(MessageBatch(statuses=(status("wamid.E", DeliveryState.DELIVERED),)))
    await inbox.receive(MessageBatch(statuses=(status("wamid.E", DeliveryState.SENT),)))
    assert await store.delivery_state(ChannelKind.WHATSAPP, "wamid.E") is None
    await outbound(store, "wamid.E")
    assert await store.delivery_state(ChannelKind.WHATSAPP, "wamid.E") is DeliveryState.DELIVERED


async def test_a_batch_is_stored_whole_or_not_at_all(pg_pool: asyncpg.Pool) -> None:
    _, _, inbox = services(pg_pool)
    # The second message is refused by the database (a NUL byte in text): nothing stays.
    batch = MessageBatch(messages=(inbound("wamid.B1"), inbound("wamid.B2", text="bad\x00")))
    with pytest.raises(asyncpg.PostgresError):
        await inbox.receive(batch)
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM customers") == 0


async def test_timeline_reader_resolves_then_reads(pg_pool: asyncpg.Pool) -> None:
    context, store, inbox = services(pg_pool)
    await inbox.receive(MessageBatch(messages=(inbound("wamid.T"),)))
    reader = TimelineReader(context=context, store=store)
    found = await reader.timeline(MARIO_PHONE, limit=10)
    assert found.status is ResolutionStatus.FOUND
    assert [i.provider_message_id for i in found.items] == ["wamid.T"]
    missing = await reader.timeline(Identity(IdentityKind.PHONE, "+390200000000"), limit=10)
    assert missing.status is ResolutionStatus.NOT_FOUND and missing.items == ()
    with pytest.raises(ValueError, match="limit"):
        await reader.timeline(MARIO_PHONE, limit=0)
