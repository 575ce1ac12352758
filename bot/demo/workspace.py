"""The demo Slack workspace: people, user groups and channels for the console, tests and benchmarks.

Users (team ``T0DEMO`` unless noted):

=============  =====================  =========================================================
id             groups                 notes
=============  =====================  =========================================================
``U0AGENT``    support-team           a support agent
``U0SALES``    sales                  a sales rep
``U0MANAGER``  cs-managers            a customer-success manager
``U0BOTH``     support-team, sales    belongs to two groups
``U0NOBODY``   (none)                 a member of the workspace with no group
``U0GUEST``    support-team           ``is_restricted`` guest: guests get nothing through groups
``U0EXT``      (none)                 a user of another org (team ``T0OTHER``), met in Slack
                                      Connect channels; ``users.info`` answers ``user_not_found``
``U0BOT``      (none)                 the bot itself (``is_bot``, bot id ``B0BOT``)
=============  =====================  =========================================================

User groups (handle -> id): ``support-team`` -> ``S0SUPPORT``, ``sales`` -> ``S0SALES``,
``cs-managers`` -> ``S0MANAGERS``.

Channels:

==============  =================  ========  ====================================================
id              name               kind      members / notes
==============  =================  ========  ====================================================
``C0PUBLIC``    ``#deals``         public    agent, sales, manager, bot
``C0PRIVATE``   ``#escalations``   private   agent, manager, bot
``C0SUPPORT``   ``#support``       private   agent, both, manager, bot
``C0CONNECT``   ``#acme-partner``  public    agent, manager, ext, bot; Slack Connect
                                             (``is_ext_shared``, teams T0DEMO and T0OTHER)
``D0MANAGER``   (im)               im        manager, bot
``G0MPIM``      ``mpdm-...``       mpim      manager, agent, bot
``C0SECRET``    ``#board``         private   agent, manager; the bot is not a member, so
                                             ``conversations.info`` answers ``channel_not_found``
==============  =================  ========  ====================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

TEAM_ID = "T0DEMO"
TEAM_NAME = "Demo Co"
TEAM_DOMAIN = "demo-co"
OTHER_TEAM_ID = "T0OTHER"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0DEMO"

ChannelKind = Literal["public", "private", "im", "mpim"]


@dataclass(frozen=True)
class WorkspaceUser:
    """A person (or bot) in the workspace, with the flags `users.info` reports."""

    id: str
    name: str
    real_name: str
    is_bot: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    deleted: bool = False
    team_id: str = TEAM_ID
    #: Slack's locale (sent by users.info only with include_locale=true) and IANA time zone
    locale: str = "en-US"
    tz: str = "Europe/London"


@dataclass(frozen=True)
class WorkspaceChannel:
    """A conversation: its kind, its members and how it is shared."""

    id: str
    name: str
    kind: ChannelKind
    members: tuple[str, ...]
    is_ext_shared: bool = False
    shared_team_ids: tuple[str, ...] = (TEAM_ID,)
    is_pending_ext_shared: bool = False
    bot_is_member: bool = True


@dataclass(frozen=True)
class Workspace:
    """Users and channels by id, and user groups by handle as (usergroup id, member ids)."""

    users: Mapping[str, WorkspaceUser]
    usergroups: Mapping[str, tuple[str, tuple[str, ...]]]
    channels: Mapping[str, WorkspaceChannel]
    team_id: str = TEAM_ID
    team_name: str = TEAM_NAME
    team_domain: str = TEAM_DOMAIN
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    app_id: str = APP_ID
    usergroup_names: Mapping[str, str] = field(default_factory=dict)

    def group_name(self, handle: str) -> str:
        """The display name of a user group (falls back to the handle)."""
        return self.usergroup_names.get(handle, handle)

    def groups_of(self, user_id: str) -> tuple[str, ...]:
        """Handles of the user groups `user_id` belongs to, in declaration order."""
        return tuple(handle for handle, (_, ids) in self.usergroups.items() if user_id in ids)

    def usergroup_by_id(self, usergroup_id: str) -> tuple[str, tuple[str, ...]] | None:
        """(handle, member ids) of the group with this id, or None."""
        for handle, (group_id, ids) in self.usergroups.items():
            if group_id == usergroup_id:
                return handle, ids
        return None


def with_reader(workspace: Workspace, user_id: str, *, locale: str, tz: str | None) -> Workspace:
    """The workspace with `user_id` given a Slack locale (and time zone): the console's
    --locale/--tz, and tests of a person who reads another language."""
    user = workspace.users[user_id]
    changed = replace(user, locale=locale, tz=tz or user.tz)
    return replace(workspace, users={**workspace.users, user_id: changed})


def demo_workspace() -> Workspace:
    """The demo workspace described in this module's docstring (a fresh object each call)."""
    users = [
        WorkspaceUser("U0AGENT", "agent", "Avery Agent"),
        WorkspaceUser("U0SALES", "sales", "Sam Sales"),
        WorkspaceUser("U0MANAGER", "manager", "Morgan Manager"),
        WorkspaceUser("U0BOTH", "both", "Blake Both"),
        WorkspaceUser("U0NOBODY", "nobody", "Noel Nobody"),
        WorkspaceUser("U0GUEST", "guest", "Gale Guest", is_restricted=True),
        WorkspaceUser("U0EXT", "partner", "Parker Partner", team_id=OTHER_TEAM_ID),
        WorkspaceUser(BOT_USER_ID, "customer-bot", "Customer Bot", is_bot=True),
    ]
    usergroups = {
        "support-team": ("S0SUPPORT", ("U0AGENT", "U0BOTH", "U0GUEST")),
        "sales": ("S0SALES", ("U0SALES", "U0BOTH")),
        "cs-managers": ("S0MANAGERS", ("U0MANAGER",)),
    }
    group_names = {"support-team": "Support team", "sales": "Sales", "cs-managers": "CS managers"}
    channels = [
        WorkspaceChannel(
            id="C0PUBLIC",
            name="deals",
            kind="public",
            members=("U0AGENT", "U0SALES", "U0MANAGER", BOT_USER_ID),
        ),
        WorkspaceChannel(
            id="C0PRIVATE",
            name="escalations",
            kind="private",
            members=("U0AGENT", "U0MANAGER", BOT_USER_ID),
        ),
        WorkspaceChannel(
            id="C0SUPPORT",
            name="support",
            kind="private",
            members=("U0AGENT", "U0BOTH", "U0MANAGER", BOT_USER_ID),
        ),
        WorkspaceChannel(
            id="C0CONNECT",
            name="acme-partner",
            kind="public",
            members=("U0AGENT", "U0MANAGER", "U0EXT", BOT_USER_ID),
            is_ext_shared=True,
            shared_team_ids=(TEAM_ID, OTHER_TEAM_ID),
        ),
        WorkspaceChannel(id="D0MANAGER", name="", kind="im", members=("U0MANAGER", BOT_USER_ID)),
        WorkspaceChannel(
            id="G0MPIM",
            name="mpdm-manager--agent--customer-bot-1",
            kind="mpim",
            members=("U0MANAGER", "U0AGENT", BOT_USER_ID),
        ),
        WorkspaceChannel(
            id="C0SECRET",
            name="board",
            kind="private",
            members=("U0AGENT", "U0MANAGER"),
            bot_is_member=False,
        ),
    ]
    return Workspace(
        users={user.id: user for user in users},
        usergroups=usergroups,
        channels={channel.id: channel for channel in channels},
        usergroup_names=group_names,
    )
