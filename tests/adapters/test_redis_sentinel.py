"""Redis Sentinel: `redis+sentinel://` URLs, and a real master failed over under the client.

A master, a replica and one sentinel of the test's own (the machine's redis-server binary in
sentinel mode, as Debian's redis-sentinel runs it) on free ports; the master is SIGKILLed and
the sentinel promotes the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from centralino.storage.connections import SentinelTarget, parse_sentinel_url, redis_client

MASTER = "centralino"


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_db() -> None:
    assert parse_sentinel_url("redis+sentinel://s1:26380,s2/centralino/3") == SentinelTarget(
        sentinels=(("s1", 26380), ("s2", 26379)), master="centralino", db=3
    )
    assert parse_sentinel_url("redis+sentinel://10.0.0.1/mymaster").db == 0
    with pytest.raises(ValueError, match="name the master"):
        parse_sentinel_url("redis+sentinel://s1:26379")
    with pytest.raises(ValueError, match="not a redis"):
        parse_sentinel_url("redis://s1:6379/0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass
class Trio:
    master: subprocess.Popen[bytes]
    master_port: int
    replica_port: int
    sentinel_port: int

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{MASTER}/0"


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    master_port, replica_port, sentinel_port = _free_port(), _free_port(), _free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes: list[subprocess.Popen[bytes]] = []

    def start(args: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, cwd=tmp_path)
        processes.append(process)
        return process

    master = start(["redis-server", "--port", str(master_port), *common])
    start(["redis-server", "--port", str(replica_port), *common,
           "--replicaof", "127.0.0.1", str(master_port)])  # fmt: skip
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
    )
    start(["redis-server", str(conf), "--sentinel"])
    try:
        for port in (master_port, replica_port, sentinel_port):
            _wait_port(port)
        yield Trio(master, master_port, replica_port, sentinel_port)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


async def _replica_known(trio: Trio) -> None:
    """The sentinel has seen the replica in sync (it can only promote one it knows)."""
    sentinel = aioredis.Redis(port=trio.sentinel_port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            replicas = await sentinel.sentinel_slaves(MASTER)
            if any(r.get("is_slave") and not r.get("is_sdown") for r in replicas):
                return
            await asyncio.sleep(0.2)
        raise AssertionError("the sentinel never saw the replica")
    finally:
        await sentinel.aclose()


async def _retry(work: Callable[[], Awaitable[object]], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await work()
        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.fixture
async def sentinel_client(trio: Trio) -> AsyncIterator[aioredis.Redis]:
    await _replica_known(trio)
    async with redis_client(trio.url) as client:
        yield client


async def test_given_the_master_dies_then_the_client_follows_the_sentinel_to_the_replica(
    trio: Trio, sentinel_client: aioredis.Redis
) -> None:
    client = sentinel_client
    await client.set("before", "kept")
    # Replicated before the kill, as in steady state (the replica's first sync takes a moment).
    deadline = time.monotonic() + 20
    while await client.wait(1, 500) < 1:
        assert time.monotonic() < deadline, "the replica never acknowledged the write"
    trio.master.send_signal(signal.SIGKILL)
    trio.master.wait()

    await _retry(lambda: client.set("after", "written"))
    assert await client.get("before") == b"kept"
    assert await client.get("after") == b"written"
    info = await client.info("server")
    assert info["tcp_port"] == trio.replica_port  # the promoted replica serves us now
