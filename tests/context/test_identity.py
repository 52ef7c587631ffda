from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context.identity import (
    MAX_RAW_PHONE_CHARS,
    PhoneNormaliser,
    normalise,
    normalise_email,
    normalise_whatsapp_id,
)
from context.models import CallerProblem, Identity, IdentityKind

IT = PhoneNormaliser()


@pytest.mark.parametrize(
    "raw",
    [
        "02 1234 5678",
        "0212345678",
        "+39 02 12345678",
        "0039 02 1234 5678",
        "+390212345678",
        "tel:+390212345678",
        "sip:0212345678@pbx.example.it;user=phone",
        " 02-1234-5678 ",
    ],
)
def test_given_any_form_of_a_milan_number_when_normalised_then_one_e164(raw: str) -> None:
    assert IT.normalise(raw) == Identity(IdentityKind.PHONE, "+390212345678")


def test_given_a_mobile_without_prefix_when_normalised_then_italian_e164() -> None:
    assert IT.normalise("333 123 4567") == Identity(IdentityKind.PHONE, "+393331234567")


def test_given_another_default_region_when_normalised_then_it_applies() -> None:
    assert PhoneNormaliser(default_region="US").normalise("(650) 253-0000") == Identity(
        IdentityKind.PHONE, "+16502530000"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, CallerProblem.UNKNOWN),
        ("", CallerProblem.UNKNOWN),
        ("<unknown>", CallerProblem.UNKNOWN),
        ("unknown", CallerProblem.UNKNOWN),
        ("anonymous", CallerProblem.WITHHELD),
        ("Private", CallerProblem.WITHHELD),
        ("restricted", CallerProblem.WITHHELD),
        ("123", CallerProblem.INVALID),
        ("'; DROP TABLE customers; --", CallerProblem.INVALID),
        ("<script>alert(1)</script>", CallerProblem.INVALID),
        ("9" * (MAX_RAW_PHONE_CHARS + 1), CallerProblem.INVALID),
        ("\x00\xff\u202e", CallerProblem.INVALID),
    ],
)
def test_given_withheld_unknown_or_garbage_when_normalised_then_problem_not_error(
    raw: str | None, problem: CallerProblem
) -> None:
    assert IT.normalise(raw) is problem


@given(st.text(max_size=80))
def test_any_text_either_normalises_to_e164_or_is_a_problem(raw: str) -> None:
    result = IT.normalise(raw)
    if isinstance(result, Identity):
        assert result.kind is IdentityKind.PHONE
        assert result.value.startswith("+") and result.value[1:].isdigit()
    else:
        assert isinstance(result, CallerProblem)


def test_emails_and_messaging_ids_are_normalised() -> None:
    assert normalise_email(" Mario.Rossi@Example.IT ") == Identity(
        IdentityKind.EMAIL, "mario.rossi@example.it"
    )
    assert normalise_email("not an email") is None
    assert normalise_whatsapp_id("393331234567@s.whatsapp.net", IT) == Identity(
        IdentityKind.WHATSAPP, "+393331234567"
    )
    assert normalise_whatsapp_id("whatsapp:+393331234567", IT) == Identity(
        IdentityKind.WHATSAPP, "+393331234567"
    )
    assert normalise(IdentityKind.CHAT, "visitor-42", IT) == Identity(
        IdentityKind.CHAT, "visitor-42"
    )
    assert normalise(IdentityKind.CHAT, "x" * 500, IT) is None
