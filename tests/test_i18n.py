"""Localisation (issue 11): the catalogues are complete and match the code, every template and
notice renders in every language, and no user-facing text is written outside the catalogues.

When one of these fails, the message names the text: add it with `_()`/`ngettext()` (templates)
or `reader.gettext()`/`N_()` (Python), run `make i18n`, and translate it in
bot/locales/nl/LC_MESSAGES/messages.po (README: "How to add a string").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from jinja2 import nodes
from jinja2.ext import do as do_extension

from bot.cards import (
    NOTICE_VALUES,
    CardContext,
    CardRenderer,
    HomeContext,
    HomeEntry,
    MoreAccess,
    SearchError,
    templates_dir,
)
from bot.customer import Customer, CustomerEvent, CustomerField, CustomerIdentity
from bot.i18n import languages, locales_dir, reader_for, translations
from bot.identity import IdentityRef
from bot.layout import load_layout
from bot.vocabulary import NoticeKind

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
EN = reader_for("en-US", "America/New_York")
NL = reader_for("nl-NL", "Europe/Amsterdam")
READERS = {"en": EN, "nl": NL}


# --- the catalogues ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """What the code asks for today: a fresh extraction, as `make i18n` makes it."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "-q",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "N_",
            "-o",
            str(pot),
            str(ROOT / "bot"),
            str(ROOT / "blocks"),
        ]
    )
    with pot.open("rb") as source:
        return read_po(source)


def catalogue(language: str) -> Catalog:
    with (locales_dir() / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)


def test_english_and_dutch_have_catalogues() -> None:
    assert {"en", "nl"} <= set(languages())


@pytest.mark.parametrize("language", ["en", "nl"])
def test_every_message_the_code_uses_is_in_the_catalogue_and_translated(
    language: str, extracted: Catalog
) -> None:
    po = catalogue(language)
    missing = [m.id for m in extracted if m.id and m.id not in po]
    assert not missing, f"not in the {language} catalogue (run `make i18n`): {missing}"
    untranslated = [
        m.id
        for m in po
        if m.id and not (all(m.string) if isinstance(m.string, tuple | list) else m.string)
    ]
    assert not untranslated, f"untranslated in the {language} catalogue: {untranslated}"
    fuzzy = [m.id for m in po if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy (unchecked) in the {language} catalogue: {fuzzy}"


@pytest.mark.parametrize("language", ["en", "nl"])
def test_no_catalogue_message_is_unused(language: str, extracted: Catalog) -> None:
    unused = [m.id for m in catalogue(language) if m.id and m.id not in extracted]
    assert not unused, f"in the {language} catalogue but no longer in the code: {unused}"


@pytest.mark.parametrize("language", ["en", "nl"])
def test_every_translation_keeps_its_placeholders(language: str) -> None:
    problems = [
        f"{message.id!r}: {', '.join(str(e) for e in errors)}"
        for message, errors in catalogue(language).check()
    ]
    assert not problems, "\n".join(problems)


def test_dutch_has_its_own_plural_forms() -> None:
    words = translations("nl")
    assert words.ngettext("%(num)s event, newest first · fetched %(when)s", "", 1).startswith(
        "%(num)s evenement,"
    )
    assert words.ngettext("%(num)s event, newest first · fetched %(when)s", "", 3).startswith(
        "%(num)s evenementen,"
    )


# --- no user-facing text outside the catalogues ----------------------------------------------

#: Calls whose first argument is a message for the catalogue.
_GETTEXT = {"_", "gettext", "ngettext"}
#: A literal is user-facing when, without its emoji codes, it holds a word.
_EMOJI = re.compile(r":[a-z0-9_+\-]+:")
_WORD = re.compile(r"[^\W\d_]{2,}")
#: Keyword arguments that are Block Kit values, not words (a button's or option's value and a
#: block id reach the bot, never a person's eyes).
_STRUCTURAL_KEYWORDS = {"style", "url", "value", "block_id"}


def _words_in(text: str) -> bool:
    return bool(_WORD.search(_EMOJI.sub("", text)))


def _template_literals(node: nodes.Node, allowed: bool = False) -> Iterator[tuple[int, str]]:
    """Every string literal in a template that a person would read and that does not pass
    through the catalogue; comparisons, tests and structural keywords are not text."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        if not allowed and _words_in(node.value):
            yield node.lineno, node.value
        return
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name in _GETTEXT
    ):
        return
    if isinstance(node, nodes.Compare | nodes.Test | nodes.Import | nodes.FromImport):
        allowed = True
    if isinstance(node, nodes.Keyword) and node.key in _STRUCTURAL_KEYWORDS:
        allowed = True
    for child in node.iter_child_nodes():
        yield from _template_literals(child, allowed)


def _template_data_text(node: nodes.Node) -> Iterator[tuple[int, str]]:
    # A text object written as raw JSON in a template ({"text": "Hello"}) skips the catalogue.
    for data in node.find_all(nodes.TemplateData):
        for match in re.finditer(r'"(?:text|title|placeholder)"\s*:\s*"([^"]*)"', data.data):
            if _words_in(match.group(1)):
                yield data.lineno, match.group(1)


@pytest.mark.parametrize("template", sorted(p.name for p in templates_dir().glob("*.j2")))
def test_no_template_writes_a_word_outside_the_catalogue(template: str) -> None:
    env = jinja2.Environment(extensions=[do_extension])
    source = (templates_dir() / template).read_text(encoding="utf-8")
    tree = env.parse(source)
    found = list(_template_literals(tree)) + list(_template_data_text(tree))
    assert not found, f"{template}: text not passed through _() or ngettext(): " + "; ".join(
        f"line {line}: {text!r}" for line, text in found
    )


#: The renderer's methods: a literal passed to them reaches a person untranslated.
_RENDERER_METHODS = {
    "notice",
    "picker",
    "share_modal",
    "loading_modal",
    "modal_from_notice",
    "customer_card",
    "events_modal",
    "work_object",
    "flexpane_error",
    "home",
    "search_modal",
    "search_error",
}


def _literal_text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return (
            "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant)) or "f-string"
        )
    return None


def test_no_code_passes_a_literal_text_to_the_renderer() -> None:
    found: list[str] = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in ast.walk(tree):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in _RENDERER_METHODS
            ):
                continue
            for keyword in call.keywords:
                text = _literal_text(keyword.value)
                if keyword.arg not in {"reader"} and text is not None and _words_in(text):
                    where = f"{path.relative_to(ROOT)}:{keyword.value.lineno}"
                    found.append(f"{where} {keyword.arg}={text!r}")
    assert not found, "literal text given to the renderer (use reader.gettext): " + "; ".join(found)


# --- every template and notice kind in both languages ----------------------------------------

#: A value for every notice value name.
_SAMPLE: dict[str, str | int | None] = {
    "query": "email jane.doe@example.com",
    "usage": None,
    "seconds": 30,
    "status": 503,
    "message": "the identity namespace is unknown",
    "reference": "ab12cd",
    "how": None,
    "reason": None,
    "reasons": None,
    "shown": 3,
    "total": 20,
    "capped": 0,
    "channel": "C0PUBLIC",
    "problem": "phone_without_country",
    "typed": "06 12345678",
    "suggestion": "+31 6 12345678",
    "domain": None,
    "missing": 0,
    "region": "US",
    "region_name": "United States",
    "example_region": "Netherlands",
    "known": "crmid, ECID, Email, Phone",
}


@pytest.fixture(scope="module")
def renderer() -> CardRenderer:
    return CardRenderer()


def customer() -> Customer:
    layout = load_layout()
    by_path = {f.path: f for f in layout.fields}

    def field(path: str, value: Any) -> CustomerField:
        f = by_path[path]
        return CustomerField(
            label=f.label,
            path=f.path,
            field_class=f.field_class,
            format=f.format,
            section=f.heading,
            currency="EUR",
            value=value,
        )

    return Customer(
        profile_id="p-1",
        name="Sanne de Vries",
        query=IdentityRef("Email", "sanne@example.nl"),
        identities=(
            CustomerIdentity(namespace="Email", value="sanne@example.nl", matched=True),
            CustomerIdentity(namespace="crmid", value="CRM-000311", primary=True),
        ),
        fields=(
            field("homeAddress.city", "Amsterdam"),
            field("_acme.crm.vip", True),
            field("_acme.crm.customerSince", datetime(2018, 7, 4, tzinfo=UTC)),
            field("_acme.support.lastContact", datetime(2026, 3, 13, 8, 30, tzinfo=UTC)),
            field("_acme.scores.churnPropensity", 0.125),
            field("_acme.scores.lifetimeValue", 48213.75),
            field("loyalty.points", 11906),
        ),
        events=tuple(
            CustomerEvent(
                event_id=f"e{n}",
                timestamp=NOW - timedelta(days=3, hours=n),
                event_type="commerce.purchases",
                title="Purchase",
                detail="Running shoes",
                amount=129.0,
                currency="EUR",
            )
            for n in range(7)
        ),
        more_events=True,
        audiences=(),
        last_modified_at=NOW - timedelta(days=3),
        fetched_at=NOW,
        demo=True,
    )


def without_events(status: str) -> Customer:
    """The customer whose events are loading, off (a Prime organisation) or failed, with an
    activity field that is a computed attribute."""
    computed = CustomerField(
        label={"en": "Orders (30 days)", "nl": "Bestellingen (30 dagen)"},
        path="_acme.SystemComputedAttributes.ordersLast30Days",
        field_class="activity",
        section="Activity",
        format="number",
        value=3,
        computed=True,
        as_of=NOW - timedelta(hours=6),
    )
    return customer().model_copy(
        update={
            "events": (),
            "more_events": False,
            "events_available": False,
            "events_status": status,
            "fields": (*customer().fields, computed),
        }
    )


def home(reader: Any, *, granted: bool, entries: int) -> dict[str, Any]:
    """An App Home with `entries` recent lookups (one per surface, then a surface unknown)."""
    surfaces = ["private", "mention", "home", "search", "modal", "share", "elsewhere"]
    return CardRenderer().home(
        HomeContext(
            now=NOW,
            granted=granted,
            classes=frozenset({"basic", "activity"}),
            roles=("support",) if granted else (),
            can_share=granted,
            how=None,
            more=(MoreAccess("sales", ("sales-eu", "sales-us"), frozenset({"financial"})),),
            history_on=entries > 0,
            history_days=1 if entries else 30,
            entries=tuple(
                HomeEntry(
                    id=f"h{n}",
                    label="Email" if n % 2 else "crmid",
                    value=None if n == 3 else f"v{n}@example.com",
                    at=NOW - timedelta(hours=n + 1),
                    surface=surfaces[n % len(surfaces)],
                )
                for n in range(entries)
            ),
            demo=entries == 0,
            sandbox="prod",
            merge_policy="mp-1" if entries else None,
        ),
        reader=reader,
    )


def _texts(payload: Any) -> Iterator[str]:
    if isinstance(payload, dict):
        for key, value in payload.items():
            # Text objects, and the plain strings of Work Object fields and flexpane errors.
            texts = ("text", "custom_title", "custom_message", "label", "value")
            if key in texts and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(payload, list):
        for item in payload:
            yield from _texts(item)


def _english_left_in(dutch: str) -> list[str]:
    """English catalogue texts of two words or more that a Dutch rendering still shows."""
    left = []
    for message in catalogue("nl"):
        ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
        for english in ids:
            plain = re.sub(r"%\([a-z]+\)s", "\0", english)
            for piece in plain.split("\0"):
                piece = piece.strip(" .:,()“”·—")
                if len(piece.split()) >= 2 and piece in dutch and piece not in str(message.string):
                    left.append(piece)
    return left


@pytest.mark.parametrize("kind", get_args(NoticeKind))
def test_every_notice_kind_reads_in_english_and_dutch(
    renderer: CardRenderer, kind: NoticeKind
) -> None:
    values = {name: _SAMPLE[name] for name in NOTICE_VALUES[kind]}
    english = renderer.notice(kind, reader=EN, **values)["text"]
    dutch = renderer.notice(kind, reader=NL, **values)["text"]
    assert english and dutch
    if kind != "usage" or values.get("usage") is None:
        assert english != dutch, f"notice {kind!r} reads the same in Dutch: {dutch!r}"
    assert not _english_left_in(dutch), f"{kind}: English left in {dutch!r}"


@pytest.mark.parametrize("surface", ["private", "shared"])
@pytest.mark.parametrize("language", ["en", "nl"])
def test_every_template_renders_in_both_languages(
    renderer: CardRenderer, language: str, surface: str
) -> None:
    reader = READERS[language]
    ctx = CardContext(
        surface=surface,  # type: ignore[arg-type]
        now=NOW,
        token="t" * 20,
        reader=reader,
        can_share=True,
        withheld=frozenset({"sensitive", "contact"}),
        shared_by="U0MANAGER" if surface == "shared" else None,
        share_reason="ticket 4821" if surface == "shared" else None,
    )
    payloads = [
        renderer.customer_card(customer(), ctx),
        renderer.events_modal(customer(), ctx),
        *(
            render(without_events(status), ctx)
            for status in ("loading", "off", "failed")
            for render in (renderer.customer_card, renderer.events_modal)
        ),
        renderer.picker([("email: a@example.com", "t1"), ("phone: +3161", "t2")], reader=reader),
        renderer.picker([("email: a@example.com", "t1")], reader=reader, found=20, capped=True),
        renderer.share_modal(
            token="t",
            channel_id="C0PUBLIC",
            thread_ts="1.2",
            response_url=None,
            channel_name="support",
            hidden={"financial"},
            reader=reader,
        ),
        renderer.share_modal(
            token="t", channel_id="D0X", thread_ts=None, response_url=None, reader=reader
        ),
        renderer.loading_modal(reader=reader),
        renderer.modal_from_notice(renderer.notice("expired", reader=reader), reader=reader),
        renderer.work_object(customer(), ctx, url="https://example.com/p-1"),
        renderer.flexpane_error(
            "expired", renderer.notice("expired", reader=reader), reader=reader
        ),
        *(home(reader, granted=granted, entries=n) for granted in (True, False) for n in (0, 7)),
        renderer.search_modal(reader=reader),
        *(
            {"text": renderer.search_error(kind, reader=reader, reasons="", expected=expected)}
            for kind in get_args(SearchError)
            for expected in ("", "a CRM id")
        ),
    ]
    text = "\n".join(t for p in payloads for t in _texts(p))
    if language == "nl":
        assert not _english_left_in(text), _english_left_in(text)
        for word in ("Recente evenementen", "Klantwaarde", "Delen", "Sluiten", "Klant zoeken"):
            assert word in text


def test_a_dutch_card_has_dutch_numbers_money_and_dates_in_amsterdam(
    renderer: CardRenderer,
) -> None:
    ctx = CardContext(surface="private", now=NOW, token="t" * 20, reader=NL)
    text = "\n".join(_texts(renderer.customer_card(customer(), ctx)))
    assert "*Klantwaarde*\n€\xa048.213,75" in text
    assert "*Loyaliteitspunten*\n11.906" in text
    assert "*Opzegrisico*\n12,5%" in text
    assert "*Klant sinds*\n4 jul 2018" in text
    assert "*Laatste contact*\n13 mrt 2026, 09:30 CET" in text
    # An event line is folded onto one line, its no-break spaces with it.
    line = "• *Aankoop* — Running shoes (€ 129,00) · 11 mrt 2026, 13:00 CET (3 dagen geleden)"
    assert line in text
    assert "+2 meer, en oudere in Adobe Experience Platform" in text


def test_an_english_card_has_english_formats_in_new_york(renderer: CardRenderer) -> None:
    ctx = CardContext(surface="private", now=NOW, token="t" * 20, reader=EN)
    text = "\n".join(_texts(renderer.customer_card(customer(), ctx)))
    assert "*Lifetime value*\n€48,213.75" in text
    assert "*Last contact*\nMar 13, 2026, 4:30\u202fAM EDT" in text
    assert "(3 days ago)" in text


def test_a_shared_card_gives_times_as_slack_date_tokens(renderer: CardRenderer) -> None:
    ctx = CardContext(surface="shared", now=NOW, token="t" * 20, reader=NL)
    text = "\n".join(_texts(renderer.customer_card(customer(), ctx)))
    token = re.compile(r"<!date\^(\d+)\^\{date_short_pretty\} \{time\}\|([^|<>]+)>")
    stamps = {int(m.group(1)): m.group(2) for m in token.finditer(text)}
    last_contact = int(datetime(2026, 3, 13, 8, 30, tzinfo=UTC).timestamp())
    assert stamps[last_contact] == "13 mrt 2026, 08:30 UTC"  # the fallback: Dutch words, UTC
    assert "CET" not in text  # no time in the sharer's own zone
    assert "geleden" not in text  # relative words would age in the channel
