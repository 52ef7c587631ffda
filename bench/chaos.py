"""Chaos benchmark: simulated calls through several Centralino processes while PostgreSQL, Redis,
one Centralino process and the AMI link fail, then an audit of what every call left behind.

Owned here (nothing of the machine's is touched): a PostgreSQL cluster (initdb in a temporary
folder, its own port), a Redis server (its own port, no persistence: a killed Redis comes back
empty, the hardest case), a simulated Asterisk (`centralino.simulator`: FastAGI callers, agents'
phones, the AMI server with every channel listed in CoreShowChannels) and PROCESSES Centralino
processes (`bench/chaos_app.py`, the composition root as `serve` runs it) sharing them, with one
spool directory (as processes on one host do). Callers reach the processes as Asterisk's hagi://
does: each call starts at the next process and moves on when the connection is refused.

Callers are patient (they never hang up first) and most press a menu key; agents' phones ring
1–3 s and always answer (a ring-no-answer sets an agent not ready, on purpose; that
is not a fault), talk 6–30 s (all times x TIME_SCALE), 5% of callers are
blind-transferred to another queue (a second FastAGI session). While CALLS arrive at RATE/s:
- PostgreSQL is killed (`pg_ctl stop -m immediate`) and restarted PG_DOWN_S later;
- Redis is killed (SIGKILL) and restarted empty REDIS_DOWN_S later (with BENCH_REDIS=sentinel:
  a master, a replica and a sentinel, and the master is killed: the sentinel promotes the
  replica, the processes follow it, the old master returns as a replica);
- one Centralino process is killed (SIGKILL) and restarted APP_DOWN_S later;
- the AMI link of every process is cut (the server drops the connections);
- every process is restarted in turn (SIGTERM, then started again): a rolling restart.

Then the audit, from what the simulated Asterisk saw and what the processes stored:
- records_missing / records_duplicated: every FastAGI session handed to us (the server read the
  environment and sent a command) must end with exactly one interaction row for its channel;
- double_assignments: an agent's phone rung or talking for two callers at once, or a caller
  answered twice in one session;
- agents_stuck_after_60s: agents not READY (all are ready and without wrap-up) 60 s after the
  last call ended;
- answered_or_returned_pct: calls an agent answered, or whose session the server ended (the
  dialplan's fallback then answers them), over calls handed to us; a session still open at the
  end or cut by a timeout is neither.

There is no outside peer for this: the fault-free control is the same traffic before the first
fault (printed alongside). Run: `.venv/bin/python bench/chaos.py` (env BENCH_CALLS, BENCH_RATE).
The last line is the JSON summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np

from acd.models import AgentState
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.simulator.ami_server import AmiServer
from centralino.simulator.callcenter import (
    TRANSFER_CONTEXT,
    AgentPhone,
    Caller,
    CallResult,
    CallSimulator,
    DialRecord,
)
from centralino.storage.connections import redis_client
from centralino.storage.migrate import apply_migrations

ROOT = Path(__file__).resolve().parents[1]
CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
RATE = float(os.environ.get("BENCH_RATE", "20"))
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))
# BENCH_REDIS=sentinel: a master, a replica and a sentinel; the Redis fault kills the master.
SENTINEL = os.environ.get("BENCH_REDIS", "single") == "sentinel"
AGENTS = int(os.environ.get("BENCH_AGENTS", "40"))
TIME_SCALE = 0.05
PG_DOWN_S = 8.0
REDIS_DOWN_S = 5.0
APP_DOWN_S = 3.0
STUCK_AFTER_S = 60.0
CALL_DEADLINE_S = 240.0
AMI_SECRET = "chaos-secret"
PG_BIN = Path(os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
QUEUES = ("billing", "support", "sales")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quiet(*args: str | Path) -> None:
    done = subprocess.run([str(a) for a in args], check=False, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")


def _as_postgres(*args: str | Path) -> None:
    """PostgreSQL's tools refuse to run as root: as root, run them as the `postgres` user."""
    prefix: list[str | Path] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    _quiet(*prefix, *args)


@dataclass
class Postgres:
    """A PostgreSQL cluster of the benchmark's own."""

    base: Path
    port: int = field(default_factory=free_port)

    @property
    def root(self) -> Path:
        return self.base / "pg"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/centralino"

    def init(self) -> None:
        self.root.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        _as_postgres(
            PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()
        _as_postgres(
            PG_BIN / "createdb",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "centralino",
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        _as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            self.data,
            "-o",
            opts,
            "-l",
            self.root / "pg.log",
            "-w",
            "start",
        )

    def kill(self) -> None:
        _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "stop")


def _redis_server(port: int, root: Path, *extra: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(root), *extra],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return process
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()


@dataclass
class Redis:
    """One Redis server, no persistence: killed, it comes back empty."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    kind: str = "single"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = _redis_server(self.port, self.root)

    def fail(self) -> str:
        _kill(self.process)
        return "Redis killed"

    def recover(self) -> str:
        self.start()
        return "Redis restarted (empty)"

    def kill(self) -> None:
        _kill(self.process)


@dataclass
class SentinelRedis:
    """A master, a replica and a sentinel: the fault kills the master (SIGKILL) and the
    sentinel promotes the replica; the old master comes back as a replica of the new one."""

    root: Path
    ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))
    sentinel_port: int = field(default_factory=free_port)
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    sentinel: subprocess.Popen[bytes] | None = None
    master: int = 0
    kind: str = "sentinel"

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/centralino/0"

    def start(self) -> None:
        first, second = self.ports
        self.master = first
        self.servers[first] = _redis_server(first, self.root)
        self.servers[second] = _redis_server(second, self.root, "--replicaof", "127.0.0.1",
                                             str(first))  # fmt: skip
        conf = self.root / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor centralino 127.0.0.1 {first} 1\n"
            "sentinel down-after-milliseconds centralino 1000\n"
            "sentinel failover-timeout centralino 10000\n"
        )
        self.sentinel = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
        )
        self._wait_for_replica()

    def _ask(self, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.sentinel_port), *command],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return done.stdout

    def _wait_for_replica(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "slave" in self._ask("SENTINEL", "REPLICAS", "centralino"):
                return
            time.sleep(0.2)
        raise RuntimeError("the sentinel never saw the replica")

    def fail(self) -> str:
        old = self.master
        _kill(self.servers.pop(old))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            address = self._ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "centralino").split()
            if len(address) == 2 and int(address[1]) != old:
                self.master = int(address[1])
                return f"Redis master :{old} killed; sentinel promoted :{self.master}"
            time.sleep(0.1)
        raise RuntimeError("no failover within 30 s")

    def recover(self) -> str:
        old = next(p for p in self.ports if p != self.master)
        self.servers[old] = _redis_server(old, self.root, "--replicaof", "127.0.0.1",
                                          str(self.master))  # fmt: skip
        return f"old master :{old} restarted as a replica"

    def kill(self) -> None:
        for process in [*self.servers.values(), self.sentinel]:
            _kill(process)


@dataclass
class App:
    """One Centralino process (bench/chaos_app.py)."""

    index: int
    agi_port: int
    config: dict[str, object]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, ready: list[str]) -> None:
        config = {**self.config, "agi_port": self.agi_port, "ready": ready}
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "chaos_app.py"), json.dumps(config)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.process.stdout.close()
        if line.strip() != b"READY":
            raise RuntimeError(f"process {self.index} did not start; see {self.log}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _caller(rng: np.random.Generator, n: int) -> Caller:
    key = str(rng.choice(["1", "2", "3", "4"]))
    transfer_to = None
    if rng.random() < 0.05:
        transfer_to = f"{rng.choice(QUEUES)}@{TRANSFER_CONTEXT}"
    return Caller(
        number=f"+3902{5550000 + n:07d}",
        menu_keys=key,
        patience_s=1e9,  # they wait: every caller must be answered or returned
        transfer_to=transfer_to,
    )


def double_assignments(dials: list[DialRecord], results: list[CallResult]) -> int:
    """Agents rung or talking for two callers at once, plus callers answered twice in one
    session (a transfer's second session may be answered again)."""
    doubles = 0
    by_agent: dict[str, list[DialRecord]] = {}
    for dial in dials:
        by_agent.setdefault(dial.agent, []).append(dial)
    for records in by_agent.values():
        records.sort(key=lambda d: d.started)
        busy_until = float("-inf")
        for dial in records:
            if dial.started < busy_until - 1e-3:
                doubles += 1
            busy_until = max(busy_until, dial.ended)
    answers = Counter(d.uniqueid for d in dials if d.answered)
    doubles += sum(max(0, answers[r.uniqueid] - r.sessions) for r in results)
    return doubles


@dataclass
class Faults:
    log: list[tuple[float, str]] = field(default_factory=list)

    def note(self, t0: float, what: str) -> None:
        at = time.monotonic() - t0
        self.log.append((at, what))
        print(f"  t={at:6.1f} s  {what}", flush=True)


async def _inject(
    *,
    t0: float,
    duration: float,
    pg: Postgres,
    redis: Redis | SentinelRedis,
    apps: list[App],
    ami: AmiServer,
    faults: Faults,
) -> None:
    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, t0 + fraction * duration - time.monotonic()))

    await at(0.15)
    faults.note(t0, "PostgreSQL killed")
    await asyncio.to_thread(pg.kill)
    await asyncio.sleep(PG_DOWN_S)
    await asyncio.to_thread(pg.start)
    faults.note(t0, "PostgreSQL restarted")

    await at(0.35)
    faults.note(t0, await asyncio.to_thread(redis.fail))
    await asyncio.sleep(REDIS_DOWN_S)
    faults.note(t0, await asyncio.to_thread(redis.recover))

    await at(0.55)
    victim = apps[-1]
    faults.note(t0, f"Centralino process {victim.index} killed (SIGKILL)")
    await asyncio.to_thread(victim.kill)
    await asyncio.sleep(APP_DOWN_S)
    await asyncio.to_thread(victim.start, [])
    faults.note(t0, f"Centralino process {victim.index} restarted")

    await at(0.7)
    cut = ami.kill_connections()
    faults.note(t0, f"AMI link cut ({cut} connections)")

    await at(0.8)
    # A rolling restart, as a deployment does it: each process in turn stops gracefully
    # (SIGTERM: no new calls, calls in progress handed back or finished) and starts again.
    for app in apps:
        faults.note(t0, f"rolling restart: process {app.index} stopping (SIGTERM)")
        await asyncio.to_thread(app.terminate)
        await asyncio.to_thread(app.start, [])
        faults.note(t0, f"rolling restart: process {app.index} restarted")


async def _agents_not_ready(redis_url: str) -> dict[str, str]:
    async with redis_client(redis_url) as client:  # a sentinel URL too
        states = await RedisLiveStore(client=client).agents()
    return {a.agent_id: a.state.value for a in states if a.state is not AgentState.READY}


async def _records(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT linkedid, outcome FROM interactions ORDER BY id")
    finally:
        await conn.close()
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["linkedid"] or "", []).append(row["outcome"] or "")
    return out


def _spooled(spool: Path) -> bool:
    return any(p.stat().st_size for p in spool.glob("records-*.jsonl"))


def _workdir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="centralino-chaos-"))
    root.chmod(0o755)  # PostgreSQL's own user reaches its folder inside
    return root


async def _settled_records(dsn: str, spool: Path, expected: int) -> dict[str, list[str]]:
    """The rows once the spools have drained and the count stopped moving (≤ 60 s)."""
    deadline = time.monotonic() + 60
    last = -1
    while True:
        records = await _records(dsn)
        count = sum(len(v) for v in records.values())
        spooled = await asyncio.to_thread(_spooled, spool)
        if (count == last and not spooled and count >= expected) or time.monotonic() > deadline:
            return records
        last = count
        await asyncio.sleep(2.0)


async def run() -> dict[str, object]:
    root = _workdir()
    pg = Postgres(root)
    redis: Redis | SentinelRedis = SentinelRedis(root) if SENTINEL else Redis(root)
    apps: list[App] = []
    rng = np.random.default_rng(2026)
    agents = [f"agent{n:03d}" for n in range(1, AGENTS + 1)]
    try:
        await asyncio.to_thread(pg.init)
        conn = await asyncpg.connect(pg.dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        await asyncio.to_thread(redis.start)

        phones = {
            a: AgentPhone(answer_probability=1.0, ring_s=(1.0, 3.0), talk_s=(6.0, 30.0))
            for a in agents
        }
        simulator = CallSimulator(
            agi_host="127.0.0.1", agi_port=0, rng=rng, phones=phones, time_scale=TIME_SCALE
        )
        ami = AmiServer(
            username="centralino",
            secret=AMI_SECRET,
            auth_failure_delay_s=0.1,
            originate_hook=simulator.originate,
            queues=[f"fallback-{q}" for q in QUEUES],
        )
        await ami.start()
        simulator.ami = ami
        spool = root / "spool"
        base = {
            "database_url": pg.dsn,
            "redis_url": redis.url,
            "ami_port": ami.port,
            "agents": agents,
            "spool_dir": str(spool),
        }
        for index in range(PROCESSES):
            app = App(
                index=index,
                agi_port=free_port(),
                config={**base, "owner": f"chaos-{index}"},
                log=root / f"app-{index}.log",
            )
            await asyncio.to_thread(app.start, agents if index == 0 else [])
            apps.append(app)
        simulator.endpoints = [("127.0.0.1", a.agi_port) for a in apps]
        print(f"{PROCESSES} Centralino processes, {AGENTS} agents, {CALLS} calls at {RATE}/s")

        duration = CALLS / RATE
        arrivals = np.cumsum(rng.exponential(1.0 / RATE, size=CALLS))
        arrivals *= duration / arrivals[-1]
        faults = Faults()
        t0 = time.monotonic()
        first_fault = t0 + 0.15 * duration
        injector = asyncio.create_task(
            _inject(t0=t0, duration=duration, pg=pg, redis=redis, apps=apps, ami=ami, faults=faults)
        )

        async def one(n: int, offset: float) -> tuple[CallResult | None, float]:
            await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))
            placed = time.monotonic()
            try:
                async with asyncio.timeout(CALL_DEADLINE_S):
                    return await simulator.call(_caller(rng, n)), placed
            except (TimeoutError, OSError):
                return None, placed

        outcomes = await asyncio.gather(*(one(n, float(t)) for n, t in enumerate(arrivals)))
        await injector
        ended = time.monotonic()
        print(f"traffic over after {ended - t0:.1f} s")
        results = [r for r, _ in outcomes if r is not None]
        lost_calls = sum(1 for r, _ in outcomes if r is None)

        # Agents: every one READY again within STUCK_AFTER_S of the last call's end.
        not_ready: dict[str, str] = {}
        while time.monotonic() < ended + STUCK_AFTER_S:
            not_ready = await _agents_not_ready(redis.url)
            if not not_ready:
                break
            await asyncio.sleep(1.0)
        freed_after = time.monotonic() - ended
        print(
            f"agents all ready {freed_after:.1f} s after the last call"
            if not not_ready
            else f"agents not ready after {STUCK_AFTER_S:.0f} s: {not_ready}"
        )

        handed = [r for r in results if r.handed]
        expected = sum(r.handed for r in results)
        records = await _settled_records(pg.dsn, spool, expected)
        missing = duplicated = 0
        for result in handed:
            got = len(records.get(result.uniqueid, []))
            missing += max(0, result.handed - got)
            duplicated += max(0, got - result.handed)
        strangers = sum(
            len(v) for k, v in records.items() if k not in {r.uniqueid for r in results}
        )
        doubles = double_assignments(simulator.dials, results)
        good = [r for r in handed if r.answered or r.closed_by == "server"]
        pct = 100.0 * len(good) / max(1, len(handed))

        control = [r for r, placed in outcomes if r is not None and placed < first_fault]
        outcome_counts = Counter(o for v in records.values() for o in v)
        print(
            f"calls placed {CALLS}; handed to Centralino {len(handed)}; never reached it "
            f"(refused, or cut before the first command) {len(results) - len(handed)}; "
            f"past the {CALL_DEADLINE_S:.0f} s deadline {lost_calls}"
        )
        print(
            f"sessions {expected}; records {sum(len(v) for v in records.values())} "
            f"(missing {missing}, duplicated {duplicated}, unknown channels {strangers})"
        )
        print(
            "outcomes recorded: " + ", ".join(f"{k} {v}" for k, v in outcome_counts.most_common())
        )
        answered = sum(1 for r in handed if r.answered)
        print(
            f"answered {answered}, returned to the dialplan {len(good) - answered}, "
            f"neither {len(handed) - len(good)}"
        )
        control_answered = sum(1 for r in control if r.answered) / max(1, len(control))
        print(
            f"fault-free control (before the first fault): {len(control)} calls, "
            f"{100 * control_answered:.1f}% answered; whole run "
            f"{100 * answered / max(1, len(handed)):.1f}% answered"
        )
        print(
            f"double assignments {doubles}; refused connections {sum(r.refused for r in results)}"
        )
        for app in apps:
            await asyncio.to_thread(app.terminate)
        return {
            "bench": "chaos",
            "calls": CALLS,
            "processes": PROCESSES,
            "faults": sum(1 for _, w in faults.log if "killed" in w or "cut" in w),
            "records_missing": missing + lost_calls,
            "records_duplicated": duplicated,
            "agents_stuck_after_60s": len(not_ready),
            "double_assignments": doubles,
            "answered_or_returned_pct": round(pct, 2),
            "rolling_restarts": sum(1 for _, w in faults.log if w.endswith("(SIGTERM)")),
            "redis": redis.kind,
        }
    finally:
        for app in apps:
            await asyncio.to_thread(app.kill)
        redis.kill()
        pg.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    summary = asyncio.run(run())
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
