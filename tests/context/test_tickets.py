from __future__ import annotations

import pytest

from context.errors import ConfigurationError, IllegalMove, UnknownPhase
from context.service import ContextService
from context.tickets import DEFAULT_PIPELINE, Pipeline, open_ticket, plan_move
from tests.context.fakes import FakeClock, MemoryCustomers, MemoryTickets, MemoryTimeline


def _service(clock: FakeClock) -> ContextService:
    return ContextService(
        customers=MemoryCustomers(), timeline=MemoryTimeline(), tickets=MemoryTickets(), clock=clock
    )


async def test_given_a_ticket_when_moved_along_the_pipeline_then_each_move_closes_and_opens() -> (
    None
):
    clock = FakeClock()
    svc = _service(clock)
    ticket = await svc.open_ticket(customer_id=1, title="Fattura errata", actor="ivr")
    for phase in ("triage", "in_progress", "resolved", "closed"):
        clock.advance(60)
        move = await svc.move_ticket(ticket.id, phase, actor="agent-7")
        assert move.closed.closed_at == move.opened.opened_at == clock.now()
        assert not move.opened.out_of_order
    history = await svc.tickets.history(ticket.id)
    assert [a.phase for a in history] == ["new", "triage", "in_progress", "resolved", "closed"]
    assert all(a.closed_at is not None for a in history[:-1])
    final = await svc.tickets.get(ticket.id)
    assert final.closed_at == clock.now() and not final.is_open


async def test_out_of_order_moves_are_allowed_and_traced() -> None:
    clock = FakeClock()
    svc = _service(clock)
    ticket = await svc.open_ticket(customer_id=1, title="Reso", actor="agent-1")
    skip = await svc.move_ticket(ticket.id, "resolved", actor="agent-1", reason="solved on call")
    assert skip.opened.out_of_order and skip.opened.reason == "solved on call"
    await svc.move_ticket(ticket.id, "closed", actor="agent-1")
    reopen = await svc.move_ticket(ticket.id, "in_progress", actor="agent-2")
    assert reopen.opened.out_of_order and reopen.opened.from_phase == "closed"
    assert (await svc.tickets.get(ticket.id)).is_open  # leaving the terminal phase reopens
    flags = [(a.phase, a.out_of_order) for a in await svc.tickets.history(ticket.id)]
    assert flags == [("new", False), ("resolved", True), ("closed", False), ("in_progress", True)]


def test_unknown_phase_and_same_phase_are_refused() -> None:
    clock = FakeClock()
    ticket, first = open_ticket(
        DEFAULT_PIPELINE, customer_id=None, title="t", now=clock.now(), actor="a"
    )
    with pytest.raises(UnknownPhase):
        plan_move(DEFAULT_PIPELINE, ticket, first, "limbo", now=clock.now(), actor="a")
    with pytest.raises(IllegalMove):
        plan_move(DEFAULT_PIPELINE, ticket, first, "new", now=clock.now(), actor="a")


def test_a_stale_activity_cannot_be_moved_twice() -> None:
    clock = FakeClock()
    ticket, first = open_ticket(
        DEFAULT_PIPELINE, customer_id=None, title="t", now=clock.now(), actor="a"
    )
    move = plan_move(DEFAULT_PIPELINE, ticket, first, "triage", now=clock.now(), actor="a")
    with pytest.raises(IllegalMove):
        plan_move(
            DEFAULT_PIPELINE, move.ticket, move.closed, "in_progress", now=clock.now(), actor="a"
        )


def test_pipeline_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        Pipeline(
            name="x",
            phases=("a", "b"),
            standard_moves=frozenset({("a", "z")}),
            terminal=frozenset(),
        )
    with pytest.raises(ConfigurationError):
        Pipeline(name="x", phases=("a", "a"), standard_moves=frozenset(), terminal=frozenset())
