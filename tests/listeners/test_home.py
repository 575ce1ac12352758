"""The App Home and the search modal, end to end through signed requests: the Home of every demo
role, recent lookups recorded and replayed with the grants of the moment, Clear my history, the
find_customer shortcut, inline validation and cards sent as direct messages."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.models.views import View

from bot import ids
from bot.blockkit import HOME_BLOCKS, check_view
from bot.console import Console
from bot.demo import payloads as slack_payloads
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.demo.workspace import with_reader
from bot.history import HISTORY_SIZE
from bot.identity import IdentityRef
from bot.listeners.home import HomeHandlers
from bot.services import Services
from bot.settings import load_settings
from tests.support import JANE, RunningBot, command, logged, running_bot, settle, start_bot


def parsed(view: dict[str, Any]) -> dict[str, Any]:
    """`view` as Slack would take it: read by slack_sdk's models and within Block Kit's limits."""
    View(**view).validate_json()
    check_view(view)
    return view


async def open_home(bot: RunningBot, user: str) -> dict[str, Any]:
    """Open the Home tab as `user`; the view the bot published."""
    before = len(bot.slack.calls_to("views.publish"))
    response = await bot.send(slack_payloads.app_home_opened(user_id=user))
    assert response.status_code == 200
    calls = await bot.slack.wait_for("views.publish", count=before + 1)
    assert calls[-1].payload["user_id"] == user
    return parsed(calls[-1].payload["view"])


def elements(view: dict[str, Any], action_id: str) -> list[dict[str, Any]]:
    """Every button `action_id` in a view: in actions blocks and as section accessories."""
    found = []
    for block in view["blocks"]:
        candidates = [*block.get("elements", []), block.get("accessory") or {}]
        found += [e for e in candidates if e.get("action_id") == action_id]
    return found


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


async def click_home(bot: RunningBot, action_id: str, value: str, user: str) -> None:
    """A click on a Home button: container type view, no channel, no response_url."""
    body = slack_payloads.block_action(
        action_id=action_id,
        value=value,
        user_id=user,
        channel_id=None,
        response_url=None,
        container_type="view",
        block_id=ids.HOME_ACTIONS_BLOCK,
    )
    assert (await bot.send(body)).status_code == 200


def search_body(user: str, text: str, kind: str | None = None) -> str:
    """A signed-to-be submission of the search modal."""
    values: dict[str, dict[str, dict[str, Any]]] = {
        ids.SEARCH_IDENTITY_BLOCK: {
            ids.SEARCH_IDENTITY_INPUT: {"type": "plain_text_input", "value": text}
        }
    }
    if kind is not None:
        option = {"text": {"type": "plain_text", "text": kind}, "value": kind}
        values[ids.SEARCH_NAMESPACE_BLOCK] = {
            ids.SEARCH_NAMESPACE_INPUT: {"type": "static_select", "selected_option": option}
        }
    return slack_payloads.view_submission(
        callback_id=ids.SEARCH_MODAL, private_metadata="", values=values, user_id=user
    )


async def look_up(bot: RunningBot, text: str, user: str) -> RecordedCall:
    """/customer `text` as `user`; the card (or words) answered."""
    before = len(bot.slack.calls_to("response_url"))
    response = await bot.send(command(bot, text, user=user, channel="C0SUPPORT"))
    assert response.status_code == 200
    return (await bot.slack.wait_for("response_url", count=before + 1))[-1]


async def direct_message(bot: RunningBot, count: int = 1) -> RecordedCall:
    """The `count`th message the bot posted, checked to be in its DM opened for the person."""
    posted = (await bot.slack.wait_for("chat.postMessage", count=count))[count - 1]
    opened = bot.slack.calls_to("conversations.open")
    assert opened, "a direct message is posted into the DM conversations.open names"
    assert posted.payload["channel"].startswith("D")
    return posted


@pytest.mark.parametrize("user", ["U0AGENT", "U0SALES", "U0MANAGER", "U0BOTH"])
async def test_the_home_of_each_demo_role_offers_the_search_and_says_what_it_sees(
    bot: RunningBot, user: str
) -> None:
    view = await open_home(bot, user)

    assert view["type"] == "home" and len(view["blocks"]) <= HOME_BLOCKS
    assert elements(view, ids.HOME_FIND)
    text = text_of(view)
    assert "Your recent lookups" in text and "None yet" in text
    assert "What you can see" in text and "Your roles:" in text
    assert "Demo data" in text


async def test_the_home_names_the_groups_that_grant_more(bot: RunningBot) -> None:
    text = text_of(await open_home(bot, "U0AGENT"))

    assert "Groups that grant more" in text
    assert "@cs-managers" in text


@pytest.mark.parametrize("user", ["U0NOBODY", "U0GUEST"])
async def test_people_without_grants_are_told_how_to_get_access_and_shown_no_history(
    bot: RunningBot, user: str
) -> None:
    view = await open_home(bot, user)

    text = text_of(view)
    assert "You don't have access to customer profiles" in text
    assert not elements(view, ids.HOME_FIND)
    assert "recent lookups" not in text


async def test_opening_the_messages_tab_publishes_nothing(bot: RunningBot) -> None:
    await bot.send(slack_payloads.app_home_opened(user_id="U0AGENT", tab="messages"))
    await settle()

    assert bot.slack.calls_to("views.publish") == []


async def test_a_lookup_is_listed_on_the_home_and_replays_as_a_direct_message(
    bot: RunningBot,
) -> None:
    await look_up(bot, JANE, "U0AGENT")
    view = await open_home(bot, "U0AGENT")
    [entry] = elements(view, ids.HOME_REPLAY)
    assert JANE in text_of(view) and "with /customer" in text_of(view)
    assert JANE not in entry["value"]

    await click_home(bot, ids.HOME_REPLAY, entry["value"], "U0AGENT")
    card = await direct_message(bot)

    assert card.payload["text"].startswith("Customer profile: Jane Doe")
    replay = bot.audit()[-1]
    assert (replay["action"], replay["surface"], replay["outcome"]) == ("lookup", "home", "shown")
    # The Home is published again, the replay first.
    republished = (await bot.slack.wait_for("views.publish", count=2))[-1].payload["view"]
    assert "again from this Home" in text_of(parsed(republished))


async def test_history_keeps_the_newest_lookups_newest_first(bot: RunningBot) -> None:
    history = bot.services.history
    refs = [IdentityRef("crmid", f"CRM-{n:06d}") for n in range(HISTORY_SIZE + 2)]
    for ref in refs:
        await history.record("T0DEMO", "U0AGENT", ref, surface="private")
    await history.record("T0DEMO", "U0AGENT", refs[5], surface="home")

    entries = await history.recent("T0DEMO", "U0AGENT")

    # A lookup asked again moves up instead of being listed twice; the oldest fall off.
    newest_first = [refs[5], *(ref for ref in reversed(refs) if ref != refs[5])]
    assert [e.ref for e in entries] == newest_first[:HISTORY_SIZE]
    assert await history.recent("T0DEMO", "U0SALES") == []


async def test_a_replay_clicked_by_someone_else_finds_nothing(bot: RunningBot) -> None:
    await look_up(bot, JANE, "U0AGENT")
    [entry] = elements(await open_home(bot, "U0AGENT"), ids.HOME_REPLAY)

    await click_home(bot, ids.HOME_REPLAY, entry["value"], "U0SALES")
    message = await direct_message(bot)

    assert "no longer in your history" in message.payload["text"]
    assert "Jane" not in json.dumps(message.payload)


@pytest.fixture
async def short_roles_bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The bot with roles cached for a moment only, so a role removed in Slack counts at once."""
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_cache_slack_ttl=0.05) as running:
        yield running


async def test_a_replay_after_the_role_was_removed_shows_nothing(
    short_roles_bot: RunningBot,
) -> None:
    bot = short_roles_bot
    await look_up(bot, JANE, "U0AGENT")
    [entry] = elements(await open_home(bot, "U0AGENT"), ids.HOME_REPLAY)
    # U0AGENT leaves @support-team in Slack.
    groups: dict[str, Any] = bot.slack.workspace.usergroups  # type: ignore[assignment]
    group_id, members = groups["support-team"]
    groups["support-team"] = (group_id, tuple(m for m in members if m != "U0AGENT"))
    await settle(0.1)  # the cached role expires

    await click_home(bot, ids.HOME_REPLAY, entry["value"], "U0AGENT")
    message = await direct_message(bot)

    assert "You don't have access to customer profiles" in message.payload["text"]
    assert "Jane" not in json.dumps(message.payload)
    assert bot.audit()[-1]["outcome"] == "no_grants:lookup"
    home = (await bot.slack.wait_for("views.publish", count=2))[-1].payload["view"]
    assert not elements(home, ids.HOME_REPLAY) and JANE not in text_of(home)


async def test_clear_my_history_empties_it(bot: RunningBot) -> None:
    await look_up(bot, JANE, "U0AGENT")
    assert elements(await open_home(bot, "U0AGENT"), ids.HOME_CLEAR)

    await click_home(bot, ids.HOME_CLEAR, "clear", "U0AGENT")
    home = (await bot.slack.wait_for("views.publish", count=2))[-1].payload["view"]

    assert not elements(parsed(home), ids.HOME_REPLAY)
    assert "None yet" in text_of(home)
    assert await bot.services.history.recent("T0DEMO", "U0AGENT") == []
    cleared = bot.audit()[-1]
    assert (cleared["action"], cleared["outcome"], cleared["surface"]) == (
        "clear_history",
        "cleared",
        "home",
    )


async def test_the_home_is_published_again_after_a_lookup_only_when_it_was_opened_recently(
    bot: RunningBot,
) -> None:
    await look_up(bot, JANE, "U0MANAGER")
    await settle()
    assert bot.slack.calls_to("views.publish") == []

    await open_home(bot, "U0MANAGER")
    await look_up(bot, "CRM-000123", "U0MANAGER")
    [_, after] = await bot.slack.wait_for("views.publish", count=2)

    assert "CRM-000123" in text_of(after.payload["view"])


async def test_with_history_off_nothing_is_recorded(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    bot, runner = await start_bot(sim, aep_url, slack, tmp_path, bot_history_ttl=0)
    try:
        await look_up(bot, JANE, "U0AGENT")
        view = await open_home(bot, "U0AGENT")
        assert not elements(view, ids.HOME_REPLAY)
        assert "keeps no history" in text_of(view)
    finally:
        await bot.http.aclose()
        await runner.cleanup()
        await bot.services.aclose()


async def test_the_find_customer_shortcut_opens_the_search_modal(bot: RunningBot) -> None:
    body = slack_payloads.global_shortcut(callback_id=ids.FIND_SHORTCUT, user_id="U0AGENT")
    assert (await bot.send(body)).status_code == 200

    [opened] = await bot.slack.wait_for("views.open")
    view = parsed(opened.payload["view"])
    assert view["callback_id"] == ids.SEARCH_MODAL
    assert [b["block_id"] for b in view["blocks"]] == [
        ids.SEARCH_IDENTITY_BLOCK,
        ids.SEARCH_NAMESPACE_BLOCK,
    ]


async def test_the_homes_find_button_opens_the_search_modal(bot: RunningBot) -> None:
    await click_home(bot, ids.HOME_FIND, "find", "U0AGENT")

    [opened] = await bot.slack.wait_for("views.open")
    assert parsed(opened.payload["view"])["callback_id"] == ids.SEARCH_MODAL


@pytest.mark.parametrize(
    ("text", "kind", "words"),
    [
        ("", None, "Type an email address"),
        ("nonsense", None, "not an identity the bot can read"),
        ("jane.doe@example.com CRM-000123", None, "more than one identity"),
        ("j\u0430ne@example.com", None, "Not looked up"),  # a Cyrillic a
        ("+14155550123", "email", "does not read as an email address"),
        ("CRM-000123", "other", "namespace:value"),
    ],
)
async def test_an_invalid_search_is_shown_inline_and_looks_nothing_up(
    bot: RunningBot, text: str, kind: str | None, words: str
) -> None:
    response = await bot.send(search_body("U0AGENT", text, kind))

    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert words in answer["errors"][ids.SEARCH_IDENTITY_BLOCK]
    await settle()
    assert bot.slack.calls_to("conversations.open") == []
    assert bot.sim.stats["profile"] == 0


@pytest.mark.parametrize(
    ("text", "kind"),
    [("CRM-000123", None), ("CRM-000123", "crm"), ("jane.doe@example.com", "email")],
)
async def test_a_valid_search_closes_the_modal_and_sends_the_card_as_a_direct_message(
    bot: RunningBot, text: str, kind: str | None
) -> None:
    response = await bot.send(search_body("U0MANAGER", text, kind))

    assert response.status_code == 200 and not response.content
    card = await direct_message(bot)
    assert card.payload["channel"] == "D0MANAGER"
    assert card.payload["text"].startswith("Customer profile: Jane Doe")
    record = bot.audit()[-1]
    assert (record["action"], record["surface"], record["outcome"]) == ("lookup", "search", "shown")


async def test_a_search_for_an_unknown_customer_says_so_in_the_direct_message(
    bot: RunningBot,
) -> None:
    await bot.send(search_body("U0AGENT", "nobody.here@example.com"))

    message = await direct_message(bot)
    assert "No customer profile found" in message.payload["text"]
    assert await bot.services.history.recent("T0DEMO", "U0AGENT") == []


DM_FAILED = "could not be sent to you as a direct message"
UNOPENED = "The search window could not be opened"
TODO = "If it keeps failing, use /customer in any conversation"


async def home_notice(bot: RunningBot, user: str) -> str:
    """The text of the Home published for `user` after a failure: its notice block first."""
    [published] = await bot.slack.wait_for("views.publish")
    assert published.payload["user_id"] == user
    view = parsed(published.payload["view"])
    [notice] = [b for b in view["blocks"] if ":warning:" in json.dumps(b)]
    assert view["blocks"].index(notice) <= 2, "the notice is at the top of the Home"
    return str(notice["text"]["text"])


@pytest.mark.parametrize(
    ("method", "error", "why"),
    [
        ("conversations.open", "user_disabled", "Slack refused it (user disabled). Try again"),
        ("chat.postMessage", "msg_too_long", "The card was too large for Slack"),
        ("chat.postMessage", "ratelimited", "Slack is busy right now"),
    ],
)
async def test_a_search_whose_direct_message_fails_says_so_on_the_home(
    bot: RunningBot, method: str, error: str, why: str
) -> None:
    if error == "ratelimited":
        bot.slack.fail_next(method, error=error, status=429, retry_after=30)
    else:
        bot.slack.fail_next(method, error=error)

    response = await bot.send(search_body("U0MANAGER", "CRM-000123"))

    assert response.status_code == 200 and not response.content
    text = await home_notice(bot, "U0MANAGER")
    assert DM_FAILED in text and why in text and TODO in text
    assert "Jane" not in text and "CRM-000123" not in text and error not in text
    # The card was made, so the lookup is audited as today.
    record = bot.audit()[-1]
    assert (record["action"], record["surface"], record["outcome"]) == ("lookup", "search", "shown")


async def test_a_replay_whose_direct_message_fails_says_so_on_the_home(bot: RunningBot) -> None:
    await look_up(bot, JANE, "U0AGENT")
    [entry] = elements(await open_home(bot, "U0AGENT"), ids.HOME_REPLAY)
    bot.slack.fail_next("conversations.open", error="cannot_dm_bot")

    await click_home(bot, ids.HOME_REPLAY, entry["value"], "U0AGENT")

    republished = (await bot.slack.wait_for("views.publish", count=2))[-1].payload
    text = text_of(parsed(republished["view"]))
    assert DM_FAILED in text and "cannot dm bot" in text and TODO in text
    assert bot.slack.calls_to("chat.postMessage") == []
    # The history entry is still there to try again.
    assert elements(republished["view"], ids.HOME_REPLAY)
    await settle()
    assert len(bot.slack.calls_to("views.publish")) == 2


async def test_a_find_button_whose_window_does_not_open_says_so_on_the_home(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("views.open", error="expired_trigger_id")

    await click_home(bot, ids.HOME_FIND, "find", "U0AGENT")

    text = await home_notice(bot, "U0AGENT")
    assert UNOPENED in text and "expired trigger id" in text and TODO in text


async def test_a_find_shortcut_whose_window_does_not_open_says_so_on_the_home_in_dutch(
    bot: RunningBot,
) -> None:
    bot.slack.workspace = with_reader(
        bot.slack.workspace, "U0AGENT", locale="nl-NL", tz="Europe/Amsterdam"
    )
    bot.slack.fail_next("views.open", error="ratelimited", status=429, retry_after=30)
    body = slack_payloads.global_shortcut(callback_id=ids.FIND_SHORTCUT, user_id="U0AGENT")

    assert (await bot.send(body)).status_code == 200

    text = await home_notice(bot, "U0AGENT")
    assert "Het zoekvenster kon niet worden geopend" in text and "Slack is nu druk" in text
    assert "Blijft het mislukken, gebruik dan /customer" in text


async def test_the_console_shows_the_home_and_finds_through_the_search_modal() -> None:
    out = io.StringIO()
    settings = load_settings(_env_file=None)
    async with Console(settings, user="U0AGENT", channel="C0SUPPORT", as_json=True, out=out) as c:
        await c.handle_line("find CRM-000123")
        await c.handle_line("find nonsense")
        await c.handle_line("home")
    sent = [json.loads(line) for line in out.getvalue().splitlines()]
    methods = [line["method"] for line in sent]

    assert methods.index("conversations.open") < methods.index("chat.postMessage")
    [errors] = [line["payload"] for line in sent if line["method"] == "ack"]
    assert errors["response_action"] == "errors"
    [home] = [line["payload"]["view"] for line in sent if line["method"] == "views.publish"]
    assert "CRM-000123" in text_of(parsed(home))


# --- Issue 15 (mutation testing): what the listeners' edges show and log ----------------------

EMPTY_SEARCH = "Type an email address, a phone number, a CRM id, an ECID or namespace:value."


@pytest.mark.parametrize("typed", ["", None])
async def test_an_empty_search_box_asks_for_an_identity_not_for_a_readable_one(
    bot: RunningBot, typed: str | None
) -> None:
    """Slack sends an input left empty as `"value": null`: the same words as an empty text."""
    typed_in = {"type": "plain_text_input", "value": typed}
    values = {ids.SEARCH_IDENTITY_BLOCK: {ids.SEARCH_IDENTITY_INPUT: typed_in}}
    body = slack_payloads.view_submission(
        callback_id=ids.SEARCH_MODAL, private_metadata="", values=values, user_id="U0AGENT"
    )
    response = await bot.send(body)

    assert response.json()["errors"] == {ids.SEARCH_IDENTITY_BLOCK: EMPTY_SEARCH}


async def dutch_shortcut(bot: RunningBot) -> None:
    """U0AGENT, who reads Dutch, uses the find_customer shortcut."""
    bot.slack.workspace = with_reader(
        bot.slack.workspace, "U0AGENT", locale="nl-NL", tz="Europe/Amsterdam"
    )
    body = slack_payloads.global_shortcut(callback_id=ids.FIND_SHORTCUT, user_id="U0AGENT")
    assert (await bot.send(body)).status_code == 200


async def test_the_search_modal_is_put_into_the_openers_language_only_if_nobody_changed_it(
    bot: RunningBot,
) -> None:
    await dutch_shortcut(bot)

    [opened] = await bot.slack.wait_for("views.open")
    [updated] = await bot.slack.wait_for("views.update")
    # The hash of the modal as opened: Slack refuses the update if the modal changed since.
    assert updated.payload["view_id"] == opened.response["view"]["id"]
    assert updated.payload["hash"] == opened.response["view"]["hash"]


async def test_a_modal_left_in_the_default_language_is_logged_with_slacks_code(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.slack.fail_next("views.update", error="not_found")

    await dutch_shortcut(bot)

    await bot.slack.wait_for("views.update")
    assert await logged(caplog, "bot.listeners.home") == [
        "could not show the search modal in the opener's language: not_found"
    ]
    # The modal is open and usable: nothing is said on the Home.
    assert bot.slack.calls_to("views.publish") == []


async def test_a_search_window_that_does_not_open_is_logged_with_slacks_code(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.slack.fail_next("views.open", error="expired_trigger_id")

    await click_home(bot, ids.HOME_FIND, "find", "U0AGENT")

    await bot.slack.wait_for("views.publish")
    assert await logged(caplog, "bot.listeners.home") == [
        "could not open the search modal: expired_trigger_id"
    ]


async def test_a_search_refreshes_the_home_its_searcher_has_open(bot: RunningBot) -> None:
    await open_home(bot, "U0MANAGER")

    await bot.send(search_body("U0MANAGER", "CRM-000123"))

    [_, after] = await bot.slack.wait_for("views.publish", count=2)
    assert after.payload["user_id"] == "U0MANAGER"
    assert "CRM-000123" in text_of(parsed(after.payload["view"]))


class Acks:
    """A recording `ack`."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


async def test_a_search_submitted_without_a_user_is_refused_and_logged(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    ack = Acks()
    values = {ids.SEARCH_IDENTITY_BLOCK: {ids.SEARCH_IDENTITY_INPUT: {"value": "CRM-000123"}}}

    await HomeHandlers(services).search_submitted(
        ack, {"type": "view_submission"}, {"state": {"values": values}}
    )

    assert ack.calls == [{}]  # the modal closes
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.home"]
    assert messages == ["search submission without a user refused"]


@pytest.mark.parametrize("button", ["replay_clicked", "clear_clicked"])
async def test_a_home_click_without_a_user_is_refused_and_logged(
    services: Services, caplog: pytest.LogCaptureFixture, button: str
) -> None:
    ack = Acks()
    body = {"type": "block_actions", "actions": [{"value": "entry"}]}

    await getattr(HomeHandlers(services), button)(ack, body)

    assert ack.calls == [{}]
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.home"]
    assert messages == ["Home click without a user refused"]


async def test_a_home_opened_by_no_one_publishes_nothing(bot: RunningBot) -> None:
    await bot.send(slack_payloads.app_home_opened(user_id=""))
    await settle(0.1)

    assert [c.method for c in bot.slack.calls if c.method != "auth.test"] == []


async def test_a_home_opened_without_a_team_counts_as_open_for_the_next_lookups_refresh(
    bot: RunningBot,
) -> None:
    """refresh_home reads a Home opened by someone Slack named no team for under team ""."""
    event = {"type": "app_home_opened", "tab": "home", "user": "U0MANAGER"}

    await HomeHandlers(bot.services).home_opened(event, AsyncBoltContext())

    [published] = bot.slack.calls_to("views.publish")
    assert published.payload["user_id"] == "U0MANAGER"
    assert await bot.services.history.home_open_recently("", "U0MANAGER")
