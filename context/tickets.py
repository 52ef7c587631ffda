"""The ticket pipeline: phases are kanban columns, each one an activity.

Rules:
- A pipeline is an ordered list of phases plus a table of standard moves (below for the default
  pipeline). Moving a ticket always closes the activity of its current phase and opens one for
  the new phase, at the same instant.
- A move that is not in the table (skipping a phase, going back, reopening a closed ticket) is
  allowed, because real service work is not linear, but it is always traced: the opened
  activity is flagged `out_of_order` and keeps the actor and the (optional) reason.
- Refused outright: a phase the pipeline does not have (`UnknownPhase`), and a move to the phase
  the ticket is already in (`IllegalMove`, it would trace nothing).
- Entering a terminal phase closes the ticket; leaving it reopens the ticket.
Pure functions; the `TicketStore` persists what `plan_move` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from context.errors import ConfigurationError, IllegalMove, UnknownPhase
from context.models import PhaseActivity, Ticket
from context.ports import TicketMove


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    phases: tuple[str, ...]  # in board order; the first is where new tickets start
    standard_moves: frozenset[tuple[str, str]]
    terminal: frozenset[str]

    def __post_init__(self) -> None:
        known = set(self.phases)
        if not self.phases or len(known) != len(self.phases):
            raise ConfigurationError(f"pipeline {self.name!r}: phases must be non-empty, unique")
        bad = {p for move in self.standard_moves for p in move} - known
        if bad or not self.terminal <= known:
            raise ConfigurationError(f"pipeline {self.name!r}: unknown phases {sorted(bad)}")

    @property
    def first(self) -> str:
        return self.phases[0]

    def is_standard(self, from_phase: str, to_phase: str) -> bool:
        return (from_phase, to_phase) in self.standard_moves


NEW, TRIAGE, IN_PROGRESS, WAITING_CUSTOMER, RESOLVED, CLOSED = (
    "new",
    "triage",
    "in_progress",
    "waiting_customer",
    "resolved",
    "closed",
)

# from phase        -> to phase: the standard path of the default pipeline
DEFAULT_PIPELINE = Pipeline(
    name="default",
    phases=(NEW, TRIAGE, IN_PROGRESS, WAITING_CUSTOMER, RESOLVED, CLOSED),
    standard_moves=frozenset(
        {
            (NEW, TRIAGE),
            (TRIAGE, IN_PROGRESS),
            (IN_PROGRESS, WAITING_CUSTOMER),
            (WAITING_CUSTOMER, IN_PROGRESS),  # the customer answered
            (IN_PROGRESS, RESOLVED),
            (RESOLVED, CLOSED),
            (RESOLVED, IN_PROGRESS),  # the customer says it is not solved after all
        }
    ),
    terminal=frozenset({CLOSED}),
)


def open_ticket(
    pipeline: Pipeline,
    *,
    customer_id: int | None,
    title: str,
    now: datetime,
    actor: str,
) -> tuple[Ticket, PhaseActivity]:
    """A new ticket in the pipeline's first phase and its first activity (id assigned later)."""
    ticket = Ticket(
        id=0,
        customer_id=customer_id,
        title=title,
        pipeline=pipeline.name,
        phase=pipeline.first,
        opened_at=now,
        updated_at=now,
    )
    first = PhaseActivity(
        ticket_id=0,
        phase=pipeline.first,
        opened_at=now,
        closed_at=None,
        from_phase=None,
        out_of_order=False,
        actor=actor,
    )
    return ticket, first


def plan_move(
    pipeline: Pipeline,
    ticket: Ticket,
    current: PhaseActivity,
    to_phase: str,
    *,
    now: datetime,
    actor: str,
    reason: str = "",
) -> TicketMove:
    """Close `current` (the ticket's open activity) and open `to_phase`."""
    if ticket.pipeline != pipeline.name:
        raise ConfigurationError(f"ticket {ticket.id} is in pipeline {ticket.pipeline!r}")
    if to_phase not in pipeline.phases:
        raise UnknownPhase(f"pipeline {pipeline.name!r} has no phase {to_phase!r}")
    if current.phase != ticket.phase or current.closed_at is not None:
        raise IllegalMove(f"ticket {ticket.id}: {current.phase!r} is not its open activity")
    if to_phase == ticket.phase:
        raise IllegalMove(f"ticket {ticket.id} is already in {to_phase!r}")
    standard = pipeline.is_standard(ticket.phase, to_phase)
    closed_at = now if to_phase in pipeline.terminal else None
    moved = replace(ticket, phase=to_phase, updated_at=now, closed_at=closed_at)
    closed = replace(current, closed_at=now)
    opened = PhaseActivity(
        ticket_id=ticket.id,
        phase=to_phase,
        opened_at=now,
        closed_at=None,
        from_phase=ticket.phase,
        out_of_order=not standard,
        actor=actor,
        reason=reason,
    )
    return TicketMove(ticket=moved, closed=closed, opened=opened)
