"""Shared test helpers for the ACD suites: a manual clock and a random scenario driver."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acd.models import (
    AgentDefinition,
    Capacity,
    Channel,
    RoutingStep,
    SkillRequirement,
    WorkItem,
)

SKILLS = ("billing", "sales", "tech", "returns", "vip")


@dataclass
class ManualClock:
    t: float = 1_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def random_agents(rng: np.random.Generator, n: int) -> list[AgentDefinition]:
    agents = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        skills = {str(s): int(rng.integers(1, 6)) for s in rng.choice(SKILLS, k, replace=False)}
        langs = frozenset({"it"} if rng.random() < 0.5 else {"en"})
        cap = Capacity(voice=1, chat=int(rng.integers(0, 4)), email=int(rng.integers(0, 2)))
        agents.append(
            AgentDefinition(
                f"a{i:03d}",
                skills,
                teams=frozenset({f"team{i % 3}"}),
                languages=langs,
                endpoint=f"PJSIP/{1000 + i}",
                capacity=cap,
            )
        )
    return agents


def random_item(
    rng: np.random.Generator, i: int, now: float, agents: list[AgentDefinition]
) -> WorkItem:
    k = int(rng.integers(0, 3))
    skills = tuple(
        SkillRequirement(str(s), int(rng.integers(1, 6)), bool(rng.random() < 0.8))
        for s in rng.choice(SKILLS, k, replace=False)
    )
    prefs: tuple[str, ...] = ()
    if rng.random() < 0.3:
        prefs = tuple(str(a.agent_id) for a in rng.choice(np.array(agents), 2, replace=False))
    channel = Channel.VOICE if rng.random() < 0.7 else (Channel.CHAT, Channel.EMAIL)[i % 2]
    return WorkItem(
        item_id=f"i{i:04d}",
        queue=("q1", "q2")[i % 2],
        arrived_at=now - float(rng.integers(0, 200)),
        channel=channel,
        skills=skills,
        priority=int(rng.integers(0, 3)),
        preferred_agents=prefs,
        language=(None, "it", "en")[int(rng.integers(0, 3))],
    )


STEPS = (
    RoutingStep(0.0, preferred_only=True),
    RoutingStep(20.0, min_level=4),
    RoutingStep(60.0, min_level=2),
    RoutingStep(120.0, min_level=1),
)
