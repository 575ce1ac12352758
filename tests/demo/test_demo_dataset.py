"""The bundled demo dataset: deterministic, documented fixed customers, realistic gaps."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from bot.demo.dataset import (
    DELETED_AUDIENCE_ID,
    HISTORY_DAYS,
    REFERENCE_MS,
    DemoCustomer,
    load_dataset,
)

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def _by_email(email: str) -> DemoCustomer:
    customer = load_dataset().find("email", email)
    assert customer is not None, email
    return customer


def test_dataset_is_deterministic_and_cached() -> None:
    rebuilt = load_dataset.__wrapped__()
    cached = load_dataset()
    assert load_dataset() is cached
    assert [c.entity for c in rebuilt.customers] == [c.entity for c in cached.customers]
    assert [c.events for c in rebuilt.customers] == [c.events for c in cached.customers]
    assert rebuilt.audiences == cached.audiences


def test_fixed_customers_come_first_as_documented() -> None:
    customers = load_dataset().customers
    assert len(customers) >= 25
    emails = [c.entity.get("personalEmail", {}).get("address") for c in customers[:6]]
    assert emails == [
        "jane.doe@example.com",
        "hostile@example.com",
        "sanne.de.vries@example.nl",
        "big.graph@example.com",
        "sparse@example.com",
        "hanako.yamada@example.jp",
    ]
    jane = customers[0]
    assert ("phone", "+14155550123") in jane.identities
    assert ("crmid", "CRM-000123") in jane.identities
    assert jane.entity["person"]["name"] == {"firstName": "Jane", "lastName": "Doe"}
    assert len(jane.events) >= 1500
    statuses = {m["status"] for m in jane.entity["segmentMembership"]["ups"].values()}
    assert {"realized", "existing", "exited"} <= statuses
    assert ("phone", "+31612345678") in customers[2].identities
    assert len(customers[3].identities) == 60
    assert customers[5].entity["person"]["name"] == {"firstName": "花子", "lastName": "山田"}


def test_the_hostile_profile_carries_slack_control_text_everywhere() -> None:
    dataset = load_dataset()
    hostile = _by_email("hostile@example.com")
    name = hostile.entity["person"]["name"]
    assert name["firstName"] == "<!channel> *bold* <https://evil.example|click>"
    assert name["lastName"] == "&amp; <@U0ADMIN>"
    campaigns = {e["marketing"]["campaignName"] for e in hostile.events if "marketing" in e}
    assert any("<!here>" in campaign for campaign in campaigns)
    audience_names = {
        dataset.audience(audience_id)["name"]  # type: ignore[index]
        for audience_id in hostile.entity["segmentMembership"]["ups"]
    }
    assert any("<!here>" in audience_name for audience_name in audience_names)


def test_the_sparse_customer_has_only_an_email_and_a_name() -> None:
    sparse = _by_email("sparse@example.com")
    assert set(sparse.entity) == {"identities", "person", "personalEmail"}
    assert sparse.identities == (("email", "sparse@example.com"),)
    assert sparse.events == ()


def test_identities_have_the_documented_formats() -> None:
    for customer in load_dataset().customers:
        for namespace, value in customer.identities:
            code = namespace.lower()
            if code == "crmid":
                assert re.fullmatch(r"CRM-\d{6}", value), value
            elif code == "ecid":
                assert re.fullmatch(r"\d{38}", value), value
            elif code == "phone":
                # The bot normalizes typed numbers with libphonenumber: keep every one valid.
                assert E164.match(value), value
                assert phonenumbers.is_valid_number(phonenumbers.parse(value)), value
            elif code == "email":
                assert value == value.lower() and "@" in value


def test_identities_are_unique_across_customers() -> None:
    seen: set[tuple[str, str]] = set()
    for customer in load_dataset().customers:
        for namespace, value in customer.identities:
            key = (namespace.lower(), value)
            assert key not in seen, key
            seen.add(key)


def test_generated_customers_cover_the_gaps_a_bot_must_handle() -> None:
    customers = load_dataset().customers
    assert any("identityMap" in c.entity and "identities" not in c.entity for c in customers)
    assert any(not any(ns.lower() == "phone" for ns, _ in c.identities) for c in customers)
    assert any("homeAddress" not in c.entity for c in customers)
    assert any("scores" not in c.entity.get("_acme", {}) for c in customers)
    assert any(c.events == () and c.entity.get("_acme") for c in customers)
    assert any("segmentMembership" not in c.entity and c.events for c in customers)
    assert sum(len(c.events) >= 1500 for c in customers) >= 3


def test_names_in_several_scripts() -> None:
    scripts = set()
    for customer in load_dataset().customers:
        name = customer.entity["person"]["name"]
        for char in name["firstName"] + name["lastName"]:
            if char.isalpha():
                scripts.add(unicodedata.name(char).split()[0])
    assert {"CJK", "ARABIC", "GREEK", "CYRILLIC", "DEVANAGARI", "LATIN"} <= scripts


def test_every_membership_names_a_known_audience() -> None:
    dataset = load_dataset()
    assert len(dataset.audiences) >= 10
    assert all(a["name"] and a["description"] for a in dataset.audiences)
    for customer in dataset.customers:
        for audience_id, member in (
            customer.entity.get("segmentMembership", {}).get("ups", {}).items()
        ):
            # One membership names an audience since deleted (bulk-get answers it with a 404).
            assert (dataset.audience(audience_id) is None) == (audience_id == DELETED_AUDIENCE_ID)
            assert member["status"] in ("realized", "existing", "exited")
            assert member["lastQualificationTime"].endswith("Z")


def test_events_are_xdm_shaped_and_within_two_years_of_the_reference_date() -> None:
    ids = set()
    oldest = REFERENCE_MS - HISTORY_DAYS * 86_400_000
    for customer in load_dataset().customers:
        for event in customer.events:
            assert isinstance(event["timestamp"], int)
            assert oldest <= event["timestamp"] < REFERENCE_MS
            assert event["eventType"] in {
                "commerce.purchases",
                "commerce.productViews",
                "web.webpagedetails.pageViews",
                "directMarketing.emailOpened",
                "directMarketing.emailClicked",
            }
            ids.add(event["_id"])
            if event["eventType"] == "commerce.purchases":
                order = event["commerce"]["order"]
                items = event["productListItems"]
                assert order["currencyCode"]
                assert order["priceTotal"] == round(sum(i["priceTotal"] for i in items), 2)
    assert len(ids) == sum(len(c.events) for c in load_dataset().customers)


def test_find_matches_namespaces_case_insensitively_and_values_exactly() -> None:
    dataset = load_dataset()
    jane = dataset.customers[0]
    assert dataset.find("EMAIL", "jane.doe@example.com") is jane
    assert dataset.find("Email", "Jane.Doe@Example.COM") is jane
    assert dataset.find("crmid", "crm-000123") is None
    assert dataset.find("Phone", "+14155550123") is jane
    assert dataset.find("Phone", "4155550123") is None
    assert dataset.find("email", "nobody@example.com") is None


def test_no_stitch_fragments_hold_only_the_asked_identitys_attributes() -> None:
    jane = load_dataset().customers[0]
    email_fragment = jane.fragment("email", "jane.doe@example.com")
    crm_fragment = jane.fragment("CRMID", "CRM-000123")
    assert email_fragment is not None and crm_fragment is not None
    assert "personalEmail" in email_fragment and "_acme" not in email_fragment
    assert crm_fragment["_acme"]["crm"]["company"] == jane.entity["_acme"]["crm"]["company"]
    assert "personalEmail" not in crm_fragment and "loyalty" not in crm_fragment
    assert [i["id"] for i in crm_fragment["identities"]] == ["CRM-000123"]


def test_fragments_do_not_leak_attributes_of_other_identities() -> None:
    jane = load_dataset().customers[0]
    email_fragment = jane.fragment("email", "jane.doe@example.com")
    assert email_fragment is not None
    assert email_fragment["person"] == {"name": {"firstName": "Jane", "lastName": "Doe"}}
    assert "birthDate" in jane.entity["person"]
