"""Value objects of the customer context. Frozen and slotted; no I/O.

PostgreSQL keeps only what Centralino owns (customers, identities, links to external records,
interactions, tickets). ERP/CRM data exists here only as `Fact`s fetched for one call and
carrying their source and fetch time, never as stored copies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"


class IdentityKind(enum.StrEnum):
    PHONE = "phone"  # E.164, e.g. +390212345678
    EMAIL = "email"  # lower-cased address
    CHAT = "chat"  # web-chat visitor id, as the chat provider gives it
    WHATSAPP = "whatsapp"  # the Cloud API's wa_id: digits, no "+" (context/identity.py)


class ChannelKind(enum.StrEnum):
    VOICE = "voice"
    EMAIL = "email"
    CHAT = "chat"
    WHATSAPP = "whatsapp"
    SMS = "sms"


class Outcome(enum.StrEnum):
    """How an interaction ended, for every channel (`contact.conversation` decides it; the
    IVR reports it; the record stores it). Here, in the package every other one may import,
    so that no package keeps a list of strings of its own."""

    ANSWERED = "answered"  # a conversation with an agent took place (whoever hung up)
    TRANSFERRED = "transferred"  # the agent moved the caller on
    ABANDONED = "abandoned"  # the caller left while waiting for an agent
    SELF_SERVED = "self_served"
    CALLBACK_REQUESTED = "callback_requested"
    HANGUP_IN_IVR = "hangup_in_ivr"  # the caller left before asking for anyone
    REFUSED = "refused"  # the ACD would not take the call (no agents, queue full, max wait)
    RETURNED = "returned"  # handed back to the dialplan's fallback (shutdown, our failure)
    # The process running the call died (killed, crashed) and the dialplan's fallback took the
    # caller; written by the process that found the call's journal entry, not by the call's own.
    FAILED = "failed"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class Identity:
    """A normalised way to reach a customer. Build it through `context.identity`."""

    kind: IdentityKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class CallerProblem(enum.StrEnum):
    """Why a caller id gives no identity. None of these is an error: the call goes on."""

    WITHHELD = "withheld"  # the caller hid the number (CLIR)
    UNKNOWN = "unknown"  # the network did not deliver one
    INVALID = "invalid"  # something arrived, but it is not a phone number


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    display_name: str
    created_at: datetime
    merged_into: int | None = None


@dataclass(frozen=True, slots=True)
class ExternalLink:
    """Where this customer lives in a system that owns data about them (e.g. crm → contact id)."""

    system: str
    external_id: str


class ResolutionStatus(enum.StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"  # e.g. a shared office number: reported, never guessed
    NO_IDENTITY = "no_identity"  # withheld, unknown or garbage caller id


@dataclass(frozen=True, slots=True)
class Resolution:
    status: ResolutionStatus
    identity: Identity | None
    customers: tuple[Customer, ...] = ()
    links: tuple[ExternalLink, ...] = ()  # of the one customer found; empty otherwise
    problem: CallerProblem | None = None
    raw: str = ""  # what arrived, kept for display ("unknown number" pops show it)

    @property
    def customer(self) -> Customer | None:
        return self.customers[0] if self.status is ResolutionStatus.FOUND else None


@dataclass(frozen=True, slots=True)
class Fact:
    """One piece of data fetched just in time from the system that owns it."""

    source: str  # the backend's configured name, e.g. "erp"
    kind: str  # e.g. "invoice", "contact", "case", "note"
    data: Mapping[str, JsonValue]
    fetched_at: datetime

    def age_s(self, now: datetime) -> float:
        """How old the fact is at `now` (computed when shown, never stored)."""
        return max(0.0, (now - self.fetched_at).total_seconds())


@dataclass(frozen=True, slots=True)
class ConnectorQuery:
    """What a connector may look a customer up by: the caller's identity and/or known links."""

    identity: Identity | None
    links: Mapping[str, str] = field(default_factory=dict)  # system -> external id


@dataclass(frozen=True, slots=True)
class Interaction:
    """One contact on any channel; the customer's timeline is the list of these.

    `pop_pushed_at`/`pop_acked_at`/`ring_at` record, for calls, that the screen-pop reached the
    agent's desktop (and was acknowledged) before the agent's phone rang.
    """

    id: int | None
    customer_id: int | None
    channel: ChannelKind
    direction: Direction
    started_at: datetime
    ended_at: datetime | None = None
    identity: Identity | None = None
    linkedid: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    intent: str | None = None
    outcome: str | None = None
    summary: str = ""
    transcript: str = ""
    wait_s: float | None = None
    talk_s: float | None = None
    pop_pushed_at: datetime | None = None
    pop_acked_at: datetime | None = None
    ring_at: datetime | None = None
    ticket_id: int | None = None
    original_customer_id: int | None = None  # who it belonged to before a merge
    # Idempotency key: a retried write of the same record (same key) is stored once.
    record_key: str | None = None
    survey_score: int | None = None  # 1..5 from the post-call survey
    # How sure the IVR was of `intent`, and why (context, words said, keys pressed).
    intent_confidence: float | None = None
    intent_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    customer_id: int | None
    title: str
    pipeline: str
    phase: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class PhaseActivity:
    """The time a ticket spent in one phase. Moving the ticket closes it and opens the next."""

    ticket_id: int
    phase: str
    opened_at: datetime
    closed_at: datetime | None
    from_phase: str | None  # None for the first phase of a new ticket
    out_of_order: bool  # the move that opened it was not on the pipeline's standard path
    actor: str
    reason: str = ""
