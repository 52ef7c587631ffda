"""One Centralino process for `bench/chaos.py`: the composition root as `centralino serve` runs
it, on the benchmark's PostgreSQL, Redis and simulated Asterisk (AMI), in a process of its own
so that the benchmark can SIGKILL it.

    python bench/chaos_app.py CONFIG_JSON

Logs the listed agents in and makes them ready (a restarted process is given none: it finds them
in Redis, or in the queue log after Redis lost them), prints `READY`, runs until SIGTERM (a
graceful stop) or SIGKILL. Its log goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from acd.models import AgentDefinition, AgentState
from centralino.app import running
from centralino.settings import DatabaseSettings, ServerSettings, Settings
from contact.reconcile import ReconcilePolicy
from ivr.inbound import FlowSettings

SKILLS = {"support": 3, "billing": 3, "sales": 3}


async def _main(config: dict[str, object]) -> None:
    settings = Settings(
        server=ServerSettings(
            host="127.0.0.1",
            agi_port=int(str(config["agi_port"])),
            audiosocket_port=0,
            http_port=0,
            grace_s=5.0,
        ),
        database=DatabaseSettings(spool_dir=Path(str(config["spool_dir"]))),
    )
    agents = [
        AgentDefinition(
            agent_id=str(agent), skills=SKILLS, endpoint=f"PJSIP/{agent}", wrap_up_s=0.0
        )
        for agent in list(config["agents"])  # type: ignore[call-overload]
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with running(
        settings,
        database_url=str(config["database_url"]),
        redis_url=str(config["redis_url"]),
        backends=[],
        agents=agents,
        ami_endpoint=("127.0.0.1", int(str(config["ami_port"])), "centralino", "chaos-secret"),
        flow=FlowSettings(menu_timeout_ms=2000, hold_poll_ms=200, ring_timeout_s=10),
        owner=str(config["owner"]),
        live_check_s=0.5,
        reconcile=ReconcilePolicy(item_grace_s=3.0, agent_grace_s=10.0),
    ) as runtime:
        for agent in list(config["ready"]):  # type: ignore[call-overload]
            status = await runtime.router.agent_login(str(agent))
            if status.state is AgentState.NOT_READY:
                await runtime.router.agent_ready(str(agent))
        print("READY", flush=True)
        await stop.wait()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_main(json.loads(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
