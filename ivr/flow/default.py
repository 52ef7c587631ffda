"""Today's flow, as the `default` flow's document: welcome (while the fan-out finishes),
the overdue invoice read out when that is most likely why the customer calls, the menu, the
queue. A `[flows.default]` document in the settings replaces it.

Its menu leaves the keys to the intent model (`ivr.intent.MENU`), so it names no intent but
`billing`, the one its self-service is about."""

from __future__ import annotations

from typing import Any, Final

from ivr.flow.document import parse_flow
from ivr.flow.models import Flow

DEFAULT_FLOW_NAME: Final = "default"

DEFAULT_DOCUMENT: Final[dict[str, Any]] = {
    "description": "welcome, self-service for an overdue invoice, menu, queue",
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "play",
            "prompt": "centralino/welcome",
            # The fan-out has had the welcome's length; wait for it a little longer at most.
            "wait_knowledge_s": 1.0,
            "next": "self_service",
        },
        "self_service": {
            "type": "branch",
            "cases": [
                {
                    "if": ["intent == billing", "confidence >= 0.5", "overdue_invoices > 0"],
                    "next": "invoice",
                }
            ],
            "otherwise": "menu",
        },
        "invoice": {
            "type": "action",
            "action": "overdue_invoice",
            "results": {"served": "goodbye", "agent": "menu"},
        },
        "goodbye": {"type": "hangup", "prompt": "vm-goodbye", "outcome": "self_served"},
        "menu": {"type": "menu", "prompt": "centralino/menu", "intent_keys": True, "next": "queue"},
        "queue": {"type": "queue"},
    },
}


def default_flow() -> Flow:
    return parse_flow(DEFAULT_FLOW_NAME, DEFAULT_DOCUMENT)
