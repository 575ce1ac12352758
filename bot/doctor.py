"""`python -m bot doctor`: a deployment's configuration checked against the live services.

One line per check, each OK, WARN or FAIL with what to do; exit 0 when nothing FAILs. The checks
call the same clients the bot uses (IMS, the Platform gateway, Slack, Redis, the audit file), so
a FAIL here is what a person would meet in Slack, said to the operator instead.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from slack_sdk.errors import SlackApiError, SlackClientError

from bot import ids
from bot.aep.errors import (
    AepError,
    CredentialsProblem,
    LookupRejected,
    Misconfigured,
    ProfileNotFound,
)
from bot.identity import IdentityRef
from bot.settings import ConfigError, Settings, load_settings

Status = Literal["OK", "WARN", "FAIL"]

#: An identity no profile holds: the lookup path is reachable when Profile answers it with its
#: own 404 ("no such customer"), not the gateway's.
_NOBODY = "email"


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"


def _aep_words(exc: AepError) -> str:
    return f"{exc.message} (HTTP {exc.status}, request {exc.request_id or 'none'})"


class Doctor:
    """Runs the checks in order; a check that cannot run because an earlier one failed says so."""

    def __init__(self, settings: Settings, *, deadline: float = 8.0) -> None:
        from bot.services import build_services

        self.settings = settings
        # The checks write no audit records; the audit file is checked on its own (last), so a
        # file that cannot be opened is a FAIL line, not a crash before the first check.
        self.services = build_services(settings.model_copy(update={"bot_audit_file": "-"}))
        self.deadline = deadline
        self.checks: list[Check] = []

    def _until(self) -> float:
        return time.monotonic() + self.deadline

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    async def run(self) -> list[Check]:
        """Every check, in the order a deployment depends on them."""
        self.add("settings", "OK", self._mode())
        steps: list[Callable[[], Awaitable[bool]]] = [self.ims, self.gateway_and_merge_policy]
        for step in steps:
            if not await step():
                self.add(
                    "platform",
                    "FAIL",
                    "not checked further: fix the line above first (profile lookup, events and "
                    "audiences all go through it)",
                )
                break
        else:
            await self.profile_lookup()
            await self.events()
            await self.audiences()
        await self.slack()
        await self.cache()
        self.audit()
        await self.services.aclose()
        return self.checks

    def _mode(self) -> str:
        s = self.settings
        aep = "the demo AEP sandbox (demo data)" if s.demo else f"AEP org {s.org_id}"
        return f"loaded; Slack {s.slack_mode} mode, {aep}, sandbox {s.aep_sandbox!r}"

    async def ims(self) -> bool:
        kind = "demo sandbox credential" if self.settings.demo else "OAuth Server-to-Server"
        try:
            await self.services.tokens.token()
        except CredentialsProblem as exc:
            self.add("IMS token", "FAIL", f"{kind}: {_aep_words(exc)}")
            return False
        except AepError as exc:
            self.add(
                "IMS token",
                "FAIL",
                f"{kind}: {_aep_words(exc)}. Check AEP_IMS_URL and that Adobe IMS is reachable.",
            )
            return False
        self.add("IMS token", "OK", f"{kind}: a token was issued")
        return True

    async def gateway_and_merge_policy(self) -> bool:
        """The gateway accepts the org, API key and sandbox; the merge policy lookups name."""
        configured = self.settings.aep_merge_policy_id
        try:
            policy = await self.services.aep.merge_policy(deadline=self._until())
        except (CredentialsProblem, LookupRejected, Misconfigured) as exc:
            # 403003 (API key), 403025 (org), a sandbox or path the gateway does not know, or no
            # default merge policy: each message says which setting to check.
            self.add("org, sandbox and merge policy", "FAIL", _aep_words(exc))
            return False
        except AepError as exc:
            self.add("org, sandbox and merge policy", "FAIL", f"{_aep_words(exc)}; try again")
            return False
        source = "AEP_MERGE_POLICY_ID" if configured else "the sandbox's default"
        self.add(
            "org, sandbox and merge policy",
            "OK",
            f"the gateway accepts org and sandbox; merge policy {policy.id} ({policy.name!r}), "
            f"{source}",
        )
        return True

    async def profile_lookup(self) -> None:
        nobody = IdentityRef(_NOBODY, f"doctor-{secrets.token_hex(8)}@invalid.example")
        try:
            await self.services.aep.get_profile(nobody, deadline=self._until())
        except ProfileNotFound:
            self.add("profile lookup", "OK", "Profile answered an unknown identity with its 404")
            return
        except AepError as exc:
            self.add("profile lookup", "FAIL", _aep_words(exc))
            return
        self.add(
            "profile lookup",
            "WARN",
            "a made-up identity returned a profile: check the identity graph or the namespace",
        )

    async def events(self) -> None:
        if self.settings.aep_events_enabled == "false":
            self.add("experience events", "WARN", "AEP_EVENTS_ENABLED is off: cards show none")
            return
        nobody = IdentityRef(_NOBODY, f"doctor-{secrets.token_hex(8)}@invalid.example")
        try:
            await self.services.aep.get_events(nobody, limit=1, deadline=self._until())
        except ProfileNotFound:
            # Profile's own "no such customer" for an identity nobody has: the events path is
            # there. An organization that refuses events only for real customers is found on the
            # first lookup (with AEP_EVENTS_ENABLED=auto the bot then logs it once, in words).
            self.add(
                "experience events",
                "OK",
                "the events lookup path answers; a refusal that comes only for real customers "
                "shows on the first lookup (logged once)",
            )
            return
        except (CredentialsProblem, LookupRejected, Misconfigured) as exc:
            self.add(
                "experience events",
                "WARN",
                f"not available to this organization: {_aep_words(exc)}. Cards show the "
                "profile without recent activity; set AEP_EVENTS_ENABLED=false to stop asking.",
            )
            return
        except AepError as exc:
            self.add("experience events", "FAIL", _aep_words(exc))
            return
        self.add("experience events", "OK", "the events lookup path answers")

    async def audiences(self) -> None:
        try:
            listed = await self.services.aep.list_audiences(deadline=self._until())
        except AepError as exc:
            self.add(
                "audiences",
                "FAIL",
                f"{_aep_words(exc)}. Cards would show audience ids instead of names; the "
                "product profile needs read access to audiences (segmentation).",
            )
            return
        self.add("audiences", "OK", f"the audience list is readable ({len(listed)} audiences)")

    async def slack(self) -> None:
        if self.settings.slack_bot_token is None:
            self.add(
                "Slack",
                "WARN",
                "SLACK_BOT_TOKEN is not set: only the offline console runs. Install the app "
                "from manifest.yml and set the bot token to serve a workspace.",
            )
            return
        client = self.services.slack
        try:
            answer = await client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            self.add(
                "Slack token",
                "FAIL",
                f"auth.test refused the token ({error}): reinstall the app and copy its Bot "
                "User OAuth Token into SLACK_BOT_TOKEN.",
            )
            return
        except SlackClientError as exc:
            self.add("Slack token", "FAIL", f"Slack did not answer ({type(exc).__name__})")
            return
        header = (answer.headers or {}).get("x-oauth-scopes") or (answer.headers or {}).get(
            "X-OAuth-Scopes", ""
        )
        granted = {s.strip() for s in str(header).split(",") if s.strip()}
        missing = sorted(ids.BOT_SCOPES - granted)
        team = answer.get("team") or answer.get("team_id") or "?"
        if missing:
            self.add(
                "Slack token",
                "FAIL",
                f"valid for workspace {team!r} but without the scopes {', '.join(missing)}: "
                "add them from manifest.yml and reinstall the app.",
            )
        else:
            self.add("Slack token", "OK", f"valid for workspace {team!r} with every scope needed")
        try:
            await client.usergroups_list(include_users=True)
        except SlackClientError as exc:
            self.add(
                "Slack user groups",
                "FAIL",
                f"the bot cannot read user groups ({type(exc).__name__}): roles come from them; "
                "check the usergroups:read scope.",
            )
            return
        self.add("Slack user groups", "OK", "readable: roles can be decided")

    async def cache(self) -> None:
        url = self.settings.bot_cache_url
        if not url.startswith(("redis://", "rediss://")):
            self.add("cache", "OK", "memory cache of this process (no Redis configured)")
            return
        if await self.services.cache.ping():
            self.add("cache", "OK", "Redis answers; values are sealed with BOT_CACHE_KEY")
        else:
            self.add(
                "cache",
                "FAIL",
                "Redis does not answer at BOT_CACHE_URL: the bot would run on each process's "
                "memory (no shared cache, no cross-instance de-duplication).",
            )

    def audit(self) -> None:
        sink = self.settings.bot_audit_file
        if sink == "-":
            self.add("audit trail", "OK", "written to stdout")
            return
        path = Path(sink)
        folder = path.parent if str(path.parent) else Path(".")
        writable = (
            os.access(path, os.W_OK) if path.exists() else os.access(folder, os.W_OK | os.X_OK)
        )
        if not folder.is_dir() or not writable:
            self.add(
                "audit trail",
                "FAIL",
                f"BOT_AUDIT_FILE {sink} cannot be written: create its folder and give the bot's "
                "user write access.",
            )
            return
        self.add("audit trail", "OK", f"BOT_AUDIT_FILE {sink} is writable")


async def doctor_main(argv: Sequence[str], *, settings: Settings | None = None) -> int:
    """`python -m bot doctor [--json]`: the checklist, exit 1 when anything FAILs."""
    parser = argparse.ArgumentParser(
        prog="python -m bot doctor",
        description="Check the configuration against IMS, Platform, Slack, Redis and the audit "
        "file; one line per check ending in OK, WARN or FAIL.",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document")
    args = parser.parse_args(list(argv))
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            checks = [Check("settings", "FAIL", str(exc).replace("\n", " "))]
            return _print(checks, as_json=args.json)
    try:
        checks = await Doctor(settings).run()
    except Exception as exc:  # a check's own bug must still end in a checklist
        checks = [Check("doctor", "FAIL", f"the checks stopped on {type(exc).__name__}")]
    return _print(checks, as_json=args.json)


def _print(checks: list[Check], *, as_json: bool) -> int:
    failed = any(c.status == "FAIL" for c in checks)
    if as_json:
        document = {"ok": not failed, "checks": [asdict(c) for c in checks]}
        print(json.dumps(document, ensure_ascii=False))
    else:
        for check in checks:
            print(check.line())
        print("FAIL: fix the lines above." if failed else "Nothing failed.")
    sys.stdout.flush()
    return 1 if failed else 0
