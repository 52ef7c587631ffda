"""Normalising what arrives on each channel into an `Identity`, one canonical form per kind.

Every identity is normalised before it is stored or looked up, so the same person reached twice
is one row, one match:

- phone: E.164 (`+390212345678`) through `phonenumbers`, default region Italy, configurable.
  Withheld and unknown caller ids and garbage are reported as a `CallerProblem`, never
  raised: a caller we cannot identify is still a caller.
- email: trimmed and lower-cased, domain AND local part. RFC 5321 lets the local part be
  case-sensitive, but every large provider ignores its case and customers type it as they
  please; treating `Mario.Rossi@` and `mario.rossi@` as two customers would split one history
  in two. A product decision, taken knowingly.
- whatsapp: the WhatsApp Cloud API's `wa_id`, digits only, no `+` (`393331234567`); the
  forms other providers use (`whatsapp:+39...`, `...@s.whatsapp.net`) are reduced to it. It is
  the customer's phone number, so `phone_twin` maps it to and from E.164.
- chat: the provider's visitor id, trimmed, otherwise untouched (such ids are case-sensitive).

`normalise_identity()` raises `InvalidIdentity` saying what is wrong with a malformed value;
`normalise()` returns None instead, for channel input where "no identity" is a normal outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from context.models import CallerProblem, Identity, IdentityKind

__all__ = [
    "MAX_CHAT_ID_CHARS",
    "MAX_EMAIL_CHARS",
    "MAX_EMAIL_LOCAL_CHARS",
    "MAX_RAW_PHONE_CHARS",
    "MAX_WHATSAPP_DIGITS",
    "MIN_WHATSAPP_DIGITS",
    "InvalidIdentity",
    "PhoneNormaliser",
    "normalise",
    "normalise_chat_id",
    "normalise_email",
    "normalise_identity",
    "normalise_whatsapp_id",
    "phone_twin",
]

# Asterisk and SIP carriers spell "no number" in several ways (CALLERID(num) is "" or
# "<unknown>"/"unknown" when nothing arrived; "anonymous"/"private"/"restricted" with CLIR).
_WITHHELD = frozenset({"anonymous", "private", "restricted", "withheld", "blocked", "clir"})
_UNKNOWN = frozenset({"", "unknown", "<unknown>", "unavailable", "none", "null", "asreceived"})
# A real number (even with separators) fits easily; anything longer is garbage, not a number,
# and bounding it keeps the parser's work per call constant.
MAX_RAW_PHONE_CHARS = 40
# RFC 5321 limits a path to 256 octets, so a longer "address" is not one.
MAX_EMAIL_CHARS = 254
# RFC 5321 section 4.5.3.1.1: a local part of at most 64 octets.
MAX_EMAIL_LOCAL_CHARS = 64
# E.164 numbers have at most 15 digits, country code included; the shortest in use (Niue,
# Saint Helena: a three-digit country code and four digits) have 7.
MIN_WHATSAPP_DIGITS = 7
MAX_WHATSAPP_DIGITS = 15
# Chat/messaging ids from providers are short tokens; bound them like any untrusted input.
MAX_CHAT_ID_CHARS = 128
# Distinct caller ids remembered with their normal form: most calls come from numbers that
# called before (customers call back), and parsing + validating one costs ~35 µs, the largest
# part of starting a call's fan-out. Bounded: about 2 MiB at most.
NORMALISED_CACHE_SIZE = 8192
# Characters no address we accept holds: blanks, double quotes, brackets, commas, semicolons
# (display-name and list syntax: `"Mario" <m@x.it>, ...`, not the address). The apostrophe
# stays allowed: `o'brien@` is a valid address a customer may have.
_EMAIL_FORBIDDEN = re.compile(r"[\s<>\",;()\[\]\\]")
_EMAIL_DOMAIN_LABEL = re.compile(r"(?!-)[^.\s]{1,63}(?<!-)")
_WA_SUFFIX = re.compile(r"@(s\.whatsapp\.net|c\.us)$", re.IGNORECASE)
# Separators people and some providers put into numbers; anything else is not a wa_id.
_WA_SEPARATORS = re.compile(r"[ \-.()]")


class InvalidIdentity(ValueError):
    """A value given as an identity of some kind is not one (the input's fault: the channel
    or the person typing it). The message says which kind and what is wrong."""

    def __init__(self, kind: IdentityKind, raw: str, why: str) -> None:
        super().__init__(f"not a valid {kind} identity: {raw[:80]!r} ({why})")
        self.kind = kind
        self.raw = raw
        self.why = why


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


def normalise_email(raw: str) -> Identity:
    """`  Mario.Rossi@Example.IT ` → `email:mario.rossi@example.it` (see the module docstring
    for why the local part is lower-cased too). Raises InvalidIdentity."""
    text = raw.strip()
    kind = IdentityKind.EMAIL

    def bad(why: str) -> InvalidIdentity:
        return InvalidIdentity(kind, raw, why)

    if not text:
        raise bad("empty")
    if len(text) > MAX_EMAIL_CHARS:
        raise bad(f"longer than {MAX_EMAIL_CHARS} characters")
    if text.count("@") != 1:
        raise bad("an address has exactly one @")
    if _EMAIL_FORBIDDEN.search(text) or not text.isprintable():
        raise bad("holds blanks, quotes, brackets or control characters")
    local, domain = text.split("@")
    if not local:
        raise bad("nothing before the @")
    if len(local) > MAX_EMAIL_LOCAL_CHARS:
        raise bad(f"part before the @ longer than {MAX_EMAIL_LOCAL_CHARS} characters")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise bad("misplaced dot before the @")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_EMAIL_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise bad("the domain is not a dotted host name")
    return Identity(kind, f"{local.lower()}@{domain.lower()}")


def normalise_chat_id(raw: str) -> Identity:
    """A chat provider's visitor id, trimmed; case and inner characters are kept. Raises
    InvalidIdentity."""
    text = raw.strip()
    kind = IdentityKind.CHAT
    if not text:
        raise InvalidIdentity(kind, raw, "empty")
    if len(text) > MAX_CHAT_ID_CHARS:
        raise InvalidIdentity(kind, raw, f"longer than {MAX_CHAT_ID_CHARS} characters")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise InvalidIdentity(kind, raw, "holds blanks or control characters")
    return Identity(kind, text)


def normalise_whatsapp_id(raw: str) -> Identity:
    """Any form of a WhatsApp id to the Cloud API's `wa_id`: digits only, no `+`
    (`whatsapp:+39 333 123 4567`, `393331234567@s.whatsapp.net` → `393331234567`).

    Checked for shape and for a country code that exists, not against the numbering plans: a
    `wa_id` is WhatsApp's own canonical form and may differ from the number's E.164 (Mexico's
    `521...` mobiles, older Brazilian mobiles without the ninth digit). Raises InvalidIdentity.
    """
    text = raw.strip()
    kind = IdentityKind.WHATSAPP
    if text[:9].lower() == "whatsapp:":
        text = text[9:].strip()
    text = _WA_SUFFIX.sub("", text)
    text = _WA_SEPARATORS.sub("", text.removeprefix("+"))
    if not text:
        raise InvalidIdentity(kind, raw, "empty")
    if not (text.isascii() and text.isdigit()):
        raise InvalidIdentity(kind, raw, "a WhatsApp id is an international number, digits only")
    if not MIN_WHATSAPP_DIGITS <= len(text) <= MAX_WHATSAPP_DIGITS:
        raise InvalidIdentity(
            kind, raw, f"{len(text)} digits, not {MIN_WHATSAPP_DIGITS} to {MAX_WHATSAPP_DIGITS}"
        )
    if text.startswith("0"):
        raise InvalidIdentity(kind, raw, "an international number does not start with 0")
    try:
        phonenumbers.parse("+" + text)
    except phonenumbers.NumberParseException:
        raise InvalidIdentity(kind, raw, "no such country code") from None
    return Identity(kind, text)


def normalise_identity(kind: IdentityKind, raw: str, phones: PhoneNormaliser) -> Identity:
    """`raw` normalised as an identity of `kind`; raises InvalidIdentity saying what is wrong.
    For values given as identities (an agent linking a number, a stored identity)."""
    if kind is IdentityKind.PHONE:
        phone = phones.normalise(raw)
        if isinstance(phone, CallerProblem):
            raise InvalidIdentity(kind, raw, f"{phone} phone number")
        return phone
    if kind is IdentityKind.EMAIL:
        return normalise_email(raw)
    if kind is IdentityKind.WHATSAPP:
        return normalise_whatsapp_id(raw)
    if kind is IdentityKind.CHAT:
        return normalise_chat_id(raw)
    raise AssertionError(f"unhandled identity kind {kind!r}")


def normalise(kind: IdentityKind, raw: str, phones: PhoneNormaliser) -> Identity | None:
    """Like `normalise_identity()` for what a channel delivered: None when `raw` is not a usable
    identity (the contact goes on without one)."""
    try:
        return normalise_identity(kind, raw, phones)
    except InvalidIdentity:
        return None


def phone_twin(normalised: Identity) -> Identity | None:
    """A WhatsApp id is also the customer's phone number and vice versa: `whatsapp:39333...`
    and `phone:+39333...` (both already normalised)."""
    if normalised.kind is IdentityKind.WHATSAPP:
        return Identity(IdentityKind.PHONE, "+" + normalised.value)
    if normalised.kind is IdentityKind.PHONE:
        return Identity(IdentityKind.WHATSAPP, normalised.value.removeprefix("+"))
    return None
