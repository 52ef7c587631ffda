"""Listen, whisper and barge over AMI: the supervisor's phone is originated into the dialplan's
`centralino-supervise` context (ChanSpy on the agent's channel; `contact.supervision` says how).

The Originate is asynchronous (`Async: true`): AMI answers at once and the supervisor's phone
rings meanwhile; the AMI session is never held for the ring. Only an agent the ACD shows on a
live call (ringing or talking) can be supervised; who may supervise whom (a supervisor's own
teams) is decided by the web layer's access rules before this is called, and it is audited
there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from acd.models import AgentDefinition, AgentState
from centralino.asterisk.ami import AmiError
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import AmiGroup
from contact.supervision import SUPERVISE_CONTEXT, SpyRequest, SupervisionRefused, spy_request

log = logging.getLogger(__name__)

ON_A_CALL = frozenset({AgentState.RINGING, AgentState.BUSY})
RING_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SpyStarted:
    request: SpyRequest
    action_id: str


class Supervision:
    """Starts a supervisor's ChanSpy session on an agent's call."""

    def __init__(
        self,
        *,
        ami: AmiGroup | AmiClient | None,
        agents: Mapping[str, AgentDefinition],
        agent_state: Callable[[str], Awaitable[AgentState | None]],
        ring_timeout_s: float = RING_TIMEOUT_S,
    ) -> None:
        self._ami = AmiGroup.of(ami) if ami is not None else None
        self._agents = agents
        self._agent_state = agent_state
        self._ring_timeout_s = ring_timeout_s

    def endpoint_of(self, agent_id: str) -> str | None:
        """The phone of an agent id (a supervisor's account names theirs by one)."""
        agent = self._agents.get(agent_id)
        return agent.endpoint if agent is not None else None

    async def spy(self, *, supervisor_endpoint: str, agent_id: str, mode: str) -> SpyStarted:
        """Ring the supervisor's phone into the agent's call; raises `SupervisionRefused`."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise SupervisionRefused(f"no agent {agent_id!r}")
        request = spy_request(
            supervisor_endpoint=supervisor_endpoint, agent_endpoint=agent.endpoint, mode=mode
        )
        state = await self._agent_state(agent_id)
        if state not in ON_A_CALL:
            raise SupervisionRefused(f"agent {agent_id} is not on a call ({state})")
        # ChanSpy runs on the Asterisk where the agent's call is: the supervisor's phone must
        # be there too, so the Originate goes to that server.
        link = self._ami.link(agent.endpoint) if self._ami is not None else None
        if link is None or not link.connected:
            raise SupervisionRefused("the telephony link (AMI) is down")
        try:
            response = await link.action(
                "Originate",
                Channel=request.supervisor_endpoint,
                Context=SUPERVISE_CONTEXT,
                Exten=request.mode.value,
                Priority="1",
                Timeout=str(int(self._ring_timeout_s * 1000)),
                CallerID=f"Supervision <{agent_id}>",
                Variable=request.variables,
                Async="true",
            )
        except AmiError as exc:
            raise SupervisionRefused(f"AMI: {exc}") from exc
        if not response.ok or response.action_id is None:
            raise SupervisionRefused(response.message or "Originate refused")
        log.info(
            "supervision: %s %s agent %s", request.supervisor_endpoint, request.mode.value, agent_id
        )
        return SpyStarted(request=request, action_id=response.action_id)
