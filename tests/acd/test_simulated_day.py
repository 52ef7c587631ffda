"""A simulated day through the routing engine: announced waits against actual waits, and the
simulated service level against the Erlang C model.

Discrete-event simulation with a fixed-seed numpy Generator: Poisson arrivals whose rate
changes every half hour, exponential handle times, agents with mixed skills and levels. The
engine is the real one (`LiveState` routing with the queue policies and strategies); the
announced wait is what the router would tell the caller on joining (`expected_wait_at` with
the live rates from `RateTracker` and the live agent counts from `count_serving`).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

import queueing_models
from acd.estimates import RateTracker, count_serving, expected_wait_at
from acd.live import LiveState
from acd.models import (
    AgentDefinition,
    Channel,
    RoutingStep,
    SkillRequirement,
    Strategy,
    WorkItem,
)
from acd.policies import encode_steps
from acd.states import AgentEvent

pytestmark = pytest.mark.slow

INTERVAL_S = 1800.0
AHT_S = 240.0
SL_T_S = 20.0
STEPS = encode_steps((RoutingStep(0.0, min_level=3), RoutingStep(30.0, min_level=1)))


@dataclass
class Day:
    waits: list[float] = field(default_factory=list)  # actual, answered after queueing
    announced: list[float] = field(default_factory=list)  # what those callers were told
    blind: list[float] = field(default_factory=list)  # Erlang C E[W | W > 0], position-blind
    all_waits: list[float] = field(default_factory=list)
    per_interval_calls: list[int] = field(default_factory=list)


def simulate(
    rng: np.random.Generator,
    agents: list[AgentDefinition],
    rates_per_h: dict[str, list[float]],
) -> Day:
    live = LiveState()
    tracker = RateTracker(tau_s=INTERVAL_S, prior_aht_s=AHT_S)
    definitions = {a.agent_id: a for a in agents}
    for a in agents:
        live.put_agent(a, 0.0)
        live.agent_event(a.agent_id, AgentEvent.LOGIN, 0.0)
        live.agent_event(a.agent_id, AgentEvent.READY, 0.0)
    live.heartbeat("sim", 0.0, ttl_s=1e9)
    queues = list(rates_per_h)
    n_intervals = len(next(iter(rates_per_h.values())))
    events: list[tuple[float, int, str, str]] = []  # time, seq, kind, id
    seq = 0
    for queue, rates in rates_per_h.items():
        for i, per_h in enumerate(rates):
            t = i * INTERVAL_S
            while True:
                t += rng.exponential(3600.0 / per_h)
                if t >= (i + 1) * INTERVAL_S:
                    break
                seq += 1
                heapq.heappush(events, (t, seq, "arrive", f"{queue}|{seq}"))
    day = Day(per_interval_calls=[0] * n_intervals)
    told: dict[str, float] = {}
    blind: dict[str, float] = {}
    arrived: dict[str, float] = {}
    working: dict[str, tuple[str, str, float]] = {}  # agent -> item, queue, started
    while events:
        now, _, kind, ref = heapq.heappop(events)
        if kind == "arrive":
            queue = ref.split("|")[0]
            level = int(rng.integers(1, 4))
            item = WorkItem(
                ref.replace("|", "-"), queue, now, skills=(SkillRequirement(queue, level),)
            )
            live.add_item(item, steps=STEPS, owner="sim", entered_at=now)
            tracker.arrival(queue, now)
            arrived[item.item_id] = now
            day.per_interval_calls[min(int(now // INTERVAL_S), n_intervals - 1)] += 1
        else:
            item_id, queue, started = working.pop(ref)
            live.finish(ref, Channel.VOICE, now, worked_s=now - started, wrap_up_s=0.0)
            tracker.handled(queue, now - started, now)
        for queue in queues:
            for res in live.route(
                queue, now, "sim", strategy=Strategy.LONGEST_IDLE, window=50, ttl_s=60.0
            ):
                live.accept(res.reservation_id, now, ttl_s=60.0)
                live.connect(res.reservation_id, now)
                wait = now - arrived.pop(res.item_id)
                tracker.waited(res.queue, wait, now, abandoned=False)
                day.all_waits.append(wait)
                if res.item_id in told:
                    day.waits.append(wait)
                    day.announced.append(told.pop(res.item_id))
                    day.blind.append(blind.pop(res.item_id))
                working[res.agent_id] = (res.item_id, res.queue, now)
                seq += 1
                heapq.heappush(events, (now + rng.exponential(AHT_S), seq, "done", res.agent_id))
        if kind == "arrive":
            item_id = ref.replace("|", "-")
            position = live.position(item_id)
            if position:  # still waiting after routing: this caller hears an estimate
                queue = ref.split("|")[0]
                contended = [q for q in queues if q != queue and live.waiting(q)]
                serving = count_serving(live.agents(), definitions, queue, contended)
                # Still waiting after a routing pass: no idle agent can take this caller, so
                # the estimate counts none as free (as `Router.ticket` does).
                told[item_id] = expected_wait_at(
                    position,
                    agents=serving.agents,
                    aht_s=tracker.aht(queue, now),
                    patience_s=tracker.patience(queue, now),
                    free=0,
                )
                aht = tracker.aht(queue, now)
                spare = serving.agents - tracker.arrival_rate(queue, now) * aht
                blind[item_id] = aht / spare if spare > 0 else 10.0 * aht
    return day


def test_announced_waits_track_actual_waits_over_a_mixed_skill_day() -> None:
    rng = np.random.default_rng(20260501)
    agents = []
    for i in range(22):
        if i < 9:
            skills = {"billing": int(rng.integers(1, 6))}
        elif i < 18:
            skills = {"sales": int(rng.integers(1, 6))}
        else:
            skills = {"billing": int(rng.integers(1, 6)), "sales": int(rng.integers(1, 6))}
        agents.append(AgentDefinition(f"a{i:02d}", skills))
    # 8 hours, rates per half hour: a morning peak and a quieter afternoon
    shape = [0.6, 0.8, 1.0, 1.1, 1.1, 1.0, 0.9, 0.8, 0.7, 0.8, 0.9, 1.0, 1.0, 0.9, 0.7, 0.6]
    rates = {"billing": [110.0 * s for s in shape], "sales": [105.0 * s for s in shape]}
    day = simulate(rng, agents, rates)
    announced = np.array(day.announced)
    actual = np.array(day.waits)
    mae = float(np.mean(np.abs(announced - actual)))
    blind_mae = float(np.mean(np.abs(np.array(day.blind) - actual)))
    corr = float(np.corrcoef(announced, actual)[0, 1])
    print(
        f"\nsimulated day: {len(day.all_waits)} calls answered, {actual.size} queued and told"
        f" an estimate; mean actual wait of those {actual.mean():.1f} s, mean announced"
        f" {announced.mean():.1f} s, mean absolute error {mae:.1f} s (position-blind Erlang C"
        f" E[W|W>0]: {blind_mae:.1f} s), correlation {corr:.2f}"
    )
    assert actual.size > 300  # enough callers waited for the comparison to mean something
    # A caller's remaining wait given their position is Erlang-distributed (exponential at
    # position 1), so even a perfect conditional mean misses each caller by a good fraction of
    # the wait. Sensible bounds: better than the position-blind model, unbiased within a
    # quarter, clearly informative, and off by less than the mean wait itself.
    assert mae < blind_mae
    assert abs(announced.mean() - actual.mean()) < 0.25 * actual.mean()
    assert corr > 0.4
    assert mae < 0.8 * actual.mean()


def test_simulated_service_level_matches_erlang_c() -> None:
    # One skill, identical agents: the M/M/N world of Erlang C. Waits within a day are strongly
    # correlated, so several independent 12-hour days are pooled.
    n_agents = 13
    rates_h = [130.0, 150.0, 160.0, 150.0, 140.0, 150.0] * 4
    traffic = np.array(rates_h) / 3600.0 * AHT_S
    sl_by_interval = queueing_models.service_level(traffic, n_agents, AHT_S, SL_T_S)
    within = answered = 0
    model_weighted = 0.0
    for seed in range(8):
        rng = np.random.default_rng(1000 + seed)
        agents = [AgentDefinition(f"a{i:02d}", {"general": 3}) for i in range(n_agents)]
        day = simulate(rng, agents, {"general": rates_h})
        waits = np.array(day.all_waits)
        within += int(np.sum(waits <= SL_T_S))
        answered += waits.size
        model_weighted += float(np.sum(np.array(day.per_interval_calls) * sl_by_interval))
    simulated = within / answered
    model = model_weighted / answered
    print(
        f"\nservice level over {answered} calls (8 days): simulated {simulated:.3f},"
        f" Erlang C {model:.3f}"
    )
    assert math.isfinite(model)
    assert abs(simulated - model) < 0.04
