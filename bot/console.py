"""The offline console: real Slack payloads dispatched through the real app, answers printed."""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from pydantic import SecretStr
from slack_bolt.response import BoltResponse

from bot import ids
from bot.answers import profile_link
from bot.app import create_app
from bot.demo import payloads as slack_payloads
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.demo.workspace import BOT_USER_ID, demo_workspace, with_reader
from bot.i18n import N_, Reader, parse_locale, parse_zone, reader_for
from bot.services import build_services, slack_client
from bot.settings import Settings
from bot.verify import INVALID, Refusal, gate_for

HELP = N_("""Type one of:
  /customer <text>        the slash command, e.g. /customer jane.doe@example.com
  shortcut <message text> the "Look up customer" message shortcut on a message with that text
  mention <text>          @customer-context <text> in the current channel (answers in a thread)
  click <button>          click a button of the last card: Refresh, More events, Share, View details
  pick <number>           pick an identity on the last picker: pick 1 for its first button
  submit <reason>         submit the open Share modal with that reason
  paste [<url>]           paste a link in the current channel (Slack sends link_shared); without
                          a URL, the Experience Platform profile link of the last card's customer
  details                 open the flexpane of the last Work Object (a shared card, a mention
                          answer or an unfurl; needs BOT_WORK_OBJECTS=true) as the acting user
  home                    open the bot's App Home (your recent lookups, what you can see)
  find <text>             Find a customer: submit the search modal with that identity (the card
                          comes as a direct message)
  as <user id>            act as another demo user:
                          U0AGENT, U0SALES, U0MANAGER, U0BOTH, U0NOBODY, U0GUEST
  in <channel id>         move to another demo channel:
                          C0PUBLIC, C0PRIVATE, C0SUPPORT, C0CONNECT, D0MANAGER, G0MPIM, C0SECRET
  thread [<ts>]           act inside the thread of message <ts> (shortcut and mention messages
                          are replies in it; Slack sends no thread with a slash command);
                          without <ts>, back to the channel
  help, quit
Lines starting with # are comments.""")

BOT_TOKEN = "xoxb-console"  # noqa: S105 - the recorder accepts any token; nothing leaves the machine


class Console:
    """One console session: a recorder standing in for Slack, and the app under test."""

    def __init__(
        self,
        settings: Settings,
        *,
        user: str,
        channel: str,
        as_json: bool,
        out: TextIO,
        notes: TextIO | None = None,
        locale: str | None = None,
        tz: str | None = None,
        thread: str | None = None,
    ):
        self.base_settings = settings
        self.user = user
        self.channel = channel
        # The thread the console acts in (a message ts), or None: the channel itself.
        self.thread = thread
        self.as_json = as_json
        self.out = out
        self.locale = locale
        self.tz = tz
        # What the console itself says (not a Slack call): with --json stdout holds only the
        # JSON lines of Slack calls, so these go to `notes` (stderr); otherwise in line with them.
        self.notes = notes if notes is not None else (sys.stderr if as_json else out)
        workspace = demo_workspace()
        if (locale or tz) and user in workspace.users:
            # The acting demo user reads this Slack locale and time zone (users.info says so).
            current = workspace.users[user]
            workspace = with_reader(workspace, user, locale=locale or current.locale, tz=tz)
        self.recorder = SlackRecorder(workspace)
        self.secret = secrets.token_hex(16)
        self.last_card: RecordedCall | None = None
        # The last identity picker shown: its buttons, in order, for `pick N`.
        self.last_picker: tuple[RecordedCall, list[dict[str, Any]]] | None = None
        # The last Work Object the bot posted or unfurled, and the channel it is in.
        self.last_entity: tuple[dict[str, Any], str] | None = None
        self.last_view: dict[str, Any] | None = None

    async def __aenter__(self) -> Console:
        await self.recorder.start()
        settings = self.base_settings.model_copy(
            update={
                "slack_api_url": self.recorder.api_url,
                "slack_signing_secret": SecretStr(self.secret),
                "slack_bot_token": SecretStr(BOT_TOKEN),
            }
        )
        self.services = build_services(settings, slack=slack_client(settings, token=BOT_TOKEN))
        self.app = create_app(settings, self.services, process_before_response=True)
        self.gate = gate_for(settings, self.services)
        return self

    @property
    def reader(self) -> Reader:
        """The console's own language: --locale's, else the acting user's Slack locale."""
        user = self.recorder.workspace.users.get(self.user)
        locale = self.locale or (user.locale if user else None)
        return reader_for(locale, self.tz or (user.tz if user else None))

    def say(self, text: str) -> None:
        """A line of the console's own (a note, a hint, an echo): never on stdout with --json."""
        print(text, file=self.notes)
        self.notes.flush()

    async def __aexit__(self, *exc: object) -> None:
        await self.services.aclose()
        await self.recorder.close()

    async def dispatch(self, body: str) -> None:
        """Sign and dispatch one request, then print the ack and every Slack call it caused."""
        before = len(self.recorder.calls)
        headers: dict[str, str] = {
            "content-type": slack_payloads.content_type(body),
            **{k.lower(): v for k, v in slack_payloads.sign(body, secret=self.secret).items()},
        }
        # Through the same gate as HTTP mode: only a verified request gets answers.
        admitted = await self.gate.admit(body.encode(), headers)
        if isinstance(admitted, Refusal):
            response = BoltResponse(status=admitted.status, body=INVALID)
        else:
            response = await self.app.async_dispatch(admitted)
        outgoing: list[tuple[str, dict[str, Any]]] = []
        if response.body:
            try:
                ack_payload = json.loads(response.body)
            except ValueError:
                ack_payload = {"text": response.body}
            if ack_payload:
                outgoing.append(("ack", ack_payload))
        if response.status >= 400:
            outgoing.append(("error", {"status": response.status, "body": response.body}))
        for call in self.recorder.calls[before:]:
            if not self.as_json and call.method in {
                "auth.test",
                "users.info",
                "usergroups.list",
                "conversations.info",
                "conversations.members",
                "usergroups.users.list",
            }:
                continue  # lookups the bot makes, not answers to the person
            outgoing.append((call.method, call.payload))
            if call.payload.get("blocks") and any(
                b.get("type") == "actions" for b in call.payload["blocks"]
            ):
                self.last_card = call
                picker = _picker_buttons(call)
                if picker:
                    self.last_picker = (call, picker)
            entity = _work_object(call)
            if entity is not None:
                self.last_entity = (entity, str(call.payload.get("channel") or self.channel))
            if call.method in {"views.open", "views.update"} and "view" in call.payload:
                view = call.payload["view"]
                if isinstance(view, dict):
                    self.last_view = view
        for method, payload in outgoing:
            if self.as_json:
                print(
                    json.dumps({"method": method, "payload": payload}, ensure_ascii=False),
                    file=self.out,
                )
            else:
                print(render_text(method, payload), file=self.out)
        self.out.flush()
        if self.last_picker is not None and self.last_picker[0] in self.recorder.calls[before:]:
            self.say(
                self.reader.gettext(
                    "(To pick one, type pick and its number: pick 1 to pick %(last)s.)",
                    last=len(self.last_picker[1]),
                )
            )

    async def handle_line(self, line: str) -> bool:
        """Run one console line; False when the session should end. A leading prompt ("> ", as
        the README's tour shows each line) is not part of the line, so the tour can be pasted."""
        line = line.strip().removeprefix(">").strip()
        if not line or line.startswith("#"):
            return True
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        response_url = self.recorder.response_url()
        if word in {"quit", "exit"}:
            return False
        if word == "help":
            self.say(self.reader.gettext(HELP))
        elif word.startswith("/"):
            await self.dispatch(
                slack_payloads.slash_command(
                    text=rest,
                    user_id=self.user,
                    channel_id=self.channel,
                    response_url=response_url,
                    command=word,
                    trigger_id=f"trigger-{time.monotonic_ns()}",
                )
            )
        elif word == "shortcut":
            await self.dispatch(
                slack_payloads.message_shortcut(
                    message_text=rest,
                    user_id=self.user,
                    channel_id=self.channel,
                    response_url=response_url,
                    **self._message_place("message_ts"),
                )
            )
        elif word == "mention":
            await self.dispatch(
                slack_payloads.app_mention(
                    text=f"<@{BOT_USER_ID}> {rest}",
                    user_id=self.user,
                    channel_id=self.channel,
                    event_id=f"Ev{time.monotonic_ns()}",
                    **self._message_place("ts"),
                )
            )
        elif word == "click":
            await self.click(rest, response_url)
        elif word == "pick":
            await self.pick(rest, response_url)
        elif word == "submit":
            await self.submit(rest)
        elif word == "paste":
            await self.paste(rest)
        elif word == "details":
            await self.details()
        elif word == "home":
            await self.dispatch(
                slack_payloads.app_home_opened(
                    user_id=self.user, event_id=f"Ev{time.monotonic_ns()}"
                )
            )
        elif word == "find":
            await self.dispatch(
                slack_payloads.view_submission(
                    callback_id=ids.SEARCH_MODAL,
                    private_metadata="",
                    values={
                        ids.SEARCH_IDENTITY_BLOCK: {
                            ids.SEARCH_IDENTITY_INPUT: {"type": "plain_text_input", "value": rest}
                        }
                    },
                    user_id=self.user,
                )
            )
        elif word == "as" and rest:
            self.user = rest
            self.say(self.reader.gettext("(now acting as %(user)s)", user=rest))
        elif word == "in" and rest:
            self.channel = rest
            self.thread = None
            self.say(self.reader.gettext("(now in channel %(channel)s)", channel=rest))
        elif word == "thread":
            self.thread = rest or None
            if rest:
                self.say(
                    self.reader.gettext(
                        "(now in the thread %(thread)s of %(channel)s)",
                        thread=rest,
                        channel=self.channel,
                    )
                )
            else:
                self.say(self.reader.gettext("(now in channel %(channel)s)", channel=self.channel))
        else:
            self.say(self.reader.gettext("Not understood: %(line)s. Type help.", line=repr(line)))
        return True

    def _message_place(self, ts_name: str) -> dict[str, str]:
        """When the console acts inside a thread: a reply's own ts (as `ts_name`) and its
        `thread_ts`; else nothing (a message at the top of the channel)."""
        if self.thread is None:
            return {}
        try:
            ts = f"{int(float(self.thread)) + 1}.{time.monotonic_ns() % 1_000_000:06d}"
        except ValueError:
            ts = self.thread
        return {"thread_ts": self.thread, ts_name: ts}

    async def click(self, label: str, response_url: str) -> None:
        if self.last_card is None:
            self.say(self.reader.gettext("No card with buttons yet."))
            return
        for block in self.last_card.payload.get("blocks", []):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                text = (element.get("text") or {}).get("text", "")
                if text.lower() == label.lower() or element.get("action_id") == label:
                    await self._press(self.last_card, element, response_url)
                    return
        self.say(self.reader.gettext("The last card has no %(label)s button.", label=repr(label)))

    async def pick(self, number: str, response_url: str) -> None:
        """Click the identity picker's button `number` (1 for the first), as a person would."""
        if self.last_picker is None:
            self.say(
                self.reader.gettext(
                    "No picker yet: a shortcut on a message with several identities shows one."
                )
            )
            return
        call, buttons = self.last_picker
        if not number.isdigit() or not 1 <= int(number) <= len(buttons):
            self.say(
                self.reader.gettext(
                    "The picker has buttons 1 to %(last)s: type pick and one of those numbers.",
                    last=len(buttons),
                )
            )
            return
        await self._press(call, buttons[int(number) - 1], response_url)

    async def _press(self, card: RecordedCall, element: dict[str, Any], response_url: str) -> None:
        """Dispatch the click on one button of a message the bot sent."""
        await self.dispatch(
            slack_payloads.block_action(
                action_id=element["action_id"],
                value=element.get("value", ""),
                user_id=self.user,
                channel_id=str(card.payload.get("channel") or self.channel),
                response_url=response_url,
                is_ephemeral=card.method != "chat.postMessage",
                thread_ts=card.payload.get("thread_ts"),
            )
        )

    async def paste(self, url: str) -> None:
        """Post a message holding `url` in the current channel: Slack sends link_shared."""
        if not url:
            link = await self._last_profile_link()
            if link is None:
                self.say(
                    self.reader.gettext("No card yet: look a customer up first, or paste a URL.")
                )
                return
            url = link
            self.say(self.reader.gettext("(pasting %(url)s)", url=url))
        await self.dispatch(
            slack_payloads.link_shared(
                urls=[url],
                user_id=self.user,
                channel_id=self.channel,
                message_ts=f"{time.time():.6f}",
                event_id=f"Ev{time.monotonic_ns()}",
            )
        )

    async def details(self) -> None:
        """Open the flexpane of the last Work Object as the acting user."""
        if self.last_entity is None:
            self.say(
                self.reader.gettext(
                    "No Work Object yet: start the console with BOT_WORK_OBJECTS=true, then "
                    "share a card, mention the bot or paste a profile link."
                )
            )
            return
        entity, channel = self.last_entity
        await self.dispatch(
            slack_payloads.entity_details_requested(
                external_ref=dict(entity.get("external_ref") or {}),
                entity_url=str(entity.get("url") or ""),
                user_id=self.user,
                channel_id=channel,
                app_unfurl_url=entity.get("app_unfurl_url"),
                event_id=f"Ev{time.monotonic_ns()}",
            )
        )

    async def _last_profile_link(self) -> str | None:
        """The profile link of the last card's customer, from its button token."""
        if self.last_card is None:
            return None
        for block in self.last_card.payload.get("blocks", []):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                ref = await self.services.buttons.recall(str(element.get("value") or ""))
                if ref is not None:
                    customer = await self.services.lookup.lookup(ref)
                    return profile_link(self.services, customer.profile_id)
        return None

    async def submit(self, reason: str) -> None:
        view = self.last_view
        if view is None or not view.get("callback_id"):
            self.say(self.reader.gettext("No modal is open."))
            return
        values: dict[str, dict[str, dict[str, Any]]] = {}
        for block in view.get("blocks", []):
            if block.get("type") == "input":
                element = block["element"]
                values[block["block_id"]] = {
                    element["action_id"]: {"type": element["type"], "value": reason}
                }
        self.last_view = None
        await self.dispatch(
            slack_payloads.view_submission(
                callback_id=view["callback_id"],
                private_metadata=view.get("private_metadata", ""),
                values=values,
                user_id=self.user,
            )
        )


def _picker_buttons(call: RecordedCall) -> list[dict[str, Any]]:
    """The buttons of an identity picker, in order; none when the message is no picker."""
    return [
        element
        for block in call.payload.get("blocks", [])
        if block.get("type") == "actions" and block.get("block_id") == ids.PICKER_ACTIONS_BLOCK
        for element in block.get("elements", [])
        if ids.PICK_IDENTITY_ACTION.match(str(element.get("action_id", "")))
    ]


def _work_object(call: RecordedCall) -> dict[str, Any] | None:
    """The Work Object entity a recorded post or unfurl carries, if any."""
    metadata = call.payload.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    entities = metadata.get("entities") if isinstance(metadata, dict) else None
    if isinstance(entities, list) and entities and isinstance(entities[0], dict):
        return entities[0]
    return None


def _lines(stream: TextIO) -> Iterable[str]:
    yield from stream


async def console_main(
    settings: Settings,
    argv: Sequence[str],
    *,
    out: TextIO | None = None,
    notes: TextIO | None = None,
) -> int:
    """`python -m bot console [--json] [--as USER] [--channel C] [--thread TS] [--locale nl-NL]
    [--tz ZONE]`: a REPL on a TTY, else stdin, each line echoed before its answer. The Slack calls
    go to `out` (stdout); the console's own lines go there too, or with --json to `notes`
    (stderr)."""
    parser = argparse.ArgumentParser(
        prog="python -m bot console",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print only JSON on stdout: every outgoing Slack call as one line {"method": ..., '
        '"payload": ...}; the console\'s own notes go to stderr',
    )
    parser.add_argument("--as", dest="user", default="U0MANAGER", help="acting Slack user id")
    parser.add_argument("--channel", default="C0PRIVATE", help="Slack channel id")
    parser.add_argument(
        "--thread", metavar="TS", help="act inside the thread of the message with this ts"
    )
    parser.add_argument(
        "--locale",
        help="the acting user's Slack locale, e.g. nl-NL (default: the demo user's, en-US)",
    )
    parser.add_argument(
        "--tz", help="the acting user's Slack time zone, e.g. Europe/Amsterdam (IANA name)"
    )
    args = parser.parse_args(list(argv))
    if args.locale is not None and parse_locale(args.locale) is None:
        parser.error(f"--locale {args.locale!r}: no catalogue for it (try en-US, nl-NL, nl-BE)")
    if args.tz is not None and parse_zone(args.tz) is None:
        parser.error(f"--tz {args.tz!r} is not an IANA time zone such as Europe/Amsterdam")
    out = out or sys.stdout
    interactive = sys.stdin.isatty() and not args.json
    async with Console(
        settings,
        user=args.user,
        channel=args.channel,
        as_json=args.json,
        out=out,
        notes=notes,
        locale=args.locale,
        tz=args.tz,
        thread=args.thread,
    ) as console:
        if interactive:
            reader = console.reader
            console.say(
                reader.gettext(
                    "Customer bot console, answering from the demo sandbox (demo data). "
                    "Acting as %(user)s in %(channel)s. Type help.",
                    user=args.user,
                    channel=args.channel,
                )
                if console.services.demo
                else reader.gettext(
                    "Customer bot console, answering from your AEP organization. "
                    "Acting as %(user)s in %(channel)s. Type help.",
                    user=args.user,
                    channel=args.channel,
                )
            )
            while True:
                try:
                    line = await asyncio.to_thread(input, "> ")
                except EOFError:
                    break
                if not await console.handle_line(line):
                    break
        else:
            for line in _lines(sys.stdin):
                # A script's transcript shows what was typed above each answer, as the REPL does.
                if line.strip():
                    shown = line.strip().removeprefix(">").strip()
                    console.say(shown if shown.startswith("#") else f"> {shown}")
                if not await console.handle_line(line):
                    break
    return 0


def _plain(text: str) -> str:
    """What a person would read: Slack shows &lt; as <."""
    return html.unescape(text)


def render_text(method: str, payload: dict[str, Any]) -> str:
    """A terminal rendering of a Slack message or view, close to what Slack would show."""
    where = [f"channel {payload['channel']}"] if payload.get("channel") else []
    if payload.get("thread_ts"):
        where.append(f"thread {payload['thread_ts']}")
    lines = [f"--- {method}" + (f" ({', '.join(where)})" if where else "")]
    if method == "entity.presentDetails":
        return "\n".join([*lines, *_render_flexpane(payload)])
    unfurls = payload.get("unfurls")
    if method == "chat.unfurl" and isinstance(unfurls, dict):
        for url, unfurl in unfurls.items():
            lines.append(f"[unfurl] {url}")
            inner = render_text("card", unfurl if isinstance(unfurl, dict) else {})
            lines.extend(inner.splitlines()[1:])
        return "\n".join(lines)
    errors = payload.get("errors") if payload.get("response_action") == "errors" else None
    if isinstance(errors, dict):
        # A modal's answer that the input is wrong: Slack shows each under its input.
        return "\n".join([*lines, *(f"[error] {_plain(str(e))}" for e in errors.values())])
    view = payload.get("view") if isinstance(payload.get("view"), dict) else None
    if view:
        title = (view.get("title") or {}).get("text", "")
        lines.append(f"[modal] {title}")
        blocks = view.get("blocks", [])
    else:
        blocks = payload.get("blocks") or []
        if not blocks and payload.get("text"):
            lines.append(_plain(str(payload["text"])))
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {_plain(block['text']['text'])} ==")
        elif kind == "section":
            if block.get("text"):
                lines.append(_plain(block["text"]["text"]))
            for field in block.get("fields", []):
                lines.append("  " + _plain(field["text"]).replace("\n", " "))
        elif kind == "context":
            texts = [e.get("text", "") for e in block.get("elements", []) if "text" in e]
            lines.append("  (" + _plain(" · ".join(texts)) + ")")
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "actions":
            buttons = [
                f"[{(e.get('text') or {}).get('text', e.get('action_id'))}]"
                for e in block.get("elements", [])
            ]
            lines.append(" ".join(buttons))
        elif kind == "input":
            lines.append(f"<input> {block.get('label', {}).get('text', '')}")
    return "\n".join(lines)


def _render_flexpane(payload: dict[str, Any]) -> list[str]:
    """What the flexpane shows: the entity's title and fields, or the error's words."""
    error = payload.get("error")
    if isinstance(error, dict):
        title = error.get("custom_title") or error.get("status") or "error"
        return [
            f"[flexpane error] {_plain(str(title))}",
            _plain(str(error.get("custom_message", ""))),
        ]
    metadata = payload.get("metadata")
    entity = metadata.get("entity_payload", {}) if isinstance(metadata, dict) else {}
    title = (entity.get("attributes", {}).get("title") or {}).get("text", "")
    lines = [f"[flexpane] {_plain(str(title))}"]
    for field in entity.get("custom_fields", []):
        lines.append(f"  {_plain(str(field.get('label')))}: {_plain(str(field.get('value')))}")
    return lines
