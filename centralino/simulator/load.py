"""`centralino simulate`: a bounded load run against a running Centralino over FastAGI.

Callers arrive with at most `concurrency` in progress; each plays the whole call (menu, queue,
agent's phone) with durations compressed by `time_scale`. Prints what happened and the call
setup times. Only for addresses on this machine or the operator's own test hosts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import numpy as np

from centralino.simulator.callcenter import CallResult, CallSimulator, demo_callers


async def run_load(
    *,
    host: str,
    port: int,
    calls: int,
    concurrency: int,
    time_scale: float = 0.05,
    seed: int = 11,
) -> int:
    rng = np.random.default_rng(seed)
    simulator = CallSimulator(agi_host=host, agi_port=port, rng=rng, time_scale=time_scale)
    numbers = [f"+39020000{n:04d}" for n in range(200)]
    slots = asyncio.Semaphore(max(1, concurrency))
    failures: Counter[str] = Counter()

    async def one() -> CallResult | None:
        async with slots:
            try:
                return await simulator.call(demo_callers(rng, numbers))
            except OSError as exc:
                failures[type(exc).__name__] += 1
                return None

    started = time.monotonic()
    results = [r for r in await asyncio.gather(*(one() for _ in range(calls))) if r is not None]
    elapsed = time.monotonic() - started
    outcomes = Counter(
        "answered" if r.answered else "abandoned" if r.abandoned else "ended in the IVR"
        for r in results
    )
    commands = sum(len(r.commands) for r in results)
    print(f"{len(results)} calls in {elapsed:.1f} s ({len(results) / elapsed:.1f} calls/s)")
    print(f"{commands} AGI commands answered ({commands / elapsed:.0f}/s)")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    # A blind transfer to a queue brings the caller back through FastAGI: one more session.
    print(f"transfers: {sum(1 for r in results if r.transferred_to)}")
    if failures:
        print("connection failures: " + ", ".join(f"{k} {v}" for k, v in failures.items()))
    return 0 if results and not failures else 1
