"""Slack calls made while a person waits: each has a budget, and Slack's Retry-After is obeyed.

Two ways out to Slack exist, and both go through here. Within a person's request (a scope of
bot.request_id) the budget is counted from when the request arrived, not from when the call
starts (`time_for`): a call made before the answer gets what is left of the person's deadline,
and a reply (a response_url post, or a Web API method in REPLY_METHODS) gets at least
REPLY_FLOOR, so the person always hears within the deadline plus that floor. Outside a request
(background work) each call gets the whole budget.

- Web API methods, through `BudgetedWebClient` (the one client of the process; the app hands it
  to every listener). A call and its one retry finish within the budget. A method Slack
  rate-limited is not called again before its Retry-After has passed (remembered per method in
  `RateLimits`); a wait that fits the budget is slept before the call, outside any slot, and a
  wait that does not fit ends the call at once with `SlackBusy`.
- `response_url` posts, through `send_to_response_url` (also behind Bolt's `respond`, see
  `BudgetedRespond`): a 5xx, a 404, a refused connection or a hang is tried once more within the
  budget, then logged with a reference; it never raises.

Errors (both `SlackClientError`, so code that catches Slack's errors sees them)::

    SlackClientError
     ├── SlackBusy       Slack rate-limited the method and its Retry-After does not fit the budget
     └── SlackNoAnswer   Slack did not answer the method within the budget (hang, refused, reset)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from bot import request_id
from bot.i18n import N_, Reader

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

#: Slack's limits are counted per minute; a Retry-After far beyond that is a broken header, and one
#: answer must not shut a method for days. Longer waits are taken as this many seconds.
MAX_RETRY_AFTER = 300.0

#: When Slack says 429 without a (readable) Retry-After, wait this long, as slack_sdk does.
DEFAULT_RETRY_AFTER = 1.0

#: A reply still gets this many seconds (capped by the budget) when the person's deadline is used
#: up: a lookup that took the whole deadline must still be able to say that AEP did not answer.
#: So a person hears within the deadline plus this: long enough for a healthy Slack to take a
#: post (and, for a response_url, one retry), short enough to stay a few seconds.
REPLY_FLOOR = 3.0

#: Web API methods that deliver the answer itself (a card, a notice, an unfurl, the Home tab, a
#: modal's content): replies, which get REPLY_FLOOR. Every other method (users.info,
#: usergroups.list, conversations.*, views.open) is asked before the answer and gets only what is
#: left of the deadline.
REPLY_METHODS = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.update",
        "chat.unfurl",
        "views.update",
        "views.publish",
        "entity.presentDetails",
    }
)

#: response_url answers worth one more try: Slack's side failed, or the URL was not found yet.
_RETRY_STATUSES = frozenset({404, 500, 502, 503, 504})


class SlackBusy(SlackClientError):
    """Slack rate-limited `method`; it may be called again in `retry_after` seconds, which did not
    fit the budget of the call (so the call was not made, or not made again)."""

    def __init__(self, *, method: str, retry_after: float) -> None:
        super().__init__(f"Slack rate-limited {method}; retry after {retry_after:.0f} s")
        self.method = method
        self.retry_after = retry_after


class SlackNoAnswer(SlackClientError):
    """Slack did not answer `method` within the budget: a hang, a refused or broken connection."""

    def __init__(self, *, method: str, cause: str) -> None:
        super().__init__(f"Slack did not answer {method}: {cause}")
        self.method = method
        self.cause = cause


class RateLimits:
    """When each Web API method may be called again, from Slack's Retry-After answers.

    One instance per process (it lives on the process's one `BudgetedWebClient`), shared by every
    person's calls: after one 429 nobody calls that method before the wait is over.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    def wait(self, method: str) -> float:
        """Seconds before `method` may be called again; 0 when it may be called now."""
        until = self._until.get(method)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[method]
            return 0.0
        return left

    def hold(self, method: str, seconds: float) -> None:
        """Note that Slack asked for `seconds` of quiet on `method` (capped; never shortened)."""
        seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER)
        until = self._clock() + seconds
        self._until[method] = max(until, self._until.get(method, until))


def time_for(budget: float, *, reply: bool) -> float:
    """Seconds one Slack call may take, with `budget` the person's deadline (and the ceiling of
    any one call). Within a person's request the deadline counts from the request's arrival: a
    call before the answer gets what is left (0 or less when nothing is), a reply at least
    REPLY_FLOOR. Background work (no request, or the background's own scope) gets `budget`."""
    scope = request_id.current()
    if scope is None or scope.surface == "background":
        return budget
    left = scope.started + budget - time.monotonic()
    if reply:
        return min(budget, max(left, 0.0) + REPLY_FLOOR)
    return min(budget, left)


def retry_after(headers: Mapping[str, Any] | None) -> float:
    """Seconds of a Retry-After header; untrusted, so garbage, bad values are bounded."""
    raw: Any = None
    for name, value in (headers or {}).items():
        if str(name).lower() == "retry-after":
            raw = value
            break
    if isinstance(raw, list | tuple):
        raw = raw[0] if raw else None
    try:
        seconds = float(str(raw).strip())
    except ValueError:
        return DEFAULT_RETRY_AFTER
    if not math.isfinite(seconds) or seconds < 0:
        return DEFAULT_RETRY_AFTER if math.isnan(seconds) or seconds < 0 else MAX_RETRY_AFTER
    return min(seconds, MAX_RETRY_AFTER)


class BudgetedWebClient(AsyncWebClient):
    """The Web API client for calls made while a person waits (see the module docstring).

    `budget` bounds each call, its waits and its one retry together. `max_in_flight` bounds the
    requests on the wire at once; a call holds a slot only while its request is in flight, never
    while it waits out a Retry-After, so a rate limit never starves other people's calls.
    """

    def __init__(
        self,
        *,
        budget: float,
        limits: RateLimits | None = None,
        max_in_flight: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self.limits = limits if limits is not None else RateLimits()
        #: Where each call is counted (set by bot.services.build_services).
        self.metrics: Metrics | None = None
        self._slots = asyncio.Semaphore(max_in_flight)

    def for_team(self, team_id: str | None) -> BudgetedWebClient:
        """This client for one request's workspace: Bolt's own per-request client sends the
        request's team_id with every call (Slack needs it for org-wide installs); this one does
        too, and shares the token, budget, rate-limit memory and in-flight slots."""
        twin = BudgetedWebClient(
            budget=self.budget,
            limits=self.limits,
            token=self.token,
            base_url=self.base_url,
            timeout=self.timeout,
            session=self.session,
            headers=self.headers,
            team_id=team_id,
            logger=self.logger,
            retry_handlers=self.retry_handlers,
        )
        twin._slots = self._slots
        twin.metrics = self.metrics
        return twin

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        """Call `api_method` within the budget; raise SlackBusy or SlackNoAnswer when Slack
        cannot answer in time, SlackApiError for any other refusal. Counted in `metrics`."""
        try:
            response = await self._call_within_budget(api_method, **kwargs)
        except SlackClientError as exc:
            if self.metrics is not None:
                self.metrics.slack_call(api_method, failure_code(exc))
            raise
        if self.metrics is not None:
            self.metrics.slack_call(api_method, "ok")
        return response

    async def _call_within_budget(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        loop = asyncio.get_running_loop()
        seconds = time_for(self.budget, reply=api_method in REPLY_METHODS)
        if seconds <= 0 and self.limits.wait(api_method) <= 0:
            # The person's deadline is spent (a held method still says it is busy, below): not
            # called, so the answer they are owed goes out now, in words.
            raise SlackNoAnswer(method=api_method, cause="no time left")
        deadline = loop.time() + seconds
        failure: SlackClientError = SlackNoAnswer(method=api_method, cause="not called")
        for _ in range(2):
            wait = self.limits.wait(api_method)
            if wait > 0:
                if loop.time() + wait >= deadline:
                    raise SlackBusy(method=api_method, retry_after=wait)
                await asyncio.sleep(wait)
            try:
                async with asyncio.timeout_at(deadline), self._slots:
                    return await super().api_call(api_method, **kwargs)
            except SlackApiError as exc:
                status = exc.response.status_code
                if status == 429:
                    self.limits.hold(api_method, retry_after(exc.response.headers))
                    log.warning(
                        "Slack rate-limited %s for %.0f s", api_method, self.limits.wait(api_method)
                    )
                    failure = SlackBusy(method=api_method, retry_after=self.limits.wait(api_method))
                elif status in _RETRY_STATUSES - {404}:
                    failure = SlackNoAnswer(method=api_method, cause=f"HTTP {status}")
                else:
                    raise
            except TimeoutError:
                raise SlackNoAnswer(method=api_method, cause="no answer in time") from None
            except aiohttp.ClientError as exc:
                failure = SlackNoAnswer(method=api_method, cause=type(exc).__name__)
        raise failure


async def send_to_response_url(
    url: str,
    message: Mapping[str, Any],
    *,
    budget: float,
    reference: str | None = None,
    allowed: Callable[[str], bool],
) -> bool:
    """POST `message` to a response_url within `budget` seconds (at most: within a person's
    request, what is left of their deadline but at least REPLY_FLOOR, see `time_for`);
    True when Slack took it.

    The one way the bot writes to a response_url. A 5xx, a 404, a refused connection or a hang
    is tried once more within the budget (each try gets half of it); a failure is logged with
    `reference` (one is made when none is given) and never raised, so a reply sent from a
    background task cannot end in "Task exception was never retrieved".
    `allowed` decides whether the bot may write to `url` at all (Slack's own hosts): a URL it
    refuses is logged and not contacted.
    """
    reference = reference or new_reference()
    if not allowed(url):
        # The security log, with the refusals of unverified requests: a signed request naming
        # a response_url off Slack's hosts is something to look into.
        logging.getLogger("bot.security").warning(
            "not answering through a response_url that is not on a Slack host (reference %s)",
            reference,
        )
        return False
    attempt_budget = time_for(budget, reply=True) / 2
    problem = "not sent"
    for attempt in (1, 2):
        try:
            async with asyncio.timeout(attempt_budget):
                answer = await AsyncWebhookClient(
                    url, timeout=max(1, math.ceil(attempt_budget)), retry_handlers=[]
                ).send_dict(dict(message))
        except TimeoutError:
            problem = f"no answer within {attempt_budget:g} s"
            continue
        except (aiohttp.ClientError, OSError) as exc:
            problem = f"connection failed ({type(exc).__name__})"
            continue
        if answer.status_code < 400:
            if attempt > 1:
                log.info("response_url answered on the second try (reference %s)", reference)
            return True
        problem = f"HTTP {answer.status_code} {_short(answer.body)}"
        if answer.status_code not in _RETRY_STATUSES:
            break
    log.error("could not answer through response_url: %s (reference %s)", problem, reference)
    return False


def new_reference() -> str:
    """The id naming the request being served, for the admin a person may quote it to: the
    request id (bot.request_id) when there is one, else a fresh one."""
    return request_id.current_id() or request_id.new_id()


def _short(body: str | None) -> str:
    # Slack answers a response_url with a short error word (`expired_url`, `invalid_blocks`);
    # keep only such a word, never a body that could echo the message back.
    word = (body or "").strip()
    return word if word.replace("_", "").isalnum() and len(word) <= 40 else ""


class BudgetedRespond(AsyncRespond):
    """Bolt's `respond`, sending through `send_to_response_url` (budget, one retry, a log line).

    Returns a WebhookResponse like Bolt's: status 200 when Slack took the message, 0 when not
    (the failure is logged; the caller has nobody else to tell).
    """

    def __init__(
        self,
        *,
        response_url: str | None,
        budget: float,
        reference: str,
        allowed: Callable[[str], bool],
    ) -> None:
        super().__init__(response_url=response_url)
        self.budget = budget
        self.reference = reference
        self.allowed = allowed

    async def __call__(  # type: ignore[override]
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[Any] | None = None,
        **fields: Any,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        message: dict[str, Any] = dict(text) if isinstance(text, dict) else {"text": text}
        if blocks is not None:
            message["blocks"] = list(blocks)
        message.update({key: value for key, value in fields.items() if value is not None})
        sent = await send_to_response_url(
            self.response_url,
            message,
            budget=self.budget,
            reference=self.reference,
            allowed=self.allowed,
        )
        return WebhookResponse(
            url=self.response_url, status_code=200 if sent else 0, body="", headers={}
        )


#: Slack's refusals of a post, in words: what happened, and what to do.
# Slack's refusals of a post in words (English msgids, said in the reader's language).
_POST_ERRORS: dict[str, str] = {
    "not_in_channel": N_(
        "I am not a member of this channel. Invite me with /invite and try again."
    ),
    "channel_not_found": N_(
        "Slack could not find this conversation for me. If it is private, invite me first."
    ),
    "is_archived": N_("This channel is archived, so nothing can be posted in it."),
    "restricted_action": N_("This workspace does not let me post here. Ask your Slack admin."),
    "msg_too_long": N_("The card was too large for Slack. Please tell whoever runs the bot."),
    "msg_blocks_too_long": N_(
        "The card was too large for Slack. Please tell whoever runs the bot."
    ),
    "invalid_blocks": N_("Slack could not read the card. Please tell whoever runs the bot."),
    "ratelimited": N_("Slack is busy right now. Try again in a minute."),
    "rate_limited": N_("Slack is busy right now. Try again in a minute."),
}


def why_post_failed(exc: SlackClientError, reader: Reader) -> str:
    """A Slack refusal of a post in words (never a bare code, never "None")."""
    if isinstance(exc, SlackBusy):
        if exc.retry_after < 1:
            return reader.gettext("Slack is busy right now. Try again in a moment.")
        whole = max(1, math.ceil(exc.retry_after))
        return reader.ngettext(
            "Slack is busy right now. Try again in %(num)s second.",
            "Slack is busy right now. Try again in %(num)s seconds.",
            whole,
            num=whole,
        )
    if isinstance(exc, SlackNoAnswer):
        return reader.gettext("Slack did not answer. Try again in a minute.")
    code = failure_code(exc) if isinstance(exc, SlackApiError) else ""
    if not code or code == "slack_error":
        return reader.gettext("Slack did not say why it refused the post. Try again in a minute.")
    if code in _POST_ERRORS:
        return reader.gettext(_POST_ERRORS[code])
    # Slack's code is in the log and the audit record; the person reads what to do.
    return reader.gettext(
        "Slack refused the post. Try again, or ask for the card privately: /customer with the "
        "identity answers only you."
    )


#: Refusals of a post that mean the same wherever it goes (the card itself was refused).
_CARD_ERRORS = frozenset({"msg_too_long", "msg_blocks_too_long", "invalid_blocks"})


def why_call_failed(exc: BaseException, reader: Reader) -> str:
    """Why Slack did not open a direct message, post into it, or open a window, in words (what
    happened and when to try again; never a bare code). Busy, silent and card refusals read as
    `why_post_failed` says them; its words about channels do not apply outside one."""
    if isinstance(exc, SlackBusy | SlackNoAnswer):
        return why_post_failed(exc, reader)
    code = failure_code(exc) if isinstance(exc, SlackApiError) else ""
    if isinstance(exc, SlackApiError) and code in _CARD_ERRORS:
        return why_post_failed(exc, reader)
    if not code or code == "slack_error":
        return reader.gettext("Slack refused it without saying why. Try again in a minute.")
    return reader.gettext(
        "Slack refused it (%(code)s). Try again in a minute.",
        code=code.replace("_", " ").strip()[:80],
    )


def failure_code(exc: BaseException) -> str:
    """A short word for a failed Slack call, safe for a log or audit line (`ratelimited`,
    `no_answer`, Slack's own error code, or the exception's type)."""
    if isinstance(exc, SlackBusy):
        return "ratelimited"
    if isinstance(exc, SlackNoAnswer):
        return "no_answer"
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error") or "")
        # Slack's codes are snake_case words; anything else is not echoed.
        return code[:60] if code and code.replace("_", "").isalnum() else "slack_error"
    return type(exc).__name__


def busy_seconds(exc: SlackBusy) -> int:
    """Whole seconds a person should wait before trying again (at least 1)."""
    return max(1, math.ceil(exc.retry_after))
