"""Read models over the timeline for the web pages: recent calls, linking unknown numbers."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta

import asyncpg

from centralino.web.pages import CallSummary
from context.errors import NotFound
from context.identity import PhoneNormaliser
from context.models import Identity, IdentityKind
from context.service import ContextService


class PgCallsFeed:
    """`CallsFeed`: the latest voice interactions with their customer's name."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def recent_calls(
        self, limit: int, *, agent_ids: Collection[str] | None = None
    ) -> list[CallSummary]:
        rows = await self._pool.fetch(
            "SELECT i.linkedid, i.started_at, c.display_name, i.identity_value, i.queue,"
            " i.agent_id, i.intent, i.outcome, i.wait_s, i.talk_s"
            " FROM interactions i LEFT JOIN customers c ON c.id = i.customer_id"
            " WHERE i.channel = 'voice' AND ($2::text[] IS NULL OR i.agent_id = ANY($2))"
            " ORDER BY i.started_at DESC, i.id DESC LIMIT $1",
            limit,
            None if agent_ids is None else sorted(agent_ids),
        )
        return [
            {
                "linkedid": r["linkedid"] or "",
                "started_at": r["started_at"].isoformat() if r["started_at"] else None,
                "caller": r["display_name"] or "unknown number",
                "number": r["identity_value"],
                "queue": r["queue"],
                "agent_id": r["agent_id"],
                "intent": r["intent"],
                "outcome": r["outcome"],
                "wait_s": r["wait_s"],
                "talk_s": r["talk_s"],
            }
            for r in rows
        ]


class PgTeamSatisfaction:
    """`TeamSatisfaction`: the post-call survey scores of each team's agents' calls over the
    last `window_s` (a day by default), averaged per team with every score weighing the same;
    an agent in two teams counts in both."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        teams: Mapping[str, frozenset[str]],
        now: Callable[[], datetime],
        window_s: float = 86400.0,
    ) -> None:
        self._pool = pool
        self._teams = teams
        self._now = now
        self._window_s = window_s

    async def team_satisfaction(self) -> dict[str, tuple[float, int]]:
        rows = await self._pool.fetch(
            "SELECT agent_id, sum(survey_score) AS total, count(*) AS n FROM interactions"
            " WHERE survey_score IS NOT NULL AND agent_id IS NOT NULL AND ended_at >= $1"
            " GROUP BY agent_id",
            self._now() - timedelta(seconds=self._window_s),
        )
        sums: dict[str, list[int]] = {}
        for row in rows:
            for team in self._teams.get(row["agent_id"], ()):
                acc = sums.setdefault(team, [0, 0])
                acc[0] += int(row["total"])
                acc[1] += int(row["n"])
        return {team: (total / n, n) for team, (total, n) in sums.items() if n}


class ContextIdentityLinker:
    """`IdentityLinker`: the desktop's "link this number" attaches it to a customer."""

    def __init__(self, *, context: ContextService, phones: PhoneNormaliser) -> None:
        self._context = context
        self._phones = phones

    async def link(self, *, identity_kind: str, identity_value: str, customer_id: int) -> None:
        try:
            kind = IdentityKind(identity_kind)
        except ValueError:
            raise ValueError(f"unknown identity kind {identity_kind!r}") from None
        value = identity_value.strip()
        if kind is IdentityKind.PHONE:
            parsed = self._phones.normalise(value)
            if not isinstance(parsed, Identity):
                raise ValueError(f"{identity_value!r} is not a phone number ({parsed})")
            value = parsed.value
        try:
            await self._context.link_identity(customer_id, Identity(kind, value))
        except NotFound as exc:
            raise LookupError(str(exc)) from exc
