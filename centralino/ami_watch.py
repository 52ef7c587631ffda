"""What AMI tells the call flows: the moment an agent answers, and how the conversation ends.

`Dial()` runs inside the FastAGI session and returns only when the conversation is over, so
the flow cannot see the answer itself. Asterisk announces it on AMI as `DialEnd` with
`DialStatus: ANSWER` on the caller's channel (its `Uniqueid`); the ACD needs that moment to
mark the agent busy and to measure talk time.

When the agent transfers the caller from their phone, the FastAGI session only sees its channel
leave (the `HANGUP` line, exactly as if the caller had hung up); `BlindTransfer` and
`AttendedTransfer` say what happened and where the caller went (docs/ami.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from centralino.asterisk.ami import AmiEvent
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import AmiGroup
from contact.ports import AnswerCallback, CallTransfer, TransferCallback

log = logging.getLogger(__name__)


class DialWatch:
    """Routes `DialEnd ANSWER` events to the call waiting for them, by caller uniqueid."""

    def __init__(self) -> None:
        self._waiting: dict[str, AnswerCallback] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.answers_total = 0

    def attach(self, client: AmiClient | AmiGroup) -> Callable[[], None]:
        return client.subscribe("DialEnd", self.on_dial_end)

    def watch(self, uniqueid: str, on_answer: AnswerCallback) -> Callable[[], None]:
        self._waiting[uniqueid] = on_answer

        def unwatch() -> None:
            if self._waiting.get(uniqueid) is on_answer:
                del self._waiting[uniqueid]

        return unwatch

    def on_dial_end(self, event: AmiEvent) -> None:
        if (event.get("DialStatus") or "").upper() != "ANSWER":
            return
        callback = self._waiting.pop(event.get("Uniqueid") or "", None)
        if callback is None:
            return
        self.answers_total += 1
        task = asyncio.ensure_future(self._run(callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, callback: AnswerCallback) -> None:
        try:
            await callback()
        except Exception:  # one call's bookkeeping must not break the AMI reader
            log.exception("handling an agent's answer failed")


class DeviceWatch:
    """An agent whose phone disappears (unregistered, unplugged) cannot take calls: AMI's
    `DeviceStateChange` to UNAVAILABLE or INVALID logs them out, so routing never rings a
    phone that is not there. (Coming back is the agent's own choice, from the desktop.)"""

    GONE = frozenset({"UNAVAILABLE", "INVALID"})

    def __init__(
        self, *, endpoints: dict[str, str], logout: Callable[[str], Awaitable[object]]
    ) -> None:
        self._agents_by_device = {endpoint: agent for agent, endpoint in endpoints.items()}
        self._logout = logout
        self._tasks: set[asyncio.Task[None]] = set()
        self.logouts_total = 0

    def attach(self, client: AmiClient | AmiGroup) -> Callable[[], None]:
        return client.subscribe("DeviceStateChange", self.on_device_state)

    def on_device_state(self, event: AmiEvent) -> None:
        agent = self._agents_by_device.get(event.get("Device") or "")
        if agent is None or (event.get("State") or "").upper() not in self.GONE:
            return
        task = asyncio.ensure_future(self._force_logout(agent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _force_logout(self, agent: str) -> None:
        try:
            await self._logout(agent)
            self.logouts_total += 1
            log.info("agent %s logged out: their phone became unavailable", agent)
        except Exception:  # e.g. already logged out: nothing to do, but say so
            log.info("agent %s: phone unavailable, logout not applied", agent, exc_info=True)


# --- transfers ---------------------------------------------------------------------------------

# When the caller's channel leaves a conversation, the flow waits at most this long for AMI to
# say whether it was a transfer. Both reports leave Asterisk within milliseconds of each other;
# the wait holds the caller in silence (Asterisk continues the dialplan only once the FastAGI
# session ends), so it stays short, and a hangup request ends it at once.
TRANSFER_SETTLE_S = 1.0
# Asterisk's own words (stasis_bridges.c): only a transfer that succeeded moved the caller.
_SUCCESS = "success"
_FAILED_DESTINATION = "fail"


class MalformedTransfer(ValueError):
    """A transfer event without the headers Asterisk always sends: the peer's fault."""


def _required(event: AmiEvent, *keys: str) -> list[str]:
    values = [event.get(k) for k in keys]
    missing = [k for k, v in zip(keys, values, strict=True) if not v]
    if missing:
        raise MalformedTransfer(f"{event.name} without {', '.join(missing)}")
    return [v or "" for v in values]


def _ids(event: AmiEvent, *linked_prefixes: str) -> tuple[str, str]:
    """The transferee's uniqueid and the call's linkedid (from the first leg that has one)."""
    keys = [f"{p}Linkedid" for p in ("Transferee", *linked_prefixes)]
    uniqueid = event.get("TransfereeUniqueid") or ""
    linkedid = next((v for k in keys if (v := event.get(k))), "")
    if not uniqueid and not linkedid:
        raise MalformedTransfer(f"{event.name} without TransfereeUniqueid or {' or '.join(keys)}")
    return uniqueid, linkedid


def blind_transfer(event: AmiEvent, *, queues: Mapping[str, str]) -> CallTransfer | None:
    """A `BlindTransfer` event as a `CallTransfer`; None unless `Result: Success`.

    `queues` maps targets that are our queues ("exten@context") to the queue's name. Raises
    `MalformedTransfer` when a header Asterisk always sends is missing."""
    (result,) = _required(event, "Result")
    if result.lower() != _SUCCESS:
        return None
    transferer, context, exten = _required(event, "TransfererChannel", "Context", "Extension")
    uniqueid, linkedid = _ids(event, "Transferer")
    target = f"{exten}@{context}"
    return CallTransfer(
        kind="blind",
        uniqueid=uniqueid,
        linkedid=linkedid,
        transferer=transferer,
        target=target,
        queue=queues.get(target),
        external=(event.get("IsExternal") or "").lower() == "yes",
    )


def attended_transfer(
    event: AmiEvent, *, agents_by_endpoint: Mapping[str, str]
) -> CallTransfer | None:
    """An `AttendedTransfer` event as a `CallTransfer`; None unless it succeeded.

    The agent consulted someone first and handed the caller over: the caller now talks to that
    party, so it is never a re-queue. The target is the party the caller was joined with:
    `agent:<id>` when its channel is on one of our agents' endpoints, else its channel,
    or the application the consult leg was running (`DestType: App`)."""
    result, dest_type = _required(event, "Result", "DestType")
    if result.lower() != _SUCCESS or dest_type.lower() == _FAILED_DESTINATION:
        return None
    (transferer,) = _required(event, "OrigTransfererChannel")
    uniqueid, linkedid = _ids(event, "OrigTransferer")
    target_channel = event.get("TransferTargetChannel") or ""
    if target_channel:
        agent = agents_by_endpoint.get(target_channel.rsplit("-", 1)[0])
        target = f"agent:{agent}" if agent is not None else target_channel
    elif dest_type.lower() == "app":
        target = f"app:{event.get('DestApp') or ''}"
    else:
        target = f"attended:{dest_type}"
    return CallTransfer(
        kind="attended",
        uniqueid=uniqueid,
        linkedid=linkedid,
        transferer=transferer,
        target=target,
        queue=None,
        external=(event.get("IsExternal") or "").lower() == "yes",
    )


@dataclass(slots=True)
class _Conversation:
    on_transfer: TransferCallback
    # Set once AMI said how the conversation ended: a transfer (after its callback ran) or a
    # hangup request on the caller's channel.
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    transferred: bool = False


class TransferWatch:
    """Routes successful `BlindTransfer` / `AttendedTransfer` events to the conversation they
    end, by the caller's channel (its uniqueid, which is also the call's linkedid).

    A conversation is watched from the agent's answer (`watch`) until the flow has settled it.
    Failed transfers, events for channels that are not our conversations and malformed events
    are logged and ignored; nothing here raises into the AMI reader."""

    HANGUP_REQUESTS = ("HangupRequest", "SoftHangupRequest")

    def __init__(
        self,
        *,
        queues: Mapping[str, str],
        endpoints: Mapping[str, str] | None = None,
        settle_s: float = TRANSFER_SETTLE_S,
    ) -> None:
        self._queues = dict(queues)  # "exten@context" -> our queue
        self._agents_by_endpoint = {e: a for a, e in (endpoints or {}).items()}
        self._settle_s = settle_s
        self._conversations: dict[str, _Conversation] = {}
        self._client: AmiClient | AmiGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.transfers_total = 0
        self.ignored_total = 0

    def attach(self, client: AmiClient | AmiGroup) -> Callable[[], None]:
        self._client = client
        detach = [
            client.subscribe("BlindTransfer", self.on_blind_transfer),
            client.subscribe("AttendedTransfer", self.on_attended_transfer),
            *(client.subscribe(name, self.on_hangup_request) for name in self.HANGUP_REQUESTS),
        ]

        def detach_all() -> None:
            for off in detach:
                off()

        return detach_all

    def watch(self, uniqueid: str, on_transfer: TransferCallback) -> Callable[[], None]:
        """Watch the conversation of the caller's channel `uniqueid`; returns the unwatch."""
        conversation = _Conversation(on_transfer)
        self._conversations[uniqueid] = conversation

        def unwatch() -> None:
            if self._conversations.get(uniqueid) is conversation:
                del self._conversations[uniqueid]

        return unwatch

    async def settle(self, uniqueid: str) -> bool:
        """The caller's channel left the conversation: wait (at most `settle_s`) until AMI says
        how. True once a transfer was handled or a hangup was requested; False when AMI said
        nothing in time, is down, or the conversation is not watched."""
        conversation = self._conversations.get(uniqueid)
        if conversation is None:
            return False
        if conversation.settled.is_set():
            return True
        if self._client is not None and not self._client.connected:
            return False
        try:
            async with asyncio.timeout(self._settle_s):
                await conversation.settled.wait()
        except TimeoutError:
            return False
        return True

    def on_blind_transfer(self, event: AmiEvent) -> None:
        self._on_transfer(event, lambda e: blind_transfer(e, queues=self._queues))

    def on_attended_transfer(self, event: AmiEvent) -> None:
        self._on_transfer(
            event, lambda e: attended_transfer(e, agents_by_endpoint=self._agents_by_endpoint)
        )

    def on_hangup_request(self, event: AmiEvent) -> None:
        conversation = self._conversations.get(event.get("Uniqueid") or "")
        if conversation is not None and not conversation.transferred:
            conversation.settled.set()

    def _on_transfer(
        self, event: AmiEvent, parse: Callable[[AmiEvent], CallTransfer | None]
    ) -> None:
        try:
            transfer = parse(event)
        except MalformedTransfer as exc:
            self.ignored_total += 1
            log.warning("ignoring a malformed AMI event: %s", exc)
            return
        if transfer is None:
            self.ignored_total += 1
            log.info(
                "%s did not succeed (Result: %s, DestType: %s); the call stays as it was",
                event.name,
                event.get("Result"),
                event.get("DestType", "-"),
            )
            return
        conversation = self._conversations.get(transfer.uniqueid) or self._conversations.get(
            transfer.linkedid
        )
        if conversation is None or conversation.transferred:
            self.ignored_total += 1
            log.info(
                "%s of %s (call %s) to %s: %s",
                event.name,
                transfer.uniqueid or "-",
                transfer.linkedid or "-",
                transfer.target,
                "not one of our conversations" if conversation is None else "already transferred",
            )
            return
        conversation.transferred = True
        self.transfers_total += 1
        task = asyncio.ensure_future(self._run(conversation, transfer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conversation: _Conversation, transfer: CallTransfer) -> None:
        try:
            await conversation.on_transfer(transfer)
        except Exception:  # one call's bookkeeping must not break the AMI reader
            log.exception("handling a %s transfer to %s failed", transfer.kind, transfer.target)
        finally:
            conversation.settled.set()
