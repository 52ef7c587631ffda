"""Written conversations routed by the real ACD (Redis live store, PostgreSQL queue log):
opened by a contact's first message, joined by the next ones, assigned within each agent's
chat/email capacity, closed by the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from acd.models import AgentDefinition, Capacity, QueuePolicy
from acd.service import Router
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_messages import PgMessageStore
from centralino.adapters.pg_queue_log import PgQueueLog
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.conversations import ConversationRoute, ConversationRouter
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox
from context.messages import InboundMessage, MessageBatch, MessageKind
from context.models import ChannelKind, Identity, IdentityKind
from context.service import ContextService
from tests.acd.support import ManualClock
from tests.context.fakes import FakeClock
from tests.helpers import eventually

QUEUES = {"support": QueuePolicy("support", skill="support")}
AGENTS = {
    # One chat at a time for amy, so a second contact has to wait for her.
    "amy": AgentDefinition("amy", {"support": 4}, capacity=Capacity(voice=1, chat=1, email=1)),
}


@dataclass
class Floor:
    router: Router
    conversations: ConversationRouter
    inbox: MessageInbox
    pool: asyncpg.Pool
    notified: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    async def write(
        self, msg_id: str, sender: str, *, kind: MessageKind = MessageKind.MESSAGE
    ) -> None:
        message = InboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=msg_id,
            sender=sender,
            recipient="15550001111",
            text="ciao",
            provider_time=datetime(2026, 12, 8, 10, 0, tzinfo=UTC),
            raw={},
            kind=kind,
        )
        await self.inbox.receive(MessageBatch(messages=(message,)))

    async def conversations_now(self) -> list[tuple[str, str, str | None]]:
        rows = await self.pool.fetch(
            "SELECT contact, state, agent_id FROM conversations ORDER BY id"
        )
        return [(r["contact"], r["state"], r["agent_id"]) for r in rows]


@pytest.fixture
async def floor(redis_client: aioredis.Redis, pg_pool: asyncpg.Pool) -> AsyncIterator[Floor]:
    clock = ManualClock()
    live = RedisLiveStore(client=redis_client, prefix="conv:")
    await live.load_scripts()
    router = Router(
        store=live,
        queue_log=PgQueueLog(pool=pg_pool),
        clock=clock,
        queues=QUEUES,
        agents=AGENTS,
        owner="p1",
    )
    await router.start()
    notified: list[tuple[str, Mapping[str, Any]]] = []

    async def notify(agent_id: str, payload: Mapping[str, Any]) -> None:
        notified.append((agent_id, payload))

    conversations = ConversationRouter(
        pool=pg_pool,
        router=router,
        route=ConversationRoute("support", "support", 2),
        now=clock.now,
        notify=notify,
    )
    inbox = MessageInbox(
        store=PgMessageStore(pool=pg_pool), phones=PhoneNormaliser(), on_stored=conversations.notice
    )
    await router.agent_login("amy")
    await router.agent_ready("amy")
    try:
        yield Floor(router, conversations, inbox, pg_pool, notified)
    finally:
        await conversations.aclose()
        await router.aclose()


async def test_a_first_message_opens_a_conversation_assigned_to_an_agent(floor: Floor) -> None:
    await floor.write("wamid.1", "393331234567")

    async def assigned() -> None:
        assert await floor.conversations_now() == [("393331234567", "assigned", "amy")]

    await eventually(assigned)
    assert floor.notified and floor.notified[0][0] == "amy"
    # The next message of the same contact joins it; nothing new is queued.
    await floor.write("wamid.2", "393331234567")
    await eventually(
        lambda: _linked(floor.pool, expected=2)  # both messages in the one conversation
    )
    assert len(await floor.conversations_now()) == 1


async def _linked(pool: asyncpg.Pool, *, expected: int) -> None:
    n = await pool.fetchval(
        "SELECT count(DISTINCT id) FROM messages WHERE conversation_id IS NOT NULL"
    )
    assert n == expected
    assert await pool.fetchval("SELECT count(DISTINCT conversation_id) FROM messages") == 1


async def test_chat_capacity_holds_the_second_contact_until_the_first_is_closed(
    floor: Floor,
) -> None:
    await floor.write("wamid.A", "393331111111")

    async def first_assigned() -> None:
        assert [s for _, s, _ in await floor.conversations_now()] == ["assigned"]

    await eventually(first_assigned)
    await floor.write("wamid.B", "393332222222")

    async def second_waits() -> None:
        assert [s for _, s, _ in await floor.conversations_now()] == ["assigned", "queued"]

    await eventually(second_waits)
    first_id = await floor.pool.fetchval("SELECT min(id) FROM conversations")
    assert not await floor.conversations.close_conversation(first_id, agent_id="bob")
    assert await floor.conversations.close_conversation(first_id, agent_id="amy")

    async def second_assigned() -> None:
        assert await floor.conversations_now() == [
            ("393331111111", "closed", "amy"),
            ("393332222222", "assigned", "amy"),
        ]

    await eventually(second_assigned)


async def test_automated_mail_and_retries_open_no_conversation(floor: Floor) -> None:
    await floor.write("wamid.X", "393333333333", kind=MessageKind.AUTO_REPLY)
    await floor.write("wamid.Y", "393334444444")
    await floor.write("wamid.Y", "393334444444")  # the provider's retry

    async def one() -> None:
        assert [c for c, _, _ in await floor.conversations_now()] == ["393334444444"]

    await eventually(one)


async def test_the_owner_of_the_customers_open_ticket_gets_it_first(
    redis_client: aioredis.Redis, pg_pool: asyncpg.Pool
) -> None:
    agents = {
        "amy": AgentDefinition("amy", {"support": 5}),
        "bob": AgentDefinition("bob", {"support": 2}),
    }
    clock = ManualClock()
    live = RedisLiveStore(client=redis_client, prefix="own:")
    await live.load_scripts()
    router = Router(
        store=live,
        queue_log=PgQueueLog(pool=pg_pool),
        clock=clock,
        queues=QUEUES,
        agents=agents,
        owner="p1",
    )
    await router.start()
    conversations = ConversationRouter(
        pool=pg_pool,
        router=router,
        route=ConversationRoute("support", "support", 1),
        now=clock.now,
        agents=router.agent_ids,
    )
    inbox = MessageInbox(
        store=PgMessageStore(pool=pg_pool), phones=PhoneNormaliser(), on_stored=conversations.notice
    )
    floor = Floor(router, conversations, inbox, pg_pool)
    try:
        for agent in agents:
            await router.agent_login(agent)
            await router.agent_ready(agent)
        customer = await pg_pool.fetchval(
            "INSERT INTO customers (display_name) VALUES ('Mario') RETURNING id"
        )
        await pg_pool.execute(
            "INSERT INTO customer_identities (customer_id, kind, value)"
            " VALUES ($1, 'whatsapp', '393335555555')",
            customer,
        )
        # Bob owns Mario's open ticket: longest-idle amy would get it otherwise.
        await pg_pool.execute(
            "INSERT INTO tickets (customer_id, title, pipeline, phase, opened_at, updated_at,"
            " owner) VALUES ($1, 'refund', 'default', 'in_progress', now(), now(), 'bob')",
            customer,
        )
        await floor.write("wamid.O", "393335555555")

        async def to_bob() -> None:
            assert await floor.conversations_now() == [("393335555555", "assigned", "bob")]

        await eventually(to_bob)
    finally:
        await conversations.aclose()
        await router.aclose()


async def test_a_customer_writing_moves_their_waiting_ticket_back_in_progress(
    redis_client: aioredis.Redis, pg_pool: asyncpg.Pool
) -> None:
    clock = ManualClock()
    live = RedisLiveStore(client=redis_client, prefix="ans:")
    await live.load_scripts()
    router = Router(
        store=live,
        queue_log=PgQueueLog(pool=pg_pool),
        clock=clock,
        queues=QUEUES,
        agents=AGENTS,
        owner="p1",
    )
    await router.start()
    context = ContextService(
        customers=PgCustomerStore(pool=pg_pool),
        timeline=PgTimelineStore(pool=pg_pool),
        tickets=PgTicketStore(pool=pg_pool),
        clock=FakeClock(),
    )
    conversations = ConversationRouter(
        pool=pg_pool,
        router=router,
        route=ConversationRoute("support", "support", 1),
        now=clock.now,
        context=context,
    )
    inbox = MessageInbox(
        store=PgMessageStore(pool=pg_pool), phones=PhoneNormaliser(), on_stored=conversations.notice
    )
    try:
        mario = await context.customers.create(
            display_name="Mario", identities=[Identity(IdentityKind.WHATSAPP, "393336666666")]
        )
        waiting = await context.open_ticket(customer_id=mario.id, title="refund", actor="sup")
        for phase in ("triage", "in_progress", "waiting_customer"):
            await context.move_ticket(waiting.id, phase, actor="amy")
        untouched = await context.open_ticket(customer_id=mario.id, title="other", actor="sup")
        await Floor(router, conversations, inbox, pg_pool).write("wamid.W", "393336666666")

        async def answered() -> None:
            assert (await context.tickets.get(waiting.id)).phase == "in_progress"

        await eventually(answered)
        last = (await context.tickets.history(waiting.id))[-1]
        assert (last.actor, last.reason, last.out_of_order) == (
            "customer:whatsapp",
            "the customer wrote",
            False,
        )
        assert (await context.tickets.get(untouched.id)).phase == "new"
    finally:
        await conversations.aclose()
        await router.aclose()
