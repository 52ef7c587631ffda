"""Discrete-event simulation of the M/M/N(+M) queue, to validate the formulas.

Not used on any hot path: the tests run it with a seeded ``numpy.random.Generator`` and
compare its estimates with :func:`~queueing_models.erlang_a` and the Erlang C functions.

Method: callers are served first come, first served. Keep the times at which each agent
next becomes free in a heap. A caller arriving at ``a`` with the earliest free time ``f``
would wait ``V = max(0, f - a)`` (the offered wait: earlier callers have already taken
their agents or left, and later ones cannot overtake). If the caller's patience is at least
``V`` they are answered at ``a + V`` and that agent is busy for the handling time;
otherwise they abandon after their patience and take no agent (Kiefer-Wolfowitz recursion
with reneging).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Estimates from one simulation run (after the warm-up calls are discarded).

    Same meanings as :class:`~queueing_models.ErlangAResult`; ``calls`` is the number of
    measured calls and ``batch_p_wait`` / ``batch_sl_offered`` hold per-batch estimates
    (20 consecutive batches) for a batch-means standard error.
    """

    calls: int
    p_wait: float
    p_abandon: float
    asa: float
    mean_wait: float
    sl_offered: float
    sl_answered: float
    sl_virtual: float
    occupancy: float
    batch_p_wait: tuple[float, ...]
    batch_sl_offered: tuple[float, ...]


# Number of batches for the batch-means error estimate: enough for a t-like spread,
# few enough that each batch is long compared with the queue's memory.
_BATCHES = 20


def simulate_mmn_abandon(
    arrival_rate: float,
    aht: float,
    patience: float,
    agents: int,
    t: float,
    *,
    calls: int,
    rng: np.random.Generator,
    warmup: int = 2_000,
) -> SimulationResult:
    """Simulate an M/M/N+M queue (``patience = inf`` gives M/M/N, i.e. Erlang C).

    Parameters
    ----------
    arrival_rate : float
        Calls per second, ``> 0``.
    aht : float
        Mean (exponential) handling time in seconds, ``> 0``.
    patience : float
        Mean (exponential) patience in seconds, ``> 0``; ``math.inf`` for none.
    agents : int
        Number of agents, ``>= 1``.
    t : float
        Answer-time threshold in seconds for the service levels.
    calls : int
        Calls measured after the warm-up.
    rng : numpy.random.Generator
        Source of randomness (pass a seeded one for reproducible tests).
    warmup : int
        Calls simulated first from an empty system and not measured.

    Returns
    -------
    SimulationResult
    """
    if not (arrival_rate > 0 and aht > 0 and patience > 0 and agents >= 1 and calls >= _BATCHES):
        raise ValueError("need arrival_rate, aht, patience > 0, agents >= 1, calls >= 20")
    total = warmup + calls
    arrivals = np.cumsum(rng.exponential(1.0 / arrival_rate, total)).tolist()
    services = rng.exponential(aht, total).tolist()
    if math.isinf(patience):
        patiences = [math.inf] * total
    else:
        patiences = rng.exponential(patience, total).tolist()

    free = [0.0] * int(agents)
    waited = answered = abandoned = answered_in_t = virtual_in_t = 0
    wait_sum = answered_wait_sum = busy = 0.0
    batch = calls // _BATCHES
    batch_waited: list[float] = []
    batch_sl: list[float] = []
    b_waited = b_in_t = 0
    heapreplace = heapq.heapreplace
    for i in range(total):
        a = arrivals[i]
        f = free[0]
        v = f - a if f > a else 0.0
        tau = patiences[i]
        if v <= tau:
            heapreplace(free, a + v + services[i])
            served = True
        else:
            served = False
        if i < warmup:
            continue
        if v > 0.0:
            waited += 1
            b_waited += 1
        if v <= t:
            virtual_in_t += 1
        if served:
            answered += 1
            answered_wait_sum += v
            wait_sum += v
            busy += services[i]
            if v <= t:
                answered_in_t += 1
                b_in_t += 1
        else:
            abandoned += 1
            wait_sum += tau
        k = i - warmup + 1
        if k % batch == 0 and len(batch_waited) < _BATCHES:
            batch_waited.append(b_waited / batch)
            batch_sl.append(b_in_t / batch)
            b_waited = b_in_t = 0
    horizon = arrivals[-1] - arrivals[warmup - 1] if warmup else arrivals[-1]
    return SimulationResult(
        calls=calls,
        p_wait=waited / calls,
        p_abandon=abandoned / calls,
        asa=answered_wait_sum / answered if answered else math.nan,
        mean_wait=wait_sum / calls,
        sl_offered=answered_in_t / calls,
        sl_answered=answered_in_t / answered if answered else math.nan,
        sl_virtual=virtual_in_t / calls,
        occupancy=busy / (agents * horizon),
        batch_p_wait=tuple(batch_waited),
        batch_sl_offered=tuple(batch_sl),
    )


def simulate_mmn(
    arrival_rate: float,
    aht: float,
    agents: int,
    t: float,
    *,
    calls: int,
    rng: np.random.Generator,
    warmup: int = 2_000,
) -> SimulationResult:
    """Simulate an M/M/N queue (Erlang C: nobody abandons). See :func:`simulate_mmn_abandon`."""
    return simulate_mmn_abandon(
        arrival_rate, aht, math.inf, agents, t, calls=calls, rng=rng, warmup=warmup
    )
