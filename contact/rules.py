"""The rules that turn what the IVR learnt into work for the ACD and the ticket pipeline.

- An intent leads to a queue and a skill at a minimum proficiency (configuration, checked at
  start: a route that no agent can ever serve is a configuration error, not a caller waiting
  thirty minutes for nobody).
- A call that reached an agent, or left a callback request, from a known customer attaches to
  their open ticket or opens one; other outcomes open nothing.
- The ACD's refusal actions become what the caller hears about.
- A call's language is the one asked for (the AGI query's `lang`) or else the channel's own
  (Asterisk's `agi_language`, set by the trunk or the number dialled); it is a requirement for
  the agent only where the agents declare languages at all (otherwise nobody could match it).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from acd.models import ActionKind, AgentDefinition, QueueAction
from context.models import Outcome
from ivr.ports import QueueRefusal


@dataclass(frozen=True, slots=True)
class IntentRoute:
    """Where callers with an intent wait, and what their agent must know (level 1..5)."""

    queue: str
    skill: str
    min_level: int = 1


# `agent` (the caller wants a person) also catches every intent without a route of its own.
DEFAULT_INTENT = "agent"
DEFAULT_ROUTES: Mapping[str, IntentRoute] = {
    "billing": IntentRoute("billing", "billing", 2),
    # Orders and deliveries are answered by support agents (no default logistics skill).
    "order_status": IntentRoute("support", "support", 2),
    "technical_support": IntentRoute("support", "support", 2),
    # Cancellations go to sales: keeping a customer is a sales conversation (retention).
    "cancel": IntentRoute("sales", "sales", 1),
    "sales": IntentRoute("sales", "sales", 1),
    # Addresses, e-mail, bank details: any billing agent can change them.
    "account_update": IntentRoute("billing", "billing", 1),
    DEFAULT_INTENT: IntentRoute("support", "support", 1),
}


def route_for(intent: str, routes: Mapping[str, IntentRoute]) -> IntentRoute:
    """The intent's route; an intent without one goes where `agent` goes."""
    return routes.get(intent) or routes[DEFAULT_INTENT]


def route_problems(
    routes: Mapping[str, IntentRoute],
    *,
    queues: Iterable[str],
    agents: Iterable[AgentDefinition] | None,
) -> list[str]:
    """What is wrong with a set of routes, one message per problem, naming the intent.

    `agents` None: the agents are not known yet (built later, e.g. by the demo), so only the
    queues are checked."""
    known_queues = set(queues)
    problems = []
    if DEFAULT_INTENT not in routes:
        problems.append(f"no route for {DEFAULT_INTENT!r}: intents without a route need one")
    staff = list(agents) if agents is not None else None
    for intent, route in sorted(routes.items()):
        if route.queue not in known_queues:
            problems.append(f"intent {intent!r}: no queue named {route.queue!r}")
        if staff is not None and not any(
            a.skills.get(route.skill, 0) >= route.min_level for a in staff
        ):
            problems.append(
                f"intent {intent!r}: no agent has skill {route.skill!r} at level "
                f"{route.min_level} or more, so its callers could never be answered"
            )
    return problems


def call_language(
    requested: str | None, channel: str | None, *, spoken: Collection[str]
) -> str | None:
    """The language the caller needs their agent to speak, or None when routing ignores it."""
    if not spoken:
        return None
    language = (requested or channel or "").strip().lower()
    return language or None


class TicketStep(enum.Enum):
    NONE = "none"
    ATTACH = "attach"  # to the customer's open ticket
    OPEN = "open"


# A transferred caller's next leg is a call of its own, which attaches to what this one opened.
ENGAGED = frozenset({Outcome.ANSWERED, Outcome.CALLBACK_REQUESTED})


def ticket_step(outcome: Outcome, *, known_customer: bool, has_open_ticket: bool) -> TicketStep:
    """Work for the pipeline comes from calls an agent took (or will take, a callback)."""
    if not known_customer or outcome not in ENGAGED:
        return TicketStep.NONE
    return TicketStep.ATTACH if has_open_ticket else TicketStep.OPEN


_REFUSAL_ACTIONS: Mapping[ActionKind, str] = {
    ActionKind.CALLBACK: "callback",
    ActionKind.VOICEMAIL: "voicemail",
    ActionKind.OVERFLOW: "overflow",
}


def refusal(action: QueueAction, fallback_reason: str) -> QueueRefusal:
    """What the caller is told when the ACD ends their wait with `action`."""
    return QueueRefusal(
        reason=action.announcement or fallback_reason,
        action=_REFUSAL_ACTIONS.get(action.kind, "hangup"),
    )
