"""Calls in progress on local disk, so that a call whose process dies still gets its record.

Each inbound call writes one line when its session starts (`open`: its record key, channel,
caller, start), a line or two as it learns its queue and agent (`note`), and one when its own
record is written or spooled (`closed`). A process killed mid-call (SIGKILL, the OOM killer, a
crash) leaves calls opened and never closed in its file. Any Centralino using the same
`spool_dir` adopts such a file — at start and every `adopt_every_s`, only files no live
process holds with `flock` — and writes for each such call one record, outcome `failed`
(`contact.inbound.failed_record`), through the spooled timeline store. That record carries the
key the call's own record would have carried: if the call's record was kept just before the
kill, the failure record is a no-op (`ON CONFLICT (record_key)`), so no call is recorded twice.

Lines are plain `write(2)`s on an `O_APPEND` file, not fsynced: a killed process's writes are
in the kernel's page cache and outlive it; only a power cut can take the last ones (as it takes
the host's calls with them). A write costs microseconds, so it is done inline.

`scope` names the database the records go to (the composition root passes a digest of its URL):
a journal is only ever adopted by a process writing to the same database, so two installations
(or two test runs) sharing a spool directory never record each other's calls.

The file is rotated past `rotate_bytes`: a new file, locked, takes the calls still open, then the
old one is removed. A process that stops cleanly removes its file once no call is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from contact.ports import JournalEntry

log = logging.getLogger(__name__)

_PREFIX = "calls-"
_SUFFIX = ".jsonl"
ROTATE_BYTES = 4 * 1024 * 1024  # ~15 000 calls' lines; the open ones are a few hundred
_NOTE_FIELDS = frozenset({"queue", "intent", "agent_id"})

# What to do with each orphaned call: record it (the composition root resolves the customer
# and appends the failure record). Raising keeps the orphan file for the next attempt.
RecordOrphan = Callable[[JournalEntry], Awaitable[None]]


def _encode(entry: JournalEntry) -> dict[str, Any]:
    return {
        "key": entry.record_key,
        "uniqueid": entry.uniqueid,
        "linkedid": entry.linkedid,
        "caller_id": entry.caller_id,
        "started_at": entry.started_at.isoformat(),
        "queue": entry.queue,
        "intent": entry.intent,
        "agent_id": entry.agent_id,
    }


def _decode(data: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        record_key=str(data["key"]),
        uniqueid=str(data["uniqueid"]),
        linkedid=str(data["linkedid"]),
        caller_id=str(data.get("caller_id") or ""),
        started_at=datetime.fromisoformat(str(data["started_at"])),
        queue=data.get("queue") or None,
        intent=data.get("intent") or None,
        agent_id=data.get("agent_id") or None,
    )


def _with_facts(entry: JournalEntry, facts: dict[str, Any]) -> JournalEntry:
    def fact(name: str, old: str | None) -> str | None:
        return (str(facts[name]) or None) if name in facts else old

    return replace(
        entry,
        queue=fact("queue", entry.queue),
        intent=fact("intent", entry.intent),
        agent_id=fact("agent_id", entry.agent_id),
    )


def read_journal(path: Path) -> list[JournalEntry]:
    """The calls a journal file holds opened and not closed, in the order they started. A
    half-written last line (the process died mid-write) or a damaged line is skipped, logged."""
    open_calls: dict[str, JournalEntry] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = json.loads(raw)
                if "open" in line:
                    entry = _decode(line["open"])
                    open_calls[entry.record_key] = entry
                elif "note" in line:
                    key = str(line["note"])
                    if key in open_calls:
                        open_calls[key] = _with_facts(open_calls[key], line)
                elif "closed" in line:
                    open_calls.pop(str(line["closed"]), None)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("call journal %s line %d unreadable (%s); skipped", path, number, exc)
    return list(open_calls.values())


class FileCallJournal:
    """`contact.ports.CallJournal` on a local file per process; adopts dead processes' files.

    Use as an async context manager: entering adopts orphans and starts the periodic adoption;
    leaving stops it and removes this process's file when no call is open (else it stays, to be
    adopted by the next start)."""

    def __init__(
        self,
        *,
        directory: Path,
        scope: str,
        record_orphan: RecordOrphan,
        adopt_every_s: float = 30.0,
        rotate_bytes: int = ROTATE_BYTES,
    ) -> None:
        self._dir = directory
        self._prefix = f"{_PREFIX}{scope}-"
        self._record_orphan = record_orphan
        self._adopt_every_s = adopt_every_s
        self._rotate_bytes = rotate_bytes
        self._open: dict[str, JournalEntry] = {}
        self._fd: int | None = None
        self._size = 0
        self.path = self._new_path()
        self._task: asyncio.Task[None] | None = None
        self.adopted = 0  # failure records written for dead processes' calls (a metric)

    def _new_path(self) -> Path:
        token = uuid.uuid4().hex[:8]
        return self._dir / f"{self._prefix}{socket.gethostname()}-{os.getpid()}-{token}{_SUFFIX}"

    @property
    def open_calls(self) -> int:
        return len(self._open)

    async def __aenter__(self) -> FileCallJournal:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._fd = self._create(self.path)
        await self.adopt()
        self._task = asyncio.create_task(self._adopt_periodically(), name="call-journal-adopt")
        return self

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
        if self._fd is not None:
            if not self._open:
                self.path.unlink(missing_ok=True)
            else:
                log.warning(
                    "%d calls still open at exit; %s is left for the next start to record",
                    len(self._open),
                    self.path,
                )
            os.close(self._fd)  # releases the lock: the file is now an orphan
            self._fd = None

    @staticmethod
    def _create(path: Path) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    # --- CallJournal ------------------------------------------------------------------------

    def opened(self, entry: JournalEntry) -> None:
        self._open[entry.record_key] = entry
        self._append({"open": _encode(entry)})

    def noted(self, record_key: str, **facts: str) -> None:
        entry = self._open.get(record_key)
        if entry is None:
            return
        self._open[record_key] = _with_facts(entry, facts)
        self._append({"note": record_key, **{k: v for k, v in facts.items() if k in _NOTE_FIELDS}})

    def closed(self, record_key: str) -> None:
        if self._open.pop(record_key, None) is None:
            return
        self._append({"closed": record_key})
        if self._size > self._rotate_bytes:
            self._rotate()

    def _append(self, line: dict[str, Any]) -> None:
        if self._fd is None:
            return  # not entered (a test driving the services alone): nothing to keep
        data = json.dumps(line, separators=(",", ":")).encode() + b"\n"
        try:
            os.write(self._fd, data)
            self._size += len(data)
        except OSError:  # a full disk must not fail the call; the record path still runs
            log.exception("could not write the call journal %s", self.path)

    def _rotate(self) -> None:
        old_fd, old_path = self._fd, self.path
        path = self._new_path()
        try:
            fd = self._create(path)
            data = b"".join(
                json.dumps({"open": _encode(e)}, separators=(",", ":")).encode() + b"\n"
                for e in self._open.values()
            )
            os.write(fd, data)
        except OSError:
            log.exception("could not rotate the call journal %s; keeping it", old_path)
            return
        self._fd, self.path, self._size = fd, path, len(data)
        # Only now may the old file go: until here it was the one that held the open calls.
        old_path.unlink(missing_ok=True)
        if old_fd is not None:
            os.close(old_fd)

    # --- adoption ---------------------------------------------------------------------------

    async def _adopt_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._adopt_every_s)
            try:
                await self.adopt()
            except Exception:  # logged; the next round tries again
                log.exception("adopting dead processes' call journals failed")

    async def adopt(self) -> int:
        """Record the open calls of journal files no live process holds; returns how many."""
        recorded = 0
        for path in sorted(self._dir.glob(f"{self._prefix}*{_SUFFIX}")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # another process adopted it meanwhile
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its process lives
                    continue
                if not path.exists():  # adopted and removed between our open and lock
                    continue
                entries = await asyncio.to_thread(read_journal, path)
                for entry in entries:
                    await self._record_orphan(entry)
                    recorded += 1
                path.unlink(missing_ok=True)
                if entries:
                    log.warning(
                        "recorded %d calls of a stopped process as failed (%s)",
                        len(entries),
                        path.name,
                    )
            finally:
                os.close(fd)
        self.adopted += recorded
        return recorded
