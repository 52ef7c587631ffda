"""Erlang A (M/M/N+M) against references built here from the birth-death chain itself.

The references sum the stationary distribution state by state in mpmath (no closed forms):
an arrival that finds ``N + j`` callers waits ``V = sum_{m=0}^{j} Exp(N mu + m theta)``
(each caller ahead either reaches an agent or abandons), and is answered iff its own
exponential patience exceeds ``V``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import queueing_models as qm

REL = 1e-9


def _mp_state_sums(lam: float, aht: float, pat: float, n: int, dps: int = 30) -> dict[str, mp.mpf]:
    with mp.workdps(dps):
        lam_m, mu, th = mp.mpf(lam), 1 / mp.mpf(aht), 1 / mp.mpf(pat)
        a = lam_m / mu
        p = mp.mpf(1)
        below = mp.mpf(1)  # sum of unnormalised P(k), k < n
        for k in range(1, n):
            p = p * a / k
            below += p
        p_n = p * a / n
        eps = mp.mpf(10) ** (-dps)
        waiting = served_w = v_served = q_mean = mp.mpf(0)
        term, lt, lt_sum, j = p_n, mp.mpf(1), mp.mpf(0), 0
        while True:
            rate = n * mu + j * th
            lt = lt * rate / (rate + th)  # E[exp(-theta V) | j]
            lt_sum += 1 / (rate + th)  # d/ds log, gives E[V exp(-theta V) | j]
            waiting += term
            served_w += term * lt
            v_served += term * lt * lt_sum
            q_mean += j * term
            j += 1
            term = term * lam_m / (n * mu + j * th)
            if term < eps * (below + waiting) and n * mu + j * th > lam_m:
                break
        z = below + waiting
        p_wait = waiting / z
        p_ab = th * (q_mean / z) / lam_m
        # Self-check of the reference: abandonment two ways (Little vs patience race).
        assert abs(p_ab - (waiting - served_w) / z) < mp.mpf(10) ** (-dps + 8) * (1 + 1 / p_ab)
        return {
            "p_wait": p_wait,
            "p_abandon": p_ab,
            "asa": (v_served / z) / (1 - p_ab),
            "mean_wait": (q_mean / z) / lam_m,
            "occupancy": lam_m * (1 - p_ab) / (n * mu),
            "p_n": p_n / z,
            "p_no_wait": below / z,  # not 1 - p_wait: that cancels when overloaded
        }


CASES = [
    # (arrival rate /s, aht s, patience s, agents)
    (100 / 900, 240.0, 180.0, 25),  # below the traffic (26.7 Erlangs)
    (100 / 900, 240.0, 180.0, 35),
    (1 / 60, 300.0, 5.0, 1),  # patience of seconds
    (0.5, 240.0, 3600.0, 130),  # an hour
    (0.5, 240.0, 7200.0, 100),  # two hours, well below the traffic
    (5.0, 240.0, 30.0, 1000),  # heavy overload, short patience
    (41.0, 240.0, 1800.0, 10_000),  # ten thousand agents
    (2.0, 180.0, 600.0, 500),  # lightly loaded: waits are rare
    (0.5, 240.0, 3600.0, 210),  # lightly loaded, patient: P(Ab | wait) by its series
]


@pytest.mark.parametrize(("lam", "aht", "pat", "n"), CASES)
def test_erlang_a_matches_state_sums(lam: float, aht: float, pat: float, n: int) -> None:
    ref = _mp_state_sums(lam, aht, pat, n)
    got = qm.erlang_a(lam, aht, pat, n, 20.0)
    for key in ("p_wait", "p_abandon", "asa", "mean_wait", "occupancy"):
        value = getattr(got, key)
        assert isinstance(value, float)
        assert abs(mp.mpf(value) - ref[key]) <= REL * ref[key], (key, value, ref[key])


def _mp_sl_by_density(
    lam: float, aht: float, pat: float, n: int, t: float
) -> tuple[mp.mpf, mp.mpf]:
    """(sl_offered, sl_virtual) by quadrature of the offered-wait density on V > 0:
    f(u) = P(state N) N mu exp(x (1 - e^{-theta u}) - N mu u), x = lambda / theta."""
    ref = _mp_state_sums(lam, aht, pat, n)
    with mp.workdps(30):
        mu, th, x = 1 / mp.mpf(aht), 1 / mp.mpf(pat), mp.mpf(lam) * pat

        def f(u: mp.mpf) -> mp.mpf:
            return ref["p_n"] * n * mu * mp.exp(x * (1 - mp.exp(-th * u)) - n * mu * u)

        # When overloaded the density peaks sharply where x theta e^{-theta u} = N mu.
        peak = mp.log(x * th / (n * mu)) / th if x * th > n * mu else mp.mpf(0)
        cuts = sorted({mp.mpf(0), mp.mpf(t), peak, peak * 0.8, peak * 1.2})
        # Sanity: the density integrates to P(W > 0).
        total = mp.quad(f, [*cuts, mp.inf])
        assert abs(total - ref["p_wait"]) < mp.mpf(10) ** -20
        # Short pieces keep the quadrature at full precision where f grows fast.
        pieces = mp.linspace(0, t, 17) if t > 0 else [0, 0]
        answered_in_t = mp.quad(lambda u: f(u) * mp.exp(-th * u), pieces)
        offered = ref["p_no_wait"] + answered_in_t
        virtual = ref["p_no_wait"] + mp.quad(f, pieces)
        return offered, virtual


@pytest.mark.parametrize(
    ("lam", "aht", "pat", "n"),
    [*CASES[:4], (1 / 6, 240.0, 600.0, 30), (1.0, 10.0, 2000.0, 6)],  # last two: overloaded
)
def test_service_levels_match_the_wait_density(lam: float, aht: float, pat: float, n: int) -> None:
    for t in (0.0, 20.0, 90.0):
        offered, virtual = _mp_sl_by_density(lam, aht, pat, n, t)
        got = qm.erlang_a(lam, aht, pat, n, t)
        assert abs(mp.mpf(got.sl_offered) - offered) <= REL * offered, (t, got, offered)
        assert abs(mp.mpf(got.sl_virtual) - virtual) <= REL * virtual, (t, got, virtual)
        p_ab = mp.mpf(got.p_abandon)
        assert abs(got.sl_answered - offered / (1 - p_ab)) <= REL


def test_service_levels_by_hypoexponential_sum() -> None:
    # Independent of the density formula: condition on j callers ahead and use the
    # hypoexponential law of V (distinct rates N mu + m theta), at high precision.
    lam, aht, pat, n, t = 0.02, 120.0, 90.0, 3, 30.0
    ref = _mp_state_sums(lam, aht, pat, n, dps=60)
    with mp.workdps(200):
        mu, th = 1 / mp.mpf(aht), 1 / mp.mpf(pat)
        z_pn = ref["p_n"]
        offered = 1 - ref["p_wait"]
        virtual = 1 - ref["p_wait"]
        weight = z_pn
        for j in range(60):
            rates = [n * mu + m * th for m in range(j + 1)]
            coef = [
                mp.fprod(rk / (rk - rm) for k, rk in enumerate(rates) if k != m)
                for m, rm in enumerate(rates)
            ]
            p_le_t = 1 - mp.fsum(cm * mp.exp(-rm * t) for cm, rm in zip(coef, rates, strict=True))
            served_le_t = mp.fsum(
                cm * rm * (1 - mp.exp(-(rm + th) * t)) / (rm + th)
                for cm, rm in zip(coef, rates, strict=True)
            )
            offered += weight * served_le_t
            virtual += weight * p_le_t
            weight = weight * lam / (n * mu + (j + 1) * th)
        got = qm.erlang_a(lam, aht, pat, n, t)
        assert abs(mp.mpf(got.sl_offered) - offered) <= REL * offered
        assert abs(mp.mpf(got.sl_virtual) - virtual) <= REL * virtual


def test_tends_to_erlang_c_as_patience_grows() -> None:
    a, n, aht, t = 100.0, 110, 180.0, 20.0
    c = qm.erlang_c(a, n)
    sl = qm.service_level(a, n, aht, t)
    w = qm.asa(a, n, aht)
    gaps = []
    for pat in (1e3, 1e5, 1e7, 1e9):
        r = qm.erlang_a(a / aht, aht, pat, n, t)
        gaps.append(abs(r.p_wait - c))
        assert r.p_abandon < 1.0 / pat * 1e3
    # The gap shrinks like aht / patience: a hundredfold per step.
    assert all(later < earlier / 50 for earlier, later in itertools.pairwise(gaps))
    r = qm.erlang_a(a / aht, aht, 1e9, n, t)
    assert abs(r.p_wait - c) < 1e-6 * c
    assert abs(r.sl_virtual - sl) < 1e-6
    assert abs(r.sl_offered - sl) < 1e-6
    assert abs(r.asa - w) < 1e-6 * w


def test_vectorised_equals_scalar_and_broadcasts() -> None:
    lam = np.array([c[0] for c in CASES])
    aht = np.array([c[1] for c in CASES])
    pat = np.array([c[2] for c in CASES])
    n = np.array([c[3] for c in CASES])
    vec = qm.erlang_a(lam, aht, pat, n, 20.0)
    for i, case in enumerate(CASES):
        one = qm.erlang_a(*case, 20.0)
        for key in ("p_wait", "p_abandon", "asa", "sl_offered", "sl_virtual", "occupancy"):
            assert getattr(vec, key)[i] == pytest.approx(getattr(one, key), rel=1e-14)
    grid = qm.erlang_a(np.array([[0.1], [0.2]]), 240.0, 120.0, np.array([20, 30, 40]), 20.0)
    assert grid.p_wait.shape == (2, 3)


def test_no_arrivals_and_misuse() -> None:
    idle = qm.erlang_a(0.0, 240.0, 60.0, 3, 20.0)
    assert (idle.p_wait, idle.p_abandon, idle.sl_offered, idle.asa) == (0.0, 0.0, 1.0, 0.0)
    bad_calls: list[Callable[[], object]] = [
        lambda: qm.erlang_a(1.0, 240.0, 60.0, 0, 20.0),
        lambda: qm.erlang_a(1.0, 240.0, 0.0, 3, 20.0),
        lambda: qm.erlang_a(1.0, 240.0, math.inf, 3, 20.0),
        lambda: qm.erlang_a(-1.0, 240.0, 60.0, 3, 20.0),
        lambda: qm.agents_for_erlang_a(1.0, 240.0, 60.0, 0.1, "asa", 20.0),  # type: ignore[arg-type]
        lambda: qm.agents_for_erlang_a(1.0, 240.0, 60.0, 1.0, "sl_offered", 20.0),
    ]
    for bad in bad_calls:
        with pytest.raises(ValueError):
            bad()


@settings(max_examples=80, deadline=None)
@given(
    lam=st.floats(min_value=1e-4, max_value=20.0),
    aht=st.floats(min_value=10.0, max_value=900.0),
    pat=st.floats(min_value=1.0, max_value=20_000.0),
    frac=st.floats(min_value=0.05, max_value=2.0),
    t=st.floats(min_value=0.0, max_value=300.0),
)
def test_figures_are_probabilities_and_monotone(
    lam: float, aht: float, pat: float, frac: float, t: float
) -> None:
    n0 = max(1, round(lam * aht * frac))
    n = np.array([n0, n0 + 1, n0 + 2])
    r = qm.erlang_a(lam, aht, pat, n, t)
    for key in ("p_wait", "p_abandon", "sl_offered", "sl_answered", "sl_virtual", "occupancy"):
        v = getattr(r, key)
        assert not np.isnan(v).any(), key
        assert ((v >= 0.0) & (v <= 1.0)).all(), (key, v)
    assert np.isfinite(r.asa).all() and (r.asa >= 0).all()
    assert (r.p_abandon <= r.p_wait * (1 + 1e-12)).all()
    tol = 1e-12
    assert (np.diff(r.p_wait) <= tol).all()
    assert (np.diff(r.p_abandon) <= tol).all()
    assert (np.diff(r.sl_offered) >= -tol).all()


def test_agents_for_erlang_a_is_the_exact_minimum() -> None:
    cases = [
        (100 / 900, 240.0, 180.0, 0.8, "sl_offered", 20.0),
        (100 / 900, 240.0, 180.0, 0.05, "p_abandon", 20.0),
        (2.0, 300.0, 30.0, 0.3, "p_abandon", 20.0),  # loose target: well below traffic 600
        (0.001, 60.0, 10.0, 0.9, "sl_offered", 5.0),
        (0.3 / 256, 256.0, 60.0, 0.0, "sl_offered", 20.0),
    ]
    for lam, aht, pat, goal, kind, t in cases:
        got = qm.agents_for_erlang_a(lam, aht, pat, goal, kind, t)  # type: ignore[arg-type]
        n = 1
        while True:
            r = qm.erlang_a(lam, aht, pat, n, t)
            if (r.p_abandon <= goal) if kind == "p_abandon" else (r.sl_offered >= goal):
                break
            n += 1
        assert got == n, (lam, aht, pat, goal, kind, t, got, n)
    assert qm.agents_for_erlang_a(2.0, 300.0, 30.0, 0.3, "p_abandon") < 2.0 * 300.0
    lam_v = np.linspace(0.05, 3.0, 12)
    vec = qm.agents_for_erlang_a(lam_v, 240.0, 180.0, 0.8, "sl_offered", 20.0)
    assert vec.tolist() == [
        qm.agents_for_erlang_a(float(x), 240.0, 180.0, 0.8, "sl_offered", 20.0) for x in lam_v
    ]
    ok = qm.erlang_a(lam_v, 240.0, 180.0, vec, 20.0).sl_offered
    short = qm.erlang_a(lam_v, 240.0, 180.0, np.maximum(vec - 1, 1), 20.0).sl_offered
    assert (ok >= 0.8).all()
    assert ((short < 0.8) | (vec == 1)).all()
