"""The agent state machine: every edge of the table works, everything else raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acd.errors import IllegalTransition
from acd.models import AgentState
from acd.states import TRANSITIONS, AgentEvent, can, transition


@given(st.sampled_from(list(AgentState)), st.sampled_from(list(AgentEvent)))
def test_any_state_and_event_either_follow_the_table_or_raise(
    state: AgentState, event: AgentEvent
) -> None:
    if (state, event) in TRANSITIONS:
        assert transition(state, event) is TRANSITIONS[(state, event)]
        assert can(state, event)
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(state, event)
        assert info.value.state is state
        assert not can(state, event)


def test_a_call_cycle_goes_through_every_working_state() -> None:
    path = [
        AgentEvent.LOGIN,
        AgentEvent.READY,
        AgentEvent.RESERVE,
        AgentEvent.ACCEPT,
        AgentEvent.ANSWER,
        AgentEvent.HANGUP,
        AgentEvent.WRAP_DONE,
        AgentEvent.LOGOUT,
    ]
    state = AgentState.LOGGED_OUT
    seen = []
    for event in path:
        state = transition(state, event)
        seen.append(state)
    assert seen == [
        AgentState.NOT_READY,
        AgentState.READY,
        AgentState.RESERVED,
        AgentState.RINGING,
        AgentState.BUSY,
        AgentState.WRAP_UP,
        AgentState.READY,
        AgentState.LOGGED_OUT,
    ]


def test_given_call_in_progress_then_only_forced_logout_is_possible() -> None:
    for state in (AgentState.RESERVED, AgentState.RINGING, AgentState.BUSY):
        with pytest.raises(IllegalTransition):
            transition(state, AgentEvent.LOGOUT)
        assert transition(state, AgentEvent.FORCE_LOGOUT) is AgentState.LOGGED_OUT


def test_rona_and_reject_make_the_agent_not_ready_but_expiry_makes_them_ready() -> None:
    assert transition(AgentState.RINGING, AgentEvent.RING_NO_ANSWER) is AgentState.NOT_READY
    assert transition(AgentState.RESERVED, AgentEvent.REJECT) is AgentState.NOT_READY
    assert transition(AgentState.RESERVED, AgentEvent.EXPIRE) is AgentState.READY
    with pytest.raises(IllegalTransition):
        transition(AgentState.READY, AgentEvent.ANSWER)


def test_given_reservation_that_never_rang_when_released_as_no_answer_then_agent_ready() -> None:
    """A RONA on a RESERVED agent (the phone never rang: Originate or Dial never started) is
    legal and not the agent's fault: READY, where a real ring with no answer is NOT_READY."""
    assert transition(AgentState.RESERVED, AgentEvent.RING_NO_ANSWER) is AgentState.READY
    assert transition(AgentState.RINGING, AgentEvent.RING_NO_ANSWER) is AgentState.NOT_READY
