"""PostgreSQL pool and Redis client, opened and closed as async context managers.

PostgreSQL high availability is libpq's own: a multi-host URL,
`postgresql://db1:5432,db2:5432/centralino?target_session_attrs=read-write`, makes every new
connection try the hosts in order and keep the one that accepts writes (asyncpg implements it),
so after a failover the pool's next connections reach the new primary.

Redis high availability is Redis Sentinel: `redis+sentinel://s1:26379,s2:26379/<master>/<db>`
asks the sentinels for the current master of `<master>` on every new connection (redis-py's
`Sentinel`); a connection to a demoted master fails and the next one goes to the new master.
A password comes from `CENTRALINO_REDIS_PASSWORD`, never from the URL in the settings file.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

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


SENTINEL_SCHEME = "redis+sentinel"
TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Where a `redis+sentinel://` URL points: the sentinels, the master's name, the db."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int


def parse_sentinel_url(url: str) -> SentinelTarget:
    """`redis+sentinel://host[:port][,host[:port]...]/master[/db]` (port 26379 by default)."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    hosts: list[tuple[str, int]] = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        host = host or item.strip()
        if not host:
            raise ValueError(f"{url!r}: a sentinel host is empty")
        hosts.append((host.strip("[]"), int(port) if port else 26379))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"{url!r}: name the master (redis+sentinel://host:26379/<master>/<db>)")
    db = int(path[1]) if len(path) > 1 else 0
    return SentinelTarget(sentinels=tuple(hosts), master=path[0], db=db)


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    sentinel: Sentinel | None = None
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        target = parse_sentinel_url(url)
        password = os.environ.get("CENTRALINO_REDIS_PASSWORD") or None
        timeouts = {"socket_connect_timeout": TIMEOUT_S, "socket_timeout": TIMEOUT_S}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            list(target.sentinels), sentinel_kwargs=timeouts, **timeouts
        )
        client = sentinel.master_for(
            target.master, db=target.db, password=password, health_check_interval=15
        )
    else:
        client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            health_check_interval=15,
        )
    try:
        await client.ping()
        yield client
    finally:
        await client.aclose()
        if sentinel is not None:  # its own connections to the sentinels
            for connection in sentinel.sentinels:
                await connection.aclose()
