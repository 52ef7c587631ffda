"""ConfigWatch: applies what is committed; a lost listening connection is reopened and the
configuration read again (notifications sent meanwhile are gone); a failing apply is logged
and the previous configuration kept."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from centralino.admin.models import Config, Kind, TeamSettings
from centralino.admin.store import PgConfigStore
from centralino.admin.watch import ConfigWatch
from tests.helpers import eventually


def _teams(config: Config) -> set[str]:
    return {v.row.name for v in config.teams if isinstance(v.row, TeamSettings)}


async def test_given_a_dropped_connection_when_a_change_is_made_then_the_watch_still_applies_it(
    store: PgConfigStore, pg_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    applied: list[Config] = []

    async def apply(config: Config) -> None:
        applied.append(config)

    watch = ConfigWatch(dsn=pg_dsn, store=store, apply=apply, check_s=0.05)
    await watch.start()
    try:
        assert _teams(applied[-1]) == {"blue", "red"}
        first = watch.backend_pid
        await pg_pool.execute("SELECT pg_terminate_backend($1)", first)
        await store.create(Kind.TEAMS, TeamSettings(name="green"), actor="root")

        def seen() -> None:
            assert _teams(applied[-1]) == {"blue", "red", "green"}
            assert watch.backend_pid != first

        await eventually(seen, timeout=10)
    finally:
        await watch.aclose()


async def test_an_apply_that_fails_is_logged_and_the_next_change_applied(
    store: PgConfigStore, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    applied: list[Config] = []

    async def apply(config: Config) -> None:
        if "boom" in _teams(config):
            raise RuntimeError("cannot")
        applied.append(config)

    watch = ConfigWatch(dsn=pg_dsn, store=store, apply=apply)
    await watch.start()
    try:
        with caplog.at_level(logging.ERROR, logger="centralino.admin.watch"):
            await store.create(Kind.TEAMS, TeamSettings(name="boom"), actor="root")
            await eventually(lambda: _logged(caplog))
        await store.delete(Kind.TEAMS, "boom", version=1, actor="root")
        await store.create(Kind.TEAMS, TeamSettings(name="green"), actor="root")
        await eventually(lambda: _has(applied, "green"))
        assert watch.reloads == len(applied)
    finally:
        await watch.aclose()


def _logged(caplog: pytest.LogCaptureFixture) -> None:
    assert "keeping the previous one" in caplog.text


def _has(applied: list[Config], team: str) -> None:
    assert team in _teams(applied[-1])
