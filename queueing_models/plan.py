"""Multi-interval staffing plans: one vectorised call for a whole day of intervals."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from queueing_models.abandonment import agents_for_erlang_a
from queueing_models.erlang import agents_for_service_level


def staffing_plan(
    volumes: npt.ArrayLike,
    interval_s: float,
    aht: npt.ArrayLike,
    target: npt.ArrayLike,
    t: npt.ArrayLike,
    *,
    patience: npt.ArrayLike | None = None,
    kind: Literal["sl_offered", "p_abandon"] = "sl_offered",
) -> npt.NDArray[np.int64]:
    """Required agents per interval from forecast call volumes, in one vectorised call.

    Each interval ``i`` is treated as a stationary queue with arrival rate
    ``volumes[i] / interval_s`` calls per second (the usual "stationary independent
    period by period" plan). Without ``patience`` the requirement is the exact Erlang C
    staffing :func:`~queueing_models.agents_for_service_level` (``SL(t) >= target``);
    with ``patience`` it is the exact Erlang A staffing
    :func:`~queueing_models.agents_for_erlang_a` for ``kind``.

    Parameters
    ----------
    volumes : array_like
        Calls offered per interval (e.g. 96 quarter-hours), ``>= 0``.
    interval_s : float
        Interval length in seconds (900 for quarter-hours), ``> 0``.
    aht : array_like
        Average handling time in seconds (scalar or one per interval).
    target : array_like
        Service-level goal (e.g. 0.8), or the abandonment ceiling for ``kind="p_abandon"``.
    t : array_like
        Answer-time threshold in seconds (e.g. 20).
    patience : array_like, optional
        Mean caller patience in seconds; switches the model to Erlang A.
    kind : {"sl_offered", "p_abandon"}
        Erlang A target type (ignored without ``patience``).

    Returns
    -------
    numpy.ndarray of int64
        Agents required in each interval, same shape as ``volumes``.

    Examples
    --------
    >>> staffing_plan([50, 100, 200], 900.0, 240.0, 0.8, 20.0).tolist()
    [17, 32, 60]
    """
    if not interval_s > 0.0:
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    rates = np.asarray(volumes, dtype=np.float64) / float(interval_s)
    if patience is None:
        out = agents_for_service_level(rates, aht, target, t)
    else:
        out = agents_for_erlang_a(rates, aht, patience, target, kind, t)
    return np.asarray(out, dtype=np.int64).reshape(rates.shape)
