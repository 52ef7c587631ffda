"""Queueing models for contact-center staffing: exact, vectorised Erlang B, C and A.

Pure numpy/scipy; every function takes scalars or arrays and broadcasts. Times are in
seconds, arrival rates in calls per second, traffic in Erlangs
(``traffic = arrival_rate * aht``).

- :func:`erlang_b`, :func:`erlang_c`, :func:`service_level`, :func:`asa`: M/M/N(/N).
- :func:`agents_for_service_level`, :func:`agents_for_asa`: exact Erlang C staffing.
- :func:`erlang_a`, :func:`agents_for_erlang_a`: M/M/N+M (abandonment), exact.
- :func:`staffing_plan`: required agents per interval for a whole day in one call.
- :data:`TARGET_RTOL`: staffing targets count as met within this relative tolerance, so a
  figure that equals its target exactly is not rejected for floating-point rounding.
- :func:`simulate_mmn`, :func:`simulate_mmn_abandon`: discrete-event validation.
"""

from queueing_models.abandonment import ErlangAResult, agents_for_erlang_a, erlang_a
from queueing_models.erlang import (
    TARGET_RTOL,
    agents_for_asa,
    agents_for_service_level,
    asa,
    erlang_b,
    erlang_c,
    service_level,
)
from queueing_models.plan import staffing_plan
from queueing_models.simulation import SimulationResult, simulate_mmn, simulate_mmn_abandon

__all__ = [
    "TARGET_RTOL",
    "ErlangAResult",
    "SimulationResult",
    "agents_for_asa",
    "agents_for_erlang_a",
    "agents_for_service_level",
    "asa",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "service_level",
    "simulate_mmn",
    "simulate_mmn_abandon",
    "staffing_plan",
]
