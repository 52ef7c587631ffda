"""The reconciling sweep: what to fix when the live state and the telephony disagree (pure).

Recovery (`centralino.recovery`) rebuilds the live state when Redis lost it. This sweep covers
the other case: Redis kept its state but nobody is left to finish what it says is happening,
because the process holding a caller died (SIGKILL), an AMI event was lost, or a process
crashed between two writes. Left alone, such an agent stays RESERVED or BUSY for good and every
state change of theirs is refused.

Rules, each a function of (live state, channels up in Asterisk, queue log, now):
- A voice item whose caller channel is gone, reserved for an agent or waiting, leaves the live
  state (`DropItem`): a reservation is released with the agent READY (they did nothing wrong)
  and the item is not requeued. It gets one ABANDON row, unless the queue log already ended it
  (abandoned, exited, completed, transferred).
- Callback requests have no caller channel while they wait (the customer hung up on purpose),
  nor do chats and emails: they are left alone.
- An agent RESERVED, RINGING or BUSY with no channel of theirs up (their own phone's leg or a
  caller bridged to them) is freed (`FreeAgent`: READY), with an AGENT row and, when the queue
  log shows a conversation of theirs still open, its COMPLETE row.
- Anything whose channel is up is left alone. Without channels (`channels=None`: AMI is down
  or disabled) nothing is decided: every rule above depends on them.

Races with the process that owns a call are avoided by graces, not locks: a thing must be
seen without its channel, sweep after sweep, for `item_grace_s` (items: the owning process
notices a hang-up within milliseconds) or `agent_grace_s` (agents: a ring starts, a bridge
forms within seconds), and the agent must have been in its state that long too. When it was
first seen so is the sweep's memory (`Absences`), returned with the fixes and passed back in
next time; a process that starts sweeping starts with none, so it waits one grace more.
Applying a fix is conditional on the state the snapshot saw (`LiveStore.discard_item` acts on
an item still there, `LiveStore.reset_agent` on an agent still in that state since that time),
so a stale fix does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from acd.models import AgentState, Channel, LiveSnapshot, QueueEvent, QueueLogRow
from acd.service import ChannelFact

# States that mean "on a call" (voice): each needs a channel of the agent's up.
_ON_A_CALL = frozenset({AgentState.RESERVED, AgentState.RINGING, AgentState.BUSY})
# Queue-log events after which an item is over: no ABANDON row may follow.
_ENDED = frozenset({QueueEvent.ABANDON, QueueEvent.EXIT, QueueEvent.COMPLETE, QueueEvent.TRANSFER})
# Events that end an agent's conversation with an item (after its CONNECT).
_CONVERSATION_ENDS = frozenset({QueueEvent.COMPLETE, QueueEvent.TRANSFER, QueueEvent.ABANDON})


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """How long a thing must be seen without its channel before it is fixed.

    An agent stuck after a crash is usable again within `agent_grace_s` plus two sweep
    intervals of the sweep starting (30 s + 2 * 2 s by default: under a minute)."""

    item_grace_s: float = 5.0
    agent_grace_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Absences:
    """When the sweep first saw each item (by id) and agent (by id) without its channel."""

    items: Mapping[str, float] = field(default_factory=dict)
    agents: Mapping[str, float] = field(default_factory=dict)


NO_ABSENCES = Absences()


@dataclass(frozen=True, slots=True)
class DropItem:
    """Take a voice item whose caller is gone out of the live state (`Router.drop_item`)."""

    item_id: str
    queue: str
    reason: str
    log_abandon: bool  # False when the queue log already ended the item


@dataclass(frozen=True, slots=True)
class OpenConversation:
    """The agent's conversation the queue log has no end for: its CONNECT row."""

    item_id: str
    queue: str
    connected_at: float


@dataclass(frozen=True, slots=True)
class FreeAgent:
    """Make an agent stuck in `state` (since `since`) READY (`Router.free_agent`)."""

    agent_id: str
    state: AgentState
    since: float
    reason: str
    conversation: OpenConversation | None = None


Fix = DropItem | FreeAgent


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    fixes: tuple[Fix, ...]
    absent: Absences  # pass back in to the next sweep


def reconcile(
    *,
    live: LiveSnapshot,
    channels: Sequence[ChannelFact] | None,
    queue_log: Sequence[QueueLogRow],
    now: float,
    policy: ReconcilePolicy,
    absent: Absences = NO_ABSENCES,
) -> ReconcilePlan:
    """The fixes the live state needs now (see the module docstring for the rules).

    `channels`: every channel up, each named by its uniqueid (`item_id`, a caller's being the
    id of its work item) and the agent it belongs to or is bridged with (`agent_id`); None
    when unknown. `queue_log`: rows that may concern the items and agents in `live` (the last
    day), any order; only consulted for what to log. `absent`: the previous plan's."""
    if channels is None:
        return ReconcilePlan((), NO_ABSENCES)
    up = {c.item_id for c in channels}
    agents_up = {c.agent_id for c in channels if c.agent_id}
    ended = _ended_items(queue_log)

    items_absent: dict[str, float] = {}
    drops: dict[str, DropItem] = {}
    freed_by_drop: set[str] = set()

    def consider_item(item_id: str, queue: str, agent_id: str = "") -> None:
        if item_id in up or item_id in items_absent:
            return
        since = absent.items.get(item_id, now)
        items_absent[item_id] = since
        if now - since >= policy.item_grace_s:
            drops[item_id] = DropItem(item_id, queue, "caller_gone", item_id not in ended)
            if agent_id:
                freed_by_drop.add(agent_id)

    for res in live.reservations:
        if res.channel is Channel.VOICE and res.item_id not in live.callbacks:
            consider_item(res.item_id, res.queue, res.agent_id)
    for item in live.waiting:
        if item.channel is Channel.VOICE and item.callback_number is None:
            consider_item(item.item_id, item.queue)

    agents_absent: dict[str, float] = {}
    frees: list[FreeAgent] = []
    open_conversations = _open_conversations(queue_log)
    for agent in live.agents:
        if agent.state not in _ON_A_CALL or agent.agent_id in agents_up:
            continue
        since = absent.agents.get(agent.agent_id, now)
        agents_absent[agent.agent_id] = since
        stuck = min(now - since, now - agent.since) >= policy.agent_grace_s
        if not stuck or agent.agent_id in freed_by_drop:
            continue
        conversation = None
        if agent.state is AgentState.BUSY:
            conversation = open_conversations.get(agent.agent_id)
        frees.append(
            FreeAgent(
                agent.agent_id,
                agent.state,
                agent.since,
                f"no_channel_{agent.state.value}",
                conversation,
            )
        )
    return ReconcilePlan((*drops.values(), *frees), Absences(items_absent, agents_absent))


def _ended_items(rows: Sequence[QueueLogRow]) -> set[str]:
    """Items whose last event (other than AGENT rows) ends them."""
    last: dict[str, tuple[float, QueueEvent]] = {}
    for row in rows:
        if row.event is QueueEvent.AGENT or not row.item_id:
            continue
        seen = last.get(row.item_id)
        if seen is None or row.ts >= seen[0]:
            last[row.item_id] = (row.ts, row.event)
    return {item for item, (_, event) in last.items() if event in _ENDED}


def _open_conversations(rows: Sequence[QueueLogRow]) -> dict[str, OpenConversation]:
    """Per agent, their last CONNECT that no COMPLETE, TRANSFER or ABANDON of its item
    followed."""
    ordered = sorted(
        (r for r in rows if r.event is not QueueEvent.AGENT and r.item_id), key=lambda r: r.ts
    )
    connected: dict[str, QueueLogRow] = {}  # item -> its CONNECT
    for row in ordered:
        if row.event is QueueEvent.CONNECT:
            connected[row.item_id] = row
        elif row.event in _CONVERSATION_ENDS:
            connected.pop(row.item_id, None)
    by_agent: dict[str, OpenConversation] = {}
    for row in sorted(connected.values(), key=lambda r: r.ts):
        by_agent[row.agent_id] = OpenConversation(row.item_id, row.queue, row.ts)
    return by_agent


__all__ = [
    "NO_ABSENCES",
    "Absences",
    "DropItem",
    "Fix",
    "FreeAgent",
    "OpenConversation",
    "ReconcilePlan",
    "ReconcilePolicy",
    "reconcile",
]
