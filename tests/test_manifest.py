"""The Slack app manifest is valid against Slack's schema and matches what the bot handles."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from bot import ids
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifest.yml"
SCHEMA = ROOT.parent / "shared" / "reference" / "slack-manifest.schema.json"
EVENTS_URL = "https://bot.example.com/slack/events"

# Every bot event the app registers a listener for; a subscribed event without one gets Bolt's
# 404 and Slack's retries.
HANDLED_BOT_EVENTS = {"app_mention", "link_shared", "entity_details_requested", "app_home_opened"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        pytest.fail(
            f"Slack's manifest JSON Schema is missing at {SCHEMA}; it ships in the shared/ folder "
            "beside the repository (shared/reference/slack-manifest.schema.json)"
        )
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return loaded


def _errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_manifest_is_valid_against_slack_schema(
    schema: dict[str, Any], manifest: dict[str, Any]
) -> None:
    assert _errors(schema, manifest) == []


def test_http_mode_variant_from_the_comments_is_valid(
    schema: dict[str, Any], manifest: dict[str, Any]
) -> None:
    http = copy.deepcopy(manifest)
    http["settings"]["socket_mode_enabled"] = False
    for command in http["features"]["slash_commands"]:
        command["url"] = EVENTS_URL
    http["settings"]["event_subscriptions"]["request_url"] = EVENTS_URL
    http["settings"]["interactivity"]["request_url"] = EVENTS_URL

    assert _errors(schema, http) == []


def test_schema_rejects_a_broken_manifest(schema: dict[str, Any], manifest: dict[str, Any]) -> None:
    # Guards the two tests above: the schema really is applied, so they can fail.
    broken = copy.deepcopy(manifest)
    broken["features"]["shortcuts"][0]["type"] = "sideways"
    del broken["display_information"]["name"]

    assert len(_errors(schema, broken)) == 2


def test_socket_mode_without_request_urls(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]
    assert "request_url" not in settings["interactivity"]
    assert all("url" not in command for command in manifest["features"]["slash_commands"])
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_customer_command(manifest: dict[str, Any]) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/customer"} == {ids.COMMAND}
    customer = commands["/customer"]
    assert customer["usage_hint"] == "[email | phone | CRM id | ECID | namespace:value]"
    assert customer["should_escape"] is False
    assert customer["description"]


def test_lookup_customer_message_shortcut(manifest: dict[str, Any]) -> None:
    shortcuts = {s["callback_id"]: s for s in manifest["features"]["shortcuts"]}
    assert set(shortcuts) == {"lookup_customer", "find_customer"}
    assert ids.LOOKUP_SHORTCUT == "lookup_customer"
    assert shortcuts["lookup_customer"]["type"] == "message"
    assert shortcuts["lookup_customer"]["name"] == "Look up customer"


def test_find_customer_global_shortcut_opens_the_search(manifest: dict[str, Any]) -> None:
    shortcuts = {s["callback_id"]: s for s in manifest["features"]["shortcuts"]}
    assert ids.FIND_SHORTCUT == "find_customer"
    assert shortcuts["find_customer"]["type"] == "global"


def test_subscribes_only_to_handled_events(manifest: dict[str, Any]) -> None:
    subscriptions = manifest["settings"]["event_subscriptions"]
    bot_events = subscriptions["bot_events"]
    assert "app_mention" in bot_events
    assert set(bot_events) <= HANDLED_BOT_EVENTS
    assert not subscriptions.get("user_events")


def test_unfurls_profile_links_on_the_aep_ui_host(manifest: dict[str, Any]) -> None:
    host = urlsplit(Settings.model_fields["aep_ui_url"].default).hostname
    assert manifest["features"]["unfurl_domains"] == [host]
    assert "link_shared" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_bot_scopes_are_least_privilege(manifest: dict[str, Any]) -> None:
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "app_mentions:read",
        "chat:write",
        "users:read",
        "usergroups:read",
        "channels:read",
        "groups:read",
        "im:read",
        "mpim:read",
        "links:read",
        "links:write",
        "im:write",
    }
    # What `python -m bot doctor` checks a token against, and the recording server grants.
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == ids.BOT_SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_display_information(manifest: dict[str, Any]) -> None:
    display = manifest["display_information"]
    assert display["name"] == "Customer Context"
    assert 175 <= len(display["long_description"]) <= 4000
    assert manifest["features"]["bot_user"] == {
        "display_name": "customer-context",
        "always_online": True,
    }
    app_home = manifest["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is True
