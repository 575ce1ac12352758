"""The bot's own configuration files: one way to read a YAML file (or its built-in default), and
one way to turn pydantic's validation errors into lines a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, so a second `support:` cannot hide the first."""


def _mapping_without_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def read_yaml(
    path: Path | None,
    *,
    builtin: str,
    builtin_name: str,
    setting: str,
    error: type[Exception],
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
) -> tuple[Any, str]:
    """(the YAML value, where it came from in words) of the file at `path`, or of the bundled
    `bot/layouts/<builtin>` when `path` is None. Raises `error` naming `setting` when the file
    cannot be read or is not YAML."""
    if path is None:
        text = resources.files("bot").joinpath(f"layouts/{builtin}").read_text("utf-8")
        where = builtin_name
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise error(f"{setting}: cannot read {path}: {exc.strerror}") from None
        where = f"{setting} {path}"
    try:
        return yaml.load(text, Loader=loader), where  # noqa: S506 - loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise error(f"{where} is not valid YAML: {exc}") from None


def validation_problems(
    exc: ValidationError,
    *,
    prefix: str = "",
    env_names: bool = False,
    hint: Callable[[ErrorDetails, str], str | None] = lambda error, loc: None,
) -> list[str]:
    """One line per error, `<where>: <what>`. `where` is the dotted path under `prefix`, or with
    `env_names` the environment variable (`bot_lookup_deadline` -> BOT_LOOKUP_DEADLINE); `hint`
    may say something more useful than pydantic's message for an error at a place."""
    lines = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"]]
        loc = "_".join(parts).upper() if env_names else ".".join(p for p in [prefix, *parts] if p)
        message = hint(error, loc) or error["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {message}" if loc else message)
    return lines
