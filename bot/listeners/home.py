"""The App Home (app_home_opened, its buttons) and the search modal (from the Home's button and
the find_customer global shortcut), whose cards arrive as direct messages from the bot."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.answers import (
    Asker,
    SearchProblem,
    clear_history,
    lookup_card,
    read_search,
    replay,
    search_reader,
    viewer_of,
)
from bot.listeners.common import (
    interactive_asker,
    publish_home,
    refresh_home,
    say_on_home,
    send_or_say_on_home,
)
from bot.services import Services
from bot.slack_web import failure_code

log = logging.getLogger(__name__)


def _search_values(view: dict[str, Any]) -> tuple[str, str | None]:
    """The identity typed and the kind chosen (None: any), from the submitted modal's state."""
    values = (view.get("state") or {}).get("values") or {}
    typed = (values.get(ids.SEARCH_IDENTITY_BLOCK) or {}).get(ids.SEARCH_IDENTITY_INPUT) or {}
    chosen = (values.get(ids.SEARCH_NAMESPACE_BLOCK) or {}).get(ids.SEARCH_NAMESPACE_INPUT) or {}
    kind = (chosen.get("selected_option") or {}).get("value")
    return str(typed.get("value") or ""), (str(kind) if kind else None)


class HomeHandlers:
    """The Home's, its buttons', the find_customer shortcut's and the search modal's
    listeners, one method each, with the services they answer with (and open_search, which two
    of them share). Methods of a module-level class, so that mutation testing reaches them
    (mutmut 3 skips functions nested in functions); Bolt injects a listener's arguments by
    parameter name and skips a bound method's leading `self`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def open_search(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Open the search modal on the interaction's trigger (it lives about 3 seconds): at
        once in BOT_DEFAULT_LOCALE, then in the opener's language once they are known (Slack
        keeps what was already typed, the inputs keeping their ids)."""
        default = self.services.default_reader
        asker = interactive_asker(body)
        try:
            opened = await client.views_open(
                trigger_id=body["trigger_id"], view=self.services.cards.search_modal(reader=default)
            )
        except (SlackClientError, KeyError) as exc:
            log.warning("could not open the search modal: %s", failure_code(exc))
            # Neither a Home click nor a global shortcut has a conversation or a response_url
            # to say it in: the person's Home says it.
            if asker is not None:
                await say_on_home(
                    self.services, await viewer_of(self.services, asker), "search_unopened", exc
                )
            return
        if asker is None:
            return
        reader = (await viewer_of(self.services, asker)).reader
        view = opened.get("view") or {}
        if reader.language != default.language and isinstance(view, dict) and view.get("id"):
            try:
                await client.views_update(
                    view_id=view["id"],
                    hash=view.get("hash"),
                    view=self.services.cards.search_modal(reader=reader),
                )
            except SlackClientError as exc:
                # The modal is open, in BOT_DEFAULT_LOCALE: usable as it is.
                log.warning(
                    "could not show the search modal in the opener's language: %s",
                    failure_code(exc),
                )

    async def home_opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Publish the person's Home each time they open it (the Messages tab needs nothing)."""
        self.services.answer_in_progress()
        user_id = event.get("user")
        if event.get("tab") != "home" or not isinstance(user_id, str) or not user_id:
            return
        asker = Asker(team_id=context.team_id, user_id=user_id, channel_id=None)
        await self.services.history.home_opened(asker.team_id or "", user_id)
        await publish_home(self.services, await viewer_of(self.services, asker))

    async def find_clicked(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The Home's Find a customer button opens the search modal."""
        await ack()
        await self.open_search(body, client)

    async def find_shortcut(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The find_customer global shortcut opens the search modal, from anywhere in Slack."""
        await ack()
        await self.open_search(body, client)

    async def search_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        """Text that names no single identity is shown inline; otherwise the modal closes and
        the card (or the words why not) comes as a direct message from the bot."""
        asker = interactive_asker(body)
        text, kind = _search_values(view)
        found = read_search(self.services, text, kind)
        if isinstance(found, SearchProblem):
            reader = search_reader(self.services, str(view.get("private_metadata") or ""))
            errors = {ids.SEARCH_IDENTITY_BLOCK: found.words(self.services, reader)}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        self.services.answer_in_progress()
        if asker is None:
            log.warning("search submission without a user refused")
            return
        viewer = await viewer_of(self.services, asker)
        card = await lookup_card(self.services, viewer, found, surface="search")
        if await send_or_say_on_home(self.services, viewer, card):
            await refresh_home(self.services, viewer)

    async def replay_clicked(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A recent lookup clicked on the Home: run again with the person's grants now, the
        card sent as a direct message, and the Home published again (the entry moves up)."""
        await ack()
        self.services.answer_in_progress()
        asker = interactive_asker(body)
        if asker is None:
            log.warning("Home click without a user refused")
            return
        viewer = await viewer_of(self.services, asker)
        entry_id = str(((body.get("actions") or [{}])[0]).get("value") or "")
        if await send_or_say_on_home(
            self.services, viewer, await replay(self.services, viewer, entry_id)
        ):
            await publish_home(self.services, viewer)

    async def clear_clicked(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Clear my history: forget the person's lookups and show the Home without them."""
        await ack()
        self.services.answer_in_progress()
        asker = interactive_asker(body)
        if asker is None:
            log.warning("Home click without a user refused")
            return
        await clear_history(self.services, asker)
        await publish_home(self.services, await viewer_of(self.services, asker))


def register(app: AsyncApp, services: Services) -> None:
    """Register the Home, its buttons, the find_customer shortcut and the search modal."""
    h = HomeHandlers(services)
    app.event("app_home_opened")(h.home_opened)
    app.action(ids.HOME_FIND)(h.find_clicked)
    app.shortcut(ids.FIND_SHORTCUT)(h.find_shortcut)
    app.view(ids.SEARCH_MODAL)(h.search_submitted)
    app.action(ids.HOME_REPLAY)(h.replay_clicked)
    app.action(ids.HOME_CLEAR)(h.clear_clicked)
