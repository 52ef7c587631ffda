"""The agent-desktop WebSocket hub: screen-pops pushed to agents and acknowledged.

Mount `hub.handle` at `/ws/agent/{agent_id}`; an id that is not one of the hub's `agents` is
refused with 404 before the upgrade, and nothing is kept for it. Wire protocol (JSON text frames):
- server -> desktop: `{"type": "screen_pop", "pop_id": ID, "payload": ScreenPop}` (must be
  acknowledged) and `{"type": "pop_update", "linkedid": ID, "payload": ...}` (late results,
  no acknowledgement).
- desktop -> server: `{"type": "ack", "pop_id": ID}`; `{"type": "ping"}` is ignored.
Anything else from a desktop is garbage: the socket is closed (1003) and the peer logged.

`push_screen_pop(agent_id, payload, timeout_s)` returns True only once a desktop of that agent
acknowledged the pop: the ACD rings the agent's phone after that, so the pop is already on
screen when the phone rings. Push and ack times are kept per pop (`delivery(pop_id)`).

Payload strings are raw text (a CRM note may contain `<script>`): the desktop page must render
them with `textContent`, never `innerHTML`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from context.fanout import FanoutHandle
from context.ports import Clock

log = logging.getLogger(__name__)

# Desktops only send acks and pings (tens of bytes); anything bigger is not ours.
MAX_DESKTOP_MESSAGE_BYTES = 4 * 1024
# Detects dead desktops (laptop lid closed) well within a shift's call rhythm.
HEARTBEAT_S = 20.0
# Deliveries kept for look-up (push/ack times) until the call record takes them; bounded so a
# hub that nobody drains cannot grow without limit (a busy centre does ~100k pops a day).
MAX_DELIVERIES_KEPT = 100_000


@dataclass(slots=True)
class PopDelivery:
    pop_id: str
    agent_id: str
    linkedid: str
    pushed_at: datetime
    acked_at: datetime | None = None
    pushed_mono: float = 0.0
    acked_mono: float | None = None

    @property
    def ack_ms(self) -> float | None:
        return None if self.acked_mono is None else (self.acked_mono - self.pushed_mono) * 1e3


class DesktopHub:
    def __init__(
        self, *, clock: Clock, agents: Collection[str], heartbeat_s: float = HEARTBEAT_S
    ) -> None:
        """`agents`: the configured agent ids, the only ones whose desktops may connect (a
        live view such as a dict's keys is read at each connection)."""
        self._clock = clock
        self._agents = agents
        self._heartbeat_s = heartbeat_s
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._connected: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, tuple[str, asyncio.Future[bool]]] = {}
        self._deliveries: dict[str, PopDelivery] = {}
        self._by_linkedid: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[int]] = set()  # live pop updates being sent
        # The pop each agent is working on, so a desktop opened (or reloaded) mid-call shows it.
        self._current: dict[str, tuple[str, Mapping[str, Any]]] = {}

    # --- the aiohttp side -------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        agent_id = request.match_info["agent_id"]
        if agent_id not in self._agents:
            # Refused before the upgrade and before any per-agent state: a typo or a scan
            # must not leave sockets, events or pops behind for an id nobody routes to.
            log.warning("desktop for unknown agent %.64r refused (%s)", agent_id, request.remote)
            raise web.HTTPNotFound(text="unknown agent")
        # No permessage-deflate: a pop is a few KiB on the office LAN, and compressing it cost
        # ~100 µs of CPU per push on the path between reservation and ring.
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat_s, max_msg_size=MAX_DESKTOP_MESSAGE_BYTES, compress=False
        )
        await ws.prepare(request)
        sockets = self._sockets.setdefault(agent_id, set())
        sockets.add(ws)
        self._event(agent_id).set()
        log.info("desktop of agent %s connected from %s", agent_id, request.remote)
        current = self._current.get(agent_id)
        if current is not None:
            linkedid, payload = current
            frame = {"type": "screen_pop", "pop_id": f"{linkedid}:resent", "payload": payload}
            await ws.send_str(orjson.dumps(frame).decode())
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT or not self._on_text(agent_id, msg.data):
                    log.warning(
                        "agent %s desktop at %s sent garbage; closing", agent_id, request.remote
                    )
                    await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"garbage")
                    break
        finally:
            sockets.discard(ws)
            if not sockets:
                self._sockets.pop(agent_id, None)
                self._event(agent_id).clear()
                self._fail_waiting(agent_id)
            log.info("desktop of agent %s disconnected", agent_id)
        return ws

    def _on_text(self, agent_id: str, text: str) -> bool:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(message, dict):
            return False
        kind = message.get("type")
        if kind == "ping":
            return True
        if kind != "ack" or not isinstance(message.get("pop_id"), str):
            return False
        waiting = self._waiting.get(message["pop_id"])
        if waiting is None or waiting[0] != agent_id:
            return True  # a late or duplicate ack (another tab answered first): harmless
        delivery = self._deliveries.get(message["pop_id"])
        if delivery is not None and delivery.acked_at is None:
            delivery.acked_at = self._clock.now()
            delivery.acked_mono = self._clock.monotonic()
        if not waiting[1].done():
            waiting[1].set_result(True)
        return True

    def _event(self, agent_id: str) -> asyncio.Event:
        return self._connected.setdefault(agent_id, asyncio.Event())

    def _fail_waiting(self, agent_id: str) -> None:
        for _, (owner, future) in list(self._waiting.items()):
            if owner == agent_id and not future.done():
                future.set_result(False)

    # --- what the ACD and the fan-out call --------------------------------------------------

    def is_connected(self, agent_id: str) -> bool:
        return bool(self._sockets.get(agent_id))

    async def wait_connected(self, agent_id: str, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._event(agent_id).wait()
        except TimeoutError:
            return False
        return True

    async def push_screen_pop(
        self, agent_id: str, payload: Mapping[str, Any], timeout_s: float
    ) -> bool:
        """Send the pop to every desktop of the agent; True once one of them acknowledged it
        within `timeout_s`. False if the agent has no desktop, it went away, or no ack came."""
        sockets = list(self._sockets.get(agent_id, ()))
        linkedid = str(payload.get("linkedid", ""))
        pop_id = f"{linkedid}:{next(self._ids)}"
        delivery = PopDelivery(
            pop_id=pop_id,
            agent_id=agent_id,
            linkedid=linkedid,
            pushed_at=self._clock.now(),
            pushed_mono=self._clock.monotonic(),
        )
        self._keep(delivery)
        self._current[agent_id] = (linkedid, payload)
        if not sockets:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[pop_id] = (agent_id, future)
        frame = orjson.dumps({"type": "screen_pop", "pop_id": pop_id, "payload": payload}).decode()
        try:
            sent = 0
            for ws in sockets:
                if ws.closed:
                    continue
                try:
                    await ws.send_str(frame)
                    sent += 1
                except (ConnectionError, RuntimeError):
                    log.warning("could not send a pop to agent %s's desktop", agent_id)
            if not sent:
                return False
            try:
                async with asyncio.timeout(timeout_s):
                    return await future
            except TimeoutError:
                log.warning("agent %s did not acknowledge pop %s in time", agent_id, pop_id)
                return False
        finally:
            self._waiting.pop(pop_id, None)

    async def push_update(self, agent_id: str, linkedid: str, payload: Mapping[str, Any]) -> int:
        """A late result for a pop already shown; no ack. Returns how many desktops got it."""
        current = self._current.get(agent_id)
        if current is not None and current[0] == linkedid:
            self._current[agent_id] = (linkedid, payload)
        frame = orjson.dumps(
            {"type": "pop_update", "linkedid": linkedid, "payload": payload}
        ).decode()
        sent = 0
        for ws in list(self._sockets.get(agent_id, ())):
            if ws.closed:
                continue
            try:
                await ws.send_str(frame)
                sent += 1
            except (ConnectionError, RuntimeError):
                log.warning("could not send a pop update to agent %s's desktop", agent_id)
        return sent

    def follow(self, agent_id: str, handle: FanoutHandle) -> None:
        """After the pop was pushed: whenever a late result lands in this call's fan-out, push
        the updated pop (`pop_update`) to the agent's desktop."""
        loop = asyncio.get_running_loop()

        def on_change(changed: FanoutHandle, field: str) -> None:
            pop = changed.snapshot().screen_pop(self._clock.now())
            task = loop.create_task(self.push_update(agent_id, changed.linkedid, pop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        handle.add_listener(on_change)

    def delivery(self, pop_id: str) -> PopDelivery | None:
        return self._deliveries.get(pop_id)

    def deliveries_for(self, linkedid: str) -> list[PopDelivery]:
        """Every pop pushed for this call (several if the first agent did not answer)."""
        ids = self._by_linkedid.get(linkedid, [])
        return [self._deliveries[p] for p in ids if p in self._deliveries]

    def last_delivery(self, linkedid: str) -> PopDelivery | None:
        found = self.deliveries_for(linkedid)
        return found[-1] if found else None

    def forget(self, linkedid: str) -> None:
        """The call is over and its record has taken the times: drop them."""
        for pop_id in self._by_linkedid.pop(linkedid, []):
            self._deliveries.pop(pop_id, None)
        for agent_id, (current, _payload) in list(self._current.items()):
            if current == linkedid:
                del self._current[agent_id]

    def _keep(self, delivery: PopDelivery) -> None:
        if len(self._deliveries) >= MAX_DELIVERIES_KEPT:
            oldest = self._deliveries.pop(next(iter(self._deliveries)))  # insertion order
            ids = self._by_linkedid.get(oldest.linkedid, [])
            if oldest.pop_id in ids:
                ids.remove(oldest.pop_id)
            if not ids:
                self._by_linkedid.pop(oldest.linkedid, None)
        self._deliveries[delivery.pop_id] = delivery
        self._by_linkedid.setdefault(delivery.linkedid, []).append(delivery.pop_id)

    async def close(self) -> None:
        """On shutdown: close every desktop socket (they reconnect to another process)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
