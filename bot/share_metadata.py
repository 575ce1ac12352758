"""The share modal's `private_metadata`: what it carries back to its submission handler, and
the strict reading of it (Slack returns what the bot set; anything else is not a share of ours)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class ShareMetadata:
    """What the share modal carries in `private_metadata` back to its submission handler."""

    token: str
    channel_id: str
    thread_ts: str | None
    response_url: str | None

    @classmethod
    def parse(cls, text: str) -> ShareMetadata:
        """Read the modal's `private_metadata`; raise ValueError when it is not ours."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("private_metadata is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("private_metadata is not an object")
        token, channel = data.get("token"), data.get("channel")
        thread, url = data.get("thread_ts"), data.get("response_url")
        if not isinstance(token, str) or not token or not isinstance(channel, str) or not channel:
            raise ValueError("private_metadata lacks token or channel")
        if not (thread is None or isinstance(thread, str)) or not (
            url is None or isinstance(url, str)
        ):
            raise ValueError("private_metadata has a thread_ts or response_url of the wrong type")
        return cls(token=token, channel_id=channel, thread_ts=thread, response_url=url)

    def to_json(self) -> str:
        """The `private_metadata` string for this share."""
        return json.dumps(
            {
                "token": self.token,
                "channel": self.channel_id,
                "thread_ts": self.thread_ts,
                "response_url": self.response_url,
            },
            separators=(",", ":"),
        )
