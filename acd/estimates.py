"""Expected waits from live arrival and handle rates and the Erlang models.

Position-based estimate (what a waiting caller hears): when every serving agent is busy, service
completions in an M/M/N queue are a Poisson stream of rate N/aht (the memorylessness behind
Erlang C), and each caller ahead who is still waiting leaves early at rate 1/patience (Erlang A,
M/M/N+M). A caller with j-1 callers ahead moves up at rate N/aht + (j-1)/patience, so the
expected wait of the caller at position k (with `free` agents idle) is

    E[W | k] = sum_{j=1}^{k-free} 1 / (N/aht + (j-1)/patience)

the conditional virtual waiting time of M/M/N+M given the queue length. A caller who has not yet
joined gets the unconditional figure from `queueing_models` (Erlang C, or Erlang A with the
measured patience).

`RateTracker` keeps the live rates: exponentially weighted arrival rate, mean handle time
(talk + wrap-up) and patience (abandons per second of waiting: the exponential-patience MLE).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import queueing_models
from acd.models import AgentDefinition, AgentState, AgentStatus

# The live rates forget with this time constant: long enough to smooth a quarter-hour's noise,
# short enough to follow the day's curve.
DEFAULT_TAU_S = 900.0


def expected_wait_at(
    position: int, *, agents: float, aht_s: float, patience_s: float | None = None, free: int = 0
) -> float:
    """Expected remaining wait (s) of the caller at 1-based `position` (see module docstring).

    `agents` serving the queue (may be fractional when shared), `free` of them idle now.
    Returns inf when nobody serves the queue.
    """
    ahead = position - max(free, 0)
    if ahead <= 0:
        return 0.0
    if agents <= 0 or aht_s <= 0:
        return math.inf
    service_rate = agents / aht_s
    leave_rate = 1.0 / patience_s if patience_s and math.isfinite(patience_s) else 0.0
    return sum(1.0 / (service_rate + j * leave_rate) for j in range(ahead))


@dataclass(frozen=True, slots=True)
class Serving:
    """Who serves a queue now: `agents` (shared agents count fractionally), `free` of them idle,
    `logged_in` with the queue's skill (NOT_READY included)."""

    agents: float
    free: int
    logged_in: int


def count_serving(
    statuses: Iterable[AgentStatus],
    definitions: Mapping[str, AgentDefinition],
    skill: str | None,
    contended_skills: Iterable[str | None],
) -> Serving:
    """Agents serving a queue identified by `skill` (None: every agent).

    An agent serves it when they have the skill and are logged in and not NOT_READY. An agent
    who could also serve other queues that have callers waiting right now (`contended_skills`:
    the skills of those other queues) is shared: with k such queues, including this one, they
    count 1/k towards each. A queue with nobody waiting does not take a share.
    """
    queue_skills = [s for s in contended_skills if s != skill]
    total = 0.0
    free = 0
    logged_in = 0
    for status in statuses:
        agent = definitions.get(status.agent_id)
        if agent is None or status.state is AgentState.LOGGED_OUT:
            continue
        has = agent.all_skills()
        if skill is not None and skill not in has:
            continue
        logged_in += 1
        if status.state is AgentState.NOT_READY:
            continue
        share = 1 + sum(1 for s in queue_skills if s is None or s in has)
        total += 1.0 / share
        if status.state is AgentState.READY and not any(status.load.values()):
            free += 1
    return Serving(total, free, logged_in)


def expected_wait_new(
    *, arrival_rate: float, aht_s: float, agents: int, patience_s: float | None = None
) -> float:
    """Mean wait (s) of a caller about to join: Erlang A when patience is known, else Erlang C."""
    if agents <= 0:
        return math.inf
    if patience_s is not None and math.isfinite(patience_s) and patience_s > 0:
        result = queueing_models.erlang_a(arrival_rate, aht_s, patience_s, agents, 20.0)
        return float(result.asa)
    return float(queueing_models.asa(arrival_rate * aht_s, agents, aht_s))


def staffing_advice(*, arrival_rate: float, aht_s: float, goal: float, t_s: float) -> int:
    """Agents needed so that `goal` of callers wait at most `t_s` (Erlang C, e.g. 80/20)."""
    if arrival_rate <= 0:
        return 0
    return int(queueing_models.agents_for_service_level(arrival_rate, aht_s, goal, t_s))


@dataclass(slots=True)
class _Ewma:
    """Exponentially decayed sum, evaluated at a moving `t`."""

    value: float = 0.0
    t: float = 0.0

    def add(self, amount: float, now: float, tau: float) -> None:
        self.value = self.at(now, tau) + amount
        self.t = max(self.t, now)

    def at(self, now: float, tau: float) -> float:
        return self.value * math.exp(-max(0.0, now - self.t) / tau)


@dataclass(slots=True)
class _QueueRates:
    arrivals: _Ewma
    handled_n: _Ewma
    handled_s: _Ewma
    abandons: _Ewma
    waited_s: _Ewma
    started: float


class RateTracker:
    """Live arrival rate, handle time and patience per queue (pure; fed by the router)."""

    def __init__(self, *, tau_s: float = DEFAULT_TAU_S, prior_aht_s: float = 180.0) -> None:
        self._tau = tau_s
        self._prior_aht = prior_aht_s
        self._queues: dict[str, _QueueRates] = {}

    def _q(self, queue: str, now: float) -> _QueueRates:
        found = self._queues.get(queue)
        if found is None:
            found = _QueueRates(_Ewma(), _Ewma(), _Ewma(), _Ewma(), _Ewma(), now)
            self._queues[queue] = found
        return found

    def arrival(self, queue: str, now: float) -> None:
        self._q(queue, now).arrivals.add(1.0, now, self._tau)

    def handled(self, queue: str, handle_s: float, now: float) -> None:
        q = self._q(queue, now)
        q.handled_n.add(1.0, now, self._tau)
        q.handled_s.add(handle_s, now, self._tau)

    def waited(self, queue: str, waited_s: float, now: float, *, abandoned: bool) -> None:
        """A wait ended (answered or abandoned) after `waited_s`: feeds the patience estimate."""
        q = self._q(queue, now)
        q.waited_s.add(waited_s, now, self._tau)
        if abandoned:
            q.abandons.add(1.0, now, self._tau)

    def arrival_rate(self, queue: str, now: float) -> float:
        """Calls per second; during the first tau only the elapsed time counts."""
        q = self._queues.get(queue)
        if q is None:
            return 0.0
        horizon = self._tau * (1.0 - math.exp(-max(now - q.started, 1e-9) / self._tau))
        return q.arrivals.at(now, self._tau) / horizon

    def aht(self, queue: str, now: float) -> float:
        q = self._queues.get(queue)
        if q is None or q.handled_n.at(now, self._tau) < 1e-9:
            return self._prior_aht
        return q.handled_s.at(now, self._tau) / q.handled_n.at(now, self._tau)

    def patience(self, queue: str, now: float) -> float | None:
        """Mean patience (s): total waiting time / abandons; None until someone abandoned."""
        q = self._queues.get(queue)
        if q is None:
            return None
        abandons = q.abandons.at(now, self._tau)
        if abandons < 1e-9:
            return None
        return q.waited_s.at(now, self._tau) / abandons
