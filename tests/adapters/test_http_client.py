"""The connectors' HTTP/1.1 client against real servers: aiohttp's, and scripted raw TCP ones
for the answers a well-behaved server never gives."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trustme
from aiohttp import web

from centralino.adapters.http_client import (
    MAX_HEAD_BYTES,
    HttpBodyTooLarge,
    HttpClient,
    HttpConnectionError,
    HttpPool,
    HttpResponseError,
)
from tests.demo.serve import serve
from tests.helpers import eventually

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server running `handler` per connection; yields its origin and a one-item list
    counting the connections accepted so far."""
    accepted = [0]

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"".join(h + b"\r\n" for h in extra)
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def counting_app() -> tuple[web.Application, list[int]]:
    peers: set[object] = set()
    seen = [0]

    async def handler(request: web.Request) -> web.Response:
        peers.add(request.transport)
        seen[0] = len(peers)
        await asyncio.sleep(float(request.query.get("sleep", "0")))
        return web.json_response({"path": request.path, "q": request.query.get("q", "")})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app, seen


async def get(pool: HttpPool, target: str, max_body: int = 65536) -> tuple[int, bytes]:
    answer = await pool.get(
        pool.request_bytes(target, {"Accept": "application/json"}), max_body=max_body
    )
    return answer.status, answer.body


async def test_sequential_requests_reuse_one_keep_alive_connection(
    http_client: HttpClient,
) -> None:
    app, seen = counting_app()
    async with serve(app) as url:
        pool = http_client.pool(url)
        for i in range(5):
            status, body = await get(pool, f"/a?q={i}")
            assert status == 200 and body == b'{"path": "/a", "q": "%d"}' % i
    assert seen[0] == 1

    def dropped() -> None:
        assert pool.connections == 0  # the server went away: its connection is dropped

    await eventually(dropped)


async def test_concurrent_requests_never_exceed_the_connection_limit() -> None:
    app, seen = counting_app()
    async with serve(app) as url, HttpClient(max_connections_per_origin=3) as client:
        pool = client.pool(url)
        answers = await asyncio.gather(*(get(pool, f"/x?sleep=0.02&q={i}") for i in range(12)))
        assert [a[0] for a in answers] == [200] * 12
        assert seen[0] == 3 and pool.connections <= 3


async def test_warm_up_opens_idle_connections_that_requests_then_use(
    http_client: HttpClient,
) -> None:
    app, seen = counting_app()
    async with serve(app) as url:
        pool = http_client.pool(url)
        assert await pool.warm_up(4) == 4
        await asyncio.gather(*(get(pool, "/w") for _ in range(4)))
        assert seen[0] <= 4 and pool.connections == 4


async def test_chunked_and_close_delimited_bodies_are_read_whole(http_client: HttpClient) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await read_request(reader)  # still usable afterwards
        writer.write(ok(b"again"))
        await writer.drain()

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(chunked) as (origin, accepted):
        pool = http_client.pool(origin)
        assert await get(pool, "/c") == (200, b"hello world")
        assert await get(pool, "/c") == (200, b"again")
        assert accepted[0] == 1
    async with raw_server(until_close) as (origin, _):
        assert await get(http_client.pool(origin), "/d") == (200, b"all of it")


async def test_an_informational_answer_is_skipped(http_client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"))
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as (origin, _):
        assert await get(http_client.pool(origin), "/i") == (200, b"{}")


async def test_oversized_bodies_are_refused_and_the_connection_dropped(
    http_client: HttpClient,
) -> None:
    async def announced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        await reader.read()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
        await writer.drain()
        await reader.read()

    for handler in (announced, chunked):
        async with raw_server(handler) as (origin, _):
            pool = http_client.pool(origin)
            with pytest.raises(HttpBodyTooLarge):
                await get(pool, "/big", max_body=4096)
            assert pool.connections == 0


@pytest.mark.parametrize(
    "answer",
    [
        b"HELLO THERE\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
    ],
    ids=["not-http", "bad-length", "huge-head"],
)
async def test_malformed_answers_are_response_errors(
    http_client: HttpClient, answer: bytes
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as (origin, _):
        pool = http_client.pool(origin)
        with pytest.raises(HttpResponseError):
            await get(pool, "/m")
        assert pool.connections == 0


async def test_a_keep_alive_connection_closed_by_the_server_is_retried_once(
    http_client: HttpClient,
) -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(ok(b"first"))  # keep-alive promised...
        await writer.drain()
        # ...but the connection closes as soon as the next request arrives, answer unsent
        await read_request(reader)

    async with raw_server(one_answer_then_close) as (origin, accepted):
        pool = http_client.pool(origin)
        assert await get(pool, "/1") == (200, b"first")
        assert await get(pool, "/2") == (200, b"first")  # on a new connection
        assert accepted[0] == 2


async def test_a_connection_ending_mid_answer_or_refused_is_a_connection_error(
    http_client: HttpClient,
) -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with raw_server(half) as (origin, _):
        with pytest.raises(HttpConnectionError, match="before the answer was complete"):
            await get(http_client.pool(origin), "/h")
    with pytest.raises(HttpConnectionError, match="cannot connect"):
        await get(http_client.pool(origin), "/gone")  # the server is closed now


async def test_a_cancelled_request_closes_its_connection_and_the_pool_goes_on(
    http_client: HttpClient,
) -> None:
    app, seen = counting_app()
    async with serve(app) as url:
        pool = http_client.pool(url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await get(pool, "/slow?sleep=5")
        assert pool.connections == 0
        assert (await get(pool, "/fast"))[0] == 200
        assert seen[0] == 2


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    app, _ = counting_app()
    async with serve(app) as url, HttpClient(max_connections_per_origin=1) as client:
        pool = client.pool(url)
        busy = asyncio.create_task(get(pool, "/a?sleep=0.1"))
        await asyncio.sleep(0.02)
        doomed = asyncio.create_task(get(pool, "/b"))
        patient = asyncio.create_task(get(pool, "/c"))
        await asyncio.sleep(0.02)
        doomed.cancel()
        assert (await busy)[0] == 200
        async with asyncio.timeout(2):
            assert (await patient)[0] == 200
        assert doomed.cancelled()


async def test_unsolicited_bytes_on_an_idle_connection_drop_it(http_client: HttpClient) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(b"1"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"surprise")
        await writer.drain()
        await reader.read()

    async with raw_server(chatty) as (origin, accepted):
        pool = http_client.pool(origin)
        assert await get(pool, "/1") == (200, b"1")
        await asyncio.sleep(0.2)
        assert pool.connections == 0
        assert await get(pool, "/2") == (200, b"1")
        assert accepted[0] == 2


def test_header_and_target_injection_is_refused() -> None:
    pool = HttpPool("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        pool.request_bytes("/x", {"X-Key": "a\r\nX-Evil: 1"})
    with pytest.raises(ValueError):
        pool.request_bytes("/x HTTP/1.0\r\nHost: evil", {})
    with pytest.raises(ValueError):
        pool.request_bytes("x", {})
    request = pool.request_bytes("/p?q=%2B39", {"Accept": "application/json"})
    assert request.startswith(b"GET /p?q=%2B39 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n")
    assert request.endswith(b"\r\n\r\n")
    with pytest.raises(ValueError):
        HttpPool("ftp://host")
    with pytest.raises(ValueError):
        HttpPool("http://host/with/path")
    with pytest.raises(ValueError):
        HttpPool("http://user:secret@host")
    with pytest.raises(ValueError):
        pool.request_bytes("/x", {"X-Key": "snowman \u2603"})
    with pytest.raises(ValueError):
        pool.request_bytes("/caff\u00e8", {})


async def test_https_with_a_trusted_ca_and_refused_without() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    app, _ = counting_app()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", 0, ssl_context=server_ctx)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        async with HttpClient(ssl_context=client_ctx) as trusting:
            status, body = await get(trusting.pool(f"https://localhost:{port}"), "/s?q=tls")
            assert status == 200 and b'"tls"' in body
        async with HttpClient() as default:  # the system's CAs do not know ours
            with pytest.raises(HttpConnectionError, match="certificate"):
                await get(default.pool(f"https://localhost:{port}"), "/s")
    finally:
        await runner.cleanup()
