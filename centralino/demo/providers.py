"""Demo messaging providers: WhatsApp Cloud API and Twilio SMS payloads in their documented
shapes, signed as the providers sign them, for the demo, the tests and the webhook benchmark."""

from __future__ import annotations

import asyncio
import random
import secrets
import smtplib
import time
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web
from pydantic import SecretStr

from centralino.channels import twilio_sms as twilio_sms_format
from centralino.channels import whatsapp
from centralino.settings import Settings
from centralino.storage.scratch_cluster import free_port
from centralino.web.webhooks import WebhookSecrets

BUSINESS_NUMBER = "15550001111"


def whatsapp_text(
    msg_id: str,
    wa_id: str,
    text: str,
    *,
    name: str = "Mario Rossi",
    timestamp: int = 1_765_000_000,
) -> dict[str, Any]:
    """A Cloud API notification carrying one text message (Meta's payload example)."""
    return whatsapp_value(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": msg_id,
                    "timestamp": str(timestamp),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        }
    )


def whatsapp_status(
    msg_id: str, status: str, *, recipient: str = "393331234567", timestamp: int = 1_765_000_100
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": msg_id,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient,
    }
    if status == "failed":
        entry["errors"] = [{"code": 131047, "title": "Re-engagement message"}]
    return whatsapp_value({"statuses": [entry]})


def whatsapp_value(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": BUSINESS_NUMBER,
                                "phone_number_id": "106540352242922",
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def body(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def twilio_sms(
    sid: str, sender: str, text: str, *, to: str = "+390299999999"
) -> list[tuple[str, str]]:
    """The parameters Twilio POSTs for an incoming SMS."""
    return [
        ("ToCountry", "IT"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", text),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]


def twilio_status(sid: str, status: str) -> list[tuple[str, str]]:
    return [
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
    ]


# --- the demo's own providers ---------------------------------------------------------------

# A provider retries a delivery we could not take (5xx, connection refused) after a back-off;
# the demo's is short, and gives up after these many attempts.
DEMO_ATTEMPTS = 5
DEMO_BACKOFF_S = 0.2


DEMO_MAIL_DOMAIN = "centralino.demo"


def demo_channel_settings(settings: Settings) -> Settings:
    """`settings` with the channels' secrets (random ones where the environment set none),
    `server.public_url` set to the demo's own address, so its webhooks are live and checked,
    and the SMTP server on (any free port, mail for DEMO_MAIL_DOMAIN) unless configured."""
    server = settings.server
    port = server.http_port or free_port()  # Twilio signs the URL: it must be known up front
    public_url = server.public_url or f"http://{server.host}:{port}"

    def keep_or_new(value: SecretStr | None) -> SecretStr:
        return value if value is not None else SecretStr(secrets.token_urlsafe(18))

    return settings.model_copy(
        update={
            "server": server.model_copy(update={"http_port": port, "public_url": public_url}),
            "whatsapp": settings.whatsapp.model_copy(
                update={
                    "app_secret": keep_or_new(settings.whatsapp.app_secret),
                    "verify_token": keep_or_new(settings.whatsapp.verify_token),
                }
            ),
            "twilio": settings.twilio.model_copy(
                update={"auth_token": keep_or_new(settings.twilio.auth_token)}
            ),
            "email": settings.email
            if settings.email.enabled
            else settings.email.model_copy(
                update={"enabled": True, "domains": [DEMO_MAIL_DOMAIN], "port": 0}
            ),
        }
    )


class DemoMessagingProvider:
    """Plays Meta and Twilio for the demo and the tests: posts their webhooks, signed as they
    sign them, to a running Centralino, re-sending on 5xx like they do."""

    def __init__(
        self, *, session: aiohttp.ClientSession, base_url: str, secrets: WebhookSecrets
    ) -> None:
        if not (secrets.whatsapp_app_secret and secrets.twilio_auth_token and secrets.public_url):
            raise ValueError("the demo provider needs both webhooks' secrets and the public URL")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._app_secret = secrets.whatsapp_app_secret
        self._auth_token = secrets.twilio_auth_token
        self._public_url = secrets.public_url

    async def whatsapp(self, wa_id: str, text: str, *, name: str = "") -> str:
        """Send a WhatsApp text message from `wa_id`; its wamid once Centralino took it."""
        msg_id = f"wamid.demo{uuid.uuid4().hex}"
        raw = body(whatsapp_text(msg_id, wa_id, text, name=name, timestamp=int(time.time())))
        headers = {
            whatsapp.SIGNATURE_HEADER: whatsapp.sign(raw, self._app_secret),
            "Content-Type": "application/json",
        }
        await self._deliver("/webhooks/whatsapp", raw, headers)
        return msg_id

    async def sms(self, sender: str, text: str, *, to: str = "+390299999999") -> str:
        """Send an SMS from `sender` (E.164); its MessageSid once Centralino took it."""
        sid = f"SM{uuid.uuid4().hex}"
        params = twilio_sms(sid, sender, text, to=to)
        path = "/webhooks/twilio/sms"
        headers = {
            twilio_sms_format.SIGNATURE_HEADER: twilio_sms_format.signature(
                self._public_url + path, params, self._auth_token
            ),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        await self._deliver(path, urlencode(params).encode(), headers)
        return sid

    async def _deliver(self, path: str, data: bytes, headers: dict[str, str]) -> None:
        for attempt in range(1, DEMO_ATTEMPTS + 1):
            try:
                async with self._session.post(
                    self._base_url + path, data=data, headers=headers
                ) as resp:
                    if resp.status < 300:
                        return
                    if resp.status < 500:
                        raise DeliveryRefused(f"{path}: {resp.status} {await resp.text()}")
            except aiohttp.ClientConnectionError:
                pass  # as a provider: try again later
            if attempt < DEMO_ATTEMPTS:
                await asyncio.sleep(DEMO_BACKOFF_S * attempt)
        raise DeliveryRefused(f"{path}: not taken after {DEMO_ATTEMPTS} attempts")


class DeliveryRefused(RuntimeError):
    """Centralino refused a demo delivery (4xx) or never took it."""


# --- the providers' send APIs, played locally -----------------------------------------------

GRAPH_VERSION = "v21.0"
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_ACCOUNT_SID = "AC" + "d" * 32
# Status callbacks follow an accepted message after these many seconds (scaled in tests).
CALLBACK_DELAY_S = 0.05


class DemoSendApis:
    """Meta's Graph API `/messages` and Twilio's `Messages.json`, as a local aiohttp app: they
    check the caller's credentials and the request's shape, answer with a new message id, then
    post the status callbacks a real provider would (WhatsApp: sent, delivered, read, in a
    shuffled order; Twilio: sent, delivered to the StatusCallback URL), signed.

    `fail_next` answers that many sends with 500 first (to exercise retries); `received`
    lists every accepted send as (channel, recipient, text)."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        webhook_base_url: str,
        app_secret: str,
        access_token: str,
        auth_token: str,
        rng: random.Random,
        callback_delay_s: float = CALLBACK_DELAY_S,
    ) -> None:
        self._session = session
        self._webhook_base_url = webhook_base_url.rstrip("/")
        self._app_secret = app_secret
        self._access_token = access_token
        self._basic = aiohttp.encode_basic_auth(DEMO_ACCOUNT_SID, auth_token)
        self._auth_token = auth_token
        self._rng = rng
        self._delay_s = callback_delay_s
        self._tasks: set[asyncio.Task[None]] = set()
        self.fail_next = 0
        self.received: list[tuple[str, str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"/{GRAPH_VERSION}/{{phone_number_id}}/messages", self._whatsapp)
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._twilio)
        app.on_cleanup.append(self._stop)
        return app

    async def _stop(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _failing(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    async def _whatsapp(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self._access_token}":
            return web.json_response(
                {"error": {"message": "Invalid OAuth access token", "code": 190}}, status=401
            )
        payload = await request.json()
        to, text = payload.get("to"), (payload.get("text") or {}).get("body")
        if payload.get("messaging_product") != "whatsapp" or not to or not text:
            return web.json_response(
                {"error": {"message": "(#100) Invalid parameter", "code": 100}}, status=400
            )
        if self._failing():
            return web.json_response({"error": {"message": "Service unavailable"}}, status=500)
        msg_id = f"wamid.out{uuid.uuid4().hex}"
        self.received.append(("whatsapp", to, text))
        states = ["sent", "delivered", "read"]
        self._rng.shuffle(states)  # callbacks arrive in any order
        self._later(lambda: self._whatsapp_callbacks(msg_id, to, states))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": msg_id}],
            }
        )

    async def _twilio(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth != self._basic or request.match_info["account_sid"] != DEMO_ACCOUNT_SID:
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "status": 401}, status=401
            )
        form = await request.post()
        to, body_text, callback = form.get("To"), form.get("Body"), form.get("StatusCallback")
        if not isinstance(to, str) or not isinstance(body_text, str) or not to.startswith("+"):
            return web.json_response(
                {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400},
                status=400,
            )
        if self._failing():
            return web.json_response({"code": 20500, "message": "Internal"}, status=500)
        sid = f"SM{uuid.uuid4().hex}"
        self.received.append(("sms", to, body_text))
        if isinstance(callback, str) and callback:
            self._later(lambda: self._twilio_callbacks(sid, callback))
        return web.json_response({"sid": sid, "status": "queued", "to": to}, status=201)

    def _later(self, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await asyncio.sleep(self._delay_s)
            await work()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _whatsapp_callbacks(self, msg_id: str, to: str, states: list[str]) -> None:
        for state in states:
            raw = body(whatsapp_status(msg_id, state, recipient=to))
            headers = {
                whatsapp.SIGNATURE_HEADER: whatsapp.sign(raw, self._app_secret),
                "Content-Type": "application/json",
            }
            await self._callback(f"{self._webhook_base_url}/webhooks/whatsapp", raw, headers)

    async def _twilio_callbacks(self, sid: str, callback_url: str) -> None:
        for state in ("sent", "delivered"):
            params = twilio_status(sid, state)
            headers = {
                twilio_sms_format.SIGNATURE_HEADER: twilio_sms_format.signature(
                    callback_url, params, self._auth_token
                ),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            # The callback URL is the public one; in the demo it is also where we are served.
            await self._callback(callback_url, urlencode(params).encode(), headers)

    async def _callback(self, url: str, data: bytes, headers: dict[str, str]) -> None:
        for attempt in range(1, DEMO_ATTEMPTS + 1):
            try:
                async with self._session.post(url, data=data, headers=headers) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(DEMO_BACKOFF_S * attempt)


async def with_demo_send_apis(
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    serve: Callable[[web.Application], Awaitable[str]],
    rng: random.Random,
) -> tuple[Settings, DemoSendApis]:
    """Serve the demo's send APIs (with `serve`, which returns the base URL) and point the
    settings' WhatsApp and Twilio API URLs and credentials at them (unless already set)."""
    wa, tw = settings.whatsapp, settings.twilio
    # demo_channel_settings() has set these.
    assert wa.app_secret is not None and tw.auth_token is not None
    assert settings.server.public_url is not None
    access_token = wa.access_token or SecretStr(secrets.token_urlsafe(18))
    apis = DemoSendApis(
        session=session,
        webhook_base_url=settings.server.public_url,
        app_secret=wa.app_secret.get_secret_value(),
        access_token=access_token.get_secret_value(),
        auth_token=tw.auth_token.get_secret_value(),
        rng=rng,
    )
    base_url = await serve(apis.app())
    updated = settings.model_copy(
        update={
            "whatsapp": wa.model_copy(
                update={
                    "access_token": access_token,
                    "phone_number_id": wa.phone_number_id or DEMO_PHONE_NUMBER_ID,
                    "display_number": wa.display_number or BUSINESS_NUMBER,
                    "api_url": f"{base_url}/{GRAPH_VERSION}",
                }
            ),
            "twilio": tw.model_copy(
                update={
                    "account_sid": tw.account_sid or DEMO_ACCOUNT_SID,
                    "from_number": tw.from_number or "+390299999999",
                    "api_url": base_url,
                }
            ),
        }
    )
    return updated, apis


async def send_demo_email(
    *, host: str, port: int, sender: str, name: str, subject: str, text: str
) -> str:
    """Deliver one email over SMTP (the standard library's client, in a thread); its
    Message-ID."""
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = f"support@{DEMO_MAIL_DOMAIN}"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="demo.example")
    message.set_content(text)

    def deliver() -> None:
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.send_message(message)

    await asyncio.to_thread(deliver)
    return str(message["Message-ID"])
