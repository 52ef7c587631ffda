"""The demo's accounts: an admin, a supervisor of every demo team, one agent account per demo
agent, all with one password (generated at each start, or `CENTRALINO_DEMO_PASSWORD`), and an
API token per agent for the simulated desktops. Idempotent: a second run (the embedded
PostgreSQL keeps its data) resets the passwords and replaces the desktops' tokens."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from acd.models import AgentDefinition
from centralino.access import credentials
from centralino.access.errors import WeakPassword
from centralino.access.models import Account, Role
from centralino.access.passwords import Passwords
from centralino.access.policy import check_password
from centralino.adapters.pg_accounts import PgAccounts

ADMIN = "admin"
SUPERVISOR = "supervisor"
DESKTOP_TOKEN_LABEL = "simulated desktop"
SUPERVISOR_TOKEN_LABEL = "demo timeline"  # the banner's curl example of the timeline API


@dataclass(frozen=True, slots=True)
class DemoLogins:
    password: str
    usernames: tuple[str, ...]  # admin, supervisor, then the agents
    desktop_tokens: dict[str, str]  # agent id -> API token of its account
    supervisor_token: str = ""  # an API token of the supervisor's account


def new_demo_password() -> str:
    while True:  # a random one contains "admin" about never; the policy is asked anyway
        password = secrets.token_urlsafe(12)
        try:
            return check_password(password, username=ADMIN)
        except WeakPassword:
            continue


async def _ensure(
    accounts: PgAccounts,
    *,
    username: str,
    role: Role,
    agent_id: str | None,
    teams: Sequence[str],
    password_hash: str,
) -> Account:
    if await accounts.account_by_name(username) is not None:
        return await accounts.set_password(username, password_hash)
    return await accounts.add_account(
        username=username,
        role=role,
        agent_id=agent_id,
        teams=teams,
        password_hash=password_hash,
    )


async def ensure_demo_accounts(
    accounts: PgAccounts,
    *,
    agents: Sequence[AgentDefinition],
    password: str,
    passwords: Passwords,
    now: datetime,
) -> DemoLogins:
    check_password(password, username=ADMIN)
    # One hash for every demo account: a demo, where one argon2 run (~80 ms) beats eight.
    password_hash = passwords.hash(password)
    teams = sorted({t for a in agents for t in a.teams})
    await _ensure(
        accounts,
        username=ADMIN,
        role=Role.ADMIN,
        agent_id=None,
        teams=(),
        password_hash=password_hash,
    )
    supervisor = await _ensure(
        accounts,
        username=SUPERVISOR,
        role=Role.SUPERVISOR,
        agent_id=None,
        teams=teams,
        password_hash=password_hash,
    )
    tokens = await desktop_tokens(accounts, agents=agents, password_hash=password_hash, now=now)
    await accounts.revoke_tokens(supervisor.id, now=now, label=SUPERVISOR_TOKEN_LABEL)
    supervisor_token = credentials.new_api_token()
    await accounts.create_token(
        account_id=supervisor.id,
        token_digest=credentials.digest(supervisor_token),
        label=SUPERVISOR_TOKEN_LABEL,
    )
    return DemoLogins(
        password=password,
        usernames=(ADMIN, SUPERVISOR, *(a.agent_id for a in agents)),
        desktop_tokens=tokens,
        supervisor_token=supervisor_token,
    )


async def desktop_tokens(
    accounts: PgAccounts,
    *,
    agents: Sequence[AgentDefinition],
    password_hash: str,
    now: datetime,
) -> dict[str, str]:
    """An agent account per agent (username = agent id) and a fresh API token for each, the
    previous simulated desktops' tokens revoked."""
    tokens = {}
    for agent in agents:
        account = await _ensure(
            accounts,
            username=agent.agent_id,
            role=Role.AGENT,
            agent_id=agent.agent_id,
            teams=sorted(agent.teams),
            password_hash=password_hash,
        )
        await accounts.revoke_tokens(account.id, now=now, label=DESKTOP_TOKEN_LABEL)
        token = credentials.new_api_token()
        await accounts.create_token(
            account_id=account.id,
            token_digest=credentials.digest(token),
            label=DESKTOP_TOKEN_LABEL,
        )
        tokens[agent.agent_id] = token
    return tokens
