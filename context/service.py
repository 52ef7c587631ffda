"""The customer-context service: identity resolution, merge, timeline and ticket moves."""

from __future__ import annotations

from collections.abc import Mapping

from context.errors import NotFound, UnknownPhase
from context.identity import PhoneNormaliser, normalise, normalise_identity, phone_twin
from context.models import (
    CallerProblem,
    Customer,
    Identity,
    IdentityKind,
    Interaction,
    PhaseActivity,
    Resolution,
    ResolutionStatus,
    Ticket,
)
from context.ports import Clock, CustomerStore, TicketMove, TicketStore, TimelineStore
from context.tickets import DEFAULT_PIPELINE, Pipeline, open_ticket, plan_move


class ContextService:
    def __init__(
        self,
        *,
        customers: CustomerStore,
        timeline: TimelineStore,
        tickets: TicketStore,
        clock: Clock,
        phones: PhoneNormaliser | None = None,
        pipelines: Mapping[str, Pipeline] | None = None,
    ) -> None:
        self.customers = customers
        self.timeline = timeline
        self.tickets = tickets
        self.clock = clock
        self.phones = phones or PhoneNormaliser()
        self.pipelines = dict(pipelines or {DEFAULT_PIPELINE.name: DEFAULT_PIPELINE})

    # --- identity ---------------------------------------------------------------------------

    async def resolve_caller(self, caller_id: str | None) -> Resolution:
        """A voice caller id in any form (or withheld/unknown/garbage) to a resolution."""
        return await self.resolve_phone(self.phones.normalise(caller_id), raw=caller_id or "")

    async def resolve_phone(self, phone: Identity | CallerProblem, *, raw: str) -> Resolution:
        """Like `resolve_caller` for a caller id already normalised (parse once per call)."""
        if isinstance(phone, CallerProblem):
            return Resolution(
                status=ResolutionStatus.NO_IDENTITY,
                identity=None,
                problem=phone,
                raw=raw,
            )
        return await self._resolve(phone, raw)

    async def resolve_raw(self, kind: IdentityKind, raw: str) -> Resolution:
        """An email, chat or WhatsApp id (or phone) as a channel delivered it."""
        identity = normalise(kind, raw, self.phones)
        if identity is None:
            return Resolution(
                status=ResolutionStatus.NO_IDENTITY,
                identity=None,
                problem=CallerProblem.INVALID,
                raw=raw,
            )
        return await self._resolve(identity, raw)

    async def resolve(self, identity: Identity, *, raw: str = "") -> Resolution:
        """Customers known by `identity` (or its phone/WhatsApp twin). The identity is
        normalised first, so a value built by hand finds what was stored normalised; a
        malformed one raises `InvalidIdentity`."""
        return await self._resolve(self._normalised(identity), raw)

    async def _resolve(self, identity: Identity, raw: str) -> Resolution:
        """`resolve` for an identity normalised already (by the caller-id or channel path)."""
        found: dict[int, Customer] = {
            c.id: c for c in await self.customers.find_by_identity(identity)
        }
        twin = phone_twin(identity)
        if twin is not None:
            found.update({c.id: c for c in await self.customers.find_by_identity(twin)})
        customers = tuple(sorted(found.values(), key=lambda c: c.id))
        raw = raw or identity.value
        if not customers:
            return Resolution(ResolutionStatus.NOT_FOUND, identity, raw=raw)
        if len(customers) > 1:
            return Resolution(ResolutionStatus.AMBIGUOUS, identity, customers, raw=raw)
        links = tuple(await self.customers.links(customers[0].id))
        return Resolution(ResolutionStatus.FOUND, identity, customers, links, raw=raw)

    async def link_identity(self, customer_id: int, identity: Identity) -> None:
        """Attach an identity (e.g. the "unknown number" an agent just identified), normalised
        per kind; a malformed one raises `InvalidIdentity` (a ValueError) before any lookup."""
        identity = self._normalised(identity)
        await self.customers.get(customer_id)
        await self.customers.add_identity(customer_id, identity)

    def _normalised(self, identity: Identity) -> Identity:
        return normalise_identity(identity.kind, identity.value, self.phones)

    async def merge(self, *, keep_id: int, absorb_id: int) -> Customer:
        return await self.customers.merge(keep_id=keep_id, absorb_id=absorb_id)

    # --- timeline ---------------------------------------------------------------------------

    async def record_interaction(self, interaction: Interaction) -> Interaction:
        return await self.timeline.append(interaction)

    # --- tickets ----------------------------------------------------------------------------

    async def open_ticket(
        self, *, customer_id: int | None, title: str, actor: str, pipeline: str = "default"
    ) -> Ticket:
        ticket, first = open_ticket(
            self._pipeline(pipeline),
            customer_id=customer_id,
            title=title,
            now=self.clock.now(),
            actor=actor,
        )
        return await self.tickets.create(ticket, first)

    async def move_ticket(
        self, ticket_id: int, to_phase: str, *, actor: str, reason: str = ""
    ) -> TicketMove:
        ticket = await self.tickets.get(ticket_id)
        current = _open_activity(await self.tickets.history(ticket_id), ticket)
        move = plan_move(
            self._pipeline(ticket.pipeline),
            ticket,
            current,
            to_phase,
            now=self.clock.now(),
            actor=actor,
            reason=reason,
        )
        await self.tickets.apply_move(move)
        return move

    def _pipeline(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            raise UnknownPhase(f"no pipeline named {name!r}") from None


def _open_activity(history: list[PhaseActivity], ticket: Ticket) -> PhaseActivity:
    for activity in reversed(history):
        if activity.closed_at is None:
            return activity
    raise NotFound(f"ticket {ticket.id} has no open phase activity")
