"""The managed configuration as values, and the checks a change must pass.

The rows are the settings' own models (`AgentSettings`, `QueueSettings`), so a change through
the API is validated field by field exactly as the TOML file is; the whole is then checked as
the settings check it (`AcdSettings`' transfer targets, `contact.route_problems`, agents placed
on known Asterisk servers), with the same messages `centralino check-config` prints. Two kinds
exist only here: teams (an agent's teams must be known ones) and not-ready reasons (the list the
desktop offers)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acd.models import AgentDefinition, QueuePolicy
from centralino.settings import AcdSettings, AgentSettings, QueueSettings, Settings
from contact.rules import route_problems


class TeamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # as accounts' teams accept
    description: str = Field("", max_length=200)


class ReasonSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    # What the desktop shows and the queue log records: as short as the desktop accepts.
    label: str = Field(min_length=1, max_length=64)


# The desktop's list before reasons were configurable: the bootstrap when none are configured.
DEFAULT_REASONS = (
    ReasonSettings(code="break", label="Break"),
    ReasonSettings(code="lunch", label="Lunch"),
    ReasonSettings(code="meeting", label="Meeting"),
    ReasonSettings(code="training", label="Training"),
    ReasonSettings(code="back-office", label="Back office"),
    ReasonSettings(code="technical", label="Technical problem"),
)


class Kind(enum.StrEnum):
    """What the API manages, by the name of its collection (`/api/admin/<kind>`)."""

    AGENTS = "agents"
    QUEUES = "queues"
    TEAMS = "teams"
    REASONS = "not-ready-reasons"


Row = AgentSettings | QueueSettings | TeamSettings | ReasonSettings

MODELS: dict[Kind, type[Row]] = {
    Kind.AGENTS: AgentSettings,
    Kind.QUEUES: QueueSettings,
    Kind.TEAMS: TeamSettings,
    Kind.REASONS: ReasonSettings,
}
KEYS: dict[Kind, str] = {Kind.AGENTS: "id", Kind.QUEUES: "name", Kind.TEAMS: "name"} | {
    Kind.REASONS: "code"
}


def key_of(kind: Kind, row: Row) -> str:
    return str(getattr(row, KEYS[kind]))


@dataclass(frozen=True, slots=True)
class Versioned:
    row: Row
    version: int


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the API manages, in order (queues route in this order), with versions."""

    agents: tuple[Versioned, ...] = ()
    queues: tuple[Versioned, ...] = ()
    teams: tuple[Versioned, ...] = ()
    reasons: tuple[Versioned, ...] = ()

    def of(self, kind: Kind) -> tuple[Versioned, ...]:
        return {
            Kind.AGENTS: self.agents,
            Kind.QUEUES: self.queues,
            Kind.TEAMS: self.teams,
            Kind.REASONS: self.reasons,
        }[kind]

    def with_rows(self, kind: Kind, rows: Iterable[Versioned]) -> Config:
        attr = {
            Kind.AGENTS: "agents",
            Kind.QUEUES: "queues",
            Kind.TEAMS: "teams",
            Kind.REASONS: "reasons",
        }[kind]
        return replace(self, **{attr: tuple(rows)})

    def find(self, kind: Kind, key: str) -> Versioned | None:
        return next((v for v in self.of(kind) if key_of(kind, v.row) == key), None)

    def put(self, kind: Kind, row: Row, version: int) -> Config:
        """This config with `row` replacing the one of its key, or appended."""
        key = key_of(kind, row)
        rows = list(self.of(kind))
        for i, v in enumerate(rows):
            if key_of(kind, v.row) == key:
                rows[i] = Versioned(row, version)
                break
        else:
            rows.append(Versioned(row, version))
        return self.with_rows(kind, rows)

    def remove(self, kind: Kind, key: str) -> Config:
        return self.with_rows(kind, (v for v in self.of(kind) if key_of(kind, v.row) != key))

    def agent_settings(self) -> list[AgentSettings]:
        return [v.row for v in self.agents if isinstance(v.row, AgentSettings)]

    def queue_settings(self) -> list[QueueSettings]:
        return [v.row for v in self.queues if isinstance(v.row, QueueSettings)]

    def reason_labels(self) -> list[str]:
        return [v.row.label for v in self.reasons if isinstance(v.row, ReasonSettings)]


def bootstrap(settings: Settings) -> Config:
    """The configuration the TOML settings describe: what an empty database is seeded with."""
    teams = sorted({t for a in settings.acd.agents for t in a.teams})
    return Config(
        agents=tuple(Versioned(a, 1) for a in settings.acd.agents),
        queues=tuple(Versioned(q, 1) for q in settings.acd.queues),
        teams=tuple(Versioned(TeamSettings(name=t), 1) for t in teams),
        reasons=tuple(Versioned(r, 1) for r in DEFAULT_REASONS),
    )


# --- validation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # the field, dotted ("skills.billing", "steps.1.min_level"); "" for the whole
    message: str


class Invalid(ValueError):
    """A change the configuration refuses, with one problem per field or rule."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in self.problems)


# PostgreSQL's integer columns; the settings bound few integers above, the database does.
MAX_STORED_INT = 2**31 - 1


def storable_problems(value: object, path: str = "") -> list[Problem]:
    """What PostgreSQL cannot store although the settings model accepts it: NUL characters and
    lone surrogates in text (and jsonb), integers beyond its integer columns."""
    problems = []
    if isinstance(value, str):
        if "\x00" in value:
            problems.append(Problem(path, "NUL characters are not allowed"))
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(Problem(path, "not valid Unicode text (a lone surrogate)"))
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int) and abs(value) > MAX_STORED_INT:
        problems.append(Problem(path, f"expected at most {MAX_STORED_INT}"))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            problems.extend(storable_problems(k, sub))
            problems.extend(storable_problems(v, sub))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            problems.extend(storable_problems(v, f"{path}.{i}" if path else str(i)))
    return problems


def parse_row(kind: Kind, body: Mapping[str, Any]) -> Row:
    """A row from a JSON body, validated by its settings model. Raises `Invalid`."""
    try:
        row = MODELS[kind].model_validate(dict(body))
    except ValidationError as exc:
        raise Invalid(
            [
                Problem(".".join(str(p) for p in e["loc"]), e["msg"])
                for e in exc.errors(include_url=False)
            ]
        ) from None
    problems = storable_problems(row.model_dump(mode="python"))
    if problems:
        raise Invalid(problems)
    return row


@dataclass(frozen=True, slots=True)
class Builders:
    """How settings become the ACD's values (`centralino.app.queue_policy` and
    `agent_definition`, passed in: the composition root imports this package, not the reverse).
    Building them is part of the check: the domain refuses what it cannot route with."""

    queue_policy: Callable[[QueueSettings], QueuePolicy]
    agent_definition: Callable[[AgentSettings], AgentDefinition]
    # What the call flows in force would say of these queue names (a flow sending callers to
    # a queue that is gone); None: flows are not checked (no flows in this process).
    flow_problems: Callable[[Sequence[str]], list[str]] | None = None


def config_problems(config: Config, settings: Settings, builders: Builders) -> list[Problem]:
    """What is wrong with the whole, as `check-config` would say it of the same settings."""
    problems: list[Problem] = []
    queues, agents = config.queue_settings(), config.agent_settings()
    for label, keys in (
        ("queue", [q.name for q in queues]),
        ("agent", [a.id for a in agents]),
    ):
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                problems.append(Problem("", f"{label} {key!r} is defined twice"))
            seen.add(key)
    try:
        AcdSettings(queues=queues, agents=agents, transfer_targets=settings.acd.transfer_targets)
    except ValidationError as exc:
        problems.extend(Problem("", f"acd: {e['msg']}") for e in exc.errors(include_url=False))
    for q in queues:
        try:
            builders.queue_policy(q)
        except ValueError as exc:
            problems.append(Problem("steps", str(exc)))
    definitions = []
    for a in agents:
        try:
            definitions.append(builders.agent_definition(a))
        except ValueError as exc:
            problems.append(Problem("skills", f"agent {a.id!r}: {exc}"))
    names = {q.name for q in queues}
    for q in queues:
        for i, step in enumerate(q.steps):
            if step.action == "overflow" and step.target not in names:
                problems.append(
                    Problem(
                        f"steps.{i}.target",
                        f"queue {q.name!r}: overflow to {step.target!r}, which is no queue",
                    )
                )
    routes = route_problems(
        settings.contact.routes(),
        queues=[q.name for q in queues],
        agents=definitions or None,
    )
    if routes:
        problems.append(Problem("", "contact.intents: " + "; ".join(routes)))
    if builders.flow_problems is not None:
        problems.extend(
            Problem("", f"flows: {p}") for p in builders.flow_problems(names_list(queues))
        )
    servers = {s.name for s in settings.ami.servers}
    teams = {v.row.name for v in config.teams if isinstance(v.row, TeamSettings)}
    for a in agents:
        if a.asterisk and a.asterisk not in servers:
            problems.append(
                Problem(
                    "asterisk",
                    f"agent {a.id!r}: expected one of ami.servers' names "
                    f"({', '.join(sorted(servers)) or 'none configured'}), got {a.asterisk!r}",
                )
            )
        for team in a.teams:
            if team not in teams:
                problems.append(
                    Problem("teams", f"agent {a.id!r}: no team named {team!r} (add it first)")
                )
    return problems


def names_list(queues: Sequence[QueueSettings]) -> list[str]:
    return [q.name for q in queues]


def check(config: Config, settings: Settings, builders: Builders) -> None:
    problems = config_problems(config, settings, builders)
    if problems:
        raise Invalid(problems)


def summary(row: Row | None) -> dict[str, Any] | None:
    """A row as the audit records it (before/after)."""
    return None if row is None else row.model_dump(mode="json")
