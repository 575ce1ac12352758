"""A local Slack Web API that answers from a demo Workspace and records every call it receives."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import get_timezone_name

from bot import blockkit, ids
from bot.demo.workspace import Workspace, WorkspaceChannel, WorkspaceUser, demo_workspace

__all__ = ["RESPONSE_URL_METHOD", "RecordedCall", "SlackRecorder", "block_problems"]

logger = logging.getLogger(__name__)

RESPONSE_URL_METHOD = "response_url"

# Web API arguments that carry JSON; form bodies and query strings send them as strings.
_JSON_FIELDS = frozenset(
    {"attachments", "blocks", "error", "metadata", "unfurls", "user_auth_blocks", "view"}
)
#: The statuses of entity.presentDetails's `error` (Slack's Work Objects implementation guide).
_FLEXPANE_ERRORS = frozenset(
    {"restricted", "internal_error", "not_found", "custom", "custom_partial_view", "timeout"}
    | {"edit_error"}
)
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

# The limits Slack enforces are the bot's own (bot/blockkit.py): one list, checked both ways.
MAX_MESSAGE_BLOCKS = blockkit.MESSAGE_BLOCKS
MAX_VIEW_BLOCKS = blockkit.MODAL_BLOCKS
MAX_MESSAGE_TEXT = blockkit.MESSAGE_TEXT_CHARS
MAX_PRIVATE_METADATA = blockkit.PRIVATE_METADATA_CHARS
MAX_VIEW_TITLE = blockkit.VIEW_TITLE_CHARS
_DEFAULT_MEMBERS_LIMIT = 100
_MAX_MEMBERS_LIMIT = 1000

Answer = dict[str, Any]
Payload = Mapping[str, Any]


@dataclass(frozen=True)
class RecordedCall:
    """One request the recorder received and what it answered.

    `method` is the Web API method (`chat.postMessage`) or `response_url` for a post to a
    response URL; `payload` merges query string, form fields and JSON body, with JSON-valued
    fields (`blocks`, `view`, ...) decoded and any body `token` removed; `at` is
    `time.monotonic()` when the answer was made.
    """

    method: str
    payload: dict[str, Any]
    path: str
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: float | None
    hang: bool = False


class SlackRecorder:
    """Serves the Slack Web API on loopback from a `Workspace`, recording each call.

    Point `AsyncWebClient(base_url=recorder.api_url)` (or `SLACK_API_URL`) at it. Answers follow
    Slack's documented shapes and errors; `fail_next` injects failures such as rate limits.
    It keeps the little state a workspace has: message timestamps, open views, used trigger ids.
    Lenient on purpose in one place: `chat.update` and `views.update` accept a `ts`/`view_id` the
    recorder did not issue, so tests can act on messages built with `bot.demo.payloads`.
    """

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = workspace if workspace is not None else demo_workspace()
        self.calls: list[RecordedCall] = []
        self._failures: dict[str, list[_Failure]] = {}
        # Hanging answers wait on this; close() sets it so the server can stop.
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        # Slack timestamps are "<epoch seconds>.<6 digits>"; a counter keeps them unique.
        self._ts_base = int(time.time())
        self._ts_counter = itertools.count(1)
        self._ephemeral_ts: set[str] = set()
        self._views: dict[str, dict[str, Any]] = {}
        self._used_triggers: set[str] = set()
        #: The scopes the bot token has, sent as Slack sends them on every Web API answer
        #: (`x-oauth-scopes`); a test takes one away to see what the bot makes of it.
        self.scopes: set[str] = set(ids.BOT_SCOPES)
        self._methods: dict[str, Callable[[Payload], Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.getPermalink": self._chat_get_permalink,
            "chat.unfurl": self._chat_unfurl,
            "entity.presentDetails": self._entity_present_details,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.open": self._conversations_open,
        }
        # DMs between the bot and a person that conversations.open created (the workspace's own
        # DMs are in `workspace.channels`).
        self._opened_ims: dict[str, WorkspaceChannel] = {}

    # ---- server lifecycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on `host:port` (port 0 picks a free one); `url` is known afterwards."""
        if self._runner is not None:
            raise RuntimeError("SlackRecorder is already started")
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._on_api)
        app.router.add_post("/response/{name}", self._on_response_url)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self._runner = runner
        self._url = f"http://{url_host}:{bound_port}"
        logger.debug("slack recorder listening on %s", self._url)

    async def close(self) -> None:
        """Stop serving (ending any hanging answer first); safe to call twice."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` once started."""
        if self._url is None:
            raise RuntimeError("SlackRecorder.start() has not been awaited yet")
        return self._url

    @property
    def api_url(self) -> str:
        """The Web API base URL, with the trailing slash slack_sdk expects."""
        return f"{self.url}/api/"

    def response_url(self, name: str | None = None) -> str:
        """A response URL on this server; posts to it are recorded as method `response_url`."""
        return f"{self.url}/response/{name or uuid.uuid4().hex}"

    # ---- inspection and control -------------------------------------------------------------

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls to `method`, oldest first."""
        return [call for call in self.calls if call.method == method]

    # The interface takes a timeout (rather than asyncio.timeout) to report what was seen instead.
    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[RecordedCall]:
        """Wait until `count` calls to `method` were recorded; AssertionError on timeout.

        Bolt runs listeners as background tasks after `ack()`, so tests poll for their calls.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.calls_to(method)
            if len(found) >= count:
                return found
            if loop.time() >= deadline:
                seen = ", ".join(call.method for call in self.calls) or "none"
                raise AssertionError(
                    f"expected {count} call(s) to {method} within {timeout:g}s, "
                    f"got {len(found)}; calls seen: {seen}"
                )
            await asyncio.sleep(0.005)

    def fail_next(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int = 200,
        retry_after: float | None = None,
        count: int = 1,
    ) -> None:
        """Make the next `count` calls to `method` fail with `error` (recorded all the same).

        `method` is a Web API method or RESPONSE_URL_METHOD. With `status=429` the answer carries
        `Retry-After` (`retry_after`, default 1 second), as Slack's rate limiting does: HTTP 429,
        `Retry-After` in whole seconds, body `{"ok": false, "error": "ratelimited"}`.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        queue = self._failures.setdefault(method, [])
        queue.extend(_Failure(error, status, retry_after) for _ in range(count))

    def hang_next(self, method: str, *, count: int = 1) -> None:
        """Make the next `count` calls to `method` (or RESPONSE_URL_METHOD) never answer: the
        call is recorded with status 0 when it arrives, and the connection stays open until the
        recorder closes (a Slack that hangs, not one that refuses)."""
        queue = self._failures.setdefault(method, [])
        queue.extend(_Failure("hang", 0, None, hang=True) for _ in range(count))

    def clear(self) -> None:
        """Forget recorded calls and pending failures (the workspace state stays)."""
        self.calls.clear()
        self._failures.clear()

    # ---- HTTP ---------------------------------------------------------------------------------

    async def _on_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            payload = await _read_payload(request)
        except ValueError:
            return self._answer(method, {}, request.path, {"ok": False, "error": "invalid_json"})
        authorization = request.headers.get("Authorization", "")
        token = payload.pop("token", None)
        authed = bool(authorization.removeprefix("Bearer ").strip()) or bool(token)
        failure = self._take_failure(method)
        if failure is not None:
            return await self._fail(method, payload, request.path, failure)
        if not authed:
            return self._answer(method, payload, request.path, {"ok": False, "error": "not_authed"})
        return self._answer(method, payload, request.path, self.handle(method, payload))

    async def _on_response_url(self, request: web.Request) -> web.Response:
        try:
            payload = await _read_payload(request)
        except ValueError:
            payload = {}
        payload["response_url"] = f"{self.url}{request.path}"
        failure = self._take_failure(RESPONSE_URL_METHOD)
        if failure is not None:
            return await self._fail(RESPONSE_URL_METHOD, payload, request.path, failure)
        answer = self._response_url_answer(payload)
        status = 200 if answer["ok"] else 400
        return self._answer(RESPONSE_URL_METHOD, payload, request.path, answer, status=status)

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        return queue.pop(0) if queue else None

    async def _fail(
        self, method: str, payload: dict[str, Any], path: str, failure: _Failure
    ) -> web.Response:
        if failure.hang:
            self.calls.append(
                RecordedCall(
                    method=method, payload=payload, path=path, at=time.monotonic(), status=0
                )
            )
            await self._release.wait()
            return web.json_response({"ok": False, "error": "hang"}, status=503)
        headers = {}
        if failure.retry_after is not None:
            # Slack sends whole seconds; a huge value stays as written (no float notation).
            headers["Retry-After"] = str(int(failure.retry_after))
        answer = {"ok": False, "error": failure.error}
        return self._answer(method, payload, path, answer, status=failure.status, headers=headers)

    def _answer(
        self,
        method: str,
        payload: dict[str, Any],
        path: str,
        answer: Answer,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        self.calls.append(
            RecordedCall(
                method=method,
                payload=payload,
                path=path,
                at=time.monotonic(),
                status=status,
                response=answer,
            )
        )
        logger.debug("slack %s -> %s %s", method, status, answer.get("error", "ok"))
        sent = {"x-oauth-scopes": ",".join(sorted(self.scopes)), **(headers or {})}
        return web.json_response(answer, status=status, headers=sent)

    # ---- the Web API ----------------------------------------------------------------------------

    def handle(self, method: str, payload: Payload) -> Answer:
        """Answer one Web API call from the workspace, without I/O and without recording it."""
        answer = self._methods.get(method)
        if answer is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        return answer(payload)

    def _next_ts(self) -> str:
        return f"{self._ts_base}.{next(self._ts_counter):06d}"

    def _auth_test(self, payload: Payload) -> Answer:
        ws = self.workspace
        bot = ws.users.get(ws.bot_user_id)
        return {
            "ok": True,
            "url": f"https://{ws.team_domain}.slack.com/",
            "team": ws.team_name,
            "user": bot.name if bot else "bot",
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    def _postable(self, channel_id: object) -> WorkspaceChannel | Answer:
        """The channel the bot may post into, or the error Slack gives."""
        if not isinstance(channel_id, str) or not channel_id:
            return _error("channel_not_found")
        channel = self.workspace.channels.get(channel_id) or self._opened_ims.get(channel_id)
        if channel is None and channel_id.startswith(("U", "W")):
            # Posting to a user id lands in the app's DM with that user.
            channel = next(
                (
                    c
                    for c in self.workspace.channels.values()
                    if c.kind == "im" and channel_id in c.members
                ),
                None,
            )
        if channel is None:
            return _error("channel_not_found")
        if not channel.bot_is_member:
            return _error("not_in_channel")
        return channel

    def _message(self, payload: Payload, ts: str) -> Answer:
        message: Answer = {
            "type": "message",
            "subtype": "bot_message",
            "text": payload.get("text") or "",
            "user": self.workspace.bot_user_id,
            "bot_id": self.workspace.bot_id,
            "app_id": self.workspace.app_id,
            "team": self.workspace.team_id,
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if payload.get(key):
                message[key] = payload[key]
        return message

    def _chat_post_message(self, payload: Payload) -> Answer:
        channel = self._postable(payload.get("channel"))
        if isinstance(channel, dict):
            return channel
        problem = _content_problem(payload) or _metadata_problem(payload.get("metadata"))
        if problem is not None:
            return problem
        ts = self._next_ts()
        return {
            "ok": True,
            "channel": channel.id,
            "ts": ts,
            "message": self._message(payload, ts),
        }

    def _chat_post_ephemeral(self, payload: Payload) -> Answer:
        channel = self._postable(payload.get("channel"))
        if isinstance(channel, dict):
            return channel
        user_id = payload.get("user")
        if not isinstance(user_id, str) or user_id not in self.workspace.users:
            return _error("user_not_found")
        if user_id not in channel.members:
            return _error("user_not_in_channel")
        problem = _content_problem(payload)
        if problem is not None:
            return problem
        ts = self._next_ts()
        self._ephemeral_ts.add(ts)
        return {"ok": True, "message_ts": ts}

    def _chat_update(self, payload: Payload) -> Answer:
        channel = self._postable(payload.get("channel"))
        if isinstance(channel, dict):
            return channel
        ts = payload.get("ts")
        # Ephemeral messages are not stored, so Slack cannot find them to edit.
        if not isinstance(ts, str) or not ts or ts in self._ephemeral_ts:
            return _error("message_not_found")
        problem = _content_problem(payload)
        if problem is not None:
            return problem
        return {
            "ok": True,
            "channel": channel.id,
            "ts": ts,
            "text": payload.get("text") or "",
            "message": self._message(payload, ts),
        }

    def _chat_get_permalink(self, payload: Payload) -> Answer:
        channel = self.workspace.channels.get(str(payload.get("channel") or ""))
        if channel is None or not _visible(channel):
            return _error("channel_not_found")
        ts = payload.get("message_ts")
        if not isinstance(ts, str) or not ts or ts in self._ephemeral_ts:
            return _error("message_not_found")
        domain = self.workspace.team_domain
        return {
            "ok": True,
            "channel": channel.id,
            "permalink": f"https://{domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}",
        }

    def _chat_unfurl(self, payload: Payload) -> Answer:
        """chat.unfurl as documented: `channel` + `ts` or `unfurl_id` + `source`; `unfurls` (URL ->
        `{"blocks": [...]}`) or `metadata` (`{"entities": [...]}`, each with `app_unfurl_url`),
        both URL-encoded JSON in a form body."""
        by_message = payload.get("channel") and payload.get("ts")
        by_id = payload.get("unfurl_id") and payload.get("source")
        if not by_message and not by_id:
            return _invalid_arguments("channel and ts, or unfurl_id and source, are required")
        if by_id and payload.get("source") not in ("composer", "conversations_history"):
            return _invalid_arguments("source must be composer or conversations_history")
        if by_message and not by_id and payload.get("channel") not in self.workspace.channels:
            return _error("cannot_find_channel")
        unfurls, metadata = payload.get("unfurls"), payload.get("metadata")
        if not unfurls and not metadata:
            return _error("missing_unfurls")
        if unfurls and not isinstance(unfurls, dict):
            return _error("invalid_unfurls_format")
        problems: list[str] = []
        for url, unfurl in (unfurls or {}).items():
            if not isinstance(unfurl, dict) or not isinstance(unfurl.get("blocks"), list):
                problems.append(f"/unfurls/{url}: blocks are required")
                continue
            problems += block_problems(unfurl["blocks"], pointer=f"/unfurls/{url}/blocks")
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        if metadata:
            entities = metadata.get("entities") if isinstance(metadata, dict) else None
            if not isinstance(entities, list) or not entities:
                return _error("invalid_metadata")
            for index, entity in enumerate(entities):
                problems += blockkit.entity_problems(
                    entity, unfurl=True, where=f"metadata.entities[{index}]"
                )
            if problems:
                return {"ok": False, "error": "invalid_metadata", "errors": problems}
        return {"ok": True}

    def _entity_present_details(self, payload: Payload) -> Answer:
        """entity.presentDetails as documented: a `trigger_id` (used once), and `metadata` (one
        entity, URL-encoded JSON in a form body) or `error` (a documented status; words only
        with "custom" or "custom_partial_view")."""
        metadata, error = payload.get("metadata"), payload.get("error")
        if not metadata and not error:
            return _invalid_arguments("metadata or error is required")
        if metadata:
            problems = blockkit.entity_problems(metadata, where="metadata")
            if problems:
                return {"ok": False, "error": "invalid_metadata", "errors": problems}
        if error:
            if not isinstance(error, dict) or error.get("status") not in _FLEXPANE_ERRORS:
                return _invalid_arguments("error.status is not a documented status")
            worded = error.get("status") in ("custom", "custom_partial_view")
            for key in ("custom_message", "custom_title"):
                if key in error and (not worded or not isinstance(error[key], str)):
                    return _invalid_arguments(f"error.{key} is for custom statuses, as a string")
        return self._exchange_trigger(payload) or {"ok": True}

    def _exchange_trigger(self, payload: Payload) -> Answer | None:
        trigger_id = payload.get("trigger_id") or payload.get("interactivity_pointer")
        if not isinstance(trigger_id, str) or not trigger_id:
            return _invalid_arguments("missing required field: trigger_id")
        # A trigger opens one view; a second use is a bug Slack reports.
        if trigger_id in self._used_triggers:
            return _error("exchanged_trigger_id")
        self._used_triggers.add(trigger_id)
        return None

    def _store_view(
        self, view: dict[str, Any], *, view_id: str | None = None, root_id: str | None = None
    ) -> Answer:
        view_id = view_id or f"V{uuid.uuid4().hex[:10].upper()}"
        previous = self._views.get(view_id, {})
        stored: dict[str, Any] = {
            "id": view_id,
            "team_id": self.workspace.team_id,
            "type": view.get("type"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "title": view.get("title"),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": previous.get("previous_view_id"),
            "root_view_id": root_id or previous.get("root_view_id") or view_id,
            "app_id": self.workspace.app_id,
            "external_id": view.get("external_id", previous.get("external_id", "")),
            "app_installed_team_id": self.workspace.team_id,
            "bot_id": self.workspace.bot_id,
        }
        self._views[view_id] = stored
        return {"ok": True, "view": stored}

    def _views_open(self, payload: Payload) -> Answer:
        view = payload.get("view")
        problem = _view_problem(view, home=False) or self._exchange_trigger(payload)
        if problem is not None:
            return problem
        assert isinstance(view, dict)
        return self._store_view(view)

    def _views_push(self, payload: Payload) -> Answer:
        return self._views_open(payload)

    def _views_update(self, payload: Payload) -> Answer:
        view = payload.get("view")
        view_id = payload.get("view_id")
        external_id = payload.get("external_id")
        if not view_id and not external_id:
            return _invalid_arguments("missing required field: view_id or external_id")
        problem = _view_problem(view, home=False)
        if problem is not None:
            return problem
        assert isinstance(view, dict)
        if not view_id:
            view_id = next(
                (vid for vid, v in self._views.items() if v.get("external_id") == external_id),
                None,
            )
            if view_id is None:
                return _error("not_found")
        known = self._views.get(str(view_id))
        expected_hash = payload.get("hash")
        if known is not None and expected_hash and expected_hash != known["hash"]:
            return _error("hash_conflict")
        return self._store_view(view, view_id=str(view_id))

    def _views_publish(self, payload: Payload) -> Answer:
        user = self._visible_user(payload.get("user_id"))
        if user is None:
            return _error("user_not_found")
        view = payload.get("view")
        problem = _view_problem(view, home=True)
        if problem is not None:
            return problem
        assert isinstance(view, dict)
        # One Home tab per user: publishing again replaces it under the same id.
        home_id = f"V0HOME{user.id}"
        return self._store_view(view, view_id=home_id)

    def _visible_user(self, user_id: object) -> WorkspaceUser | None:
        """A user `users.info` can see: people of this workspace (other orgs are not found)."""
        if not isinstance(user_id, str):
            return None
        user = self.workspace.users.get(user_id)
        if user is None or user.team_id != self.workspace.team_id:
            return None
        return user

    def _users_info(self, payload: Payload) -> Answer:
        user = self._visible_user(payload.get("user"))
        if user is None:
            return _error("user_not_found")
        first, _, last = user.real_name.partition(" ")
        profile: dict[str, Any] = {
            "real_name": user.real_name,
            "real_name_normalized": user.real_name,
            "display_name": user.name,
            "display_name_normalized": user.name,
            "first_name": first,
            "last_name": last,
            "title": "",
            "status_text": "",
            "status_emoji": "",
            "avatar_hash": f"g{user.id.lower()}",
            "team": user.team_id,
        }
        if user.is_bot:
            profile["bot_id"] = self.workspace.bot_id
            profile["api_app_id"] = self.workspace.app_id
        body: dict[str, Any] = {
            "id": user.id,
            "team_id": user.team_id,
            "name": user.name,
            "deleted": user.deleted,
            "color": "9f69e7",
            "real_name": user.real_name,
            # As Slack: the zone's name, its long name and its offset now, in seconds.
            "tz": user.tz,
            "tz_label": _zone_label(user.tz),
            "tz_offset": _zone_offset(user.tz),
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": user.is_restricted,
            "is_ultra_restricted": user.is_ultra_restricted,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "updated": self._ts_base,
            "is_email_confirmed": not user.is_bot,
        }
        if _flag(payload.get("include_locale")):
            body["locale"] = user.locale
        return {"ok": True, "user": body}

    def _usergroup(
        self, handle: str, group_id: str, members: tuple[str, ...], payload: Payload
    ) -> Answer:
        group: dict[str, Any] = {
            "id": group_id,
            "team_id": self.workspace.team_id,
            "is_usergroup": True,
            "is_subteam": True,
            "name": self.workspace.group_name(handle),
            "description": "",
            "handle": handle,
            "is_external": False,
            "date_create": self._ts_base,
            "date_update": self._ts_base,
            "date_delete": 0,
            "auto_type": None,
            "created_by": "U0MANAGER",
            "updated_by": "U0MANAGER",
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
        }
        if _flag(payload.get("include_users")):
            group["users"] = list(members)
        if _flag(payload.get("include_count")):
            group["user_count"] = len(members)
        return group

    def _usergroups_list(self, payload: Payload) -> Answer:
        groups = [
            self._usergroup(handle, group_id, members, payload)
            for handle, (group_id, members) in self.workspace.usergroups.items()
        ]
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, payload: Payload) -> Answer:
        found = self.workspace.usergroup_by_id(str(payload.get("usergroup") or ""))
        if found is None:
            return _error("no_such_subteam")
        return {"ok": True, "users": list(found[1])}

    def _conversations_info(self, payload: Payload) -> Answer:
        channel = self.workspace.channels.get(str(payload.get("channel") or ""))
        if channel is None or not _visible(channel):
            return _error("channel_not_found")
        body = _conversation(channel, self.workspace, created=self._ts_base)
        if _flag(payload.get("include_num_members")) and channel.kind in ("public", "private"):
            body["num_members"] = len(channel.members)
        if _flag(payload.get("include_locale")):
            body["locale"] = "en-US"
        return {"ok": True, "channel": body}

    def _conversations_members(self, payload: Payload) -> Answer:
        channel = self.workspace.channels.get(str(payload.get("channel") or ""))
        if channel is None or not _visible(channel):
            return _error("channel_not_found")
        try:
            limit = int(payload.get("limit") or _DEFAULT_MEMBERS_LIMIT)
        except (TypeError, ValueError):
            return _error("invalid_limit")
        limit = max(1, min(limit, _MAX_MEMBERS_LIMIT))
        members = list(channel.members)
        start = 0
        cursor = payload.get("cursor")
        if cursor:
            start = _cursor_position(str(cursor), members)
            if start < 0:
                return _error("invalid_cursor")
        page = members[start : start + limit]
        rest = members[start + limit :]
        next_cursor = _cursor_for(rest[0]) if rest else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_open(self, payload: Payload) -> Answer:
        """Opens (or finds) the bot's DM with one person, as Slack documents it: `users` is a
        comma-separated list (one user: a DM; this stand-in opens no group DMs), or `channel`
        resumes a DM by its id."""
        channel_id, users = payload.get("channel"), payload.get("users")
        if channel_id:
            known = self.workspace.channels.get(str(channel_id)) or self._opened_ims.get(
                str(channel_id)
            )
            if known is None or known.kind not in ("im", "mpim"):
                return _error("channel_not_found")
            return {"ok": True, "channel": {"id": known.id}}
        if not isinstance(users, str) or not users.strip():
            return _error("users_list_not_supplied")
        user_ids = [u.strip() for u in users.split(",") if u.strip()]
        if len(user_ids) > 8:
            return _error("too_many_users")
        if len(user_ids) != 1:
            return _error("method_not_supported_for_channel_type")
        user = self._visible_user(user_ids[0])
        if user is None:
            return _error("user_not_found")
        if user.deleted:
            return _error("user_disabled")
        bot_user = self.workspace.bot_user_id
        for channel in [*self.workspace.channels.values(), *self._opened_ims.values()]:
            if channel.kind == "im" and set(channel.members) == {user.id, bot_user}:
                return {"ok": True, "channel": {"id": channel.id}}
        im = WorkspaceChannel(
            id=f"D0{user.id.removeprefix('U').removeprefix('W')}",
            name="",
            kind="im",
            members=(user.id, bot_user),
        )
        self._opened_ims[im.id] = im
        return {"ok": True, "channel": {"id": im.id}}

    def _response_url_answer(self, payload: Payload) -> Answer:
        if _flag(payload.get("delete_original")):
            return {"ok": True}
        problem = _content_problem(payload)
        return problem if problem is not None else {"ok": True}


# ---- pure helpers ---------------------------------------------------------------------------


async def _read_payload(request: web.Request) -> dict[str, Any]:
    """Query string, form fields and JSON body merged; JSON-valued fields decoded."""
    payload: dict[str, Any] = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            text = await request.text()
            body = json.loads(text) if text.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("a JSON body must be an object")
            payload.update(body)
        elif request.content_type in _FORM_TYPES:
            form = await request.post()
            payload.update({key: value for key, value in form.items() if isinstance(value, str)})
    for key in _JSON_FIELDS & payload.keys():
        value = payload[key]
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            # Undecodable JSON stays a string; validation then reports it as Slack would.
            with contextlib.suppress(json.JSONDecodeError):
                payload[key] = json.loads(value)
    return payload


def _error(code: str) -> Answer:
    return {"ok": False, "error": code}


def _invalid_arguments(*messages: str) -> Answer:
    return {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [f"[ERROR] {m}" for m in messages]},
    }


def _flag(value: object) -> bool:
    """Slack booleans arrive as true/false, "true"/"false" or "1"/"0"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _visible(channel: WorkspaceChannel) -> bool:
    """Public channels are visible to the bot; other conversations only to members."""
    return channel.bot_is_member or channel.kind == "public"


def _cursor_for(member_id: str) -> str:
    return base64.b64encode(f"user:{member_id}".encode()).decode()


def _cursor_position(cursor: str, members: list[str]) -> int:
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return -1
    member_id = decoded.removeprefix("user:")
    return members.index(member_id) if decoded.startswith("user:") and member_id in members else -1


def _conversation(channel: WorkspaceChannel, ws: Workspace, *, created: int) -> Answer:
    """A conversation object as `conversations.info` returns it."""
    is_shared = channel.is_ext_shared
    body: dict[str, Any] = {
        "id": channel.id,
        "created": created,
        "is_archived": False,
        "is_channel": channel.kind in ("public", "private"),
        "is_group": False,
        "is_im": channel.kind == "im",
        "is_mpim": channel.kind == "mpim",
        "is_private": channel.kind != "public",
        "is_general": False,
        "is_shared": is_shared,
        "is_ext_shared": channel.is_ext_shared,
        "is_org_shared": False,
        "is_pending_ext_shared": channel.is_pending_ext_shared,
        "pending_shared": [],
        "shared_team_ids": list(channel.shared_team_ids),
        "context_team_id": ws.team_id,
        "is_member": channel.bot_is_member,
    }
    if channel.kind == "im":
        other = next((m for m in channel.members if m != ws.bot_user_id), ws.bot_user_id)
        body.update({"user": other, "is_user_deleted": False, "priority": 0})
    else:
        body.update(
            {
                "name": channel.name,
                "name_normalized": channel.name,
                "creator": "U0MANAGER",
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
        )
    return body


def _metadata_problem(metadata: object) -> Answer | None:
    """The error Slack gives a message's `metadata` it would reject: an event (`event_type` and
    `event_payload`) and/or Work Object `entities`; None when there is none or it is fine."""
    if metadata in (None, ""):
        return None
    if not isinstance(metadata, dict):
        return _error("invalid_metadata_format")
    entities = metadata.get("entities")
    if entities is None:
        return None if metadata.get("event_type") else _error("invalid_metadata_format")
    if not isinstance(entities, list) or not entities:
        return _error("invalid_metadata_format")
    problems: list[str] = []
    for index, entity in enumerate(entities):
        problems += blockkit.entity_problems(entity, where=f"metadata.entities[{index}]")
    return {"ok": False, "error": "invalid_metadata", "errors": problems} if problems else None


def _content_problem(payload: Payload) -> Answer | None:
    """The error Slack gives a message body (text/blocks) it would reject, or None."""
    text = payload.get("text")
    blocks = payload.get("blocks")
    if not text and not blocks and not payload.get("attachments"):
        return _error("no_text")
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        return _error("msg_too_long")
    if blocks in (None, "", []):
        return None
    if isinstance(blocks, list) and len(blocks) > MAX_MESSAGE_BLOCKS:
        return _error("msg_blocks_too_long")
    problems = block_problems(blocks, pointer="/blocks")
    if problems:
        return {
            "ok": False,
            "error": "invalid_blocks",
            "errors": problems,
            "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
        }
    return None


def _view_problem(view: object, *, home: bool) -> Answer | None:
    """The error Slack gives a view it would reject, or None."""
    if not isinstance(view, dict):
        return _invalid_arguments("missing required field: view")
    kind = view.get("type")
    problems: list[str] = []
    if home and kind != "home":
        problems.append("views.publish needs a view of type home [json-pointer:/view/type]")
    elif not home and kind != "modal":
        problems.append("view type must be modal [json-pointer:/view/type]")
    if kind == "modal":
        problems += _text_problems(view.get("title"), "/view/title", MAX_VIEW_TITLE, required=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                problems += _text_problems(view[key], f"/view/{key}", MAX_VIEW_TITLE)
    elif kind == "home" and (view.get("submit") or view.get("close")):
        problems.append("home views cannot have submit or close [json-pointer:/view]")
    metadata = view.get("private_metadata", "")
    if not isinstance(metadata, str) or len(metadata) > MAX_PRIVATE_METADATA:
        problems.append(
            f"private_metadata must be a string of at most {MAX_PRIVATE_METADATA} characters "
            "[json-pointer:/view/private_metadata]"
        )
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
        problems.append(
            f"blocks must be a list of at most {MAX_VIEW_BLOCKS} items [json-pointer:/view/blocks]"
        )
    else:
        problems += block_problems(blocks, pointer="/view/blocks")
    return _invalid_arguments(*problems) if problems else None


_TEXT_LIMITS = {
    "section": blockkit.SECTION_TEXT_CHARS,
    "header": blockkit.HEADER_CHARS,
    "markdown": blockkit.MARKDOWN_BLOCK_CHARS,
}
_ELEMENT_LIMITS = {"actions": blockkit.ACTIONS_ELEMENTS, "context": blockkit.CONTEXT_ELEMENTS}


def block_problems(blocks: object, *, pointer: str = "/blocks") -> list[str]:
    """What Slack would reject in a list of Block Kit blocks (limits it enforces), or []."""
    if not isinstance(blocks, list):
        return [f"blocks must be a JSON array [json-pointer:{pointer}]"]
    problems: list[str] = []
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{pointer}/{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"a block needs a type [json-pointer:{where}]")
            continue
        kind = block["type"]
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= blockkit.ID_CHARS:
                problems.append(f"block_id must be 1-255 characters [json-pointer:{where}]")
            elif block_id in block_ids:
                problems.append(f"duplicate block_id {block_id} [json-pointer:{where}]")
            else:
                block_ids.add(block_id)
        if kind in _TEXT_LIMITS and "text" in block:
            text = block["text"]
            if kind == "markdown":
                if not isinstance(text, str) or len(text) > _TEXT_LIMITS[kind]:
                    problems.append(f"markdown text too long [json-pointer:{where}/text]")
            else:
                problems += _text_problems(text, f"{where}/text", _TEXT_LIMITS[kind])
        if kind == "section":
            fields = block.get("fields")
            if "text" not in block and not fields:
                problems.append(f"a section needs text or fields [json-pointer:{where}]")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > blockkit.SECTION_FIELDS:
                    problems.append(
                        f"at most {blockkit.SECTION_FIELDS} fields [json-pointer:{where}/fields]"
                    )
                else:
                    for n, item in enumerate(fields):
                        limit = blockkit.SECTION_FIELD_CHARS
                        problems += _text_problems(item, f"{where}/fields/{n}", limit)
            if isinstance(block.get("accessory"), dict):
                problems += _element_problems(block["accessory"], f"{where}/accessory")
        if kind in _ELEMENT_LIMITS:
            elements = block.get("elements")
            limit = _ELEMENT_LIMITS[kind]
            if not isinstance(elements, list) or not 0 < len(elements) <= limit:
                problems.append(f"{kind} needs 1-{limit} elements [json-pointer:{where}/elements]")
            elif kind == "actions":
                action_ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
                seen = [a for a in action_ids if a is not None]
                if len(seen) != len(set(seen)):
                    problems.append(f"duplicate action_id [json-pointer:{where}/elements]")
                for n, element in enumerate(elements):
                    problems += _element_problems(element, f"{where}/elements/{n}")
    return problems


def _text_problems(text: object, where: str, limit: int, *, required: bool = False) -> list[str]:
    if text is None and not required:
        return []
    if (
        not isinstance(text, dict)
        or text.get("type") not in ("plain_text", "mrkdwn")
        or not isinstance(text.get("text"), str)
    ):
        return [f"must be a text object [json-pointer:{where}]"]
    if not text["text"]:
        return [f"text must not be empty [json-pointer:{where}/text]"]
    if len(text["text"]) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _element_problems(element: object, where: str) -> list[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return [f"an element needs a type [json-pointer:{where}]"]
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None and (
        not isinstance(action_id, str) or len(action_id) > blockkit.ID_CHARS
    ):
        problems.append(f"action_id must be at most 255 characters [json-pointer:{where}]")
    if element["type"] == "button":
        text = element.get("text")
        problems += _text_problems(text, f"{where}/text", blockkit.BUTTON_TEXT_CHARS, required=True)
        value = element.get("value")
        if value is not None and (
            not isinstance(value, str) or len(value) > blockkit.BUTTON_VALUE_CHARS
        ):
            problems.append(f"value must be at most 2000 characters [json-pointer:{where}/value]")
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > blockkit.BUTTON_URL_CHARS):
            problems.append(f"url must be at most 3000 characters [json-pointer:{where}/url]")
    return problems


def _zone_label(name: str) -> str:
    """A zone's long name as users.info gives it ("Central European Time")."""
    return str(get_timezone_name(ZoneInfo(name), "long", locale="en_US"))


def _zone_offset(name: str) -> int:
    """A zone's offset from UTC now, in seconds, as users.info gives it."""
    offset = datetime.now(ZoneInfo(name)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0
