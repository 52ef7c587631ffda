"""The kanban board's read model and ticket creation (tickets with their team, owner and
channel: storage/migrations/0007). Moves go through `ContextService.move_ticket`."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

import asyncpg

from context.tickets import Pipeline, open_ticket

# Closed tickets stay on the board this long (the last column would otherwise grow forever).
CLOSED_SHOWN_DAYS = 7
MAX_CARDS = 500


class Card(TypedDict):
    id: int
    title: str
    phase: str
    customer_id: int | None
    customer: str | None
    channel: str
    owner: str
    team: str
    phase_since: str  # ISO time the ticket entered its phase (time in phase = now - this)


class PgBoard:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def cards(self, *, team: str, pipeline: str) -> list[Card]:
        rows = await self._pool.fetch(
            "SELECT t.id, t.title, t.phase, t.customer_id, c.display_name, t.channel, t.owner,"
            " t.team, h.opened_at AS phase_since"
            " FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id"
            " LEFT JOIN ticket_phase_history h ON h.ticket_id = t.id AND h.closed_at IS NULL"
            " WHERE t.pipeline = $2 AND ($1 = '' OR t.team = $1)"
            " AND (t.closed_at IS NULL OR t.closed_at > now() - make_interval(days => $3))"
            " ORDER BY h.opened_at, t.id LIMIT $4",
            team,
            pipeline,
            CLOSED_SHOWN_DAYS,
            MAX_CARDS,
        )
        return [
            {
                "id": r["id"],
                "title": r["title"],
                "phase": r["phase"],
                "customer_id": r["customer_id"],
                "customer": r["display_name"],
                "channel": r["channel"],
                "owner": r["owner"],
                "team": r["team"],
                "phase_since": (r["phase_since"] or datetime.min).isoformat(),
            }
            for r in rows
        ]

    async def team_of(self, ticket_id: int) -> str | None:
        """The ticket's team, or None when there is no such ticket."""
        team = await self._pool.fetchval("SELECT team FROM tickets WHERE id = $1", ticket_id)
        return None if team is None else str(team)

    async def create(
        self,
        pipeline: Pipeline,
        *,
        title: str,
        customer_id: int | None,
        team: str,
        owner: str,
        channel: str,
        actor: str,
        now: datetime,
    ) -> int:
        ticket, first = open_ticket(
            pipeline, customer_id=customer_id, title=title, now=now, actor=actor
        )
        async with self._pool.acquire() as conn, conn.transaction():
            ticket_id = await conn.fetchval(
                "INSERT INTO tickets (customer_id, title, pipeline, phase, opened_at, updated_at,"
                " team, owner, channel) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) RETURNING id",
                ticket.customer_id,
                ticket.title,
                ticket.pipeline,
                ticket.phase,
                ticket.opened_at,
                team,
                owner,
                channel,
            )
            await conn.execute(
                "INSERT INTO ticket_phase_history (ticket_id, phase, from_phase, opened_at,"
                " out_of_order, actor) VALUES ($1, $2, NULL, $3, false, $4)",
                ticket_id,
                first.phase,
                first.opened_at,
                first.actor,
            )
        return int(ticket_id)
