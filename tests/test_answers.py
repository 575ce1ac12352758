"""bot.answers and bot.vocabulary: each AEP error's audit outcome and words are decided once, and
the named vocabularies match the tables they name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.aep import errors
from bot.aep.errors import AepError
from bot.answers import (
    Asker,
    Card,
    SearchProblem,
    clear_history,
    diagnosis_notice,
    error_notice,
    identity_refusal,
    read_search,
    search_reader,
)
from bot.i18n import reader_for
from bot.identity import Diagnosis, IdentityRef, Refusal, unknown_namespace
from bot.services import Services, build_services
from bot.vocabulary import IdentityRefused, NoGrants, PostFailed
from tests.support import bot_settings

# Every error class, its audit outcome (a subclass keeps its family's) and the notice it reads as.
ERRORS: list[tuple[type[AepError], str, str]] = [
    (errors.ProfileNotFound, "not_found", "No customer profile found"),
    (errors.TooManyIdentities, "too_many_identities", "refuses to return"),
    (errors.LookupRejected, "rejected", "Platform rejected"),
    (errors.RateLimited, "rate_limited", "too many lookups"),
    (errors.AepUnavailable, "unavailable", "did not answer"),
    (errors.AepServerError, "unavailable", "error"),
    (errors.AepTimedOut, "unavailable", "did not answer"),
    (errors.AepUnreachable, "unavailable", "could not connect"),
    (errors.ImsUnavailable, "unavailable", "sign"),
    (errors.CredentialsProblem, "credentials", "credentials"),
    (errors.Misconfigured, "misconfigured", "The bot is misconfigured"),
    # Never reaches a person (the client reads it as "these audiences are unknown").
    (errors.AudiencesNotFound, "not_found", "No customer profile found"),
    (errors.MalformedResponse, "malformed", "could not read"),
    (errors.ResponseTooLarge, "malformed", "too large"),
    (AepError, "error", "reference"),
]


def test_every_error_class_of_the_client_is_covered() -> None:
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, AepError)
    }
    assert defined == {cls for cls, _, _ in ERRORS}


@pytest.mark.parametrize(("cls", "outcome", "words"), ERRORS)
def test_a_failed_lookup_is_audited_by_its_family_and_told_by_its_cause(
    services: Services, cls: type[AepError], outcome: str, words: str
) -> None:
    ref = IdentityRef(namespace="email", value="jane.doe@example.com")
    exc = cls("what Platform said", status=503, request_id="req-1")
    message = error_notice(services, exc, ref, frozenset({"contact"}), services.default_reader)
    assert Card(message=message, ref=ref, failure=exc).outcome == outcome
    assert words.lower() in message["text"].lower()


def test_the_words_differ_within_a_family_while_the_outcome_does_not(services: Services) -> None:
    ref = IdentityRef(namespace="email", value="jane.doe@example.com")
    # A timeout reads as the family's own words; every other cause says more.
    unavailable = [
        errors.AepUnavailable,
        errors.AepServerError,
        errors.AepUnreachable,
        errors.ImsUnavailable,
    ]
    texts = {
        error_notice(services, cls("x"), ref, frozenset(), services.default_reader)["text"]
        for cls in unavailable
    }
    assert len(texts) == len(unavailable)


def test_composite_outcomes_read_as_the_audit_file_always_had_them() -> None:
    assert str(NoGrants("lookup")) == "no_grants:lookup"
    assert str(IdentityRefused("mixed_script")) == "identity_refused:mixed_script"
    assert str(PostFailed("not_in_channel")) == "post_failed:not_in_channel"


# --- issue 15, mutation testing: rules of the use case that no end-to-end test pinned ----------


@pytest.mark.parametrize("team_id", [None, "T0TEAM"])
async def test_clear_history_forgets_the_askers_lookups_with_or_without_a_team(
    services: Services, team_id: str | None
) -> None:
    jane = IdentityRef(namespace="email", value="jane.doe@example.com")
    await services.history.record(team_id or "", "U0AGENT", jane, surface="private")
    await services.history.record(team_id or "", "U0OTHER", jane, surface="private")
    await clear_history(services, Asker(team_id=team_id, user_id="U0AGENT", channel_id=None))
    assert await services.history.recent(team_id or "", "U0AGENT") == []
    # Someone else's history stays.
    assert len(await services.history.recent(team_id or "", "U0OTHER")) == 1


@pytest.mark.parametrize(
    "text", ["Phone_E.164:+31612345678", "Phone:+31612345678", "+31 6 12345678"]
)
def test_a_phone_in_either_phone_namespace_is_the_phone_kind_in_the_search(
    services: Services, text: str
) -> None:
    found = read_search(services, text, "phone")
    assert isinstance(found, IdentityRef), found
    assert found.namespace.lower().startswith("phone")


def test_a_phone_is_not_taken_as_an_email_in_the_search(services: Services) -> None:
    found = read_search(services, "Phone_E.164:+31612345678", "email")
    assert not isinstance(found, IdentityRef)
    assert found.kind == "wrong_kind"


TWO_REFUSALS = (Refusal("email address", "mixed_script"), Refusal("phone number", "invisible"))


def test_every_reason_an_identity_was_refused_is_said_one_after_another(
    services: Services,
) -> None:
    reader = services.default_reader
    first, second = (refusal.words(reader) for refusal in TWO_REFUSALS)
    told = identity_refusal(services, TWO_REFUSALS, reader)["text"]
    assert f"{first} {second}" in told
    shown = SearchProblem("refused", refused=TWO_REFUSALS).words(services, reader)
    assert f"{first} {second}" in shown


@pytest.mark.parametrize("metadata", ["", "not json", "[]", '"nl"', '{"locale": 7}', "{}"])
async def test_the_search_modal_without_a_readable_locale_reads_the_default_language(
    tmp_path: Path, metadata: str
) -> None:
    settings = bot_settings(
        "http://aep.invalid", "http://slack.invalid", tmp_path, bot_default_locale="nl"
    )
    built = build_services(settings)
    try:
        assert search_reader(built, metadata).locale.language == "nl"
        assert search_reader(built, '{"locale": "en-US"}').locale.language == "en"
    finally:
        await built.aclose()


def _email_slip(typed: str) -> Diagnosis:
    return Diagnosis(
        "email_domain", typed=typed, suggestion="jane@example.com", domain="example.com"
    )


@pytest.mark.parametrize("typed", ["jane@example", "jane@Example.", "a@b@example"])
def test_an_address_whose_domain_lacks_its_end_is_told_so(services: Services, typed: str) -> None:
    text = diagnosis_notice(services, _email_slip(typed), services.default_reader)["text"]
    assert f"`{typed}` has no complete domain after the @" in text
    assert "misspelt" not in text
    assert "Did you mean example.com?" in text and "`/customer jane@example.com`" in text


@pytest.mark.parametrize("typed", ["jane@exmaple.com", "jane@", "jane@.example"])
def test_an_address_with_another_domain_is_told_it_looks_misspelt(
    services: Services, typed: str
) -> None:
    text = diagnosis_notice(services, _email_slip(typed), services.default_reader)["text"]
    assert f"The domain of `{typed}` looks misspelt" in text
    assert "no complete domain" not in text


def test_a_backtick_typed_cannot_end_the_code_span_early(services: Services) -> None:
    slip = Diagnosis(
        "email_domain", typed="ja`ne@example", suggestion="ja`ne@example.com", domain="example.com"
    )
    text = diagnosis_notice(services, slip, services.default_reader)["text"]
    assert "`ja'ne@example` has no complete domain" in text
    assert "`/customer ja'ne@example.com`" in text


@pytest.mark.parametrize(
    ("region", "example", "words"),
    [
        ("US", "NL", "BOT_DEFAULT_REGION is US (United States)"),
        ("QQ", "QQ", "BOT_DEFAULT_REGION is QQ (QQ)"),
    ],
)
def test_a_phone_without_country_names_the_regions_in_words(
    services: Services, region: str, example: str, words: str
) -> None:
    slip = Diagnosis(
        "phone_without_country",
        typed="06 12345678",
        suggestion="+31 6 12345678",
        region=region,
        example_region=example,
    )
    text = diagnosis_notice(services, slip, services.default_reader)["text"]
    assert words in text
    shown = "Netherlands" if example == "NL" else example
    assert f"for example ({shown}) `/customer +31 6 12345678`" in text


def test_the_diagnosis_is_said_in_the_readers_language(services: Services) -> None:
    dutch = reader_for("nl-NL")
    slip = Diagnosis(
        "phone_without_country",
        typed="06 12345678",
        suggestion="+31 6 12345678",
        region="US",
        example_region="NL",
    )
    text = diagnosis_notice(services, slip, dutch)["text"]
    assert "(Verenigde Staten)" in text and "bijvoorbeeld (Nederland)" in text
    unknown = unknown_namespace(IdentityRef("loyalty", "x1"), services.rules)
    assert unknown is not None
    listed = diagnosis_notice(services, unknown, dutch)["text"]
    assert "loyaltyId, Phone en TNTID" in listed
