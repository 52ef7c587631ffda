"""Replies end to end: POST /api/messages → the providers' send APIs (the demo's, speaking
their request formats over HTTP) → signed status callbacks back into our webhooks → the
delivery state on the message, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from centralino.access.models import Role
from centralino.adapters.messaging_providers import TwilioSender, WhatsAppCloudSender
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_messages import PgMessageStore, PgOutboxStore
from centralino.conversations import conversation_holders
from centralino.demo.providers import (
    DEMO_ACCOUNT_SID,
    DEMO_PHONE_NUMBER_ID,
    GRAPH_VERSION,
    DemoSendApis,
)
from centralino.storage.scratch_cluster import free_port
from centralino.web.auth import add_access
from centralino.web.replies_api import add_reply_api
from centralino.web.timeline_api import add_timeline_api
from centralino.web.webhooks import WebhookSecrets, add_webhooks
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox, TimelineReader
from context.messages import DeliveryState
from context.models import ChannelKind, Identity, IdentityKind
from context.outbound import MessageSender, ReplyService
from context.service import ContextService
from tests.context.fakes import FakeClock
from tests.helpers import eventually
from tests.web.auth_helpers import add_token_user, make_access

APP_SECRET = "wa-app-secret"
AUTH_TOKEN = "twilio-auth-token"
ACCESS_TOKEN = "graph-access-token"
API_TOKEN = "admin-api-token"  # an admin's: replies to anyone
ANN_TOKEN = "ann-api-token"  # agent a1 (team blue)
BEA_TOKEN = "bea-api-token"  # agent a2 (team green)
LEAD_TOKEN = "lead-api-token"  # supervisor of team blue
AGENT_TEAMS = {"a1": {"blue"}, "a2": {"green"}}
MARIO_WA = "393331234567"


@dataclass
class Loop:
    base_url: str
    session: aiohttp.ClientSession
    apis: DemoSendApis
    store: PgMessageStore

    async def reply(
        self, payload: dict[str, object], token: str | None = API_TOKEN
    ) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.post(
            f"{self.base_url}/api/messages", json=payload, headers=headers
        ) as resp:
            data = await resp.json() if resp.content_type == "application/json" else {}
            return resp.status, data


async def start_loop(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    *,
    configured: bool = True,
    access_token: str = ACCESS_TOKEN,
) -> AsyncIterator[Loop]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        apis = DemoSendApis(
            session=session,
            webhook_base_url=base_url,
            app_secret=APP_SECRET,
            access_token=ACCESS_TOKEN,
            auth_token=AUTH_TOKEN,
            rng=random.Random(3),
            callback_delay_s=0.01,
        )
        async with TestServer(apis.app(), host="127.0.0.1", port=0) as apis_server:
            apis_url = str(apis_server.make_url("")).rstrip("/")
            context = ContextService(
                customers=PgCustomerStore(pool=pool),
                timeline=PgTimelineStore(pool=pool),
                tickets=PgTicketStore(pool=pool),
                clock=FakeClock(),
            )
            store = PgMessageStore(pool=pool)

            def build(client: aiohttp.ClientSession) -> ReplyService:
                senders: dict[ChannelKind, MessageSender] = {}
                if configured:
                    senders[ChannelKind.WHATSAPP] = WhatsAppCloudSender(
                        session=client,
                        api_url=f"{apis_url}/{GRAPH_VERSION}",
                        phone_number_id=DEMO_PHONE_NUMBER_ID,
                        access_token=access_token,
                        display_number="15550001111",
                    )
                    senders[ChannelKind.SMS] = TwilioSender(
                        session=client,
                        api_url=apis_url,
                        account_sid=DEMO_ACCOUNT_SID,
                        auth_token=AUTH_TOKEN,
                        from_number="+390299999999",
                        status_callback_url=f"{base_url}/webhooks/twilio/sms",
                    )
                return ReplyService(
                    store=PgOutboxStore(pool=pool, messages=store),
                    senders=senders,
                    clock=context.clock,
                    phones=PhoneNormaliser(),
                    backoff_s=(0.01, 0.01, 0.01),
                )

            app = web.Application()
            access = make_access(pool, redis, agent_teams=AGENT_TEAMS)
            add_access(app, access)
            access.allow_local(port)
            for name, role, token, agent in [
                ("root", Role.ADMIN, API_TOKEN, None),
                ("ann", Role.AGENT, ANN_TOKEN, "a1"),
                ("bea", Role.AGENT, BEA_TOKEN, "a2"),
            ]:
                await add_token_user(access, name, role, token, agent_id=agent)
            await add_token_user(access, "lead", Role.SUPERVISOR, LEAD_TOKEN, teams={"blue"})
            add_webhooks(
                app,
                inbox=MessageInbox(store=store, phones=PhoneNormaliser()),
                secrets=WebhookSecrets(APP_SECRET, "verify", AUTH_TOKEN, base_url),
            )
            add_timeline_api(app, timeline=TimelineReader(context=context, store=store))

            async def holders(channel: str, contact: str) -> set[str]:
                return await conversation_holders(pool, channel, contact)

            add_reply_api(app, build=build, holders=holders)
            async with TestServer(app, host="127.0.0.1", port=port):
                yield Loop(base_url, session, apis, store)


@pytest.fixture
async def loop(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[Loop]:
    async for started in start_loop(pg_pool, redis_client):
        yield started


def whatsapp_reply(key: str = "key-1", **extra: object) -> dict[str, object]:
    return {
        "channel": "whatsapp",
        "to": MARIO_WA,
        "text": "La fattura è pagata.",
        "idempotency_key": key,
        **extra,
    }


async def test_a_whatsapp_reply_goes_out_and_follows_its_callbacks(
    loop: Loop, pg_pool: asyncpg.Pool
) -> None:
    mario = await PgCustomerStore(pool=pg_pool).create(
        display_name="Mario", identities=[Identity(IdentityKind.WHATSAPP, MARIO_WA)]
    )
    status, data = await loop.reply(whatsapp_reply(customer_id=mario.id))
    assert status == 200 and data["state"] == "accepted" and data["attempts"] == 1
    msg_id = str(data["provider_message_id"])
    assert msg_id.startswith("wamid.out")
    assert loop.apis.received == [("whatsapp", MARIO_WA, "La fattura è pagata.")]

    async def read() -> None:  # sent, delivered and read arrived in a shuffled order
        assert await loop.store.delivery_state(ChannelKind.WHATSAPP, msg_id) is DeliveryState.READ

    await eventually(read)
    (item,) = await loop.store.timeline(mario.id, 10)
    assert (item.direction, item.provider_message_id, item.delivery_state) == (
        "outbound",
        msg_id,
        DeliveryState.READ,
    )


async def test_an_sms_reply_is_followed_through_the_status_callback_url(loop: Loop) -> None:
    status, data = await loop.reply(
        {"channel": "sms", "to": "333 123 4567", "text": "Ok", "idempotency_key": "sms-1"}
    )
    assert status == 200, data
    assert loop.apis.received == [("sms", "+393331234567", "Ok")]
    sid = str(data["provider_message_id"])

    async def delivered() -> None:
        assert await loop.store.delivery_state(ChannelKind.SMS, sid) is DeliveryState.DELIVERED

    await eventually(delivered)


async def test_the_same_idempotency_key_sends_once(loop: Loop, pg_pool: asyncpg.Pool) -> None:
    first = await loop.reply(whatsapp_reply("dup"))
    again = await loop.reply(whatsapp_reply("dup"))
    assert first[0] == again[0] == 200
    assert first[1]["provider_message_id"] == again[1]["provider_message_id"]
    assert len(loop.apis.received) == 1
    racing = await asyncio.gather(*(loop.reply(whatsapp_reply("race")) for _ in range(4)))
    assert {s for s, _ in racing} <= {200, 409}
    assert len(loop.apis.received) == 2
    assert await pg_pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 2


async def test_a_provider_failing_for_a_while_is_retried(loop: Loop) -> None:
    loop.apis.fail_next = 2
    status, data = await loop.reply(whatsapp_reply("retry"))
    assert status == 200 and data["attempts"] == 3
    assert len(loop.apis.received) == 1


async def test_a_provider_failing_throughout_is_a_502_recorded_as_failed(
    loop: Loop, pg_pool: asyncpg.Pool
) -> None:
    loop.apis.fail_next = 100
    status, data = await loop.reply(whatsapp_reply("down"))
    assert status == 502 and data["state"] == "failed" and data["attempts"] == 4
    assert "HTTP 500" in str(data["error"])
    row = await pg_pool.fetchrow("SELECT state, attempts FROM outbound_requests")
    assert row is not None and (row["state"], row["attempts"]) == ("failed", 4)
    assert loop.apis.received == []


async def test_a_provider_refusal_is_final(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async for started in start_loop(pg_pool, redis_client, access_token="expired"):
        status, data = await started.reply(whatsapp_reply("refused"))
        assert status == 502 and data["attempts"] == 1
        assert "Invalid OAuth access token" in str(data["error"])


@pytest.mark.parametrize(
    "payload",
    [
        {"channel": "whatsapp", "to": MARIO_WA, "text": "hi"},  # no key
        {"channel": "fax", "to": MARIO_WA, "text": "hi", "idempotency_key": "k"},
        {"channel": "voice", "to": MARIO_WA, "text": "hi", "idempotency_key": "k"},
        {"channel": "whatsapp", "to": "abc", "text": "hi", "idempotency_key": "k"},
        {"channel": "sms", "to": "12", "text": "hi", "idempotency_key": "k"},
        {"channel": "sms", "to": "+393331234567", "text": "  ", "idempotency_key": "k"},
        {"channel": "sms", "to": "+393331234567", "text": "x" * 1601, "idempotency_key": "k"},
        {"channel": "sms", "to": 393331234567, "text": "hi", "idempotency_key": "k"},
        {
            "channel": "sms",
            "to": "+393331234567",
            "text": "hi",
            "idempotency_key": "k",
            "customer_id": "7",
        },
    ],
)
async def test_bad_replies_are_400(loop: Loop, payload: dict[str, object]) -> None:
    status, data = await loop.reply(payload)
    assert status == 400 and data["error"]
    assert loop.apis.received == []


async def test_not_json_is_400_and_no_token_is_401(loop: Loop) -> None:
    async with loop.session.post(
        f"{loop.base_url}/api/messages",
        data=b"{nope",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as resp:
        assert resp.status == 400
    assert (await loop.reply(whatsapp_reply(), token=None))[0] == 401


async def test_a_channel_without_provider_is_503(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async for started in start_loop(pg_pool, redis_client, configured=False):
        status, data = await started.reply(whatsapp_reply())
        assert status == 503 and "no whatsapp provider" in str(data["error"])


async def test_agents_reply_only_on_their_conversations_supervisors_on_their_teams(
    loop: Loop, pg_pool: asyncpg.Pool
) -> None:
    await pg_pool.execute(
        "INSERT INTO conversations (channel, contact, queue, state, agent_id, assigned_at)"
        " VALUES ('sms', '+393331234567', 'support', 'assigned', 'a1', now())"
    )
    sms = {"channel": "sms", "to": "333 123 4567", "text": "Ok"}  # normalised before the check
    assert (await loop.reply({**sms, "idempotency_key": "bea"}, token=BEA_TOKEN))[0] == 403
    assert (await loop.reply(whatsapp_reply("ann-wa"), token=ANN_TOKEN))[0] == 403  # no conv.
    assert loop.apis.received == []
    status, data = await loop.reply({**sms, "idempotency_key": "ann"}, token=ANN_TOKEN)
    assert status == 200, data
    status, data = await loop.reply({**sms, "idempotency_key": "lead"}, token=LEAD_TOKEN)
    assert status == 200, data  # a1 is in the lead's team
    assert len(loop.apis.received) == 2
