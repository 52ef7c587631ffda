"""Centralino in a process of its own, for tests that kill it (SIGKILL) under a real Asterisk.

    python -m tests.real_asterisk.app_process CONFIG_JSON

CONFIG_JSON holds the ports, URLs and agents (see `AppConfig`). The process starts the
composition root as `centralino serve` would, logs the listed agents in and makes them ready
(a restarted process is given none: it finds them in Redis as the crash left them), prints
`READY` on stdout, and runs until killed. Its log goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from acd.models import AgentDefinition, AgentState
from centralino.app import running
from centralino.settings import DatabaseSettings, ServerSettings, Settings
from contact.reconcile import ReconcilePolicy
from ivr.inbound import FlowSettings


@dataclass(frozen=True, slots=True)
class AppConfig:
    agi_port: int
    audiosocket_port: int
    ami_port: int
    ami_user: str
    ami_secret: str
    database_url: str
    redis_url: str
    agents: list[str]  # every agent the ACD knows, phones Local/<id>@test-phones
    ready: list[str]  # those to log in and make ready at start
    present: list[str]  # those to log in only (not ready: callers wait in the queue)
    agent_grace_s: float  # the reconciling sweep's patience with an agent without a channel
    spool_dir: str  # record spool and call journal (the restarted process adopts the killed one's)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


async def _main(config: AppConfig) -> None:
    settings = Settings(
        server=ServerSettings(
            host="127.0.0.1",
            agi_port=config.agi_port,
            audiosocket_port=config.audiosocket_port,
            http_port=0,
            grace_s=2.0,
        ),
        database=DatabaseSettings(spool_dir=Path(config.spool_dir)),
    )
    agents = [
        AgentDefinition(
            agent_id=agent,
            skills={"support": 3, "billing": 3, "sales": 3},
            endpoint=f"Local/{agent}@test-phones",
            wrap_up_s=0.0,
        )
        for agent in config.agents
    ]
    async with running(
        settings,
        database_url=config.database_url,
        redis_url=config.redis_url,
        backends=[],
        agents=agents,
        ami_endpoint=("127.0.0.1", config.ami_port, config.ami_user, config.ami_secret),
        flow=FlowSettings(menu_timeout_ms=6000, hold_poll_ms=200, ring_timeout_s=10),
        owner=f"crash-test-{config.agi_port}",
        live_check_s=0.5,
        reconcile=ReconcilePolicy(item_grace_s=2.0, agent_grace_s=config.agent_grace_s),
    ) as runtime:
        for agent in config.ready:
            status = await runtime.router.agent_login(agent)
            if status.state is AgentState.NOT_READY:
                await runtime.router.agent_ready(agent)
        for agent in config.present:
            await runtime.router.agent_login(agent)
        print("READY", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = AppConfig(**json.loads(argv[1]))
    asyncio.run(_main(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
