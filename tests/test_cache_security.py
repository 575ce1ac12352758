"""The Redis cache is no back door (issue 8, item 3): tests that act as someone who can read and
write the bot's Redis, end to end through signed Slack requests.

Each test owns Redis database 11 (the Slack directory's keys carry no per-test marker) and
empties it before and after.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot import ids
from bot.cache import DataCache, Sealer
from bot.demo import payloads as slack_payloads
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.settings import ConfigError, load_settings
from tests.redis_support import CACHE_KEY, redis_url
from tests.support import RunningBot, personal_values, start_bot

pytestmark = pytest.mark.redis

REDIS_DB = 11
JANE = "jane.doe@example.com"
SANNE = "sanne.de.vries@example.nl"
OTHER_KEY = "another-cache-key-after-rotation-5Hq2Zr8Wm"
#: What an attacker cannot tell from a sealed value: a key they made up.
ATTACKER_KEY = "the-attacker-guesses-a-key-of-their-own-0"


@pytest.fixture
def redis_db() -> Iterator[str]:
    """The URL of an emptied Redis database that only this module uses."""
    url = f"{redis_url().rsplit('/', 1)[0]}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def attacker(redis_db: str) -> Iterator[redis.Redis]:
    """A plain Redis client on the bot's database, reading and writing raw bytes."""
    client = redis.Redis.from_url(redis_db)
    try:
        yield client
    finally:
        client.close()


async def _start(
    sandbox: tuple[AepSimulator, str],
    slack: SlackRecorder,
    tmp_path: Path,
    redis_db: str,
    key: str = CACHE_KEY,
) -> tuple[RunningBot, Any]:
    sim, aep_url = sandbox
    return await start_bot(
        sim,
        aep_url,
        slack,
        tmp_path,
        bot_cache_url=redis_db,
        bot_cache_key=key,
        bot_audit_file=str(tmp_path / f"audit-{key[:8]}.jsonl"),
    )


async def _stop(running: RunningBot, runner: Any) -> None:
    await running.http.aclose()
    await runner.cleanup()
    await running.services.aclose()


@pytest.fixture
async def bot_on_redis(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path, redis_db: str
) -> AsyncIterator[RunningBot]:
    """The whole bot in HTTP mode with its cache on Redis, sealed with CACHE_KEY."""
    running, runner = await _start(sandbox, slack, tmp_path, redis_db)
    try:
        yield running
    finally:
        await _stop(running, runner)


async def _command(bot: RunningBot, text: str, *, user: str = "U0MANAGER") -> RecordedCall:
    """Send a signed `/customer text`; check it is acked at once; return the first answer."""
    response_url = bot.slack.response_url()
    body = slack_payloads.slash_command(
        text=text, user_id=user, channel_id="C0PRIVATE", response_url=response_url
    )
    ack = await bot.send(body)
    assert ack.status_code == 200, "the command was not acknowledged"
    assert ack.text == "", "the ack shows nothing: the card is the answer's one message"
    return await _answer_at(bot, response_url)


async def _refused_at_once(bot: RunningBot, text: str, *, user: str) -> str:
    """Send a signed `/customer text` from someone without grants; the refusal is the ack."""
    body = slack_payloads.slash_command(
        text=text, user_id=user, channel_id="C0PRIVATE", response_url=bot.slack.response_url()
    )
    ack = await bot.send(body)
    assert ack.status_code == 200, "the command was not acknowledged"
    text = str(ack.json()["text"])
    assert text.startswith("You don't have access to customer profiles."), text
    return text


async def _answer_at(bot: RunningBot, response_url: str) -> RecordedCall:
    """The first post to `response_url` that is not a card waiting for its events (whose update
    follows, once the events are stored), within the 5 s a person would wait at most."""
    path = response_url.removeprefix(bot.slack.url)
    give_up = time.monotonic() + 5
    while time.monotonic() < give_up:
        for call in bot.slack.calls_to("response_url"):
            if call.path == path and "Loading recent activity" not in _text(call):
                return call
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing reached {path} within 5 s")


async def _press(bot: RunningBot, token: str) -> RecordedCall:
    """Press the card's Refresh button whose value is `token`; return the answer."""
    response_url = bot.slack.response_url()
    body = slack_payloads.block_action(
        action_id=ids.REFRESH,
        value=token,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=response_url,
    )
    response = await bot.send(body)
    assert response.status_code == 200
    return await _answer_at(bot, response_url)


def _text(call: RecordedCall) -> str:
    return json.dumps(call.payload, ensure_ascii=False)


def _refresh_token(card: RecordedCall) -> str:
    for block in card.payload.get("blocks", []):
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == ids.REFRESH:
                return str(element["value"])
    raise AssertionError("the card has no Refresh button")


def _values(client: redis.Redis) -> dict[bytes, bytes]:
    """Every string value in the database, by key (locks and other types left out)."""
    found: dict[bytes, bytes] = {}
    for key in client.scan_iter(count=500):
        if client.type(key) == b"string" and not key.endswith(b":lock"):
            value = client.get(key)
            if value is not None:
                found[key] = value
    return found


def _entries(client: redis.Redis) -> list[bytes]:
    """The keys of the cached entries an attacker would target (not de-duplication marks)."""
    return [key for key in _values(client) if b":slack-event:" not in key]


def _poison(client: redis.Redis, kind: str) -> int:
    """Replace every cached entry the way `kind` says; the number of entries replaced."""
    entries = _entries(client)
    for key in entries:
        ttl = max(int(client.pttl(key)), 60_000)
        if kind == "non-utf8":
            client.psetex(key, ttl, b"\xff\xfe\xc3\x28 not text")
        elif kind == "garbage":
            client.psetex(key, ttl, b"s1" + bytes(range(40)))
        elif kind == "truncated":
            client.psetex(key, ttl, (client.get(key) or b"")[:-5])
        elif kind == "empty":
            client.psetex(key, ttl, b"")
        elif kind == "plaintext":
            # The format before sealing: an envelope anyone can write.
            client.psetex(key, ttl, json.dumps({"v": "v2", "data": {"junk": [1, 2]}}))
        elif kind == "wrong-type":
            client.delete(key)
            client.rpush(key, b"a", b"b")
        else:
            raise AssertionError(kind)
    return len(entries)


# -- a bad value is a miss --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["non-utf8", "garbage", "truncated", "empty", "plaintext", "wrong-type"]
)
async def test_a_poisoned_cache_still_acks_and_answers_every_command(
    bot_on_redis: RunningBot, attacker: redis.Redis, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot = bot_on_redis
    first = await _command(bot, JANE)
    assert "Jane Doe" in _text(first)
    assert _poison(attacker, kind) >= 5  # user, groups, profile, events, token, audiences...
    caplog.set_level(logging.INFO, logger="bot.cache")

    again = await _command(bot, JANE)
    assert "Jane Doe" in _text(again)
    other = await _command(bot, JANE, user="U0AGENT")
    assert "Jane Doe" in _text(other)

    # The unreadable entries were read as misses, fetched again and overwritten.
    assert bot.sim.stats["profile"] == 2
    profile_keys = [k for k in _values(attacker) if b":profile:" in k]
    assert profile_keys
    for key in profile_keys:
        assert attacker.type(key) == b"string"
    warned = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warned) == 1, warned  # once, not per entry
    assert "not text" not in warned[0] and "ccb:" not in warned[0] and "slack:" not in warned[0]
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_non_utf8_bytes_under_a_persons_keys_do_not_break_their_buttons(
    bot_on_redis: RunningBot, attacker: redis.Redis
) -> None:
    bot = bot_on_redis
    card = await _command(bot, JANE)
    _poison(attacker, "non-utf8")

    refreshed = await _press(bot, _refresh_token(card))
    # The button's own entry was garbage too: the person is told in words, never an error.
    assert "expired" in refreshed.payload["text"].lower()
    assert "went wrong" not in _text(refreshed).lower()
    card = await _command(bot, JANE)  # a fresh card writes the button's entry again
    refreshed = await _press(bot, _refresh_token(card))
    assert "Jane Doe" in _text(refreshed)


# -- nothing forged or moved is believed ------------------------------------------------------


async def test_a_forged_manager_group_membership_grants_nothing(
    bot_on_redis: RunningBot, attacker: redis.Redis
) -> None:
    bot = bot_on_redis
    refused = await _refused_at_once(bot, JANE, user="U0NOBODY")
    assert "Jane Doe" not in refused
    [groups_key] = [k for k in _values(attacker) if b":usergroups:" in k]
    [user_key] = [k for k in _values(attacker) if k.endswith(b":U0NOBODY")]
    forged_groups = json.dumps({"v": "v2", "data": {"groups": {"cs-managers": ["U0NOBODY"]}}})
    flags = dict.fromkeys(("is_bot", "deleted", "is_restricted", "is_ultra_restricted"), False)
    forged_user = json.dumps({"v": "v2", "data": {"known": True, "external": False, **flags}})

    # In the clear (the old format), then sealed with a key of the attacker's own.
    for seal in (lambda key, text: text.encode(), Sealer(ATTACKER_KEY).seal):
        attacker.psetex(groups_key, 60_000, seal(groups_key.decode(), forged_groups))
        attacker.psetex(user_key, 60_000, seal(user_key.decode(), forged_user))
        answer = await _refused_at_once(bot, JANE, user="U0NOBODY")
        assert "Jane Doe" not in answer
        assert bot.sim.stats["profile"] == 0


async def test_a_button_value_copied_from_another_customer_leads_nowhere(
    bot_on_redis: RunningBot, attacker: redis.Redis
) -> None:
    bot = bot_on_redis
    jane = _refresh_token(await _command(bot, JANE))
    sanne = _refresh_token(await _command(bot, SANNE))
    [jane_key] = [k for k in _values(attacker) if k.endswith(f":ref:{jane}".encode())]
    [sanne_key] = [k for k in _values(attacker) if k.endswith(f":ref:{sanne}".encode())]

    # Re-point Jane's button at Sanne with a value the bot itself sealed.
    attacker.psetex(jane_key, 60_000, attacker.get(sanne_key) or b"")
    answer = await _press(bot, jane)

    assert "Sanne" not in _text(answer)
    assert "expired" in answer.payload["text"].lower()
    assert "Sanne" in _text(await _press(bot, sanne))  # the original is untouched


async def test_rotating_the_cache_key_makes_old_entries_misses_never_errors(
    sandbox: tuple[AepSimulator, str],
    slack: SlackRecorder,
    tmp_path: Path,
    redis_db: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, runner = await _start(sandbox, slack, tmp_path, redis_db)
    try:
        card = await _command(old, JANE)
    finally:
        await _stop(old, runner)
    assert old.sim.stats["profile"] == 1

    caplog.set_level(logging.INFO, logger="bot.cache")
    new, runner = await _start(sandbox, slack, tmp_path, redis_db, key=OTHER_KEY)
    try:
        again = await _command(new, JANE)
        assert "Jane Doe" in _text(again)
        # The old button's entry opens with the old key only: it has expired, in words.
        pressed = await _press(new, _refresh_token(card))
        assert "expired" in pressed.payload["text"].lower()
        assert "Jane Doe" in _text(await _press(new, _refresh_token(again)))
    finally:
        await _stop(new, runner)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- nothing personal can be read -------------------------------------------------------------


async def test_redis_holds_no_email_phone_name_or_ims_token_in_the_clear(
    bot_on_redis: RunningBot, attacker: redis.Redis
) -> None:
    bot = bot_on_redis
    for text in (JANE, SANNE, "hanako.yamada@example.jp", "+31 6 1234 5678", "CRM-000311"):
        await _command(bot, text)
    stored = _values(attacker)
    assert any(b":ims-token" in key for key in stored)
    assert any(b":profile:" in key for key in stored)

    dump = b"\n".join(key + b" " + value for key, value in stored.items())
    lowered = dump.lower()
    leaked = [v for v in personal_values() if v.encode().lower() in lowered]
    leaked += [v for v in personal_values() if json.dumps(v).encode().lower() in lowered]
    assert not leaked, f"in Redis in the clear: {sorted(leaked)[:5]}"
    for marker in (b"demo-", b'"profile"', b'"token"', b'{"v"', b"jane", b"sanne"):
        assert marker not in lowered


# -- configuration ----------------------------------------------------------------------------


def test_redis_without_a_cache_key_is_one_clear_startup_error() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, bot_cache_url="redis://127.0.0.1:6379/0")
    message = str(refused.value)
    assert "BOT_CACHE_KEY not set" in message
    assert "secrets.token_urlsafe(32)" in message
    # The memory cache, the default, needs no key: `make run` stays one command.
    assert load_settings(_env_file=None).bot_cache_key is None


def test_a_weak_cache_key_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(
            _env_file=None, bot_cache_url="redis://127.0.0.1:6379/0", bot_cache_key="changeme"
        )
    assert "BOT_CACHE_KEY is too short" in str(refused.value)
    assert "changeme" not in str(refused.value)


def test_a_redis_cache_cannot_be_built_without_a_key() -> None:
    with pytest.raises(ValueError, match="BOT_CACHE_KEY"):
        DataCache.from_url("redis://127.0.0.1:6379/0")
