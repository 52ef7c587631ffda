"""The configuration in PostgreSQL: seeded once from the settings, then the database wins;
versions refuse lost updates; every change is checked, audited and notified."""

from __future__ import annotations

import asyncio
import tomllib

import asyncpg
import pytest

from centralino.admin.models import Invalid, Kind, TeamSettings
from centralino.admin.store import CHANNEL, Conflict, NotFound, PgConfigStore
from centralino.app import ADMIN_BUILDERS, _managed_config, _staff
from centralino.flows import FlowStore
from centralino.settings import AcdSettings, AgentSettings, QueueSettings, Settings
from tests.admin.conftest import SETTINGS


async def test_given_seeded_tables_when_the_settings_change_then_the_database_wins(
    store: PgConfigStore, pg_pool: asyncpg.Pool
) -> None:
    other = Settings(
        acd=AcdSettings(
            agents=[
                AgentSettings(id="zed", skills=dict.fromkeys(("billing", "support", "sales"), 5))
            ]
        )
    )
    again = PgConfigStore(pool=pg_pool, settings=other, builders=ADMIN_BUILDERS)
    assert not await again.seed()
    config = await again.load()
    assert [v.row.id for v in config.agents] == ["a1", "a2"]  # type: ignore[union-attr]
    assert config.find(Kind.AGENTS, "a2").row.name == "Bea"  # type: ignore[union-attr]
    assert [v.version for v in config.queues] == [1, 1, 1]


async def test_an_update_naming_a_stale_version_is_refused(store: PgConfigStore) -> None:
    billing = (await store.load()).find(Kind.QUEUES, "billing")
    assert billing is not None and isinstance(billing.row, QueueSettings)
    faster = billing.row.model_copy(update={"sl_target_s": 15.0})
    change = await store.update(Kind.QUEUES, "billing", faster, version=1, actor="root")
    assert change.after is not None and change.after.version == 2
    with pytest.raises(Conflict) as caught:
        await store.update(Kind.QUEUES, "billing", billing.row, version=1, actor="other")
    assert caught.value.current == 2
    found = (await store.load()).find(Kind.QUEUES, "billing")
    assert found is not None and found.row.sl_target_s == 15.0  # type: ignore[union-attr]
    assert [v.row.name for v in (await store.load()).queues] == ["billing", "support", "sales"]  # type: ignore[union-attr]


async def test_a_change_the_whole_refuses_writes_nothing(
    store: PgConfigStore, pg_pool: asyncpg.Pool
) -> None:
    with pytest.raises(Invalid) as caught:
        await store.delete(Kind.AGENTS, "a1", version=None, actor="root")  # the only billing agent
    assert "no agent has skill 'billing'" in str(caught.value)
    with pytest.raises(Invalid):
        await store.delete(Kind.TEAMS, "blue", version=None, actor="root")  # a1 is in it
    with pytest.raises(NotFound):
        await store.delete(Kind.TEAMS, "green", version=None, actor="root")
    with pytest.raises(Conflict):
        await store.create(Kind.TEAMS, TeamSettings(name="red"), actor="root")
    assert len((await store.load()).agents) == 2
    assert await pg_pool.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_every_change_is_audited_with_before_and_after(
    store: PgConfigStore, pg_pool: asyncpg.Pool
) -> None:
    await store.create(
        Kind.TEAMS, TeamSettings(name="green", description="night"), actor="root", remote="10.0.0.9"
    )
    await store.delete(Kind.TEAMS, "green", version=1, actor="root")
    rows = await pg_pool.fetch(
        "SELECT actor, action, target, detail::text AS d, remote FROM audit_log ORDER BY id"
    )
    assert [(r["actor"], r["action"], r["target"], r["remote"]) for r in rows] == [
        ("root", "config.create", "teams/green", "10.0.0.9"),
        ("root", "config.delete", "teams/green", None),
    ]
    assert '"before": null' in rows[0]["d"] and '"description": "night"' in rows[0]["d"]
    assert '"after": null' in rows[1]["d"]


async def test_committed_changes_notify_and_refused_ones_do_not(
    store: PgConfigStore, pg_dsn: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        with pytest.raises(Invalid):
            await store.delete(Kind.TEAMS, "blue", version=None, actor="root")
        await store.create(Kind.TEAMS, TeamSettings(name="green"), actor="root")
        assert await asyncio.wait_for(heard.get(), 5) == "teams/green"
        assert heard.empty()
    finally:
        await conn.close()


async def test_two_writers_at_once_cannot_both_break_the_whole(store: PgConfigStore) -> None:
    """Each alone is fine (the other still serves support); together no one would."""
    a1 = AgentSettings(id="a1", skills={"billing": 3, "sales": 2}, teams=["blue"])
    a2 = AgentSettings(id="a2", skills={"billing": 1}, teams=["red"])
    results = await asyncio.gather(
        store.update(Kind.AGENTS, "a1", a1, version=1, actor="x"),
        store.update(Kind.AGENTS, "a2", a2, version=1, actor="y"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Change", "Invalid"]


async def test_a_queue_a_flow_sends_callers_to_cannot_be_deleted(pg_pool: asyncpg.Pool) -> None:
    settings = SETTINGS.model_copy(
        update={
            "acd": SETTINGS.acd.model_copy(
                update={
                    "queues": [*SETTINGS.acd.queues, QueueSettings(name="vip", skill="support")]
                }
            ),
            "flows": {"vip_line": tomllib.loads(VIP_FLOW)},
        }
    )
    flows = FlowStore(settings=settings)
    managed = await _managed_config(
        pg_pool, settings, _staff(settings, None, None), None, flows=flows
    )
    with pytest.raises(Invalid) as caught:
        await managed.store.delete(Kind.QUEUES, "vip", version=None, actor="root")
    assert str(caught.value) == (
        "flows: flow 'vip_line' step 'queue': no queue named 'vip' (acd.queues)"
    )


VIP_FLOW = """
start = "queue"
[steps.queue]
type = "queue"
queue = "vip"
"""
