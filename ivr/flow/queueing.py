"""Holding a queued caller until an agent answers: music on hold, position and expected-wait
announcements, `*` for a callback, the screen-pop pushed *before* the agent's phone rings, and
an unanswered agent returning the call to the front of the queue. The `queue` step runs this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from context.models import Outcome
from ivr.ports import AgentOffer, Channel, InboundServices, QueuedCall, QueueRefusal

SOUND_CALLBACK_OK = "centralino/callback-confirmed"
SOUND_CALLBACK_OFFER = "centralino/press-star-for-callback"
SOUND_POSITION = "queue-thereare"
SOUND_CALLS_WAITING = "queue-callswaiting"
SOUND_HOLDTIME = "queue-holdtime"
SOUND_MINUTES = "queue-minutes"
SOUND_YOU_ARE_NEXT = "queue-youarenext"
SOUND_NO_AGENTS = "centralino/no-agents"
SOUND_TRANSFERRED = "one-moment-please"
# Every sound a queue step may play (checked on disk for each language of the flow), besides
# the numbers Asterisk says.
QUEUE_PROMPTS = (
    SOUND_CALLBACK_OK,
    SOUND_CALLBACK_OFFER,
    SOUND_POSITION,
    SOUND_CALLS_WAITING,
    SOUND_HOLDTIME,
    SOUND_MINUTES,
    SOUND_YOU_ARE_NEXT,
    SOUND_NO_AGENTS,
)

# Dial options: `t` lets the agent transfer the caller with the in-call DTMF features
# (features.conf); never `T`, which would let the caller transfer themselves anywhere.
DIAL_OPTIONS = "t"
# With a post-call survey: `g` continues after the agent hangs up, so the caller stays with us.
DIAL_OPTIONS_SURVEY = "tg"


@dataclass(frozen=True, slots=True)
class HoldSettings:
    announce_every_s: float
    ring_timeout_s: int
    hold_poll_ms: int
    max_ring_attempts: int
    dial_options: str = DIAL_OPTIONS


async def refused(
    channel: Channel, services: InboundServices, caller_id: str, refusal: QueueRefusal
) -> Outcome:
    if refusal.action == "callback" and caller_id:
        await services.note("callback", "offered: no agent can take the call now")
        await channel.stream_file(SOUND_CALLBACK_OK)
        await channel.hangup()
        return Outcome.CALLBACK_REQUESTED
    await channel.stream_file(SOUND_NO_AGENTS)
    await channel.hangup()
    return Outcome.REFUSED


async def hold_until_connected(
    channel: Channel,
    *,
    services: InboundServices,
    queued: QueuedCall,
    caller_id: str,
    settings: HoldSettings,
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
            return await refused(channel, services, caller_id, offer), None
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
        if digit == "*" and caller_id:
            await channel.set_music(False)
            await queued.callback_requested(caller_id)
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
    settings: HoldSettings,
) -> Outcome | None:
    """Dial the agent. Returns the outcome once the conversation ended, None if not answered.

    Dial's own ANSWEREDTIME/DIALEDTIME measure the caller's channel (IVR and queue included),
    not this conversation: its times come from telephony's answer report instead."""
    await channel.exec(
        "Dial", f"{offer.endpoint},{settings.ring_timeout_s},{settings.dial_options}"
    )
    status = (await channel.get_variable("DIALSTATUS")) or "UNKNOWN"
    if status != "ANSWER":
        await queued.no_answer(offer, reason=status.lower())
        return None
    await queued.answered(offer)
    await queued.completed(offer)
    return Outcome.ANSWERED
