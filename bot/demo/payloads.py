"""Real Slack request bodies (HTTP mode) for the demo workspace, and their request signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from bot.demo.workspace import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, demo_workspace

__all__ = [
    "CONTENT_TYPE_FORM",
    "CONTENT_TYPE_JSON",
    "DEFAULT_MESSAGE_TS",
    "app_home_opened",
    "app_mention",
    "block_action",
    "content_type",
    "entity_details_requested",
    "global_shortcut",
    "link_shared",
    "message_shortcut",
    "new_trigger_id",
    "request_headers",
    "sign",
    "slash_command",
    "view_submission",
]

CONTENT_TYPE_FORM = "application/x-www-form-urlencoded"
CONTENT_TYPE_JSON = "application/json"
DEFAULT_MESSAGE_TS = "1714000000.000100"
# The legacy verification token Slack still puts in payloads; nobody should check it.
VERIFICATION_TOKEN = "demo-verification-token"  # noqa: S105 - a public demo value

_WORKSPACE = demo_workspace()


def sign(body: str, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The two signature headers Slack sends with `body` (`v0` HMAC-SHA256 of the raw body)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def content_type(body: str) -> str:
    """The Content-Type Slack sends with `body`: JSON for events, form fields for the rest."""
    return CONTENT_TYPE_JSON if body.lstrip().startswith("{") else CONTENT_TYPE_FORM


def request_headers(body: str, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Content-Type plus signature headers: everything a signed request to the app needs."""
    return {"Content-Type": content_type(body), **sign(body, secret=secret, timestamp=timestamp)}


def slash_command(
    *,
    text: str,
    user_id: str,
    channel_id: str,
    response_url: str,
    team_id: str = TEAM_ID,
    command: str = "/customer",
    trigger_id: str | None = None,
) -> str:
    """A slash command body: form-encoded, every documented field (all strings)."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": _WORKSPACE.team_domain,
        "channel_id": channel_id,
        "channel_name": _channel_name(channel_id),
        "user_id": user_id,
        "user_name": _user_name(user_id),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return urlencode(fields)


def message_shortcut(
    *,
    message_text: str,
    user_id: str,
    channel_id: str,
    response_url: str,
    message_ts: str = DEFAULT_MESSAGE_TS,
    thread_ts: str | None = None,
    callback_id: str = "lookup_customer",
    team_id: str = TEAM_ID,
    message_user: str | None = None,
    trigger_id: str | None = None,
) -> str:
    """A message shortcut body (`payload=<json>`, type `message_action`).

    `message_user` is who wrote the message (the invoking user when not given).
    """
    author = message_user or user_id
    message: dict[str, Any] = {
        "type": "message",
        "user": author,
        "text": message_text,
        "ts": message_ts,
        "team": team_id,
        "client_msg_id": _uuid(),
        "blocks": [_rich_text(message_text)],
    }
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": _now_ts(),
        "team": _team(team_id),
        "user": _user(user_id, team_id),
        "channel": {"id": channel_id, "name": _channel_name(channel_id)},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
        "response_url": response_url,
        "message_ts": message_ts,
        "message": message,
    }
    return _form_payload(payload)


def global_shortcut(
    *,
    callback_id: str,
    user_id: str,
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
) -> str:
    """A global shortcut body (`payload=<json>`, type `shortcut`): no channel, no message and no
    response_url, as Slack sends it."""
    payload = {
        "type": "shortcut",
        "token": VERIFICATION_TOKEN,
        "action_ts": _now_ts(),
        "team": _team(team_id),
        "user": _user(user_id, team_id),
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return _form_payload(payload)


def app_home_opened(
    *,
    user_id: str,
    tab: str = "home",
    view: dict[str, Any] | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """An `event_callback` JSON envelope carrying `app_home_opened`: `channel` is the bot's DM
    with the person, `tab` is "home" or "messages", and `view` (the Home as last published) is
    there only once a Home has been published for them."""
    ts = _now_ts()
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": f"D0{user_id.removeprefix('U').removeprefix('W')}",
        "tab": tab,
        "event_ts": ts,
    }
    if view is not None:
        event["view"] = view
    return _event_envelope(event, team_id=team_id, event_id=event_id, event_time=int(float(ts)))


def app_mention(
    *,
    text: str,
    user_id: str,
    channel_id: str,
    ts: str = DEFAULT_MESSAGE_TS,
    thread_ts: str | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    bot_user_id: str = BOT_USER_ID,
) -> str:
    """An `event_callback` JSON envelope carrying an `app_mention`.

    The mention `<@bot_user_id>` is put in front of `text` unless `text` already contains it.
    """
    mention = f"<@{bot_user_id}>"
    full_text = text if mention in text else f"{mention} {text}".rstrip()
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user_id,
        "text": full_text,
        "ts": ts,
        "channel": channel_id,
        "event_ts": ts,
        "team": team_id,
        "client_msg_id": _uuid(),
        "blocks": [_rich_text(full_text, bot_user_id=bot_user_id)],
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    channel = _WORKSPACE.channels.get(channel_id)
    return _event_envelope(
        event,
        team_id=team_id,
        event_id=event_id,
        event_time=int(float(ts)),
        bot_user_id=bot_user_id,
        ext_shared=bool(channel and channel.is_ext_shared),
        event_context=True,
    )


def _event_envelope(
    event: dict[str, Any],
    *,
    team_id: str,
    event_id: str | None,
    event_time: int | None = None,
    bot_user_id: str = BOT_USER_ID,
    ext_shared: bool = False,
    event_context: bool = False,
) -> str:
    """An `event_callback` JSON envelope around `event`, as Slack sends it in HTTP mode."""
    envelope: dict[str, Any] = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": ext_shared,
    }
    if event_context:
        envelope["event_context"] = f"4-{secrets.token_urlsafe(24)}"
    return json.dumps(envelope)


def link_shared(
    *,
    urls: list[str],
    user_id: str,
    channel_id: str,
    message_ts: str = DEFAULT_MESSAGE_TS,
    thread_ts: str | None = None,
    source: str = "conversations_history",
    unfurl_id: str | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """A `link_shared` event (docs.slack.dev/reference/events/link_shared) for `urls`.

    `source="composer"` is a link still in the message composer: Slack then sends the channel as
    "COMPOSER" and a `message_ts` that is no timestamp, with the `unfurl_id` to answer on.
    """
    composer = source == "composer"
    channel = _WORKSPACE.channels.get(channel_id)
    event: dict[str, Any] = {
        "type": "link_shared",
        "channel": "COMPOSER" if composer else channel_id,
        "is_bot_user_member": bool(channel and channel.bot_is_member),
        "user": user_id,
        "message_ts": f"{user_id}-{_uuid()}" if composer else message_ts,
        "unfurl_id": unfurl_id or f"{channel_id}.{message_ts}.{secrets.token_hex(32)}",
        "source": source,
        "links": [{"domain": urlsplit(url).hostname or "", "url": url} for url in urls],
        "event_ts": _now_ts(),
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return _event_envelope(event, team_id=team_id, event_id=event_id)


def entity_details_requested(
    *,
    external_ref: dict[str, Any],
    entity_url: str,
    user_id: str,
    channel_id: str,
    message_ts: str = DEFAULT_MESSAGE_TS,
    app_unfurl_url: str | None = None,
    trigger_id: str | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """An `entity_details_requested` event (docs.slack.dev/reference/events/...):
    `user_id` opened the flexpane of the Work Object whose `external_ref` and `url` are given."""
    link = app_unfurl_url or entity_url
    event: dict[str, Any] = {
        "type": "entity_details_requested",
        "user": user_id,
        "external_ref": external_ref,
        "entity_url": entity_url,
        "link": {"url": link, "domain": urlsplit(link).hostname or ""},
        "event_ts": _now_ts(),
        "trigger_id": trigger_id or new_trigger_id(),
        "user_locale": "en-US",
        "channel": channel_id,
        "message_ts": message_ts,
    }
    if app_unfurl_url is not None:
        event["app_unfurl_url"] = app_unfurl_url
    return _event_envelope(event, team_id=team_id, event_id=event_id)


def block_action(
    *,
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str | None,
    response_url: str | None,
    message_ts: str = DEFAULT_MESSAGE_TS,
    thread_ts: str | None = None,
    is_ephemeral: bool = True,
    container_type: str = "message",
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    block_id: str = "actions",
    view_id: str | None = None,
    private_metadata: str = "",
    message: dict[str, Any] | None = None,
) -> str:
    """A button click body (`payload=<json>`, type `block_actions`).

    `container_type="message"` is a click on a message (ephemeral ones carry no `message`);
    `"view"` is a click in a modal or the Home tab: no channel, no message, usually no
    response URL (pass `response_url=None`).

    `message` is the clicked message as Slack keeps it (for example the `message` that
    `chat.postMessage` answered with): Slack sends it back whole, blocks and all, with a click
    on a message that is not ephemeral, and its `ts` and `thread_ts` place the click.
    """
    if message is not None:
        message_ts = str(message.get("ts") or message_ts)
        thread_ts = message.get("thread_ts") or thread_ts
    action = {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value,
        "action_ts": _now_ts(),
    }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
    if container_type == "view":
        view_id = view_id or f"V{secrets.token_hex(5).upper()}"
        payload["container"] = {"type": "view", "view_id": view_id}
        payload["view"] = _view(
            view_id=view_id,
            team_id=team_id,
            kind="home",
            callback_id="",
            private_metadata=private_metadata,
            values={},
        )
    else:
        container: dict[str, Any] = {
            "type": container_type,
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
        if thread_ts is not None:
            container["thread_ts"] = thread_ts
        payload["container"] = container
        if channel_id is not None:
            payload["channel"] = {"id": channel_id, "name": _channel_name(channel_id)}
        if not is_ephemeral:
            clicked: dict[str, Any] = {
                "type": "message",
                "subtype": "bot_message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "team": team_id,
                "text": "",
                "ts": message_ts,
                "blocks": [],
                **(message or {}),
            }
            if thread_ts is not None:
                clicked["thread_ts"] = thread_ts
            payload["message"] = clicked
    if response_url is not None:
        payload["response_url"] = response_url
    return _form_payload(payload)


def view_submission(
    *,
    callback_id: str,
    private_metadata: str,
    values: dict[str, dict[str, dict[str, Any]]],
    user_id: str,
    team_id: str = TEAM_ID,
    view_id: str | None = None,
    trigger_id: str | None = None,
) -> str:
    """A modal submission body (`payload=<json>`, type `view_submission`).

    `values` is `view.state.values`: block_id -> action_id -> element state, for example
    `{"identity": {"identity_input": {"type": "plain_text_input", "value": "x@example.com"}}}`.
    """
    view_id = view_id or f"V{secrets.token_hex(5).upper()}"
    payload = {
        "type": "view_submission",
        "team": _team(team_id),
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": _view(
            view_id=view_id,
            team_id=team_id,
            kind="modal",
            callback_id=callback_id,
            private_metadata=private_metadata,
            values=values,
        ),
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _form_payload(payload)


def new_trigger_id() -> str:
    """A fresh trigger id in Slack's `<digits>.<digits>.<hex>` shape."""
    return f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


def _form_payload(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def _now_ts() -> str:
    return f"{time.time():.6f}"


def _uuid() -> str:
    token = secrets.token_hex(16)
    return f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:]}"


def _team(team_id: str) -> dict[str, Any]:
    domain = _WORKSPACE.team_domain if team_id == _WORKSPACE.team_id else team_id.lower()
    return {"id": team_id, "domain": domain}


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    name = _user_name(user_id)
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _user_name(user_id: str) -> str:
    user = _WORKSPACE.users.get(user_id)
    return user.name if user else user_id.lower()


def _channel_name(channel_id: str) -> str:
    """The channel name Slack puts in payloads (`directmessage` for DMs)."""
    channel = _WORKSPACE.channels.get(channel_id)
    if channel is None:
        return "unknown"
    if channel.kind == "im":
        return "directmessage"
    return channel.name


def _rich_text(text: str, *, bot_user_id: str | None = None) -> dict[str, Any]:
    """The rich_text block Slack adds to a person's message (mention split out as a user)."""
    elements: list[dict[str, Any]] = []
    rest = text
    mention = f"<@{bot_user_id}>" if bot_user_id else None
    if mention and mention in rest:
        before, _, rest = rest.partition(mention)
        if before:
            elements.append({"type": "text", "text": before})
        elements.append({"type": "user", "user_id": bot_user_id})
    if rest:
        elements.append({"type": "text", "text": rest})
    return {
        "type": "rich_text",
        "block_id": secrets.token_urlsafe(4),
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }


def _view(
    *,
    view_id: str,
    team_id: str,
    kind: str,
    callback_id: str,
    private_metadata: str,
    values: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": kind,
        "blocks": [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": values},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": {"type": "plain_text", "text": "Customer", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": BOT_ID,
    }
    if kind == "modal":
        view["close"] = {"type": "plain_text", "text": "Cancel", "emoji": True}
        view["submit"] = {"type": "plain_text", "text": "Look up", "emoji": True}
    return view
