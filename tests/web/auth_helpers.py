"""Accounts and logins for web tests: real PgAccounts and RedisLoginLimiter, cheap argon2.

`make_access` builds the `Access` the composition root builds (with argon2 parameters cut down
so that a test logging in ten times does not spend seconds hashing); `login` goes through the
real login form, as a browser does, and returns the session's CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime

import argon2
import asyncpg
import redis.asyncio as aioredis
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from centralino.access import credentials
from centralino.access.models import Account, Role
from centralino.access.passwords import Passwords
from centralino.access.policy import LoginLimits, SessionPolicy
from centralino.adapters.pg_accounts import PgAccounts
from centralino.adapters.redis_login_limiter import RedisLoginLimiter
from centralino.web.auth import Access, AccessConfig

PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# Real argon2id, minimal cost: the tests check behaviour, not the work factor.
FAST_PASSWORDS = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def make_access(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    *,
    agent_teams: Mapping[str, Collection[str]],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    session: SessionPolicy | None = None,
    limits: LoginLimits | None = None,
    ws_recheck_s: float = 30.0,
) -> Access:
    return Access(
        accounts=PgAccounts(pool=pool),
        limiter=RedisLoginLimiter(redis=redis, limits=limits or LoginLimits()),
        passwords=FAST_PASSWORDS,
        config=AccessConfig(
            origins=set(), session=session or SessionPolicy(), ws_recheck_s=ws_recheck_s
        ),
        agent_teams=agent_teams,
        now=now,
    )


async def add_user(
    access: Access,
    username: str,
    role: Role,
    *,
    agent_id: str | None = None,
    teams: Collection[str] = (),
    password: str = PASSWORD,
) -> Account:
    accounts = access.accounts
    assert isinstance(accounts, PgAccounts)
    return await accounts.add_account(
        username=username,
        role=role,
        agent_id=agent_id,
        teams=sorted(teams),
        password_hash=FAST_PASSWORDS.hash(password),
    )


def origin_of(client: TestClient[web.Request, web.Application]) -> str:
    return f"http://127.0.0.1:{client.port}"


async def login_form(client: TestClient[web.Request, web.Application], path: str = "/login") -> str:
    """Open the login form (its nonce cookie lands in the client's jar); its CSRF value."""
    response = await client.get(path, allow_redirects=False)
    assert response.status == 200, await response.text()
    found = CSRF_FIELD.search(await response.text())
    assert found is not None
    return found[1]


async def post_login(
    client: TestClient[web.Request, web.Application],
    username: str,
    password: str = PASSWORD,
    *,
    next_path: str = "",
    origin: str | None = None,
) -> ClientResponse:
    nonce = await login_form(client)
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": nonce, "next": next_path},
        headers={"Origin": origin or origin_of(client)},
        allow_redirects=False,
    )
    return response


async def login(
    client: TestClient[web.Request, web.Application], username: str, password: str = PASSWORD
) -> str:
    """Log in through the form; make the client send our Origin and the session's CSRF token
    by default (as the pages' script does); return the CSRF token."""
    response = await post_login(client, username, password)
    assert response.status == 303, await response.text()
    me = await client.get("/api/session")
    assert me.status == 200
    csrf = (await me.json())["csrf_token"]
    client.session.headers["Origin"] = origin_of(client)
    client.session.headers["X-CSRF-Token"] = csrf
    return str(csrf)


async def add_token_user(
    access: Access,
    username: str,
    role: Role,
    token: str,
    *,
    agent_id: str | None = None,
    teams: Collection[str] = (),
) -> Account:
    """An account (made once) holding this API token (added once): for tests that call the
    JSON API as a script would, with `Authorization: Bearer <token>`."""
    accounts = access.accounts
    assert isinstance(accounts, PgAccounts)
    account = await accounts.account_by_name(username)
    if account is None:
        account = await add_user(access, username, role, agent_id=agent_id, teams=teams)
    digest = credentials.digest(token)
    if await accounts.token_account(digest, now=datetime.now(UTC)) is None:
        await accounts.create_token(account_id=account.id, token_digest=digest, label="test")
    return account
