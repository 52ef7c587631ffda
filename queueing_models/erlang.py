"""Erlang B and Erlang C (M/M/N and M/M/N/N), their service level, ASA and staffing.

Notation: offered traffic ``A = arrival_rate * aht`` in Erlangs, ``N`` agents (an integer),
``aht`` the mean handling time in seconds, ``t`` a waiting-time threshold in seconds.

Every formula here is written through one quantity,

.. math:: R(N, A) = \\frac{P(X \\le N - 1)}{P(X = N)} = \\frac{1}{B(N, A)} - 1,
   \\qquad X \\sim \\mathrm{Poisson}(A),

which is a ratio of positive numbers with no cancellation: the numerator is the regularised
upper incomplete gamma function ``Q(N, A)`` (``scipy.special.gammaincc``) and the
denominator the Poisson mass in Loader's saddle-point form. Where that mass underflows and
``N < A`` the terminating series ``R = sum_{k=1}^{N} prod_{j<k} (N - j) / A`` (ratio at most
``N / A < 1``) is summed instead. Then

* Erlang B: :math:`B = 1 / (1 + R)`;
* Erlang C: :math:`C = N / (N + (N - A) R)` for :math:`N > A`, else 1;
* :math:`1 - C = (N - A) R / (N + (N - A) R)`, so the service level
  :math:`SL(t) = 1 - C e^{-(N - A) t / aht} = (1 - C) - C\\,\\mathrm{expm1}(-(N - A) t / aht)`
  is a sum of non-negative terms;
* :math:`ASA = C \\cdot aht / (N - A)`;
* staffing steps :math:`R(N + 1, A) = (N + 1)(1 + R(N, A)) / A`, the forward Erlang B
  recursion, which does not amplify rounding errors.

References: A. K. Erlang, "Solution of some problems in the theory of probabilities of
significance in automatic telephone exchanges", 1917; C. Loader, "Fast and accurate
computation of binomial probabilities", 2000.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import gammaincc
from scipy.special.cython_special import gammaincc as _gammaincc_scalar

from queueing_models._special import (
    LOG_TINY,
    Array,
    log_poisson_density,
    log_poisson_density_scalar,
)

ArrayLike = npt.ArrayLike
# Float64 result for scalar input, ndarray for array input (numpy's own convention).
FloatResult = Any
IntResult = Any
Mask = npt.NDArray[np.bool_]
_MIN = np.minimum.reduce

# Stop the deep-tail series when a term is below this fraction of the sum (below half an ulp).
_SERIES_EPS = 1e-17
# Staffing searches give up after this many agents above the traffic: only reached by
# targets no real number of agents can meet (it would be a bug or absurd input).
_MAX_STAFFING_STEPS = 10_000_000
# Staffing targets count as met within this relative tolerance: a figure that equals its
# target in exact arithmetic (10 calls/h, AHT 240 s and 2 agents give ASA = 30 s exactly)
# comes out of floating point a few ulps either side of it, and a strict comparison then
# asks for one agent more than needed. The figures are accurate to about 1e-12 relative, so
# 1e-9 absorbs their rounding with room to spare, and no real target is set to 9 digits.
TARGET_RTOL = 1e-9


def _scalar_an(traffic: object, agents: object) -> tuple[float, float] | None:
    """Validated ``(A, N)`` when both are plain Python numbers (the fast path), else None."""
    tt = type(traffic)
    tn = type(agents)
    if (tt is not float and tt is not int) or (tn is not float and tn is not int):
        return None
    a = float(traffic)  # type: ignore[arg-type]
    n = float(agents)  # type: ignore[arg-type]
    if not 0.0 <= a < math.inf:
        raise ValueError(f"traffic must be finite and >= 0, got {traffic!r}")
    if not 0.0 <= n < math.inf or n != math.floor(n):
        raise ValueError(f"agents must be a non-negative integer, got {agents!r}")
    return a, n


def _scalar_pos(name: str, value: object) -> float:
    v = float(value)  # type: ignore[arg-type]
    if not 0.0 < v < math.inf:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def _scalar_nonneg(name: str, value: object) -> float:
    v = float(value)  # type: ignore[arg-type]
    if not v >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _is_py_number(value: object) -> bool:
    tv = type(value)
    return tv is float or tv is int


def _check_array(name: str, value: Array, *, positive: bool = False, finite: bool = False) -> None:
    ok = value > 0.0 if positive else value >= 0.0
    if finite:
        ok &= value < np.inf
    if not ok.all():
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} (and not NaN)")


def _check_an(a: Array, n: Array) -> None:
    _check_array("traffic", a, finite=True)
    if not ((n >= 0.0) & (n < np.inf) & (n == np.floor(n))).all():
        raise ValueError("agents must be non-negative integers")


def _finish(out: npt.NDArray[Any], shape: tuple[int, ...]) -> FloatResult:
    """Back to the broadcast shape; 0-d results come back as numpy scalars, like ufuncs."""
    res = out.reshape(shape)
    return res[()] if res.ndim == 0 else res


# --------------------------------------------------------------------------- R(N, A)


def _ratio_scalar(n: float, a: float) -> float:
    """R(N, A) = 1/B - 1 for integer N >= 0, A >= 0 (inf where B underflows)."""
    if n == 0.0:
        return 0.0
    if a == 0.0:
        return math.inf
    log_d = log_poisson_density_scalar(n, a)
    if log_d > LOG_TINY:
        return float(_gammaincc_scalar(n, a)) / math.exp(log_d)
    if n > a:
        return math.inf
    # Deep overload: P(X = N) underflows but R is moderate (about N / (A - N)).
    term = 1.0
    total = 0.0
    k = n
    while k > 0.0:
        term *= k / a
        total += term
        if term < _SERIES_EPS * total:
            break
        k -= 1.0
    return total


def _ratio(n: Array, a: Array) -> Array:
    """Array version of :func:`_ratio_scalar`; the caller holds ``np.errstate(all="ignore")``."""
    log_d = log_poisson_density(n, a)
    out: Array = gammaincc(n, a) / np.exp(log_d)
    if not (_MIN(n) > 0.0 and _MIN(a) > 0.0):
        out = np.where(n == 0, 0.0, out)
        out = np.where((a == 0) & (n > 0), np.inf, out)
    if _MIN(log_d) <= LOG_TINY:
        tail = (log_d <= LOG_TINY) & (n > 0) & (a > 0)
        out = np.where(tail & (n > a), np.inf, out)
        deep = tail & (n <= a)
        if deep.any():
            out[deep] = _deep_series(n[deep], a[deep])
    return out


def _deep_series(n: Array, a: Array) -> Array:
    """``sum_{k=1}^{N} prod_{j<k} (N - j) / A`` for ``N <= A`` (terms shrink by N/A)."""
    term = np.ones_like(n)
    total = np.zeros_like(n)
    k = n.copy()
    active = np.ones(n.shape, dtype=bool)
    while active.any():
        term = np.where(active, term * (k / a), term)
        total = np.where(active, total + term, total)
        k = k - 1.0
        active &= (k > 0.0) & (term >= _SERIES_EPS * total)
    return total


# --------------------------------------------------------------------------- public API


def _broadcast(*values: ArrayLike) -> tuple[list[Array], tuple[int, ...]]:
    """Float64 copies broadcast together and raveled to 1-d, plus the broadcast shape."""
    arrays = np.broadcast_arrays(*[np.asarray(v, dtype=np.float64) for v in values])
    shape = arrays[0].shape
    return [np.array(x, dtype=np.float64).reshape(-1) for x in arrays], shape


def erlang_b(traffic: ArrayLike, agents: ArrayLike) -> FloatResult:
    """Erlang B: probability that a call finds all ``agents`` busy and is lost (M/M/N/N).

    .. math:: B(N, A) = \\frac{A^N / N!}{\\sum_{k=0}^{N} A^k / k!}
              = \\frac{P(X = N)}{P(X \\le N)} = \\frac{1}{1 + R(N, A)},
              \\quad X \\sim \\mathrm{Poisson}(A)

    Parameters
    ----------
    traffic : array_like
        Offered traffic ``A`` in Erlangs (arrival rate in calls/s times AHT in s),
        finite and ``>= 0``.
    agents : array_like
        Number of agents (trunks) ``N``, non-negative integers.

    Returns
    -------
    float or numpy.ndarray
        Blocking probability in ``[0, 1]`` (a ``float`` for Python scalar input); values
        far in the tail underflow to 0.

    Raises
    ------
    ValueError
        Negative, infinite or NaN traffic, or agents that are not non-negative integers.

    References
    ----------
    A. K. Erlang (1917). Accurate to about 1e-13 relative for traffic up to 1e5 and agents
    up to 1.5e5 (saddle-point Poisson mass and ``scipy.special.gammaincc``).

    Examples
    --------
    >>> round(erlang_b(2.0, 3), 6)
    0.210526
    """
    sc = _scalar_an(traffic, agents)
    if sc is not None:
        return 1.0 / (1.0 + _ratio_scalar(sc[1], sc[0]))
    (a, n), shape = _broadcast(traffic, agents)
    _check_an(a, n)
    with np.errstate(all="ignore"):
        return _finish(1.0 / (1.0 + _ratio(n, a)), shape)


def erlang_c(traffic: ArrayLike, agents: ArrayLike) -> FloatResult:
    """Erlang C: probability that a call has to wait (M/M/N, infinite patience).

    .. math:: C(N, A) = \\frac{N B(N, A)}{N - A (1 - B(N, A))}
              = \\frac{N}{N + (N - A) R(N, A)}

    for ``N > A``; exactly 1.0 where ``N <= A`` (the queue is unstable).

    Parameters
    ----------
    traffic : array_like
        Offered traffic ``A`` in Erlangs, finite and ``>= 0``.
    agents : array_like
        Number of agents ``N``, non-negative integers.

    Returns
    -------
    float or numpy.ndarray
        Probability of waiting in ``[0, 1]``.

    Examples
    --------
    >>> round(erlang_c(100.0, 110), 6)
    0.237008
    """
    sc = _scalar_an(traffic, agents)
    if sc is not None:
        a, n = sc
        if n <= a:
            return 1.0
        return n / (n + (n - a) * _ratio_scalar(n, a))
    (a_arr, n_arr), shape = _broadcast(traffic, agents)
    _check_an(a_arr, n_arr)
    with np.errstate(all="ignore"):
        return _finish(_c_array(a_arr, n_arr), shape)


def _c_array(a: Array, n: Array) -> Array:
    c = n / (n + (n - a) * _ratio(n, a))
    return np.where(n > a, c, 1.0)


def _sl_scalar(a: float, n: float, decay: float) -> float:
    """``SL = ((N - A) R - N expm1(-(N - A) t / aht)) / (N + (N - A) R)`` for N > A."""
    q = n - a
    x = q * _ratio_scalar(n, a)
    if x == math.inf:
        return 1.0
    # Exact value is below 1; rounding of the two non-negative terms can reach 1 + 1 ulp.
    return min(1.0, (x - n * math.expm1(-q * decay)) / (n + x))


def service_level(
    traffic: ArrayLike, agents: ArrayLike, aht: ArrayLike, t: ArrayLike
) -> FloatResult:
    """Erlang C service level: probability that a call waits at most ``t`` seconds.

    .. math:: SL(t) = 1 - C(N, A)\\, e^{-(N - A) t / aht}
              = (1 - C) - C\\,\\mathrm{expm1}\\big(-(N - A) t / aht\\big)

    for ``N > A``, both terms non-negative; 0.0 where ``N <= A`` (unstable).

    Parameters
    ----------
    traffic : array_like
        Offered traffic ``A`` in Erlangs, finite and ``>= 0``.
    agents : array_like
        Number of agents ``N``, non-negative integers.
    aht : array_like
        Average handling time in seconds, ``> 0``.
    t : array_like
        Answer-time threshold in seconds, ``>= 0`` (``inf`` allowed).

    Returns
    -------
    float or numpy.ndarray
        ``P(wait <= t)`` in ``[0, 1]``.

    Examples
    --------
    >>> round(service_level(100.0, 110, 180.0, 20.0), 6)
    0.921979
    """
    sc = _scalar_an(traffic, agents)
    if sc is not None and _is_py_number(aht) and _is_py_number(t):
        a, n = sc
        h = _scalar_pos("aht", aht)
        tt = _scalar_nonneg("t", t)
        return 0.0 if n <= a else _sl_scalar(a, n, tt / h)
    (a_arr, n_arr, h_arr, t_arr), shape = _broadcast(traffic, agents, aht, t)
    _check_an(a_arr, n_arr)
    _check_array("aht", h_arr, positive=True, finite=True)
    _check_array("t", t_arr)
    with np.errstate(all="ignore"):
        q = n_arr - a_arr
        x = q * _ratio(n_arr, a_arr)
        c = n_arr / (n_arr + x)
        one_minus_c = 1.0 / (1.0 + n_arr / x)
        sl = np.minimum(one_minus_c - c * np.expm1(-q * (t_arr / h_arr)), 1.0)
        return _finish(np.where(q > 0, sl, 0.0), shape)


def asa(traffic: ArrayLike, agents: ArrayLike, aht: ArrayLike) -> FloatResult:
    """Erlang C average speed of answer: mean wait in seconds over all calls.

    .. math:: ASA = \\frac{C(N, A)\\, aht}{N - A}

    for ``N > A``; ``inf`` where ``N <= A``.

    Parameters
    ----------
    traffic : array_like
        Offered traffic ``A`` in Erlangs, finite and ``>= 0``.
    agents : array_like
        Number of agents ``N``, non-negative integers.
    aht : array_like
        Average handling time in seconds, ``> 0``.

    Returns
    -------
    float or numpy.ndarray
        Mean waiting time in seconds (calls answered at once count as 0).

    Examples
    --------
    >>> round(asa(100.0, 110, 180.0), 4)
    4.2661
    """
    sc = _scalar_an(traffic, agents)
    if sc is not None and _is_py_number(aht):
        a, n = sc
        h = _scalar_pos("aht", aht)
        if n <= a:
            return math.inf
        q = n - a
        return n / (n + q * _ratio_scalar(n, a)) * h / q
    (a_arr, n_arr, h_arr), shape = _broadcast(traffic, agents, aht)
    _check_an(a_arr, n_arr)
    _check_array("aht", h_arr, positive=True, finite=True)
    with np.errstate(all="ignore"):
        gap = n_arr - a_arr
        mean_wait = _c_array(a_arr, n_arr) * h_arr / gap
        return _finish(np.where(gap > 0, mean_wait, np.inf), shape)


# --------------------------------------------------------------------------- staffing


def _scalar_rate_aht(arrival_rate: object, aht: object) -> tuple[float, float]:
    lam = float(arrival_rate)  # type: ignore[arg-type]
    if not 0.0 <= lam < math.inf:
        raise ValueError(f"arrival_rate must be finite and >= 0, got {arrival_rate!r}")
    h = float(aht)  # type: ignore[arg-type]
    if not 0.0 < h < math.inf:
        raise ValueError(f"aht must be finite and > 0, got {aht!r}")
    return lam, h


def agents_for_service_level(
    arrival_rate: ArrayLike, aht: ArrayLike, target: ArrayLike, t: ArrayLike
) -> IntResult:
    """Smallest integer number of agents ``N > A`` with Erlang C ``SL(t) >= target``.

    Met within :data:`TARGET_RTOL`: ``SL(t) >= target (1 - TARGET_RTOL)``, so a staffing
    whose exact service level equals the target is not rejected for rounding.

    ``A = arrival_rate * aht`` Erlangs. The search starts at ``floor(A) + 1``, the smallest
    stable staffing, and steps ``N`` up with the forward Erlang B recursion
    :math:`R(N + 1) = (N + 1)(1 + R(N)) / A` (the service level increases with ``N``), so
    the answer is exact: no off-by-one from approximations, right at integer traffic.
    All rows of an array call are searched together.

    Parameters
    ----------
    arrival_rate : array_like
        Calls per second, finite and ``>= 0``.
    aht : array_like
        Average handling time in seconds, ``> 0``.
    target : array_like
        Service-level goal in ``[0, 1)``, e.g. 0.8.
    t : array_like
        Answer-time threshold in seconds, ``>= 0``, e.g. 20.

    Returns
    -------
    int or numpy.ndarray of int64
        Required agents (at least 1).

    Examples
    --------
    >>> agents_for_service_level(1000 / 3600, 180.0, 0.8, 20.0)
    56
    """
    if (
        _is_py_number(arrival_rate)
        and _is_py_number(aht)
        and _is_py_number(target)
        and _is_py_number(t)
    ):
        lam, h = _scalar_rate_aht(arrival_rate, aht)
        goal = float(target)  # type: ignore[arg-type]
        if not 0.0 <= goal < 1.0:
            raise ValueError(f"target must be in [0, 1), got {target!r}")
        goal *= 1.0 - TARGET_RTOL
        decay = _scalar_nonneg("t", t) / h
        a = lam * h
        n = math.floor(a) + 1.0
        r = _ratio_scalar(n, a)
        keep = 1.0 - goal
        for _ in range(_MAX_STAFFING_STEPS):
            # SL >= goal  <=>  (N - A) R (1 - goal) >= N (goal + expm1(-(N - A) t / aht))
            q = n - a
            if q * r * keep >= n * (goal + math.expm1(-q * decay)):
                return int(n)
            n += 1.0
            r = n * (1.0 + r) / a
        raise RuntimeError("staffing search did not converge")  # pragma: no cover
    (lam_a, h_a, goal_a, t_a), shape = _broadcast(arrival_rate, aht, target, t)
    _check_array("arrival_rate", lam_a, finite=True)
    _check_array("aht", h_a, positive=True, finite=True)
    if not ((goal_a >= 0.0) & (goal_a < 1.0)).all():
        raise ValueError("target must be in [0, 1)")
    _check_array("t", t_a)
    goal_a *= 1.0 - TARGET_RTOL
    return _finish(
        _step_search(lam_a * h_a, (goal_a, 1.0 - goal_a, -(t_a / h_a)), _meets_sl), shape
    )


def _meets_sl(  # noqa: PLR0917 - the (N, R, A, *params) predicate shape of _step_search
    n: Array, r: Array, a: Array, goal: Array, keep: Array, neg_decay: Array
) -> Mask:
    """SL >= goal  <=>  (N - A) R (1 - goal) >= N (goal + expm1(-(N - A) t / aht))."""
    q = n - a
    ok: Mask = q * r * keep >= n * (goal + np.expm1(q * neg_decay))
    return ok


def agents_for_asa(arrival_rate: ArrayLike, aht: ArrayLike, target_asa: ArrayLike) -> IntResult:
    """Smallest integer number of agents ``N > A`` with Erlang C ``ASA <= target_asa``.

    Met within :data:`TARGET_RTOL`: ``ASA <= target_asa (1 + TARGET_RTOL)``.

    .. math:: ASA(N) = \\frac{C(N, A)\\, aht}{N - A}
              = \\frac{N\\, aht}{(N - A)(N + (N - A) R(N, A))},
              \\quad A = arrival\\_rate \\cdot aht

    Searched exactly like :func:`agents_for_service_level` (ASA decreases in ``N``).

    Parameters
    ----------
    arrival_rate : array_like
        Calls per second, finite and ``>= 0``.
    aht : array_like
        Average handling time in seconds, ``> 0``.
    target_asa : array_like
        Goal for the mean wait in seconds, ``> 0``.

    Returns
    -------
    int or numpy.ndarray of int64
        Required agents (at least 1).

    Examples
    --------
    >>> agents_for_asa(1000 / 3600, 180.0, 15.0)
    55
    """
    if _is_py_number(arrival_rate) and _is_py_number(aht) and _is_py_number(target_asa):
        lam, h = _scalar_rate_aht(arrival_rate, aht)
        goal = _scalar_pos("target_asa", target_asa) * (1.0 + TARGET_RTOL)
        a = lam * h
        n = math.floor(a) + 1.0
        r = _ratio_scalar(n, a)
        for _ in range(_MAX_STAFFING_STEPS):
            q = n - a
            # ASA <= goal  <=>  N aht <= goal (N - A)(N + (N - A) R)
            if n * h <= goal * q * (n + q * r):
                return int(n)
            n += 1.0
            r = n * (1.0 + r) / a
        raise RuntimeError("staffing search did not converge")  # pragma: no cover
    (lam_a, h_a, goal_a), shape = _broadcast(arrival_rate, aht, target_asa)
    _check_array("arrival_rate", lam_a, finite=True)
    _check_array("aht", h_a, positive=True, finite=True)
    _check_array("target_asa", goal_a, positive=True, finite=True)
    goal_a *= 1.0 + TARGET_RTOL
    return _finish(_step_search(lam_a * h_a, (h_a, goal_a), _meets_asa), shape)


def _meets_asa(n: Array, r: Array, a: Array, h: Array, goal: Array) -> Mask:
    """ASA <= goal  <=>  N aht <= goal (N - A)(N + (N - A) R)."""
    q = n - a
    ok: Mask = n * h <= goal * q * (n + q * r)
    return ok


def _step_search(
    a: Array, params: tuple[Array, ...], meets: Callable[..., Mask]
) -> npt.NDArray[np.int64]:
    """Walk every row up from ``floor(A) + 1`` until ``meets(N, R, A, *params)`` holds.

    ``meets`` must be monotone in N. Only the rows still short are advanced, with the
    forward recursion for ``R``; their parameters are narrowed along with them.
    """
    with np.errstate(all="ignore"):
        n = np.floor(a) + 1.0
        r = _ratio(n, a)
        need = ~meets(n, r, a, *params)
        if np.count_nonzero(need):
            flat_n = n.reshape(-1)
            idx = np.flatnonzero(need)
            sub_n = flat_n[idx]
            sub_r = r.reshape(-1)[idx]
            sub_a = a.reshape(-1)[idx]
            sub_p = [p.reshape(-1)[idx] for p in params]
            for _ in range(_MAX_STAFFING_STEPS):
                sub_n = sub_n + 1.0
                sub_r = sub_n * (1.0 + sub_r) / sub_a
                done = meets(sub_n, sub_r, sub_a, *sub_p)
                n_done = np.count_nonzero(done)
                if n_done == done.size:
                    break
                if n_done:
                    flat_n[idx[done]] = sub_n[done]
                    keep = ~done
                    idx, sub_n, sub_r, sub_a = idx[keep], sub_n[keep], sub_r[keep], sub_a[keep]
                    sub_p = [p[keep] for p in sub_p]
            else:  # pragma: no cover
                raise RuntimeError("staffing search did not converge")
            flat_n[idx] = sub_n
    return n.astype(np.int64)
