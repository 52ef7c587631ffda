"""Failed-login counters in Redis, shared by every Centralino process (a guesser cannot
spread attempts across processes). Fixed windows: the first failure starts the window."""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from centralino.access.policy import LoginLimits, login_blocked


def _key(kind: str, value: str) -> str:
    # Hashed: an attacker's chosen "username" never becomes a raw Redis key.
    return f"login-fail:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


class RedisLoginLimiter:
    def __init__(self, *, redis: aioredis.Redis, limits: LoginLimits) -> None:
        self._redis = redis
        self.limits = limits

    async def blocked(self, *, username: str, address: str) -> bool:
        user, addr = await self._redis.mget(_key("user", username), _key("addr", address))
        return login_blocked(
            user_failures=int(user or 0), address_failures=int(addr or 0), limits=self.limits
        )

    async def failed(self, *, username: str, address: str) -> None:
        window = max(1, int(self.limits.window_s))
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (_key("user", username), _key("addr", address)):
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            await pipe.execute()

    async def succeeded(self, *, username: str) -> None:
        await self._redis.delete(_key("user", username))
