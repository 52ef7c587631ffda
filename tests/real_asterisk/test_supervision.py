"""A supervisor listens to, whispers to and barges into an agent's call on the real Asterisk:
the app originates the supervisor's phone into `centralino-supervise`, whose ChanSpy attaches to
the agent's channel (Asterisk's own ChanSpyStart event says on which)."""

from __future__ import annotations

import pytest

from acd.models import AgentState
from centralino.adapters.redis_acd import RedisLiveStore
from centralino.supervision import Supervision
from contact.supervision import SupervisionRefused
from tests.real_asterisk.conftest import RealWorld, phone_endpoint
from tests.real_asterisk.driver import CallDriver

pytestmark = pytest.mark.asterisk

DID = "+390200000007"
SUPPORT_KEY = "3"
SUPERVISOR = "sup1"  # a phone in the test-phones context, like the agents'


def _supervision(world: RealWorld) -> Supervision:
    store = RedisLiveStore(client=world.runtime.redis)

    async def state(agent_id: str) -> AgentState | None:
        return next((a.state for a in await store.agents() if a.agent_id == agent_id), None)

    return Supervision(ami=world.runtime.ami, agents=world.runtime.agents, agent_state=state)


async def _connected_agent(world: RealWorld, driver: CallDriver) -> str:
    for agent in world.desktops:
        await driver.phone(agent, ring_s=1, talk_s=20)
    call = await driver.place(did=DID, caller_id="+390255500077", patience_s=90)
    await driver.press_when_asked(call, SUPPORT_KEY)
    end = await driver.wait_for(
        "DialEnd",
        lambda e: e.get("Uniqueid") == call.uniqueid and e.get("DialStatus") == "ANSWER",
        timeout=30,
    )
    return (end.event.get("DestChannel") or "").removeprefix("Local/").split("@", 1)[0]


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_a_supervisors_phone_spies_on_the_agents_call(
    centralino: RealWorld, driver: CallDriver, mode: str
) -> None:
    agent = await _connected_agent(centralino, driver)
    await driver.phone(SUPERVISOR, ring_s=0.5, talk_s=30)
    supervision = _supervision(centralino)

    started = await supervision.spy(
        supervisor_endpoint=phone_endpoint(SUPERVISOR), agent_id=agent, mode=mode
    )
    assert started.request.target_prefix == f"{phone_endpoint(agent)}-"
    spy = await driver.wait_for(
        "ChanSpyStart",
        lambda e: (e.get("SpyerChannel") or "").startswith(f"{phone_endpoint(SUPERVISOR)}-"),
        timeout=15,
    )
    # Spying on this agent's leg, nobody else's.
    assert (spy.event.get("SpyeeChannel") or "").startswith(f"{phone_endpoint(agent)}-")


async def test_an_agent_who_is_not_on_a_call_cannot_be_spied_on(
    centralino: RealWorld, driver: CallDriver
) -> None:
    idle = next(iter(centralino.desktops))
    supervision = _supervision(centralino)
    with pytest.raises(SupervisionRefused, match="not on a call"):
        await supervision.spy(
            supervisor_endpoint=phone_endpoint(SUPERVISOR), agent_id=idle, mode="listen"
        )
    with pytest.raises(SupervisionRefused, match="no agent"):
        await supervision.spy(
            supervisor_endpoint=phone_endpoint(SUPERVISOR), agent_id="nobody", mode="listen"
        )
    assert not driver.events("ChanSpyStart")
