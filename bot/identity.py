"""Text a person typed -> IdentityRef(namespace, value). Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

#: Most identities `extract_identities` returns for one message.
MAX_IDENTITIES = 20

USAGE = """\
Tell me which customer to look up, in one of these forms:
  email            jane.doe@example.com
  phone            +31 6 1234 5678 (with the country code), or (415) 555-0123 for a number in \
the bot's home region
  CRM id           CRM-000123
  ECID             41234567890123456789012345678901234567 (the 38-digit Experience Cloud ID)
  namespace:value  any AEP identity namespace code and a value, for example crmid:CRM-000123, \
loyaltyId:L-99 or phone:+14155550123
Example: /customer jane.doe@example.com"""


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """One identity to look up: an AEP identity namespace code and the value in that namespace."""

    namespace: str
    value: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.value}"


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


def parse_identity(text: str, rules: IdentityRules = DEFAULT_RULES) -> IdentityRef | None:
    """Return the single identity the whole `text` denotes, or None when it denotes none.

    Slack formatting is understood (mailto/tel links, `&amp;` entities) and user mentions are
    ignored; any other words make the text ambiguous, so the answer is None. Use
    `extract_identities` for longer messages.
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
                return _explicit(match.group(1), link.value, rules)
        return None
    if len(pieces) != 1:
        return None
    piece = pieces[0]
    if isinstance(piece, _Link):
        return piece.ref
    return _parse_token(piece.text, rules)


def extract_identities(text: str, rules: IdentityRules = DEFAULT_RULES) -> list[IdentityRef]:
    """Return every identity found in a longer message, in order of appearance.

    The same customer written twice (as a mailto link and as plain text, or as `email:x` and
    `x`) appears once; at most MAX_IDENTITIES are returned.
    """
    found: list[IdentityRef] = []
    seen: set[tuple[str, str]] = set()
    for ref in _scan_pieces(list(_pieces(text, rules)), rules):
        key = _dedupe_key(ref)
        if key in seen:
            continue
        seen.add(key)
        found.append(ref)
        if len(found) == MAX_IDENTITIES:
            break
    return found


@dataclass(frozen=True, slots=True)
class _Text:
    """Plain text between Slack markup, entities already unescaped."""

    text: str


@dataclass(frozen=True, slots=True)
class _Link:
    """A Slack link: `ref` is the identity of a mailto/tel link, None for any other link."""

    ref: IdentityRef | None
    value: str = ""


def _pieces(text: str, rules: IdentityRules) -> Iterator[_Text | _Link]:
    """Split Slack-formatted text into plain text and links, dropping mentions."""
    position = 0
    for match in _SLACK_MARKUP.finditer(text):
        if match.start() > position:
            yield _Text(_unescape(text[position : match.start()]))
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
            yield _Text(_unescape(inner))
            continue
        yield _link(scheme.group().removesuffix(":").casefold(), inner[scheme.end() :], rules)
    if position < len(text):
        yield _Text(_unescape(text[position:]))


def _link(scheme: str, body: str, rules: IdentityRules) -> _Link:
    """Read the target of a Slack link (`body` is what follows `scheme:`) as an identity."""
    if scheme == "mailto":
        address = _link_target(body)
        address = address if _EMAIL.fullmatch(address) else address.partition("?")[0]
        if _EMAIL.fullmatch(address):
            return _Link(IdentityRef("Email", address), address)
    elif scheme == "tel":
        number = _link_target(body).partition(";")[0]
        ref = _phone(number, "Phone", rules)
        if ref is not None:
            return _Link(ref, number)
    return _Link(None)


def _link_target(body: str) -> str:
    """The target of `target|label`, also when the target itself contains `|`."""
    half = len(body) // 2
    if len(body) % 2 == 1 and body[half] == "|" and body[:half] == body[half + 1 :]:
        # Slack writes <mailto:x|x>; an address may itself contain `|`, so prefer the split
        # where the label repeats the target.
        return _unescape(body[:half])
    return _unescape(body.partition("|")[0])


def _unescape(text: str) -> str:
    # `&amp;` last, so `&amp;lt;` becomes the literal text `&lt;` as Slack meant.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _parse_token(text: str, rules: IdentityRules) -> IdentityRef | None:
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
        return IdentityRef("Email", token)
    if _ECID.fullmatch(token):
        return IdentityRef("ECID", token)
    if _compiled(rules.crm_pattern).fullmatch(token):
        return IdentityRef(rules.crm_namespace, token)
    return _phone(token, "Phone", rules)


def _unwrap(text: str) -> str:
    """Strip white space, enclosing quotes or brackets and sentence punctuation after a token."""
    token, previous = text.strip(), ""
    while token != previous:
        previous = token
        token = token.rstrip(".,;!?").rstrip()
        if len(token) >= 2 and _WRAPPERS.get(token[0]) == token[-1]:
            token = token[1:-1].strip()
    return token


def _explicit(namespace: str, value: str, rules: IdentityRules) -> IdentityRef | None:
    """`namespace:value` as typed, with well-known codes spelled the way AEP spells them."""
    code = _WELL_KNOWN.get(namespace.casefold(), namespace)
    if namespace.casefold() == rules.crm_namespace.casefold():
        code = rules.crm_namespace
    if code in _PHONE_NAMESPACES:
        return _phone(value, code, rules)
    value = value.strip().rstrip(_TRAILING)
    if not value or any(char.isspace() for char in value):
        return None
    return IdentityRef(code, value)


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


def _scan_pieces(pieces: list[_Text | _Link], rules: IdentityRules) -> Iterator[IdentityRef]:
    """Identities in order of appearance across the pieces of a message."""
    for index, piece in enumerate(pieces):
        if isinstance(piece, _Link):
            if piece.ref is not None:
                yield _prefixed(pieces, index, rules) or piece.ref
            continue
        text = piece.text
        following = pieces[index + 1] if index + 1 < len(pieces) else None
        if isinstance(following, _Link) and following.ref is not None:
            # A `namespace:` right before a link belongs to the link (see _prefixed).
            prefix = _PREFIX_SCAN.search(text)
            if prefix and prefix.group(1).casefold() not in _URL_SCHEMES:
                text = text[: prefix.start()]
        yield from _scan_text(text, rules)


def _prefixed(pieces: list[_Text | _Link], index: int, rules: IdentityRules) -> IdentityRef | None:
    """The explicit identity `namespace:<link>` when the link at `index` follows `namespace:`."""
    before = pieces[index - 1] if index > 0 else None
    link = pieces[index]
    if not isinstance(before, _Text) or not isinstance(link, _Link):
        return None
    prefix = _PREFIX_SCAN.search(before.text)
    if prefix is None or prefix.group(1).casefold() in _URL_SCHEMES:
        return None
    return _explicit(prefix.group(1), link.value, rules)


def _scan_text(text: str, rules: IdentityRules) -> list[IdentityRef]:
    """Identities in plain text, in order of appearance.

    Detectors run from the most to the least specific; each blanks out what it claimed, so a
    38-digit ECID is never read again as a phone, nor an email's digits as a CRM id.
    """
    found: list[tuple[int, IdentityRef]] = []
    claimed: list[tuple[int, int]] = []
    for match in _COLON_SCAN.finditer(text):
        namespace, value = match.groups()
        if not value:
            continue  # `Note: ...`: a label in prose, not an identity
        end = match.end()
        ref: IdentityRef | None
        if namespace.casefold() in _URL_SCHEMES or value.startswith("/"):
            ref = _link(namespace.casefold(), value.rstrip(_TRAILING), rules).ref
        elif _WELL_KNOWN.get(namespace.casefold()) in _PHONE_NAMESPACES:
            ref, end = _phone_after(text, match.start(2), namespace, rules)
        else:
            ref = _explicit(namespace, value, rules)
        claimed.append((match.start(), end))
        if ref is not None:
            found.append((match.start(), ref))
    text = _blank(text, claimed)

    claimed = []
    for match in _EMAIL_SCAN.finditer(text):
        start, address = match.start(), match.group()
        if address[0] in "'`" and text[match.end() : match.end() + 1] == address[0]:
            # 'jane@example.com' in quotes: the quote is punctuation, not part of the address.
            start, address = start + 1, address[1:]
        claimed.append((match.start(), match.end()))
        found.append((start, IdentityRef("Email", address)))
    text = _blank(text, claimed)

    claimed = []
    for match in _ECID_SCAN.finditer(text):
        claimed.append((match.start(), match.end()))
        found.append((match.start(), IdentityRef("ECID", match.group())))
    crm = _compiled(rules.crm_pattern)
    for match in crm.finditer(text):
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        if match.group() and not _joins_word(before) and not _joins_word(after):
            claimed.append((match.start(), match.end()))
            found.append((match.start(), IdentityRef(rules.crm_namespace, match.group())))
    text = _blank(text, claimed)

    for number in phonenumbers.PhoneNumberMatcher(text, rules.default_region):
        found.append((number.start, IdentityRef("Phone", _format_e164(number.number))))
    found.sort(key=lambda item: item[0])
    return [ref for _, ref in found]


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
