"""The post-call survey's score: stored on the interaction (migration 0009) and averaged per
team for the wallboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from centralino.adapters.pg_calls import PgTeamSatisfaction
from centralino.adapters.pg_context import PgTimelineStore
from centralino.web.pages import wallboard_view
from context.models import ChannelKind, Direction, Interaction

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def call(agent: str | None, score: int | None, *, ago_s: float = 60.0) -> Interaction:
    at = NOW - timedelta(seconds=ago_s)
    return Interaction(
        id=None,
        customer_id=None,
        channel=ChannelKind.VOICE,
        direction=Direction.INBOUND,
        started_at=at,
        ended_at=at,
        agent_id=agent,
        outcome="answered",
        survey_score=score,
    )


async def test_given_a_rated_call_then_its_score_is_stored_and_read_back(
    pg_pool: asyncpg.Pool,
) -> None:
    stored = await PgTimelineStore(pool=pg_pool).append(call("agent101", 4))
    assert stored.survey_score == 4
    assert await pg_pool.fetchval("SELECT survey_score FROM interactions") == 4


async def test_given_a_score_out_of_range_then_the_database_refuses_it(
    pg_pool: asyncpg.Pool,
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await PgTimelineStore(pool=pg_pool).append(call("agent101", 6))


async def test_given_scores_then_each_team_gets_the_mean_of_its_agents_recent_calls(
    pg_pool: asyncpg.Pool,
) -> None:
    store = PgTimelineStore(pool=pg_pool)
    for interaction in (
        call("agent101", 5),
        call("agent101", 4),
        call("agent102", 2),
        call("agent102", None),  # not rated: not counted
        call("agent103", 1, ago_s=2 * 86400),  # older than the window
        call(None, 3),  # nobody answered: no team
    ):
        await store.append(interaction)
    source = PgTeamSatisfaction(
        pool=pg_pool,
        teams={
            "agent101": frozenset({"blue"}),
            "agent102": frozenset({"blue", "red"}),
            "agent103": frozenset({"green"}),
        },
        now=lambda: NOW,
    )

    rated = await source.team_satisfaction()

    assert rated == {"blue": (pytest.approx(11 / 3), 3), "red": (2.0, 1)}
    view = wallboard_view([], generated_at=NOW, window_s=None, satisfaction=rated)
    blue = next(t for t in view["teams"] if t["team"] == "blue")
    assert blue["satisfaction"] == pytest.approx(11 / 3)
    assert blue["satisfaction_scale"] == 5.0
