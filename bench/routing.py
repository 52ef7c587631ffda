"""Routing benchmark: 1,000 agents, 20 skills, 500 waiting calls, 4 processes, one Redis.

Design, and why. An ACD does not route flat out: it reacts to events at a finite rate (a call
arrives, an agent hangs up), and each event may make a waiting call routable. Latency measured
with every process hammering Redis at 100% CPU is queueing for the CPU, not decision time. So
the measured run is open loop and event driven, at a stated offered rate (BENCH_RATE, default
2,400 assignments/s across the 4 processes):

- Calls arrive as a Poisson stream (each process a quarter of the rate) into 20 skill queues.
- At the start 500 calls wait and every agent is busy on a call (primed at setup) whose end is
  spread uniformly over one handle time. Agents are the bottleneck, as in a busy contact centre:
  handle time = agents / rate less the ring cycle, so agents free up at the offered rate and the
  arrivals replace the calls they take, keeping about 500 waiting (printed as measured).
- Each process handles its events as they fall due. A hang-up frees the agent (no wrap-up) with
  agent-driven routing, as `acd.service.Router` does when a conversation ends: one `finish`
  carrying the queues of the agent's skills reserves the agent, in the same atomic function,
  for the best waiting call it fits among the first WINDOW of each (50, as the Router). An
  arrival queues the call and routes its queue in the same function (`add_item` as the
  Router's `add_and_route` sends it: call-driven, any free agent that fits). Events due
  together share one round trip (each operation is still one atomic Redis function), sent with
  the store's batch path (`RedisLiveStore.command` / `execute`: hiredis packs and parses, no
  per-command redis-py objects). Up to MAX_IN_FLIGHT round trips per process overlap, so an
  event is not held back behind one in flight (that wait would hide in the timer lateness
  below).
- A reservation belongs to the process whose call it is: one for another process's call reaches
  it through its inbox (`take_offers`, riding with its round trips, at least every INBOX_EVERY_S).
  The owner rings and answers (`accept`, `connect`) with its next round trip, within
  RING_DELAY_S, and the call then lasts one handle time (+-10%).

Decision time: from the moment the work item became routable to the reservation being back in
the process that decided. Routable = the later of the call's arrival and its agent's release,
each taken when a process handles the event, before its round trip is sent (release times are
shared between processes in shared memory). It covers the process's own work, the round trip,
the Redis functions, and any wait behind other processes' commands or for a CPU; an agent left
free because no waiting call fitted it counts from its release until a later arrival takes it.
The event generator's own timer lateness (the event loop's timers have 1 ms resolution) stands
for the time a real event spends before the process reads it: it is printed, not counted; so is
the decision time counted from a late hang-up's scheduled time instead, which does count it.

Phases, each from a fresh Redis state:
1. One process alone, closed loop, window 1: the routing call's round trip through the store's
   ordinary (redis-py) methods, nothing else running: the decision's own cost.
2. Saturation: the same load offered at BENCH_SATURATION_RATE, more than two cores can route,
   for BENCH_SATURATION_S: the achieved rate is the capacity; its p99 is queueing.
3. The paced run at BENCH_RATE for BENCH_TARGET offered assignments, reported by the JSON line
   (then again with shared CPUs, printed; see Placement). Targets: decision p99 <= 1 ms with
   >= 2,000 assignments/s achieved.
Before the paced run a probe measures how late a plain 0.5 ms sleep wakes on this machine with
nothing of ours running: the floor any latency here sits on. Each run prints what its slow
decisions have in common (how many fell while every process was slow at once) and how long the
workers and Redis sat runnable waiting for a CPU (Linux schedstat).

Double assignments are counted independently of the functions, from a log of assignments: each
reservation carries the global counter value at its decision (`{owner}-{n}`), and a MULTI block
reads the same counter as the agent is freed (GET, then `finish`, which may reserve the agent
again under a higher number). For each agent, every reservation after the first must come
after a release (ordered by number, a reservation numbered n before a release that read n); a
call may appear in one reservation only. The auditor is checked on a made-up log holding one
double before every run.

CPU: each worker's os.times() over its run, and Redis's used_cpu, per assignment; the machine's
busy time (/proc/stat) shows whether anyone else was using it.

Placement: as a latency-minded deployment runs it, Redis gets a CPU of its own and the routing
processes share the others (BENCH_PLACEMENT=split, the default: Redis's affinity is set to the
last CPU and this process's, which the workers inherit, to the rest; both are restored at the
end). Redis is single-threaded: sharing a CPU with the routers, a batch waits for a router's
time slice to end, and the hypervisor here packs runnable tasks onto one virtual CPU. The
paced run is repeated with every process on every CPU (printed, not reported) to show the
difference; BENCH_PLACEMENT=shared measures only that. Redis must be on this machine, and
changing its affinity needs the right to (root, or the same user); otherwise the run says so
and shares the CPUs.

Redis: 127.0.0.1:6379, database 12 (flushed at start; BENCH_REDIS_URL overrides).
BENCH_PROCESSES (default 4, the issue's figure) changes the number of routing processes, to see
how the tail depends on processes per core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import heapq
import json
import math
import multiprocessing
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.models import (
    AgentDefinition,
    Capacity,
    Channel,
    Reservation,
    RouteRequest,
    RoutingStep,
    SkillRequirement,
    Strategy,
    WorkItem,
)
from acd.policies import encode_steps
from acd.states import AgentEvent
from centralino.adapters.redis_acd import (
    Command,
    RedisLiveStore,
    add_and_route_args,
    add_item_args,
    added_from,
    booked_from,
    finish_args,
    reservation_from,
)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PREFIX = "bench:"
AGENTS = 1000
SKILLS = 20
WAITING = 500
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "4"))
RATE = float(os.environ.get("BENCH_RATE", "2400"))  # offered assignments/s, all processes
TARGET = int(os.environ.get("BENCH_TARGET", "12000"))  # offered in the paced run (>= 10,000)
SATURATION_RATE = float(os.environ.get("BENCH_SATURATION_RATE", "8000"))
SATURATION_S = float(os.environ.get("BENCH_SATURATION_S", "2.0"))  # 0: skip the phase
WINDOW = int(os.environ.get("BENCH_WINDOW", "50"))  # items looked at per queue per routing call
RESERVATION_TTL_S = 30.0
RING_TTL_S = 20.0
# An agent's cycle beyond the call itself: decision, inbox, ring and answer round trips.
CYCLE_OVERHEAD_S = 0.002
# Ringing and the inbox ride with the next event's round trip, or go on their own this late.
RING_DELAY_S = 0.005
INBOX_EVERY_S = 0.005
MAX_IN_FLIGHT = 4  # round trips per process in flight at once
MAX_BATCH_EVENTS = 32  # events per round trip, so a late process catches up in steps
TIMER_SLACK_S = 0.001  # the event loop's timer resolution
SOLO_DECISIONS = 2000
PLACEMENT = os.environ.get("BENCH_PLACEMENT", "split")  # or "shared" (see the docstring)
LOCAL_HOSTS = (None, "localhost", "127.0.0.1", "::1")
STEPS = encode_steps((RoutingStep(0.0), RoutingStep(30.0, min_level=1)))
QUEUES = [f"s{i:02d}" for i in range(SKILLS)]
PRIME_QUEUE = "prime"
# The store keeps one availability index per maintained strategy (each agent state change
# updates every index), so a deployment maintains the strategies its queues use: here one.
STRATEGY = Strategy(os.environ.get("BENCH_STRATEGY", "longest_idle"))
STRATEGIES = [STRATEGY]


def agents_of(seed: int) -> list[AgentDefinition]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(AGENTS):
        k = int(rng.integers(3, 6))
        skills = {QUEUES[int(s)]: int(rng.integers(1, 6)) for s in rng.choice(SKILLS, k, False)}
        out.append(
            AgentDefinition(
                f"ag{i:04d}",
                skills,
                endpoint=f"PJSIP/{2000 + i}",
                capacity=Capacity(voice=1, chat=0, email=0),
            )
        )
    return out


def new_item(rng: random.Random, owner: str, n: int, now: float) -> WorkItem:
    queue = QUEUES[rng.randrange(SKILLS)]
    skills = [SkillRequirement(queue, rng.randint(1, 3))]
    if rng.random() < 0.3:
        other = QUEUES[rng.randrange(SKILLS)]
        if other != queue:
            skills.append(SkillRequirement(other, 1))
    return WorkItem(
        f"{owner}-c{n}", queue, now, skills=tuple(skills), priority=int(rng.random() < 0.1)
    )


def rid_number(reservation_id: str) -> int:
    return int(reservation_id.rsplit("-", 1)[1])


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# --- setup -------------------------------------------------------------------------------


async def setup(*, primed: bool) -> None:
    """A fresh state: every agent logged in and READY; `primed`: every agent busy on a call."""
    client = aioredis.Redis.from_url(REDIS_URL)
    await client.flushdb()
    store = RedisLiveStore(client=client, prefix=PREFIX, strategies=STRATEGIES)
    await store.load_scripts()
    now = time.time()
    try:
        for agent in agents_of(7):
            await store.put_agent(agent, now)
        await store.execute(
            [
                store.command("agent_event", f"ag{i:04d}", event.value, now, "")
                for i in range(AGENTS)
                for event in (AgentEvent.LOGIN, AgentEvent.READY)
            ]
        )
        if not primed:
            return
        await store.execute(
            [
                store.command(
                    "add_item",
                    *add_item_args(
                        WorkItem(f"prime-{i}", PRIME_QUEUE, now),
                        steps=STEPS,
                        owner="prime",
                        entered_at=now,
                    ),
                )
                for i in range(AGENTS)
            ]
        )
        made = await store.route(
            PRIME_QUEUE, now, "prime", strategy=STRATEGY, window=AGENTS, ttl_s=RESERVATION_TTL_S
        )
        assert len(made) == AGENTS, len(made)
        await store.execute(
            [
                cmd
                for res in made
                for cmd in (
                    store.command("accept", res.reservation_id, now, RING_TTL_S),
                    store.command("connect", res.reservation_id, now),
                )
            ]
        )
    finally:
        await store.aclose()
        await client.aclose()


# --- the event-driven workers ---------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    name: str
    rate: float  # offered assignments/s, all processes
    duration_s: float
    seed: int

    @property
    def handle_s(self) -> float:
        return max(0.0, AGENTS / self.rate - CYCLE_OVERHEAD_S)


class Runner:
    """One process's event loop: take the due events, send them in one round trip, and read
    the replies in a callback (no task per round trip)."""

    def __init__(
        self,
        *,
        index: int,
        load: Load,
        store: RedisLiveStore,
        free_at: Any,
        free_due: Any,
        skills_of: list[list[str]],
    ) -> None:
        self.owner = f"p{index}"
        self.index = index
        self.load = load
        self.store = store
        self.free_at = free_at  # shared: agent index -> when it was last freed (epoch s)
        self.free_due = free_due  # shared: the same, or its call's scheduled end if earlier
        self.requests_of = [
            [RouteRequest(q, STRATEGY, RESERVATION_TTL_S) for q in queues] for queues in skills_of
        ]
        self.request_of = {q: RouteRequest(q, STRATEGY, RESERVATION_TTL_S) for q in QUEUES}
        self.rng = random.Random(load.seed * 100 + index)
        self.mean_gap = PROCESSES / load.rate  # between this process's arrivals
        self.handle_s = load.handle_s
        self.timers: list[tuple[float, int]] = []  # (hang-up due, agent index)
        self.to_ring: list[Reservation] = []
        self.ring_due = math.inf
        self.next_poll = 0.0
        self.next_arrival = 0.0
        self.items = 0
        self.in_flight = 0
        self.sleeping_until = math.inf
        self.draining = False
        self.wake = asyncio.Event()
        self.errors: list[BaseException] = []
        # results
        self.decisions: list[float] = []  # seconds, one per reservation this process made
        self.from_due: list[float] = []  # the same, from a hang-up's scheduled time if earlier
        self.decided_at: list[float] = []  # when each was back (epoch s)
        self.round_trips: list[float] = []  # batch built -> replies read, seconds
        self.by_arrival = 0  # reservations made by a routing call an arrival triggered
        self.lateness: list[float] = []  # event handled - event due (generator's timers)
        self.reserved: list[tuple[str, int, str]] = []  # agent, reservation number, item
        self.released: list[tuple[str, int]] = []  # agent, counter read right after release
        self.batches = 0
        self.commands = 0
        self.sleeps = 0

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        t0 = time.time()
        end = t0 + self.load.duration_s
        for agent in range(self.index, AGENTS, PROCESSES):  # the primed calls end over [0, H)
            heapq.heappush(self.timers, (t0 + self.rng.uniform(0, self.handle_s), agent))
        self.next_arrival = t0 + self.rng.expovariate(1.0) * self.mean_gap
        self.next_poll = t0
        cpu0 = os.times()
        sched0 = schedstat()
        while not self.errors:
            now = time.time()
            if now >= end:
                break
            # The loop's timers have millisecond resolution: what falls due within the next
            # millisecond is handled now.
            if self.in_flight < MAX_IN_FLIGHT and self.send_due(now, now + TIMER_SLACK_S):
                continue
            wake_at = end
            if self.in_flight < MAX_IN_FLIGHT:  # else a completing round trip wakes us
                wake_at = min(self.next_arrival, self.ring_due, self.next_poll, end)
                if self.timers:
                    wake_at = min(wake_at, self.timers[0][0])
            self.wake.clear()
            self.sleeps += 1
            self.sleeping_until = wake_at
            # Whole milliseconds, at least one: the loop rounds a delay to the nearest
            # millisecond, so a shorter sleep would return at once and spin.
            delay_ms = max(1, math.ceil((wake_at - TIMER_SLACK_S - time.time()) * 1e3))
            handle = loop.call_later(delay_ms / 1e3, self.wake.set)
            await self.wake.wait()
            handle.cancel()
            self.sleeping_until = math.inf
        self.draining = True
        while self.in_flight and not self.errors:
            self.wake.clear()
            await self.wake.wait()
        if self.errors:
            raise self.errors[0]
        elapsed = time.time() - t0
        cpu1 = os.times()
        sched1 = schedstat()
        return {
            "owner": self.owner,
            "decisions": self.decisions,
            "from_due": self.from_due,
            "decided_at": self.decided_at,
            "round_trips": self.round_trips,
            "by_arrival": self.by_arrival,
            "lateness": self.lateness,
            "reserved": self.reserved,
            "released": self.released,
            "elapsed": elapsed,
            "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            "cpu_wait_s": sched1[1] - sched0[1],
            "cpu_turns": sched1[2] - sched0[2],
            "batches": self.batches,
            "commands": self.commands,
            "sleeps": self.sleeps,
        }

    def send_due(self, now: float, due: float) -> bool:
        """Send what falls due by `due` in one round trip; False if nothing does."""
        store = self.store
        cmds: list[Command] = []
        # How to read the replies, in order: ("skip", n), ("release", agent), ("added", None),
        # ("connect", reservation), ("poll", None).
        plan: list[tuple[str, Any]] = []
        events = 0
        while self.timers and self.timers[0][0] <= due and events < MAX_BATCH_EVENTS:
            at, agent = heapq.heappop(self.timers)
            self.lateness.append(now - at)
            events += 1
            self.free_at[agent] = now  # free from here: its finish is the first thing sent
            self.free_due[agent] = min(at, now)  # or from its call's scheduled end, if later
            # The counter as the agent is freed, then `finish` with agent-driven routing: the
            # agent takes the best waiting item it fits across its skills' queues.
            finish = finish_args(
                f"ag{agent:04d}",
                Channel.VOICE,
                now,
                worked_s=0.4,
                wrap_up_s=0.0,
                owner=self.owner,
                requests=self.requests_of[agent],
                window=WINDOW,
            )
            cmds += [
                ("MULTI",),
                ("GET", store.sequence_key),
                store.command("finish", *finish),
                ("EXEC",),
            ]
            plan += [("skip", 3), ("release", agent)]
        while self.next_arrival <= due and events < MAX_BATCH_EVENTS:
            self.lateness.append(now - self.next_arrival)
            events += 1
            item = new_item(self.rng, self.owner, self.items, now)
            self.items += 1
            self.next_arrival += self.rng.expovariate(1.0) * self.mean_gap
            # Queued and its queue routed in the same function (call-driven, on entry).
            args = add_and_route_args(
                item,
                steps=STEPS,
                owner=self.owner,
                entered_at=now,
                request=self.request_of[item.queue],
                window=WINDOW,
            )
            cmds.append(store.command("add_item", *args))
            plan.append(("added", None))
        # Ringing and the inbox are not urgent: they ride with events, or go when due.
        if self.to_ring and (events or self.ring_due <= due):
            for res in self.to_ring:
                cmds += [
                    store.command("accept", res.reservation_id, now, RING_TTL_S),
                    store.command("connect", res.reservation_id, now),
                ]
                plan += [("skip", 1), ("connect", res)]
            self.to_ring, self.ring_due = [], math.inf
        if self.next_poll <= due or (events and self.next_poll - now < INBOX_EVERY_S / 2):
            cmds.append(store.command("take_offers", self.owner, 1000))
            plan.append(("poll", None))
            self.next_poll = now + INBOX_EVERY_S
        if not cmds:
            return False
        self.batches += 1
        self.commands += len(cmds)
        self.in_flight += 1
        replies = store.execute(cmds)
        replies.add_done_callback(functools.partial(self.read, plan, now))
        return True

    def read(self, plan: list[tuple[str, Any]], sent: float, done: asyncio.Future[Any]) -> None:
        self.in_flight -= 1
        try:
            self.read_replies(plan, sent, done.result())
        except BaseException as exc:  # handed to the run loop, which raises it
            self.errors.append(exc)
            self.wake.set()

    def read_replies(self, plan: list[tuple[str, Any]], sent: float, replies: list[Any]) -> None:
        back = time.time()
        self.round_trips.append(back - sent)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        i = 0
        for kind, arg in plan:
            if kind == "skip":
                i += arg
                continue
            reply = replies[i]
            i += 1
            if kind == "added":
                for res in added_from(reply)[1]:
                    self.reserved_one(res, back, by_arrival=True)
            elif kind == "release":
                counter, finished = reply
                self.released.append((f"ag{arg:04d}", int(counter or 0)))
                booked = booked_from(finished)  # the call the agent took in the same step
                if booked is not None:
                    self.reserved_one(booked, back, by_arrival=False)
            elif kind == "connect":
                due = back + self.handle_s * self.rng.uniform(0.9, 1.1)
                heapq.heappush(self.timers, (due, int(arg.agent_id[2:])))
            elif reply:  # poll: our calls that other processes reserved
                for raw in reply:
                    self.ring(reservation_from(raw), back)
        # Wake the loop if it waits for a free slot, for the end, or past a new ring time.
        blocked = self.in_flight == MAX_IN_FLIGHT - 1
        if blocked or self.draining or self.ring_due < self.sleeping_until:
            self.wake.set()

    def reserved_one(self, res: Reservation, back: float, *, by_arrival: bool) -> None:
        arrived = res.created_at - res.waited_s
        ready = max(self.free_at[int(res.agent_id[2:])], arrived)
        self.decisions.append(back - ready)
        self.from_due.append(back - max(self.free_due[int(res.agent_id[2:])], arrived))
        self.decided_at.append(back)
        self.by_arrival += by_arrival
        self.reserved.append((res.agent_id, rid_number(res.reservation_id), res.item_id))
        if res.owner == self.owner:
            self.ring(res, back)

    def ring(self, res: Reservation, back: float) -> None:
        self.to_ring.append(res)
        self.ring_due = min(self.ring_due, back + RING_DELAY_S)


async def worker(
    index: int, load: Load, barrier: Any, free_at: Any, free_due: Any
) -> dict[str, Any]:
    owner = f"p{index}"
    client = aioredis.Redis.from_url(REDIS_URL)
    store = RedisLiveStore(client=client, prefix=PREFIX, strategies=STRATEGIES)
    try:
        await store.load_scripts()
        rng = random.Random(load.seed * 1000 + index)
        skills_of = [
            [q for q, _ in sorted(a.skills.items(), key=lambda kv: -kv[1])] for a in agents_of(7)
        ]
        now = time.time()
        await store.heartbeat(owner, now, ttl_s=600.0)
        backlog = [  # our share of the calls waiting at the start
            store.command(
                "add_item",
                *add_item_args(
                    new_item(rng, f"{owner}w", n, now), steps=STEPS, owner=owner, entered_at=now
                ),
            )
            for n in range(WAITING // PROCESSES)
        ]
        await store.execute(backlog)  # also opens the store's batch connection
        runner = Runner(
            index=index,
            load=load,
            store=store,
            free_at=free_at,
            free_due=free_due,
            skills_of=skills_of,
        )
        gc.collect()
        gc.freeze()  # setup objects: out of the collector's way during the run
        await asyncio.to_thread(barrier.wait, 120.0)
        return await runner.run()
    finally:
        await store.aclose()
        await client.aclose()


def run_worker(
    index: int, load: Load, *, barrier: Any, free_at: Any, free_due: Any, out: Any
) -> None:
    import uvloop

    out.put(uvloop.run(worker(index, load, barrier, free_at, free_due)))


def collect(out: Any, procs: list[Any], timeout_s: float) -> dict[str, Any]:
    """One worker's result; fails at once when a worker died instead of waiting it out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result: dict[str, Any] = out.get(timeout=0.5)
            return result
        except Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a worker failed (exit codes {dead})") from None
    raise TimeoutError("a worker did not finish")


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all processes, anyone's); 0 if unknown."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def schedstat(pid: int | str = "self") -> tuple[float, float, int]:
    """A process's time on a CPU and time runnable but waiting for one (s), and its number of
    turns on a CPU (Linux schedstat; zeros if unknown)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            ran, waited, turns = f.read().split()[:3]
    except (OSError, ValueError):
        return 0.0, 0.0, 0
    return int(ran) / 1e9, int(waited) / 1e9, int(turns)


def redis_counters(client: redis.Redis) -> tuple[float, int, float]:
    """Redis's CPU seconds, and its FCALL calls and their microseconds, so far."""
    cpu = client.info("cpu")
    fcall = client.info("commandstats").get("cmdstat_fcall", {"calls": 0, "usec": 0})
    return (
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(fcall["calls"]),
        float(fcall["usec"]),
    )


def stalls_together(results: list[dict[str, Any]], threshold_s: float) -> float:
    """Share of the decisions slower than `threshold_s` that fell in a 10 ms window where every
    process had one: a stall of the machine or of Redis, not of one process."""
    slow = [
        [(int(at * 100), d) for at, d in zip(r["decided_at"], r["decisions"], strict=True)]
        for r in results
    ]
    slow = [[(w, d) for w, d in s if d > threshold_s] for s in slow]
    everyone = set.intersection(*({w for w, _ in s} for s in slow)) if slow else set()
    total = sum(len(s) for s in slow)
    together = sum(1 for s in slow for w, _ in s if w in everyone)
    return together / total if total else 0.0


@dataclass
class Outcome:
    name: str
    assignments: int
    rate: float
    p99_ms: float
    doubles: int
    summary: list[str]


def run_load(load: Load) -> Outcome:
    asyncio.run(setup(primed=True))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    out = ctx.Queue()
    free_at, free_due = ctx.RawArray("d", AGENTS), ctx.RawArray("d", AGENTS)
    procs = [
        ctx.Process(
            target=run_worker,
            args=(i, load),
            kwargs={"barrier": barrier, "free_at": free_at, "free_due": free_due, "out": out},
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    sync = redis.Redis.from_url(REDIS_URL)
    barrier.wait(120.0)
    before = redis_counters(sync)
    redis_pid = int(sync.info("server")["process_id"])  # on this machine: its CPU waits
    redis_sched0 = schedstat(redis_pid)
    machine0 = busy_cpu_s()
    backlog: list[int] = []
    deadline = time.time() + load.duration_s
    while time.time() < deadline:  # the waiting calls, sampled while the run goes
        pipe = sync.pipeline(transaction=False)
        for q in QUEUES:
            pipe.zcard(f"{PREFIX}q:{q}")
        backlog.append(sum(pipe.execute()))
        time.sleep(0.25)
    results = [collect(out, procs, load.duration_s + 120) for _ in procs]
    machine = busy_cpu_s() - machine0
    redis_sched1 = schedstat(redis_pid)
    after = redis_counters(sync)
    sync.close()
    for p in procs:
        p.join(30)
    decisions = np.array([d for r in results for d in r["decisions"]]) * 1e3
    lateness = np.array([d for r in results for d in r["lateness"]]) * 1e3
    from_due = np.array([d for r in results for d in r["from_due"]]) * 1e3
    trips = np.array([d for r in results for d in r["round_trips"]]) * 1e3
    assignments = int(decisions.size)
    wall = max(r["elapsed"] for r in results)
    rate = assignments / wall
    doubles = count_doubles(results)
    per = 1e6 / max(1, assignments)
    worker_cpu = sum(r["cpu_s"] for r in results)
    redis_cpu = after[0] - before[0]
    fcalls, fcall_us = after[1] - before[1], after[2] - before[2]
    batches = sum(r["batches"] for r in results)
    commands = sum(r["commands"] for r in results)
    sleeps = sum(r["sleeps"] for r in results)
    p50, p99 = pct(decisions, 50), pct(decisions, 99)
    worker_waits = sum(r["cpu_wait_s"] for r in results)
    worker_turns = sum(r["cpu_turns"] for r in results)
    redis_waits = redis_sched1[1] - redis_sched0[1]
    redis_turns = redis_sched1[2] - redis_sched0[2]
    over_1ms = int((decisions > 1.0).sum())
    summary = [
        f"offered {load.rate:,.0f}/s for {load.duration_s:.1f} s (handle time "
        f"{load.handle_s * 1e3:.0f} ms): {assignments} assignments in {wall:.2f} s = "
        f"{rate:,.0f}/s ({sum(r['by_arrival'] for r in results)} routed on an arrival, the "
        f"rest on a hang-up)",
        f"  waiting calls: start {backlog[0] if backlog else 0}, min {min(backlog, default=0)}, "
        f"max {max(backlog, default=0)}, end {backlog[-1] if backlog else 0}",
        f"  decision time: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {decisions.max():.3f} ms; "
        f"{over_1ms} ({over_1ms / max(1, assignments):.1%}) over 1 ms, "
        f"{stalls_together(results, 0.001):.0%} of them while every process was slow at once",
        f"  round trip (built -> replies read): p50 {pct(trips, 50):.3f} ms, p99 "
        f"{pct(trips, 99):.3f} ms; {batches} of them, {commands / max(1, batches):.1f} commands "
        f"each, {batches / max(1, assignments):.2f} and {sleeps / max(1, assignments):.2f} "
        f"event-loop sleeps per assignment",
        f"  event generator timer lateness (not in the decision time): p50 "
        f"{pct(lateness, 50):.3f} ms, p99 {pct(lateness, 99):.3f} ms; decision time counted "
        f"from a late hang-up's scheduled time instead: p50 {pct(from_due, 50):.3f} ms, p99 "
        f"{pct(from_due, 99):.3f} ms",
        f"  CPU per assignment: {(worker_cpu + redis_cpu) * per:.0f} us (workers "
        f"{worker_cpu * per:.0f}, Redis {redis_cpu * per:.0f}) = "
        f"{(worker_cpu + redis_cpu) / wall:.2f} cores (the machine: {machine / wall:.2f} busy, "
        f"anyone's); Redis functions "
        f"{fcall_us / max(1, fcalls):.1f} us/call, {fcalls / max(1, assignments):.1f} calls "
        f"and {fcall_us * per / 1e6:.0f} us per assignment",
        f"  runnable but waiting for a CPU: workers {worker_waits * per:.0f} us per assignment "
        f"({worker_waits / max(1, worker_turns) * 1e6:.0f} us per turn on a CPU), Redis "
        f"{redis_waits * per:.0f} us ({redis_waits / max(1, redis_turns) * 1e6:.0f} us per turn)",
        f"  double assignments (audited from the log): {doubles}",
    ]
    return Outcome(load.name, assignments, rate, p99, doubles, summary)


# --- one process alone, and the machine's own jitter -------------------------------------


async def solo(n: int) -> np.ndarray:
    """Routing-call round trips of one process alone (window 1), nothing else running: the
    cost of a decision itself, through the store's ordinary methods."""
    client = aioredis.Redis.from_url(REDIS_URL)
    store = RedisLiveStore(client=client, prefix=PREFIX, strategies=STRATEGIES)
    rng = random.Random(99)
    owner = "solo"
    await store.heartbeat(owner, time.time(), ttl_s=600.0)
    for i in range(WAITING):
        now = time.time()
        await store.add_item(new_item(rng, owner, i, now), steps=STEPS, owner=owner, entered_at=now)
    times: list[float] = []
    q = 0
    while len(times) < n:
        queue = QUEUES[q % SKILLS]
        q += 1
        t0 = time.perf_counter()
        made = await store.route(
            queue, time.time(), owner, strategy=STRATEGY, window=1, ttl_s=RESERVATION_TTL_S
        )
        took = time.perf_counter() - t0
        for res in made:
            times.append(took)
            now = time.time()
            await store.accept(res.reservation_id, now, ttl_s=RING_TTL_S)
            await store.connect(res.reservation_id, now)
            await store.finish(res.agent_id, Channel.VOICE, now, worked_s=0.4, wrap_up_s=0.0)
            await store.add_item(
                new_item(rng, owner, WAITING + len(times), now),
                steps=STEPS,
                owner=owner,
                entered_at=now,
            )
    await client.aclose()
    return np.array(times) * 1e3


def sleep_probe(seconds: float) -> np.ndarray:
    """How late 0.5 ms sleeps wake up, in ms, with none of our processes running."""
    late = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        time.sleep(0.0005)
        late.append(time.perf_counter() - t0 - 0.0005)
    return np.array(late) * 1e3


# --- the audit -----------------------------------------------------------------------------


def count_doubles(results: list[dict[str, Any]]) -> int:
    """Independent audit of the assignment log (see the module docstring)."""
    events: dict[str, list[tuple[int, str]]] = defaultdict(list)
    items: dict[str, int] = defaultdict(int)
    for r in results:
        for agent, number, item in r["reserved"]:
            events[agent].append((number, "reserve"))
            items[item] += 1
        for agent, number in r["released"]:
            events[agent].append((number, "release"))
    doubles = sum(n - 1 for n in items.values() if n > 1)
    for seq in events.values():
        # A reservation numbered n came before a release that read the counter at n.
        seq.sort(key=lambda event: (event[0], event[1] == "release"))
        held = False
        for _, kind in seq:
            if kind == "reserve":
                doubles += held  # reserved again before the previous release
                held = True
            else:
                held = False
    return doubles


def check_auditor() -> None:
    """The audit must see a double: agent a1 reserved (n=5) while held since n=3."""
    log: list[dict[str, Any]] = [
        {"reserved": [("a1", 3, "c1"), ("a1", 5, "c2"), ("a2", 4, "c3")], "released": []},
        {"reserved": [("a1", 9, "c4")], "released": [("a1", 7), ("a2", 6)]},
    ]
    assert count_doubles(log) == 1, "the double-assignment audit is broken"


# --- main ------------------------------------------------------------------------------------


def place(mode: str) -> str:
    """Set the CPU placement (see the module docstring); describes what was done."""
    everyone = set(range(os.cpu_count() or 1))
    if mode != "split":
        os.sched_setaffinity(0, everyone)
        _set_redis_cpus(everyone)
        return "shared: Redis and the routing processes on every CPU"
    if len(everyone) < 2:
        return "shared: one CPU only"
    last = max(everyone)
    if not _set_redis_cpus({last}):
        return "shared: Redis's CPU affinity could not be set (not local, or not allowed)"
    os.sched_setaffinity(0, everyone - {last})
    return f"split: Redis on CPU {last}, the routing processes on CPU(s) " + ",".join(
        str(c) for c in sorted(everyone - {last})
    )


def _redis_pid() -> int | None:
    """Redis's process id if it runs on this machine (its pid names a redis process here)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        if client.connection_pool.connection_kwargs.get("host") not in LOCAL_HOSTS:
            return None
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    try:
        with open(f"/proc/{pid}/comm") as f:
            return pid if "redis" in f.read() else None
    except OSError:
        return None


def _set_redis_cpus(cpus: set[int]) -> bool:
    pid = _redis_pid()
    if pid is None:
        return False
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:
        return False
    return True


def main() -> None:
    redis.Redis.from_url(REDIS_URL).ping()
    check_auditor()
    redis_pid = _redis_pid()
    redis_cpus = os.sched_getaffinity(redis_pid) if redis_pid is not None else None
    own_cpus = os.sched_getaffinity(0)
    try:
        run_all()
    finally:  # leave Redis and this process as they were
        os.sched_setaffinity(0, own_cpus)
        if redis_pid is not None and redis_cpus is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(redis_pid, redis_cpus)


def run_all() -> None:
    placed = place(PLACEMENT)
    print(f"placement: {placed}")
    print(f"load: {os.getloadavg()[0]:.2f} (1-min load average, {os.cpu_count()} CPUs)")
    t_setup = time.perf_counter()
    asyncio.run(setup(primed=False))
    print(
        f"setup: {AGENTS} agents with 3-5 of {SKILLS} skills in "
        f"{time.perf_counter() - t_setup:.1f} s"
    )
    alone = asyncio.run(solo(SOLO_DECISIONS))
    print(
        f"one process alone, window 1: routing call p50 {np.percentile(alone, 50):.3f} ms, "
        f"p99 {np.percentile(alone, 99):.3f} ms"
    )
    if SATURATION_S > 0:
        saturation = run_load(Load("saturation", SATURATION_RATE, SATURATION_S, seed=1))
        print(f"saturation ({PROCESSES} processes, offered more than they can route):")
        for line in saturation.summary:
            print(line)
        print(
            f"  capacity: {saturation.rate:,.0f} assignments/s at decision p99 "
            f"{saturation.p99_ms:.3f} ms"
        )
    late = sleep_probe(2.0)
    print(
        f"machine jitter, nothing of ours running: a 0.5 ms sleep wakes late by p50 "
        f"{np.percentile(late, 50):.3f} ms, p99 {np.percentile(late, 99):.3f} ms, p99.9 "
        f"{np.percentile(late, 99.9):.3f} ms, max {late.max():.3f} ms"
    )
    paced = run_load(Load("paced", RATE, TARGET / RATE, seed=2))
    print(f"paced run ({PROCESSES} processes, open loop):")
    for line in paced.summary:
        print(line)
    if placed.startswith("split"):
        shared_note = place("shared")
        shared = run_load(Load("paced", RATE, TARGET / RATE, seed=2))
        print(f"the same paced run, {shared_note} (for comparison, not reported):")
        for line in shared.summary[2:3]:
            print(line)
        place("split")
    print(
        f"targets: decision p99 <= 1 ms {'met' if paced.p99_ms <= 1.0 else 'MISSED'} "
        f"({paced.p99_ms:.3f} ms), >= 2,000 assignments/s "
        f"{'met' if paced.rate >= 2000 else 'MISSED'} ({paced.rate:,.0f}/s), "
        f">= 10,000 assignments {'met' if paced.assignments >= 10_000 else 'MISSED'}, "
        f"double assignments 0 {'met' if paced.doubles == 0 else 'MISSED'}"
    )
    print(
        json.dumps(
            {
                "bench": "routing",
                "agents": AGENTS,
                "waiting": WAITING,
                "decision_p99_ms": round(paced.p99_ms, 3),
                "processes": PROCESSES,
                "assignments": paced.assignments,
                "double_assignments": paced.doubles,
                "assignments_per_s": round(paced.rate, 1),
            },
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
