"""`main()` builds only the command its words name (custody.cli.main._pruned).

The other commands and groups are outlines: a name and a help text for a listing, no
parameters.  Nothing of that may show: every help text, usage error and exit code reads
exactly as the whole app gives it, an outline never runs (a wrong guess runs the whole
app), and shell completion sees every command.  No timing here: `make bench` measures
`cli_help_s`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
import typer.main
from conftest import CliResult, invoke
from typer.core import TyperGroup as Group

# The module (`custody.cli.main` is also the name of its function, in `custody.cli`).
cli_main = importlib.import_module("custody.cli.main")


def _paths(group: Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, Group):
            yield from _paths(command, (*prefix, name))


WHOLE = typer.main.get_command(cli_main.app)
assert isinstance(WHOLE, Group)
GROUPS = [p for p in _paths(WHOLE) if isinstance(WHOLE.commands[p[0]], Group) and len(p) == 1]
# Commands with and without arguments, at the top and in groups; the groups' own help
# is where the outlines are listed.
SAMPLES = [
    ("--help",),
    (),
    ("--version",),
    ("init", "--help"),
    ("show", "--help"),
    ("export", "--help"),
    ("log", "key", "--help"),
    ("handoff", "offer", "--help"),
    ("frob",),
    ("-q", "frob", "x"),
    ("lo",),
    ("log", "frob"),
    ("log", "key", "--bogus"),
    ("show",),
    ("handoff", "offer"),
    ("export", "C-1", "--to"),
    ("--quiet", "log", "--help"),
    *[(*group, "--help") for group in GROUPS],
    *[group for group in GROUPS],
]


def _whole(monkeypatch: pytest.MonkeyPatch, *args: str) -> CliResult:
    """`custody ARGS` through `main()`, with the whole app built as typer builds it."""
    with monkeypatch.context() as patch:
        patch.setattr(cli_main, "_app_for", lambda _args: WHOLE)
        return invoke(*args)


def test_there_are_groups_to_outline() -> None:
    assert len(GROUPS) >= 10 and ("log",) in GROUPS


@pytest.mark.parametrize("args", SAMPLES, ids=lambda a: " ".join(a) or "(none)")
def test_help_and_errors_read_as_the_whole_apps(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    pruned = invoke(*args)
    assert pruned.stdout or pruned.stderr  # something was said
    assert pruned == _whole(monkeypatch, *args)


def test_only_the_named_command_is_built() -> None:
    root = typer.main.get_command(cli_main._app_for(["-q", "log", "key"]))
    assert isinstance(root, Group)
    log = root.commands["log"]
    assert isinstance(log, cli_main._Group) and not isinstance(log, cli_main._OutlineGroup)
    assert not isinstance(log.commands["key"], cli_main._OutlineCommand)
    names = [p.name for p in log.commands["key"].params]
    whole_key = WHOLE.commands["log"].commands["key"]
    assert len(names) > 1 and names == [p.name for p in whole_key.params]
    others = [c for name, c in log.commands.items() if name != "key"]
    assert others and all(isinstance(c, cli_main._OutlineCommand) for c in others)
    assert isinstance(root.commands["init"], cli_main._OutlineCommand)
    assert isinstance(root.commands["case"], cli_main._OutlineGroup)
    # An outline lists as the command does, but has no parameters of its own.
    whole_init = WHOLE.commands["init"]
    assert root.commands["init"].get_short_help_str() == whole_init.get_short_help_str()
    assert [p.name for p in root.commands["init"].params] == ["quiet"]


def test_an_outline_never_runs_the_whole_app_does() -> None:
    # After `--` no word is taken for a command: `log` is an outline, which refuses to
    # run, and main() runs the whole app.
    root = typer.main.get_command(cli_main._app_for(["--", "log", "key"]))
    assert isinstance(root, Group)
    assert isinstance(root.commands["log"], cli_main._OutlineGroup)
    done = invoke("--", "log", "key", "--help")
    assert done.code == 0, done
    assert done.stdout.startswith("Usage: custody log key [OPTIONS]")


def test_shell_completion_gets_the_whole_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_CUSTODY_COMPLETE", "bash_complete")
    assert cli_main._app_for([]) is cli_main.app
