"""The queue log's encoding of work items: an ENTER row carries its item (so that recovery and a
process adopting a reservation can restore it), and a transfer pending in the live store carries
the item to re-queue. Pure."""

from __future__ import annotations

import json
from typing import Any

from acd.models import Channel, QueueLogRow, SkillRequirement, WorkItem


def item_data(item: WorkItem) -> str:
    """ENTER rows carry the item, so that it can be restored from the queue log."""
    return json.dumps(
        {
            "arrived_at": item.arrived_at,
            "channel": item.channel.value,
            "skills": [[r.skill, r.min_level, r.relaxable] for r in item.skills],
            "priority": item.priority,
            "preferred": list(item.preferred_agents),
            "language": item.language,
            "caller_id": item.caller_id,
        },
        separators=(",", ":"),
    )


def item_from_enter(row: QueueLogRow) -> WorkItem:
    return _item_from(row.item_id, row.queue, json.loads(row.data) if row.data else {}, row.ts)


def pending_transfer_record(item: WorkItem, *, at: float) -> str:
    """A transferred call's pending re-queue, as the live store keeps it for any process."""
    return json.dumps({"at": at, "queue": item.queue, "item": item_data(item)})


def pending_transfer_from(item_id: str, record: str) -> tuple[WorkItem, float]:
    data = json.loads(record)
    at = float(data["at"])
    return _item_from(item_id, str(data["queue"]), json.loads(data["item"]), at), at


def _item_from(item_id: str, queue: str, data: dict[str, Any], default_ts: float) -> WorkItem:
    return WorkItem(
        item_id=item_id,
        queue=queue,
        arrived_at=float(data.get("arrived_at", default_ts)),
        channel=Channel(data.get("channel", "voice")),
        skills=tuple(
            SkillRequirement(s, int(lv), bool(rx)) for s, lv, rx in data.get("skills", [])
        ),
        priority=int(data.get("priority", 0)),
        preferred_agents=tuple(data.get("preferred", [])),
        language=data.get("language"),
        caller_id=str(data.get("caller_id", "")),
    )
