"""The README's command table against the live `--help` (issue 13, item 4).

Every command `custody --help` lists (recursively, down to the commands that run) has a
row in README.md's "Commands" table; every command a row names exists; every option a
row lists exists on the command it is written after.  A row's first cell holds one or
more invocations in backticks, each starting with a command (`custody log prove INDEX
[--size N]`, or `log entry INDEX` after the first, the `custody` left out).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from conftest import invoke
from typer.core import TyperCommand, TyperGroup

from custody.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w-])")


def live_commands() -> dict[str, set[str]]:
    """Every command that runs, by its path ("log prove"), with the options it takes."""

    def walk(cmd: object, path: str) -> Iterator[tuple[str, set[str]]]:
        if isinstance(cmd, TyperGroup):
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{path} {name}".strip())
        elif isinstance(cmd, TyperCommand):
            opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o[:1] == "-"}
            yield path, opts | {"--help"}

    return dict(walk(typer.main.get_command(app), ""))


def table_rows(text: str) -> list[tuple[int, str]]:
    """The first cell of each row of the "## Commands" table, with its line number."""
    lines = text.splitlines()
    start = lines.index("## Commands")
    rows: list[tuple[int, str]] = []
    for n, line in enumerate(lines[start + 1 :], start + 2):
        if line.startswith("## "):
            break
        if not line.startswith("| ") or line.startswith(("| command ", "|---")):
            continue
        # The first cell ends at the first `|` outside backticks that is not escaped.
        cell, ticks = [], False
        for i, ch in enumerate(line[2:]):
            if ch == "`":
                ticks = not ticks
            if ch == "|" and not ticks and line[2:][i - 1] != "\\":
                break
            cell.append(ch)
        rows.append((n, "".join(cell).strip()))
    return rows


def invocations(cell: str, commands: dict[str, set[str]]) -> Iterator[tuple[str, str, str]]:
    """(the span, the command it names, what follows the command) for each backtick span of
    a cell; a span that names no command gives "" as its command."""
    for span in re.findall(r"`([^`]+)`", cell):
        words = span.split()
        if words and words[0] == "custody":
            words = words[1:]
        named = ""
        for k in range(len(words), 0, -1):
            if " ".join(words[:k]) in commands:
                named = " ".join(words[:k])
                break
        rest = " ".join(words[len(named.split()) :]) if named else span
        yield span, named, rest


@pytest.fixture(scope="module")
def readme_rows() -> list[tuple[int, str]]:
    rows = table_rows(README.read_text())
    assert len(rows) > 20, "the README's command table was not found"
    return rows


def test_every_command_has_a_row(readme_rows: list[tuple[int, str]]) -> None:
    commands = live_commands()
    documented = {
        named for _, cell in readme_rows for _, named, _ in invocations(cell, commands) if named
    }
    missing = sorted(set(commands) - documented)
    assert missing == [], f"commands with no row in README.md's command table: {missing}"


def test_every_row_names_real_commands_and_their_options(
    readme_rows: list[tuple[int, str]],
) -> None:
    commands = live_commands()
    problems = []
    for line, cell in readme_rows:
        spans = list(invocations(cell, commands))
        if not spans:
            problems.append(f"README.md:{line}: the row names no command in backticks")
        for span, named, rest in spans:
            if not named:
                problems.append(f"README.md:{line}: `{span}` is not a custody command")
                continue
            for option in OPTION.findall(rest):
                if option not in commands[named]:
                    problems.append(
                        f"README.md:{line}: `custody {named}` has no option {option} (`{span}`)"
                    )
    assert problems == []


def test_the_readme_documents_quiet_and_completion() -> None:
    text = README.read_text()
    help_text = invoke("--help").stdout  # the root's own options
    for option in ("--quiet", "--install-completion", "--show-completion"):
        assert option in help_text
        assert f"`{option}" in text or f"{option}`" in text, f"README.md does not explain {option}"


def test_the_parser_catches_what_it_should() -> None:
    """The checks above would catch a wrong row: a made-up command, a made-up option."""
    commands = live_commands()
    spans = list(invocations("`custody log prove INDEX [--size N] [--bogus]`", commands))
    assert [(named, OPTION.findall(rest)) for _, named, rest in spans] == [
        ("log prove", ["--size", "--bogus"])
    ]
    assert "--bogus" not in commands["log prove"]
    assert [named for _, named, _ in invocations("`custody frobnicate X`", commands)] == [""]
    rows = table_rows("## Commands\n\n| command | what |\n|---|---|\n| `custody a \\| b` | x |\n")
    assert rows == [(5, "`custody a \\| b`")]
