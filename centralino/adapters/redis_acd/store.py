"""`RedisLiveStore`: the ACD's live state in Redis, one function call per operation (the
package docstring has the key layout and what the functions cost)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from acd.models import (
    AgentDefinition,
    AgentState,
    AgentStatus,
    Channel,
    Discarded,
    LiveSnapshot,
    Reservation,
    RouteRequest,
    Strategy,
    WaitingItem,
    WorkItem,
)
from acd.states import AgentEvent

from .batch import Batches, Command
from .codec import (
    CHANNELS,
    add_and_route_args,
    add_item_args,
    added_from,
    as_float,
    as_str,
    domain_error,
    finish_args,
    finished_from,
    reservation_from,
    reservations_from,
    status_from,
    waiting_from,
)
from .functions import command as functions_command
from .functions import load_eval_scripts, load_library, not_loaded


class RedisLiveStore:
    """`acd.ports.LiveStore` over one Redis database (see the package docstring)."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        prefix: str = "acd:",
        strategies: Sequence[Strategy] = tuple(Strategy),
        functions: bool | None = None,
    ) -> None:
        """`functions`: run the operations as Redis functions (True, Redis >= 7) or as EVAL
        scripts (False); None: functions where the server has them."""
        if not strategies:
            raise ValueError("at least one strategy must be maintained")
        self._client = client
        # redis-py leaves `execute_command` untyped
        self._execute_command = cast(Callable[..., Awaitable[Any]], client.execute_command)
        self._prefix = prefix
        self._strategies = tuple(strategies)
        self._head = [prefix, ",".join(s.value for s in self._strategies)]
        # Redis functions, or EVAL scripts on a Redis without them (None: not known yet).
        self._functions = functions
        self._batches = Batches(client)

    async def _run(self, name: str, *args: object) -> Any:
        try:
            return await self._execute_command(*self.command(name, *args))
        except ResponseError as exc:
            if not not_loaded(exc):
                raise domain_error(exc) from None
        await self.load_scripts()  # a fresh Redis, or one restarted without persistence
        try:
            return await self._execute_command(*self.command(name, *args))
        except ResponseError as exc:
            raise domain_error(exc) from None

    async def load_scripts(self) -> None:
        """Load the function library into Redis (EVAL scripts on Redis < 7): before `command`
        and `execute`; the methods load it themselves when Redis lost it."""
        if self._functions is not False:
            required = bool(self._functions)
            if await load_library(self._execute_command, required=required):
                self._functions = True
                return
            self._functions = False
        await load_eval_scripts(self._client.script_load)

    def command(self, operation: str, *args: object) -> tuple[str | int, ...]:
        """One operation as a raw Redis command (raw arguments, as the methods below pass
        them), for `execute` or a redis-py pipeline; the library must be loaded
        (`load_scripts`). Its reply is raw: `reservations_from`, `reservation_from` and
        `status_from` decode it."""
        return functions_command(self._functions, self._head, operation, args)

    def execute(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Send `commands` in one round trip, at once when the connection is open; returns the
        future of their raw replies in order, an error reply as its `ResponseError`. Each
        operation stays atomic on its own (MULTI/EXEC may group some); concurrent batches
        overlap on the connection, each answered in order.

        For hot paths that batch (the routing benchmark): the commands go over the store's own
        connection (`batch.Batches`), packed and parsed by hiredis, at about a third of a
        redis-py pipeline's client CPU. `aclose` closes it."""
        return self._batches.execute(commands)

    async def aclose(self) -> None:
        """Close the connection `execute` opened, if any (the redis-py client is the caller's)."""
        self._batches.close()

    @property
    def sequence_key(self) -> str:
        """The counter whose INCR numbers reservations (`{owner}-{n}`)."""
        return f"{self._prefix}seq"

    async def put_agent(self, agent: AgentDefinition, now: float) -> None:
        skills = ",".join(f"{s}={lv}" for s, lv in sorted(agent.all_skills().items()))
        caps = ",".join(f"{c.value}={agent.capacity.of(c)}" for c in Channel)
        await self._run(
            "put_agent", agent.agent_id, skills, caps, ",".join(sorted(agent.teams)), now
        )

    async def agent_event(
        self, agent_id: str, event: AgentEvent, now: float, *, reason: str = ""
    ) -> AgentStatus:
        return status_from(await self._run("agent_event", agent_id, event.value, now, reason))

    async def add_item(
        self, item: WorkItem, *, steps: str, owner: str, entered_at: float, front: bool = False
    ) -> int:
        args = add_item_args(item, steps=steps, owner=owner, entered_at=entered_at, front=front)
        return int(await self._run("add_item", *args))

    async def add_and_route(
        self,
        item: WorkItem,
        *,
        steps: str,
        owner: str,
        entered_at: float,
        request: RouteRequest,
        window: int,
    ) -> tuple[int, list[Reservation]]:
        if request.strategy not in self._strategies:
            raise ValueError(f"strategy {request.strategy} is not maintained by this store")
        args = add_and_route_args(
            item, steps=steps, owner=owner, entered_at=entered_at, request=request, window=window
        )
        return added_from(await self._run("add_item", *args))

    async def remove_item(self, item_id: str) -> WaitingItem | None:
        raw = await self._run("remove_item", item_id)
        return None if raw is None else waiting_from(raw)

    async def route(
        self, queue: str, now: float, owner: str, *, strategy: Strategy, window: int, ttl_s: float
    ) -> list[Reservation]:
        if strategy not in self._strategies:
            raise ValueError(f"strategy {strategy} is not maintained by this store")
        raw = await self._run("route", queue, now, owner, strategy.value, window, ttl_s)
        return reservations_from(raw)

    async def route_many(
        self, requests: Sequence[RouteRequest], now: float, owner: str, *, window: int
    ) -> list[Reservation]:
        for request in requests:
            if request.strategy not in self._strategies:
                raise ValueError(f"strategy {request.strategy} is not maintained by this store")
        if not requests:
            return []

        async def send() -> list[Any]:
            # The caller's redis-py client (pooled, closed by its owner), pipelined: one round
            # trip for the pass; `execute`'s own connection is for hot paths that manage it.
            async with self._client.pipeline(transaction=False) as pipe:
                for r in requests:
                    pipe.execute_command(
                        *self.command(
                            "route", r.queue, now, owner, r.strategy.value, window, r.ttl_s
                        )
                    )
                return list(await pipe.execute(raise_on_error=False))

        replies = await send()
        errors = [r for r in replies if isinstance(r, ResponseError)]
        if errors and len(errors) == len(replies) and all(not_loaded(e) for e in errors):
            await self.load_scripts()  # a fresh Redis, or one restarted without persistence
            replies = await send()
            errors = [r for r in replies if isinstance(r, ResponseError)]
        if errors:
            raise domain_error(errors[0])
        return [reservation_from(raw) for reply in replies for raw in reply]

    async def take_offers(self, owner: str, *, limit: int = 1000) -> list[Reservation]:
        raw = await self._run("take_offers", owner, limit)
        return reservations_from(raw)

    async def accept(self, reservation_id: str, now: float, *, ttl_s: float) -> Reservation:
        return reservation_from(await self._run("accept", reservation_id, now, ttl_s))

    async def connect(self, reservation_id: str, now: float) -> Reservation:
        return reservation_from(await self._run("connect", reservation_id, now))

    async def release(
        self, reservation_id: str, now: float, *, event: AgentEvent, reason: str = ""
    ) -> Reservation | None:
        raw = await self._run("release", reservation_id, now, event.value, reason)
        return None if raw is None else reservation_from(raw)

    async def finish(
        self, agent_id: str, channel: Channel, now: float, *, worked_s: float, wrap_up_s: float
    ) -> AgentStatus:
        raw = await self._run("finish", agent_id, channel.value, now, worked_s, wrap_up_s)
        return status_from(raw)

    async def finish_and_route(
        self,
        agent_id: str,
        channel: Channel,
        now: float,
        *,
        worked_s: float,
        wrap_up_s: float,
        owner: str,
        requests: Sequence[RouteRequest],
        window: int,
    ) -> tuple[AgentStatus, Reservation | None]:
        args = finish_args(
            agent_id,
            channel,
            now,
            worked_s=worked_s,
            wrap_up_s=wrap_up_s,
            owner=owner,
            requests=requests,
            window=window,
        )
        return finished_from(await self._run("finish", *args))

    async def sweep(self, now: float) -> tuple[list[Reservation], list[str]]:
        expired, wrapped = await self._run("sweep", now)
        return reservations_from(expired), [as_str(a) for a in wrapped]

    async def heartbeat(self, owner: str, now: float, *, ttl_s: float) -> None:
        await self._client.set(f"{self._prefix}own:{owner}", "1", px=max(1, int(ttl_s * 1000)))

    async def park_transfer(self, item_id: str, record: str, *, ttl_s: float) -> None:
        key = f"{self._prefix}xfer:{item_id}"
        await self._client.set(key, record, px=max(1, int(ttl_s * 1000)))

    async def take_transfer(self, item_id: str) -> str | None:
        # GETDEL (Redis 6.2): one process takes it, however many ask at once.
        raw = await self._client.getdel(f"{self._prefix}xfer:{item_id}")
        return None if raw is None else as_str(raw)

    async def waiting(self, queue: str) -> list[WaitingItem]:
        raw = await self._run("waiting", queue)
        return [
            WaitingItem(
                as_str(i),
                queue,
                int(as_str(pr)),
                as_float(arr),
                as_str(own),
                as_str(cb) or None,
                CHANNELS[as_str(ch)],
            )
            for i, pr, arr, own, cb, ch in raw
        ]

    async def position(self, item_id: str) -> int:
        return int(await self._run("position", item_id))

    async def agents(self) -> list[AgentStatus]:
        return [status_from(r) for r in await self._run("agents")]

    async def snapshot(self, queues: Sequence[str]) -> LiveSnapshot:
        agents, held, callbacks, waiting = await self._run("snapshot", *queues)
        return LiveSnapshot(
            agents=tuple(status_from(r) for r in agents),
            reservations=tuple(reservations_from(held)),
            waiting=tuple(waiting_from(w) for w in waiting),
            callbacks=frozenset(as_str(i) for i in callbacks),
        )

    async def discard_item(self, item_id: str, now: float) -> Discarded | None:
        raw = await self._run("discard_item", item_id, now)
        if raw is None:
            return None
        item, res = raw
        return Discarded(waiting_from(item), None if res is None else reservation_from(res))

    async def reset_agent(
        self, agent_id: str, *, state: AgentState, since: float, now: float
    ) -> AgentStatus | None:
        raw = await self._run("reset_agent", agent_id, state.value, since, now)
        return None if raw is None else status_from(raw)
