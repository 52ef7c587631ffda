"""Migrations: applied once, recorded, safe from two processes at once, and tamper-evident."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from centralino.storage.migrate import (
    Migration,
    MigrationError,
    apply_migrations,
    bundled_migrations,
)


def test_bundled_migrations_are_ordered_and_unique() -> None:
    migrations = bundled_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert len(set(versions)) == len(versions)


async def test_second_run_applies_nothing(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        assert await apply_migrations(conn) == []
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    assert recorded == len(bundled_migrations())


async def test_two_processes_racing_apply_each_migration_once(pg_pool: asyncpg.Pool) -> None:
    extra = [Migration(9001, "race_probe", "CREATE TABLE race_probe (id int)")]
    try:
        async with pg_pool.acquire() as a, pg_pool.acquire() as b:
            results = await asyncio.gather(apply_migrations(a, extra), apply_migrations(b, extra))
        assert sorted(len(r) for r in results) == [0, 1]
    finally:
        await pg_pool.execute("DROP TABLE IF EXISTS race_probe")
        await pg_pool.execute("DELETE FROM schema_migrations WHERE version = 9001")


async def test_changed_migration_is_refused(pg_pool: asyncpg.Pool) -> None:
    first = bundled_migrations()[0]
    tampered = Migration(first.version, first.name, first.sql + "\n-- edited")
    async with pg_pool.acquire() as conn:
        with pytest.raises(MigrationError, match="changed after"):
            await apply_migrations(conn, [tampered])


async def test_identities_written_before_normalisation_are_brought_in_line(
    pg_pool: asyncpg.Pool,
) -> None:
    """0004: WhatsApp ids lose their '+', emails are lower-cased; a row whose normalised twin
    already exists is dropped, never duplicated."""
    (migration,) = [m for m in bundled_migrations() if m.name == "identities_normalised"]
    async with pg_pool.acquire() as conn:
        one = await conn.fetchval("INSERT INTO customers (display_name) VALUES ('A') RETURNING id")
        two = await conn.fetchval("INSERT INTO customers (display_name) VALUES ('B') RETURNING id")
        await conn.executemany(
            "INSERT INTO customer_identities (customer_id, kind, value) VALUES ($1, $2, $3)",
            [
                (one, "whatsapp", "+393331234567"),
                (one, "email", " Mario.Rossi@Example.IT"),
                (two, "whatsapp", "393339999999"),
                (two, "whatsapp", "+393339999999"),  # its normalised twin is there already
                (two, "phone", "+390212345678"),  # phones keep their E.164 '+'
            ],
        )
        await conn.execute(migration.sql)
        rows = await conn.fetch(
            "SELECT customer_id, kind, value FROM customer_identities ORDER BY customer_id, value"
        )
    assert [(r["customer_id"], r["kind"], r["value"]) for r in rows] == [
        (one, "whatsapp", "393331234567"),
        (one, "email", "mario.rossi@example.it"),
        (two, "phone", "+390212345678"),
        (two, "whatsapp", "393339999999"),
    ]
