"""The reader's language and time zone: gettext catalogues and the Babel locale of every text.

The catalogues are the `.po` files in `bot/locales/<language>/LC_MESSAGES/messages.po`, the
only sources; they are compiled in memory the first time a language is needed (Babel's
`read_po`/`write_mo`), so no generated `.mo` file is kept in git or built at install, and a
wheel ships the `.po` files as package data. Fuzzy entries are left out, as `msgfmt` does.

English is the source language (every msgid is the English text); a locale whose language has
no catalogue falls back to the configured default, then to English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: The gettext domain of every catalogue.
DOMAIN = "messages"
#: The locale of last resort: English is the language the msgids are written in.
FALLBACK_LOCALE = "en-US"

# A Slack locale is a BCP 47 tag such as `en-US`, `nl-NL` or `es-LA`; an IANA zone name such
# as `America/Argentina/Buenos_Aires`. Anything else from the wire is not parsed at all.
_LOCALE_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,2}$")
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


def locales_dir() -> Path:
    """Where the catalogues live: `bot/locales/` in the installed package and in a checkout."""
    return Path(__file__).parent / "locales"


def languages() -> tuple[str, ...]:
    """The languages that have a catalogue, sorted (English always among them)."""
    found = {p.parent.parent.name for p in locales_dir().glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return tuple(sorted(found | {"en"}))


@lru_cache(maxsize=16)
def translations(language: str) -> NullTranslations:
    """The compiled catalogue of `language` (e.g. "nl"), compiled once per process."""
    path = locales_dir() / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def parse_locale(tag: object) -> Locale | None:
    """A Slack locale tag ("nl-NL", "en-US") as a Babel locale whose language has a catalogue,
    or None for anything else (unknown, unsupported, not a string)."""
    if not isinstance(tag, str) or not _LOCALE_TAG.match(tag):
        return None
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        # A territory Babel does not know (Slack's "es-LA"): the language alone still reads.
        try:
            locale = Locale.parse(tag.replace("-", "_").split("_")[0])
        except (ValueError, UnknownLocaleError):
            return None
    return locale if locale.language in languages() else None


def parse_zone(name: object) -> tzinfo | None:
    """An IANA time zone name ("Europe/Amsterdam") as a tzinfo, or None when it is none."""
    if not isinstance(name, str) or len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Reader:
    """Who reads a text: the language and formats (a Babel locale) and the time zone."""

    locale: Locale
    zone: tzinfo = UTC

    @property
    def language(self) -> str:
        """The catalogue's language: "en", "nl"."""
        return str(self.locale.language)

    @property
    def tag(self) -> str:
        """The locale as Slack writes it: "nl-NL"."""
        return str(self.locale).replace("_", "-")

    def gettext(self, message: str, **values: object) -> str:
        """`message` in the reader's language, with `%(name)s` placeholders filled from values."""
        text = translations(self.language).gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The singular or plural form for `n`, by the language's plural rule, filled."""
        text = translations(self.language).ngettext(singular, plural, n)
        return text % values if values else text


def reader_for(
    locale: object = None, zone: object = None, *, default_locale: str = FALLBACK_LOCALE
) -> Reader:
    """The reader of a person's Slack `locale` and `tz`: an unknown or unsupported locale reads
    `default_locale`, then English; an unknown zone reads UTC."""
    chosen = parse_locale(locale) or parse_locale(default_locale) or Locale.parse("en_US")
    return Reader(locale=chosen, zone=parse_zone(zone) or UTC)


def N_(message: str) -> str:
    """Mark `message` for the catalogue where it is defined; it is translated where it is shown."""
    return message
