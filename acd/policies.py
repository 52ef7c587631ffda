"""Routing policies as plain functions: agent selection, queue order, relaxation over time.

Agent selection has one signature, `(candidates, demand, now) -> Candidate | None`, and is
registered by name in `STRATEGIES`. A `Demand` is a work item as seen at its current routing
step (the effective skill levels and whether only preferred agents may take it). Every strategy
picks only agents that satisfy the demand (`eligible`), so none can pick an agent lacking a skill.

The Redis adapter's reservation script implements the same orderings (same scores, same
tie-break by agent id as Redis sorted sets do); a test holds the two to the same choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from acd.models import (
    MAX_LEVEL,
    QueuePolicy,
    RoutingStep,
    SkillRequirement,
    Strategy,
    WorkItem,
    queue_score,
)

# Occupancy "over the last hour" is busy time decayed exponentially with this time constant, so
# it can be kept as one number per agent (see `occupancy_score`).
OCCUPANCY_TAU_S = 3600.0
# Score of an agent with no busy time at all: below every real log-occupancy score.
NO_OCCUPANCY_SCORE = -1e18
# most_skilled packs (MAX_LEVEL - level) and idle time into one score; idle times stay < 4e9.
LEVEL_WEIGHT = 1e10


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent with free capacity for the item's channel, as the selection sees them."""

    agent_id: str
    skills: Mapping[str, int]
    idle_since: float
    busy_s: float = 0.0  # decayed busy seconds, as of `busy_at`
    busy_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Demand:
    """A work item at its current routing step."""

    item: WorkItem
    requirements: tuple[SkillRequirement, ...]
    preferred_only: bool = False

    @property
    def primary_skill(self) -> str | None:
        return self.requirements[0].skill if self.requirements else None


SelectFn = Callable[[Sequence[Candidate], Demand, float], Candidate | None]


def eligible(candidate: Candidate, demand: Demand) -> bool:
    """Has every required skill at the required level (and is preferred, if only those may)."""
    if demand.preferred_only and candidate.agent_id not in demand.item.preferred_agents:
        return False
    return all(candidate.skills.get(r.skill, 0) >= r.min_level for r in demand.requirements)


def occupancy_score(busy_s: float, busy_at: float) -> float:
    """Order-preserving score of decayed occupancy `busy_s * exp(-(now - busy_at) / tau)`.

    Comparing two agents at any common `now` compares `ln(busy_s) + busy_at / tau`, which does not
    depend on `now`: the score can sit in a sorted set without being refreshed.
    """
    if busy_s <= 0.0:
        return NO_OCCUPANCY_SCORE
    return math.log(busy_s) + busy_at / OCCUPANCY_TAU_S


def add_busy(busy_s: float, busy_at: float, worked_s: float, now: float) -> tuple[float, float]:
    """Decay the accumulated busy time to `now` and add `worked_s`."""
    decayed = busy_s * math.exp(-(now - busy_at) / OCCUPANCY_TAU_S) if busy_s > 0 else 0.0
    return decayed + worked_s, now


def strategy_score(strategy: Strategy, candidate: Candidate, primary_skill: str | None) -> float:
    """The sorted-set score of a candidate under a strategy (lower is chosen first)."""
    if strategy is Strategy.LONGEST_IDLE:
        return candidate.idle_since
    if strategy is Strategy.MOST_SKILLED:
        level = candidate.skills.get(primary_skill, 0) if primary_skill else MAX_LEVEL
        return (MAX_LEVEL - level) * LEVEL_WEIGHT + candidate.idle_since
    return occupancy_score(candidate.busy_s, candidate.busy_at)


def _best_by(
    strategy: Strategy, candidates: Sequence[Candidate], demand: Demand
) -> Candidate | None:
    fitting = [c for c in candidates if eligible(c, demand)]
    if not fitting:
        return None
    primary = demand.primary_skill
    return min(fitting, key=lambda c: (strategy_score(strategy, c, primary), c.agent_id))


def longest_idle(candidates: Sequence[Candidate], demand: Demand, now: float) -> Candidate | None:
    """The eligible agent idle the longest (earliest `idle_since`)."""
    return _best_by(Strategy.LONGEST_IDLE, candidates, demand)


def most_skilled(candidates: Sequence[Candidate], demand: Demand, now: float) -> Candidate | None:
    """The eligible agent with the highest level in the primary skill; ties: longest idle."""
    return _best_by(Strategy.MOST_SKILLED, candidates, demand)


def least_occupied(candidates: Sequence[Candidate], demand: Demand, now: float) -> Candidate | None:
    """The eligible agent with the least busy time over the last hour (exponentially decayed)."""
    return _best_by(Strategy.LEAST_OCCUPIED, candidates, demand)


STRATEGIES: Mapping[str, SelectFn] = {
    Strategy.LONGEST_IDLE.value: longest_idle,
    Strategy.MOST_SKILLED.value: most_skilled,
    Strategy.LEAST_OCCUPIED.value: least_occupied,
}


def select(
    strategy: Strategy, candidates: Sequence[Candidate], demand: Demand, now: float
) -> Candidate | None:
    """Preferred agents first (in the item's order) if eligible; otherwise the strategy's pick."""
    by_id = {c.agent_id: c for c in candidates}
    for agent_id in demand.item.preferred_agents:
        found = by_id.get(agent_id)
        if found is not None and eligible(found, demand):
            return found
    if demand.preferred_only:
        return None
    return STRATEGIES[strategy.value](candidates, demand, now)


# --- queue order ----------------------------------------------------------------------------


def queue_order(items: Iterable[tuple[WorkItem, bool]]) -> list[WorkItem]:
    """Priority first, then items returned to the front (RONA), then first come first served.

    `items` pairs each item with its `front` flag.
    """
    ranked = sorted(
        items, key=lambda pair: queue_score(pair[0].priority, pair[0].arrived_at, front=pair[1])
    )
    return [item for item, _ in ranked]


# --- relaxation over time -------------------------------------------------------------------


def step_index(policy: QueuePolicy, waited_s: float) -> int:
    """Index of the step in force after `waited_s` seconds (the last one started)."""
    index = 0
    for i, step in enumerate(policy.steps):
        if step.after_s <= waited_s:
            index = i
    return index


def current_step(policy: QueuePolicy, waited_s: float) -> RoutingStep:
    return policy.steps[step_index(policy, waited_s)]


def demand_at(item: WorkItem, step: RoutingStep) -> Demand:
    """The item's requirements under `step`: relaxable skills take the step's level."""
    reqs = tuple(
        SkillRequirement(r.skill, step.min_level, r.relaxable)
        if (r.relaxable and step.min_level is not None)
        else r
        for r in item.requirements()
    )
    preferred_only = step.preferred_only and bool(item.preferred_agents)
    return Demand(item=item, requirements=reqs, preferred_only=preferred_only)


def encode_steps(steps: Sequence[RoutingStep]) -> str:
    """Steps as the Redis script reads them: `after_s:P|-:level|0` joined by `;`."""
    return ";".join(
        f"{s.after_s!r}:{'P' if s.preferred_only else '-'}:{s.min_level or 0}" for s in steps
    )
