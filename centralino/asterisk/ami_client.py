"""Asyncio AMI client: a thin shell around `AmiClientConnection`.

What it adds to the codec: login (a refused login raises `AmiAuthenticationError`), actions
correlated by generated ActionIDs, event lists collected into one `AmiEventList`, event
subscriptions (callbacks or an async iterator), a Ping keepalive that notices a dead link within
``ping_interval_s + ping_timeout_s`` (3.5 s by default), reconnection with exponential backoff and
jitter, and `on_reconnect` hooks so consumers can rebuild their state (CoreShowChannels,
QueueStatus) after a gap in the event stream.

Tasks it owns: one supervisor (reconnects), and per link one reader and one pinger; async event
callbacks run as tasks held in a set. `close()` logs off and stops them all.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from centralino.asterisk.ami import (
    AmiBanner,
    AmiClientConnection,
    AmiError,
    AmiEvent,
    AmiEventList,
    AmiResponse,
    ConnectionClosed,
    HeaderValue,
    RemoteProtocolError,
)

__all__ = [
    "AmiActionTimeout",
    "AmiAuthenticationError",
    "AmiClient",
    "AmiConnectionLost",
    "AmiEventStream",
    "EventCallback",
    "ResyncHook",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
# Item events one list action may collect before we call it garbage: a CoreShowChannels on a
# very busy box is a few thousand channels; 100,000 bounds memory if a Complete never comes.
MAX_LIST_ITEMS = 100_000
# Default per-subscriber queue for `events()`: AMI cannot be slowed down, so a consumer that
# falls this far behind loses the oldest events (counted in `events_dropped_total`).
DEFAULT_STREAM_MAXSIZE = 10_000

EventCallback = Callable[[AmiEvent], Awaitable[None] | None]
ResyncHook = Callable[[], Awaitable[None]]


class AmiConnectionLost(AmiError, ConnectionError):
    """The AMI link is down (or was never up): pending actions fail with this."""


class AmiAuthenticationError(AmiError):
    """Asterisk refused our Login (wrong user or secret; it answers after ~1 s and hangs up)."""


class AmiActionTimeout(AmiError, TimeoutError):
    """No response to an action within its timeout."""


@dataclass(slots=True)
class _Pending:
    name: str
    future: asyncio.Future[AmiResponse | AmiEventList]
    is_list: bool
    response: AmiResponse | None = None  # the `EventList: start` response, once seen
    items: list[AmiEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Link:
    """One TCP connection to Asterisk; replaced wholesale on reconnect."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    codec: AmiClientConnection
    banner: asyncio.Future[AmiBanner]
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    logged_in: bool = False
    reader_task: asyncio.Task[None] | None = None
    ping_task: asyncio.Task[None] | None = None


class AmiEventStream:
    """``async for event in client.events("Hangup", "QueueMemberStatus"):`` with a bounded queue."""

    def __init__(
        self, *, names: frozenset[str], maxsize: int, on_close: Callable[[], None]
    ) -> None:
        self._names = names
        self._queue: asyncio.Queue[AmiEvent | None] = asyncio.Queue(maxsize=maxsize)
        self._on_close = on_close
        self._closed = False
        self.dropped = 0

    def _offer(self, event: AmiEvent) -> bool:
        """Queue `event` if it matches, dropping the oldest when full; False if one was dropped."""
        if self._closed or ("*" not in self._names and event.name.lower() not in self._names):
            return True
        dropped = False
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            dropped = True
        self._queue.put_nowait(event)
        return not dropped

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close()
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)  # wakes a waiting reader, which then stops

    def __aiter__(self) -> AsyncIterator[AmiEvent]:
        return self

    async def __anext__(self) -> AmiEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # keep later reads ending too
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> AmiEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AmiClient:
    """One logical AMI session that survives reconnects. Keyword-only construction."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        rng: np.random.Generator,
        events: str = "on",
        ping_interval_s: float = 1.5,
        ping_timeout_s: float = 2.0,
        action_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        login_timeout_s: float = 5.0,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        reconnect_multiplier: float = 2.0,
        reconnect_jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        action_id_prefix: str = "centralino",
    ) -> None:
        if not 0 <= reconnect_jitter < 1:
            raise ValueError("reconnect_jitter must be in [0, 1)")
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self._rng = rng
        self._events_mode = events
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.action_timeout_s = action_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.login_timeout_s = login_timeout_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_multiplier = reconnect_multiplier
        self.reconnect_jitter = reconnect_jitter
        self._clock = clock
        self._ids = (f"{action_id_prefix}-{n}" for n in itertools.count(1))
        # Metrics (read by centralino.metrics).
        self.connected = False
        self.reconnects_total = 0
        self.events_total = 0
        self.events_dropped_total = 0
        self.actions_total = 0
        self.protocol_errors_total = 0
        self.ping_failures_total = 0
        self.last_packet_at: float | None = None
        self.banner_version: str | None = None
        # State.
        self._link: _Link | None = None
        self._pending: dict[str, _Pending] = {}
        self._subscribers: dict[str, list[EventCallback]] = {}
        self._streams: set[AmiEventStream] = set()
        self._resync_hooks: list[ResyncHook] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    # --- public API ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect and log in once (errors raise), then keep the link up in the background."""
        if self._supervisor is not None:
            raise RuntimeError("AmiClient.connect() called twice")
        self._closing = False
        link = await self._open_and_login()
        self._supervisor = asyncio.create_task(self._supervise(link), name="ami-supervisor")

    start = connect

    async def close(self) -> None:
        """Log off (best effort), stop every task, fail pending actions, end event streams."""
        self._closing = True
        link = self._link
        if link is not None and link.logged_in and not link.lost.is_set():
            try:
                await self._request("Logoff", {}, is_list=False, timeout_s=1.0, link=link)
            except AmiError as exc:
                log.debug("AMI: Logoff to %s not acknowledged: %s", link.peer, exc)
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if link is not None:
            self._drop(link, "closed by Centralino")
            tasks = [t for t in (link.reader_task, link.ping_task) if t is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._callback_tasks):
            task.cancel()
        await asyncio.gather(*self._callback_tasks, return_exceptions=True)
        for stream in list(self._streams):
            stream.close()

    async def action(
        self, name: str, /, *, timeout_s: float | None = None, **headers: HeaderValue
    ) -> AmiResponse:
        """Send an action and return its response (``Response: Error`` included; see `ok`)."""
        result = await self._request(name, headers, is_list=False, timeout_s=timeout_s)
        assert isinstance(result, AmiResponse)
        return result

    async def action_list(
        self, name: str, /, *, timeout_s: float | None = None, **headers: HeaderValue
    ) -> AmiEventList:
        """Send a list action (QueueStatus, CoreShowChannels, ...) and collect the whole list.

        An ``Error`` (or any response without ``EventList: start``) returns at once with no
        events. Raises `RemoteProtocolError` if ``ListItems`` disagrees with what arrived.
        """
        result = await self._request(name, headers, is_list=True, timeout_s=timeout_s)
        assert isinstance(result, AmiEventList)
        return result

    def subscribe(self, event_name: str, callback: EventCallback) -> Callable[[], None]:
        """Call `callback` for each event named `event_name` ('*' = all); returns unsubscribe.

        Plain callbacks run inline on the reader (keep them quick); coroutine callbacks run as
        tasks, so their order across events is not guaranteed.
        """
        key = event_name.lower()
        self._subscribers.setdefault(key, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(key, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def events(self, *names: str, maxsize: int = DEFAULT_STREAM_MAXSIZE) -> AmiEventStream:
        """An async iterator over events with these names (none or '*' = all)."""
        wanted = frozenset(n.lower() for n in names) or frozenset({"*"})
        stream: AmiEventStream

        def on_close() -> None:
            self._streams.discard(stream)

        stream = AmiEventStream(names=wanted, maxsize=maxsize, on_close=on_close)
        self._streams.add(stream)
        return stream

    def on_reconnect(self, callback: ResyncHook) -> None:
        """Run `callback` after every successful reconnect (not the first connect), in order."""
        self._resync_hooks.append(callback)

    def reconnect_delay_s(self, attempt: int) -> float:
        """Backoff before reconnect attempt `attempt` (0-based): exponential, capped, jittered."""
        base = self.reconnect_initial_s * self.reconnect_multiplier ** min(attempt, 64)
        jitter = self._rng.uniform(1 - self.reconnect_jitter, 1 + self.reconnect_jitter)
        return float(min(self.reconnect_max_s, base) * jitter)

    # --- connection lifecycle ---------------------------------------------------------------
    async def _open_and_login(self) -> _Link:
        async with asyncio.timeout(self.connect_timeout_s):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        loop = asyncio.get_running_loop()
        link = _Link(
            reader=reader,
            writer=writer,
            peer=self.peer,
            codec=AmiClientConnection(),
            banner=loop.create_future(),
        )
        self._link = link
        link.reader_task = asyncio.create_task(self._read_loop(link), name="ami-reader")
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                banner = await link.banner
            response = await self._request(
                "Login",
                {"Username": self.username, "Secret": self._secret, "Events": self._events_mode},
                is_list=False,
                timeout_s=self.login_timeout_s,
                link=link,
            )
            assert isinstance(response, AmiResponse)
            if not response.ok:
                raise AmiAuthenticationError(
                    f"AMI login to {link.peer} as {self.username!r} refused: "
                    f"{response.message or response.response}"
                )
        except BaseException:
            self._drop(link, "login did not complete")
            await asyncio.gather(link.reader_task, return_exceptions=True)
            raise
        link.logged_in = True
        self.connected = True
        self.banner_version = banner.version
        link.ping_task = asyncio.create_task(self._ping_loop(link), name="ami-ping")
        log.info(
            "AMI: logged in to %s as %s (manager %s)", link.peer, self.username, banner.version
        )
        return link

    async def _supervise(self, link: _Link) -> None:
        while True:
            await link.lost.wait()
            if self._closing:
                return
            link = await self._reconnect()
            self.reconnects_total += 1
            for hook in list(self._resync_hooks):
                try:
                    await hook()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("AMI: resync hook %r failed after reconnect", hook)

    async def _reconnect(self) -> _Link:
        attempt = 0
        while True:
            delay_s = self.reconnect_delay_s(attempt)
            log.info(
                "AMI: reconnecting to %s in %.2f s (attempt %d)", self.peer, delay_s, attempt + 1
            )
            await asyncio.sleep(delay_s)
            try:
                return await self._open_and_login()
            except AmiAuthenticationError as exc:
                log.error("AMI: %s", exc)
            except (OSError, TimeoutError, AmiError) as exc:
                log.warning("AMI: reconnect to %s failed: %r", self.peer, exc)
            attempt += 1

    def _drop(self, link: _Link, reason: str) -> None:
        """Mark `link` dead: fail its pending actions, stop its pinger, abort the socket."""
        if link.lost.is_set():
            return
        link.lost.set()
        if link is self._link:
            was_up = self.connected
            self.connected = False
            error = AmiConnectionLost(f"AMI link to {link.peer} lost: {reason}")
            pending, self._pending = self._pending, {}
            for item in pending.values():
                if not item.future.done():
                    item.future.set_exception(error)
            if was_up and not self._closing:
                log.warning("AMI: link to %s lost: %s", link.peer, reason)
        if not link.banner.done():
            link.banner.set_exception(AmiConnectionLost(f"AMI link to {link.peer}: {reason}"))
        if link.ping_task is not None and link.ping_task is not asyncio.current_task():
            link.ping_task.cancel()
        link.writer.transport.abort()

    async def _read_loop(self, link: _Link) -> None:
        reason = "connection closed by Asterisk"
        try:
            while True:
                data = await link.reader.read(_READ_CHUNK)
                for packet in link.codec.receive_data(data):
                    if isinstance(packet, ConnectionClosed):
                        return
                    self._on_packet(link, packet)
        except RemoteProtocolError as exc:
            self.protocol_errors_total += 1
            reason = f"protocol error: {exc}"
            log.error("AMI: garbage from %s (%s); closing the connection", link.peer, exc)
        except (ConnectionError, OSError) as exc:
            reason = f"socket error: {exc!r}"
        finally:
            self._drop(link, reason)

    async def _ping_loop(self, link: _Link) -> None:
        while not link.lost.is_set():
            await asyncio.sleep(self.ping_interval_s)
            try:
                await self._request(
                    "Ping", {}, is_list=False, timeout_s=self.ping_timeout_s, link=link
                )
            except AmiActionTimeout:
                self.ping_failures_total += 1
                self._drop(link, f"no Pong within {self.ping_timeout_s:g} s (dead link)")
                return
            except AmiConnectionLost:
                return

    # --- actions ----------------------------------------------------------------------------
    async def _request(
        self,
        name: str,
        headers: Mapping[str, HeaderValue],
        *,
        is_list: bool,
        timeout_s: float | None,
        link: _Link | None = None,
    ) -> AmiResponse | AmiEventList:
        if link is None:
            link = self._link
            if link is None or not link.logged_in or link.lost.is_set():
                raise AmiConnectionLost(f"AMI not connected to {self.peer}")
        elif link.lost.is_set():
            raise AmiConnectionLost(f"AMI link to {link.peer} is down")
        action_id = next(self._ids)
        data = link.codec.send_action(name, headers, action_id=action_id)  # our misuse raises
        future: asyncio.Future[AmiResponse | AmiEventList] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[action_id] = _Pending(name=name, future=future, is_list=is_list)
        self.actions_total += 1
        timeout = self.action_timeout_s if timeout_s is None else timeout_s
        try:
            link.writer.write(data)
            async with asyncio.timeout(timeout):
                await link.writer.drain()
                return await future
        except TimeoutError:
            raise AmiActionTimeout(
                f"no response to AMI {name} ({action_id}) from {link.peer} within {timeout:g} s"
            ) from None
        except AmiConnectionLost:
            raise
        except (ConnectionError, OSError) as exc:
            raise AmiConnectionLost(f"AMI link to {link.peer} lost: {exc!r}") from exc
        finally:
            self._pending.pop(action_id, None)

    def _on_packet(self, link: _Link, packet: AmiBanner | AmiResponse | AmiEvent) -> None:
        self.last_packet_at = self._clock()
        if isinstance(packet, AmiBanner):
            if not link.banner.done():
                link.banner.set_result(packet)
            return
        if isinstance(packet, AmiResponse):
            self._on_response(packet)
            return
        self.events_total += 1
        action_id = packet.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is not None and pending.is_list and pending.response is not None:
            self._on_list_event(pending, packet)
            return
        self._dispatch(packet)

    def _on_response(self, response: AmiResponse) -> None:
        action_id = response.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is None or pending.future.done():
            log.debug("AMI: response to no pending action (ActionID %r)", action_id)
            return
        if pending.is_list:
            if (response.get("EventList") or "").lower() == "start":
                pending.response = response
                return
            pending.future.set_result(AmiEventList(response=response, events=(), complete=None))
            return
        pending.future.set_result(response)

    def _on_list_event(self, pending: _Pending, event: AmiEvent) -> None:
        if pending.future.done():
            return
        assert pending.response is not None
        if (event.get("EventList") or "").lower() != "complete":
            pending.items.append(event)
            if len(pending.items) > MAX_LIST_ITEMS:
                pending.future.set_exception(
                    RemoteProtocolError(f"AMI {pending.name} list exceeds {MAX_LIST_ITEMS} items")
                )
            return
        declared = event.get("ListItems")
        if declared is not None and declared.strip() != str(len(pending.items)):
            pending.future.set_exception(
                RemoteProtocolError(
                    f"AMI {pending.name}: ListItems says {declared} but "
                    f"{len(pending.items)} item events arrived"
                )
            )
            return
        pending.future.set_result(
            AmiEventList(response=pending.response, events=tuple(pending.items), complete=event)
        )

    # --- event fan-out ----------------------------------------------------------------------
    def _dispatch(self, event: AmiEvent) -> None:
        callbacks = [
            *self._subscribers.get(event.name.lower(), ()),
            *self._subscribers.get("*", ()),
        ]
        for callback in callbacks:
            try:
                result = callback(event)
            except Exception:
                log.exception("AMI: event callback %r failed on %s", callback, event.name)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._callback_tasks.add(task)
                task.add_done_callback(self._callback_done)
        for stream in list(self._streams):
            if not stream._offer(event):
                self.events_dropped_total += 1

    def _callback_done(self, task: asyncio.Task[None]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI: async event callback failed", exc_info=task.exception())
