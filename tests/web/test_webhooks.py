"""The channels' webhooks and the timeline API over real HTTP against real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centralino.access.models import Role
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_messages import PgMessageStore
from centralino.channels import twilio_sms, whatsapp
from centralino.demo.providers import body, twilio_status, whatsapp_status, whatsapp_text
from centralino.demo.providers import twilio_sms as sms_params
from centralino.storage.migrate import apply_migrations
from centralino.storage.scratch_cluster import ScratchCluster
from centralino.web.auth import ACCESS, add_access
from centralino.web.timeline_api import add_timeline_api
from centralino.web.webhooks import WebhookSecrets, add_webhooks
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox, TimelineReader
from context.messages import DeliveryState, OutboundMessage
from context.models import ChannelKind, Direction, Identity, IdentityKind, Interaction
from context.service import ContextService
from tests.context.fakes import FakeClock
from tests.helpers import eventually
from tests.web.auth_helpers import add_token_user, make_access

Client = TestClient[web.Request, web.Application]

APP_SECRET = "wa-app-secret"
VERIFY_TOKEN = "wa-verify-token"
AUTH_TOKEN = "twilio-auth-token"
PUBLIC_URL = "https://centralino.example.com"  # the proxy in front of us
API_TOKEN = "supervisor-api-token"  # an API token of a supervisor's account
AGENT_TOKEN = "agent-api-token"
SECRETS = WebhookSecrets(
    whatsapp_app_secret=APP_SECRET,
    whatsapp_verify_token=VERIFY_TOKEN,
    twilio_auth_token=AUTH_TOKEN,
    public_url=PUBLIC_URL,
)
MARIO = "393331234567"


def make_app(
    pool: asyncpg.Pool, redis: aioredis.Redis, *, secrets: WebhookSecrets = SECRETS
) -> web.Application:
    context = ContextService(
        customers=PgCustomerStore(pool=pool),
        timeline=PgTimelineStore(pool=pool),
        tickets=PgTicketStore(pool=pool),
        clock=FakeClock(),
    )
    store = PgMessageStore(pool=pool)
    app = web.Application()
    add_access(app, make_access(pool, redis, agent_teams={"a1": {"blue"}}))
    add_webhooks(app, inbox=MessageInbox(store=store, phones=PhoneNormaliser()), secrets=secrets)
    add_timeline_api(app, timeline=TimelineReader(context=context, store=store))
    return app


@asynccontextmanager
async def client_for(app: web.Application) -> AsyncIterator[Client]:
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        access = app[ACCESS]
        access.allow_local(c.port or 0)
        await add_token_user(access, "timeline-lead", Role.SUPERVISOR, API_TOKEN, teams={"blue"})
        await add_token_user(access, "ann", Role.AGENT, AGENT_TOKEN, agent_id="a1")
        yield c


@pytest.fixture
async def client(pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[Client]:
    async with client_for(make_app(pg_pool, redis_client)) as c:
        yield c


async def post_whatsapp(client: Client, raw: bytes, *, secret: str = APP_SECRET) -> tuple[int, str]:
    headers = {whatsapp.SIGNATURE_HEADER: whatsapp.sign(raw, secret)}
    async with client.post("/webhooks/whatsapp", data=raw, headers=headers) as resp:
        return resp.status, await resp.text()


async def post_sms(
    client: Client,
    params: Sequence[tuple[str, str]],
    *,
    path: str = "/webhooks/twilio/sms",
    url: str | None = None,
    token: str = AUTH_TOKEN,
) -> tuple[int, str, str]:
    signed_url = url or PUBLIC_URL + path
    headers = {
        twilio_sms.SIGNATURE_HEADER: twilio_sms.signature(signed_url, params, token),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    async with client.post(path, data=urlencode(params), headers=headers) as resp:
        return resp.status, resp.content_type, await resp.text()


async def count(pool: asyncpg.Pool, table: str = "messages") -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


# --- WhatsApp -------------------------------------------------------------------------------


async def test_handshake_answers_the_challenge_as_plain_text(client: Client) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8421"}
    async with client.get("/webhooks/whatsapp", params=query) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "8421"


async def test_handshake_with_a_wrong_token_is_forbidden(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "8421"}
    async with client.get("/webhooks/whatsapp", params=query) as resp:
        assert resp.status == 403
        assert "8421" not in await resp.text()
    assert "verify_token does not match" in caplog.text


async def test_a_signed_message_is_stored_and_its_retry_is_not(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    raw = body(whatsapp_text("wamid.HBgM1", MARIO, "Buongiorno"))
    assert await post_whatsapp(client, raw) == (200, "ok")
    assert await post_whatsapp(client, raw) == (200, "ok")  # Meta's retry
    row = await pg_pool.fetchrow(
        "SELECT channel, direction, provider_message_id, sender, recipient, body, provider_time,"
        " received_at, raw->'message'->>'id' AS raw_id FROM messages"
    )
    assert row is not None
    assert (row["channel"], row["direction"], row["provider_message_id"]) == (
        "whatsapp",
        "inbound",
        "wamid.HBgM1",
    )
    assert (row["sender"], row["recipient"], row["body"]) == (MARIO, "15550001111", "Buongiorno")
    assert row["provider_time"] is not None and row["received_at"] is not None
    assert row["raw_id"] == "wamid.HBgM1"
    assert await count(pg_pool) == 1 and await count(pg_pool, "customers") == 1


@pytest.mark.parametrize("header", [None, "sha256=" + "0" * 64, "garbage"])
async def test_bad_or_missing_signatures_are_refused_logged_and_nothing_stored(
    client: Client, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture, header: str | None
) -> None:
    raw = body(whatsapp_text("wamid.BAD", MARIO, "hi"))
    headers = {} if header is None else {whatsapp.SIGNATURE_HEADER: header}
    async with client.post("/webhooks/whatsapp", data=raw, headers=headers) as resp:
        assert resp.status == 401
    assert "refused (401)" in caplog.text
    assert await count(pg_pool) == 0 and await count(pg_pool, "customers") == 0


async def test_a_body_signed_with_another_secret_is_refused(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    raw = body(whatsapp_text("wamid.OTHER", MARIO, "hi"))
    status, _ = await post_whatsapp(client, raw, secret="not-ours")
    assert status == 401 and await count(pg_pool) == 0


async def test_malformed_json_is_a_400(client: Client, pg_pool: asyncpg.Pool) -> None:
    status, text = await post_whatsapp(client, b'{"entry": [')
    assert status == 400 and "not JSON" in text
    status, text = await post_whatsapp(client, b'{"entry": [{"changes": "x"}]}')
    assert status == 400 and "changes" in text
    assert await count(pg_pool) == 0


async def test_an_oversized_body_is_a_413(client: Client, pg_pool: asyncpg.Pool) -> None:
    raw = b" " * (whatsapp.MAX_BODY_BYTES + 1)
    headers = {whatsapp.SIGNATURE_HEADER: whatsapp.sign(raw, APP_SECRET)}
    async with client.post("/webhooks/whatsapp", data=io.BytesIO(raw), headers=headers) as resp:
        assert resp.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b" " * (1024 * 1024)

    async with client.post("/webhooks/whatsapp", data=chunks(), headers=headers) as resp:
        assert resp.status == 413
    assert await count(pg_pool) == 0


async def test_unset_secrets_answer_503_and_say_why(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    off = WebhookSecrets(None, None, None, None)
    async with client_for(make_app(pg_pool, redis_client, secrets=off)) as c:
        raw = body(whatsapp_text("wamid.OFF", MARIO, "hi"))
        assert (await post_whatsapp(c, raw))[0] == 503
        query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
        async with c.get("/webhooks/whatsapp", params=query) as resp:
            assert resp.status == 503
        assert (await post_sms(c, sms_params("SMOFF", "+393331234567", "hi")))[0] == 503
    assert "CENTRALINO_WHATSAPP_APP_SECRET is not set" in caplog.text
    assert "CENTRALINO_WHATSAPP_VERIFY_TOKEN is not set" in caplog.text
    assert "CENTRALINO_TWILIO_AUTH_TOKEN is not set" in caplog.text
    assert await count(pg_pool) == 0


async def test_twilio_without_a_public_url_answers_503(
    pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    no_url = WebhookSecrets(APP_SECRET, VERIFY_TOKEN, AUTH_TOKEN, None)
    async with client_for(make_app(pg_pool, redis_client, secrets=no_url)) as c:
        assert (await post_sms(c, sms_params("SMNU", "+393331234567", "hi")))[0] == 503
    assert "server.public_url" in caplog.text


async def test_status_callbacks_out_of_order_update_the_outbound_message(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    store = PgMessageStore(pool=pg_pool)
    await store.record_outbound(
        OutboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.OUT",
            customer_id=None,
            sender="15550001111",
            recipient=MARIO,
            text="Your invoice is paid",
            sent_at=FakeClock().now(),
        )
    )
    for name in ("read", "sent", "delivered"):  # read overtook the others
        assert (await post_whatsapp(client, body(whatsapp_status("wamid.OUT", name))))[0] == 200
    assert await store.delivery_state(ChannelKind.WHATSAPP, "wamid.OUT") is DeliveryState.READ


# --- Twilio SMS -----------------------------------------------------------------------------


async def test_an_sms_signed_for_the_public_url_is_stored_and_answered_with_twiml(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    params = sms_params("SM0001", "+393331234567", "Ciao, è arrivata la fattura?")
    status, content_type, text = await post_sms(client, params)
    assert (status, content_type, text) == (200, "text/xml", "<Response/>")
    assert (await post_sms(client, params))[0] == 200  # Twilio's retry
    row = await pg_pool.fetchrow(
        "SELECT channel, sender, body, raw->>'AccountSid' AS acc FROM messages"
    )
    assert row is not None and await count(pg_pool) == 1
    assert (row["channel"], row["sender"], row["body"]) == (
        "sms",
        "+393331234567",
        "Ciao, è arrivata la fattura?",
    )
    assert row["acc"].startswith("AC")


async def test_the_query_string_is_part_of_the_signed_url(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    params = sms_params("SM0002", "+393331234567", "hi")
    path = "/webhooks/twilio/sms?account=it%20north"
    assert (await post_sms(client, params, path=path))[0] == 200
    # Signed for the URL we see (not the public one): refused.
    seen = str(client.make_url(path))
    assert (await post_sms(client, sms_params("SM0003", "+39333", "x"), path=path, url=seen))[
        0
    ] == 403
    assert await count(pg_pool) == 1


async def test_sms_with_a_bad_signature_is_forbidden_and_not_stored(
    client: Client, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    params = sms_params("SM0004", "+393331234567", "hi")
    assert (await post_sms(client, params, token="wrong"))[0] == 403
    form = urlencode(params)
    async with client.post(
        "/webhooks/twilio/sms",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert resp.status == 403
    assert "X-Twilio-Signature" in caplog.text
    assert await count(pg_pool) == 0


async def test_sms_malformed_form_and_oversized_body(
    client: Client, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    # A form that does not parse cannot have been signed: 400 before any signature check.
    headers = {twilio_sms.SIGNATURE_HEADER: "c2lnbmVk"}
    async with client.post("/webhooks/twilio/sms", data=b"Body=%zz&&", headers=headers) as resp:
        assert resp.status == 400
    async with client.post(
        "/webhooks/twilio/sms", data=b"a" * (twilio_sms.MAX_BODY_BYTES + 1), headers=headers
    ) as resp:
        assert resp.status == 413
    assert "refused (413)" in caplog.text
    signed_but_incomplete = [("MessageSid", "SM0005"), ("To", "+390299999999")]
    assert (await post_sms(client, signed_but_incomplete))[0] == 400
    assert await count(pg_pool) == 0


async def test_sms_status_callbacks(client: Client, pg_pool: asyncpg.Pool) -> None:
    store = PgMessageStore(pool=pg_pool)
    await store.record_outbound(
        OutboundMessage(
            channel=ChannelKind.SMS,
            provider_message_id="SMOUT",
            customer_id=None,
            sender="+390299999999",
            recipient="+393331234567",
            text="ok",
            sent_at=FakeClock().now(),
        )
    )
    assert (await post_sms(client, twilio_status("SMOUT", "delivered")))[0] == 200
    assert (await post_sms(client, twilio_status("SMOUT", "sent")))[0] == 200
    assert await store.delivery_state(ChannelKind.SMS, "SMOUT") is DeliveryState.DELIVERED


# --- PostgreSQL down ------------------------------------------------------------------------


@pytest.fixture
async def scratch() -> AsyncIterator[ScratchCluster]:
    cluster = await asyncio.to_thread(ScratchCluster.create)
    try:
        await asyncio.to_thread(cluster.start)
        conn = await asyncpg.connect(cluster.dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        yield cluster
    finally:
        await asyncio.to_thread(cluster.destroy)


async def test_postgres_down_answers_503_and_the_retry_stores_once(
    scratch: ScratchCluster, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await asyncpg.create_pool(scratch.dsn, min_size=2, max_size=4)
    assert pool is not None
    try:
        async with client_for(make_app(pool, redis_client)) as c:
            first = body(whatsapp_text("wamid.UP", MARIO, "before"))
            assert (await post_whatsapp(c, first))[0] == 200
            await asyncio.to_thread(scratch.stop)
            raw = body(whatsapp_text("wamid.DOWN", MARIO, "during"))
            sms = sms_params("SMDOWN", "+393331234567", "during")
            assert (await post_whatsapp(c, raw))[0] == 503
            assert (await post_sms(c, sms))[0] == 503
            assert "the provider will retry" in caplog.text
            await asyncio.to_thread(scratch.start)

            async def retried() -> None:  # as the provider does, until it is taken
                assert (await post_whatsapp(c, raw))[0] == 200
                assert (await post_sms(c, sms))[0] == 200

            await eventually(retried, timeout=15, interval=0.2)
            assert (await post_whatsapp(c, raw))[0] == 200  # and once more: still one copy
        ids = await pool.fetch("SELECT provider_message_id FROM messages ORDER BY id")
        assert [r["provider_message_id"] for r in ids] == ["wamid.UP", "wamid.DOWN", "SMDOWN"]
        assert await pool.fetchval("SELECT count(*) FROM customers") == 1
    finally:
        await pool.close()


# --- the timeline API -----------------------------------------------------------------------


async def get_timeline(
    client: Client, query: dict[str, str], token: str | None = API_TOKEN
) -> tuple[int, dict[str, object]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with client.get("/api/timeline", params=query, headers=headers) as resp:
        data = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, data


async def test_timeline_newest_first_on_every_channel(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    context = ContextService(
        customers=PgCustomerStore(pool=pg_pool),
        timeline=PgTimelineStore(pool=pg_pool),
        tickets=PgTicketStore(pool=pg_pool),
        clock=FakeClock(),
    )
    mario = await context.customers.create(
        display_name="Mario",
        identities=[
            Identity(IdentityKind.PHONE, "+393331234567"),
            Identity(IdentityKind.EMAIL, "mario@example.it"),
        ],
    )
    await context.record_interaction(
        Interaction(
            id=None,
            customer_id=mario.id,
            channel=ChannelKind.VOICE,
            direction=Direction.INBOUND,
            started_at=FakeClock().now(),
            linkedid="1765.42",
            summary="called about billing",
        )
    )
    assert (
        await post_whatsapp(
            client, body(whatsapp_text("wamid.T1", MARIO, "first", timestamp=2_000_000_000))
        )
    )[0] == 200
    assert (await post_sms(client, sms_params("SMT2", "+393331234567", "second")))[0] == 200
    status, data = await get_timeline(client, {"phone": "+393331234567"})
    assert status == 200
    assert data["customer"] == {"id": mario.id, "display_name": "Mario"}
    items = data["items"]
    assert isinstance(items, list)
    assert [(i["channel"], i["direction"], i["text"], i["provider_message_id"]) for i in items] == [
        ("whatsapp", "inbound", "first", "wamid.T1"),  # 2033: newest
        ("sms", "inbound", "second", "SMT2"),  # now
        ("voice", "inbound", "called about billing", None),  # the fake clock's 2026
    ]
    assert all(
        {"time", "channel", "direction", "text", "provider_message_id"} <= set(i) for i in items
    )
    by_email = await get_timeline(client, {"email": "Mario@Example.it"})
    assert by_email == (status, data)
    limited = await get_timeline(client, {"phone": "+393331234567", "limit": "1"})
    assert len(limited[1]["items"]) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"phone": "3331234567"},
        {"phone": "+39abc"},
        {"phone": "+393331234567", "email": "a@b.it"},
        {"email": "not an address"},
        {"phone": "+393331234567", "limit": "0"},
        {"phone": "+393331234567", "limit": "lots"},
        {"phone": "+999123456789"},  # E.164-shaped, no such country
    ],
)
async def test_timeline_bad_queries_are_400(
    client: Client, query: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    status, data = await get_timeline(client, query)
    assert status == 400 and data["error"]
    assert "refused (400)" in caplog.text


async def test_timeline_of_an_unknown_customer_is_404(client: Client) -> None:
    status, data = await get_timeline(client, {"phone": "+390212345678"})
    assert status == 404 and "no customer" in str(data["error"])


async def test_timeline_of_a_shared_number_is_409_with_the_candidates(
    client: Client, pg_pool: asyncpg.Pool
) -> None:
    customers = PgCustomerStore(pool=pg_pool)
    office = Identity(IdentityKind.PHONE, "+390212345678")
    a = await customers.create(display_name="A", identities=[office])
    b = await customers.create(display_name="B", identities=[office])
    status, data = await get_timeline(client, {"phone": "+390212345678"})
    assert status == 409
    assert data["candidates"] == [
        {"id": a.id, "display_name": "A"},
        {"id": b.id, "display_name": "B"},
    ]


async def test_timeline_is_for_supervisors_and_admins_only(client: Client) -> None:
    query = {"phone": "+390212345678"}
    assert (await get_timeline(client, query, token=None))[0] == 401  # anonymous
    assert (await get_timeline(client, query, token="guess"))[0] == 401  # no such token
    assert (await get_timeline(client, query, token=AGENT_TOKEN))[0] == 403  # an agent's
    assert (await get_timeline(client, query))[0] == 404  # a supervisor's: allowed


async def test_signed_webhooks_need_no_cookie_csrf_origin_or_known_host(client: Client) -> None:
    """The providers post with their signature only: no session, no CSRF token, no Origin,
    and under the name configured in their console (not necessarily one of our origins)."""
    raw = body(whatsapp_text("wamid.NOCSRF", MARIO, "hello"))
    headers = {whatsapp.SIGNATURE_HEADER: whatsapp.sign(raw, APP_SECRET)}
    stranger = {"Host": "hooks.tunnel.example", "Origin": "https://evil.example"}
    async with client.post("/webhooks/whatsapp", data=raw, headers=headers | stranger) as resp:
        assert resp.status == 200, await resp.text()
    params = sms_params("SMNOCSRF", "+393331234567", "hi")
    status, _, text = await post_sms(client, params)
    assert status == 200, text
    # Unsigned: still refused (the signature is the authentication).
    async with client.post("/webhooks/whatsapp", data=raw, headers=stranger) as resp:
        assert resp.status == 401
    # A route that is not a webhook still checks the Host.
    async with client.get(
        "/api/timeline",
        params={"phone": "+390212345678"},
        headers={"Host": "hooks.tunnel.example", "Authorization": f"Bearer {API_TOKEN}"},
    ) as resp:
        assert resp.status == 421
