"""Agent voice-state machine: one table, rules at the top, illegal transitions raise.

Rules:
- An agent logs in NOT_READY and chooses READY; only READY agents receive offers.
- An offer RESERVES the agent; accepting it RINGS the agent's phone; answering makes them BUSY.
- A rejected offer or a ring with no answer (RONA) makes the agent NOT_READY (they were not
  there); an offer that expired because its owning process died makes them READY again.
- A reservation released as "no answer" before the agent's phone ever rang (RESERVED, not
  RINGING: the Originate or Dial never started) was no fault of the agent's: they go back to
  READY, as on expiry. NOT_READY is for a phone that really rang unanswered.
- Hanging up starts WRAP_UP (timed); its end, or the agent, makes them READY.
- Logout is possible from any state without a call in progress (not RESERVED/RINGING/BUSY).
- AMI may report the device gone at any time: FORCE_LOGOUT is legal from every state.

Chats and emails do not move this machine: they take capacity slots while the agent is READY.
"""

from __future__ import annotations

import enum

from acd.errors import IllegalTransition
from acd.models import AgentState as S


class AgentEvent(enum.StrEnum):
    LOGIN = "login"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVE = "reserve"
    ACCEPT = "accept"
    REJECT = "reject"
    EXPIRE = "expire"
    RING_NO_ANSWER = "ring_no_answer"
    ANSWER = "answer"
    HANGUP = "hangup"
    WRAP_DONE = "wrap_done"
    LOGOUT = "logout"
    FORCE_LOGOUT = "force_logout"


E = AgentEvent

TRANSITIONS: dict[tuple[S, AgentEvent], S] = {
    (S.LOGGED_OUT, E.LOGIN): S.NOT_READY,
    (S.NOT_READY, E.READY): S.READY,
    (S.WRAP_UP, E.READY): S.READY,
    (S.READY, E.READY): S.READY,
    (S.READY, E.NOT_READY): S.NOT_READY,
    (S.NOT_READY, E.NOT_READY): S.NOT_READY,  # a new reason
    (S.WRAP_UP, E.NOT_READY): S.NOT_READY,
    (S.READY, E.RESERVE): S.RESERVED,
    (S.RESERVED, E.ACCEPT): S.RINGING,
    (S.RESERVED, E.REJECT): S.NOT_READY,
    (S.RINGING, E.REJECT): S.NOT_READY,
    (S.RESERVED, E.EXPIRE): S.READY,
    (S.RINGING, E.EXPIRE): S.READY,
    (S.RINGING, E.RING_NO_ANSWER): S.NOT_READY,
    (S.RESERVED, E.RING_NO_ANSWER): S.READY,  # never rang: not the agent's fault
    (S.RINGING, E.ANSWER): S.BUSY,
    (S.BUSY, E.HANGUP): S.WRAP_UP,
    (S.WRAP_UP, E.WRAP_DONE): S.READY,
    (S.READY, E.LOGOUT): S.LOGGED_OUT,
    (S.NOT_READY, E.LOGOUT): S.LOGGED_OUT,
    (S.WRAP_UP, E.LOGOUT): S.LOGGED_OUT,
    **{(state, E.FORCE_LOGOUT): S.LOGGED_OUT for state in S},
}


def transition(state: S, event: AgentEvent) -> S:
    """The state after `event`; raises `IllegalTransition` if the table has no such edge."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event.value) from None


def can(state: S, event: AgentEvent) -> bool:
    return (state, event) in TRANSITIONS
