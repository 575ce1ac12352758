"""What one App Home open costs in Slack API calls, with a cold and a warm role cache: the
person's roles are cached, so opening the Home again costs one views.publish and nothing else."""

from __future__ import annotations

from collections import Counter

from bot.demo import payloads as slack_payloads
from tests.support import RunningBot


async def home_cost(bot: RunningBot, user: str) -> Counter[str]:
    """Web API calls of one Home open."""
    bot.slack.clear()
    response = await bot.send(slack_payloads.app_home_opened(user_id=user))
    assert response.status_code == 200
    await bot.slack.wait_for("views.publish")
    return Counter(c.method for c in bot.slack.calls)


async def test_a_warm_home_open_costs_one_views_publish(bot: RunningBot) -> None:
    cold = await home_cost(bot, "U0AGENT")
    warm = await home_cost(bot, "U0AGENT")
    print(f"\nHome open, cold: {dict(cold)}\nHome open, warm: {dict(warm)}")

    # Cold: Bolt's auth.test, who the person is and the user groups, then the Home.
    assert cold == Counter(
        {"auth.test": 1, "users.info": 1, "usergroups.list": 1, "views.publish": 1}
    )
    assert warm == Counter({"views.publish": 1})
