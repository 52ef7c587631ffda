"""`ConfigWatch`: every process follows the managed configuration without a restart.

Why PostgreSQL LISTEN/NOTIFY and not a Redis channel: the notification is part of the change's
transaction (sent on commit, never for a change rolled back), and the table it announces is in
the same database, so a process that hears it reads the committed rows. A Redis publish would be
a second write after the commit, lost if the writer died between the two.

A notification only says "something changed"; the watcher then reads the whole configuration
(a few hundred rows at most) and hands it to `apply`. Bursts coalesce into one reload. A dropped
listening connection is reopened with back-off, and the configuration read again at once, since
notifications sent meanwhile are lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from centralino.admin.models import Config
from centralino.admin.store import CHANNEL, PgConfigStore

log = logging.getLogger(__name__)

# How often the listening connection is checked for life (asyncpg reports a dropped connection
# only when it is next used), and the longest wait between reconnection attempts.
CHECK_S = 5.0
MAX_BACKOFF_S = 30.0


class ConfigWatch:
    def __init__(
        self,
        *,
        dsn: str,
        store: PgConfigStore,
        apply: Callable[[Config], Awaitable[None]],
        check_s: float = CHECK_S,
    ) -> None:
        self._dsn = dsn
        self._store = store
        self._apply = apply
        self._check_s = check_s
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0  # how many configurations were applied (tests and metrics read it)
        self.backend_pid = 0  # the listening connection's server process

    async def start(self) -> None:
        """Listen first, then read: a change committed in between is not missed."""
        conn = await self._connect()
        await self._reload()
        self._task = asyncio.create_task(self._run(conn), name="config-watch")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        await conn.add_listener(CHANNEL, self._heard)
        self.backend_pid = conn.get_server_pid()
        return conn

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        log.debug("config change heard: %s", payload)
        self._changed.set()

    async def _reload(self) -> None:
        self._changed.clear()
        config = await self._store.load()
        try:
            await self._apply(config)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            raise  # the connection's trouble: the loop reconnects and reads again
        except Exception:
            # The configuration passed every check when it was written; a process that cannot
            # apply it keeps the one it has, says so, and tries again at the next change.
            log.exception("could not apply the changed configuration; keeping the previous one")
            return
        self.reloads += 1
        log.info(
            "configuration applied (%d agents, %d queues)", len(config.agents), len(config.queues)
        )

    async def _run(self, conn: asyncpg.Connection) -> None:
        backoff = 0.5
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._check_s):
                        await self._changed.wait()
                try:
                    if self._changed.is_set():
                        await self._reload()
                    else:
                        await conn.execute("SELECT 1")  # still listening?
                    backoff = 0.5
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("configuration watch lost its connection (%s); reconnecting", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                        await conn.close(timeout=1)
                    with contextlib.suppress(OSError, asyncpg.PostgresError):
                        conn = await self._connect()
                        self._changed.set()  # missed notifications: read everything again
        finally:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                await conn.close(timeout=1)
