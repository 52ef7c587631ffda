"""Demo messaging providers: WhatsApp Cloud API and Twilio SMS payloads in their documented
shapes, signed as the providers sign them, for the demo, the tests and the webhook benchmark."""

from __future__ import annotations

from typing import Any

import orjson

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
