"""asyncpg implementations of the context stores (customers, timeline, tickets).

Only what Centralino owns is stored; see `storage/migrations/0002_context.sql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from context.errors import IllegalMove, MergeError, NotFound
from context.models import (
    ChannelKind,
    Customer,
    Direction,
    ExternalLink,
    Identity,
    IdentityKind,
    Interaction,
    PhaseActivity,
    Ticket,
)
from context.ports import TicketMove

_CUSTOMER_COLS = "id, display_name, created_at, merged_into"


def _customer(row: asyncpg.Record) -> Customer:
    return Customer(
        id=row["id"],
        display_name=row["display_name"],
        created_at=row["created_at"],
        merged_into=row["merged_into"],
    )


class PgCustomerStore:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        display_name: str,
        identities: Sequence[Identity] = (),
        links: Sequence[ExternalLink] = (),
    ) -> Customer:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"INSERT INTO customers (display_name) VALUES ($1) RETURNING {_CUSTOMER_COLS}",
                display_name,
            )
            assert row is not None
            await conn.executemany(
                "INSERT INTO customer_identities (customer_id, kind, value) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING",
                [(row["id"], str(i.kind), i.value) for i in identities],
            )
            await conn.executemany(
                "INSERT INTO external_links (customer_id, system, external_id)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(row["id"], link.system, link.external_id) for link in links],
            )
        return _customer(row)

    async def get(self, customer_id: int) -> Customer:
        row = await self._pool.fetchrow(
            f"SELECT {_CUSTOMER_COLS} FROM customers WHERE id = $1", customer_id
        )
        if row is None:
            raise NotFound(f"no customer {customer_id}")
        return _customer(row)

    async def find_by_identity(self, identity: Identity) -> list[Customer]:
        rows = await self._pool.fetch(
            f"SELECT {', '.join('c.' + c for c in _CUSTOMER_COLS.split(', '))}"
            " FROM customer_identities i JOIN customers c ON c.id = i.customer_id"
            " WHERE i.kind = $1 AND i.value = $2 AND c.merged_into IS NULL ORDER BY c.id",
            str(identity.kind),
            identity.value,
        )
        return [_customer(r) for r in rows]

    async def add_identity(self, customer_id: int, identity: Identity) -> None:
        await self._pool.execute(
            "INSERT INTO customer_identities (customer_id, kind, value) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            customer_id,
            str(identity.kind),
            identity.value,
        )

    async def identities(self, customer_id: int) -> list[Identity]:
        rows = await self._pool.fetch(
            "SELECT kind, value FROM customer_identities WHERE customer_id = $1"
            " ORDER BY kind, value",
            customer_id,
        )
        return [Identity(IdentityKind(r["kind"]), r["value"]) for r in rows]

    async def add_link(self, customer_id: int, link: ExternalLink) -> None:
        await self._pool.execute(
            "INSERT INTO external_links (customer_id, system, external_id) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            customer_id,
            link.system,
            link.external_id,
        )

    async def links(self, customer_id: int) -> list[ExternalLink]:
        rows = await self._pool.fetch(
            "SELECT system, external_id FROM external_links WHERE customer_id = $1"
            " ORDER BY system, external_id",
            customer_id,
        )
        return [ExternalLink(r["system"], r["external_id"]) for r in rows]

    async def merge(self, *, keep_id: int, absorb_id: int) -> Customer:
        if keep_id == absorb_id:
            raise MergeError(f"cannot merge customer {keep_id} into itself")
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock both rows in id order so two concurrent merges cannot deadlock.
            rows = await conn.fetch(
                f"SELECT {_CUSTOMER_COLS} FROM customers WHERE id = ANY($1::bigint[])"
                " ORDER BY id FOR UPDATE",
                [keep_id, absorb_id],
            )
            found = {r["id"]: r for r in rows}
            for cid in (keep_id, absorb_id):
                if cid not in found:
                    raise NotFound(f"no customer {cid}")
                if found[cid]["merged_into"] is not None:
                    raise MergeError(f"customer {cid} was already merged")
            await conn.execute(
                "INSERT INTO customer_identities (customer_id, kind, value, created_at)"
                " SELECT $1, kind, value, created_at FROM customer_identities"
                " WHERE customer_id = $2 ON CONFLICT DO NOTHING",
                keep_id,
                absorb_id,
            )
            await conn.execute("DELETE FROM customer_identities WHERE customer_id = $1", absorb_id)
            await conn.execute(
                "INSERT INTO external_links (customer_id, system, external_id)"
                " SELECT $1, system, external_id FROM external_links WHERE customer_id = $2"
                " ON CONFLICT DO NOTHING",
                keep_id,
                absorb_id,
            )
            await conn.execute("DELETE FROM external_links WHERE customer_id = $1", absorb_id)
            # Both timelines are kept: interactions move, remembering whose they were.
            await conn.execute(
                "UPDATE interactions SET customer_id = $1,"
                " original_customer_id = COALESCE(original_customer_id, customer_id)"
                " WHERE customer_id = $2",
                keep_id,
                absorb_id,
            )
            await conn.execute(
                "UPDATE tickets SET customer_id = $1 WHERE customer_id = $2", keep_id, absorb_id
            )
            await conn.execute(
                "UPDATE customers SET merged_into = $1, merged_at = now() WHERE id = $2",
                keep_id,
                absorb_id,
            )
        return _customer(found[keep_id])


_INTERACTION_COLS = (
    "id, customer_id, original_customer_id, channel, direction, identity_kind, identity_value,"
    " linkedid, agent_id, queue, intent, outcome, summary, transcript, wait_s, talk_s,"
    " started_at, ended_at, pop_pushed_at, pop_acked_at, ring_at, ticket_id, record_key,"
    " survey_score, intent_confidence, intent_reasons"
)


def _interaction(row: asyncpg.Record) -> Interaction:
    identity = (
        Identity(IdentityKind(row["identity_kind"]), row["identity_value"])
        if row["identity_kind"]
        else None
    )
    return Interaction(
        id=row["id"],
        customer_id=row["customer_id"],
        channel=ChannelKind(row["channel"]),
        direction=Direction(row["direction"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        identity=identity,
        linkedid=row["linkedid"],
        agent_id=row["agent_id"],
        queue=row["queue"],
        intent=row["intent"],
        outcome=row["outcome"],
        summary=row["summary"],
        transcript=row["transcript"],
        wait_s=row["wait_s"],
        talk_s=row["talk_s"],
        pop_pushed_at=row["pop_pushed_at"],
        pop_acked_at=row["pop_acked_at"],
        ring_at=row["ring_at"],
        ticket_id=row["ticket_id"],
        original_customer_id=row["original_customer_id"],
        record_key=row["record_key"],
        survey_score=row["survey_score"],
        intent_confidence=row["intent_confidence"],
        intent_reasons=tuple(row["intent_reasons"]),
    )


class PgTimelineStore:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(self, interaction: Interaction) -> Interaction:
        """Insert; with a `record_key` already stored (a retry), return the stored row instead."""
        i = interaction
        row = await self._pool.fetchrow(
            "INSERT INTO interactions (customer_id, original_customer_id, channel, direction,"
            " identity_kind, identity_value, linkedid, agent_id, queue, intent, outcome,"
            " summary, transcript, wait_s, talk_s, started_at, ended_at, pop_pushed_at,"
            " pop_acked_at, ring_at, ticket_id, record_key, survey_score, intent_confidence,"
            " intent_reasons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
            " $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
            f" ON CONFLICT (record_key) DO NOTHING RETURNING {_INTERACTION_COLS}",
            i.customer_id,
            i.original_customer_id,
            str(i.channel),
            str(i.direction),
            str(i.identity.kind) if i.identity else None,
            i.identity.value if i.identity else None,
            i.linkedid,
            i.agent_id,
            i.queue,
            i.intent,
            i.outcome,
            i.summary,
            i.transcript,
            i.wait_s,
            i.talk_s,
            i.started_at,
            i.ended_at,
            i.pop_pushed_at,
            i.pop_acked_at,
            i.ring_at,
            i.ticket_id,
            i.record_key,
            i.survey_score,
            i.intent_confidence,
            list(i.intent_reasons),
        )
        if row is None:  # the key was stored by an earlier attempt of this same record
            row = await self._pool.fetchrow(
                f"SELECT {_INTERACTION_COLS} FROM interactions WHERE record_key = $1",
                i.record_key,
            )
        assert row is not None
        return _interaction(row)

    async def recent(self, customer_id: int, limit: int) -> list[Interaction]:
        rows = await self._pool.fetch(
            f"SELECT {_INTERACTION_COLS} FROM interactions WHERE customer_id = $1"
            " ORDER BY started_at DESC, id DESC LIMIT $2",
            customer_id,
            limit,
        )
        return [_interaction(r) for r in rows]

    async def by_linkedid(self, linkedid: str) -> list[Interaction]:
        rows = await self._pool.fetch(
            f"SELECT {_INTERACTION_COLS} FROM interactions WHERE linkedid = $1 ORDER BY id",
            linkedid,
        )
        return [_interaction(r) for r in rows]

    async def record_pop_delivery(
        self,
        *,
        linkedid: str,
        pushed_at: datetime | None,
        acked_at: datetime | None,
        ring_at: datetime | None,
    ) -> bool:
        status = await self._pool.execute(
            "UPDATE interactions SET pop_pushed_at = COALESCE($2, pop_pushed_at),"
            " pop_acked_at = COALESCE($3, pop_acked_at), ring_at = COALESCE($4, ring_at)"
            " WHERE linkedid = $1 AND channel = 'voice'",
            linkedid,
            pushed_at,
            acked_at,
            ring_at,
        )
        return status != "UPDATE 0"


_TICKET_COLS = "id, customer_id, title, pipeline, phase, opened_at, updated_at, closed_at"
_ACTIVITY_COLS = "ticket_id, phase, from_phase, opened_at, closed_at, out_of_order, actor, reason"


def _ticket(row: asyncpg.Record) -> Ticket:
    return Ticket(
        id=row["id"],
        customer_id=row["customer_id"],
        title=row["title"],
        pipeline=row["pipeline"],
        phase=row["phase"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
    )


def _activity(row: asyncpg.Record) -> PhaseActivity:
    return PhaseActivity(
        ticket_id=row["ticket_id"],
        phase=row["phase"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        from_phase=row["from_phase"],
        out_of_order=row["out_of_order"],
        actor=row["actor"],
        reason=row["reason"],
    )


class PgTicketStore:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, ticket: Ticket, first: PhaseActivity) -> Ticket:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO tickets (customer_id, title, pipeline, phase, opened_at,"
                f" updated_at, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                f" RETURNING {_TICKET_COLS}",
                ticket.customer_id,
                ticket.title,
                ticket.pipeline,
                ticket.phase,
                ticket.opened_at,
                ticket.updated_at,
                ticket.closed_at,
            )
            assert row is not None
            await self._insert_activity(conn, row["id"], first)
        return _ticket(row)

    @staticmethod
    async def _insert_activity(
        conn: PoolConnectionProxy[asyncpg.Record], ticket_id: int, activity: PhaseActivity
    ) -> None:
        await conn.execute(
            f"INSERT INTO ticket_phase_history ({_ACTIVITY_COLS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            ticket_id,
            activity.phase,
            activity.from_phase,
            activity.opened_at,
            activity.closed_at,
            activity.out_of_order,
            activity.actor,
            activity.reason,
        )

    async def get(self, ticket_id: int) -> Ticket:
        row = await self._pool.fetchrow(
            f"SELECT {_TICKET_COLS} FROM tickets WHERE id = $1", ticket_id
        )
        if row is None:
            raise NotFound(f"no ticket {ticket_id}")
        return _ticket(row)

    async def open_for_customer(self, customer_id: int) -> list[Ticket]:
        rows = await self._pool.fetch(
            f"SELECT {_TICKET_COLS} FROM tickets WHERE customer_id = $1 AND closed_at IS NULL"
            " ORDER BY updated_at DESC, id DESC",
            customer_id,
        )
        return [_ticket(r) for r in rows]

    async def apply_move(self, move: TicketMove) -> None:
        t = move.ticket
        async with self._pool.acquire() as conn, conn.transaction():
            # Optimistic check: the ticket must still be in the phase the move was planned from.
            status = await conn.execute(
                "UPDATE ticket_phase_history SET closed_at = $3"
                " WHERE ticket_id = $1 AND phase = $2 AND closed_at IS NULL",
                t.id,
                move.closed.phase,
                move.closed.closed_at,
            )
            if status != "UPDATE 1":
                raise IllegalMove(f"ticket {t.id} is no longer in {move.closed.phase!r}")
            await conn.execute(
                "UPDATE tickets SET phase = $2, updated_at = $3, closed_at = $4 WHERE id = $1",
                t.id,
                t.phase,
                t.updated_at,
                t.closed_at,
            )
            await self._insert_activity(conn, t.id, move.opened)

    async def history(self, ticket_id: int) -> list[PhaseActivity]:
        rows = await self._pool.fetch(
            f"SELECT {_ACTIVITY_COLS} FROM ticket_phase_history WHERE ticket_id = $1 ORDER BY id",
            ticket_id,
        )
        return [_activity(r) for r in rows]
