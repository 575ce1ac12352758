"""Which response_urls the bot may post to: Slack's own hosts, or a local stand-in for Slack."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bot.settings import Settings

#: The hosts Slack hands out response_urls on (`https://hooks.slack.com/commands/…`, `/actions/…`).
SLACK_RESPONSE_HOSTS = frozenset({"hooks.slack.com"})


def response_url_allowed(url: str, settings: Settings) -> bool:
    """True when `url` is https on one of Slack's response hosts, or on the host of
    `SLACK_API_URL` while that points at a local server (the console, tests and benchmarks run a
    stand-in for Slack there). Anything else, internal addresses included, is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https" and host in SLACK_RESPONSE_HOSTS and port in (None, 443):
        return True
    local = _local_host(settings.slack_api_url)
    return local is not None and host == local and parts.scheme in ("http", "https")


def _local_host(api_url: str) -> str | None:
    """The host of `api_url` when it is a loopback address or localhost, else None."""
    host = (urlsplit(api_url).hostname or "").lower()
    if host == "localhost":
        return host
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None
