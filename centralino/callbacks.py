"""Callbacks: a caller who pressed `*` kept their place in the queue and hung up; when the ACD
reserves an agent for them, we ring the agent and connect them to the customer over AMI.

One callback, as a task the dialer owns (the ACD's routing pass that delivered the offer is not
held up for the ring):

1. `accept` the reservation (the agent is about to ring), then `Originate` with `Async: true`
   the agent's endpoint into the `centralino-callback` context, which dials the customer
   (asterisk_conf/extensions.conf). AMI answers `Response: Success` at once ("queued"): the
   AMI session is never blocked for the ring time (a synchronous Originate held it that long,
   and the keepalive then declared the link dead).
2. The outcome comes as an `OriginateResponse` event carrying the same ActionID (and the
   Context and Exten we asked for, checked too: every process receives every such event, and
   ActionIDs are only unique per AMI client): `Response: Success` means the agent answered,
   who is then busy (`Router.connected`); `Failure` (`Reason`: 0 no such channel, 1 hung up,
   3 ring timeout, 5 busy, 8 congestion) or no event within `ring_timeout_s` plus
   `originate_margin_s` is a ring-no-answer: the agent goes not-ready, the request returns to
   the front of its queue.
3. The dialplan emits `UserEvent: CentralinoCallback` with `Id: <item id>` and `Status:
   <DIALSTATUS or NOTDIALED>` exactly once per callback channel, however it ends. `ANSWER`:
   the customer was reached and the conversation is over, the callback is completed (the agent
   wraps up). Anything else: the customer was not reached; the agent is READY at once and the
   request returns to the front of its queue, up to `max_attempts` placed callbacks (3 by
   default; after the last it leaves the queue with an EXIT row "callback_unreached"), so that
   a number that never answers does not hold a place for ever. No event within
   `callback_timeout_s` (a lost event: the AMI link was down as it came): the callback is
   completed as is; the reconciling sweep frees an agent whose channel is gone anyway. The
   agent's channel hanging up with no UserEvent before it (a dialplan or test peer that does
   not emit it) ends the callback as completed, counted apart (`unknown_total`).

Whatever goes wrong after `accept` (an AMI error, a timeout, cancellation at shutdown), the
reservation is released (`try`/`finally`): an agent is never left reserved by a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from acd.errors import StaleReservation, UnknownItem
from acd.models import Offer, WorkItem
from acd.service import Router
from centralino.asterisk.ami import AmiError, AmiEvent
from centralino.asterisk.ami_client import AmiClient
from centralino.asterisk.ami_group import AmiGroup

log = logging.getLogger(__name__)

CALLBACK_CONTEXT = "centralino-callback"
CALLBACK_USER_EVENT = "CentralinoCallback"
# The OriginateResponse comes when the agent answers or the Originate's own Timeout ends the
# ring; this much more covers Asterisk's setup and a slow link before we give up on it.
ORIGINATE_MARGIN_S = 10.0
# OriginateResponse events that arrived before we knew their ActionID (the response and the
# event can come in one read): kept for a moment; more than this pending means they were not
# ours (another process's Originates), the oldest go first.
MAX_EARLY_EVENTS = 256
DEFAULT_MAX_ATTEMPTS = 3
# How long a connected callback may last before we stop waiting for its UserEvent.
DEFAULT_CALLBACK_TIMEOUT_S = 4 * 3600.0
# The status of a callback whose agent channel hung up with no UserEvent before it.
_LEG_HUNG_UP = "(hung up)"


@dataclass(frozen=True, slots=True)
class _Expected:
    """What our OriginateResponse must say besides its ActionID."""

    context: str
    exten: str


class CallbackDialer:
    """The ACD's `on_detached_offer` hook for callback requests (see the module docstring)."""

    def __init__(
        self,
        *,
        ami: AmiGroup | AmiClient,
        router: Callable[[], Router],
        ring_timeout_s: float = 20.0,
        caller_id: str = "",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        callback_timeout_s: float = DEFAULT_CALLBACK_TIMEOUT_S,
        originate_margin_s: float = ORIGINATE_MARGIN_S,
    ) -> None:
        # `router` is a getter: the router takes this dialer as its hook, so it exists later.
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._ami = AmiGroup.of(ami)  # an Originate goes to the server of the agent's phone
        self._router = router
        self._ring_timeout_s = ring_timeout_s
        self._caller_id = caller_id
        self._max_attempts = max_attempts
        self._callback_timeout_s = callback_timeout_s
        self._originate_margin_s = originate_margin_s
        self._originates: dict[str, tuple[_Expected, asyncio.Future[AmiEvent]]] = {}
        self._early: OrderedDict[str, AmiEvent] = OrderedDict()
        self._ends: dict[str, asyncio.Future[str]] = {}  # item id -> its UserEvent's Status
        # UserEvents that came before we listened (in the same read as the OriginateResponse),
        # or for other processes' callbacks: bounded as `_early`.
        self._early_ends: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.placed_total = 0  # the agent answered: the customer is being dialled
        self.failed_total = 0  # the agent did not answer, or the Originate failed
        self.completed_total = 0  # the customer was reached (Status: ANSWER)
        self.unreached_total = 0  # the customer was not reached
        self.unknown_total = 0  # the agent's channel hung up with no UserEvent before it
        self._legs: dict[str, str] = {}  # the agent's channel of a connected callback -> item
        ami.subscribe("OriginateResponse", self._on_originate_response)
        ami.subscribe("UserEvent", self._on_user_event)
        ami.subscribe("Hangup", self._on_hangup)

    async def __call__(self, offer: Offer, item: WorkItem) -> None:
        """Start the callback and return at once (the routing pass goes on)."""
        router = self._router()
        rid = offer.reservation.reservation_id
        number = item.callback_number or ""
        endpoint = offer.endpoint
        if not number or not self._ami.link(endpoint).connected:
            log.warning(
                "callback %s: cannot originate (%s)",
                item.item_id,
                "no number" if not number else "AMI down",
            )
            await self._release(router, rid)  # never rang: the agent is ready again
            return
        task = asyncio.create_task(
            self._callback(router, offer, item, number), name=f"callback-{item.item_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop every callback in progress (each releases what it holds)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _callback(self, router: Router, offer: Offer, item: WorkItem, number: str) -> None:
        try:
            await self._place(router, offer, item, number)
        except asyncio.CancelledError:
            raise
        except Exception:  # one callback failing must not take others down; it logged why
            log.exception("callback %s failed", item.item_id)

    async def _place(self, router: Router, offer: Offer, item: WorkItem, number: str) -> None:
        rid = offer.reservation.reservation_id
        agent = offer.reservation.agent_id
        try:
            await router.accept(rid)
        except StaleReservation:
            return
        connected, leg = False, ""
        try:
            answered, why, leg = await self._originate(offer.endpoint, item.item_id, number)
            if not answered:
                self.failed_total += 1
                log.info("callback %s: agent %s did not take it (%s)", item.item_id, agent, why)
                return  # released below
            # Listen for the call's end before the ACD hears of the answer: it may be quick.
            end = asyncio.get_running_loop().create_future()
            early = self._early_ends.pop(item.item_id, None)
            if early is not None:  # the customer leg failed at once (e.g. CHANUNAVAIL)
                end.set_result(early)
            self._ends[item.item_id] = end
            self._legs[leg] = item.item_id
            await router.connected(rid)
            connected = True
        finally:
            if not connected:
                self._ends.pop(item.item_id, None)
                self._legs.pop(leg, None)
                await asyncio.shield(self._release(router, rid))
        self.placed_total += 1
        log.info("callback %s: agent %s answered, dialling %s", item.item_id, agent, number)
        try:
            async with asyncio.timeout(self._callback_timeout_s):
                status = await end
        except TimeoutError:
            status = "ANSWER"
            log.warning("callback %s: no end reported; completed as is", item.item_id)
        finally:
            self._ends.pop(item.item_id, None)
            self._legs.pop(leg, None)
        await self._ended(router, item.item_id, status)

    async def _originate(self, endpoint: str, item_id: str, number: str) -> tuple[bool, str, str]:
        """Ring `endpoint` into the callback context: whether the agent answered, why not, and
        the agent's channel (its name, once answered)."""
        expected = _Expected(CALLBACK_CONTEXT, number)
        try:
            response = await self._ami.link(endpoint).action(
                "Originate",
                Channel=endpoint,
                Context=CALLBACK_CONTEXT,
                Exten=number,
                Priority="1",
                Timeout=str(int(self._ring_timeout_s * 1000)),
                CallerID=self._caller_id or number,
                Variable=f"CENTRALINO_CALLBACK_ID={item_id}",
                Async="true",
            )
        except AmiError as exc:
            return False, f"AMI: {exc}", ""
        if not response.ok or response.action_id is None:
            return False, response.message or "Originate refused", ""
        action_id = response.action_id
        event = self._early.pop(action_id, None)
        if event is None or not _matches(event, expected):
            waiter: asyncio.Future[AmiEvent] = asyncio.get_running_loop().create_future()
            self._originates[action_id] = (expected, waiter)
            try:
                async with asyncio.timeout(self._ring_timeout_s + self._originate_margin_s):
                    event = await waiter
            except TimeoutError:
                return False, "no OriginateResponse in time", ""
            finally:
                self._originates.pop(action_id, None)
        if (event.get("Response") or "").lower() == "success":
            return True, "", event.get("Channel") or ""
        return False, f"Originate failed, reason {event.get('Reason')}", ""

    async def _ended(self, router: Router, item_id: str, status: str) -> None:
        if status == _LEG_HUNG_UP:
            # No UserEvent before the agent's channel hung up: a dialplan (or test peer) that
            # does not emit it. Whether the customer was reached is unknown; the conversation,
            # if any, is over: completed, but not counted as a reached customer.
            self.unknown_total += 1
            log.warning("callback %s: ended with no %s event", item_id, CALLBACK_USER_EVENT)
            with contextlib.suppress(UnknownItem):
                await router.completed(item_id)
            return
        if status == "ANSWER":
            self.completed_total += 1
            with contextlib.suppress(UnknownItem):  # ended by the reconciling sweep already
                await router.completed(item_id)
            log.info("callback %s: completed", item_id)
            return
        self.unreached_total += 1
        try:
            requeued = await router.callback_unreached(
                item_id, status=status, max_attempts=self._max_attempts
            )
        except UnknownItem:
            return
        log.info(
            "callback %s: customer not reached (%s); %s",
            item_id,
            status,
            "back in front of its queue" if requeued else "attempts exhausted, dropped",
        )

    async def _release(self, router: Router, rid: str) -> None:
        with contextlib.suppress(StaleReservation):  # it lapsed already: same outcome
            await router.ring_no_answer(rid)

    def _on_originate_response(self, event: AmiEvent) -> None:
        action_id = event.action_id
        if action_id is None:
            return
        pending = self._originates.get(action_id)
        if pending is None:
            self._early[action_id] = event
            while len(self._early) > MAX_EARLY_EVENTS:
                self._early.popitem(last=False)
            return
        expected, waiter = pending
        if _matches(event, expected) and not waiter.done():
            waiter.set_result(event)

    def _on_hangup(self, event: AmiEvent) -> None:
        """The agent's channel of a connected callback hung up. The dialplan's UserEvent comes
        before (its hangup handler runs before the channel is gone), so this only ends a
        callback whose UserEvent never came."""
        item_id = self._legs.pop(event.get("Channel") or "", None)
        end = self._ends.get(item_id) if item_id is not None else None
        if end is not None and not end.done():
            end.set_result(_LEG_HUNG_UP)

    def _on_user_event(self, event: AmiEvent) -> None:
        if event.get("UserEvent") != CALLBACK_USER_EVENT:
            return
        item_id = (event.get("Id") or "").strip()
        status = (event.get("Status") or "NOTDIALED").strip().upper()
        end = self._ends.get(item_id)
        if end is None:
            self._early_ends[item_id] = status
            while len(self._early_ends) > MAX_EARLY_EVENTS:
                self._early_ends.popitem(last=False)
        elif not end.done():
            end.set_result(status)


def _matches(event: AmiEvent, expected: _Expected) -> bool:
    """Whether an OriginateResponse with our ActionID is ours (another process's Originate may
    carry the same ActionID: the prefix and counter are per client)."""
    context, exten = event.get("Context"), event.get("Exten")
    return (context is None or context == expected.context) and (
        exten is None or exten == expected.exten
    )
