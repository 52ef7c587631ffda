"""Non-voice conversations as ACD work: which ACD channel a written channel uses (its own
per-agent capacity: an agent on a call can still hold chats, if configured) and the work item
a new conversation becomes."""

from __future__ import annotations

from collections.abc import Sequence

from acd.models import Channel, SkillRequirement, WorkItem
from context.messages import InboundMessage, MessageKind, StoredMessage
from context.models import ChannelKind, Ticket
from context.tickets import IN_PROGRESS, WAITING_CUSTOMER

# WhatsApp, SMS and web chat are all short back-and-forth threads: the chat capacity.
ACD_CHANNEL = {
    ChannelKind.WHATSAPP: Channel.CHAT,
    ChannelKind.SMS: Channel.CHAT,
    ChannelKind.CHAT: Channel.CHAT,
    ChannelKind.EMAIL: Channel.EMAIL,
}


def needs_an_agent(message: InboundMessage, stored: StoredMessage) -> bool:
    """A person wrote it and it is new (a provider's retry was routed the first time).
    Automated mail (auto-replies, bounces) is kept on the timeline but never reaches an agent."""
    return message.kind is MessageKind.MESSAGE and not stored.duplicate


def conversation_item(
    conversation_id: int,
    channel: ChannelKind,
    *,
    queue: str,
    skill: str | None,
    min_level: int,
    now: float,
    preferred_agents: tuple[str, ...] = (),
) -> WorkItem:
    skills = (SkillRequirement(skill, min_level),) if skill else ()
    return WorkItem(
        item_id=f"conv-{conversation_id}",
        queue=queue,
        arrived_at=now,
        channel=ACD_CHANNEL[channel],
        skills=skills,
        preferred_agents=preferred_agents,
    )


def tickets_answered(tickets: Sequence[Ticket]) -> list[tuple[int, str]]:
    """A customer who writes answers their tickets that wait on them: each open ticket in
    `waiting_customer` moves back to `in_progress` (the pipeline's standard path), as
    (ticket id, phase)."""
    return [(t.id, IN_PROGRESS) for t in tickets if t.is_open and t.phase == WAITING_CUSTOMER]
