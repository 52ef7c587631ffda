"""A circuit breaker per backend, so a backend that keeps failing stops costing every call.

Rules (the table below is the whole state machine):
- CLOSED: calls go through. `failure_threshold` consecutive failures open the circuit.
- OPEN: calls are refused without touching the backend until `open_s` has passed, then the next
  `allow()` moves to HALF_OPEN.
- HALF_OPEN: exactly one trial call is let through at a time; success closes the circuit,
  failure opens it again for another `open_s`.
Time comes from an injected clock (`monotonic()`), so tests drive it without sleeping.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from context.ports import Clock


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class _Event(enum.Enum):
    FAILURE_LIMIT = "failure_limit"  # consecutive failures reached the threshold
    COOLDOWN_OVER = "cooldown_over"
    TRIAL_OK = "trial_ok"
    TRIAL_FAILED = "trial_failed"


_TRANSITIONS: dict[tuple[BreakerState, _Event], BreakerState] = {
    (BreakerState.CLOSED, _Event.FAILURE_LIMIT): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.COOLDOWN_OVER): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, _Event.TRIAL_OK): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, _Event.TRIAL_FAILED): BreakerState.OPEN,
}


@dataclass(slots=True)
class CircuitBreaker:
    clock: Clock
    failure_threshold: int = 5
    open_s: float = 10.0
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    times_opened: int = field(default=0)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.open_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_s > 0")

    def _fire(self, event: _Event) -> None:
        self.state = _TRANSITIONS[(self.state, event)]
        if self.state is BreakerState.OPEN:
            self.opened_at = self.clock.monotonic()
            self.times_opened += 1
        self.trial_in_flight = False

    def allow(self) -> bool:
        """May we call the backend now? In HALF_OPEN this reserves the single trial call."""
        if self.state is BreakerState.OPEN:
            if self.clock.monotonic() - self.opened_at < self.open_s:
                return False
            self._fire(_Event.COOLDOWN_OVER)
        if self.state is BreakerState.HALF_OPEN:
            if self.trial_in_flight:
                return False
            self.trial_in_flight = True
        return True

    def record_success(self) -> None:
        self.consecutive_failures = 0
        if self.state is BreakerState.HALF_OPEN:
            self._fire(_Event.TRIAL_OK)

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._fire(_Event.TRIAL_FAILED)
        elif (
            self.state is BreakerState.CLOSED
            and self.consecutive_failures >= self.failure_threshold
        ):
            self._fire(_Event.FAILURE_LIMIT)

    def record_abandoned(self) -> None:
        """The call ended before the backend answered: neither success nor failure, but a
        half-open trial slot must be given back."""
        self.trial_in_flight = False
