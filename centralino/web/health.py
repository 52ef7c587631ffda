"""Liveness and readiness.

`/healthz` is liveness: the process runs and its event loop answers. It probes nothing, so a
PostgreSQL or Redis outage never gets a live process restarted.

`/readyz` is readiness: whether this instance can take calls now. Each dependency is a named
probe, either *required* (PostgreSQL, Redis, the FastAGI listener, the AMI link: without one of
them a call cannot be served) or *optional* (an ERP/CRM backend's circuit: with it open calls are
still taken, the pop lacks that backend's facts). The verdict, as a table:

    required probes   optional probes   status       HTTP
    all ok            all ok            "ready"      200
    all ok            some fail         "degraded"   200   (the failing ones listed)
    some fail         any               "not ready"  503
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypedDict

Check = Callable[[], Awaitable[str]]

# A dependency that cannot answer a trivial probe in this long is reported as down.
CHECK_TIMEOUT_S = 2.0


class CheckResult(TypedDict):
    ok: bool
    required: bool
    detail: str


class ReadinessReport(TypedDict):
    status: Literal["ready", "degraded", "not ready"]
    # Failing probes by kind: `unready` (required) and `degraded` (optional); empty when ok.
    unready: list[str]
    degraded: list[str]
    checks: dict[str, CheckResult]


@dataclass(frozen=True, slots=True)
class _Probe:
    check: Check
    required: bool


@dataclass(slots=True)
class Readiness:
    """Named probes; each returns a short detail string or raises to report failure."""

    probes: dict[str, _Probe] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, check: Check, *, required: bool = True) -> None:
        """Register a probe; `required=False` makes its failure degrade, not unready."""
        self.probes[name] = _Probe(check=check, required=required)

    async def report(self) -> ReadinessReport:
        async def run(probe: _Probe) -> CheckResult:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    detail = await probe.check()
                return {"ok": True, "required": probe.required, "detail": detail}
            except Exception as exc:  # a probe failing is the information we report
                detail = f"{type(exc).__name__}: {exc}"[:200]
                return {"ok": False, "required": probe.required, "detail": detail}

        names = list(self.probes)
        results = await asyncio.gather(*(run(self.probes[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        unready = [n for n, r in checks.items() if not r["ok"] and r["required"]]
        degraded = [n for n, r in checks.items() if not r["ok"] and not r["required"]]
        status: Literal["ready", "degraded", "not ready"] = (
            "not ready" if unready else "degraded" if degraded else "ready"
        )
        return {"status": status, "unready": unready, "degraded": degraded, "checks": checks}


def http_status(report: ReadinessReport) -> int:
    """200 while calls can be taken (ready or degraded), 503 otherwise."""
    return 503 if report["unready"] else 200
