"""asyncpg implementation of `context.messages.MessageStore` (storage/migrations/0007).

An inbound message costs one round trip: `centralino_store_inbound_message()` stores it,
resolves its sender and appends its interaction inside the database, so a webhook's answer
waits for one statement, not seven. A webhook carrying several messages or statuses stores
them all in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from context.messages import (
    DeliveryState,
    MessageBatch,
    OutboundMessage,
    Sender,
    StatusUpdate,
    StoredMessage,
    TimelineItem,
    fold_states,
    states_before,
)
from context.models import ChannelKind, Direction, ResolutionStatus
from context.outbound import ReplyRecord, ReplyRequest, ReplyState

# A webhook must answer (or fail, so the provider retries) in seconds: a pool exhausted or a
# database gone for longer than this is a 503, not a request left hanging.
ACQUIRE_TIMEOUT_S = 5.0

_STORE_INBOUND = (
    "SELECT o_message_id, o_duplicate, o_resolution, o_customer_id, o_candidates, o_thread_id"
    " FROM centralino_store_inbound_message($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9,"
    " $10::text[], $11::text[], $12, $13, $14, $15, $16::text[])"
)
# The event is kept once per (message, state); the message moves only forward (the states a
# callback may follow are computed by context.messages and passed in).
_APPLY_STATUS = (
    "WITH event AS ("
    " INSERT INTO message_status_events"
    " (channel, provider_message_id, state, provider_time, error, raw)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
    " ON CONFLICT ON CONSTRAINT message_status_events_once DO NOTHING)"
    " UPDATE messages SET delivery_state = $3, delivery_updated_at = now(),"
    " delivery_error = CASE WHEN $5 = '' THEN delivery_error ELSE $5 END"
    " WHERE channel = $1 AND provider_message_id = $2 AND direction = 'outbound'"
    " AND (delivery_state IS NULL OR delivery_state = ANY($7::text[]))"
)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class PgMessageStore:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store_batch(
        self, batch: MessageBatch, senders: Sequence[Sender]
    ) -> list[StoredMessage]:
        if len(senders) != len(batch.messages):
            raise ValueError("one sender per message")
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            single = len(batch.messages) + len(batch.statuses) == 1
            if single and not any(m.attachments for m in batch.messages):
                # One statement is its own transaction: no BEGIN/COMMIT round trips.
                return await self._store(conn, batch, senders)
            async with conn.transaction():
                return await self._store(conn, batch, senders)

    async def _store(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        batch: MessageBatch,
        senders: Sequence[Sender],
    ) -> list[StoredMessage]:
        stored = []
        for message, sender in zip(batch.messages, senders, strict=True):
            identity = sender.identity
            row = await conn.fetchrow(
                _STORE_INBOUND,
                str(message.channel),
                message.provider_message_id,
                message.sender,
                message.recipient,
                message.text,
                message.provider_time,
                _json(message.raw),
                str(identity.kind) if identity else "",
                identity.value if identity else "",
                [str(i.kind) for i in sender.lookup],
                [i.value for i in sender.lookup],
                sender.lock_key,
                sender.display_name,
                str(message.kind),
                sender.create_if_unknown,
                list(message.references),
            )
            assert row is not None
            if message.attachments and not row["o_duplicate"]:
                await conn.executemany(
                    "INSERT INTO message_attachments"
                    " (message_id, filename, content_type, size_bytes, content)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    [
                        (row["o_message_id"], a.filename, a.content_type, len(a.content), a.content)
                        for a in message.attachments
                    ],
                )
            stored.append(
                StoredMessage(
                    message_id=row["o_message_id"],
                    duplicate=row["o_duplicate"],
                    resolution=ResolutionStatus(row["o_resolution"]),
                    customer_id=row["o_customer_id"],
                    candidates=tuple(row["o_candidates"] or ()),
                    thread_id=row["o_thread_id"],
                )
            )
        for status in batch.statuses:
            await self._apply_status(conn, status)
        return stored

    @staticmethod
    async def _apply_status(
        conn: PoolConnectionProxy[asyncpg.Record], status: StatusUpdate
    ) -> None:
        await conn.execute(
            _APPLY_STATUS,
            str(status.channel),
            status.provider_message_id,
            str(status.state),
            status.provider_time,
            status.error,
            _json(status.raw),
            [str(s) for s in states_before(status.state)],
        )

    async def record_outbound(self, message: OutboundMessage) -> int:
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            return await self.record_outbound_in(conn, message)

    @staticmethod
    async def record_outbound_in(
        conn: PoolConnectionProxy[asyncpg.Record], message: OutboundMessage
    ) -> int:
        """`record_outbound` inside the caller's transaction."""
        m = message
        existing = await conn.fetchval(
            "SELECT id FROM messages WHERE channel = $1 AND provider_message_id = $2",
            str(m.channel),
            m.provider_message_id,
        )
        if existing is not None:
            return int(existing)
        interaction_id = await conn.fetchval(
            "INSERT INTO interactions (customer_id, channel, direction, summary, started_at,"
            " ended_at, record_key) VALUES ($1, $2, 'outbound', $3, $4, $4, $5) RETURNING id",
            m.customer_id,
            str(m.channel),
            m.text,
            m.sent_at,
            f"message:{m.channel}:{m.provider_message_id}",
        )
        seen = await conn.fetch(
            "SELECT state FROM message_status_events"
            " WHERE channel = $1 AND provider_message_id = $2",
            str(m.channel),
            m.provider_message_id,
        )
        state = fold_states([DeliveryState(r["state"]) for r in seen])
        message_id = await conn.fetchval(
            "INSERT INTO messages (channel, direction, provider_message_id, sender, recipient,"
            " body, provider_time, raw, interaction_id, delivery_state, delivery_updated_at)"
            " VALUES ($1, 'outbound', $2, $3, $4, $5, $6, $7::jsonb, $8, $9, now())"
            " RETURNING id",
            str(m.channel),
            m.provider_message_id,
            m.sender,
            m.recipient,
            m.text,
            m.sent_at,
            _json(m.raw),
            interaction_id,
            str(state or DeliveryState.QUEUED),
        )
        return int(message_id)

    async def delivery_state(
        self, channel: ChannelKind, provider_message_id: str
    ) -> DeliveryState | None:
        value = await self._pool.fetchval(
            "SELECT delivery_state FROM messages WHERE channel = $1 AND provider_message_id = $2",
            str(channel),
            provider_message_id,
        )
        return None if value is None else DeliveryState(value)

    async def timeline(self, customer_id: int, limit: int) -> list[TimelineItem]:
        rows = await self._pool.fetch(
            "SELECT i.id, i.channel, i.direction, i.started_at, i.summary, i.linkedid,"
            " m.provider_message_id, m.delivery_state"
            " FROM interactions i LEFT JOIN messages m ON m.interaction_id = i.id"
            " WHERE i.customer_id = $1 ORDER BY i.started_at DESC, i.id DESC LIMIT $2",
            customer_id,
            limit,
        )
        return [
            TimelineItem(
                interaction_id=r["id"],
                channel=ChannelKind(r["channel"]),
                direction=Direction(r["direction"]),
                time=r["started_at"],
                text=r["summary"],
                provider_message_id=r["provider_message_id"],
                linkedid=r["linkedid"],
                delivery_state=(
                    DeliveryState(r["delivery_state"]) if r["delivery_state"] else None
                ),
            )
            for r in rows
        ]


def _reply_record(row: asyncpg.Record) -> ReplyRecord:
    return ReplyRecord(
        request=ReplyRequest(
            idempotency_key=row["idempotency_key"],
            channel=ChannelKind(row["channel"]),
            recipient=row["recipient"],
            text=row["body"],
            customer_id=row["customer_id"],
        ),
        state=ReplyState(row["state"]),
        attempts=row["attempts"],
        provider_message_id=row["provider_message_id"],
        last_error=row["last_error"],
    )


class PgOutboxStore:
    """`context.outbound.OutboxStore`: replies by idempotency key (storage/migrations/0007)."""

    def __init__(self, *, pool: asyncpg.Pool, messages: PgMessageStore) -> None:
        self._pool = pool
        self._messages = messages

    async def claim(self, request: ReplyRequest, *, stale_after_s: float) -> ReplyRecord | None:
        r = request
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO outbound_requests (idempotency_key, channel, customer_id, recipient,"
                " body, state) VALUES ($1, $2, $3, $4, $5, 'sending')"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING true",
                r.idempotency_key,
                str(r.channel),
                r.customer_id,
                r.recipient,
                r.text,
            )
            if inserted:
                return None
            # A claim left by a process that died mid-send is taken over.
            taken = await conn.fetchval(
                "UPDATE outbound_requests SET updated_at = now()"
                " WHERE idempotency_key = $1 AND state = 'sending'"
                " AND updated_at < now() - make_interval(secs => $2) RETURNING true",
                r.idempotency_key,
                stale_after_s,
            )
            if taken:
                return None
            row = await conn.fetchrow(
                "SELECT * FROM outbound_requests WHERE idempotency_key = $1", r.idempotency_key
            )
        assert row is not None
        return _reply_record(row)

    async def accept(self, request: ReplyRequest, message: OutboundMessage, attempts: int) -> None:
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await self._messages.record_outbound_in(conn, message)
            await conn.execute(
                "UPDATE outbound_requests SET state = 'accepted', provider_message_id = $2,"
                " attempts = $3, updated_at = now() WHERE idempotency_key = $1",
                request.idempotency_key,
                message.provider_message_id,
                attempts,
            )

    async def fail(self, request: ReplyRequest, error: str, attempts: int) -> None:
        await self._pool.execute(
            "UPDATE outbound_requests SET state = 'failed', last_error = $2, attempts = $3,"
            " updated_at = now() WHERE idempotency_key = $1",
            request.idempotency_key,
            error[:500],
            attempts,
        )
