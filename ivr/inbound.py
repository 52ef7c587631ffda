"""The inbound call flow: what a caller hears from the first ring to the agent's hello.

1. Before answering, the pre-answer fan-out is already running (the services were bound at
   the first AGI command); we answer and wait for it no longer than its deadline.
2. Intent: context priors (overdue invoice, shipment, open ticket), then the menu key.
3. Self-service where it can (an overdue invoice is read out fresh from the ERP).
4. Queue: music on hold, position and expected-wait announcements, `*` for a callback.
5. On a reservation: the screen-pop is pushed and acknowledged, *then* the agent's phone rings.
   No answer: the agent goes not-ready and the call returns to the front of the queue.

A caller an agent transferred to one of our queues comes back in a new session (docs/ami.md,
"Transfers"): they hear one short prompt and wait in that queue at once; the welcome, the menu
and self-service were behind them already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from context.models import Outcome
from ivr.errors import CallHandedBack, ChannelHungUp
from ivr.intent import IntentModel, Signals
from ivr.ports import (
    AgentOffer,
    CallerKnowledge,
    Channel,
    InboundServices,
    QueuedCall,
    QueueRefusal,
    QueueRequest,
)

log = logging.getLogger(__name__)

# Sounds: Asterisk core sounds where one fits; `centralino/*` are the product's own prompts
# (their texts, in every language, and how they are generated: centralino/prompts.py).
SOUND_WELCOME = "centralino/welcome"
SOUND_MENU = "centralino/menu"
SOUND_INVOICE_OVERDUE = "centralino/invoice-overdue"
SOUND_EURO = "centralino/euro"
SOUND_AGENT_OR_BYE = "centralino/press-1-for-agent"
SOUND_CALLBACK_OK = "centralino/callback-confirmed"
SOUND_CALLBACK_OFFER = "centralino/press-star-for-callback"
SOUND_POSITION = "queue-thereare"
SOUND_CALLS_WAITING = "queue-callswaiting"
SOUND_HOLDTIME = "queue-holdtime"
SOUND_MINUTES = "queue-minutes"
SOUND_YOU_ARE_NEXT = "queue-youarenext"
SOUND_GOODBYE = "vm-goodbye"
SOUND_NO_AGENTS = "centralino/no-agents"
SOUND_TRANSFERRED = "one-moment-please"


# Dial options: `t` lets the agent transfer the caller with the in-call DTMF features
# (features.conf); never `T`, which would let the caller transfer themselves anywhere.
DIAL_OPTIONS = "t"


@dataclass(frozen=True, slots=True)
class FlowSettings:
    menu_timeout_ms: int = 4000
    announce_every_s: float = 30.0
    ring_timeout_s: int = 20
    # How long one WAIT FOR DIGIT lasts while holding: bounds how late we notice an offer.
    hold_poll_ms: int = 500
    max_ring_attempts: int = 5


@dataclass(frozen=True, slots=True)
class InboundCall:
    uniqueid: str
    caller_id: str
    language: str | None = None
    queue: str | None = None


async def run_inbound(
    call: InboundCall,
    channel: Channel,
    services: InboundServices,
    *,
    model: IntentModel,
    settings: FlowSettings = FlowSettings(),
    monotonic: Callable[[], float],
) -> Outcome:
    """Drive one inbound call; returns its outcome as the flow saw it (`services.finish` gets it
    too, and the contact's lifecycle has the last word)."""
    outcome = Outcome.HANGUP_IN_IVR
    handed_back = False
    agent: str | None = None
    queued: QueuedCall | None = None
    try:
        await channel.answer()
        placed = await services.resume_transfer()
        transferred = placed is not None
        if placed is None:
            placed = await _ask_the_caller(call, channel, services, model=model, settings=settings)
        if placed is None:
            outcome = Outcome.SELF_SERVED
        elif isinstance(placed, QueueRefusal):
            await services.note("queue_refused", f"{placed.reason} → {placed.action}")
            outcome = await _refused(channel, services, call, placed)
        else:
            queued = placed
            outcome = Outcome.ABANDONED
            if transferred:
                await channel.stream_file(SOUND_TRANSFERRED)
            outcome, agent = await _hold_until_connected(
                channel,
                services=services,
                queued=queued,
                call=call,
                settings=settings,
                monotonic=monotonic,
            )
            queued = None  # it ended in the flow's sight: the ACD already knows how
    except CallHandedBack:
        log.info("call handed back to the dialplan (shutting down)")
        handed_back = True
    except ChannelHungUp:
        log.info("caller hung up (%s)", outcome)
    except Exception:
        # Our own failure (a store down, a bug): the session hands the call back to the
        # dialplan (ERROR) and its fallback answers. The record must not blame the caller.
        handed_back = True
        raise
    finally:
        if handed_back and outcome in (Outcome.HANGUP_IN_IVR, Outcome.ABANDONED):
            outcome = Outcome.RETURNED
        if queued is not None:
            # The channel left while queued, ringing or talking (a hangup or a transfer), or
            # we are handing it back: the queued call knows which, and that is how it ended.
            try:
                left = await asyncio.shield(queued.channel_left(handed_back=handed_back))
                outcome = Outcome(left)
            except Exception:  # the ACD's store is down: the call is still recorded
                log.exception("could not tell the ACD how the call left (%s)", outcome)
        await asyncio.shield(services.finish(outcome, agent_id=agent))
    return outcome


async def _ask_the_caller(
    call: InboundCall,
    channel: Channel,
    services: InboundServices,
    *,
    model: IntentModel,
    settings: FlowSettings,
) -> QueuedCall | QueueRefusal | None:
    """Welcome, self-service where it fits, the menu; then queue the call where the intent
    leads. None: the caller was served here and the call is over."""
    knowledge = await services.knowledge(wait_s=0.0)
    await channel.stream_file(SOUND_WELCOME)
    knowledge = await services.knowledge(wait_s=1.0)
    signals = _signals(knowledge)
    prior = model.predict(signals=signals)

    can_self_serve = prior.intent == "billing" and knowledge.overdue_invoices > 0
    if (
        can_self_serve
        and prior.confidence >= 0.5
        and await _self_serve_invoice(channel, services, knowledge, settings)
    ):
        return None

    menu = await channel.get_data(SOUND_MENU, settings.menu_timeout_ms, 1)
    key = menu.digits[:1] or None
    await services.note("menu", f"pressed {key}" if key else "no key (timeout)")
    prediction = model.predict(signals=signals, menu_key=key)
    await services.predicted(prediction.intent, prediction.confidence, prediction.reasons)

    return await services.enqueue(
        QueueRequest(
            intent=prediction.intent,
            priority=10 if knowledge.vip else (5 if knowledge.open_tickets else 0),
            preferred_agents=knowledge.preferred_agents,
            language=call.language,
            # The transfer's or the AGI query's queue; else the intent's route decides.
            queue=call.queue,
        )
    )


def _signals(knowledge: CallerKnowledge) -> Signals:
    return Signals(
        overdue_invoices=knowledge.overdue_invoices,
        shipments_in_transit=knowledge.shipments_in_transit,
        open_tickets=knowledge.open_tickets,
        open_ticket_topic=knowledge.open_ticket_topic,
        known_customer=knowledge.known_customer,
    )


async def _self_serve_invoice(
    channel: Channel, services: InboundServices, knowledge: CallerKnowledge, settings: FlowSettings
) -> bool:
    """Read the overdue amount; `1` goes on to an agent. True if the caller was served."""
    await services.note("self_service", "overdue invoice read out")
    await channel.stream_file(SOUND_INVOICE_OVERDUE)
    await channel.say_number(knowledge.overdue_amount_cents // 100)
    await channel.stream_file(SOUND_EURO)
    choice = await channel.get_data(SOUND_AGENT_OR_BYE, settings.menu_timeout_ms, 1)
    if choice.digits == "1":
        await services.note("self_service", "asked for an agent")
        return False
    await channel.stream_file(SOUND_GOODBYE)
    await channel.hangup()
    return True


async def _refused(
    channel: Channel, services: InboundServices, call: InboundCall, refusal: QueueRefusal
) -> Outcome:
    if refusal.action == "callback" and call.caller_id:
        await services.note("callback", "offered: no agent can take the call now")
        await channel.stream_file(SOUND_CALLBACK_OK)
        await channel.hangup()
        return Outcome.CALLBACK_REQUESTED
    await channel.stream_file(SOUND_NO_AGENTS)
    await channel.hangup()
    return Outcome.REFUSED


async def _hold_until_connected(
    channel: Channel,
    *,
    services: InboundServices,
    queued: QueuedCall,
    call: InboundCall,
    settings: FlowSettings,
    monotonic: Callable[[], float],
) -> tuple[Outcome, str | None]:
    await _announce(channel, queued, first=True)
    await channel.set_music(True)
    last_announcement = monotonic()
    attempts = 0
    while True:
        # WAIT FOR DIGIT keeps the channel busy for at most hold_poll_ms; meanwhile we listen
        # for an offer, so a reservation is noticed within that bound and the screen-pop push
        # overlaps with the rest of the wait.
        digit_task = asyncio.ensure_future(channel.wait_for_digit(settings.hold_poll_ms))
        try:
            offer = await queued.next_offer(settings.hold_poll_ms / 1000)
            pushed: asyncio.Future[bool] | None = None
            if isinstance(offer, AgentOffer):
                pushed = asyncio.ensure_future(services.push_screen_pop(offer))
            digit = await digit_task
        except BaseException:
            digit_task.cancel()
            raise
        if isinstance(offer, QueueRefusal):
            await channel.set_music(False)
            await services.note("queue_action", f"{offer.reason} → {offer.action}")
            return await _refused(channel, services, call, offer), None
        if offer is not None and pushed is not None:
            acknowledged = await pushed
            await services.note("offered", f"agent {offer.agent_id}, pop acked={acknowledged}")
            if not await queued.ringing(offer):
                continue
            await channel.set_music(False)
            result = await _ring(channel, queued, offer, settings)
            if result is not None:
                return result, offer.agent_id
            attempts += 1
            if attempts == settings.max_ring_attempts:
                await services.note("ring", "too many unanswered agents")
            await channel.set_music(True)
            continue
        if digit == "*" and call.caller_id:
            await channel.set_music(False)
            await queued.callback_requested(call.caller_id)
            await services.note("callback", "requested from the queue (*)")
            await channel.stream_file(SOUND_CALLBACK_OK)
            await channel.hangup()
            return Outcome.CALLBACK_REQUESTED, None
        if monotonic() - last_announcement >= settings.announce_every_s:
            await channel.set_music(False)
            await _announce(channel, queued, first=False)
            await channel.set_music(True)
            last_announcement = monotonic()


async def _announce(channel: Channel, queued: QueuedCall, *, first: bool) -> None:
    status = await queued.status()
    if status.position <= 1:
        await channel.stream_file(SOUND_YOU_ARE_NEXT)
    else:
        await channel.stream_file(SOUND_POSITION)
        await channel.say_number(status.position - 1)
        await channel.stream_file(SOUND_CALLS_WAITING)
    if status.expected_wait_s is not None and status.expected_wait_s >= 60:
        await channel.stream_file(SOUND_HOLDTIME)
        await channel.say_number(round(status.expected_wait_s / 60))
        await channel.stream_file(SOUND_MINUTES)
    if first:
        await channel.stream_file(SOUND_CALLBACK_OFFER)


async def _ring(
    channel: Channel,
    queued: QueuedCall,
    offer: AgentOffer,
    settings: FlowSettings,
) -> Outcome | None:
    """Dial the agent. Returns the outcome once the conversation ended, None if not answered.

    Dial's own ANSWEREDTIME/DIALEDTIME measure the caller's channel (IVR and queue included),
    not this conversation: its times come from telephony's answer report instead."""
    await channel.exec("Dial", f"{offer.endpoint},{settings.ring_timeout_s},{DIAL_OPTIONS}")
    status = (await channel.get_variable("DIALSTATUS")) or "UNKNOWN"
    if status != "ANSWER":
        await queued.no_answer(offer, reason=status.lower())
        return None
    await queued.answered(offer)
    await queued.completed(offer)
    return Outcome.ANSWERED
