"""Selection strategies, queue order and relaxation as pure functions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from acd.models import (
    QueuePolicy,
    RoutingStep,
    SkillRequirement,
    Strategy,
    WorkItem,
)
from acd.policies import (
    STRATEGIES,
    Candidate,
    Demand,
    add_busy,
    current_step,
    demand_at,
    eligible,
    occupancy_score,
    queue_order,
    select,
    step_index,
)

SKILLS = ["billing", "sales", "tech"]

candidates_st = st.lists(
    st.builds(
        Candidate,
        agent_id=st.sampled_from([f"a{i}" for i in range(12)]),
        skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5)),
        idle_since=st.floats(0, 1e4),
        busy_s=st.floats(0, 1e4),
        busy_at=st.floats(0, 1e4),
    ),
    max_size=12,
    unique_by=lambda c: c.agent_id,
)
demand_st = st.builds(
    lambda reqs, prefs, only: Demand(
        item=WorkItem("c1", "q", 0.0, preferred_agents=tuple(prefs)),
        requirements=tuple(SkillRequirement(s, lv) for s, lv in reqs.items()),
        preferred_only=only and bool(prefs),
    ),
    st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=2),
    st.lists(st.sampled_from([f"a{i}" for i in range(12)]), max_size=2, unique=True),
    st.booleans(),
)


@settings(max_examples=300)
@given(candidates_st, demand_st, st.sampled_from(list(Strategy)))
def test_selection_never_picks_an_agent_lacking_a_skill_and_finds_one_if_any_fits(
    candidates: list[Candidate], demand: Demand, strategy: Strategy
) -> None:
    pick = select(strategy, candidates, demand, 0.0)
    fitting = [c for c in candidates if eligible(c, demand)]
    if pick is None:
        assert fitting == []
    else:
        assert pick in fitting
        for r in demand.requirements:
            assert pick.skills.get(r.skill, 0) >= r.min_level


@given(candidates_st, demand_st)
def test_preferred_agents_come_first_when_they_fit(
    candidates: list[Candidate], demand: Demand
) -> None:
    pick = select(Strategy.LONGEST_IDLE, candidates, demand, 0.0)
    fitting_preferred = [
        p
        for p in demand.item.preferred_agents
        for c in candidates
        if c.agent_id == p and eligible(c, demand)
    ]
    if fitting_preferred:
        assert pick is not None
        assert pick.agent_id == fitting_preferred[0]


def _c(agent_id: str, level: int, idle: float, busy: float = 0.0) -> Candidate:
    return Candidate(agent_id, {"billing": level}, idle, busy, 0.0)


def test_each_strategy_orders_as_named() -> None:
    demand = Demand(WorkItem("c", "q", 0.0), (SkillRequirement("billing", 2),))
    pool = [_c("idle", 2, 10.0, busy=500.0), _c("expert", 5, 50.0, 900.0), _c("rested", 3, 90.0)]
    assert STRATEGIES["longest_idle"](pool, demand, 100.0).agent_id == "idle"  # type: ignore[union-attr]
    assert STRATEGIES["most_skilled"](pool, demand, 100.0).agent_id == "expert"  # type: ignore[union-attr]
    assert STRATEGIES["least_occupied"](pool, demand, 100.0).agent_id == "rested"  # type: ignore[union-attr]
    low = [_c("novice", 1, 0.0)]
    assert STRATEGIES["most_skilled"](low, demand, 100.0) is None


@given(
    st.floats(1, 1e4), st.floats(0, 1e4), st.floats(1, 1e4), st.floats(0, 1e4), st.floats(0, 1e4)
)
def test_occupancy_score_orders_like_the_decayed_busy_time(
    b1: float, t1: float, b2: float, t2: float, later: float
) -> None:
    import math

    now = max(t1, t2) + later
    d1 = b1 * math.exp(-(now - t1) / 3600.0)
    d2 = b2 * math.exp(-(now - t2) / 3600.0)
    if abs(d1 - d2) > 1e-9 * max(d1, d2):
        assert (occupancy_score(b1, t1) < occupancy_score(b2, t2)) == (d1 < d2)


def test_add_busy_decays_then_adds() -> None:
    busy, at = add_busy(3600.0, 0.0, 60.0, 3600.0)
    assert at == 3600.0
    assert abs(busy - (3600.0 / 2.718281828459045 + 60.0)) < 1e-6


def test_queue_order_is_priority_then_returned_front_then_fcfs() -> None:
    a = WorkItem("a", "q", 10.0, priority=0)
    b = WorkItem("b", "q", 5.0, priority=0)
    c = WorkItem("c", "q", 20.0, priority=1)
    rona = WorkItem("d", "q", 30.0, priority=0)
    assert [i.item_id for i in queue_order([(a, False), (b, False), (c, False), (rona, True)])] == [
        "c",
        "d",
        "b",
        "a",
    ]


POLICY = QueuePolicy(
    "billing",
    steps=(
        RoutingStep(0.0, preferred_only=True),
        RoutingStep(20.0, min_level=4),
        RoutingStep(60.0, min_level=2),
    ),
)


@given(st.floats(0, 1e5))
def test_the_step_in_force_is_the_last_started(waited: float) -> None:
    index = step_index(POLICY, waited)
    assert POLICY.steps[index].after_s <= waited
    if index + 1 < len(POLICY.steps):
        assert POLICY.steps[index + 1].after_s > waited
    assert current_step(POLICY, waited) is POLICY.steps[index]


def test_relaxation_lowers_relaxable_levels_but_never_the_language() -> None:
    item = WorkItem(
        "c",
        "billing",
        0.0,
        skills=(SkillRequirement("billing", 5),),
        language="it",
        preferred_agents=("ann",),
    )
    first = demand_at(item, current_step(POLICY, 5.0))
    assert first.preferred_only
    later = demand_at(item, current_step(POLICY, 61.0))
    assert not later.preferred_only
    assert [(r.skill, r.min_level) for r in later.requirements] == [("billing", 2), ("lang:it", 1)]
    no_pref = demand_at(WorkItem("d", "billing", 0.0), POLICY.steps[0])
    assert not no_pref.preferred_only  # a preferred-only step without preferences is skipped
