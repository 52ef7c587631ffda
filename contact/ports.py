"""Ports owned by `contact`: what a contact's lifecycle needs from telephony and the desktops.

The AMI watchers in `centralino/ami_watch.py` implement the telephony events; the desktop
WebSocket hub implements `PopDesk`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from context.fanout import FanoutHandle

TransferKind = Literal["blind", "attended"]


@dataclass(frozen=True, slots=True)
class CallTransfer:
    """A successful transfer as telephony reported it, reduced to what the ACD needs."""

    kind: TransferKind
    uniqueid: str  # the transferee's channel (the caller); "" when Asterisk named none
    linkedid: str  # the call the transfer belongs to
    transferer: str  # the channel that transferred (the agent's phone)
    target: str  # "exten@context" (blind); "agent:<id>", a channel or "app:<name>" (attended)
    queue: str | None  # the target is this queue of ours (blind transfers only)
    external: bool  # done by the phone's own protocol (SIP REFER) rather than DTMF features


AnswerCallback = Callable[[], Awaitable[None]]
TransferCallback = Callable[[CallTransfer], Awaitable[None]]


class AnswerEvents(Protocol):
    """The moment an agent answers a caller's Dial (AMI `DialEnd ANSWER`), by caller uniqueid:
    the flow's Dial returns only when the conversation is over."""

    def watch(self, uniqueid: str, on_answer: AnswerCallback) -> Callable[[], None]:
        """Call `on_answer` once when the caller's Dial is answered; returns an unwatch."""
        ...


class TransferEvents(Protocol):
    """Transfers of a connected caller by the agent's phone (AMI Blind/AttendedTransfer)."""

    def watch(self, uniqueid: str, on_transfer: TransferCallback) -> Callable[[], None]: ...

    async def settle(self, uniqueid: str) -> bool:
        """The caller's channel left: wait briefly for a transfer report; True if one came."""
        ...


class PopDesk(Protocol):
    """Agents' desktops: the screen-pop goes there, acknowledged, before the phone rings."""

    async def push_screen_pop(
        self, agent_id: str, payload: Mapping[str, Any], timeout_s: float
    ) -> bool: ...

    def follow(self, agent_id: str, handle: FanoutHandle) -> None: ...

    def forget(self, linkedid: str) -> None: ...


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A call in progress as its journal holds it: enough to record it if its process dies.
    `record_key` is the key its own record will carry, so the two can never both be stored."""

    record_key: str
    uniqueid: str
    linkedid: str
    caller_id: str
    started_at: datetime
    queue: str | None = None
    intent: str | None = None
    agent_id: str | None = None


class CallJournal(Protocol):
    """Calls in progress, kept where a process that outlives this one can find them."""

    def opened(self, entry: JournalEntry) -> None: ...

    def noted(self, record_key: str, **facts: str) -> None:
        """What the call learnt since (`queue`, `intent`, `agent_id`)."""
        ...

    def closed(self, record_key: str) -> None:
        """The call's own record is written (or spooled): nothing is left to do for it."""
        ...
