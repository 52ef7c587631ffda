"""Deterministic demo people shared by the demo ERP and CRM (same seed → same data).

The ERP and CRM agree on names and numbers, as real systems of one company would, but each
keeps its own records and ids (ERP customer code, CRM contact id). Two contacts share one
office number, so identity resolution has an ambiguous case to show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np

_FIRST = (
    "Mario",
    "Giulia",
    "Luca",
    "Francesca",
    "Marco",
    "Chiara",
    "Andrea",
    "Sara",
    "Paolo",
    "Elena",
    "Giovanni",
    "Anna",
    "Stefano",
    "Laura",
    "Davide",
    "Martina",
)
_LAST = (
    "Rossi",
    "Bianchi",
    "Romano",
    "Colombo",
    "Ricci",
    "Marino",
    "Greco",
    "Bruno",
    "Gallo",
    "Conti",
    "De Luca",
    "Costa",
    "Giordano",
    "Mancini",
    "Rizzo",
    "Lombardi",
)
_COMPANY = (
    "Officine",
    "Ceramiche",
    "Trasporti",
    "Alimentari",
    "Tessuti",
    "Serramenti",
    "Impianti",
    "Edilizia",
)
_CITY = ("Milano", "Torino", "Bologna", "Verona", "Padova", "Bergamo", "Brescia", "Modena")
_OWNERS = ("Alessia Ferri", "Roberto Villa", "Valentina Sala", "Matteo Fontana")
_CASE_SUBJECTS = (
    "Fattura non ricevuta",
    "Consegna in ritardo",
    "Reso merce danneggiata",
    "Richiesta preventivo",
    "Errore importo fattura",
    "Cambio indirizzo",
)
_NOTE_TEXTS = (
    "Preferisce essere contattato al mattino.",
    "Cliente storico, molto puntuale.",
    "Ha chiesto uno sconto sul prossimo ordine.",
    "Parla anche inglese.",
)
# Kept on purpose: CRM fields hold whatever users typed; the desktop must show it as text.
XSS_NOTE = 'Nota importata <script>alert(1)</script> <img src=x onerror="alert(2)">'
_CARRIERS = ("BRT", "GLS", "SDA", "DHL")


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    issued: date
    due: date
    amount: float
    paid: bool


@dataclass(frozen=True, slots=True)
class Order:
    number: str
    placed: date
    total: float
    status: str
    carrier: str | None
    tracking: str | None
    shipment_status: str | None
    eta: date | None


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    subject: str
    status: str
    opened: date


@dataclass(frozen=True, slots=True)
class Note:
    author: str
    created: date
    text: str


@dataclass(frozen=True, slots=True)
class LastContact:
    at: date
    channel: str
    summary: str


@dataclass(frozen=True, slots=True)
class Person:
    crm_id: str
    erp_code: str
    name: str
    company: str
    phone: str  # E.164
    email: str
    account_owner: str
    invoices: tuple[Invoice, ...]
    orders: tuple[Order, ...]
    cases: tuple[Case, ...]
    notes: tuple[Note, ...]
    last_contacts: tuple[LastContact, ...]


@dataclass(frozen=True, slots=True)
class DemoDataset:
    today: date
    people: tuple[Person, ...]

    @property
    def shared_office_phone(self) -> str:
        """A number two contacts share (resolution must report it as ambiguous)."""
        return self.people[1].phone

    def by_phone(self, phone: str) -> list[Person]:
        return [p for p in self.people if p.phone == phone]

    def by_erp_code(self, code: str) -> Person | None:
        return next((p for p in self.people if p.erp_code == code), None)

    def by_crm_id(self, crm_id: str) -> Person | None:
        return next((p for p in self.people if p.crm_id == crm_id), None)


def generate(rng: np.random.Generator, *, today: date, n_people: int = 40) -> DemoDataset:
    if n_people < 3:
        raise ValueError("the demo needs at least 3 people")
    people: list[Person] = []
    for i in range(n_people):
        first = str(rng.choice(_FIRST))
        last = str(rng.choice(_LAST))
        company = f"{rng.choice(_COMPANY)} {last} S.r.l."
        if i % 3 == 0:  # a mobile
            phone = f"+393{int(rng.integers(20, 50))}{int(rng.integers(1_000_000, 9_999_999))}"
        else:  # an office line in a northern city (02 Milano, 011 Torino, 051 Bologna)
            prefix = ("2", "11", "51")[i % 3]
            phone = f"+390{prefix}{int(rng.integers(1_000_000, 9_999_999))}"
        invoices = []
        for k in range(int(rng.integers(1, 6))):
            issued = today - timedelta(days=int(rng.integers(5, 200)))
            due = issued + timedelta(days=int(rng.choice([30, 60, 90])))
            paid = bool(due < today and rng.random() < 0.7)
            amount = round(float(rng.lognormal(6.5, 0.8)), 2)
            invoices.append(Invoice(f"FT{2026}-{i:03d}{k}", issued, due, amount, paid))
        orders = []
        for k in range(int(rng.integers(0, 4))):
            placed = today - timedelta(days=int(rng.integers(1, 60)))
            shipped = rng.random() < 0.7
            carrier = str(rng.choice(_CARRIERS)) if shipped else None
            orders.append(
                Order(
                    number=f"OV-{i:03d}{k}",
                    placed=placed,
                    total=round(float(rng.lognormal(6.0, 0.7)), 2),
                    status="shipped" if shipped else "confirmed",
                    carrier=carrier,
                    tracking=f"{carrier}{int(rng.integers(10**9, 10**10))}" if carrier else None,
                    shipment_status=str(rng.choice(["in transit", "delivered"]))
                    if shipped
                    else None,
                    eta=placed + timedelta(days=int(rng.integers(2, 7))) if shipped else None,
                )
            )
        cases = tuple(
            Case(
                id=f"CS-{i:03d}{k}",
                subject=str(rng.choice(_CASE_SUBJECTS)),
                status=str(rng.choice(["open", "open", "closed"])),
                opened=today - timedelta(days=int(rng.integers(0, 90))),
            )
            for k in range(int(rng.integers(0, 3)))
        )
        owner = str(rng.choice(_OWNERS))
        notes = [
            Note(
                owner,
                today - timedelta(days=int(rng.integers(1, 300))),
                str(rng.choice(_NOTE_TEXTS)),
            )
        ]
        if i == 0:
            notes.append(Note("import", today - timedelta(days=400), XSS_NOTE))
        last_contacts = tuple(
            LastContact(
                at=today - timedelta(days=int(rng.integers(0, 120))),
                channel=str(rng.choice(["voice", "email", "whatsapp", "chat"])),
                summary=str(rng.choice(_CASE_SUBJECTS)),
            )
            for _ in range(int(rng.integers(0, 4)))
        )
        people.append(
            Person(
                crm_id=f"C{1000 + i}",
                erp_code=f"E{20000 + i * 7}",
                name=f"{first} {last}",
                company=company,
                phone=phone,
                email=f"{first}.{last}{i}@example.it".lower().replace(" ", ""),
                account_owner=owner,
                invoices=tuple(invoices),
                orders=tuple(orders),
                cases=cases,
                notes=tuple(notes),
                last_contacts=last_contacts,
            )
        )
    # A shared office number: person 2 works at the same switchboard as person 1.
    people[2] = replace(people[2], phone=people[1].phone)
    return DemoDataset(today=today, people=tuple(people))


# Reproducible runs: without a date of their own, the ERP and CRM describe the same people as of
# this day (they must agree, since both are generated from the same seed).
DEFAULT_TODAY = date(2026, 1, 15)


def dataset_or_default(
    dataset: DemoDataset | None, *, seed: int, today: date | None
) -> DemoDataset:
    """`dataset` if given, else the people generated from `seed` as of `today`."""
    if dataset is not None:
        return dataset
    return generate(np.random.default_rng(seed), today=today or DEFAULT_TODAY)
