"""Reading the identity a person typed: every accepted form, every non-identity, and properties."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from bot.identity import (
    MAX_IDENTITIES,
    USAGE,
    IdentityRef,
    IdentityRules,
    extract_identities,
    parse_identity,
)

ECID = "41234567890123456789012345678901234567"
NL = IdentityRules(default_region="NL")
LUMA = IdentityRules(crm_namespace="lumaCRMId", crm_pattern=r"L\d{5}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # email: trimmed, case kept as typed
        ("jane.doe@example.com", IdentityRef("Email", "jane.doe@example.com")),
        ("  Jane.Doe@Example.COM \n", IdentityRef("Email", "Jane.Doe@Example.COM")),
        ("jane+vip@mail.example.co.uk", IdentityRef("Email", "jane+vip@mail.example.co.uk")),
        ('"jane@example.com".', IdentityRef("Email", "jane@example.com")),
        ("<mailto:jane@example.com|jane@example.com>", IdentityRef("Email", "jane@example.com")),
        ("<mailto:Jane@Example.com|Jane@Example.com>", IdentityRef("Email", "Jane@Example.com")),
        (
            "<mailto:a&amp;b@example.com|a&amp;b@example.com>",
            IdentityRef("Email", "a&b@example.com"),
        ),
        ("<mailto:jane@example.com?subject=Hi|Jane>", IdentityRef("Email", "jane@example.com")),
        ("mailto:jane@example.com", IdentityRef("Email", "jane@example.com")),
        ("<@U0BOT> jane@example.com", IdentityRef("Email", "jane@example.com")),
        ("&lt;jane@example.com&gt;", IdentityRef("Email", "jane@example.com")),
        # phone: E.164 out, national numbers read in the default region (US)
        ("+31 6 1234 5678", IdentityRef("Phone", "+31612345678")),
        ("+31612345678", IdentityRef("Phone", "+31612345678")),
        ("(415) 555-0123", IdentityRef("Phone", "+14155550123")),
        ("415.555.0123", IdentityRef("Phone", "+14155550123")),
        ("+1 415-555-0123", IdentityRef("Phone", "+14155550123")),
        ("<tel:+31612345678|+31 6 1234 5678>", IdentityRef("Phone", "+31612345678")),
        ("<tel:4155550123|(415) 555-0123>", IdentityRef("Phone", "+14155550123")),
        ("tel:+1-415-555-0123", IdentityRef("Phone", "+14155550123")),
        # ECID: exactly 38 digits
        (ECID, IdentityRef("ECID", ECID)),
        # bare CRM id
        ("CRM-000123", IdentityRef("crmid", "CRM-000123")),
        # explicit namespace:value, well-known codes in AEP's spelling
        ("crmid:123", IdentityRef("crmid", "123")),
        ("CRMID:CRM-000123", IdentityRef("crmid", "CRM-000123")),
        ("loyaltyId:L-99", IdentityRef("loyaltyId", "L-99")),
        ("loyaltyId: L-99", IdentityRef("loyaltyId", "L-99")),
        ("Email:x@y.z", IdentityRef("Email", "x@y.z")),
        ("email:Jane@Example.com", IdentityRef("Email", "Jane@Example.com")),
        ("EMAIL: <mailto:x@y.z|x@y.z>", IdentityRef("Email", "x@y.z")),
        ("ecid:" + ECID, IdentityRef("ECID", ECID)),
        ("ECID:" + ECID, IdentityRef("ECID", ECID)),
        ("phone:+31 6 1234 5678", IdentityRef("Phone", "+31612345678")),
        ("Phone:(415) 555-0123", IdentityRef("Phone", "+14155550123")),
        ("phone:<tel:+31612345678|+31 6 1234 5678>", IdentityRef("Phone", "+31612345678")),
        ("Phone_E.164:+31612345678", IdentityRef("Phone_E.164", "+31612345678")),
        ("phone_e.164:+31 6 1234 5678", IdentityRef("Phone_E.164", "+31612345678")),
        ("(crmid:CRM-000123).", IdentityRef("crmid", "CRM-000123")),
    ],
)
def test_parse_identity_accepted_forms(text: str, expected: IdentityRef) -> None:
    assert parse_identity(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "look up jane@example.com",  # more than one identity's worth of text
        "jane@example.com bob@example.com",
        "jane@",
        "@example.com",
        "jane@localhost",
        # URLs and links are not identities
        "https://crm.example.com/customers/CRM-000123",
        "http://example.com",
        "http:example",
        "slack://channel?team=T1&id=C1",
        "slack:open",
        "<https://example.com|example.com>",
        "<https://crm.example.com/c/1|jane@example.com>",
        "<slack://open|Open Slack>",
        "mailto:not-an-email",
        "<mailto:nobody|nobody>",
        "tel:12",
        # times, mentions
        "10:30",
        "at 10:30",
        "10:30:15",
        "<@U123>",
        "<@U123|jane>",
        "<#C123|general>",
        f"<#C123|{ECID}>",  # a channel named like an ECID is still a channel
        "<!here>",
        "<!subteam^S123|@support>",
        # numbers that are neither phones nor ECIDs
        "12",
        "+1 555",
        "+31 6 12",
        "000-000-0000",
        ECID[:-1],
        ECID + "1",
        # malformed explicit identities
        "crmid:",
        "loyaltyId:L 99",
        "9lives:x",
        "phone:12",
        "phone:jane@example.com",
        "Note: call back later",
        # CRM ids that do not match the pattern
        "CRM-12345",
        "crm-000123",
    ],
)
def test_parse_identity_non_identities(text: str) -> None:
    assert parse_identity(text) is None


def test_national_phone_is_read_in_the_default_region() -> None:
    assert parse_identity("06 12345678", NL) == IdentityRef("Phone", "+31612345678")
    lower_case = IdentityRules(default_region="nl")
    assert parse_identity("06 12345678", lower_case) == IdentityRef("Phone", "+31612345678")
    assert parse_identity("020 123 4567", NL) == IdentityRef("Phone", "+31201234567")
    # The same digits are no US number.
    assert parse_identity("06 12345678") is None


def test_custom_crm_namespace_and_pattern() -> None:
    assert parse_identity("L12345", LUMA) == IdentityRef("lumaCRMId", "L12345")
    assert parse_identity("LUMACRMID:L12345", LUMA) == IdentityRef("lumaCRMId", "L12345")
    assert parse_identity("CRM-000123", LUMA) is None
    # Another org's code is just another namespace.
    assert parse_identity("crmid:CRM-000123", LUMA) == IdentityRef("crmid", "CRM-000123")
    assert extract_identities("try L12345 or L123456", LUMA) == [IdentityRef("lumaCRMId", "L12345")]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"default_region": "XX"}, "default_region"),
        ({"default_region": ""}, "default_region"),
        ({"crm_namespace": "1crm"}, "crm_namespace"),
        ({"crm_namespace": ""}, "crm_namespace"),
        ({"crm_pattern": "CRM-("}, "crm_pattern"),
        ({"crm_pattern": r"\d*"}, "crm_pattern"),
    ],
)
def test_rules_reject_bad_configuration(rules: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdentityRules(**rules)


def test_extract_identities_from_a_slack_message() -> None:
    text = (
        "Hi <@U0BOT>, can you check <mailto:jane@example.com|jane@example.com> (also written "
        "jane@example.com)? She called at 10:30 from +31 6 1234 5678 and later (415) 555-0123. "
        "Ticket crmid:CRM-000123 = CRM-000123, ECID " + ECID + "; see "
        "<https://crm.example.com/c/CRM-000999|her record> and "
        "https://x.example.com/?u=bob@example.com &amp; loyaltyId:L-99."
    )
    assert extract_identities(text) == [
        IdentityRef("Email", "jane@example.com"),
        IdentityRef("Phone", "+31612345678"),
        IdentityRef("Phone", "+14155550123"),
        IdentityRef("crmid", "CRM-000123"),
        IdentityRef("ECID", ECID),
        IdentityRef("loyaltyId", "L-99"),
    ]


def test_extract_reads_ecid_once_and_never_as_a_phone() -> None:
    assert extract_identities(f"ecid {ECID} please") == [IdentityRef("ECID", ECID)]
    assert extract_identities(f"ECID:{ECID} and {ECID}") == [IdentityRef("ECID", ECID)]


def test_extract_merges_the_same_customer_written_twice() -> None:
    text = (
        "<mailto:Jane@Example.com|Jane@Example.com> jane@example.com email:jane@example.com "
        "<tel:+31612345678|+31 6 1234 5678> +31612345678 phone:+31 6 1234 5678 "
        "CRM-000123 CRMID:CRM-000123"
    )
    assert extract_identities(text) == [
        IdentityRef("Email", "Jane@Example.com"),
        IdentityRef("Phone", "+31612345678"),
        IdentityRef("crmid", "CRM-000123"),
    ]


def test_extract_explicit_namespace_before_a_slack_link() -> None:
    text = "email:<mailto:x@y.z|x@y.z>, phone:<tel:+14155550123|+1 415 555 0123>"
    assert extract_identities(text) == [
        IdentityRef("Email", "x@y.z"),
        IdentityRef("Phone", "+14155550123"),
    ]


def test_extract_explicit_phone_with_spaces() -> None:
    assert extract_identities("phone:+1 415 555 0123 tomorrow, crmid:7") == [
        IdentityRef("Phone", "+14155550123"),
        IdentityRef("crmid", "7"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "no customer here",
        "meet at 10:30, 11:45 or 12:00:30; https://example.com and http:foo",
        "<https://crm.example.com/c/1|jane@example.com> <slack://open|x> mailto:nobody",
        "<@U123> <@U456|bob> <#C1|general> <!channel> :smile: Note: later",
        "order 12 of 2024-05-06T10:30:00Z, ratio 3:1, CRM-12345",
    ],
)
def test_extract_finds_nothing_in_text_without_identities(text: str) -> None:
    assert extract_identities(text) == []


def test_extract_stops_at_the_cap() -> None:
    text = " ".join(f"crmid:{n}" for n in range(MAX_IDENTITIES + 5))
    found = extract_identities(text)
    assert len(found) == MAX_IDENTITIES == 20
    assert found[-1] == IdentityRef("crmid", str(MAX_IDENTITIES - 1))


USAGE_EXAMPLES = [
    "jane.doe@example.com",
    "+31 6 1234 5678",
    "(415) 555-0123",
    "CRM-000123",
    ECID,
    "crmid:CRM-000123",
    "loyaltyId:L-99",
    "phone:+14155550123",
]


@pytest.mark.parametrize("example", USAGE_EXAMPLES)
def test_usage_examples_are_accepted(example: str) -> None:
    assert example in USAGE
    assert parse_identity(example) is not None


def test_usage_is_plain_text() -> None:
    # Shown as a Slack message: no mrkdwn emphasis, no link or mention syntax to escape.
    assert not re.search(r"[<>&*~]", USAGE)


# --- properties ---------------------------------------------------------------------------------

PHONE_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
)
EXAMPLE_NUMBERS = sorted(
    {
        phonenumbers.format_number(example, PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in PHONE_TYPES
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)


@st.composite
def phone_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """Valid numbers of every region: a region's example number with its last digits redrawn."""
    example = draw(st.sampled_from(EXAMPLE_NUMBERS))
    tail = draw(st.integers(min_value=0, max_value=min(4, len(example) - 4)))
    digits = draw(st.text("0123456789", min_size=tail, max_size=tail))
    number = phonenumbers.parse(example[: len(example) - tail] + digits)
    assume(phonenumbers.is_valid_number(number))
    assume(phonenumbers.region_code_for_number(number) in phonenumbers.SUPPORTED_REGIONS)
    return number


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def _international(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL))


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@settings(max_examples=100, deadline=None)
@given(st.emails())
def test_any_email_round_trips(email: str) -> None:
    expected = IdentityRef("Email", email)
    assert parse_identity(email) == expected
    assert parse_identity(f" {email} ") == expected
    slack = _slack_escape(email)
    assert parse_identity(f"<mailto:{slack}|{slack}>") == expected


@settings(max_examples=200, deadline=None)
@given(phone_numbers())
def test_any_valid_phone_normalises_to_e164(number: phonenumbers.PhoneNumber) -> None:
    expected = IdentityRef("Phone", _e164(number))
    rules = IdentityRules(default_region=str(phonenumbers.region_code_for_number(number)))
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = _international(number)
    for written in (
        national,
        international,
        _e164(number),
        f"<tel:{_e164(number)}|{international}>",
        f"phone:{international}",
    ):
        assert parse_identity(written, rules) == expected, written
    assert extract_identities(f"call {national} today", rules) == [expected]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_identity_never_raises(text: str) -> None:
    ref = parse_identity(text)
    assert ref is None or (ref.namespace and ref.value)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_extract_identities_never_raises(text: str) -> None:
    found = extract_identities(text)
    assert len(found) <= MAX_IDENTITIES
    assert all(ref.namespace and ref.value for ref in found)


def _mailto(email: str) -> str:
    slack = _slack_escape(email)
    return f"<mailto:{slack}|{slack}>"


# (how it is written in a message, the identity it denotes)
WRITTEN_IDENTITIES = st.one_of(
    st.emails().map(lambda e: (e, IdentityRef("Email", e))),
    st.emails().map(lambda e: (_mailto(e), IdentityRef("Email", e))),
    phone_numbers().map(lambda n: (_international(n), IdentityRef("Phone", _e164(n)))),
    phone_numbers().map(
        lambda n: (f"<tel:{_e164(n)}|{_international(n)}>", IdentityRef("Phone", _e164(n)))
    ),
    st.from_regex(r"[0-9]{38}", fullmatch=True).map(lambda e: (e, IdentityRef("ECID", e))),
    st.from_regex(r"CRM-[0-9]{6}", fullmatch=True).map(lambda c: (c, IdentityRef("crmid", c))),
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True).map(
        lambda v: (f"loyaltyId:{v}", IdentityRef("loyaltyId", v))
    ),
)
WORDS = st.lists(st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True), max_size=6)


def _first_appearances(refs: list[IdentityRef]) -> list[IdentityRef]:
    unique: list[IdentityRef] = []
    for ref in refs:
        same = ref.value.casefold() if ref.namespace == "Email" else ref.value
        if not any(
            seen.namespace == ref.namespace
            and (seen.value.casefold() if seen.namespace == "Email" else seen.value) == same
            for seen in unique
        ):
            unique.append(ref)
    return unique


@settings(max_examples=60, deadline=None)
@given(
    st.lists(WRITTEN_IDENTITIES, min_size=1, max_size=6).flatmap(
        # Repeat some of them, so that duplicates occur.
        lambda items: st.lists(st.sampled_from(items), max_size=4).map(lambda more: items + more)
    ),
    st.sampled_from([" ", ", ", " and ", "\n", "; "]),
)
def test_extract_has_no_duplicates_and_keeps_order(
    written: list[tuple[str, IdentityRef]], separator: str
) -> None:
    found = extract_identities(separator.join(text for text, _ in written))
    assert found == _first_appearances([ref for _, ref in written])
    assert len(set(found)) == len(found)


@settings(max_examples=100, deadline=None)
@given(WORDS, WRITTEN_IDENTITIES, WORDS)
def test_identity_in_prose_is_found(
    before: list[str], written: tuple[str, IdentityRef], after: list[str]
) -> None:
    text, ref = written
    assert extract_identities(" ".join([*before, text, *after])) == [ref]
