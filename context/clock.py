"""The real clock; tests pass their own object with the same two methods (see `ports.Clock`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SystemClock:
    """Wall time for records (aware UTC) and a monotonic clock for durations and deadlines."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
