"""Wallboard changes across processes: "something the wallboard shows changed" over Redis.

Every event the wallboard shows (a call entering a queue, reserved, answered, ended; an agent's
state) writes the queue log, in whichever process handled it. `NotifyingQueueLog` is the queue
log that, after each write, tells `WallboardChanges`; that publishes one small message on a
Redis channel, and every process's listener pokes its wallboard hub, which pushes a fresh
snapshot to its screens at once instead of at the next tick. A burst of writes while a publish
is in flight is one message (the hub coalesces further). Redis down: the screens fall back to
the ticker (`wallboard_interval_s`), nothing else is affected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import asyncpg
import redis.asyncio as aioredis

from acd.models import QueueLogRow
from centralino.adapters.pg_queue_log import PgQueueLog

log = logging.getLogger(__name__)

CHANNEL = "centralino:wallboard:changed"
# A publish is a hint; one slower than this is dropped (the ticker still refreshes the screens).
PUBLISH_TIMEOUT_S = 0.5
# Redis down: the listener retries this often (the ticker covers the gap).
RETRY_S = 1.0


class WallboardChanges:
    """Publishes changes (`changed`) and delivers everyone's to the local listeners."""

    def __init__(self, *, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._listeners: list[Callable[[], None]] = []
        self._pending = False  # a publish is in flight: later changes ride on it
        self._again = False  # a change arrived during that publish: publish once more
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.published = 0
        self.received = 0

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def changed(self) -> None:
        """Called after every queue-log write; never blocks, never raises."""
        if self._pending:
            self._again = True
            return
        self._pending = True
        task = asyncio.create_task(self._publish(), name="wallboard-changed")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                        await self._redis.publish(CHANNEL, b"1")
                    self.published += 1
                except (aioredis.RedisError, OSError, TimeoutError) as exc:
                    log.debug("wallboard change not published (%s); the ticker covers it", exc)
                if not self._again:
                    return
        finally:
            self._pending = False

    def _deliver(self) -> None:
        self.received += 1
        for callback in self._listeners:
            callback()

    async def start(self) -> None:
        """Subscribe before returning (a change right after is not missed), then listen."""
        if self._listener is not None:
            return
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(subscribed), name="wallboard-listen")
        waiter = asyncio.create_task(subscribed.wait())
        await asyncio.wait({waiter, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def _listen(self, subscribed: asyncio.Event) -> None:
        failing = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_S * 8):
                    await pubsub.subscribe(CHANNEL)
                if failing:
                    log.warning("wallboard changes: Redis back")
                failing = False
                subscribed.set()
                self._deliver()  # whatever changed while we were not listening
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._deliver()
            except (aioredis.RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("wallboard changes: Redis lost (%s); screens tick instead", exc)
                failing = True
            finally:
                subscribed.set()
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_S)

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._listener] if self._listener else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = None


class NotifyingQueueLog(PgQueueLog):
    """The queue log that reports each write to `changed` (see the module docstring)."""

    def __init__(self, *, pool: asyncpg.Pool, changed: Callable[[], None]) -> None:
        super().__init__(pool=pool)
        self._changed = changed

    async def write(self, rows: Sequence[QueueLogRow]) -> None:
        await super().write(rows)
        if rows:
            self._changed()
