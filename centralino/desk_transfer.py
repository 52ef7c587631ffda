"""An agent's blind transfer from the desktop, over AMI: the caller bridged with the agent's
channel goes to `<queue>@centralino-transfer` (asterisk_conf/extensions.conf), exactly as when
the agent's phone sends a SIP REFER there.

AMI's `BlindTransfer` action acts on the transferer's channel (the agent's); Asterisk then raises
the same `BlindTransfer` event a phone's transfer raises, which `centralino.ami_watch` already
turns into the call leaving the agent and re-entering FastAGI at that queue. The agent's channel
is found in `CoreShowChannels`: the one of the agent's endpoint that is in a bridge.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from acd.models import AgentDefinition
from centralino.asterisk.ami import AmiError
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import AmiGroup
from centralino.settings import TRANSFER_CONTEXT

log = logging.getLogger(__name__)

ACTION_TIMEOUT_S = 5.0


class TransferRefused(Exception):
    """The transfer cannot be made now (no call, AMI down, Asterisk said no): the agent's
    problem to see, not a bug."""


class AmiDeskTransfer:
    def __init__(
        self,
        *,
        ami: AmiGroup | AmiClient | None,
        agents: Mapping[str, AgentDefinition],
        queues: Collection[str],
        context: str = TRANSFER_CONTEXT,
    ) -> None:
        self._ami = AmiGroup.of(ami) if ami is not None else None
        self._agents = agents
        self.queues = list(queues)
        self._context = context

    async def transfer(self, agent_id: str, *, queue: str) -> str:
        """Transfer the agent's caller to `queue`; the agent's channel transferred."""
        if queue not in self.queues:
            raise ValueError(f"no queue named {queue!r}")
        agent = self._agents.get(agent_id)
        if agent is None:
            raise LookupError(f"no agent {agent_id!r}")
        if self._ami is None:
            raise TransferRefused("no telephony link (AMI) is configured")
        link = self._ami.link(agent.endpoint)
        try:
            channels = await link.action_list("CoreShowChannels", timeout_s=ACTION_TIMEOUT_S)
            prefix = f"{agent.endpoint}-"
            bridged = [
                e.get("Channel", "") or ""
                for e in channels.events
                if (e.get("Channel") or "").startswith(prefix) and e.get("BridgeId")
            ]
            if not bridged:
                raise TransferRefused(f"{agent_id} has no call in progress to transfer")
            response = await link.action(
                "BlindTransfer",
                Channel=bridged[0],
                Context=self._context,
                Exten=queue,
                timeout_s=ACTION_TIMEOUT_S,
            )
        except (AmiError, ConnectionError, TimeoutError) as exc:
            raise TransferRefused(f"the telephony link failed: {exc}") from exc
        if not response.ok:
            raise TransferRefused(f"Asterisk refused the transfer: {response.message}")
        log.info("agent %s transferred %s to %s@%s", agent_id, bridged[0], queue, self._context)
        return bridged[0]
