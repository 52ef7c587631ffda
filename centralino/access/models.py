"""Accounts, principals and the values the access policy decides on."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(enum.StrEnum):
    """What an account may reach: its own desktop, its teams' agents, or everything."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Via(enum.StrEnum):
    """How a request proved who it is. Only cookie sessions need CSRF and Origin checks."""

    SESSION = "session"
    TOKEN = "token"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    role: Role
    agent_id: str | None
    teams: frozenset[str]
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class Principal:
    """The account a request acts for, as the policy sees it."""

    account_id: int
    username: str
    role: Role
    agent_id: str | None
    teams: frozenset[str]
    via: Via


@dataclass(frozen=True, slots=True)
class SessionRecord:
    account_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked: bool


class SessionStatus(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"  # past its absolute lifetime
    IDLE = "idle"  # unused for longer than the idle timeout
    REVOKED = "revoked"  # logged out, or its account disabled


class Rule(enum.StrEnum):
    """What a route needs (the web layer maps each route to one)."""

    PUBLIC = "public"  # anyone (login page, static files)
    ANY_ACCOUNT = "any_account"  # any logged-in account
    AGENT_SCOPED = "agent_scoped"  # an account allowed to reach the agent named in the path
    SUPERVISION = "supervision"  # supervisors and admins
    ADMIN = "admin"  # admins only (the configuration API)


class Decision(enum.StrEnum):
    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"  # -> login page / 401
    FORBIDDEN = "forbidden"  # -> 403


@dataclass(frozen=True, slots=True)
class Origin:
    """A web origin: scheme, host (lower case) and port, the unit browsers isolate by."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = {"http": 80, "https": 443}[self.scheme]
        port = "" if self.port == default else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}"
