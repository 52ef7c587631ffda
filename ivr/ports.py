"""Ports owned by the IVR: what a call flow needs from the outside world.

The FastAGI session in `centralino.asterisk` implements `Channel`; tests may use the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DigitInput:
    """What GET DATA collected: the digits (may be empty) and whether input ended by timeout."""

    digits: str
    timed_out: bool


class Channel(Protocol):
    """One live call as a flow sees it. Every method raises `ivr.errors.ChannelHungUp` once the
    caller has gone, and `ivr.errors.ChannelCommandError` when Asterisk rejects a command."""

    @property
    def uniqueid(self) -> str: ...

    async def answer(self) -> None: ...

    async def hangup(self) -> None: ...

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a sound; return the key that interrupted it, or None if it played to the end."""
        ...

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> DigitInput: ...

    async def wait_for_digit(self, timeout_ms: int) -> str | None: ...

    async def say_number(self, number: int) -> None: ...

    async def say_digits(self, digits: str) -> None: ...

    async def exec(self, application: str, *args: str) -> int:
        """Run a dialplan application (e.g. `Dial`, `MusicOnHold`); return AGI's result value."""
        ...

    async def get_variable(self, name: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_music(self, on: bool, moh_class: str = "default") -> None: ...

    async def verbose(self, message: str, level: int = 1) -> None: ...


# ---------------------------------------------------------------------------------------------
# What an inbound call flow needs from the rest of Centralino. The composition root implements
# these with the context (fan-out, timeline, tickets) and acd (routing) services, so the flow
# stays a readable script of the caller's experience and can be exercised call by call.


@dataclass(frozen=True, slots=True)
class CallerKnowledge:
    """What the pre-answer fan-out knows so far, reduced to what the flow decides on."""

    known_customer: bool
    display_name: str | None
    overdue_invoices: int
    overdue_amount_cents: int
    shipments_in_transit: int
    open_tickets: int
    open_ticket_topic: str | None
    preferred_agents: tuple[str, ...]
    vip: bool
    complete: bool  # every source has answered (or failed); False when the deadline cut it short


@dataclass(frozen=True, slots=True)
class QueueRequest:
    intent: str
    priority: int
    preferred_agents: tuple[str, ...]
    language: str | None = None
    queue: str | None = None  # from the AGI query (?queue=sales); None: the intent's queue
    # A flow's queue step may name the skill (and level) itself; None: the intent's route's.
    skill: str | None = None
    min_level: int | None = None


@dataclass(frozen=True, slots=True)
class QueueStatus:
    position: int  # 1 = next
    expected_wait_s: float | None  # None when the model cannot say (no agents, unstable)


@dataclass(frozen=True, slots=True)
class QueueRefusal:
    """The ACD will not queue this call (no agents logged in, queue full, closed)."""

    reason: str
    action: str  # "callback", "voicemail", "overflow", "hangup"


@dataclass(frozen=True, slots=True)
class AgentOffer:
    """An agent reserved for this call."""

    reservation_id: str
    agent_id: str
    endpoint: str  # what Dial() rings, e.g. PJSIP/agent101


class QueuedCall(Protocol):
    """A call waiting in the ACD."""

    async def status(self) -> QueueStatus: ...

    async def next_offer(self, timeout_s: float) -> AgentOffer | QueueRefusal | None:
        """Wait up to `timeout_s` for an agent; None if none was reserved meanwhile. A
        `QueueRefusal` means a configured action ends the wait (max wait reached, ...)."""
        ...

    async def ringing(self, offer: AgentOffer) -> bool:
        """Take the offer just before Dial; False if it went stale (keep waiting)."""
        ...

    async def answered(self, offer: AgentOffer) -> None:
        """Dial returned ANSWER (the conversation is over; its times come from telephony)."""
        ...

    async def no_answer(self, offer: AgentOffer, *, reason: str) -> None:
        """The agent did not answer: they go not-ready, the call returns to the queue front."""
        ...

    async def completed(self, offer: AgentOffer) -> None: ...

    async def channel_left(self, *, handed_back: bool = False) -> str:
        """The caller's channel left us before the flow saw the call end: the caller hung up,
        or the agent transferred them (both end the FastAGI session alike). Returns how the call
        ended: "abandoned" (no agent had answered: it leaves the queue), "answered" (the caller
        hung up on the agent: a finished conversation) or "transferred" (the agent moved them).
        `handed_back`: we are giving the call back to the dialplan (shutdown); a caller not yet
        connected leaves the queue as "returned", never as an abandon."""
        ...

    async def callback_requested(self, number: str) -> None: ...


class InboundServices(Protocol):
    """Everything one inbound call needs, bound to that call."""

    async def knowledge(self, wait_s: float) -> CallerKnowledge:
        """What the fan-out knows, waiting at most `wait_s` for the rest."""
        ...

    async def note(self, step: str, detail: str = "") -> None:
        """Record what the caller did in the IVR (shown on the screen-pop and the timeline)."""
        ...

    async def predicted(
        self, intent: str, confidence: float, reasons: tuple[str, ...], *, transcript: str = ""
    ) -> None:
        """What the flow concluded (and, after speech, what the caller said): for the
        screen-pop now and the interaction's record at the end."""
        ...

    async def rated(self, score: int) -> None:
        """The caller rated the call 1..5 in the post-call survey (stored on the interaction)."""
        ...

    async def resume_transfer(self) -> QueuedCall | QueueRefusal | None:
        """An agent transferred this caller to one of our queues and the channel is back with
        us: queue it there now, as `enqueue` would. None: no transfer of this call is pending
        (a call like any other); then the flow asks the caller what they need."""
        ...

    async def enqueue(self, request: QueueRequest) -> QueuedCall | QueueRefusal: ...

    async def push_screen_pop(self, offer: AgentOffer) -> bool:
        """Push the complete pop to the agent's desktop; True once the desktop acknowledged."""
        ...

    async def finish(self, outcome: str, *, agent_id: str | None = None) -> None:
        """Write the interaction (and create or advance the ticket) once the call is over."""
        ...
