"""Settings: the public variable names, defaults, and one clear error naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings


def test_defaults_are_the_demo_console_setup() -> None:
    settings = load_settings(_env_file=None)
    assert settings.demo is True
    assert settings.slack_mode == "console"
    assert settings.aep_sandbox == "prod"
    assert settings.aep_api_url == "https://platform.adobe.io"
    assert settings.aep_ims_url == "https://ims-na1.adobelogin.com"
    assert settings.bot_cache_url == "memory://"
    assert settings.port == 3000


def test_environment_variables_use_the_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("AEP_CLIENT_ID", "cid")
    monkeypatch.setenv("AEP_CLIENT_SECRET", "csecret")
    monkeypatch.setenv("AEP_ORG_ID", "ABC@AdobeOrg")
    monkeypatch.setenv("AEP_SANDBOX", "dev")
    monkeypatch.setenv("AEP_MERGE_POLICY_ID", "mp-1")
    monkeypatch.setenv("BOT_CACHE_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("BOT_CACHE_KEY", "k" * 43)
    monkeypatch.setenv("PORT", "8080")
    settings = load_settings(_env_file=None)
    assert settings.slack_mode == "http"
    assert settings.demo is False
    assert (settings.aep_sandbox, settings.aep_merge_policy_id, settings.port) == (
        "dev",
        "mp-1",
        8080,
    )
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    assert load_settings(_env_file=None).slack_mode == "socket"


def test_tokens_are_secret_and_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-very-secret")
    monkeypatch.setenv("AEP_CLIENT_SECRET", "adobe-very-secret")
    monkeypatch.setenv("AEP_CLIENT_ID", "cid")
    monkeypatch.setenv("AEP_ORG_ID", "ABC@AdobeOrg")
    settings = load_settings(_env_file=None)
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "xoxb-very-secret" not in shown
    assert "adobe-very-secret" not in shown
    assert "signing-very-secret" not in shown


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "")
    monkeypatch.setenv("AEP_MERGE_POLICY_ID", "")
    settings = load_settings(_env_file=None)
    assert settings.slack_mode == "console"
    assert settings.aep_merge_policy_id is None


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("PORT", "eighty", "PORT"),
        ("PORT", "70000", "PORT"),
        ("AEP_SANDBOX", "Prod", "lower-case"),
        ("BOT_CACHE_URL", "memcached://x", "BOT_CACHE_URL"),
        ("AEP_API_URL", "platform.adobe.io", "AEP_API_URL"),
        ("BOT_POLICY_FILE", "/no/such/policy.yml", "no such file"),
        ("BOT_CRM_ID_PATTERN", "CRM-(", "regular expression"),
        ("BOT_DEFAULT_REGION", "netherlands", "BOT_DEFAULT_REGION"),
        ("BOT_EMAIL_DOMAINS", "acme.com, not a domain", "not an email domain"),
        ("AEP_IDENTITY_NAMESPACES", "loyaltyId, 9lives", "AEP_IDENTITY_NAMESPACES"),
    ],
)
def test_a_bad_value_is_one_clear_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert variable in str(caught.value)
    assert words in str(caught.value)


def test_partial_aep_credentials_name_the_missing_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEP_CLIENT_ID", "cid")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert "AEP_CLIENT_SECRET" in str(caught.value)
    assert "AEP_ORG_ID" in str(caught.value)


def test_settings_come_from_a_dotenv_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("AEP_SANDBOX=staging\nPORT=4000\n")
    settings = load_settings(_env_file=env)
    assert (settings.aep_sandbox, settings.port) == ("staging", 4000)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_SIGNING_SECRET": "s"}, "SLACK_BOT_TOKEN"),
    ],
)
def test_an_incomplete_slack_setup_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], named: str
) -> None:
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "mode"), [("auto", "auto"), ("True", "true"), (" false ", "false")]
)
def test_events_can_be_auto_on_or_off(monkeypatch: pytest.MonkeyPatch, raw: str, mode: str) -> None:
    monkeypatch.setenv("AEP_EVENTS_ENABLED", raw)
    assert load_settings().aep_events_enabled == mode


def test_events_are_found_out_by_default_and_a_bad_mode_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert settings.aep_events_enabled == "auto" and settings.bot_demo_edition == "ultimate"
    monkeypatch.setenv("AEP_EVENTS_ENABLED", "sometimes")
    with pytest.raises(ConfigError, match="AEP_EVENTS_ENABLED"):
        load_settings()


def test_the_demo_edition_is_ultimate_or_prime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_DEMO_EDITION", "Prime")
    assert load_settings().bot_demo_edition == "prime"
    monkeypatch.setenv("BOT_DEMO_EDITION", "select")
    with pytest.raises(ConfigError, match="BOT_DEMO_EDITION"):
        load_settings()


def test_the_orgs_email_domains_and_namespaces_are_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(_env_file=None).identity_namespaces is None
    monkeypatch.setenv("BOT_EMAIL_DOMAINS", "Acme.com, acme.nl")
    monkeypatch.setenv("AEP_IDENTITY_NAMESPACES", "loyaltyId, crmid")
    settings = load_settings(_env_file=None)
    assert settings.email_domains == ("acme.com", "acme.nl")
    assert settings.identity_namespaces == frozenset({"loyaltyId", "crmid"})
