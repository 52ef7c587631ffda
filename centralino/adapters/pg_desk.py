"""asyncpg implementation of the agent desktop's records (`centralino.web.desktop_api.DeskRecords`):
wrap-up outcomes on the interaction record and agents' notes (0012_desk.sql)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from centralino.web.desktop_api import NoteView

# A customer's or call's notes, newest first: a screenful; older ones belong in reports.
MAX_NOTES_LISTED = 50


def _note(row: asyncpg.Record) -> NoteView:
    return {
        "id": row["id"],
        "customer_id": row["customer_id"],
        "linkedid": row["linkedid"],
        "agent_id": row["agent_id"],
        "author": row["author"],
        "body": row["body"],
        "created_at": row["created_at"].isoformat(),
    }


class PgDeskRecords:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def set_outcome(
        self, *, linkedid: str, agent_id: str, code: str, by: str, at: datetime
    ) -> bool:
        """On the agent's interaction record of the call; False when there is none (yet)."""
        updated = await self._pool.fetchval(
            "UPDATE interactions SET wrap_up_code = $3, wrap_up_by = $4, wrap_up_at = $5"
            " WHERE linkedid = $1 AND agent_id = $2 RETURNING id",
            linkedid,
            agent_id,
            code,
            by,
            at,
        )
        return updated is not None

    async def add_note(
        self,
        *,
        agent_id: str,
        author: str,
        body: str,
        customer_id: int | None,
        linkedid: str | None,
    ) -> NoteView:
        """Raises `LookupError` for an unknown customer."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO desk_notes (customer_id, linkedid, agent_id, author, body)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING *",
                customer_id,
                linkedid,
                agent_id,
                author,
                body,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise LookupError(f"no customer #{customer_id}") from exc
        assert row is not None
        return _note(row)

    async def notes(self, *, customer_id: int | None, linkedid: str | None) -> list[NoteView]:
        """The customer's notes and the call's, newest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM desk_notes WHERE ($1::bigint IS NOT NULL AND customer_id = $1)"
            " OR ($2::text IS NOT NULL AND linkedid = $2)"
            " ORDER BY created_at DESC, id DESC LIMIT $3",
            customer_id,
            linkedid,
            MAX_NOTES_LISTED,
        )
        return [_note(r) for r in rows]
