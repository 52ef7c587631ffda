"""Accounts, sessions, tokens and the audit log in real PostgreSQL; login counters in Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from centralino.access import credentials
from centralino.access.errors import InvalidAccount, UnknownAccount
from centralino.access.models import Role
from centralino.access.policy import LoginLimits
from centralino.adapters.pg_accounts import PgAccounts
from centralino.adapters.redis_login_limiter import RedisLoginLimiter

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


async def test_accounts_are_unique_by_name_and_agent(pg_pool: asyncpg.Pool) -> None:
    accounts = PgAccounts(pool=pg_pool)
    ann = await accounts.add_account(
        username="Ann", role=Role.AGENT, agent_id="a1", teams=["blue"], password_hash="$h"
    )
    assert (ann.username, ann.role, ann.agent_id) == ("Ann", Role.AGENT, "a1")
    assert ann.teams == frozenset({"blue"})
    assert await accounts.account_by_name("ANN") == ann  # names are case-insensitive
    with pytest.raises(InvalidAccount, match="username 'ann' is taken"):
        await accounts.add_account(
            username="ann", role=Role.ADMIN, agent_id=None, teams=[], password_hash="$h"
        )
    with pytest.raises(InvalidAccount, match="agent 'a1' already has an account"):
        await accounts.add_account(
            username="ann2", role=Role.AGENT, agent_id="a1", teams=[], password_hash="$h"
        )
    with pytest.raises(asyncpg.CheckViolationError):  # the table refuses an agent without id
        await pg_pool.execute(
            "INSERT INTO accounts (username, role, password_hash) VALUES ('x', 'agent', 'h')"
        )
    with pytest.raises(UnknownAccount):
        await accounts.set_password("nobody", "$h")
    with pytest.raises(UnknownAccount):
        await accounts.disable("nobody", now=T0)


async def test_sessions_and_tokens_are_stored_as_digests_and_revoked_with_the_account(
    pg_pool: asyncpg.Pool,
) -> None:
    accounts = PgAccounts(pool=pg_pool)
    ann = await accounts.add_account(
        username="ann", role=Role.AGENT, agent_id="a1", teams=[], password_hash="$h"
    )
    session_id, token = credentials.new_session_id(), credentials.new_api_token()
    await accounts.create_session(
        account_id=ann.id,
        id_digest=credentials.digest(session_id),
        now=T0,
        expires_at=T0 + timedelta(hours=8),
        remote="10.0.0.7",
    )
    await accounts.create_token(account_id=ann.id, token_digest=credentials.digest(token))
    stored = await pg_pool.fetchval("SELECT count(*) FROM sessions WHERE id_digest = $1", b"")
    assert stored == 0
    raw = await pg_pool.fetch("SELECT id_digest::text AS d FROM sessions")
    assert session_id not in raw[0]["d"]  # the id itself is nowhere in the table

    found = await accounts.session(credentials.digest(session_id))
    assert found is not None and not found[0].revoked and found[1].username == "ann"
    await accounts.touch_session(credentials.digest(session_id), now=T0 + timedelta(minutes=5))
    found = await accounts.session(credentials.digest(session_id))
    assert found is not None and found[0].last_seen_at == T0 + timedelta(minutes=5)
    assert await accounts.token_account(credentials.digest(token), now=T0) is not None
    assert await accounts.session(credentials.digest("forged")) is None

    disabled = await accounts.disable("ann", now=T0)
    assert disabled.disabled
    found = await accounts.session(credentials.digest(session_id))
    assert found is not None and found[0].revoked
    assert await accounts.token_account(credentials.digest(token), now=T0) is None


async def test_revoking_tokens_by_label_and_one_session(pg_pool: asyncpg.Pool) -> None:
    accounts = PgAccounts(pool=pg_pool)
    ann = await accounts.add_account(
        username="ann", role=Role.ADMIN, agent_id=None, teams=[], password_hash="$h"
    )
    keep, drop = credentials.new_api_token(), credentials.new_api_token()
    await accounts.create_token(
        account_id=ann.id, token_digest=credentials.digest(keep), label="ci"
    )
    await accounts.create_token(
        account_id=ann.id, token_digest=credentials.digest(drop), label="desk"
    )
    assert await accounts.revoke_tokens(ann.id, now=T0, label="desk") == 1
    assert await accounts.token_account(credentials.digest(keep), now=T0) is not None
    assert await accounts.token_account(credentials.digest(drop), now=T0) is None
    assert not await accounts.revoke_session(credentials.digest("none"), now=T0)


async def test_audit_keeps_who_what_when_and_where(pg_pool: asyncpg.Pool) -> None:
    accounts = PgAccounts(pool=pg_pool)
    await accounts.audit(actor=None, action="login_failed", target="<b>x</b>", remote="10.0.0.9")
    await accounts.audit(
        actor="lead", action="agent_state_forced", target="a1", detail={"state": "ready"}
    )
    newest, oldest = await accounts.audit_entries()
    assert (newest.actor, newest.action, newest.target, newest.detail) == (
        "lead",
        "agent_state_forced",
        "a1",
        {"state": "ready"},
    )
    assert (oldest.actor, oldest.target, oldest.remote) == (None, "<b>x</b>", "10.0.0.9")
    assert oldest.at <= newest.at


async def test_login_counters_are_shared_and_expire(redis_client: aioredis.Redis) -> None:
    limits = LoginLimits(max_failures_per_user=2, max_failures_per_address=3, window_s=30)
    one = RedisLoginLimiter(redis=redis_client, limits=limits)
    two = RedisLoginLimiter(redis=redis_client, limits=limits)  # another process
    await one.failed(username="Ann", address="10.0.0.1")
    assert not await two.blocked(username="ann", address="10.0.0.2")
    await two.failed(username="ann", address="10.0.0.2")
    assert await one.blocked(username="ANN", address="10.0.0.3")
    keys = [k if isinstance(k, str) else k.decode() for k in await redis_client.keys("login-*")]
    assert all("ann" not in k.lower() for k in keys)  # names are hashed, not used as keys
    ttls = [await redis_client.ttl(k) for k in keys]
    assert len(ttls) == 3 and all(0 < t <= 30 for t in ttls)
    await one.succeeded(username="ann")
    assert not await two.blocked(username="ann", address="10.0.0.3")
