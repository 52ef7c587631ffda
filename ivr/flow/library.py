"""The flows in force, and which one a call runs.

A call names its flow in the AGI query (`inbound?flow=sales`); else the number it dialled
(`agi_dnid`, then `agi_extension`) picks the flow that lists it; else the `default` flow runs.
A library is immutable: a reload builds a new one and swaps it whole, so a call keeps the
flow it started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr.flow.default import DEFAULT_FLOW_NAME
from ivr.flow.models import Flow


class UnknownFlow(LookupError):
    """The AGI request names a flow that is not configured (the dialplan's fault)."""


@dataclass(frozen=True, slots=True)
class FlowLibrary:
    flows: Mapping[str, Flow]
    by_number: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, flows: Mapping[str, Flow]) -> FlowLibrary:
        if DEFAULT_FLOW_NAME not in flows:
            raise ValueError(f"the flows need one named {DEFAULT_FLOW_NAME!r}")
        numbers = {n: f.name for f in flows.values() for n in f.numbers}
        return cls(flows=dict(flows), by_number=numbers)

    def choose(self, *, requested: str | None, dnid: str = "", extension: str = "") -> Flow:
        if requested:
            flow = self.flows.get(requested)
            if flow is None:
                raise UnknownFlow(f"no flow named {requested!r}")
            return flow
        for number in (dnid, extension):
            name = self.by_number.get(number.strip()) if number else None
            if name is not None:
                return self.flows[name]
        return self.flows[DEFAULT_FLOW_NAME]
