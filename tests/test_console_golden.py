"""The console's --json output for a scripted session stays what it was: every demo user, every
surface and every button, compared with a recorded golden file after masking what is random.

The structure work moves code between modules without changing what a person sees; this test is
its safety net. When a change is meant to alter what the bot sends, regenerate the golden file
with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_console_golden.py` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "golden"
SCRIPT = HERE / "console_session.txt"
GOLDEN = HERE / "console_session.jsonl"

_RANDOM = [
    # loopback servers and Slack's one-time ids differ each run
    (re.compile(r"http://127\.0\.0\.1:\d+/response/[0-9a-f]+"), "<response_url>"),
    (re.compile(r"\b\d+\.\d+\.[0-9a-f]{32}\b"), "<trigger_id>"),
    (re.compile(r'"(view_id|hash)": "[^"]+"'), r'"\1": "<\1>"'),
    (re.compile(r"(?i)(reference\W{0,12})[0-9a-f-]{8,36}"), r"\1<reference>"),
    # relative times depend on today's date, the dataset's dates do not
    (
        re.compile(
            # relative_time always says "… ago" or "in …": a label such as "(30 days)" stays.
            r"\bin \d+ (?:min|h|seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b"
            r"|\b\d+ (?:min|h|seconds?|minutes?|hours?|days?|weeks?|months?|years?) ago\b"
            r"|\byesterday\b|\btomorrow\b|\bjust now\b|(?<=\()today(?=\))"
        ),
        "<when>",
    ),
    # a shared card's fetch time is a Slack date token of the moment of the run
    (re.compile(r"(fetched )<!date\^\d+\^[^|>]*\|[^>]*>"), r"\1<when>"),
]
# 16 random bytes in URL-safe base64 (an emoji name such as hourglass_flowing_sand is not one)
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])(?=[a-z_-]*[A-Z0-9])[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")


def _mask(text: str) -> str:
    """The session's output with random values replaced by stable placeholders; an opaque token
    becomes <token-N> by order of first appearance, so reuse of one token stays visible."""
    for pattern, placeholder in _RANDOM:
        text = pattern.sub(placeholder, text)
    tokens: dict[str, str] = {}

    def name(match: re.Match[str]) -> str:
        return tokens.setdefault(match.group(0), f"<token-{len(tokens) + 1}>")

    return _TOKEN.sub(name, text)


def _run_session(tmp_path: Path) -> list[dict[str, Any]]:
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"BOT_AUDIT_KEY": "golden-audit-key", "BOT_AUDIT_FILE": str(tmp_path / "a.jsonl")})
    # The session is the same on a loaded machine: no "Looking up…" for a lookup past 1.5 s.
    env["BOT_SLOW_ANSWER_SECONDS"] = "60"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--json"],
        input=SCRIPT.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    masked = _mask(result.stdout)
    # With --json stdout holds only JSON lines; "(now acting as ...)" and the like go to stderr.
    return [json.loads(line) for line in masked.splitlines()]


def test_a_scripted_console_session_sends_what_it_sent_before(tmp_path: Path) -> None:
    calls = _run_session(tmp_path)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(
            "".join(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n" for c in calls),
            encoding="utf-8",
        )
    golden = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert len(calls) == len(golden), [c["method"] for c in calls]
    for number, (got, want) in enumerate(zip(calls, golden, strict=True), start=1):
        assert got == want, f"call {number} ({want['method']}) differs"


def test_the_session_covers_every_surface_and_button() -> None:
    golden = GOLDEN.read_text(encoding="utf-8")
    methods = {json.loads(line)["method"] for line in golden.splitlines()}
    assert {"ack", "response_url", "chat.postMessage", "views.open", "views.update"} <= methods
    script = SCRIPT.read_text(encoding="utf-8")
    for step in ("click Refresh", "click More events", "click Share", "click View details"):
        assert step in script
    for user in ("U0AGENT", "U0SALES", "U0BOTH", "U0NOBODY", "U0GUEST"):
        assert f"as {user}" in script
