"""The command line a person uses: `python -m bot lookup` and `python -m bot console`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def run_bot(
    *args: str, stdin: str = "", tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AEP_", "BOT_"))}
    env = {**clean, "BOT_AUDIT_FILE": str(tmp_path / "audit.jsonl"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no .env from the checkout
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )


async def test_lookup_json_prints_exactly_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    code = await cli.lookup_main(load_settings(_env_file=None), ["jane.doe@example.com", "--json"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["name"] == "Jane Doe"
    assert document["demo"] is True
    assert document["events"] and document["audiences"]
    # No AEP_MERGE_POLICY_ID in the demo: the sandbox's default was resolved and is shown.
    assert document["merge_policy"] == {
        "id": "5c1e0a2b-7d3f-4e8a-9b6c-d0e1f2a3b4c5",
        "name": "Support bot - stitched, latest wins",
    }


async def test_lookup_of_an_unknown_identity_exits_non_zero_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await cli.lookup_main(load_settings(_env_file=None), ["nobody@example.com"])
    assert code != 0
    assert "No customer profile" in capsys.readouterr().err


async def test_lookup_of_text_without_identity_prints_usage_and_calls_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_services(*args: object, **kwargs: object) -> None:
        raise AssertionError("an AEP client was built for text without an identity")

    monkeypatch.setattr("bot.services.build_services", no_services)
    code = await cli.lookup_main(load_settings(_env_file=None), ["hello"])
    assert code != 0
    assert "jane.doe@example.com" in capsys.readouterr().err  # the usage's example


async def test_lookup_of_a_look_alike_says_why_and_calls_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_services(*args: object, **kwargs: object) -> None:
        raise AssertionError("an AEP client was built for a refused identity")

    monkeypatch.setattr("bot.services.build_services", no_services)
    spoof = "\u0430mallory@example.com"  # a Cyrillic a before Mallory's address
    code = await cli.lookup_main(load_settings(_env_file=None), [spoof])
    assert code == 2
    assert "mixes letters of different alphabets" in capsys.readouterr().err


def test_console_json_prints_the_card_for_a_demo_customer(tmp_path: Path) -> None:
    result = run_bot(
        "console", "--json", stdin="/customer jane.doe@example.com\n", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"method", "payload"} <= set(calls[0])
    cards = [c for c in calls if c["method"] == "response_url"]
    assert cards and "Jane Doe" in json.dumps(cards[0]["payload"], ensure_ascii=False)


def test_console_renders_the_hostile_profile_literally(tmp_path: Path) -> None:
    result = run_bot(
        "console", "--json", stdin="/customer hostile@example.com\n", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "&lt;!channel&gt;" in result.stdout
    assert "<!channel>" not in result.stdout


def test_console_acts_as_the_chosen_user_under_a_policy_with_user_ids(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "roles:\n  trial:\n    users: [U0NOBODY]\n    see: [basic]\n"
        "everyone: []\npublic_channels: [basic]\nexternal_channels: []\n"
    )
    script = "/customer jane.doe@example.com\n"
    named = run_bot(
        "console", "--json", "--as", "U0NOBODY", stdin=script, tmp_path=tmp_path,
        env={"BOT_POLICY_FILE": str(policy)},
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert "Jane Doe" in named.stdout  # basic: the name
    for withheld in ("+14155550123", "Valencia Street", "CRM-000123", "Gold loyalty members"):
        assert withheld not in named.stdout
    other = run_bot(
        "console", "--json", "--as", "U0SALES", stdin=script, tmp_path=tmp_path,
        env={"BOT_POLICY_FILE": str(policy)},
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert "Jane Doe" not in other.stdout
    assert "access" in other.stdout


def test_unknown_command_and_bad_settings_exit_with_a_clear_message(tmp_path: Path) -> None:
    result = run_bot("frobnicate", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "unknown command" in result.stderr
    bad = run_bot("lookup", "jane.doe@example.com", tmp_path=tmp_path, env={"PORT": "x"})
    assert bad.returncode == 2
    assert "PORT" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_console_pastes_a_profile_link_and_opens_each_viewers_flexpane(tmp_path: Path) -> None:
    script = (
        "/customer jane.doe@example.com\nin C0PRIVATE\npaste\n"
        "details\nas U0SALES\ndetails\nas U0GUEST\ndetails\n"
    )
    result = run_bot(
        "console", stdin=script, tmp_path=tmp_path, env={"BOT_WORK_OBJECTS": "true"}
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "--- chat.unfurl" in out and "[unfurl] https://experience.adobe.com/#/@" in out
    flexpanes = out.split("--- entity.presentDetails")[1:]
    assert len(flexpanes) == 3
    manager, sales, guest = flexpanes
    # The manager (acting by default) sees identifiers; a sales rep does not, but sees financial
    # values (the demo policy); a guest gets the error in words and nothing of the customer.
    ecid = "96630207149204114821352700613260028901"
    assert ecid in manager and "Lifetime value" in manager
    assert ecid not in sales and "Lifetime value" in sales
    assert "[flexpane error]" in guest and "Jane Doe" not in guest


def test_console_details_without_a_work_object_says_how_to_get_one(tmp_path: Path) -> None:
    result = run_bot("console", stdin="details\n", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "BOT_WORK_OBJECTS=true" in result.stdout


def test_console_thread_flag_shares_a_shortcut_card_into_that_thread(tmp_path: Path) -> None:
    script = (
        "shortcut My refund has not arrived, jane.doe@example.com\nclick Share\nsubmit refund\n"
    )
    result = run_bot(
        "console", "--json", "--thread", "1714000000.000100", stdin=script, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    [modal] = [c for c in calls if c["method"] == "views.open"]
    assert "Post to a thread in #" in json.dumps(modal["payload"], ensure_ascii=False)
    [post] = [c for c in calls if c["method"] == "chat.postMessage"]
    assert post["payload"]["thread_ts"] == "1714000000.000100"


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], ["run", "--help"]])
def test_help_lists_every_command_with_one_line_each(tmp_path: Path, argv: list[str]) -> None:
    # Without Slack credentials `run` starts the console, but its help is the list of commands.
    result = run_bot(*argv, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {}
    for line in result.stdout.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name, _, what = line.strip().partition("  ")
            listed[name.removesuffix(" (default)")] = what.strip()
    commands = {"run", "console", "demo-aep", "lookup", "policy check", "doctor"}
    assert set(listed) == commands, result.stdout
    assert all(listed.values()), listed  # each says what it does on its own line
    assert "/customer <text>" not in result.stdout  # not the console's help


def test_console_help_gives_the_consoles_options_and_commands(tmp_path: Path) -> None:
    result = run_bot("console", "--help", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--json", "--as", "--channel", "--locale", "--tz"):
        assert option in result.stdout
    for command in ("/customer <text>", "shortcut", "click <button>", "pick <number>", "as <user"):
        assert command in result.stdout
    assert "demo-aep" not in result.stdout


def test_console_says_how_to_pick_and_refuses_a_number_off_the_picker(tmp_path: Path) -> None:
    script = "pick 1\nshortcut CRM-000123 or +31 6 12345678?\npick 3\npick 2\n"
    result = run_bot("console", stdin=script, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    # Without a terminal the console echoes each line ("> pick 1") above what it answered.
    too_early, picker, off, picked = result.stdout.split("> ")[1:]
    assert "No picker yet" in too_early
    assert "pick 1 to pick 2" in picker
    assert "buttons 1 to 2" in off and "--- " not in off  # nothing was clicked
    assert "== Sanne de Vries ==" in picked


def test_console_speaks_the_chosen_language_in_its_own_lines(tmp_path: Path) -> None:
    result = run_bot(
        "console", "--locale", "nl-NL", stdin="pick 1\nas U0AGENT\n", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Nog geen keuzelijst" in result.stdout
    assert "je handelt nu als U0AGENT" in result.stdout
