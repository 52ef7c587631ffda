"""How a demo backend misbehaves: latency, random failures and deliberate faults.

Mutable on purpose (held in the app under `BEHAVIOUR`), so the demo and the tests can make a
running backend slow, failing or hanging and watch the screen-pop say what is missing.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import numpy as np
from aiohttp import web
from aiohttp.typedefs import Handler


class Fault(enum.StrEnum):
    NONE = "none"
    MALFORMED_JSON = "malformed_json"  # 200 with a body that is not JSON
    OVERSIZED = "oversized"  # 200 with a multi-megabyte body
    HANG = "hang"  # accepts the request and never answers


# Big enough to trip any sane connector limit (the default is 256 KiB).
OVERSIZED_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class DemoBehaviour:
    latency_ms: float
    failure_rate: float
    rng: np.random.Generator
    jitter_ms: float = 0.0  # std-dev of a normal jitter added to latency (clipped at 0)
    fault: Fault = Fault.NONE
    requests: int = 0  # served so far (tests check the circuit breaker stopped calls)

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("latency_ms must be >= 0 and failure_rate in [0, 1]")


BEHAVIOUR: web.AppKey[DemoBehaviour] = web.AppKey("demo_behaviour", DemoBehaviour)


@web.middleware
async def behaviour_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    b = request.app[BEHAVIOUR]
    b.requests += 1
    delay_ms = b.latency_ms
    if b.jitter_ms > 0:
        delay_ms = max(0.0, delay_ms + float(b.rng.normal(0.0, b.jitter_ms)))
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000.0)
    if b.fault is Fault.HANG:
        await asyncio.Event().wait()  # until the client gives up and the server cancels us
    if b.failure_rate > 0 and float(b.rng.random()) < b.failure_rate:
        return web.json_response({"error": "internal error (demo failure)"}, status=500)
    if b.fault is Fault.MALFORMED_JSON:
        return web.Response(text='{"customers": [{"code": "E1", ', content_type="application/json")
    if b.fault is Fault.OVERSIZED:
        return web.Response(
            body=b"[" + b"0," * (OVERSIZED_BYTES // 2) + b"0]", content_type="application/json"
        )
    return await handler(request)


def demo_app(
    *,
    latency_ms: float,
    failure_rate: float,
    rng: np.random.Generator,
    jitter_ms: float = 0.0,
    fault: Fault = Fault.NONE,
) -> web.Application:
    """An aiohttp app that misbehaves as configured (the ERP and CRM add their routes)."""
    app = web.Application(middlewares=[behaviour_middleware])
    app[BEHAVIOUR] = DemoBehaviour(
        latency_ms=latency_ms, failure_rate=failure_rate, rng=rng, jitter_ms=jitter_ms, fault=fault
    )
    return app
