"""Driving a real Asterisk over AMI with the project's own client: callers, key presses, the
agents' phones, and a TCP proxy to cut the app's AMI link on demand.

A call is an AMI `Originate` of `Local/<id>@test-caller` into `<DID>@test-inbound` (contexts the
harness appends to the project's dialplan). The `;1` half is the caller's network side: it sets
the language and caller id and enters `[centralino-inbound]`; the `;2` half is the caller, who
answers, may say something (Playback) and hangs up after `patience_s` or when told. Both halves
get uniqueids we choose (`ChannelId`/`OtherChannelId`), so the `;1` uniqueid is what Centralino
sees as `agi_uniqueid` (its linkedid and queue item id).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from centralino.asterisk.ami import AmiEvent
from centralino.asterisk.ami_client import AmiClient
from tests.helpers import eventually

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SeenEvent:
    event: AmiEvent
    received_at: float  # time.time() when our reader got it

    @property
    def timestamp(self) -> float:
        """Asterisk's own `Timestamp:` (manager.conf timestampevents), else our arrival time."""
        value = self.event.get("Timestamp")
        return float(value) if value else self.received_at


@dataclass(frozen=True, slots=True)
class PlacedCall:
    call_id: str
    did: str
    uniqueid: str  # the ;1 half: Centralino's agi_uniqueid
    caller_uniqueid: str  # the ;2 half: the caller
    caller_channel: str  # e.g. Local/<call_id>@test-caller-00000012;2


@dataclass(slots=True)
class CallDriver:
    """Places calls and records every AMI event Asterisk sends to the test user."""

    ami: AmiClient
    seen: list[SeenEvent] = field(default_factory=list)
    _unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.ami.subscribe("*", self._record)

    def _record(self, event: AmiEvent) -> None:
        self.seen.append(SeenEvent(event, time.time()))

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    # ---- looking at what happened ---------------------------------------------------------------

    def events(self, name: str, **headers: str) -> list[SeenEvent]:
        """Events called `name` whose headers hold these values (exact match)."""
        return [
            s
            for s in self.seen
            if s.event.name == name and all(s.event.get(k) == v for k, v in headers.items())
        ]

    def where(self, name: str, test: Callable[[AmiEvent], bool]) -> list[SeenEvent]:
        return [s for s in self.seen if s.event.name == name and test(s.event)]

    async def wait_for(
        self, name: str, test: Callable[[AmiEvent], bool], *, timeout: float = 15.0
    ) -> SeenEvent:
        def found() -> SeenEvent:
            matches = self.where(name, test)
            assert matches, f"no {name} event yet matching {test}"
            return matches[0]

        return await eventually(found, timeout=timeout, interval=0.02)

    # ---- acting ---------------------------------------------------------------------------------

    async def db_put(self, family: str, key: str, value: str) -> None:
        (await self.ami.action("DBPut", Family=family, Key=key, Val=value)).raise_for_error()

    async def phone(self, agent: str, *, ring_s: float = 1, talk_s: float = 3) -> None:
        """How the agent's Local phone behaves: rings `ring_s`, answers, talks `talk_s`."""
        await self.db_put(f"phone/{agent}", "ring", f"{ring_s:g}")
        await self.db_put(f"phone/{agent}", "talk", f"{talk_s:g}")
        await self.db_put(f"phone/{agent}", "answer", "yes")

    async def place(
        self,
        *,
        did: str,
        caller_id: str,
        caller_name: str = "",
        language: str = "en",
        patience_s: float = 60,
        says: str = "",
        context: str = "",
        exten: str = "",
        variables: dict[str, str] | None = None,
    ) -> PlacedCall:
        """Originate one caller; returns once Asterisk queued the Originate."""
        call_id = f"rt{next(_ids)}x{secrets.token_hex(3)}"
        uniqueid, other = f"{call_id}-net", f"{call_id}-caller"
        callerid = f'"{caller_name}" <{caller_id}>' if caller_name else caller_id
        values = {
            "TEST_CALL": call_id,
            "TEST_LANG": language,
            "TEST_CALLERID": callerid,
            "TEST_PATIENCE": f"{patience_s:g}",
            "TEST_SAYS": says,
            "TEST_CONTEXT": context,
            "TEST_EXTEN": exten,
            **(variables or {}),
        }
        response = await self.ami.action(
            "Originate",
            Channel=f"Local/{call_id}@test-caller",
            Context="test-inbound",
            Exten=did,
            Priority="1",
            CallerID=callerid,
            ChannelId=uniqueid,
            OtherChannelId=other,
            Async="true",
            Timeout="10000",
            Variable=[f"{k}={v}" for k, v in values.items()],
        )
        response.raise_for_error()
        newchannel = await self.wait_for("Newchannel", lambda e: e.get("Uniqueid") == other)
        return PlacedCall(
            call_id=call_id,
            did=did,
            uniqueid=uniqueid,
            caller_uniqueid=other,
            caller_channel=newchannel.event.get("Channel") or "",
        )

    async def press_when_asked(self, call: PlacedCall, digits: str, *, timeout: float = 20) -> None:
        """Once Centralino's GET DATA runs on the call, the caller presses `digits`."""
        await self.wait_for(
            "AGIExecStart",
            lambda e: (
                e.get("Uniqueid") == call.uniqueid
                and (e.get("Command") or "").startswith("GET DATA")
            ),
            timeout=timeout,
        )
        response = await self.ami.action("PlayDTMF", Channel=call.caller_channel, Digit=digits)
        response.raise_for_error()

    async def hang_up(self, call: PlacedCall) -> None:
        """The caller hangs up (an error if they already did is ignored)."""
        await self.ami.action("Hangup", Channel=call.caller_channel)

    async def getvar(self, channel: str, variable: str) -> str | None:
        response = await self.ami.action("Getvar", Channel=channel, Variable=variable)
        return response.get("Value") if response.ok else None

    def channel_of(self, uniqueid: str) -> str:
        (found,) = self.events("Newchannel", Uniqueid=uniqueid)
        return found.event.get("Channel") or ""

    def hung_up(self, uniqueid: str) -> SeenEvent:
        found = self.events("Hangup", Uniqueid=uniqueid)
        assert found, f"channel {uniqueid} still up"
        return found[0]


class AmiProxy:
    """A TCP relay between Centralino and Asterisk's AMI that the test can cut and restore."""

    def __init__(self, *, target_port: int, listen_port: int) -> None:
        self.target_port = target_port
        self.port = listen_port
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections_total = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Stop listening and drop every relayed connection (both directions)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def aclose(self) -> None:
        await self.cut()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
