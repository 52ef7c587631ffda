"""The `inbound` FastAGI script: every incoming call's flow, bound to its contact's services.

Also the AudioSocket call handler (live audio; speech recognition plugs in behind the
Recognizer port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Collection, Mapping

from acd.models import AgentDefinition
from acd.service import Router
from centralino.ami_watch import DialWatch, TransferWatch
from centralino.asterisk.agi_server import AgiCall
from centralino.asterisk.audiosocket_server import AudioSocketSession
from centralino.logs import bind_call
from centralino.web.desktop_ws import DesktopHub
from contact.inbound import InboundCallServices
from contact.ports import CallJournal
from contact.rules import IntentRoute, call_language
from context.fanout import PreAnswerFanout
from context.models import Outcome
from context.service import ContextService
from ivr.errors import CallHandedBack, ChannelHungUp
from ivr.flow.default import default_flow
from ivr.flow.library import FlowLibrary, UnknownFlow
from ivr.inbound import FlowSettings, InboundCall, run_inbound
from ivr.intent import IntentModel

log = logging.getLogger(__name__)

STATUS_DONE = "DONE"
# The session refused the call without routing it (as the FastAGI server says for an unknown
# script): anything but DONE sends the dialplan to its fallback queue.
STATUS_NOROUTE = "NOROUTE"


class InboundHandler:
    """The `inbound` FastAGI script: every incoming call's flow."""

    def __init__(
        self,
        *,
        fanout: PreAnswerFanout,
        context: ContextService,
        router: Router,
        hub: DesktopHub,
        agents: Mapping[str, AgentDefinition],
        owners: Mapping[str, str],
        model: IntentModel,
        flow: FlowSettings,
        outcomes: dict[str, int],
        dial_watch: DialWatch | None,
        transfer_watch: TransferWatch | None = None,
        routes: Mapping[str, IntentRoute],
        queues: Collection[str],
        journal: CallJournal | None = None,
        flows: Callable[[], FlowLibrary] | None = None,
    ) -> None:
        self.journal = journal
        # The flows in force at each call (a reload swaps them); the built-in default alone
        # when none are configured.
        only_default = FlowLibrary.of({"default": default_flow()})

        def default_only() -> FlowLibrary:
            return only_default

        self.flows: Callable[[], FlowLibrary] = flows or default_only
        self.routes = routes
        self.queues = queues
        self.spoken = frozenset(lang for a in agents.values() for lang in a.languages)
        self.dial_watch = dial_watch
        self.transfer_watch = transfer_watch
        self.fanout = fanout
        self.context = context
        self.router = router
        self.hub = hub
        self.agents = agents
        self.owners = owners
        self.model = model
        self.flow = flow
        self.outcomes = outcomes

    async def __call__(self, call: AgiCall) -> None:
        env = call.env
        # The channel running the inbound AGI is the call's first channel, so its uniqueid is
        # the call's linkedid: the fan-out starts now, before the first command is even sent.
        linkedid = env.uniqueid
        with bind_call(uniqueid=env.uniqueid, linkedid=linkedid):
            query = call.query
            queue = query.get("queue") or None
            if queue is not None and queue not in self.queues:
                # Before the fan-out, the answer and the ACD: nothing is started or recorded
                # for a call we cannot place, and the dialplan's fallback answers it.
                log.warning(
                    "refused: the AGI request names queue %.64r, which is not configured; "
                    "the dialplan's fallback takes the call",
                    queue,
                )
                with contextlib.suppress(ChannelHungUp, CallHandedBack):
                    await call.channel.set_variable("CENTRALINO_STATUS", STATUS_NOROUTE)
                return
            library = self.flows()
            try:
                flow = library.choose(
                    requested=query.get("flow") or None, dnid=env.dnid, extension=env.extension
                )
            except UnknownFlow:
                log.warning(
                    "refused: the AGI request names flow %.64r, which is not configured; "
                    "the dialplan's fallback takes the call",
                    query.get("flow"),
                )
                with contextlib.suppress(ChannelHungUp, CallHandedBack):
                    await call.channel.set_variable("CENTRALINO_STATUS", STATUS_NOROUTE)
                return
            handle = self.fanout.start(linkedid=linkedid, caller_id=env.callerid)
            services = InboundCallServices(
                uniqueid=env.uniqueid,
                linkedid=linkedid,
                caller_id=env.callerid if env.callerid != "unknown" else "",
                handle=handle,
                context=self.context,
                router=self.router,
                desk=self.hub,
                agents=self.agents,
                owners=self.owners,
                routes=self.routes,
                answers=self.dial_watch,
                transfers=self.transfer_watch,
                record_key=str(uuid.uuid4()),
                journal=self.journal,
            )
            outcome = await run_inbound(
                InboundCall(
                    uniqueid=env.uniqueid,
                    caller_id=services.caller_id,
                    language=call_language(query.get("lang"), env.language, spoken=self.spoken),
                    queue=queue,
                    channel_language=env.language or None,
                ),
                call.channel,
                services,
                model=self.model,
                settings=self.flow,
                monotonic=asyncio.get_running_loop().time,
                flow=flow,
                flows=dict(library.flows),
                now=self.context.clock.now,
            )
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            log.info("call ended: %s", outcome.value)
            if outcome is not Outcome.RETURNED and not call.channel.hung_up:
                # Handed back (shutdown), the session says SHUTDOWN itself; else we are done.
                with contextlib.suppress(ChannelHungUp, CallHandedBack):
                    await call.channel.set_variable("CENTRALINO_STATUS", STATUS_DONE)


async def audiosocket_call(session: AudioSocketSession) -> None:
    """Live audio arrives here (speech recognition plugs in behind the Recognizer port);
    for now frames are consumed with backpressure and counted."""
    with bind_call(audiosocket=str(session.uuid)):
        frames = 0
        async for _event in session:
            frames += 1
        log.info("audiosocket call ended after %d events", frames)
