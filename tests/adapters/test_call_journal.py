"""The call journal: a call whose process dies is recorded once, as failed, by another process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from centralino.adapters.call_journal import FileCallJournal, read_journal
from centralino.adapters.pg_context import PgTimelineStore
from contact.inbound import failed_record
from contact.ports import JournalEntry
from context.models import ChannelKind, Direction, Interaction, Outcome

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _entry(n: int) -> JournalEntry:
    return JournalEntry(
        record_key=f"00000000-0000-4000-8000-{n:012d}",
        uniqueid=f"1765.{n}",
        linkedid=f"1765.{n}",
        caller_id=f"+39020000{n:04d}",
        started_at=T0,
    )


def _journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("calls-*"))


class Recorder:
    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []

    async def __call__(self, entry: JournalEntry) -> None:
        self.entries.append(entry)


def _journal(tmp_path: Path, recorder: Recorder, scope: str = "db1", **kw: int) -> FileCallJournal:
    return FileCallJournal(
        directory=tmp_path, scope=scope, record_orphan=recorder, adopt_every_s=3600, **kw
    )


async def test_a_journal_holds_the_calls_opened_and_not_closed_with_what_they_learnt(
    tmp_path: Path,
) -> None:
    async with _journal(tmp_path, Recorder()) as journal:
        journal.opened(_entry(1))
        journal.opened(_entry(2))
        journal.noted(_entry(1).record_key, queue="support", intent="billing")
        journal.noted(_entry(1).record_key, agent_id="agent101")
        journal.closed(_entry(2).record_key)
        held = read_journal(journal.path)
        assert journal.open_calls == 1
        journal.closed(_entry(1).record_key)
    assert [e.uniqueid for e in held] == ["1765.1"]
    assert (held[0].queue, held[0].intent, held[0].agent_id) == ("support", "billing", "agent101")
    assert not _journal_files(tmp_path)  # a clean stop with nothing open leaves no file


async def test_a_live_processes_journal_is_never_adopted(tmp_path: Path) -> None:
    recorder = Recorder()
    async with _journal(tmp_path, Recorder()) as live:
        live.opened(_entry(1))
        async with _journal(tmp_path, recorder) as other:
            assert await other.adopt() == 0
    assert recorder.entries == []


async def test_calls_left_open_at_a_stop_are_recorded_by_the_next_start_once(
    tmp_path: Path,
) -> None:
    async with _journal(tmp_path, Recorder()) as first:
        first.opened(_entry(1))
        first.opened(_entry(2))
        first.closed(_entry(1).record_key)
    recorder = Recorder()
    async with _journal(tmp_path, recorder) as second:
        assert [e.uniqueid for e in recorder.entries] == ["1765.2"]
        assert await second.adopt() == 0  # the orphan is gone once recorded
        assert second.adopted == 1


async def test_another_databases_journal_is_left_alone(tmp_path: Path) -> None:
    async with _journal(tmp_path, Recorder(), scope="db1") as first:
        first.opened(_entry(1))
    recorder = Recorder()
    async with _journal(tmp_path, recorder, scope="db2"):
        pass
    assert recorder.entries == []
    recorder = Recorder()
    async with _journal(tmp_path, recorder, scope="db1"):
        pass
    assert [e.uniqueid for e in recorder.entries] == ["1765.1"]


async def test_a_failing_record_keeps_the_orphan_for_the_next_attempt(tmp_path: Path) -> None:
    async with _journal(tmp_path, Recorder()) as first:
        first.opened(_entry(1))

    async def broken(entry: JournalEntry) -> None:
        raise RuntimeError("the spool is full")

    journal = FileCallJournal(directory=tmp_path, scope="db1", record_orphan=broken)
    try:
        async with journal:
            raise AssertionError("entering must fail while the orphan cannot be recorded")
    except RuntimeError:
        pass
    recorder = Recorder()
    async with _journal(tmp_path, recorder):
        pass
    assert [e.uniqueid for e in recorder.entries] == ["1765.1"]


async def test_rotation_keeps_the_open_calls_and_drops_the_old_file(tmp_path: Path) -> None:
    async with _journal(tmp_path, Recorder(), rotate_bytes=2000) as journal:
        journal.opened(_entry(0))
        first_path = journal.path
        for n in range(1, 40):
            journal.opened(_entry(n))
            journal.closed(_entry(n).record_key)
        assert journal.path != first_path
        assert not first_path.exists()
        assert [e.uniqueid for e in read_journal(journal.path)] == ["1765.0"]
        assert len(_journal_files(tmp_path)) == 1
        journal.closed(_entry(0).record_key)


async def test_a_half_written_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "calls-db1-host-1-aaaa.jsonl"
    line = json.dumps(
        {
            "open": {
                "key": "k1",
                "uniqueid": "1.1",
                "linkedid": "1.1",
                "caller_id": "",
                "started_at": T0.isoformat(),
            }
        }
    )
    path.write_text(line + "\n" + '{"open": {"key": "k2", "uniq')
    assert [e.record_key for e in read_journal(path)] == ["k1"]


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from centralino.adapters.call_journal import FileCallJournal
    from contact.ports import JournalEntry

    async def main() -> None:
        async def never(entry):
            raise AssertionError(entry)
        journal = FileCallJournal(directory=Path(sys.argv[1]), scope="db1", record_orphan=never)
        async with journal:
            for n in (1, 2):
                journal.opened(JournalEntry(record_key=f"key-{n}", uniqueid=f"1.{n}",
                    linkedid=f"1.{n}", caller_id="+390255500001",
                    started_at=datetime.now(UTC)))
            journal.noted("key-2", queue="support", agent_id="agent101")
            journal.closed("key-1")
            print("READY", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_a_killed_processes_open_calls_are_adopted_by_a_live_one(tmp_path: Path) -> None:
    child = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        child.stdout.close()
        assert line.strip() == b"READY"
        recorder = Recorder()
        async with _journal(tmp_path, recorder) as journal:
            assert recorder.entries == []  # alive: its flock keeps its calls its own
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            assert await journal.adopt() == 1
        (entry,) = recorder.entries
        assert (entry.record_key, entry.queue, entry.agent_id) == ("key-2", "support", "agent101")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


async def test_the_failure_record_is_a_no_op_when_the_calls_own_record_was_kept(
    pg_pool: asyncpg.Pool,
) -> None:
    store = PgTimelineStore(pool=pg_pool)
    entry = _entry(7)
    own = Interaction(
        id=None,
        customer_id=None,
        channel=ChannelKind.VOICE,
        direction=Direction.INBOUND,
        started_at=T0,
        ended_at=T0,
        linkedid=entry.linkedid,
        outcome=Outcome.ANSWERED.value,
        record_key=entry.record_key,
    )
    await store.append(own)
    await store.append(failed_record(entry, found_at=T0, customer_id=None, identity=None))
    rows = await pg_pool.fetch("SELECT outcome FROM interactions WHERE linkedid = $1", "1765.7")
    assert [r["outcome"] for r in rows] == ["answered"]


async def test_a_call_nobody_recorded_gets_one_failed_record(pg_pool: asyncpg.Pool) -> None:
    store = PgTimelineStore(pool=pg_pool)
    entry = JournalEntry(
        record_key="00000000-0000-4000-8000-000000000009",
        uniqueid="1765.9",
        linkedid="1765.9",
        caller_id="+390255500009",
        started_at=T0,
        queue="support",
        agent_id="agent101",
    )
    found = datetime(2026, 12, 8, 9, 5, tzinfo=UTC)
    for _ in range(2):  # adopted twice (a crash between recording and removing the file)
        await store.append(failed_record(entry, found_at=found, customer_id=None, identity=None))
    rows = await pg_pool.fetch(
        "SELECT outcome, agent_id, queue, ended_at FROM interactions WHERE linkedid = '1765.9'"
    )
    assert [(r["outcome"], r["agent_id"], r["queue"]) for r in rows] == [
        ("failed", "agent101", "support")
    ]
    assert rows[0]["ended_at"] == found
