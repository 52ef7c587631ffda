"""A simulated contact centre around a running Centralino: callers on FastAGI, agents' phones
answering `Dial`, agents' desktops acknowledging screen-pops, and the AMI events a real
Asterisk would raise meanwhile. The demo, the end-to-end tests and `centralino simulate` use it.

Time is real but scalable: every duration (a prompt, a ring, a conversation) is multiplied by
`time_scale`, so a test can run a whole call in a fraction of a second with the same sequence
of protocol messages a real call produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from centralino.simulator.agi_peer import AgiPeer, ChannelModel, environment_bytes
from centralino.simulator.ami_server import AmiServer, OriginateOutcome, OriginateRequest

log = logging.getLogger(__name__)

# How long prompts last when nothing says otherwise (seconds, before time_scale).
PROMPT_S = 1.2
_DIAL = re.compile(r"^EXEC\s+(?:\"?)Dial(?:\"?)\s+\"?([^,\"]+),?(\d*)", re.IGNORECASE)
_WAIT = re.compile(r"^WAIT FOR DIGIT\s+(-?\d+)", re.IGNORECASE)
_GET_DATA = re.compile(r"^GET DATA\s+\S+\s+(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AgentPhone:
    """How one simulated agent answers their phone."""

    answer_probability: float = 0.95
    ring_s: tuple[float, float] = (1.0, 4.0)
    talk_s: tuple[float, float] = (6.0, 30.0)


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


@dataclass(slots=True)
class CallResult:
    caller: Caller
    uniqueid: str
    commands: list[str]
    agent: str | None = None
    answered: bool = False
    abandoned: bool = False
    setup_s: float = 0.0


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
    ) -> None:
        self.agi_host = agi_host
        self.agi_port = agi_port
        self.rng = rng
        self.phones = dict(phones or {})
        self.ami = ami
        self.time_scale = time_scale
        self.script = script
        self._ids = itertools.count(1)
        self._epoch = int(time.time())
        self.results: list[CallResult] = []
        self.callbacks_answered = 0
        self._tasks: set[asyncio.Task[CallResult]] = set()
        self._side_tasks: set[asyncio.Task[None]] = set()

    def _uniqueid(self) -> str:
        return f"{self._epoch}.{next(self._ids)}"

    async def call(self, caller: Caller) -> CallResult:
        """Place one call and play it to the end."""
        uniqueid = self._uniqueid()
        state = _CallState(caller=caller, uniqueid=uniqueid, menu_keys=caller.menu_keys)
        query = "&".join(
            f"{k}={v}" for k, v in (("queue", caller.queue), ("lang", caller.language)) if v
        )
        script = self.script + (f"?{query}" if query else "")
        env = environment_bytes(
            uniqueid=uniqueid,
            channel=f"PJSIP/trunk-{uniqueid.replace('.', '')}",
            network_script=script,
            request=f"agi://{self.agi_host}:{self.agi_port}/{script}",
            callerid=caller.number,
            calleridname=caller.name or "unknown",
            context="centralino-inbound",
            extension="+390200000000",
        )
        model = ChannelModel(callerid=caller.number, calleridname=caller.name or "unknown")

        async def on_command(line: str, model: ChannelModel) -> None:
            await self._perform(line, model, state)

        peer = AgiPeer(
            host=self.agi_host,
            port=self.agi_port,
            environment=env,
            model=model,
            on_command=on_command,
            read_timeout_s=max(30.0, 120 * self.time_scale),
        )
        started = time.monotonic()
        await peer.run()
        result = CallResult(
            caller=caller,
            uniqueid=uniqueid,
            commands=peer.commands,
            agent=state.agent,
            answered=state.answered,
            abandoned=state.abandoned,
            setup_s=time.monotonic() - started,
        )
        self.results.append(result)
        return result

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
        """An agent's phone rings; they answer (or not), talk, and the conversation ends."""
        state.dialled = True
        agent = endpoint.rsplit("/", 1)[-1]
        phone = self.phones.get(agent, AgentPhone())
        state.agent = agent
        dest = f"{endpoint}-{state.uniqueid.replace('.', '')}"
        self._emit("DialBegin", Uniqueid=state.uniqueid, DestChannel=dest, DialString=agent)
        ring = float(self.rng.uniform(*phone.ring_s))
        answers = bool(self.rng.random() < phone.answer_probability) and ring < timeout_s
        if not answers:
            await self._sleep(float(timeout_s))
            self._emit("DialEnd", Uniqueid=state.uniqueid, DestChannel=dest, DialStatus="NOANSWER")
            model.variables.update(
                DIALSTATUS="NOANSWER", ANSWEREDTIME="", DIALEDTIME=str(timeout_s)
            )
            state.dialled = False
            state.queued_since = time.monotonic()  # back in the queue: patience restarts
            return
        await self._sleep(ring)
        self._emit("DialEnd", Uniqueid=state.uniqueid, DestChannel=dest, DialStatus="ANSWER")
        state.answered = True
        talk = float(self.rng.uniform(*phone.talk_s))
        await self._sleep(talk)
        self._emit("Hangup", Uniqueid=state.uniqueid, Channel=dest, Cause="16")
        model.variables.update(
            DIALSTATUS="ANSWER",
            ANSWEREDTIME=str(round(talk * self.time_scale)),
            DIALEDTIME=str(round((ring + talk) * self.time_scale)),
        )

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
    """An agent's browser tab: connected to `/ws/agent/{id}`, acknowledging every pop."""

    def __init__(
        self, *, base_url: str, agent_id: str, session: aiohttp.ClientSession, ack_delay_s: float
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/ws/agent/{agent_id}"
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
                async with self.session.ws_connect(self.url, heartbeat=20) as ws:
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


def demo_callers(
    rng: np.random.Generator, numbers: Sequence[str], *, unknown_share: float = 0.15
) -> Caller:
    """One caller drawn like the demo's traffic: mostly known customers, some strangers, some
    withheld numbers; most press a menu key, a few ask for a callback."""
    draw = rng.random()
    if draw < unknown_share * 0.3:
        number = "unknown"
    elif draw < unknown_share:
        number = f"+3933{int(rng.integers(10_000_000, 99_999_999))}"
    else:
        number = str(rng.choice(list(numbers)))
    key = str(rng.choice(["1", "2", "3", "4", "", "0"], p=[0.3, 0.25, 0.25, 0.1, 0.05, 0.05]))
    return Caller(
        number=number,
        menu_keys=key,
        patience_s=float(rng.exponential(90.0)) + 15.0,
        star_for_callback=bool(rng.random() < 0.05),
    )
