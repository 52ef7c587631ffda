"""PostgreSQL pool and Redis client, opened and closed as async context managers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis.asyncio as aioredis

from centralino.storage.migrate import apply_migrations


async def release_as_is(conn: asyncpg.Connection) -> None:
    """The pool's `reset`: asyncpg's default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` on every release, a round trip that doubled the database time of a
    webhook (bench/webhooks.py). Nothing of ours keeps session state on a pooled connection
    (advisory locks are transaction-level, no LISTEN, SET, cursors or temporary tables), and a
    transaction left open is still rolled back by the pool before this is called."""


@asynccontextmanager
async def postgres_pool(
    url: str, *, min_size: int = 2, max_size: int = 20, migrate: bool = True
) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool (applying pending migrations first, under the migration lock)."""
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, timeout=10, reset=release_as_is
    )
    assert pool is not None  # create_pool only returns None when awaited lazily
    try:
        if migrate:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=5, socket_timeout=5, health_check_interval=15
    )
    try:
        await client.ping()
        yield client
    finally:
        await client.aclose()
