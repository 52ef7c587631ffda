"""One inbound call, wired: the IVR's `InboundServices` on top of the context fan-out, the
ACD router and the agent-desktop hub.

This is glue, so it holds no rules of its own beyond translation: facts become the flow's
`CallerKnowledge`, the flow's queue request becomes an ACD `WorkItem`, offers become
`AgentOffer`s, and the call's end becomes one `Interaction` on the customer's timeline (with
the pop-push, ack and ring times that prove the pop was ready before the phone rang).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from acd.errors import StaleReservation, UnknownItem
from acd.models import (
    ActionKind,
    AgentDefinition,
    Offer,
    QueueAction,
    SkillRequirement,
    Ticket,
    WorkItem,
)
from acd.service import Router
from centralino.ami_watch import CallTransfer, DialWatch, TransferWatch
from centralino.web.desktop_ws import DesktopHub
from context.fanout import FanoutHandle, FanoutSnapshot
from context.models import ChannelKind, Direction, Interaction
from context.screen_pop import IvrSummary
from context.service import ContextService
from ivr.ports import (
    AgentOffer,
    CallerKnowledge,
    QueuedCall,
    QueueRefusal,
    QueueRequest,
    QueueStatus,
)

log = logging.getLogger(__name__)

# What the flow's intents need from an agent (skill, minimum proficiency 1..5).
INTENT_SKILLS: Mapping[str, tuple[str, int]] = {
    "billing": ("billing", 2),
    "delivery": ("logistics", 2),
    "support": ("support", 2),
    "sales": ("sales", 1),
    "other": ("support", 1),
}
# An agent's desktop that has not acknowledged the pop in this long is rung anyway: the caller
# must not wait on a browser tab (the miss is recorded: pop_acked_at stays empty).
POP_ACK_TIMEOUT_S = 1.5
_ITEM_ID = re.compile(r"[^A-Za-z0-9._-]")


def knowledge_from(snapshot: FanoutSnapshot, *, owners: Mapping[str, str]) -> CallerKnowledge:
    """Reduce the fan-out's facts to what the flow decides on. `owners` maps a CRM account
    owner (agent id or name) to the agent id that routing prefers for this customer."""
    overdue = 0
    overdue_cents = 0
    in_transit = 0
    preferred: list[str] = []
    vip = False
    for fact in snapshot.facts:
        data = fact.data
        if fact.kind == "invoice" and data.get("status") == "overdue":
            overdue += 1
            amount = data.get("amount")
            if isinstance(amount, int | float):
                overdue_cents += round(float(amount) * 100)
        elif fact.kind == "order" and str(data.get("shipment_status", "")) in {
            "in_transit",
            "in transit",
            "delayed",
        }:
            in_transit += 1
        elif fact.kind == "contact":
            owner = data.get("account_owner")
            if isinstance(owner, str) and owner in owners:
                preferred.append(owners[owner])
            vip = vip or data.get("tier") == "vip" or data.get("vip") is True
    resolution = snapshot.resolution
    customer = resolution.customer if resolution is not None else None
    tickets = snapshot.open_tickets or ()
    topic = None
    if tickets:
        title = tickets[0].title.lower()
        topic = next(
            (
                intent
                for intent, words in (
                    ("billing", ("fattura", "invoice", "pagamento", "payment")),
                    ("delivery", ("ordine", "order", "spedizione", "shipment", "consegna")),
                    ("support", ("guasto", "problem", "errore", "broken")),
                )
                if any(w in title for w in words)
            ),
            None,
        )
    return CallerKnowledge(
        known_customer=customer is not None,
        display_name=customer.display_name if customer is not None else None,
        overdue_invoices=overdue,
        overdue_amount_cents=overdue_cents,
        shipments_in_transit=in_transit,
        open_tickets=len(tickets),
        open_ticket_topic=topic,
        preferred_agents=tuple(dict.fromkeys(preferred)),
        vip=vip,
        complete=snapshot.complete,
    )


@dataclass(slots=True)
class CallRecord:
    """What we learn about the call while it runs, written once at the end."""

    started_at: datetime
    queue: str | None = None
    intent: str | None = None
    confidence: float | None = None
    reasons: tuple[str, ...] = ()
    steps: list[str] = field(default_factory=list)
    enqueued_at: float | None = None
    connected_at: float | None = None
    talk_s: float | None = None
    pop_pushed_at: datetime | None = None
    pop_acked_at: datetime | None = None
    ring_at: datetime | None = None


class InboundCallServices:
    """`ivr.ports.InboundServices` for one call."""

    def __init__(
        self,
        *,
        uniqueid: str,
        linkedid: str,
        caller_id: str,
        handle: FanoutHandle,
        context: ContextService,
        router: Router,
        hub: DesktopHub,
        agents: Mapping[str, AgentDefinition],
        owners: Mapping[str, str],
        dial_watch: DialWatch | None = None,
        transfer_watch: TransferWatch | None = None,
    ) -> None:
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.caller_id = caller_id
        self.handle = handle
        self.context = context
        self.router = router
        self.hub = hub
        self.agents = agents
        self.owners = owners
        self.item_id = _ITEM_ID.sub("_", uniqueid) or "call"
        self.record = CallRecord(started_at=context.clock.now())
        self.dial_watch = dial_watch
        self.transfer_watch = transfer_watch
        self.queued: AcdQueuedCall | None = None
        self._followed: set[str] = set()

    # --- what the flow reads ------------------------------------------------------------------

    async def knowledge(self, wait_s: float) -> CallerKnowledge:
        elapsed = self.context.clock.monotonic() - self.handle.started_mono
        snapshot = (
            await self.handle.wait(deadline_s=elapsed + wait_s)
            if wait_s > 0
            else (self.handle.snapshot())
        )
        return knowledge_from(snapshot, owners=self.owners)

    async def note(self, step: str, detail: str = "") -> None:
        self.record.steps.append(f"{step}: {detail}" if detail else step)
        self._publish_ivr()

    async def predicted(self, intent: str, confidence: float, reasons: tuple[str, ...]) -> None:
        self.record.intent, self.record.confidence, self.record.reasons = (
            intent,
            confidence,
            reasons,
        )
        self._publish_ivr()

    def _publish_ivr(self) -> None:
        steps = tuple(self.record.steps) + tuple(f"why: {r}" for r in self.record.reasons)
        self.handle.set_ivr(
            IvrSummary(
                predicted_intent=self.record.intent,
                confidence=self.record.confidence,
                transcript="",
                steps=steps,
            )
        )

    # --- the queue ----------------------------------------------------------------------------

    async def resume_transfer(self) -> QueuedCall | QueueRefusal | None:
        # An agent transferred this channel to one of our queues and the dialplan handed it
        # back to us: the ACD queues it where the transfer said (with that queue's skill).
        rejoined = await self.router.rejoin(self.item_id)
        if rejoined is None:
            return None
        await self.note("transferred", f"re-queued in {rejoined.queue}")
        return self._placed(
            WorkItem(item_id=self.item_id, queue=rejoined.queue, arrived_at=self.router_clock()),
            rejoined,
        )

    async def enqueue(self, request: QueueRequest) -> QueuedCall | QueueRefusal:
        skill, level = INTENT_SKILLS.get(request.intent, INTENT_SKILLS["other"])
        queue = request.queue or "support"
        item = WorkItem(
            item_id=self.item_id,
            queue=queue,
            arrived_at=self.router_clock(),
            skills=(SkillRequirement(skill, level),),
            priority=request.priority,
            preferred_agents=tuple(a for a in request.preferred_agents if a in self.agents),
            language=request.language,
            caller_id=self.caller_id,
        )
        return self._placed(item, await self.router.enqueue(item))

    def _placed(self, item: WorkItem, ticket: Ticket) -> QueuedCall | QueueRefusal:
        self.record.queue = ticket.queue
        self.record.enqueued_at = item.arrived_at
        if ticket.position == 0:
            return _refusal(ticket.action, "no_agents")
        self.queued = AcdQueuedCall(services=self, item=item)
        return self.queued

    def router_clock(self) -> float:
        return self.context.clock.now().timestamp()

    # --- pop before ring ----------------------------------------------------------------------

    async def push_screen_pop(self, offer: AgentOffer) -> bool:
        await self.handle.wait()  # never longer than the fan-out's deadline
        now = self.context.clock.now()
        payload = self.handle.snapshot().screen_pop(now)
        self.record.pop_pushed_at = now
        acked = await self.hub.push_screen_pop(offer.agent_id, payload, POP_ACK_TIMEOUT_S)
        if acked:
            self.record.pop_acked_at = self.context.clock.now()
        if offer.agent_id not in self._followed:
            self._followed.add(offer.agent_id)
            self.hub.follow(offer.agent_id, self.handle)
        return acked

    # --- the end ------------------------------------------------------------------------------

    async def finish(self, outcome: str, *, agent_id: str | None = None) -> None:
        queued = self.queued
        if agent_id is None and queued is not None:
            # The channel left while the agent was talking (a hangup or a transfer, the flow's
            # outcome says which): the flow never saw Dial return, the queued call knows who.
            agent_id = queued.agent_id
        try:
            snapshot = self.handle.snapshot()
            resolution = snapshot.resolution
            customer = resolution.customer if resolution is not None else None
            wait_s = None
            if self.record.enqueued_at is not None:
                until = self.record.connected_at or self.router_clock()
                wait_s = max(0.0, until - self.record.enqueued_at)
            summary = "; ".join(self.record.steps[-6:])
            ticket_id = None
            if customer is not None and outcome in {"answered", "callback_requested"}:
                open_tickets = snapshot.open_tickets or ()
                if open_tickets:
                    ticket_id = open_tickets[0].id
                else:
                    topic = (self.record.intent or "call").capitalize()
                    title = f"{topic} call from {customer.display_name}"
                    ticket = await self.context.open_ticket(
                        customer_id=customer.id, title=title, actor=agent_id or "ivr"
                    )
                    ticket_id = ticket.id
            await self.context.record_interaction(
                Interaction(
                    id=None,
                    customer_id=customer.id if customer is not None else None,
                    channel=ChannelKind.VOICE,
                    direction=Direction.INBOUND,
                    started_at=self.record.started_at,
                    ended_at=self.context.clock.now(),
                    identity=resolution.identity if resolution is not None else None,
                    linkedid=self.linkedid,
                    agent_id=agent_id,
                    queue=self.record.queue,
                    intent=self.record.intent,
                    outcome=outcome,
                    summary=summary,
                    wait_s=wait_s,
                    talk_s=self.record.talk_s,
                    pop_pushed_at=self.record.pop_pushed_at,
                    pop_acked_at=self.record.pop_acked_at,
                    ring_at=self.record.ring_at,
                    ticket_id=ticket_id,
                )
            )
        except Exception:  # the caller is gone; losing the record must be loud, not fatal
            log.exception("could not record the call's interaction (outcome %s)", outcome)
        finally:
            self.hub.forget(self.linkedid)
            await self.handle.aclose()


def _refusal(action: QueueAction, fallback_reason: str) -> QueueRefusal:
    reason = action.announcement or fallback_reason
    kind = action.kind
    if kind is ActionKind.CALLBACK:
        return QueueRefusal(reason=reason, action="callback")
    if kind is ActionKind.VOICEMAIL:
        return QueueRefusal(reason=reason, action="voicemail")
    if kind is ActionKind.OVERFLOW:
        return QueueRefusal(reason=reason, action="overflow")
    return QueueRefusal(reason=reason, action="hangup")


@dataclass(slots=True)
class AcdQueuedCall:
    """`ivr.ports.QueuedCall` over the ACD router.

    Once the agent answered, the conversation ends exactly once, by whichever comes first: the
    flow's end (Dial returned, or the channel left) or a transfer reported on AMI. `_lock`
    orders them; `ended` tells the later one that the ACD already knows."""

    services: InboundCallServices
    item: WorkItem
    _offers: dict[str, Offer] = field(default_factory=dict)
    connected: bool = False
    _unwatch: Callable[[], None] | None = None
    agent_id: str | None = None  # who answered (set with `connected`)
    ended: bool = False  # the agent's part is over: completed or transferred
    transfer: CallTransfer | None = None
    _unwatch_transfer: Callable[[], None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def router(self) -> Router:
        return self.services.router

    async def status(self) -> QueueStatus:
        ticket = await self.router.ticket(self.item.item_id)
        wait = ticket.expected_wait_s
        return QueueStatus(
            position=max(1, ticket.position), expected_wait_s=wait if math.isfinite(wait) else None
        )

    async def next_offer(self, timeout_s: float) -> AgentOffer | QueueRefusal | None:
        outcome = await self.router.wait_for_offer(self.item.item_id, timeout_s)
        if outcome is None:
            return None
        if isinstance(outcome, QueueAction):
            if outcome.kind in (ActionKind.NONE, ActionKind.OVERFLOW, ActionKind.CALLBACK):
                # Overflow moved the item (it keeps waiting); a callback *offer* is announced
                # by the flow's first announcement already.
                await self.services.note("queue_step", outcome.kind.value)
                return None
            return _refusal(outcome, "max_wait")
        res = outcome.reservation
        self._offers[res.reservation_id] = outcome
        return AgentOffer(res.reservation_id, res.agent_id, outcome.endpoint)

    async def ringing(self, offer: AgentOffer) -> bool:
        try:
            await self.router.accept(offer.reservation_id)
        except StaleReservation:
            return False
        self.services.record.ring_at = self.services.context.clock.now()
        watch = self.services.dial_watch
        if watch is not None:

            async def on_answer() -> None:
                await self._connect(offer)

            self._unwatch = watch.watch(self.services.uniqueid, on_answer)
        return True

    async def _connect(self, offer: AgentOffer) -> None:
        async with self._lock:
            if self.connected:
                return
            self.connected = True
            self.agent_id = offer.agent_id
            transfers = self.services.transfer_watch
            if transfers is not None:
                # Watch before the ACD hears of the answer: a transfer reported meanwhile waits
                # on the lock and finds the conversation connected.
                self._unwatch_transfer = transfers.watch(self.services.uniqueid, self._transferred)
            self.services.record.connected_at = self.services.router_clock()
            await self.router.connected(offer.reservation_id)

    async def answered(self, offer: AgentOffer, *, ring_s: float) -> None:
        """Dial returned ANSWER. Normally AMI confirmed the answer as it happened; without AMI
        the reservation may have lapsed meanwhile (the ACD then freed the agent already)."""
        self._stop_watching()
        if self.connected:
            return
        try:
            await self._connect(offer)
        except StaleReservation:
            log.warning(
                "agent %s answered but no AMI DialEnd confirmed it in time; "
                "the ACD released the reservation",
                offer.agent_id,
            )

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    async def no_answer(self, offer: AgentOffer, *, reason: str) -> None:
        self._stop_watching()
        try:
            await self.router.ring_no_answer(offer.reservation_id)
        except StaleReservation:
            log.info("reservation %s already released", offer.reservation_id)

    async def completed(self, offer: AgentOffer, *, talk_s: float) -> None:
        await self._end_conversation(talk_s=talk_s)

    async def channel_left(self) -> str:
        self._stop_watching()
        if self.connected:
            # The channel left while the agent was talking: the caller hung up, or the agent
            # transferred them. AMI says which (settle); until then nothing is written.
            transfers = self.services.transfer_watch
            if transfers is not None and not self.ended:
                await transfers.settle(self.services.uniqueid)
            await self._end_conversation(talk_s=None)
            return "transferred" if self.transfer is not None else "answered"
        try:
            await self.router.abandon(self.item.item_id)
        except UnknownItem:
            log.info("item %s already left the queue", self.item.item_id)
        return "abandoned"

    async def _end_conversation(self, *, talk_s: float | None) -> None:
        """The conversation is over and was not transferred (unless AMI said so first)."""
        try:
            async with self._lock:
                if self.ended:
                    return  # the transfer ended the agent's part already
                self.ended = True
                self.services.record.talk_s = talk_s if talk_s is not None else self._talk_s()
                try:
                    await self.router.completed(self.item.item_id)
                except UnknownItem:
                    log.warning(
                        "the ACD no longer tracks %s; completion not logged", self.item.item_id
                    )
        finally:
            self._stop_watching_transfers()

    async def _transferred(self, transfer: CallTransfer) -> None:
        """AMI: the agent transferred this caller (TransferWatch's callback)."""
        async with self._lock:
            if self.ended or not self.connected:
                log.info(
                    "%s transfer to %s after the conversation ended; ignored",
                    transfer.kind,
                    transfer.target,
                )
                return
            self.ended = True
            self.transfer = transfer
            self.services.record.talk_s = self._talk_s()
            try:
                await self.router.transferred(
                    self.item.item_id, target=transfer.target, to_queue=transfer.queue
                )
            except UnknownItem:  # the answer never reached the ACD (its reservation lapsed)
                log.warning("the ACD does not track %s; transfer not logged", self.item.item_id)
        where = f"queue {transfer.queue}" if transfer.queue else transfer.target
        await self.services.note("transferred", f"{transfer.kind} by {self.agent_id} to {where}")

    def _talk_s(self) -> float | None:
        connected_at = self.services.record.connected_at
        if connected_at is None:
            return None
        return max(0.0, self.services.router_clock() - connected_at)

    def _stop_watching_transfers(self) -> None:
        if self._unwatch_transfer is not None:
            self._unwatch_transfer()
            self._unwatch_transfer = None

    async def callback_requested(self, number: str) -> None:
        await self.router.request_callback(self.item.item_id, number)
