"""`PgConfigStore`: the managed configuration in PostgreSQL (migration 0011).

Every write runs in one transaction that takes an advisory lock (one configuration writer at a
time, across processes), reads the whole configuration, applies the change in memory, checks
the result as the settings are checked, writes the row with its version bumped, audits and
sends `NOTIFY config_changes`. So a change is refused on the state it would apply to, two
writers cannot each validate against the other's stale view, and only a committed change
notifies."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from centralino.admin.models import (
    MODELS,
    Builders,
    Config,
    Kind,
    Row,
    Versioned,
    bootstrap,
    check,
    key_of,
    summary,
)
from centralino.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "config_changes"
# Any constant shared by all Centralino processes; it names "the config writer" in pg_locks.
_LOCK_KEY = 0x43464731  # "CFG1"

Connection = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    key: str
    columns: tuple[str, ...]  # as the settings model names its fields
    json_columns: frozenset[str] = frozenset()
    order: str = ""


_TABLES: dict[Kind, _Table] = {
    Kind.AGENTS: _Table(
        "config_agents",
        "id",
        ("id", "name", "skills", "teams", "languages", "endpoint", "wrap_up_s", "asterisk"),
        frozenset({"skills"}),
    ),
    Kind.QUEUES: _Table(
        "config_queues",
        "name",
        (
            "name",
            "skill",
            "strategy",
            "steps",
            "max_length",
            "max_wait_s",
            "on_no_agents",
            "sl_target_s",
            "sl_goal",
        ),
        frozenset({"steps"}),
        order="position, ",
    ),
    Kind.TEAMS: _Table("config_teams", "name", ("name", "description")),
    Kind.REASONS: _Table("config_not_ready_reasons", "code", ("code", "label")),
}


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    """The row changed since the version the writer read (or, on create, already exists)."""

    def __init__(self, message: str, *, current: int | None) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    key: str
    before: Versioned | None
    after: Versioned | None


def _values(table: _Table, row: Row) -> list[Any]:
    data = row.model_dump(mode="json")
    return [
        orjson.dumps(data[c]).decode() if c in table.json_columns else data[c]
        for c in table.columns
    ]


async def _load(conn: Connection) -> Config:
    config = Config()
    for kind, table in _TABLES.items():
        select = ", ".join(f"{c}::text" if c in table.json_columns else c for c in table.columns)
        records = await conn.fetch(
            f"SELECT {select}, version FROM {table.name} ORDER BY {table.order}{table.key}"
        )
        rows = []
        for r in records:
            data = {
                c: orjson.loads(r[c]) if c in table.json_columns else r[c] for c in table.columns
            }
            rows.append(Versioned(MODELS[kind].model_validate(data), r["version"]))
        config = config.with_rows(kind, rows)
    return config


class PgConfigStore:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, builders: Builders) -> None:
        self._pool = pool
        self._settings = settings
        self._builders = builders

    async def load(self) -> Config:
        async with self._pool.acquire() as conn:
            return await _load(conn)

    async def seed(self, config: Config | None = None) -> bool:
        """At the first start, fill the tables from the TOML settings (the bootstrap; `config`
        when the caller built it otherwise, e.g. with the demo's agents); later starts leave
        them alone: the database wins. True when it seeded."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM config_seeded)"):
                return False
            config = config or bootstrap(self._settings)
            for kind in Kind:
                for position, v in enumerate(config.of(kind)):
                    await self._insert(conn, kind, v.row, position)
            await conn.execute("INSERT INTO config_seeded DEFAULT VALUES")
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "seeded")
        log.info(
            "configuration seeded from the settings: %d agents, %d queues",
            len(config.agents),
            len(config.queues),
        )
        return True

    async def _insert(self, conn: Connection, kind: Kind, row: Row, position: int) -> None:
        table = _TABLES[kind]
        columns = list(table.columns)
        params = [
            f"${i + 1}::jsonb" if c in table.json_columns else f"${i + 1}"
            for i, c in enumerate(columns)
        ]
        values = _values(table, row)
        if kind is Kind.QUEUES:
            columns.append("position")
            params.append(f"${len(params) + 1}")
            values.append(position)
        await conn.execute(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(params)})",
            *values,
        )

    async def create(
        self, kind: Kind, row: Row, *, actor: str | None, remote: str | None = None
    ) -> Change:
        key = key_of(kind, row)

        async def apply(conn: Connection, config: Config) -> Change:
            if config.find(kind, key) is not None:
                raise Conflict(f"{kind.value} {key!r} exists already", current=None)
            check(config.put(kind, row, 1), self._settings, self._builders)
            await self._insert(conn, kind, row, len(config.of(kind)))
            return Change(kind, key, None, Versioned(row, 1))

        return await self._write(apply, actor=actor, remote=remote, action="create")

    async def update(
        self,
        kind: Kind,
        key: str,
        row: Row,
        *,
        version: int,
        actor: str | None,
        remote: str | None = None,
    ) -> Change:
        table = _TABLES[kind]
        if key_of(kind, row) != key:
            raise Conflict(
                f"{table.key} in the body ({key_of(kind, row)!r}) is not the one in the path "
                f"({key!r}): renaming is a delete and a create",
                current=None,
            )

        async def apply(conn: Connection, config: Config) -> Change:
            before = config.find(kind, key)
            if before is None:
                raise NotFound(f"no {kind.value} {key!r}")
            if before.version != version:
                raise Conflict(
                    f"{kind.value} {key!r} is at version {before.version}, not {version}: "
                    "someone changed it; read it again",
                    current=before.version,
                )
            check(config.put(kind, row, version + 1), self._settings, self._builders)
            assignments = ", ".join(
                f"{c} = ${i + 2}::jsonb" if c in table.json_columns else f"{c} = ${i + 2}"
                for i, c in enumerate(table.columns)
            )
            await conn.execute(
                f"UPDATE {table.name} SET {assignments}, version = version + 1, "
                f"updated_at = now() WHERE {table.key} = $1",
                key,
                *_values(table, row),
            )
            return Change(kind, key, before, Versioned(row, version + 1))

        return await self._write(apply, actor=actor, remote=remote, action="update")

    async def delete(
        self,
        kind: Kind,
        key: str,
        *,
        version: int | None,
        actor: str | None,
        remote: str | None = None,
    ) -> Change:
        table = _TABLES[kind]

        async def apply(conn: Connection, config: Config) -> Change:
            before = config.find(kind, key)
            if before is None:
                raise NotFound(f"no {kind.value} {key!r}")
            if version is not None and before.version != version:
                raise Conflict(
                    f"{kind.value} {key!r} is at version {before.version}, not {version}",
                    current=before.version,
                )
            check(config.remove(kind, key), self._settings, self._builders)
            await conn.execute(f"DELETE FROM {table.name} WHERE {table.key} = $1", key)
            return Change(kind, key, before, None)

        return await self._write(apply, actor=actor, remote=remote, action="delete")

    async def _write(
        self,
        apply: Callable[[Connection, Config], Awaitable[Change]],
        *,
        actor: str | None,
        remote: str | None,
        action: str,
    ) -> Change:
        # The audit row is written in the change's own transaction: no change without its
        # record, and no record of a change that was rolled back.
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            change: Change = await apply(conn, await _load(conn))
            await conn.execute(
                "INSERT INTO audit_log (actor, action, target, detail, remote)"
                " VALUES ($1, $2, $3, $4::jsonb, $5)",
                actor,
                f"config.{action}",
                f"{change.kind.value}/{change.key}",
                orjson.dumps(
                    {
                        "before": summary(change.before.row if change.before else None),
                        "after": summary(change.after.row if change.after else None),
                    }
                ).decode(),
                remote,
            )
            await conn.execute(
                "SELECT pg_notify($1, $2)", CHANNEL, f"{change.kind.value}/{change.key}"
            )
        log.info("config %s %s/%s by %s", action, change.kind.value, change.key, actor)
        return change
