"""Staffing at exact ties: a target that N agents meet exactly is met by N agents.

Every staffing function compares a figure computed in floating point with the target; when
the exact figure equals the target the computed one lands a few ulps either side, and a
strict comparison then asks for one agent more than needed. The cases below are ties in
exact arithmetic (closed forms, checked here at 50 digits); the properties build ties from
the library's own figures and check that the answer is minimal within the tolerance.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import queueing_models as qm

HOUR_S = 3600.0
# The tolerance the library documents (qm.TARGET_RTOL); written out so that these tests
# fail, rather than error at import, against a library without one.
RTOL = 1e-9


def test_the_library_documents_its_tolerance() -> None:
    assert qm.TARGET_RTOL == RTOL


# --------------------------------------------------------------------------- Erlang C ties


def _mp_erlang_c(a: mp.mpf, n: int) -> mp.mpf:
    """Erlang C from the textbook sums (no library code)."""
    terms = [a**k / mp.factorial(k) for k in range(n)]
    top = a**n / mp.factorial(n) * n / (n - a)
    return top / (mp.fsum(terms) + top)


def _mp_asa(calls_per_h: float, aht_s: float, n: int) -> mp.mpf:
    with mp.workdps(50):
        a = mp.mpf(calls_per_h) / 3600 * mp.mpf(aht_s)
        return _mp_erlang_c(a, n) * mp.mpf(aht_s) / (n - a)


def _mp_sl(calls_per_h: float, aht_s: float, n: int, t_s: mp.mpf) -> mp.mpf:
    with mp.workdps(50):
        a = mp.mpf(calls_per_h) / 3600 * mp.mpf(aht_s)
        return 1 - _mp_erlang_c(a, n) * mp.exp(-(n - a) * t_s / mp.mpf(aht_s))


def test_asa_tie_ten_calls_an_hour_needs_two_agents() -> None:
    # 10 calls/h, AHT 240 s: A = 2/3 Erlang; with 2 agents C = 1/6 and ASA = 30 s exactly.
    assert abs(_mp_asa(10, 240.0, 2) - 30) < mp.mpf(10) ** -40
    assert _mp_asa(10, 240.0, 1) > 30
    assert qm.agents_for_asa(10 / HOUR_S, 240.0, 30.0) == 2
    assert qm.agents_for_asa(np.array([10 / HOUR_S]), 240.0, 30.0).tolist() == [2]


ASA_TIES = [
    # (calls/h, aht s, target ASA s, agents): ASA(agents) == target exactly
    (10.0, 240.0, 30.0, 2),
    (5.0, 240.0, 120.0, 1),  # M/M/1, rho = 1/3: ASA = rho / (1 - rho) * AHT
]


@pytest.mark.parametrize(("calls_h", "aht", "goal", "want"), ASA_TIES)
def test_asa_ties(calls_h: float, aht: float, goal: float, want: int) -> None:
    assert abs(_mp_asa(calls_h, aht, want) - mp.mpf(goal)) < mp.mpf(10) ** -40
    assert qm.agents_for_asa(calls_h / HOUR_S, aht, goal) == want
    assert qm.agents_for_asa(np.array([calls_h / HOUR_S] * 3), aht, goal).tolist() == [want] * 3


SL_TIES = [
    # (calls/h, aht s, target, t s, agents): SL(t) with `agents` equals the target exactly
    (10.0, 240.0, 5 / 6, 0.0, 2),  # C = 1/6, so SL(0) = 5/6
    (3.0, 240.0, 0.8, 0.0, 1),  # M/M/1 at rho = 0.2: SL(0) = 1 - rho
    (10.0, 240.0, 0.9, 180.0 * math.log(5 / 3), 2),  # 1 - e^{-t/180} / 6 = 0.9
]


@pytest.mark.parametrize(("calls_h", "aht", "goal", "t", "want"), SL_TIES)
def test_service_level_ties(calls_h: float, aht: float, goal: float, t: float, want: int) -> None:
    with mp.workdps(50):
        exact_t = 180 * mp.log(mp.mpf(5) / 3) if t > 0 else mp.mpf(0)
        # ties up to the rounding of the target and of t to float
        assert abs(_mp_sl(calls_h, aht, want, exact_t) - mp.mpf(goal)) < 1e-16
    lam = calls_h / HOUR_S
    assert qm.agents_for_service_level(lam, aht, goal, t) == want
    assert qm.agents_for_service_level(np.array([lam] * 3), aht, goal, t).tolist() == [want] * 3


def test_staffing_plan_meets_a_tie_with_the_tied_staffing() -> None:
    # 2.5 calls per quarter-hour is 10 calls/h: SL(0) = 5/6 with 2 agents.
    assert qm.staffing_plan([2.5, 2.5], 900.0, 240.0, 5 / 6, 0.0).tolist() == [2, 2]


# --------------------------------------------------------------------------- Erlang A ties


def _mp_erlang_a_when_patience_is_aht(
    calls_per_h: int, aht_s: float, n: int
) -> tuple[float, float]:
    """``(p_abandon, sl_offered at t = 0)`` at 50 digits when patience equals the AHT.

    With theta = mu every caller present leaves at rate mu whether served or waiting, so the
    number in system is Poisson(A) (M/M/inf); an arrival waits iff it finds ``X >= N``, and
    the abandonment rate is ``theta E[(X - N)^+]``, so ``p_abandon = E[(X - N)^+] / A``.
    """
    with mp.workdps(50):
        a = mp.mpf(calls_per_h) / 3600 * mp.mpf(aht_s)
        pk = [mp.exp(-a) * a**k / mp.factorial(k) for k in range(n)]
        excess = a - n + mp.fsum((n - k) * p for k, p in enumerate(pk))
        return float(excess / a), float(mp.fsum(pk))


ERLANG_A_TIES = [
    # (calls/h, aht = patience s, agents): chosen where a strict comparison asks for one more
    (10, 240.0, 2),
    (2, 240.0, 2),
    (8, 240.0, 3),
    (7, 240.0, 5),
]


@pytest.mark.parametrize(("calls_h", "aht", "want"), ERLANG_A_TIES)
def test_erlang_a_ties(calls_h: int, aht: float, want: int) -> None:
    p_abandon, sl_offered = _mp_erlang_a_when_patience_is_aht(calls_h, aht, want)
    lam = calls_h / HOUR_S
    got = (
        qm.agents_for_erlang_a(lam, aht, aht, p_abandon, "p_abandon"),
        qm.agents_for_erlang_a(lam, aht, aht, sl_offered, "sl_offered", 0.0),
    )
    assert got == (want, want)
    vec = qm.agents_for_erlang_a(np.array([lam, lam]), aht, aht, p_abandon, "p_abandon")
    assert vec.tolist() == [want, want]


def test_erlang_a_tie_cases_are_ties_of_the_library_too() -> None:
    # The closed form above is the library's model: its figures agree far inside RTOL.
    for calls_h, aht, n in ERLANG_A_TIES:
        p_abandon, sl_offered = _mp_erlang_a_when_patience_is_aht(calls_h, aht, n)
        r = qm.erlang_a(calls_h / HOUR_S, aht, aht, n, 0.0)
        assert r.p_abandon == pytest.approx(p_abandon, rel=1e-11)
        assert r.sl_offered == pytest.approx(sl_offered, rel=1e-11)


# --------------------------------------------------------------------------- properties

# Ties are built as the library's own figure at some staffing, nudged by less than the
# tolerance either way; Hypothesis also tries the plain figure.
nudge_st = st.sampled_from([0.0, 0.4 * RTOL, -0.4 * RTOL, 1e-15, -1e-15])
rate_st = st.floats(min_value=1e-4, max_value=2.0)
aht_st = st.floats(min_value=10.0, max_value=900.0)
t_st = st.floats(min_value=0.0, max_value=120.0)
extra_st = st.integers(min_value=0, max_value=12)


def _meets_at_least(value: float, goal: float) -> bool:
    return value >= goal * (1.0 - RTOL)


def _meets_at_most(value: float, goal: float) -> bool:
    return value <= goal * (1.0 + RTOL)


@settings(max_examples=150, deadline=None)
@given(lam=rate_st, aht=aht_st, t=t_st, extra=extra_st, nudge=nudge_st, tie=st.booleans())
def test_service_level_staffing_is_minimal_within_tolerance(  # noqa: PLR0917 - Hypothesis arguments
    lam: float, aht: float, t: float, extra: int, nudge: float, tie: bool
) -> None:
    a = lam * aht
    n0 = math.floor(a) + 1 + extra
    goal = qm.service_level(a, n0, aht, t) * (1.0 + nudge) if tie else min(0.99, extra / 12)
    assume(0.0 <= goal < 1.0)
    n = qm.agents_for_service_level(lam, aht, goal, t)
    assert _meets_at_least(qm.service_level(a, n, aht, t), goal)
    if n - 1 > a:  # the search only offers stable staffing
        assert not _meets_at_least(qm.service_level(a, n - 1, aht, t), goal)
    if tie:
        assert n <= n0
    assert qm.agents_for_service_level(np.array([lam]), aht, goal, t).tolist() == [n]


@settings(max_examples=150, deadline=None)
@given(lam=rate_st, aht=aht_st, extra=extra_st, nudge=nudge_st, tie=st.booleans())
def test_asa_staffing_is_minimal_within_tolerance(
    lam: float, aht: float, extra: int, nudge: float, tie: bool
) -> None:
    a = lam * aht
    n0 = math.floor(a) + 1 + extra
    goal = qm.asa(a, n0, aht) * (1.0 + nudge) if tie else aht / (1 + extra)
    assume(0.0 < goal < math.inf)
    n = qm.agents_for_asa(lam, aht, goal)
    assert _meets_at_most(qm.asa(a, n, aht), goal)
    if n - 1 > a:
        assert not _meets_at_most(qm.asa(a, n - 1, aht), goal)
    if tie:
        assert n <= n0
    assert qm.agents_for_asa(np.array([lam]), aht, goal).tolist() == [n]


@settings(max_examples=80, deadline=None)
@given(
    lam=st.floats(min_value=1e-3, max_value=0.5),
    aht=aht_st,
    patience=st.floats(min_value=10.0, max_value=1800.0),
    t=t_st,
    spread=st.floats(min_value=-2.0, max_value=3.0),
    kind=st.sampled_from(["p_abandon", "sl_offered"]),
    nudge=nudge_st,
    tie=st.booleans(),
)
def test_erlang_a_staffing_is_minimal_within_tolerance(  # noqa: PLR0917 - Hypothesis arguments
    lam: float,
    aht: float,
    patience: float,
    t: float,
    spread: float,
    kind: str,
    nudge: float,
    tie: bool,
) -> None:
    a = lam * aht
    n0 = max(1, round(a + spread * math.sqrt(a)))
    at_n0 = getattr(qm.erlang_a(lam, aht, patience, n0, t), kind)
    goal = at_n0 * (1.0 + nudge) if tie else (0.05 if kind == "p_abandon" else 0.8)
    assume(0.0 <= goal < 1.0)

    def meets(agents: int) -> bool:
        value = getattr(qm.erlang_a(lam, aht, patience, agents, t), kind)
        return _meets_at_most(value, goal) if kind == "p_abandon" else _meets_at_least(value, goal)

    n = qm.agents_for_erlang_a(lam, aht, patience, goal, kind, t)  # type: ignore[arg-type]
    assert meets(n)
    if n > 1:
        assert not meets(n - 1)
    if tie:
        assert n <= n0
