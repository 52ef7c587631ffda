"""A multi-host PostgreSQL URL: the pool skips a host that is down and one that is read-only."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import asyncpg

from centralino.settings import load_settings
from centralino.storage.connections import postgres_pool


def _dead_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _multihost(dsn: str, first: str) -> str:
    parts = urlsplit(dsn)
    assert parts.hostname and parts.port, "the test database is reached over TCP"
    user = f"{parts.username}@" if parts.username else ""
    query = "target_session_attrs=read-write"
    return f"postgresql://{user}{first},{parts.hostname}:{parts.port}{parts.path}?{query}"


async def test_given_the_first_host_is_down_then_the_pool_uses_the_next(pg_dsn: str) -> None:
    url = _multihost(pg_dsn, f"127.0.0.1:{_dead_port()}")
    async with postgres_pool(url, min_size=1, max_size=2) as pool:
        assert await pool.fetchval("SELECT 1") == 1
        assert await pool.fetchval("SELECT pg_is_in_recovery()") is False


async def test_given_only_a_read_only_server_then_no_connection_is_taken_for_writes(
    pg_dsn: str,
) -> None:
    """A database whose sessions are read-only stands for a standby: with
    `target_session_attrs=read-write` it is refused (asyncpg asks `transaction_read_only`, as
    libpq does), so after a failover nothing writes to the demoted server."""
    admin = await asyncpg.connect(pg_dsn)
    name = urlsplit(pg_dsn).path.lstrip("/")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        read_only_url = pg_dsn
        conn = await asyncpg.connect(read_only_url)
        try:
            assert await conn.fetchval("SHOW transaction_read_only") == "on"
        finally:
            await conn.close()
        # The first host answers read-only; there is no writable host after it.
        url = f"{read_only_url}?target_session_attrs=read-write"
        try:
            await asyncpg.connect(url, timeout=5)
        except (asyncpg.TargetServerAttributeNotMatched, OSError):
            pass
        else:
            raise AssertionError("a read-only server was taken for the primary")
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()


def test_a_multihost_url_is_accepted_by_the_settings() -> None:
    settings = load_settings(
        None,
        environ={
            "CENTRALINO_DATABASE_URL": "postgresql://centralino@db1:5432,db2:5432/centralino"
            "?target_session_attrs=read-write"
        },
    )
    assert settings.database.url is not None
    assert "db2:5432" in settings.database.url.get_secret_value()
