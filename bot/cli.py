"""Diagnostic commands: `python -m bot lookup ...` and `python -m bot policy check ...`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bot.aep.errors import AepError
from bot.customer import Customer
from bot.identity import USAGE, IdentityRules, parse_identity, read_identities
from bot.settings import Settings


def _rules(settings: Settings) -> IdentityRules:
    return IdentityRules(
        default_region=settings.bot_default_region,
        crm_namespace=settings.aep_crm_namespace,
        crm_pattern=settings.bot_crm_id_pattern,
    )


async def lookup_main(settings: Settings, argv: Sequence[str]) -> int:
    """What the bot sees for one identity, through the real client; --json for one document."""
    parser = argparse.ArgumentParser(
        prog="python -m bot lookup",
        description="Show what the bot sees for one identity (no Slack involved).",
    )
    parser.add_argument("identity", nargs="+", help="an email, phone, CRM id, ECID or ns:value")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document")
    parser.add_argument("--events", type=int, default=None, help="how many recent events")
    parser.add_argument("--refresh", action="store_true", help="bypass the cache")
    args = parser.parse_args(list(argv))
    text = " ".join(args.identity)
    rules = _rules(settings)
    ref = parse_identity(text, rules)
    if ref is None:
        reading = read_identities(text, rules)
        if reading.refused and not reading.refs:
            print("Not looked up. " + " ".join(map(str, reading.refused)), file=sys.stderr)
            return 2
        ref = reading.refs[0] if reading.refs else None
    if ref is None:
        print(f"No identity found in {text!r}.\n\n{USAGE}", file=sys.stderr)
        return 2

    from bot.services import build_services

    services = build_services(settings)
    try:
        customer = await services.lookup.lookup(ref, refresh=args.refresh, events_limit=args.events)
        policy = services.aep.merge_policy_in_use
    except AepError as exc:
        print(f"{type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await services.aclose()
    # The merge policy decides what the profile holds; None only when the lookup was served
    # from the cache before the policy was resolved in this process.
    merge_policy = policy.model_dump(include={"id", "name"}) if policy else None
    if args.json:
        document = json.loads(customer.model_dump_json())
        print(json.dumps({**document, "merge_policy": merge_policy}, indent=2, ensure_ascii=False))
    else:
        print(describe(customer))
        if policy:
            print(f"\nMerge policy: {policy.name} ({policy.id})")
    return 0


def describe(customer: Customer) -> str:
    """A plain-text view of a Customer for the terminal."""
    from bot.formatting import format_value
    from bot.i18n import FALLBACK_LOCALE, reader_for
    from bot.layout import label_text

    # An operator's tool: English and UTC, as the logs are.
    english = reader_for(FALLBACK_LOCALE)
    lines = [
        f"{customer.name or '(no name)'}{'   [DEMO DATA]' if customer.demo else ''}",
        f"profile {customer.profile_id}, last modified {customer.last_modified_at or 'unknown'}",
        "",
        "Identities:",
    ]
    for identity in customer.identities:
        marks = " ".join(
            m for m, on in (("(matched)", identity.matched), ("(primary)", identity.primary)) if on
        )
        lines.append(f"  {identity.namespace}: {identity.value} {marks}".rstrip())
    section = None
    for field in customer.fields:
        heading = label_text(field.section, english.tag)
        if heading != section:
            section = heading
            lines += ["", f"{section}:"]
        lines.append(f"  {label_text(field.label, english.tag)}: {format_value(field, english)}")
    lines += ["", "Recent events:" if customer.events_available else "Recent events: not available"]
    for event in customer.events:
        detail = f" - {event.detail}" if event.detail else ""
        lines.append(f"  {event.timestamp:%Y-%m-%d %H:%M} {event.title}{detail}")
    if customer.more_events:
        lines.append("  (older events exist)")
    lines += ["", "Audiences:"]
    for audience in customer.audiences:
        name = audience.name or f"(name unknown, id {audience.audience_id})"
        status = "validity ended" if audience.lapsed else audience.status
        lines.append(f"  {name} [{status}]")
    return "\n".join(lines)


async def policy_main(settings: Settings, argv: Sequence[str]) -> int:
    """`policy check [--user U...] [--channel C...]`: validate and explain the policy."""
    parser = argparse.ArgumentParser(
        prog="python -m bot policy check",
        description=(
            "Validate BOT_POLICY_FILE (or the default policy) and explain what a user, or a card "
            "shared in a channel, would see and why. Without Slack credentials the users and "
            "channels of the demo workspace are used."
        ),
    )
    parser.add_argument("action", choices=["check"])
    parser.add_argument("--user", action="append", default=[], help="a Slack user id")
    parser.add_argument("--channel", action="append", default=[], help="a Slack channel id")
    parser.add_argument("--team", default=None, help="Slack team id (default: the demo team)")
    args = parser.parse_args(list(argv))

    from bot.policy import explain_channel, explain_person
    from bot.policy_file import PolicyError, load_policy

    try:
        policy = load_policy(settings.bot_policy_file, demo=settings.demo)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"Policy OK ({policy.source}): {len(policy.roles)} roles.")
    for role in policy.roles:
        how = ", ".join([*(f"@{g}" for g in role.usergroups), *role.users]) or "nobody"
        share = "; may share" if role.share else ""
        print(f"  {role.name}: sees {', '.join(sorted(role.see)) or 'nothing'} ({how}{share})")
    print(f"  everyone: {', '.join(sorted(policy.everyone)) or 'nothing'}")
    print(f"  public channels at most: {', '.join(sorted(policy.public_channels)) or 'nothing'}")
    print(f"  Slack Connect at most: {', '.join(sorted(policy.external_channels)) or 'never post'}")
    if not args.user and not args.channel:
        return 0

    from bot.demo.workspace import TEAM_ID
    from bot.directory import MemoryJsonStore, SlackDirectory
    from bot.services import slack_client

    recorder = None
    if settings.slack_bot_token is None:
        from bot.demo.slack import SlackRecorder

        recorder = SlackRecorder()
        await recorder.start()
        client = slack_client(
            settings.model_copy(update={"slack_api_url": recorder.api_url}),
            token="xoxb-demo",  # noqa: S106 - the recorder accepts any token
        )
        print("(no SLACK_BOT_TOKEN: explaining against the demo workspace)")
    else:
        client = slack_client(settings)
    directory = SlackDirectory(client=client, store=MemoryJsonStore(), ttl=60)
    team = args.team or TEAM_ID
    try:
        for user in args.user:
            person = await directory.person(team, user)
            print(f"\nUser {user}:\n  {explain_person(policy, person)}")
        for channel_id in args.channel:
            channel = await directory.channel(team, channel_id)
            print(f"\nChannel {channel_id}:\n  {explain_channel(policy, channel)}")
    finally:
        if recorder is not None:
            await recorder.close()
    return 0
