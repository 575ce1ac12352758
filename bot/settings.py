"""The bot's configuration: read once from the environment (and `.env`) into one Settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config_files import validation_problems

#: The shortest BOT_CACHE_KEY accepted: `secrets.token_urlsafe(32)` gives 43 characters.
MIN_CACHE_KEY_LENGTH = 32

DEFAULT_AEP_SCOPES = (
    "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"
)

#: The default of AEP_MAX_RESPONSE_BYTES, the most of one IMS or Platform answer the bot reads.
#: The largest answers it asks for: a profile restricted to the card's fields (even thousands of
#: audience memberships stay well under 1 MB), an event page of at most 100 events (Platform
#: caps an event at 10 KB: 1 MB), an audience page of 100 definitions. 4 MiB holds each with
#: room to spare, and five lookups in flight then hold at most 20 MiB of bodies.
DEFAULT_AEP_MAX_RESPONSE_BYTES = 4 * 1024 * 1024

#: The IMS organization of the bundled demo sandbox (bot/demo/).
DEMO_ORG_ID = "DEMO0000000000000000000@AdobeOrg"
#: An email domain as BOT_EMAIL_DOMAINS takes it: labels and a top-level domain.
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*")


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the variable and says what to do."""


class Settings(BaseSettings):
    """Every setting the bot reads. Field names map to the upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # Adobe Experience Platform
    aep_client_id: str | None = None
    aep_client_secret: SecretStr | None = None
    aep_org_id: str | None = None
    aep_sandbox: str = "prod"
    aep_scopes: str = DEFAULT_AEP_SCOPES
    aep_api_url: str = "https://platform.adobe.io"
    aep_ims_url: str = "https://ims-na1.adobelogin.com"
    aep_merge_policy_id: str | None = None
    aep_ui_url: str = "https://experience.adobe.com"
    # Experience-event lookup is Ultimate-only and must be enabled by Adobe: `auto` finds out
    # from the first refusal (403/404/422) and asks again an hour later; `true` always asks.
    aep_events_enabled: Literal["auto", "true", "false"] = "auto"
    # Send `withCA=true` when the card layout names computed attributes (the older entities
    # guide documents the flag; the current spec no longer lists it, so it can be turned off).
    aep_with_ca: bool = True
    # The hub lookup API is meant for low-volume agent use (reference section 8): few in flight.
    aep_max_in_flight: Annotated[int, Field(ge=1, le=100)] = 5
    aep_crm_namespace: str = Field(default="crmid", pattern=r"^[A-Za-z][A-Za-z0-9_.]*$")
    # The org's identity namespace codes (comma-separated). Set: a `namespace:value` in any
    # other namespace (AEP's standard codes and AEP_CRM_NAMESPACE always count) is refused at
    # once, naming the known ones. Unset: every namespace typed is looked up as it is.
    aep_identity_namespaces: str = Field(
        default="", pattern=r"^\s*([A-Za-z][A-Za-z0-9_.]*\s*(,\s*[A-Za-z][A-Za-z0-9_.]*\s*)*)?$"
    )
    # Bytes of one answer's body; past it the bot stops reading and says the answer was too large.
    aep_max_response_bytes: Annotated[int, Field(ge=64 * 1024, le=1024 * 1024 * 1024)] = (
        DEFAULT_AEP_MAX_RESPONSE_BYTES
    )

    # The bot itself
    bot_cache_url: str = "memory://"
    # Seals every value kept on Redis (AES-GCM); every instance on one Redis needs the same one.
    bot_cache_key: SecretStr | None = None
    bot_policy_file: Path | None = None
    bot_card_file: Path | None = None
    bot_default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    # The language and formats of a person whose Slack locale has no catalogue (or is unknown),
    # and of what is said before the person is known; English when this one has none either.
    bot_default_locale: str = Field(
        default="en-US", pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"
    )
    bot_crm_id_pattern: str = r"CRM-\d{6}"
    # The org's own email domains (comma-separated), suggested first when a typed address misses
    # or misspells its domain; common ones (gmail.com, outlook.com...) come after them.
    bot_email_domains: str = ""
    bot_events_limit: Annotated[int, Field(ge=1, le=100)] = 10
    bot_lookup_deadline: Annotated[float, Field(gt=0, le=60)] = 8.0
    # /customer acknowledges with nothing and answers with the card alone; a "Looking up…" is
    # said only when the card has not gone after this long (a slash command's response_url
    # cannot replace it, so it would stay above the card).
    bot_slow_answer_seconds: Annotated[float, Field(ge=0, le=60)] = 1.5
    # A response_url takes five posts: up to four cards leave room for the "and N more" note.
    bot_max_cards: Annotated[int, Field(ge=1, le=4)] = 3
    # Shared cards and unfurls carry a Slack Work Object (message metadata); on only once the
    # workspace has enabled Work Object previews for the app (api.slack.com/apps).
    bot_work_objects: bool = False
    bot_audit_file: str = "audit.jsonl"
    bot_audit_key: SecretStr | None = None
    bot_log_level: str = "INFO"
    # `text` (lines) or `json` (one object per line); both carry the request id.
    bot_log_format: Literal["text", "json"] = "text"
    port: Annotated[int, Field(ge=1, le=65535)] = 3000
    # /metrics, /healthz and /readyz on a port of their own (also in Socket Mode), bound to
    # METRICS_HOST: loopback unless the scraper is elsewhere.
    metrics_port: Annotated[int | None, Field(ge=1, le=65535)] = None
    metrics_host: str = "127.0.0.1"
    # HTTP mode: a request whose body has not fully arrived this many seconds after its headers
    # is cut off (Slack sends a whole request at once; a slow client must not hold a connection).
    bot_request_read_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0

    # The edition the in-process demo sandbox plays: `prime` refuses experience-event lookups.
    bot_demo_edition: Literal["ultimate", "prime"] = "ultimate"

    # Cache lifetimes in seconds, for the memory and the Redis cache alike.
    bot_cache_profile_ttl: Annotated[float, Field(gt=0)] = 60.0
    bot_cache_not_found_ttl: Annotated[float, Field(gt=0)] = 15.0
    bot_cache_audience_ttl: Annotated[float, Field(gt=0)] = 3600.0
    bot_cache_slack_ttl: Annotated[float, Field(gt=0)] = 300.0
    bot_cache_max_entries: Annotated[int, Field(ge=10)] = 5000
    bot_cache_max_bytes: Annotated[int, Field(ge=1024 * 1024)] = 64 * 1024 * 1024
    # How long a person's recent lookups stay on their App Home, in seconds; 0 turns history off.
    bot_history_ttl: Annotated[float, Field(ge=0)] = 7 * 24 * 3600.0

    @field_validator("aep_events_enabled", "bot_demo_edition", mode="before")
    @classmethod
    def _lower_word(cls, value: object) -> object:
        # `AEP_EVENTS_ENABLED=True` reads as `true`; anything else is refused with the choices.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("aep_sandbox")
    @classmethod
    def _sandbox_lowercase(cls, value: str) -> str:
        if not value or value != value.strip():
            raise ValueError("give the sandbox name, for example prod")
        if value != value.lower():
            raise ValueError(
                f"sandbox names are lower-case in Platform calls; use {value.lower()!r}"
            )
        return value

    @field_validator("aep_api_url", "aep_ims_url", "slack_api_url", "aep_ui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("bot_cache_url")
    @classmethod
    def _cache_url(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:port/db")
        return value

    @field_validator("bot_policy_file", "bot_card_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("bot_default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows; use e.g. US, NL, GB")
        return value

    @field_validator("bot_crm_id_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("bot_email_domains")
    @classmethod
    def _domains(cls, value: str) -> str:
        for domain in _comma_list(value):
            if not _DOMAIN.fullmatch(domain.lower()):
                raise ValueError(f"{domain!r} is not an email domain such as example.com")
        return value

    @property
    def email_domains(self) -> tuple[str, ...]:
        """BOT_EMAIL_DOMAINS as a list, lower-case."""
        return tuple(domain.lower() for domain in _comma_list(self.bot_email_domains))

    @property
    def identity_namespaces(self) -> frozenset[str] | None:
        """AEP_IDENTITY_NAMESPACES as a set of codes, or None when unset."""
        codes = _comma_list(self.aep_identity_namespaces)
        return frozenset(codes) if codes else None

    @field_validator("bot_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _slack_mode_complete(self) -> Self:
        app, bot, secret = self.slack_app_token, self.slack_bot_token, self.slack_signing_secret
        if app is not None and bot is None:
            raise ValueError(
                "SLACK_BOT_TOKEN not set: Socket Mode (SLACK_APP_TOKEN) needs the bot token too"
            )
        if app is None and (bot is None) != (secret is None):
            missing = "SLACK_SIGNING_SECRET" if secret is None else "SLACK_BOT_TOKEN"
            raise ValueError(
                f"{missing} not set: HTTP mode needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET "
                "(or set SLACK_APP_TOKEN for Socket Mode, or none of them for the console)"
            )
        return self

    @model_validator(mode="after")
    def _cache_key_for_redis(self) -> Self:
        make_one = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        key = self.bot_cache_key.get_secret_value() if self.bot_cache_key else None
        if key is None and not self.bot_cache_url.startswith("memory://"):
            raise ValueError(
                "BOT_CACHE_KEY not set: a Redis cache (BOT_CACHE_URL) keeps profiles, tokens and "
                f"access decisions, sealed with this key; {make_one} and give every instance "
                "the same one (or leave BOT_CACHE_URL unset for the memory cache)"
            )
        if key is not None and len(key) < MIN_CACHE_KEY_LENGTH:
            raise ValueError(
                f"BOT_CACHE_KEY is too short: it needs at least {MIN_CACHE_KEY_LENGTH} random "
                f"characters; {make_one}"
            )
        return self

    @model_validator(mode="after")
    def _aep_all_or_nothing(self) -> Self:
        given = {
            "AEP_CLIENT_ID": self.aep_client_id,
            "AEP_CLIENT_SECRET": self.aep_client_secret,
            "AEP_ORG_ID": self.aep_org_id,
        }
        missing = [name for name, value in given.items() if not value]
        if 0 < len(missing) < len(given):
            raise ValueError(
                f"{', '.join(missing)} not set: give AEP_CLIENT_ID, AEP_CLIENT_SECRET and "
                "AEP_ORG_ID together to use Adobe Experience Platform, or none for the demo sandbox"
            )
        if self.aep_org_id and not self.aep_org_id.endswith("@AdobeOrg"):
            raise ValueError("AEP_ORG_ID: an IMS organization id ends in @AdobeOrg")
        return self

    @property
    def demo_sandbox(self) -> bool:
        """True when no AEP credentials are configured: the bundled demo sandbox answers,
        in process."""
        return not self.aep_client_id

    @property
    def demo(self) -> bool:
        """True when the bot runs on demo data: the bundled sandbox answers, or AEP_ORG_ID is
        its organization (the sandbox served over HTTP by `python -m bot demo-aep`). Cards then
        say they show demo data, and the built-in demo policy applies. The one place this is
        decided."""
        return self.demo_sandbox or self.aep_org_id == DEMO_ORG_ID

    @property
    def org_id(self) -> str:
        """The IMS organization the bot reads: AEP_ORG_ID, or the demo sandbox's."""
        return self.aep_org_id or DEMO_ORG_ID

    @property
    def slack_mode(self) -> str:
        """`socket`, `http` or `console`, from which Slack credentials are present."""
        if self.slack_app_token is not None:
            return "socket"
        if self.slack_bot_token is not None and self.slack_signing_secret is not None:
            return "http"
        return "console"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation failures into one ConfigError naming the variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = validation_problems(exc, env_names=True)
        raise ConfigError("Configuration problem:\n  " + "\n  ".join(lines)) from None
