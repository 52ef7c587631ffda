"""Callbacks: a caller who pressed `*` kept their place in the queue and hung up; when the ACD
reserves an agent for them, we ring the agent and connect them to the customer over AMI.

`Originate` (synchronous) rings the agent's endpoint into the `centralino-callback` context,
which dials the customer (asterisk_conf/extensions.conf). Its answer marks the agent busy; the
`Hangup` of the agent's channel ends the callback. A failed Originate is a ring-no-answer: the
agent goes not-ready and the request returns to the front of its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from acd.errors import StaleReservation, UnknownItem
from acd.models import Offer, WorkItem
from acd.service import Router
from centralino.asterisk.ami import AmiEvent
from centralino.asterisk.ami_client import AmiClient

log = logging.getLogger(__name__)

CALLBACK_CONTEXT = "centralino-callback"


class CallbackDialer:
    """The ACD's `on_detached_offer` hook for callback requests."""

    def __init__(
        self,
        *,
        ami: AmiClient,
        router: Callable[[], Router],
        ring_timeout_s: float = 20.0,
        caller_id: str = "",
    ) -> None:
        # `router` is a getter: the router takes this dialer as its hook, so it exists later.
        self._ami = ami
        self._router = router
        self._ring_timeout_s = ring_timeout_s
        self._caller_id = caller_id
        self._ending: dict[str, str] = {}  # agent endpoint -> item id, while the callback runs
        self.placed_total = 0
        self.failed_total = 0
        ami.subscribe("Hangup", self._on_hangup)
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, offer: Offer, item: WorkItem) -> None:
        router = self._router()
        rid = offer.reservation.reservation_id
        number = item.callback_number or ""
        if not number or not self._ami.connected:
            log.warning(
                "callback %s: cannot originate (%s)",
                item.item_id,
                "no number" if not number else "AMI down",
            )
            await self._release(router, rid)
            return
        try:
            await router.accept(rid)
        except StaleReservation:
            return
        response = await self._ami.action(
            "Originate",
            Channel=offer.endpoint,
            Context=CALLBACK_CONTEXT,
            Exten=number,
            Priority="1",
            Timeout=str(int(self._ring_timeout_s * 1000)),
            CallerID=self._caller_id or number,
            Variable=f"CENTRALINO_CALLBACK_ID={item.item_id}",
            Async="false",
            timeout_s=self._ring_timeout_s + 10,
        )
        if not response.ok:
            self.failed_total += 1
            log.info(
                "callback %s: agent %s did not take it (%s)",
                item.item_id,
                offer.reservation.agent_id,
                response.message,
            )
            await self._release(router, rid)
            return
        self.placed_total += 1
        self._ending[offer.endpoint] = item.item_id
        await router.connected(rid)
        log.info(
            "callback %s: agent %s connected to %s",
            item.item_id,
            offer.reservation.agent_id,
            number,
        )

    async def _release(self, router: Router, rid: str) -> None:
        with contextlib.suppress(StaleReservation):  # it lapsed already: same outcome
            await router.ring_no_answer(rid)

    def _on_hangup(self, event: AmiEvent) -> None:
        channel = event.get("Channel") or ""
        endpoint = channel.rsplit("-", 1)[0]
        item_id = self._ending.pop(endpoint, None)
        if item_id is None:
            return
        task = asyncio.ensure_future(self._complete(item_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _complete(self, item_id: str) -> None:
        try:
            await self._router().completed(item_id)
        except UnknownItem:
            log.info("callback %s already completed", item_id)
        except Exception:  # one callback's bookkeeping must not break the AMI reader
            log.exception("completing callback %s failed", item_id)
