"""A write-ahead spool around the timeline store: interaction records survive a PostgreSQL outage.

`SpooledTimelineStore.append` tries PostgreSQL with a short timeout. When PostgreSQL cannot be
reached (refused, reset, shut down, timed out) the record goes to a local spool file instead
(JSON lines, fsynced before `append` returns) and a background task owned by the store writes
the spooled records later, oldest first, removing each only once PostgreSQL has it. While the
spool holds anything, new records queue behind it so the order is kept.

Exactly once: every record gets a `record_key` (uuid4) before its first attempt; PostgreSQL
stores a key once (`ON CONFLICT (record_key) DO NOTHING`), so a retry of a write whose outcome
was unknown (a timeout after the INSERT was sent, a crash before the spool was trimmed) cannot
make a second row.

Data errors (a constraint the record breaks) are bugs, not outages: `append` raises them. A
spooled record that PostgreSQL later refuses that way is set aside in `rejected-*.jsonl` beside
the spool, loudly, so it cannot block every record behind it.

Files (in `spool_dir`, one per process): `records-<host>-<pid>-<token>.jsonl`, created only when
something is spooled, and `flock`ed while its process lives. Lines are
`{"record": {...}}` (a spooled record) and `{"done": "<record_key>"}` (written to PostgreSQL);
the file is truncated whenever the spool empties. On start the store adopts the files no live
process holds (a previous run that crashed or stopped during an outage); a half-written last
line (the crash came mid-write) is ignored and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import json
import logging
import os
import socket
import uuid
from collections import deque
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

from context.models import ChannelKind, Direction, Identity, IdentityKind, Interaction
from context.ports import TimelineStore

log = logging.getLogger(__name__)

# One process's spool file may hold this much. A call record is about 1 KiB (more with a long
# transcript), so 256 MiB holds some 200 000 calls: hours of outage for a large site, and still
# small beside any disk. Past it a record is refused loudly (`SpoolFull`) instead of filling the
# disk the rest of the host needs.
MAX_SPOOL_BYTES = 256 * 1024 * 1024

# What "PostgreSQL is not there" looks like; anything else a write raises is a data error.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, the socket file gone
    TimeoutError,  # our attempt timeout, or the pool's connect timeout
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08: the connection broke
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
)

_RECORDS = "records-"
_SUFFIX = ".jsonl"
_DATETIMES = frozenset({"started_at", "ended_at", "pop_pushed_at", "pop_acked_at", "ring_at"})


class SpoolFull(RuntimeError):
    """PostgreSQL is unreachable and the spool is at its limit: this record is not kept."""


def encode_interaction(interaction: Interaction) -> dict[str, Any]:
    """The record as JSON-ready values (datetimes ISO 8601 with offset, enums by value)."""
    out: dict[str, Any] = {}
    for f in fields(Interaction):
        value = getattr(interaction, f.name)
        if isinstance(value, Identity):
            value = [value.kind.value, value.value]
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        out[f.name] = value
    return out


def decode_interaction(data: dict[str, Any]) -> Interaction:
    """Inverse of `encode_interaction`; raises ValueError/TypeError/KeyError on a bad record."""
    kw = dict(data)
    for name in _DATETIMES:
        if kw.get(name) is not None:
            kw[name] = datetime.fromisoformat(kw[name])
    kw["intent_reasons"] = tuple(kw.get("intent_reasons", ()))  # JSON gave a list
    kw["channel"] = ChannelKind(kw["channel"])
    kw["direction"] = Direction(kw["direction"])
    if kw.get("identity") is not None:
        kind, value = kw["identity"]
        kw["identity"] = Identity(IdentityKind(kind), value)
    return Interaction(**kw)


def read_spool(path: Path) -> list[Interaction]:
    """The records of a spool file still to be written, oldest first, each key once.

    A line that does not parse is skipped and logged: as a warning when it is the last line
    without its newline (a write cut short by a crash), as an error anywhere else."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        log.warning(
            "spool %s: ignoring a half-written last line (%d bytes): the writer stopped mid-write",
            path,
            len(tail),
        )
    records: dict[str, Interaction] = {}
    done: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if "done" in entry:
                done.add(str(entry["done"]))
                continue
            record = decode_interaction(entry["record"])
        except (ValueError, TypeError, KeyError) as exc:
            log.error("spool %s line %d is not a record, skipped: %r", path, number, exc)
            continue
        if record.record_key is None:
            log.error("spool %s line %d has no record_key, skipped", path, number)
            continue
        records.setdefault(record.record_key, record)
    return [r for key, r in records.items() if key not in done]


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpooledTimelineStore:
    """A `TimelineStore` that keeps interaction records through a PostgreSQL outage.

    Use as an async context manager: entering adopts spools left by earlier runs and starts the
    task that writes spooled records; leaving stops it (records still spooled stay on disk for
    the next start). While PostgreSQL is down `append` returns the record unsaved (`id` None).
    """

    def __init__(
        self,
        *,
        inner: TimelineStore,
        spool_dir: Path,
        attempt_timeout_s: float = 2.0,
        retry_min_s: float = 0.2,
        retry_max_s: float = 5.0,
        max_spool_bytes: int = MAX_SPOOL_BYTES,
    ) -> None:
        self._inner = inner
        self._dir = spool_dir
        self._attempt_timeout_s = attempt_timeout_s
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._max_bytes = max_spool_bytes
        token = uuid.uuid4().hex[:8]
        self.path = spool_dir / f"{_RECORDS}{socket.gethostname()}-{os.getpid()}-{token}{_SUFFIX}"
        self._rejected = spool_dir / f"rejected-{socket.gethostname()}-{os.getpid()}-{token}.jsonl"
        self._fd: int | None = None  # our spool file, opened when something is first spooled
        self._size = 0
        self._pending: deque[Interaction] = deque()  # what the file holds, oldest first
        self._file_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def spooled(self) -> int:
        """How many records wait for PostgreSQL."""
        return len(self._pending)

    async def __aenter__(self) -> SpooledTimelineStore:
        adopted = await asyncio.to_thread(self._adopt_orphans)
        if adopted:
            log.warning("adopted %d interaction records spooled by an earlier run", adopted)
            self._wake.set()
        self._task = asyncio.create_task(self._drain(), name="record-spool-drain")
        self._task.add_done_callback(self._drain_ended)
        return self

    def _drain_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical(
                "the interaction spool writer died; %d records wait in %s until a restart",
                len(self._pending),
                self.path,
                exc_info=task.exception(),
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._file_lock:
            if self._pending:
                log.warning(
                    "stopping with %d interaction records still spooled in %s; the next start"
                    " writes them",
                    len(self._pending),
                    self.path,
                )
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                if not self._pending:
                    self.path.unlink(missing_ok=True)

    # -- the TimelineStore port ------------------------------------------------------------

    async def append(self, interaction: Interaction) -> Interaction:
        if self._task is None:
            raise RuntimeError("SpooledTimelineStore.append outside its `async with`")
        if interaction.record_key is None:
            interaction = replace(interaction, record_key=str(uuid.uuid4()))
        if not self._pending:  # nothing older waits, so this one may go first
            try:
                async with asyncio.timeout(self._attempt_timeout_s):
                    return await self._inner.append(interaction)
            except UNAVAILABLE as exc:
                log.warning(
                    "PostgreSQL unavailable (%r): spooling interaction %s",
                    exc,
                    interaction.record_key,
                )
        await self._spool(interaction)
        return interaction

    async def recent(self, customer_id: int, limit: int) -> list[Interaction]:
        """PostgreSQL's rows and the customer's records still in the spool, newest first: a
        call recorded during an outage is on the timeline at once. With PostgreSQL down, the
        spooled ones alone (the pop says the timeline is partial through its source)."""
        spooled = [r for r in self._pending if r.customer_id == customer_id]
        if not spooled:
            return await self._inner.recent(customer_id, limit)
        try:
            stored = await self._inner.recent(customer_id, limit)
        except UNAVAILABLE:
            stored = []
        keys = {r.record_key for r in stored}
        merged = stored + [r for r in spooled if r.record_key not in keys]
        merged.sort(key=lambda r: r.started_at, reverse=True)
        return merged[:limit]

    async def record_pop_delivery(
        self,
        *,
        linkedid: str,
        pushed_at: datetime | None,
        acked_at: datetime | None,
        ring_at: datetime | None,
    ) -> bool:
        return await self._inner.record_pop_delivery(
            linkedid=linkedid, pushed_at=pushed_at, acked_at=acked_at, ring_at=ring_at
        )

    # -- the spool -------------------------------------------------------------------------

    async def _spool(self, interaction: Interaction) -> None:
        line = _line({"record": encode_interaction(interaction)})
        async with self._file_lock:
            if self._size + len(line) > self._max_bytes:
                log.critical(
                    "interaction spool %s is full (%d of %d bytes) and PostgreSQL is"
                    " unreachable: record %s (linkedid %s) is LOST",
                    self.path,
                    self._size,
                    self._max_bytes,
                    interaction.record_key,
                    interaction.linkedid,
                )
                raise SpoolFull(f"interaction spool {self.path} is full ({self._max_bytes} bytes)")
            await asyncio.to_thread(self._write, line, True)
            self._pending.append(interaction)
        self._wake.set()

    def _open(self) -> int:
        """Create our spool file and lock it: a locked file belongs to a live process."""
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_dir(self._dir)  # the file's name must survive a crash as well as its content
        return fd

    def _write(self, data: bytes, sync: bool) -> None:
        if self._fd is None:
            self._fd = self._open()
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
            if sync:
                os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)  # never leave half a line for the next write
            raise
        self._size += len(data)

    def _truncate(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        self._size = 0

    async def _mark_done(self) -> None:
        async with self._file_lock:
            record = self._pending.popleft()
            if not self._pending:
                await asyncio.to_thread(self._truncate)
            else:
                # Not fsynced: a lost marker only means an idempotent second write after a crash.
                await asyncio.to_thread(self._write, _line({"done": record.record_key}), False)

    def _reject(self, interaction: Interaction) -> None:
        with self._rejected.open("ab") as f:
            f.write(_line({"record": encode_interaction(interaction)}))
            f.flush()
            os.fsync(f.fileno())

    async def _drain(self) -> None:
        delay_s = self._retry_min_s
        while True:
            await self._wake.wait()
            while self._pending:
                record = self._pending[0]
                try:
                    async with asyncio.timeout(self._attempt_timeout_s):
                        await self._inner.append(record)
                except UNAVAILABLE as exc:
                    log.info(
                        "PostgreSQL still unavailable (%r); %d records spooled, retrying in %.1fs",
                        exc,
                        len(self._pending),
                        delay_s,
                    )
                    await asyncio.sleep(delay_s)  # back-off between attempts, not a wait-for
                    delay_s = min(delay_s * 2, self._retry_max_s)
                    continue
                except Exception:
                    log.exception(
                        "PostgreSQL refused spooled interaction %s (linkedid %s); set aside in %s",
                        record.record_key,
                        record.linkedid,
                        self._rejected,
                    )
                    await asyncio.to_thread(self._reject, record)
                delay_s = self._retry_min_s
                await self._mark_done()
            self._wake.clear()

    def _adopt_orphans(self) -> int:
        """Move the records of spool files no live process holds into ours (blocking I/O)."""
        if not self._dir.is_dir():
            return 0
        orphans: list[tuple[Path, int]] = []
        records: list[Interaction] = []
        try:
            for path in sorted(
                self._dir.glob(f"{_RECORDS}*{_SUFFIX}"), key=lambda p: p.stat().st_mtime
            ):
                if path == self.path:
                    continue
                fd = os.open(path, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a live process owns it
                    os.close(fd)
                    continue
                orphans.append((path, fd))
            records = [r for path, _ in orphans for r in read_spool(path)]
            if records:
                self._write(
                    b"".join(_line({"record": encode_interaction(r)}) for r in records), True
                )
                self._pending.extend(records)
            # Only now that our file holds them may theirs go; a crash in between leaves both,
            # and the keys make the second write of each a no-op.
            for path, _ in orphans:
                path.unlink()
            if orphans:
                _fsync_dir(self._dir)
        finally:
            for _, fd in orphans:
                os.close(fd)
        return len(records)
