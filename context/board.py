"""Team figures of a ticket board: how many tickets wait in each phase, how long the oldest
has been there, and how many are past the phase's target time (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

# Time a ticket should stay in each phase of the default pipeline at most (seconds); a ticket
# over it is late. Terminal and waiting-on-the-customer phases have none.
DEFAULT_PHASE_TARGETS_S: Mapping[str, float] = {
    "new": 3600.0,
    "triage": 4 * 3600.0,
    "in_progress": 2 * 86400.0,
    "resolved": 3 * 86400.0,
}


@dataclass(frozen=True, slots=True)
class PhaseFigures:
    phase: str
    tickets: int
    oldest_s: float | None  # time in phase of the ticket there longest; None when empty
    target_s: float | None
    late: int  # tickets past the target


def phase_figures(
    phases: Sequence[str],
    entered: Iterable[tuple[str, datetime]],
    *,
    now: datetime,
    targets_s: Mapping[str, float] = DEFAULT_PHASE_TARGETS_S,
) -> list[PhaseFigures]:
    """Figures per phase, in board order, from each ticket's (phase, when it entered it)."""
    ages: dict[str, list[float]] = {p: [] for p in phases}
    for phase, since in entered:
        if phase in ages:
            ages[phase].append(max(0.0, (now - since).total_seconds()))
    figures = []
    for phase in phases:
        target = targets_s.get(phase)
        waiting = ages[phase]
        figures.append(
            PhaseFigures(
                phase=phase,
                tickets=len(waiting),
                oldest_s=max(waiting, default=None),
                target_s=target,
                late=0 if target is None else sum(1 for a in waiting if a > target),
            )
        )
    return figures
