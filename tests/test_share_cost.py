"""What a shared card costs in Slack API calls, with a cold and a warm role cache: the role and
audience lookups are cached, so a second share makes no directory calls at all."""

from __future__ import annotations

from collections import Counter

from tests.support import RunningBot, share

DIRECTORY_METHODS = {
    "users.info",
    "usergroups.list",
    "usergroups.users.list",
    "conversations.info",
    "conversations.members",
}


async def share_cost(bot: RunningBot, channel: str) -> Counter[str]:
    """Web API calls of one whole share: the private card, Share, the modal, the post."""
    bot.slack.clear()
    await share(bot, "U0MANAGER", channel)
    await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)  # the card, then "Shared in #channel"
    return Counter(c.method for c in bot.slack.calls if c.method != "response_url")


async def test_a_warm_role_cache_makes_a_share_cost_no_directory_calls(bot: RunningBot) -> None:
    cold = await share_cost(bot, "C0PRIVATE")
    warm = await share_cost(bot, "C0PRIVATE")
    print(f"\nshare into C0PRIVATE, cold: {dict(cold)}\nshare into C0PRIVATE, warm: {dict(warm)}")
    # Cold: who the sharer is, the user groups once, the channel and each member once.
    assert cold["usergroups.list"] == 1
    assert cold["conversations.info"] == 1
    assert cold["conversations.members"] == 1
    assert cold["users.info"] == 3  # U0MANAGER, U0AGENT and the bot user
    # Warm: only what the share itself is.
    assert {m: n for m, n in warm.items() if m in DIRECTORY_METHODS} == {}
    assert warm["views.open"] == 1
    assert warm["chat.postMessage"] == 1
