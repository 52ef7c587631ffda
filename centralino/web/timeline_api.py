"""`GET /api/timeline?phone=<E.164>` (or `?email=`): a customer's timeline on every channel,
newest first, as JSON. Supervisors' and admins' data (their login session or API token):
`ROUTE_RULES` gives the route `Rule.SUPERVISION`.

    200 {"customer": {"id", "display_name"}, "items": [{"channel", "direction", "time",
         "text", "provider_message_id", "linkedid", "delivery_state", "interaction_id"}]}
    400 no identity, both, or a malformed one; a bad `limit`
    404 no customer has this identity
    409 several customers share it (listed, none guessed)
"""

from __future__ import annotations

import logging
import re
from typing import TypedDict

from aiohttp import web

from context.identity import InvalidIdentity
from context.inbox import MAX_TIMELINE_ITEMS, TimelineReader
from context.messages import TimelineItem
from context.models import Identity, IdentityKind, ResolutionStatus

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
# E.164: a plus, a country code not starting with 0, at most 15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class TimelineItemJson(TypedDict):
    interaction_id: int
    channel: str
    direction: str
    time: str
    text: str
    provider_message_id: str | None
    linkedid: str | None
    delivery_state: str | None


def item_json(item: TimelineItem) -> TimelineItemJson:
    return {
        "interaction_id": item.interaction_id,
        "channel": str(item.channel),
        "direction": str(item.direction),
        "time": item.time.isoformat(),
        "text": item.text,
        "provider_message_id": item.provider_message_id,
        "linkedid": item.linkedid,
        "delivery_state": None if item.delivery_state is None else str(item.delivery_state),
    }


TIMELINE = web.AppKey("timeline", TimelineReader)


def add_timeline_api(app: web.Application, *, timeline: TimelineReader) -> None:
    app[TIMELINE] = timeline
    app.router.add_get("/api/timeline", timeline_handler)


def _bad(request: web.Request, why: str) -> web.Response:
    log.warning("%s?%s refused (400): %s", request.path, request.query_string[:200], why)
    return web.json_response({"error": why}, status=400)


def _identity(request: web.Request) -> Identity | str:
    """The identity asked for, or why the query is wrong."""
    phone, email = request.query.getall("phone", []), request.query.getall("email", [])
    if len(phone) + len(email) != 1:
        return "give exactly one of phone=<E.164> or email=<address>"
    if phone:
        if not _E164.fullmatch(phone[0]):
            return f"phone must be E.164 (+ and up to 15 digits), got {phone[0][:40]!r}"
        return Identity(IdentityKind.PHONE, phone[0])
    return Identity(IdentityKind.EMAIL, email[0])


async def timeline_handler(request: web.Request) -> web.Response:
    identity = _identity(request)
    if isinstance(identity, str):
        return _bad(request, identity)
    raw_limit = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_TIMELINE_ITEMS:
        return _bad(request, f"limit must be an integer from 1 to {MAX_TIMELINE_ITEMS}")
    try:
        found = await request.app[TIMELINE].timeline(identity, limit=int(raw_limit))
    except InvalidIdentity as exc:
        return _bad(request, str(exc))
    if found.status is ResolutionStatus.AMBIGUOUS:
        candidates = [{"id": c.id, "display_name": c.display_name} for c in found.customers]
        return web.json_response(
            {"error": f"several customers have {identity}", "candidates": candidates},
            status=409,
        )
    if not found.customers:
        return web.json_response({"error": f"no customer has {identity}"}, status=404)
    customer = found.customers[0]
    return web.json_response(
        {
            "customer": {"id": customer.id, "display_name": customer.display_name},
            "items": [item_json(i) for i in found.items],
        }
    )
