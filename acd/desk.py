"""The agent desktop's and AMI's agent operations (login, ready, not ready, logout) and the
supervisor's wallboard figures."""

from __future__ import annotations

import math
from dataclasses import replace

from acd.errors import UnknownAgent
from acd.models import (
    AgentState,
    AgentStatus,
)
from acd.router_core import RouterCore
from acd.states import AgentEvent
from acd.stats import WallboardSnapshot, wallboard_from_log


async def agent_login(core: RouterCore, agent_id: str) -> AgentStatus:
    return await _agent(core, agent_id, AgentEvent.LOGIN, "")


async def agent_ready(core: RouterCore, agent_id: str) -> AgentStatus:
    return await _agent(core, agent_id, AgentEvent.READY, "")


async def agent_not_ready(core: RouterCore, agent_id: str, reason: str) -> AgentStatus:
    return await _agent(core, agent_id, AgentEvent.NOT_READY, reason)


async def agent_logout(core: RouterCore, agent_id: str, *, forced: bool = False) -> AgentStatus:
    """Logout (forced=True when AMI reports the device gone, from any state)."""
    event = AgentEvent.FORCE_LOGOUT if forced else AgentEvent.LOGOUT
    return await _agent(core, agent_id, event, "device_gone" if forced else "")


async def _agent(core: RouterCore, agent_id: str, event: AgentEvent, reason: str) -> AgentStatus:
    if agent_id not in core.agents:
        raise UnknownAgent(agent_id)
    now = core.clock.now()
    status = await core.store.agent_event(agent_id, event, now, reason=reason)
    data = status.state.value + (f":{reason}" if reason else "")
    await core.queue_log.write([core.agent_row(now, agent_id, data)])
    core.agent_cache = (-math.inf, [])
    core.wake()
    return status


# --- the supervisor's API ---------------------------------------------------------------------


async def snapshot(core: RouterCore, queue: str) -> WallboardSnapshot:
    """Wallboard figures: today's statistics from the queue log (UTC day), live waiting
    calls and agent states from the live store."""
    policy = core.policy(queue)
    now = core.clock.now()
    rows = await core.queue_log.read(since=now - now % 86400.0)
    snap = wallboard_from_log(
        rows, queue=queue, now=now, sl_t_s=policy.sl_target_s, sl_goal=policy.sl_goal
    )
    waiting = await core.store.waiting(queue)
    skill = core.primary_skill(queue)
    states: dict[str, int] = {}
    for status in await core.live_agents(now, fresh=True):
        agent = core.agents.get(status.agent_id)
        if status.state is AgentState.LOGGED_OUT:
            continue
        if agent is not None and (skill is None or skill in agent.all_skills()):
            states[status.state.value] = states.get(status.state.value, 0) + 1
    return replace(
        snap,
        waiting=len(waiting),
        longest_wait_s=max((now - w.arrived_at for w in waiting), default=0.0),
        agents_by_state=states,
    )
