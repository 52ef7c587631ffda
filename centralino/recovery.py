"""Keeping the ACD's live state true: rebuilding it when Redis lost it, reconciling it with
Asterisk's channels when nobody is left to finish what it says is happening.

Rebuild. Redis holds only live state (agents' states, waiting calls, reservations) and may
restart without persistence. A marker key says "this Redis has our state"; when it is missing —
at start on a fresh Redis, or later after a restart — one process (the one whose `SET NX` wins)
rebuilds: agents from their last state in the PostgreSQL queue log, calls still up from AMI's
`CoreShowChannels` (a caller bridged to an agent's channel makes that agent busy), callback
requests from the queue log. Calls whose channel is gone are dropped, as Asterisk dropped them.
While AMI is configured but not connected yet (at start it connects after us), the rebuild
waits for it, up to `ami_wait_s`: without channels every call would look dead.

Reconciling sweep (on when the guard is given a `reconcile` policy). Redis kept its state but a
process died holding callers (SIGKILL), or an AMI event was lost: agents stay RESERVED or BUSY
for good. Every interval, after the marker check, one process (the holder of a short lease,
`SET NX PX` renewed while it lives) compares the live state with the channels up and applies
what `contact.reconcile` decides through the router's conditional operations (safe however
many processes run them). Without AMI the
channels are unknown and nothing is decided. The sweep trusts CoreShowChannels to list every
call: a peer that does not (the simulator's FastAGI calls have no channel in its AMI server)
must not run it, or its waiting callers are dropped as gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import redis.asyncio as aioredis

from acd.ports import Clock, QueueLogSink
from acd.service import ChannelFact, DeviceFact, RebuildReport, Router
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import AmiGroup
from contact.reconcile import (
    NO_ABSENCES,
    DropItem,
    Fix,
    ReconcilePolicy,
    reconcile,
)

log = logging.getLogger(__name__)

MARKER_KEY = "centralino:live-state"
# Held by the one process that sweeps (see the module docstring).
SWEEP_LEASE_KEY = "centralino:reconcile-lease"
# The queue log since this long ago is enough to know every agent's last state and every
# call that may still be waiting (no call waits a day).
HISTORY_S = 86_400.0
# CoreShowChannels on a busy box lists a few thousand channels in well under a second.
CHANNELS_TIMEOUT_S = 5.0
# Renew the lease only if we hold it (a lapsed lease may be another process's by now).
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
)


class LiveStateGuard:
    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        router: Router,
        queue_log: QueueLogSink,
        clock: Clock,
        agents: Mapping[str, str],  # agent id -> endpoint (what their channels are named after)
        ami: AmiGroup | AmiClient | None,
        owner: str,
        interval_s: float = 2.0,
        reconcile: ReconcilePolicy | None = None,
        ami_wait_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._router = router
        self._queue_log = queue_log
        self._clock = clock
        self._agents = dict(agents)
        self._endpoint_agent = {endpoint: agent for agent, endpoint in self._agents.items()}
        # Every Asterisk server's channels: the sweep decides only while it sees them all.
        self._ami = AmiGroup.of(ami) if ami is not None else None
        self._owner = owner
        self._interval_s = interval_s
        self._policy = reconcile
        self._monotonic = monotonic
        self._ami_deadline = monotonic() + ami_wait_s
        # A lapsed leader's sweeps take over within this; short, so that stuck agents are
        # freed soon after a crash, longer than an interval so that a live leader keeps it.
        self._lease_ms = int(max(3 * interval_s, 1.0) * 1000)
        self._absent = NO_ABSENCES
        self._closing = False
        self.rebuilds_total = 0
        self.sweeps_total = 0
        self.fixes_total = 0

    def _waiting_for_ami(self) -> bool:
        """AMI is configured, not connected yet, and we may still wait for it."""
        return (
            self._ami is not None
            and not self._ami.connected
            and self._monotonic() < self._ami_deadline
        )

    async def check(self) -> RebuildReport | None:
        """Rebuild if the marker is gone and this process claims the job; else None (also
        while AMI is not connected yet, within `ami_wait_s` of the guard's creation)."""
        if self._waiting_for_ami():
            return None
        if not await self._redis.set(MARKER_KEY, self._owner, nx=True):
            return None
        try:
            channels = await self._channels()
            rows = await self._queue_log.read(since=self._clock.now() - HISTORY_S)
            devices = [DeviceFact(agent_id, available=True) for agent_id in self._agents]
            report = await self._router.rebuild(devices=devices, channels=channels, rows=rows)
        except BaseException:
            # Not rebuilt: let the next check (ours or another process's) try again.
            await asyncio.shield(self._redis.delete(MARKER_KEY))
            raise
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
        """Callers' channels still up, from AMI; none known when the AMI link is down."""
        if self._ami is None or not self._ami.connected:
            return []
        return [f for f, own in await self._channel_listing() if not own]

    async def _channel_listing(self) -> list[tuple[ChannelFact, bool]]:
        """Every channel up, with the agent it belongs to or is bridged with, and whether it
        is that agent's own leg (their phone) rather than a caller's."""
        assert self._ami is not None
        listing = await self._ami.action_list("CoreShowChannels", timeout_s=CHANNELS_TIMEOUT_S)
        by_bridge: dict[str, list[tuple[str, str]]] = {}
        for event in listing.events:
            name, uniqueid = event.get("Channel") or "", event.get("Uniqueid") or ""
            by_bridge.setdefault(event.get("BridgeId") or f"solo:{uniqueid}", []).append(
                (name, uniqueid)
            )
        facts: list[tuple[ChannelFact, bool]] = []
        for members in by_bridge.values():
            owners = [self._endpoint_agent.get(_endpoint(n), "") for n, _ in members]
            bridged = next((a for a in owners if a), "")
            for (_, uniqueid), own in zip(members, owners, strict=True):
                facts.append((ChannelFact(item_id=uniqueid, agent_id=own or bridged), bool(own)))
        return facts

    async def sweep(self) -> list[Fix] | None:
        """One reconciling sweep if this process holds (or takes) the lease, else None (also
        when the guard was built without a `reconcile` policy); the fixes applied (those that
        found their target still as the snapshot saw it)."""
        policy = self._policy
        if policy is None:
            return None
        if not await self._lead():
            self._absent = NO_ABSENCES  # another process sweeps: what we saw goes stale
            return None
        channels: list[ChannelFact] | None = None
        if self._ami is not None and self._ami.connected:
            channels = [f for f, _ in await self._channel_listing()]
        snapshot = await self._router.live_snapshot()
        now = self._clock.now()
        plan = reconcile(
            live=snapshot,
            channels=channels,
            queue_log=(),
            now=now,
            policy=policy,
            absent=self._absent,
        )
        if plan.fixes:  # what to log depends on the queue log: read it only when needed
            rows = await self._queue_log.read(since=now - HISTORY_S)
            plan = reconcile(
                live=snapshot,
                channels=channels,
                queue_log=rows,
                now=now,
                policy=policy,
                absent=self._absent,
            )
        self._absent = plan.absent
        self.sweeps_total += 1
        applied: list[Fix] = []
        for fix in plan.fixes:
            try:
                done = await self._apply(fix)
            except asyncio.CancelledError:
                raise
            except Exception:  # one fix failing (Redis blip) must not stop the others
                log.exception("reconciling: applying %r failed", fix)
                continue
            if done:
                applied.append(fix)
                log.warning("reconciled: %r", fix)
        self.fixes_total += len(applied)
        return applied

    async def _apply(self, fix: Fix) -> bool:
        if isinstance(fix, DropItem):
            gone = await self._router.drop_item(
                fix.item_id, reason=fix.reason, log_abandon=fix.log_abandon
            )
            return gone is not None
        conv = fix.conversation
        status = await self._router.free_agent(
            fix.agent_id,
            state=fix.state,
            since=fix.since,
            reason=fix.reason,
            conversation=None if conv is None else (conv.item_id, conv.queue, conv.connected_at),
        )
        return status is not None

    async def _lead(self) -> bool:
        if await self._redis.set(SWEEP_LEASE_KEY, self._owner, nx=True, px=self._lease_ms):
            return True
        renewed = await self._redis.eval(_RENEW, 1, SWEEP_LEASE_KEY, self._owner, self._lease_ms)
        return bool(renewed)

    async def run(self) -> None:
        """Check, then sweep, every `interval_s` until closed (a failure is logged and tried
        again next time, never fatal)."""
        while not self._closing:
            for step in (self.check, self.sweep):
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # Redis or AMI down right now: the next round tries again
                    log.exception("keeping the live state true failed (%s)", step.__name__)
            await asyncio.sleep(self._interval_s)

    def close(self) -> None:
        self._closing = True


def _endpoint(channel: str) -> str:
    """`PJSIP/agent101-0000002a` -> `PJSIP/agent101` (a channel is its endpoint plus a
    sequence number; Local channels end in `;1` / `;2` after it)."""
    return channel.rsplit("-", 1)[0]
