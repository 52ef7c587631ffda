"""LiveStateGuard against real Redis and the AMI peer: the rebuild waits for AMI's channels, and
the reconciling sweep frees what a dead process left behind (one process at a time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from acd.live import MemoryQueueLog
from acd.models import (
    AgentDefinition,
    AgentState,
    QueueEvent,
    QueueLogRow,
    QueuePolicy,
    Strategy,
    WorkItem,
)
from acd.service import Router, item_data
from acd.states import AgentEvent
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.asterisk.ami_client import AmiClient
from centralino.recovery import MARKER_KEY, LiveStateGuard
from centralino.simulator.ami_server import AmiServer
from contact.reconcile import DropItem, FreeAgent, ReconcilePolicy
from tests.acd.support import ManualClock
from tests.helpers import sim_ami_client

AGENTS = {
    name: AgentDefinition(name, {"sales": 3}, endpoint=f"PJSIP/{name}")
    for name in ("ann", "bob", "cat")
}
QUEUES = {"sales": QueuePolicy("sales", skill="sales")}
STEPS = "0.0:-:0"


@dataclass
class Rig:
    redis: aioredis.Redis
    store: RedisLiveStore
    log: MemoryQueueLog
    clock: ManualClock
    asterisk: AmiServer
    ami: AmiClient
    mono: list[float]

    def router(self, owner: str = "p1") -> Router:
        return Router(
            store=self.store,
            queue_log=self.log,
            clock=self.clock,
            queues=QUEUES,
            agents=AGENTS,
            owner=owner,
        )

    def guard(self, router: Router, *, owner: str = "p1", ami: bool = True) -> LiveStateGuard:
        return LiveStateGuard(
            redis=self.redis,
            router=router,
            queue_log=self.log,
            clock=self.clock,
            agents={a.agent_id: a.endpoint for a in AGENTS.values()},
            ami=self.ami if ami else None,
            owner=owner,
            reconcile=ReconcilePolicy(item_grace_s=5.0, agent_grace_s=30.0),
            ami_wait_s=10.0,
            monotonic=lambda: self.mono[0],
        )

    async def states(self) -> dict[str, AgentState]:
        return {a.agent_id: a.state for a in await self.store.agents()}

    def events(self, item_id: str) -> list[QueueEvent]:
        return [r.event for r in self.log.rows if r.item_id == item_id]


@pytest.fixture
async def rig(redis_client: aioredis.Redis) -> AsyncIterator[Rig]:
    asterisk = AmiServer(auth_failure_delay_s=0.05)
    await asterisk.start()
    ami = sim_ami_client(asterisk.port, seed=1)
    store = RedisLiveStore(client=redis_client, prefix="rec:")
    try:
        yield Rig(redis_client, store, MemoryQueueLog(), ManualClock(), asterisk, ami, [0.0])
    finally:
        await ami.close()
        await asterisk.stop()


# --- the rebuild waits for AMI ---------------------------------------------------------------


async def test_given_ami_not_connected_yet_when_first_checked_then_rebuild_waits_for_channels(
    rig: Rig,
) -> None:
    """At start the app checked before AMI connected: every caller looked dead and was
    dropped. Now the check waits (the marker unclaimed) until AMI is up, then rebuilds."""
    now = rig.clock.now()
    caller = WorkItem("c1", "sales", now)
    await rig.log.write(
        [
            QueueLogRow(now, "", "", QueueEvent.AGENT, "ann", data="not_ready:lunch"),
            QueueLogRow(now, "sales", "c1", QueueEvent.ENTER, data=item_data(caller)),
        ]
    )
    rig.asterisk.add_channel("PJSIP/trunk-00000001", uniqueid="c1")
    guard = rig.guard(rig.router())
    assert await guard.check() is None
    assert not await rig.redis.exists(MARKER_KEY)  # nobody claimed it: AMI may still come
    await rig.ami.connect()
    report = await guard.check()
    assert report is not None and (report.requeued, report.dropped) == (1, 0)
    assert [w.item_id for w in await rig.store.waiting("sales")] == ["c1"]


async def test_given_ami_never_connects_then_the_rebuild_runs_after_the_wait(rig: Rig) -> None:
    guard = rig.guard(rig.router())
    assert await guard.check() is None
    rig.mono[0] += 10.0
    assert await guard.check() is not None
    assert guard.rebuilds_total == 1


# --- the reconciling sweep ----------------------------------------------------------------


async def _ready(rig: Rig, agent: str) -> None:
    now = rig.clock.now()
    await rig.store.agent_event(agent, AgentEvent.LOGIN, now)
    await rig.store.agent_event(agent, AgentEvent.READY, now)


async def _answered(rig: Rig, agent: str, item_id: str) -> None:
    """`agent` answered `item_id` (for a process that then died)."""
    now = rig.clock.now()
    await _ready(rig, agent)
    await rig.store.add_item(
        WorkItem(item_id, "sales", now), steps=STEPS, owner="dead", entered_at=now
    )
    (res,) = await rig.store.route(
        "sales", now, "dead", strategy=Strategy.LONGEST_IDLE, window=5, ttl_s=15.0
    )
    assert res.agent_id == agent
    await rig.store.accept(res.reservation_id, now, ttl_s=25.0)
    await rig.store.connect(res.reservation_id, now)
    await rig.log.write([QueueLogRow(now, "sales", item_id, QueueEvent.CONNECT, agent)])


async def test_given_a_dead_process_left_agents_stuck_when_swept_then_all_usable_again(
    rig: Rig,
) -> None:
    router = rig.router()
    await router.publish()
    # cat talks to a caller who is still there; bob's caller is gone, nobody ended the call;
    # ann is reserved (its expiry far away: stuck) for a caller who hung up; two more callers
    # wait, one of them gone.
    await _answered(rig, "cat", "c_talk")
    await _answered(rig, "bob", "c_busy")
    await _ready(rig, "ann")
    now = rig.clock.now()
    for item_id in ("c_dead", "c_wait", "c_gone"):
        await rig.store.add_item(
            WorkItem(item_id, "sales", now), steps=STEPS, owner="dead", entered_at=now
        )
    (held,) = await rig.store.route(
        "sales", now, "dead", strategy=Strategy.LONGEST_IDLE, window=1, ttl_s=1e6
    )
    assert (held.item_id, held.agent_id) == ("c_dead", "ann")
    rig.asterisk.add_channel("PJSIP/trunk-00000001", uniqueid="c_talk", bridge_id="b1")
    rig.asterisk.add_channel("PJSIP/cat-00000002", uniqueid="cat-leg", bridge_id="b1")
    rig.asterisk.add_channel("PJSIP/trunk-00000003", uniqueid="c_wait")
    await rig.ami.connect()
    guard = rig.guard(router)

    assert await guard.sweep() == []  # first seen without their channels: not yet
    rig.clock.advance(6.0)
    fixes = await guard.sweep()
    assert fixes is not None
    assert sorted(f.item_id for f in fixes if isinstance(f, DropItem)) == ["c_dead", "c_gone"]
    assert (await rig.states())["ann"] is AgentState.READY  # freed with her reservation
    assert (await rig.states())["bob"] is AgentState.BUSY  # not for long enough yet
    rig.clock.advance(25.0)
    fixes = await guard.sweep()
    assert fixes is not None
    assert [(f.agent_id, f.state) for f in fixes if isinstance(f, FreeAgent)] == [
        ("bob", AgentState.BUSY)
    ]
    assert await rig.states() == {
        "ann": AgentState.READY,
        "bob": AgentState.READY,
        "cat": AgentState.BUSY,  # her caller's channel is up: left alone
    }
    assert [w.item_id for w in await rig.store.waiting("sales")] == ["c_wait"]
    assert rig.events("c_dead")[-1:] == rig.events("c_gone") == [QueueEvent.ABANDON]
    assert rig.events("c_busy") == [QueueEvent.CONNECT, QueueEvent.COMPLETE]
    rig.clock.advance(60.0)
    assert await guard.sweep() == []  # nothing left to fix, nothing logged twice


async def test_given_two_processes_then_one_sweeps_at_a_time(rig: Rig) -> None:
    await rig.ami.connect()
    first, second = rig.guard(rig.router("p1")), rig.guard(rig.router("p2"), owner="p2")
    assert await first.sweep() == []
    assert await second.sweep() is None
    assert await first.sweep() == []  # the holder keeps its lease
    await rig.redis.delete("centralino:reconcile-lease")  # as if p1 died and it lapsed
    assert await second.sweep() == []


async def test_given_ami_disabled_then_nothing_channel_based_is_fixed(rig: Rig) -> None:
    router = rig.router()
    await router.publish()
    await _answered(rig, "bob", "c_busy")
    guard = rig.guard(router, ami=False)
    for _ in range(3):
        assert await guard.sweep() == []
        rig.clock.advance(60.0)
    assert (await rig.states())["bob"] is AgentState.BUSY


async def test_given_no_reconcile_policy_then_the_guard_does_not_sweep(rig: Rig) -> None:
    guard = LiveStateGuard(
        redis=rig.redis,
        router=rig.router(),
        queue_log=rig.log,
        clock=rig.clock,
        agents={},
        ami=None,
        owner="p1",
    )
    assert await guard.sweep() is None
