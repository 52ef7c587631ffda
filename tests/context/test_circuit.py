from __future__ import annotations

import pytest

from context.circuit import BreakerState, CircuitBreaker
from tests.context.fakes import FakeClock


def _state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call, so mypy does not narrow the attribute across statements


def test_given_consecutive_failures_when_threshold_reached_then_calls_refused() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock, failure_threshold=3, open_s=5.0)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(clock=FakeClock(), failure_threshold=2, open_s=5.0)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED


def test_after_cooldown_one_trial_then_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock, failure_threshold=1, open_s=5.0)
    breaker.record_failure()
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.2)
    assert breaker.allow()  # the one trial
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()  # no second concurrent trial
    breaker.record_success()
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_a_failed_trial_opens_again_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock, failure_threshold=1, open_s=5.0)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.advance(4.0)
    assert not breaker.allow()


def test_an_abandoned_trial_gives_the_slot_back() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock, failure_threshold=1, open_s=1.0)
    breaker.record_failure()
    clock.advance(1.0)
    assert breaker.allow()
    breaker.record_abandoned()
    assert breaker.allow()


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(clock=FakeClock(), failure_threshold=0)
