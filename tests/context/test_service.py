from __future__ import annotations

from context.models import ExternalLink, Identity, IdentityKind, ResolutionStatus
from context.service import ContextService
from tests.context.fakes import FakeClock, MemoryCustomers, MemoryTickets, MemoryTimeline

PHONE = Identity(IdentityKind.PHONE, "+393331234567")


def _svc() -> ContextService:
    return ContextService(
        customers=MemoryCustomers(),
        timeline=MemoryTimeline(),
        tickets=MemoryTickets(),
        clock=FakeClock(),
    )


async def test_a_whatsapp_id_finds_the_customer_known_by_phone() -> None:
    svc = _svc()
    c = await svc.customers.create(
        display_name="Giulia", identities=[PHONE], links=[ExternalLink("crm", "C1")]
    )
    res = await svc.resolve_raw(IdentityKind.WHATSAPP, "393331234567@s.whatsapp.net")
    assert res.status is ResolutionStatus.FOUND and res.customer == c
    assert res.links == (ExternalLink("crm", "C1"),)


async def test_email_resolution_and_garbage() -> None:
    svc = _svc()
    email = Identity(IdentityKind.EMAIL, "g@example.it")
    c = await svc.customers.create(display_name="Giulia", identities=[email])
    assert (await svc.resolve_raw(IdentityKind.EMAIL, "G@Example.it")).customer == c
    assert (
        await svc.resolve_raw(IdentityKind.EMAIL, "nope")
    ).status is ResolutionStatus.NO_IDENTITY
    assert (await svc.resolve_caller("+39 02 9999 9999")).status is ResolutionStatus.NOT_FOUND


async def test_linking_an_unknown_number_makes_it_known() -> None:
    svc = _svc()
    c = await svc.customers.create(display_name="Giulia")
    assert (await svc.resolve_caller("3331234567")).status is ResolutionStatus.NOT_FOUND
    await svc.link_identity(c.id, PHONE)
    assert (await svc.resolve_caller("3331234567")).customer == c
