"""The bundled demo dataset: seeded, deterministic customers, events and audiences (`_acme`).

Everything is built in Python from seeded `random.Random` instances (one per customer, so changing
one customer never shifts another) relative to the fixed reference time 2026-11-01T00:00:00Z.

Fixed customers come first; tests and the README rely on them:

1. Jane Doe: `jane.doe@example.com`, phone `+14155550123`, crmid `CRM-000123`, gold loyalty, VIP,
   churn propensity 0.82; 1606 events (event lookups page at 1000), the newest of them a returns
   story (an order of 29 Oct 2026 for 233.95 USD, then five "Returns and refunds" page views);
   audiences realized, existing and one exited ("Cart abandoners (30 days)").
2. The hostile profile: firstName `<!channel> *bold* <https://evil.example|click>`, lastName
   `&amp; <@U0ADMIN>`, email `hostile@example.com`, phone `+14155550666`, crmid `CRM-000666`;
   its company, street, campaign names (`<!here> ...`), product names and its audience name carry
   Slack control text too.
3. Sanne de Vries: `sanne.de.vries@example.nl`, phone `+31612345678`, crmid `CRM-000311`,
   living in Amsterdam.
4. The big graph: `big.graph@example.com`, crmid `CRM-000999`, 60 identities (56 of them ECIDs):
   every lookup answers 422 "Too many related identities".
5. The sparse customer: `sparse@example.com`, name Sam Sparse, nothing else (no phone, crmid,
   address, scores, events or audiences).
6. 山田 花子 (Hanako Yamada): `hanako.yamada@example.jp`, phone `+819012345678`, crmid `CRM-000810`.

Then 30 generated customers across en-US, en-GB, nl-NL, de-DE, fr-FR, ja-JP, ar-AE, el-GR, ru-RU
and hi-IN (Japanese, Arabic, Greek, Cyrillic and Devanagari names). Some lack a phone, an address,
scores, events or audiences; some carry only `identityMap` instead of `identities[]`; two more
have 1500+ events.

Under the no-stitch merge policy a lookup returns only the fragment of the asked identity:
email -> name, personalEmail, preferredLanguage; phone -> mobilePhone; crmid -> person, homeAddress,
`_acme.crm`, `_acme.billing`, `_acme.support`; ECID -> `_acme.scores`, segmentMembership;
loyaltyId -> loyalty.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.settings import DEMO_ORG_ID as DEMO_ORG_ID

DEMO_CLIENT_ID = "demo-client-id"
DEMO_CLIENT_SECRET = "demo-client-secret"  # noqa: S105 - public demo data
DEMO_SANDBOX = "prod"
DEFAULT_MERGE_POLICY_ID = "5c1e0a2b-7d3f-4e8a-9b6c-d0e1f2a3b4c5"
#: A membership of an audience since deleted: segmentMembership still names it, Platform's
#: audience API no longer knows it (bulk-get answers its entry with a 404).
DELETED_AUDIENCE = "deleted"
DELETED_AUDIENCE_ID = "0d31e7ed-de1e-4ed0-8000-00000000dead"
NO_STITCH_MERGE_POLICY_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

TENANT = "_acme"
REFERENCE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
REFERENCE_MS = int(REFERENCE_TIME.timestamp() * 1000)
EPOCH_RFC3339 = "1970-01-01T00:00:00Z"
HISTORY_DAYS = 730
_DAY_MS = 86_400_000

# Namespace codes as the organization defined them; `crmid` and `loyaltyId` are custom namespaces.
EMAIL, PHONE, ECID, CRMID, LOYALTY_ID = "Email", "Phone", "ECID", "crmid", "loyaltyId"

# Dataset ids that appear in `sources`: which dataset each identity's profile fragment came from,
# keyed by lower-case namespace code.
DATASET_BY_NAMESPACE = {
    "crmid": "65f0c0ffee0000000000a001",
    "ecid": "65f0c0ffee0000000000a002",
    "loyaltyid": "65f0c0ffee0000000000a003",
    "email": "65f0c0ffee0000000000a004",
    "phone": "65f0c0ffee0000000000a005",
}

# The namespaces of the sandbox as `GET /data/core/idnamespace/identities` lists them.
_NAMESPACE_ROWS = (
    # (id, code, name, idType, custom)
    (0, "CORE", "Adobe Audience Manager", "COOKIE", False),
    (4, "ECID", "Adobe Experience Cloud ID", "COOKIE", False),
    (6, EMAIL, "Email", "Email", False),
    (7, PHONE, "Phone", "Phone", False),
    (9, "TNTID", "Adobe Target", "COOKIE", False),
    (2_816_734, CRMID, "CRM ID", "CROSS_DEVICE", True),
    (2_816_735, LOYALTY_ID, "Loyalty ID", "CROSS_DEVICE", True),
    # A custom namespace no demo customer has, named only by the sandbox (not by the bot).
    (2_816_736, "acmeMember", "Acme member number", "CROSS_DEVICE", True),
)
NAMESPACES: tuple[dict[str, Any], ...] = tuple(
    {
        "id": nsid,
        "code": code,
        "name": name,
        "description": f"Acme {name}" if custom else name,
        "idType": id_type,
        "status": "ACTIVE",
        "custom": custom,
        "createTime": 1_700_000_000_000 if custom else 1_572_918_753_626,
        "updateTime": 1_700_000_000_000 if custom else 1_572_918_753_626,
    }
    for nsid, code, name, id_type, custom in _NAMESPACE_ROWS
)

#: The namespace codes of the sandbox: the bot's known namespaces on demo data.
NAMESPACE_CODES = frozenset(str(row["code"]) for row in NAMESPACES)
#: The demo org's own email domains (what BOT_EMAIL_DOMAINS names for a real org).
EMAIL_DOMAINS = ("example.com", "example.nl", "example.jp")


def rfc3339(epoch_ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC with `Z`, as the entities API writes `lastModifiedAt`."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def xid_for(namespace: str, value: str) -> str:
    """A stable XID-style id for one identity (namespace codes compare case-insensitively)."""
    digest = hashlib.sha256(f"{namespace.lower()}\x00{value}".encode()).digest()
    return "BQ" + base64.urlsafe_b64encode(digest[:21]).decode("ascii")


def _key(namespace: str, value: str) -> str:
    return f"{namespace.lower()}:{value}"


@dataclass(frozen=True)
class DemoCustomer:
    """One merged profile with its events and, for the no-stitch policy, its per-identity fragments.

    `fragments` is keyed by `"<namespace code, lower-case>:<value>"`.
    """

    entity_id: str
    entity: dict[str, Any]
    last_modified_at: str
    events: tuple[dict[str, Any], ...] = ()
    fragments: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @functools.cached_property
    def identities(self) -> tuple[tuple[str, str], ...]:
        """Every (namespace code, value) of this profile, from `identities[]` or `identityMap`."""
        if "identities" in self.entity:
            return tuple((i["namespace"]["code"], i["id"]) for i in self.entity["identities"])
        return tuple(
            (code, item["id"])
            for code, items in self.entity.get("identityMap", {}).items()
            for item in items
        )

    def fragment(self, namespace: str, value: str) -> dict[str, Any] | None:
        """The profile fragment of one identity (no stitching), or None if it has none."""
        return self.fragments.get(_key(namespace, value))


@dataclass(frozen=True)
class DemoDataset:
    """All demo customers and audiences, with an index from identity to customer.

    The dataset is cached and shared: treat every dict in it as read-only.
    """

    customers: tuple[DemoCustomer, ...]
    audiences: tuple[dict[str, Any], ...]
    _by_identity: dict[str, DemoCustomer] = field(init=False, repr=False, compare=False)
    _by_xid: dict[str, tuple[DemoCustomer, str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_identity: dict[str, DemoCustomer] = {}
        by_xid: dict[str, tuple[DemoCustomer, str, str]] = {}
        for customer in self.customers:
            by_xid[customer.entity_id] = (customer, *customer.identities[0])
            for namespace, value in customer.identities:
                by_identity[_key(namespace, value)] = customer
                by_xid.setdefault(xid_for(namespace, value), (customer, namespace, value))
        object.__setattr__(self, "_by_identity", by_identity)
        object.__setattr__(self, "_by_xid", by_xid)

    def find(self, namespace: str, value: str) -> DemoCustomer | None:
        """The customer holding this identity; namespace codes are case-insensitive, values exact,
        except that an email also matches its lower-cased form."""
        found = self._by_identity.get(_key(namespace, value))
        if found is None and namespace.lower() == "email":
            found = self._by_identity.get(_key(namespace, value.lower()))
        return found

    def find_xid(self, xid: str) -> tuple[DemoCustomer, str, str] | None:
        """The customer and the (namespace, value) behind an XID or a merged entity id."""
        return self._by_xid.get(xid)

    def audience(self, audience_id: str) -> dict[str, Any] | None:
        """The audience with this `id`, or None."""
        return next((a for a in self.audiences if a["id"] == audience_id), None)


# --------------------------------------------------------------------------------------------
# Locales: names in their own script, with the Latin spelling used for the email address.


@dataclass(frozen=True)
class _Locale:
    language: str
    country: str
    country_code: str
    tld: str
    currency: str
    # E.164 prefix of a range that libphonenumber accepts as valid mobile numbers; random digits
    # complete it to `phone_length` characters.
    phone_prefix: str
    phone_length: int
    cities: tuple[str, ...]
    streets: tuple[str, ...]
    first_names: tuple[tuple[str, str, str], ...]  # (native, latin, gender)
    last_names: tuple[tuple[str, str], ...]  # (native, latin)
    companies: tuple[str, ...]


# fmt: off
_LOCALES: dict[str, _Locale] = {
    "en-US": _Locale(
        "en-US", "United States", "US", "com", "USD", "+1415555", 12,
        ("San Francisco", "Oakland", "Seattle", "Austin"),
        ("Market Street", "Valencia Street", "Pine Avenue", "Lake Road"),
        (("Emily", "Emily", "female"), ("Michael", "Michael", "male"),
         ("Olivia", "Olivia", "female"), ("James", "James", "male")),
        (("Carter", "Carter"), ("Nguyen", "Nguyen"), ("Brooks", "Brooks"), ("Rivera", "Rivera")),
        ("Northwind Traders", "Contoso Retail", "Globex Supplies"),
    ),
    "en-GB": _Locale(
        "en-GB", "United Kingdom", "GB", "co.uk", "GBP", "+447400", 13,
        ("London", "Manchester", "Leeds"),
        ("Baker Street", "Deansgate", "Briggate"),
        (("Amelia", "Amelia", "female"), ("Oliver", "Oliver", "male"),
         ("Isla", "Isla", "female"), ("Harry", "Harry", "male")),
        (("Wright", "Wright"), ("Patel", "Patel"), ("Evans", "Evans")),
        ("Thames Logistics", "Albion Goods"),
    ),
    "nl-NL": _Locale(
        "nl-NL", "Netherlands", "NL", "nl", "EUR", "+3162", 12,
        ("Amsterdam", "Utrecht", "Rotterdam", "Groningen"),
        ("Prinsengracht", "Oudegracht", "Coolsingel", "Vismarkt"),
        (("Daan", "Daan", "male"), ("Lotte", "Lotte", "female"),
         ("Bram", "Bram", "male"), ("Fenna", "Fenna", "female")),
        (("Jansen", "Jansen"), ("Bakker", "Bakker"), ("Visser", "Visser"), ("Smit", "Smit")),
        ("Polder Techniek", "Grachten Handel"),
    ),
    "de-DE": _Locale(
        "de-DE", "Germany", "DE", "de", "EUR", "+49151", 14,
        ("Berlin", "München", "Köln"),
        ("Hauptstraße", "Schillerstraße", "Gartenweg"),
        (("Jürgen", "Juergen", "male"), ("Lena", "Lena", "female"),
         ("Lukas", "Lukas", "male"), ("Sophie", "Sophie", "female")),
        (("Müller", "Mueller"), ("Schröder", "Schroeder"), ("Weber", "Weber")),
        ("Rhein Maschinenbau", "Spree Versand"),
    ),
    "fr-FR": _Locale(
        "fr-FR", "France", "FR", "fr", "EUR", "+3364", 12,
        ("Paris", "Lyon", "Nantes"),
        ("Rue de Rivoli", "Rue Mercière", "Quai de la Fosse"),
        (("Chloé", "Chloe", "female"), ("Étienne", "Etienne", "male"),
         ("Inès", "Ines", "female"), ("Hugo", "Hugo", "male")),
        (("Lefèvre", "Lefevre"), ("Dubois", "Dubois"), ("Girard", "Girard")),
        ("Loire Distribution", "Atelier Rivoli"),
    ),
    "ja-JP": _Locale(
        "ja-JP", "Japan", "JP", "jp", "JPY", "+81903", 13,
        ("東京", "大阪", "京都"),
        ("千代田1-1", "梅田2-4", "烏丸通3-7"),
        (("花子", "hanako", "female"), ("太郎", "taro", "male"),
         ("結衣", "yui", "female"), ("蓮", "ren", "male")),
        (("山田", "yamada"), ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi")),
        ("富士精機株式会社", "桜商事"),
    ),
    "ar-AE": _Locale(
        "ar-AE", "United Arab Emirates", "AE", "ae", "AED", "+97150", 13,
        ("دبي", "أبو ظبي", "الشارقة"),
        ("شارع الشيخ زايد", "شارع الوصل"),
        (("ليلى", "layla", "female"), ("عمر", "omar", "male"),
         ("فاطمة", "fatima", "female"), ("يوسف", "youssef", "male")),
        (("حداد", "haddad"), ("منصور", "mansour"), ("خليل", "khalil")),
        ("شركة الخليج للتجارة", "النخيل القابضة"),
    ),
    "el-GR": _Locale(
        "el-GR", "Greece", "GR", "gr", "EUR", "+3069", 13,
        ("Αθήνα", "Θεσσαλονίκη", "Πάτρα"),
        ("Οδός Ερμού", "Λεωφόρος Νίκης"),
        (("Ελένη", "eleni", "female"), ("Νίκος", "nikos", "male"),
         ("Μαρία", "maria", "female"), ("Γιώργος", "giorgos", "male")),
        (("Παπαδόπουλος", "papadopoulos"), ("Γεωργίου", "georgiou"), ("Νικολάου", "nikolaou")),
        ("Αιγαίο Εμπορική", "Ολυμπος Τεχνική"),
    ),
    "ru-RU": _Locale(
        "ru-RU", "Russia", "RU", "ru", "RUB", "+7916", 12,
        ("Москва", "Санкт-Петербург", "Казань"),
        ("улица Тверская", "Невский проспект"),
        (("Ольга", "olga", "female"), ("Дмитрий", "dmitry", "male"),
         ("Анна", "anna", "female"), ("Иван", "ivan", "male")),
        (("Шевченко", "shevchenko"), ("Черных", "chernykh"), ("Ким", "kim")),
        ("Северный ветер", "Волга Трейд"),
    ),
    "hi-IN": _Locale(
        "hi-IN", "India", "IN", "in", "INR", "+9198", 13,
        ("मुंबई", "पुणे", "दिल्ली"),
        ("महात्मा गांधी मार्ग", "नेहरू रोड"),
        (("प्रिया", "priya", "female"), ("अर्जुन", "arjun", "male"),
         ("अनन्या", "ananya", "female"), ("राहुल", "rahul", "male")),
        (("शर्मा", "sharma"), ("वर्मा", "verma"), ("पटेल", "patel")),
        ("गंगा ट्रेडर्स", "सह्याद्रि सॉफ्टवेयर"),
    ),
}
# fmt: on

_ACCOUNT_OWNERS = ("Alex Morgan", "Priya Raman", "Tom Becker", "Yuki Tanaka", "Sofia Costa")
_TIERS = ("bronze", "silver", "gold", "platinum")
_PAYMENT_STATUSES = ("current", "current", "current", "overdue", "failed")

# (name, SKU, unit price) of the demo shop's catalogue.
_CATALOGUE = (
    ("Trail running shoes", "SHOE-TR-042", 129.0),
    ("Waterproof jacket", "JCKT-WP-310", 189.5),
    ("Merino base layer", "BASE-MR-115", 74.9),
    ("Hiking backpack 30L", "PACK-HK-030", 99.0),
    ("Insulated bottle", "BTL-IN-750", 24.95),
    ("Headlamp 400lm", "LAMP-HD-400", 39.0),
    ("Trekking poles", "POLE-TK-120", 59.0),
    ("Wool socks (3 pack)", "SOCK-WL-003", 19.5),
)
_HOSTILE_PRODUCT = ("`rm -rf` ~strike~ <@U0ADMIN> *deal*", "HOST-IL-001", 6.66)
_PAGES = (
    "Home",
    "Order status",
    "Returns and refunds",
    "Trail running shoes",
    "Waterproof jackets",
    "Store locator",
    "Loyalty programme",
    "Contact support",
)
_CAMPAIGNS = (
    "Autumn trail collection",
    "Loyalty double points week",
    "Winter layering guide",
    "Back in stock alert",
    "Black Friday early access",
)
_HOSTILE_CAMPAIGNS = ("<!here> Flash sale *today* only", "<!channel> <https://evil.example|Claim>")

# --------------------------------------------------------------------------------------------
# Audiences


@dataclass(frozen=True)
class _AudienceSpec:
    key: str
    name: str
    description: str
    pql: str
    external: bool = False
    state: str = "published"


_AUDIENCE_SPECS = (
    _AudienceSpec(
        "churn_risk",
        "High-value customers at churn risk",
        "Gold or platinum loyalty tier and churn propensity above 0.7",
        'loyalty.tier in ["gold", "platinum"] and _acme.scores.churnPropensity > 0.7',
    ),
    _AudienceSpec(
        "newsletter",
        "Newsletter subscribers",
        "Opted in to the monthly newsletter",
        'consents.marketing.email.val = "y"',
    ),
    _AudienceSpec(
        "cart_abandoners",
        "Cart abandoners (30 days)",
        "Viewed a product without purchasing in the last 30 days",
        "productViews occurs in last 30 days and not purchases occurs in last 30 days",
    ),
    _AudienceSpec(
        "gold_loyalty",
        "Gold loyalty members",
        "Loyalty tier gold",
        'loyalty.tier = "gold"',
    ),
    _AudienceSpec(
        "vip",
        "VIP accounts",
        "Flagged VIP in the CRM",
        "_acme.crm.vip = true",
    ),
    _AudienceSpec(
        "upsell",
        "Upsell candidates",
        "Upsell propensity above 0.6 and no open tickets",
        "_acme.scores.upsellPropensity > 0.6 and _acme.support.openTickets = 0",
    ),
    _AudienceSpec(
        "frequent_buyers",
        "Frequent buyers",
        "Three or more purchases in the last 90 days",
        "purchases occurs >= 3 times in last 90 days",
    ),
    _AudienceSpec(
        "lapsed",
        "Lapsed customers",
        "No purchase in the last 12 months",
        "not purchases occurs in last 365 days",
    ),
    _AudienceSpec(
        "overdue",
        "Payment overdue",
        "Billing status overdue or failed",
        '_acme.billing.paymentStatus in ["overdue", "failed"]',
    ),
    _AudienceSpec(
        "support_heavy",
        "Frequent support contacts",
        "Two or more open support tickets",
        "_acme.support.openTickets >= 2",
    ),
    _AudienceSpec(
        "event_invitees",
        "Trade fair invitees 2026",
        "Uploaded list of customers invited to the 2026 trade fair",
        "",
        external=True,
    ),
    _AudienceSpec(
        "spring_promo",
        "Spring promotion 2025 (retired)",
        "Spring 2025 promotion; no longer evaluated",
        'purchases occurs between "2025-03-01" and "2025-05-31"',
        state="inactive",
    ),
    _AudienceSpec(
        "hostile",
        "<!here> Escalate *now* & <@U0ADMIN>",
        "<https://evil.example|Click for details> ```code``` &lt;tag&gt;",
        '_acme.crm.company = "Evil"',
    ),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _build_audiences() -> dict[str, dict[str, Any]]:
    rng = random.Random("acme-demo/audiences")
    audiences: dict[str, dict[str, Any]] = {}
    for spec in _AUDIENCE_SPECS:
        audience_id = _uuid(rng)
        created_ms = REFERENCE_MS - rng.randrange(200, 700) * _DAY_MS
        updated_ms = created_ms + rng.randrange(1, 150) * _DAY_MS
        audiences[spec.key] = {
            "id": audience_id,
            # External audiences carry a client-supplied audienceId that differs from `id`.
            "audienceId": f"trade-fair-2026-{audience_id[:8]}" if spec.external else audience_id,
            "name": spec.name,
            "description": spec.description,
            "namespace": "AEPSegments",
            "type": "ExternalSegment" if spec.external else "SegmentDefinition",
            "originName": "CUSTOM_UPLOAD" if spec.external else "REAL_TIME_CUSTOMER_PROFILE",
            "lifecycleState": spec.state,
            "mergePolicyId": DEFAULT_MERGE_POLICY_ID,
            "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": spec.pql},
            "evaluationInfo": {
                "batch": {"enabled": not spec.external},
                "continuous": {"enabled": False},
                "synchronous": {"enabled": False},
            },
            "labels": ["core/C1"],
            "imsOrgId": DEMO_ORG_ID,
            "sandbox": {
                "sandboxId": "d3m0d3m0-0000-4000-8000-000000000001",
                "sandboxName": DEMO_SANDBOX,
                "type": "production",
                "default": True,
            },
            "isSystem": False,
            "creationTime": created_ms,
            "updateTime": updated_ms,
            "updateEpoch": updated_ms // 1000,
            "createEpoch": created_ms // 1000,
        }
    return audiences


# --------------------------------------------------------------------------------------------
# Customers


@dataclass(frozen=True)
class _Spec:
    """What makes one customer: identities and which parts of a profile it has."""

    seed: str
    locale: str
    first: str
    last: str
    gender: str
    email: str | None
    phone: str | None = None
    crmid: str | None = None
    events: int = 0
    memberships: tuple[tuple[str, str], ...] = ()  # (audience key, status)
    # Audience keys whose membership carries a validUntil already past (not current any more).
    lapsed: tuple[str, ...] = ()
    loyalty: bool = True
    address: bool = True
    scores: bool = True
    identity_map_only: bool = False
    extra_ecids: int = 0
    hostile: bool = False
    #: a fixed recent history added to the seeded one: an order, then visits to the returns page
    returns_story: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)


# fmt: off
_FIXED = (
    _Spec(
        "jane", "en-US", "Jane", "Doe", "female", "jane.doe@example.com",
        phone="+14155550123", crmid="CRM-000123", events=1600,
        memberships=(("churn_risk", "realized"), ("newsletter", "existing"),
                     ("gold_loyalty", "existing"), ("vip", "realized"),
                     ("cart_abandoners", "exited")),
        returns_story=True,
        overrides={
            "loyalty": {"tier": "gold"},
            TENANT: {"crm": {"company": "Doe Outdoor Supplies", "vip": True},
                     "scores": {"churnPropensity": 0.82},
                     "billing": {"paymentStatus": "current"}},
        },
    ),
    _Spec(
        "hostile", "en-US", "<!channel> *bold* <https://evil.example|click>", "&amp; <@U0ADMIN>",
        "male", "hostile@example.com", phone="+14155550666", crmid="CRM-000666", events=120,
        memberships=(("hostile", "realized"), ("newsletter", "existing")), hostile=True,
        overrides={
            "homeAddress": {"street1": "1 <!everyone> Lane <#C0GENERAL>"},
            TENANT: {"crm": {"company": "*Evil* Corp & <https://evil.example|Sons>",
                             "accountOwner": "<@U0ADMIN>"}},
        },
    ),
    _Spec(
        "sanne", "nl-NL", "Sanne", "de Vries", "female", "sanne.de.vries@example.nl",
        phone="+31612345678", crmid="CRM-000311", events=180,
        memberships=(("newsletter", "realized"), ("upsell", "existing"),
                     (DELETED_AUDIENCE, "realized")),
        lapsed=("upsell",),
        overrides={"homeAddress": {"city": "Amsterdam"}},
    ),
    _Spec(
        "big-graph", "en-US", "Gus", "Graph", "male", "big.graph@example.com",
        phone="+14155550999", crmid="CRM-000999", events=50, extra_ecids=55,
        memberships=(("frequent_buyers", "existing"),),
    ),
    _Spec(
        "sparse", "en-US", "Sam", "Sparse", "female", "sparse@example.com",
        loyalty=False, address=False, scores=False,
    ),
    _Spec(
        "hanako", "ja-JP", "花子", "山田", "female", "hanako.yamada@example.jp",
        phone="+819012345678", crmid="CRM-000810", events=240,
        memberships=(("gold_loyalty", "realized"), ("frequent_buyers", "existing")),
        overrides={"homeAddress": {"city": "東京"}},
    ),
)
# fmt: on

_GENERATED_LOCALES = (
    "en-US",
    "nl-NL",
    "ja-JP",
    "ar-AE",
    "el-GR",
    "ru-RU",
    "hi-IN",
    "de-DE",
    "fr-FR",
    "en-GB",
)
_GENERATED_COUNT = 30
_HEAVY_GENERATED = {7: 1550, 19: 1520}  # generated customers whose histories page at 1000


def _generated_specs() -> Iterator[_Spec]:
    """Generated customers; which parts each one lacks follows from its index, so it is stable."""
    rng = random.Random("acme-demo/generated")
    crm_numbers = rng.sample(range(1000, 999_999), _GENERATED_COUNT)
    used_emails = {spec.email for spec in _FIXED}
    used_phones = {spec.phone for spec in _FIXED}
    audience_keys = [s.key for s in _AUDIENCE_SPECS if s.key != "hostile"]
    for index in range(_GENERATED_COUNT):
        locale = _LOCALES[_GENERATED_LOCALES[index % len(_GENERATED_LOCALES)]]
        first, first_latin, gender = rng.choice(locale.first_names)
        last, last_latin = rng.choice(locale.last_names)
        local_part = f"{first_latin}.{last_latin}".lower()
        email = f"{local_part}@example.{locale.tld}"
        suffix = 2
        while email in used_emails:
            email = f"{local_part}{suffix}@example.{locale.tld}"
            suffix += 1
        used_emails.add(email)
        digits = locale.phone_length - len(locale.phone_prefix)
        phone = ""
        while not phone or phone in used_phones:
            phone = locale.phone_prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        used_phones.add(phone)
        if index in _HEAVY_GENERATED:
            events = _HEAVY_GENERATED[index]
        elif index % 8 == 5:
            events = 0
        else:
            events = rng.randint(20, 200)
        memberships: tuple[tuple[str, str], ...] = ()
        if index % 9 != 1:
            chosen = rng.sample(audience_keys, rng.randint(1, 4))
            statuses = rng.choices(("realized", "existing", "exited"), (3, 5, 2), k=len(chosen))
            memberships = tuple(zip(chosen, statuses, strict=True))
        yield _Spec(
            f"generated-{index}",
            locale.language,
            first,
            last,
            gender,
            email,
            phone=None if index % 7 == 3 else phone,
            crmid=f"CRM-{crm_numbers[index]:06d}",
            events=events,
            memberships=memberships,
            loyalty=index % 5 != 4,
            address=index % 5 != 2,
            scores=index % 6 != 4,
            identity_map_only=index % 6 == 1,
        )


@dataclass(frozen=True)
class _Ids:
    email: str | None
    phone: str | None
    crmid: str | None
    ecid: str | None
    loyalty_id: str | None


def _ecid(rng: random.Random) -> str:
    return str(rng.randrange(10**37, 10**38))


def _deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Merge `overrides` into `base`, copying nested objects so no two profiles share one."""
    for name, value in overrides.items():
        if isinstance(value, Mapping):
            if not isinstance(base.get(name), dict):
                base[name] = {}
            _deep_merge(base[name], value)
        else:
            base[name] = value


def _build_customer(spec: _Spec, audiences: Mapping[str, dict[str, Any]]) -> DemoCustomer:
    rng = random.Random(f"acme-demo/customer/{spec.seed}")
    locale = _LOCALES[spec.locale]
    sparse = spec.crmid is None
    ids = _Ids(
        email=spec.email,
        phone=spec.phone,
        crmid=spec.crmid,
        ecid=None if sparse else _ecid(rng),
        loyalty_id=f"LY{rng.randrange(10**7, 10**8)}" if spec.loyalty and not sparse else None,
    )
    identity_list = [
        (code, value)
        for code, value in (
            (CRMID, ids.crmid),
            (EMAIL, ids.email),
            (PHONE, ids.phone),
            (ECID, ids.ecid),
            (LOYALTY_ID, ids.loyalty_id),
        )
        if value is not None
    ]
    identity_list += [(ECID, _ecid(rng)) for _ in range(spec.extra_ecids)]
    primary = identity_list[0]

    parts = _profile_parts(rng, spec, locale, ids, audiences)
    entity = _identities(spec, identity_list, primary)
    for part in parts.values():
        _deep_merge(entity, part)
    _deep_merge(entity, spec.overrides)

    modified_ms = REFERENCE_MS - rng.randrange(1, 20 * 24) * 3_600_000
    fragments = {
        _key(code, value): _fragment(spec, (code, value), parts.get(code, {}), spec.overrides)
        for code, value in identity_list
    }
    events = _events(rng, spec, locale, ids)
    if ids.ecid is not None:
        # Computed from the events, so they agree; contributed with the events' ECID fragment.
        computed = _computed_attributes(events)
        _deep_merge(entity, computed)
        _deep_merge(fragments[_key(ECID, ids.ecid)], computed)
    return DemoCustomer(
        entity_id=xid_for(*primary),
        entity=entity,
        last_modified_at=rfc3339(modified_ms),
        events=events,
        fragments=fragments,
    )


#: When the demo's computed attributes were last evaluated (Adobe refreshes them hourly to
#: monthly, by lookback window); their values count events up to the reference time.
CA_EVALUATED_MS = REFERENCE_MS - 6 * 3_600_000
#: Where the demo tenant's computed attributes sit on the profile (Adobe: the
#: "SystemComputedAttributes" field group of the union schema; [U] the exact placement).
COMPUTED_ATTRIBUTES = "SystemComputedAttributes"


def _computed_attributes(events: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """Activity-class computed attributes as Adobe's functions would give them: COUNT of
    purchases over 30 days, MOST_RECENT purchase (its time), COUNT of support-page visits over
    90 days; each `{value, timestamp}` with the time of the last evaluation."""

    def since(days: int) -> list[dict[str, Any]]:
        return [e for e in events if e["timestamp"] >= REFERENCE_MS - days * _DAY_MS]

    purchases = [e for e in events if e.get("eventType") == "commerce.purchases"]
    support = [
        e
        for e in since(90)
        if (e.get("web") or {}).get("webPageDetails", {}).get("name") == "Contact support"
    ]
    evaluated = rfc3339(CA_EVALUATED_MS)
    attributes: dict[str, Any] = {
        "ordersLast30Days": {
            "value": sum(e.get("eventType") == "commerce.purchases" for e in since(30)),
            "timestamp": evaluated,
        },
        "supportContactsLast90Days": {"value": len(support), "timestamp": evaluated},
    }
    if purchases:
        last = max(e["timestamp"] for e in purchases)
        attributes["lastPurchase"] = {"value": rfc3339(last), "timestamp": evaluated}
    return {TENANT: {COMPUTED_ATTRIBUTES: attributes}}


def _identities(
    spec: _Spec, identity_list: list[tuple[str, str]], primary: tuple[str, str]
) -> dict[str, Any]:
    """`{"identities": [...]}` with lower-case codes as the entities API returns them, or, for
    customers whose schema only has it, `{"identityMap": {...}}`."""
    if spec.identity_map_only:
        identity_map: dict[str, list[dict[str, Any]]] = {}
        for code, value in identity_list:
            identity_map.setdefault(code, []).append(
                {"id": value, "primary": (code, value) == primary}
            )
        return {"identityMap": identity_map}
    return {
        "identities": [
            {"id": value, "namespace": {"code": code.lower()}}
            | ({"primary": True} if (code, value) == primary else {})
            for code, value in identity_list
        ]
    }


def _profile_parts(
    rng: random.Random,
    spec: _Spec,
    locale: _Locale,
    ids: _Ids,
    audiences: Mapping[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The profile's attributes grouped by the identity (dataset) that contributes them."""
    name = {"firstName": spec.first, "lastName": spec.last}
    parts: dict[str, dict[str, Any]] = {
        EMAIL: {
            "person": {"name": name},
            "personalEmail": {"address": spec.email, "primary": True, "status": "active"},
            "preferredLanguage": locale.language,
        }
    }
    if ids.crmid is None:  # the sparse customer: an email and a name, nothing more
        del parts[EMAIL]["preferredLanguage"]
        return parts
    if ids.phone is not None:
        parts[PHONE] = {"mobilePhone": {"number": ids.phone, "primary": True}}
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 50 * 365))
    since = REFERENCE_TIME.date() - timedelta(days=rng.randrange(60, 12 * 365))
    crm: dict[str, Any] = {
        "person": {"name": name, "birthDate": birth.isoformat(), "gender": spec.gender},
        TENANT: {
            "crm": {
                "company": rng.choice(locale.companies),
                "customerSince": since.isoformat(),
                "accountOwner": rng.choice(_ACCOUNT_OWNERS),
                "vip": rng.random() < 0.2,
            },
            "support": {
                "openTickets": rng.choice((0, 0, 0, 1, 1, 2, 3)),
                "lastContact": rfc3339(REFERENCE_MS - rng.randrange(1, 400) * _DAY_MS),
            },
            "billing": {
                "annualSpend": round(rng.uniform(50, 12_000), 2),
                "paymentStatus": rng.choice(_PAYMENT_STATUSES),
            },
        },
    }
    if spec.address:
        crm["homeAddress"] = {
            "street1": f"{rng.choice(locale.streets)} {rng.randint(1, 240)}",
            "city": rng.choice(locale.cities),
            "postalCode": f"{rng.randrange(10000, 99999)}",
            "country": locale.country,
            "countryCode": locale.country_code,
        }
    parts[CRMID] = crm
    ecid_part: dict[str, Any] = {}
    if spec.scores:
        ecid_part[TENANT] = {
            "scores": {
                "churnPropensity": round(rng.random(), 2),
                "upsellPropensity": round(rng.random(), 2),
                "lifetimeValue": round(rng.uniform(100, 40_000), 2),
            }
        }
    if spec.memberships:
        ecid_part["segmentMembership"] = {"ups": _memberships(rng, spec, audiences)}
    parts[ECID] = ecid_part
    if ids.loyalty_id is not None:
        parts[LOYALTY_ID] = {
            "loyalty": {"tier": rng.choice(_TIERS), "points": rng.randrange(0, 90_000)}
        }
    return parts


def _memberships(
    rng: random.Random, spec: _Spec, audiences: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    memberships = {}
    for key, status in spec.memberships:
        qualified_ms = REFERENCE_MS - rng.randrange(1, 120) * _DAY_MS - rng.randrange(86_400) * 1000
        member: dict[str, Any] = {"status": status, "lastQualificationTime": rfc3339(qualified_ms)}
        if status == "exited":
            member["version"] = "2"
        if key in spec.lapsed:
            # Qualified once, valid for 30 days, and not re-evaluated since: no longer current.
            member["validUntil"] = rfc3339(min(qualified_ms + 30 * _DAY_MS, REFERENCE_MS - _DAY_MS))
        audience_id = DELETED_AUDIENCE_ID if key == DELETED_AUDIENCE else audiences[key]["id"]
        memberships[audience_id] = member
    return memberships


def _fragment(
    spec: _Spec, identity: tuple[str, str], part: dict[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The profile fragment that this one identity contributes (the no-stitch view)."""
    fragment = _identities(spec, [identity], identity)
    _deep_merge(fragment, part)
    # Overrides only adjust attributes the fragment already has.
    _deep_merge(fragment, _restrict(overrides, fragment))
    return fragment


def _restrict(overrides: Mapping[str, Any], present: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in present:
            continue
        if isinstance(value, Mapping) and isinstance(present[name], Mapping):
            inner = _restrict(value, present[name])
            if inner:
                kept[name] = inner
        else:
            kept[name] = value
    return kept


# --------------------------------------------------------------------------------------------
# Experience events


def _events(
    rng: random.Random, spec: _Spec, locale: _Locale, ids: _Ids
) -> tuple[dict[str, Any], ...]:
    """`spec.events` events spread over the last two years before the reference time."""
    if spec.events == 0 or ids.ecid is None:
        return ()
    start_ms = REFERENCE_MS - HISTORY_DAYS * _DAY_MS
    stamps = sorted(rng.randrange(start_ms, REFERENCE_MS) for _ in range(spec.events))
    catalogue = (*_CATALOGUE, _HOSTILE_PRODUCT) if spec.hostile else _CATALOGUE
    campaigns = _HOSTILE_CAMPAIGNS if spec.hostile else _CAMPAIGNS
    ecid_ids = {ECID: [{"id": ids.ecid, "primary": True}]}
    end_user = {"_experience": {"ecid": {"id": ids.ecid, "namespace": {"code": "ecid"}}}}
    email_ids = {EMAIL: [{"id": ids.email, "primary": True}]} if ids.email else ecid_ids
    crm_ids = {CRMID: [{"id": ids.crmid, "primary": True}]} if ids.crmid else ecid_ids
    kinds = rng.choices(
        ("page", "product", "purchase", "opened", "clicked"), (8, 5, 2, 3, 1), k=len(stamps)
    )
    events = []
    for stamp, kind in zip(stamps, kinds, strict=True):
        event: dict[str, Any] = {
            "_id": _uuid(rng),
            "timestamp": stamp,
        }
        if kind == "page":
            page = rng.choice(_PAGES)
            event |= {
                "eventType": "web.webpagedetails.pageViews",
                "identityMap": ecid_ids,
                "endUserIDs": end_user,
                "channel": {"_type": "web"},
                "web": {"webPageDetails": {"name": page, "pageViews": {"value": 1}}},
            }
        elif kind == "product":
            name, sku, price = rng.choice(catalogue)
            event |= {
                "eventType": "commerce.productViews",
                "identityMap": ecid_ids,
                "endUserIDs": end_user,
                "channel": {"_type": "web"},
                "commerce": {"productViews": {"value": 1}},
                "productListItems": [{"name": name, "SKU": sku, "priceTotal": price}],
            }
        elif kind == "purchase":
            event |= _purchase(rng, catalogue, locale, crm_ids)
        else:
            event |= {
                "eventType": f"directMarketing.email{'Opened' if kind == 'opened' else 'Clicked'}",
                "identityMap": email_ids,
                "channel": {"_type": "email"},
                "marketing": {"campaignName": rng.choice(campaigns)},
            }
        events.append(event)
    if spec.returns_story:
        events += _returns_story(crm_ids, ecid_ids, end_user, locale)
        events.sort(key=lambda e: e["timestamp"])
    return tuple(events)


#: The returns story: (days, hours, minutes) before the reference time of the order and of each
#: later visit to the returns page.
_STORY_ORDER = (2, 1, 48)
_STORY_RETURNS_VISITS = ((1, 20, 55), (1, 3, 19), (0, 15, 45), (0, 10, 58), (0, 2, 13))
_STORY_ITEMS = ("Waterproof jacket", "Insulated bottle", "Wool socks (3 pack)")


def _returns_story(
    crm_ids: dict[str, list[dict[str, Any]]],
    ecid_ids: dict[str, list[dict[str, Any]]],
    end_user: dict[str, Any],
    locale: _Locale,
) -> list[dict[str, Any]]:
    """An order of three items (233.95 in the customer's currency) and five visits to the
    "Returns and refunds" page after it, as XDM ExperienceEvents."""

    def before(days: int, hours: int, minutes: int) -> int:
        return REFERENCE_MS - ((days * 24 + hours) * 60 + minutes) * 60_000

    chosen = [(name, sku, price) for name, sku, price in _CATALOGUE if name in _STORY_ITEMS]
    items = [
        {"name": name, "SKU": sku, "priceTotal": price, "quantity": 1}
        for name, sku, price in chosen
    ]
    order: dict[str, Any] = {
        "_id": "b5e1c1de-0e7a-4d38-9a52-2a6f3c1e2401",
        "timestamp": before(*_STORY_ORDER),
        "eventType": "commerce.purchases",
        "identityMap": crm_ids,
        "channel": {"_type": "web"},
        "commerce": {
            "purchases": {"value": 1},
            "order": {
                "purchaseID": "ORD-52410233",
                "priceTotal": round(sum(price for _, _, price in chosen), 2),
                "currencyCode": locale.currency,
            },
        },
        "productListItems": items,
    }
    visits = [
        {
            "_id": f"b5e1c1de-0e7a-4d38-9a52-2a6f3c1e24{n:02d}",
            "timestamp": before(*when),
            "eventType": "web.webpagedetails.pageViews",
            "identityMap": ecid_ids,
            "endUserIDs": end_user,
            "channel": {"_type": "web"},
            "web": {"webPageDetails": {"name": "Returns and refunds", "pageViews": {"value": 1}}},
        }
        for n, when in enumerate(_STORY_RETURNS_VISITS, start=2)
    ]
    return [order, *visits]


def _purchase(
    rng: random.Random,
    catalogue: tuple[tuple[str, str, float], ...],
    locale: _Locale,
    identity_map: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    total = 0.0
    for name, sku, price in rng.sample(catalogue, rng.randint(1, 3)):
        quantity = rng.choice((1, 1, 1, 2, 3))
        total += price * quantity
        items.append(
            {
                "name": name,
                "SKU": sku,
                "priceTotal": round(price * quantity, 2),
                "quantity": quantity,
            }
        )
    return {
        "eventType": "commerce.purchases",
        "identityMap": identity_map,
        "channel": {"_type": "web"},
        "commerce": {
            "purchases": {"value": 1},
            "order": {
                "purchaseID": f"ORD-{rng.randrange(10**7, 10**8)}",
                "priceTotal": round(total, 2),
                "currencyCode": locale.currency,
            },
        },
        "productListItems": items,
    }


# --------------------------------------------------------------------------------------------


def merge_policies() -> tuple[dict[str, Any], ...]:
    """The sandbox's two merge policies: stitched (default) and no stitching."""
    sandbox = {
        "sandboxId": "d3m0d3m0-0000-4000-8000-000000000001",
        "sandboxName": DEMO_SANDBOX,
        "type": "production",
        "default": True,
    }
    return tuple(
        {
            "id": policy_id,
            "name": name,
            "imsOrgId": DEMO_ORG_ID,
            "sandbox": sandbox,
            "schema": {"name": "_xdm.context.profile"},
            "version": 1,
            "identityGraph": {"type": graph},
            "attributeMerge": {"type": "timestampOrdered"},
            "isActiveOnEdge": False,
            "default": default,
            "updateEpoch": REFERENCE_MS // 1000 - 90 * 86_400,
        }
        for policy_id, name, graph, default in (
            (DEFAULT_MERGE_POLICY_ID, "Support bot - stitched, latest wins", "pdg", True),
            (NO_STITCH_MERGE_POLICY_ID, "No stitching - asked identity only", "none", False),
        )
    )


@functools.cache
def load_dataset() -> DemoDataset:
    """The demo dataset: deterministic (seeded), built once per process and cached."""
    audiences = _build_audiences()
    specs = (*_FIXED, *_generated_specs())
    customers = tuple(_build_customer(spec, audiences) for spec in specs)
    return DemoDataset(customers=customers, audiences=tuple(audiences.values()))
