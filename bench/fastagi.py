"""FastAGI server benchmark: Centralino's server against panoramisk 1.4's `fast_agi.Application`.

Both servers run the same 20-command flow on uvloop, each in its own process; the load generator
(a raw asyncio Protocol client that plays Asterisk with canned replies) runs in another process.

1. Closed loop: CONCURRENT connections, each starting a new call as soon as one ends. Measures
   calls/s and the server process's CPU time per call (utime + stime from /proc).
2. Paced (ours only): CONCURRENT calls, each command answered after a random 10–30 ms (≈25,000
   commands/s offered at 500 calls). Per-command latency = client sends a reply → receives the
   next command; call setup = connect + environment → first command. p99 of both.
3. Memory: HELD calls connected, environment sent, first command received and never answered;
   server RSS delta / HELD.

Run: `.venv/bin/python bench/fastagi.py`. The last line is the JSON summary.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from centralino.asterisk.agi import Quoted, encode_command
from centralino.simulator.agi_peer import environment_bytes

HOST = "127.0.0.1"
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", "500"))
HELD = 2000
WARMUP_S = 1.0
CLOSED_S = 5.0
PACED_S = 6.0
PACED_DELAY_MS = (10.0, 30.0)

# The 20 commands of the flow, as our Channel sends them; panoramisk sends the same lines.
FLOW: list[tuple[str, tuple[str | Quoted, ...]]] = [
    ("ANSWER", ()),
    ("GET VARIABLE", ("CALLERID(num)",)),
    ("SET VARIABLE", ("LANG", "it")),
    ("STREAM FILE", ("welcome", Quoted("12"))),
    ("GET DATA", ("menu", "3000", "4")),
    ("WAIT FOR DIGIT", ("1000",)),
    ("SAY NUMBER", ("42", Quoted(""))),
    ("SAY DIGITS", ("123", Quoted(""))),
    ("EXEC", ("Playback", "hello")),
    ("SET MUSIC", ("ON", "default")),
    ("SET MUSIC", ("OFF",)),
    ("GET VARIABLE", ("FOO",)),
    ("SET VARIABLE", ("BAR", "x y")),
    ("STREAM FILE", ("beep", Quoted(""))),
    ("GET DATA", ("menu", "3000", "4")),
    ("EXEC", ("Wait", "1")),
    ("VERBOSE", (Quoted("flow half"), "1")),
    ("GET VARIABLE", ("CALLERID(name)",)),
    ("STREAM FILE", ("bye", Quoted(""))),
    ("VERBOSE", (Quoted("flow done"), "1")),
]
FLOW_LINES = [encode_command(c, *a) for c, a in FLOW]

REPLIES: dict[bytes, bytes] = {
    b"ANSWER": b"200 result=0\n",
    b"GET VA": b"200 result=1 (+390212345678)\n",
    b"SET VA": b"200 result=1\n",
    b"STREAM": b"200 result=0 endpos=18786\n",
    b"GET DA": b"200 result=1234\n",
    b"WAIT F": b"200 result=0\n",
    b"SAY NU": b"200 result=0\n",
    b"SAY DI": b"200 result=0\n",
    b"EXEC P": b"200 result=0\n",
    b"EXEC W": b"200 result=0\n",
    b"SET MU": b"200 result=0\n",
    b"VERBOS": b"200 result=1\n",
}
ENV = environment_bytes(uniqueid="1795365745.0", channel="Local/s@caller-sim-00000000;1")


# ---------------------------------------------------------------- server process -------------


async def _ours_flow(call: Any) -> None:
    ch = call.channel
    await ch.answer()
    await ch.get_variable("CALLERID(num)")
    await ch.set_variable("LANG", "it")
    await ch.stream_file("welcome", "12")
    await ch.get_data("menu", 3000, 4)
    await ch.wait_for_digit(1000)
    await ch.say_number(42)
    await ch.say_digits("123")
    await ch.exec("Playback", "hello")
    await ch.set_music(True)
    await ch.set_music(False)
    await ch.get_variable("FOO")
    await ch.set_variable("BAR", "x y")
    await ch.stream_file("beep")
    await ch.get_data("menu", 3000, 4)
    await ch.exec("Wait", "1")
    await ch.verbose("flow half", 1)
    await ch.get_variable("CALLERID(name)")
    await ch.stream_file("bye")
    await ch.verbose("flow done", 1)


_PANORAMISK_LINES = [line[:-1].decode() for line in FLOW_LINES]


async def _panoramisk_flow(request: Any) -> None:
    for line in _PANORAMISK_LINES:
        await request.send_command(line)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def server_process(kind: str, conn: Connection) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    uvloop.install()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        if kind == "ours":
            from centralino.asterisk.agi_server import AgiRouter, FastAgiServer

            router = AgiRouter()
            router.add("inbound", _ours_flow)
            server = FastAgiServer(
                router=router,
                host=HOST,
                port=0,
                idle_timeout_s=60.0,
            )
            await server.start()
            port = server.port
        else:
            from panoramisk.fast_agi import Application

            # When a run ends the load generator drops its open connections mid-call; panoramisk
            # then logs a traceback per connection (ValueError on the empty read, or
            # ConnectionResetError) after the measurement. Calls that fail while measuring are
            # still counted, as `errors`, by the load generator.
            logging.getLogger("panoramisk.fast_agi").disabled = True
            app = Application(loop=loop)
            app.add_route("inbound", _panoramisk_flow)
            if kind == "panoramisk":
                # As panoramisk documents it: one asyncio.start_server(app.handler, ...).
                pservers = [await asyncio.start_server(app.handler, HOST, 0, backlog=1024)]
            else:
                # Same accept set-up as ours (every pending connection per readiness event),
                # to separate uvloop's one-accept-per-turn limit from the per-call work.
                listener = socket.socket()
                listener.bind((HOST, 0))
                listener.listen(1024)
                listener.setblocking(False)
                attaching: set[asyncio.Task[Any]] = set()

                def accept_ready() -> None:
                    for _ in range(256):
                        try:
                            sock, _ = listener.accept()
                        except BlockingIOError:
                            return
                        sock.setblocking(False)
                        task = loop.create_task(
                            loop.connect_accepted_socket(
                                lambda: asyncio.StreamReaderProtocol(
                                    asyncio.StreamReader(), app.handler
                                ),
                                sock=sock,
                            )
                        )
                        attaching.add(task)
                        task.add_done_callback(attaching.discard)

                loop.add_reader(listener.fileno(), accept_ready)
                pservers = []
            port = (
                pservers[0].sockets[0].getsockname()[1] if pservers else listener.getsockname()[1]
            )

        def on_message() -> None:
            message = conn.recv()
            if message == "rss":
                gc.collect()
                conn.send(_rss_bytes())
            elif message == "loop":
                conn.send(type(loop).__module__ + "." + type(loop).__name__)
            elif message == "stop" and not stop.done():
                stop.set_result(None)

        loop.add_reader(conn.fileno(), on_message)
        conn.send(port)
        await stop
        loop.remove_reader(conn.fileno())
        if kind == "ours":
            server.grace_s = 0.5
            await server.stop()
        else:
            for pserver in pservers:
                pserver.close()

    asyncio.run(main())


# ---------------------------------------------------------------- load generator -------------


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Load:
    def __init__(self, *, port: int, paced: bool, rng: random.Random) -> None:
        self.port = port
        self.paced = paced
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        self.calls_done = 0
        self.commands = 0
        self.measuring = False
        self.running = True
        self.cmd_latency: list[float] = []
        self.setup_latency: list[float] = []
        self.errors = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    def start_call(self) -> None:
        task = self.loop.create_task(self._connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(lambda: _Call(self), HOST, self.port)
        except OSError:
            self.errors += 1
            if self.running:
                self.loop.call_later(0.01, self.start_call)

    def call_ended(self, complete: bool) -> None:
        if complete and self.measuring:
            self.calls_done += 1
        if not complete:
            self.errors += 1
        if self.running:
            self.start_call()


class _Call(asyncio.Protocol):
    """Plays Asterisk: sends the environment, answers each command with its canned reply."""

    __slots__ = ("buf", "load", "n", "sent_at", "transport")

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.buf = b""
        self.n = 0
        self.sent_at = 0.0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(ENV)
        self.sent_at = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        load = self.load
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line = buf[:end]
            buf = buf[end + 1 :]
            now = time.perf_counter()
            if load.measuring:
                (load.setup_latency if self.n == 0 else load.cmd_latency).append(now - self.sent_at)
                load.commands += 1
            self.n += 1
            reply = REPLIES[line[:6]]
            if load.paced:
                low, high = PACED_DELAY_MS
                load.loop.call_later(load.rng.uniform(low, high) / 1000.0, self._reply, reply)
            else:
                self.transport.write(reply)
                self.sent_at = now
        self.buf = buf

    def _reply(self, reply: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(reply)
            self.sent_at = time.perf_counter()

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.call_ended(self.n == len(FLOW_LINES))


class _Held(asyncio.Protocol):
    """A call that sends its environment, receives the first command and never answers."""

    def __init__(self, got_first: Callable[[], None]) -> None:
        self.got_first = got_first
        self.done = False

    def connection_made(self, transport: Any) -> None:
        transport.write(ENV)

    def data_received(self, data: bytes) -> None:
        if not self.done and b"\n" in data:
            self.done = True
            self.got_first()


def load_process(mode: str, port: int, server_pid: int, out: Connection) -> None:
    uvloop.install()

    async def run_load(paced: bool, seconds: float) -> dict[str, Any]:
        load = _Load(port=port, paced=paced, rng=random.Random(4573))
        for _ in range(CONCURRENT):
            load.start_call()
        await asyncio.sleep(WARMUP_S)
        cpu0 = _cpu_s(server_pid)
        own0 = time.process_time()
        t0 = time.perf_counter()
        load.measuring = True
        await asyncio.sleep(seconds)
        load.measuring = False
        elapsed = time.perf_counter() - t0
        cpu = _cpu_s(server_pid) - cpu0
        own = time.process_time() - own0
        load.running = False
        calls, commands = load.calls_done, load.commands
        await asyncio.sleep(0.5)
        return {
            "calls": calls,
            "elapsed": elapsed,
            "cpu_s": cpu,
            "client_cpu_s": own,
            "commands": commands,
            "cmd_latency": sorted(load.cmd_latency),
            "setup_latency": sorted(load.setup_latency),
            "errors": load.errors,
        }

    async def run_held() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        got = 0
        all_in = loop.create_future()

        def got_first() -> None:
            nonlocal got
            got += 1
            if got == HELD and not all_in.done():
                all_in.set_result(None)

        transports = []
        for i in range(HELD):
            transport, _ = await loop.create_connection(lambda: _Held(got_first), HOST, port)
            transports.append(transport)
            if i % 200 == 199:
                await asyncio.sleep(0)
        async with asyncio.timeout(30):
            await all_in
        out.send("held")
        out.recv()  # the parent has read the server's RSS
        for transport in transports:
            transport.close()
        await asyncio.sleep(0.5)
        return {"held": HELD}

    if mode == "closed":
        result = asyncio.run(run_load(False, CLOSED_S))
    elif mode == "paced":
        result = asyncio.run(run_load(True, PACED_S))
    else:
        result = asyncio.run(run_held())
    out.send(result)


# ---------------------------------------------------------------- orchestration -------------


def _percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))] * 1000.0


class _Server:
    def __init__(self, kind: str) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=server_process, args=(kind, child), daemon=True)
        self.proc.start()
        self.port: int = self.conn.recv()

    def ask(self, message: str) -> Any:
        self.conn.send(message)
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def _run_load(mode: str, server: _Server) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    assert server.proc.pid is not None
    proc = ctx.Process(target=load_process, args=(mode, server.port, server.proc.pid, child))
    proc.start()
    if mode == "held":
        assert parent.recv() == "held"
        rss_after = server.ask("rss")
        parent.send("go")
        result: dict[str, Any] = parent.recv()
        result["rss_after"] = rss_after
    else:
        result = parent.recv()
    proc.join(30)
    return result


def _closed_loop(kind: str) -> tuple[float, float, str]:
    server = _Server(kind)
    loop_name: str = server.ask("loop")
    try:
        r = _run_load("closed", server)
    finally:
        server.stop()
    calls_per_s = r["calls"] / r["elapsed"]
    cpu_us = r["cpu_s"] / max(1, r["calls"]) * 1e6
    setup_p99 = _percentile_ms(r["setup_latency"], 0.99)
    print(
        f"[closed loop] {kind:<20} {CONCURRENT} connections: {calls_per_s:6.0f} calls/s, "
        f"{r['commands'] / r['elapsed']:6.0f} commands/s, server CPU {cpu_us:5.0f} µs/call "
        f"({r['cpu_s']:.2f} s in {r['elapsed']:.1f} s), setup p99 {setup_p99:.0f} ms, "
        f"load generator CPU {r['client_cpu_s']:.2f} s, errors {r['errors']}"
    )
    return calls_per_s, cpu_us, loop_name


def _paced() -> tuple[float, float, float]:
    server = _Server("ours")
    try:
        r = _run_load("paced", server)
    finally:
        server.stop()
    offered = r["commands"] / r["elapsed"]
    p50 = _percentile_ms(r["cmd_latency"], 0.50)
    p99 = _percentile_ms(r["cmd_latency"], 0.99)
    s50 = _percentile_ms(r["setup_latency"], 0.50)
    s99 = _percentile_ms(r["setup_latency"], 0.99)
    print(
        f"[paced] ours, {CONCURRENT} concurrent calls, each reply after 10–30 ms: "
        f"{offered:.0f} commands/s, {r['calls'] / r['elapsed']:.0f} calls/s; per-command p50 "
        f"{p50:.2f} ms p99 {p99:.2f} ms; call setup p50 {s50:.2f} ms p99 {s99:.2f} ms; "
        f"server CPU {r['cpu_s'] / r['elapsed'] * 100:.0f}%; errors {r['errors']}"
    )
    return p99, s99, offered


def _warm_up(server: _Server) -> int:
    """A short burst of full calls so pools and caches exist before measuring memory."""

    async def burst() -> int:
        done = 0
        for _ in range(3):
            load = _Load(port=server.port, paced=False, rng=random.Random(1))
            load.measuring = True
            for _ in range(200):
                load.start_call()
            await asyncio.sleep(0.3)
            load.running = False
            await asyncio.sleep(0.2)
            done += load.calls_done
        return done

    return asyncio.run(burst())


def _held(kind: str) -> float:
    server = _Server(kind)
    try:
        warm = _warm_up(server)
        rss0: int = server.ask("rss")
        r = _run_load("held", server)
    finally:
        server.stop()
    delta = r["rss_after"] - rss0
    kib: float = delta / HELD / 1024.0
    print(
        f"[memory] {kind:<10} {HELD} held idle calls: RSS +{delta / 2**20:.1f} MiB = "
        f"{kib:.2f} KiB per call (after {warm} warm-up calls)"
    )
    return kib


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    version = getattr(uvloop, "__version__", "?")
    print(f"python {sys.version.split()[0]}, uvloop {version}, {os.cpu_count()} CPUs")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on this machine skews it)")
    print(f"flow: {len(FLOW_LINES)} commands per call; load generator in its own process")
    # Best of two alternating runs per server, to damp interference from other processes.
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "panoramisk": []}
    loop_names: set[str] = set()
    for _ in range(2):
        for kind, results in runs.items():
            calls, cpu, loop_name = _closed_loop(kind)
            results.append((calls, cpu))
            loop_names.add(loop_name)
    _closed_loop("panoramisk+batch-accept")
    ours, ours_cpu = max(runs["ours"])
    theirs, theirs_cpu = max(runs["panoramisk"])
    (loop_name,) = loop_names
    print(f"event loop in every server process: {loop_name}")
    ratio = ours / theirs if theirs else float("inf")
    print(
        f"ratio ours/panoramisk (best runs): {ratio:.2f}x calls/s; "
        f"server CPU per call {theirs_cpu / ours_cpu:.2f}x lower"
    )
    p99, s99, offered = _paced()
    kib = _held("ours")
    _held("panoramisk")
    summary = {
        "bench": "fastagi",
        "loop": "uvloop" if "uvloop" in loop_name else loop_name,
        "concurrent": CONCURRENT,
        "ours_calls_per_s": round(ours, 1),
        "panoramisk_calls_per_s": round(theirs, 1),
        "ratio": round(ratio, 2),
        "ours_cpu_us_per_call": round(ours_cpu, 1),
        "ours_p99_ms": round(p99, 2),
        "setup_p99_ms": round(s99, 2),
        "kib_per_call": round(kib, 2),
    }
    del offered
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
