"""The audit log: durable JSON lines, identities only as keyed HMACs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import request_id
from bot.audit import AuditError, AuditLog
from bot.identity import IdentityRef
from bot.metrics import Metrics

KEY = b"k" * 32
EMAIL = IdentityRef(namespace="email", value="jane.doe@example.com")


async def record(log: AuditLog, **overrides: Any) -> None:
    fields: dict[str, Any] = {
        "action": "lookup",
        "team_id": "T0DEMO",
        "actor": "U0AGENT",
        "channel_id": "C0PRIVATE",
        "ref": EMAIL,
        "profile_id": "BQxProfileXid01",
        "shown": ["contact", "basic"],
        "withheld": {"scores", "financial"},
        "outcome": "ok",
        "surface": "slash_command",
    }
    fields.update(overrides)
    await log.record(**fields)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


async def test_one_json_object_per_line_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    await record(log)
    await record(log, action="refusal", ref=None, profile_id=None, shown=(), withheld=())
    await log.aclose()
    first, second = lines(path)
    assert {k: v for k, v in first.items() if k != "time"} == {
        "team": "T0DEMO",
        "actor": "U0AGENT",
        "channel": "C0PRIVATE",
        "action": "lookup",
        "surface": "slash_command",
        "namespace": "email",
        "identity_hmac": log.identity_hmac("jane.doe@example.com"),
        "profile_id": "BQxProfileXid01",
        "shown": ["basic", "contact"],
        "withheld": ["financial", "scores"],
        "outcome": "ok",
        # outside a Slack request there is no request id
        "request_id": None,
    }
    assert datetime.fromisoformat(first["time"]).utcoffset() == timedelta(0)
    assert second["action"] == "refusal"
    assert second["namespace"] is None and second["identity_hmac"] is None


async def test_no_raw_identity_value_is_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    await record(log, outcome="not_found: Jane.Doe@example.com")
    await log.aclose()
    text = path.read_text("utf-8").lower()
    assert "jane.doe@example.com" not in text
    assert lines(path)[0]["outcome"] == "not_found: [identity]"


async def test_a_profile_id_holding_the_identity_value_is_scrubbed(tmp_path: Path) -> None:
    """Some profile ids embed the identity they were made from: none reaches the audit."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    await record(log, profile_id="profile-JANE.DOE@example.com-01")
    await log.aclose()
    assert "jane.doe@example.com" not in path.read_text("utf-8").lower()
    assert lines(path)[0]["profile_id"] == "profile-[identity]-01"


async def test_an_email_in_any_case_has_one_hmac(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    await record(log, ref=IdentityRef(namespace="Email", value=" Jane.DOE@Example.com"))
    await record(log, ref=EMAIL)
    await record(log, ref=IdentityRef(namespace="crmid", value="CRM-000123"))
    await record(log, ref=IdentityRef(namespace="crmid", value="crm-000123"))
    await log.aclose()
    first, second, crm_upper, crm_lower = (r["identity_hmac"] for r in lines(path))
    assert first == second == log.identity_hmac("jane.doe@example.com")
    # Only emails are one person in any case; other namespaces keep the value as typed.
    assert crm_upper == log.identity_hmac("CRM-000123") != crm_lower


def test_hmac_is_stable_for_one_key_and_differs_for_another(tmp_path: Path) -> None:
    one = AuditLog(sink="-", key=KEY)
    same = AuditLog(sink="-", key=KEY)
    other = AuditLog(sink="-", key=b"another secret key of some length")
    digest = one.identity_hmac("jane.doe@example.com")
    assert digest == same.identity_hmac("jane.doe@example.com")
    assert digest == hmac.new(KEY, b"jane.doe@example.com", hashlib.sha256).hexdigest()
    assert digest != other.identity_hmac("jane.doe@example.com")
    assert digest != one.identity_hmac("john.doe@example.com")


async def test_concurrent_records_all_land_whole(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    await asyncio.gather(*(record(log, actor=f"U{i:04d}") for i in range(60)))
    await log.aclose()
    actors = [entry["actor"] for entry in lines(path)]
    assert sorted(actors) == [f"U{i:04d}" for i in range(60)]


async def test_each_record_is_fsynced_before_record_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(len(path.read_text("utf-8").splitlines()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    log = AuditLog(sink=str(path), key=KEY)
    await record(log)
    assert synced == [1]
    await record(log)
    assert synced == [1, 2]
    await log.aclose()


async def test_file_is_created_0600_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    await record(log, actor="U0FIRST")
    await log.aclose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = AuditLog(sink=str(path), key=KEY)
    await record(reopened, actor="U0SECOND")
    await reopened.aclose()
    assert [entry["actor"] for entry in lines(path)] == ["U0FIRST", "U0SECOND"]


async def test_stdout_sink(capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog(sink="-", key=KEY)
    await record(log, action="share", surface="share")
    await log.aclose()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    entry = json.loads(out[0])
    assert entry["action"] == "share" and "jane.doe" not in out[0]


async def test_closed_log_refuses_records_and_closes_twice(tmp_path: Path) -> None:
    log = AuditLog(sink=str(tmp_path / "audit.jsonl"), key=KEY)
    await log.aclose()
    await log.aclose()
    with pytest.raises(RuntimeError, match=r"^the audit log is closed$"):
        await record(log)
    assert log.last_failure == "the audit log is closed"


def test_unusable_sink_or_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"BOT_AUDIT_FILE: cannot open .*missing"):
        AuditLog(sink=str(tmp_path / "missing" / "audit.jsonl"), key=KEY)
    with pytest.raises(AuditError) as empty:
        AuditLog(sink="-", key=b"")
    assert str(empty.value) == ("the audit key is empty: set BOT_AUDIT_KEY to a long random secret")


async def test_a_record_the_os_takes_in_pieces_is_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipe or a busy disk may take fewer bytes than asked: the rest is written after, so the
    trail holds the whole record once, never half of one."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    real_write = os.write
    calls: list[int] = []

    def seven_bytes_at_a_time(fd: int, data: Any) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", seven_bytes_at_a_time)
    await record(log)
    monkeypatch.undo()
    await log.aclose()
    (entry,) = lines(path)
    assert entry["actor"] == "U0AGENT" and entry["outcome"] == "ok"
    size = len(path.read_bytes())
    assert len(calls) == -(-size // 7)


async def test_problem_says_why_the_trail_cannot_take_a_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What /readyz tells the operator about the audit trail, in each state it can be in."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)
    assert log.problem() is None

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError):
        await record(log)
    monkeypatch.undo()
    assert log.problem() == "the last audit record could not be written (No space left on device)"

    def unexplained(fd: int, data: Any) -> int:
        raise OSError

    monkeypatch.setattr(os, "write", unexplained)
    with pytest.raises(OSError):
        await record(log)
    monkeypatch.undo()
    assert log.problem() == "the last audit record could not be written (OSError)"
    await record(log)
    assert log.problem() is None

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert log.problem() == "BOT_AUDIT_FILE is not writable"
    monkeypatch.undo()

    path.rename(tmp_path / "rotated.jsonl")
    path.write_text("", "utf-8")
    assert log.problem() == (
        "BOT_AUDIT_FILE was moved or replaced; restart the bot to write the new file"
    )
    path.unlink()
    assert log.problem() == "BOT_AUDIT_FILE cannot be read (No such file or directory)"

    await log.aclose()
    assert log.problem() == "the audit log is closed"
    assert AuditLog(sink="-", key=KEY).problem() is None


async def test_a_request_audited_carries_its_outcome_and_id_into_its_log_lines(
    tmp_path: Path,
) -> None:
    """The request's log lines say how it ended (the outcome's first word, no identity) and the
    audit record carries the request's id, so an operator can go from one to the other."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=str(path), key=KEY)

    async def in_a_request() -> request_id.RequestScope:
        scope = request_id.begin("command", request_id="0123456789abcdef")
        await record(log, outcome="not_found: jane.doe@example.com")
        return scope

    scope = await asyncio.create_task(in_a_request())
    await log.aclose()
    assert scope.outcome == "not_found"
    assert lines(path)[0]["request_id"] == "0123456789abcdef"


async def test_each_record_written_or_failed_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/metrics counts the records written, by surface and outcome, the refusals by reason, and
    the records that could not be written."""
    metrics = Metrics()
    log = AuditLog(sink=str(tmp_path / "audit.jsonl"), key=KEY, metrics=metrics)
    await record(log, outcome="shown", surface="private")
    await record(log, action="refusal", outcome="no_grants:lookup", surface="home")

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError):
        await record(log)
    monkeypatch.undo()
    await log.aclose()
    sample = metrics.registry.get_sample_value
    assert sample("bot_audit_records_written_total") == 2
    assert sample("bot_audit_records_failed_total") == 1
    assert sample("bot_lookups_total", {"surface": "private", "outcome": "shown"}) == 1
    assert sample("bot_lookups_total", {"surface": "home", "outcome": "no_grants"}) == 1
    assert sample("bot_permission_refusals_total", {"reason": "no_grants"}) == 1
