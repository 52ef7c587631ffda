"""Normalising what arrives on each channel into an `Identity`.

Phone numbers in any national or international form become E.164 (`phonenumbers`, default
region Italy, configurable). Withheld and unknown caller ids and garbage are reported as a
`CallerProblem`, never raised: a caller we cannot identify is still a caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from context.models import CallerProblem, Identity, IdentityKind

# Asterisk and SIP carriers spell "no number" in several ways (CALLERID(num) is "" or
# "<unknown>"/"unknown" when nothing arrived; "anonymous"/"private"/"restricted" with CLIR).
_WITHHELD = frozenset({"anonymous", "private", "restricted", "withheld", "blocked", "clir"})
_UNKNOWN = frozenset({"", "unknown", "<unknown>", "unavailable", "none", "null", "asreceived"})
# A real number (even with separators) fits easily; anything longer is garbage, not a number,
# and bounding it keeps the parser's work per call constant.
MAX_RAW_PHONE_CHARS = 40
# RFC 5321 limits a path to 256 octets, so a longer "address" is not one.
MAX_EMAIL_CHARS = 254
# Chat/messaging ids from providers are short tokens; bound them like any untrusted input.
MAX_CHAT_ID_CHARS = 128
# Distinct caller ids remembered with their normal form: most calls come from numbers that
# called before (customers call back), and parsing + validating one costs ~35 µs, the largest
# part of starting a call's fan-out. Bounded: about 2 MiB at most.
NORMALISED_CACHE_SIZE = 8192
_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
_WA_SUFFIX = re.compile(r"@(s\.whatsapp\.net|c\.us)$")


@dataclass(frozen=True, slots=True)
class PhoneNormaliser:
    """Turns a caller id into an E.164 identity, or says why it cannot."""

    default_region: str = "IT"

    def normalise(self, raw: str | None) -> Identity | CallerProblem:
        return _normalise_phone(raw or "", self.default_region)


@lru_cache(maxsize=NORMALISED_CACHE_SIZE)
def _normalise_phone(raw: str, region: str) -> Identity | CallerProblem:
    text = raw.strip().strip('"').strip()
    lowered = text.lower()
    if lowered in _UNKNOWN:
        return CallerProblem.UNKNOWN
    if lowered in _WITHHELD:
        return CallerProblem.WITHHELD
    if len(text) > MAX_RAW_PHONE_CHARS:
        return CallerProblem.INVALID
    # SIP URIs and tel: URIs carry the number as the user part.
    if lowered.startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    if any(c.isalpha() for c in text):
        return CallerProblem.INVALID
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return CallerProblem.INVALID
    if not phonenumbers.is_valid_number(number):
        return CallerProblem.INVALID
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Identity(IdentityKind.PHONE, e164)


def normalise_email(raw: str) -> Identity | None:
    text = raw.strip()
    if len(text) > MAX_EMAIL_CHARS or not _EMAIL.match(text):
        return None
    return Identity(IdentityKind.EMAIL, text.lower())


def normalise_chat_id(raw: str) -> Identity | None:
    text = raw.strip()
    if not text or len(text) > MAX_CHAT_ID_CHARS or any(c.isspace() for c in text):
        return None
    return Identity(IdentityKind.CHAT, text)


def normalise_whatsapp_id(raw: str, phones: PhoneNormaliser) -> Identity | None:
    """WhatsApp ids are phone numbers (`393331234567@s.whatsapp.net`, `whatsapp:+39...`)."""
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text.split(":", 1)[1]
    text = _WA_SUFFIX.sub("", text)
    if text.isdigit():
        text = "+" + text  # WhatsApp ids are international numbers without the plus
    phone = phones.normalise(text)
    if isinstance(phone, CallerProblem):
        return None
    return Identity(IdentityKind.WHATSAPP, phone.value)


def normalise(kind: IdentityKind, raw: str, phones: PhoneNormaliser) -> Identity | None:
    """One entry point for every channel; None when `raw` is not a usable identity."""
    if kind is IdentityKind.PHONE:
        phone = phones.normalise(raw)
        return None if isinstance(phone, CallerProblem) else phone
    if kind is IdentityKind.EMAIL:
        return normalise_email(raw)
    if kind is IdentityKind.WHATSAPP:
        return normalise_whatsapp_id(raw, phones)
    return normalise_chat_id(raw)


def phone_twin(identity: Identity) -> Identity | None:
    """A WhatsApp id is also the customer's phone number and vice versa (same E.164 value)."""
    if identity.kind is IdentityKind.WHATSAPP:
        return Identity(IdentityKind.PHONE, identity.value)
    if identity.kind is IdentityKind.PHONE:
        return Identity(IdentityKind.WHATSAPP, identity.value)
    return None
