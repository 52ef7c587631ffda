"""Liveness and readiness: `/healthz` says the process is up and wired, `/readyz` names each
dependency and whether it answers now."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Check = Callable[[], Awaitable[str]]

# A dependency that cannot answer a trivial probe in this long is reported as down.
CHECK_TIMEOUT_S = 2.0


@dataclass(slots=True)
class Readiness:
    """Named probes; each returns a short detail string or raises to report failure."""

    checks: dict[str, Check] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def report(self) -> dict[str, dict[str, object]]:
        async def run(check: Check) -> dict[str, object]:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    return {"ok": True, "detail": await check()}
            except Exception as exc:  # a probe failing is the information we report
                return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}

        names = list(self.checks)
        results = await asyncio.gather(*(run(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))
