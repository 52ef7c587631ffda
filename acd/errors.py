"""ACD errors. All of them mean the caller misused the API or referred to something stale."""

from __future__ import annotations

from acd.models import AgentState


class AcdError(Exception):
    """Base class of ACD errors."""


class IllegalTransition(AcdError):
    """An agent event that the state machine does not allow in the agent's current state."""

    def __init__(self, state: AgentState, event: str) -> None:
        super().__init__(f"agent event {event!r} is illegal in state {state.value!r}")
        self.state = state
        self.event = event


class UnknownAgent(AcdError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"unknown agent {agent_id!r}")
        self.agent_id = agent_id


class UnknownQueue(AcdError):
    def __init__(self, queue: str) -> None:
        super().__init__(f"unknown queue {queue!r}")
        self.queue = queue


class UnknownItem(AcdError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"unknown or finished work item {item_id!r}")
        self.item_id = item_id


class StaleReservation(AcdError):
    """The reservation expired, was released, or belongs to another item/agent."""

    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"reservation {reservation_id!r} is no longer held")
        self.reservation_id = reservation_id


class DuplicateItem(AcdError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"work item {item_id!r} is already queued")
        self.item_id = item_id
