"""The intents a caller can have, and the DTMF menu that names them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# The order is the model's class order (and the column order of its weights).
INTENTS: Final[tuple[str, ...]] = (
    "billing",  # invoices, payments, charges, refunds
    "order_status",  # orders, deliveries, shipping, tracking
    "technical_support",  # something broken or not working
    "cancel",  # a contract, subscription or order
    "agent",  # wants a person (and what nothing else explains)
    "sales",  # buy, quote, new offer
    "account_update",  # address, email, phone, bank details, personal data
)

# The IVR menu: key → intent (centralino/prompts.py says it to the caller in these words).
MENU: Final[Mapping[str, str]] = MappingProxyType(
    {
        "1": "billing",
        "2": "order_status",
        "3": "technical_support",
        "4": "sales",
        "5": "cancel",
        "6": "account_update",
        "0": "agent",
    }
)
