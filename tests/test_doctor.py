"""`python -m bot doctor`: each check against a working and a misconfigured sandbox, recording
Slack server, Redis and audit file; FAIL lines say what to do, and the exit status follows."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from bot.doctor import doctor_main
from bot.settings import Settings
from tests.redis_support import CACHE_KEY, free_port
from tests.support import bot_settings


async def run(settings: Settings) -> tuple[int, dict[str, dict[str, str]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = await doctor_main(["--json"], settings=settings)
    document = json.loads(out.getvalue())
    assert document["ok"] is (status == 0)
    return status, {c["name"]: c for c in document["checks"]}


@pytest.fixture
def configured(sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path) -> Any:
    _sim, aep_url = sandbox

    def settings(**overrides: Any) -> Settings:
        return bot_settings(aep_url, slack.api_url, tmp_path, **overrides)

    return settings


async def test_a_working_deployment_passes_every_check(configured: Any) -> None:
    status, checks = await run(configured())
    assert status == 0
    assert {c["status"] for c in checks.values()} == {"OK"}
    assert {
        "settings",
        "IMS token",
        "org, sandbox and merge policy",
        "profile lookup",
        "experience events",
        "audiences",
        "Slack token",
        "Slack user groups",
        "cache",
        "audit trail",
    } <= set(checks)


async def test_the_bundled_demo_passes_with_a_warning_for_slack(tmp_path: Path) -> None:
    settings = bot_settings(
        "https://platform.adobe.io", "https://slack.com/api/", tmp_path, slack_bot_token=None,
        slack_signing_secret=None, aep_client_id=None, aep_client_secret=None, aep_org_id=None,
        aep_api_url="https://platform.adobe.io", aep_ims_url="https://ims-na1.adobelogin.com",
    )  # fmt: skip
    status, checks = await run(settings)
    assert status == 0
    assert checks["Slack"]["status"] == "WARN"
    assert "demo" in checks["settings"]["detail"]


async def test_refused_credentials_fail_the_ims_check_and_stop_the_platform_checks(
    configured: Any,
) -> None:
    status, checks = await run(configured(aep_client_secret="not-the-secret"))
    assert status == 1
    assert checks["IMS token"]["status"] == "FAIL"
    assert "AEP_CLIENT_SECRET" in checks["IMS token"]["detail"]
    assert checks["platform"]["status"] == "FAIL" and "profile lookup" not in checks


async def test_an_org_the_gateway_refuses_fails_with_the_setting_to_check(
    configured: Any,
) -> None:
    status, checks = await run(configured(aep_org_id="SOMEONEELSE000000000000@AdobeOrg"))
    assert status == 1
    assert checks["IMS token"]["status"] == "OK"
    line = checks["org, sandbox and merge policy"]
    assert line["status"] == "FAIL" and "AEP_ORG_ID" in line["detail"]


async def test_a_sandbox_the_gateway_does_not_know_fails(configured: Any) -> None:
    status, checks = await run(configured(aep_sandbox="no-such-sandbox"))
    assert status == 1
    line = checks["org, sandbox and merge policy"]
    assert line["status"] == "FAIL" and "AEP_SANDBOX" in line["detail"]


async def test_a_sandbox_without_a_default_merge_policy_fails_in_words(
    configured: Any, sandbox: tuple[AepSimulator, str]
) -> None:
    sandbox[0].drop_default_merge_policy()
    status, checks = await run(configured())
    assert status == 1
    line = checks["org, sandbox and merge policy"]
    assert line["status"] == "FAIL" and "AEP_MERGE_POLICY_ID" in line["detail"]


async def test_a_wrong_platform_path_is_a_configuration_failure(
    configured: Any, sandbox: tuple[AepSimulator, str]
) -> None:
    status, checks = await run(configured(aep_api_url=sandbox[1] + "/wrong/prefix"))
    assert status == 1
    line = checks["org, sandbox and merge policy"]
    assert line["status"] == "FAIL" and "AEP_API_URL" in line["detail"]


async def test_an_unreadable_audience_list_fails_that_check_only(
    configured: Any, sandbox: tuple[AepSimulator, str]
) -> None:
    sandbox[0].faults.add("500", endpoint="audiences", count=10)
    status, checks = await run(configured())
    assert status == 1
    assert checks["audiences"]["status"] == "FAIL"
    assert checks["profile lookup"]["status"] == "OK"


async def test_a_refused_slack_token_fails(configured: Any, slack: SlackRecorder) -> None:
    slack.fail_next("auth.test", error="invalid_auth")
    status, checks = await run(configured())
    assert status == 1
    assert checks["Slack token"]["status"] == "FAIL"
    assert "SLACK_BOT_TOKEN" in checks["Slack token"]["detail"]


async def test_a_token_missing_a_scope_names_it(configured: Any, slack: SlackRecorder) -> None:
    slack.scopes.discard("usergroups:read")
    status, checks = await run(configured())
    assert status == 1
    assert checks["Slack token"]["status"] == "FAIL"
    assert "usergroups:read" in checks["Slack token"]["detail"]


async def test_user_groups_the_bot_cannot_read_fail(configured: Any, slack: SlackRecorder) -> None:
    slack.fail_next("usergroups.list", error="missing_scope")
    status, checks = await run(configured())
    assert status == 1
    assert checks["Slack user groups"]["status"] == "FAIL"


async def test_a_redis_that_does_not_answer_fails(configured: Any) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    status, checks = await run(configured(bot_cache_url=url, bot_cache_key=CACHE_KEY))
    assert status == 1
    assert checks["cache"]["status"] == "FAIL" and "BOT_CACHE_URL" in checks["cache"]["detail"]


async def test_an_audit_file_that_cannot_be_written_fails(configured: Any, tmp_path: Path) -> None:
    status, checks = await run(configured(bot_audit_file=str(tmp_path / "no" / "a.jsonl")))
    assert status == 1
    assert checks["audit trail"]["status"] == "FAIL"


async def test_settings_that_do_not_parse_are_the_first_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_LOOKUP_DEADLINE", "soon")
    assert await doctor_main([]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  settings") and "BOT_LOOKUP_DEADLINE" in out


async def test_events_switched_off_are_a_warning_without_asking(configured: Any) -> None:
    status, checks = await run(configured(aep_events_enabled="false"))
    assert status == 0
    assert checks["experience events"]["status"] == "WARN"
    assert "AEP_EVENTS_ENABLED" in checks["experience events"]["detail"]


async def test_a_prime_organisation_is_told_events_are_not_available(
    slack: SlackRecorder, tmp_path: Path
) -> None:
    from bot.demo.server import start_server

    server = await start_server(AepSimulator(edition="prime"), port=0)
    try:
        status, checks = await run(bot_settings(server.url, slack.api_url, tmp_path))
    finally:
        await server.close()
    assert status == 0
    assert checks["experience events"]["status"] == "WARN"
    assert "not available" in checks["experience events"]["detail"]
