"""Every Slack id the bot owns: command, shortcut, action, callback and block ids, in one place."""

from __future__ import annotations

import re

# Entry points.
COMMAND = "/customer"
LOOKUP_SHORTCUT = "lookup_customer"
#: The global shortcut that opens the search modal (public: named in manifest.yml).
FIND_SHORTCUT = "find_customer"

# The App Home: "Find a customer" opens the search modal; each recent lookup has a button whose
# value is its entry id in the person's own history; "Clear my history" empties it.
HOME_FIND = "home_find_customer"
HOME_REPLAY = "home_replay_lookup"
HOME_CLEAR = "home_clear_history"
HOME_ACTIONS_BLOCK = "home_actions"
HOME_HISTORY_BLOCK = "home_history"

# Buttons on the customer card; each button's value is the lookup's opaque token.
REFRESH = "customer_refresh"
MORE_EVENTS = "customer_more_events"
SHARE = "customer_share"
VIEW_DETAILS = "customer_view_details"
#: "Send to my DMs": the clicker's private card again, as a direct message from the bot (an
#: ephemeral card is gone when Slack reloads; a direct message stays).
SEND_TO_DM = "customer_send_to_dm"
OPEN_IN_AEP = "customer_open_in_aep"

# The identity picker: one button per identity, action ids PICK_IDENTITY + "_<index>"
# (action ids must be unique within a block); listeners match PICK_IDENTITY_ACTION.
PICK_IDENTITY = "customer_pick_identity"
PICK_IDENTITY_ACTION = re.compile(rf"^{PICK_IDENTITY}(_\d+)?$")

# Modals.
SHARE_MODAL = "customer_share_modal"
SHARE_REASON_BLOCK = "share_reason"
SHARE_REASON_INPUT = "share_reason_input"
EVENTS_MODAL = "customer_events_modal"
SEARCH_MODAL = "customer_search_modal"
SEARCH_IDENTITY_BLOCK = "search_identity"
SEARCH_IDENTITY_INPUT = "search_identity_input"
SEARCH_NAMESPACE_BLOCK = "search_namespace"
SEARCH_NAMESPACE_INPUT = "search_namespace_input"

# Work Objects: the entity type a customer is shown as (Slack's generic "Item"), and the type of
# its external_ref, whose id is the lookup's opaque token.
ENTITY_TYPE = "slack#/entities/item"
WORK_OBJECT_REF_TYPE = "customer_profile"

# Block ids of the blocks that hold buttons, so a listener can tell where a click came from.
CARD_ACTIONS_BLOCK = "customer_card_actions"
PICKER_ACTIONS_BLOCK = "customer_picker_actions"


def pick_identity_action(index: int) -> str:
    """The action id of the picker button for choice `index` (0-based)."""
    return f"{PICK_IDENTITY}_{index}"


def template_globals() -> dict[str, str]:
    """The string ids above, by name, for the Block Kit templates."""
    return {
        name: value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, str)
    }


#: The bot scopes manifest.yml asks for (tests/test_manifest.py keeps the two the same): a token
#: without one of them fails a surface at run time.
BOT_SCOPES = frozenset(
    {
        "commands",
        "app_mentions:read",
        "chat:write",
        "users:read",
        "usergroups:read",
        "channels:read",
        "groups:read",
        "im:read",
        "mpim:read",
        "im:write",
        "links:read",
        "links:write",
    }
)
