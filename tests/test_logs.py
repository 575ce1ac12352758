"""Slack library log lines: payloads cut off, Bolt's client-and-token warning dropped."""

from __future__ import annotations

import logging

import pytest

from bot.logs import bolt_logger, quiet_libraries


def test_payloads_are_cut_off_slack_library_lines(caplog: pytest.LogCaptureFixture) -> None:
    quiet_libraries()
    logger = logging.getLogger("slack_bolt")
    with caplog.at_level(logging.WARNING, logger="slack_bolt"):
        logger.warning('Unhandled request ({"user": "jane.doe@example.com"})')
    assert "jane.doe@example.com" not in caplog.text
    assert "Unhandled request" in caplog.text


def test_bolts_client_and_token_warning_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    logger = bolt_logger()
    with caplog.at_level(logging.WARNING, logger="slack_bolt"):
        logger.warning("As you gave `client` as well, `token` will be unused.")
        logger.warning("something else")
    assert "token" not in caplog.text
    assert "something else" in caplog.text


def test_slack_libraries_stay_above_debug_when_the_root_logger_is_at_debug() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    quiet_libraries()
    for name in ("slack_sdk", "slack_bolt", "httpx", "httpcore"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
