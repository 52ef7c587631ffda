"""Builders of the written channels (WhatsApp, SMS), for the composition root: the providers'
webhooks, the timeline API and replies, with their stores, services and secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from pydantic import SecretStr

from acd.ports import SystemClock as AcdClock
from acd.service import Router
from centralino.adapters.messaging_providers import TwilioSender, WhatsAppCloudSender
from centralino.adapters.pg_board import PgBoard
from centralino.adapters.pg_messages import PgMessageStore, PgOutboxStore
from centralino.conversations import ConversationRoute, ConversationRouter
from centralino.email_server import EmailServer, InboundMailHandler
from centralino.settings import Settings
from centralino.web.board import add_board
from centralino.web.chat import add_chat
from centralino.web.conversations_api import add_conversation_api
from centralino.web.desktop_ws import DesktopHub
from centralino.web.replies_api import add_reply_api
from centralino.web.timeline_api import add_timeline_api
from centralino.web.webhooks import WebhookSecrets, add_webhooks
from contact.rules import DEFAULT_INTENT, route_for
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox, TimelineReader
from context.models import ChannelKind
from context.outbound import MessageSender, ReplyService
from context.service import ContextService


def webhook_secrets(settings: Settings) -> WebhookSecrets:
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return WebhookSecrets(
        whatsapp_app_secret=secret(settings.whatsapp.app_secret),
        whatsapp_verify_token=secret(settings.whatsapp.verify_token),
        twilio_auth_token=secret(settings.twilio.auth_token),
        public_url=settings.server.public_url,
    )


def add_messaging(
    app: web.Application,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    context: ContextService,
    phones: PhoneNormaliser,
    router: Router | None = None,
    hub: DesktopHub | None = None,
) -> None:
    """The written channels (webhooks, SMTP, web chat), their routing and replies, the
    timeline API and the tickets' board."""
    messages = PgMessageStore(pool=pool)
    conversations = (
        None
        if router is None
        else _conversations(app, settings, pool=pool, router=router, hub=hub, context=context)
    )
    on_stored = None if conversations is None else conversations.notice
    inbox = MessageInbox(store=messages, phones=phones, on_stored=on_stored)
    add_webhooks(app, inbox=inbox, secrets=webhook_secrets(settings))
    # Who may use each route: ROUTE_RULES (centralino/web/auth.py) and centralino/web/scopes.py.
    add_timeline_api(app, timeline=TimelineReader(context=context, store=messages))
    outbox = PgOutboxStore(pool=pool, messages=messages)

    def replies(session: aiohttp.ClientSession) -> ReplyService:
        return ReplyService(
            store=outbox,
            senders=message_senders(settings, session),
            clock=context.clock,
            phones=phones,
            context=context,
        )

    holders = None if conversations is None else conversations.holders
    add_reply_api(app, build=replies, holders=holders)
    add_chat(app, inbox=inbox, now=context.clock.now)
    if settings.email.enabled:
        add_email_server(app, settings, inbox=inbox)
    if conversations is not None:
        add_conversation_api(app, conversations=conversations)
    add_board(app, board=PgBoard(pool=pool), context=context)


def _conversations(
    app: web.Application,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    router: Router,
    hub: DesktopHub | None,
    context: ContextService,
) -> ConversationRouter:
    """Written conversations go where callers with no particular intent go (`other`)."""
    route = route_for(DEFAULT_INTENT, settings.contact.routes())

    async def notify(agent_id: str, payload: Mapping[str, Any]) -> object:
        if hub is None:
            return 0
        return await hub.push_update(
            agent_id, f"conversation-{payload['conversation_id']}", payload
        )

    conversations = ConversationRouter(
        pool=pool,
        router=router,
        route=ConversationRoute(route.queue, route.skill, route.min_level),
        now=AcdClock().now,
        agents=router.agent_ids,
        notify=notify,
        context=context,
    )

    async def stop(app: web.Application) -> None:
        await conversations.aclose()

    app.on_shutdown.append(stop)
    return conversations


EMAIL_SERVER = web.AppKey("email_server", EmailServer)


def add_email_server(app: web.Application, settings: Settings, *, inbox: MessageInbox) -> None:
    """The SMTP server lives with the web app (its cleanup context), started and stopped with
    it; `app[EMAIL_SERVER].port` is where it listens."""
    email = settings.email
    server = EmailServer(
        handler=InboundMailHandler(inbox=inbox, domains=email.domains),
        host=email.host,
        port=email.port,
        max_message_bytes=email.max_message_bytes,
    )
    app[EMAIL_SERVER] = server

    async def running(app: web.Application) -> AsyncIterator[None]:
        await server.start()
        yield
        await server.stop()

    app.cleanup_ctx.append(running)


def message_senders(
    settings: Settings, session: aiohttp.ClientSession
) -> dict[ChannelKind, MessageSender]:
    """The providers' send APIs that are configured (a channel without one answers 503)."""
    senders: dict[ChannelKind, MessageSender] = {}
    wa, tw = settings.whatsapp, settings.twilio
    if wa.access_token is not None and wa.phone_number_id:
        senders[ChannelKind.WHATSAPP] = WhatsAppCloudSender(
            session=session,
            api_url=wa.api_url,
            phone_number_id=wa.phone_number_id,
            access_token=wa.access_token.get_secret_value(),
            display_number=wa.display_number,
        )
    if tw.auth_token is not None and tw.account_sid and tw.from_number:
        senders[ChannelKind.SMS] = TwilioSender(
            session=session,
            api_url=tw.api_url,
            account_sid=tw.account_sid,
            auth_token=tw.auth_token.get_secret_value(),
            from_number=tw.from_number,
            # Twilio posts the message's delivery states back to our SMS webhook.
            status_callback_url=f"{settings.server.public_url}/webhooks/twilio/sms",
        )
    return senders
