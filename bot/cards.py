"""Customer + viewer context -> Block Kit payloads rendered from blocks/*.j2, limits enforced."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import jinja2
from babel import lists, numbers
from jinja2.ext import do as do_extension
from jinja2.runtime import Context
from markupsafe import Markup

import bot
from bot import ids
from bot.blockkit import (
    BUTTON_URL_CHARS,
    BUTTON_VALUE_CHARS,
    SECTION_FIELDS,
    TEXT_CHARS,
    CardLimitError,
    check_entity,
    check_message,
    check_view,
)
from bot.customer import (
    EVENT_TITLES,
    MARKETING_EVENTS,
    PURCHASE_EVENT,
    UNTYPED_EVENT,
    Customer,
    CustomerEvent,
    CustomerField,
    CustomerIdentity,
)
from bot.formatting import (
    format_date,
    format_datetime,
    format_money,
    format_value,
    mrkdwn_clip,
    one_line,
    relative_time,
    slack_date,
)
from bot.i18n import N_, Reader
from bot.layout import DEFAULT_SECTIONS, FIELD_CLASSES, LAST_ORDER, Label, Topic, label_text
from bot.share_metadata import ShareMetadata
from bot.vocabulary import HomeProblem, NoticeKind

#: Slack refuses messages whose blocks total about 13k characters even under 50 blocks
#: (`msg_blocks_too_long`, bolt-js #2509, threshold unverified); cards aim to stay below this.
CARD_SIZE_BUDGET = 12_000


@dataclass(frozen=True)
class CardBudget:
    """How much of each list a card shows before "+N more", and how long a field value may be."""

    value_chars: int
    field_blocks: int
    score_blocks: int
    events: int
    identities: int
    memberships: int
    left_audiences: int


#: Tried in order until a card fits CARD_SIZE_BUDGET. The last, the smallest card we make, is sent
#: even if still over: with layout labels of up to 60 characters it stays near 11k.
CARD_BUDGETS = (
    CardBudget(300, 30, 2, 10, 12, 10, 5),
    CardBudget(120, 12, 1, 8, 8, 8, 5),
    CardBudget(60, 3, 1, 5, 5, 5, 3),
)
#: The most fields the summary line under the name holds (it stays one line).
SUMMARY_MOST = 8
#: How many events the details modal lists (and the lookup behind it asks for).
MODAL_EVENTS = 50
PICKER_CHOICES = 10
#: A Work Object shows at most this many identities and layout fields, and audience names.
WORK_OBJECT_IDENTITIES = 6
# 6 identities + 20 fields + source, last event, audiences and what is hidden = 30, the most
# custom fields bot.blockkit lets an entity carry.
WORK_OBJECT_FIELDS = 20
WORK_OBJECT_AUDIENCES = 8
WORK_OBJECT_VALUE_CHARS = 300
SHARE_REASON_CHARS = 200

#: Notice kinds and the values each one takes (every value optional, None when unknown).
NOTICE_VALUES: dict[str, tuple[str, ...]] = {
    "looking_up": ("query",),
    "usage": ("usage",),
    "no_identity": (),
    "not_an_identity": (
        "problem",
        "typed",
        "suggestion",
        "domain",
        "missing",
        "region",
        "region_name",
        "example_region",
        "known",
    ),
    "not_found": ("query", "domain", "suggestion"),
    "too_many_identities": ("query",),
    "rate_limited": ("seconds",),
    "unavailable": ("seconds",),
    "server_error": ("status",),
    "unreachable": (),
    "sign_in_failed": (),
    "too_large": (),
    "credentials": (),
    "misconfigured": (),
    "rejected": ("message",),
    "malformed": (),
    "internal_error": ("reference",),
    "refused_no_grants": ("how",),
    "refused_channel": ("reason",),
    "refused_identity": ("reasons",),
    "expired": (),
    "more_identities": ("shown", "total", "capped"),
    "share_done": ("channel",),
    "share_not_allowed": (),
    "share_refused": ("reason",),
    "dm_sent": (),
    "dm_failed": ("reason",),
    "events_not_granted": (),
    "window_failed": (),
    "incomplete_request": (),
    "demo_mode": (),
    "slack_busy": ("seconds",),
    "post_failed": ("reason",),
    "history_gone": (),
}

#: Why the search modal cannot look up what was typed (blocks/search_error.json.j2).
SearchError = Literal["empty", "no_identity", "refused", "several", "wrong_kind", "need_namespace"]
#: The longest identity the search modal takes (a namespace code and a value, with room).
SEARCH_INPUT_CHARS = 1100


@dataclass(frozen=True)
class HomeEntry:
    """One recent lookup as the Home lists it; `value` is None when the person's grants no
    longer cover the identity's class (the namespace alone is named)."""

    id: str
    label: str
    value: str | None
    at: datetime
    surface: str


@dataclass(frozen=True)
class MoreAccess:
    """A role the person does not hold that would show them more: its groups and what it adds."""

    name: str
    groups: tuple[str, ...]
    adds: frozenset[str]


@dataclass(frozen=True)
class HomeNotice:
    """A failure said at the top of the App Home, where the person is when a direct message or
    the search modal did not reach them: what could not be done, and why in the reader's words
    (from Slack's failure, never customer data)."""

    problem: HomeProblem
    why: str


@dataclass(frozen=True)
class HomeContext:
    """What one person's App Home shows (see blocks/home.json.j2)."""

    now: datetime
    granted: bool
    classes: frozenset[str]
    roles: tuple[str, ...]
    can_share: bool
    how: str | None
    more: tuple[MoreAccess, ...]
    history_on: bool
    history_days: int
    entries: tuple[HomeEntry, ...]
    demo: bool
    sandbox: str
    merge_policy: str | None
    notice: HomeNotice | None = None


# Field classes in words, for the "... are hidden" line; all plural so one verb fits any list.
_CLASS_WORDS: dict[str, str] = {
    "basic": N_("profile details"),
    "contact": N_("contact details"),
    "identifiers": N_("identifiers"),
    "activity": N_("recent events"),
    "audiences": N_("audience memberships"),
    "scores": N_("scores"),
    "financial": N_("financial details"),
    "sensitive": N_("sensitive details"),
}

# Namespaces in words, by lower-case code: Adobe's standard namespaces by the names Platform
# gives them, and the common custom ones (crmid, loyaltyid); product names (ECID, AAID,
# IDFA...) read the same in every language. A code not listed is shown as the code.
_NAMESPACE_LABELS: dict[str, str] = {
    "email": N_("Email"),
    "phone": N_("Phone"),
    "phone_e.164": N_("Phone"),
    "ecid": "ECID",
    "crmid": N_("CRM ID"),
    "loyaltyid": N_("Loyalty ID"),
    "aaid": "AAID",
    "core": "AAM UUID",
    "tntid": "Target ID",
    "idfa": "IDFA",
    "gaid": "GAID",
    "waid": "Windows AID",
    "adcloud": "AdCloud ID",
    "email_lc_sha256": N_("Email (hashed)"),
    "phone_sha256": N_("Phone (hashed)"),
    "phone_sha256_e.164": N_("Phone (hashed)"),
}
_EVENT_WORDS = frozenset({*EVENT_TITLES.values(), UNTYPED_EVENT})
_TRANSLATED_LABELS = frozenset(
    {*_CLASS_WORDS.values(), *_NAMESPACE_LABELS.values(), *DEFAULT_SECTIONS.values()}
)

#: Field classes whose dates are shown without an age ("56 years ago" is no way to give a
#: date of birth).
_NO_AGE_CLASSES = frozenset({"sensitive"})

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")

T = TypeVar("T")


@dataclass(frozen=True)
class CardContext:
    """Who sees a card and where: the surface, the lookup token, what the viewer may see, and
    who reads it (the asker's, or on a shared card the sharer's, language and time zone)."""

    surface: Literal["private", "shared"]
    now: datetime
    token: str
    reader: Reader
    withheld: frozenset[str] = frozenset()
    can_share: bool = False
    #: offer "Send to my DMs" (a private card answered in a conversation)
    can_send_to_dm: bool = False
    aep_url: str | None = None
    max_events: int = 5
    shared_by: str | None = None
    share_reason: str | None = None
    # The classes the viewer (or audience) may see; None: all. Sections of other classes are
    # left out even when they would be empty ("no recent events" is not for someone who may
    # not see events at all).
    granted: frozenset[str] | None = None
    #: the key facts chosen for this viewer (bot.layout.CardLayout.key_facts_for): layout
    #: field paths or built-in facts; shown when the (redacted) customer has them
    key_facts: tuple[str, ...] = ()
    #: the layout's topics, for the "Likely about" line
    topics: tuple[Topic, ...] = ()

    def __post_init__(self) -> None:
        if self.surface not in ("private", "shared"):
            raise ValueError(f"unknown surface {self.surface!r}")
        if not self.token or len(self.token) > BUTTON_VALUE_CHARS:
            raise ValueError(f"token must be 1 to {BUTTON_VALUE_CHARS} characters")
        if self.max_events < 0:
            raise ValueError("max_events must not be negative")


@dataclass(frozen=True)
class IdentityGroup:
    """The identities of one namespace, matched and primary first."""

    label: str
    identities: tuple[CustomerIdentity, ...]


@dataclass(frozen=True)
class KeyFact:
    """One key fact shown under the summary: a layout field, or the last order (an event)."""

    field: CustomerField | None = None
    order: CustomerEvent | None = None


@dataclass(frozen=True)
class TopicLine:
    """Why the customer is likely writing: the topic their recent events match, how many
    matched since when, the one page or product they all concern (if one), and the last order."""

    name: Label
    count: int
    since: datetime
    subject: str | None
    last_order: CustomerEvent | None


@dataclass(frozen=True)
class FieldBlock:
    """Up to ten fields shown in one section block; `heading` only on a section's first block."""

    heading: Label | None
    fields: tuple[CustomerField, ...]


def templates_dir() -> Path:
    """The Block Kit templates: inside the installed package, else the checkout's blocks/."""
    package = Path(bot.__file__).parent
    for candidate in (package / "blocks", package.parent / "blocks"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"Block Kit templates not found next to {package}")


class CardRenderer:
    """Renders every Block Kit payload the bot sends, from the templates in blocks/."""

    def __init__(
        self, *, templates: Path | None = None, namespace_names: Mapping[str, str] | None = None
    ) -> None:
        #: The sandbox's own names of identity namespaces by lower-case code (read in the
        #: background, see bot.namespaces; filled in place, so every render sees the latest).
        self.namespace_names: Mapping[str, str] = {} if namespace_names is None else namespace_names
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates or templates_dir()),
            undefined=jinja2.StrictUndefined,
            # Autoescape makes macro output Markup, so `_json_only` can tell JSON that a macro or
            # `tojson` produced from a bare value that skipped its escaping filter.
            autoescape=True,
            finalize=_json_only,
            extensions=[do_extension],
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the package; checking their files at every render is waste.
            auto_reload=False,
        )
        self._env.filters.update(
            esc=_esc,
            esc_line=_esc_line,
            plain_line=_plain_line,
            value_text=_value_text,
            value_plain=_value_plain,
            or_list=_or_list,
            label=_label,
            words=_words,
            heading=_heading,
            event_title=_event_title,
            event_detail=_event_detail,
            when=_when,
            when_ago=_when_ago,
            fetched=_fetched,
            day=_day,
            ago=_ago,
            user_ref=_user_ref,
            channel_ref=_channel_ref,
            found_words=_found_words,
            capitalize_first=_capitalize_first,
            class_words=_class_words,
            event_counts=_event_counts,
            order_total=_order_total,
        )
        # Words come from the reader's catalogue (see bot.i18n): `_` and `ngettext` read the
        # `reader` of the render, so one environment serves every language.
        self._env.globals.update(_=_gettext, gettext=_gettext, ngettext=_ngettext)
        # An undefined value inside `tojson` would otherwise surface as a TypeError from json.
        self._env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _no_undefined}
        self._env.globals.update(ids.template_globals())
        self._env.globals["pick_identity_action"] = ids.pick_identity_action

    def customer_card(self, customer: Customer, ctx: CardContext) -> dict[str, Any]:
        """The customer card as a message: `{"text": ..., "blocks": [...]}`."""
        aep_url = ctx.aep_url
        if aep_url and (not aep_url.startswith("https://") or len(aep_url) > BUTTON_URL_CHARS):
            aep_url = None  # a cut URL would lead somewhere else; better no button
        for budget in CARD_BUDGETS:
            payload = self._card(customer, ctx, budget, aep_url)
            if len(json.dumps(payload["blocks"], ensure_ascii=False)) <= CARD_SIZE_BUDGET:
                break
        check_message(payload)
        return payload

    def _card(
        self, customer: Customer, ctx: CardContext, budget: CardBudget, aep_url: str | None
    ) -> dict[str, Any]:
        newest = _newest_first(customer.events)
        orders = [e for e in newest if e.event_type == PURCHASE_EVENT]
        last_order = orders[0] if orders else None
        summary = [f for f in customer.fields if f.summary][:SUMMARY_MOST]
        facts = _key_facts(customer, ctx.key_facts, last_order)
        taken = {f.path for f in summary} | {k.field.path for k in facts if k.field}
        rest = [f for f in customer.fields if f.path not in taken]
        # Orders and other service events are listed; views, opens and clicks are counted.
        events, events_cut = _cut(
            [e for e in newest if e.event_type not in MARKETING_EVENTS],
            min(ctx.max_events, budget.events),
        )
        marketing = Counter(e.event_type for e in newest if e.event_type in MARKETING_EVENTS)
        # Only the matched and primary identities are on the card's face; the rest at its end.
        main = [i for i in customer.identities if i.matched or i.primary]
        groups, _ = _identity_groups(main, budget.identities, self.namespace_names)
        other_groups, identities_cut = _identity_groups(
            [i for i in customer.identities if not (i.matched or i.primary)],
            budget.identities,
            self.namespace_names,
        )
        activity_blocks, activity_cut = _field_blocks(
            [f for f in rest if f.field_class == "activity"], budget.field_blocks
        )
        field_blocks, fields_cut = _field_blocks(
            [f for f in rest if f.field_class not in ("scores", "activity")], budget.field_blocks
        )
        score_blocks, scores_cut = _field_blocks(
            [f for f in rest if f.field_class == "scores"],
            budget.score_blocks,
            heading=DEFAULT_SECTIONS["scores"],
        )
        current, current_cut = _cut(
            [a for a in customer.audiences if not a.left], budget.memberships
        )
        left, left_cut = _cut([a for a in customer.audiences if a.left], budget.left_audiences)
        return self._render(
            "customer_card.json.j2",
            ctx.reader,
            slack_times=ctx.surface == "shared",
            customer=customer,
            ctx=ctx,
            name=_display_name(customer, ctx.reader),
            identity_groups=groups,
            other_identity_groups=other_groups,
            identities_cut=identities_cut,
            summary=summary,
            key_facts=facts,
            topic=_topic_line(ctx.topics, newest, last_order),
            marketing=sorted(marketing.items(), key=lambda kv: (-kv[1], kv[0])),
            activity_blocks=activity_blocks,
            field_blocks=field_blocks,
            fields_cut=fields_cut + scores_cut + activity_cut,
            score_blocks=score_blocks,
            value_chars=budget.value_chars,
            events=events,
            events_cut=events_cut,
            memberships=current,
            memberships_cut=current_cut,
            left=left,
            left_cut=left_cut,
            withheld=_withheld_words(ctx.withheld, ctx.reader),
            aep_url=aep_url,
            activity_computed=any(
                f.computed and f.field_class == "activity" for f in customer.fields
            ),
        )

    def work_object(
        self,
        customer: Customer,
        ctx: CardContext,
        *,
        url: str,
        app_unfurl_url: str | None = None,
    ) -> dict[str, Any]:
        """The customer as a Slack Work Object entity (`metadata.entities[]` of a message or an
        unfurl, or the flexpane's `metadata`), from blocks/work_object.json.j2. The customer is
        already redacted for whoever sees it; `ctx.token` becomes its `external_ref.id`."""
        groups, _ = _identity_groups(
            customer.identities, WORK_OBJECT_IDENTITIES, self.namespace_names
        )
        fields, _ = _cut(customer.fields, WORK_OBJECT_FIELDS)
        events = _newest_first(customer.events)[:1] if ctx.max_events else []
        memberships = [a for a in customer.audiences if a.active][:WORK_OBJECT_AUDIENCES]
        # Entity fields take no Slack date tokens: in a conversation, times read in UTC (as a
        # card's token fallback does); in a flexpane, in the viewer's own zone.
        reader = ctx.reader if ctx.surface == "private" else replace(ctx.reader, zone=UTC)
        entity = self._render(
            "work_object.json.j2",
            reader,
            customer=customer,
            ctx=ctx,
            name=_display_name(customer, reader),
            identity_groups=groups,
            fields=fields,
            value_chars=WORK_OBJECT_VALUE_CHARS,
            events=events,
            memberships=memberships,
            withheld=_withheld_words(ctx.withheld, reader),
            url=url,
            app_unfurl_url=app_unfurl_url,
        )
        check_entity(entity, unfurl=app_unfurl_url is not None)
        return entity

    def flexpane_error(
        self,
        kind: Literal["no_grants", "expired", "failed"],
        notice: dict[str, Any],
        *,
        reader: Reader,
    ) -> dict[str, Any]:
        """The `error` of entity.presentDetails: a title by `kind` in the reader's language, and
        the words of `notice` (rendered for the same reader)."""
        return self._render("flexpane_error.json.j2", reader, kind=kind, message=notice["text"])

    def events_modal(self, customer: Customer, ctx: CardContext) -> dict[str, Any]:
        """A modal listing the customer's recent events, newest first (at most ctx.max_events)."""
        shown, cut = _cut(_newest_first(customer.events), min(ctx.max_events, MODAL_EVENTS))
        view = self._render(
            "events_modal.json.j2",
            ctx.reader,
            customer=customer,
            ctx=ctx,
            name=_display_name(customer, ctx.reader),
            events=shown,
            events_cut=cut,
        )
        check_view(view)
        return view

    def loading_modal(self, *, reader: Reader, title: str | None = None) -> dict[str, Any]:
        """A modal to open at once (trigger ids live ~3 s) and fill later with views.update;
        its title is "Recent events" in the reader's language unless given."""
        view = self._render("status_modal.json.j2", reader, title=title, blocks=None)
        check_view(view)
        return view

    def modal_from_notice(
        self, notice: dict[str, Any], *, reader: Reader, title: str | None = None
    ) -> dict[str, Any]:
        """A notice (from `notice()`) shown as a modal, for failures after a modal was opened."""
        view = self._render("status_modal.json.j2", reader, title=title, blocks=notice["blocks"])
        check_view(view)
        return view

    def share_modal(
        self,
        *,
        token: str,
        channel_id: str,
        thread_ts: str | None,
        response_url: str | None,
        reader: Reader,
        channel_name: str | None = None,
        channel_kind: str = "private",
        hidden: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A modal asking for a short reason before a card is shared to the channel or thread:
        it names the conversation (`channel_name`, from Slack, escaped; a DM by its kind) and
        the classes the viewer sees that the posted card will hide (`hidden`)."""
        metadata = ShareMetadata(
            token=token, channel_id=channel_id, thread_ts=thread_ts, response_url=response_url
        ).to_json()
        view = self._render(
            "share_modal.json.j2",
            reader,
            metadata=metadata,
            in_thread=thread_ts is not None,
            channel_name=channel_name,
            channel_kind=channel_kind,
            hidden=_withheld_words(frozenset(hidden), reader) or "",
            reason_chars=SHARE_REASON_CHARS,
        )
        check_view(view)
        return view

    def home(self, home: HomeContext, *, reader: Reader) -> dict[str, Any]:
        """The App Home view of one person (`views.publish`) in their language and time zone,
        within a Home's 100 blocks."""
        view = self._render("home.json.j2", reader, home=home)
        check_view(view)
        return view

    def search_modal(self, *, reader: Reader) -> dict[str, Any]:
        """The search modal in the reader's language: an identity and an optional kind of
        identity; no customer data. Its `private_metadata` names the reader (see
        `search_reader`), so the submission answers in the same words."""
        metadata = json.dumps({"locale": reader.tag}, separators=(",", ":"))
        view = self._render(
            "search_modal.json.j2", reader, max_chars=SEARCH_INPUT_CHARS, metadata=metadata
        )
        check_view(view)
        return view

    def search_error(
        self, kind: SearchError, *, reader: Reader, reasons: str = "", expected: str = ""
    ) -> str:
        """The words shown under the search modal's identity input (plain text), in the
        reader's language; `reasons` are already the reader's, `expected` a marked label."""
        payload = self._render(
            "search_error.json.j2",
            reader,
            kind=kind,
            reasons=reasons,
            expected=reader.gettext(expected) if expected else "",
        )
        return str(payload["text"])

    def picker(
        self,
        choices: Sequence[tuple[str, str]],
        *,
        reader: Reader,
        found: int | None = None,
        capped: bool = False,
    ) -> dict[str, Any]:
        """A message with one button per identity found; each button's value is its token.

        `found` is the one count of identities found (default: the choices), the same number the
        "Showing N of M" note of the other surfaces gives; `capped` says counting stopped there.
        """
        if not choices:
            raise ValueError("the picker needs at least one choice")
        shown = list(choices)[:PICKER_CHOICES]
        payload = self._render(
            "picker.json.j2",
            reader,
            choices=shown,
            found=max(found if found is not None else len(choices), len(shown)),
            capped=capped,
        )
        check_message(payload)
        return payload

    def notice(
        self, kind: NoticeKind, *, reader: Reader, **values: str | int | None
    ) -> dict[str, Any]:
        """A short message saying what happened and what to do, in the reader's language; see
        NOTICE_VALUES for the kinds."""
        if kind not in NOTICE_VALUES:
            raise ValueError(f"unknown notice kind {kind!r}")
        unexpected = set(values) - set(NOTICE_VALUES[kind])
        if unexpected:
            raise ValueError(
                f"notice {kind!r} takes {', '.join(NOTICE_VALUES[kind]) or 'no values'}, "
                f"not {', '.join(sorted(unexpected))}"
            )
        given = {name: values.get(name) for name in NOTICE_VALUES[kind]}
        payload = self._render("notice.json.j2", reader, kind=kind, values=given)
        check_message(payload)
        return payload

    def _render(
        self, template: str, reader: Reader, *, slack_times: bool = False, **context: Any
    ) -> dict[str, Any]:
        text = self._env.get_template(template).render(
            reader=reader, slack_times=slack_times, **context
        )
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardLimitError([f"{template} rendered invalid JSON: {exc}"]) from None
        if not isinstance(payload, dict):
            raise CardLimitError([f"{template} did not render a JSON object"])
        return payload


def _json_only(value: Any) -> Any:
    # Every `{{ }}` must come out of `tojson` or a macro: a bare value would reach the JSON
    # unescaped, so rendering stops instead of sending a broken or injectable payload.
    if not isinstance(value, Markup):
        raise jinja2.TemplateError(
            f"template interpolates a bare {type(value).__name__}; pass it through tojson"
        )
    return value


def _no_undefined(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError, naming the missing variable
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _esc(value: Any, limit: int = TEXT_CHARS) -> str:
    return mrkdwn_clip("" if value is None else str(value), limit)


def _esc_line(value: Any, limit: int = TEXT_CHARS) -> str:
    return mrkdwn_clip(one_line("" if value is None else str(value)), limit)


def _plain_line(value: Any, limit: int = TEXT_CHARS) -> str:
    # plain_text is not parsed for mentions or links, but Slack stores and returns text objects
    # entity-escaped (bolt-python #513), so escaping here keeps `<!channel>` out of every payload
    # at no cost to what people see.
    return _esc_line(value, limit)


def _user_ref(user_id: str) -> str:
    return f"<@{user_id}>" if _USER_ID.match(user_id) else mrkdwn_clip(user_id, 30)


def _channel_ref(channel_id: str) -> str:
    return f"<#{channel_id}>" if _CHANNEL_ID.match(channel_id) else mrkdwn_clip(channel_id, 30)


# --- words and formats in the reader's language (the render's `reader`) ----------------------


def _reader(context: Context) -> Reader:
    reader = context.get("reader")
    if not isinstance(reader, Reader):
        raise jinja2.TemplateError("rendered without a reader: pass CardRenderer a Reader")
    return reader


@jinja2.pass_context
def _gettext(context: Context, message: str, **values: Any) -> str:
    """`_("text %(name)s", name=value)`: the reader's words; values are already escaped."""
    return _reader(context).gettext(message, **values)


@jinja2.pass_context
def _ngettext(context: Context, singular: str, plural: str, n: Any, **values: Any) -> str:
    """`ngettext("%(num)s event", "%(num)s events", n)`: `num` is n in the reader's digits."""
    reader = _reader(context)
    if isinstance(n, int | float) and not isinstance(n, bool):
        count, num = int(n), numbers.format_decimal(n, locale=reader.locale)
    else:
        # Not a number (a value from outside): shown escaped, read as a plural.
        count, num = 2, _esc(n, 30)
    return reader.ngettext(singular, plural, count, num=num, **values)


@jinja2.pass_context
def _value_text(context: Context, field: CustomerField, limit: int) -> str:
    """A field's value as mrkdwn: escaped and cut; a date-time on a shared card is a Slack date
    token, so every reader sees it in their own time zone. On a private card a date or
    date-time says how long ago it was beside it ("Nov 28, 2025 (1 year ago)"), except in
    classes where an age reads oddly (a date of birth)."""
    reader = _reader(context)
    shared = bool(context.get("slack_times"))
    if shared and field.format == "datetime" and isinstance(field.value, datetime):
        return slack_date(field.value, reader)
    shown = format_value(field, reader)
    card = context.get("ctx")
    now = card.now if isinstance(card, CardContext) else None
    if (
        not shared  # a posted card is read for days: an age in words would go stale
        and isinstance(now, datetime)
        and field.format in ("date", "datetime")
        and isinstance(field.value, date)
        and field.field_class not in _NO_AGE_CLASSES
    ):
        shown = f"{shown} ({relative_time(field.value, now, reader)})"
    return _esc(shown, limit)


@jinja2.pass_context
def _value_plain(context: Context, field: CustomerField) -> str:
    """A field's value in the reader's format, not yet escaped (for plain-text places)."""
    return format_value(field, _reader(context))


@jinja2.pass_context
def _or_list(context: Context, items: Sequence[str]) -> str:
    """Items joined as alternatives in the reader's language: "a, b, or c", "a, b of c"."""
    return lists.format_list(list(items), style="or", locale=_reader(context).locale)


@jinja2.pass_context
def _label(context: Context, field: CustomerField) -> str:
    return _layout_text(field.label, _reader(context))


@jinja2.pass_context
def _words(context: Context, text: str) -> str:
    """One of the bot's own labels (marked with N_) in the reader's language; any other text
    (a namespace code from AEP) as it is."""
    return _reader(context).gettext(text) if text in _TRANSLATED_LABELS else text


@jinja2.pass_context
def _heading(context: Context, heading: Label) -> str:
    return _layout_text(heading, _reader(context))


def _layout_text(label: Label, reader: Reader) -> str:
    # The layout's own text; the bot's default section names come from the catalogue.
    if isinstance(label, str) and label in DEFAULT_SECTIONS.values():
        return reader.gettext(label)
    return label_text(label, reader.tag)


@jinja2.pass_context
def _event_title(context: Context, event: CustomerEvent) -> str:
    # The bot's own titles (customer.EVENT_TITLES) translate; an event type AEP named, as is.
    if event.title in _EVENT_WORDS:
        return _reader(context).gettext(event.title)
    return event.title


@jinja2.pass_context
def _event_detail(context: Context, event: CustomerEvent) -> str:
    """The event's detail line, with a purchase's total in the reader's currency format."""
    detail = event.detail or ""
    money = _order_total(context, event)
    if money:
        detail = f"{detail} ({money})" if detail else money
    return detail


@jinja2.pass_context
def _when(context: Context, moment: datetime) -> str:
    """A moment as mrkdwn: in the reader's zone on a private card, a Slack date token on a
    shared one."""
    reader = _reader(context)
    if context.get("slack_times"):
        return slack_date(moment, reader)
    return mrkdwn_clip(format_datetime(moment, reader), TEXT_CHARS)


@jinja2.pass_context
def _when_ago(context: Context, moment: datetime, now: datetime) -> str:
    """ "<moment> (<how long ago>)"; on a shared card only the token (the words would age)."""
    reader = _reader(context)
    if context.get("slack_times"):
        return slack_date(moment, reader)
    return f"{_when(context, moment)} ({relative_time(moment, now, reader)})"


@jinja2.pass_context
def _fetched(context: Context, moment: datetime, now: datetime) -> str:
    if context.get("slack_times"):
        return slack_date(moment, _reader(context))
    return relative_time(moment, now, _reader(context))


@jinja2.pass_context
def _ago(context: Context, moment: datetime, now: datetime) -> str:
    return relative_time(moment, now, _reader(context))


@jinja2.pass_context
def _day(context: Context, value: datetime) -> str:
    return format_date(value, _reader(context))


@jinja2.pass_context
def _found_words(context: Context, shown: Any, total: Any, capped: Any) -> str:
    """How many identities were found, in the one phrase the note and the picker share."""
    reader = _reader(context)
    values = {"shown": _esc(shown, 30), "total": _esc(total, 30)}
    if capped:
        return reader.gettext(
            "Showing %(shown)s of the first %(total)s identities found "
            "(the message may hold more).",
            **values,
        )
    if isinstance(shown, int) and isinstance(total, int) and total > shown:
        return reader.gettext(
            "Showing %(shown)s of %(total)s identities found (+%(more)s more).",
            more=total - shown,
            **values,
        )
    return reader.gettext("Showing %(shown)s of %(total)s identities found.", **values)


@jinja2.pass_context
def _order_total(context: Context, event: CustomerEvent) -> str:
    """An order's total in the reader's currency format, or "" when it has none."""
    if event.amount is None:
        return ""
    return format_money(event.amount, event.currency or "", _reader(context)) or ""


@jinja2.pass_context
def _event_counts(context: Context, counts: Sequence[tuple[str, int]]) -> str:
    """Counted events in words: "7 page views, 2 product views and 1 email opened"."""
    reader = _reader(context)
    words = [_count_words(event_type, n, reader) for event_type, n in counts]
    return lists.format_list(words, locale=reader.locale) if words else ""


def _count_words(event_type: str, n: int, reader: Reader) -> str:
    num = numbers.format_decimal(n, locale=reader.locale)
    if event_type == "web.webpagedetails.pageViews":
        return reader.ngettext("%(num)s page view", "%(num)s page views", n, num=num)
    if event_type == "commerce.productViews":
        return reader.ngettext("%(num)s product view", "%(num)s product views", n, num=num)
    if event_type == "web.webinteraction.linkClicks":
        return reader.ngettext("%(num)s link click", "%(num)s link clicks", n, num=num)
    if event_type == "directMarketing.emailSent":
        return reader.ngettext("%(num)s email sent", "%(num)s emails sent", n, num=num)
    if event_type == "directMarketing.emailOpened":
        return reader.ngettext("%(num)s email open", "%(num)s email opens", n, num=num)
    if event_type == "directMarketing.emailClicked":
        return reader.ngettext("%(num)s email click", "%(num)s email clicks", n, num=num)
    if event_type == "pushTracking.applicationOpened":
        return reader.ngettext("%(num)s push open", "%(num)s push opens", n, num=num)
    return reader.ngettext("%(num)s app launch", "%(num)s app launches", n, num=num)


def _key_facts(
    customer: Customer, chosen: Sequence[str], last_order: CustomerEvent | None
) -> list[KeyFact]:
    # The customer is already redacted: a fact the viewer may not see is simply not there.
    by_path = {f.path: f for f in customer.fields if not f.summary}
    facts = []
    for fact in chosen:
        if fact == LAST_ORDER and last_order is not None:
            facts.append(KeyFact(order=last_order))
        elif fact in by_path:
            facts.append(KeyFact(field=by_path[fact]))
    return facts


def _topic_line(
    topics: Sequence[Topic], newest: Sequence[CustomerEvent], last_order: CustomerEvent | None
) -> TopicLine | None:
    """The topic most recent events match (the first in the layout on a tie), if any."""
    best: tuple[Topic, list[CustomerEvent]] | None = None
    for topic in topics:
        matched = [e for e in newest if topic.matches(e.event_type, e.page, e.products)]
        if len(matched) >= topic.min_events and (best is None or len(matched) > len(best[1])):
            best = (topic, matched)
    if best is None:
        return None
    topic, matched = best
    subjects = {
        e.page or (e.products[0] if len(e.products) == 1 else None)
        if e.event_type in _VIEWS
        else None
        for e in matched
    }
    subject = next(iter(subjects)) if len(subjects) == 1 else None
    return TopicLine(
        name=topic.name,
        count=len(matched),
        since=min(e.timestamp for e in matched),
        subject=subject,
        last_order=last_order,
    )


#: Events that are a look at one page or product ("viewed 7 times").
_VIEWS = frozenset({"web.webpagedetails.pageViews", "commerce.productViews"})


def _capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cut(items: Sequence[T], most: int) -> tuple[list[T], int]:
    shown = list(items[:most])
    return shown, len(items) - len(shown)


def _newest_first(events: Iterable[CustomerEvent]) -> list[CustomerEvent]:
    return sorted(events, key=lambda e: e.timestamp, reverse=True)


def _display_name(customer: Customer, reader: Reader) -> str:
    return one_line(customer.name or "") or reader.gettext("Customer")


def _identity_groups(
    identities: Sequence[CustomerIdentity], most: int, names: Mapping[str, str]
) -> tuple[list[IdentityGroup], int]:
    # The matched and primary identities go first so a cut list never drops them.
    ranked = sorted(identities, key=lambda i: (not i.matched, not i.primary))
    shown, cut = _cut(ranked, most)
    groups: dict[str, list[CustomerIdentity]] = {}
    for identity in shown:
        groups.setdefault(identity.namespace.lower(), []).append(identity)
    return [
        IdentityGroup(label=namespace_label(key, names), identities=tuple(members))
        for key, members in groups.items()
    ], cut


def _field_blocks(
    fields: Sequence[CustomerField], most: int, heading: str | None = None
) -> tuple[list[FieldBlock], int]:
    sections: dict[str, tuple[Label, list[CustomerField]]] = {}
    for field in fields:
        section = heading or field.section
        key = json.dumps(section, sort_keys=True)
        sections.setdefault(key, (section, []))[1].append(field)
    blocks: list[FieldBlock] = []
    shown = 0
    for title, members in sections.values():
        for start in range(0, len(members), SECTION_FIELDS):
            if len(blocks) == most:
                return blocks, len(fields) - shown
            chunk = tuple(members[start : start + SECTION_FIELDS])
            blocks.append(FieldBlock(heading=title if start == 0 else None, fields=chunk))
            shown += len(chunk)
    return blocks, 0


def namespace_label(namespace: str, names: Mapping[str, str] | None = None) -> str:
    """How a card names an identity namespace: the bot's own name for the standard and common
    ones ("Email", "CRM ID", "ECID": short, and translated, so they win), else the sandbox's
    name for it (`names`, by lower-case code, from bot.namespaces: a custom namespace as the
    organisation named it), else the code itself. The bot's own labels are marked for the
    catalogue: templates pass them through `words`."""
    key = namespace.lower()
    return _NAMESPACE_LABELS.get(key) or (names or {}).get(key) or namespace


def identity_words(
    namespace: str,
    value: str | None,
    reader: Reader,
    *,
    names: Mapping[str, str] | None = None,
    sep: str = " ",
) -> str:
    """An identity as the acknowledgement, the picker and error messages say it, in the
    reader's language: "CRM ID CRM-000123" (with `sep` between), or the namespace alone when
    the value is not to be shown (None). Not escaped: the caller escapes for where it goes."""
    label = namespace_label(namespace, names)
    words = reader.gettext(label) if label in _TRANSLATED_LABELS else label
    return words if value is None else f"{words}{sep}{value}"


@jinja2.pass_context
def _class_words(context: Context, classes: frozenset[str]) -> str:
    """Field classes in words, in the canonical order: "profile details and recent events"."""
    reader = _reader(context)
    return _withheld_words(classes, reader) or reader.gettext("nothing")


def _withheld_words(withheld: frozenset[str], reader: Reader) -> str | None:
    if not withheld:
        return None
    known = [reader.gettext(_CLASS_WORDS[c]) for c in FIELD_CLASSES if c in withheld]
    unknown = sorted(c for c in withheld if c not in _CLASS_WORDS)
    return lists.format_list(known + unknown, locale=reader.locale)
