"""`centralino user …` and `centralino token create`: accounts for the first admin and for
scripts, on the configured database. Passwords come from standard input, never from the command
line (which other users of the machine can read in the process list)."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from typing import TextIO

from centralino.access import credentials
from centralino.access.errors import AccessError, UnknownAccount
from centralino.access.passwords import Passwords
from centralino.access.policy import check_account, check_password, check_username
from centralino.adapters.pg_accounts import PgAccounts
from centralino.storage.connections import postgres_pool

# A password read from a pipe longer than this is not a password (a file piped by mistake).
MAX_STDIN_CHARS = 4096


def read_password(stdin: TextIO) -> str:
    """The first line of standard input, without its line ending."""
    line = stdin.readline(MAX_STDIN_CHARS + 1)
    if len(line) > MAX_STDIN_CHARS:
        raise AccessError("standard input holds more than a password")
    return line.rstrip("\r\n")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container's random uid)
        return "cli"


async def user_add(
    database_url: str,
    *,
    username: str,
    role: str,
    agent_id: str | None,
    teams: list[str],
    password: str,
    passwords: Passwords | None = None,
) -> int:
    check_username(username)
    role_value, agent_id, team_set = check_account(role=role, agent_id=agent_id, teams=teams)
    check_password(password, username=username)
    hasher = passwords or Passwords()
    async with postgres_pool(database_url, min_size=1, max_size=2) as pool:
        accounts = PgAccounts(pool=pool)
        account = await accounts.add_account(
            username=username,
            role=role_value,
            agent_id=agent_id,
            teams=sorted(team_set),
            password_hash=hasher.hash(password),
        )
        await accounts.audit(
            actor=_actor(),
            action="account_created",
            target=username,
            detail={"role": role_value.value, "agent_id": agent_id, "teams": sorted(team_set)},
        )
    print(f"created {account.role} {account.username}", file=sys.stderr)
    return 0


async def user_passwd(
    database_url: str, *, username: str, password: str, passwords: Passwords | None = None
) -> int:
    check_password(password, username=username)
    hasher = passwords or Passwords()
    async with postgres_pool(database_url, min_size=1, max_size=2) as pool:
        accounts = PgAccounts(pool=pool)
        await accounts.set_password(username, hasher.hash(password))
        await accounts.audit(actor=_actor(), action="password_changed", target=username)
    print(f"password of {username} changed", file=sys.stderr)
    return 0


async def user_disable(database_url: str, *, username: str) -> int:
    async with postgres_pool(database_url, min_size=1, max_size=2) as pool:
        accounts = PgAccounts(pool=pool)
        await accounts.disable(username, now=datetime.now(UTC))
        await accounts.audit(actor=_actor(), action="account_disabled", target=username)
    print(f"{username} disabled; its sessions and tokens are revoked", file=sys.stderr)
    return 0


async def token_create(database_url: str, *, username: str, label: str = "") -> int:
    """Print a new API token for the account, once (only its digest is kept)."""
    async with postgres_pool(database_url, min_size=1, max_size=2) as pool:
        accounts = PgAccounts(pool=pool)
        account = await accounts.account_by_name(username)
        if account is None:
            raise UnknownAccount(f"no account named {username!r}")
        if account.disabled:
            raise AccessError(f"{username!r} is disabled")
        token = credentials.new_api_token()
        token_id = await accounts.create_token(
            account_id=account.id, token_digest=credentials.digest(token), label=label
        )
        await accounts.audit(
            actor=_actor(),
            action="token_created",
            target=account.username,
            detail={"token_id": token_id, "label": label},
        )
    print(token)
    print(
        f"token {token_id} for {account.username} ({account.role}); it is shown only now",
        file=sys.stderr,
    )
    return 0
