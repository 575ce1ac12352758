"""The import rules of the code's layers, read from the source with `ast` (nothing is imported):
AEP code knows no Slack or rendering, rendering and policy know no AEP, only the app wires the
listeners, and the demo stand-ins reach the request path only where demo mode is wired."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"

#: The places that may import bot.demo: where demo mode is wired (the services build the
#: in-process sandbox), the console and the CLI (which stand the recording Slack server in for
#: Slack), the entry point (which serves the sandbox over HTTP), and the demo package itself.
DEMO_WIRING = frozenset({"bot/services.py", "bot/console.py", "bot/cli.py", "bot/__main__.py"})


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(BOT.rglob("*.py")):
        yield path.relative_to(BOT.parent).as_posix(), path


def _package(name: str) -> str:
    return name.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def imports_of(name: str, path: Path) -> set[str]:
    """Every module `path` imports, absolute, including `from bot import cards` as bot.cards."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    here = _package(name)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


MODULES = dict(_modules())


def test_the_check_reads_the_whole_package() -> None:
    assert {"bot/aep/client.py", "bot/cards.py", "bot/app.py", "bot/listeners/actions.py"} <= set(
        MODULES
    )
    assert "bot.aep.client" in imports_of("bot/lookup.py", MODULES["bot/lookup.py"])
    assert "bot.cards" in imports_of("bot/services.py", MODULES["bot/services.py"])


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("bot/aep/")])
def test_aep_code_knows_no_slack_bolt_jinja_or_cards(name: str) -> None:
    forbidden = {
        m
        for m in imports_of(name, MODULES[name])
        if _under(m, "slack_bolt", "slack_sdk", "jinja2", "markupsafe", "bot.cards", "bot.blocks")
    }
    assert not forbidden, f"{name} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "name", [n for n in MODULES if n.startswith(("bot/cards", "bot/policy", "bot/customer"))]
)
def test_rendering_policy_and_the_customer_import_nothing_from_aep(name: str) -> None:
    forbidden = {m for m in imports_of(name, MODULES[name]) if _under(m, "bot.aep")}
    assert not forbidden, f"{name} imports {sorted(forbidden)}"


@pytest.mark.parametrize("name", [n for n in MODULES if not n.startswith("bot/listeners/")])
def test_only_the_app_imports_the_listeners(name: str) -> None:
    if name == "bot/app.py":
        assert _under("bot.listeners.commands", *imports_of(name, MODULES[name]))
        return
    forbidden = {m for m in imports_of(name, MODULES[name]) if _under(m, "bot.listeners")}
    assert not forbidden, f"{name} imports {sorted(forbidden)}"


@pytest.mark.parametrize("name", [n for n in MODULES if not n.startswith("bot/demo/")])
def test_the_demo_is_imported_only_where_demo_mode_is_wired(name: str) -> None:
    uses_demo = {m for m in imports_of(name, MODULES[name]) if _under(m, "bot.demo")}
    if name in DEMO_WIRING:
        return
    assert not uses_demo, f"{name} imports {sorted(uses_demo)}; wire the demo in {DEMO_WIRING}"
