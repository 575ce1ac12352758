"""The bot's named words: notice kinds, card and audit surfaces, and audit outcomes, for mypy.

Card surfaces say where a card is shown (for whom it is redacted); audit surfaces say where the
request came from. An audit outcome is written as the string it has always been (auditors search
for "no_grants:lookup" or "post_failed:not_in_channel"), but is built from a checked value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.aep.errors import ErrorKind
from bot.identity import RefusalReason

#: Every notice a person can be sent (cards.NOTICE_VALUES says which values each one takes).
NoticeKind = Literal[
    "looking_up",
    "usage",
    "no_identity",
    "not_an_identity",
    "not_found",
    "too_many_identities",
    "rate_limited",
    "unavailable",
    "server_error",
    "unreachable",
    "sign_in_failed",
    "too_large",
    "credentials",
    "misconfigured",
    "rejected",
    "malformed",
    "internal_error",
    "refused_no_grants",
    "refused_channel",
    "refused_identity",
    "expired",
    "more_identities",
    "share_done",
    "share_not_allowed",
    "share_refused",
    "dm_sent",
    "dm_failed",
    "events_not_granted",
    "window_failed",
    "incomplete_request",
    "demo_mode",
    "slack_busy",
    "post_failed",
    "history_gone",
]

#: What could not be done for a person whose answer was to come outside any conversation, said
#: at the top of their App Home (cards.HomeNotice): the direct message with the card (or the
#: words) was not taken, or the search modal could not be opened.
HomeProblem = Literal["dm_failed", "search_unopened"]

#: Where a card is shown: privately to the asker, or shared with everyone in a conversation.
CardSurface = Literal["private", "shared"]

#: Where an audited request came from: a private answer (command, shortcut, button), a mention,
#: the More events modal, a share, a Work Object's flexpane, a pasted profile link unfurled, the
#: App Home (a replay from history, Clear my history), or the search modal (from the Home's
#: button or the find_customer shortcut).
AuditSurface = Literal[
    "private", "mention", "modal", "share", "flexpane", "unfurl", "home", "search"
]

#: What an audited request was.
AuditAction = Literal[
    "lookup",
    "refusal",
    "share",
    "detail_view",
    "more_events",
    "refresh",
    "unfurl",
    "clear_history",
    "send_to_dm",
]

#: What a private card answers: a lookup, the Refresh button, View details on a shared card, or
#: Send to my DMs (the card again, as a direct message from the bot).
PrivateAction = Literal["lookup", "refresh", "detail_view", "send_to_dm"]

#: What a person without grants tried: a private card, More events, or the entry point they
#: came by.
RefusedAt = PrivateAction | Literal["more_events", "command", "mention", "shortcut", "unfurl"]

#: Outcomes that are one word; a failed lookup's outcome is its error's kind (bot.aep.errors).
OutcomeWord = Literal[
    "shown",
    "posted",
    "channel_refused",
    "events_not_granted",
    "share_not_allowed",
    "token_refused",
    "cleared",
]


@dataclass(frozen=True)
class NoGrants:
    """Refused: the person's roles grant no field class."""

    at: RefusedAt

    def __str__(self) -> str:
        return f"no_grants:{self.at}"


@dataclass(frozen=True)
class IdentityRefused:
    """Refused: identity-like text was not read (its reason, never its text)."""

    reason: RefusalReason

    def __str__(self) -> str:
        return f"identity_refused:{self.reason}"


@dataclass(frozen=True)
class PostFailed:
    """A card Slack did not take into a conversation; `code` is Slack's error code."""

    code: str

    def __str__(self) -> str:
        return f"post_failed:{self.code}"


AuditOutcome = OutcomeWord | ErrorKind | NoGrants | IdentityRefused | PostFailed
