"""Supervision requests: modes, the target prefix, and endpoints that could break ChanSpy's
arguments."""

from __future__ import annotations

import pytest

from contact.supervision import SpyMode, SupervisionRefused, spy_request


def test_the_target_is_the_agents_endpoint_and_a_dash_so_no_other_agent_matches() -> None:
    request = spy_request(
        supervisor_endpoint="PJSIP/sup1", agent_endpoint="PJSIP/agent10", mode="whisper"
    )
    assert request.mode is SpyMode.WHISPER
    assert request.target_prefix == "PJSIP/agent10-"
    assert not "PJSIP/agent101-0000001a".startswith(request.target_prefix)
    assert request.variables == "SPY_TARGET=PJSIP/agent10-"


@pytest.mark.parametrize(
    "endpoint",
    [
        "PJSIP/agent1,qB",  # a comma would add ChanSpy options
        "PJSIP/agent1)|System(x)",
        "PJSIP/agent 1",
        "PJSIP/${EVIL}",
        "agent1",  # no technology
        "",
    ],
)
def test_an_endpoint_that_could_break_the_arguments_is_refused(endpoint: str) -> None:
    with pytest.raises(SupervisionRefused, match="not a dialable name"):
        spy_request(supervisor_endpoint="PJSIP/sup1", agent_endpoint=endpoint, mode="listen")
    with pytest.raises(SupervisionRefused, match="not a dialable name"):
        spy_request(supervisor_endpoint=endpoint, agent_endpoint="PJSIP/agent1", mode="listen")


def test_unknown_modes_and_self_supervision_are_refused() -> None:
    with pytest.raises(SupervisionRefused, match="not one of listen, whisper, barge"):
        spy_request(supervisor_endpoint="PJSIP/sup1", agent_endpoint="PJSIP/a1", mode="record")
    with pytest.raises(SupervisionRefused, match="own phone"):
        spy_request(supervisor_endpoint="PJSIP/a1", agent_endpoint="PJSIP/a1", mode="listen")


def test_local_channels_as_endpoints_are_dialable() -> None:
    request = spy_request(
        supervisor_endpoint="Local/sup1@test-phones",
        agent_endpoint="Local/agent101@test-phones",
        mode="barge",
    )
    assert request.target_prefix == "Local/agent101@test-phones-"
