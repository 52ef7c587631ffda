"""The pre-answer fan-out: everything the pop needs, fetched in parallel before answering.

`PreAnswerFanout.start(linkedid=..., caller_id=...)` returns at once with a `FanoutHandle`
whose tasks run: identity resolution; every connector that can look up by the caller's number
(started at once); connectors that need an external id (started as soon as the identity is
known); our own timeline and open tickets (also after the identity). Each query has its own
timeout; the whole has a deadline (`deadline_s`, default 0.4 s) that `handle.wait()` never
exceeds. Queries that finish after the deadline still land: every result is written to the
live store under the linkedid as it arrives (field by field, with a TTL) and announced to
listeners, so the pop updates live. A failing or slow backend is marked as such; its circuit
breaker stops calling it while it keeps failing. `handle.aclose()` (call end) cancels what is
still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from context.circuit import CircuitBreaker
from context.errors import ConfigurationError, ConnectorError
from context.models import (
    CallerProblem,
    ConnectorQuery,
    Fact,
    Identity,
    Interaction,
    Resolution,
    ResolutionStatus,
    Ticket,
)
from context.ports import CallContextStore, Clock, Connector
from context.screen_pop import (
    FIELD_CALLER,
    FIELD_IVR,
    FIELD_META,
    FIELD_TICKETS,
    FIELD_TIMELINE,
    IDENTITY_SOURCE,
    SOURCE_PREFIX,
    TICKETS_SOURCE,
    TIMELINE_SOURCE,
    FactRecord,
    IvrSummary,
    ScreenPop,
    SourceRecord,
    SourceStatus,
    assemble,
    caller_view,
    dumps,
    fact_record,
    interaction_view,
    ivr_view,
    ticket_view,
)
from context.service import ContextService

_T = TypeVar("_T")
log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 0.4
# A backend answering after the deadline still improves the pop the agent sees later (the IVR
# takes seconds), so a query's own timeout is longer than the deadline; it bounds how long a
# hanging backend holds a task and a pooled connection.
DEFAULT_SOURCE_TIMEOUT_S = 2.0
# Our own stores (PostgreSQL) answer in milliseconds; past this they are in trouble.
DEFAULT_STORE_TIMEOUT_S = 1.0
# Keep the per-call context a while after the call for wrap-up; it is not the record.
DEFAULT_CONTEXT_TTL_S = 3600
# Results landing within this window go to the live store in one write (the identity, timeline
# and tickets arrive within milliseconds of each other, and under a burst so do many calls'
# results); far below what a person notices. The desktop in this process is told at once.
DEFAULT_WRITE_COALESCE_S = 0.02
# How many past interactions the pop shows.
DEFAULT_TIMELINE_LIMIT = 10
# Weight of the newest answer time in a source's expected latency (an exponential average:
# it follows a backend that slows down within a few dozen calls).
LATENCY_EWMA_WEIGHT = 0.2

Listener = Callable[["FanoutHandle", str], None]
# Outcomes that say how long a source takes (a skipped or cancelled one says nothing).
_OBSERVED = frozenset({SourceStatus.OK, SourceStatus.FAILED, SourceStatus.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class SourceResult:
    name: str
    status: SourceStatus
    started_ms: float  # after the fan-out started
    elapsed_ms: float | None = None
    facts: tuple[Fact, ...] = ()
    error: str = ""

    @property
    def done(self) -> bool:
        return self.status is not SourceStatus.PENDING

    def record(self) -> SourceRecord:
        return {
            "name": self.name,
            "status": str(self.status),
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 3),
            "error": self.error,
            "facts": _fact_records(self.facts),
        }


def _fact_records(facts: tuple[Fact, ...]) -> list[FactRecord]:
    stamps: dict[datetime, str] = {}
    out = []
    for fact in facts:
        stamp = stamps.get(fact.fetched_at)
        if stamp is None:
            stamp = stamps[fact.fetched_at] = fact.fetched_at.isoformat()
        out.append(fact_record(fact, stamp))
    return out


@dataclass(frozen=True, slots=True)
class FanoutSnapshot:
    linkedid: str
    caller_id: str
    started_at: datetime
    resolution: Resolution | None
    timeline: tuple[Interaction, ...] | None
    open_tickets: tuple[Ticket, ...] | None
    sources: Mapping[str, SourceResult]
    ivr: IvrSummary | None
    complete: bool
    records: Mapping[str, SourceRecord]  # each source as the pop shows it (made once per result)

    @property
    def facts(self) -> list[Fact]:
        return [f for r in self.sources.values() for f in r.facts]

    @property
    def missing(self) -> list[str]:
        return sorted(n for n, r in self.sources.items() if r.status is not SourceStatus.OK)

    def screen_pop(self, now: datetime) -> ScreenPop:
        return assemble(
            linkedid=self.linkedid,
            now=now,
            caller=None if self.resolution is None else caller_view(self.resolution),
            sources=list(self.records.values()),
            open_tickets=None
            if self.open_tickets is None
            else [ticket_view(t) for t in self.open_tickets],
            last_interactions=None
            if self.timeline is None
            else [interaction_view(i) for i in self.timeline],
            ivr=ivr_view(self.ivr),
        )


class PreAnswerFanout:
    def __init__(
        self,
        *,
        service: ContextService,
        connectors: Sequence[Connector],
        call_context: CallContextStore,
        clock: Clock,
        deadline_s: float = DEFAULT_DEADLINE_S,
        source_timeouts_s: Mapping[str, float] | None = None,
        default_source_timeout_s: float = DEFAULT_SOURCE_TIMEOUT_S,
        store_timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
        timeline_limit: int = DEFAULT_TIMELINE_LIMIT,
        breaker_failures: int = 5,
        breaker_open_s: float = 10.0,
        write_coalesce_s: float = DEFAULT_WRITE_COALESCE_S,
    ) -> None:
        names = [c.name for c in connectors]
        reserved = {IDENTITY_SOURCE, TIMELINE_SOURCE, TICKETS_SOURCE}
        if len(set(names)) != len(names) or reserved & set(names):
            raise ConfigurationError(f"connector names must be unique and not {reserved}")
        if deadline_s <= 0:
            raise ConfigurationError("deadline_s must be positive")
        self.service = service
        self.connectors = tuple(connectors)
        self.call_context = call_context
        self.clock = clock
        self.deadline_s = deadline_s
        self.timeouts_s = {
            c.name: (source_timeouts_s or {}).get(c.name, default_source_timeout_s)
            for c in connectors
        }
        self.store_timeout_s = store_timeout_s
        self.write_coalesce_s = write_coalesce_s
        self.timeline_limit = timeline_limit
        self.breakers = {
            c.name: CircuitBreaker(
                clock=clock, failure_threshold=breaker_failures, open_s=breaker_open_s
            )
            for c in connectors
        }
        self._handles: dict[str, FanoutHandle] = {}
        # Expected answer time of each source (ms), learnt from the answers.
        self.expected_ms: dict[str, float] = {}
        # Queries waiting for the next loop turn, started slowest source first (see `_launch`).
        self._queued: list[tuple[float, int, FanoutHandle, Coroutine[Any, Any, None]]] = []
        self._queued_seq = 0

    def start(self, *, linkedid: str, caller_id: str | None) -> FanoutHandle:
        """Start everything for this call now; never blocks. One handle per linkedid."""
        if linkedid in self._handles:
            raise ConfigurationError(f"a fan-out for linkedid {linkedid!r} is already running")
        handle = FanoutHandle(owner=self, linkedid=linkedid, caller_id=caller_id or "")
        self._handles[linkedid] = handle
        handle._launch()
        return handle

    def get(self, linkedid: str) -> FanoutHandle | None:
        return self._handles.get(linkedid)

    def _enqueue(self, handle: FanoutHandle, source: str, query: Coroutine[Any, Any, None]) -> None:
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._start_queued)
        self._queued_seq += 1
        self._queued.append((-self.expected_ms.get(source, 0.0), self._queued_seq, handle, query))

    def _start_queued(self) -> None:
        """Start every query queued since the last turn, the slowest sources first. A task's
        first step runs in creation order, so under a burst of calls the slowest backend's
        requests (the ones each pop waits for) go out before the fast ones', not after all
        the work of the calls ahead; a lone call loses one loop turn."""
        queued, self._queued = self._queued, []
        queued.sort(key=lambda q: (q[0], q[1]))
        slowest = queued[0][0]
        for at, (key, _, handle, query) in enumerate(queued):
            if key != slowest:
                # The rest wait one more turn: creating their tasks would delay the slowest
                # queries' first steps (a burst queues hundreds).
                if not self._queued:
                    asyncio.get_running_loop().call_soon(self._start_queued)
                self._queued[:0] = queued[at:]
                return
            if handle._closed:
                query.close()  # the call ended before its query started
            else:
                handle._spawn(query)

    def _learn(self, source: str, elapsed_ms: float) -> None:
        old = self.expected_ms.get(source)
        self.expected_ms[source] = (
            elapsed_ms if old is None else old + LATENCY_EWMA_WEIGHT * (elapsed_ms - old)
        )

    def _forget(self, handle: FanoutHandle) -> None:
        if self._handles.get(handle.linkedid) is handle:
            del self._handles[handle.linkedid]

    async def aclose(self) -> None:
        """Shutdown: cancel every running fan-out."""
        for handle in list(self._handles.values()):
            await handle.aclose()


class FanoutHandle:
    """One call's fan-out. Holds its tasks; `aclose()` cancels what is still running."""

    def __init__(self, *, owner: PreAnswerFanout, linkedid: str, caller_id: str) -> None:
        self._owner = owner
        self.linkedid = linkedid
        self.caller_id = caller_id
        self.started_at = owner.clock.now()
        self.started_mono = owner.clock.monotonic()
        self._results: dict[str, SourceResult] = {}
        self._records: dict[str, SourceRecord] = {}
        self._resolution: Resolution | None = None
        self._timeline: tuple[Interaction, ...] | None = None
        self._tickets: tuple[Ticket, ...] | None = None
        self._ivr: IvrSummary | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Results waiting to be written; one writer task flushes them together, so a burst of
        # results costs one round trip to the live store, not one each.
        self._dirty: dict[str, object] = {}  # field -> section, encoded when written
        self._writer: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._all_done = asyncio.Event()
        self._listeners: list[Listener] = []
        self._closed = False
        self.completed_mono: float | None = None  # when the last source finished

    # --- reading ----------------------------------------------------------------------------

    def snapshot(self) -> FanoutSnapshot:
        """What is known right now; never waits."""
        return FanoutSnapshot(
            linkedid=self.linkedid,
            caller_id=self.caller_id,
            started_at=self.started_at,
            resolution=self._resolution,
            timeline=self._timeline,
            open_tickets=self._tickets,
            sources=dict(self._results),
            ivr=self._ivr,
            complete=self._all_done.is_set(),
            records=dict(self._records),
        )

    def done(self, sources: Collection[str] | None = None) -> bool:
        if sources is None:
            return self._all_done.is_set()
        return all(self._results.get(n) is not None and self._results[n].done for n in sources)

    async def wait(
        self, deadline_s: float | None = None, *, sources: Collection[str] | None = None
    ) -> FanoutSnapshot:
        """Wait until `sources` (default: all) are done, but never past `deadline_s` after the
        fan-out started (default: the configured deadline). Returns the snapshot then."""
        limit = self._owner.deadline_s if deadline_s is None else deadline_s
        until = self.started_mono + limit
        # Waiting for everything: sleep on the one "all done" event (one wake-up per call,
        # not one per result).
        event = self._all_done if sources is None else self._changed
        while not self.done(sources):
            remaining = until - self._owner.clock.monotonic()
            if remaining <= 0:
                break
            if sources is not None:
                self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                break
        return self.snapshot()

    def add_listener(self, listener: Listener) -> None:
        """`listener(handle, field)` runs (synchronously) whenever a result lands, also after
        the deadline: the desktop hub uses it to push late results live."""
        self._listeners.append(listener)

    def set_ivr(self, summary: IvrSummary) -> None:
        """The IVR's predicted intent, transcript and steps, for the pop (stored live too)."""
        self._ivr = summary
        self._notify(FIELD_IVR)
        self._store(FIELD_IVR, ivr_view(summary))

    async def flushed(self) -> None:
        """Wait until everything known so far has been written to the live store."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        """The call ended: cancel whatever is still running and wait for it to stop; the
        cancelled sources are marked as such in the live store too."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for name, result in list(self._results.items()):
            if not result.done:
                if name in self._owner.breakers:
                    self._owner.breakers[name].record_abandoned()
                self._finish(name, SourceStatus.CANCELLED, error="call ended")
        try:
            await self.flushed()
        finally:
            self._owner._forget(self)

    # --- running ----------------------------------------------------------------------------

    def _elapsed_ms(self) -> float:
        return (self._owner.clock.monotonic() - self.started_mono) * 1000.0

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pending(self, name: str) -> None:
        result = SourceResult(name, SourceStatus.PENDING, self._elapsed_ms())
        self._results[name] = result
        self._records[name] = result.record()

    def _launch(self) -> None:
        owner = self._owner
        meta = {"caller_id": self.caller_id, "started_at": self.started_at.isoformat()}
        self._store(FIELD_META, meta)
        self._pending(IDENTITY_SOURCE)
        self._pending(TIMELINE_SOURCE)
        self._pending(TICKETS_SOURCE)
        phone = owner.service.phones.normalise(self.caller_id)
        identity = phone if isinstance(phone, Identity) else None
        for connector in owner.connectors:
            self._pending(connector.name)
            if connector.needs_link is None:
                if identity is None:
                    self._finish(connector.name, SourceStatus.SKIPPED, error="no caller number")
                else:
                    query = ConnectorQuery(identity=identity)
                    owner._enqueue(self, connector.name, self._run_connector(connector, query))
        owner._enqueue(self, IDENTITY_SOURCE, self._run_identity(phone))

    async def _run_identity(self, phone: Identity | CallerProblem) -> None:
        owner = self._owner
        try:
            async with asyncio.timeout(owner.store_timeout_s):
                resolution = await owner.service.resolve_phone(phone, raw=self.caller_id)
        except TimeoutError:
            self._identity_failed(SourceStatus.TIMED_OUT, "identity store timed out")
            return
        except Exception as exc:  # per-source boundary: a store fault must not end the call
            log.exception("identity resolution failed for %s", self.linkedid)
            self._identity_failed(SourceStatus.FAILED, type(exc).__name__)
            return
        self._resolution = resolution
        self._finish(IDENTITY_SOURCE, SourceStatus.OK, field=FIELD_CALLER)
        self._store(FIELD_CALLER, caller_view(resolution))
        customer = resolution.customer
        links = {link.system: link.external_id for link in resolution.links}
        for connector in owner.connectors:
            if connector.needs_link is None:
                continue
            if connector.needs_link not in links:
                why = (
                    f"no {connector.needs_link} link"
                    if customer is not None
                    else f"caller {resolution.status}"
                )
                self._finish(connector.name, SourceStatus.SKIPPED, error=why)
                continue
            query = ConnectorQuery(identity=resolution.identity, links=links)
            owner._enqueue(self, connector.name, self._run_connector(connector, query))
        if customer is None:
            why = f"caller {resolution.status}"
            if resolution.status is ResolutionStatus.AMBIGUOUS:
                why = "several customers share this number"
            self._finish(TIMELINE_SOURCE, SourceStatus.SKIPPED, error=why)
            self._finish(TICKETS_SOURCE, SourceStatus.SKIPPED, error=why)
            return
        owner._enqueue(self, TIMELINE_SOURCE, self._run_timeline(customer.id))
        owner._enqueue(self, TICKETS_SOURCE, self._run_tickets(customer.id))

    def _identity_failed(self, status: SourceStatus, error: str) -> None:
        self._finish(IDENTITY_SOURCE, status, error=error)
        for name in [TIMELINE_SOURCE, TICKETS_SOURCE] + [
            c.name for c in self._owner.connectors if c.needs_link is not None
        ]:
            self._finish(name, SourceStatus.SKIPPED, error="identity unknown")

    async def _run_timeline(self, customer_id: int) -> None:
        owner = self._owner
        items = await self._read_own(
            TIMELINE_SOURCE,
            "timeline store",
            owner.service.timeline.recent(customer_id, owner.timeline_limit),
        )
        if items is not None:
            self._timeline = tuple(items)
            self._finish(TIMELINE_SOURCE, SourceStatus.OK, field=FIELD_TIMELINE)
            self._store(FIELD_TIMELINE, [interaction_view(i) for i in items])

    async def _run_tickets(self, customer_id: int) -> None:
        tickets = await self._read_own(
            TICKETS_SOURCE,
            "ticket store",
            self._owner.service.tickets.open_for_customer(customer_id),
        )
        if tickets is not None:
            self._tickets = tuple(tickets)
            self._finish(TICKETS_SOURCE, SourceStatus.OK, field=FIELD_TICKETS)
            self._store(FIELD_TICKETS, [ticket_view(t) for t in tickets])

    async def _read_own(self, source: str, store: str, read: Awaitable[_T]) -> _T | None:
        """One of our own stores, under its timeout; on failure the source is marked and None
        returned (the pop says what is missing)."""
        try:
            async with asyncio.timeout(self._owner.store_timeout_s):
                return await read
        except TimeoutError:
            self._finish(source, SourceStatus.TIMED_OUT, error=store)
        except Exception as exc:  # per-source boundary
            log.exception("%s failed for %s", source, self.linkedid)
            self._finish(source, SourceStatus.FAILED, error=type(exc).__name__)
        return None

    async def _run_connector(self, connector: Connector, query: ConnectorQuery) -> None:
        name = connector.name
        breaker = self._owner.breakers[name]
        if not breaker.allow():
            self._finish(name, SourceStatus.CIRCUIT_OPEN, error="backend kept failing")
            return
        try:
            async with asyncio.timeout(self._owner.timeouts_s[name]):
                facts = await connector.fetch(query)
        except TimeoutError:
            breaker.record_failure()
            self._finish(name, SourceStatus.TIMED_OUT, error="no answer in time")
            return
        except ConnectorError as exc:
            breaker.record_failure()
            log.warning("backend %s failed for call %s: %s", name, self.linkedid, exc.message)
            self._finish(name, SourceStatus.FAILED, error=exc.message)
            return
        except Exception as exc:  # per-source boundary: a connector bug must not end the call
            breaker.record_failure()
            log.exception("connector %s crashed for call %s", name, self.linkedid)
            self._finish(name, SourceStatus.FAILED, error=type(exc).__name__)
            return
        breaker.record_success()
        self._finish(name, SourceStatus.OK, facts=tuple(facts))

    def _finish(
        self,
        name: str,
        status: SourceStatus,
        *,
        facts: tuple[Fact, ...] = (),
        error: str = "",
        field: str | None = None,
    ) -> None:
        """Record a source's outcome in memory at once, then (in its own task) in the store."""
        previous = self._results.get(name)
        if previous is not None and previous.done:
            return
        started = previous.started_ms if previous is not None else self._elapsed_ms()
        elapsed = self._elapsed_ms() - started
        result = SourceResult(name, status, started, elapsed, facts, error)
        self._results[name] = result
        record = self._records[name] = result.record()
        if status in _OBSERVED:
            self._owner._learn(name, elapsed)
        if all(r.done for r in self._results.values()):
            self.completed_mono = self._owner.clock.monotonic()
            self._all_done.set()
        self._notify(SOURCE_PREFIX + name)
        if field is not None:
            self._notify(field)
        self._store(SOURCE_PREFIX + name, record)

    def _notify(self, field: str) -> None:
        self._changed.set()
        for listener in self._listeners:
            try:
                listener(self, field)
            except Exception:  # a listener bug must not stop the fan-out
                log.exception("fan-out listener failed for %s", self.linkedid)

    def _store(self, field: str, section: object) -> None:
        # Encoded by the writer, off the path from a result to the pop (and once, if the field
        # changes again before the write).
        self._dirty[field] = section
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._dirty:
                await asyncio.sleep(self._owner.write_coalesce_s)
                dirty, self._dirty = self._dirty, {}
                batch = {field: dumps(section) for field, section in dirty.items()}
                try:
                    await self._owner.call_context.put(self.linkedid, batch)
                except Exception:  # the live store is an aid: memory still serves the call
                    log.exception("could not store %s for call %s", list(batch), self.linkedid)
        finally:
            self._writer = None
