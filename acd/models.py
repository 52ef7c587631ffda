"""The ACD's vocabulary: agents, work items, routing policies, reservations, queue-log rows.

All times are seconds on the router's clock (epoch seconds in production; any origin in tests, as
long as it stays within `MAX_CLOCK_S`, because queue order packs priority and arrival into one
integer score).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# Proficiency scale of every skill: 1 (novice) .. 5 (expert).
MIN_LEVEL = 1
MAX_LEVEL = 5
# Queue order is one integer per item, in milliseconds: -priority * PRIORITY_BAND + (FRONT_OFFSET
# if not front) + arrival. Arrival times must stay below FRONT_OFFSET for the bands not to
# overlap (epoch seconds reach 4e9 in the year 2096); scores stay below 2**53, exact as doubles.
# Integers because Redis keeps a small sorted set's integral scores as integers: inserting into a
# queue then reads no score as text (with fractional scores it parses every one it passes).
PRIORITY_BAND = 10**13
FRONT_OFFSET = 4 * 10**12
MAX_CLOCK_S = FRONT_OFFSET / 1000
MAX_PRIORITY = 100


class Channel(enum.StrEnum):
    """Media of a work item; each has its own capacity per agent."""

    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"


class AgentState(enum.StrEnum):
    """Voice state of an agent (transitions in `acd.states`)."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"
    RINGING = "ringing"
    BUSY = "busy"
    WRAP_UP = "wrap_up"


class Strategy(enum.StrEnum):
    """Agent selection strategies (implemented in `acd.policies`, mirrored in the Redis script)."""

    LONGEST_IDLE = "longest_idle"
    MOST_SKILLED = "most_skilled"
    LEAST_OCCUPIED = "least_occupied"


@dataclass(frozen=True, slots=True)
class Capacity:
    """How much work of each channel an agent takes at once.

    Voice is exclusive by default: a call is offered only to an agent with no other work, and
    chats/emails are offered only while the agent is not on a call (state READY).
    """

    voice: int = 1
    chat: int = 3
    email: int = 1

    def of(self, channel: Channel) -> int:
        return int(getattr(self, channel.value))


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """Who an agent is (from config or the database): skills 1..5, teams, where to ring them."""

    agent_id: str
    skills: Mapping[str, int]
    teams: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    endpoint: str = ""
    capacity: Capacity = Capacity()
    wrap_up_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.agent_id or any(c in self.agent_id for c in ",:;|= "):
            raise ValueError(f"agent id {self.agent_id!r} is empty or holds a separator")
        for skill, level in self.skills.items():
            if not MIN_LEVEL <= level <= MAX_LEVEL:
                raise ValueError(f"agent {self.agent_id}: skill {skill} level {level} not in 1..5")
            _check_name(skill)

    def all_skills(self) -> dict[str, int]:
        """Skills including one `lang:xx` skill per language (languages route like skills)."""
        merged = dict(self.skills)
        for lang in self.languages:
            merged[language_skill(lang)] = MAX_LEVEL
        return merged


def language_skill(lang: str) -> str:
    return f"lang:{lang}"


def _check_name(name: str) -> None:
    # The Redis script encodes lists with these separators.
    if not name or any(c in name for c in ",;|= "):
        raise ValueError(f"name {name!r} is empty or holds a separator (, ; | = space)")


@dataclass(frozen=True, slots=True)
class SkillRequirement:
    """A skill a work item needs; `relaxable` requirements follow the policy step's level."""

    skill: str
    min_level: int = MIN_LEVEL
    relaxable: bool = True

    def __post_init__(self) -> None:
        _check_name(self.skill)
        if not MIN_LEVEL <= self.min_level <= MAX_LEVEL:
            raise ValueError(f"min level {self.min_level} not in 1..5")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A call (or chat, email) waiting for an agent."""

    item_id: str
    queue: str
    arrived_at: float
    channel: Channel = Channel.VOICE
    skills: tuple[SkillRequirement, ...] = ()
    priority: int = 0
    preferred_agents: tuple[str, ...] = ()
    language: str | None = None
    caller_id: str = ""
    callback_number: str | None = None

    def __post_init__(self) -> None:
        if not self.item_id or any(c in self.item_id for c in ",:;|= "):
            raise ValueError(f"item id {self.item_id!r} is empty or holds a separator")
        if not 0 <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority {self.priority} not in 0..{MAX_PRIORITY}")
        if not 0 <= self.arrived_at < MAX_CLOCK_S:
            raise ValueError(f"arrival {self.arrived_at} outside the clock range [0, 4e9)")

    def requirements(self) -> tuple[SkillRequirement, ...]:
        """Skills plus the language as a non-relaxable requirement."""
        if self.language is None:
            return self.skills
        return (*self.skills, SkillRequirement(language_skill(self.language), 1, relaxable=False))


def queue_score(priority: int, arrived_at: float, *, front: bool = False) -> int:
    """Sort key of a waiting item: higher priority first, then returned-to-front, then first
    come first served (to the millisecond; the item id orders arrivals within one)."""
    return -priority * PRIORITY_BAND + (0 if front else FRONT_OFFSET) + int(arrived_at * 1000)


class ActionKind(enum.StrEnum):
    OVERFLOW = "overflow"  # move to `target` queue, keeping arrival time and priority
    CALLBACK = "callback"  # offer the caller a callback (keeps their place if accepted)
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"  # play `announcement` and hang up
    NONE = "none"  # keep waiting


@dataclass(frozen=True, slots=True)
class QueueAction:
    kind: ActionKind
    target: str = ""
    announcement: str = ""


KEEP_WAITING = QueueAction(ActionKind.NONE)


@dataclass(frozen=True, slots=True)
class RoutingStep:
    """From `after_s` of waiting on: who may take the item.

    `preferred_only`: only the item's preferred agents. `min_level`: proficiency required for the
    item's relaxable skills (None keeps each requirement's own). `action`: what happens on entering
    this step (overflow, callback offer...); routing continues unless the action ends the wait.
    """

    after_s: float
    preferred_only: bool = False
    min_level: int | None = None
    action: QueueAction = KEEP_WAITING


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """Routing policy of one queue."""

    name: str
    # The skill that makes an agent serve this queue (no-agents check, wait estimates,
    # wallboard); None means every agent serves it.
    skill: str | None = None
    steps: tuple[RoutingStep, ...] = (RoutingStep(0.0),)
    strategy: Strategy = Strategy.LONGEST_IDLE
    max_length: int = 1000
    max_wait_s: float = 3600.0
    on_full: QueueAction = QueueAction(ActionKind.HANGUP, announcement="queue-full")
    on_no_agents: QueueAction = QueueAction(ActionKind.VOICEMAIL)
    on_max_wait: QueueAction = QueueAction(ActionKind.VOICEMAIL)
    offer_timeout_s: float = 15.0  # reserved -> ringing must happen within this
    ring_timeout_s: float = 20.0  # ringing without answer -> RONA
    sl_target_s: float = 20.0  # service-level threshold for statistics and staffing advice
    sl_goal: float = 0.8

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.steps or self.steps[0].after_s != 0.0:
            raise ValueError(f"queue {self.name}: the first step must start at 0 s")
        if any(b.after_s <= a.after_s for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"queue {self.name}: steps must start at increasing times")


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One queue to match in a routing pass (`LiveStore.route_many`)."""

    queue: str
    strategy: Strategy
    ttl_s: float  # how long a reservation made for it waits for the ring to start


@dataclass(frozen=True, slots=True)
class Reservation:
    """An agent matched to an item; exclusive until it is released or expires."""

    reservation_id: str
    item_id: str
    agent_id: str
    queue: str
    channel: Channel
    owner: str
    created_at: float
    expires_at: float
    waited_s: float


@dataclass(frozen=True, slots=True)
class WaitingItem:
    """An item in a queue as the live store reports it, in queue order."""

    item_id: str
    queue: str
    priority: int
    arrived_at: float
    owner: str
    callback_number: str | None = None
    channel: Channel = Channel.VOICE


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """Live view of an agent."""

    agent_id: str
    state: AgentState
    since: float
    reason: str = ""
    load: Mapping[str, int] = field(default_factory=dict)
    teams: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What the live store holds, read in one atomic step (`LiveStore.snapshot`): for the
    reconciling sweep, which compares it with the telephony's channels."""

    agents: tuple[AgentStatus, ...]
    reservations: tuple[Reservation, ...]  # held (not yet expired nor released), any order
    waiting: tuple[WaitingItem, ...]  # of the queues asked for, each queue in queue order
    callbacks: frozenset[str]  # reserved items that are callback requests (no caller held)


@dataclass(frozen=True, slots=True)
class Discarded:
    """An item `LiveStore.discard_item` took out of the live state: as it was, and the
    reservation it held (released, the agent READY again), if any."""

    item: WaitingItem
    reservation: Reservation | None


@dataclass(frozen=True, slots=True)
class Ticket:
    """What `Router.enqueue` returns: where the caller stands (or what to do instead)."""

    item_id: str
    queue: str
    position: int  # 1-based; 0 when not queued
    expected_wait_s: float
    action: QueueAction = KEEP_WAITING


@dataclass(frozen=True, slots=True)
class Offer:
    """What `Router.wait_for_offer` yields when an agent is reserved for the caller."""

    reservation: Reservation
    endpoint: str


class QueueEvent(enum.StrEnum):
    ENTER = "enter"
    OFFER = "offer"
    REJECT = "reject"
    RONA = "rona"
    CONNECT = "connect"
    ABANDON = "abandon"
    TRANSFER = "transfer"
    CALLBACK = "callback"
    OVERFLOW = "overflow"
    COMPLETE = "complete"
    EXIT = "exit"  # left by a configured action (full, no agents, max wait)
    AGENT = "agent"  # agent state change (data: new state and reason)


@dataclass(frozen=True, slots=True)
class QueueLogRow:
    """One queue-log event, as written to and read back from PostgreSQL."""

    ts: float
    queue: str
    item_id: str
    event: QueueEvent
    agent_id: str = ""
    team: str = ""
    wait_s: float | None = None
    talk_s: float | None = None
    data: str = ""
