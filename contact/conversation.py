"""One interaction's lifecycle, whatever the channel: a table, its rules at the top.

Rules:
- A contact starts in the IVR (or, for a callback or a chat, straight in the queue).
- Queued, it is OFFERED to a reserved agent; taking the offer RINGS the agent; their answer
  CONNECTS the two. A stale offer or an unanswered ring puts it back in the queue (front).
- It ends exactly once, and how it ended is its `Outcome`:
  - the caller leaves in the IVR → hangup_in_ivr; while queued, offered or ringing → abandoned;
  - a connected conversation ends → answered (whoever hung up), or transferred by the agent;
  - the IVR served them → self_served; they asked to be called back → callback_requested;
  - the ACD will not take them (no agents, queue full, max wait) → refused;
  - we hand the call back to the dialplan (shutdown, our own failure) before an agent
    answered → returned (Asterisk's static fallback answers it). A connected caller is never
    returned: the conversation goes on in Asterisk and the dialplan hangs up after it, so the
    record says answered.
- Anything else is a bug in the caller of this table: it raises `IllegalContactTransition`.
  A second report of an end that already happened (the hangup racing an AMI transfer) is not
  a transition: callers check `ended` first.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from context.models import Outcome

log = logging.getLogger(__name__)


class ContactState(enum.StrEnum):
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


class ContactEvent(enum.StrEnum):
    ENQUEUE = "enqueue"
    OFFER = "offer"
    STALE = "stale"  # the offer lapsed before the phone rang
    RING = "ring"
    NO_ANSWER = "no_answer"
    ANSWER = "answer"
    HANGUP = "hangup"  # the caller's channel left (or the conversation ended normally)
    TRANSFER = "transfer"  # the agent moved the caller on (AMI said so)
    SELF_SERVE = "self_serve"
    CALLBACK = "callback"
    REFUSE = "refuse"
    HAND_BACK = "hand_back"  # back to the dialplan: shutdown or a failure of ours


class IllegalContactTransition(RuntimeError):
    """Our code drove the table wrong (a programming error, never the caller's doing)."""

    def __init__(self, state: ContactState, event: ContactEvent) -> None:
        super().__init__(f"no transition from {state.value} on {event.value}")
        self.state = state
        self.event = event


S, E, Out = ContactState, ContactEvent, Outcome
_WAITING = (S.QUEUED, S.OFFERED, S.RINGING)

# (state, event) -> (next state, outcome when it ends here)
TRANSITIONS: dict[tuple[ContactState, ContactEvent], tuple[ContactState, Outcome | None]] = {
    (S.IVR, E.ENQUEUE): (S.QUEUED, None),
    (S.IVR, E.HANGUP): (S.ENDED, Out.HANGUP_IN_IVR),
    (S.IVR, E.SELF_SERVE): (S.ENDED, Out.SELF_SERVED),
    (S.IVR, E.CALLBACK): (S.ENDED, Out.CALLBACK_REQUESTED),
    (S.IVR, E.REFUSE): (S.ENDED, Out.REFUSED),
    (S.IVR, E.HAND_BACK): (S.ENDED, Out.RETURNED),
    (S.QUEUED, E.OFFER): (S.OFFERED, None),
    (S.OFFERED, E.RING): (S.RINGING, None),
    (S.OFFERED, E.STALE): (S.QUEUED, None),
    (S.RINGING, E.ANSWER): (S.CONNECTED, None),
    (S.RINGING, E.NO_ANSWER): (S.QUEUED, None),
    **{(s, E.HANGUP): (S.ENDED, Out.ABANDONED) for s in _WAITING},
    **{(s, E.HAND_BACK): (S.ENDED, Out.RETURNED) for s in _WAITING},
    **{(s, E.CALLBACK): (S.ENDED, Out.CALLBACK_REQUESTED) for s in _WAITING},
    (S.QUEUED, E.REFUSE): (S.ENDED, Out.REFUSED),
    (S.CONNECTED, E.HANGUP): (S.ENDED, Out.ANSWERED),
    (S.CONNECTED, E.TRANSFER): (S.ENDED, Out.TRANSFERRED),
    (S.CONNECTED, E.HAND_BACK): (S.ENDED, Out.ANSWERED),
}


def next_state(state: ContactState, event: ContactEvent) -> tuple[ContactState, Outcome | None]:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalContactTransition(state, event) from None


@dataclass(slots=True)
class Contact:
    """One interaction's position in the table; every transition is logged once."""

    contact_id: str
    state: ContactState = ContactState.IVR
    outcome: Outcome | None = None
    history: list[tuple[ContactState, ContactEvent]] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.state is ContactState.ENDED

    @property
    def connected(self) -> bool:
        """An agent answered at some point (so the caller must never be queued again)."""
        return any(state is ContactState.RINGING and ev is E.ANSWER for state, ev in self.history)

    def can(self, event: ContactEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def apply(self, event: ContactEvent) -> Outcome | None:
        """Move on `event`; returns the outcome when the contact ends with it."""
        state, outcome = next_state(self.state, event)
        self.history.append((self.state, event))
        log.info(
            "contact %s: %s -%s-> %s%s",
            self.contact_id,
            self.state.value,
            event.value,
            state.value,
            f" ({outcome.value})" if outcome is not None else "",
        )
        self.state = state
        if outcome is not None:
            self.outcome = outcome
        return outcome
