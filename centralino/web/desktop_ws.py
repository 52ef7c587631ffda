"""The agent-desktop WebSocket hub: screen-pops pushed to agents and acknowledged.

Mount `hub.handle` at `/ws/agent/{agent_id}`; an id that is not one of the hub's `agents` is
refused with 404 before the upgrade, and nothing is kept for it. Wire protocol (JSON text frames):
- server -> desktop: `{"type": "screen_pop", "pop_id": ID, "payload": ScreenPop}` (must be
  acknowledged), `{"type": "pop_update", "linkedid": ID, "payload": ...}` (late results,
  no acknowledgement) and `{"type": "notice", "payload": {...}}` (something the agent should
  read, e.g. a supervisor set their state; no acknowledgement).
- desktop -> server: `{"type": "ack", "pop_id": ID}`; `{"type": "ping"}` is ignored.
Anything else from a desktop is garbage: the socket is closed (1003) and the peer logged.

`push_screen_pop(agent_id, payload, timeout_s)` returns True only once a desktop of that agent
acknowledged the pop: the ACD rings the agent's phone after that, so the pop is already on
screen when the phone rings. Push and ack times are kept per pop (`delivery(pop_id)`).

Several processes share one Redis, and an agent's desktop may be on any of them. Pops, updates
and the end of a call travel on a Redis pub/sub channel per agent (`pop:<agent>`), which a
process subscribes to while it holds at least one desktop of that agent; a desktop's ack goes
back on the pushing process's own channel (`pop-ack:<hub id>`). A desktop on the pushing
process is served directly (no Redis round trip before its ack counts). PUBLISH says how many
processes received the pop: each of them answers with the ack or, once it has no desktop left
to show it on, a refusal, so a pop nobody holds fails at once rather than at the timeout. With
Redis down the local path still works and the remote one fails fast (logged, never raised).

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
from uuid import uuid4

import orjson
import redis.asyncio as aioredis
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
# Pops this process showed for another one, awaiting a desktop's ack; a pusher gives up after
# its ack timeout (1.5 s), so this bounds forgotten entries, not live ones.
MAX_RELAYED_KEPT = 10_000
# A PUBLISH slower than this on the path before the ring means Redis is in trouble: the pop
# counts as not delivered elsewhere (the caller rings anyway, as on a timeout).
REDIS_PUBLISH_TIMEOUT_S = 0.25
# Between attempts to (re)open the pop subscriptions while Redis is down.
REDIS_RETRY_S = 1.0


def pop_channel(agent_id: str) -> str:
    return f"pop:{agent_id}"


def ack_channel(hub_id: str) -> str:
    return f"pop-ack:{hub_id}"


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


@dataclass(slots=True)
class _Waiting:
    """A pushed pop awaiting its ack. `holders`: the processes that received it (this one if it
    sent the pop to a local desktop, plus PUBLISH's count), known once both the local sends and
    the PUBLISH are done (`uncounted` reaches 0); when every one of them gave up (no desktop
    left to show it), the push fails without waiting for the timeout."""

    agent_id: str
    future: asyncio.Future[bool]
    local: bool = False  # sent to a desktop on this process
    holders: int = 0
    uncounted: int = 2  # the local sends, the PUBLISH
    gave_up: int = 0

    def count(self, holders: int) -> None:
        self.holders += holders
        self.uncounted -= 1
        self.settle()

    def acked(self) -> None:
        if not self.future.done():
            self.future.set_result(True)

    def give_up(self) -> None:
        self.gave_up += 1
        self.settle()

    def settle(self) -> None:
        if not self.uncounted and self.gave_up >= self.holders and not self.future.done():
            self.future.set_result(False)


class DesktopHub:
    def __init__(
        self,
        *,
        clock: Clock,
        agents: Collection[str],
        redis: aioredis.Redis | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        """`agents`: the configured agent ids, the only ones whose desktops may connect (a
        live view such as a dict's keys is read at each connection). `redis`: shared with the
        other processes, which pops then cross (`start()` opens the subscriptions); None keeps
        pops within this process (a single-process test or benchmark)."""
        self._clock = clock
        self._agents = agents
        self._redis = redis
        self._heartbeat_s = heartbeat_s
        self._id = uuid4().hex
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._connected: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, _Waiting] = {}
        # pop id -> (agent, pushing hub): pops shown here for another process, not yet acked.
        self._relayed: dict[str, tuple[str, str]] = {}
        self._deliveries: dict[str, PopDelivery] = {}
        self._by_linkedid: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()  # updates, acks and notices being sent
        # The pop each agent is working on, so a desktop opened (or reloaded) mid-call shows it.
        self._current: dict[str, tuple[str, Mapping[str, Any]]] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._subscribing = asyncio.Lock()  # one (un)subscription at a time, in order
        self._listener: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to this process's ack channel and listen for pops from the others. Redis
        down is not fatal: desktops here still get their pops, and the listener retries."""
        if self._redis is None or self._listener is not None:
            return
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(subscribed))
        # Until the ack channel is subscribed no remote ack can reach this process; wait for
        # that (or for the first failure) so a push right after start() does not lose its ack.
        waiter = asyncio.create_task(subscribed.wait())
        await asyncio.wait({waiter, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def _listen(self, subscribed: asyncio.Event) -> None:
        assert self._redis is not None
        failing = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                # What this process holds now; desktops that come and go while it listens
                # (un)subscribe themselves.
                channels = [ack_channel(self._id), *map(pop_channel, self._sockets)]
                async with asyncio.timeout(REDIS_PUBLISH_TIMEOUT_S * 8):
                    await pubsub.subscribe(*channels)
                    self._pubsub = pubsub
                if failing:
                    log.warning("desktop hub: Redis pop channels back")
                failing = False
                subscribed.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._on_redis(message["data"])
            except (aioredis.RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("desktop hub: Redis pop channels lost (%s); retrying", exc)
                failing = True
            finally:
                self._pubsub = None
                subscribed.set()
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(REDIS_RETRY_S)  # Redis is down: back off before retrying

    async def close(self) -> None:
        """On shutdown: close every desktop socket (they reconnect to another process), then
        stop listening to Redis."""
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None

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
        first = not sockets
        sockets.add(ws)
        self._event(agent_id).set()
        log.info("desktop of agent %s connected from %s", agent_id, request.remote)
        try:
            if first:
                await self._follow_agent(agent_id)
            current = self._current.get(agent_id)
            if current is not None:
                linkedid, payload = current
                frame = {"type": "screen_pop", "pop_id": f"{linkedid}:resent", "payload": payload}
                await ws.send_str(orjson.dumps(frame).decode())
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
                await self._follow_agent(agent_id)
            log.info("desktop of agent %s disconnected", agent_id)
        return ws

    async def _follow_agent(self, agent_id: str) -> None:
        """Subscribe this process to the agent's pops while it holds a desktop of the agent,
        unsubscribe once it holds none. Decided under a lock from the state at that moment, so
        a desktop leaving as another arrives ends subscribed. Failures are logged and left to
        the listener, which subscribes to every agent held here when Redis comes back."""
        async with self._subscribing:
            pubsub = self._pubsub
            if pubsub is None:
                return
            held = bool(self._sockets.get(agent_id))
            try:
                async with asyncio.timeout(REDIS_PUBLISH_TIMEOUT_S):
                    if held:
                        await pubsub.subscribe(pop_channel(agent_id))
                    else:
                        await pubsub.unsubscribe(pop_channel(agent_id))
            except (aioredis.RedisError, OSError, TimeoutError) as exc:
                log.warning("desktop hub: agent %s's pop channel: %s", agent_id, exc)

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
        pop_id = message["pop_id"]
        relayed = self._relayed.get(pop_id)
        if relayed is not None and relayed[0] == agent_id:
            del self._relayed[pop_id]  # the first ack only: another tab may answer too
            self._notify(ack_channel(relayed[1]), {"pop_id": pop_id, "acked": True})
            return True
        waiting = self._waiting.get(pop_id)
        if waiting is None or waiting.agent_id != agent_id:
            return True  # a late or duplicate ack (another tab answered first): harmless
        self._record_ack(pop_id)
        waiting.acked()
        return True

    def _record_ack(self, pop_id: str) -> None:
        delivery = self._deliveries.get(pop_id)
        if delivery is not None and delivery.acked_at is None:
            delivery.acked_at = self._clock.now()
            delivery.acked_mono = self._clock.monotonic()

    def _event(self, agent_id: str) -> asyncio.Event:
        return self._connected.setdefault(agent_id, asyncio.Event())

    def _fail_waiting(self, agent_id: str) -> None:
        """The agent's last desktop here left: the pops it was showing will not be acked here."""
        for waiting in list(self._waiting.values()):
            if waiting.agent_id == agent_id and waiting.local:
                waiting.give_up()
        for pop_id, (owner, hub_id) in list(self._relayed.items()):
            if owner == agent_id:
                del self._relayed[pop_id]
                self._notify(ack_channel(hub_id), {"pop_id": pop_id, "acked": False})

    # --- the Redis side ---------------------------------------------------------------------

    def _on_redis(self, data: bytes) -> None:
        try:
            self._dispatch(orjson.loads(data))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            # Only our processes publish here: a bad message is a bug or a version skew, and
            # must not stop this process's listener.
            log.warning("desktop hub: garbage on a pop channel: %.80r", data)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, origin = message["kind"], message["origin"]
        if kind == "ack":
            waiting = self._waiting.get(message.get("pop_id", ""))
            if waiting is None:
                return  # late: the push already returned
            if message.get("acked") is True:
                self._record_ack(message["pop_id"])
                waiting.acked()
            else:
                waiting.give_up()
        elif origin == self._id:
            # Our own pop (or update) coming back: the desktops here already have it.
            if kind == "pop" and (waiting := self._waiting.get(message["pop_id"])) is not None:
                waiting.give_up()
        elif kind == "pop":
            self._show_relayed(message)
        elif kind == "update":
            agent_id, linkedid = message["agent"], message["linkedid"]
            self._keep_current(agent_id, linkedid, message["payload"])
            self._spawn(self._send(agent_id, self._update_frame(linkedid, message["payload"])))
        elif kind == "forget":
            self._drop_current(message["linkedid"])
        elif kind == "notice":
            self._spawn(self._send(message["agent"], self._notice_frame(message["payload"])))

    def _show_relayed(self, message: dict[str, Any]) -> None:
        agent_id, pop_id, reply = message["agent"], message["pop_id"], message["origin"]
        linkedid = str(message["payload"].get("linkedid", ""))
        self._current[agent_id] = (linkedid, message["payload"])
        if not self._sockets.get(agent_id):
            self._notify(ack_channel(reply), {"pop_id": pop_id, "acked": False})
            return
        if len(self._relayed) >= MAX_RELAYED_KEPT:
            del self._relayed[next(iter(self._relayed))]  # the oldest: its pusher gave up
        self._relayed[pop_id] = (agent_id, reply)
        frame = orjson.dumps(
            {"type": "screen_pop", "pop_id": pop_id, "payload": message["payload"]}
        ).decode()

        async def show() -> None:
            sent = await self._send(agent_id, frame)
            if not sent and self._relayed.pop(pop_id, None) is not None:
                self._notify(ack_channel(reply), {"pop_id": pop_id, "acked": False})

        self._spawn(show())

    async def _publish(self, channel: str, message: Mapping[str, Any]) -> int:
        """PUBLISH; how many processes received it (0 with no Redis, or Redis failing)."""
        if self._redis is None:
            return 0
        try:
            async with asyncio.timeout(REDIS_PUBLISH_TIMEOUT_S):
                return int(await self._redis.publish(channel, orjson.dumps(message)))
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            log.warning("desktop hub: could not publish on %s (%s)", channel, exc)
            return 0

    def _notify(self, channel: str, message: dict[str, Any]) -> None:
        self._spawn(self._publish(channel, {**message, "kind": "ack", "origin": self._id}))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, agent_id: str, frame: str) -> int:
        """Send a frame to every desktop of the agent on this process; how many got it."""
        sent = 0
        for ws in list(self._sockets.get(agent_id, ())):
            if ws.closed:
                continue
            try:
                await ws.send_str(frame)
                sent += 1
            except (ConnectionError, RuntimeError):
                log.warning("could not send to agent %s's desktop", agent_id)
        return sent

    # --- what the ACD and the fan-out call --------------------------------------------------

    def is_connected(self, agent_id: str) -> bool:
        """A desktop of the agent is on this process (others may hold one too)."""
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
        """Send the pop to every desktop of the agent, on this process and the others; True
        once one of them acknowledged it within `timeout_s`. False if the agent has no desktop
        anywhere, they all went away, no ack came, or Redis failed and none is here."""
        linkedid = str(payload.get("linkedid", ""))
        pop_id = f"{linkedid}:{self._id[:8]}:{next(self._ids)}"
        delivery = PopDelivery(
            pop_id=pop_id,
            agent_id=agent_id,
            linkedid=linkedid,
            pushed_at=self._clock.now(),
            pushed_mono=self._clock.monotonic(),
        )
        self._keep(delivery)
        self._current[agent_id] = (linkedid, payload)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiting = self._waiting[pop_id] = _Waiting(agent_id, future)
        message = {
            "kind": "pop",
            "origin": self._id,
            "agent": agent_id,
            "pop_id": pop_id,
            "payload": payload,
        }

        def counted(task: asyncio.Task[int]) -> None:
            waiting.count(0 if task.cancelled() else task.result())

        try:
            async with asyncio.timeout(timeout_s):
                # The other processes first (their Redis hop overlaps the local sends), but the
                # push does not wait for PUBLISH: a desktop here acks without Redis.
                if self._redis is None:
                    waiting.count(0)
                else:
                    publish = self._spawn(self._publish(pop_channel(agent_id), message))
                    publish.add_done_callback(counted)
                frame = {"type": "screen_pop", "pop_id": pop_id, "payload": payload}
                waiting.local = bool(await self._send(agent_id, orjson.dumps(frame).decode()))
                waiting.count(1 if waiting.local else 0)
                return await future
        except TimeoutError:
            log.warning("agent %s did not acknowledge pop %s in time", agent_id, pop_id)
            return False
        finally:
            self._waiting.pop(pop_id, None)

    async def push_update(self, agent_id: str, linkedid: str, payload: Mapping[str, Any]) -> int:
        """A late result for a pop already shown; no ack. Returns how many desktops on this
        process got it (the update is also published to the agent's desktops elsewhere)."""
        self._keep_current(agent_id, linkedid, payload)
        message = {
            "kind": "update",
            "origin": self._id,
            "agent": agent_id,
            "linkedid": linkedid,
            "payload": payload,
        }
        if self._redis is not None:
            self._spawn(self._publish(pop_channel(agent_id), message))
        return await self._send(agent_id, self._update_frame(linkedid, payload))

    async def push_notice(self, agent_id: str, notice: Mapping[str, Any]) -> int:
        """Tell the agent's desktops, here and elsewhere, something to read (no ack); how many
        desktops on this process got it. Never raises for a missing desktop or Redis."""
        if self._redis is not None:
            message = {"kind": "notice", "origin": self._id, "agent": agent_id, "payload": notice}
            self._spawn(self._publish(pop_channel(agent_id), message))
        return await self._send(agent_id, self._notice_frame(notice))

    @staticmethod
    def _notice_frame(notice: Mapping[str, Any]) -> str:
        return orjson.dumps({"type": "notice", "payload": notice}).decode()

    @staticmethod
    def _update_frame(linkedid: str, payload: Mapping[str, Any]) -> str:
        return orjson.dumps(
            {"type": "pop_update", "linkedid": linkedid, "payload": payload}
        ).decode()

    def _keep_current(self, agent_id: str, linkedid: str, payload: Mapping[str, Any]) -> None:
        current = self._current.get(agent_id)
        if current is not None and current[0] == linkedid:
            self._current[agent_id] = (linkedid, payload)

    def _drop_current(self, linkedid: str) -> list[str]:
        dropped = [a for a, (current, _) in self._current.items() if current == linkedid]
        for agent_id in dropped:
            del self._current[agent_id]
        return dropped

    def follow(self, agent_id: str, handle: FanoutHandle) -> None:
        """After the pop was pushed: whenever a late result lands in this call's fan-out, push
        the updated pop (`pop_update`) to the agent's desktops, here and elsewhere."""

        def on_change(changed: FanoutHandle, field: str) -> None:
            pop = changed.snapshot().screen_pop(self._clock.now())
            self._spawn(self.push_update(agent_id, changed.linkedid, pop))

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
        """The call is over and its record has taken the times: drop them, and the pop the
        agent's desktops (here and elsewhere) would show again on a reload."""
        for pop_id in self._by_linkedid.pop(linkedid, []):
            self._deliveries.pop(pop_id, None)
        for agent_id in self._drop_current(linkedid):
            if self._redis is None:
                continue
            message = {"kind": "forget", "origin": self._id, "linkedid": linkedid}
            self._spawn(self._publish(pop_channel(agent_id), message))

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
