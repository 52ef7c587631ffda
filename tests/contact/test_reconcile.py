"""The reconciling sweep's decisions (pure), then applied through the router to a store."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from acd.live import MemoryLiveStore, MemoryQueueLog
from acd.models import (
    AgentDefinition,
    AgentState,
    AgentStatus,
    Channel,
    LiveSnapshot,
    QueueEvent,
    QueueLogRow,
    QueuePolicy,
    Reservation,
    Strategy,
    WaitingItem,
    WorkItem,
)
from acd.service import ChannelFact, Router
from contact.reconcile import (
    NO_ABSENCES,
    Absences,
    DropItem,
    FreeAgent,
    OpenConversation,
    ReconcilePlan,
    ReconcilePolicy,
    reconcile,
)
from tests.acd.support import ManualClock

POLICY = ReconcilePolicy(item_grace_s=5.0, agent_grace_s=30.0)


def _agent(agent_id: str, state: AgentState, since: float = 0.0) -> AgentStatus:
    return AgentStatus(agent_id, state, since)


def _res(item_id: str, agent_id: str, channel: Channel = Channel.VOICE) -> Reservation:
    return Reservation(f"r-{item_id}", item_id, agent_id, "sales", channel, "p1", 0.0, 15.0, 0.0)


def _waiting(item_id: str, **kw: object) -> WaitingItem:
    return WaitingItem(item_id, "sales", 0, 0.0, "p1", **kw)  # type: ignore[arg-type]


def _snap(
    agents: Sequence[AgentStatus] = (),
    reservations: Sequence[Reservation] = (),
    waiting: Sequence[WaitingItem] = (),
    callbacks: frozenset[str] = frozenset(),
) -> LiveSnapshot:
    return LiveSnapshot(tuple(agents), tuple(reservations), tuple(waiting), callbacks)


def _sweeps(
    live: LiveSnapshot,
    channels: Sequence[ChannelFact] | None,
    times: Sequence[float],
    rows: Sequence[QueueLogRow] = (),
) -> ReconcilePlan:
    """Sweep at each time in turn, carrying the absences; the last plan."""
    absent = NO_ABSENCES
    plan = ReconcilePlan((), absent)
    for now in times:
        plan = reconcile(
            live=live, channels=channels, queue_log=rows, now=now, policy=POLICY, absent=absent
        )
        absent = plan.absent
    return plan


def test_given_reserved_caller_gone_when_seen_past_the_grace_then_item_dropped_agent_freed() -> (
    None
):
    live = _snap([_agent("ann", AgentState.RESERVED)], [_res("c1", "ann")])
    first = _sweeps(live, [], [100.0])
    assert first.fixes == ()  # just noticed: its owner may be handling the hang-up right now
    plan = _sweeps(live, [], [100.0, 103.0, 105.0])
    # The drop releases ann as well: no second fix for her.
    assert plan.fixes == (DropItem("c1", "sales", "caller_gone", log_abandon=True),)


def test_given_waiting_caller_gone_then_dropped_with_one_abandon_row() -> None:
    live = _snap(waiting=[_waiting("c1"), _waiting("c2")])
    rows = [QueueLogRow(50.0, "sales", "c2", QueueEvent.ABANDON)]  # its owner logged it already
    plan = _sweeps(live, [ChannelFact("other")], [100.0, 106.0], rows)
    assert plan.fixes == (
        DropItem("c1", "sales", "caller_gone", log_abandon=True),
        DropItem("c2", "sales", "caller_gone", log_abandon=False),
    )


def test_given_callbacks_chats_and_live_callers_then_left_alone() -> None:
    live = _snap(
        [_agent("ann", AgentState.RESERVED, 90.0), _agent("bob", AgentState.BUSY)],
        [_res("cb1", "ann"), _res("up1", "bob"), _res("chat1", "bob", Channel.CHAT)],
        [_waiting("cb2", callback_number="+3902"), _waiting("mail", channel=Channel.EMAIL)],
        callbacks=frozenset({"cb1"}),
    )
    channels = [ChannelFact("up1", agent_id="bob"), ChannelFact("ann-leg", agent_id="ann")]
    assert _sweeps(live, channels, [100.0, 200.0, 300.0]).fixes == ()


def test_given_agent_busy_without_channel_then_freed_only_after_the_grace() -> None:
    live = _snap([_agent("ann", AgentState.BUSY, since=10.0)])
    rows = [
        QueueLogRow(5.0, "sales", "old", QueueEvent.CONNECT, "ann"),
        QueueLogRow(8.0, "sales", "old", QueueEvent.COMPLETE, "ann"),
        QueueLogRow(10.0, "sales", "c9", QueueEvent.CONNECT, "ann"),
    ]
    assert _sweeps(live, [], [100.0, 129.0], rows).fixes == ()
    plan = _sweeps(live, [], [100.0, 130.0], rows)
    assert plan.fixes == (
        FreeAgent(
            "ann",
            AgentState.BUSY,
            10.0,
            "no_channel_busy",
            OpenConversation("c9", "sales", 10.0),
        ),
    )


def test_given_agent_just_reserved_then_not_freed_even_if_seen_absent_long_ago() -> None:
    # The absence of an earlier call lingers in the carried map, but ann's state is new.
    live = _snap([_agent("ann", AgentState.RESERVED, since=125.0)])
    plan = reconcile(
        live=live,
        channels=[],
        queue_log=[],
        now=130.0,
        policy=POLICY,
        absent=Absences(agents={"ann": 50.0}),
    )
    assert plan.fixes == ()


def test_given_agent_channel_up_then_absence_forgotten() -> None:
    live = _snap([_agent("ann", AgentState.RINGING)])
    plan = reconcile(
        live=live,
        channels=[ChannelFact("leg", agent_id="ann")],
        queue_log=[],
        now=500.0,
        policy=POLICY,
        absent=Absences(agents={"ann": 0.0}),
    )
    assert plan == ReconcilePlan((), Absences({}, {}))


@given(
    st.lists(st.sampled_from(list(AgentState)), max_size=6),
    st.lists(st.booleans(), max_size=6),
    st.floats(0, 1000),
)
def test_without_channels_nothing_is_decided(
    states: list[AgentState], voice: list[bool], now: float
) -> None:
    live = _snap(
        [_agent(f"a{i}", s) for i, s in enumerate(states)],
        waiting=[
            _waiting(f"w{i}", channel=Channel.VOICE if v else Channel.CHAT)
            for i, v in enumerate(voice)
        ],
    )
    absent = Absences({f"w{i}": 0.0 for i in range(len(voice))}, {})
    plan = reconcile(live=live, channels=None, queue_log=[], now=now, policy=POLICY, absent=absent)
    assert plan == ReconcilePlan((), NO_ABSENCES)


# --- applied through the router ------------------------------------------------------------


async def test_given_stuck_agents_and_dead_callers_when_fixes_applied_then_everyone_usable() -> (
    None
):
    clock = ManualClock(1_000.0)
    store = MemoryLiveStore()
    log = MemoryQueueLog()
    agents = {
        name: AgentDefinition(name, {"sales": 3}, endpoint=f"PJSIP/{name}")
        for name in ("ann", "bob")
    }
    router = Router(
        store=store,
        queue_log=log,
        clock=clock,
        queues={"sales": QueuePolicy("sales", skill="sales")},
        agents=agents,
        owner="p1",
    )
    await router.publish()
    for name in agents:
        await router.agent_login(name)
        await router.agent_ready(name)
    # A previous process: one agent answered c0, the other was reserved for c1; that process
    # died and both callers are gone.
    for item_id in ("c0", "c1"):
        await store.add_item(
            WorkItem(item_id, "sales", clock.now()),
            steps="0.0:-:0",
            owner="dead",
            entered_at=clock.now(),
        )
    made = await store.route(
        "sales", clock.now(), "dead", strategy=Strategy.LONGEST_IDLE, window=1, ttl_s=15.0
    )
    await store.accept(made[0].reservation_id, clock.now(), ttl_s=25.0)
    await store.connect(made[0].reservation_id, clock.now())
    await log.write([QueueLogRow(clock.now(), "sales", "c0", QueueEvent.CONNECT, made[0].agent_id)])
    await store.route(
        "sales", clock.now(), "dead", strategy=Strategy.LONGEST_IDLE, window=1, ttl_s=15.0
    )
    absent = NO_ABSENCES
    for _ in range(4):
        clock.advance(12.0)
        plan = reconcile(
            live=await router.live_snapshot(),
            channels=[],
            queue_log=log.rows,
            now=clock.now(),
            policy=POLICY,
            absent=absent,
        )
        absent = plan.absent
        for fix in plan.fixes:
            if isinstance(fix, DropItem):
                await router.drop_item(fix.item_id, reason=fix.reason, log_abandon=fix.log_abandon)
            else:
                conv = fix.conversation
                await router.free_agent(
                    fix.agent_id,
                    state=fix.state,
                    since=fix.since,
                    reason=fix.reason,
                    conversation=None
                    if conv is None
                    else (conv.item_id, conv.queue, conv.connected_at),
                )
    states = {a.agent_id: a.state for a in await store.agents()}
    assert states == {"ann": AgentState.READY, "bob": AgentState.READY}
    assert await store.waiting("sales") == []
    ends = [(r.item_id, r.event) for r in log.rows if r.event is not QueueEvent.AGENT]
    assert ends[-2:] in (
        [("c1", QueueEvent.ABANDON), ("c0", QueueEvent.COMPLETE)],
        [("c0", QueueEvent.COMPLETE), ("c1", QueueEvent.ABANDON)],
    )
    assert sum(1 for _, e in ends if e is QueueEvent.ABANDON) == 1
    # Nothing is left to fix: a further sweep decides nothing.
    clock.advance(60.0)
    again = reconcile(
        live=await router.live_snapshot(),
        channels=[],
        queue_log=log.rows,
        now=clock.now(),
        policy=POLICY,
        absent=absent,
    )
    assert again.fixes == ()
