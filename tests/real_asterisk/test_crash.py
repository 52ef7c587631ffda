"""Centralino killed (SIGKILL) mid-call under a real Asterisk, then started again.

What a crash must never do: queue a caller who already talked to an agent a second time (the
dialplan sees DIALSTATUS=ANSWER and hangs up), or leave an agent reserved or busy for good (the
restarted process's reconciling sweep frees an agent whose channel is gone). The app runs in a
child process here, exactly so that it can be killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from acd.models import AgentState
from centralino.adapters.redis_acd import RedisLiveStore
from tests.helpers import eventually
from tests.real_asterisk.app_process import AppConfig
from tests.real_asterisk.driver import CallDriver, PlacedCall
from tests.real_asterisk.harness import AMI_USER, REPO_ROOT, AsteriskProcess, free_port

pytestmark = pytest.mark.asterisk

DID = "+390200000004"
SUPPORT_KEY = "3"
AGENTS = ["agent101", "agent102"]
# The sweep's patience with an agent seen without a channel (the product's default is 30 s,
# which keeps every agent usable within a minute; a shorter one keeps this test quick).
AGENT_GRACE_S = 3.0
IN_CALL = {AgentState.RESERVED, AgentState.RINGING, AgentState.BUSY}


@dataclass(slots=True)
class AppHandle:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _spawn(config: AppConfig, log: Path) -> AppHandle:
    with log.open("wb") as stderr:  # the child keeps its own copy
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.real_asterisk.app_process", config.to_json()],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return AppHandle(process=process, log=log)


@dataclass(slots=True)
class Apps:
    """Starts Centralino processes against the test's Asterisk, PostgreSQL and Redis."""

    config: AppConfig
    workdir: Path
    started: list[AppHandle] = field(default_factory=list)

    async def start(
        self, *, ready: list[str], present: tuple[str, ...] = (), agi_port: int | None = None
    ) -> AppHandle:
        config = replace(
            self.config,
            ready=ready,
            present=list(present),
            agi_port=agi_port or self.config.agi_port,
            audiosocket_port=free_port() if agi_port else self.config.audiosocket_port,
        )
        log = self.workdir / f"app-{len(self.started)}.log"
        handle = await asyncio.to_thread(_spawn, config, log)
        self.started.append(handle)
        stdout = handle.process.stdout
        assert stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), 60)
        stdout.close()  # one line is all it says
        assert line.strip() == b"READY", f"the app did not start:\n{handle.log_text()[-3000:]}"
        return handle

    def stop_all(self) -> None:
        for handle in self.started:
            if handle.process.poll() is None:
                handle.process.send_signal(signal.SIGTERM)
                try:
                    handle.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    handle.kill()


@pytest.fixture
async def apps(  # noqa: PLR0917 (fixtures are requested by name)
    asterisk: AsteriskProcess,
    driver: CallDriver,
    pg_dsn: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> AsyncIterator[Apps]:
    layout = asterisk.layout
    apps = Apps(
        config=AppConfig(
            agi_port=layout.agi_port,
            audiosocket_port=layout.audiosocket_port,
            ami_port=layout.ami_port,
            ami_user=AMI_USER,
            ami_secret=layout.ami_secret,
            database_url=pg_dsn,
            redis_url=redis_url,
            agents=AGENTS,
            ready=[],
            present=[],
            agent_grace_s=AGENT_GRACE_S,
            spool_dir=str(tmp_path / "spool"),
        ),
        workdir=tmp_path,
    )
    try:
        yield apps
    finally:
        await asyncio.to_thread(apps.stop_all)


async def _agent_states(redis: aioredis.Redis) -> dict[str, AgentState]:
    return {s.agent_id: s.state for s in await RedisLiveStore(client=redis).agents()}


async def _answered_by(driver: CallDriver, call: PlacedCall, *, timeout: float) -> str:
    """The agent whose phone answered `call` (its DialEnd ANSWER)."""
    end = await driver.wait_for(
        "DialEnd",
        lambda e: e.get("Uniqueid") == call.uniqueid and e.get("DialStatus") == "ANSWER",
        timeout=timeout,
    )
    destination = end.event.get("DestChannel") or ""
    return destination.removeprefix("Local/").split("@", 1)[0]


async def _queued_caller(driver: CallDriver, number: str) -> PlacedCall:
    call = await driver.place(did=DID, caller_id=number, patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    return call


async def test_given_the_app_is_killed_mid_conversation_then_nobody_answers_the_caller_twice_and_the_agent_is_freed(  # noqa: E501
    apps: Apps, driver: CallDriver, redis_client: aioredis.Redis, pg_pool: asyncpg.Pool
) -> None:
    for agent in AGENTS:
        await driver.phone(agent, ring_s=1, talk_s=4)
    first = await apps.start(ready=["agent101"])
    call = await _queued_caller(driver, "+390255500001")
    assert await _answered_by(driver, call, timeout=30) == "agent101"
    states = await _agent_states(redis_client)
    assert states["agent101"] is AgentState.BUSY

    first.kill()  # mid-conversation: the FastAGI socket dies under the running Dial

    # The conversation goes on in Asterisk; when the agent hangs up, the dialplan sees
    # DIALSTATUS=ANSWER and ends the call instead of sending it to the fallback queue.
    await eventually(lambda: driver.hung_up(call.uniqueid), timeout=20, interval=0.2)
    assert driver.events("QueueCallerJoin", Uniqueid=call.uniqueid) == []
    answers = driver.where(
        "DialEnd",
        lambda e: e.get("Uniqueid") == call.uniqueid and e.get("DialStatus") == "ANSWER",
    )
    assert len(answers) == 1  # one agent, once

    # Redis still says busy (nobody was left to end the conversation) ...
    assert (await _agent_states(redis_client))["agent101"] is AgentState.BUSY
    await apps.start(ready=[])

    # ... until the restarted process's sweep sees no channel of theirs: usable again, bounded.
    async def freed() -> None:
        assert (await _agent_states(redis_client))["agent101"] not in IN_CALL

    await eventually(freed, timeout=AGENT_GRACE_S + 15, interval=0.5)
    # Usable means the next caller reaches them.
    again = await _queued_caller(driver, "+390255500002")
    assert await _answered_by(driver, again, timeout=30) == "agent101"
    rows = await pg_pool.fetch(
        "SELECT event FROM queue_log WHERE item_id = $1 ORDER BY id", call.uniqueid
    )
    ends = [r["event"] for r in rows if r["event"] in {"complete", "abandon", "exit"}]
    assert ends == ["complete"], [r["event"] for r in rows]  # the sweep closed it, once
    # Its record: written by the restarted process from the killed one's journal, once.
    records = await pg_pool.fetch(
        "SELECT outcome, agent_id FROM interactions WHERE linkedid = $1", call.uniqueid
    )
    assert [(r["outcome"], r["agent_id"]) for r in records] == [("failed", "agent101")]


async def test_given_the_app_is_killed_while_a_caller_waits_then_the_fallback_answers_and_no_agent_is_stuck(  # noqa: E501
    apps: Apps, driver: CallDriver, redis_client: aioredis.Redis, pg_pool: asyncpg.Pool
) -> None:
    for agent in AGENTS:
        await driver.phone(agent, ring_s=1, talk_s=2)
    # agent101 logged in but not ready: the caller holds in our queue.
    first = await apps.start(ready=[], present=("agent101",))
    call = await _queued_caller(driver, "+390255500003")

    async def waiting() -> None:
        assert await RedisLiveStore(client=redis_client).waiting("support")

    await eventually(waiting, timeout=20, interval=0.2)
    first.kill()

    # The dialplan never leaves the caller unanswered: the static fallback queue takes them.
    joined = await driver.wait_for(
        "QueueCallerJoin", lambda e: e.get("Uniqueid") == call.uniqueid, timeout=20
    )
    assert (joined.event.get("Queue") or "").startswith("fallback-")
    await driver.hang_up(call)
    await eventually(lambda: driver.hung_up(call.uniqueid), timeout=10)

    # The restarted process makes an agent ready: the dead caller's item must not be offered
    # to them (nor handed to the callback dialer), and the agent must not be stuck.
    second = await apps.start(ready=["agent102"])

    async def item_gone() -> None:
        assert not await RedisLiveStore(client=redis_client).waiting("support")
        assert (await _agent_states(redis_client))["agent102"] is AgentState.READY

    await eventually(item_gone, timeout=20, interval=0.5)
    assert "cannot originate" not in second.log_text()
    assert not driver.where(
        "Newchannel",
        lambda e: (
            (e.get("Channel") or "").startswith("Local/agent102@test-phones")
            and (e.get("Linkedid") or "") == call.uniqueid
        ),
    )
    rows = await pg_pool.fetch(
        "SELECT event FROM queue_log WHERE item_id = $1 ORDER BY id", call.uniqueid
    )
    ends = [r["event"] for r in rows if r["event"] in {"complete", "abandon", "exit"}]
    assert len(ends) == 1, [r["event"] for r in rows]
    records = await pg_pool.fetch(
        "SELECT outcome, queue FROM interactions WHERE linkedid = $1", call.uniqueid
    )
    assert [(r["outcome"], r["queue"]) for r in records] == [("failed", "support")]


async def test_given_the_primary_server_is_down_then_the_dialplan_takes_the_call_to_the_backup(
    apps: Apps, driver: CallDriver, redis_client: aioredis.Redis, pg_pool: asyncpg.Pool
) -> None:
    """Two Centralino processes on one Redis and PostgreSQL; the dialplan's primary is killed.
    CENTRALINO_AGI_BACKUP names the second: Asterisk's AGI to the primary fails (refused) and
    the call runs on the backup, which routes it to its agent, as if nothing happened."""
    for agent in AGENTS:
        await driver.phone(agent, ring_s=1, talk_s=2)
    backup_port = free_port()
    primary = await apps.start(ready=["agent101"])
    await apps.start(ready=[], agi_port=backup_port)
    response = await driver.ami.action(
        "Setvar", Variable="CENTRALINO_AGI_BACKUP", Value=f"127.0.0.1:{backup_port}"
    )
    assert response.ok, response
    try:
        primary.kill()
        call = await _queued_caller(driver, "+390255500005")
        assert await _answered_by(driver, call, timeout=30) == "agent101"
        await eventually(lambda: driver.hung_up(call.uniqueid), timeout=20, interval=0.2)
        assert driver.events("QueueCallerJoin", Uniqueid=call.uniqueid) == []  # no fallback

        async def recorded() -> list[str]:
            rows = await pg_pool.fetch(
                "SELECT outcome FROM interactions WHERE linkedid = $1", call.uniqueid
            )
            assert rows
            return [r["outcome"] for r in rows]

        assert await eventually(recorded, timeout=10) == ["answered"]
    finally:
        await driver.ami.action("Setvar", Variable="CENTRALINO_AGI_BACKUP", Value="")
