"""The access rules as plain functions: who may reach which agent, whether a session still
holds, whether a login may be tried, which passwords and names are acceptable, where a login
may send the browser next, and which origins and hosts are ours.

Rules (the whole access model):
- an admin reaches everything;
- a supervisor reaches the agents of their teams (and their own agent id, if they have one);
- an agent reaches only their own agent id (desktop, state, WebSocket);
- the configuration API (`/api/admin/…`, `/admin`) needs an admin;
- supervision pages (none yet beyond the wallboard, which any account may watch) need a
  supervisor or an admin;
- a session ends at its absolute expiry, after `idle_s` unused, or when revoked (logout,
  account disabled); an API token holds until revoked or its account is disabled.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from centralino.access.errors import InvalidAccount, WeakPassword
from centralino.access.models import (
    Decision,
    Origin,
    Principal,
    Role,
    Rule,
    SessionRecord,
    SessionStatus,
)

# Usernames appear in logs, the audit and pages: a conservative alphabet keeps them readable
# and unambiguous (no look-alike Unicode, no spaces); 64 characters is a long e-mail local part.
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # as `[[acd.agents]] id` accepts
TEAM = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# NIST SP 800-63B: at least 8; we ask 12 for accounts that see customers' data. The upper bound
# keeps one login from costing unbounded hashing work.
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256
# The few passwords every guessing list starts with (SP 800-63B asks for a blocklist).
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "password1234",
        "passwordpassword",
        "qwertyuiopas",
        "centralino123",
        "changemechangeme",
        "administrator",
        "letmeinletmein",
    }
)
# A `next=` longer than this is not a page of ours.
MAX_NEXT_CHARS = 512


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    ttl_s: float = 12 * 3600  # a shift, with overtime
    idle_s: float = 3600  # an unattended browser stops being a way in after an hour
    touch_every_s: float = 60  # write last-seen at most this often (one UPDATE a minute)

    def expires_at(self, created_at: datetime) -> datetime:
        return created_at + timedelta(seconds=self.ttl_s)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """Failed logins allowed per account name and per address within `window_s`."""

    max_failures_per_user: int = 5
    max_failures_per_address: int = 20  # an office behind one NAT shares an address
    window_s: float = 900


# --- accounts ---------------------------------------------------------------------------------


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise InvalidAccount(
            f"username {name[:80]!r}: expected 1-64 letters, digits or . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_account(
    *, role: Role | str, agent_id: str | None, teams: Collection[str]
) -> tuple[Role, str | None, frozenset[str]]:
    """Validate an account's shape; returns it normalised. Raises `InvalidAccount`."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidAccount(
            f"role {role!r}: expected one of {', '.join(r.value for r in Role)}"
        ) from None
    if agent_id is not None and not AGENT_ID.fullmatch(agent_id):
        raise InvalidAccount(f"agent id {agent_id[:80]!r}: expected letters, digits, . _ -")
    if role is Role.AGENT and agent_id is None:
        raise InvalidAccount("an agent account needs --agent-id (the agent it logs in as)")
    for team in teams:
        if not TEAM.fullmatch(team):
            raise InvalidAccount(f"team {team[:80]!r}: expected letters, digits, . _ -")
    return role, agent_id, frozenset(teams)


def password_problems(password: str, *, username: str) -> list[str]:
    """Why the password is refused (empty when acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_CHARS:
        problems.append(f"shorter than {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        problems.append(f"longer than {MAX_PASSWORD_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in password):
        problems.append("contains control characters (a pasted newline?)")
    lowered = password.lower()
    if username and username.lower() in lowered:
        problems.append("contains the username")
    if lowered in COMMON_PASSWORDS or len(set(password)) <= 2:
        problems.append("is too easy to guess")
    return problems


def check_password(password: str, *, username: str) -> str:
    problems = password_problems(password, username=username)
    if problems:
        raise WeakPassword("password " + "; ".join(problems))
    return password


# --- authorisation ----------------------------------------------------------------------------


def can_reach_agent(principal: Principal, agent_id: str, agent_teams: Collection[str]) -> bool:
    """May this account see and change this agent's desktop, state and WebSocket?"""
    if principal.role is Role.ADMIN:
        return True
    if principal.agent_id is not None and principal.agent_id == agent_id:
        return True
    if principal.role is Role.SUPERVISOR:
        return not principal.teams.isdisjoint(agent_teams)
    return False


def authorise(
    principal: Principal | None,
    rule: Rule,
    *,
    agent_id: str | None = None,
    agent_teams: Collection[str] = (),
) -> Decision:
    """The decision for one request: `agent_id`/`agent_teams` name the agent an
    AGENT_SCOPED route is about (an unknown agent has no teams: only an admin passes, and the
    route then answers 404 itself)."""
    if rule is Rule.PUBLIC:
        return Decision.ALLOW
    if principal is None:
        return Decision.UNAUTHENTICATED
    if rule is Rule.ANY_ACCOUNT:
        return Decision.ALLOW
    if rule is Rule.SUPERVISION:
        ok = principal.role in (Role.SUPERVISOR, Role.ADMIN)
        return Decision.ALLOW if ok else Decision.FORBIDDEN
    if rule is Rule.ADMIN:
        return Decision.ALLOW if principal.role is Role.ADMIN else Decision.FORBIDDEN
    if rule is Rule.AGENT_SCOPED:
        if agent_id is None:
            return Decision.FORBIDDEN
        ok = can_reach_agent(principal, agent_id, agent_teams)
        return Decision.ALLOW if ok else Decision.FORBIDDEN
    raise AssertionError(f"unhandled rule {rule}")


def visible_agent_ids(
    principal: Principal, teams_of: Iterable[tuple[str, Collection[str]]]
) -> set[str]:
    """The agents (id, teams) this account may see."""
    return {a for a, teams in teams_of if can_reach_agent(principal, a, teams)}


def landing_page(principal: Principal) -> str:
    """Where a fresh login goes when no `next` was asked for."""
    if principal.role is Role.AGENT and principal.agent_id is not None:
        return f"/desktop/{principal.agent_id}"
    return "/"


# --- sessions and logins ----------------------------------------------------------------------


def session_status(record: SessionRecord, *, now: datetime, policy: SessionPolicy) -> SessionStatus:
    if record.revoked:
        return SessionStatus.REVOKED
    if now >= record.expires_at:
        return SessionStatus.EXPIRED
    if (now - record.last_seen_at).total_seconds() >= policy.idle_s:
        return SessionStatus.IDLE
    return SessionStatus.VALID


def should_touch(record: SessionRecord, *, now: datetime, policy: SessionPolicy) -> bool:
    """Record activity (pushing the idle deadline) at most every `touch_every_s`."""
    return (now - record.last_seen_at).total_seconds() >= policy.touch_every_s


def login_blocked(*, user_failures: int, address_failures: int, limits: LoginLimits) -> bool:
    return (
        user_failures >= limits.max_failures_per_user
        or address_failures >= limits.max_failures_per_address
    )


# --- redirects, origins, hosts ----------------------------------------------------------------


def safe_next(raw: str | None, *, default: str) -> str:
    """`raw` if it is a path on this site, else `default`: a login must never send the browser
    to another site (`//evil`, `/\\evil`, `https://evil`, `javascript:`)."""
    if not raw or len(raw) > MAX_NEXT_CHARS:
        return default
    if not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return default
    if any(c in raw for c in "\\\r\n\t") or any(unicodedata.category(c) == "Cc" for c in raw):
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return default
    return raw


def parse_origin(value: str) -> Origin | None:
    """An `Origin` header or a public URL as an Origin; None when it is not one ("null")."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return Origin(parts.scheme, parts.hostname.lower(), port if port is not None else default)


def parse_host(host_header: str, *, scheme: str) -> Origin | None:
    """The `Host` header of a request received over `scheme`, as an Origin."""
    if not host_header or any(c in host_header for c in "/@?#\\ "):
        return None
    return parse_origin(f"{scheme}://{host_header}")


def origin_allowed(origin_header: str | None, allowed: Collection[Origin]) -> bool:
    """A browser's `Origin` is one of ours: scheme, host and port all equal."""
    if origin_header is None:
        return False
    origin = parse_origin(origin_header)
    return origin is not None and origin in allowed


def host_allowed(host_header: str | None, allowed: Collection[Origin]) -> bool:
    """The `Host` names one of our public origins (host and port; the scheme is the proxy's
    business). A DNS-rebinding page reaches us under its own name, which is not among them."""
    if host_header is None:
        return False
    return any(
        (o.host, o.port) == (h.host, h.port)
        for o in allowed
        for h in (parse_host(host_header, scheme=o.scheme),)
        if h is not None
    )
