"""The Redis live store against real Redis: same decisions as the in-memory reference, atomic
across racing OS processes, reservations of a dead process expire and the call routes again."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from acd.errors import DuplicateItem, IllegalTransition, StaleReservation, UnknownAgent
from acd.live import MemoryLiveStore, MemoryQueueLog
from acd.models import (
    AgentDefinition,
    AgentState,
    Channel,
    Discarded,
    Offer,
    QueueEvent,
    QueueLogRow,
    QueuePolicy,
    Reservation,
    RouteRequest,
    RoutingStep,
    SkillRequirement,
    Strategy,
    WorkItem,
    queue_score,
)
from acd.policies import encode_steps
from acd.ports import LiveStore
from acd.service import Router
from acd.states import AgentEvent
from centralino.adapters.redis_acd import RedisLiveStore
from tests.acd.support import STEPS, ManualClock, random_agents, random_item
from tests.adapters.acd_procs import doomed_process, race_process
from tests.helpers import eventually


def _key(r: Reservation) -> tuple[str, str, str, str, str]:
    return (r.item_id, r.agent_id, r.queue, r.channel.value, r.owner)


async def _attempt(coro: Any) -> Any:
    """The result, or the error as comparable data (both stores must fail the same way)."""
    try:
        result = await coro
    except IllegalTransition as exc:
        return ("illegal", exc.state, exc.event)
    except StaleReservation:
        return ("stale",)
    return _key(result) if isinstance(result, Reservation) else result


async def _snapshot(store: LiveStore) -> tuple[object, ...]:
    snap = await store.snapshot(["q1", "q2"])
    return (
        sorted((a.agent_id, a.state.value, a.since, a.reason, dict(a.load)) for a in snap.agents),
        sorted(_key(r) for r in snap.reservations),
        [(w.item_id, w.queue, w.owner, w.channel, w.callback_number) for w in snap.waiting],
        snap.callbacks,
    )


def _discarded(gone: Discarded | None) -> object:
    if gone is None:
        return None
    item = gone.item
    res = gone.reservation
    return (item.item_id, item.queue, item.owner, item.channel, res and _key(res))


async def _agents(store: LiveStore) -> list[tuple[str, str, str, dict[str, int]]]:
    return sorted((a.agent_id, a.state.value, a.reason, dict(a.load)) for a in await store.agents())


@pytest.mark.parametrize(
    ("seed", "functions"),
    [(1, None), (2, None), (3, None), (1, False)],
    ids=["seed1", "seed2", "seed3", "seed1-eval-scripts"],
)
async def test_given_random_operations_when_run_on_redis_and_reference_then_same_decisions(
    redis_client: aioredis.Redis, seed: int, functions: bool | None
) -> None:
    rng = np.random.default_rng(seed)
    ref: LiveStore = MemoryLiveStore()
    red: LiveStore = RedisLiveStore(client=redis_client, prefix=f"eq{seed}:", functions=functions)
    stores = (ref, red)
    now = 10_000.0
    agents = random_agents(rng, 30)
    for store in stores:
        await store.heartbeat("p1", now, ttl_s=1e6)
        await store.heartbeat("p2", now, ttl_s=1e6)
        for a in agents:
            await store.put_agent(a, now)
            await store.agent_event(a.agent_id, AgentEvent.LOGIN, now)
    held: dict[str, tuple[str, str]] = {}  # ref rid -> (redis rid, state)
    fixes = np.random.default_rng(seed + 100)
    discarded = resets = 0
    busy: list[tuple[str, Channel]] = []
    item_no = 0
    decisions = 0
    agent_routed = routed_on_entry = 0
    for _ in range(400):
        now += float(rng.integers(0, 8))
        op = rng.random()
        outs: list[Any] = []
        if op < 0.2:
            who = agents[int(rng.integers(len(agents)))].agent_id
            ev = (AgentEvent.READY, AgentEvent.NOT_READY, AgentEvent.READY)[int(rng.integers(3))]
            for store in stores:
                status = await _attempt(store.agent_event(who, ev, now, reason="break"))
                outs.append(status if isinstance(status, tuple) else status.state)
        elif op < 0.35:
            item = random_item(rng, item_no, now, agents)
            item_no += 1
            for store in stores:
                outs.append(
                    await store.add_item(
                        item,
                        steps=encode_steps(STEPS),
                        owner=("p1", "p2")[item_no % 2],
                        entered_at=now,
                    )
                )
        elif op < 0.45:  # queued and its queue routed in the same step
            item = random_item(rng, item_no, now, agents)
            item_no += 1
            strategy = list(Strategy)[int(rng.integers(3))]
            added = [
                await store.add_and_route(
                    item,
                    steps=encode_steps(STEPS),
                    owner=("p1", "p2")[item_no % 2],
                    entered_at=now,
                    request=RouteRequest(item.queue, strategy, 30.0),
                    window=10,
                )
                for store in stores
            ]
            outs = [(position, [_key(r) for r in made]) for position, made in added]
            for r_ref, r_red in zip(added[0][1], added[1][1], strict=False):
                held[r_ref.reservation_id] = (r_red.reservation_id, "reserved")
                routed_on_entry += 1
        elif op < 0.75:
            queue = ("q1", "q2")[int(rng.integers(2))]
            owner = ("p1", "p2")[int(rng.integers(2))]
            strategy = list(Strategy)[int(rng.integers(3))]
            got = []
            for store in stores:
                got.append(
                    await store.route(queue, now, owner, strategy=strategy, window=10, ttl_s=30.0)
                )
            outs = [[_key(r) for r in g] for g in got]
            decisions += len(got[0])
            for r_ref, r_red in zip(got[0], got[1], strict=False):
                held[r_ref.reservation_id] = (r_red.reservation_id, "reserved")
        elif op < 0.9 and held:
            rid = list(held)[int(rng.integers(len(held)))]
            red_rid, _state = held[rid]
            choice = rng.random()
            if choice < 0.3:
                for store, r in ((ref, rid), (red, red_rid)):
                    outs.append(await _attempt(store.accept(r, now, ttl_s=20.0)))
            elif choice < 0.6:
                for store, r in ((ref, rid), (red, red_rid)):
                    outs.append(await _attempt(store.connect(r, now)))
                if outs[0][0] not in ("illegal", "stale"):
                    busy.append((outs[0][1], Channel(outs[0][3])))
                    del held[rid]
            else:
                # RONA is legal whether the phone rang or not; ANSWER is no release at all
                # (illegal: nothing may change, the reservation stays held and expiring).
                ev = (
                    AgentEvent.REJECT,
                    AgentEvent.EXPIRE,
                    AgentEvent.RING_NO_ANSWER,
                    AgentEvent.ANSWER,
                )[int(rng.integers(4))]
                for store, r in ((ref, rid), (red, red_rid)):
                    outs.append(await _attempt(store.release(r, now, event=ev, reason="no")))
                if outs[0] is None or outs[0][0] != "illegal":
                    del held[rid]
        elif busy and rng.random() < 0.5:
            agent_id, channel = busy.pop(int(rng.integers(len(busy))))
            wrap = float(rng.integers(0, 3) * 5)
            for store in stores:
                st = await store.finish(agent_id, channel, now, worked_s=42.0, wrap_up_s=wrap)
                outs.append((st.state, dict(st.load)))
        elif busy:  # agent-driven: the freed agent takes its next item in the same step
            agent_id, channel = busy.pop(int(rng.integers(len(busy))))
            wrap = float(rng.integers(0, 2) * 5)
            queues = ["q1", "q2"] if rng.random() < 0.5 else ["q2", "q1"]
            owner = ("p1", "p2")[int(rng.integers(2))]
            requests = [RouteRequest(q, Strategy.LONGEST_IDLE, 30.0) for q in queues]
            done = [
                await store.finish_and_route(
                    agent_id,
                    channel,
                    now,
                    worked_s=42.0,
                    wrap_up_s=wrap,
                    owner=owner,
                    requests=requests,
                    window=10,
                )
                for store in stores
            ]
            outs = [(st.state, dict(st.load), res and _key(res)) for st, res in done]
            if done[0][1] is not None and done[1][1] is not None:
                held[done[0][1].reservation_id] = (done[1][1].reservation_id, "reserved")
                agent_routed += 1
        else:
            swept = [await store.sweep(now) for store in stores]
            outs = [(sorted(_key(r) for r in exp), sorted(wrapped)) for exp, wrapped in swept]
            for gone in swept[0][0]:
                held.pop(gone.reservation_id, None)
        if outs:
            assert outs[0] == outs[1], f"diverged at t={now}: {outs}"
        # The reconciling sweep's reads and fixes, on a second stream of choices.
        snaps = [await _snapshot(store) for store in stores]
        assert snaps[0] == snaps[1], f"snapshots diverged at t={now}"
        if fixes.random() < 0.04 and item_no:
            item_id = f"i{int(fixes.integers(item_no)):04d}"
            taken = [await store.discard_item(item_id, now) for store in stores]
            assert [_discarded(g) for g in taken] == [_discarded(taken[0])] * 2
            discarded += taken[0] is not None
        if fixes.random() < 0.04:
            status = list(await ref.agents())[int(fixes.integers(len(agents)))]
            since = status.since if fixes.random() < 0.8 else status.since - 1.0
            reset = [
                await store.reset_agent(status.agent_id, state=status.state, since=since, now=now)
                for store in stores
            ]
            assert [r and (r.state, r.since) for r in reset] == [
                reset[0] and (reset[0].state, reset[0].since)
            ] * 2
            resets += reset[0] is not None
        live = {r.reservation_id for r in (await ref.snapshot([])).reservations}
        held = {k: v for k, v in held.items() if k in live}
        working = {a.agent_id for a in await ref.agents() if a.state is AgentState.BUSY}
        busy = [(a, ch) for a, ch in busy if ch is not Channel.VOICE or a in working]
        assert await _agents(ref) == await _agents(red)
        for q in ("q1", "q2"):
            w_ref = [(w.item_id, w.owner) for w in await ref.waiting(q)]
            w_red = [(w.item_id, w.owner) for w in await red.waiting(q)]
            assert w_ref == w_red
    assert discarded > 0 and resets > 0  # the sweep's fixes really ran
    assert decisions > 40  # the scenario really routed
    assert agent_routed > 0  # and a freed agent took an item itself
    assert routed_on_entry > 0  # and an arriving item was matched as it entered


@pytest.mark.parametrize("functions", [None, False], ids=["functions", "eval-scripts"])
async def test_given_calls_waiting_when_agents_free_up_then_they_take_the_same_items_as_reference(
    redis_client: aioredis.Redis, functions: bool | None
) -> None:
    """Agent-driven routing (`finish_and_route`) with more calls than agents: every freed agent
    takes the same item on Redis as in the reference (requirements relaxing with time,
    preferred agents, priorities, chat and email slots, queue order and window)."""
    rng = np.random.default_rng(11)
    ref: LiveStore = MemoryLiveStore()
    red: LiveStore = RedisLiveStore(client=redis_client, prefix="ad:", functions=functions)
    stores = (ref, red)
    now = 50_000.0
    agents = random_agents(rng, 20)
    item_no = 0

    async def add_items(n: int) -> None:
        nonlocal item_no
        for _ in range(n):
            item = random_item(rng, item_no, now, agents)
            item_no += 1
            for store in stores:
                await store.add_item(item, steps=encode_steps(STEPS), owner="p1", entered_at=now)

    async def answer(pair: list[Reservation]) -> None:
        for store, res in zip(stores, pair, strict=True):
            await store.accept(res.reservation_id, now, ttl_s=20.0)
            await store.connect(res.reservation_id, now)

    for store in stores:
        await store.heartbeat("p1", now, ttl_s=1e6)
        for a in agents:
            await store.put_agent(a, now)
            await store.agent_event(a.agent_id, AgentEvent.LOGIN, now)
            await store.agent_event(a.agent_id, AgentEvent.READY, now)
    # Everyone busy on a voice call, 80 more items waiting.
    for a in agents:
        item = WorkItem(f"first-{a.agent_id}", "q0", now, preferred_agents=(a.agent_id,))
        made = []
        for store in stores:
            await store.add_item(item, steps=encode_steps(STEPS), owner="p1", entered_at=now)
            made.append(
                await store.route(
                    "q0", now, "p1", strategy=Strategy.LONGEST_IDLE, window=1, ttl_s=30.0
                )
            )
        await answer([m[0] for m in made])
    busy = [(a.agent_id, Channel.VOICE) for a in agents]
    await add_items(80)
    taken = 0
    for _ in range(300):
        now += float(rng.integers(0, 15))
        if rng.random() < 0.2:
            await add_items(int(rng.integers(1, 4)))
        if not busy:
            break
        agent_id, channel = busy.pop(int(rng.integers(len(busy))))
        queues = ["q1", "q2"] if rng.random() < 0.5 else ["q2", "q1"]
        requests = [RouteRequest(q, Strategy.LONGEST_IDLE, 30.0) for q in queues]
        window = (3, 10, 50)[int(rng.integers(3))]
        done = [
            await store.finish_and_route(
                agent_id,
                channel,
                now,
                worked_s=30.0,
                wrap_up_s=0.0,
                owner="p1",
                requests=requests,
                window=window,
            )
            for store in stores
        ]
        outs = [(st.state, dict(st.load), res and _key(res)) for st, res in done]
        assert outs[0] == outs[1], f"diverged at t={now}: {outs}"
        pair = [res for _, res in done if res is not None]
        if len(pair) == 2:
            taken += 1
            await answer(pair)
            busy.append((pair[0].agent_id, pair[0].channel))
        elif channel is not Channel.VOICE or done[0][0].state is AgentState.READY:
            # Nothing it may take now: it stays free until a call-driven pass finds it one.
            queue = ("q1", "q2")[int(rng.integers(2))]
            got = [
                await store.route(
                    queue, now, "p1", strategy=Strategy.LONGEST_IDLE, window=50, ttl_s=30.0
                )
                for store in stores
            ]
            assert [_key(r) for r in got[0]] == [_key(r) for r in got[1]]
            for routed in zip(*got, strict=True):
                await answer(list(routed))
                busy.append((routed[0].agent_id, routed[0].channel))
        assert await _agents(ref) == await _agents(red)
        for q in ("q1", "q2"):
            assert [w.item_id for w in await ref.waiting(q)] == [
                w.item_id for w in await red.waiting(q)
            ]
    assert taken > 60  # freed agents really took items themselves


# --- racing processes ----------------------------------------------------------------------

RACE_AGENTS = 12
RACE_ITEMS_PER_PROCESS = 60
RACE_GHOST_ITEMS = 40  # owned by a process that never heartbeats: every racer may adopt them
RACE_PROCESSES = 4


async def test_given_racing_processes_when_they_route_one_queue_then_no_double_assignment(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    import time

    prefix = "race:"
    store = RedisLiveStore(client=redis_client, prefix=prefix)
    now = time.time()
    for i in range(RACE_AGENTS):
        await store.put_agent(AgentDefinition(f"ag{i}", {"any": 1}), now)
        await store.agent_event(f"ag{i}", AgentEvent.LOGIN, now)
        await store.agent_event(f"ag{i}", AgentEvent.READY, now)
    for i in range(RACE_GHOST_ITEMS):
        await store.add_item(
            WorkItem(f"ghost-{i}", "race", now), steps="0.0:-:0", owner="ghost", entered_at=now
        )
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    barrier = ctx.Barrier(RACE_PROCESSES)
    procs = [
        ctx.Process(
            target=race_process,
            args=((redis_url, prefix, f"p{i}", RACE_ITEMS_PER_PROCESS, barrier, out),),
        )
        for i in range(RACE_PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [await asyncio.to_thread(out.get, True, 90.0) for _ in procs]
    for p in procs:
        await asyncio.to_thread(p.join, 30.0)
        assert p.exitcode == 0
    assignments = [a for r in results for a in r]
    items = Counter(item for item, _, _ in assignments)
    assert len(assignments) == RACE_PROCESSES * RACE_ITEMS_PER_PROCESS + RACE_GHOST_ITEMS
    assert max(items.values()) == 1  # no call given to two agents
    assert [a for a in assignments if a[2] == "double"] == []  # no agent given two calls
    assert sum(1 for item in items if item.startswith("ghost")) == RACE_GHOST_ITEMS  # adopted
    assert all(len(r) >= RACE_ITEMS_PER_PROCESS for r in results)
    assert await store.waiting("race") == []


# --- a process dies holding a reservation --------------------------------------------------


@pytest.mark.parametrize("callback", [True, False], ids=["callback-request", "held-caller"])
async def test_given_process_killed_holding_reservation_when_ttl_passes_then_call_routes_again(
    redis_client: aioredis.Redis, redis_url: str, callback: bool
) -> None:
    """The reservation expires and a survivor adopts the item: a callback request goes to the
    callback hook; a caller the dead process held (its AGI session died with it, the dialplan
    went on without us) is no callback: never handed to the hook, it leaves, the agent READY."""
    from acd.ports import SystemClock

    prefix = "dead:"
    store = RedisLiveStore(client=redis_client, prefix=prefix)
    agent = AgentDefinition("ann", {"sales": 3}, endpoint="PJSIP/ann")
    clock = SystemClock()
    await store.put_agent(agent, clock.now())
    await store.agent_event("ann", AgentEvent.LOGIN, clock.now())
    await store.agent_event("ann", AgentEvent.READY, clock.now())
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    number = "+390212345678" if callback else None
    proc = ctx.Process(target=doomed_process, args=(redis_url, prefix, child, number))
    proc.start()
    try:
        rid, agent_id = await asyncio.to_thread(parent.recv)
        assert agent_id == "ann"
        assert [a.state for a in await store.agents()] == [AgentState.RINGING]
    finally:
        proc.kill()
        await asyncio.to_thread(proc.join, 10.0)
    offers: list[Offer] = []

    async def on_detached(offer: Offer, item: WorkItem) -> None:
        offers.append(offer)

    queue_log = MemoryQueueLog()
    if number is not None:  # what the dead process logged when the caller asked for it
        await queue_log.write(
            [QueueLogRow(clock.now(), "sales", "call-1", QueueEvent.CALLBACK, data=number)]
        )
    router = Router(
        store=store,
        queue_log=queue_log,
        clock=clock,
        queues={"sales": QueuePolicy("sales", skill="sales")},
        agents={"ann": agent},
        owner="survivor",
        tick_s=0.05,
        on_detached_offer=on_detached,
    )
    await router.start()
    try:
        if not callback:

            async def dropped() -> None:
                events = [r.event for r in queue_log.rows]
                assert events == [QueueEvent.REJECT, QueueEvent.OFFER, QueueEvent.ABANDON]
                assert [a.state for a in await store.agents()] == [AgentState.READY]

            await eventually(dropped, timeout=5.0)
            assert offers == []
            assert await store.waiting("sales") == []
            return
        await eventually(lambda: _assert_len(offers, 1), timeout=5.0)
    finally:
        await router.aclose()
    again = offers[0].reservation
    assert (again.item_id, again.agent_id, again.owner) == ("call-1", "ann", "survivor")
    assert again.reservation_id != rid
    assert offers[0].endpoint == "PJSIP/ann"


def _assert_len(items: list[Offer], n: int) -> None:
    assert len(items) == n


# --- error mapping and the router over Redis ----------------------------------------------


async def test_given_item_without_front_score_when_released_then_it_goes_back_in_front(
    redis_client: aioredis.Redis,
) -> None:
    """An item an older library version wrote has no `fs` (front score) field: a release
    computes it from priority and arrival, in the queue's integer milliseconds."""
    store = RedisLiveStore(client=redis_client, prefix="fs:")
    await store.put_agent(AgentDefinition("amy", {"billing": 3}), 100.0)
    await store.agent_event("amy", AgentEvent.LOGIN, 100.0)
    await store.agent_event("amy", AgentEvent.READY, 100.0)
    steps = encode_steps(STEPS)
    await store.add_item(
        WorkItem("old", "billing", 50.25, priority=2), steps=steps, owner="p1", entered_at=100.0
    )
    (res,) = await store.route(
        "billing", 101.0, "p1", strategy=Strategy.LONGEST_IDLE, window=10, ttl_s=30.0
    )
    await redis_client.hdel("fs:it:old", "fs")
    await store.release(res.reservation_id, 102.0, event=AgentEvent.EXPIRE)
    score = await redis_client.zscore("fs:q:billing", "old")
    assert score == queue_score(2, 50.25, front=True)


async def test_given_script_errors_then_domain_exceptions(redis_client: aioredis.Redis) -> None:
    store = RedisLiveStore(client=redis_client, prefix="err:")
    with pytest.raises(UnknownAgent):
        await store.agent_event("nobody", AgentEvent.LOGIN, 1.0)
    await store.put_agent(AgentDefinition("bob", {"x": 1}), 1.0)
    with pytest.raises(IllegalTransition):
        await store.agent_event("bob", AgentEvent.READY, 1.0)  # must log in first
    item = WorkItem("c", "q", 1.0)
    await store.add_item(item, steps="0.0:-:0", owner="o", entered_at=1.0)
    with pytest.raises(DuplicateItem):
        await store.add_item(item, steps="0.0:-:0", owner="o", entered_at=1.0)
    with pytest.raises(StaleReservation):
        await store.accept("o-999", 2.0, ttl_s=1.0)
    assert await store.release("o-999", 2.0, event=AgentEvent.EXPIRE) is None


async def test_given_router_on_redis_when_call_flows_then_agent_cycles_back_to_ready(
    redis_client: aioredis.Redis,
) -> None:
    clock = ManualClock()
    store = RedisLiveStore(client=redis_client, prefix="flow:")
    agents = {"amy": AgentDefinition("amy", {"billing": 4}, endpoint="PJSIP/amy", wrap_up_s=5.0)}
    policy = QueuePolicy("billing", skill="billing", steps=(RoutingStep(0.0),))
    router = Router(
        store=store,
        queue_log=MemoryQueueLog(),
        clock=clock,
        queues={"billing": policy},
        agents=agents,
        owner="p1",
    )
    await router.start()
    try:
        await router.agent_login("amy")
        await router.agent_ready("amy")
        ticket = await router.enqueue(
            WorkItem("c1", "billing", clock.now(), skills=(SkillRequirement("billing", 2),))
        )
        assert ticket.position == 1
        offer = await router.wait_for_offer("c1", timeout=5.0)
        assert isinstance(offer, Offer)
        assert offer.endpoint == "PJSIP/amy"
        await router.accept(offer.reservation.reservation_id)
        await router.connected(offer.reservation.reservation_id)
        clock.advance(60.0)
        await router.completed("c1")
        assert [a.state for a in await store.agents()] == [AgentState.WRAP_UP]
        clock.advance(5.0)
        await router.route_now()
        assert [a.state for a in await store.agents()] == [AgentState.READY]
    finally:
        await router.aclose()


async def test_given_other_process_caller_waiting_when_agent_hangs_up_then_its_owner_rings(
    redis_client: aioredis.Redis,
) -> None:
    """Agent-driven routing across processes: p2's agent ends a call with no wrap-up and is
    reserved at once for p1's waiting caller; p1 gets the offer through its inbox."""
    clock = ManualClock()
    agents = {"amy": AgentDefinition("amy", {"billing": 4}, endpoint="PJSIP/amy", wrap_up_s=0.0)}
    queues = {"billing": QueuePolicy("billing", skill="billing")}
    store = RedisLiveStore(client=redis_client, prefix="ad2:")
    routers = [
        Router(
            store=store,
            queue_log=MemoryQueueLog(),
            clock=clock,
            queues=queues,
            agents=agents,
            owner=owner,
            tick_s=3600.0,  # no background passes: the hang-up alone must route
        )
        for owner in ("p1", "p2")
    ]
    for router in routers:
        await router.publish()
    holder, other = routers
    await other.agent_login("amy")
    await other.agent_ready("amy")
    await other.enqueue(WorkItem("c1", "billing", clock.now()))  # amy is free: offered at once
    first = await other.wait_for_offer("c1", timeout=0.1)
    assert isinstance(first, Offer)
    await other.accept(first.reservation.reservation_id)
    await other.connected(first.reservation.reservation_id)
    clock.advance(5.0)
    await holder.enqueue(WorkItem("c2", "billing", clock.now()))
    await other.completed("c1")
    status = {a.agent_id: a.state for a in await store.agents()}
    assert status["amy"] is AgentState.RESERVED
    taken = await holder.route_now()  # p1's pass collects its inbox
    assert [(r.item_id, r.agent_id, r.owner) for r in taken] == [("c2", "amy", "p1")]
    offer = await holder.wait_for_offer("c2", timeout=0.1)
    assert isinstance(offer, Offer)
    assert offer.endpoint == "PJSIP/amy"


async def test_given_two_processes_when_one_frees_an_agent_then_the_other_gets_the_offer(
    redis_client: aioredis.Redis,
) -> None:
    import time

    clock = ManualClock()
    agents = {"amy": AgentDefinition("amy", {"billing": 4}, endpoint="PJSIP/amy")}
    queues = {"billing": QueuePolicy("billing", skill="billing")}
    routers = [
        Router(
            store=RedisLiveStore(client=redis_client, prefix="two:"),
            queue_log=MemoryQueueLog(),
            clock=clock,
            queues=queues,
            agents=agents,
            owner=owner,
        )
        for owner in ("p1", "p2")
    ]
    for router in routers:
        await router.start()
    holder, other = routers
    try:
        await other.agent_login("amy")
        await holder.enqueue(WorkItem("c1", "billing", clock.now()))
        started = time.monotonic()
        await other.agent_ready("amy")  # p2's pass reserves amy for p1's caller
        offer = await holder.wait_for_offer("c1", timeout=5.0)
        assert isinstance(offer, Offer)
        assert (offer.reservation.owner, offer.reservation.agent_id) == ("p1", "amy")
        assert time.monotonic() - started < 1.0  # p1 collects it on its next tick (0.1 s)
        await holder.accept(offer.reservation.reservation_id)
    finally:
        for router in routers:
            await router.aclose()


# --- a failed operation changes nothing ----------------------------------------------------


def _both_stores(redis_client: aioredis.Redis, prefix: str) -> list[LiveStore]:
    return [MemoryLiveStore(), RedisLiveStore(client=redis_client, prefix=prefix)]


async def _reserved(store: LiveStore, now: float) -> Reservation:
    await store.put_agent(AgentDefinition("ann", {"sales": 3}), now)
    await store.agent_event("ann", AgentEvent.LOGIN, now)
    await store.agent_event("ann", AgentEvent.READY, now)
    await store.add_item(WorkItem("c1", "sales", now), steps="0.0:-:0", owner="p1", entered_at=now)
    (res,) = await store.route(
        "sales", now, "p1", strategy=Strategy.LONGEST_IDLE, window=10, ttl_s=15.0
    )
    return res


async def test_given_illegal_release_then_reservation_still_held_and_it_expires_later(
    redis_client: aioredis.Redis,
) -> None:
    """The Lua `release` used to drop the reservation from the expiry index before checking the
    transition; Redis does not roll back on an error reply, so the agent stayed reserved for
    good. Both stores now check first: the failed release changes nothing and expiry frees."""
    for store in _both_stores(redis_client, "illegal:"):
        res = await _reserved(store, 100.0)
        with pytest.raises(IllegalTransition):
            await store.release(res.reservation_id, 101.0, event=AgentEvent.ANSWER)
        assert [a.state for a in await store.agents()] == [AgentState.RESERVED]
        expired, _ = await store.sweep(116.0)
        assert [r.reservation_id for r in expired] == [res.reservation_id]
        assert [a.state for a in await store.agents()] == [AgentState.READY]
        assert [w.item_id for w in await store.waiting("sales")] == ["c1"]


async def test_given_reservation_never_rung_when_released_as_no_answer_then_agent_ready(
    redis_client: aioredis.Redis,
) -> None:
    for store in _both_stores(redis_client, "never:"):
        res = await _reserved(store, 100.0)
        assert await store.release(res.reservation_id, 101.0, event=AgentEvent.RING_NO_ANSWER)
        assert [a.state for a in await store.agents()] == [AgentState.READY]
        assert [w.item_id for w in await store.waiting("sales")] == ["c1"]


async def test_given_agent_hash_gone_when_accepting_then_unknown_agent_not_a_value_error(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisLiveStore(client=redis_client, prefix="gone:")
    res = await _reserved(store, 100.0)
    await redis_client.delete("gone:ag:ann")
    with pytest.raises(UnknownAgent):
        await store.accept(res.reservation_id, 101.0, ttl_s=20.0)


async def test_given_stuck_state_when_swept_fixes_apply_then_both_stores_agree(
    redis_client: aioredis.Redis,
) -> None:
    """What the reconciling sweep reads and does: a snapshot names reserved callback requests
    and waiting chats; discarding a reserved item frees its agent and does not requeue it;
    resetting an agent acts only on the state and time the snapshot saw."""
    results = []
    for store in _both_stores(redis_client, "fix:"):
        res = await _reserved(store, 100.0)  # ann reserved for c1
        await store.accept(res.reservation_id, 101.0, ttl_s=20.0)
        await store.put_agent(AgentDefinition("bob", {"sales": 3}), 100.0)
        await store.agent_event("bob", AgentEvent.LOGIN, 100.0)
        cb = WorkItem("cb1", "sales", 90.0, callback_number="+3902123")
        await store.add_item(cb, steps="0.0:-:0", owner="p1", entered_at=100.0)
        chat = WorkItem("ch1", "sales", 95.0, channel=Channel.CHAT)
        await store.add_item(chat, steps="0.0:-:0", owner="p1", entered_at=100.0)
        await store.agent_event("bob", AgentEvent.READY, 102.0)
        (bob_res,) = await store.route(
            "sales", 102.0, "p1", strategy=Strategy.LONGEST_IDLE, window=1, ttl_s=15.0
        )
        snap = await store.snapshot(["sales"])
        assert snap.callbacks == {"cb1"}
        assert [(w.item_id, w.channel) for w in snap.waiting] == [("ch1", Channel.CHAT)]
        assert {r.item_id for r in snap.reservations} == {"c1", "cb1"}
        ringing = {a.agent_id: a for a in snap.agents}["ann"]
        assert ringing.state is AgentState.RINGING
        # A stale view (another `since`) changes nothing; the right one frees ann and puts
        # c1 back in front.
        assert (
            await store.reset_agent("ann", state=AgentState.RINGING, since=50.0, now=140.0) is None
        )
        freed = await store.reset_agent(
            "ann", state=AgentState.RINGING, since=ringing.since, now=140.0
        )
        assert freed is not None and freed.state is AgentState.READY
        gone = await store.discard_item("cb1", 141.0)
        assert gone is not None and gone.reservation is not None
        assert gone.item.callback_number == "+3902123"
        assert await store.discard_item("cb1", 142.0) is None
        results.append(
            (
                bob_res.item_id,
                sorted((a.agent_id, a.state.value) for a in await store.agents()),
                [w.item_id for w in await store.waiting("sales")],
            )
        )
    assert results[0] == results[1]
    assert results[0] == ("cb1", [("ann", "ready"), ("bob", "ready")], ["c1", "ch1"])


async def test_given_index_lists_an_agent_not_ready_when_routing_then_no_reservation(
    redis_client: aioredis.Redis,
) -> None:
    """An availability set that disagrees with the agent's hash (left by an older library
    version): `route` used to reserve the agent anyway, writing a reservation for a state
    change the table refuses. It now mends the index and reserves no one."""
    store = RedisLiveStore(client=redis_client, prefix="stale:", strategies=[Strategy.LONGEST_IDLE])
    await store.put_agent(AgentDefinition("ann", {"sales": 3}), 100.0)
    await store.agent_event("ann", AgentEvent.LOGIN, 100.0)
    for key in ("stale:av:voice:*:longest_idle", "stale:av:voice:sales:longest_idle"):
        await redis_client.zadd(key, {"ann": 100.0})
    await store.add_item(
        WorkItem("c1", "sales", 100.0), steps=STEPS_0, owner="p1", entered_at=100.0
    )
    made = await store.route(
        "sales", 101.0, "p1", strategy=Strategy.LONGEST_IDLE, window=10, ttl_s=15.0
    )
    assert made == []
    assert [a.state for a in await store.agents()] == [AgentState.NOT_READY]
    assert not await redis_client.exists("stale:av:voice:*:longest_idle")
    assert [w.item_id for w in await store.waiting("sales")] == ["c1"]


STEPS_0 = "0.0:-:0"


async def test_given_a_transfer_on_one_process_then_the_callers_next_session_on_another_rejoins(
    redis_client: aioredis.Redis,
) -> None:
    """A transferred caller's new FastAGI session may land on any process: the pending
    re-queue lives in Redis, taken once. Before, it lived in the transferring process only,
    and the other process took the caller for a new call."""
    clock = ManualClock()
    agents = {
        "amy": AgentDefinition("amy", {"billing": 4}, endpoint="PJSIP/amy"),
        "bob": AgentDefinition("bob", {"sales": 3}, endpoint="PJSIP/bob"),
    }
    queues = {
        "billing": QueuePolicy("billing", skill="billing"),
        "sales": QueuePolicy("sales", skill="sales"),
    }
    first, second = (
        Router(
            store=RedisLiveStore(client=redis_client, prefix="xf:"),
            queue_log=MemoryQueueLog(),
            clock=clock,
            queues=queues,
            agents=agents,
            owner=owner,
        )
        for owner in ("p1", "p2")
    )
    for router in (first, second):
        await router.start()
    try:
        await first.agent_login("amy")
        await first.agent_ready("amy")
        await first.agent_login("bob")
        await first.enqueue(WorkItem("c1", "billing", clock.now(), caller_id="+390211"))
        offer = await first.wait_for_offer("c1", timeout=5.0)
        assert isinstance(offer, Offer)
        await first.accept(offer.reservation.reservation_id)
        await first.connected(offer.reservation.reservation_id)
        await first.transferred("c1", target="sales@centralino-transfer", to_queue="sales")

        ticket = await second.rejoin("c1")

        assert ticket is not None and (ticket.queue, ticket.position) == ("sales", 1)
        (waiting,) = await RedisLiveStore(client=redis_client, prefix="xf:").waiting("sales")
        assert (waiting.item_id, waiting.owner) == ("c1", "p2")
        assert await first.rejoin("c1") is None  # taken once
    finally:
        for router in (first, second):
            await router.aclose()
