"""Session ids, API tokens and CSRF tokens: random secrets, stored only as digests.

A session id or token carries 256 bits from `secrets`: a SHA-256 digest is enough to store it
(nobody can brute-force the preimage of a random 256-bit value; passwords, which people choose,
get argon2 instead). The CSRF token is derived from the session id, so it is tied to the
session, needs no storage, and reveals nothing about the id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SESSION_BYTES = 32
TOKEN_PREFIX = "cnt_"  # recognisable in a leaked log or a secret scanner


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_BYTES)


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(SESSION_BYTES)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def csrf_for(session_id: str) -> str:
    mac = hashlib.sha256(b"centralino-csrf\x00" + session_id.encode()).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_for(session_id).encode(), presented.encode())


def new_form_nonce() -> str:
    """The login form's own CSRF value (double-submitted in a cookie: no session exists yet)."""
    return secrets.token_urlsafe(24)


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())
