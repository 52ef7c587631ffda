"""Password hashing with argon2id (argon2-cffi): memory-hard, so a stolen table costs an
attacker real hardware per guess. Hashing is CPU work (~50 ms); callers in the event loop run
it in a thread (`centralino.web.auth` does)."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        # argon2-cffi's defaults are RFC 9106's low-memory profile (argon2id, 64 MiB, t=3).
        self._hasher = hasher or argon2.PasswordHasher()
        # Verifying an unknown user's password against this costs what a real check costs,
        # so response times do not tell which usernames exist.
        self._dummy = self._hasher.hash("no such account: equal timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and (
                password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
