"""The recording Slack Web API answers like Slack from the demo workspace and records each call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.demo.slack import SlackRecorder
from bot.demo.workspace import BOT_ID, BOT_USER_ID, TEAM_ID, demo_workspace

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Jane Doe*"}}


@pytest.fixture
async def recorder() -> AsyncIterator[SlackRecorder]:
    async with SlackRecorder() as started:
        yield started


@pytest.fixture
def client(recorder: SlackRecorder) -> AsyncWebClient:
    return AsyncWebClient(base_url=recorder.api_url, token="xoxb-test")


async def _error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call  # type: ignore[misc]
    return str(caught.value.response["error"])


async def test_auth_test_names_the_bot(client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert (answer["user_id"], answer["bot_id"], answer["team_id"]) == (
        BOT_USER_ID,
        BOT_ID,
        TEAM_ID,
    )
    assert answer["url"].startswith("https://")


async def test_post_message_records_decoded_blocks(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    answer = await client.chat_postMessage(
        channel="C0PUBLIC", text="Jane Doe", blocks=[SECTION], thread_ts="1714000000.000100"
    )
    assert answer["channel"] == "C0PUBLIC"
    assert answer["message"]["thread_ts"] == "1714000000.000100"
    (call,) = recorder.calls_to("chat.postMessage")
    assert call.payload["blocks"] == [SECTION]
    assert call.payload["text"] == "Jane Doe"
    assert call.path == "/api/chat.postMessage"
    assert call.response["ts"] == answer["ts"]


async def test_form_bodies_and_query_strings_are_merged_and_decoded(
    recorder: SlackRecorder,
) -> None:
    headers = {"Authorization": "Bearer xoxb-test"}
    form = {"channel": "C0PRIVATE", "blocks": json.dumps([SECTION])}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{recorder.api_url}chat.postMessage?unfurl_links=false"
        async with session.post(url, data=form) as response:
            body = await response.json()
    assert body["ok"] is True
    (call,) = recorder.calls_to("chat.postMessage")
    assert call.payload == {"channel": "C0PRIVATE", "blocks": [SECTION], "unfurl_links": "false"}


async def test_timestamps_are_unique(client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel="C0PUBLIC", text="one")
    second = await client.chat_postMessage(channel="C0PUBLIC", text="two")
    assert first["ts"] != second["ts"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_post_message_errors_follow_slack(client: AsyncWebClient) -> None:
    assert await _error_of(client.chat_postMessage(channel="C0SECRET", text="x")) == (
        "not_in_channel"
    )
    assert await _error_of(client.chat_postMessage(channel="C0NOPE", text="x")) == (
        "channel_not_found"
    )
    assert await _error_of(client.chat_postMessage(channel="C0PUBLIC")) == "no_text"
    assert await _error_of(client.chat_postMessage(channel="C0PUBLIC", blocks=[{}])) == (
        "invalid_blocks"
    )
    too_many = [SECTION] * 51
    assert await _error_of(client.chat_postMessage(channel="C0PUBLIC", blocks=too_many)) == (
        "msg_blocks_too_long"
    )


async def test_block_kit_limits_are_reported_with_a_pointer(client: AsyncWebClient) -> None:
    button = {
        "type": "button",
        "action_id": "share",
        "text": {"type": "plain_text", "text": "x" * 76},
        "value": "k",
    }
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(
            channel="C0PUBLIC", text="card", blocks=[{"type": "actions", "elements": [button]}]
        )
    assert caught.value.response["error"] == "invalid_blocks"
    assert "/blocks/0/elements/0/text" in caught.value.response["errors"][0]


async def test_post_message_to_a_user_lands_in_the_dm(client: AsyncWebClient) -> None:
    answer = await client.chat_postMessage(channel="U0MANAGER", text="hello")
    assert answer["channel"] == "D0MANAGER"


async def test_ephemeral_messages_go_to_channel_members_only(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    answer = await client.chat_postEphemeral(channel="C0PRIVATE", user="U0AGENT", text="only you")
    assert answer["message_ts"]
    error = await _error_of(
        client.chat_postEphemeral(channel="C0PRIVATE", user="U0SALES", text="x")
    )
    assert error == "user_not_in_channel"
    # chat.update cannot edit an ephemeral message.
    error = await _error_of(
        client.chat_update(channel="C0PRIVATE", ts=answer["message_ts"], text="edited")
    )
    assert error == "message_not_found"
    assert [call.response["ok"] for call in recorder.calls_to("chat.postEphemeral")] == [
        True,
        False,
    ]


async def test_update_and_permalink_of_a_posted_message(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0PUBLIC", text="summary")
    updated = await client.chat_update(
        channel="C0PUBLIC", ts=posted["ts"], text="more", blocks=[SECTION]
    )
    assert updated["ts"] == posted["ts"]
    link = await client.chat_getPermalink(channel="C0PUBLIC", message_ts=posted["ts"])
    assert link["permalink"].endswith("/archives/C0PUBLIC/p" + posted["ts"].replace(".", ""))


@pytest.mark.parametrize("user_id", ["U0AGENT", "U0SALES", "U0MANAGER", "U0BOTH", "U0NOBODY"])
async def test_users_info_of_members(client: AsyncWebClient, user_id: str) -> None:
    user = (await client.users_info(user=user_id))["user"]
    assert user["id"] == user_id
    assert user["team_id"] == TEAM_ID
    assert (user["is_bot"], user["is_restricted"], user["is_ultra_restricted"]) == (
        False,
        False,
        False,
    )
    assert user["deleted"] is False
    assert "email" not in user["profile"]


async def test_users_info_flags_guests_bots_and_other_orgs(client: AsyncWebClient) -> None:
    assert (await client.users_info(user="U0GUEST"))["user"]["is_restricted"] is True
    bot = (await client.users_info(user=BOT_USER_ID))["user"]
    assert bot["is_bot"] is True
    assert bot["profile"]["bot_id"] == BOT_ID
    assert await _error_of(client.users_info(user="U0EXT")) == "user_not_found"
    assert await _error_of(client.users_info(user="U0MISSING")) == "user_not_found"


async def test_usergroups_list_with_and_without_users(client: AsyncWebClient) -> None:
    with_users = await client.usergroups_list(include_users=True)
    members = {group["handle"]: group["users"] for group in with_users["usergroups"]}
    assert members == {
        "support-team": ["U0AGENT", "U0BOTH", "U0GUEST"],
        "sales": ["U0SALES", "U0BOTH"],
        "cs-managers": ["U0MANAGER"],
    }
    assert all(group["id"] and group["name"] for group in with_users["usergroups"])
    without = await client.usergroups_list()
    assert all("users" not in group for group in without["usergroups"])


async def test_usergroups_users_list(client: AsyncWebClient) -> None:
    group_id = demo_workspace().usergroups["sales"][0]
    assert (await client.usergroups_users_list(usergroup=group_id))["users"] == [
        "U0SALES",
        "U0BOTH",
    ]
    assert await _error_of(client.usergroups_users_list(usergroup="S0NOPE")) == ("no_such_subteam")


async def test_conversations_info_describes_the_audience(client: AsyncWebClient) -> None:
    connect = (await client.conversations_info(channel="C0CONNECT"))["channel"]
    assert (connect["is_ext_shared"], connect["is_shared"], connect["is_private"]) == (
        True,
        True,
        False,
    )
    assert connect["shared_team_ids"] == [TEAM_ID, "T0OTHER"]
    assert connect["context_team_id"] == TEAM_ID
    private = (await client.conversations_info(channel="C0PRIVATE"))["channel"]
    assert (private["is_private"], private["is_channel"], private["is_ext_shared"]) == (
        True,
        True,
        False,
    )
    assert (await client.conversations_info(channel="D0MANAGER"))["channel"]["is_im"] is True
    assert (await client.conversations_info(channel="G0MPIM"))["channel"]["is_mpim"] is True
    assert await _error_of(client.conversations_info(channel="C0SECRET")) == "channel_not_found"


async def test_conversations_members_paginates(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    members: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_members(channel="C0PUBLIC", limit=2, cursor=cursor)
        members += page["members"]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert members == list(demo_workspace().channels["C0PUBLIC"].members)
    assert pages == 2
    assert recorder.calls_to("conversations.members")[1].payload["limit"] == "2"
    bad = client.conversations_members(channel="C0PUBLIC", cursor="not-a-cursor")
    assert await _error_of(bad) == "invalid_cursor"


async def test_rate_limit_reaches_the_client_with_retry_after(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    recorder.fail_next("users.info", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        await client.users_info(user="U0AGENT")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"
    # Only the next call fails; the failure is recorded like any other call.
    assert (await client.users_info(user="U0AGENT"))["ok"] is True
    assert [call.status for call in recorder.calls_to("users.info")] == [429, 200]


async def test_fail_next_counts_and_custom_errors(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    recorder.fail_next("chat.postMessage", error="restricted_action", count=2)
    for _ in range(2):
        error = await _error_of(client.chat_postMessage(channel="C0PUBLIC", text="x"))
        assert error == "restricted_action"
    assert (await client.chat_postMessage(channel="C0PUBLIC", text="x"))["ok"] is True


async def test_missing_token_is_not_authed(recorder: SlackRecorder) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{recorder.api_url}auth.test") as response,
    ):
        body = await response.json()
    assert body == {"ok": False, "error": "not_authed"}
    assert recorder.calls_to("auth.test")[0].response["error"] == "not_authed"


async def test_unknown_method(client: AsyncWebClient) -> None:
    assert await _error_of(client.api_call("chat.teleport")) == "unknown_method"


async def test_views_need_a_fresh_trigger(client: AsyncWebClient) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Customer"}, "blocks": []}
    assert await _error_of(client.views_open(trigger_id="", view=view)) == "invalid_arguments"
    opened = await client.views_open(trigger_id="123.456.abc", view=view)
    view_id = opened["view"]["id"]
    assert await _error_of(client.views_open(trigger_id="123.456.abc", view=view)) == (
        "exchanged_trigger_id"
    )
    updated = await client.views_update(view_id=view_id, view={**view, "blocks": [SECTION]})
    assert updated["view"]["id"] == view_id
    assert updated["view"]["blocks"] == [SECTION]
    stale = client.views_update(view_id=view_id, view=view, hash=opened["view"]["hash"])
    assert await _error_of(stale) == "hash_conflict"


async def test_view_limits_are_checked(client: AsyncWebClient) -> None:
    long_title = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "blocks": []}
    with pytest.raises(SlackApiError) as caught:
        await client.views_open(trigger_id="1.2.3", view=long_title)
    assert caught.value.response["error"] == "invalid_arguments"
    assert "/view/title" in caught.value.response["response_metadata"]["messages"][0]


async def test_views_publish_sets_one_home_per_user(client: AsyncWebClient) -> None:
    home = {"type": "home", "blocks": [SECTION]}
    first = await client.views_publish(user_id="U0AGENT", view=home)
    again = await client.views_publish(user_id="U0AGENT", view=home)
    assert first["view"]["id"] == again["view"]["id"]
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}
    error = await _error_of(client.views_publish(user_id="U0AGENT", view=modal))
    assert error == "invalid_arguments"


async def test_response_url_posts_are_recorded(recorder: SlackRecorder) -> None:
    url = recorder.response_url("lookup")
    assert url == f"{recorder.url}/response/lookup"
    webhook = AsyncWebhookClient(url=url)
    response = await webhook.send(text="Jane Doe", response_type="ephemeral", blocks=[SECTION])
    assert response.status_code == 200
    (call,) = recorder.calls_to("response_url")
    assert call.payload["response_url"] == url
    assert call.payload["blocks"] == [SECTION]
    assert call.payload["response_type"] == "ephemeral"
    assert recorder.response_url() != recorder.response_url()


async def test_response_url_failures_can_be_injected(recorder: SlackRecorder) -> None:
    recorder.fail_next("response_url", error="expired_url", status=404)
    response = await AsyncWebhookClient(url=recorder.response_url()).send(text="late")
    assert response.status_code == 404
    assert json.loads(response.body)["error"] == "expired_url"


async def test_wait_for_sees_calls_made_in_the_background(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    task = asyncio.create_task(client.chat_postMessage(channel="C0PUBLIC", text="later"))
    calls = await recorder.wait_for("chat.postMessage")
    await task
    assert calls[0].payload["text"] == "later"


async def test_wait_for_timeout_says_what_was_seen(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    await client.auth_test()
    with pytest.raises(AssertionError) as caught:
        await recorder.wait_for("chat.postEphemeral", count=1, timeout=0.05)
    message = str(caught.value)
    assert "chat.postEphemeral" in message
    assert "auth.test" in message


async def test_clear_forgets_calls_and_failures(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    recorder.fail_next("auth.test", error="invalid_auth")
    await client.chat_postMessage(channel="C0PUBLIC", text="x")
    recorder.clear()
    assert recorder.calls == []
    assert (await client.auth_test())["ok"] is True


def test_handle_answers_in_process_without_a_server() -> None:
    recorder = SlackRecorder()
    answer = recorder.handle("conversations.members", {"channel": "C0PRIVATE"})
    assert answer["members"] == ["U0AGENT", "U0MANAGER", BOT_USER_ID]
    assert recorder.calls == []
    with pytest.raises(RuntimeError):
        _ = recorder.url


async def test_a_hanging_method_is_recorded_and_never_answers_until_close(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    recorder.hang_next("users.info")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.users_info(user="U0AGENT")
    [call] = recorder.calls_to("users.info")
    assert call.status == 0
    assert (await client.users_info(user="U0AGENT"))["ok"] is True  # only the next one hangs


async def test_a_huge_retry_after_is_sent_as_whole_seconds(
    recorder: SlackRecorder, client: AsyncWebClient
) -> None:
    recorder.fail_next("chat.postMessage", status=429, retry_after=1_000_000)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C0PRIVATE", text="hi")
    assert caught.value.response.headers["Retry-After"] == "1000000"


async def test_conversations_open_names_the_bots_dm_with_one_person(
    client: AsyncWebClient,
) -> None:
    known = await client.conversations_open(users="U0MANAGER")
    opened = await client.conversations_open(users="U0AGENT")
    again = await client.conversations_open(users="U0AGENT")
    posted = await client.chat_postMessage(channel=opened["channel"]["id"], text="hello")

    assert known["channel"]["id"] == "D0MANAGER"
    assert opened["channel"]["id"] == again["channel"]["id"]
    assert posted["channel"] == opened["channel"]["id"]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"users": " "}, "users_list_not_supplied"),
        ({"users": "U0NOSUCH"}, "user_not_found"),
        ({"users": ",".join(f"U0{n}" for n in range(9))}, "too_many_users"),
        ({"channel": "C0PUBLIC"}, "channel_not_found"),
    ],
)
async def test_conversations_open_errors_follow_slack(
    client: AsyncWebClient, arguments: dict[str, str], error: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_open(**arguments)
    assert raised.value.response["error"] == error


async def test_views_publish_takes_only_a_home_view(client: AsyncWebClient) -> None:
    home = {"type": "home", "blocks": [{"type": "divider"}]}
    published = await client.views_publish(user_id="U0AGENT", view=home)
    assert published["view"]["type"] == "home"

    for view in (
        {**home, "type": "modal", "title": {"type": "plain_text", "text": "x"}},
        {**home, "blocks": [{"type": "divider"}] * 101},
    ):
        with pytest.raises(SlackApiError) as raised:
            await client.views_publish(user_id="U0AGENT", view=view)
        assert raised.value.response["error"] == "invalid_arguments"
