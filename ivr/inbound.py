"""The inbound call: what a caller hears from the first ring to the agent's hello.

The steps are data (`ivr.flow`); without a flow of its own a call runs the `default` flow,
which is the script below:

1. Before answering, the pre-answer fan-out is already running (the services were bound at
   the first AGI command); we answer and wait for it no longer than its deadline.
2. Intent: context priors (overdue invoice, shipment, open ticket), then the menu key.
3. Self-service where it can (an overdue invoice is read out fresh from the ERP).
4. Queue: music on hold, position and expected-wait announcements, `*` for a callback.
5. On a reservation: the screen-pop is pushed and acknowledged, *then* the agent's phone rings.
   No answer: the agent goes not-ready and the call returns to the front of the queue.

A caller an agent transferred to one of our queues comes back in a new session (docs/ami.md,
"Transfers"): they hear one short prompt and wait in that queue at once; the welcome, the menu
and self-service were behind them already. Whatever the flow, how the call ended is settled
here: a caller who leaves while queued, or a call we hand back, is told to the ACD once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from context.models import Outcome
from ivr.errors import CallHandedBack, ChannelHungUp
from ivr.flow.default import default_flow
from ivr.flow.engine import CallState, FlowEngine, FlowSettings, SpeechInput
from ivr.flow.hooks import DEFAULT_HOOKS, Hooks
from ivr.flow.models import Flow
from ivr.flow.queueing import (
    DIAL_OPTIONS,
    SOUND_CALLBACK_OFFER,
    SOUND_CALLBACK_OK,
    SOUND_NO_AGENTS,
    SOUND_TRANSFERRED,
)
from ivr.intent import IntentModel
from ivr.ports import Channel, InboundServices

__all__ = [
    "DIAL_OPTIONS",
    "SOUND_CALLBACK_OFFER",
    "SOUND_CALLBACK_OK",
    "SOUND_MENU",
    "SOUND_NO_AGENTS",
    "SOUND_TRANSFERRED",
    "SOUND_WELCOME",
    "FlowSettings",
    "InboundCall",
    "run_inbound",
]

log = logging.getLogger(__name__)

# The default flow's sounds (centralino/prompts.py has their texts).
SOUND_WELCOME = "centralino/welcome"
SOUND_MENU = "centralino/menu"

_DEFAULT_FLOW = default_flow()
_DEFAULT_SETTINGS = FlowSettings()


@dataclass(frozen=True, slots=True)
class InboundCall:
    uniqueid: str
    caller_id: str
    language: str | None = None  # the language agents must speak (None: not routed by it)
    queue: str | None = None
    # The channel's own language (agi_language): numbers and dates are said in it until the
    # flow sets one.
    channel_language: str | None = None


async def run_inbound(
    call: InboundCall,
    channel: Channel,
    services: InboundServices,
    *,
    model: IntentModel,
    settings: FlowSettings = _DEFAULT_SETTINGS,
    monotonic: Callable[[], float],
    flow: Flow | None = None,
    flows: dict[str, Flow] | None = None,
    hooks: Hooks = DEFAULT_HOOKS,
    now: Callable[[], datetime] | None = None,
    speech: SpeechInput | None = None,
) -> Outcome:
    """Drive one inbound call through `flow` (the `default` flow if None); returns its outcome
    as the flow saw it (`services.finish` gets it too, and the contact's lifecycle has the last
    word). `flows`: the others a `flow` step may hand the call to."""
    flow = flow or _DEFAULT_FLOW
    state = CallState(
        caller_id=call.caller_id,
        language=call.language or call.channel_language,
        routing_language=call.language is not None,
        queue=call.queue,
    )
    engine = FlowEngine(
        channel=channel,
        services=services,
        model=model,
        settings=settings,
        monotonic=monotonic,
        now=now or (lambda: datetime.now(UTC)),
        hooks=hooks,
        flows=flows or {flow.name: flow},
        state=state,
        speech=speech,
    )
    handed_back = False
    try:
        await channel.answer()
        placed = await services.resume_transfer()
        if placed is None:
            await engine.run(flow)
        else:
            step = await engine.hold(placed, transferred=True)
            assert step is None  # a transferred caller has no survey to go on to
    except CallHandedBack:
        log.info("call handed back to the dialplan (shutting down)")
        handed_back = True
    except ChannelHungUp:
        log.info("caller hung up (%s)", state.outcome)
    except Exception:
        # Our own failure (a store down, a bug): the session hands the call back to the
        # dialplan (ERROR) and its fallback answers. The record must not blame the caller.
        handed_back = True
        raise
    finally:
        if handed_back and state.outcome in (Outcome.HANGUP_IN_IVR, Outcome.ABANDONED):
            state.outcome = Outcome.RETURNED
        queued = state.queued
        if queued is not None:
            # The channel left while queued, ringing or talking (a hangup or a transfer), or
            # we are handing it back: the queued call knows which, and that is how it ended.
            try:
                left = await asyncio.shield(queued.channel_left(handed_back=handed_back))
                state.outcome = Outcome(left)
            except Exception:  # the ACD's store is down: the call is still recorded
                log.exception("could not tell the ACD how the call left (%s)", state.outcome)
        await asyncio.shield(services.finish(state.outcome, agent_id=state.agent))
    return state.outcome
