"""Builds the long-lived services the Slack listeners use, and closes them on shutdown."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from bot import __version__
from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient, create_http_client
from bot.aep.errors import AepError, Misconfigured
from bot.audit import AuditLog
from bot.button_tokens import ButtonTokens
from bot.cache import CacheKeys, CacheTokenStore, DataCache, key_names_secret
from bot.cards import CardRenderer
from bot.demo.dataset import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, EMAIL_DOMAINS, NAMESPACE_CODES
from bot.demo.simulator import AepSimulator
from bot.demo.transport import in_process_transport
from bot.directory import SlackDirectory
from bot.history import LookupHistory
from bot.i18n import Reader, reader_for
from bot.identity import IdentityRules
from bot.layout import DEFAULT_KEY_FACTS, CardLayout, load_layout
from bot.lookup import CustomerLookup
from bot.metrics import Metrics
from bot.namespaces import NamespaceNames
from bot.ops import Readiness
from bot.policy_file import Policy, load_policy
from bot.settings import Settings
from bot.slack_urls import response_url_allowed
from bot.slack_web import BudgetedWebClient, send_to_response_url

log = logging.getLogger(__name__)

#: Where the in-process demo sandbox pretends to live; no request leaves the process.
DEMO_AEP_URL = "http://demo-aep.invalid"


@dataclass
class Services:
    """Everything a listener needs, built once per process."""

    settings: Settings
    layout: CardLayout
    policy: Policy
    rules: IdentityRules
    http: httpx.AsyncClient
    aep: AepClient
    tokens: ImsTokenSource
    cache: DataCache
    keys: CacheKeys
    lookup: CustomerLookup
    namespaces: NamespaceNames
    buttons: ButtonTokens
    history: LookupHistory
    slack: BudgetedWebClient
    directory: SlackDirectory
    audit: AuditLog
    cards: CardRenderer
    demo: bool
    simulator: AepSimulator | None = None
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness = field(default_factory=Readiness)
    closed: bool = field(default=False, init=False)
    # Listener tasks still answering someone; a stop lets them finish before the clients close.
    answering: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    @property
    def default_reader(self) -> Reader:
        """Who reads what is said before the person is known (acks, refusals of incomplete
        requests, the error path): BOT_DEFAULT_LOCALE in UTC."""
        return reader_for(default_locale=self.settings.bot_default_locale)

    def answer_in_progress(self) -> None:
        """Called by a listener once it has acked: Bolt runs it as a task of its own, which a
        stop must wait for, or the person is left with "Looking up..." and nothing after."""
        task = asyncio.current_task()
        if task is not None:
            self.answering.add(task)
            task.add_done_callback(self.answering.discard)

    def response_url_allowed(self, url: str) -> bool:
        """Whether the bot may write to `url` at all: the one check every reply passes
        (send_reply and Bolt's respond, see bot.app): Slack's own response hosts, or the local
        stand-in for Slack named by SLACK_API_URL."""
        return response_url_allowed(url, self.settings)

    async def send_reply(
        self, url: str, message: Mapping[str, Any], *, reference: str | None = None
    ) -> bool:
        """Write `message` to a response_url within the lookup deadline; True when Slack took
        it. Never raises: a failure is logged with `reference` (see send_to_response_url)."""
        return await send_to_response_url(
            url,
            message,
            budget=self.settings.bot_lookup_deadline,
            reference=reference,
            allowed=self.response_url_allowed,
        )

    async def start(self) -> None:
        """What the bot settles before it answers anyone: the merge policy every lookup names
        (AEP_MERGE_POLICY_ID, or the sandbox's default profile policy, logged with its name).

        Raises Misconfigured (in words) when the sandbox has no default policy and none is
        set. Any other failure is logged and left to the first lookup, which asks again: a
        Platform hiccup at start must not keep the bot down."""
        deadline = time.monotonic() + self.settings.bot_lookup_deadline
        try:
            policy = await self.aep.merge_policy(deadline=deadline)
        except Misconfigured:
            raise
        except AepError as exc:
            log.warning(
                "The merge policy could not be resolved at start (%s, status %s); the first "
                "lookup asks again",
                type(exc).__name__,
                exc.status,
            )
            return
        if self.settings.aep_merge_policy_id:
            log.info("Using the merge policy set in AEP_MERGE_POLICY_ID: %s", policy.id)

    async def aclose(self) -> None:
        """Close the HTTP clients, the cache and the audit sink; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        await self.http.aclose()
        await self.cache.aclose()
        await self.audit.aclose()
        session = getattr(self.slack, "session", None)
        if session is not None and not session.closed:
            await session.close()


def slack_client(settings: Settings, *, token: str | None = None) -> BudgetedWebClient:
    """The Web API client: honours SLACK_API_URL; every call, with its one retry and any wait
    for Slack's Retry-After, ends within BOT_LOOKUP_DEADLINE (see bot.slack_web)."""
    bot_token = token or (
        settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    )
    return BudgetedWebClient(
        token=bot_token,
        base_url=settings.slack_api_url,
        budget=settings.bot_lookup_deadline,
        # Retries are the client's own (within the budget, never sleeping in a slot).
        retry_handlers=[],
    )


def build_services(
    settings: Settings,
    *,
    slack: BudgetedWebClient | None = None,
    aep_transport: httpx.AsyncBaseTransport | None = None,
    simulator: AepSimulator | None = None,
) -> Services:
    """Wire the services from the settings. With no AEP credentials the demo sandbox answers."""
    layout = load_layout(settings.bot_card_file)
    demo = settings.demo
    metrics = Metrics(version=__version__, mode=settings.slack_mode, demo=demo)
    policy = load_policy(settings.bot_policy_file, demo=demo)
    roles = {role.name for role in policy.roles}
    for name in sorted(set(layout.key_facts) - roles - {DEFAULT_KEY_FACTS}):
        # Not an error: layout and policy are edited apart, and the default list still serves.
        log.warning("The card layout lists key facts for %r, which is no role of the policy", name)
    if settings.demo_sandbox:
        simulator = simulator or AepSimulator(edition=settings.bot_demo_edition)
        aep_transport = aep_transport or in_process_transport(simulator)
        client_id, client_secret = DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
        api_url = ims_url = DEMO_AEP_URL
    else:
        client_id = settings.aep_client_id or ""
        client_secret = (
            settings.aep_client_secret.get_secret_value() if settings.aep_client_secret else ""
        )
        api_url, ims_url = settings.aep_api_url, settings.aep_ims_url
    http = create_http_client(transport=aep_transport, max_in_flight=settings.aep_max_in_flight)
    cache_key = settings.bot_cache_key.get_secret_value() if settings.bot_cache_key else None
    cache = DataCache.from_url(
        settings.bot_cache_url,
        key=cache_key,
        max_entries=settings.bot_cache_max_entries,
        max_bytes=settings.bot_cache_max_bytes,
    )
    keys = CacheKeys(
        org=settings.org_id,
        sandbox=settings.aep_sandbox,
        merge_policy=settings.aep_merge_policy_id,
        secret=key_names_secret(cache_key) if cache_key else None,
    )
    tokens = ImsTokenSource(
        http=http,
        ims_url=ims_url,
        client_id=client_id,
        client_secret=SecretStr(client_secret),
        scopes=settings.aep_scopes,
        store=CacheTokenStore(cache, keys.token(f"{client_id}\x00{settings.aep_scopes}")),
        max_response_bytes=settings.aep_max_response_bytes,
        metrics=metrics,
    )
    aep = AepClient(
        http=http,
        tokens=tokens,
        api_url=api_url,
        org_id=settings.org_id,
        client_id=client_id,
        sandbox=settings.aep_sandbox,
        merge_policy_id=settings.aep_merge_policy_id,
        max_in_flight=settings.aep_max_in_flight,
        max_response_bytes=settings.aep_max_response_bytes,
        metrics=metrics,
    )
    lookup = CustomerLookup(
        client=aep,
        cache=cache,
        keys=keys,
        layout=layout,
        events_limit=settings.bot_events_limit,
        deadline=settings.bot_lookup_deadline,
        profile_ttl=settings.bot_cache_profile_ttl,
        not_found_ttl=settings.bot_cache_not_found_ttl,
        audience_ttl=settings.bot_cache_audience_ttl,
        demo=demo,
        events_enabled=settings.aep_events_enabled,
        with_ca=settings.aep_with_ca,
    )
    slack = slack or slack_client(settings)
    slack.metrics = metrics
    metrics.read_stats(lookup=lambda: dict(lookup.stats), cache=lambda: dict(cache.stats))
    directory = SlackDirectory(client=slack, store=cache, ttl=settings.bot_cache_slack_ttl)
    namespaces = NamespaceNames(
        client=aep,
        refresh=settings.bot_cache_audience_ttl,
        deadline=settings.bot_lookup_deadline,
    )
    if settings.bot_audit_key is not None:
        audit_key = settings.bot_audit_key.get_secret_value().encode()
    else:
        audit_key = secrets.token_bytes(32)
        if not demo:
            log.warning(
                "BOT_AUDIT_KEY is not set: audit identity hashes use a per-process key and "
                "will not match across restarts"
            )
    return Services(
        settings=settings,
        layout=layout,
        policy=policy,
        rules=IdentityRules(
            default_region=settings.bot_default_region,
            crm_namespace=settings.aep_crm_namespace,
            crm_pattern=settings.bot_crm_id_pattern,
            # On demo data the sandbox's namespaces and domains stand in for the org's settings.
            email_domains=settings.email_domains or (EMAIL_DOMAINS if demo else ()),
            namespaces=settings.identity_namespaces or (NAMESPACE_CODES if demo else None),
        ),
        http=http,
        aep=aep,
        tokens=tokens,
        cache=cache,
        keys=keys,
        lookup=lookup,
        namespaces=namespaces,
        buttons=ButtonTokens(cache=cache, keys=keys),
        history=LookupHistory(cache=cache, keys=keys, ttl=settings.bot_history_ttl),
        slack=slack,
        directory=directory,
        audit=AuditLog(sink=settings.bot_audit_file, key=audit_key, metrics=metrics),
        cards=CardRenderer(namespace_names=namespaces.names),
        demo=demo,
        simulator=simulator,
        metrics=metrics,
    )
