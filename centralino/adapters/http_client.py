"""A lean keep-alive HTTP/1.1 client for the connectors: GETs to ERP/CRM APIs on the call path.

Why not aiohttp's client (the web server and the simulated desktops still use aiohttp): the
pre-answer fan-out sends three or more GETs per call at hundreds of calls a second, and
aiohttp's client spends about 100 µs of CPU on each (URL objects, header multidicts, request
and response objects, per-request timers); this one about 20 µs, most of it the kernel's
(a burst of 600 GETs on loopback, measured on the benchmark machine). Answers are parsed by
httptools (llhttp, Node.js's parser); this module is only the asyncio shell around it: a pool
of keep-alive connections per origin, one request at a time on each, LIFO reuse.

Scope, on purpose: GET only; HTTP/1.1 over TCP or TLS; no redirects (an API that redirects
is misconfigured, the status is returned as it is); no proxies, cookies or compression (we
never ask for any). The caller bounds the total time (`asyncio.timeout`); a request cancelled
mid-way closes its connection, whose state is then unknown.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

# Larger response heads are not an API's: refused before they fill memory.
MAX_HEAD_BYTES = 64 * 1024
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_CONNECT_TIMEOUT_S = 2.0
# Servers close idle keep-alive connections after 5 s (nginx: 75 s); ours are dropped first.
DEFAULT_IDLE_TIMEOUT_S = 4.0
_USER_AGENT = b"centralino"


class HttpError(Exception):
    """Base of this client's errors; `str()` says what went wrong, for logs and pops."""


class HttpConnectionError(HttpError):
    """The server could not be reached, or the connection ended before the whole answer."""


class HttpResponseError(HttpError):
    """The answer is not valid HTTP/1.1 (or its head is absurdly large)."""


class HttpBodyTooLarge(HttpError):
    """The body is over the caller's limit: refused (and the connection dropped) as soon as
    the Content-Length or the bytes received say so."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes


class _Stale(Exception):
    """A reused connection closed before any byte of the answer: safe to retry a GET."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the `on_*` methods while parsing."""

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request before (then a close at once is stale)
        self._waiter: asyncio.Future[HttpAnswer] | None = None
        self._max_body = 0
        self._reset()

    def _reset(self) -> None:
        self._body: list[bytes] = []
        self._size = 0
        self._head_size = 0
        self._received = False
        self._headers_done = False
        self._delimited = False  # Content-Length or chunked: the end is known without a close

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._lost(self)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._delimited:
            # A close-delimited body (no length, not chunked) ends with the connection.
            waiter.set_result(self._answer())
        elif not self._received and self.used:
            waiter.set_exception(_Stale())
        else:
            why = "before the answer was complete" if self._received else "without an answer"
            waiter.set_exception(HttpConnectionError(f"the server closed the connection {why}"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the stream cannot be trusted
            self.close()
            return
        self._received = True
        if not self._headers_done:
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_BYTES:
                self._fail(HttpResponseError(f"response head over {MAX_HEAD_BYTES} bytes"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, HttpError) else HttpResponseError(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(HttpResponseError(f"malformed HTTP answer: {exc}"))

    # --- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-length":
            self._delimited = True
            if value.strip().isdigit() and int(value) > self._max_body:
                raise HttpBodyTooLarge(f"announced body of {int(value)} bytes")
        elif lower == b"transfer-encoding":
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            raise HttpBodyTooLarge(f"body over {self._max_body} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:  # 1xx: the real answer follows
            self._reset()
            self._received = True
            return
        waiter, self._waiter = self._waiter, None
        answer = self._answer()
        self._reset()
        if self._parser.should_keep_alive():
            self._pool._release(self)
        else:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    # --- used by the pool -------------------------------------------------------------------

    def _answer(self) -> HttpAnswer:
        return HttpAnswer(status=self._parser.get_status_code(), body=b"".join(self._body))

    def _fail(self, error: HttpError) -> None:
        waiter, self._waiter = self._waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def send(self, request: bytes, max_body: int) -> asyncio.Future[HttpAnswer]:
        assert self.transport is not None
        self._max_body = max_body
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool._lost(self)
            if self.transport is not None:
                self.transport.close()


class HttpPool:
    """Keep-alive connections to one origin (`http[s]://host[:port]`), at most
    `max_connections` at once; callers beyond that wait for one to come back."""

    def __init__(
        self,
        origin: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"an origin has no path: {origin!r}")
        if parts.username is not None:
            raise ValueError("credentials go in a header from the environment, not in the URL")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._host_line = b"Host: " + parts.netloc.encode("idna") + b"\r\n"
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._idle: list[_Connection] = []  # LIFO: the most recently used is the warmest
        self._all: set[_Connection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    @property
    def connections(self) -> int:
        """Open connections (idle or carrying a request)."""
        return len(self._all)

    def request_bytes(self, target: str, headers: Mapping[str, str]) -> bytes:
        """The bytes of `GET target` with `headers`, for `get`. CR and LF are refused anywhere:
        they would let a value start a header of its own."""
        if not target.startswith("/") or any(c in target for c in "\r\n "):
            raise ValueError(f"target {target!r} is not an absolute path")
        try:
            lines = [f"GET {target} HTTP/1.1\r\n".encode("ascii"), self._host_line]
            for name, value in headers.items():
                if any(c in name or c in value for c in "\r\n") or ":" in name:
                    raise ValueError(f"header {name!r} has a forbidden character")
                lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError as exc:
            raise ValueError(f"not encodable in a request head: {exc.object!r}") from None
        lines.append(b"User-Agent: " + _USER_AGENT + b"\r\n\r\n")
        return b"".join(lines)

    async def get(self, request: bytes, *, max_body: int) -> HttpAnswer:
        """Send a request made by `request_bytes` and return the answer. A reused connection
        that turns out closed by the server (keep-alive race) is retried once on a new one."""
        for attempt in (1, 2):
            conn = await self._acquire(fresh=attempt == 2)
            try:
                return await conn.send(request, max_body)
            except _Stale:
                if attempt == 2:
                    break
            except BaseException:  # cancelled or timed out mid-request: state unknown
                conn.close()
                raise
            finally:
                conn.used = True
        raise HttpConnectionError("the server closed the connection without an answer")

    async def warm_up(self, connections: int) -> int:
        """Open up to `connections` idle connections now (a burst then finds them ready).
        Returns how many are idle afterwards."""
        wanted = min(connections, self._max) - len(self._all) - self._opening
        results = await asyncio.gather(
            *(self._connect() for _ in range(max(0, wanted))), return_exceptions=True
        )
        for conn in results:
            if isinstance(conn, _Connection):
                self._release(conn)
        return len(self._idle)

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._all):
            conn.close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # --- the pool ---------------------------------------------------------------------------

    async def _acquire(self, *, fresh: bool = False) -> _Connection:
        while True:
            if self._closed:
                raise HttpConnectionError(f"the client for {self.origin} is closed")
            if not fresh:
                conn = self._take_idle()
                if conn is not None:
                    return conn
            if len(self._all) + self._opening < self._max:
                return await self._connect()
            if fresh and self._idle:
                self._idle.pop().close()  # make room for the new connection
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the turn passes to the next caller
                else:
                    waiter.cancel()  # `_wake` skips it
                raise

    def _take_idle(self) -> _Connection | None:
        limit = time.monotonic() - self._idle_timeout_s
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < limit:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self) -> _Connection:
        self._opening += 1
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await asyncio.get_running_loop().create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            raise HttpConnectionError(f"no connection to {self.origin} in time") from None
        except OSError as exc:
            raise HttpConnectionError(f"cannot connect to {self.origin}: {exc}") from exc
        finally:
            self._opening -= 1
            self._wake()
        self._all.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.closed or self._closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake()

    def _lost(self, conn: _Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class HttpClient:
    """One pool per origin, shared by every connector (the composition root owns it)."""

    def __init__(
        self,
        *,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max = max_connections_per_origin
        self._connect_timeout_s = connect_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._ssl = ssl_context
        self._pools: dict[str, HttpPool] = {}

    def pool(self, origin: str) -> HttpPool:
        parts = urlsplit(origin)
        key = f"{parts.scheme}://{parts.netloc}".lower()
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = HttpPool(
                key,
                max_connections=self._max,
                connect_timeout_s=self._connect_timeout_s,
                idle_timeout_s=self._idle_timeout_s,
                ssl_context=self._ssl,
            )
        return pool

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
