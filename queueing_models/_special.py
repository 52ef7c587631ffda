"""Accurate building blocks shared by the Erlang formulas (private).

Everything here is about the "continuous Poisson" density

.. math:: D(n, a) = \\frac{a^n e^{-a}}{\\Gamma(n + 1)},

which is the Poisson probability mass at ``n`` for integer ``n``. Computing it as
``exp(n log a - a - lgamma(n + 1))`` loses about ``log10(a)`` digits for large
arguments (three huge terms cancel), so it is evaluated with Loader's saddle-point form

.. math:: D(n, a) = \\frac{e^{-\\mathrm{stirlerr}(n) - \\mathrm{bd0}(n, a)}}{\\sqrt{2 \\pi n}},

where ``stirlerr`` is the error of Stirling's formula and ``bd0(n, a) = n log(n/a) + a - n``
is summed as a series when ``n`` is close to ``a``. The relative error is then a few
units in the last place times ``bd0`` (at most about 745 before underflow).

Reference: C. Loader, "Fast and accurate computation of binomial probabilities", 2000.

Each function exists twice: a numpy version for arrays and a ``math`` version for Python
scalars, because numpy's per-call overhead would dominate a scalar evaluation. Both follow
the same formulas and branch points, so they agree to the last few bits.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

Array = npt.NDArray[np.float64]

LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# Below this, stirlerr via lgamma is exact enough (its terms stay below ~45, so the absolute
# error stays near 1e-14); above it the asymptotic series is truncated after n**-9 (< 1e-17).
_STIRLING_SERIES_FROM = 15.0
# |n - a| < this * (n + a) uses the bd0 series in v = (n - a)/(n + a): |v| < 0.1, so nine
# odd powers reach v**19 < 1e-19 relative to the first term.
_BD0_SERIES_BAND = 0.1
# exp() underflows below about -745; use a margin so a quotient of two tiny values is never
# formed from denormals.
LOG_TINY = -700.0


_C3, _C5, _C7, _C9, _C11, _C13, _C15, _C17, _C19 = (1.0 / k for k in range(3, 20, 2))
_S0, _S1, _S2, _S3, _S4 = 1.0 / 12.0, 1.0 / 360.0, 1.0 / 1260.0, 1.0 / 1680.0, 1.0 / 1188.0


def log_poisson_density_scalar(n: float, a: float) -> float:
    """``log D(n, a)`` for ``n >= 0, a >= 0`` (``-inf`` where ``D`` is exactly zero).

    Written out in one function (no helper calls) because it sits on the scalar hot path.
    """
    if a == 0.0:
        return 0.0 if n == 0.0 else -math.inf
    if n == 0.0:
        return -a
    # stirlerr(n) = lgamma(n + 1) - (n + 1/2) log n + n - log sqrt(2 pi)
    log_n = math.log(n)
    if n < _STIRLING_SERIES_FROM:
        st = math.lgamma(n + 1.0) - (n + 0.5) * log_n + n - LN_SQRT_2PI
    else:
        nn = 1.0 / (n * n)
        st = (_S0 - nn * (_S1 - nn * (_S2 - nn * (_S3 - nn * _S4)))) / n
    # bd0(n, a) = n log(n / a) + a - n
    d = n - a
    s = n + a
    if abs(d) < _BD0_SERIES_BAND * s:
        v = d / s
        v2 = v * v
        acc = _C3 + v2 * (
            _C5
            + v2
            * (_C7 + v2 * (_C9 + v2 * (_C11 + v2 * (_C13 + v2 * (_C15 + v2 * (_C17 + v2 * _C19))))))
        )
        bd = d * v + 2.0 * n * v * v2 * acc
    else:
        bd = n * math.log(n / a) + a - n
    return -st - bd - LN_SQRT_2PI - 0.5 * log_n


def log_poisson_density(n: Array, a: Array) -> Array:
    """Array version of :func:`log_poisson_density_scalar`.

    The caller holds ``np.errstate(all="ignore")``: both branches of each formula are
    evaluated everywhere and the right one selected, which is cheaper than masking for the
    small arrays this library sees.
    """
    pos = (n > 0) & (a > 0)
    all_pos = np.count_nonzero(pos) == pos.size
    safe_n = n if all_pos else np.where(pos, n, 1.0)
    safe_a = a if all_pos else np.where(pos, a, 1.0)
    log_n = np.log(safe_n)
    nn = 1.0 / (safe_n * safe_n)
    st = (_S0 - nn * (_S1 - nn * (_S2 - nn * (_S3 - nn * _S4)))) / safe_n
    small = safe_n < _STIRLING_SERIES_FROM
    if np.count_nonzero(small):
        st_small = gammaln(safe_n + 1.0) - (safe_n + 0.5) * log_n + safe_n - LN_SQRT_2PI
        st = np.where(small, st_small, st)
    d = safe_n - safe_a
    s = safe_n + safe_a
    v = d / s
    v2 = v * v
    acc = _C3 + v2 * (
        _C5
        + v2
        * (_C7 + v2 * (_C9 + v2 * (_C11 + v2 * (_C13 + v2 * (_C15 + v2 * (_C17 + v2 * _C19))))))
    )
    series = d * v + (2.0 * safe_n) * (v * v2 * acc)
    near = np.abs(d) < _BD0_SERIES_BAND * s
    if np.count_nonzero(near) == near.size:
        bd = series
    else:
        bd = np.where(near, series, safe_n * np.log(safe_n / safe_a) + safe_a - safe_n)
    out: Array = -st - bd - LN_SQRT_2PI - 0.5 * log_n
    if all_pos:
        return out
    zero_a = np.where(n == 0, 0.0, -np.inf)
    return np.where(pos, out, np.where(a == 0, zero_a, -a))
