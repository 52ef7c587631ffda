from __future__ import annotations

import pytest

from context.identity import InvalidIdentity
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


async def test_given_identities_linked_in_any_form_then_stored_normalised_and_found() -> None:
    svc = _svc()
    c = await svc.customers.create(display_name="Giulia")
    await svc.link_identity(c.id, Identity(IdentityKind.EMAIL, "  Giulia.Verdi@Example.IT "))
    await svc.link_identity(c.id, Identity(IdentityKind.WHATSAPP, "whatsapp:+39 333 123 4567"))
    await svc.link_identity(c.id, Identity(IdentityKind.CHAT, " visitor-42\n"))
    assert set(await svc.customers.identities(c.id)) == {
        Identity(IdentityKind.EMAIL, "giulia.verdi@example.it"),
        Identity(IdentityKind.WHATSAPP, "393331234567"),
        Identity(IdentityKind.CHAT, "visitor-42"),
    }
    for kind, raw in [
        (IdentityKind.EMAIL, "GIULIA.VERDI@example.it"),
        (IdentityKind.WHATSAPP, "393331234567@s.whatsapp.net"),
        (IdentityKind.CHAT, "visitor-42"),
    ]:
        assert (await svc.resolve_raw(kind, raw)).customer == c, (kind, raw)
    # the WhatsApp id is her phone number too
    assert (await svc.resolve_caller("333 123 4567")).customer == c


async def test_given_a_hand_built_identity_then_resolve_normalises_it_first() -> None:
    svc = _svc()
    c = await svc.customers.create(
        display_name="Giulia", identities=[Identity(IdentityKind.EMAIL, "g@example.it")]
    )
    res = await svc.resolve(Identity(IdentityKind.EMAIL, " G@Example.IT"))
    assert res.status is ResolutionStatus.FOUND and res.customer == c
    assert res.identity == Identity(IdentityKind.EMAIL, "g@example.it")


async def test_given_a_malformed_identity_to_link_then_invalid_identity_and_nothing_stored() -> (
    None
):
    svc = _svc()
    c = await svc.customers.create(display_name="Giulia")
    for kind, raw in [
        (IdentityKind.EMAIL, "giulia at example.it"),
        (IdentityKind.WHATSAPP, "not a number"),
        (IdentityKind.CHAT, "two words"),
        (IdentityKind.PHONE, "123"),
    ]:
        with pytest.raises(InvalidIdentity, match=f"not a valid {kind} identity"):
            await svc.link_identity(c.id, Identity(kind, raw))
    assert await svc.customers.identities(c.id) == []
