"""What AMI tells the call flows: the moment an agent answers.

`Dial()` runs inside the FastAGI session and returns only when the conversation is over, so
the flow cannot see the answer itself. Asterisk announces it on AMI as `DialEnd` with
`DialStatus: ANSWER` on the caller's channel (its `Uniqueid`); the ACD needs that moment to
mark the agent busy and to measure talk time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from centralino.asterisk.ami import AmiEvent
from centralino.asterisk.ami_client import AmiClient

log = logging.getLogger(__name__)

AnswerCallback = Callable[[], Awaitable[None]]


class DialWatch:
    """Routes `DialEnd ANSWER` events to the call waiting for them, by caller uniqueid."""

    def __init__(self) -> None:
        self._waiting: dict[str, AnswerCallback] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.answers_total = 0

    def attach(self, client: AmiClient) -> Callable[[], None]:
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

    def attach(self, client: AmiClient) -> Callable[[], None]:
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
