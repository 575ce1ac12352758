"""Work Objects and profile links (bot/listeners/links.py): a shared card's entity, the flexpane
each viewer opens (entity_details_requested -> entity.presentDetails), and pasted Experience
Platform profile links unfurled (link_shared -> chat.unfurl), through signed requests."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.aep.errors import MalformedResponse
from bot.answers import profile_link
from bot.button_tokens import Place
from bot.demo import payloads as slack_payloads
from bot.demo.dataset import load_dataset
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.demo.workspace import BOT_USER_ID, with_reader
from tests.support import JANE, RunningBot, button, logged, running_bot, settle, share

LINKS = "bot.listeners.links"


@pytest.fixture
async def wo_bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The whole bot with BOT_WORK_OBJECTS on."""
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_work_objects=True) as running:
        yield running


def jane_link(bot: RunningBot) -> str:
    """The Open in AEP deep link of Jane's profile (her entity id, not an identity)."""
    customer = load_dataset().find("email", JANE)
    assert customer is not None
    return profile_link(bot.services, customer.entity_id)


def field_text(entity: dict[str, Any]) -> dict[str, str]:
    """An entity's custom fields, label -> value."""
    return {f["label"]: f["value"] for f in entity["entity_payload"]["custom_fields"]}


async def shared_entity(bot: RunningBot, channel: str = "C0PUBLIC") -> tuple[RecordedCall, dict]:
    await share(bot, "U0MANAGER", channel)
    [posted] = await bot.slack.wait_for("chat.postMessage")
    [entity] = posted.payload["metadata"]["entities"]
    return posted, entity


async def test_a_shared_card_carries_a_work_object_with_only_channel_safe_values(
    wo_bot: RunningBot,
) -> None:
    posted, entity = await shared_entity(wo_bot, "C0PUBLIC")
    assert entity["entity_type"] == "slack#/entities/item"
    # external_ref is the opaque token the card's View details button carries, never an identity
    assert entity["external_ref"] == {
        "id": button(posted, ids.VIEW_DETAILS)["value"],
        "type": ids.WORK_OBJECT_REF_TYPE,
    }
    assert entity["url"].startswith(wo_bot.settings.aep_ui_url)
    text = json.dumps(entity)
    fields = field_text(entity)
    # a public channel is capped at basic: the name and basic fields, no contact or scores
    assert entity["entity_payload"]["attributes"]["title"]["text"] == "Jane Doe"
    assert "Company" in fields
    assert JANE not in text and "Email" not in fields and "Churn risk" not in fields
    assert "contact details" in fields["Hidden"].lower()
    # the Block Kit card stays as the message's blocks, with the same redaction
    assert posted.payload["blocks"] and JANE not in json.dumps(posted.payload["blocks"])


async def test_a_mention_answer_carries_a_work_object_with_only_channel_safe_values(
    wo_bot: RunningBot,
) -> None:
    # A support agent asks in the private channel (agent, manager and the bot): the channel may
    # see contact, identifiers and activity, never scores or financial values.
    body = slack_payloads.app_mention(
        text=f"<@{BOT_USER_ID}> who is {JANE}?",
        user_id="U0AGENT",
        channel_id="C0PRIVATE",
        event_id="Ev-mention-work-object",
    )
    await wo_bot.send(body)
    [posted] = await wo_bot.slack.wait_for("chat.postMessage")
    [entity] = posted.payload["metadata"]["entities"]
    fields = field_text(entity)
    assert "Email" in fields and "ECID" in fields
    assert not {"Churn risk", "Lifetime value", "Annual spend"} & fields.keys()
    assert "22,937" not in json.dumps(entity)  # Jane's lifetime value


async def test_with_work_objects_off_a_shared_card_has_no_entity(bot: RunningBot) -> None:
    await share(bot, "U0MANAGER", "C0PRIVATE")
    [posted] = await bot.slack.wait_for("chat.postMessage")
    assert "metadata" not in posted.payload


async def flexpane_of(bot: RunningBot, user: str, external_ref: dict[str, Any]) -> dict:
    trigger = slack_payloads.new_trigger_id()
    body = slack_payloads.entity_details_requested(
        external_ref=external_ref,
        entity_url=jane_link(bot),
        user_id=user,
        channel_id="C0PUBLIC",
        trigger_id=trigger,
    )
    response = await bot.send(body)
    assert response.status_code == 200
    for _ in range(100):
        answered = [
            c
            for c in bot.slack.calls_to("entity.presentDetails")
            if c.payload["trigger_id"] == trigger
        ]
        if answered:
            assert answered[0].response["ok"], answered[0].response
            return answered[0].payload
        await settle(0.05)
    raise AssertionError(f"no entity.presentDetails for {user}")


async def test_four_viewers_get_four_flexpanes_redacted_by_their_own_grants(
    wo_bot: RunningBot,
) -> None:
    _, entity = await shared_entity(wo_bot)
    ref = entity["external_ref"]
    manager_pane = await flexpane_of(wo_bot, "U0MANAGER", ref)
    # the flexpane keeps the external_ref Slack asked about (else entity_metadata_does_not_match)
    assert manager_pane["metadata"]["external_ref"] == ref
    manager = field_text(manager_pane["metadata"])
    sales = field_text((await flexpane_of(wo_bot, "U0SALES", ref))["metadata"])
    agent = field_text((await flexpane_of(wo_bot, "U0AGENT", ref))["metadata"])
    nobody = await flexpane_of(wo_bot, "U0NOBODY", ref)

    # manager: everything but sensitive
    assert {"Email", "Churn risk", "Lifetime value", "Open tickets", "ECID"} <= manager.keys()
    # sales: contact, scores, financial; no identifiers or activity
    assert {"Email", "Churn risk", "Lifetime value"} <= sales.keys()
    assert not {"ECID", "Open tickets", "Last event"} & sales.keys()
    # and the flexpane says what it left out, in the viewer's terms
    assert sales["Hidden"].endswith("are not shown to you.")
    # support agent: contact, identifiers, activity; no scores or financial
    assert {"Email", "ECID", "Open tickets"} <= agent.keys()
    assert not {"Churn risk", "Lifetime value"} & agent.keys()
    assert JANE in json.dumps(manager) and "Date of birth" not in manager
    # no grants: Slack's documented error, with the reason in words, not an empty panel
    assert "metadata" not in nobody
    assert nobody["error"]["status"] == "custom"
    assert "don't have access" in nobody["error"]["custom_message"]
    assert nobody["error"]["custom_title"] == "No access to customer profiles"

    records = [r for r in wo_bot.audit() if r["surface"] == "flexpane"]
    assert sorted(r["outcome"] for r in records if r["action"] == "detail_view") == ["shown"] * 3
    assert [r["outcome"] for r in records if r["action"] == "refusal"] == ["no_grants:detail_view"]
    # each detail view is audited with whose profile it was and what that viewer saw and not
    [sales_record] = [r for r in records if r["actor"] == "U0SALES"]
    customer = load_dataset().find("email", JANE)
    assert customer is not None
    assert sales_record["identity_hmac"] == wo_bot.services.audit.identity_hmac(JANE)
    assert sales_record["profile_id"] == customer.entity_id
    assert sales_record["shown"] == ["audiences", "basic", "contact", "financial", "scores"]
    assert sales_record["withheld"] == ["activity", "identifiers", "sensitive"]


async def test_a_forged_external_ref_is_refused_in_words_without_a_lookup(
    wo_bot: RunningBot,
) -> None:
    forged = {"id": "bm90LWEtdG9rZW4", "type": ids.WORK_OBJECT_REF_TYPE}
    pane = await flexpane_of(wo_bot, "U0MANAGER", forged)
    assert "metadata" not in pane
    assert pane["error"]["status"] == "custom"
    assert "expired" in pane["error"]["custom_message"]
    assert pane["error"]["custom_title"] == "This card has expired"
    assert wo_bot.sim.stats["profile"] == 0
    [record] = wo_bot.audit()
    assert (record["action"], record["outcome"], record["surface"]) == (
        "refusal",
        "token_refused",
        "flexpane",
    )


async def test_an_external_ref_of_another_type_is_refused_too(wo_bot: RunningBot) -> None:
    _, entity = await shared_entity(wo_bot)
    other = {**entity["external_ref"], "type": "someone_elses_type"}
    pane = await flexpane_of(wo_bot, "U0MANAGER", other)
    assert pane["error"]["status"] == "custom"


async def paste(bot: RunningBot, user: str, channel: str, **more: Any) -> None:
    body = slack_payloads.link_shared(
        urls=[jane_link(bot), "https://example.com/elsewhere"],
        user_id=user,
        channel_id=channel,
        **more,
    )
    assert (await bot.send(body)).status_code == 200


async def test_a_pasted_profile_link_unfurls_in_a_private_channel(wo_bot: RunningBot) -> None:
    await paste(wo_bot, "U0MANAGER", "C0PRIVATE")
    [call] = await wo_bot.slack.wait_for("chat.unfurl")
    assert call.response["ok"], call.response
    link = jane_link(wo_bot)
    assert list(call.payload["unfurls"]) == [link]  # the other link is not ours
    assert call.payload["unfurls"][link]["blocks"]
    [entity] = call.payload["metadata"]["entities"]
    assert entity["app_unfurl_url"] == link
    # #escalations: agent and manager; contact is channel-safe there, financial is not
    assert JANE in json.dumps(entity) and "Lifetime value" not in field_text(entity)
    # audited once Slack has answered: wait for the record rather than race the listener
    for _ in range(100):
        records = [r for r in wo_bot.audit() if r["action"] == "unfurl"]
        if records:
            break
        await settle(0.05)
    [record] = records
    assert (record["surface"], record["outcome"]) == ("unfurl", "posted")
    # the unfurled card's buttons lead back to the conversation it was pasted in
    [token] = [
        b["value"]
        for block in call.payload["unfurls"][link]["blocks"]
        for b in block.get("elements", [])
        if b.get("action_id") == ids.VIEW_DETAILS
    ]
    recalled = await wo_bot.services.buttons.recall_place(token)
    assert recalled is not None and recalled.place == Place("C0PRIVATE", None)


async def test_a_profile_link_unfurls_as_blocks_alone_with_work_objects_off(
    bot: RunningBot,
) -> None:
    await paste(bot, "U0MANAGER", "C0PRIVATE")
    [call] = await bot.slack.wait_for("chat.unfurl")
    assert call.response["ok"] and "metadata" not in call.payload


@pytest.mark.parametrize(
    ("user", "channel", "why", "logged"),
    [
        ("U0MANAGER", "C0CONNECT", "channel_refused", "channel_refused"),  # Slack Connect
        ("U0MANAGER", "C0SECRET", "channel_refused", "channel_refused"),  # cannot size it
        ("U0NOBODY", "C0PUBLIC", "no_grants:unfurl", "no_grants"),  # the poster has no grants
    ],
)
async def test_nothing_unfurls_where_the_share_rule_refuses(
    wo_bot: RunningBot,
    caplog: pytest.LogCaptureFixture,
    user: str,
    channel: str,
    why: str,
    logged: str,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.listeners.links")
    await paste(wo_bot, user, channel)
    await settle(0.5)
    assert wo_bot.slack.calls_to("chat.unfurl") == []
    [record] = wo_bot.audit()
    assert (record["surface"], record["outcome"]) == ("unfurl", why)
    # the operator reads why nothing unfurled
    assert f"profile links not unfurled: {logged}" in caplog.messages


async def test_a_link_still_in_the_composer_does_not_unfurl(wo_bot: RunningBot) -> None:
    await paste(wo_bot, "U0MANAGER", "C0PRIVATE", source="composer")
    await settle(0.3)
    assert wo_bot.slack.calls_to("chat.unfurl") == []
    assert wo_bot.sim.stats["profile"] == 0


def test_the_recording_server_checks_unfurl_and_flexpane_arguments() -> None:
    slack = SlackRecorder()
    no_unfurls = slack.handle("chat.unfurl", {"channel": "C0PRIVATE", "ts": "1.2"})
    assert no_unfurls["error"] == "missing_unfurls"
    nowhere = slack.handle("chat.unfurl", {"unfurls": {"https://x.test": {"blocks": []}}})
    assert nowhere["error"] == "invalid_arguments"
    no_app_url = slack.handle(
        "chat.unfurl",
        {
            "channel": "C0PRIVATE",
            "ts": "1.2",
            "metadata": {
                "entities": [
                    {
                        "entity_type": "slack#/entities/item",
                        "url": "https://x.test/1",
                        "external_ref": {"id": "t"},
                        "entity_payload": {"attributes": {"title": {"text": "T"}}},
                    }
                ]
            },
        },
    )
    assert no_app_url["error"] == "invalid_metadata"
    unreadable = slack.handle("entity.presentDetails", {"trigger_id": "1.2.x", "metadata": "{"})
    assert unreadable["error"] == "invalid_metadata"
    no_trigger = slack.handle("entity.presentDetails", {"error": {"status": "not_found"}})
    assert no_trigger["error"] == "invalid_arguments"
    wordy = slack.handle(
        "entity.presentDetails",
        {"trigger_id": "1.2.y", "error": {"status": "not_found", "custom_message": "hi"}},
    )
    assert wordy["error"] == "invalid_arguments"


async def test_a_dutch_viewers_flexpane_and_refusal_are_in_dutch(wo_bot: RunningBot) -> None:
    # Before the share: the directory keeps what it learns of the channel's members.
    for user in ("U0SALES", "U0NOBODY"):
        wo_bot.slack.workspace = with_reader(
            wo_bot.slack.workspace, user, locale="nl-NL", tz="Europe/Amsterdam"
        )
    _, entity = await shared_entity(wo_bot)
    ref = entity["external_ref"]
    sales = (await flexpane_of(wo_bot, "U0SALES", ref))["metadata"]
    fields = field_text(sales)
    assert {"E-mail", "Klantwaarde"} <= fields.keys(), fields.keys()
    assert sales["entity_payload"]["attributes"]["display_type"] == "Klantprofiel"
    assert "Lifetime value" not in fields
    nobody = (await flexpane_of(wo_bot, "U0NOBODY", ref))["error"]
    assert nobody["custom_title"] == "Geen toegang tot klantprofielen"
    assert nobody["custom_message"].startswith("Je hebt geen toegang tot klantprofielen.")


async def test_an_unfurl_speaks_the_posters_language_with_utc_times(wo_bot: RunningBot) -> None:
    wo_bot.slack.workspace = with_reader(
        wo_bot.slack.workspace, "U0MANAGER", locale="nl-NL", tz="Europe/Amsterdam"
    )
    await paste(wo_bot, "U0MANAGER", "C0PRIVATE")
    [call] = await wo_bot.slack.wait_for("chat.unfurl")
    assert call.response["ok"], call.response
    unfurl = call.payload["unfurls"][jane_link(wo_bot)]
    blocks = json.dumps(unfurl["blocks"], ensure_ascii=False)
    assert "Details bekijken" in blocks and "View details" not in blocks
    [entity] = call.payload["metadata"]["entities"]
    fields = field_text(entity)
    assert "Laatste evenement" in fields and "Last event" not in fields
    # entity fields take no Slack date tokens: a conversation's times read in UTC
    assert fields["Laatste evenement"].endswith(" UTC"), fields["Laatste evenement"]


async def test_a_flexpane_whose_lookup_fails_says_why_and_is_audited_as_a_detail_view(
    wo_bot: RunningBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15 (mutation testing): the flexpane's AEP failure path had no test."""
    _, entity = await shared_entity(wo_bot)

    async def malformed(*args: Any, **kwargs: Any) -> Any:
        raise MalformedResponse("Platform answered with an unreadable body", status=200)

    monkeypatch.setattr(wo_bot.services.lookup, "lookup", malformed)
    caplog.set_level(logging.INFO, logger="bot.answers")
    pane = await flexpane_of(wo_bot, "U0MANAGER", entity["external_ref"])
    # the operator reads which failure it was
    assert "lookup failed: MalformedResponse (status 200)" in caplog.messages
    assert "metadata" not in pane
    assert pane["error"]["status"] == "custom"
    assert pane["error"]["custom_title"] == "The profile could not be shown"
    assert "could not read" in pane["error"]["custom_message"].lower()
    [record] = [r for r in wo_bot.audit() if r["surface"] == "flexpane"]
    assert (record["action"], record["outcome"], record["actor"]) == (
        "detail_view",
        "malformed",
        "U0MANAGER",
    )
    assert record["identity_hmac"] == wo_bot.services.audit.identity_hmac(JANE)


# --- Issue 15 (mutation testing): who is audited, what is skipped and what is logged ----------


def edited(body: str, *, envelope: dict[str, Any] | None = None, **event: Any) -> str:
    """An event envelope `body` with some of its event's fields (and the envelope's) changed:
    None removes a field."""
    data = json.loads(body)
    for target, changes in ((data["event"], event), (data, envelope or {})):
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return json.dumps(data)


def details_body(bot: RunningBot, external_ref: dict[str, Any], **event: Any) -> str:
    body = slack_payloads.entity_details_requested(
        external_ref=external_ref,
        entity_url=jane_link(bot),
        user_id="U0MANAGER",
        channel_id="C0PUBLIC",
    )
    return edited(body, **event)


FORGED = {"id": "bm90LWEtdG9rZW4", "type": ids.WORK_OBJECT_REF_TYPE}


async def test_a_flexpane_is_audited_with_the_viewers_team_and_channel(wo_bot: RunningBot) -> None:
    _, entity = await shared_entity(wo_bot)
    await flexpane_of(wo_bot, "U0MANAGER", entity["external_ref"])

    [record] = [r for r in wo_bot.audit() if r["surface"] == "flexpane"]
    assert (record["actor"], record["team"], record["channel"]) == (
        "U0MANAGER",
        "T0DEMO",
        "C0PUBLIC",
    )


async def test_a_flexpane_asked_about_from_no_readable_channel_is_audited_without_one(
    wo_bot: RunningBot,
) -> None:
    await wo_bot.send(details_body(wo_bot, FORGED, channel={"id": "C0PUBLIC"}))

    await wo_bot.slack.wait_for("entity.presentDetails")
    [record] = wo_bot.audit()
    assert (record["outcome"], record["channel"]) == ("token_refused", None)


async def test_a_flexpane_request_with_an_empty_trigger_is_ignored_and_logged(
    wo_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    await wo_bot.send(details_body(wo_bot, FORGED, trigger_id=""))

    assert await logged(caplog, LINKS) == [
        "entity_details_requested without trigger_id or user ignored"
    ]
    await settle(0.1)
    assert wo_bot.slack.calls_to("entity.presentDetails") == []
    assert wo_bot.audit() == []


async def test_a_flexpane_slack_did_not_take_is_logged_with_its_code(
    wo_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    wo_bot.slack.fail_next("entity.presentDetails", error="trigger_expired")

    await wo_bot.send(details_body(wo_bot, FORGED))

    await wo_bot.slack.wait_for("entity.presentDetails")
    assert await logged(caplog, LINKS) == [
        "could not fill a Work Object's flexpane: trigger_expired"
    ]


async def test_a_link_without_a_url_is_skipped_and_the_profile_link_still_unfurls(
    wo_bot: RunningBot,
) -> None:
    body = slack_payloads.link_shared(
        urls=[jane_link(wo_bot)], user_id="U0MANAGER", channel_id="C0PRIVATE"
    )
    links = [{"domain": "example.com"}, *json.loads(body)["event"]["links"]]

    await wo_bot.send(edited(body, links=links))

    [call] = await wo_bot.slack.wait_for("chat.unfurl")
    assert list(call.payload["unfurls"]) == [jane_link(wo_bot)]


@pytest.mark.parametrize(
    ("user", "urls"),
    [("", ["profile"]), ("U0MANAGER", [])],
    ids=["no-poster", "no-links"],
)
async def test_a_link_shared_without_a_poster_or_links_asks_nobody_anything(
    wo_bot: RunningBot, user: str, urls: list[str]
) -> None:
    body = slack_payloads.link_shared(
        urls=[jane_link(wo_bot) for _ in urls], user_id=user or "U0MANAGER", channel_id="C0PRIVATE"
    )

    await wo_bot.send(edited(body, user=user))

    await settle(0.3)
    # Bolt's own auth.test only: the poster is not looked up in Slack.
    assert [c.method for c in wo_bot.slack.calls if c.method != "auth.test"] == []
    assert wo_bot.audit() == []
    assert wo_bot.sim.stats["profile"] == 0


async def test_links_in_two_messages_without_event_ids_both_unfurl(wo_bot: RunningBot) -> None:
    for ts in ("1700000000.000100", "1700000000.000200"):
        body = slack_payloads.link_shared(
            urls=[jane_link(wo_bot)], user_id="U0MANAGER", channel_id="C0PRIVATE", message_ts=ts
        )
        await wo_bot.send(edited(body, envelope={"event_id": None}))

    calls = await wo_bot.slack.wait_for("chat.unfurl", count=2)
    assert all(c.response["ok"] for c in calls)


async def test_an_unfurl_is_audited_with_the_posters_team_and_channel(wo_bot: RunningBot) -> None:
    await paste(wo_bot, "U0MANAGER", "C0PRIVATE")
    await wo_bot.slack.wait_for("chat.unfurl")
    for _ in range(100):
        records = [r for r in wo_bot.audit() if r["action"] == "unfurl"]
        if records:
            break
        await settle(0.05)

    [record] = records
    assert (record["actor"], record["team"], record["channel"]) == (
        "U0MANAGER",
        "T0DEMO",
        "C0PRIVATE",
    )


@pytest.mark.parametrize(
    ("user", "channel", "why"),
    [("U0MANAGER", "C0SECRET", "channel_refused"), ("U0NOBODY", "C0PUBLIC", "no_grants")],
)
async def test_profile_links_not_unfurled_are_logged_with_why(
    wo_bot: RunningBot, caplog: pytest.LogCaptureFixture, user: str, channel: str, why: str
) -> None:
    caplog.set_level(logging.INFO, logger="bot.listeners.links")

    await paste(wo_bot, user, channel)

    assert await logged(caplog, LINKS) == [f"profile links not unfurled: {why}"]


async def test_links_that_are_not_profiles_are_not_logged_as_refused(
    wo_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.listeners.links")
    body = slack_payloads.link_shared(
        urls=["https://example.com/elsewhere"], user_id="U0MANAGER", channel_id="C0PRIVATE"
    )

    await wo_bot.send(body)

    await settle(0.3)
    assert [r.getMessage() for r in caplog.records if r.name == "bot.listeners.links"] == []
    assert wo_bot.slack.calls_to("chat.unfurl") == []


async def test_an_unfurl_answers_on_the_unfurl_id_slack_gave(wo_bot: RunningBot) -> None:
    body = slack_payloads.link_shared(
        urls=[jane_link(wo_bot)], user_id="U0MANAGER", channel_id="C0PRIVATE"
    )
    event = json.loads(body)["event"]

    await wo_bot.send(body)

    [call] = await wo_bot.slack.wait_for("chat.unfurl")
    where = {k: v for k, v in call.payload.items() if k not in ("unfurls", "metadata", "team_id")}
    assert where == {"unfurl_id": event["unfurl_id"], "source": "conversations_history"}


@pytest.mark.parametrize("missing", ["unfurl_id", "source"])
async def test_without_an_unfurl_id_and_source_an_unfurl_answers_on_the_message(
    wo_bot: RunningBot, missing: str
) -> None:
    body = slack_payloads.link_shared(
        urls=[jane_link(wo_bot)],
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        message_ts="1700000000.000300",
    )

    await wo_bot.send(edited(body, **{missing: None}))

    [call] = await wo_bot.slack.wait_for("chat.unfurl")
    assert call.response["ok"], call.response
    where = {k: v for k, v in call.payload.items() if k not in ("unfurls", "metadata", "team_id")}
    assert where == {"channel": "C0PRIVATE", "ts": "1700000000.000300"}


async def test_an_unfurl_slack_did_not_take_is_logged_with_its_code(
    wo_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    wo_bot.slack.fail_next("chat.unfurl", error="cannot_unfurl_url")

    await paste(wo_bot, "U0MANAGER", "C0PRIVATE")

    await wo_bot.slack.wait_for("chat.unfurl")
    assert await logged(caplog, LINKS) == ["could not unfurl profile links: cannot_unfurl_url"]


async def test_a_link_in_the_composer_asks_slack_nothing_and_audits_no_refusal(
    wo_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack sends a link still in the composer with the channel "COMPOSER", which has the shape
    of a conversation id: it was once looked up in Slack and audited as a refused channel."""
    caplog.set_level(logging.INFO, logger="bot.listeners.links")

    await paste(wo_bot, "U0MANAGER", "C0PRIVATE", source="composer")

    assert await logged(caplog, LINKS) == ["link_shared outside a conversation: not unfurled"]
    await settle(0.1)
    assert [c.method for c in wo_bot.slack.calls if c.method != "auth.test"] == []
    assert wo_bot.audit() == []
