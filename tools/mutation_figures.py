"""`make mutants` ends here: the figures of the last mutation run, per module, as MUTATION.md
records them.

mutmut 3 keeps each mutant's verdict in `mutants/<path>.meta` (JSON: `exit_code_by_key`). This
reads those files and prints one Markdown row per module: mutants, killed by a test, rejected by
mypy (mutmut's "caught by type check": a mutant the strict type check of `make test` rejects
could not land), timeouts (counted as detected, as mutmut counts them), survived, no tests, not
checked, and the share detected of the mutants checked. `--survivors` lists every mutant that
was not detected, `--functions` breaks the rows down per function.

    python tools/mutation_figures.py [--functions] [--survivors] [GLOB ...]

GLOB are mutmut's name globs (`'bot.answers.*'`), as `make mutants` passes them: only those
mutants count (a module narrowed to some functions is not reported as unchecked elsewhere).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path

#: mutmut 3's exit codes (mutmut/stats.py), folded into the columns of MUTATION.md.
STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    None: "not checked",
    34: "skipped",
    36: "timeout",
    37: "mypy",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
}
COLUMNS = ("killed", "mypy", "timeout", "survived", "no tests", "not checked", "other")
DETECTED = ("killed", "mypy", "timeout")
UNDETECTED = ("survived", "no tests", "other")


def _status(code: object) -> str:
    if code is None or isinstance(code, int):
        return STATUS_BY_EXIT_CODE.get(code, "other")
    return "other"


def read_verdicts(root: Path) -> dict[str, str]:
    """Every mutant's name and status, from the meta files under `root` (mutants/)."""
    verdicts: dict[str, str] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data.get("exit_code_by_key", {}).items():
            verdicts[name] = _status(code)
    return verdicts


def group_of(name: str, *, functions: bool) -> str:
    """`bot.answers.x_flexpane__mutmut_3` -> `bot.answers` (or `bot.answers.x_flexpane`)."""
    function = name.rsplit("__mutmut_", 1)[0]
    if functions:
        return function
    module, _, _ = function.rpartition(".")
    return module


def table(verdicts: dict[str, str], *, functions: bool) -> list[str]:
    counts: dict[str, Counter[str]] = {}
    for name, status in verdicts.items():
        counts.setdefault(group_of(name, functions=functions), Counter())[status] += 1
    lines = [
        "| module | mutants | killed by a test | rejected by mypy | timeout | survived | no tests"
        " | not checked | other | detected % of checked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group in sorted(counts):
        c = counts[group]
        total = sum(c.values())
        checked = total - c["not checked"]
        detected = sum(c[s] for s in DETECTED)
        share = f"{100 * detected / checked:.1f}" if checked else "-"
        cells = " | ".join(str(c[column]) for column in COLUMNS)
        lines.append(f"| {group} | {total} | {cells} | {share} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("globs", nargs="*", help="only mutants matching these name globs")
    parser.add_argument("--root", type=Path, default=Path("mutants"), help="mutmut's folder")
    parser.add_argument("--functions", action="store_true", help="one row per function")
    parser.add_argument("--survivors", action="store_true", help="list undetected mutants")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"{args.root}/ does not exist: run `make mutants` first.", file=sys.stderr)
        return 2
    verdicts = {
        name: status
        for name, status in read_verdicts(args.root).items()
        if not args.globs or any(fnmatchcase(name, glob) for glob in args.globs)
    }
    print("\n".join(table(verdicts, functions=args.functions)))
    if args.survivors:
        print()
        for name, status in sorted(verdicts.items()):
            if status in UNDETECTED:
                print(f"{status}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
