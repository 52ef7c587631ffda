"""The providers' send APIs (`context.outbound.MessageSender`): WhatsApp Cloud API and Twilio
Programmable Messaging, in their documented request formats.

- WhatsApp: `POST {api_url}/{phone_number_id}/messages`, `Authorization: Bearer <token>`, JSON
  `{"messaging_product": "whatsapp", "recipient_type": "individual", "to": <wa_id>,
  "type": "text", "text": {"body": ...}}` → `{"messages": [{"id": "wamid…"}]}`; errors as
  `{"error": {"message", "type", "code"}}`.
  https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
- Twilio: `POST {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth
  (AccountSid, AuthToken), form `To`, `From`, `Body`, `StatusCallback` → 201
  `{"sid": "SM…", "status": "queued"}`; errors as `{"code", "message", "status"}`.
  https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource

5xx, 429 and transport failures are `ProviderUnavailable` (retried by the reply service); other
4xx are `ProviderRejected` with the provider's own message.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from context.outbound import ProviderRejected, ProviderUnavailable

# A send that takes longer is abandoned and retried (the provider may still deliver it: see
# context/outbound.py on why a reply can, rarely, arrive twice).
DEFAULT_TIMEOUT_S = 10.0
# Error bodies are short JSON; more is not read.
MAX_ANSWER_BYTES = 64 * 1024
TOO_MANY_REQUESTS = 429


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout_s: float,
    **kwargs: object,
) -> tuple[int, bytes]:
    try:
        async with (
            asyncio.timeout(timeout_s),
            session.post(url, **kwargs) as resp,  # type: ignore[arg-type]
        ):
            return resp.status, await resp.content.read(MAX_ANSWER_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None


def _check(status: int, answer: bytes, what: str, reason: str) -> None:
    if status >= 500 or status == TOO_MANY_REQUESTS:
        raise ProviderUnavailable(f"{what}: HTTP {status} {reason}")
    if status >= 400:
        raise ProviderRejected(f"{what}: HTTP {status} {reason}")


def _json(answer: bytes) -> dict[str, object]:
    try:
        value = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class WhatsAppCloudSender:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_url: str,
        phone_number_id: str,
        access_token: str,
        display_number: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._session = session
        self._url = f"{api_url.rstrip('/')}/{phone_number_id}/messages"
        self._auth = f"Bearer {access_token}"
        self._display = display_number or phone_number_id
        self._timeout_s = timeout_s

    @property
    def sender_address(self) -> str:
        return self._display

    async def send(self, *, recipient: str, text: str, idempotency_key: str) -> str:
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient,
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        status, answer = await _post(
            self._session,
            self._url,
            timeout_s=self._timeout_s,
            data=orjson.dumps(payload),
            headers={"Authorization": self._auth, "Content-Type": "application/json"},
        )
        body = _json(answer)
        error = body.get("error")
        reason = str(error.get("message", "")) if isinstance(error, dict) else ""
        _check(status, answer, "WhatsApp", reason)
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            msg_id = messages[0].get("id")
            if isinstance(msg_id, str) and msg_id:
                return msg_id
        raise ProviderUnavailable(f"WhatsApp: HTTP {status} without a message id")


class TwilioSender:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        status_callback_url: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._session = session
        self._url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth = aiohttp.encode_basic_auth(account_sid, auth_token)
        self._from = from_number
        self._status_callback_url = status_callback_url
        self._timeout_s = timeout_s

    @property
    def sender_address(self) -> str:
        return self._from

    async def send(self, *, recipient: str, text: str, idempotency_key: str) -> str:
        form = {
            "To": recipient,
            "From": self._from,
            "Body": text,
            "StatusCallback": self._status_callback_url,
        }
        status, answer = await _post(
            self._session,
            self._url,
            timeout_s=self._timeout_s,
            data=form,
            headers={"Authorization": self._auth},
        )
        body = _json(answer)
        _check(status, answer, "Twilio", str(body.get("message", "")))
        sid = body.get("sid")
        if isinstance(sid, str) and sid:
            return sid
        raise ProviderUnavailable(f"Twilio: HTTP {status} without a message sid")
