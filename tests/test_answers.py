"""bot.answers and bot.vocabulary: each AEP error's audit outcome and words are decided once, and
the named vocabularies match the tables they name."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.aep import errors
from bot.aep.errors import AepError
from bot.aep.models import MergePolicy
from bot.answers import (
    Asker,
    Card,
    CardRequest,
    SearchProblem,
    Viewer,
    audit_card,
    clear_history,
    diagnosis_notice,
    error_notice,
    find_identities,
    home_view,
    identity_refusal,
    lookup_card,
    may_offer_share,
    private_card,
    profile_in_link,
    profile_link,
    read_search,
    reader_of,
    render_card,
    replay,
    search_reader,
    share_check,
    unfurl_cards,
    viewer_of,
)
from bot.answers import now as answers_now
from bot.button_tokens import Place
from bot.demo.dataset import load_dataset
from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from bot.i18n import reader_for
from bot.identity import (
    MAX_IDENTITIES,
    Diagnosis,
    IdentityRef,
    IdentityRules,
    Refusal,
    unknown_namespace,
)
from bot.policy import Channel, Person, access_for
from bot.services import Services, build_services
from bot.slack_web import SlackBusy
from bot.vocabulary import AuditOutcome, IdentityRefused, NoGrants, PostFailed
from tests.support import JANE, bot_settings

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


async def test_someone_slack_gives_no_locale_reads_the_deployments_default_language(
    tmp_path: Path,
) -> None:
    """BOT_DEFAULT_LOCALE is the language of everyone whose Slack locale is unknown; a locale
    Slack gives wins, and a time zone Slack gives is kept."""
    settings = bot_settings(
        "http://aep.invalid", "http://slack.invalid", tmp_path, bot_default_locale="nl"
    )
    built = build_services(settings)
    try:
        unknown = Person("U0NOLOCALE", frozenset({"support"}))
        assert reader_of(built, unknown).locale.language == "nl"
        english = Person("U0EN", frozenset({"support"}), locale="en-US", tz="Europe/Amsterdam")
        assert reader_of(built, english).locale.language == "en"
        assert str(reader_of(built, english).zone) == "Europe/Amsterdam"
    finally:
        await built.aclose()


def test_the_clock_cards_are_dated_by_is_utc_whatever_the_hosts_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "Fetched just now" and every relative time are counted from an aware UTC clock: on a
    host set to UTC+14 a naive local clock would be read as UTC, fourteen hours ahead."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        clock = answers_now()
        assert clock.utcoffset() == timedelta(0)
        assert abs(clock - datetime.now(UTC)) < timedelta(minutes=1)
    finally:
        monkeypatch.undo()
        time.tzset()


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


# --- issue 15, the words of a failed lookup --------------------------------------------------


def _failed(services: Services, exc: AepError, ref: IdentityRef, classes: frozenset[str]) -> str:
    text: str = error_notice(services, exc, ref, classes, services.default_reader)["text"]
    return text


def test_an_unknown_address_of_a_near_miss_domain_suggests_the_orgs_own_domain(
    services: Services,
) -> None:
    ref = IdentityRef(namespace="Email", value="jane@exampel.com")
    text = _failed(services, errors.ProfileNotFound("x"), ref, frozenset({"contact"}))
    assert text.startswith("No customer profile found for Email jane@exampel.com.")
    assert "example.com" in text.replace("exampel.com", "")


def test_an_unknown_address_hidden_from_the_reader_suggests_no_domain(
    services: Services,
) -> None:
    # Someone who may not see contact details (a button's token named the address, not them)
    # learns neither the address nor a spelling of it.
    ref = IdentityRef(namespace="Email", value="jane@exampel.com")
    text = _failed(services, errors.ProfileNotFound("x"), ref, frozenset({"basic"}))
    assert text == (
        "No customer profile found for Email. Check the spelling, or try another identity of "
        "theirs, such as an email address or phone number."
    )


def test_a_failed_lookup_names_a_custom_namespace_as_the_sandbox_names_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.cards, "namespace_names", {"acmemember": "ACME member number"})
    ref = IdentityRef(namespace="acmeMember", value="M-1")
    text = _failed(services, errors.ProfileNotFound("x"), ref, frozenset({"identifiers"}))
    assert text.startswith("No customer profile found for ACME member number M-1.")


async def test_no_answer_in_time_names_the_configured_deadline(tmp_path: Path) -> None:
    settings = bot_settings(
        "http://aep.invalid", "http://slack.invalid", tmp_path, bot_lookup_deadline=4.6
    )
    built = build_services(settings)
    try:
        ref = IdentityRef(namespace="Email", value="jane.doe@example.com")
        text = _failed(built, errors.AepUnavailable("x"), ref, frozenset({"contact"}))
        assert text.startswith("Adobe Experience Platform did not answer within 5 seconds.")
    finally:
        await built.aclose()


def test_a_rejected_lookup_says_what_platform_said(services: Services) -> None:
    ref = IdentityRef(namespace="Email", value="jane.doe@example.com")
    text = _failed(services, errors.LookupRejected("Platform says no"), ref, frozenset())
    assert text.startswith("Adobe Experience Platform rejected the lookup: Platform says no. ")


@pytest.mark.parametrize(("request_id", "reference"), [("req-1", "req-1"), (None, "none")])
def test_an_internal_error_gives_its_request_id_or_none_as_the_reference(
    services: Services, request_id: str | None, reference: str
) -> None:
    ref = IdentityRef(namespace="Email", value="jane.doe@example.com")
    text = _failed(services, AepError("x", request_id=request_id), ref, frozenset())
    assert text.endswith(f"give them the reference `{reference}`.")


# --- issue 15, profile links -----------------------------------------------------------------

FRAGMENT = "/@DEMO0000000000000000000%40AdobeOrg/sname:prod/platform/profile/browse/"


async def test_a_profile_link_has_one_slash_after_an_aep_ui_url_ending_in_slashes(
    tmp_path: Path,
) -> None:
    settings = bot_settings(
        "http://aep.invalid", "http://slack.invalid", tmp_path, aep_ui_url="https://aep.test//"
    )
    built = build_services(settings)
    try:
        link = profile_link(built, "A1")
        assert link == f"https://aep.test/#{FRAGMENT}A1"
        assert profile_in_link(built, link) == "A1"
    finally:
        await built.aclose()


@pytest.mark.parametrize(
    ("url", "profile_id"),
    [
        (f"https://experience.adobe.com/#{FRAGMENT}A1", "A1"),
        (f"https://experience.adobe.com/#{FRAGMENT}A1/", "A1"),
        (f"https://experience.adobe.com#{FRAGMENT}A1", "A1"),
        (f"https://experience.adobe.com/?x=1#{FRAGMENT}A1", None),
        (f"https://experience.adobe.com/other#{FRAGMENT}A1", None),
        (f"https://experience.adobe.com/#{FRAGMENT}A%201", None),
    ],
)
def test_only_a_profile_link_of_the_bots_own_form_names_a_profile(
    services: Services, url: str, profile_id: str | None
) -> None:
    assert profile_in_link(services, url) == profile_id


# --- issue 15, the search modal --------------------------------------------------------------


def test_namespace_value_chosen_as_another_kind_is_read_as_typed(services: Services) -> None:
    assert read_search(services, "loyaltyId:L-1", "other") == IdentityRef("loyaltyId", "L-1")


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        ("ACME-1234", None, IdentityRef("acmeCRM", "ACME-1234")),
        ("X-77", "crm", IdentityRef("acmeCRM", "X-77")),
        ("612345678", "phone", IdentityRef("Phone", "+31612345678")),
    ],
)
def test_the_search_reads_by_the_orgs_rules(
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    kind: str | None,
    found: IdentityRef,
) -> None:
    rules = IdentityRules(default_region="NL", crm_namespace="acmeCRM", crm_pattern=r"ACME-\d{4}")
    monkeypatch.setattr(services, "rules", rules)
    assert read_search(services, text, kind) == found


@pytest.mark.parametrize(
    ("text", "kind"), [("jane\u200b@example.com", "email"), ("ab\u200bc", "crm")]
)
def test_a_refused_search_says_why_under_the_input(
    services: Services, text: str, kind: str
) -> None:
    found = read_search(services, text, kind)
    assert isinstance(found, SearchProblem)
    words = found.words(services, services.default_reader)
    assert words.startswith("Not looked up, so that no other customer is shown by mistake. ")
    assert "contains an invisible character" in words


def test_text_that_cannot_be_the_kind_chosen_names_the_kind(services: Services) -> None:
    found = read_search(services, "12345", "phone")
    assert isinstance(found, SearchProblem)
    assert found.words(services, services.default_reader) == (
        "That does not read as a phone number. Check what you typed, or leave the kind empty."
    )


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("jane doe", "crm", "a CRM id"),
        ("foo bar", "email", "an email address"),
        ("44 20 7946 0958", "phone", "a phone number"),
        ("Email:foo bar", "other", None),
    ],
)
def test_text_with_a_space_is_never_looked_up_by_its_first_word(
    services: Services, text: str, kind: str, expected: str | None
) -> None:
    """The search field holds one identity: "jane doe" chosen as a CRM id is not `crmid:jane`,
    nor a UK number typed without its + a US one (someone else's profile); it is said not to
    read as the kind chosen."""
    found = read_search(services, text, kind)
    if expected is None:
        # `namespace:value` typed as such reads as the bot reads it anywhere: up to the space.
        assert found == IdentityRef("Email", "foo")
        return
    assert isinstance(found, SearchProblem)
    assert found.words(services, services.default_reader) == (
        f"That does not read as {expected}. Check what you typed, or leave the kind empty."
    )


def test_a_phone_number_chosen_as_a_phone_is_read_across_its_spaces(services: Services) -> None:
    assert read_search(services, "+31 20 123 4567", "phone") == IdentityRef("Phone", "+31201234567")


# --- issue 15, the App Home ------------------------------------------------------------------

SALES = Person("U0SALES", frozenset({"sales"}))


def _viewer(services: Services, person: Person, team_id: str | None = None) -> Viewer:
    reader = reader_for(person.locale, default_locale=services.settings.bot_default_locale)
    return Viewer(
        asker=Asker(team_id=team_id, user_id=person.user_id, channel_id=None),
        person=person,
        access=access_for(services.policy, person),
        reader=reader,
    )


def _texts(view: Any) -> str:
    """Every text of a Block Kit view, one a line."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "text" and isinstance(inner, str):
                    found.append(inner)
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(view)
    return "\n".join(found)


async def _home(services: Services, viewer: Viewer) -> str:
    return _texts(await home_view(services, viewer))


async def test_a_home_without_a_team_lists_the_lookups_and_withholds_what_the_role_may_not_see(
    services: Services,
) -> None:
    ecid = "12345678901234567890123456789012345678"
    await services.history.record("", SALES.user_id, IdentityRef("ECID", ecid), surface="private")
    await services.history.record(
        "", SALES.user_id, IdentityRef("Email", "jane@example.com"), surface="private"
    )
    home = await _home(services, _viewer(services, SALES))
    assert "Email `jane@example.com`" in home
    # Sales may not see identifiers: the ECID looked up before is not shown again.
    assert "ECID (hidden: not part of what your role may see)" in home
    assert ecid not in home


async def test_a_home_names_a_custom_namespace_as_the_sandbox_names_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.cards, "namespace_names", {"acmemember": "ACME member number"})
    support = Person("U0AGENT", frozenset({"support-team"}))
    await services.history.record(
        "T0TEAM", support.user_id, IdentityRef("acmeMember", "M-1"), surface="private"
    )
    home = await _home(services, _viewer(services, support, "T0TEAM"))
    assert "ACME member number `M-1`" in home


@pytest.mark.parametrize(
    "person",
    [
        Person("U0GUEST", frozenset({"sales"}), is_restricted=True),
        Person("U0SINGLE", frozenset({"sales"}), is_ultra_restricted=True),
        Person("U0OTHERORG", frozenset({"sales"}), external=True),
        Person("U0UNKNOWN", frozenset(), known=False),
    ],
    ids=["guest", "single_channel_guest", "other_org", "unknown"],
)
async def test_no_group_is_offered_to_whom_groups_grant_nothing(
    services: Services, person: Person
) -> None:
    home = await _home(services, _viewer(services, person))
    assert "Groups that grant more" not in home
    assert "@sales" not in home and "@support-team" not in home


async def test_a_home_without_grants_names_the_groups_to_join(services: Services) -> None:
    nobody = Person("U0NOBODY", frozenset())
    home = await _home(services, _viewer(services, nobody))
    assert (
        ":no_entry: You don't have access to customer profiles. Ask to be added to "
        "@support-team (support), @sales (sales), or @cs-managers (manager)."
    ) in home


async def test_a_home_without_grants_for_someone_slack_did_not_describe_says_try_again(
    services: Services,
) -> None:
    home = await _home(services, _viewer(services, Person("U0UNKNOWN", frozenset(), known=False)))
    assert (
        ":no_entry: You don't have access to customer profiles. Slack did not tell the bot who "
        "you are just now, so it shows no customer data. Try again in a minute; if it keeps "
        "happening, tell whoever runs the bot."
    ) in home


async def test_a_dutch_home_without_grants_says_how_to_get_access_in_dutch(
    services: Services,
) -> None:
    dutch = Person("U0NOBODY", frozenset(), locale="nl-NL")
    home = await _home(services, _viewer(services, dutch))
    assert "Vraag of je wordt toegevoegd aan" in home


@pytest.mark.parametrize(("ttl", "days"), [(129600.0, "2 days"), (3600.0, "1 day")])
async def test_an_empty_history_says_how_many_days_lookups_stay(
    services: Services, monkeypatch: pytest.MonkeyPatch, ttl: float, days: str
) -> None:
    monkeypatch.setattr(services.history, "ttl", ttl)
    home = await _home(services, _viewer(services, SALES))
    assert f"Lookups you make appear here for {days}, newest first" in home


@pytest.mark.parametrize(
    ("policy", "configured", "shown"),
    [
        (MergePolicy(id="mp-1", name="Customer view"), None, "`Customer view (mp-1)`"),
        (MergePolicy(id="mp-1", name=""), None, "`mp-1`"),
        (None, "mp-2", "`mp-2`"),
    ],
)
async def test_the_home_names_the_merge_policy_lookups_use(
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    policy: MergePolicy | None,
    configured: str | None,
    shown: str,
) -> None:
    monkeypatch.setattr(services, "demo", False)
    monkeypatch.setattr(services.aep, "_merge_policy", policy)
    settings = services.settings.model_copy(update={"aep_merge_policy_id": configured})
    monkeypatch.setattr(services, "settings", settings)
    home = await _home(services, _viewer(services, SALES))
    assert f"Data source: Adobe Experience Platform, sandbox `prod`, merge policy {shown}." in home


# --- issue 15, replays, lookups and unfurls through the use case -----------------------------


async def test_a_team_less_replay_finds_the_lookup_and_runs_it_again(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def not_found(*args: Any, **kwargs: Any) -> Any:
        raise errors.ProfileNotFound("no one", status=404)

    monkeypatch.setattr(services.lookup, "lookup", not_found)
    await services.history.record(
        "", SALES.user_id, IdentityRef("Email", "jane@example.com"), surface="private"
    )
    [entry] = await services.history.recent("", SALES.user_id)
    answer = await replay(services, _viewer(services, SALES), entry.id)
    assert answer["text"].startswith("No customer profile found for Email jane@example.com.")
    # the operator reads which failure it was, and no address
    [line] = [m for m in caplog.messages if m.startswith("lookup failed")]
    assert line == "lookup failed: ProfileNotFound (status 404)"


async def test_a_lookup_from_the_home_is_answered_from_the_cache_the_second_time(
    sandbox: tuple[AepSimulator, str], tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    built = build_services(bot_settings(aep_url, "http://slack.invalid", tmp_path))
    try:
        viewer = _viewer(built, SALES)
        jane = IdentityRef("Email", JANE)
        first = await lookup_card(built, viewer, jane, surface="home")
        second = await lookup_card(built, viewer, jane, surface="home")
        assert first["blocks"] and second["blocks"]
        # Only the Refresh button bypasses the cache: Platform was asked once.
        assert sim.stats["profile"] == 1
        await private_card(built, viewer, jane, action="refresh", refresh=True)
        assert sim.stats["profile"] == 2
    finally:
        await built.aclose()


DISJOINT_POLICY = """
roles:
  contact:
    usergroups: [contact-team]
    see: [basic, contact]
  scores:
    usergroups: [scores-team]
    see: [scores]
everyone: []
public_channels: [basic]
external_channels: []
"""


async def test_a_link_pasted_where_the_readers_see_nothing_the_poster_sees_does_not_unfurl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The channel's one member (the poster is not among them, say: members cached before
    # they joined) sees only scores; the poster sees no scores: nothing both may see.
    policy = tmp_path / "policy.yml"
    policy.write_text(DISJOINT_POLICY)
    settings = bot_settings(
        "http://aep.invalid", "http://slack.invalid", tmp_path, bot_policy_file=str(policy)
    )
    built = build_services(settings)
    try:
        reader = Person("U0READER", frozenset({"scores-team"}))
        room = Channel("C0ROOM", "private", external=False, members=(reader,))

        async def channel(team_id: str, channel_id: str) -> Channel:
            return room

        monkeypatch.setattr(built.directory, "channel", channel)
        poster = Person("U0POSTER", frozenset({"contact-team"}))
        viewer = _viewer(built, poster, "T0TEAM")
        viewer = Viewer(
            asker=Asker("T0TEAM", poster.user_id, "C0ROOM"),
            person=poster,
            access=viewer.access,
            reader=viewer.reader,
        )
        answer = await unfurl_cards(built, viewer, [profile_link(built, "A1")])
        assert (answer.cards, answer.refused) == ({}, "channel_refused")
    finally:
        await built.aclose()


async def test_a_card_answered_outside_a_conversation_says_it_has_nowhere_to_be_shared(
    services: Services,
) -> None:
    manager = Person("U0MANAGER", frozenset({"cs-managers"}))
    check = await share_check(services, _viewer(services, manager), None)
    assert check.refused
    assert check.decision.reason == (
        "This card was not answered in a conversation, so it has nowhere to be shared. "
        "Look the customer up in the conversation where you want to share the card."
    )


async def test_a_team_less_asker_in_a_private_channel_may_unfurl_and_share(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    # A payload without a team (an org-wide install's, say) reads the channel as the
    # workspace's own, as the directory does for people: not as another organization's.
    _, aep_url = sandbox
    built = build_services(bot_settings(aep_url, slack.api_url, tmp_path))
    try:
        asker = Asker(team_id=None, user_id="U0MANAGER", channel_id="C0PRIVATE")
        viewer = await viewer_of(built, asker)
        customer = load_dataset().find("email", JANE)
        assert customer is not None
        link = profile_link(built, customer.entity_id)
        answer = await unfurl_cards(built, viewer, [link])
        assert (list(answer.cards), answer.refused) == ([link], None)
        check = await share_check(built, viewer, Place("C0PRIVATE", None))
        assert not check.refused
    finally:
        await built.aclose()


async def test_a_card_of_someone_who_may_not_share_asks_slack_nothing_about_the_channel(
    slack: SlackRecorder, tmp_path: Path
) -> None:
    # No Share button for sales: whether the conversation would take a card is not asked.
    built = build_services(bot_settings("http://aep.invalid", slack.api_url, tmp_path))
    try:
        viewer = _viewer(built, SALES, "T0TEAM")
        assert not await may_offer_share(built, viewer, Place("C0PRIVATE", None))
        assert slack.calls_to("conversations.info") == []
    finally:
        await built.aclose()


# --- issue 15, a private card's buttons and a shared card's words ----------------------------

MANAGER = Person("U0MANAGER", frozenset({"cs-managers"}))


@pytest.fixture
async def looked_up(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[Services]:
    """The services with the demo sandbox and the recording Slack server behind them."""
    _, aep_url = sandbox
    built = build_services(bot_settings(aep_url, slack.api_url, tmp_path))
    try:
        yield built
    finally:
        await built.aclose()


def _buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        b["text"]["text"]: b
        for block in message["blocks"]
        for b in block.get("elements", [])
        if b.get("type") == "button"
    }


@pytest.mark.parametrize(
    ("place", "in_dm", "offered"),
    [
        (Place("C0PRIVATE", None), False, True),
        (Place("C0PRIVATE", None), True, False),
        (None, False, False),
    ],
    ids=["in_a_channel", "in_the_dm", "on_the_home"],
)
async def test_send_to_my_dms_is_offered_only_on_a_card_answered_in_a_conversation(
    looked_up: Services, place: Place | None, in_dm: bool, offered: bool
) -> None:
    viewer = _viewer(looked_up, MANAGER, "T0TEAM")
    card = await private_card(
        looked_up,
        viewer,
        IdentityRef("Email", JANE),
        action="lookup",
        refresh=False,
        place=place,
        in_dm=in_dm,
    )
    buttons = _buttons(card.message)
    assert ("Send to my DMs" in buttons) is offered
    # A card in the DM keeps no conversation: its buttons lead back to none.
    recalled = await looked_up.buttons.recall_place(buttons["More events"]["value"])
    assert recalled is not None
    assert recalled.place == (None if in_dm else place)


@pytest.mark.parametrize("demo", [True, False])
async def test_open_in_aep_links_the_profile_except_in_the_demo(
    looked_up: Services, monkeypatch: pytest.MonkeyPatch, demo: bool
) -> None:
    monkeypatch.setattr(looked_up, "demo", demo)
    viewer = _viewer(looked_up, MANAGER)
    card = await private_card(
        looked_up, viewer, IdentityRef("Email", JANE), action="lookup", refresh=False
    )
    button = _buttons(card.message).get("Open in AEP")
    if demo:
        assert button is None
    else:
        assert button is not None and card.profile_id is not None
        assert button["url"] == profile_link(looked_up, card.profile_id)


async def test_a_shared_card_carries_the_sharers_reason(looked_up: Services) -> None:
    request = CardRequest(
        ref=IdentityRef("Email", JANE),
        classes=frozenset({"basic"}),
        reader=looked_up.default_reader,
        surface="shared",
        shared_by="U0MANAGER",
        share_reason="escalation",
    )
    card = await render_card(looked_up, request)
    assert "Shared by <@U0MANAGER>: “escalation”" in _texts(card.message)


async def test_no_share_button_while_slack_is_too_busy_to_check_the_channel(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def busy(team_id: str, channel_id: str) -> Channel:
        raise SlackBusy(method="conversations.info", retry_after=30)

    monkeypatch.setattr(services.directory, "channel", busy)
    viewer = _viewer(services, MANAGER, "T0TEAM")
    assert not await may_offer_share(services, viewer, Place("C0PRIVATE", None))


async def test_a_slow_events_answer_holds_back_only_a_card_asked_for_soon(
    sandbox: tuple[AepSimulator, str], looked_up: Services, tmp_path: Path
) -> None:
    sim, _ = sandbox
    sim.faults.set_latency("events", 300)
    viewer = _viewer(looked_up, MANAGER)
    jane = IdentityRef("Email", JANE)
    # The Home's and the search's card is sent once: it waits for the events.
    whole = _texts(await lookup_card(looked_up, viewer, jane, surface="home"))
    assert "Loading recent activity" not in whole
    assert "Older events are in Adobe Experience Platform." in whole
    # /customer's card comes at once, and again with its events.
    soon = await private_card(looked_up, viewer, jane, action="lookup", refresh=True, soon=True)
    assert "_Loading recent activity…_" in _texts(soon.message)
    assert soon.later is not None
    # audited with what the first card showed
    assert soon.profile_id is not None
    assert (soon.shown, soon.withheld) == (
        frozenset(
            {"basic", "contact", "identifiers", "activity", "audiences", "scores", "financial"}
        ),
        frozenset({"sensitive"}),
    )
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert (record["profile_id"], record["withheld"]) == (soon.profile_id, ["sensitive"])


async def test_a_shared_card_asked_for_soon_carries_its_work_object(
    sandbox: tuple[AepSimulator, str], tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    sim.faults.set_latency("events", 300)
    settings = bot_settings(aep_url, "http://slack.invalid", tmp_path, bot_work_objects=True)
    built = build_services(settings)
    try:
        request = CardRequest(
            ref=IdentityRef("Email", JANE),
            classes=frozenset({"basic", "activity"}),
            reader=built.default_reader,
            surface="shared",
            soon=True,
        )
        card = await render_card(built, request)
        assert card.later is not None and card.entity is not None
        assert card.entity["entity_payload"]["attributes"]["title"]["text"] == "Jane Doe"
    finally:
        await built.aclose()


def test_identities_are_found_by_the_orgs_rules(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = IdentityRules(crm_namespace="acmeCRM", crm_pattern=r"ACME-\d{4}")
    monkeypatch.setattr(services, "rules", rules)
    found = find_identities(services, "customer ACME-1234 asks")
    assert found.refs == [IdentityRef("acmeCRM", "ACME-1234")]


@pytest.mark.parametrize(
    ("person", "facts"),
    [
        (SALES, ["Lifetime value", "Churn risk", "Upsell propensity"]),
        (MANAGER, ["Lifetime value", "Churn risk", "Open tickets", "Last order"]),
    ],
)
async def test_a_private_cards_key_facts_are_the_viewers_roles(
    looked_up: Services, person: Person, facts: list[str]
) -> None:
    card = await private_card(
        looked_up,
        _viewer(looked_up, person),
        IdentityRef("Email", JANE),
        action="lookup",
        refresh=False,
    )
    section = next(b for b in card.message["blocks"][1:] if b["type"] == "section")
    assert [f["text"].split("*")[1] for f in section.get("fields", [])] == facts


async def test_a_private_card_says_what_the_customer_is_likely_writing_about(
    looked_up: Services,
) -> None:
    agent = Person("U0AGENT", frozenset({"support-team"}))
    card = await private_card(
        looked_up,
        _viewer(looked_up, agent),
        IdentityRef("Email", JANE),
        action="lookup",
        refresh=False,
    )
    assert ":speech_balloon: Likely about: *returns* — “Returns and refunds” viewed 6 times" in (
        _texts(card.message)
    )


def test_a_message_with_more_identities_than_the_bot_reads_says_it_may_hold_more(
    services: Services,
) -> None:
    text = " ".join(f"user{i}@example.com" for i in range(MAX_IDENTITIES + 3))
    found = find_identities(services, text)
    note = found.note(services, 3, services.default_reader)
    assert note is not None
    assert note["text"].startswith(
        f"Showing 3 of the first {MAX_IDENTITIES} identities found (the message may hold more)."
    )


async def test_a_private_card_is_audited_with_the_profile_and_classes_and_kept_in_history(
    looked_up: Services, tmp_path: Path
) -> None:
    viewer = _viewer(looked_up, SALES)  # no team
    card = await private_card(
        looked_up, viewer, IdentityRef("Email", JANE), action="lookup", refresh=False
    )
    [record] = [
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines() if line
    ]
    assert card.profile_id is not None
    assert (record["action"], record["outcome"], record["profile_id"]) == (
        "lookup",
        "shown",
        card.profile_id,
    )
    assert record["shown"] == ["audiences", "basic", "contact", "financial", "scores"]
    assert record["withheld"] == ["activity", "identifiers", "sensitive"]
    [entry] = await looked_up.history.recent("", SALES.user_id)
    assert entry.value == JANE


@pytest.mark.parametrize(
    ("outcome", "kept"), [("posted", True), (PostFailed("not_in_channel"), False)]
)
async def test_a_lookup_posted_into_a_conversation_is_kept_in_history_only_once_posted(
    services: Services, tmp_path: Path, outcome: AuditOutcome, kept: bool
) -> None:
    asker = Asker(team_id="T0TEAM", user_id=SALES.user_id, channel_id="C0PRIVATE")
    card = Card(message={}, ref=IdentityRef("Email", JANE))
    await audit_card(services, asker, card, action="lookup", surface="mention", outcome=outcome)
    assert len(await services.history.recent("T0TEAM", SALES.user_id)) == int(kept)
    [record] = [
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines() if line
    ]
    assert (record["team"], record["actor"], record["channel"]) == (
        "T0TEAM",
        SALES.user_id,
        "C0PRIVATE",
    )
