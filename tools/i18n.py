"""`make i18n`: extract every message into bot/locales/messages.pot and bring each catalogue
up to date with it.

- Extraction reads `_()`, `gettext()`, `ngettext()` and `N_()` in bot/ and `_()`/`ngettext()` in
  the Jinja templates of blocks/ (babel.cfg), with Babel's extractors.
- Each `bot/locales/<language>/LC_MESSAGES/messages.po` gets new messages (untranslated) and
  loses messages no longer in the code (no fuzzy matching: a changed English text is a new
  message, never a guessed translation). English is the source language: its catalogue is
  filled with the English text itself, so only other languages need a translator.
- `python tools/i18n.py --add xx` starts the catalogue of a new language.

The catalogues are compiled when the bot starts (bot/i18n.py); nothing else is generated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "bot" / "locales"
TEMPLATE = LOCALES / "messages.pot"


def pybabel(*args: str) -> None:
    CommandLineInterface().run(["pybabel", "-q", *args])


def extract() -> None:
    pybabel(
        "extract",
        "-F",
        str(ROOT / "babel.cfg"),
        "-k",
        "N_",
        "--no-location",
        "--sort-output",
        "--omit-header",
        "--project",
        "customer-context-bot",
        "-o",
        str(TEMPLATE),
        str(ROOT / "bot"),
        str(ROOT / "blocks"),
    )


def catalogue(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


def fill_english() -> None:
    """English msgids are the English text: copy them into the English catalogue."""
    path = catalogue("en")
    with path.open("rb") as source:
        catalog: Catalog = read_po(source, locale="en")
    for message in catalog:
        if not message.id:
            continue
        message.flags.discard("fuzzy")
        if isinstance(message.id, tuple | list):
            message.string = (message.id[0], message.id[1])
        else:
            message.string = message.id
    with path.open("wb") as target:
        write_po(target, catalog, width=100, sort_output=True, omit_header=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--add", metavar="LANGUAGE", help="start a catalogue for LANGUAGE")
    args = parser.parse_args(argv)
    extract()
    if args.add:
        if catalogue(args.add).exists():
            print(f"{catalogue(args.add)} exists already", file=sys.stderr)
            return 1
        pybabel("init", "-i", str(TEMPLATE), "-d", str(LOCALES), "-l", args.add, "-w", "100")
    for path in sorted(LOCALES.glob("*/LC_MESSAGES/messages.po")):
        pybabel(
            "update",
            "-i",
            str(TEMPLATE),
            "-o",
            str(path),
            "-l",
            path.parent.parent.name,
            "--no-fuzzy-matching",
            "--ignore-obsolete",
            "-w",
            "100",
        )
    fill_english()
    return 0


if __name__ == "__main__":
    sys.exit(main())
