"""Prometheus metrics on a registry owned by the application (no process-global registry).

Protocol servers keep plain integer counters as attributes (they import no metrics library);
`Metrics.observe(...)` exports such attributes when `/metrics` is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    help: str
    kind: str  # "counter" or "gauge"
    read: Callable[[], float]


class _AttributeCollector(Collector):
    def __init__(self) -> None:
        self.sources: list[_Source] = []

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            value = float(source.read())
            if source.kind == "counter":
                yield CounterMetricFamily(source.name, source.help, value=value)
            else:
                yield GaugeMetricFamily(source.name, source.help, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _AttributeCollector()
        self.registry.register(self._collector)

    def counter(self, name: str, help: str, read: Callable[[], float]) -> None:
        self._collector.sources.append(_Source(name, help, "counter", read))

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self._collector.sources.append(_Source(name, help, "gauge", read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
