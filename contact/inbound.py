"""One inbound call's lifecycle: the IVR's `InboundServices` on top of the context fan-out,
the ACD router and the agents' desktops, with the call's position in `contact.conversation`'s
table as the one truth about where it stands and how it ended.

Facts become the flow's `CallerKnowledge`, the flow's queue request becomes an ACD `WorkItem`
(`contact.rules` says which queue and skill), offers become `AgentOffer`s, and the call's end
becomes one `Interaction` on the customer's timeline (with the pop-push, ack and ring times that
prove the pop was ready before the phone rang, and talk time measured from the agent's answer
as telephony reported it to the end of the conversation).
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
    QueueAction,
    SkillRequirement,
    Ticket,
    WorkItem,
)
from acd.service import Router
from contact.conversation import Contact, ContactEvent, ContactState
from contact.ports import (
    AnswerEvents,
    CallJournal,
    CallTransfer,
    JournalEntry,
    PopDesk,
    TransferEvents,
)
from contact.rules import DEFAULT_ROUTES, IntentRoute, TicketStep, refusal, route_for, ticket_step
from context.fanout import FanoutHandle, FanoutSnapshot
from context.models import ChannelKind, Direction, Identity, Interaction, Outcome
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
                    ("order_status", ("ordine", "order", "spedizione", "shipment", "consegna")),
                    ("technical_support", ("guasto", "problem", "errore", "broken")),
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
    transcript: str = ""  # what the caller said (speech recognised), if anything
    steps: list[str] = field(default_factory=list)
    survey_score: int | None = None  # 1..5, from the post-call survey
    enqueued_at: float | None = None
    connected_at: float | None = None  # the agent answered (telephony's report), router clock
    talk_s: float | None = None
    ring_s: float | None = None
    pop_pushed_at: datetime | None = None
    pop_acked_at: datetime | None = None
    ring_at: datetime | None = None
    ring_started: float | None = None  # router clock, for ring_s


# What the flow reports at its end, as an event of the contact's table (when the table has not
# ended already: then the table's outcome stands, e.g. a transfer AMI reported first).
_FLOW_ENDS: Mapping[Outcome, ContactEvent] = {
    Outcome.HANGUP_IN_IVR: ContactEvent.HANGUP,
    Outcome.ABANDONED: ContactEvent.HANGUP,
    Outcome.ANSWERED: ContactEvent.HANGUP,
    Outcome.SELF_SERVED: ContactEvent.SELF_SERVE,
    Outcome.CALLBACK_REQUESTED: ContactEvent.CALLBACK,
    Outcome.REFUSED: ContactEvent.REFUSE,
    Outcome.RETURNED: ContactEvent.HAND_BACK,
    Outcome.TRANSFERRED: ContactEvent.TRANSFER,
}


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
        desk: PopDesk,
        agents: Mapping[str, AgentDefinition],
        owners: Mapping[str, str],
        routes: Mapping[str, IntentRoute] = DEFAULT_ROUTES,
        answers: AnswerEvents | None = None,
        transfers: TransferEvents | None = None,
        record_key: str | None = None,
        journal: CallJournal | None = None,
    ) -> None:
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.caller_id = caller_id
        self.handle = handle
        self.context = context
        self.router = router
        self.desk = desk
        self.agents = agents
        self.owners = owners
        self.routes = routes
        self.item_id = _ITEM_ID.sub("_", uniqueid) or "call"
        self.record = CallRecord(started_at=context.clock.now())
        self.contact = Contact(contact_id=self.item_id)
        self.answers = answers
        self.transfers = transfers
        self.queued: AcdQueuedCall | None = None
        self._followed: set[str] = set()
        # The journal lets another process record this call if ours dies before `finish`.
        self.record_key = record_key
        self.journal = journal if record_key is not None else None
        if self.journal is not None and record_key is not None:
            self.journal.opened(
                JournalEntry(
                    record_key=record_key,
                    uniqueid=uniqueid,
                    linkedid=linkedid,
                    caller_id=caller_id,
                    started_at=self.record.started_at,
                )
            )

    def journal_note(self, **facts: str) -> None:
        if self.journal is not None and self.record_key is not None:
            self.journal.noted(self.record_key, **facts)

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

    async def predicted(
        self, intent: str, confidence: float, reasons: tuple[str, ...], *, transcript: str = ""
    ) -> None:
        self.record.intent, self.record.confidence, self.record.reasons = (
            intent,
            confidence,
            reasons,
        )
        if transcript:
            self.record.transcript = transcript
        self._publish_ivr()

    async def rated(self, score: int) -> None:
        if not 1 <= score <= 5:
            raise ValueError(f"a survey score is 1..5, got {score}")
        self.record.survey_score = score

    def _publish_ivr(self) -> None:
        steps = tuple(self.record.steps) + tuple(f"why: {r}" for r in self.record.reasons)
        self.handle.set_ivr(
            IvrSummary(
                predicted_intent=self.record.intent,
                confidence=self.record.confidence,
                transcript=self.record.transcript,
                steps=steps,
                reasons=self.record.reasons,
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
        route = route_for(request.intent, self.routes)
        item = WorkItem(
            item_id=self.item_id,
            queue=request.queue or route.queue,
            arrived_at=self.router_clock(),
            # A flow's queue step may ask for its own skill; else the intent's route decides.
            skills=(
                SkillRequirement(
                    request.skill or route.skill,
                    request.min_level or (route.min_level if request.skill is None else 1),
                ),
            ),
            priority=request.priority,
            preferred_agents=tuple(a for a in request.preferred_agents if a in self.agents),
            language=request.language,
            caller_id=self.caller_id,
        )
        return self._placed(item, await self.router.enqueue(item))

    def _placed(self, item: WorkItem, ticket: Ticket) -> QueuedCall | QueueRefusal:
        self.record.queue = ticket.queue
        self.journal_note(queue=ticket.queue, intent=self.record.intent or "")
        self.record.enqueued_at = item.arrived_at
        if ticket.position == 0:
            return refusal(ticket.action, "no_agents")
        self.contact.apply(ContactEvent.ENQUEUE)
        self.queued = AcdQueuedCall(services=self, item=item)
        return self.queued

    def router_clock(self) -> float:
        return self.context.clock.now().timestamp()

    # --- pop before ring ----------------------------------------------------------------------

    async def push_screen_pop(self, offer: AgentOffer) -> bool:
        await self.handle.wait()  # never longer than the fan-out's deadline
        now = self.context.clock.now()
        # The desktop shows which queue the call came through beside the pop.
        payload = {**self.handle.snapshot().screen_pop(now), "queue": self.record.queue}
        self.record.pop_pushed_at = now
        acked = await self.desk.push_screen_pop(offer.agent_id, payload, POP_ACK_TIMEOUT_S)
        if acked:
            self.record.pop_acked_at = self.context.clock.now()
        if offer.agent_id not in self._followed:
            self._followed.add(offer.agent_id)
            self.desk.follow(offer.agent_id, self.handle)
        return acked

    # --- the end ------------------------------------------------------------------------------

    async def finish(self, outcome: str, *, agent_id: str | None = None) -> None:
        """The flow is over; `outcome` is how the flow saw it end. The contact's table has the
        last word (a transfer reported on AMI, an answer the flow never saw)."""
        queued = self.queued
        if agent_id is None and queued is not None:
            # The channel left while the agent was talking (a hangup or a transfer, the flow's
            # outcome says which): the flow never saw Dial return, the queued call knows who.
            agent_id = queued.agent_id
        contact = self.contact
        if not contact.ended:
            event = _FLOW_ENDS.get(Outcome(outcome), ContactEvent.HANGUP)
            if not contact.can(event):
                log.error(
                    "the flow ended %s with %s, which its state %s does not allow; recorded as %s",
                    self.item_id,
                    outcome,
                    contact.state.value,
                    "returned",
                )
                event = ContactEvent.HAND_BACK
            contact.apply(event)
        final = contact.outcome or Outcome(outcome)
        try:
            await self._record(final, agent_id=agent_id)
        except Exception:  # the caller is gone; losing the record must be loud, not fatal
            # Left open in the journal: the next start records it as failed, not never.
            log.exception("could not record the call's interaction (outcome %s)", final.value)
        else:
            if self.journal is not None and self.record_key is not None:
                self.journal.closed(self.record_key)
        finally:
            self.desk.forget(self.linkedid)
            await self.handle.aclose()

    async def _record(self, outcome: Outcome, *, agent_id: str | None) -> None:
        snapshot = self.handle.snapshot()
        resolution = snapshot.resolution
        customer = resolution.customer if resolution is not None else None
        wait_s = None
        enqueued_at = self.record.enqueued_at
        if enqueued_at is not None:
            # Until the agent answered; when nobody reported that moment, until their phone
            # rang (the last moment known to be waiting); a caller never connected, until now.
            record = self.record
            rang = record.ring_started if self.contact.connected else None
            until = record.connected_at or rang or self.router_clock()
            wait_s = max(0.0, until - enqueued_at)
        summary = "; ".join(self.record.steps[-6:])
        open_tickets = snapshot.open_tickets or ()
        step = ticket_step(
            outcome, known_customer=customer is not None, has_open_ticket=bool(open_tickets)
        )
        ticket_id = None
        if customer is not None and step is TicketStep.ATTACH:
            ticket_id = open_tickets[0].id
        elif customer is not None and step is TicketStep.OPEN:
            topic = (self.record.intent or "call").capitalize()
            try:
                ticket = await self.context.open_ticket(
                    customer_id=customer.id,
                    title=f"{topic} call from {customer.display_name}",
                    actor=agent_id or "ivr",
                )
                ticket_id = ticket.id
            except Exception:  # the ticket store is down: the call's record matters more
                log.exception(
                    "could not open a ticket for %s; recording the call without", self.item_id
                )
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
                outcome=outcome.value,
                summary=summary,
                transcript=self.record.transcript,
                wait_s=wait_s,
                talk_s=self.record.talk_s,
                pop_pushed_at=self.record.pop_pushed_at,
                pop_acked_at=self.record.pop_acked_at,
                ring_at=self.record.ring_at,
                ticket_id=ticket_id,
                record_key=self.record_key,
                survey_score=self.record.survey_score,
                intent_confidence=self.record.confidence,
                intent_reasons=self.record.reasons,
            )
        )


def failed_record(
    entry: JournalEntry,
    *,
    found_at: datetime,
    customer_id: int | None,
    identity: Identity | None,
) -> Interaction:
    """The record of a call whose process died before writing it: what its journal knew, the
    outcome `failed`, and as its end the moment the failure was found (the real end is not
    known). It carries the call's own record key, so it is a no-op if that record was kept."""
    return Interaction(
        id=None,
        customer_id=customer_id,
        channel=ChannelKind.VOICE,
        direction=Direction.INBOUND,
        started_at=entry.started_at,
        ended_at=max(found_at, entry.started_at),
        identity=identity,
        linkedid=entry.linkedid,
        agent_id=entry.agent_id,
        queue=entry.queue,
        intent=entry.intent,
        outcome=Outcome.FAILED.value,
        summary="the server handling the call stopped; the dialplan's fallback took the caller",
        record_key=entry.record_key,
    )


async def record_failed_call(context: ContextService, entry: JournalEntry) -> None:
    """Record a call whose process died (`failed_record`), with its customer if the identity
    resolves within a moment (a store that is down must not hold the others back)."""
    resolution = None
    try:
        async with asyncio.timeout(2.0):
            resolution = await context.resolve_caller(entry.caller_id or None)
    except Exception:
        log.warning("could not resolve %s for its failure record", entry.uniqueid, exc_info=True)
    customer = resolution.customer if resolution is not None else None
    await context.record_interaction(
        failed_record(
            entry,
            found_at=context.clock.now(),
            customer_id=customer.id if customer is not None else None,
            identity=resolution.identity if resolution is not None else None,
        )
    )


@dataclass(slots=True)
class AcdQueuedCall:
    """`ivr.ports.QueuedCall` over the ACD router, moving the contact through its table.

    Once the agent answered, the conversation ends exactly once, by whichever comes first: the
    flow's end (Dial returned, or the channel left) or a transfer reported on AMI. `_lock`
    orders them; the contact's state tells the later one that the ACD already knows."""

    services: InboundCallServices
    item: WorkItem
    _unwatch: Callable[[], None] | None = None
    agent_id: str | None = None  # who answered (set when connected)
    transfer: CallTransfer | None = None
    _unwatch_transfer: Callable[[], None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def router(self) -> Router:
        return self.services.router

    @property
    def contact(self) -> Contact:
        return self.services.contact

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
            # The ACD ended the wait; the flow tells the caller, and its end (a refusal, or
            # the callback it confirms) is the contact's.
            return refusal(outcome, "max_wait")
        res = outcome.reservation
        self.contact.apply(ContactEvent.OFFER)
        return AgentOffer(res.reservation_id, res.agent_id, outcome.endpoint)

    async def ringing(self, offer: AgentOffer) -> bool:
        try:
            await self.router.accept(offer.reservation_id)
        except StaleReservation:
            self.contact.apply(ContactEvent.STALE)
            return False
        self.contact.apply(ContactEvent.RING)
        record = self.services.record
        record.ring_at = self.services.context.clock.now()
        record.ring_started = self.services.router_clock()
        answers = self.services.answers
        if answers is not None:

            async def on_answer() -> None:
                await self._connect(offer, reported=True)

            self._unwatch = answers.watch(self.services.uniqueid, on_answer)
        return True

    async def _connect(self, offer: AgentOffer, *, reported: bool) -> None:
        """The agent answered. `reported`: telephony told us as it happened (AMI's DialEnd),
        so now is the moment talk time counts from; else we learn it only when Dial returned,
        the conversation already over, and its length stays unknown."""
        async with self._lock:
            if self.contact.state is not ContactState.RINGING:
                return  # answered already, or the caller left meanwhile
            self.contact.apply(ContactEvent.ANSWER)
            self.agent_id = offer.agent_id
            self.services.journal_note(agent_id=offer.agent_id)
            transfers = self.services.transfers
            if transfers is not None:
                # Watch before the ACD hears of the answer: a transfer reported meanwhile waits
                # on the lock and finds the conversation connected.
                self._unwatch_transfer = transfers.watch(self.services.uniqueid, self._transferred)
            record = self.services.record
            if reported:
                record.connected_at = self.services.router_clock()
                if record.ring_started is not None:
                    record.ring_s = max(0.0, record.connected_at - record.ring_started)
            await self.router.connected(offer.reservation_id)

    async def answered(self, offer: AgentOffer) -> None:
        """Dial returned ANSWER. Normally telephony reported the answer as it happened (the
        talk time starts there); without that report the reservation may have lapsed
        meanwhile (the ACD then freed the agent already), and no talk time is known."""
        self._stop_watching()
        if self.contact.state is not ContactState.RINGING:
            return
        try:
            await self._connect(offer, reported=False)
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
        if self.contact.state is ContactState.RINGING:
            self.contact.apply(ContactEvent.NO_ANSWER)
        try:
            await self.router.ring_no_answer(offer.reservation_id)
        except StaleReservation:
            log.info("reservation %s already released", offer.reservation_id)

    async def completed(self, offer: AgentOffer) -> None:
        await self._end_conversation()

    async def channel_left(self, *, handed_back: bool = False) -> str:
        """The channel left us (or, `handed_back`, we hand it to the dialplan) before the flow
        saw the call end. Returns how the call ended, as the contact's table decides."""
        self._stop_watching()
        if self.contact.connected:
            # The channel left while the agent was talking: the caller hung up, or the agent
            # transferred them. AMI says which (settle); until then nothing is written.
            transfers = self.services.transfers
            if transfers is not None and not self.contact.ended and not handed_back:
                await transfers.settle(self.services.uniqueid)
            await self._end_conversation()
            return (self.contact.outcome or Outcome.ANSWERED).value
        if self.contact.ended:
            return (self.contact.outcome or Outcome.ABANDONED).value
        self.contact.apply(ContactEvent.HAND_BACK if handed_back else ContactEvent.HANGUP)
        leave = self.router.hand_back if handed_back else self.router.abandon
        try:
            await leave(self.item.item_id)
        except UnknownItem:
            log.info("item %s already left the queue", self.item.item_id)
        return (self.contact.outcome or Outcome.ABANDONED).value

    async def _end_conversation(self) -> None:
        """The conversation is over and was not transferred (unless AMI said so first)."""
        try:
            async with self._lock:
                if self.contact.ended:
                    return  # the transfer ended the agent's part already
                self.contact.apply(ContactEvent.HANGUP)
                self.services.record.talk_s = self._talk_s()
                try:
                    await self.router.completed(self.item.item_id)
                except UnknownItem:
                    log.warning(
                        "the ACD no longer tracks %s; completion not logged", self.item.item_id
                    )
        finally:
            self._stop_watching_transfers()

    async def _transferred(self, transfer: CallTransfer) -> None:
        """AMI: the agent transferred this caller (the transfer events' callback)."""
        async with self._lock:
            if self.contact.state is not ContactState.CONNECTED:
                log.info(
                    "%s transfer to %s after the conversation ended; ignored",
                    transfer.kind,
                    transfer.target,
                )
                return
            self.contact.apply(ContactEvent.TRANSFER)
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
            # Nobody reported the answer's moment (no AMI, or its link was down): Dial's own
            # variables measure the caller's channel (IVR and queue included), not the
            # conversation; say nothing rather than something wrong.
            return None
        return max(0.0, self.services.router_clock() - connected_at)

    def _stop_watching_transfers(self) -> None:
        if self._unwatch_transfer is not None:
            self._unwatch_transfer()
            self._unwatch_transfer = None

    async def callback_requested(self, number: str) -> None:
        await self.router.request_callback(self.item.item_id, number)
        self.contact.apply(ContactEvent.CALLBACK)
