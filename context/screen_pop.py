"""Screen-pop payloads: what the agent's desktop shows, as JSON-ready TypedDicts.

The same section shapes are what the fan-out writes to the live store under the linkedid, so a
pop can be rebuilt from the store in any process (`pop_from_fields`). Fact ages are computed
when the pop is built, never stored.

Text from backends (a CRM note may contain `<script>`) is kept raw here, exactly as the owner
holds it. The desktop must render every string with `textContent` (never `innerHTML`), so it
is shown as text and never executed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, cast

import orjson

from context.models import (
    CallerProblem,
    Fact,
    Interaction,
    JsonValue,
    Resolution,
    ResolutionStatus,
    Ticket,
)

# Field names in the per-call context (see `context.fanout`).
FIELD_META = "meta"
FIELD_CALLER = "caller"
FIELD_TIMELINE = "timeline"
FIELD_TICKETS = "tickets"
FIELD_IVR = "ivr"
SOURCE_PREFIX = "source:"
IDENTITY_SOURCE = "identity"
TIMELINE_SOURCE = "timeline"
TICKETS_SOURCE = "tickets"


class SourceStatus(enum.StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"  # 5xx, bad JSON, oversized body, connection error
    TIMED_OUT = "timed_out"  # its own timeout passed (a hanging backend ends here)
    CIRCUIT_OPEN = "circuit_open"  # not called: it kept failing recently
    SKIPPED = "skipped"  # nothing to look up by (withheld number, no link to that system)
    CANCELLED = "cancelled"  # the call ended first


class FactRecord(TypedDict):
    source: str
    kind: str
    data: dict[str, JsonValue]
    fetched_at: str  # ISO 8601, UTC


class FactView(FactRecord):
    age_s: float


class SourceStatusView(TypedDict):
    name: str
    status: str  # a SourceStatus value
    elapsed_ms: float | None
    error: str


class SourceRecord(SourceStatusView):
    facts: list[FactRecord]


class CandidateView(TypedDict):
    customer_id: int
    display_name: str


class LinkAction(TypedDict):
    """How the desktop offers to attach an unknown number to a customer."""

    action: str  # "link_identity"
    identity_kind: str
    identity_value: str


class CallerView(TypedDict):
    status: str  # a ResolutionStatus value
    label: str  # the customer's name, or "unknown number", "withheld number", ...
    number: str | None  # E.164 when we have one
    raw: str  # the caller id as it arrived
    customer_id: int | None
    candidates: list[CandidateView]  # several for a shared number (ambiguous), never guessed
    links: dict[str, str]  # external system -> id
    link_action: LinkAction | None


class InteractionView(TypedDict):
    id: int | None
    channel: str
    direction: str
    started_at: str
    agent_id: str | None
    intent: str | None
    outcome: str | None
    summary: str


class TicketView(TypedDict):
    id: int
    title: str
    phase: str
    opened_at: str
    updated_at: str


class IvrView(TypedDict):
    predicted_intent: str | None
    confidence: float | None
    transcript: str
    steps: list[str]  # what the caller did: menu choices, self-service used
    reasons: list[str]  # why the IVR predicted that intent


class ScreenPop(TypedDict):
    linkedid: str
    generated_at: str
    complete: bool  # every source has finished (ok or not)
    caller: CallerView | None  # None while identity resolution is still running
    facts: list[FactView]
    sources: list[SourceStatusView]
    missing: list[str]  # sources without data, each with its status: "crm: timed_out"
    open_tickets: list[TicketView]
    last_interactions: list[InteractionView]
    ivr: IvrView


@dataclass(frozen=True, slots=True)
class IvrSummary:
    predicted_intent: str | None = None
    confidence: float | None = None
    transcript: str = ""
    steps: tuple[str, ...] = field(default_factory=tuple)
    reasons: tuple[str, ...] = field(default_factory=tuple)


# --- sections --------------------------------------------------------------------------------


def fact_record(fact: Fact, fetched_at: str | None = None) -> FactRecord:
    """`fetched_at` may be passed pre-formatted: one fetch's facts share it."""
    return {
        "source": fact.source,
        "kind": fact.kind,
        "data": dict(fact.data),
        "fetched_at": fetched_at or fact.fetched_at.isoformat(),
    }


def fact_view(record: FactRecord, now: datetime, ages: dict[str, float]) -> FactView:
    """`ages` remembers the age per `fetched_at` text for one pop: one fetch's facts share it."""
    stamp = record["fetched_at"]
    age = ages.get(stamp)
    if age is None:
        age = ages[stamp] = round(
            max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds()), 3
        )
    return {**record, "age_s": age}


_LABELS = {
    CallerProblem.WITHHELD: "withheld number",
    CallerProblem.UNKNOWN: "unknown number",
    CallerProblem.INVALID: "unknown number",
}


def caller_view(resolution: Resolution) -> CallerView:
    number = resolution.identity.value if resolution.identity else None
    link_action: LinkAction | None = None
    if resolution.status is not ResolutionStatus.FOUND and resolution.identity is not None:
        link_action = {
            "action": "link_identity",
            "identity_kind": str(resolution.identity.kind),
            "identity_value": resolution.identity.value,
        }
    customer = resolution.customer
    if customer is not None:
        label = customer.display_name
    elif resolution.status is ResolutionStatus.AMBIGUOUS:
        label = f"shared number ({len(resolution.customers)} customers)"
    elif resolution.problem is not None:
        label = _LABELS[resolution.problem]
    else:
        label = "unknown number"
    return {
        "status": str(resolution.status),
        "label": label,
        "number": number,
        "raw": resolution.raw,
        "customer_id": customer.id if customer else None,
        "candidates": [
            {"customer_id": c.id, "display_name": c.display_name}
            for c in resolution.customers
            if resolution.status is ResolutionStatus.AMBIGUOUS
        ],
        "links": {link.system: link.external_id for link in resolution.links},
        "link_action": link_action,
    }


def interaction_view(interaction: Interaction) -> InteractionView:
    return {
        "id": interaction.id,
        "channel": str(interaction.channel),
        "direction": str(interaction.direction),
        "started_at": interaction.started_at.isoformat(),
        "agent_id": interaction.agent_id,
        "intent": interaction.intent,
        "outcome": interaction.outcome,
        "summary": interaction.summary,
    }


def ticket_view(ticket: Ticket) -> TicketView:
    return {
        "id": ticket.id,
        "title": ticket.title,
        "phase": ticket.phase,
        "opened_at": ticket.opened_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }


def ivr_view(summary: IvrSummary | None) -> IvrView:
    summary = summary or IvrSummary()
    return {
        "predicted_intent": summary.predicted_intent,
        "confidence": summary.confidence,
        "transcript": summary.transcript,
        "steps": list(summary.steps),
        "reasons": list(summary.reasons),
    }


def dumps(section: object) -> str:
    # orjson: ~10x cheaper than json.dumps, and every result of every call is encoded.
    return orjson.dumps(section).decode()


# --- the pop ---------------------------------------------------------------------------------


def assemble(
    *,
    linkedid: str,
    now: datetime,
    caller: CallerView | None,
    sources: Iterable[SourceRecord],
    open_tickets: list[TicketView] | None,
    last_interactions: list[InteractionView] | None,
    ivr: IvrView | None,
) -> ScreenPop:
    records = sorted(sources, key=lambda r: r["name"])
    statuses: list[SourceStatusView] = [
        {
            "name": r["name"],
            "status": r["status"],
            "elapsed_ms": r["elapsed_ms"],
            "error": r["error"],
        }
        for r in records
    ]
    ages: dict[str, float] = {}
    return {
        "linkedid": linkedid,
        "generated_at": now.isoformat(),
        "complete": all(r["status"] != SourceStatus.PENDING for r in records),
        "caller": caller,
        "facts": [fact_view(f, now, ages) for r in records for f in r["facts"]],
        "sources": statuses,
        "missing": [f"{r['name']}: {r['status']}" for r in records if r["status"] != "ok"],
        "open_tickets": open_tickets or [],
        "last_interactions": last_interactions or [],
        "ivr": ivr or ivr_view(None),
    }


def pop_from_fields(linkedid: str, fields: Mapping[str, str], now: datetime) -> ScreenPop:
    """Rebuild the pop from the per-call context fields (as read from the live store)."""

    def load(name: str) -> Any:
        raw = fields.get(name)
        return None if raw is None else orjson.loads(raw)

    sources = [
        cast(SourceRecord, orjson.loads(value))
        for key, value in fields.items()
        if key.startswith(SOURCE_PREFIX)
    ]
    return assemble(
        linkedid=linkedid,
        now=now,
        caller=load(FIELD_CALLER),
        sources=sources,
        open_tickets=load(FIELD_TICKETS),
        last_interactions=load(FIELD_TIMELINE),
        ivr=load(FIELD_IVR),
    )
