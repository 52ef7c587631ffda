"""A configuration to administer: two agents, two teams, the default queues and intents."""

from __future__ import annotations

import asyncpg
import pytest

from centralino.admin.store import PgConfigStore
from centralino.app import ADMIN_BUILDERS
from centralino.settings import AcdSettings, AgentSettings, Settings

SETTINGS = Settings(
    acd=AcdSettings(
        agents=[
            AgentSettings(id="a1", skills={"billing": 3, "support": 3, "sales": 2}, teams=["blue"]),
            AgentSettings(id="a2", name="Bea", skills={"support": 2}, teams=["red"]),
        ]
    )
)


@pytest.fixture
async def store(pg_pool: asyncpg.Pool) -> PgConfigStore:
    store = PgConfigStore(pool=pg_pool, settings=SETTINGS, builders=ADMIN_BUILDERS)
    assert await store.seed()
    return store
