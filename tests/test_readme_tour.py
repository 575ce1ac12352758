"""The README's tour (the ```text block after `$ make run`) run through the console as the script
it is, checked step by step: each step shows what the tour says it shows.

The README holds the only copy of the script. To change the tour, change the block there, then
the step's entry in STEPS below (every step, in order, with what it must show). The checks are
about meaning (a card for this customer, a Share button, a card posted in the channel, a
refusal that shows nothing of the customer), not about the card's wording.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: How an answer only the asker sees reaches Slack: the request's ack, its response_url, or an
#: ephemeral message.
PRIVATE = {"ack", "response_url", "chat.postEphemeral"}


def tour_block() -> list[str]:
    """The lines of the README's ```text block that starts with `$ make run`."""
    found = re.search(r"^```text\n\$ make run\n(.*?)^```", README.read_text("utf-8"), re.M | re.S)
    assert found, "README.md has no ```text block starting with `$ make run`"
    return found.group(1).splitlines()


def tour_steps() -> list[str]:
    """What the tour types: its `> ` lines, without the prompt."""
    return [line.removeprefix("> ") for line in tour_block() if line.startswith("> ")]


def tour_script() -> str:
    """The block as a script for the console's stdin, as a person would paste it: prompts
    ("> ") and comments included."""
    return "".join(line + "\n" for line in tour_block())


def run_console(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot console` with the tour on stdin, as `make run` starts it (demo sandbox)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AEP_", "BOT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        input=tour_script(),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no .env from the checkout
        env={**clean, "BOT_AUDIT_FILE": str(tmp_path / "audit.jsonl"), "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


# --- what a step's output holds ---------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One Slack call as the console prints it: `--- method (channel C, thread T)` and its text."""

    method: str
    where: str
    text: str

    @property
    def buttons(self) -> list[str]:
        return re.findall(r"\[([^\]\n]+)\]", self.text)


@dataclass(frozen=True)
class Step:
    calls: list[Call]
    notes: str  # the console's own lines (not Slack calls)

    def cards_for(self, name: str, methods: set[str] | None = None) -> list[Call]:
        return [
            c for c in self.calls if name in c.text and (methods is None or c.method in methods)
        ]


def parse_step(lines: list[str]) -> Step:
    calls: list[Call] = []
    notes: list[str] = []
    for line in lines:
        header = re.match(r"^--- (\S+)(?: \((.*)\))?$", line)
        if header:
            calls.append(Call(header.group(1), header.group(2) or "", ""))
        elif calls:
            last = calls[-1]
            calls[-1] = Call(last.method, last.where, last.text + line + "\n")
        else:
            notes.append(line)
    # A note after the calls (the picker's hint) is the console's too: its lines are in parens.
    for call in calls:
        notes += [ln for ln in call.text.splitlines() if ln.startswith("(") and ln.endswith(")")]
    return Step(calls, "\n".join(notes))


def split_steps(stdout: str) -> list[Step]:
    """The output of each step: what follows its echoed `> step` line up to the next one."""
    comments = {line for line in tour_block() if line.startswith("#")}
    steps: list[list[str]] = []
    for line in stdout.splitlines():
        if line in comments:
            continue  # the console echoes the tour's own comments; they are not its output
        if line.startswith("> "):
            steps.append([])
        elif steps:
            steps[-1].append(line)
    return [parse_step(lines) for lines in steps]


# --- the checks, one per kind of step ---------------------------------------------------------


def private_card(name: str, *, with_button: str | None = None) -> Callable[[Step], None]:
    def check(step: Step) -> None:
        cards = step.cards_for(name, PRIVATE)
        assert cards, f"no private card for {name}"
        if with_button:
            assert with_button in cards[-1].buttons, cards[-1].buttons

    return check


def share_modal(step: Step) -> None:
    modals = [c for c in step.calls if c.method == "views.open" and "[modal]" in c.text]
    assert modals, "no modal opened"
    assert "<input>" in modals[0].text  # it asks for the reason


def posted_card(name: str, *, channel: str, in_thread: bool = False) -> Callable[[Step], None]:
    def check(step: Step) -> None:
        posts = [
            c
            for c in step.cards_for(name, {"chat.postMessage"})
            if c.where.startswith(f"channel {channel}")
        ]
        assert posts, f"no card for {name} posted in {channel}"
        assert "View details" in posts[0].buttons
        if in_thread:
            assert "thread " in posts[0].where

    return check


def picker_saying_how_to_pick(step: Step) -> None:
    pickers = [c for c in step.calls if len(c.buttons) >= 2 and "==" not in c.text]
    assert pickers, "no picker"
    count = len(pickers[0].buttons)
    assert "pick 1" in step.notes and f"pick {count}" in step.notes, step.notes


def acting_as(user: str) -> Callable[[Step], None]:
    def check(step: Step) -> None:
        assert not step.calls
        assert user in step.notes

    return check


def refusal_showing_nothing_of(name: str, *withheld: str) -> Callable[[Step], None]:
    def check(step: Step) -> None:
        answers = [c for c in step.calls if c.method in PRIVATE and c.text.strip()]
        assert answers, "no answer at all"
        everything = "".join(c.text for c in step.calls)
        for secret in (name, *withheld):
            assert secret not in everything
        assert not any(c.buttons for c in step.calls)  # no card, nothing to click

    return check


def direct_message_card(name: str) -> Callable[[Step], None]:
    def check(step: Step) -> None:
        posted = step.cards_for(name, {"chat.postMessage"})
        dms = [c for c in posted if c.where.startswith("channel D")]
        assert dms, f"no card for {name} in a direct message"

    return check


def home_with_recent_lookup(identity: str) -> Callable[[Step], None]:
    def check(step: Step) -> None:
        homes = [c for c in step.calls if c.method == "views.publish"]
        assert homes and identity in homes[-1].text

    return check


#: Every step of the README's tour, in order, with what it must show.
STEPS: list[tuple[str, Callable[[Step], None]]] = [
    ("/customer jane.doe@example.com", private_card("Jane Doe", with_button="Share")),
    ("click Share", share_modal),
    ("submit Escalation review", posted_card("Jane Doe", channel="C0PRIVATE")),
    ("click View details", private_card("Jane Doe")),
    ("shortcut Can you check on CRM-000123 and +31 6 12345678?", picker_saying_how_to_pick),
    ("pick 2", private_card("Sanne de Vries")),
    (
        "mention who is hostile@example.com",
        posted_card("<!channel> *bold*", channel="C0PRIVATE", in_thread=True),
    ),
    ("as U0GUEST", acting_as("U0GUEST")),
    (
        "/customer jane.doe@example.com",
        refusal_showing_nothing_of("Jane Doe", "+14155550123", "CRM-000123"),
    ),
    ("as U0AGENT", acting_as("U0AGENT")),
    ("find CRM-000123", direct_message_card("Jane Doe")),
    ("home", home_with_recent_lookup("CRM-000123")),
]


def test_the_tour_in_the_readme_is_the_one_checked_here() -> None:
    block = [line for line in tour_block() if line.strip()]
    strays = [line for line in block if not line.startswith(("> ", "#"))]
    assert not strays, f"tour lines that are neither a step (> ) nor a comment (#): {strays}"
    assert tour_steps() == [step for step, _ in STEPS]


@pytest.fixture(scope="module")
def tour_output(tmp_path_factory: pytest.TempPathFactory) -> list[Step]:
    return split_steps(run_console(tmp_path=tmp_path_factory.mktemp("tour")).stdout)


@pytest.mark.parametrize(
    ("number", "step", "check"),
    [(n, step, check) for n, (step, check) in enumerate(STEPS)],
    ids=[f"{n + 1}: {step}" for n, (step, _) in enumerate(STEPS)],
)
def test_each_step_of_the_tour_shows_what_the_tour_says(
    tour_output: list[Step], number: int, step: str, check: Callable[[Step], None]
) -> None:
    assert len(tour_output) == len(STEPS)
    check(tour_output[number])


def test_the_tour_with_json_prints_only_json_lines_on_stdout(tmp_path: Path) -> None:
    result = run_console("--json", tmp_path=tmp_path)
    lines = result.stdout.splitlines()
    calls = [json.loads(line) for line in lines]  # every line, none skipped
    assert calls and all(set(call) == {"method", "payload"} for call in calls)
    assert any(call["method"] == "views.open" for call in calls)  # the whole tour ran
    # The console's own lines went to stderr: the echo of each step and its notes.
    assert "> pick 2" in result.stderr
    assert "U0GUEST" in result.stderr
    assert "pick 1" in result.stderr
    # The hostile customer's name is escaped in what is sent to Slack: it pings nobody.
    assert "<!channel>" not in result.stdout
