"""The steps a flow is made of, and the flow itself. Frozen values: a flow, once validated,
is shared by every call that runs it, and a reload swaps it whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ivr.flow.hours import BusinessHours

# What a branch may test: the caller's knowledge (the pre-answer fan-out), the intent so far,
# the call's language, the business hours, and what `ask` steps collected (`vars.<name>`).
KNOWLEDGE_FIELDS = frozenset(
    {
        "known_customer",
        "overdue_invoices",
        "overdue_amount_cents",
        "shipments_in_transit",
        "open_tickets",
        "open_ticket_topic",
        "vip",
        "complete",
    }
)
CALL_FIELDS = frozenset({"intent", "confidence", "language", "open", "caller_id"})
OPERATORS = ("==", "!=", ">=", "<=", ">", "<")

Value = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Condition:
    field: str  # a KNOWLEDGE_FIELDS or CALL_FIELDS name, or "vars.<name>"
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class Case:
    """Taken when every condition holds and the hook (if named) says yes."""

    next: str
    conditions: tuple[Condition, ...] = ()
    hook: str | None = None


@dataclass(frozen=True, slots=True)
class Play:
    name: str
    prompts: tuple[str, ...]
    next: str
    # After playing, wait up to this long for the fan-out (callers hear the welcome meanwhile).
    wait_knowledge_s: float | None = None
    # A key pressed while it plays stops it and answers the next menu (callers who know the
    # menu need not hear it); without, Asterisk ignores keys during the prompt.
    type_ahead: bool = False


@dataclass(frozen=True, slots=True)
class Say:
    name: str
    kind: Literal["number", "digits", "amount", "date"]
    value: str  # a knowledge field or "vars.<name>"
    next: str


@dataclass(frozen=True, slots=True)
class MenuOption:
    next: str | None = None  # None: the menu's `next`
    intent: str | None = None  # the key says why the caller calls


@dataclass(frozen=True, slots=True)
class Menu:
    """One DTMF key (or, with `speech`, an utterance classified into an intent)."""

    name: str
    prompt: str
    options: Mapping[str, MenuOption]
    next: str | None  # any other key, or none: the intent model's menu keys decide
    intent_keys: bool = False  # keys not in `options` are evidence for the intent model
    timeout_ms: int | None = None  # None: the engine's FlowSettings.menu_timeout_ms
    retries: int = 0  # replays on no key (and on a key nobody handles), then `no_input`
    no_input: str | None = None
    speech: bool = False


@dataclass(frozen=True, slots=True)
class Ask:
    """Collect digits (or, with `speech`, words) into `vars.<var>`."""

    name: str
    prompt: str
    var: str
    next: str
    max_digits: int = 1
    timeout_ms: int | None = None
    no_input: str | None = None  # None: go on to `next` with an empty answer
    speech: bool = False


@dataclass(frozen=True, slots=True)
class Branch:
    name: str
    cases: tuple[Case, ...]
    otherwise: str


@dataclass(frozen=True, slots=True)
class Action:
    """A self-service action registered by name; its result names the next step."""

    name: str
    action: str
    results: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SetLanguage:
    name: str
    language: str
    next: str


@dataclass(frozen=True, slots=True)
class Queue:
    """Queue the call and hold it until an agent answers (or the queue gives up)."""

    name: str
    intent: str | None = None  # None: the intent predicted so far
    queue: str | None = None  # None: the intent's route (contact.intents)
    skill: str | None = None
    min_level: int | None = None
    priority: int | None = None  # None: VIP 10, an open ticket 5, else 0
    survey: str | None = None  # after the agent hangs up, the caller goes on to this step


@dataclass(frozen=True, slots=True)
class Transfer:
    name: str
    endpoint: str  # what Dial rings, e.g. PJSIP/reception or Local/200@internal
    timeout_s: int = 30
    next: str | None = None  # when nobody answered; None: hang up


@dataclass(frozen=True, slots=True)
class Voicemail:
    name: str
    mailbox: str  # box@context
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class GotoFlow:
    name: str
    flow: str


@dataclass(frozen=True, slots=True)
class Survey:
    """Rate 1..5 by DTMF; the score is stored on the call's interaction."""

    name: str
    prompt: str
    thanks: str | None = None
    invalid: str | None = None  # played before asking again
    retries: int = 1
    timeout_ms: int = 5000


@dataclass(frozen=True, slots=True)
class Hangup:
    name: str
    prompt: str | None = None
    outcome: Literal["self_served", "hangup_in_ivr"] = "hangup_in_ivr"


Step = (
    Play
    | Say
    | Menu
    | Ask
    | Branch
    | Action
    | SetLanguage
    | Queue
    | Transfer
    | Voicemail
    | GotoFlow
    | Survey
    | Hangup
)

# The document's `type` for each step class.
STEP_TYPES: Mapping[str, type[Step]] = {
    "play": Play,
    "say": Say,
    "menu": Menu,
    "ask": Ask,
    "branch": Branch,
    "action": Action,
    "language": SetLanguage,
    "queue": Queue,
    "transfer": Transfer,
    "voicemail": Voicemail,
    "flow": GotoFlow,
    "survey": Survey,
    "hangup": Hangup,
}


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    steps: Mapping[str, Step]
    languages: tuple[str, ...] = ()  # every language callers may hear (prompts are checked)
    language: str | None = None  # set on the channel at the start; None: the channel's own
    numbers: tuple[str, ...] = ()  # dialled numbers (agi_dnid / agi_extension) that pick it
    hours: BusinessHours | None = None
    closed: str | None = None  # the step run instead of `start` outside the hours
    timezone: str = "Europe/Rome"  # for dates said and hours
    description: str = ""


def step_targets(step: Step) -> tuple[str, ...]:
    match step:
        case Play(next=n) | Say(next=n) | SetLanguage(next=n):
            return (n,)
        case Menu():
            out = [o.next for o in step.options.values() if o.next]
            return tuple(x for x in (*out, step.next, step.no_input) if x)
        case Ask():
            return tuple(x for x in (step.next, step.no_input) if x)
        case Branch():
            return (*(c.next for c in step.cases), step.otherwise)
        case Action():
            return tuple(step.results.values())
        case Queue():
            return (step.survey,) if step.survey else ()
        case Transfer():
            return (step.next,) if step.next else ()
        case Voicemail() | GotoFlow() | Survey() | Hangup():
            return ()
    raise AssertionError(f"unknown step {step!r}")
