"""Every word in the asker's language and every time in their zone, end to end: signed Slack
requests to the running bot, whose users.info (the recording server) says each person's Slack
locale and time zone."""

from __future__ import annotations

import re

from bot import ids
from bot.demo import payloads as slack_payloads
from bot.demo.workspace import with_reader
from tests.support import RunningBot, all_text, button, command, settle, submit_share

SANNE = "sanne.de.vries@example.nl"
#: Slack's date token: every reader's Slack shows it in their own zone and language.
TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^|<>]+ UTC>")


def speak(bot: RunningBot, user: str, locale: str, tz: str) -> None:
    bot.slack.workspace = with_reader(bot.slack.workspace, user, locale=locale, tz=tz)


async def test_a_dutch_user_in_amsterdam_gets_a_dutch_card_with_amsterdam_times(
    bot: RunningBot,
) -> None:
    speak(bot, "U0MANAGER", "nl-NL", "Europe/Amsterdam")
    await bot.send(command(bot, SANNE))
    [card] = await bot.slack.wait_for("response_url")
    text = all_text(card)
    assert "Recente evenementen" in text and "Klantwaarde" in text
    assert re.search(r"\*Loyaliteitspunten\*\\n\d{1,3}\.\d{3}", text)  # 11.906
    assert re.search(r"US\$\\u00a0[\d.]+,\d\d|US\$\xa0[\d.]+,\d\d", text)  # US$ 7.754,75
    assert re.search(r"\d{1,2} [a-z]{3} \d{4}, \d\d:\d\d CES?T", text)  # 11 okt 2025, 02:00 CEST
    assert "geleden" in text
    assert "Vernieuwen" in text and "Delen" in text
    # users.info was asked for the locale, as Slack documents (it is left out otherwise).
    infos = bot.slack.calls_to("users.info")
    assert infos and all(c.payload.get("include_locale") in (True, "1", "true") for c in infos)


async def test_an_english_user_in_new_york_gets_the_same_customer_in_english(
    bot: RunningBot,
) -> None:
    speak(bot, "U0MANAGER", "en-US", "America/New_York")
    await bot.send(command(bot, SANNE))
    [card] = await bot.slack.wait_for("response_url")
    text = all_text(card)
    assert "Recent events" in text and "Lifetime value" in text
    assert re.search(r"\*Loyalty points\*\\n\d{1,3},\d{3}", text)  # 11,906
    assert re.search(r"\$[\d,]+\.\d\d", text)
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d\s[AP]M E[DS]T", text)
    assert "geleden" not in text and "Recente" not in text


async def test_an_unsupported_locale_reads_the_default_language(bot: RunningBot) -> None:
    speak(bot, "U0MANAGER", "ja-JP", "Asia/Tokyo")
    await bot.send(command(bot, SANNE))
    [card] = await bot.slack.wait_for("response_url")
    text = all_text(card)
    assert "Recent events" in text
    assert re.search(r"\d{1,2}:\d\d\s[AP]M \+0900", text)  # the zone still counts


async def test_a_shared_card_speaks_the_sharers_language_and_gives_times_as_date_tokens(
    bot: RunningBot,
) -> None:
    speak(bot, "U0MANAGER", "nl-BE", "Europe/Brussels")
    await bot.send(command(bot, SANNE, channel="C0PRIVATE"))
    [card] = await bot.slack.wait_for("response_url")
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.SHARE,
            value=button(card, ids.SHARE)["value"],
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
            thread_ts="1700000000.000001",
        )
    )
    [opened] = await bot.slack.wait_for("views.open")
    assert "Plaatsen in een thread in #escalations?" in all_text(opened)
    await submit_share(bot, opened.payload["view"], "U0MANAGER", "escalatie")
    [posted] = await bot.slack.wait_for("chat.postMessage")
    text = all_text(posted)
    assert "Gedeeld door <@U0MANAGER>" in text and "Details bekijken" in text
    assert TOKEN.search(text), text
    assert "CET" not in text and "geleden" not in text


# --- what main added since: the App Home, the search modal, Work Objects and unfurls ----------


async def test_a_dutch_users_home_is_in_dutch(bot: RunningBot) -> None:
    speak(bot, "U0AGENT", "nl-NL", "Europe/Amsterdam")
    await bot.send(command(bot, SANNE, user="U0AGENT", channel="C0SUPPORT"))
    await bot.slack.wait_for("response_url")
    await bot.send(slack_payloads.app_home_opened(user_id="U0AGENT"))
    [published] = await bot.slack.wait_for("views.publish")
    text = all_text(published)
    assert "Je recente zoekopdrachten" in text and "Klant zoeken" in text
    assert "Wat je kunt zien" in text and "Je ziet:" in text
    assert "E-mail `sanne.de.vries@example.nl`\\nzojuist, met /customer of de snelkoppeling" in text
    assert "@sales: rol sales, voegt scores en financiële gegevens toe" in text
    assert "Your recent lookups" not in text and "Look up" not in text


async def test_the_search_modal_turns_dutch_and_its_inline_errors_are_dutch(
    bot: RunningBot,
) -> None:
    speak(bot, "U0AGENT", "nl-NL", "Europe/Amsterdam")
    body = slack_payloads.global_shortcut(callback_id=ids.FIND_SHORTCUT, user_id="U0AGENT")
    assert (await bot.send(body)).status_code == 200
    # Opened at once in the default language (the trigger lives 3 s), then made Dutch in place.
    [opened] = await bot.slack.wait_for("views.open")
    assert "Find a customer" in all_text(opened)
    [updated] = await bot.slack.wait_for("views.update")
    assert updated.response["ok"], updated.response
    assert updated.payload["view_id"] == opened.response["view"]["id"]
    view = updated.payload["view"]
    assert "Klant zoeken" in all_text(updated) and "Opzoeken" in all_text(updated)

    values = {
        ids.SEARCH_IDENTITY_BLOCK: {
            ids.SEARCH_IDENTITY_INPUT: {"type": "plain_text_input", "value": "+14155550123"}
        },
        ids.SEARCH_NAMESPACE_BLOCK: {
            ids.SEARCH_NAMESPACE_INPUT: {
                "type": "static_select",
                "selected_option": {"value": "email"},
            }
        },
    }
    submitted = slack_payloads.view_submission(
        callback_id=ids.SEARCH_MODAL,
        private_metadata=view["private_metadata"],
        values=values,
        user_id="U0AGENT",
    )
    answer = (await bot.send(submitted)).json()
    words = answer["errors"][ids.SEARCH_IDENTITY_BLOCK]
    assert words.startswith("Dat lijkt niet op een e-mailadres."), words


async def test_an_english_search_modal_is_not_opened_twice(bot: RunningBot) -> None:
    body = slack_payloads.global_shortcut(callback_id=ids.FIND_SHORTCUT, user_id="U0AGENT")
    assert (await bot.send(body)).status_code == 200
    await bot.slack.wait_for("views.open")
    await settle(0.2)
    assert bot.slack.calls_to("views.update") == []


# --- refusals in the reader's language: the policy's reasons too -----------------------------

#: The policy's own English words: none may be left in a Dutch refusal.
POLICY_ENGLISH = re.compile(
    r"\b(Slack Connect (public|private) channel|people from other organizations|customer data"
    r"|conversation|Ask for the card|may share|Only role|capped at|cannot see who)\b"
)


async def test_a_dutch_mention_refused_in_a_slack_connect_channel_says_why_in_dutch(
    bot: RunningBot,
) -> None:
    speak(bot, "U0MANAGER", "nl-NL", "Europe/Amsterdam")
    body = slack_payloads.app_mention(
        text=f"<@{slack_payloads.BOT_USER_ID}> {SANNE}", user_id="U0MANAGER", channel_id="C0CONNECT"
    )
    assert (await bot.send(body)).status_code == 200
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    text = all_text(told)
    assert (
        "Klantprofielen kunnen hier niet worden getoond. Dit is een Slack Connect-openbaar kanaal, "
        "dus mensen van andere organisaties kunnen het lezen"
    ) in text, text
    assert not POLICY_ENGLISH.search(text), POLICY_ENGLISH.search(text)


async def share_refusal(bot: RunningBot, user: str, channel: str) -> str:
    """What `user` is told when sharing Sanne's card into `channel` is refused: the card offers
    no Share there, and a forged click is refused on the click, before any modal."""
    await bot.send(command(bot, SANNE, user=user, channel=channel))
    [card] = await bot.slack.wait_for("response_url")
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.SHARE,
            value=button(card, ids.REFRESH)["value"],
            user_id=user,
            channel_id=channel,
            response_url=bot.slack.response_url(),
        )
    )
    told = await bot.slack.wait_for("response_url", count=2)
    assert bot.slack.calls_to("views.open") == []
    return all_text(told[-1])


async def test_a_dutch_share_refused_by_the_policy_says_why_in_dutch(bot: RunningBot) -> None:
    speak(bot, "U0MANAGER", "nl-NL", "Europe/Amsterdam")
    text = await share_refusal(bot, "U0MANAGER", "C0SECRET")
    assert "De bot zit niet in dit gesprek" in text, text
    assert "Nodig de bot uit met /invite" in text and "channel_not_found" not in text
    assert not POLICY_ENGLISH.search(text), POLICY_ENGLISH.search(text)
