from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from context.errors import IllegalMove, MergeError
from context.models import (
    ChannelKind,
    Direction,
    ExternalLink,
    Identity,
    IdentityKind,
    Interaction,
    ResolutionStatus,
)
from context.service import ContextService
from context.tickets import DEFAULT_PIPELINE, plan_move
from tests.context.fakes import FakeClock

OFFICE = Identity(IdentityKind.PHONE, "+390212345678")
T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def _svc(pool: asyncpg.Pool, clock: FakeClock | None = None) -> ContextService:
    return ContextService(
        customers=PgCustomerStore(pool=pool),
        timeline=PgTimelineStore(pool=pool),
        tickets=PgTicketStore(pool=pool),
        clock=clock or FakeClock(),
    )


def _call(customer_id: int | None, at: datetime, linkedid: str, **kw: object) -> Interaction:
    return Interaction(
        id=None,
        customer_id=customer_id,
        channel=ChannelKind.VOICE,
        direction=Direction.INBOUND,
        started_at=at,
        linkedid=linkedid,
        **kw,  # type: ignore[arg-type]
    )


async def test_identities_links_and_ambiguous_shared_number(pg_pool: asyncpg.Pool) -> None:
    svc = _svc(pg_pool)
    a = await svc.customers.create(
        display_name="Anna", identities=[OFFICE], links=[ExternalLink("crm", "C1")]
    )
    found = await svc.resolve_caller("02 1234 5678")
    assert found.status is ResolutionStatus.FOUND and found.customer == a
    assert found.links == (ExternalLink("crm", "C1"),)
    b = await svc.customers.create(display_name="Bruno", identities=[OFFICE])
    shared = await svc.resolve_caller("+39 02 12345678")
    assert shared.status is ResolutionStatus.AMBIGUOUS
    assert [c.id for c in shared.customers] == [a.id, b.id]


async def test_merge_keeps_both_timelines_and_remembers_origin(pg_pool: asyncpg.Pool) -> None:
    svc = _svc(pg_pool)
    email = Identity(IdentityKind.EMAIL, "anna@example.it")
    keep = await svc.customers.create(display_name="Anna R.", identities=[OFFICE])
    dup = await svc.customers.create(
        display_name="Anna Rossi", identities=[email, OFFICE], links=[ExternalLink("erp", "E9")]
    )
    await svc.record_interaction(_call(keep.id, T0, "k1"))
    mail = Interaction(
        id=None,
        customer_id=dup.id,
        channel=ChannelKind.EMAIL,
        direction=Direction.INBOUND,
        started_at=T0 + timedelta(hours=1),
        identity=email,
        summary="preventivo",
    )
    await svc.record_interaction(mail)
    ticket = await svc.open_ticket(customer_id=dup.id, title="Preventivo", actor="mail")
    await svc.merge(keep_id=keep.id, absorb_id=dup.id)
    timeline = await svc.timeline.recent(keep.id, 10)
    assert [i.channel for i in timeline] == [ChannelKind.EMAIL, ChannelKind.VOICE]
    assert timeline[0].original_customer_id == dup.id and timeline[1].original_customer_id is None
    assert (await svc.resolve_raw(IdentityKind.EMAIL, "anna@example.it")).customer == keep
    assert (await svc.resolve_caller("0212345678")).customer == keep  # no longer ambiguous
    assert await svc.customers.links(keep.id) == [ExternalLink("erp", "E9")]
    assert [t.id for t in await svc.tickets.open_for_customer(keep.id)] == [ticket.id]
    assert (await svc.customers.get(dup.id)).merged_into == keep.id
    with pytest.raises(MergeError):
        await svc.merge(keep_id=keep.id, absorb_id=dup.id)
    with pytest.raises(MergeError):
        await svc.merge(keep_id=keep.id, absorb_id=keep.id)


async def test_pop_delivery_times_are_recorded_on_the_call(pg_pool: asyncpg.Pool) -> None:
    timeline = PgTimelineStore(pool=pg_pool)
    assert not await timeline.record_pop_delivery(
        linkedid="L1", pushed_at=T0, acked_at=T0, ring_at=T0
    )
    await timeline.append(_call(None, T0, "L1"))
    ack = T0 + timedelta(milliseconds=12)
    ring = T0 + timedelta(milliseconds=13)
    assert await timeline.record_pop_delivery(
        linkedid="L1", pushed_at=T0, acked_at=ack, ring_at=ring
    )
    (call,) = await timeline.by_linkedid("L1")
    assert (call.pop_pushed_at, call.pop_acked_at, call.ring_at) == (T0, ack, ring)
    assert call.pop_acked_at is not None and call.ring_at is not None
    assert call.pop_acked_at <= call.ring_at


async def test_ticket_moves_and_history_persist(pg_pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    svc = _svc(pg_pool, clock)
    c = await svc.customers.create(display_name="Anna")
    ticket = await svc.open_ticket(customer_id=c.id, title="Reso", actor="ivr")
    clock.advance(30)
    await svc.move_ticket(ticket.id, "triage", actor="agent-1")
    clock.advance(30)
    await svc.move_ticket(ticket.id, "closed", actor="agent-1", reason="duplicate")
    history = await svc.tickets.history(ticket.id)
    assert [(h.phase, h.out_of_order, h.reason) for h in history] == [
        ("new", False, ""),
        ("triage", False, ""),
        ("closed", True, "duplicate"),
    ]
    assert history[0].closed_at == history[1].opened_at
    assert await svc.tickets.open_for_customer(c.id) == []
    # A move planned from a stale view is refused by the store (concurrent agents).
    current = await svc.tickets.get(ticket.id)
    stale = plan_move(
        DEFAULT_PIPELINE,
        replace(current, phase="triage", closed_at=None),
        replace(history[1], closed_at=None),
        "in_progress",
        now=clock.now(),
        actor="agent-2",
    )
    with pytest.raises(IllegalMove):
        await svc.tickets.apply_move(stale)


async def test_intent_confidence_reasons_and_transcript_are_kept_with_the_call(
    pg_pool: asyncpg.Pool,
) -> None:
    timeline = PgTimelineStore(pool=pg_pool)
    reasons = ("1 overdue invoice(s) → billing", "said fattura → billing")
    stored = await timeline.append(
        _call(
            None,
            T0,
            "L-intent",
            intent="billing",
            intent_confidence=0.8125,
            intent_reasons=reasons,
            transcript="vorrei pagare la fattura",
        )
    )
    (call,) = await timeline.by_linkedid("L-intent")
    assert call == stored
    assert (call.intent, call.intent_confidence, call.intent_reasons, call.transcript) == (
        "billing",
        0.8125,
        reasons,
        "vorrei pagare la fattura",
    )
    await timeline.append(_call(None, T0, "L-none"))
    (plain,) = await timeline.by_linkedid("L-none")
    assert (plain.intent_confidence, plain.intent_reasons) == (None, ())
