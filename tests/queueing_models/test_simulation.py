"""The discrete-event simulator against the formulas (fixed seeds, a few seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import queueing_models as qm


def _se(batches: tuple[float, ...]) -> float:
    """Batch-means standard error, floored so a lucky low spread cannot make it zero."""
    return max(float(np.std(batches, ddof=1)) / math.sqrt(len(batches)), 2e-3)


def test_simulated_erlang_a_agrees_with_the_formulas() -> None:
    lam, aht, pat, n, t = 100 / 900, 240.0, 180.0, 25, 20.0  # agents below the traffic
    sim = qm.simulate_mmn_abandon(
        lam, aht, pat, n, t, calls=120_000, rng=np.random.default_rng(20240611)
    )
    exact = qm.erlang_a(lam, aht, pat, n, t)
    assert abs(sim.p_wait - exact.p_wait) < 4 * _se(sim.batch_p_wait)
    assert abs(sim.sl_offered - exact.sl_offered) < 4 * _se(sim.batch_sl_offered)
    # Coarser figures without their own error estimate: a few percent.
    assert sim.p_abandon == pytest.approx(exact.p_abandon, rel=0.05)
    assert sim.asa == pytest.approx(exact.asa, rel=0.06)
    assert sim.mean_wait == pytest.approx(exact.mean_wait, rel=0.06)
    assert sim.sl_answered == pytest.approx(exact.sl_answered, abs=0.02)
    assert sim.sl_virtual == pytest.approx(exact.sl_virtual, abs=0.02)
    assert sim.occupancy == pytest.approx(exact.occupancy, abs=0.02)


def test_simulated_erlang_c_agrees_with_the_formulas() -> None:
    a, n, aht, t = 8.0, 10, 180.0, 20.0
    sim = qm.simulate_mmn(a / aht, aht, n, t, calls=120_000, rng=np.random.default_rng(7))
    assert abs(sim.p_wait - qm.erlang_c(a, n)) < 4 * _se(sim.batch_p_wait)
    assert abs(sim.sl_offered - qm.service_level(a, n, aht, t)) < 4 * _se(sim.batch_sl_offered)
    assert sim.p_abandon == 0.0
    assert sim.asa == pytest.approx(qm.asa(a, n, aht), rel=0.08)
    assert sim.occupancy == pytest.approx(a / n, abs=0.02)


def test_the_simulator_would_notice_a_wrong_formula() -> None:
    # The same run cannot be mistaken for a neighbouring staffing level.
    lam, aht, pat, t = 100 / 900, 240.0, 180.0, 20.0
    sim = qm.simulate_mmn_abandon(lam, aht, pat, 25, t, calls=120_000, rng=np.random.default_rng(3))
    other = qm.erlang_a(lam, aht, pat, 26, t)
    assert abs(sim.p_wait - other.p_wait) > 4 * _se(sim.batch_p_wait)


def test_simulator_is_reproducible_and_validates_input() -> None:
    one = qm.simulate_mmn(0.05, 100.0, 6, 10.0, calls=2_000, rng=np.random.default_rng(1))
    two = qm.simulate_mmn(0.05, 100.0, 6, 10.0, calls=2_000, rng=np.random.default_rng(1))
    assert one == two
    with pytest.raises(ValueError):
        qm.simulate_mmn(0.05, 100.0, 0, 10.0, calls=2_000, rng=np.random.default_rng(1))
