"""The router over the in-memory store: the IVR's, the desktop's and the supervisor's API."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from acd.errors import StaleReservation, UnknownItem, UnknownQueue
from acd.live import MemoryLiveStore, MemoryQueueLog
from acd.models import (
    ActionKind,
    AgentDefinition,
    AgentState,
    Capacity,
    Channel,
    Offer,
    QueueAction,
    QueueEvent,
    QueueLogRow,
    QueuePolicy,
    RoutingStep,
    SkillRequirement,
    WorkItem,
)
from acd.service import TRANSFER_REJOIN_S, ChannelFact, DeviceFact, Router
from tests.acd.support import ManualClock

BILLING = QueuePolicy(
    "billing",
    skill="billing",
    steps=(
        RoutingStep(0.0, preferred_only=True),
        RoutingStep(20.0, min_level=4),
        RoutingStep(60.0, min_level=2),
        RoutingStep(120.0, action=QueueAction(ActionKind.OVERFLOW, target="general")),
    ),
    max_length=3,
    max_wait_s=600.0,
)
GENERAL = QueuePolicy("general", skill="general")
AGENTS = {
    "pat": AgentDefinition("pat", {"billing": 5}, teams=frozenset({"red"}), endpoint="PJSIP/pat"),
    "joe": AgentDefinition("joe", {"billing": 4}, teams=frozenset({"red"}), endpoint="PJSIP/joe"),
    "sue": AgentDefinition("sue", {"billing": 2}, teams=frozenset({"blue"}), endpoint="PJSIP/sue"),
    "gus": AgentDefinition(
        "gus", {"general": 3}, endpoint="PJSIP/gus", capacity=Capacity(voice=1, chat=3)
    ),
}


@dataclass
class Rig:
    router: Router
    store: MemoryLiveStore
    log: MemoryQueueLog
    clock: ManualClock
    detached: list[tuple[Offer, WorkItem]] = field(default_factory=list)

    async def ready(self, *agents: str) -> None:
        for a in agents:
            await self.router.agent_login(a)
            await self.router.agent_ready(a)

    async def offer(self, item_id: str) -> Offer:
        await self.router.route_now()
        got = await self.router.wait_for_offer(item_id, timeout=0.5)
        assert isinstance(got, Offer), got
        return got

    def events(self, item_id: str) -> list[QueueEvent]:
        return [r.event for r in self.log.rows if r.item_id == item_id]

    def state(self, agent_id: str) -> AgentState:
        return {a.agent_id: a.state for a in self.store.state.agents()}[agent_id]


@pytest.fixture
async def rig() -> Rig:
    clock = ManualClock()
    store = MemoryLiveStore()
    log = MemoryQueueLog()
    holder: list[tuple[Offer, WorkItem]] = []

    async def on_detached(offer: Offer, item: WorkItem) -> None:
        holder.append((offer, item))

    router = Router(
        store=store,
        queue_log=log,
        clock=clock,
        queues={"billing": BILLING, "general": GENERAL},
        agents=AGENTS,
        owner="p1",
        on_detached_offer=on_detached,
    )
    await router.publish()
    return Rig(router, store, log, clock, holder)


def billing_call(item_id: str, clock: ManualClock, **kw: object) -> WorkItem:
    return WorkItem(item_id, "billing", clock.now(), skills=(SkillRequirement("billing", 2),), **kw)  # type: ignore[arg-type]


async def test_given_ready_agent_when_call_flows_then_every_event_is_logged(rig: Rig) -> None:
    await rig.ready("joe")
    ticket = await rig.router.enqueue(billing_call("c1", rig.clock))
    assert (ticket.position, ticket.action.kind) == (1, ActionKind.NONE)
    offer = await rig.offer("c1")
    assert (offer.reservation.agent_id, offer.endpoint) == ("joe", "PJSIP/joe")
    assert rig.state("joe") is AgentState.RESERVED
    await rig.router.accept(offer.reservation.reservation_id)
    assert rig.state("joe") is AgentState.RINGING
    rig.clock.advance(3.0)
    await rig.router.connected(offer.reservation.reservation_id)
    rig.clock.advance(100.0)
    await rig.router.completed("c1")
    assert rig.state("joe") is AgentState.WRAP_UP
    rig.clock.advance(AGENTS["joe"].wrap_up_s)
    await rig.router.route_now()
    assert rig.state("joe") is AgentState.READY
    assert rig.events("c1") == [
        QueueEvent.ENTER,
        QueueEvent.OFFER,
        QueueEvent.CONNECT,
        QueueEvent.COMPLETE,
    ]
    connect = next(r for r in rig.log.rows if r.event is QueueEvent.CONNECT)
    assert (connect.agent_id, connect.team, connect.wait_s) == ("joe", "red", 3.0)


async def test_given_free_agent_when_call_arrives_then_it_is_offered_as_it_enters(
    rig: Rig,
) -> None:
    """Call-driven routing on entry: no routing pass between the enqueue and the offer, and
    the queue's order still holds (an older call the agent can take goes first)."""
    await rig.router.agent_login("sue")  # billing 2: logged in, not ready yet
    await rig.router.enqueue(billing_call("c0", rig.clock, priority=1))
    rig.clock.advance(1.0)
    await rig.router.agent_ready("sue")  # no pass runs: c0 stays queued
    await rig.router.enqueue(billing_call("c1", rig.clock))
    first = await rig.router.wait_for_offer("c0", timeout=0.01)
    assert isinstance(first, Offer) and first.reservation.agent_id == "sue"
    assert await rig.router.wait_for_offer("c1", timeout=0.01) is None
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("c2", rig.clock))
    assert await rig.router.wait_for_offer("c1", timeout=0.01) is not None  # c1 before c2
    assert await rig.router.wait_for_offer("c2", timeout=0.01) is None


async def test_given_call_waiting_when_agent_ends_a_call_without_wrap_up_then_it_is_offered_at_once(
    rig: Rig,
) -> None:
    """Agent-driven routing: the freed agent takes the waiting call in the same step as its
    hang-up, not on the next routing pass; with a wrap-up it waits as before."""
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    first = await rig.offer("c1")
    await rig.router.accept(first.reservation.reservation_id)
    await rig.router.connected(first.reservation.reservation_id)
    rig.clock.advance(1.0)
    await rig.router.enqueue(billing_call("c2", rig.clock))
    await rig.router.enqueue(billing_call("c3", rig.clock))
    rig.clock.advance(60.0)
    await rig.router.completed("c1", wrap_up_s=0.0)  # no routing pass in between
    offer = await rig.router.wait_for_offer("c2", timeout=0.01)
    assert isinstance(offer, Offer)
    assert (offer.reservation.agent_id, offer.endpoint) == ("joe", "PJSIP/joe")
    assert rig.state("joe") is AgentState.RESERVED
    assert rig.events("c2") == [QueueEvent.ENTER, QueueEvent.OFFER]
    agent_rows = [r.data for r in rig.log.rows if r.event is QueueEvent.AGENT]
    assert agent_rows[-1] == "ready"  # logged before the offer it then took
    await rig.router.accept(offer.reservation.reservation_id)
    await rig.router.connected(offer.reservation.reservation_id)
    await rig.router.completed("c2")  # joe's usual wrap-up: c3 waits for it
    assert await rig.router.wait_for_offer("c3", timeout=0.01) is None
    assert rig.state("joe") is AgentState.WRAP_UP


async def test_given_policy_steps_when_time_passes_then_targets_relax_then_overflow(
    rig: Rig,
) -> None:
    await rig.ready("joe", "sue", "gus")
    await rig.router.agent_not_ready("joe", "lunch")
    await rig.router.enqueue(billing_call("c1", rig.clock, preferred_agents=("pat",)))
    assert await rig.router.route_now() == []  # 0-20 s: only pat, who is logged out
    rig.clock.advance(20.0)
    assert await rig.router.route_now() == []  # 20-60 s: skill >= 4, joe is at lunch
    rig.clock.advance(40.0)
    offer = await rig.offer("c1")  # after 60 s: skill >= 2
    assert offer.reservation.agent_id == "sue"
    await rig.router.reject(offer.reservation.reservation_id)
    assert rig.state("sue") is AgentState.NOT_READY
    rig.clock.advance(60.0)  # 120 s: overflow to general, where gus is ready
    await rig.router.route_now()
    moved = await rig.router.wait_for_offer("c1", timeout=0.5)
    assert moved == QueueAction(ActionKind.OVERFLOW, target="general")
    second = await rig.router.wait_for_offer("c1", timeout=0.5)
    assert isinstance(second, Offer)
    assert (second.reservation.agent_id, second.reservation.queue) == ("gus", "general")
    assert rig.events("c1") == [
        QueueEvent.ENTER,
        QueueEvent.OFFER,
        QueueEvent.REJECT,
        QueueEvent.OVERFLOW,
        QueueEvent.ENTER,
        QueueEvent.OFFER,
    ]


async def test_given_ring_no_answer_then_agent_not_ready_and_call_first_in_line(rig: Rig) -> None:
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    rig.clock.advance(1.0)
    await rig.router.enqueue(billing_call("c0", rig.clock))
    offer = await rig.offer("c1")
    rig.clock.advance(1.0)
    await rig.router.enqueue(
        WorkItem("old", "billing", 0.5, skills=(SkillRequirement("billing", 2),))
    )
    await rig.router.accept(offer.reservation.reservation_id)
    await rig.router.ring_no_answer(offer.reservation.reservation_id)
    assert rig.state("joe") is AgentState.NOT_READY
    assert [w.item_id for w in await rig.store.waiting("billing")] == ["c1", "old", "c0"]
    with pytest.raises(StaleReservation):
        await rig.router.connected(offer.reservation.reservation_id)
    await rig.router.agent_ready("joe")
    again = await rig.offer("c1")
    assert again.reservation.agent_id == "joe"
    assert QueueEvent.RONA in rig.events("c1")


async def test_priority_callers_go_first_then_first_come_first_served(rig: Rig) -> None:
    await rig.router.agent_login("joe")
    for i, prio in enumerate([0, 0, 5]):
        rig.clock.advance(1.0)
        await rig.router.enqueue(billing_call(f"c{i}", rig.clock, priority=prio))
    await rig.router.agent_ready("joe")
    made = await rig.router.route_now()
    assert [r.item_id for r in made] == ["c2"]


async def test_configured_actions_for_nobody_logged_in_full_queue_and_max_wait(rig: Rig) -> None:
    ticket = await rig.router.enqueue(billing_call("c1", rig.clock))
    assert (ticket.position, ticket.action) == (0, BILLING.on_no_agents)
    await rig.router.agent_login("joe")  # logged in but not ready: the call may wait
    for i in range(3):
        assert (await rig.router.enqueue(billing_call(f"w{i}", rig.clock))).position == i + 1
    full = await rig.router.enqueue(billing_call("c5", rig.clock))
    assert full.action == BILLING.on_full
    rig.clock.advance(BILLING.max_wait_s)
    await rig.router.route_now()
    # each waiting call first overflowed to general (at 120 s), then hit general's max wait
    outcomes = [await rig.router.wait_for_offer("w0", timeout=0.1) for _ in range(2)]
    assert outcomes[0] == QueueAction(ActionKind.OVERFLOW, target="general")
    assert await rig.store.waiting("billing") == []
    with pytest.raises(UnknownQueue):
        await rig.router.enqueue(WorkItem("x", "nowhere", 0.0))


async def test_given_max_wait_then_caller_gets_the_action_and_leaves(rig: Rig) -> None:
    await rig.router.agent_login("gus")
    await rig.router.enqueue(WorkItem("g1", "general", rig.clock.now()))
    rig.clock.advance(GENERAL.max_wait_s + 1)
    await rig.router.route_now()
    assert await rig.router.wait_for_offer("g1", timeout=0.1) == GENERAL.on_max_wait
    assert rig.events("g1") == [QueueEvent.ENTER, QueueEvent.EXIT]
    assert await rig.store.waiting("general") == []


async def test_given_callback_request_then_place_kept_and_offer_goes_to_the_hook(rig: Rig) -> None:
    await rig.router.agent_login("joe")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    rig.clock.advance(1.0)
    await rig.router.enqueue(billing_call("c2", rig.clock))
    ticket = await rig.router.request_callback("c1", "+390212345678")
    assert ticket.position == 1
    await rig.router.agent_ready("joe")
    await rig.router.route_now()
    assert len(rig.detached) == 1
    offer, item = rig.detached[0]
    assert (offer.reservation.agent_id, item.callback_number) == ("joe", "+390212345678")
    assert QueueEvent.CALLBACK in rig.events("c1")


async def test_given_abandon_while_ringing_then_agent_is_free_again(rig: Rig) -> None:
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    offer = await rig.offer("c1")
    await rig.router.accept(offer.reservation.reservation_id)
    rig.clock.advance(4.0)
    await rig.router.abandon("c1")
    assert rig.state("joe") is AgentState.READY
    assert rig.events("c1")[-1] is QueueEvent.ABANDON


async def test_given_chats_then_three_at_once_and_no_call_meanwhile(rig: Rig) -> None:
    await rig.ready("gus")
    for i in range(4):  # each is offered as it arrives while gus has a free slot
        await rig.router.enqueue(
            WorkItem(f"chat{i}", "general", rig.clock.now(), channel=Channel.CHAT)
        )
    rig.clock.advance(1.0)
    await rig.router.enqueue(WorkItem("call", "general", rig.clock.now()))
    assert await rig.router.route_now() == []
    offers = [await rig.router.wait_for_offer(f"chat{i}", timeout=0.01) for i in range(4)]
    assert offers[3] is None
    for offer in offers[:3]:
        assert isinstance(offer, Offer) and offer.reservation.agent_id == "gus"
        await rig.router.connected(offer.reservation.reservation_id)
    await rig.router.completed("chat0")  # the freed slot takes the next chat at once
    offer = await rig.router.wait_for_offer("chat3", timeout=0.5)
    assert isinstance(offer, Offer)
    assert offer.reservation.agent_id == "gus"
    assert await rig.router.route_now() == []  # the call waits: gus still chats


async def test_snapshot_and_estimates(rig: Rig) -> None:
    await rig.ready("joe", "sue")
    for i in range(3):
        await rig.router.enqueue(billing_call(f"c{i}", rig.clock))
    for i in range(2):
        offer = await rig.offer(f"c{i}")
        rig.clock.advance(10.0 + 20.0 * i)
        await rig.router.accept(offer.reservation.reservation_id)
        await rig.router.connected(offer.reservation.reservation_id)
    ticket = await rig.router.ticket("c2")
    assert ticket.position == 1
    assert math.isclose(ticket.expected_wait_s, 180.0 / 2)  # 2 busy agents, prior AHT 180 s
    snap = await rig.router.snapshot("billing")
    assert (snap.waiting, snap.answered, snap.offered) == (1, 2, 2)
    assert snap.service_level == 0.5  # waits of 10 s and 40 s against 20 s
    assert snap.agents_by_state == {"busy": 2}
    assert snap.longest_wait_s == 40.0
    assert snap.agents_needed >= 1


async def test_rebuild_restores_agents_and_waiting_calls_from_ami_facts_and_log(rig: Rig) -> None:
    await rig.ready("joe", "sue")
    await rig.router.agent_not_ready("sue", "training")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    offer = await rig.offer("c1")
    await rig.router.accept(offer.reservation.reservation_id)
    await rig.router.connected(offer.reservation.reservation_id)
    await rig.router.enqueue(billing_call("c2", rig.clock))
    await rig.router.enqueue(billing_call("gone", rig.clock))
    rows = list(rig.log.rows)
    # Redis lost everything: a new process rebuilds from AMI facts and the queue log.
    fresh = MemoryLiveStore()
    router = Router(
        store=fresh,
        queue_log=rig.log,
        clock=rig.clock,
        queues={"billing": BILLING, "general": GENERAL},
        agents=AGENTS,
        owner="p2",
    )
    report = await router.rebuild(
        devices=[DeviceFact("joe", True), DeviceFact("sue", True), DeviceFact("pat", False)],
        channels=[ChannelFact("c1", agent_id="joe"), ChannelFact("c2")],
        rows=rows,
    )
    states = {a.agent_id: (a.state, a.reason) for a in fresh.state.agents()}
    assert states["joe"] == (AgentState.BUSY, "")
    assert states["sue"] == (AgentState.NOT_READY, "training")
    assert states["pat"][0] is AgentState.LOGGED_OUT
    assert [w.item_id for w in fresh.state.waiting("billing")] == ["c2"]
    assert (report.requeued, report.dropped) == (1, 1)
    await router.completed("c1")  # the restored call can finish normally
    assert {a.agent_id: a.state for a in fresh.state.agents()}["joe"] is AgentState.WRAP_UP


# --- transfers (AMI BlindTransfer / AttendedTransfer) ---------------------------------------


async def connected_call(rig: Rig, item_id: str, agent: str, **kw: object) -> None:
    if rig.state(agent) is AgentState.LOGGED_OUT:
        await rig.ready(agent)
    await rig.router.enqueue(billing_call(item_id, rig.clock, **kw))
    offer = await rig.offer(item_id)
    assert offer.reservation.agent_id == agent
    await rig.router.accept(offer.reservation.reservation_id)
    await rig.router.connected(offer.reservation.reservation_id)


async def test_given_transfer_to_our_queue_then_agent_wraps_up_and_call_rejoins_that_queue(
    rig: Rig,
) -> None:
    await connected_call(rig, "c1", "joe", priority=3, preferred_agents=("joe",))
    rig.clock.advance(42.0)

    await rig.router.transferred("c1", target="general@centralino-transfer", to_queue="general")

    assert rig.state("joe") is AgentState.WRAP_UP  # their normal wrap-up, as after a hangup
    transfer = next(r for r in rig.log.rows if r.event is QueueEvent.TRANSFER)
    assert (transfer.queue, transfer.agent_id, transfer.talk_s, transfer.data) == (
        "billing",
        "joe",
        42.0,
        "general@centralino-transfer",
    )
    assert rig.log.rows[-1].data == "wrap_up"
    # Nobody holds the caller until the dialplan hands the channel back: nothing is queued.
    assert rig.store.state.waiting("general") == []
    assert await rig.router.rejoin("other") is None

    await rig.router.agent_login("gus")  # the general queue's skill, not billing's, decides
    rig.clock.advance(0.5)
    ticket = await rig.router.rejoin("c1")
    assert ticket is not None and (ticket.queue, ticket.position) == ("general", 1)
    assert await rig.router.rejoin("c1") is None  # once
    waiting = rig.store.state.waiting("general")
    assert [(w.item_id, w.priority, w.arrived_at) for w in waiting] == [("c1", 3, rig.clock.t)]
    await rig.router.agent_ready("gus")
    offer = await rig.offer("c1")
    assert offer.reservation.agent_id == "gus"
    await rig.router.accept(offer.reservation.reservation_id)
    await rig.router.connected(offer.reservation.reservation_id)
    await rig.router.completed("c1")
    assert rig.events("c1") == [
        QueueEvent.ENTER,
        QueueEvent.OFFER,
        QueueEvent.CONNECT,
        QueueEvent.TRANSFER,
        QueueEvent.ENTER,
        QueueEvent.OFFER,
        QueueEvent.CONNECT,
        QueueEvent.COMPLETE,
    ]
    assert [r.queue for r in rig.log.rows if r.item_id == "c1"][-4:] == ["general"] * 4


async def test_given_transfer_outside_our_queues_then_only_the_agents_part_ends(rig: Rig) -> None:
    await connected_call(rig, "c1", "joe")
    rig.clock.advance(30.0)

    await rig.router.transferred("c1", target="agent:sue")

    assert rig.state("joe") is AgentState.WRAP_UP
    assert rig.events("c1")[-1] is QueueEvent.TRANSFER
    assert await rig.router.rejoin("c1") is None
    with pytest.raises(UnknownItem):  # the call is no longer ours: a late hangup changes nothing
        await rig.router.completed("c1")
    rig.clock.advance(AGENTS["joe"].wrap_up_s)
    await rig.router.route_now()
    assert rig.state("joe") is AgentState.READY


async def test_transfer_needs_a_connected_call_and_a_known_queue(rig: Rig) -> None:
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("waiting", rig.clock))
    with pytest.raises(UnknownItem):
        await rig.router.transferred("waiting", target="x@y")
    with pytest.raises(UnknownItem):
        await rig.router.transferred("nobody", target="x@y")
    await rig.router.abandon("waiting")
    await connected_call(rig, "c1", "joe")
    rows = len(rig.log.rows)
    with pytest.raises(UnknownQueue):
        await rig.router.transferred("c1", target="nowhere@ctx", to_queue="nowhere")
    assert len(rig.log.rows) == rows and rig.state("joe") is AgentState.BUSY  # nothing changed
    await rig.router.completed("c1")


async def test_given_caller_not_back_in_time_then_the_pending_transfer_lapses(rig: Rig) -> None:
    await connected_call(rig, "c1", "joe")
    await rig.router.transferred("c1", target="general@centralino-transfer", to_queue="general")
    rig.clock.advance(TRANSFER_REJOIN_S + 1.0)
    assert await rig.router.rejoin("c1") is None
    assert rig.store.state.waiting("general") == []


async def test_transfer_moves_a_connected_item_to_another_queue_at_once(rig: Rig) -> None:
    await connected_call(rig, "c1", "joe")
    await rig.ready("gus")
    ticket = await rig.router.transfer("c1", to_queue="general")
    assert (ticket.queue, ticket.position) == ("general", 1)
    # gus is free: the call is offered to them as it enters the queue
    assert rig.events("c1")[-3:] == [QueueEvent.TRANSFER, QueueEvent.ENTER, QueueEvent.OFFER]


async def test_given_offer_never_rung_when_released_as_no_answer_then_agent_ready(
    rig: Rig,
) -> None:
    """The callback dialer (no number, AMI down) and a failed Dial release an offer that never
    rang: not the agent's fault, so READY, logged as REJECT "never_rang", not a RONA."""
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    offer = await rig.offer("c1")
    await rig.router.ring_no_answer(offer.reservation.reservation_id)
    assert rig.state("joe") is AgentState.READY
    assert QueueEvent.RONA not in rig.events("c1")
    assert rig.log.rows[-1].data == "ready:never_rang"
    again = await rig.offer("c1")  # first in line, and joe may take it at once
    await rig.router.accept(again.reservation.reservation_id)
    await rig.router.ring_no_answer(again.reservation.reservation_id)
    assert rig.state("joe") is AgentState.NOT_READY
    assert rig.events("c1")[-1] is QueueEvent.RONA


async def test_given_caller_of_a_dead_process_when_adopted_then_not_handed_to_callbacks(
    rig: Rig,
) -> None:
    """An item adopted from a process that died holding its caller is no callback request:
    the hook never sees it; the agent is freed and the item leaves with one ABANDON row."""
    await rig.store.add_item(
        billing_call("orphan", rig.clock), steps="0.0:-:0", owner="dead", entered_at=0.0
    )
    await rig.ready("joe")
    await rig.router.route_now()
    assert rig.detached == []
    assert rig.state("joe") is AgentState.READY
    assert await rig.store.waiting("billing") == []
    assert rig.events("orphan")[-1] is QueueEvent.ABANDON


async def test_given_item_dropped_by_the_sweep_when_its_owner_abandons_then_one_row(
    rig: Rig,
) -> None:
    await rig.ready("joe")
    await rig.router.enqueue(billing_call("c1", rig.clock))
    await rig.offer("c1")
    gone = await rig.router.drop_item("c1", reason="caller_gone", log_abandon=True)
    assert gone is not None and gone.reservation is not None
    assert rig.state("joe") is AgentState.READY
    assert await rig.router.drop_item("c1", reason="caller_gone", log_abandon=True) is None
    with pytest.raises(UnknownItem):  # the sweep ran here: the item is no longer tracked
        await rig.router.abandon("c1")
    assert rig.events("c1").count(QueueEvent.ABANDON) == 1


class _LogDown(MemoryQueueLog):
    """The queue log's PostgreSQL is down: every write fails."""

    async def write(self, rows: Sequence[QueueLogRow]) -> None:
        raise ConnectionError("PostgreSQL unavailable")


async def test_given_the_queue_log_fails_on_entry_then_the_enqueue_is_undone(rig: Rig) -> None:
    """The defect seen with PostgreSQL stopped: the item (and the agent reserved for it in the
    same step) stayed in the live state while the caller went back to the dialplan, so agents
    stayed reserved for a phantom. A failed step undoes what it committed."""
    await rig.ready("joe")
    router = Router(  # the same live state; only the queue log fails
        store=rig.store,
        queue_log=_LogDown(),
        clock=rig.clock,
        queues={"billing": BILLING, "general": GENERAL},
        agents=AGENTS,
        owner="p1",
    )

    with pytest.raises(ConnectionError):
        await router.enqueue(billing_call("c1", rig.clock))

    assert await rig.store.waiting("billing") == []
    assert rig.state("joe") is AgentState.READY
    with pytest.raises(UnknownItem):
        await router.ticket("c1")
