"""Demo messaging providers: WhatsApp Cloud API and Twilio SMS payloads in their documented
shapes, signed as the providers sign them, for the demo, the tests and the webhook benchmark."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
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


def demo_channel_settings(settings: Settings) -> Settings:
    """`settings` with the channels' secrets (random ones where the environment set none) and
    `server.public_url` set to the demo's own address, so its webhooks are live and checked."""
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
