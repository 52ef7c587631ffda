"""Rebuilding the ACD's live state when Redis lost it.

Redis holds only live state (agents' states, waiting calls, reservations) and may restart
without persistence. A marker key says "this Redis has our state"; when it is missing — at
start on a fresh Redis, or later after a restart — one process (the one whose `SET NX` wins)
rebuilds: agents from their last state in the PostgreSQL queue log, calls still up from AMI's
`CoreShowChannels` (a caller bridged to an agent's channel makes that agent busy), callback
requests from the queue log. Calls whose channel is gone are dropped, as Asterisk dropped them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import redis.asyncio as aioredis

from acd.ports import Clock, QueueLogSink
from acd.service import ChannelFact, DeviceFact, RebuildReport, Router
from centralino.asterisk.ami_client import AmiClient

log = logging.getLogger(__name__)

MARKER_KEY = "centralino:live-state"
# The queue log since this long ago is enough to know every agent's last state and every
# call that may still be waiting (no call waits a day).
HISTORY_S = 86_400.0


class LiveStateGuard:
    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        router: Router,
        queue_log: QueueLogSink,
        clock: Clock,
        agents: Mapping[str, str],  # agent id -> endpoint (what their channels are named after)
        ami: AmiClient | None,
        owner: str,
        interval_s: float = 2.0,
    ) -> None:
        self._redis = redis
        self._router = router
        self._queue_log = queue_log
        self._clock = clock
        self._agents = dict(agents)
        self._ami = ami
        self._owner = owner
        self._interval_s = interval_s
        self._closing = False
        self.rebuilds_total = 0

    async def check(self) -> RebuildReport | None:
        """Rebuild if the marker is gone and this process claims the job; else None."""
        if not await self._redis.set(MARKER_KEY, self._owner, nx=True):
            return None
        channels = await self._channels()
        rows = await self._queue_log.read(since=self._clock.now() - HISTORY_S)
        devices = [DeviceFact(agent_id, available=True) for agent_id in self._agents]
        report = await self._router.rebuild(devices=devices, channels=channels, rows=rows)
        self.rebuilds_total += 1
        log.warning(
            "live state rebuilt (Redis had none): %d agents, %d busy, %d calls requeued, "
            "%d dropped",
            report.agents,
            report.busy,
            report.requeued,
            report.dropped,
        )
        return report

    async def _channels(self) -> list[ChannelFact]:
        """Calls still up, from AMI; none known when the AMI link is down."""
        if self._ami is None or not self._ami.connected:
            return []
        listing = await self._ami.action_list("CoreShowChannels", timeout_s=5.0)
        by_bridge: dict[str, list[tuple[str, str]]] = {}
        for event in listing.events:
            name, uniqueid = event.get("Channel") or "", event.get("Uniqueid") or ""
            by_bridge.setdefault(event.get("BridgeId") or f"solo:{uniqueid}", []).append(
                (name, uniqueid)
            )
        endpoint_agent = {endpoint: agent for agent, endpoint in self._agents.items()}
        facts: list[ChannelFact] = []
        for members in by_bridge.values():
            agent = next(
                (
                    endpoint_agent[n.rsplit("-", 1)[0]]
                    for n, _ in members
                    if n.rsplit("-", 1)[0] in endpoint_agent
                ),
                "",
            )
            for name, uniqueid in members:
                if name.rsplit("-", 1)[0] not in endpoint_agent:
                    facts.append(ChannelFact(item_id=uniqueid, agent_id=agent))
        return facts

    async def run(self) -> None:
        """Check every `interval_s` until closed (a failed check is retried, not fatal)."""
        while not self._closing:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis or AMI down right now: the next check tries again
                log.exception("checking the live state failed")

    def close(self) -> None:
        self._closing = True
