from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context.identity import (
    MAX_CHAT_ID_CHARS,
    MAX_EMAIL_CHARS,
    MAX_RAW_PHONE_CHARS,
    InvalidIdentity,
    PhoneNormaliser,
    normalise,
    normalise_chat_id,
    normalise_email,
    normalise_identity,
    normalise_whatsapp_id,
    phone_twin,
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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Mario.Rossi@Example.IT ", "mario.rossi@example.it"),
        ("mario.rossi@example.it", "mario.rossi@example.it"),
        ("\tANNA+ordini@Posta.Example.COM\n", "anna+ordini@posta.example.com"),
        ("O'Brien@Example.ie", "o'brien@example.ie"),  # an apostrophe is valid (RFC 5322)
    ],
)
def test_given_an_email_in_any_case_then_trimmed_and_lower_cased_throughout(
    raw: str, expected: str
) -> None:
    """Domain and local part alike: a product decision (module docstring)."""
    assert normalise_email(raw) == Identity(IdentityKind.EMAIL, expected)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not an email", "exactly one @"),
        ("a@b@example.it", "exactly one @"),
        ("@example.it", "nothing before"),
        ("mario@", "dotted host"),
        ("mario@localhost", "dotted host"),
        ("mario@example..it", "dotted host"),
        ("mario@-example.it", "dotted host"),
        (".mario@example.it", "misplaced dot"),
        ("ma..rio@example.it", "misplaced dot"),
        ('"Mario" <mario@example.it>', "blanks, quotes"),
        ("mario@example.it, anna@example.it", "exactly one @"),
        ("mario,anna@example.it", "blanks, quotes"),
        ("mario\x00@example.it", "control"),
        ("m" * 65 + "@example.it", "longer than 64"),
        ("m@" + "e" * MAX_EMAIL_CHARS + ".it", f"longer than {MAX_EMAIL_CHARS}"),
    ],
)
def test_given_a_malformed_email_then_invalid_identity_says_what_is_wrong(
    raw: str, why: str
) -> None:
    with pytest.raises(InvalidIdentity, match=why) as caught:
        normalise_email(raw)
    assert caught.value.kind is IdentityKind.EMAIL
    assert "not a valid email identity" in str(caught.value)
    assert isinstance(caught.value, ValueError)  # the web layer answers 400


@pytest.mark.parametrize(
    "raw",
    [
        "393331234567",  # the Cloud API's wa_id
        "+393331234567",
        " 393331234567 ",
        "393331234567@s.whatsapp.net",
        "393331234567@c.us",
        "whatsapp:+393331234567",  # Twilio
        "WhatsApp:+39 333 123 4567",
        "+39 333-123-4567",
    ],
)
def test_given_any_form_of_a_whatsapp_id_then_the_wa_id_digits_only(raw: str) -> None:
    assert normalise_whatsapp_id(raw) == Identity(IdentityKind.WHATSAPP, "393331234567")


def test_given_the_shortest_numbers_in_use_then_accepted() -> None:
    assert normalise_whatsapp_id("+683 4002").value == "6834002"  # Niue, 7 digits


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("whatsapp:", "empty"),
        ("abc", "digits only"),
        ("+39 333 abc 4567", "digits only"),
        ("١٢٣٤٥٦٧٨٩", "digits only"),  # Arabic-Indic digits: isdigit() but not a wa_id
        ("123456", "6 digits"),
        ("1" * 16, "16 digits"),
        ("0393331234567", "start with 0"),
        ("99912345678", "country code"),
    ],
)
def test_given_a_malformed_whatsapp_id_then_invalid_identity(raw: str, why: str) -> None:
    with pytest.raises(InvalidIdentity, match=why):
        normalise_whatsapp_id(raw)


def test_given_chat_ids_then_trimmed_and_otherwise_kept() -> None:
    assert normalise_chat_id("  Visitor-42 ") == Identity(IdentityKind.CHAT, "Visitor-42")
    assert normalise_chat_id("visitor-42") != normalise_chat_id("Visitor-42")  # case matters
    for raw, why in [
        ("", "empty"),
        (" \t", "empty"),
        ("visitor 42", "blanks"),
        ("visitor\x0742", "control"),
        ("x" * (MAX_CHAT_ID_CHARS + 1), "longer than"),
    ]:
        with pytest.raises(InvalidIdentity, match=why):
            normalise_chat_id(raw)


def test_given_a_kind_and_a_value_then_one_entry_point_raises_or_returns_none() -> None:
    assert normalise_identity(IdentityKind.PHONE, "02 1234 5678", IT) == Identity(
        IdentityKind.PHONE, "+390212345678"
    )
    with pytest.raises(InvalidIdentity, match="invalid phone number"):
        normalise_identity(IdentityKind.PHONE, "123", IT)
    with pytest.raises(InvalidIdentity, match="withheld phone number"):
        normalise_identity(IdentityKind.PHONE, "anonymous", IT)
    assert normalise(IdentityKind.EMAIL, "G@Example.it", IT) == Identity(
        IdentityKind.EMAIL, "g@example.it"
    )
    assert normalise(IdentityKind.EMAIL, "nope", IT) is None
    assert normalise(IdentityKind.WHATSAPP, "nope", IT) is None
    assert normalise(IdentityKind.CHAT, "x" * 500, IT) is None


def test_given_a_whatsapp_id_then_its_phone_twin_is_e164_and_back() -> None:
    wa = Identity(IdentityKind.WHATSAPP, "393331234567")
    phone = Identity(IdentityKind.PHONE, "+393331234567")
    assert phone_twin(wa) == phone
    assert phone_twin(phone) == wa
    assert phone_twin(Identity(IdentityKind.EMAIL, "g@example.it")) is None


@pytest.mark.parametrize("kind", list(IdentityKind))
@given(raw=st.text(max_size=60))
def test_any_text_normalises_to_a_fixed_point_or_raises_invalid_identity(
    kind: IdentityKind, raw: str
) -> None:
    """Normalising is idempotent (what is stored is found again) and fails only one way."""
    try:
        first = normalise_identity(kind, raw, IT)
    except InvalidIdentity as exc:
        assert exc.kind is kind
        return
    assert first.kind is kind
    assert normalise_identity(kind, first.value, IT) == first
    assert first.value == first.value.strip() and first.value
