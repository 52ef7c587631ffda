"""A simulated contact centre around a running Centralino: callers on FastAGI, agents' phones
answering `Dial`, agents' desktops acknowledging screen-pops, and the AMI events a real
Asterisk would raise meanwhile. The demo, the end-to-end tests and `centralino simulate` use it.

Time is real but scalable: every duration (a prompt, a ring, a conversation) is multiplied by
`time_scale`, so a test can run a whole call in a fraction of a second with the same sequence
of protocol messages a real call produces.

A Dial plays as a real Asterisk 22 plays it (`tests/simulator/fixtures/real_dial.txt`): the AMI
events in their order (DialBegin, DialState RINGING, DialEnd at the answer, BridgeCreate and
BridgeEnter x2, then the hanging-up side's HangupRequest, BridgeLeave x2, BridgeDestroy and the
agent's Hangup); `EXEC Dial` answers `result=-1` once the agent answered and `0` otherwise; the
caller's channel stays up when the agent hangs up, and gets `HANGUP` when the caller does;
ANSWEREDTIME and DIALEDTIME are the caller channel's up time and age (IVR and queue included),
so talk time is only on AMI. The caller's own `Hangup` event comes when the FastAGI server closes
the session, as on a real server.

Transfers: a caller with `transfer_to` is blind-transferred there by the agent who answers, half
way through the conversation, as a phone's SIP REFER does it: AMI `BlindTransfer`, the agent's
channel hangs up, and the caller's FastAGI session sees `Dial` fail and `HANGUP` (Asterisk moves
the channel on with an async goto). A target in `transfer_context` is a dialplan extension that
re-enters FastAGI with `?queue=<exten>` (docs/ami.md), so the same channel comes back to Centralino
in a new session; any other target takes the caller away from us.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import numpy as np

from centralino import settings
from centralino.simulator.agi_peer import AgiPeer, ChannelModel, DialOutcome, environment_bytes
from centralino.simulator.ami_server import (
    AmiServer,
    OriginateOutcome,
    OriginateRequest,
    SimBridge,
    SimChannel,
)

log = logging.getLogger(__name__)

# How long prompts last when nothing says otherwise (seconds, before time_scale).
PROMPT_S = 1.2
_DIAL = re.compile(r"^EXEC\s+(?:\"?)Dial(?:\"?)\s+\"?([^,\"]+),?(\d*)", re.IGNORECASE)
_WAIT = re.compile(r"^WAIT FOR DIGIT\s+(-?\d+)", re.IGNORECASE)
_GET_DATA = re.compile(r"^GET DATA\s+\S+\s+(\d+)", re.IGNORECASE)
# The dialplan context whose extensions are Centralino's queues (one name: the settings').
TRANSFER_CONTEXT = settings.TRANSFER_CONTEXT
# Where inbound calls run their AGI: [centralino-inbound], the DID, the AGI() priority.
INBOUND_CONTEXT = "centralino-inbound"
INBOUND_DID = "+390200000000"
INBOUND_AGI_PRIORITY = 5
# Cause-txt of the Hangup causes a Dial leaves behind (ast_cause2str).
_CAUSE_TXT = {0: "Unknown", 3: "No route to destination", 16: "Normal Clearing"}


@dataclass(frozen=True, slots=True)
class AgentPhone:
    """How one simulated agent answers their phone. `registered=False`: the phone is not
    registered, Dial finds no contact (CHANUNAVAIL at once, no Dial events on AMI);
    `busy_probability`: the phone rejects the call as busy after `busy_after_s` of ringing."""

    answer_probability: float = 0.95
    ring_s: tuple[float, float] = (1.0, 4.0)
    talk_s: tuple[float, float] = (6.0, 30.0)
    registered: bool = True
    busy_probability: float = 0.0
    busy_after_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """One simulated caller: who they are and how they behave."""

    number: str  # what Asterisk puts in agi_callerid ("unknown" when withheld)
    name: str = ""
    menu_keys: str = ""  # pressed at the menu ("" = wait for the timeout)
    patience_s: float = 120.0  # hangs up after waiting this long in the queue
    star_for_callback: bool = False
    queue: str | None = None  # ?queue= in the AGI URL
    language: str | None = None
    transfer_to: str | None = None  # "exten@context": the answering agent transfers them there
    hangs_up_first: bool = False  # the caller, not the agent, ends the conversation
    dnid: str = "unknown"  # the number dialled (agi_dnid), which picks the call's flow


@dataclass(slots=True)
class CallResult:
    caller: Caller
    uniqueid: str
    commands: list[str]
    agent: str | None = None
    answered: bool = False
    abandoned: bool = False
    setup_s: float = 0.0
    transferred_by: str | None = None  # the agent who transferred the caller
    transferred_to: str | None = None  # where ("exten@context")
    sessions: int = 1  # FastAGI sessions the call ran (2 when a transfer brought it back)
    # Sessions in which the server read the environment and sent at least one command: the
    # call was handed to it (a connection refused or cut before that never reached the app).
    handed: int = 0
    refused: int = 0  # FastAGI connections refused (every endpoint tried, per session)
    closed_by: str = ""  # how the last session ended, as the peer saw it (AgiPeer.closed_by)


@dataclass(frozen=True, slots=True)
class DialRecord:
    """One agent's phone rung for one caller: from the Dial to the end of ringing or talking
    (monotonic seconds). Two overlapping records of one agent are a double assignment."""

    agent: str
    uniqueid: str
    started: float
    ended: float
    answered: bool


@dataclass(slots=True)
class _CallState:
    caller: Caller
    uniqueid: str
    menu_keys: str = ""
    queued_since: float | None = None
    dialled: bool = False
    agent: str | None = None
    answered: bool = False
    abandoned: bool = False
    transferred_to: str | None = None
    # Where the channel runs AGI() in this session (its snapshot's Context/Exten/Priority).
    context: str = INBOUND_CONTEXT
    exten: str = INBOUND_DID
    priority: int = INBOUND_AGI_PRIORITY
    # The caller channel's clock (monotonic): created at the call's start, answered at the first
    # ANSWER (or by Dial when the agent answers). ANSWEREDTIME/DIALEDTIME come from these.
    created_at: float = 0.0
    answered_at: float | None = None
    # What Dial last left in HANGUPCAUSE: a non-zero one is the caller's Hangup cause in the end
    # (3 after an unregistered phone), otherwise the dialplan's Hangup() says 16.
    hangupcause: int = 0
    bridge_id: str = ""  # the bridge the caller's channel is in (CoreShowChannels' BridgeId)
    ami_created: float | None = None  # when the caller's channel appeared, on the AMI clock
    answered_in_session: bool = False


class CallSimulator:
    """Places calls into a FastAGI server and plays everything on the Asterisk side."""

    def __init__(
        self,
        *,
        agi_host: str,
        agi_port: int,
        rng: np.random.Generator,
        phones: Mapping[str, AgentPhone] | None = None,
        ami: AmiServer | None = None,
        time_scale: float = 1.0,
        script: str = "inbound",
        transfer_context: str = TRANSFER_CONTEXT,
        transfer_event_lag_s: float = 0.0,
        endpoints: Sequence[tuple[str, int]] = (),
        track_channels: bool = True,
    ) -> None:
        self.agi_host = agi_host
        self.agi_port = agi_port
        # Several FastAGI servers, as Asterisk's hagi:// finds them in DNS SRV: each call starts
        # at the next one (equal weights) and moves on to the following one when refused.
        self.endpoints: list[tuple[str, int]] = list(endpoints)
        self._next_endpoint = itertools.count()
        # The callers' and agents' channels appear in the AMI server's CoreShowChannels while
        # they are up, as on a real Asterisk (the reconciling sweep trusts that list).
        self.track_channels = track_channels
        self.dials: list[DialRecord] = []
        self.rng = rng
        self.phones = dict(phones or {})
        self.ami = ami
        self.time_scale = time_scale
        self.script = script
        self.transfer_context = transfer_context
        # Seconds (real, not scaled) by which AMI's BlindTransfer trails the FastAGI HANGUP; 0
        # sends it first, as Asterisk usually does. Either order must give the same outcome.
        self.transfer_event_lag_s = transfer_event_lag_s
        self.transfers = 0
        self._ids = itertools.count(1)
        self._epoch = int(time.time())
        self.results: list[CallResult] = []
        self.callbacks_answered = 0
        self._tasks: set[asyncio.Task[CallResult]] = set()
        self._side_tasks: set[asyncio.Task[None]] = set()

    def _uniqueid(self) -> str:
        return f"{self._epoch}.{next(self._ids)}"

    async def call(self, caller: Caller) -> CallResult:
        """Place one call and play it to the end (through a transfer back to us, if any)."""
        uniqueid = self._uniqueid()
        started = time.monotonic()
        state = _CallState(
            caller=caller, uniqueid=uniqueid, menu_keys=caller.menu_keys, created_at=started
        )
        result = CallResult(caller=caller, uniqueid=uniqueid, commands=[])
        self._track_caller(state)
        try:
            result.commands = await self._session(
                state, INBOUND_CONTEXT, INBOUND_DID, INBOUND_AGI_PRIORITY, result
            )
        except BaseException:
            self._untrack_caller(state)
            raise
        result.agent, result.answered, result.abandoned = (
            state.agent,
            state.answered,
            state.abandoned,
        )
        result.setup_s = time.monotonic() - started
        target = state.transferred_to
        if target is not None:
            result.transferred_by, result.transferred_to = state.agent, target
            exten, _, context = target.partition("@")
            if context == self.transfer_context:
                # The dialplan there re-enters FastAGI (AGI(.../inbound?queue=${EXTEN})) with
                # the same channel; the caller goes on as before, minus the first menu's keys.
                again = replace(caller, queue=exten, menu_keys="", transfer_to=None)
                state = _CallState(
                    caller=again,
                    uniqueid=uniqueid,
                    created_at=state.created_at,
                    answered_at=state.answered_at,
                    hangupcause=state.hangupcause,
                    ami_created=state.ami_created,
                )
                try:
                    result.commands += await self._session(state, context, exten, 1, result)
                except BaseException:
                    self._untrack_caller(state)
                    raise
                result.sessions += 1
                result.agent, result.abandoned = state.agent, state.abandoned
                result.answered = result.answered or state.answered
                target = None
        self._untrack_caller(state)
        if target is None and self.ami is not None:
            # The caller's channel ends when its last FastAGI session is closed (AGI() returns,
            # the dialplan hangs up); a channel transferred elsewhere lives on out of our sight.
            cause = state.hangupcause or 16
            self.ami.hangup_event(
                self._caller_snapshot(state), cause=cause, cause_txt=_CAUSE_TXT.get(cause, "")
            )
        self.results.append(result)
        return result

    async def _session(
        self,
        state: _CallState,
        context: str,
        extension: str,
        priority: int,
        result: CallResult | None = None,
    ) -> list[str]:
        """One FastAGI session of the call's channel, from AGI() to the server closing it; a
        refused connection moves on to the next endpoint, as hagi:// does (all refused: the
        AGI fails and the dialplan goes on without us, as AGISTATUS=FAILURE)."""
        start = next(self._next_endpoint)
        endpoints = self.endpoints or [(self.agi_host, self.agi_port)]
        for attempt in range(len(endpoints)):
            endpoint = endpoints[(start + attempt) % len(endpoints)]
            try:
                peer = await self._run_session(
                    state, context, extension, priority, endpoint=endpoint
                )
            except ConnectionRefusedError:
                if result is not None:
                    result.refused += 1
                continue
            if result is not None:
                result.handed += bool(peer.commands)
                result.closed_by = peer.closed_by or ""
            return peer.commands
        if result is not None:
            result.closed_by = "refused"
        return []

    async def _run_session(
        self,
        state: _CallState,
        context: str,
        extension: str,
        priority: int,
        *,
        endpoint: tuple[str, int],
    ) -> AgiPeer:
        host, port = endpoint
        caller, uniqueid = state.caller, state.uniqueid
        state.context, state.exten, state.priority = context, extension, priority
        query = "&".join(
            f"{k}={v}" for k, v in (("queue", caller.queue), ("lang", caller.language)) if v
        )
        script = self.script + (f"?{query}" if query else "")
        env = environment_bytes(
            uniqueid=uniqueid,
            channel=self._caller_channel(uniqueid),
            network_script=script,
            request=f"agi://{host}:{port}/{script}",
            callerid=caller.number,
            calleridname=caller.name or "unknown",
            context=context,
            extension=extension,
            priority=priority,
            dnid=caller.dnid,
        )
        model = ChannelModel(callerid=caller.number, calleridname=caller.name or "unknown")

        async def on_command(line: str, model: ChannelModel) -> None:
            await self._perform(line, model, state)

        peer = AgiPeer(
            host=host,
            port=port,
            environment=env,
            model=model,
            on_command=on_command,
            read_timeout_s=max(30.0, 120 * self.time_scale),
        )
        await peer.run()
        return peer

    def _track_caller(self, state: _CallState) -> None:
        """The caller's channel as CoreShowChannels lists it now (up, maybe bridged)."""
        ami = self.ami
        if ami is None or not self.track_channels:
            return
        if state.ami_created is None:
            state.ami_created = ami._clock()
        snapshot = self._caller_snapshot(state)
        snapshot.bridge_id = state.bridge_id
        snapshot.created_at = state.ami_created
        snapshot.application = "AGI"
        ami.channels[snapshot.name] = snapshot

    def _untrack_caller(self, state: _CallState) -> None:
        if self.ami is not None and self.track_channels:
            self.ami.channels.pop(self._caller_channel(state.uniqueid), None)

    def _track_agent(self, state: _CallState, dest: SimChannel, bridge_id: str) -> None:
        if self.ami is None or not self.track_channels:
            return
        dest.bridge_id = bridge_id
        dest.created_at = self.ami._clock()
        self.ami.channels[dest.name] = dest
        state.bridge_id = bridge_id
        self._track_caller(state)

    def _untrack_agent(self, state: _CallState, dest: SimChannel) -> None:
        if self.ami is None or not self.track_channels:
            return
        self.ami.channels.pop(dest.name, None)
        if self._caller_channel(state.uniqueid) in self.ami.channels:
            state.bridge_id = ""
            self._track_caller(state)

    def _dialled(self, agent: str, state: _CallState, started: float, *, answered: bool) -> None:
        self.dials.append(
            DialRecord(
                agent=agent,
                uniqueid=state.uniqueid,
                started=started,
                ended=time.monotonic(),
                answered=answered,
            )
        )

    @staticmethod
    def _caller_channel(uniqueid: str) -> str:
        return f"PJSIP/trunk-{uniqueid.replace('.', '')}"

    def _caller_snapshot(self, state: _CallState, connected: str | None = None) -> SimChannel:
        """The caller's channel as AMI shows it now."""
        caller = state.caller
        return SimChannel(
            name=self._caller_channel(state.uniqueid),
            uniqueid=state.uniqueid,
            linkedid=state.uniqueid,
            state=6 if state.answered_at is not None else 4,
            caller_id_num=caller.number,
            caller_id_name=caller.name or "<unknown>",
            connected_line_num=connected or "<unknown>",
            connected_line_name=connected or "<unknown>",
            context=state.context,
            exten=state.exten,
            priority=state.priority,
        )

    def start_call(self, caller: Caller) -> asyncio.Task[CallResult]:
        task = asyncio.create_task(self.call(caller), name=f"sim-call-{caller.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        tasks: list[asyncio.Task[Any]] = [*self._side_tasks, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds * self.time_scale)

    async def _perform(self, line: str, model: ChannelModel, state: _CallState) -> None:
        """Make the command take its time and decide what the caller and agents do."""
        upper = line.upper()
        now = time.monotonic()
        if upper.startswith("ANSWER") and state.answered_at is None:
            state.answered_at = now
        if upper.startswith(("SET MUSIC ON", "EXEC MUSICONHOLD")) and state.queued_since is None:
            state.queued_since = now
        if (
            state.queued_since is not None
            and not state.dialled
            and (now - state.queued_since) / max(self.time_scale, 1e-9) > state.caller.patience_s
            and model.alive
        ):
            state.abandoned = True
            model.hangup_during = model.commands_seen  # hangs up during this command
            if self.ami is not None:
                self.ami.channel_event(
                    "HangupRequest", self._caller_snapshot(state), ("Cause", "16")
                )
            return
        if upper.startswith("STREAM FILE"):
            await self._sleep(PROMPT_S)
        elif upper.startswith("GET DATA"):
            keys, state.menu_keys = state.menu_keys, ""  # the caller answers the first menu only
            if keys:
                model.keys[model.commands_seen] = keys
                await self._sleep(PROMPT_S + 0.8)
            else:
                match = _GET_DATA.match(line)
                await self._sleep(PROMPT_S + (int(match[1]) / 1000 if match else 2.0))
        elif upper.startswith("WAIT FOR DIGIT"):
            match = _WAIT.match(line)
            waited = int(match[1]) / 1000 if match else 1.0
            if state.caller.star_for_callback and state.queued_since is not None:
                model.keys[model.commands_seen] = "*"
                await self._sleep(0.2)
            else:
                await self._sleep(max(0.0, waited))
        elif upper.startswith(("SAY NUMBER", "SAY DIGITS")):
            await self._sleep(0.6)
        else:
            dial = _DIAL.match(line)
            if dial is not None:
                await self._dial(dial[1], int(dial[2] or 20), model, state)

    async def _dial(
        self, endpoint: str, timeout_s: int, model: ChannelModel, state: _CallState
    ) -> None:
        """An agent's phone rings; they answer (or not), talk, and the conversation ends: the
        AMI events and the Dial outcome of real_dial.txt cases (a), (b) and (c)."""
        state.dialled = True
        index = model.commands_seen
        agent = endpoint.rsplit("/", 1)[-1]
        dial_started = time.monotonic()
        phone = self.phones.get(agent, AgentPhone())
        state.agent = agent
        caller = self._caller_snapshot(state)
        dest = SimChannel(
            name=f"{endpoint}-{state.uniqueid.replace('.', '')}",
            uniqueid=self._uniqueid(),
            linkedid=state.uniqueid,
            caller_id_num=caller.caller_id_num,
            caller_id_name=caller.caller_id_name,
            connected_line_num=caller.caller_id_num,
            connected_line_name=caller.caller_id_name,
            context="centralino-agents",
            exten="",
        )
        ami = self.ami
        if not phone.registered:  # real_dial.txt (e-pjsip): no channel, no Dial events
            model.dials[index] = DialOutcome("CHANUNAVAIL")
            state.dialled, state.hangupcause = False, 3
            state.queued_since = time.monotonic()
            return
        if ami is not None:
            ami.channel_event("Newchannel", dest)
            ami.dial_event("DialBegin", caller, dest, dial_string=agent)
            dest.state = 5
            ami.channel_event("Newstate", dest)
            ami.dial_event("DialState", caller, dest, status="RINGING")
        if phone.busy_probability > 0 and self.rng.random() < phone.busy_probability:
            await self._sleep(phone.busy_after_s)  # real_dial.txt (d-busy)
            if ami is not None:
                ami.dial_event("DialEnd", caller, dest, status="BUSY")
                ami.hangup_event(dest, cause=0, cause_txt="Unknown")
            model.dials[index] = DialOutcome("BUSY")
            self._dialled(agent, state, dial_started, answered=False)
            state.dialled, state.hangupcause = False, 0
            state.queued_since = time.monotonic()
            return
        ring = float(self.rng.uniform(*phone.ring_s))
        answers = bool(self.rng.random() < phone.answer_probability) and ring < timeout_s
        if not answers:
            await self._sleep(float(timeout_s))
            if ami is not None:
                ami.dial_event("DialEnd", caller, dest, status="NOANSWER")
                ami.hangup_event(dest, cause=0, cause_txt="Unknown")
            model.dials[index] = DialOutcome("NOANSWER")
            self._dialled(agent, state, dial_started, answered=False)
            state.dialled, state.hangupcause = False, 0
            state.queued_since = time.monotonic()  # back in the queue: patience restarts
            return
        await self._sleep(ring)
        if state.answered_at is None:
            state.answered_at = time.monotonic()  # Dial answers the caller with the agent
        caller = self._caller_snapshot(state, connected=agent)
        bridge = SimBridge(
            uniqueid=str(uuid.UUID(int=int(self.rng.integers(0, 2**63)))),
            creator="<unknown>",
            name="<unknown>",
        )
        if ami is not None:
            dest.state = 6
            ami.channel_event("Newstate", dest)
            ami.dial_event("DialEnd", caller, dest, status="ANSWER")
            bridge.num_channels = 0
            ami.bridge_event("BridgeCreate", bridge)
            for channel in (dest, caller):
                bridge.num_channels += 1
                ami.bridge_event("BridgeEnter", bridge, channel)
        self._track_agent(state, dest, bridge.uniqueid)
        state.answered, state.hangupcause = True, 16
        state.answered_in_session = True
        talk = float(self.rng.uniform(*phone.talk_s))
        target = state.caller.transfer_to
        if target is not None and state.transferred_to is None:
            await self._sleep(talk / 2)
            self._blind_transfer(state, dest, caller, bridge, target)
            self._untrack_agent(state, dest)
            self._dialled(agent, state, dial_started, answered=True)
            # Asterisk's async goto ends Dial and moves the channel on: HANGUP right after.
            model.dials[index] = self._answered(state, dest, caller_leaves=True)
            return
        await self._sleep(talk)
        caller_leaves = state.caller.hangs_up_first
        if ami is not None:
            first, second = (caller, dest) if caller_leaves else (dest, caller)
            ami.channel_event("HangupRequest", first, ("Cause", "16"))
            for channel in (first, second):
                bridge.num_channels -= 1
                ami.bridge_event("BridgeLeave", bridge, channel)
            ami.bridge_event("BridgeDestroy", bridge)
            ami.hangup_event(dest)
        self._untrack_agent(state, dest)
        self._dialled(agent, state, dial_started, answered=True)
        model.dials[index] = self._answered(state, dest, caller_leaves=caller_leaves)

    @staticmethod
    def _answered(state: _CallState, dest: SimChannel, *, caller_leaves: bool) -> DialOutcome:
        """An answered Dial's outcome: ANSWEREDTIME/DIALEDTIME are the caller channel's up time
        and age now, as Asterisk reports them, not the conversation's length."""
        now = time.monotonic()
        answered_at = state.answered_at if state.answered_at is not None else now
        return DialOutcome(
            "ANSWER",
            caller_leaves=caller_leaves,
            up_ms=int((now - answered_at) * 1000),
            age_ms=int((now - state.created_at) * 1000),
            peer=dest.name,
        )

    def _blind_transfer(
        self,
        state: _CallState,
        transferer: SimChannel,
        transferee: SimChannel,
        bridge: SimBridge,
        target: str,
    ) -> None:
        """The agent's phone sends a SIP REFER to `target`: AMI reports it (now, or
        `transfer_event_lag_s` after the FastAGI session saw the channel go), then the agent's
        channel hangs up."""
        state.transferred_to = target
        self.transfers += 1
        if self.ami is None:
            return
        ami = self.ami
        exten, _, context = target.partition("@")

        def report() -> None:
            ami.blind_transfer(
                transferer=transferer,
                transferee=transferee,
                bridge=bridge,
                context=context,
                extension=exten,
            )
            ami.emit_packet(
                [
                    ("Event", "Hangup"),
                    ("Privilege", "call,all"),
                    *transferer.headers(),
                    ("Cause", "16"),
                    ("Cause-txt", "Normal Clearing"),
                ]
            )

        if self.transfer_event_lag_s <= 0:
            report()
            return

        async def later() -> None:
            await asyncio.sleep(self.transfer_event_lag_s)
            report()

        task = asyncio.create_task(later())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def originate(self, request: OriginateRequest) -> OriginateOutcome:
        """What a callback's AMI Originate does: the agent's phone rings and is answered (or
        not); once answered the conversation runs and the agent's channel hangs up."""
        agent = request.channel.rsplit("/", 1)[-1]
        phone = self.phones.get(agent, AgentPhone())
        ring = float(self.rng.uniform(*phone.ring_s))
        await self._sleep(ring)
        if not bool(self.rng.random() < phone.answer_probability):
            return OriginateOutcome(answered=False, reason=3)  # no answer
        self.callbacks_answered += 1
        channel = request.created[0].name
        task = asyncio.create_task(self._end_callback(channel, phone))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
        return OriginateOutcome(answered=True, reason=4)

    async def _end_callback(self, channel: str, phone: AgentPhone) -> None:
        await self._sleep(float(self.rng.uniform(*phone.talk_s)))
        if self.ami is not None and channel in self.ami.channels:
            self.ami.hangup_channel(channel)

    def _emit(self, event: str, **headers: str) -> None:
        if self.ami is not None:
            self.ami.emit(event, **headers)


class SimulatedDesktop:
    """An agent's browser tab: connected to `/ws/agent/{id}`, acknowledging every pop.
    `token`: the agent account's API token, sent as `Authorization: Bearer`."""

    def __init__(
        self,
        *,
        base_url: str,
        agent_id: str,
        session: aiohttp.ClientSession,
        ack_delay_s: float,
        token: str | None = None,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/ws/agent/{agent_id}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.agent_id = agent_id
        self.session = session
        self.ack_delay_s = ack_delay_s
        self.pops: list[dict[str, object]] = []
        self.updates = 0
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"desktop-{self.agent_id}")

    async def _run(self) -> None:
        while True:
            try:
                async with self.session.ws_connect(
                    self.url, heartbeat=20, headers=self.headers
                ) as ws:
                    self.connected.set()
                    async for msg in ws:
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            break
                        message = json.loads(msg.data)
                        if message.get("type") == "screen_pop":
                            self.pops.append(message["payload"])
                            await asyncio.sleep(self.ack_delay_s)
                            await ws.send_str(
                                json.dumps({"type": "ack", "pop_id": message["pop_id"]})
                            )
                        elif message.get("type") == "pop_update":
                            self.updates += 1
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError) as exc:
                log.debug("desktop %s reconnecting: %s", self.agent_id, exc)
            self.connected.clear()
            await asyncio.sleep(0.5)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def poisson_arrivals(rng: np.random.Generator, rate_per_s: float, duration_s: float) -> list[float]:
    """Arrival offsets (seconds) of a Poisson stream."""
    if rate_per_s <= 0:
        return []
    count = int(rng.poisson(rate_per_s * duration_s))
    return sorted(float(t) for t in rng.uniform(0.0, duration_s, size=count))


# Where the demo's menu keys lead (ivr.intent.MENU through contact.rules.DEFAULT_ROUTES): a
# transferred caller goes to one of the other queues.
_KEY_QUEUES: Mapping[str, str] = {
    "1": "billing",
    "2": "support",
    "3": "support",
    "4": "sales",
    "5": "sales",
    "6": "billing",
}
_DEMO_QUEUES = ("billing", "support", "sales")


def demo_callers(
    rng: np.random.Generator,
    numbers: Sequence[str],
    *,
    unknown_share: float = 0.15,
    transfer_share: float = 0.08,
) -> Caller:
    """One caller drawn like the demo's traffic: mostly known customers, some strangers, some
    withheld numbers; most press a menu key, a few ask for a callback, and a few reach the
    wrong department, so their agent blind-transfers them to another queue."""
    draw = rng.random()
    if draw < unknown_share * 0.3:
        number = "unknown"
    elif draw < unknown_share:
        number = f"+3933{int(rng.integers(10_000_000, 99_999_999))}"
    else:
        number = str(rng.choice(list(numbers)))
    key = str(rng.choice(["1", "2", "3", "4", "", "0"], p=[0.3, 0.25, 0.25, 0.1, 0.05, 0.05]))
    transfer_to = None
    if rng.random() < transfer_share:
        others = [q for q in _DEMO_QUEUES if q != _KEY_QUEUES.get(key, "support")]
        transfer_to = f"{rng.choice(others)}@{TRANSFER_CONTEXT}"
    return Caller(
        number=number,
        menu_keys=key,
        patience_s=float(rng.exponential(90.0)) + 15.0,
        star_for_callback=bool(rng.random() < 0.05),
        transfer_to=transfer_to,
    )


async def open_desktops(
    stack: contextlib.AsyncExitStack,
    *,
    base_url: str,
    agent_ids: Sequence[str],
    session: aiohttp.ClientSession,
    ack_delay_s: float,
    connect_timeout_s: float = 10.0,
    tokens: Mapping[str, str] | None = None,
) -> dict[str, SimulatedDesktop]:
    """One simulated desktop per agent, connected (closed by `stack` on exit); `tokens`: each
    agent's API token, for a server that requires a login."""
    desktops = {
        agent_id: SimulatedDesktop(
            base_url=base_url,
            agent_id=agent_id,
            session=session,
            ack_delay_s=ack_delay_s,
            token=(tokens or {}).get(agent_id),
        )
        for agent_id in agent_ids
    }
    for desktop in desktops.values():
        desktop.start()
        stack.push_async_callback(desktop.aclose)
    for desktop in desktops.values():
        async with asyncio.timeout(connect_timeout_s):
            await desktop.connected.wait()
    return desktops
