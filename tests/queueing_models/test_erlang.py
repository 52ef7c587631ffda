"""Erlang B / C, service level, ASA and Erlang C staffing against high-precision references.

References are computed here with mpmath at 50 digits from the textbook definitions
(Poisson mass over Poisson distribution function, Erlang C from Erlang B), not from the
library's own formulas.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import queueing_models as qm

REL = 1e-12
# Below this the reference is reported as "underflows": the library may return 0.
TINY = 1e-280


def _mp_b(a: float, n: int) -> mp.mpf:
    """Erlang B = P(X = N) / P(X <= N), X ~ Poisson(A), at 50 digits."""
    with mp.workdps(50):
        am = mp.mpf(a)
        if n == 0:
            return mp.mpf(1)
        pmf = mp.exp(n * mp.log(am) - am - mp.loggamma(n + 1))
        cdf = mp.gammainc(n + 1, am, mp.inf, regularized=True)
        return pmf / cdf


def _mp_c(a: float, n: int) -> mp.mpf:
    with mp.workdps(50):
        if n <= a:
            return mp.mpf(1)
        b = _mp_b(a, n)
        am = mp.mpf(a)
        return n * b / (n - am * (1 - b))


def _mp_sl(a: float, n: int, aht: float, t: float) -> mp.mpf:
    with mp.workdps(50):
        if n <= a:
            return mp.mpf(0)
        return 1 - _mp_c(a, n) * mp.exp(-(n - mp.mpf(a)) * mp.mpf(t) / mp.mpf(aht))


def _mp_asa(a: float, n: int, aht: float) -> mp.mpf:
    with mp.workdps(50):
        return _mp_c(a, n) * mp.mpf(aht) / (n - mp.mpf(a))


def _close(got: float, ref: mp.mpf, rel: float = REL) -> bool:
    if ref < TINY:
        return 0.0 <= got < 1e-270
    return bool(abs(mp.mpf(got) - ref) <= rel * ref)


def _cases() -> list[tuple[float, int]]:
    rng = np.random.default_rng(20240401)
    cases: list[tuple[float, int]] = []
    for a in np.geomspace(1e-6, 1e5, 23).tolist():
        root = math.sqrt(a)
        for k in (-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 4.0):
            n = max(1, math.floor(a + k * root) + 1)
            cases.append((a, n))
    for n in (1, 2, 10, 137, 1000, 25_000, 100_000, 150_000):
        cases.append((n - 0.001, n))  # agents - traffic = 0.001
        cases.append((float(n), n))  # integer traffic
    cases += [(1e5, 150_000), (1e5, 50_000), (1e5, 99_000), (3.0, 200), (1e-6, 1), (1e-6, 3)]
    for _ in range(40):
        a = float(10 ** rng.uniform(-6, 5))
        n = max(1, math.floor(a + rng.normal(0, 2) * math.sqrt(a)) + int(rng.integers(0, 3)))
        cases.append((a, n))
    return cases


CASES = _cases()


def test_reference_matches_the_definition_for_small_systems() -> None:
    # Guard the reference itself: Erlang B as the finite sum sum_k A^k/k!.
    with mp.workdps(50):
        for a, n in [(2.0, 3), (0.5, 1), (7.3, 12), (40.0, 35)]:
            am = mp.mpf(a)
            direct = (am**n / mp.factorial(n)) / mp.fsum(
                am**k / mp.factorial(k) for k in range(n + 1)
            )
            assert abs(_mp_b(a, n) - direct) < mp.mpf(10) ** -40


def test_erlang_b_and_c_match_mpmath_scalar_and_array() -> None:
    a_arr = np.array([a for a, _ in CASES])
    n_arr = np.array([n for _, n in CASES])
    b_vec = qm.erlang_b(a_arr, n_arr)
    c_vec = qm.erlang_c(a_arr, n_arr)
    for i, (a, n) in enumerate(CASES):
        rb, rc = _mp_b(a, n), _mp_c(a, n)
        assert _close(qm.erlang_b(a, n), rb), (a, n, qm.erlang_b(a, n), rb)
        assert _close(float(b_vec[i]), rb), (a, n, b_vec[i], rb)
        assert _close(qm.erlang_c(a, n), rc), (a, n, qm.erlang_c(a, n), rc)
        assert _close(float(c_vec[i]), rc), (a, n, c_vec[i], rc)


def test_service_level_and_asa_match_mpmath() -> None:
    stable = [(a, n) for a, n in CASES if n > a]
    a_arr = np.array([a for a, _ in stable])
    n_arr = np.array([n for _, n in stable])
    for aht, t in [(180.0, 20.0), (240.0, 0.0), (30.0, 600.0)]:
        sl_vec = qm.service_level(a_arr, n_arr, aht, t)
        asa_vec = qm.asa(a_arr, n_arr, aht)
        for i, (a, n) in enumerate(stable):
            ref = _mp_sl(a, n, aht, t)
            assert _close(qm.service_level(a, n, aht, t), ref), (a, n, aht, t)
            assert _close(float(sl_vec[i]), ref), (a, n, aht, t)
            ref_asa = _mp_asa(a, n, aht)
            assert _close(qm.asa(a, n, aht), ref_asa), (a, n, aht)
            assert _close(float(asa_vec[i]), ref_asa), (a, n, aht)


def test_unstable_queue_conventions() -> None:
    assert qm.erlang_c(10.0, 10) == 1.0
    assert qm.erlang_c(10.5, 10) == 1.0
    assert qm.service_level(10.0, 10, 180.0, 20.0) == 0.0
    assert qm.asa(12.0, 10, 180.0) == math.inf
    out = qm.erlang_c(np.array([10.0, 9.0]), 10)
    assert out[0] == 1.0 and 0.0 < out[1] < 1.0
    assert np.isinf(qm.asa(np.array([12.0]), np.array([10]), 180.0)).all()


def test_edge_values() -> None:
    assert qm.erlang_b(0.0, 0) == 1.0
    assert qm.erlang_b(5.0, 0) == 1.0
    assert qm.erlang_b(0.0, 3) == 0.0
    assert qm.erlang_c(0.0, 1) == 0.0
    assert qm.service_level(0.0, 1, 180.0, 0.0) == 1.0
    assert qm.asa(0.0, 1, 180.0) == 0.0
    assert qm.service_level(5.0, 10, 180.0, math.inf) == 1.0
    # Far tail underflows cleanly to 0 instead of NaN.
    assert qm.erlang_b(1.0, 150_000) == 0.0
    assert qm.erlang_c(np.array([1.0]), np.array([150_000]))[0] == 0.0


def test_shapes_and_types() -> None:
    assert isinstance(qm.erlang_c(100.0, 110), float)
    assert isinstance(qm.erlang_c(np.float64(100.0), 110), np.floating)
    grid = qm.erlang_c(np.array([[50.0], [100.0]]), np.array([60, 110, 120]))
    assert grid.shape == (2, 3)
    assert qm.agents_for_service_level(np.array([[0.1, 0.2]]), 180.0, 0.8, 20.0).shape == (1, 2)
    assert isinstance(qm.agents_for_service_level(0.1, 180.0, 0.8, 20.0), int)


@pytest.mark.parametrize(
    "call",
    [
        lambda: qm.erlang_b(-1.0, 3),
        lambda: qm.erlang_b(1.0, 2.5),
        lambda: qm.erlang_c(float("nan"), 3),
        lambda: qm.erlang_c(np.array([1.0, -2.0]), 3),
        lambda: qm.erlang_c(1.0, np.array([3, -1])),
        lambda: qm.service_level(1.0, 3, 0.0, 20.0),
        lambda: qm.service_level(1.0, 3, 180.0, -1.0),
        lambda: qm.asa(1.0, 3, -180.0),
        lambda: qm.agents_for_service_level(1.0, 180.0, 1.0, 20.0),
        lambda: qm.agents_for_service_level(np.array([1.0]), 180.0, -0.1, 20.0),
        lambda: qm.agents_for_asa(1.0, 180.0, 0.0),
    ],
)
def test_misuse_raises_value_error(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_numpy_error_state_is_left_alone() -> None:
    before = np.geterr()
    np.seterr(all="raise")
    try:
        # Inputs that overflow, underflow and divide internally must not raise or leak.
        qm.erlang_c(np.array([1.0, 1e5, 0.0, 1e5]), np.array([150_000, 50_000, 1, 100_001]))
        qm.service_level(np.array([1e-6, 99_999.999]), np.array([3, 100_000]), 180.0, 20.0)
        qm.agents_for_service_level(np.array([0.0, 1e-9, 500.0]), 180.0, 0.8, 20.0)
        qm.erlang_a(np.array([0.0, 1.0, 50.0]), 240.0, 60.0, np.array([1, 3, 10_000]), 20.0)
        assert np.geterr()["over"] == "raise"
    finally:
        np.seterr(**before)
    assert np.geterr() == before


traffic_st = st.floats(min_value=1e-6, max_value=2e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(a=traffic_st, k=st.integers(min_value=0, max_value=400))
def test_probabilities_bounded_and_monotone_in_agents(a: float, k: int) -> None:
    n = np.arange(max(0, math.floor(a) - 200 + k), math.floor(a) + k + 3)
    b = qm.erlang_b(a, n)
    c = qm.erlang_c(a, n)
    sl = qm.service_level(a, n, 180.0, 20.0)
    w = qm.asa(a, n, 180.0)
    for p in (b, c, sl):
        assert not np.isnan(p).any()
        assert ((p >= 0.0) & (p <= 1.0)).all()
    assert not np.isnan(w).any() and (w >= 0).all()
    # Monotone up to rounding (a few units in the last place).
    ulps = 4e-16
    assert (np.diff(b) <= ulps * b[:-1]).all()
    assert (np.diff(c) <= ulps * c[:-1]).all()
    assert (np.diff(sl) >= -ulps).all()
    stable = n > a
    assert np.isinf(w[~stable]).all()
    assert (np.diff(w[stable]) <= ulps * w[stable][:-1]).all()


# --------------------------------------------------------------------------- staffing


def _brute_sl(lam: float, aht: float, target: float, t: float) -> int:
    a = lam * aht
    n = math.floor(a) + 1
    while _mp_sl(a, n, aht, t) < target:
        n += 1
    return n


def _brute_asa(lam: float, aht: float, target: float) -> int:
    a = lam * aht
    n = math.floor(a) + 1
    while _mp_asa(a, n, aht) > target:
        n += 1
    return n


STAFFING = [
    # (arrival rate /s, aht s, target, t s)
    (1000 / 3600, 180.0, 0.8, 20.0),
    (0.3 / 256, 256.0, 0.8, 20.0),  # traffic 0.3 < 0.5
    (0.001, 60.0, 0.95, 5.0),  # traffic 0.06
    (5 / 256, 256.0, 0.8, 20.0),  # integer traffic 5 (exact in binary)
    (50 / 256, 256.0, 0.9, 10.0),  # integer traffic 50
    (12 / 256, 256.0, 0.0, 20.0),  # target 0: smallest stable N = A + 1
    (3000 / 900, 240.0, 0.8, 20.0),
    (2.0, 300.0, 0.95, 60.0),
]


def test_agents_for_service_level_is_the_exact_minimum() -> None:
    for lam, aht, target, t in STAFFING:
        want = _brute_sl(lam, aht, target, t)
        assert qm.agents_for_service_level(lam, aht, target, t) == want, (lam, aht, target, t)
        assert qm.service_level(lam * aht, want, aht, t) >= target
        if want - 1 > lam * aht:
            assert qm.service_level(lam * aht, want - 1, aht, t) < target
    lam_a = np.array([s[0] for s in STAFFING])
    aht_a = np.array([s[1] for s in STAFFING])
    goal_a = np.array([s[2] for s in STAFFING])
    t_a = np.array([s[3] for s in STAFFING])
    vec = qm.agents_for_service_level(lam_a, aht_a, goal_a, t_a)
    assert vec.tolist() == [_brute_sl(*s) for s in STAFFING]


def test_integer_traffic_needs_more_than_the_traffic() -> None:
    assert (5 / 256) * 256.0 == 5.0
    assert qm.agents_for_service_level(5 / 256, 256.0, 0.0, 20.0) == 6
    assert qm.agents_for_asa(5 / 256, 256.0, 1e9) == 6


def test_agents_for_asa_is_the_exact_minimum() -> None:
    for lam, aht, goal in [(1000 / 3600, 180.0, 15.0), (0.3 / 256, 256.0, 1.0), (2.0, 300.0, 5.0)]:
        want = _brute_asa(lam, aht, goal)
        assert qm.agents_for_asa(lam, aht, goal) == want
        assert qm.agents_for_asa(np.array([lam]), aht, goal).tolist() == [want]


@settings(max_examples=60, deadline=None)
@given(
    lam=st.floats(min_value=1e-4, max_value=5.0),
    aht=st.floats(min_value=10.0, max_value=900.0),
    target=st.floats(min_value=0.0, max_value=0.99),
    t=st.floats(min_value=0.0, max_value=120.0),
)
def test_staffing_is_minimal_by_the_library_itself(
    lam: float, aht: float, target: float, t: float
) -> None:
    n = qm.agents_for_service_level(lam, aht, target, t)
    a = lam * aht
    assert n > a
    # met within the library's tolerance (ties count as met; test_staffing_ties.py)
    assert qm.service_level(a, n, aht, t) >= target * (1 - qm.TARGET_RTOL)
    if n - 1 > a:
        assert qm.service_level(a, n - 1, aht, t) < target * (1 - qm.TARGET_RTOL)
    assert qm.agents_for_service_level(np.array([lam]), aht, target, t)[0] == n


def test_staffing_plan_day_matches_interval_by_interval() -> None:
    volumes = np.linspace(50, 3000, 96)
    plan = qm.staffing_plan(volumes, 900.0, 240.0, 0.8, 20.0)
    assert plan.shape == (96,) and plan.dtype == np.int64
    assert plan.tolist() == [
        qm.agents_for_service_level(float(v) / 900.0, 240.0, 0.8, 20.0) for v in volumes
    ]
    assert (np.diff(plan) >= 0).all()
    with_ab = qm.staffing_plan(volumes[:8], 900.0, 240.0, 0.8, 20.0, patience=180.0)
    assert with_ab.tolist() == [
        qm.agents_for_erlang_a(float(v) / 900.0, 240.0, 180.0, 0.8, "sl_offered", 20.0)
        for v in volumes[:8]
    ]
