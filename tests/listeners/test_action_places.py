"""bot.listeners.actions at unit level (issue 15, mutation testing): where the answer to a click
goes (its Share button posts there, so a wrong place would post a card into another
conversation or thread), and which token a click carries. The handlers themselves (methods of
ActionHandlers) are driven by the signed-request tests."""

from __future__ import annotations

from typing import Any

import pytest

from bot.answers import Asker
from bot.button_tokens import Place, Recalled
from bot.identity import IdentityRef
from bot.listeners.actions import _answer_place, _click_place, _token

JANE = IdentityRef(namespace="email", value="jane.doe@example.com")
IN_CHANNEL = Asker(team_id="T0TEAM", user_id="U0AGENT", channel_id="C0CH")


def test_a_click_outside_any_conversation_has_no_place() -> None:
    asker = Asker(team_id="T0TEAM", user_id="U0AGENT", channel_id=None)
    assert _click_place({"container": {"thread_ts": "1.5"}}, asker) is None


def test_a_click_on_a_card_in_a_thread_answers_in_that_thread() -> None:
    body = {"container": {"thread_ts": "1.5"}, "message": {"thread_ts": "9.9"}}
    assert _click_place(body, IN_CHANNEL) == Place("C0CH", "1.5")


def test_the_clicked_messages_thread_is_used_when_the_container_names_none() -> None:
    assert _click_place({"message": {"thread_ts": "9.9"}}, IN_CHANNEL) == Place("C0CH", "9.9")


@pytest.mark.parametrize("body", [{}, {"container": None, "message": None}, {"message": {}}])
def test_a_click_on_a_card_outside_a_thread_answers_in_the_channel(body: dict[str, Any]) -> None:
    assert _click_place(body, IN_CHANNEL) == Place("C0CH", None)


def test_an_answer_goes_where_the_token_kept_it_when_that_is_the_clicked_conversation() -> None:
    recalled = Recalled(JANE, Place("C0CH", "3.3"))
    body = {"container": {"thread_ts": "1.5"}}
    assert _answer_place(recalled, body, IN_CHANNEL) == Place("C0CH", "3.3")


def test_a_token_without_a_thread_takes_the_clicks_thread() -> None:
    recalled = Recalled(JANE, Place("C0CH", None))
    body = {"container": {"thread_ts": "1.5"}}
    assert _answer_place(recalled, body, IN_CHANNEL) == Place("C0CH", "1.5")


@pytest.mark.parametrize("place", [None, Place("C0OTHER", "3.3"), Place("C0OTHER", None)])
def test_a_token_of_no_or_another_conversation_answers_with_no_place(place: Place | None) -> None:
    recalled = Recalled(JANE, place)
    assert _answer_place(recalled, {"container": {"thread_ts": "1.5"}}, IN_CHANNEL) is None


@pytest.mark.parametrize(
    ("body", "token"),
    [
        ({"actions": [{"value": "tok-button"}]}, "tok-button"),
        ({"actions": [{"selected_option": {"value": "tok-pick"}}]}, "tok-pick"),
        ({"actions": [{"value": "", "selected_option": {"value": "tok-pick"}}]}, "tok-pick"),
        ({"actions": [{"value": "tok-1"}, {"value": "tok-2"}]}, "tok-1"),
        ({"actions": [{}]}, ""),
        ({"actions": []}, ""),
        ({}, ""),
    ],
)
def test_a_click_carries_its_buttons_value_or_its_picked_option(
    body: dict[str, Any], token: str
) -> None:
    assert _token(body) == token
