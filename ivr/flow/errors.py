"""Errors of flow documents: the administrator's fault, named by flow and step."""

from __future__ import annotations

from collections.abc import Sequence


class FlowError(ValueError):
    """One or more problems in flow documents; each line names the flow and the step."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))
