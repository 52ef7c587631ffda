"""The batch path for hot paths (the routing benchmark): raw commands (`RedisLiveStore.command`)
sent many in one round trip over a lean connection of the store's own, packed and parsed by
hiredis, at about a third of a redis-py pipeline's client CPU."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

# A raw Redis command, as hiredis packs it (its stub types the argument as a 1-tuple).
Command = tuple[str | int | float | bytes, ...]
_pack = cast(Callable[[Command], bytes], hiredis.pack_command)


class Batches:
    """The connection `RedisLiveStore.execute` sends its batches over, opened on first use
    where the store's redis-py client connects."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._link: _Link | None = None
        self._link_lock = asyncio.Lock()

    def execute(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """See `RedisLiveStore.execute`."""
        payload = b"".join(map(_pack, commands))
        link = self._link
        if link is not None and not link.lost:
            return link.send(payload, len(commands))
        return asyncio.ensure_future(self._send_when_open(payload, len(commands)))

    async def _send_when_open(self, payload: bytes, n: int) -> list[Any]:
        async with self._link_lock:
            if self._link is None or self._link.lost:
                self._link = await _Link.open(self._client)
            link = self._link
        return await link.send(payload, n)

    def close(self) -> None:
        """Close the connection, if one was opened (a later `execute` opens another)."""
        if self._link is not None:
            self._link.close()
            self._link = None


class _Link(asyncio.Protocol):
    """A Redis connection for `RedisLiveStore.execute`: batches are packed by hiredis and
    written at once; replies are parsed by hiredis as they arrive and handed, in order, to
    the batches waiting for them. No per-command Python objects, no pool, no locks."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[tuple[int, list[Any], asyncio.Future[list[Any]]]] = deque()
        self._transport: asyncio.Transport | None = None
        self.lost = False

    @classmethod
    async def open(cls, client: aioredis.Redis) -> _Link:
        """Connect where `client`'s pool connects (TCP or Unix socket, no TLS), log in and
        select its database."""
        kwargs = client.connection_pool.connection_kwargs
        loop = asyncio.get_running_loop()
        if kwargs.get("ssl") or client.connection_pool.connection_class.__name__ == "SSLConnection":
            raise NotImplementedError("RedisLiveStore.execute does not speak TLS")
        if "path" in kwargs:
            _, link = await loop.create_unix_connection(cls, kwargs["path"])
        else:
            host, port = kwargs.get("host", "localhost"), int(kwargs.get("port", 6379))
            _, link = await loop.create_connection(cls, host, port)
        hello: list[Command] = []
        if kwargs.get("password"):
            user = kwargs.get("username")
            hello.append(
                ("AUTH", user, kwargs["password"]) if user else ("AUTH", kwargs["password"])
            )
        if int(kwargs.get("db", 0) or 0):
            hello.append(("SELECT", int(kwargs["db"])))
        if hello:
            for reply in await link.send(b"".join(map(_pack, hello)), len(hello)):
                if isinstance(reply, ResponseError):
                    link.close()
                    raise reply
        return link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError:
                self.close()  # not Redis speaking: the batches waiting fail in connection_lost
                return
            if reply is False:
                return
            if not self._waiting:  # a reply nobody asked for: the stream cannot be trusted
                self.close()
                return
            want, got, done = self._waiting[0]
            got.append(reply)
            if len(got) == want:
                self._waiting.popleft()
                if not done.done():  # its caller may have been cancelled: drop the replies
                    done.set_result(got)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self._waiting:
            _, _, done = self._waiting.popleft()
            if not done.done():
                done.set_exception(ConnectionError(f"Redis connection lost: {exc}"))

    def send(self, payload: bytes, n: int) -> asyncio.Future[list[Any]]:
        if self.lost or self._transport is None:
            raise ConnectionError("Redis connection lost")
        done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((n, [], done))
        self._transport.write(payload)
        return done

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
