"""Routing WhatsApp, SMS, email and chat conversations to agents through the ACD.

After a message is stored (the provider already has its 2xx), a new conversation is opened
for its contact and queued as ACD work on the channel's own capacity (`contact.messaging`);
further messages of the same contact on the same channel join the open conversation instead
of queueing again. The owners of the customer's open tickets are its preferred agents (the
queue's first step offers it to them only, later steps relax, as for calls). When the ACD
reserves an agent, the conversation is theirs at once (there is no phone to ring): accepted,
connected, recorded and announced to their desktop. The agent closes it, which frees the
capacity. The waits are tasks this object owns; closing it cancels
them (the items stay queued in Redis, where the ACD keeps them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import asyncpg
import orjson

from acd.models import Offer
from acd.service import Router
from contact.messaging import conversation_item, needs_an_agent, tickets_answered
from context.errors import IllegalMove
from context.messages import InboundMessage, StoredMessage
from context.models import ChannelKind
from context.service import ContextService

log = logging.getLogger(__name__)

# How long one wait for an offer lasts before it is simply started again (the item stays
# queued meanwhile): short enough that shutdown is never held up by it.
OFFER_POLL_S = 5.0

# A push to the agent's desktops that takes longer is abandoned (the desktop polls as well).
NOTIFY_TIMEOUT_S = 2.0

Notify = Callable[[str, Mapping[str, Any]], Awaitable[object]]


class ConversationView(TypedDict):
    """An agent's open conversation as the desktop shows it (GET /api/conversations)."""

    id: int
    channel: str
    contact: str
    customer_id: int | None
    customer: str | None
    opened_at: str
    # {"direction", "text", "time", "provider_message_id", "delivery_state"}, oldest first
    messages: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ConversationRoute:
    queue: str
    skill: str | None
    min_level: int = 1


class ConversationRouter:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        router: Router,
        route: ConversationRoute,
        now: Callable[[], float],
        agents: Collection[str] = (),
        notify: Notify | None = None,
        context: ContextService | None = None,
    ) -> None:
        self._pool = pool
        self._agents = frozenset(agents)  # ticket owners who are agents (others are ignored)
        self._context = context
        self._router = router
        self._route = route
        self._now = now
        self._notify = notify
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def notice(self, message: InboundMessage, stored: StoredMessage) -> None:
        """Called by the inbox for every stored message; routing happens in the background."""
        if self.closed or not needs_an_agent(message, stored):
            return
        task = asyncio.create_task(self._handle(message, stored), name="conversation-route")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: InboundMessage, stored: StoredMessage) -> None:
        try:
            conversation_id, opened = await self._attach(message, stored)
            await self._answer_tickets(message, stored)
            if opened:
                owners = await self._ticket_owners(stored.customer_id)
                await self._queue(conversation_id, message.channel, owners)
        except asyncio.CancelledError:
            raise
        except Exception:  # one message's routing failing must not stop the others
            log.exception("routing message %s failed", message.provider_message_id)

    async def _attach(self, message: InboundMessage, stored: StoredMessage) -> tuple[int, bool]:
        """The open conversation of this contact on this channel (opened if none); True when
        opened now."""
        contact = message.sender.strip().lower()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO conversations (channel, contact, customer_id, queue, state)"
                " VALUES ($1, $2, $3, $4, 'queued')"
                " ON CONFLICT (channel, contact) WHERE state <> 'closed' DO NOTHING"
                " RETURNING id",
                str(message.channel),
                contact,
                stored.customer_id,
                self._route.queue,
            )
            opened = row is not None
            if row is None:
                row = await conn.fetchrow(
                    "SELECT id FROM conversations"
                    " WHERE channel = $1 AND contact = $2 AND state <> 'closed'",
                    str(message.channel),
                    contact,
                )
            assert row is not None
            await conn.execute(
                "UPDATE messages SET conversation_id = $1 WHERE id = $2",
                row["id"],
                stored.message_id,
            )
        return int(row["id"]), opened

    async def _answer_tickets(self, message: InboundMessage, stored: StoredMessage) -> None:
        """The customer wrote: their tickets waiting on them move on (contact.messaging)."""
        if self._context is None or stored.customer_id is None:
            return
        tickets = await self._context.tickets.open_for_customer(stored.customer_id)
        for ticket_id, phase in tickets_answered(tickets):
            # Moved by someone else meanwhile (IllegalMove): their move stands.
            with contextlib.suppress(IllegalMove):
                await self._context.move_ticket(
                    ticket_id,
                    phase,
                    actor=f"customer:{message.channel}",
                    reason="the customer wrote",
                )

    async def _ticket_owners(self, customer_id: int | None) -> tuple[str, ...]:
        """The owners of the customer's open tickets, most recently moved first: the
        conversation is offered to them first (the queue's first step), then relaxes."""
        if customer_id is None:
            return ()
        rows = await self._pool.fetch(
            "SELECT owner FROM tickets WHERE customer_id = $1 AND closed_at IS NULL"
            " AND owner <> '' ORDER BY updated_at DESC",
            customer_id,
        )
        return tuple(dict.fromkeys(r["owner"] for r in rows if r["owner"] in self._agents))

    async def _queue(
        self, conversation_id: int, channel: ChannelKind, preferred: tuple[str, ...]
    ) -> None:
        item = conversation_item(
            conversation_id,
            channel,
            queue=self._route.queue,
            skill=self._route.skill,
            min_level=self._route.min_level,
            now=self._now(),
            preferred_agents=preferred,
        )
        ticket = await self._router.enqueue(item)
        if ticket.position == 0:
            log.warning(
                "conversation %d not queued (%s): waits for an agent to log in",
                conversation_id,
                ticket.action.kind,
            )
            return
        while not self.closed:
            outcome = await self._router.wait_for_offer(item.item_id, OFFER_POLL_S)
            if isinstance(outcome, Offer):
                await self._assign(conversation_id, outcome)
                return
            if outcome is not None:  # an action instead of an agent (max wait, overflow...)
                log.warning("conversation %d left the queue: %s", conversation_id, outcome)
                return

    async def _assign(self, conversation_id: int, offer: Offer) -> None:
        reservation = await self._router.accept(offer.reservation.reservation_id)
        await self._router.connected(reservation.reservation_id)
        await self._pool.execute(
            "UPDATE conversations SET state = 'assigned', agent_id = $2, assigned_at = now()"
            " WHERE id = $1",
            conversation_id,
            reservation.agent_id,
        )
        log.info("conversation %d assigned to %s", conversation_id, reservation.agent_id)
        if self._notify is not None:
            payload = {"conversation_id": conversation_id, "channel": str(reservation.channel)}
            try:
                # The desktop polls its conversations anyway: a slow push must not hold this.
                async with asyncio.timeout(NOTIFY_TIMEOUT_S):
                    await self._notify(reservation.agent_id, payload)
            except TimeoutError:
                log.warning("conversation %d: the desktop push timed out", conversation_id)

    async def close_conversation(self, conversation_id: int, *, agent_id: str) -> bool:
        """The agent is done: the conversation closes and the agent's capacity is freed.
        False if it is not this agent's open conversation."""
        closed = await self._pool.fetchval(
            "UPDATE conversations SET state = 'closed', closed_at = now()"
            " WHERE id = $1 AND agent_id = $2 AND state = 'assigned' RETURNING id",
            conversation_id,
            agent_id,
        )
        if closed is None:
            return False
        await self._router.completed(f"conv-{conversation_id}", wrap_up_s=0)
        return True

    async def holders(self, channel: str, contact: str) -> set[str]:
        return await conversation_holders(self._pool, channel, contact)

    async def aclose(self) -> None:
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def of_agent(self, agent_id: str, *, messages: int = 20) -> list[ConversationView]:
        """The agent's open conversations with their latest messages (theirs and the replies
        sent to the contact since it opened, with their delivery state), oldest first."""
        rows = await self._pool.fetch(
            "SELECT c.id, c.channel, c.contact, c.customer_id, c.opened_at, cu.display_name,"
            " coalesce(("
            "  SELECT json_agg(json_build_object('direction', m.direction, 'text', m.body,"
            "   'time', m.received_at, 'provider_message_id', m.provider_message_id,"
            "   'delivery_state', m.delivery_state) ORDER BY m.id)"
            "  FROM (SELECT * FROM messages m WHERE m.conversation_id = c.id"
            "   OR (m.direction = 'outbound' AND m.channel = c.channel AND m.recipient = c.contact"
            "       AND m.received_at >= c.opened_at)"
            "   ORDER BY m.id DESC LIMIT $2) m), '[]') AS messages"
            " FROM conversations c LEFT JOIN customers cu ON cu.id = c.customer_id"
            " WHERE c.agent_id = $1 AND c.state = 'assigned' ORDER BY c.assigned_at, c.id",
            agent_id,
            messages,
        )
        return [
            {
                "id": r["id"],
                "channel": r["channel"],
                "contact": r["contact"],
                "customer_id": r["customer_id"],
                "customer": r["display_name"],
                "opened_at": r["opened_at"].isoformat(),
                "messages": orjson.loads(r["messages"]),
            }
            for r in rows
        ]


async def conversation_holders(pool: asyncpg.Pool, channel: str, contact: str) -> set[str]:
    """The agents holding an open conversation with this contact on this channel."""
    rows = await pool.fetch(
        "SELECT agent_id FROM conversations WHERE channel = $1 AND contact = $2"
        " AND state = 'assigned' AND agent_id IS NOT NULL",
        channel,
        contact,
    )
    return {str(r["agent_id"]) for r in rows}
