"""`centralino user add|passwd|disable` and `centralino token create` against the configured
database (real PostgreSQL), with passwords on standard input."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import asyncpg
import pytest

from centralino.access import credentials
from centralino.access.passwords import Passwords
from centralino.adapters.pg_accounts import PgAccounts
from centralino.cli import main


@pytest.fixture
def database(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    async def empty() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("TRUNCATE accounts, sessions, api_tokens, audit_log CASCADE")
        finally:
            await conn.close()

    asyncio.run(empty())
    monkeypatch.delenv("CENTRALINO_CONFIG", raising=False)
    monkeypatch.setenv("CENTRALINO_DATABASE_URL", pg_dsn)
    yield pg_dsn


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_user_add_passwd_and_disable(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "correct horse battery staple"
    argv = ["user", "add", "ann", "--role", "agent", "--agent-id", "a1", "--password-stdin"]
    assert run(argv, monkeypatch, password + "\n") == 0
    sup = ["user", "add", "lead", "--role", "supervisor", "--team", "blue", "--team", "green"]
    assert run([*sup, "--password-stdin"], monkeypatch, password + "\n") == 0
    rows = query(database, "SELECT username, role, agent_id, teams, password_hash FROM accounts")
    by_name = {r["username"]: r for r in rows}
    assert by_name["ann"]["role"] == "agent" and by_name["ann"]["agent_id"] == "a1"
    assert by_name["lead"]["teams"] == ["blue", "green"]
    ann_hash = by_name["ann"]["password_hash"]
    assert ann_hash.startswith("$argon2id$") and password not in ann_hash
    assert Passwords().verify(ann_hash, password)  # the newline is not part of it

    assert run(["user", "passwd", "ann"], monkeypatch, "a brand new passphrase\n") == 0
    new_hash = query(database, "SELECT password_hash FROM accounts WHERE username = 'ann'")[0][0]
    assert Passwords().verify(new_hash, "a brand new passphrase")

    assert run(["token", "create", "ann"], monkeypatch) == 0
    assert run(["user", "disable", "ann"], monkeypatch) == 0
    disabled = query(database, "SELECT disabled_at FROM accounts WHERE username = 'ann'")
    assert disabled[0][0] is not None
    revoked = query(database, "SELECT revoked_at FROM api_tokens")
    assert [r[0] is not None for r in revoked] == [True]
    actions = [r[0] for r in query(database, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == [
        "account_created",
        "account_created",
        "password_changed",
        "token_created",
        "account_disabled",
    ]
    assert password not in capsys.readouterr().out


def test_token_create_prints_the_token_once_and_stores_its_digest(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["user", "add", "ops", "--role", "admin", "--password-stdin"]
    assert run(argv, monkeypatch, "correct horse battery staple") == 0
    capsys.readouterr()
    assert run(["token", "create", "ops"], monkeypatch) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("cnt_") and "\n" not in token
    assert "shown only now" in out.err
    digests = query(database, "SELECT token_digest FROM api_tokens")
    assert [bytes(r[0]) for r in digests] == [credentials.digest(token)]

    async def resolve() -> str | None:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=1)
        assert pool is not None
        try:
            from datetime import UTC, datetime

            account = await PgAccounts(pool=pool).token_account(
                credentials.digest(token), now=datetime.now(UTC)
            )
            return None if account is None else account.username
        finally:
            await pool.close()

    assert asyncio.run(resolve()) == "ops"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["user", "add", "ann", "--role", "agent", "--password-stdin"], "x" * 20, "--agent-id"),
        (
            ["user", "add", "<b>ann</b>", "--role", "admin", "--password-stdin"],
            "correct horse battery staple",
            "username",
        ),
        (["user", "add", "ann", "--role", "admin", "--password-stdin"], "short", "shorter than"),
        (["user", "add", "ann", "--role", "admin", "--password-stdin"], "", "shorter than"),
        (["user", "passwd", "nobody"], "correct horse battery staple", "no account named"),
        (["user", "disable", "nobody"], "", "no account named"),
        (["token", "create", "nobody"], "", "no account named"),
    ],
)
def test_bad_input_is_a_clear_error(  # noqa: PLR0917 - pytest passes fixtures and params
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    assert run(argv, monkeypatch, stdin) == 2
    assert message in capsys.readouterr().err
    assert query(database, "SELECT count(*) FROM accounts")[0][0] == 0


def test_a_duplicate_name_and_a_missing_database_are_clear(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["user", "add", "ann", "--role", "admin", "--password-stdin"]
    assert run(argv, monkeypatch, "correct horse battery staple") == 0
    assert run(argv, monkeypatch, "correct horse battery staple") == 2
    assert "taken" in capsys.readouterr().err
    monkeypatch.delenv("CENTRALINO_DATABASE_URL")
    assert run(["token", "create", "ann"], monkeypatch) == 2
    assert "CENTRALINO_DATABASE_URL" in capsys.readouterr().err


def test_password_is_never_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["user", "add", "ann", "--role", "admin", "--password", "hunter2hunter2"])
    assert "unrecognized arguments" in capsys.readouterr().err
