"""The policy: loading and validation, grants per person, channel audiences, and redaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.aep.models import Audience, EventPage, ExperienceEvent, ProfileEntity, ProfileIdentity
from bot.customer import Customer, build_customer
from bot.i18n import reader_for
from bot.identity import IdentityRef
from bot.layout import FIELD_CLASSES, FieldClass, load_layout
from bot.policy import (
    Channel,
    ChannelKind,
    Person,
    Policy,
    access_for,
    audience_access,
    class_names,
    explain_channel,
    explain_person,
    how_to_get_access,
    more_access,
    redact,
    share_access,
)
from bot.policy_file import PolicyError, load_policy

SUPPORT: frozenset[FieldClass] = frozenset(
    {"basic", "contact", "identifiers", "activity", "audiences"}
)
SALES: frozenset[FieldClass] = frozenset({"basic", "contact", "audiences", "scores", "financial"})
MANAGER: frozenset[FieldClass] = frozenset(
    {"basic", "contact", "identifiers", "activity", "audiences", "scores", "financial"}
)
DEMO_EVERYONE: frozenset[FieldClass] = frozenset(
    {"basic", "contact", "activity", "audiences", "scores"}
)

EXAMPLE = """\
roles:
  support:
    usergroups: [support-team]    # Slack user group handles
    users: [U012AB3CD]            # Slack user ids
    see: [basic, contact, identifiers, activity, audiences]
  sales:
    usergroups: [sales]
    see: [basic, contact, audiences, scores, financial]
  manager:
    usergroups: [cs-managers]
    see: [basic, contact, identifiers, activity, audiences, scores, financial]
    share: true
everyone: []
public_channels: [basic]
external_channels: []
"""


def person(user_id: str, *groups: str, **flags: bool) -> Person:
    return Person(user_id=user_id, usergroups=frozenset(groups), **flags)


AGENT = person("U0AGENT", "support-team")
SALESREP = person("U0SALES", "sales")
BOSS = person("U0MANAGER", "cs-managers")
BOTH = person("U0BOTH", "support-team", "sales")
NOBODY = person("U0NOBODY")
GUEST = person("U0GUEST", "support-team", is_restricted=True)
NAMED_GUEST = person("U012AB3CD", "support-team", is_ultra_restricted=True)
EXTERNAL = person("U0EXT", external=True)
UNKNOWN = person("U0HIDDEN", known=False)


@pytest.fixture
def default() -> Policy:
    return load_policy(None, demo=False)


@pytest.fixture
def demo() -> Policy:
    return load_policy(None, demo=True)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(text, "utf-8")
    return path


def policy_from(tmp_path: Path, text: str) -> Policy:
    return load_policy(write(tmp_path, text), demo=False)


# --- loading --------------------------------------------------------------------------------


def test_default_policy_is_the_documented_safe_one(default: Policy) -> None:
    assert default.source == "default"
    assert {r.name: r.usergroups for r in default.roles} == {
        "support": ("support-team",),
        "sales": ("sales",),
        "manager": ("cs-managers",),
    }
    assert {r.name: r.see for r in default.roles} == {
        "support": SUPPORT,
        "sales": SALES,
        "manager": MANAGER,
    }
    assert [r.name for r in default.roles if r.share] == ["manager"]
    assert all(not r.users for r in default.roles)  # no example user id that might be real
    assert default.everyone == frozenset()
    assert default.public_channels == frozenset({"basic"})
    assert default.external_channels == frozenset()


def test_demo_policy_is_the_default_plus_everyone(default: Policy, demo: Policy) -> None:
    assert demo.source == "demo"
    assert demo.roles == default.roles
    assert demo.everyone == DEMO_EVERYONE
    assert demo.public_channels == default.public_channels
    assert demo.external_channels == frozenset()


def test_a_file_wins_in_demo_mode_and_names_its_source(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    policy = load_policy(path, demo=True)
    assert policy.source == str(path)
    assert policy.everyone == frozenset()
    support = next(r for r in policy.roles if r.name == "support")
    assert support.users == ("U012AB3CD",)
    assert support.see == SUPPORT


def test_keys_left_out_grant_nothing(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "roles:\n  ops: {users: [U0OPS], see: [basic]}\n")
    assert policy.everyone == frozenset()
    assert policy.public_channels == frozenset()
    assert policy.external_channels == frozenset()


def test_handles_are_normalised(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "roles:\n  ops: {usergroups: ['@Ops-Team'], see: [basic]}\n")
    assert policy.roles[0].usergroups == ("ops-team",)
    assert access_for(policy, person("U1", "ops-team")).classes == {"basic"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "roles:\n  support: {usergroups: [s], see: [basic, finance]}\n",
            "roles.support.see: unknown class 'finance'; use one of basic, contact",
        ),
        ("everyone: [basic, vip]\n", "everyone: unknown class 'vip'"),
        ("public_channels: [publc]\n", "public_channels: unknown class 'publc'"),
        (
            "roles:\n  a: {users: [U1AA], see: [basic]}\nevryone: []\n",
            "evryone: unknown key; a policy has roles, everyone, public_channels",
        ),
        (
            "roles:\n  support: {usergroups: [s], seee: [basic]}\n",
            "roles.support.seee: unknown key; a role has usergroups, users, see, share",
        ),
        (
            "roles:\n  support: {see: [basic]}\n",
            "roles.support: no way to be assigned: give usergroups",
        ),
        (
            "roles:\n  support: {usergroups: [], users: [], see: [basic]}\n",
            "roles.support: no way to be assigned",
        ),
        ("roles:\n  support: {usergroups: [s]}\n", "roles.support.see: missing"),
        ("roles: [support, sales]\n", "roles: must be a mapping"),
        (
            "roles:\n  support: {users: [alice], see: [basic]}\n",
            "roles.support.users: Value error, 'alice' is not a Slack user id",
        ),
        (
            "roles:\n  support: {usergroups: [S0614TZR7], see: [basic]}\n",
            "looks like a user group id; give the group's handle",
        ),
        (
            "roles:\n  support: {usergroups: [s], see: [basic], share: 'yes'}\n",
            "roles.support.share: Value error, must be true or false",
        ),
        ("roles:\n  support: {usergroups: [s], see: basic}\n", "must be a list of classes"),
        (
            "roles:\n  a: {users: [U1AA], see: [basic]}\n  a: {users: [U2BB], see: [scores]}\n",
            "duplicate key 'a'",
        ),
        ("everyone: []\n", "the policy grants nothing to anyone"),
        ("roles: {support: {usergroups: [s], see: [basic]}\n", "is not valid YAML"),
        ("- support\n- sales\n", "must be a mapping with the keys roles, everyone"),
    ],
)
def test_validation_errors_name_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as raised:
        load_policy(path, demo=False)
    message = str(raised.value).replace("\n", " ")
    assert str(path) in message
    assert expected.replace("Value error, ", "") in message


_CLASSES = "basic, contact, identifiers, activity, audiences, scores, financial, sensitive"
_ASSIGN = (
    "no way to be assigned: give usergroups (Slack user group handles) or users (Slack user ids)"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("everyone: [basic, vip]\n", f"everyone: unknown class 'vip'; use one of {_CLASSES}"),
        (
            "everyone: basic\n",
            "everyone: must be a list of classes such as [basic, contact], not 'basic'",
        ),
        (
            "public_channels: 3\n",
            "public_channels: must be a list of classes such as [basic, contact], not 3",
        ),
        (
            "roles:\n  a: {users: [U1AA], see: [basic]}\nevryone: []\n",
            "evryone: unknown key; a policy has roles, everyone, public_channels, "
            "external_channels",
        ),
        ("roles:\n  support: {see: [basic]}\n", f"roles.support: {_ASSIGN}"),
        (
            "roles:\n  support: {usergroups: [s]}\n",
            "roles.support.see: missing; list the classes this role may see, such as "
            "[basic, contact]",
        ),
        (
            "roles:\n  a:\n",
            "roles.a.see: missing; list the classes this role may see, such as [basic, contact]",
        ),
        (
            "roles: [support, sales]\n",
            "roles: must be a mapping from a role name to its usergroups, users, see",
        ),
        (
            "roles:\n  support: {users: [alice], see: [basic]}\n",
            "roles.support.users: 'alice' is not a Slack user id (such as U012AB3CD: in Slack, "
            "open the person's profile, then More > Copy member ID)",
        ),
        (
            "roles:\n  support: {usergroups: [S0614TZR7], see: [basic]}\n",
            "roles.support.usergroups: 'S0614TZR7' looks like a user group id; give the group's "
            "handle (the name after @, such as support-team)",
        ),
        (
            "roles:\n  support: {usergroups: ['bad handle!'], see: [basic]}\n",
            "roles.support.usergroups: 'bad handle!' is not a user group handle (lower-case "
            "letters, digits, '-', '_' or '.', such as support-team)",
        ),
        (
            "roles:\n  support: {usergroups: s, see: [basic]}\n",
            "roles.support.usergroups: must be a list of user group handles such as "
            "[support-team], not 's'",
        ),
        (
            "roles:\n  support: {users: {U1AA: x}, see: [basic]}\n",
            "roles.support.users: must be a list of Slack user ids such as [U012AB3CD], "
            "not {'U1AA': 'x'}",
        ),
        (
            "roles:\n  support: {usergroups: [3], see: [basic]}\n",
            "roles.support.usergroups: 3 is not text; list user group handles such as "
            "[support-team]",
        ),
        (
            "roles:\n  support: {usergroups: [s], see: [basic], share: 'yes'}\n",
            "roles.support.share: must be true or false, not 'yes'",
        ),
        (
            "roles:\n  '-x': {usergroups: [s], see: [basic]}\n",
            "roles.-x.name: '-x' is not a role name: use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit",
        ),
        (
            "roles:\n  3: {usergroups: [s], see: [basic]}\n",
            "roles.3: a role name must be text, not 3",
        ),
        ("roles:\n  a: [s]\n", "roles.a: must be a mapping with usergroups, users, see, share"),
        (
            "everyone: []\n",
            "the policy grants nothing to anyone: add a role with `see`, or classes under "
            "`everyone`",
        ),
    ],
)
def test_each_policy_problem_is_said_in_full(tmp_path: Path, text: str, problem: str) -> None:
    """What the operator reads when the bot refuses to start on a wrong policy file."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as raised:
        load_policy(path, demo=False)
    assert str(raised.value) == f"BOT_POLICY_FILE {path} has problems:\n  {problem}"


def test_a_policy_file_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "- support\n- sales\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(path, demo=False)
    assert str(raised.value) == (
        f"BOT_POLICY_FILE {path} must be a mapping with the keys roles, everyone, public_channels, "
        "external_channels, not list"
    )


def test_an_empty_policy_file_grants_nothing_and_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(PolicyError) as raised:
        load_policy(path, demo=False)
    assert "the policy grants nothing to anyone" in str(raised.value)


def test_a_role_defined_twice_is_refused() -> None:
    role = {"name": "a", "users": ["U1AA"], "see": ["basic"]}
    with pytest.raises(ValueError, match="role a is defined twice"):
        Policy.model_validate({"roles": [role, role], "source": "test"})


def test_user_ids_and_handles_are_kept_once_in_their_order(tmp_path: Path) -> None:
    text = "roles:\n  a: {users: [' U2BB', U1AA, U2BB], usergroups: [b, '@A', a], see: [basic]}\n"
    role = policy_from(tmp_path, text).roles[0]
    assert role.users == ("U2BB", "U1AA")
    assert role.usergroups == ("b", "a")
    assert role.share is False


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = "roles:\n  a: {see: [basic]}\n  b: {usergroups: [x], see: [nope]}\nextra: 1\n"
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path, text), demo=False)
    message = str(raised.value)
    # One problem a line, indented under the file's name.
    assert message.splitlines()[1:] == [
        "  extra: unknown key; a policy has roles, everyone, public_channels, external_channels",
        f"  roles.a: {_ASSIGN}",
        f"  roles.b.see: unknown class 'nope'; use one of {_CLASSES}",
    ]


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="BOT_POLICY_FILE: cannot read"):
        load_policy(tmp_path / "missing.yml", demo=False)


# --- private answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "classes", "roles", "can_share", "why"),
    [
        (AGENT, SUPPORT, ("support",), False, "role support (user group @support-team)"),
        (SALESREP, SALES, ("sales",), False, "role sales (user group @sales)"),
        (BOSS, MANAGER, ("manager",), True, "role manager (user group @cs-managers)"),
        (BOTH, SUPPORT | SALES, ("support", "sales"), False, "role sales"),
        (NOBODY, frozenset(), (), False, "no role"),
        (GUEST, frozenset(), (), False, "guest account"),
        (NAMED_GUEST, SUPPORT, ("support",), False, "role support (user id U012AB3CD)"),
        (EXTERNAL, frozenset(), (), False, "another organization"),
        (UNKNOWN, frozenset(), (), False, "would not describe"),
        (person("U0GONE", "cs-managers", deleted=True), frozenset(), (), False, "deactivated"),
        (person("U0ABOT", "cs-managers", is_bot=True), frozenset(), (), False, "bots"),
    ],
)
def test_private_answer_grants(
    tmp_path: Path,
    who: Person,
    classes: frozenset[FieldClass],
    roles: tuple[str, ...],
    can_share: bool,
    why: str,
) -> None:
    policy = policy_from(tmp_path, EXAMPLE)
    access = access_for(policy, who)
    assert access.classes == classes
    assert access.roles == roles
    assert access.can_share is can_share
    assert why in access.why


def test_everyone_reaches_members_but_not_guests_externals_or_bots(demo: Policy) -> None:
    assert access_for(demo, NOBODY).classes == DEMO_EVERYONE
    assert access_for(demo, AGENT).classes == SUPPORT | DEMO_EVERYONE
    assert access_for(demo, NOBODY).can_share is False
    for outsider in (GUEST, EXTERNAL, UNKNOWN, person("U0ABOT", is_bot=True)):
        assert access_for(demo, outsider).classes == frozenset()


def test_deleted_or_bot_account_named_by_id_gets_nothing(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, EXAMPLE)
    assert access_for(policy, person("U012AB3CD", deleted=True)).classes == frozenset()
    assert access_for(policy, person("U012AB3CD", is_bot=True)).classes == frozenset()


def test_refusal_says_which_groups_give_access(default: Policy) -> None:
    assert how_to_get_access(default) == (
        # CLDR's English "or" list (Babel), with its serial comma.
        "Ask to be added to @support-team (support), @sales (sales), or @cs-managers (manager)."
    )
    assert "names them by user id" in how_to_get_access(default, person=GUEST)
    explained = explain_person(default, NOBODY)
    assert "sees: nothing" in explained and "@support-team (support)" in explained


def test_without_roles_the_refusal_still_says_whom_to_ask(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "everyone: [basic]\n")
    assert how_to_get_access(policy) == "Ask whoever runs the bot for access."


def test_roles_given_only_by_id_are_mentioned(tmp_path: Path) -> None:
    text = "roles:\n  ops: {users: [U0OPS], see: [basic]}\n  sup: {usergroups: [s], see: [basic]}\n"
    how = how_to_get_access(policy_from(tmp_path, text))
    assert how == (
        "Ask to be added to @s (sup). Role ops is given by user id in the bot's policy: ask "
        "whoever runs the bot."
    )


GUESTS_SENTENCE = (
    "Guests and people from other organizations get access only when the bot's policy names "
    "them by user id: ask whoever runs the bot."
)


@pytest.mark.parametrize("who", [GUEST, NAMED_GUEST, EXTERNAL], ids=["guest", "ultra", "external"])
def test_guests_and_people_of_other_orgs_are_told_groups_do_not_help(
    default: Policy, who: Person
) -> None:
    assert how_to_get_access(default, person=who) == GUESTS_SENTENCE
    assert "@support-team" not in how_to_get_access(default, person=who)


def test_several_roles_given_only_by_id_are_named_in_the_plural(tmp_path: Path) -> None:
    text = "roles:\n  ops: {users: [U0OPS], see: [basic]}\n  audit: {users: [U0A], see: [basic]}\n"
    assert how_to_get_access(policy_from(tmp_path, text)) == (
        "Roles ops or audit are given by user id in the bot's policy: ask whoever runs the bot."
    )


def test_explain_person_says_what_they_see_and_whether_they_may_share(default: Policy) -> None:
    assert explain_person(default, BOSS).split("\n  ")[1:] == [
        "sees: basic, contact, identifiers, activity, audiences, scores, financial",
        "may share cards into conversations: yes",
    ]
    assert explain_person(default, AGENT).split("\n  ")[1:] == [
        "sees: basic, contact, identifiers, activity, audiences",
        "may share cards into conversations: no",
    ]
    # How to get access is advice for a person, not for an account Slack would not describe,
    # a bot or a deactivated account.
    for who in (UNKNOWN, person("U0BOT", is_bot=True), person("U0GONE", deleted=True)):
        lines = explain_person(default, who).split("\n  ")
        assert lines[1:] == ["sees: nothing; asking for a customer gets a refusal"], who
    assert explain_person(default, NOBODY).split("\n  ")[2] == how_to_get_access(
        default, person=NOBODY
    )
    assert explain_person(default, GUEST).split("\n  ")[2] == GUESTS_SENTENCE


def test_why_a_person_sees_what_they_see(default: Policy, tmp_path: Path) -> None:
    """The first line of `policy explain` for a person: the rule that decided."""
    whys = {
        "U0GONE": (person("U0GONE", deleted=True), "deactivated account: no access"),
        "U0BOT": (person("U0BOT", is_bot=True), "bots and apps get no customer data"),
        "U0HIDDEN": (UNKNOWN, "Slack would not describe this account to the bot: no access"),
        "U0EXT": (
            EXTERNAL,
            "account of another organization: such accounts see customer data only when the "
            "policy names them by user id",
        ),
        "U0BOTH": (BOTH, "role support (user group @support-team); role sales (user group @sales)"),
    }
    for user_id, (who, why) in whys.items():
        assert access_for(default, who).why == why, user_id
        assert explain_person(default, who).startswith(f"{user_id}: {why}\n"), user_id
    text = "roles:\n  ops: {users: [U0OPS], usergroups: [ops, sre], see: [basic]}\n"
    ops = access_for(policy_from(tmp_path, text), person("U0OPS", "ops", "sre"))
    assert ops.why == "role ops (user id U0OPS, user group @ops, user group @sre)"


def test_explain_channel_heads_with_what_a_card_would_show(default: Policy) -> None:
    shown = explain_channel(default, channel("private", BOSS, AGENT))
    assert shown.startswith(
        "C1: cards show basic, contact, identifiers, activity, audiences\n  private channel"
    )
    refused = explain_channel(default, channel("private", BOSS, NOBODY))
    assert refused.startswith("C1: refused\n  In this private channel, 1 of 2 people may not see")


def test_each_channel_refusal_says_why_and_what_to_do(default: Policy) -> None:
    """The reason a person is told when a card may not go into a conversation."""
    unseen = Channel(channel_id="C1", kind="private", external=False, inspectable=False)
    connect = channel("private", BOSS, external=True)
    empty = channel("private")
    assert [audience_access(default, c).reason for c in (unseen, connect, empty)] == [
        "Slack would not tell the bot who is in this conversation, so it cannot tell who would "
        "read a card there and posts no customer data. Ask for the card privately instead: "
        "/customer with the identity, typed anywhere, answers only you.",
        "This is a Slack Connect private channel, so people from other organizations can read it, "
        "and this bot's policy never posts customer data there. Ask for the card privately "
        "instead: /customer with the identity, typed anywhere, answers only you.",
        "The bot found no people in this private channel to size a card for. Ask for the card "
        "privately instead: /customer with the identity, typed anywhere, answers only you.",
    ]
    assert audience_access(default, channel("im", BOSS)).reason.startswith(
        "direct message, 1 person:"
    )
    assert audience_access(default, channel("im", BOSS, AGENT)).reason.startswith(
        "direct message, 2 people:"
    )


def test_each_share_refusal_says_why(tmp_path: Path) -> None:
    nobody_shares = policy_from(tmp_path, "roles:\n  a: {users: [U0ONE], see: [basic]}\n")
    refused = share_access(nobody_shares, person("U0ONE"), channel("private", person("U0ONE")))
    assert refused.refused
    assert refused.reason == "This bot's policy lets no one share cards into conversations."
    text = (
        "roles:\n"
        "  lead: {usergroups: [leads, heads], see: [scores], share: true}\n"
        "  ops: {users: [U0ONE], see: [scores], share: true}\n"
        "  rep: {users: [U0TWO], see: [basic]}\n"
    )
    policy = policy_from(tmp_path, text)
    rep = share_access(policy, person("U0TWO"), channel("private", person("U0TWO")))
    assert rep.reason == (
        "Only roles lead (@leads, @heads) or ops (named by user id) may share cards into "
        "conversations."
    )
    disjoint = share_access(policy, person("U0ONE"), channel("private", person("U0TWO")))
    assert (disjoint.refused, disjoint.reason) == (
        True,
        "The readers of this conversation may see nothing you may see.",
    )


def test_the_people_without_access_are_listed_up_to_five(default: Policy) -> None:
    five = channel("private", BOSS, *(person(f"U{i}") for i in range(5)))
    assert "(U0, U1, U2, U3, U4)." in audience_access(default, five).reason
    six = channel("private", *(person(f"U{i}") for i in range(6)))
    assert "(U0, U1, U2, U3, U4 and 1 more)." in audience_access(default, six).reason


def test_why_people_without_a_role_see_what_they_see(default: Policy, demo: Policy) -> None:
    """The reasons a refused person or `policy explain` reads, word for word."""
    assert (
        access_for(demo, NOBODY).why
        == "everyone may see basic, contact, activity, audiences, scores"
    )
    assert access_for(default, GUEST).why == (
        "guest account: guests see customer data only when the policy names them by user id"
    )
    assert access_for(default, NOBODY).why == (
        "no role, and this policy gives people without a role nothing"
    )


def test_a_group_that_gives_two_roles_names_both(tmp_path: Path) -> None:
    text = (
        "roles:\n  a: {usergroups: [x], see: [basic]}\n  b: {usergroups: [x, y], see: [scores]}\n"
    )
    assert (
        how_to_get_access(policy_from(tmp_path, text)) == "Ask to be added to @x (a, b) or @y (b)."
    )


def test_lists_in_a_refusal_are_in_the_readers_language(tmp_path: Path) -> None:
    """A Dutch reader's refusal joins the groups and roles with Dutch words ("of"), not English."""
    dutch = reader_for("nl-NL")
    assert how_to_get_access(load_policy(None, demo=False), dutch) == (
        "Vraag of je wordt toegevoegd aan @support-team (support), @sales (sales) of "
        "@cs-managers (manager)."
    )
    text = (
        "roles:\n  ops: {users: [U0OPS], see: [basic]}\n  audit: {users: [U0A], see: [basic]}\n"
        "  sup: {usergroups: [s], see: [basic]}\n"
    )
    assert how_to_get_access(policy_from(tmp_path, text), dutch) == (
        "Vraag of je wordt toegevoegd aan @s (sup). De rollen ops of audit worden in het beleid "
        "van de bot per gebruikers-id toegekend: vraag het aan wie de bot beheert."
    )
    default = load_policy(None, demo=False)
    assert access_for(default, NOBODY, dutch).why == (
        "geen rol, en dit beleid geeft mensen zonder rol niets"
    )
    assert access_for(default, AGENT, dutch).why == "rol support (gebruikersgroep @support-team)"
    assert audience_access(default, channel("private", BOSS, NOBODY), dutch).reason.endswith(
        "(U0NOBODY). Deel hem waar iedereen toegang heeft, of vraag hen toegang te regelen. "
        "Vraag of je wordt toegevoegd aan @support-team (support), @sales (sales) of "
        "@cs-managers (manager)."
    )
    assert class_names([], dutch) == "niets"
    assert class_names(["scores", "basic"], dutch) == "basic, scores"
    sharers = (
        "roles:\n  lead: {usergroups: [leads], see: [scores], share: true}\n"
        "  ops: {users: [U0ONE], see: [scores], share: true}\n"
        "  rep: {users: [U0TWO], see: [basic]}\n"
    )
    rep = person("U0TWO")
    assert share_access(
        policy_from(tmp_path, sharers), rep, channel("private", rep), dutch
    ).reason == (
        "Alleen de rollen lead (@leads) of ops (bij gebruikers-id genoemd) mogen kaarten delen in "
        "gesprekken."
    )
    no_public = policy_from(tmp_path, "roles:\n  m: {usergroups: [m], see: [basic]}\n")
    assert audience_access(no_public, channel("public", person("U1", "m")), dutch).reason == (
        "Dit gesprek is een openbaar kanaal en het beleid van deze bot plaatst geen klantgegevens "
        "in openbare kanalen. Vraag de kaart privé op (/customer met de identiteit antwoordt "
        "alleen jou), of deel hem in een privékanaal."
    )


def test_the_home_offers_only_group_roles_that_would_show_more(tmp_path: Path) -> None:
    """App Home's "ask to join" list: roles given by user group, not held, adding a class."""
    text = (
        "roles:\n"
        "  ops: {users: [U0OPS], see: [financial]}\n"
        "  support: {usergroups: [support-team], see: [basic, contact]}\n"
        "  lite: {usergroups: [lite], see: [basic]}\n"
        "  sales: {usergroups: [sales, deals], see: [basic, scores]}\n"
    )
    policy = policy_from(tmp_path, text)
    offers = more_access(policy, access_for(policy, AGENT))
    assert [(o.name, o.usergroups, o.adds) for o in offers] == [
        ("sales", ("sales", "deals"), frozenset({"scores"}))
    ]
    assert [o.name for o in more_access(policy, access_for(policy, NOBODY))] == [
        "support",
        "lite",
        "sales",
    ]


_NO_DATA = ", so it cannot tell who would read a card there and posts no customer data. "
_NOT_IN = "The bot is not in this conversation" + _NO_DATA
_INVITE = (
    "Invite the bot with /invite and try again, or ask for the card privately: /customer with "
    "the identity answers only you."
)
_PRIVATELY = (
    "Ask for the card privately instead: /customer with the identity, typed anywhere, answers "
    "only you."
)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("channel_not_found", _NOT_IN + _INVITE),
        ("not_in_channel", _NOT_IN + _INVITE),
        (
            "missing_scope",
            "The bot lacks the Slack permission to see who is in this kind of conversation"
            + _NO_DATA
            + "Ask whoever runs the bot to reinstall it with the scopes in its manifest; until "
            "then, ask for the card privately: /customer with the identity answers only you.",
        ),
        (
            "too_many_members",
            "This conversation is too large for the bot to size a card for" + _NO_DATA + _PRIVATELY,
        ),
        (
            "ratelimited",
            "Slack would not tell the bot who is in this conversation" + _NO_DATA + _PRIVATELY,
        ),
    ],
)
def test_a_conversation_the_bot_cannot_see_into_says_what_to_do_for_slacks_error(
    default: Policy, code: str, reason: str
) -> None:
    """In words, with what to do: never Slack's error code."""
    closed = Channel(channel_id="C1", kind="private", external=False, inspectable=False, error=code)
    decision = audience_access(default, closed)
    assert decision.reason == reason
    assert code not in decision.reason


def test_each_audience_reason_word_for_word(default: Policy, tmp_path: Path) -> None:
    """What a sharer reads when a card goes into a conversation, or why it may not."""
    connect = policy_from(
        tmp_path, EXAMPLE.replace("external_channels: []", "external_channels: [basic, contact]")
    )
    disjoint = (
        "roles:\n  a: {usergroups: [a], see: [scores]}\n  b: {usergroups: [b], see: [contact]}\n"
    )
    no_public = "roles:\n  m: {usergroups: [m], see: [basic]}\n"
    capped_out = "roles:\n  a: {usergroups: [a], see: [scores]}\npublic_channels: [basic]\n"
    cases = [
        (
            default,
            channel("public", AGENT, BOSS),
            "public channel, 2 people: what every reader may see: basic "
            "(public channels capped at basic)",
        ),
        (
            connect,
            channel("public", AGENT, BOSS, external=True),
            "Slack Connect public channel, 2 people: what every reader may see: basic "
            "(public channels capped at basic; Slack Connect channels capped at basic, contact)",
        ),
        (
            connect,
            channel("private", AGENT, BOSS, external=True),
            "Slack Connect private channel, 2 people: what every reader may see: basic, contact "
            "(Slack Connect channels capped at basic, contact)",
        ),
        (
            default,
            channel("private", BOSS, NOBODY),
            "In this private channel, 1 of 2 people may not see customer data (U0NOBODY). Share it "
            "where everyone has access, or ask them to get access. Ask to be added to "
            "@support-team (support), @sales (sales), or @cs-managers (manager).",
        ),
        (
            policy_from(tmp_path, disjoint),
            channel("private", person("U1", "a"), person("U2", "b")),
            "In this private channel, its people may see customer data, but no class that all of "
            "them may see. Share it in a conversation with people who have the same access.",
        ),
        (
            policy_from(tmp_path, no_public),
            channel("public", person("U1", "m")),
            "In this public channel, this bot's policy posts no customer data in public channels. "
            "Ask for the card privately (/customer with the identity answers only you), or share "
            "it in a private channel.",
        ),
        (
            policy_from(tmp_path, capped_out),
            channel("public", person("U1", "a")),
            "In this public channel, everyone may see scores, but public channels capped at basic. "
            "Ask for the card privately (/customer with the identity answers only you), or share "
            "it in a private channel.",
        ),
    ]
    for policy, room, reason in cases:
        assert audience_access(policy, room).reason == reason


def test_each_share_reason_word_for_word(default: Policy, tmp_path: Path) -> None:
    refused = share_access(default, AGENT, channel("private", AGENT))
    assert (refused.classes, refused.refused, refused.reason) == (
        frozenset(),
        True,
        "Only role manager (@cs-managers) may share cards into conversations.",
    )
    text = (
        "roles:\n  lead: {usergroups: [leads], see: [basic], share: true}\n"
        "  m: {usergroups: [m], see: [basic, scores]}\n"
    )
    limited = share_access(
        policy_from(tmp_path, text), person("U0L", "leads"), channel("private", person("U1", "m"))
    )
    assert (limited.classes, limited.refused, limited.reason) == (
        frozenset({"basic"}),
        False,
        "private channel, 1 person: what every reader may see: basic, scores; limited to what "
        "you may see: basic",
    )
    full = share_access(default, BOSS, channel("im", BOSS))
    assert (full.classes, full.refused, full.reason) == (
        MANAGER,
        False,
        "direct message, 1 person: what every reader may see: basic, contact, identifiers, "
        "activity, audiences, scores, financial",
    )


# --- channel audiences ----------------------------------------------------------------------


def channel(kind: ChannelKind, *members: Person, external: bool = False) -> Channel:
    return Channel(channel_id="C1", kind=kind, external=external, members=members)


@pytest.mark.parametrize(
    ("kind", "members", "expected"),
    [
        ("private", (AGENT, BOSS), SUPPORT),
        ("private", (AGENT, SALESREP), frozenset({"basic", "contact", "audiences"})),
        ("im", (BOSS,), MANAGER),
        ("im", (BOSS, SALESREP), SALES),
        ("mpim", (BOSS, AGENT, BOTH), SUPPORT),
        ("public", (AGENT, BOSS), frozenset({"basic"})),
    ],
)
def test_audience_is_what_every_reader_may_see(
    default: Policy, kind: ChannelKind, members: tuple[Person, ...], expected: frozenset[str]
) -> None:
    decision = audience_access(default, channel(kind, *members))
    assert not decision.refused
    assert decision.classes == expected


def test_public_channel_is_capped(default: Policy) -> None:
    decision = audience_access(default, channel("public", AGENT, BOSS))
    assert decision.reason.startswith("public channel, 2 people")
    assert "public channels capped at basic" in decision.reason


@pytest.mark.parametrize(
    ("members", "blocker"),
    [
        ((BOSS, NOBODY), "U0NOBODY"),
        ((BOSS, GUEST), "U0GUEST"),
        ((BOSS, UNKNOWN), "U0HIDDEN"),
        ((BOSS, EXTERNAL), "U0EXT"),
    ],
)
def test_one_reader_without_grants_refuses_the_post(
    default: Policy, members: tuple[Person, ...], blocker: str
) -> None:
    decision = audience_access(default, channel("private", *members))
    assert decision.refused and decision.classes == frozenset()
    assert f"1 of 2 people may not see customer data ({blocker})" in decision.reason
    assert "@support-team (support)" in decision.reason


def test_readers_with_no_class_in_common_refuse(tmp_path: Path) -> None:
    text = "roles:\n  a: {usergroups: [a], see: [scores]}\n  b: {usergroups: [b], see: [contact]}\n"
    decision = audience_access(
        policy_from(tmp_path, text), channel("private", person("U1", "a"), person("U2", "b"))
    )
    assert decision.refused
    assert "no class that all of them may see" in decision.reason


def test_public_channel_refused_when_the_policy_allows_nothing_there(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "roles:\n  m: {usergroups: [m], see: [basic]}\n")
    decision = audience_access(policy, channel("public", person("U1", "m")))
    assert decision.refused
    assert "posts no customer data in public channels" in decision.reason


def test_slack_connect_refused_when_external_channels_is_empty(default: Policy) -> None:
    decision = audience_access(default, channel("private", BOSS, external=True))
    assert decision.refused and decision.classes == frozenset()
    assert "Slack Connect private channel" in decision.reason
    assert "other organizations" in decision.reason


def test_slack_connect_capped_when_allowed(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path, EXAMPLE.replace("external_channels: []", "external_channels: [basic, contact]")
    )
    private = audience_access(policy, channel("private", BOSS, AGENT, external=True))
    assert private.classes == frozenset({"basic", "contact"})
    assert "Slack Connect channels capped at basic, contact" in private.reason
    public = audience_access(policy, channel("public", BOSS, AGENT, external=True))
    assert public.classes == frozenset({"basic"})
    blocked = audience_access(policy, channel("private", BOSS, EXTERNAL, external=True))
    assert blocked.refused


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("channel_not_found", "The bot is not in this conversation"),
        ("not_in_channel", "Invite the bot with /invite"),
        ("missing_scope", "reinstall it with the scopes in its manifest"),
        ("fatal_error", "Slack would not tell the bot who is in this conversation"),
    ],
)
def test_uninspectable_channel_is_refused_in_words_not_codes(
    default: Policy, demo: Policy, code: str, words: str
) -> None:
    closed = Channel(channel_id="C1", kind="private", external=False, inspectable=False, error=code)
    for policy in (default, demo):
        decision = audience_access(policy, closed)
        assert decision.refused and decision.classes == frozenset()
        assert words in decision.reason
        assert code not in decision.reason and "/customer" in decision.reason


def test_channel_without_people_is_refused(demo: Policy) -> None:
    assert audience_access(demo, channel("private")).refused


def test_demo_everyone_reaches_a_channel_of_newcomers(demo: Policy) -> None:
    decision = audience_access(demo, channel("private", NOBODY, AGENT))
    assert decision.classes == DEMO_EVERYONE & (SUPPORT | DEMO_EVERYONE)


def test_share_needs_a_sharing_role_and_never_exceeds_the_sharer(demo: Policy) -> None:
    room = channel("private", AGENT, BOSS)
    refused = share_access(demo, AGENT, room)
    assert refused.refused and "manager (@cs-managers)" in refused.reason
    allowed = share_access(demo, BOSS, room)
    assert not allowed.refused and allowed.classes == SUPPORT | DEMO_EVERYONE
    # The sharer is not in the channel: the card is still cut to what the sharer may see.
    roomy = channel("private", person("U0M2", "cs-managers"), person("U0M3", "cs-managers"))
    narrow = Policy.model_validate(
        {
            "roles": [
                {"name": "lead", "users": ["U0LEAD"], "see": ["basic"], "share": True},
                {"name": "m", "usergroups": ["cs-managers"], "see": ["basic", "scores"]},
            ],
            "source": "test",
        }
    )
    assert share_access(narrow, person("U0LEAD"), roomy).classes == frozenset({"basic"})


def test_explain_channel_lists_members(default: Policy) -> None:
    text = explain_channel(default, channel("private", AGENT, NOBODY))
    assert text.startswith("C1: refused")
    assert "U0AGENT: basic, contact, identifiers, activity, audiences" in text
    assert "U0NOBODY: nothing" in text


# --- redaction ------------------------------------------------------------------------------

SECRETS: dict[FieldClass, tuple[str, ...]] = {
    "basic": ("Doelittle", "Acme Secret Corp"),
    "contact": ("jane.doe@example.com", "+15555550123", "Secret Street 1"),
    "identifiers": ("CRM-SECRET-77", "ECID-SECRET-99"),
    "activity": ("Secret Widget", "evt-secret-1"),
    "audiences": ("Secret Audience Name", "seg-secret-1"),
    "scores": ("0.8731",),
    "financial": ("98765.43", "overdue-secret"),
    "sensitive": ("1984-03-07", "gender-secret"),
}


def make_customer() -> Customer:
    profile = ProfileEntity(
        entity_id="BQxProfileXid01",
        entity={
            "person": {
                "name": {"firstName": "Jane", "lastName": "Doelittle"},
                "birthDate": "1984-03-07",
                "gender": "gender-secret",
            },
            "_acme": {
                "crm": {"company": "Acme Secret Corp"},
                "scores": {"churnPropensity": 0.8731, "lifetimeValue": 98765.43},
                "billing": {"paymentStatus": "overdue-secret"},
            },
            "homeAddress": {"street1": "Secret Street 1"},
            "personalEmail": {"address": "jane.doe@example.com"},
            "mobilePhone": {"number": "+15555550123"},
            "segmentMembership": {
                "ups": {
                    "seg-secret-1": {
                        "status": "realized",
                        "lastQualificationTime": "2025-11-01T00:00:00Z",
                    }
                }
            },
        },
        identities=(
            ProfileIdentity(namespace="email", value="jane.doe@example.com", primary=True),
            ProfileIdentity(namespace="phone", value="+15555550123"),
            ProfileIdentity(namespace="crmid", value="CRM-SECRET-77"),
            ProfileIdentity(namespace="ECID", value="ECID-SECRET-99"),
        ),
    )
    events = EventPage(
        events=(
            ExperienceEvent(
                event_id="evt-secret-1",
                timestamp=datetime(2025, 12, 1, 9, 30, tzinfo=UTC),
                entity={
                    "eventType": "commerce.purchases",
                    "productListItems": [{"name": "Secret Widget"}],
                },
            ),
        ),
        more=True,
    )
    return build_customer(
        profile=profile,
        query=IdentityRef(namespace="email", value="jane.doe@example.com"),
        layout=load_layout(),
        events=events,
        audiences={"seg-secret-1": Audience(id="seg-secret-1", name="Secret Audience Name")},
        fetched_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        demo=False,
    )


def test_the_test_customer_carries_every_secret() -> None:
    dump = make_customer().model_dump_json()
    for values in SECRETS.values():
        for value in values:
            assert value in dump


@pytest.mark.parametrize("granted", FIELD_CLASSES)
def test_redact_keeps_only_the_granted_class(granted: FieldClass) -> None:
    redacted = redact(make_customer(), frozenset({granted}))
    dump = redacted.customer.model_dump_json()
    for field_class, values in SECRETS.items():
        for value in values:
            if field_class == granted:
                assert value in dump, (granted, value)
            else:
                assert value not in dump, (granted, field_class, value)
    assert redacted.shown == {granted}
    assert redacted.withheld == set(FIELD_CLASSES) - {granted}


def test_redact_with_nothing_leaves_no_name_events_or_audiences() -> None:
    redacted = redact(make_customer(), frozenset())
    customer = redacted.customer
    assert customer.name is None
    assert customer.identities == () and customer.fields == () and customer.audiences == ()
    assert customer.events == ()
    assert customer.events_available is False and customer.more_events is False
    assert customer.query == IdentityRef(namespace="email", value="")
    assert customer.profile_id == "BQxProfileXid01"
    assert redacted.shown == frozenset()


def test_redact_with_activity_keeps_event_paging() -> None:
    customer = redact(make_customer(), frozenset({"activity"})).customer
    assert customer.events_available is True and customer.more_events is True
    assert [e.event_id for e in customer.events] == ["evt-secret-1"]


def test_withheld_lists_only_classes_that_had_data() -> None:
    bare = make_customer().model_copy(update={"audiences": (), "events": (), "more_events": False})
    redacted = redact(bare, frozenset({"basic"}))
    assert "audiences" not in redacted.withheld and "activity" not in redacted.withheld
    assert "financial" in redacted.withheld


def test_a_name_alone_or_events_alone_count_as_data_shown_or_withheld() -> None:
    """The audit's shown and withheld lists: a name is basic data, events (on this page or
    beyond it) are activity, whatever else the profile holds."""
    full = make_customer()
    name_only = full.model_copy(
        update={"fields": (), "identities": (), "audiences": (), "events": (), "more_events": False}
    )
    assert redact(name_only, frozenset({"basic"})).shown == {"basic"}
    assert redact(name_only, frozenset()).withheld == {"basic"}
    nameless = full.model_copy(update={"name": None, "fields": ()})
    assert "basic" not in redact(nameless, frozenset(FIELD_CLASSES)).shown
    paged_only = full.model_copy(update={"events": (), "more_events": True})
    assert "activity" in redact(paged_only, frozenset()).withheld
    page_only = full.model_copy(update={"more_events": False})
    assert "activity" in redact(page_only, frozenset({"activity"})).shown


def test_sensitive_fields_only_for_roles_that_list_sensitive(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        "see: [basic, contact, identifiers, activity, audiences, scores, financial]",
        "see: [basic, contact, identifiers, activity, audiences, scores, financial, sensitive]",
    )
    policy = policy_from(tmp_path, text)
    customer = make_customer()
    for who in (AGENT, SALESREP, BOTH, NAMED_GUEST, NOBODY):
        dump = redact(customer, access_for(policy, who).classes).customer.model_dump_json()
        assert not any(value in dump for value in SECRETS["sensitive"]), who.user_id
    boss_view = redact(customer, access_for(policy, BOSS).classes)
    assert all(value in boss_view.customer.model_dump_json() for value in SECRETS["sensitive"])
    # In a channel, one reader without `sensitive` removes it for everyone.
    shared = audience_access(policy, channel("private", BOSS, AGENT))
    assert "sensitive" not in shared.classes
    assert "sensitive" in redact(customer, shared.classes).withheld
