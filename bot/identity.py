"""Text a person typed -> IdentityRef(namespace, value). Pure: no I/O."""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import phonenumbers
from babel import numbers

from bot.i18n import FALLBACK_LOCALE, N_, Reader, reader_for

#: Most identities `extract_identities` returns for one message.
MAX_IDENTITIES = 20
#: RFC 5321: an address has at most 254 characters, 64 before the @, 63 in each domain label.
MAX_EMAIL_CHARS = 254
MAX_LOCAL_PART_CHARS = 64
MAX_DOMAIN_LABEL_CHARS = 63
#: The bot's own bounds for `namespace:value` (AEP documents none): far above any real namespace
#: code, ECID, hash or CRM id, far below what would break a request URL.
MAX_NAMESPACE_CHARS = 64
MAX_VALUE_CHARS = 1024

#: How to ask (English; listeners show `reader.gettext(USAGE)`, the CLI shows it as it is). A
#: bulleted list, not columns: Slack's proportional font does not keep space-aligned columns.
USAGE = N_("""\
Tell me which customer to look up, in one of these forms:
• an email address: jane.doe@example.com
• a phone number with its country code: +31 6 1234 5678 (a number without one, such as \
(415) 555-0123, is read as a number in the bot's home region)
• a CRM id: CRM-000123
• an ECID, the 38-digit Experience Cloud ID: 41234567890123456789012345678901234567
• an AEP identity namespace code and a value: crmid:CRM-000123, loyaltyId:L-99 or \
phone:+14155550123
Example: /customer jane.doe@example.com""")


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """One identity to look up: an AEP identity namespace code and the value in that namespace."""

    namespace: str
    value: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.value}"


#: The namespace of an IdentityRef whose value is a profile's entity id (an XID), as AEP's own
#: profile links name a profile: the entities API takes an XID without entityIdNS.
PROFILE_ENTITY = ""


def profile_entity(entity_id: str) -> IdentityRef:
    """The reference to a profile by its entity id (an XID), not by one of its identities."""
    return IdentityRef(namespace=PROFILE_ENTITY, value=entity_id)


IdentityKind = Literal["email address", "phone number", "ECID", "CRM id", "identity"]
RefusalReason = Literal["invisible", "mixed_script", "styled", "unreadable", "too_long"]

# Why a refused identity was refused, in words (English msgids; shown in the reader's language).
# Each completes "The email address you typed ...".
_WHY: dict[RefusalReason, str] = {
    "invisible": N_(
        "contains an invisible character (such as a zero-width space or a text-direction mark), "
        "so it may not be the identity you see"
    ),
    "mixed_script": N_(
        "mixes letters of different alphabets in one word (such as a Cyrillic \u0430 among Latin "
        "letters), the way look-alike identities are made"
    ),
    "styled": N_(
        "contains look-alike characters (such as bold, circled or superscript letters or digits) "
        "instead of ordinary ones"
    ),
    "unreadable": N_(
        "has accented or non-Latin letters, or other text written against it with no space, so "
        "the bot cannot tell where it starts and ends"
    ),
}
_TOO_LONG: dict[IdentityKind, str] = {
    "email address": N_(
        "is longer than an email address can be (at most %(chars)s characters, "
        "%(local)s of them before the @)"
    ),
    "identity": N_(
        "is longer than the bot accepts for an identity (a namespace of at most "
        "%(namespace)s characters and a value of at most %(value)s)"
    ),
}
# What was typed, with its article: "The email address you typed".
_TYPED: dict[IdentityKind, str] = {
    "email address": N_("The email address you typed"),
    "phone number": N_("The phone number you typed"),
    "ECID": N_("The ECID you typed"),
    "CRM id": N_("The CRM id you typed"),
    "identity": N_("The identity you typed"),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Text that looks like an identity but is not read as one, rather than read as another.

    It never holds the text itself: that may be an attacker's, and is a customer's identity.
    """

    kind: IdentityKind
    reason: RefusalReason

    def words(self, reader: Reader) -> str:
        """Why it was refused, in one sentence in the reader's language."""
        if self.reason == "too_long":
            why = reader.gettext(
                _TOO_LONG.get(self.kind, _TOO_LONG["identity"]),
                chars=MAX_EMAIL_CHARS,
                local=MAX_LOCAL_PART_CHARS,
                namespace=MAX_NAMESPACE_CHARS,
                value=numbers.format_decimal(MAX_VALUE_CHARS, locale=reader.locale),
            )
        else:
            why = reader.gettext(_WHY[self.reason])
        return reader.gettext("%(what)s %(why)s.", what=reader.gettext(_TYPED[self.kind]), why=why)

    def __str__(self) -> str:
        return self.words(reader_for(FALLBACK_LOCALE))


@dataclass(frozen=True, slots=True)
class Reading:
    """What a message holds: the identities to look up, and what was refused and why."""

    refs: list[IdentityRef] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


_NAMESPACE_CODE = r"[A-Za-z][A-Za-z0-9_.]*"
_NAMESPACE = re.compile(_NAMESPACE_CODE)


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """How to read identities for one org: phone home region, CRM namespace and CRM id format."""

    default_region: str = "US"
    crm_namespace: str = "crmid"
    crm_pattern: str = r"CRM-\d{6}"
    #: The org's own email domains, suggested first when a typed address misses or misspells
    #: its domain (see `diagnose`).
    email_domains: tuple[str, ...] = ()
    #: The org's identity namespace codes (its custom ones; AEP's standard codes and
    #: `crm_namespace` are always known), or None when the bot does not know them: then every
    #: `namespace:value` is looked up as typed (see `unknown_namespace`).
    namespaces: frozenset[str] | None = None

    def __post_init__(self) -> None:
        # phonenumbers only knows upper-case region codes; `nl` in a config file means NL.
        object.__setattr__(self, "default_region", self.default_region.strip().upper())
        if self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"default_region {self.default_region!r} is not a known region: "
                "use an ISO 3166 code such as 'US' or 'NL'"
            )
        if not _NAMESPACE.fullmatch(self.crm_namespace):
            raise ValueError(
                f"crm_namespace {self.crm_namespace!r} is not an AEP namespace code "
                "(letters, digits, '_' and '.', starting with a letter)"
            )
        try:
            crm = _compiled(self.crm_pattern)
        except re.error as exc:
            raise ValueError(f"crm_pattern is not a valid regular expression: {exc}") from None
        if crm.fullmatch(""):
            raise ValueError("crm_pattern must not match empty text")
        domains = tuple(d.strip().lower().lstrip("@") for d in self.email_domains if d.strip())
        for domain in domains:
            if not re.fullmatch(rf"(?:{_LABEL}\.)+[a-z][a-z0-9-]*", domain):
                raise ValueError(f"email domain {domain!r} is not a domain such as 'example.com'")
        object.__setattr__(self, "email_domains", domains)

    def known_namespaces(self) -> tuple[str, ...] | None:
        """The namespace codes to name to a person: the org's own, its CRM namespace and the
        three the bot reads without a prefix, sorted case-insensitively; None when the bot does
        not know the org's namespaces."""
        if self.namespaces is None:
            return None
        codes = {code.casefold(): code for code in sorted(self.namespaces)}
        codes.update({code.casefold(): code for code in ("Email", "Phone", "ECID")})
        codes[self.crm_namespace.casefold()] = self.crm_namespace
        return tuple(sorted(codes.values(), key=str.casefold))

    def knows_namespace(self, code: str) -> bool:
        """Whether `code` is an identity namespace of this org (True when the bot cannot tell)."""
        if self.namespaces is None:
            return True
        folded = code.casefold()
        if not folded:
            return True  # a profile's entity id, not a namespace someone typed
        return (
            folded in _WELL_KNOWN
            or folded == self.crm_namespace.casefold()
            or any(folded == known.casefold() for known in self.namespaces)
        )


DEFAULT_RULES = IdentityRules()

# AEP's own spelling of the standard namespace codes (identity symbols); Adobe's pages spell some
# of them in several cases, and people type them in any case.
_WELL_KNOWN = {
    code.casefold(): code
    for code in (
        "Email",
        "Phone",
        "ECID",
        "Phone_E.164",
        "Email_LC_SHA256",
        "Phone_SHA256",
        "CORE",
        "AdCloud",
        "TNTID",
        "IDFA",
        "GAID",
        "WAID",
        "AAID",
    )
}
# Raw phone namespaces hold E.164 numbers, so their values are normalised like bare phones.
_PHONE_NAMESPACES = frozenset({"Phone", "Phone_E.164"})
# `scheme:rest` tokens that are links, never `namespace:value` identities.
_URL_SCHEMES = frozenset(
    {"http", "https", "mailto", "tel", "slack", "ftp", "ftps", "sftp", "ssh", "file", "sms"}
)

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL_BODY = rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(_EMAIL_BODY)
# The look-behind makes a match start only at the beginning of a run of address characters, which
# keeps scanning linear on long text.
_EMAIL_SCAN = re.compile(rf"(?<![{_ATEXT}.@]){_EMAIL_BODY}")
_ECID = re.compile(r"[0-9]{38}")
_ECID_SCAN = re.compile(r"(?<![0-9A-Za-z_])[0-9]{38}(?![0-9A-Za-z_])")
# A namespace:value token starts a word (or follows an opening bracket or quote), so `10:30`,
# `:emoji:` and ISO timestamps are not read as one.
_WORD_START = r"(?<![^\s(\[{\"'`])"
_COLON_SCAN = re.compile(rf"{_WORD_START}({_NAMESPACE_CODE}):(\S*)")
_COLON_WHOLE = re.compile(rf"({_NAMESPACE_CODE}):\s*(.*)", re.DOTALL)
_PREFIX_SCAN = re.compile(rf"{_WORD_START}({_NAMESPACE_CODE}):$")
_PREFIX_WHOLE = re.compile(rf"({_NAMESPACE_CODE}):\s*")
_PHONE_TEXT = re.compile(r"[0-9\s()+.\-/]{3,40}")
_SLACK_MARKUP = re.compile(r"<([^<>]*)>")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_TRAILING = ".,;:!?)]}'\"`"
_WRAPPERS = {'"': '"', "'": "'", "`": "`", "(": ")", "[": "]", "{": "}", "<": ">"}


# Text that can never be inside an identity the scanners read; see `_problem` for the policy.
_TOKEN = re.compile(r"\S+")
_EMAIL_SHAPE = re.compile(r"[^\s@]@[^\s@]+\.[^\s@.]")
_PHONE_PART = re.compile(r"[0-9()+.\-/]+")
# Characters that show nothing (or nothing of their own) but are not format characters (Cf):
# combining grapheme joiner, variation selectors, Hangul fillers, Braille blank.
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u180b\u180c\u180d\u2800\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)
# Fullwidth ASCII (what East Asian input methods type) read as the ASCII it shows: the same
# letters in another width, one character for one, so offsets stay put.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
# Scripts by the first word of a letter's Unicode name; the mixes one language writes in one word
# (UTS #39's "highly restrictive" level, without Latin) are allowed.
_SCRIPT_OF_WORD = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "HIRAGANA": "KANA",
    "KATAKANA": "KANA",
    "KATAKANA-HIRAGANA": "KANA",
}
_ALLOWED_MIXES = (
    frozenset({"HAN", "KANA"}),
    frozenset({"HAN", "HANGUL"}),
    frozenset({"HAN", "BOPOMOFO"}),
)


def parse_identity(text: str, rules: IdentityRules = DEFAULT_RULES) -> IdentityRef | None:
    """Return the single identity the whole `text` denotes, or None when it denotes none.

    Slack formatting is understood (mailto/tel links, `&amp;` entities) and user mentions are
    ignored; any other words make the text ambiguous, so the answer is None. Text that would be
    refused by `read_identities` (look-alike or invisible characters, too long) is None too. Use
    `read_identities` for longer messages.
    """
    pieces = [
        piece
        for piece in _pieces(text, rules)
        if not (isinstance(piece, _Text) and not piece.text.strip())
    ]
    if len(pieces) == 2:
        # `Email: <mailto:a@b.com|a@b.com>`: Slack turned the value of an explicit identity
        # into a link.
        prefix, link = pieces
        if isinstance(prefix, _Text) and isinstance(link, _Link) and link.ref is not None:
            match = _PREFIX_WHOLE.fullmatch(prefix.text.strip())
            if match and match.group(1).casefold() not in _URL_SCHEMES:
                return _accepted(_explicit(match.group(1), link.value, rules))
        return None
    if len(pieces) != 1:
        return None
    piece = pieces[0]
    if isinstance(piece, _Link):
        return piece.ref
    return _accepted(_parse_token(piece.text, rules))


def read_identities(text: str, rules: IdentityRules = DEFAULT_RULES) -> Reading:
    """Every identity in a longer message, in order of appearance, and what was refused.

    An identity is read only when it is delimited by characters that cannot be part of it. A
    token (text between spaces) that holds an identity-like text together with an invisible
    character, letters of two alphabets in one word, look-alike styled characters, or letters
    the scanners do not read is refused whole, never cut down to a valid-looking part; so is a
    value longer than any identity can be. The same customer written twice (as a mailto link and
    as plain text, or as `email:x` and `x`) appears once; at most MAX_IDENTITIES are returned.
    """
    reading = Reading()
    seen: set[tuple[str, str]] = set()
    for item in _scan_pieces(list(_pieces(text, rules)), rules):
        if isinstance(item, Refusal):
            if item not in reading.refused:
                reading.refused.append(item)
            continue
        key = _dedupe_key(item)
        if key in seen or len(reading.refs) == MAX_IDENTITIES:
            continue
        seen.add(key)
        reading.refs.append(item)
    return reading


def extract_identities(text: str, rules: IdentityRules = DEFAULT_RULES) -> list[IdentityRef]:
    """The identities `read_identities` finds in a message, without what it refused."""
    return read_identities(text, rules).refs


# --- what went wrong with text that holds no identity ----------------------------------------

#: Why text a person typed as one identity was not read as one, when a common slip explains it.
DiagnosisReason = Literal[
    "phone_without_country", "crm_id_format", "email_domain", "name", "unknown_namespace"
]

#: Email domains many customers have, suggested after the org's own (`email_domains`).
COMMON_EMAIL_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.com",
    "icloud.com",
    "live.com",
    "msn.com",
    "aol.com",
    "me.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.net",
    "mail.com",
)
#: Regions a phone number without its country code is tried in, for an example of how to write
#: it with one (the first where it is valid); any other region is tried after them.
_EXAMPLE_REGIONS = ("NL", "GB", "DE", "FR", "BE", "ES", "IT", "US", "CA", "AU", "IN", "JP")
_NAME = re.compile(r"[^\W\d_]+(?:['\u2019.-][^\W\d_]+)*\.?")
_CRM_LIKE = re.compile(r"([A-Za-z]{1,12})[-_ ]?([0-9]{1,20})")
_MOST_NAME_WORDS = 4
#: Words of a request or a sentence, not of a name: text holding one is not read as a name.
_NOT_NAME_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "can",
        "customer",
        "find",
        "for",
        "hello",
        "help",
        "hey",
        "hi",
        "how",
        "i",
        "identity",
        "is",
        "look",
        "me",
        "my",
        "not",
        "of",
        "or",
        "please",
        "search",
        "show",
        "the",
        "this",
        "to",
        "up",
        "what",
        "who",
        "with",
        "you",
    ]
)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """What was wrong with text typed as one identity (as `reason` says), and how to write it.

    It holds what the person typed and a correction made from it: it is said back to them only,
    never logged or audited (the audit takes `reason`).
    """

    reason: DiagnosisReason
    #: what was typed: the whole text, or for an unknown namespace its code
    typed: str
    #: the corrected identity ("CRM-000123", "jane.doe@example.com", "+31 6 12345678"), if any
    suggestion: str = ""
    #: a suggested email domain ("example.com")
    domain: str = ""
    #: the region a phone number without country code was read in (BOT_DEFAULT_REGION), and
    #: the region the suggested international number is in
    region: str = ""
    example_region: str = ""
    #: the namespace codes the bot knows, for an unknown namespace
    known: tuple[str, ...] = ()


def diagnose(text: str, rules: IdentityRules = DEFAULT_RULES) -> Diagnosis | None:
    """Why `text`, which holds no identity the bot reads, holds none, when a common slip
    explains it: a phone number without its country code, a CRM id in the wrong case or length,
    an email address with a missing or misspelt domain, or a person's name. None otherwise.

    Pure: the suggestions come from the rules (home region, CRM id format, the org's email
    domains) and COMMON_EMAIL_DOMAINS, never from asking AEP.
    """
    token = _unwrap(_plain(text))
    if not token or not token.isprintable() or _problem(token) is not None:
        return None
    if parse_identity(text, rules) is not None:
        return None  # nothing wrong with it
    return (
        _diagnose_email(token, rules)
        or _diagnose_crm_id(token, rules)
        or _diagnose_phone(token, rules)
        or _diagnose_name(token)
    )


def unknown_namespace(ref: IdentityRef, rules: IdentityRules = DEFAULT_RULES) -> Diagnosis | None:
    """A Diagnosis when `ref` names a namespace the org does not have (`rules.namespaces`);
    None when it has it, or when the bot does not know the org's namespaces."""
    known = rules.known_namespaces()
    if known is None or rules.knows_namespace(ref.namespace):
        return None
    return Diagnosis("unknown_namespace", typed=ref.namespace, known=known)


def misspelt_email_domain(address: str, rules: IdentityRules = DEFAULT_RULES) -> Diagnosis | None:
    """A Diagnosis when a well-formed address's domain is a near miss of a known one
    (`jane@gmial.com`): said when AEP finds no one under the address as typed."""
    return _diagnose_email(address, rules)


def _diagnose_email(token: str, rules: IdentityRules) -> Diagnosis | None:
    local, at, domain = token.rpartition("@")
    if not at or not local or "@" in local or _EMAIL.fullmatch(f"{local}@example.com") is None:
        return None
    domain = domain.lower().rstrip(".")
    candidates = list(dict.fromkeys((*rules.email_domains, *COMMON_EMAIL_DOMAINS)))
    if not domain or domain in candidates:
        return None  # nothing typed, or a domain the bot knows: nothing to correct
    # A domain without its ending (`example`, `gmail.`): the first known domain it begins.
    if "." not in domain:
        for candidate in candidates:
            if candidate.split(".", 1)[0] == domain:
                return _email_suggestion(token, local, candidate)
    best: tuple[int, str] | None = None
    for candidate in candidates:
        # A domain without its ending (`exmaple`) is also held against the name alone.
        against = [candidate] if "." in domain else [candidate, candidate.split(".", 1)[0]]
        for known in against:
            distance = _edit_distance(domain, known, limit=2)
            if 0 < distance <= (1 if len(known) < 8 else 2) and (
                best is None or distance < best[0]
            ):
                best = (distance, candidate)
    if best is not None:
        return _email_suggestion(token, local, best[1])
    return None


def _email_suggestion(token: str, local: str, domain: str) -> Diagnosis:
    return Diagnosis("email_domain", typed=token, suggestion=f"{local}@{domain}", domain=domain)


def _diagnose_crm_id(token: str, rules: IdentityRules) -> Diagnosis | None:
    match = _CRM_LIKE.fullmatch(token)
    if match is None:
        return None
    prefix, digits = match.groups()
    crm = _compiled(rules.crm_pattern)
    significant = digits.lstrip("0") or "0"
    for letters in dict.fromkeys((prefix.upper(), prefix, prefix.lower())):
        for separator in dict.fromkeys(("-", token[len(prefix) : -len(digits)], "", "_")):
            for width in range(len(significant), 21):
                candidate = f"{letters}{separator}{significant.zfill(width)}"
                if crm.fullmatch(candidate):
                    return Diagnosis("crm_id_format", typed=token, suggestion=candidate)
    return None


def _diagnose_phone(token: str, rules: IdentityRules) -> Diagnosis | None:
    if token.startswith("+") or not _PHONE_TEXT.fullmatch(token):
        return None
    digits = "".join(char for char in token if char.isdigit())
    if not 6 <= len(digits) <= 15:
        return None
    others = sorted(phonenumbers.SUPPORTED_REGIONS - set(_EXAMPLE_REGIONS))
    for region in (*_EXAMPLE_REGIONS, *others):
        if region == rules.default_region:
            continue
        try:
            number = phonenumbers.parse(token, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            international = phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
            return Diagnosis(
                "phone_without_country",
                typed=token,
                suggestion=str(international),
                region=rules.default_region,
                example_region=region,
            )
    return Diagnosis("phone_without_country", typed=token, region=rules.default_region)


def _diagnose_name(token: str) -> Diagnosis | None:
    words = token.split()
    if len(words) > _MOST_NAME_WORDS or not all(_NAME.fullmatch(word) for word in words):
        return None
    if any(word.casefold() in _NOT_NAME_WORDS for word in words):
        return None
    return Diagnosis("name", typed=token)


def _edit_distance(a: str, b: str, *, limit: int) -> int:
    """Optimal string alignment distance of `a` and `b` (a swap of two neighbours counts once),
    or `limit + 1` once it is known to exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            current[j] = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (char_a != char_b),
            )
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class _Text:
    """Plain text between Slack markup, entities already unescaped, fullwidth ASCII folded."""

    text: str


@dataclass(frozen=True, slots=True)
class _Link:
    """A Slack link: `ref` is the identity of a mailto/tel link, None for any other link;
    `refusal` says why a mailto/tel link is not read as an identity."""

    ref: IdentityRef | None
    value: str = ""
    refusal: Refusal | None = None


def _pieces(text: str, rules: IdentityRules) -> Iterator[_Text | _Link]:
    """Split Slack-formatted text into plain text and links, dropping mentions."""
    position = 0
    for match in _SLACK_MARKUP.finditer(text):
        if match.start() > position:
            yield _Text(_plain(text[position : match.start()]))
        position = match.end()
        inner = match.group(1)
        if inner.startswith(("@", "#", "!")):
            # <@U123>, <#C123|general>, <!here>, <!subteam^S1|@team>: people and places, not
            # customers.
            continue
        scheme = _SCHEME.match(inner)
        if scheme is None or (
            scheme.group().removesuffix(":").casefold() not in _URL_SCHEMES and "://" not in inner
        ):
            # Not Slack markup: someone typed angle brackets around plain text.
            yield _Text(_plain(inner))
            continue
        yield _link(scheme.group().removesuffix(":").casefold(), inner[scheme.end() :], rules)
    if position < len(text):
        yield _Text(_plain(text[position:]))


def _plain(text: str) -> str:
    return _unescape(text).translate(_FULLWIDTH)


def _link(scheme: str, body: str, rules: IdentityRules) -> _Link:
    """Read the target of a Slack link (`body` is what follows `scheme:`) as an identity."""
    target, _, label = body.partition("|") if not _doubled(body) else (body, "", "")
    kind: IdentityKind = "email address" if scheme == "mailto" else "phone number"
    if scheme in ("mailto", "tel"):
        # The label is what the person sees: a look-alike there is refused like one typed.
        problem = _problem(_plain(label)) or _problem(_unescape(target))
        if problem is not None:
            return _Link(None, refusal=Refusal(kind, problem))
    if scheme == "mailto":
        address = _link_target(body)
        address = address if _EMAIL.fullmatch(address) else address.partition("?")[0]
        if _EMAIL.fullmatch(address):
            if _email_too_long(address):
                return _Link(None, refusal=Refusal(kind, "too_long"))
            return _Link(IdentityRef("Email", address), address)
        if not address.isascii():
            # Slack linked an address the scanners cannot read whole: say so, do not drop it.
            return _Link(None, refusal=Refusal(kind, "unreadable"))
    elif scheme == "tel":
        number = _link_target(body).partition(";")[0]
        ref = _phone(number, "Phone", rules)
        if ref is not None:
            return _Link(ref, number)
    return _Link(None)


def _doubled(body: str) -> bool:
    half = len(body) // 2
    return len(body) % 2 == 1 and body[half] == "|" and body[:half] == body[half + 1 :]


def _link_target(body: str) -> str:
    """The target of `target|label`, also when the target itself contains `|`."""
    if _doubled(body):
        # Slack writes <mailto:x|x>; an address may itself contain `|`, so prefer the split
        # where the label repeats the target.
        return _unescape(body[: len(body) // 2])
    return _unescape(body.partition("|")[0])


def _unescape(text: str) -> str:
    # `&amp;` last, so `&amp;lt;` becomes the literal text `&lt;` as Slack meant.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _parse_token(text: str, rules: IdentityRules) -> IdentityRef | Refusal | None:
    """The identity that all of `text` denotes, or None."""
    token = _unwrap(text)
    if not token:
        return None
    colon = _COLON_WHOLE.fullmatch(token)
    if colon:
        namespace, value = colon.groups()
        if namespace.casefold() in _URL_SCHEMES or value.startswith("/"):
            return _link(namespace.casefold(), value, rules).ref
        return _explicit(namespace, value, rules)
    if _EMAIL.fullmatch(token):
        return Refusal("email address", "too_long") if _email_too_long(token) else _email(token)
    if _ECID.fullmatch(token):
        return IdentityRef("ECID", token)
    if _compiled(rules.crm_pattern).fullmatch(token):
        return IdentityRef(rules.crm_namespace, token)
    return _phone(token, "Phone", rules)


def _accepted(found: IdentityRef | Refusal | None) -> IdentityRef | None:
    return found if isinstance(found, IdentityRef) else None


def _email(address: str) -> IdentityRef:
    return IdentityRef("Email", address)


def _unwrap(text: str) -> str:
    """Strip white space, enclosing quotes or brackets and sentence punctuation after a token."""
    token, previous = text.strip(), ""
    while token != previous:
        previous = token
        token = token.rstrip(".,;!?").rstrip()
        if len(token) >= 2 and _WRAPPERS.get(token[0]) == token[-1]:
            token = token[1:-1].strip()
    return token


def _explicit(namespace: str, value: str, rules: IdentityRules) -> IdentityRef | Refusal | None:
    """`namespace:value` as typed, with well-known codes spelled the way AEP spells them.

    The value is taken as typed, in any single script (an internationalised address such as
    `email:<Cyrillic address>` is looked up exactly), but never with invisible characters,
    look-alike styled characters or two alphabets in one word.
    """
    code = _WELL_KNOWN.get(namespace.casefold(), namespace)
    if namespace.casefold() == rules.crm_namespace.casefold():
        code = rules.crm_namespace
    if code in _PHONE_NAMESPACES:
        return _phone(value, code, rules)
    value = value.strip().rstrip(_TRAILING)
    if not value or any(char.isspace() for char in value):
        return None
    kind: IdentityKind = "email address" if code == "Email" else "identity"
    problem = _problem(value)
    if problem is not None:
        return Refusal(kind, problem)
    too_long = len(namespace) > MAX_NAMESPACE_CHARS or len(value) > MAX_VALUE_CHARS
    if too_long or (code == "Email" and _email_too_long(value)):
        return Refusal(kind, "too_long")
    return IdentityRef(code, value)


def _email_too_long(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    return (
        len(address) > MAX_EMAIL_CHARS
        or len(local) > MAX_LOCAL_PART_CHARS
        or any(len(label) > MAX_DOMAIN_LABEL_CHARS for label in domain.split("."))
    )


def _phone(text: str, namespace: str, rules: IdentityRules) -> IdentityRef | None:
    """A valid phone number written in `text` (and nothing else), in E.164."""
    text = text.strip()
    if not _PHONE_TEXT.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, rules.default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return IdentityRef(namespace, _format_e164(number))


def _scan_pieces(
    pieces: list[_Text | _Link], rules: IdentityRules
) -> Iterator[IdentityRef | Refusal]:
    """Identities (and refusals) in order of appearance across the pieces of a message."""
    for index, piece in enumerate(pieces):
        if isinstance(piece, _Link):
            if piece.refusal is not None:
                yield piece.refusal
            elif piece.ref is not None:
                yield (
                    _link_neighbours(pieces, index) or _prefixed(pieces, index, rules) or piece.ref
                )
            continue
        text = piece.text
        following = pieces[index + 1] if index + 1 < len(pieces) else None
        if isinstance(following, _Link) and following.ref is not None:
            # A `namespace:` right before a link belongs to the link (see _prefixed).
            prefix = _PREFIX_SCAN.search(text)
            if prefix and prefix.group(1).casefold() not in _URL_SCHEMES:
                text = text[: prefix.start()]
        yield from _scan_text(text, rules)


def _link_neighbours(pieces: list[_Text | _Link], index: int) -> Refusal | None:
    """A link written against look-alike text (`m<Cyrillic>` + <mailto:rtje@...>) is refused."""
    link = pieces[index]
    assert isinstance(link, _Link) and link.ref is not None
    kind: IdentityKind = "email address" if link.ref.namespace == "Email" else "phone number"
    before = pieces[index - 1] if index > 0 else None
    after = pieces[index + 1] if index + 1 < len(pieces) else None
    touching = []
    if isinstance(before, _Text) and before.text and not before.text[-1].isspace():
        touching.append(before.text.rsplit(None, 1)[-1])
    if isinstance(after, _Text) and after.text and not after.text[0].isspace():
        touching.append(after.text.split(None, 1)[0])
    for text in touching:
        problem = _problem(text)
        if problem is not None:
            return Refusal(kind, problem)
    if (
        touching and before is not None and isinstance(before, _Text) and _joins(before.text[-1])
    ) or (isinstance(after, _Text) and after.text and _joins(after.text[0])):
        return Refusal(kind, "unreadable")
    return None


def _prefixed(
    pieces: list[_Text | _Link], index: int, rules: IdentityRules
) -> IdentityRef | Refusal | None:
    """The explicit identity `namespace:<link>` when the link at `index` follows `namespace:`."""
    before = pieces[index - 1] if index > 0 else None
    link = pieces[index]
    if not isinstance(before, _Text) or not isinstance(link, _Link):
        return None
    prefix = _PREFIX_SCAN.search(before.text)
    if prefix is None or prefix.group(1).casefold() in _URL_SCHEMES:
        return None
    return _explicit(prefix.group(1), link.value, rules)


class _Tokens:
    """The tokens (runs of non-space characters) of a text, and which cannot hold an identity."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans = [match.span() for match in _TOKEN.finditer(text)]
        self._starts = [start for start, _ in self.spans]
        self._problems: dict[int, RefusalReason | None] = {}
        self._phone_parts: dict[int, bool] = {}
        self.used: set[int] = set()

    def problem(self, index: int) -> RefusalReason | None:
        if index not in self._problems:
            start, end = self.spans[index]
            self._problems[index] = _problem(self.text[start:end])
        return self._problems[index]

    def phone_part(self, index: int) -> bool:
        if index not in self._phone_parts:
            token = self.text[slice(*self.spans[index])]
            ascii_part = "".join(char for char in token if char.isascii())
            self._phone_parts[index] = bool(_PHONE_PART.fullmatch(ascii_part))
        return self._phone_parts[index]

    def verdict(self, start: int, end: int, *, phone: bool = False) -> RefusalReason | None:
        """Why the identity found at text[start:end] must be refused, or None to read it.

        A phone number is written in several tokens: a token of phone characters right before or
        after it (`+44<zero-width space> 20 7946 0958`) may be a part the scanner could not read.
        """
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_right(self._starts, max(start, end - 1)) - 1
        held = list(range(first, last + 1))
        if phone:
            held += [
                index
                for index in (first - 1, last + 1)
                if 0 <= index < len(self.spans) and self.phone_part(index)
            ]
        self.used.update(held)
        for index in held:
            problem = self.problem(index)
            if problem is not None:
                return problem
        # Past ASCII punctuation too: `0@a.b.<accent>com` must not be read as `0@a.b`.
        while start > 0 and _ascii_punctuation(self.text[start - 1]):
            start -= 1
        while end < len(self.text) and _ascii_punctuation(self.text[end]):
            end += 1
        before = self.text[start - 1] if start > 0 else ""
        after = self.text[end : end + 1]
        if _joins(before) or _joins(after):
            return "unreadable"
        return None


def _scan_text(text: str, rules: IdentityRules) -> list[IdentityRef | Refusal]:
    """Identities in plain text, in order of appearance, or why each was refused.

    Detectors run from the most to the least specific; each blanks out what it claimed, so a
    38-digit ECID is never read again as a phone, nor an email's digits as a CRM id. Every
    identity found is then held against the token it sits in (see `_Tokens.verdict`).
    """
    tokens = _Tokens(text)
    found: list[tuple[int, IdentityRef | Refusal]] = []

    def keep(start: int, end: int, kind: IdentityKind, ref: IdentityRef | Refusal | None) -> None:
        problem = tokens.verdict(start, end, phone=kind == "phone number")
        if problem is not None:
            found.append((start, Refusal(kind, problem)))
        elif ref is not None:
            found.append((start, ref))

    claimed: list[tuple[int, int]] = []
    for match in _COLON_SCAN.finditer(text):
        namespace, value = match.groups()
        if not value:
            continue  # `Note: ...`: a label in prose, not an identity
        end = match.end()
        ref: IdentityRef | Refusal | None
        kind: IdentityKind = "identity"
        if namespace.casefold() in _URL_SCHEMES or value.startswith("/"):
            link = _link(namespace.casefold(), value.rstrip(_TRAILING), rules)
            ref = link.ref or link.refusal
        elif _WELL_KNOWN.get(namespace.casefold()) in _PHONE_NAMESPACES:
            ref, end = _phone_after(text, match.start(2), namespace, rules)
            kind = "phone number"
        else:
            ref = _explicit(namespace, value, rules)
        claimed.append((match.start(), end))
        if isinstance(ref, Refusal):
            tokens.verdict(match.start(), end)
            found.append((match.start(), ref))
        else:
            keep(match.start(), end, kind, ref)
    text = _blank(text, claimed)

    claimed = []
    for match in _EMAIL_SCAN.finditer(text):
        start, address = match.start(), match.group()
        if address[0] in "'`" and text[match.end() : match.end() + 1] == address[0]:
            # 'jane@example.com' in quotes: the quote is punctuation, not part of the address.
            start, address = start + 1, address[1:]
        claimed.append((match.start(), match.end()))
        email = (
            Refusal("email address", "too_long") if _email_too_long(address) else _email(address)
        )
        if isinstance(email, Refusal):
            tokens.verdict(start, match.end())
            found.append((start, email))
        else:
            keep(start, match.end(), "email address", email)
    text = _blank(text, claimed)

    claimed = []
    for match in _ECID_SCAN.finditer(text):
        claimed.append((match.start(), match.end()))
        keep(match.start(), match.end(), "ECID", IdentityRef("ECID", match.group()))
    crm = _compiled(rules.crm_pattern)
    for match in crm.finditer(text):
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        if match.group() and not _joins_word(before) and not _joins_word(after):
            claimed.append((match.start(), match.end()))
            keep(
                match.start(),
                match.end(),
                "CRM id",
                IdentityRef(rules.crm_namespace, match.group()),
            )
    text = _blank(text, claimed)

    for number in phonenumbers.PhoneNumberMatcher(text, rules.default_region):
        keep(
            number.start,
            number.end,
            "phone number",
            IdentityRef("Phone", _format_e164(number.number)),
        )

    # Tokens that hold no identity the scanners read, but would with their look-alike or
    # invisible characters taken out, are refused too: the person meant an identity.
    for index, (start, end) in enumerate(tokens.spans):
        if index in tokens.used or tokens.text[start:end].isascii():
            continue
        attempted = _attempted(tokens.text[start:end], rules)
        if attempted is not None:
            found.append((start, Refusal(attempted, tokens.problem(index) or "unreadable")))
    found.sort(key=lambda item: item[0])
    return [ref for _, ref in found]


def _attempted(token: str, rules: IdentityRules) -> IdentityKind | None:
    """Which kind of identity a token that the scanners did not read was probably meant as."""
    if _EMAIL_SHAPE.search(token):
        return "email address"
    ascii_only = _unwrap("".join(char for char in token if char.isascii()))
    if not ascii_only or ascii_only == _unwrap(token):
        return None
    if _ECID.fullmatch(ascii_only):
        return "ECID"
    if _compiled(rules.crm_pattern).fullmatch(ascii_only):
        return "CRM id"
    if _phone(ascii_only, "Phone", rules) is not None:
        return "phone number"
    if _COLON_WHOLE.fullmatch(ascii_only) and not ascii_only.endswith(":"):
        return "identity"
    return None


def _problem(text: str) -> RefusalReason | None:
    """Why `text` cannot hold an identity, or None.

    The policy, character by character (fullwidth ASCII is already folded to ASCII):
    - a format character (Unicode category Cf: bidi controls, zero-width characters, BOM, soft
      hyphen, tags), a private-use, unassigned or surrogate code point, or another invisible
      character (variation selectors, Hangul fillers) -> "invisible";
    - a compatibility character (one NFKC would replace: bold or circled letters, superscript
      digits, ligatures) -> "styled";
    - letters of two scripts in one word (a run of letters, marks and digits), or digits of two
      numbering systems -> "mixed_script". Han with Hiragana/Katakana, Hangul or Bopomofo is
      one writing system, not a mix.
    """
    if text.isascii():
        return None
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cf", "Co", "Cn", "Cs") or char in _INVISIBLE:
            return "invisible"
    scripts: set[str] = set()
    digits: set[str] = set()
    for char in text + " ":
        category = unicodedata.category(char)
        if char.isascii() and char.isalpha():
            scripts.add("LATIN")
        elif char.isascii() and char.isdigit():
            digits.add("ASCII")
        elif not char.isascii() and not unicodedata.is_normalized("NFKC", char):
            return "styled"
        elif not char.isascii() and category[0] == "L":
            scripts.add(_script(char))
        elif not char.isascii() and category == "Nd":
            digits.add(_script(char))
        elif char.isascii() or category[0] not in "MN":
            # The end of a word: one script (or one allowed mix), one numbering system.
            if len(digits) > 1 or (len(scripts) > 1 and frozenset(scripts) not in _ALLOWED_MIXES):
                return "mixed_script"
            scripts.clear()
            digits.clear()
    return None


def _script(char: str) -> str:
    word = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    return _SCRIPT_OF_WORD.get(word, word)


def _joins(char: str) -> bool:
    """A character written against an identity that makes it part of a longer word: a
    non-ASCII letter, mark or digit, or an invisible character (ASCII is the scanners' call)."""
    if not char or char.isascii():
        return False
    category = unicodedata.category(char)
    return category[0] in "LMN" or category in ("Cf", "Co", "Cn", "Cs") or char in _INVISIBLE


def _ascii_punctuation(char: str) -> bool:
    return char.isascii() and not char.isalnum() and not char.isspace()


def _phone_after(
    text: str, start: int, namespace: str, rules: IdentityRules
) -> tuple[IdentityRef | None, int]:
    """The phone number written right at `start` (it may contain spaces) and where it ends."""
    code = _WELL_KNOWN[namespace.casefold()]
    for number in phonenumbers.PhoneNumberMatcher(text[start:], rules.default_region):
        if number.start == 0:
            return IdentityRef(code, _format_e164(number.number)), start + number.end
        break
    end = start + len(text[start:].split(None, 1)[0])
    return _phone(text[start:end].rstrip(_TRAILING), code, rules), end


def _format_e164(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _joins_word(char: str) -> bool:
    return bool(char) and (char.isalnum() or char in "_-")


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the spans replaced by spaces of equal length, so offsets stay put."""
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in sorted(spans):
        start = max(start, position)
        parts.append(text[position:start])
        parts.append(" " * max(end - start, 0))
        position = max(position, end)
    parts.append(text[position:])
    return "".join(parts)


def _dedupe_key(ref: IdentityRef) -> tuple[str, str]:
    # Email addresses are matched case-insensitively in practice (the AEP client retries
    # lower-case); every other value is an exact string.
    value = ref.value.casefold() if ref.namespace == "Email" else ref.value
    return ref.namespace.casefold(), value
