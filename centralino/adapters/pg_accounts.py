"""Accounts, sessions, API tokens and the audit log in PostgreSQL (migration 0006).

A thin store: what is allowed is decided in `centralino.access.policy`; this only reads and
writes rows. Times are passed in by the caller (its clock), so expiry is testable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from centralino.access.errors import InvalidAccount, UnknownAccount
from centralino.access.models import Account, Role, SessionRecord

_ACCOUNT_COLUMNS = "a.id, a.username, a.role, a.agent_id, a.teams, a.password_hash, a.disabled_at"


def _account(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        agent_id=row["agent_id"],
        teams=frozenset(row["teams"]),
        password_hash=row["password_hash"],
        disabled=row["disabled_at"] is not None,
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str | None
    action: str
    target: str | None
    detail: Mapping[str, Any]
    remote: str | None


class PgAccounts:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- accounts -----------------------------------------------------------------------------

    async def add_account(
        self,
        *,
        username: str,
        role: Role,
        agent_id: str | None,
        teams: Sequence[str],
        password_hash: str,
    ) -> Account:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO accounts AS a (username, role, agent_id, teams, password_hash)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {_ACCOUNT_COLUMNS}",
                username,
                role.value,
                agent_id,
                sorted(teams),
                password_hash,
            )
        except asyncpg.UniqueViolationError as exc:
            if "agent_id" in (exc.constraint_name or ""):
                raise InvalidAccount(f"agent {agent_id!r} already has an account") from None
            raise InvalidAccount(f"username {username!r} is taken") from None
        assert row is not None
        return _account(row)

    async def account_by_name(self, username: str) -> Account | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a WHERE lower(a.username) = lower($1)",
            username,
        )
        return None if row is None else _account(row)

    async def set_password(self, username: str, password_hash: str) -> Account:
        row = await self._pool.fetchrow(
            "UPDATE accounts AS a SET password_hash = $2 WHERE lower(a.username) = lower($1)"
            f" RETURNING {_ACCOUNT_COLUMNS}",
            username,
            password_hash,
        )
        if row is None:
            raise UnknownAccount(f"no account named {username!r}")
        return _account(row)

    async def disable(self, username: str, *, now: datetime) -> Account:
        """Disable the account and revoke its sessions and tokens, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE accounts AS a SET disabled_at = coalesce(disabled_at, $2)"
                f" WHERE lower(a.username) = lower($1) RETURNING {_ACCOUNT_COLUMNS}",
                username,
                now,
            )
            if row is None:
                raise UnknownAccount(f"no account named {username!r}")
            await conn.execute(
                "UPDATE sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
                row["id"],
                now,
            )
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = $2"
                " WHERE account_id = $1 AND revoked_at IS NULL",
                row["id"],
                now,
            )
        return _account(row)

    async def accounts(self) -> list[Account]:
        rows = await self._pool.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.id")
        return [_account(r) for r in rows]

    # --- sessions -----------------------------------------------------------------------------

    async def create_session(
        self,
        *,
        account_id: int,
        id_digest: bytes,
        now: datetime,
        expires_at: datetime,
        remote: str | None,
    ) -> None:
        await self._pool.execute(
            "INSERT INTO sessions (id_digest, account_id, created_at, last_seen_at, expires_at,"
            " remote) VALUES ($1, $2, $3, $3, $4, $5)",
            id_digest,
            account_id,
            now,
            expires_at,
            remote,
        )

    async def session(self, id_digest: bytes) -> tuple[SessionRecord, Account] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS}, s.created_at, s.last_seen_at, s.expires_at,"
            " s.revoked_at FROM sessions s JOIN accounts a ON a.id = s.account_id"
            " WHERE s.id_digest = $1",
            id_digest,
        )
        if row is None:
            return None
        account = _account(row)
        record = SessionRecord(
            account_id=account.id,
            created_at=row["created_at"],
            last_seen_at=row["last_seen_at"],
            expires_at=row["expires_at"],
            revoked=row["revoked_at"] is not None or account.disabled,
        )
        return record, account

    async def touch_session(self, id_digest: bytes, *, now: datetime) -> None:
        await self._pool.execute(
            "UPDATE sessions SET last_seen_at = greatest(last_seen_at, $2) WHERE id_digest = $1",
            id_digest,
            now,
        )

    async def revoke_session(self, id_digest: bytes, *, now: datetime) -> bool:
        status = await self._pool.execute(
            "UPDATE sessions SET revoked_at = $2 WHERE id_digest = $1 AND revoked_at IS NULL",
            id_digest,
            now,
        )
        return bool(status.endswith(" 1"))

    # --- API tokens ---------------------------------------------------------------------------

    async def create_token(self, *, account_id: int, token_digest: bytes, label: str = "") -> int:
        token_id = await self._pool.fetchval(
            "INSERT INTO api_tokens (token_digest, account_id, label) VALUES ($1, $2, $3)"
            " RETURNING id",
            token_digest,
            account_id,
            label,
        )
        return int(token_id)

    async def token_account(self, token_digest: bytes, *, now: datetime) -> Account | None:
        """The enabled account of a token that is not revoked (its last use recorded)."""
        row = await self._pool.fetchrow(
            f"UPDATE api_tokens t SET last_used_at = $2 FROM accounts a"
            " WHERE t.token_digest = $1 AND t.revoked_at IS NULL AND a.id = t.account_id"
            f" AND a.disabled_at IS NULL RETURNING {_ACCOUNT_COLUMNS}",
            token_digest,
            now,
        )
        return None if row is None else _account(row)

    async def revoke_token(self, token_id: int, *, now: datetime) -> bool:
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            token_id,
            now,
        )
        return bool(status.endswith(" 1"))

    async def revoke_tokens(
        self, account_id: int, *, now: datetime, label: str | None = None
    ) -> int:
        """Revoke the account's tokens (only those with `label`, if given); how many."""
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL"
            " AND ($3::text IS NULL OR label = $3)",
            account_id,
            now,
            label,
        )
        return int(status.rsplit(" ", 1)[-1])

    # --- audit --------------------------------------------------------------------------------

    async def audit(
        self,
        *,
        actor: str | None,
        action: str,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        remote: str | None = None,
    ) -> None:
        await self._pool.execute(
            "INSERT INTO audit_log (actor, action, target, detail, remote)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)",
            actor,
            action,
            target,
            orjson.dumps(dict(detail or {})).decode(),
            remote,
        )

    async def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]:
        rows = await self._pool.fetch(
            "SELECT at, actor, action, target, detail::text AS detail, remote FROM audit_log"
            " ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [
            AuditEntry(
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                detail=orjson.loads(r["detail"]),
                remote=r["remote"],
            )
            for r in rows
        ]
