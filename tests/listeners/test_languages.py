"""Every word in the asker's language and every time in their zone, end to end: signed Slack
requests to the running bot, whose users.info (the recording server) says each person's Slack
locale and time zone."""

from __future__ import annotations

import re

from bot import ids
from bot.demo import payloads as slack_payloads
from bot.demo.workspace import with_reader
from tests.support import RunningBot, all_text, button, command, submit_share

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
    assert "Dit klantprofiel in deze thread delen?" in all_text(opened)
    await submit_share(bot, opened.payload["view"], "U0MANAGER", "escalatie")
    [posted] = await bot.slack.wait_for("chat.postMessage")
    text = all_text(posted)
    assert "Gedeeld door <@U0MANAGER>" in text and "Details bekijken" in text
    assert TOKEN.search(text), text
    assert "CET" not in text and "geleden" not in text
