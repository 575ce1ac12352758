"""Block Kit's limits, and the check every payload the bot renders passes before it leaves the
process. The recording Slack server (bot/demo/slack.py) enforces the same limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Slack's Block Kit limits (docs.slack.dev, block and element reference pages).
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
#: A Home tab view (views.publish) has the same limit as a modal.
HOME_BLOCKS = 100
#: Options of a static_select menu.
SELECT_OPTIONS = 100
OPTION_TEXT_CHARS = 75
OPTION_VALUE_CHARS = 150
TEXT_CHARS = 3000
SECTION_TEXT_CHARS = 3000
SECTION_FIELDS = 10
SECTION_FIELD_CHARS = 2000
HEADER_CHARS = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT_CHARS = 75
BUTTON_VALUE_CHARS = 2000
BUTTON_URL_CHARS = 3000
ID_CHARS = 255
VIEW_TITLE_CHARS = 24
PRIVATE_METADATA_CHARS = 3000
INPUT_LABEL_CHARS = 2000
PLACEHOLDER_CHARS = 150
#: A message's top-level `text` (Slack truncates, then refuses, longer ones: msg_too_long).
MESSAGE_TEXT_CHARS = 40_000
#: The `text` of a `markdown` block.
MARKDOWN_BLOCK_CHARS = 12_000


class CardLimitError(ValueError):
    """A rendered payload breaks a Block Kit limit; `problems` says where. A bug in a template."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("Block Kit limits broken: " + "; ".join(problems))
        self.problems = tuple(problems)


def check_message(payload: dict[str, Any]) -> None:
    """Raise CardLimitError unless `payload` is a message within Block Kit's limits."""
    problems: list[str] = []
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("message: the text fallback is missing")
    elif len(text) > TEXT_CHARS:
        problems.append(f"message: text fallback is {len(text)} > {TEXT_CHARS} characters")
    _check_blocks(payload.get("blocks"), MESSAGE_BLOCKS, "message", problems)
    if problems:
        raise CardLimitError(problems)


def check_view(view: dict[str, Any]) -> None:
    """Raise CardLimitError unless `view` is a modal or a Home tab within Block Kit's limits."""
    problems: list[str] = []
    if view.get("type") == "home":
        # A Home tab has no title bar and no buttons of its own.
        for key in ("title", "submit", "close"):
            if key in view:
                problems.append(f"view: a home view has no {key}")
    elif view.get("type") != "modal":
        problems.append("view: type is neither modal nor home")
    else:
        _check_text(view.get("title"), "view.title", VIEW_TITLE_CHARS, problems, plain=True)
        for key in ("submit", "close"):
            if key in view:
                _check_text(view[key], f"view.{key}", VIEW_TITLE_CHARS, problems, plain=True)
    _check_length(view.get("callback_id"), "view.callback_id", ID_CHARS, problems)
    _check_length(
        view.get("private_metadata"), "view.private_metadata", PRIVATE_METADATA_CHARS, problems
    )
    blocks = view.get("blocks")
    most = HOME_BLOCKS if view.get("type") == "home" else MODAL_BLOCKS
    _check_blocks(blocks, most, "view", problems)
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if has_input and "submit" not in view:
        problems.append("view: has an input block but no submit button")
    if problems:
        raise CardLimitError(problems)


def _check_blocks(blocks: Any, most: int, where: str, problems: list[str]) -> None:
    if not isinstance(blocks, list) or not blocks:
        problems.append(f"{where}: no blocks")
        return
    if len(blocks) > most:
        problems.append(f"{where}: {len(blocks)} blocks > {most}")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        at = f"{where}.blocks[{index}]"
        if not isinstance(block, dict):
            problems.append(f"{at}: not an object")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            _check_length(block_id, f"{at}.block_id", ID_CHARS, problems)
            if block_id in block_ids:
                problems.append(f"{at}: block_id {block_id!r} repeated")
            block_ids.add(block_id)
        check = _BLOCK_CHECKS.get(str(block.get("type")))
        if check is None:
            problems.append(f"{at}: unexpected block type {block.get('type')!r}")
        else:
            check(block, at, problems)


def _check_header(block: dict[str, Any], at: str, problems: list[str]) -> None:
    _check_text(block.get("text"), f"{at}.text", HEADER_CHARS, problems, plain=True)


def _check_section(block: dict[str, Any], at: str, problems: list[str]) -> None:
    if "text" not in block and "fields" not in block:
        problems.append(f"{at}: a section needs text or fields")
    if "text" in block:
        _check_text(block["text"], f"{at}.text", SECTION_TEXT_CHARS, problems)
    if "fields" in block:
        fields = block["fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= SECTION_FIELDS:
            problems.append(f"{at}.fields: 1 to {SECTION_FIELDS} fields allowed")
        else:
            for i, field in enumerate(fields):
                _check_text(field, f"{at}.fields[{i}]", SECTION_FIELD_CHARS, problems)
    if "accessory" in block:
        _check_element(block["accessory"], f"{at}.accessory", problems)


def _check_context(block: dict[str, Any], at: str, problems: list[str]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
        problems.append(f"{at}.elements: 1 to {CONTEXT_ELEMENTS} elements allowed")
        return
    for i, element in enumerate(elements):
        _check_text(element, f"{at}.elements[{i}]", TEXT_CHARS, problems)


def _check_actions(block: dict[str, Any], at: str, problems: list[str]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS:
        problems.append(f"{at}.elements: 1 to {ACTIONS_ELEMENTS} elements allowed")
        return
    action_ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
    if len(set(action_ids)) != len(action_ids):
        problems.append(f"{at}: action_id repeated within the block")
    for i, element in enumerate(elements):
        _check_element(element, f"{at}.elements[{i}]", problems)


def _check_input(block: dict[str, Any], at: str, problems: list[str]) -> None:
    _check_text(block.get("label"), f"{at}.label", INPUT_LABEL_CHARS, problems, plain=True)
    if "hint" in block:
        _check_text(block["hint"], f"{at}.hint", INPUT_LABEL_CHARS, problems, plain=True)
    _check_element(block.get("element"), f"{at}.element", problems)


def _check_divider(block: dict[str, Any], at: str, problems: list[str]) -> None:
    """Dividers have nothing to check."""


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str, list[str]], None]] = {
    "header": _check_header,
    "section": _check_section,
    "context": _check_context,
    "actions": _check_actions,
    "input": _check_input,
    "divider": _check_divider,
}


def _check_element(element: Any, at: str, problems: list[str]) -> None:
    if not isinstance(element, dict):
        problems.append(f"{at}: not an object")
        return
    _check_length(element.get("action_id"), f"{at}.action_id", ID_CHARS, problems)
    kind = element.get("type")
    if kind == "button":
        _check_text(element.get("text"), f"{at}.text", BUTTON_TEXT_CHARS, problems, plain=True)
        if "value" in element:
            _check_length(element["value"], f"{at}.value", BUTTON_VALUE_CHARS, problems)
        if "url" in element:
            _check_length(element["url"], f"{at}.url", BUTTON_URL_CHARS, problems)
    elif kind == "plain_text_input":
        if "placeholder" in element:
            _check_text(
                element["placeholder"], f"{at}.placeholder", PLACEHOLDER_CHARS, problems, plain=True
            )
        max_length = element.get("max_length")
        if max_length is not None and not 1 <= max_length <= TEXT_CHARS:
            problems.append(f"{at}.max_length: 1 to {TEXT_CHARS}")
    elif kind == "static_select":
        _check_text(
            element.get("placeholder"), f"{at}.placeholder", PLACEHOLDER_CHARS, problems, plain=True
        )
        options = element.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= SELECT_OPTIONS:
            problems.append(f"{at}.options: 1 to {SELECT_OPTIONS} options allowed")
        else:
            for i, option in enumerate(options):
                where = f"{at}.options[{i}]"
                if not isinstance(option, dict):
                    problems.append(f"{where}: not an object")
                    continue
                _check_text(option.get("text"), f"{where}.text", OPTION_TEXT_CHARS, problems)
                _check_length(option.get("value"), f"{where}.value", OPTION_VALUE_CHARS, problems)
    else:
        problems.append(f"{at}: unexpected element type {kind!r}")


def _check_text(obj: Any, at: str, limit: int, problems: list[str], *, plain: bool = False) -> None:
    allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        problems.append(f"{at}: expected a {' or '.join(allowed)} text object")
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{at}: empty text")
    elif len(text) > limit:
        problems.append(f"{at}: {len(text)} > {limit} characters")


def _check_length(value: Any, at: str, limit: int, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        problems.append(f"{at}: must be a non-empty string")
    elif len(value) > limit:
        problems.append(f"{at}: {len(value)} > {limit} characters")


# --- Work Objects ---------------------------------------------------------------------------

#: The entity types Slack's Work Objects support (docs.slack.dev/messaging/work-objects, and
#: slack_sdk.models.metadata.EntityType).
ENTITY_TYPES = frozenset(
    {
        "slack#/entities/task",
        "slack#/entities/file",
        "slack#/entities/item",
        "slack#/entities/incident",
        "slack#/entities/content_item",
    }
)
#: The types a custom field may have (slack_sdk.models.metadata.CustomFieldType).
CUSTOM_FIELD_TYPES = frozenset(
    {
        "integer",
        "string",
        "array",
        "boolean",
        "slack#/types/date",
        "slack#/types/timestamp",
        "slack#/types/image",
        "slack#/types/channel_id",
        "slack#/types/user",
        "slack#/types/entity_ref",
        "slack#/types/link",
        "slack#/types/email",
    }
)
#: Slack documents no limits for these; the bot keeps its entities well inside what a card shows.
ENTITY_CUSTOM_FIELDS = 30
ENTITY_TEXT_CHARS = 2000


def entity_problems(entity: Any, *, unfurl: bool = False, where: str = "entity") -> list[str]:
    """What makes `entity` not a Work Object entity as Slack documents it: `entity_type` one of
    ENTITY_TYPES, `url`, `external_ref.id`, `entity_payload.attributes.title.text`, well-formed
    custom fields whose keys `display_order` names; `app_unfurl_url` when it answers an unfurl."""
    problems: list[str] = []
    if not isinstance(entity, dict):
        return [f"{where}: not an object"]
    if entity.get("entity_type") not in ENTITY_TYPES:
        problems.append(f"{where}.entity_type: not one of Slack's entity types")
    for key in ("url",) + (("app_unfurl_url",) if unfurl else ()):
        value = entity.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            problems.append(f"{where}.{key}: a URL is required")
    ref = entity.get("external_ref")
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or not ref["id"]:
        problems.append(f"{where}.external_ref.id: required")
    payload = entity.get("entity_payload")
    if not isinstance(payload, dict):
        return [*problems, f"{where}.entity_payload: required"]
    title = (payload.get("attributes") or {}).get("title")
    if not isinstance(title, dict) or not isinstance(title.get("text"), str) or not title["text"]:
        problems.append(f"{where}.entity_payload.attributes.title.text: required")
    fields = payload.get("custom_fields") or []
    if not isinstance(fields, list) or len(fields) > ENTITY_CUSTOM_FIELDS:
        problems.append(f"{where}.custom_fields: a list of at most {ENTITY_CUSTOM_FIELDS}")
        fields = []
    keys: list[str] = []
    for index, field in enumerate(fields):
        at = f"{where}.custom_fields[{index}]"
        if not isinstance(field, dict):
            problems.append(f"{at}: not an object")
            continue
        for key in ("key", "label"):
            if not isinstance(field.get(key), str) or not field[key]:
                problems.append(f"{at}.{key}: required")
        if field.get("type") not in CUSTOM_FIELD_TYPES:
            problems.append(f"{at}.type: not one of Slack's custom field types")
        _check_length(field.get("value"), f"{at}.value", ENTITY_TEXT_CHARS, problems)
        keys.append(str(field.get("key")))
    if len(set(keys)) != len(keys):
        problems.append(f"{where}.custom_fields: keys are not unique")
    order = payload.get("display_order")
    if order is not None and (not isinstance(order, list) or not set(order) <= set(keys)):
        problems.append(f"{where}.display_order: names a field that is not there")
    return problems


def check_entity(entity: dict[str, Any], *, unfurl: bool = False) -> None:
    """Raise CardLimitError unless `entity` is a Work Object entity as Slack documents it."""
    problems = entity_problems(entity, unfurl=unfurl)
    if problems:
        raise CardLimitError(problems)
