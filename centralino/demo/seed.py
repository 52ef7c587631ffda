"""The demo's own records: one Centralino customer per demo person, with the identities and the
links to the ERP and CRM records. Only what Centralino owns is written (who the customer is and
where they live in other systems); invoices, orders and notes stay in the demo ERP/CRM."""

from __future__ import annotations

from centralino.demo.dataset import DemoDataset
from context.models import ExternalLink, Identity, IdentityKind
from context.service import ContextService


async def seed_customers(context: ContextService, dataset: DemoDataset) -> int:
    """Create the customers unless their phone already resolves (idempotent across demo runs).
    Returns how many were created."""
    created = 0
    for person in dataset.people:
        phone = Identity(IdentityKind.PHONE, person.phone)
        email = Identity(IdentityKind.EMAIL, person.email.lower())
        if await context.customers.find_by_identity(email):
            continue
        await context.customers.create(
            display_name=f"{person.name} ({person.company})",
            identities=(phone, email),
            links=(ExternalLink("crm", person.crm_id), ExternalLink("erp", person.erp_code)),
        )
        created += 1
    return created
