"""Reading the identity a person typed: every accepted form, every non-identity, and properties."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from bot.demo import payloads as slack_payloads
from bot.identity import (
    DEFAULT_RULES,
    MAX_IDENTITIES,
    USAGE,
    IdentityRef,
    IdentityRules,
    Reading,
    Refusal,
    diagnose,
    extract_identities,
    misspelt_email_domain,
    parse_identity,
    read_identities,
    unknown_namespace,
)
from tests.support import RunningBot, settle

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


# --- look-alike, invisible and over-long identities (issue 8, item 5) ---------------------------

CYRILLIC_A = "\u0430"
# Bidi controls, zero-width and other format characters, and other invisible characters.
INVISIBLE = [
    *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
    *"\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\ufe0f\u3164",
]
OTHER_SCRIPT = ["\u0430", "\u0435", "\u043e", "\u0440", "\u0441", "\u03bf", "\u0391", "\u0585"]
SUSPICIOUS = st.one_of(
    st.sampled_from(INVISIBLE + OTHER_SCRIPT),
    st.characters(categories=["Cf"]),
    st.characters(categories=["Mn"]),
    st.characters(categories=["Lu", "Ll", "Lo"], min_codepoint=0x370),
)


def _only_refused(text: str) -> list[str]:
    """The reasons `text` was refused for; fails when any identity was read from it."""
    reading = read_identities(text)
    assert reading.refs == [], text
    assert parse_identity(text) is None
    return [refusal.reason for refusal in reading.refused]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # The issue's own examples: never `rtje@example.com`, never Mallory.
        (f"m{CYRILLIC_A}{CYRILLIC_A}rtje@example.com", "mixed_script"),
        (f"{CYRILLIC_A}mallory@example.com", "mixed_script"),
        (f"look up m{CYRILLIC_A}{CYRILLIC_A}rtje@example.com please", "mixed_script"),
        ("ma\u202ertje@example.com", "invisible"),
        ("mar\u200btje@example.com", "invisible"),
        ("\u202emoc.elpmaxe@liam.ym", "invisible"),
        # The cut at the end: `jane@example.c` or `jane@mail.ex` would be another identity.
        ("jane@example.c\u043em", "mixed_script"),
        (f"jane@mail.ex{CYRILLIC_A}mple.com", "mixed_script"),
        ("jane@exa\u200bmple.com", "invisible"),
        # Slack may link only the ASCII part of what was typed.
        (f"m{CYRILLIC_A}{CYRILLIC_A}<mailto:rtje@example.com|rtje@example.com>", "mixed_script"),
        (f"<mailto:rtje@example.com|m{CYRILLIC_A}{CYRILLIC_A}rtje@example.com>", "mixed_script"),
        (f"email:m{CYRILLIC_A}rtje@example.com", "mixed_script"),
        ("crmid:CRM-000\u200b123", "invisible"),
        ("CRM-000\u200b123", "invisible"),
        (f"{ECID}\u200b", "invisible"),
        ("+44\u200b 20 7946 0958", "invisible"),
        # Accents or another alphabet: the ASCII scanners would read only a part.
        ("jos\u00e9phine@example.com", "unreadable"),
        ("jose\u0301phine@example.com", "unreadable"),
        ("\u043c\u0430\u0448\u0430@example.com", "unreadable"),
        ("\u30e1\u30fc\u30eb\u306fhanako@example.jp", "mixed_script"),
        # Styled look-alikes (NFKC would change them) are not fullwidth typing.
        ("\U0001d423\U0001d41a\U0001d427\U0001d41e@example.com", "styled"),
        ("\ufb01ona@example.com", "styled"),
    ],
)
def test_look_alike_or_invisible_identities_are_refused_not_cut(text: str, reason: str) -> None:
    assert _only_refused(text) == [reason]


def test_a_refusal_says_why_in_words_without_repeating_the_text() -> None:
    [refusal] = read_identities(f"m{CYRILLIC_A}{CYRILLIC_A}rtje@example.com").refused
    assert refusal == Refusal("email address", "mixed_script")
    words = str(refusal)
    assert words.startswith("The email address you typed mixes letters of different alphabets")
    assert "rtje" not in words
    [invisible] = read_identities("mar\u200btje@example.com").refused
    assert "invisible character" in str(invisible)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Fullwidth ASCII, as East Asian input methods type it, is the ASCII it shows (NFKC).
        ("jane\uff20example.com", IdentityRef("Email", "jane@example.com")),
        (
            "\uff4a\uff41\uff4e\uff45\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
            IdentityRef("Email", "jane@example.com"),
        ),
        (
            "\uff23\uff32\uff2d\uff0d\uff10\uff10\uff10\uff11\uff12\uff13",
            IdentityRef("crmid", "CRM-000123"),
        ),
        # A single-script internationalised address, typed with its namespace, is looked up
        # exactly as typed.
        (
            "email:\u043c\u0430\u0448\u0430@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
            IdentityRef(
                "Email",
                "\u043c\u0430\u0448\u0430@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
            ),
        ),
        ("email:jos\u00e9phine@example.fr", IdentityRef("Email", "jos\u00e9phine@example.fr")),
        (
            "loyaltyId:\u5c71\u7530\u3055\u3093",
            IdentityRef("loyaltyId", "\u5c71\u7530\u3055\u3093"),
        ),
    ],
)
def test_fullwidth_and_single_script_identities_are_read(text: str, expected: IdentityRef) -> None:
    assert parse_identity(text) == expected
    assert read_identities(text) == Reading(refs=[expected], refused=[])


@pytest.mark.parametrize(
    "text",
    [
        "\u041a\u043b\u0438\u0435\u043d\u0442: jane@example.com",
        "\u5c71\u7530\u3055\u3093 jane@example.com \u3067\u3059",
        "\u300cjane@example.com\u300d",
        "\u201cjane@example.com\u201d",
        "jane@example.com\u3002",
        # A zero-width non-joiner inside a Persian word, apart from the address.
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 jane@example.com",
        "\u05e9\u05dc\u05d5\u05dd jane@example.com \u05ea\u05d5\u05d3\u05d4",
    ],
)
def test_other_scripts_around_a_spaced_identity_do_not_refuse_it(text: str) -> None:
    assert read_identities(text) == Reading(refs=[IdentityRef("Email", "jane@example.com")])


def test_a_70000_character_email_is_refused_as_too_long() -> None:
    long_local = "x" * 70_000 + "@example.com"
    for text in (
        long_local,
        f"email:{long_local}",
        f"<mailto:{long_local}|{long_local}>",
        "jane@" + "a" * 64 + ".com",  # one domain label over 63
        "a" * 65 + "@example.com",  # local part over 64
        "a@" + ("c" * 63 + ".") * 4 + "com",  # 261 characters in all
    ):
        assert _only_refused(text) == ["too_long"], text[:80]
    [refusal] = read_identities(long_local).refused
    assert "at most 254 characters" in str(refusal)
    assert parse_identity("a" * 64 + "@example.com") is not None  # the limits themselves pass


def test_an_over_long_namespace_value_is_refused_as_too_long() -> None:
    assert _only_refused("crmid:" + "x" * 70_000) == ["too_long"]
    assert _only_refused("n" * 65 + ":x") == ["too_long"]
    assert parse_identity("crmid:" + "x" * 1024) == IdentityRef("crmid", "x" * 1024)


@settings(max_examples=300, deadline=None)
@given(st.emails(), st.data())
def test_a_suspicious_character_anywhere_in_an_email_is_a_refusal_never_another_identity(
    email: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(email)))
    char = data.draw(SUSPICIOUS)
    tampered = email[:position] + char + email[position:]
    for text in (tampered, f"who is {tampered} ?", _mailto(tampered)):
        reading = read_identities(text)
        # A Cf or letter inserted may fold into the original in NFKC only for fullwidth, which
        # SUSPICIOUS does not draw: the only safe answers are nothing, or the original itself.
        assert reading.refs in ([], [IdentityRef("Email", email)]), text
        if reading.refs == []:
            assert reading.refused, text
        assert parse_identity(text) in (None, IdentityRef("Email", email))


@settings(max_examples=200, deadline=None)
@given(WRITTEN_IDENTITIES, st.data())
def test_an_invisible_character_in_any_identity_never_yields_another_identity(
    written: tuple[str, IdentityRef], data: st.DataObject
) -> None:
    text, ref = written
    position = data.draw(st.integers(min_value=0, max_value=len(text)))
    char = data.draw(st.one_of(st.sampled_from(INVISIBLE), st.characters(categories=["Cf"])))
    tampered = text[:position] + char + text[position:]
    for message in (tampered, f"see {tampered} now"):
        assert read_identities(message).refs in ([], [ref]), message


ADVERSARIAL = [
    "a\u0430" * 50_000,
    "a@b.co\u200b" * 14_000,
    "a" * 100_000 + "@",
    "4155550123,\u200b" * 8_000,
    "\u200b" + "4155550123," * 9_000,
    "crmid:\u0430x " * 10_000,
    f"m{CYRILLIC_A}rtje@example.com " * 5_000,
    "\u202e" * 100_000,
]


def test_reading_100_kb_of_adversarial_text_stays_linear() -> None:
    # Each text takes well under a second when linear; a quadratic scan of 100 KB would take
    # minutes, far beyond this budget on any machine.
    started = time.monotonic()
    for text in ADVERSARIAL:
        assert len(text) >= 90_000
        reading = read_identities(text)
        assert len(reading.refs) <= MAX_IDENTITIES
    assert time.monotonic() - started < 30


# --- end to end: what the person sees, and that AEP is never asked -----------------------------

SPOOF = f"{CYRILLIC_A}mallory@example.com"


def _command(bot: RunningBot, text: str) -> str:
    return slack_payloads.slash_command(
        text=text,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
        trigger_id="trigger-1",
    )


def _identity_refusals(bot: RunningBot) -> list[dict[str, Any]]:
    return [r for r in bot.audit() if r["outcome"].startswith("identity_refused:")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (SPOOF, "mixes letters of different alphabets"),
        (f"m{CYRILLIC_A}{CYRILLIC_A}rtje@example.com", "mixes letters of different alphabets"),
        ("jane.doe\u200b@example.com", "invisible character"),
        ("x" * 70_000 + "@example.com", "at most 254 characters"),
    ],
)
async def test_command_refuses_look_alikes_in_words_and_asks_aep_nothing(
    bot: RunningBot, text: str, words: str
) -> None:
    response = await bot.send(_command(bot, text))
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "Not looked up" in answer["text"]
    assert words in answer["text"]
    await settle()
    assert sum(bot.sim.stats.values()) == 0
    assert bot.slack.calls_to("response_url") == []
    [record] = _identity_refusals(bot)
    assert record["action"] == "refusal"
    assert record["actor"] == "U0MANAGER"
    assert record["identity_hmac"] is None
    assert "mallory" not in json.dumps(record)


async def test_command_answers_the_clean_identity_and_refuses_the_look_alike(
    bot: RunningBot,
) -> None:
    await bot.send(_command(bot, f"jane.doe@example.com {SPOOF}"))
    calls = await bot.slack.wait_for("response_url", count=2)
    texts = [call.payload["text"] for call in calls]
    assert any("Not looked up" in text for text in texts)
    assert any("Jane Doe" in json.dumps(call.payload) for call in calls)
    assert bot.sim.stats["profile"] == 1  # Jane's; nothing for the part after the Cyrillic letter
    assert len(_identity_refusals(bot)) == 1


async def test_mention_with_a_look_alike_is_refused_privately_and_posts_nothing(
    bot: RunningBot,
) -> None:
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> who is {SPOOF}?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        event_id="Ev-lookalike",
    )
    await bot.send(body)
    [private] = await bot.slack.wait_for("chat.postEphemeral")
    assert "mixes letters of different alphabets" in private.payload["text"]
    await settle()
    assert bot.slack.calls_to("chat.postMessage") == []
    assert sum(bot.sim.stats.values()) == 0
    assert [r["surface"] for r in _identity_refusals(bot)] == ["mention"]


async def test_shortcut_on_a_message_with_a_bidi_control_is_refused_in_words(
    bot: RunningBot,
) -> None:
    body = slack_payloads.message_shortcut(
        message_text="Customer ma\u202ertje@example.com asked about her order",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [answer] = await bot.slack.wait_for("response_url")
    assert "invisible character" in answer.payload["text"]
    await settle()
    assert sum(bot.sim.stats.values()) == 0
    assert len(_identity_refusals(bot)) == 1


# --- what was wrong with text that holds no identity (diagnose) ------------------------------

ORG = IdentityRules(
    email_domains=("example.com",), namespaces=frozenset({"loyaltyId", "CORE", "TNTID"})
)


@pytest.mark.parametrize(
    ("typed", "reason", "suggestion"),
    [
        ("06 12345678", "phone_without_country", "+31 6 12345678"),
        ("020 794 6095", "phone_without_country", "+31 20 794 6095"),
        ("crm-000123", "crm_id_format", "CRM-000123"),
        ("CRM-123", "crm_id_format", "CRM-000123"),
        ("crm 123", "crm_id_format", "CRM-000123"),
        ("CRM-0000123", "crm_id_format", "CRM-000123"),
        ("jane.doe@example", "email_domain", "jane.doe@example.com"),
        ("jane.doe@gmail", "email_domain", "jane.doe@gmail.com"),
        ("jane@gmailcom", "email_domain", "jane@gmail.com"),
        ("jane@hotmialcom", "email_domain", "jane@hotmail.com"),
        ("jane@exmaple", "email_domain", "jane@example.com"),
        ("jane doe", "name", ""),
        ("Jan-Willem van der Berg", "name", ""),
        ("山田 花子", "name", ""),
    ],
)
def test_a_common_slip_is_diagnosed_with_a_correction(
    typed: str, reason: str, suggestion: str
) -> None:
    diagnosis = diagnose(typed, ORG)
    assert diagnosis is not None
    assert (diagnosis.reason, diagnosis.suggestion, diagnosis.typed) == (reason, suggestion, typed)


def test_a_phone_without_country_code_names_the_region_it_was_read_in() -> None:
    us = diagnose("06 12345678", ORG)
    assert us is not None and (us.region, us.example_region) == ("US", "NL")
    # In the Netherlands the same number is valid: no slip, it is read.
    dutch = IdentityRules(default_region="NL")
    assert parse_identity("06 12345678", dutch) is not None
    assert diagnose("06 12345678", dutch) is None
    gb = diagnose("06 12345678", IdentityRules(default_region="GB"))
    assert gb is not None and gb.region == "GB"


def test_a_crm_id_is_corrected_to_the_configured_format() -> None:
    rules = IdentityRules(crm_namespace="crm", crm_pattern=r"C\d{8}")
    diagnosis = diagnose("c-1234", rules)
    assert diagnosis is not None and diagnosis.suggestion == "C00001234"
    # Nothing that fits the pattern: no guess.
    assert diagnose("CRM-1234567", DEFAULT_RULES) is None


def test_email_suggestions_put_the_orgs_own_domain_first_and_never_a_far_one() -> None:
    assert (d := diagnose("jane@example", ORG)) is not None and d.domain == "example.com"
    assert diagnose("jane@example", DEFAULT_RULES) is None  # not a domain the bot knows
    assert diagnose("jane@totally-elsewhere", ORG) is None
    # A well-formed address is read, not second-guessed here.
    assert parse_identity("jane@gmial.com", ORG) == IdentityRef("Email", "jane@gmial.com")


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "hello",  # one word of a sentence, not a name
        "not an identity",
        "who is the customer",
        "one two three four five",  # too many words for a name
        "12345",  # too few digits for a phone
        "jane.doe@example.com",  # an identity, nothing wrong with it
        "ma\u0430rtje@example",  # look-alike text is refused elsewhere, never corrected
        "jane\u200bdoe",
    ],
)
def test_text_that_no_common_slip_explains_gets_no_diagnosis(typed: str) -> None:
    assert diagnose(typed, ORG) is None


def test_an_unknown_namespace_is_diagnosed_only_when_the_orgs_namespaces_are_known() -> None:
    diagnosis = unknown_namespace(IdentityRef("foo", "bar"), ORG)
    assert diagnosis is not None and diagnosis.reason == "unknown_namespace"
    assert diagnosis.typed == "foo"
    assert diagnosis.known == ("CORE", "crmid", "ECID", "Email", "loyaltyId", "Phone", "TNTID")
    for known in ("loyaltyid", "crmid", "Email", "ECID", "Phone_E.164", "AAID"):
        assert unknown_namespace(IdentityRef(known, "x"), ORG) is None
    # Without the org's namespaces the bot cannot tell: every namespace is looked up.
    assert unknown_namespace(IdentityRef("foo", "bar"), DEFAULT_RULES) is None


def test_the_orgs_email_domains_must_be_domains() -> None:
    assert IdentityRules(email_domains=(" Example.COM ",)).email_domains == ("example.com",)
    with pytest.raises(ValueError, match="not a domain"):
        IdentityRules(email_domains=("not a domain",))


def test_a_well_formed_address_with_a_near_miss_domain_has_a_correction_for_later() -> None:
    slip = misspelt_email_domain("jane@gmial.com", ORG)
    assert slip is not None and (slip.domain, slip.suggestion) == ("gmail.com", "jane@gmail.com")
    assert misspelt_email_domain("jane@gmail.com", ORG) is None
    assert misspelt_email_domain("jane@acme-industries.com", ORG) is None
