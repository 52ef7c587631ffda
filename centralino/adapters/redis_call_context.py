"""Per-call context in Redis: a hash under the call's linkedid, with a TTL, plus a pub/sub
channel per call so a late result reaches the desktop of whoever shows the pop, in any process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from context.ports import ContextUpdate

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "centralino:callctx:"
DEFAULT_TTL_S = 3600  # wrap-up and late look-ups; PostgreSQL holds the lasting record
# How often an idle subscription wakes up to notice a cancellation redis-py may have eaten.
_POLL_S = 0.5


# One command per write: set the fields, refresh the TTL, announce the field names. Cheaper for
# the client than a pipeline of three commands (redis-py spends ~30 us packing each command).
_PUT_SCRIPT = """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
# Writes from many calls that arrive in the same loop iteration go out in one pipeline; this
# bounds one pipeline so a huge burst is split into round trips of reasonable size.
MAX_WRITES_PER_ROUND_TRIP = 256


class RedisCallContextStore:
    """The live store for per-call context. Writes from all calls are batched: `put` queues the
    write and one flusher task sends everything queued in a single pipelined round trip, so
    load costs round trips per loop iteration, not per result."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        ttl_s: int = DEFAULT_TTL_S,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._redis = redis
        self.ttl_s = ttl_s
        self._prefix = prefix
        self._script = redis.register_script(_PUT_SCRIPT)  # knows its SHA1; loads on demand
        self._queue: list[tuple[str, Mapping[str, str], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def key(self, linkedid: str) -> str:
        return f"{self._prefix}{linkedid}"

    def channel(self, linkedid: str) -> str:
        return f"{self._prefix}{linkedid}:updates"

    async def put(self, linkedid: str, fields: Mapping[str, str]) -> None:
        if not fields:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((linkedid, fields, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_WRITES_PER_ROUND_TRIP]
                del self._queue[:MAX_WRITES_PER_ROUND_TRIP]
                try:
                    await self._send(batch)
                except Exception as exc:  # handed to each waiting writer, who decides
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flusher = None

    async def _send(self, batch: list[tuple[str, Mapping[str, str], asyncio.Future[None]]]) -> None:
        # EVALSHA straight into the pipeline: redis-py's script helper would add a SCRIPT
        # EXISTS round trip to every pipeline. The script is loaded once, and again only if the
        # server forgot it (restart, SCRIPT FLUSH).
        for attempt in (1, 2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for linkedid, fields, _ in batch:
                    args: list[str | int] = [
                        self.ttl_s,
                        self.channel(linkedid),
                        orjson.dumps(list(fields)).decode(),
                    ]
                    for name, value in fields.items():
                        args += (name, value)
                    pipe.evalsha(self._script.sha, 1, self.key(linkedid), *args)
                try:
                    await pipe.execute()
                    return
                except NoScriptError:
                    if attempt == 2:
                        raise
                    await self._redis.script_load(_PUT_SCRIPT)

    async def aclose(self) -> None:
        """Wait for queued writes to go out (shutdown)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def read(self, linkedid: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self.key(linkedid))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def updates(self, linkedid: str) -> AsyncIterator[ContextUpdate]:
        """Each changed field with its new value, from now until the consumer stops."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        task = asyncio.current_task()
        try:
            await pubsub.subscribe(self.channel(linkedid))
            while True:
                message = await pubsub.get_message(timeout=_POLL_S)
                # redis-py can swallow a cancellation that lands while it reads; honour it.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
                if message is None or message.get("type") != "message":
                    continue
                try:
                    names = orjson.loads(message["data"])
                except orjson.JSONDecodeError:
                    log.warning("ignoring a malformed update on %s", self.channel(linkedid))
                    continue
                values = await self._redis.hmget(self.key(linkedid), names)
                for name, value in zip(names, values, strict=True):
                    if value is not None:
                        yield ContextUpdate(linkedid, str(name), _text(value))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def delete(self, linkedid: str) -> None:
        await self._redis.delete(self.key(linkedid))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
