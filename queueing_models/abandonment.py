"""Erlang A (Palm's M/M/N+M queue): Erlang C with exponentially impatient callers.

Model: Poisson arrivals at ``arrival_rate`` (``lambda``, calls/s), ``N`` agents with
exponential handling times of mean ``aht`` (``mu = 1/aht``), FCFS, and each waiting caller
abandons after an exponential patience of mean ``patience`` (``theta = 1/patience``).
The number in system is a birth-death process, stable for every ``N >= 1``.

With ``A = lambda/mu`` (Erlangs), ``c = N mu / theta`` and ``x = lambda / theta``, let

.. math::
   M(c, x) = {}_1F_1(1; c + 1; x) = \\sum_{j \\ge 0} \\frac{x^j}{(c+1)\\cdots(c+j)}
           = \\frac{P(c, x)}{D(c, x)}, \\qquad D(c, x) = \\frac{x^c e^{-x}}{\\Gamma(c+1)},

with ``P`` the regularised lower incomplete gamma function, and ``R = 1/B(N, A) - 1``
(Erlang B). The stationary law gives ``P(state = N + j) = p_N r_j`` with
``r_j = lambda^j / prod_{i=1}^j (N mu + i theta)`` and ``sum_j r_j = M(c, x)``, hence
(Garnett, Mandelbaum and Reiman 2002; Mandelbaum and Zeltyn 2007):

* probability of waiting :math:`P(W > 0) = M / (M + R)`;
* the offered wait ``V`` (what an infinitely patient caller would wait) has, on
  ``V > 0``, the density :math:`f_V(u) = p_N N\\mu\\, e^{x(1 - e^{-\\theta u}) - N\\mu u}`, so
  :math:`P(V > t) / P(V > 0) = e^{x (1 - e^{-\\theta t}) - c\\theta t}\\, M(c, y) / M(c, x)`
  with :math:`y = x e^{-\\theta t}`;
* a caller is answered iff ``V <= patience``; so
  :math:`P(Ab \\mid W > 0) = 1 - \\frac{c}{c+1}\\frac{M(c+1, x)}{M(c, x)}
  = \\frac{x - c}{x} + \\frac{c}{x M(c, x)} = \\frac{\\sum_j j\\, m_j}{x \\sum_j m_j}`
  (``m_j`` the terms of ``M``; the last, cancellation-free form is summed when ``x < c``
  would make the middle one lose digits);
* answered within ``t`` among waiters:
  :math:`P(V \\le t, \\text{answered} \\mid W > 0) = \\frac{c}{c+1}\\frac{M(c+1, x)}{M(c, x)}
  \\,\\big(1 - e^{L}\\big)`,
  :math:`L = x(1 - e^{-\\theta t}) - (c+1)\\theta t + \\ln M(c+1, y) - \\ln M(c+1, x)`;
* mean wait of all arrivals :math:`E[W] = P(Ab) / \\theta` (Little's law on the queue);
* mean wait of answered calls
  :math:`E[V e^{-\\theta V}] / P(Sr)` where
  :math:`E[V e^{-\\theta V}; V > 0] = (P(W>0) - P(Ab)) \\cdot H / \\theta` and ``H`` is the mean
  of :math:`\\sum_{m=1}^{j+1} 1/(c+m)` under weights :math:`x^j / ((c+1)\\cdots(c+j+1))`,
  a positive series summed until its tail is below rounding.

Everything is evaluated from ``scipy.special.gammainc`` and the saddle-point ``log D`` in
log space, so nothing overflows and there is no truncated state space: the results are
exact up to rounding, for agents below the traffic as well.

References
----------
O. Garnett, A. Mandelbaum, M. Reiman, "Designing a call center with impatient customers",
Manufacturing & Service Operations Management 4(3), 2002.
A. Mandelbaum, S. Zeltyn, "The Palm/Erlang-A queue, with applications to call centers",
2007 (and S. Zeltyn's thesis, 2005, for the incomplete-gamma forms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import gammainc, gammaincc, psi

from queueing_models._special import Array, log_poisson_density
from queueing_models.erlang import TARGET_RTOL, _broadcast, _check_array, _ratio

ArrayLike = npt.ArrayLike
Mask = npt.NDArray[np.bool_]

# Below this the closed form for P(Ab | W > 0) has lost more than 3 of its 16 digits to
# cancellation; the positive series (then fast: its ratio is at most x/c < 1) takes over.
_CANCELLATION_LIMIT = 1e3
# Series stop when the remaining tail is below this fraction of the sum.
_SERIES_EPS = 1e-17
# Rescale running series terms past this size so they never overflow (ratios are used).
_RESCALE_AT = 1e250
# Continued-fraction terms allowed in `_log_q` (it needs a few dozen where it is used).
_MAX_CF_TERMS = 10_000
# Terms per vectorised block of the outward summation in `_harmonic_mean_series`.
_BLOCK = 256
# The agent search doubles its upper bracket at most this many times (2**60 agents).
_MAX_DOUBLINGS = 60


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Erlang A performance figures (float for scalar input, arrays otherwise).

    Attributes
    ----------
    p_wait : probability that an arriving call waits (all agents busy).
    p_abandon : probability that an arriving call abandons.
    asa : mean wait in seconds of answered calls (immediate answers count as 0).
    mean_wait : mean wait in seconds over all arrivals (abandoners count until they leave).
    sl_offered : answered within ``t`` over all arrivals (abandoned calls are misses).
    sl_answered : answered within ``t`` over answered calls.
    sl_virtual : probability that an infinitely patient caller would wait at most ``t``.
    occupancy : fraction of agent time busy, ``A (1 - p_abandon) / N``.
    """

    p_wait: Any
    p_abandon: Any
    asa: Any
    mean_wait: Any
    sl_offered: Any
    sl_answered: Any
    sl_virtual: Any
    occupancy: Any


def _log_m(c: Array, z: Array) -> Array:
    """``ln M(c, z)`` with ``M = P(c, z) / D(c, z)``, for ``c > 0``, ``z >= 0``.

    Caller holds ``np.errstate(all="ignore")``.
    """
    p = gammainc(c, z)
    out: Array = np.log(p) - log_poisson_density(c, z)
    # P underflows deep in the lower tail (z << c): there the series converges fast.
    deep = ~(p > 1e-290)
    if np.count_nonzero(deep):
        out = np.where(z == 0.0, 0.0, out)
        deep &= z > 0.0
        if np.count_nonzero(deep):
            out[deep] = np.log(_m_series(c[deep], z[deep])[0])
    return out


def _log_q(a: Array, z: Array) -> Array:
    """``ln Q(a, z)`` (regularised upper incomplete gamma), also where ``Q`` underflows.

    Deep in the upper tail (``z > a``) the Legendre continued fraction
    ``Q(a, z) = a D(a, z) / (z + 1 - a - 1 (1 - a) / (z + 3 - a - 2 (2 - a) / ...))`` is
    evaluated with the modified Lentz method; it converges in a few terms there.
    """
    q = gammaincc(a, z)
    out: Array = np.log(q)
    deep = ~(q > 1e-290) & (z > a)
    if np.count_nonzero(deep):
        ad, zd = a[deep], z[deep]
        tiny = 1e-300
        b = zd + 1.0 - ad
        cc = np.full_like(ad, 1.0 / tiny)
        d = 1.0 / b
        h = d.copy()
        active = np.ones(ad.shape, dtype=bool)
        i = 0.0
        while np.count_nonzero(active) and i < _MAX_CF_TERMS:
            i += 1.0
            an = -i * (i - ad)
            b = b + 2.0
            d = an * d + b
            d = np.where(np.abs(d) < tiny, tiny, d)
            cc = b + an / cc
            cc = np.where(np.abs(cc) < tiny, tiny, cc)
            d = 1.0 / d
            step = d * cc
            h = np.where(active, h * step, h)
            active &= np.abs(step - 1.0) > 1e-16
        out[deep] = np.log(ad) + log_poisson_density(ad, zd) + np.log(h)
    return out


def _m_series(c: Array, z: Array) -> tuple[Array, Array]:
    """``(sum_j m_j, sum_j j m_j)`` with ``m_j = z^j / ((c+1)...(c+j))``, for ``z < c``."""
    term = np.ones_like(c)
    total = np.ones_like(c)
    first = np.zeros_like(c)
    j = 0.0
    active = np.ones(c.shape, dtype=bool)
    while np.count_nonzero(active):
        j += 1.0
        term = term * (z / (c + j))
        total = total + term
        first = first + j * term
        # Tail after j is below term * ratio / (1 - ratio) with ratio = z / (c + j + 1).
        ratio = z / (c + j + 1.0)
        active = term * (j + 1.0) > _SERIES_EPS * first * (1.0 - ratio)
    return total, first


def _harmonic_mean_series(c: Array, x: Array) -> Array:
    """Weighted mean of ``H_j = sum_{m=1}^{j+1} 1/(c+m)`` under ``t_j = x^j/prod (c+m)``.

    The weights peak at ``j* = max(0, floor(x - c - 1))``; the sum starts there with
    ``t_{j*} = 1`` and ``H_{j*} = psi(c + j* + 2) - psi(c + 1)`` and runs outwards in
    blocks of ``_BLOCK`` terms (cumulative products and sums), each direction until its
    remaining tail is below rounding. The work is about ``sqrt(x)`` terms, not ``x``.
    """
    peak = np.maximum(0.0, np.floor(x - c - 1.0))
    h_peak = np.where(peak == 0.0, 1.0 / (c + 1.0), psi(c + peak + 2.0) - psi(c + 1.0))
    f_sum = np.ones_like(c)
    g_sum = h_peak.copy()
    steps = np.arange(1.0, _BLOCK + 1.0)
    for direction in (1.0, -1.0):
        term = np.ones_like(c)
        harm = h_peak.copy()
        # Index (into j) of the last term summed so far, per row.
        last = peak.copy()
        rows = np.arange(c.size) if direction > 0 else np.flatnonzero(peak > 0.0)
        while rows.size:
            cr, xr = c[rows, None], x[rows, None]
            j = last[rows, None] + direction * steps  # the block's indices
            if direction > 0:
                denom = cr + 1.0 + j
                ratios = xr / denom
                harms = harm[rows, None] + np.cumsum(1.0 / denom, axis=1)
            else:
                # t_{j-1} = t_j (c + 1 + j) / x and H_{j-1} = H_j - 1/(c + 1 + j).
                # Indices below 0 do not exist: zero weight, and a harmless denominator.
                valid = j >= 0.0
                denom = np.where(valid, cr + 2.0 + j, 1.0)
                ratios = np.where(valid, denom / xr, 0.0)
                harms = harm[rows, None] - np.cumsum(1.0 / denom, axis=1)
            terms = term[rows, None] * np.cumprod(ratios, axis=1)
            f_sum[rows] += terms.sum(axis=1)
            g_sum[rows] += (terms * harms).sum(axis=1)
            term[rows] = terms[:, -1]
            harm[rows] = harms[:, -1]
            last[rows] = j[:, -1]
            # Remaining tail of a geometric-or-faster decay: last * ratio / (1 - ratio).
            r_end = ratios[:, -1] if direction > 0 else (cr[:, 0] + 1.0 + last[rows]) / xr[:, 0]
            tail = np.where(r_end < 1.0, term[rows] * (harm[rows] + 1.0) / (1.0 - r_end), np.inf)
            going = tail > _SERIES_EPS * g_sum[rows]
            if direction < 0:
                going &= last[rows] > 0.0
            rows = rows[going]
    out: Array = g_sum / f_sum
    return out


def _core(lam: Array, h: Array, pat: Array, n: Array, t: Array, *, full: bool) -> dict[str, Array]:
    """All figures for validated, broadcast float arrays (``errstate`` held by the caller)."""
    a = lam * h
    c = n * (pat / h)
    x = lam * pat
    tau = t / pat
    r = _ratio(n, a)
    log_m = _log_m(c, x)
    m_over_r = np.exp(log_m) / r
    p_wait = m_over_r / (1.0 + m_over_r)
    p_wait = np.where(r == np.inf, 0.0, np.where(m_over_r == np.inf, 1.0, p_wait))
    one_minus_pw = 1.0 / (1.0 + m_over_r)

    # P(Ab | W > 0)
    delta = (x - c) / x + (c / x) * np.exp(-log_m)
    bad = (x < c) & ~((c - x) < _CANCELLATION_LIMIT * x * delta)
    if np.count_nonzero(bad):
        total, first = _m_series(c[bad], x[bad])
        delta[bad] = first / (x[bad] * total)
    delta = np.clip(delta, 0.0, 1.0)
    p_ab = p_wait * delta

    # Answered within t: needs M(c + 1, .) at x and at y = x e^{-theta t}.
    c1 = c + 1.0
    y = x * np.exp(-tau)
    log_m1x = _log_m(c1, x)
    big_l = -x * np.expm1(-tau) - c1 * tau + _log_m(c1, y) - log_m1x
    big_l = np.where(tau == np.inf, -np.inf, np.where(tau == 0.0, 0.0, big_l))
    served_share = (c / c1) * np.exp(log_m1x - log_m)  # P(answered | W > 0) = 1 - delta
    within = served_share * -np.expm1(big_l)
    upper = (y >= c1) & (tau > 0.0)
    if np.count_nonzero(upper):
        # Both P(c+1, y) and P(c+1, x) are near 1 here: take their difference from the upper
        # tails instead, Q(c+1, y) - Q(c+1, x), over D(c+1, x) M(c, x).
        cu, xu, yu = c[upper], x[upper], y[upper]
        log_qy = _log_q(cu + 1.0, yu)
        log_qx = _log_q(cu + 1.0, xu)
        log_scale = log_qy - log_poisson_density(cu + 1.0, xu) - log_m[upper]
        within[upper] = (cu / (cu + 1.0)) * np.exp(log_scale) * -np.expm1(log_qx - log_qy)
    sl_offered = one_minus_pw + p_wait * within
    out = {"p_wait": p_wait, "p_abandon": p_ab, "sl_offered": np.clip(sl_offered, 0.0, 1.0)}
    if not full:
        return out

    big_lv = -x * np.expm1(-tau) - c * tau + _log_m(c, y) - log_m
    big_lv = np.where(tau == np.inf, -np.inf, np.where(tau == 0.0, 0.0, big_lv))
    beyond = -np.expm1(big_lv)  # P(V <= t | V > 0)
    upper = (y >= c) & (tau > 0.0)
    if np.count_nonzero(upper):
        # As above: [Q(c, y) - Q(c, x)] / P(c, x), with ln P(c, x) = ln M + ln D.
        cu, xu, yu = c[upper], x[upper], y[upper]
        log_qy = _log_q(cu, yu)
        log_p = log_m[upper] + log_poisson_density(cu, xu)
        beyond[upper] = np.exp(log_qy - log_p) * -np.expm1(_log_q(cu, xu) - log_qy)
    sl_virtual = one_minus_pw + p_wait * beyond
    answered = 1.0 - p_ab
    hmean = _harmonic_mean_series(c, x)
    asa = hmean * pat * p_wait * (1.0 - delta) / answered
    out.update(
        asa=asa,
        mean_wait=p_ab * pat,
        sl_answered=np.clip(sl_offered / answered, 0.0, 1.0),
        sl_virtual=np.clip(sl_virtual, 0.0, 1.0),
        occupancy=np.minimum(a * answered / n, 1.0),  # 1 + 1 ulp in deep overload
    )
    return out


def _validate(lam: Array, h: Array, pat: Array) -> None:
    _check_array("arrival_rate", lam, finite=True)
    _check_array("aht", h, positive=True, finite=True)
    _check_array("patience", pat, positive=True, finite=True)


def _idle_fix(res: dict[str, Array], lam: Array) -> None:
    """No arrivals: nobody waits or abandons (the general formulas divide by ``x = 0``)."""
    idle = lam == 0.0
    if np.count_nonzero(idle):
        for key, figure in res.items():
            value = 1.0 if key.startswith("sl_") else 0.0
            res[key] = np.where(idle, value, figure)


def erlang_a(
    arrival_rate: ArrayLike, aht: ArrayLike, patience: ArrayLike, agents: ArrayLike, t: ArrayLike
) -> ErlangAResult:
    """Erlang A (M/M/N+M) performance, solved exactly (no truncation, no approximation).

    See the module docstring for the formulas. Arguments broadcast together.

    Parameters
    ----------
    arrival_rate : array_like
        Calls per second, finite and ``>= 0``.
    aht : array_like
        Average handling time in seconds, ``> 0``.
    patience : array_like
        Mean patience (time to abandon) in seconds, finite and ``> 0``. As it grows the
        figures tend to Erlang C (where ``N > A``).
    agents : array_like
        Number of agents ``N``, integers ``>= 1``; may be below the traffic.
    t : array_like
        Answer-time threshold in seconds for the service levels, ``>= 0``.

    Returns
    -------
    ErlangAResult
        ``p_wait``, ``p_abandon``, ``asa`` (s, answered calls), ``mean_wait`` (s, all
        arrivals), ``sl_offered``, ``sl_answered``, ``sl_virtual``, ``occupancy``.

    References
    ----------
    Garnett, Mandelbaum and Reiman (2002); Mandelbaum and Zeltyn (2007).

    Examples
    --------
    >>> r = erlang_a(100 / 900, 240.0, 180.0, 25, 20.0)
    >>> round(r.p_abandon, 6), round(r.sl_offered, 6)
    (0.117224, 0.559068)
    """
    (lam, h, pat, n, tt), shape = _broadcast(arrival_rate, aht, patience, agents, t)
    _validate(lam, h, pat)
    if not ((n >= 1.0) & (n < np.inf) & (n == np.floor(n))).all():
        raise ValueError("agents must be integers >= 1")
    _check_array("t", tt)
    with np.errstate(all="ignore"):
        res = _core(lam, h, pat, n, tt, full=True)
        _idle_fix(res, lam)
    if shape == ():
        return ErlangAResult(**{k: float(v[0]) for k, v in res.items()})
    return ErlangAResult(**{k: v.reshape(shape) for k, v in res.items()})


def agents_for_erlang_a(  # noqa: PLR0917 - positional order fixed by the public API
    arrival_rate: ArrayLike,
    aht: ArrayLike,
    patience: ArrayLike,
    target: ArrayLike,
    kind: Literal["p_abandon", "sl_offered"],
    t: ArrayLike = 20.0,
) -> Any:
    """Smallest number of agents ``N >= 1`` meeting an Erlang A target (exact).

    ``kind="p_abandon"``: ``p_abandon(N) <= target``; ``kind="sl_offered"``:
    ``sl_offered(N, t) >= target`` (answered within ``t`` over all arrivals), each met within
    :data:`~queueing_models.TARGET_RTOL` (relative) so that exact ties survive rounding. Both are
    monotone in ``N``, so a vectorised bracket-and-bisect over integers finds the exact
    smallest ``N``, which may be below the traffic ``A = arrival_rate * aht``.

    Parameters
    ----------
    arrival_rate : array_like
        Calls per second, finite and ``>= 0``.
    aht : array_like
        Average handling time in seconds, ``> 0``.
    patience : array_like
        Mean patience in seconds, finite and ``> 0``.
    target : array_like
        Abandonment ceiling in ``[0, 1]`` or service-level goal in ``[0, 1)``.
    kind : {"p_abandon", "sl_offered"}
        Which figure the target applies to.
    t : array_like
        Answer-time threshold in seconds (used by ``"sl_offered"``), ``>= 0``.

    Returns
    -------
    int or numpy.ndarray of int64
        Required agents.

    Examples
    --------
    >>> agents_for_erlang_a(100 / 900, 240.0, 180.0, 0.8, "sl_offered", 20.0)
    29
    """
    if kind not in ("p_abandon", "sl_offered"):
        raise ValueError(f"kind must be 'p_abandon' or 'sl_offered', got {kind!r}")
    (lam, h, pat, goal, tt), shape = _broadcast(arrival_rate, aht, patience, target, t)
    _validate(lam, h, pat)
    _check_array("t", tt)
    if kind == "p_abandon":
        if not ((goal >= 0.0) & (goal <= 1.0)).all():
            raise ValueError("target must be in [0, 1] for p_abandon")
    elif not ((goal >= 0.0) & (goal < 1.0)).all():
        raise ValueError("target must be in [0, 1) for sl_offered")

    # Met within rounding: see TARGET_RTOL.
    bound = goal * (1.0 + TARGET_RTOL) if kind == "p_abandon" else goal * (1.0 - TARGET_RTOL)

    def meets(rows: npt.NDArray[np.intp], n: Array) -> Mask:
        res = _core(lam[rows], h[rows], pat[rows], n, tt[rows], full=False)
        if kind == "p_abandon":
            ok: Mask = res["p_abandon"] <= bound[rows]
        else:
            ok = res["sl_offered"] >= bound[rows]
        idle: Mask = lam[rows] == 0.0
        return ok | idle

    with np.errstate(all="ignore"):
        out = _bisect_agents(lam * h, meets)
    result = out.reshape(shape)
    return int(result) if result.ndim == 0 else result


def _bisect_agents(a: Array, meets: Any) -> npt.NDArray[np.int64]:
    """Smallest integer ``N >= 1`` with ``meets(rows, N)``, for monotone ``meets``.

    Brackets around ``A +- 3 sqrt(A)`` (doubling the top if needed), then bisects.
    ``lo`` always fails (``lo = 0`` stands for "no agents") and ``hi`` always meets.
    """
    rows = np.arange(a.size)
    root = np.sqrt(a)
    hi = np.maximum(1.0, np.ceil(a + 3.0 * root) + 2.0)
    ok = meets(rows, hi)
    for _ in range(_MAX_DOUBLINGS):
        if ok.all():
            break
        bad = rows[~ok]
        hi[bad] = 2.0 * hi[bad]
        ok[bad] = meets(bad, hi[bad])
    else:  # pragma: no cover
        raise RuntimeError("agent search found no upper bracket")
    lo = np.maximum(0.0, np.floor(a - 3.0 * root) - 1.0)
    test = rows[lo >= 1.0]
    if test.size:
        lo_ok = meets(test, lo[test])
        lo[test[lo_ok]] = 0.0
    active = rows[hi - lo > 1.0]
    while active.size:
        mid = np.floor((lo[active] + hi[active]) / 2.0)
        good = meets(active, mid)
        hi[active[good]] = mid[good]
        lo[active[~good]] = mid[~good]
        active = active[hi[active] - lo[active] > 1.0]
    return hi.astype(np.int64)
