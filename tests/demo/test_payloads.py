"""Built Slack request bodies have Slack's shapes, real signatures, and Bolt dispatches them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo import payloads as slack_payloads
from bot.demo.slack import SlackRecorder
from bot.demo.workspace import APP_ID, BOT_USER_ID, TEAM_ID

SECRET = "test-signing-secret"
RESPONSE_URL = "http://127.0.0.1:1/response/x"


def _form(body: str) -> dict[str, str]:
    fields = parse_qs(body, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in fields.values())
    return {key: values[0] for key, values in fields.items()}


def _payload(body: str) -> dict[str, Any]:
    form = _form(body)
    assert list(form) == ["payload"]
    payload: dict[str, Any] = json.loads(form["payload"])
    return payload


def test_signature_verifies_with_slack_sdk() -> None:
    body = slack_payloads.slash_command(
        text="jane@example.com", user_id="U0AGENT", channel_id="C0PUBLIC", response_url=RESPONSE_URL
    )
    headers = slack_payloads.sign(body, secret=SECRET)
    verifier = SignatureVerifier(SECRET)
    timestamp = headers["X-Slack-Request-Timestamp"]
    assert verifier.is_valid(body, timestamp, headers["X-Slack-Signature"])
    assert not SignatureVerifier("other-secret").is_valid(
        body, timestamp, headers["X-Slack-Signature"]
    )
    assert not verifier.is_valid(body + "x", timestamp, headers["X-Slack-Signature"])


def test_signature_with_a_fixed_timestamp_matches_slack_sdk() -> None:
    headers = slack_payloads.sign("a=b", secret=SECRET, timestamp=1_700_000_000)
    assert headers["X-Slack-Request-Timestamp"] == "1700000000"
    expected = SignatureVerifier(SECRET).generate_signature(timestamp="1700000000", body="a=b")
    assert headers["X-Slack-Signature"] == expected
    # Outside Slack's five-minute replay window the same signature is refused.
    assert not SignatureVerifier(SECRET).is_valid("a=b", "1700000000", expected)


def test_slash_command_has_every_documented_field() -> None:
    body = slack_payloads.slash_command(
        text="email jane@example.com & more",
        user_id="U0AGENT",
        channel_id="C0PUBLIC",
        response_url=RESPONSE_URL,
        trigger_id="1.2.abc",
    )
    fields = _form(body)
    assert set(fields) >= {
        "token",
        "command",
        "text",
        "response_url",
        "trigger_id",
        "user_id",
        "user_name",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "api_app_id",
        "is_enterprise_install",
    }
    assert fields["text"] == "email jane@example.com & more"
    assert (fields["command"], fields["channel_name"], fields["team_id"]) == (
        "/customer",
        "deals",
        TEAM_ID,
    )
    assert fields["is_enterprise_install"] == "false"
    assert fields["trigger_id"] == "1.2.abc"
    assert slack_payloads.content_type(body) == "application/x-www-form-urlencoded"


def test_message_shortcut_is_a_message_action() -> None:
    body = slack_payloads.message_shortcut(
        message_text="customer is jane@example.com",
        user_id="U0AGENT",
        channel_id="C0SUPPORT",
        response_url=RESPONSE_URL,
        message_ts="1714000000.000200",
        thread_ts="1714000000.000100",
        message_user="U0BOTH",
    )
    payload = _payload(body)
    assert payload["type"] == "message_action"
    assert payload["callback_id"] == "lookup_customer"
    assert payload["trigger_id"] and payload["response_url"] == RESPONSE_URL
    assert payload["channel"] == {"id": "C0SUPPORT", "name": "support"}
    assert payload["user"]["id"] == "U0AGENT"
    assert payload["team"]["id"] == TEAM_ID
    assert payload["message_ts"] == "1714000000.000200"
    message = payload["message"]
    assert (message["text"], message["user"], message["ts"], message["thread_ts"]) == (
        "customer is jane@example.com",
        "U0BOTH",
        "1714000000.000200",
        "1714000000.000100",
    )
    assert slack_payloads.content_type(body) == "application/x-www-form-urlencoded"


def test_app_mention_envelope() -> None:
    body = slack_payloads.app_mention(
        text="jane@example.com", user_id="U0AGENT", channel_id="C0CONNECT"
    )
    envelope = json.loads(body)
    assert slack_payloads.content_type(body) == "application/json"
    assert envelope["type"] == "event_callback"
    assert envelope["event_id"].startswith("Ev")
    assert envelope["api_app_id"] == APP_ID
    assert envelope["authorizations"][0]["user_id"] == BOT_USER_ID
    assert envelope["is_ext_shared_channel"] is True
    event = envelope["event"]
    assert event["type"] == "app_mention"
    assert event["text"] == f"<@{BOT_USER_ID}> jane@example.com"
    assert "thread_ts" not in event
    again = json.loads(
        slack_payloads.app_mention(
            text=f"hey <@{BOT_USER_ID}> who is this",
            user_id="U0AGENT",
            channel_id="C0PUBLIC",
            thread_ts="1714000000.000100",
            event_id="Ev1",
        )
    )
    assert again["event"]["text"] == f"hey <@{BOT_USER_ID}> who is this"
    assert again["event"]["thread_ts"] == "1714000000.000100"
    assert again["event_id"] == "Ev1"
    assert again["is_ext_shared_channel"] is False


def test_block_action_on_an_ephemeral_message() -> None:
    payload = _payload(
        slack_payloads.block_action(
            action_id="share_to_thread",
            value="card:123",
            user_id="U0AGENT",
            channel_id="C0PUBLIC",
            response_url=RESPONSE_URL,
            thread_ts="1714000000.000100",
        )
    )
    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["action_id"] == "share_to_thread"
    assert payload["actions"][0]["value"] == "card:123"
    assert payload["container"]["is_ephemeral"] is True
    assert payload["container"]["thread_ts"] == "1714000000.000100"
    assert payload["container"]["channel_id"] == "C0PUBLIC"
    assert payload["response_url"] == RESPONSE_URL
    assert "message" not in payload


def test_block_action_on_a_shared_message_and_in_a_view() -> None:
    shared = _payload(
        slack_payloads.block_action(
            action_id="show_more",
            value="k",
            user_id="U0SALES",
            channel_id="C0PUBLIC",
            response_url=RESPONSE_URL,
            message_ts="1714000000.000300",
            is_ephemeral=False,
        )
    )
    assert shared["message"]["ts"] == "1714000000.000300"
    assert shared["message"]["user"] == BOT_USER_ID
    home = _payload(
        slack_payloads.block_action(
            action_id="refresh",
            value="k",
            user_id="U0SALES",
            channel_id=None,
            response_url=None,
            container_type="view",
        )
    )
    assert home["container"]["type"] == "view"
    assert home["view"]["id"] == home["container"]["view_id"]
    assert "response_url" not in home
    assert "channel" not in home


def test_view_submission_carries_state_and_metadata() -> None:
    values = {"reason": {"reason_input": {"type": "plain_text_input", "value": "renewal call"}}}
    payload = _payload(
        slack_payloads.view_submission(
            callback_id="reveal_reason",
            private_metadata='{"channel": "C0PUBLIC"}',
            values=values,
            user_id="U0MANAGER",
        )
    )
    assert payload["type"] == "view_submission"
    assert payload["view"]["callback_id"] == "reveal_reason"
    assert payload["view"]["private_metadata"] == '{"channel": "C0PUBLIC"}'
    assert payload["view"]["state"]["values"] == values
    assert payload["user"]["id"] == "U0MANAGER"


def test_trigger_ids_are_fresh() -> None:
    assert slack_payloads.new_trigger_id() != slack_payloads.new_trigger_id()


# ---- Bolt accepts the bodies: signed, parsed and routed like Slack's own -------------------


@pytest.fixture
async def recorder() -> AsyncIterator[SlackRecorder]:
    async with SlackRecorder() as started:
        yield started


@pytest.fixture
def app(recorder: SlackRecorder) -> tuple[AsyncApp, list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    client = AsyncWebClient(base_url=recorder.api_url, token="xoxb-test")
    bolt = AsyncApp(client=client, signing_secret=SECRET, process_before_response=True)

    @bolt.command("/customer")
    async def command(ack: Any, command: dict[str, Any]) -> None:
        await ack(text=f"looking up {command['text']}")
        seen.append(("command", command))

    @bolt.shortcut("lookup_customer")
    async def shortcut(ack: Any, shortcut: dict[str, Any]) -> None:
        await ack()
        seen.append(("shortcut", shortcut))

    @bolt.event("app_mention")
    async def mention(event: dict[str, Any], say: Any) -> None:
        seen.append(("mention", event))
        await say(text="on it", thread_ts=event.get("thread_ts") or event["ts"])

    @bolt.action("share_to_thread")
    async def action(ack: Any, action: dict[str, Any], body: dict[str, Any]) -> None:
        await ack()
        seen.append(("action", body))

    @bolt.view("reveal_reason")
    async def view(ack: Any, view: dict[str, Any]) -> None:
        await ack()
        seen.append(("view", view))

    return bolt, seen


async def _dispatch(bolt: AsyncApp, body: str, *, secret: str = SECRET) -> Any:
    # Bolt's HTTP adapters hand it lower-case header names with lists of values.
    headers: dict[str, str | Sequence[str]] = {
        key.lower(): [value]
        for key, value in slack_payloads.request_headers(body, secret=secret).items()
    }
    return await bolt.async_dispatch(AsyncBoltRequest(body=body, headers=headers))


async def test_bolt_dispatches_every_built_body(
    app: tuple[AsyncApp, list[tuple[str, dict[str, Any]]]], recorder: SlackRecorder
) -> None:
    bolt, seen = app
    bodies = [
        slack_payloads.slash_command(
            text="jane@example.com",
            user_id="U0AGENT",
            channel_id="C0PUBLIC",
            response_url=RESPONSE_URL,
        ),
        slack_payloads.message_shortcut(
            message_text="jane", user_id="U0AGENT", channel_id="C0PUBLIC", response_url=RESPONSE_URL
        ),
        slack_payloads.app_mention(
            text="jane", user_id="U0AGENT", channel_id="C0PUBLIC", ts="1714000000.000500"
        ),
        slack_payloads.block_action(
            action_id="share_to_thread",
            value="k",
            user_id="U0AGENT",
            channel_id="C0PUBLIC",
            response_url=RESPONSE_URL,
        ),
        slack_payloads.view_submission(
            callback_id="reveal_reason", private_metadata="", values={}, user_id="U0MANAGER"
        ),
    ]
    statuses = [(await _dispatch(bolt, body)).status for body in bodies]
    assert statuses == [200] * 5
    assert [kind for kind, _ in seen] == ["command", "shortcut", "mention", "action", "view"]
    assert seen[0][1]["text"] == "jane@example.com"
    # Bolt learned who it is from the recorder's auth.test and posted the reply in the thread.
    assert recorder.calls_to("auth.test")
    (post,) = recorder.calls_to("chat.postMessage")
    assert post.payload["thread_ts"] == "1714000000.000500"
    assert post.response["ok"] is True


async def test_bolt_refuses_a_body_signed_with_another_secret(
    app: tuple[AsyncApp, list[tuple[str, dict[str, Any]]]],
) -> None:
    bolt, seen = app
    body = slack_payloads.slash_command(
        text="x", user_id="U0AGENT", channel_id="C0PUBLIC", response_url=RESPONSE_URL
    )
    response = await _dispatch(bolt, body, secret="wrong")
    assert response.status == 401
    assert seen == []
