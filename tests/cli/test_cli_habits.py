"""The habits of a command-line tool (issue 13, items 4 and 5).

Progress on a terminal and never on a pipe (`custody.cli.common.Progress`); `--quiet`
before or after the subcommand; shell completion; help that names real metavars, marks
required options and lists the roles the code accepts.  The home is built once for the
module; the commands that show progress run in child processes, once with stderr on a
pseudo-terminal (python's `pty`) and once on a pipe.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clips
import pytest
import typer
from conftest import PASSPHRASE, invoke
from ptykit import RUN, run_on_pipes, run_on_pty
from typer._click.core import Context
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from custody.cli.main import _REQUIRED_IN_CODE, app

CASE = "2026-0142"
ITEM = f"{CASE}/0001"


@dataclass(frozen=True)
class World:
    """A home with an agency party 'bob', one ingested clip (CASE/0001), a checkpoint."""

    root: Path
    home: Path
    env: dict[str, str]
    log_key: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("habits")
    home = root / "home"
    env = {
        **os.environ,
        "CUSTODY_HOME": str(home),
        "CUSTODY_PASSPHRASE": PASSPHRASE,
        "CUSTODY_KDF_PROFILE": "fast",
        "CUSTODY_SEEN": str(root / "seen"),
        "TMPDIR": str(root),
    }
    for name in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY", "CUSTODY_DEBUG"):
        env.pop(name, None)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            if name.startswith("CUSTODY_"):
                mp.setenv(name, value)
        for name in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY", "CUSTODY_DEBUG"):
            mp.delenv(name, raising=False)

        def ok(*args: str) -> str:
            r = invoke(*args)
            assert r.code == 0, r
            return r.stdout

        ok("init", "--origin", "test.example/custody")
        ok("key", "new", "bob", "--role", "agency")
        ok("case", "new", CASE)
        clip = clips.make_clip(root / "footage" / "doorbell.mp4", seconds=4.0)
        ok("ingest", str(clip), "--case", CASE, "--by", "bob", "--legal-basis", "warrant")
        ok("log", "checkpoint")
        log_key = ok("log", "key").strip()
    yield World(root, home, env, log_key)


def _on_pty(world: World, *args: str) -> tuple[int, str, str]:
    return run_on_pty(world.env, *args)


def _on_pipe(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return run_on_pipes(world.env, *args)


# -- progress: on a terminal, with phases and real totals; never on a pipe ---------------------


def test_export_shows_its_phases_and_the_media_total_on_a_terminal(world: World) -> None:
    out = world.root / "bundle-tty"
    code, stdout, tty = _on_pty(world, "export", CASE, "--to", str(out), "--with-media")
    assert code == 0, tty
    assert f"exported case {CASE}" in stdout
    for phase in (
        "collecting entries, proofs and checkpoints",
        "writing the court report",
        "writing the bundle, copying media",
    ):
        assert f"export {CASE}: {phase}" in tty, tty
    # A real total: the clip's size, never `/?` (the issue's `media 12.0/? MB`).
    size_kb = (world.root / "footage" / "doorbell.mp4").stat().st_size / 1000
    assert re.search(r"/\s*" + f"{size_kb:.1f}" + r" kB", tty), tty
    assert "/?" not in tty


@pytest.fixture(scope="module")
def piped_export(world: World) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The case exported with stderr on a pipe: the bundle, and what the export printed."""
    out = world.root / "bundle"
    done = _on_pipe(world, "export", CASE, "--to", str(out), "--with-media")
    assert done.returncode == 0, done.stderr
    return out, done


def test_export_on_a_pipe_draws_nothing(
    piped_export: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = piped_export
    assert f"exported case {CASE}" in done.stdout
    assert "collecting" not in done.stderr and "copying media" not in done.stderr
    assert "\x1b[" not in done.stderr  # no cursor movement either


@pytest.fixture(scope="module")
def bundle(piped_export: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return piped_export[0]


def test_verify_bundle_shows_the_bytes_to_hash_on_a_terminal_only(
    world: World, bundle: Path
) -> None:
    media = sum(f.stat().st_size for f in (bundle / "media").iterdir() if f.is_file())
    code, stdout, tty = _on_pty(world, "verify-bundle", str(bundle), "--trust", world.log_key)
    assert code == 0, tty
    assert "VERIFIED" in stdout
    assert "verify-bundle: checking signatures and proofs, hashing media" in tty
    assert re.search(r"/\s*" + f"{media / 1000:.1f}" + r" kB", tty), tty
    piped = _on_pipe(world, "verify-bundle", str(bundle), "--trust", world.log_key)
    assert piped.returncode == 0, piped.stderr
    assert "hashing media" not in piped.stderr and "\x1b[" not in piped.stderr


def test_log_verify_and_derive_give_feedback_on_a_terminal_only(world: World) -> None:
    code, stdout, tty = _on_pty(world, "log", "verify")
    assert code == 0, tty
    assert "OK: the log verifies" in stdout
    size = int(re.search(r"(\d+) entries", stdout).group(1))  # type: ignore[union-attr]
    assert f"log verify: {size} entries" in tty
    assert "log verify:" not in _on_pipe(world, "log", "verify").stderr

    trim = ("derive", "trim", f"{CASE}/0001", "--start", "1", "--end", "2", "--by", "bob")
    code, stdout, tty = _on_pty(world, *trim, "--reason", "excerpt for the court")
    assert code == 0, tty
    assert "derived" in stdout
    assert f"derive trim {CASE}/0001: cutting the excerpt" in tty
    piped = _on_pipe(world, *trim, "--reason", "another excerpt", "--sha256")
    assert piped.returncode == 0, piped.stderr
    assert "cutting the excerpt" not in piped.stderr


def test_quiet_on_a_terminal_draws_no_progress(world: World) -> None:
    code, stdout, tty = _on_pty(world, "log", "verify", "-q")
    assert code == 0, tty
    assert "OK: the log verifies" in stdout  # what was asked for stays
    assert "log verify:" not in tty


# -- --quiet ---------------------------------------------------------------------------------


def test_quiet_silences_what_a_command_says_it_did_but_not_what_was_asked(
    world: World,
) -> None:
    for args in (
        ("-q", "case", "new", "Q-1"),
        ("case", "new", "Q-2", "--quiet"),
        ("--quiet", "key", "new", "quinn", "--role", "lab"),
    ):
        r = invoke(*args, "--home", str(world.home))
        assert r.code == 0, r
        assert r.stdout == "" and r.stderr == "", r
    listed = invoke("case", "list", "--home", str(world.home))
    assert "Q-1" in listed.stdout and "Q-2" in listed.stdout  # they were done
    # The output asked for stays: a key, a listing, JSON.
    assert invoke("-q", "log", "key", "--home", str(world.home)).stdout.strip() == world.log_key
    assert "quinn" in invoke("-q", "key", "list", "--home", str(world.home)).stdout
    made = invoke("-q", "case", "show", "Q-1", "--json", "--home", str(world.home))
    assert made.code == 0 and json.loads(made.stdout)


def test_quiet_keeps_errors_and_json_and_files_sent_to_stdout(world: World) -> None:
    bad = invoke("-q", "key", "new", "BAD", "--role", "lab", "--home", str(world.home))
    assert bad.code == 2
    assert bad.stderr.startswith("custody: error: party name 'BAD'"), bad
    clip = str(world.root / "footage" / "doorbell.mp4")
    again = ("ingest", clip, "--case", CASE, "--by", "bob", "--legal-basis", "warrant")
    said = invoke(*again, "-q", "--home", str(world.home))
    assert said.code == 0 and said.stdout == "" and said.stderr == "", said
    done = invoke(*again, "-q", "--json", "--home", str(world.home))
    assert done.code == 0, done
    assert json.loads(done.stdout)  # the JSON asked for stays
    assert done.stderr == ""
    # A file sent to stdout passes through --quiet: `key export` without --out, and the
    # footage of `open --out -` (a command whose own lines --quiet drops).
    exported = invoke("-q", "key", "export", "bob", "--home", str(world.home))
    assert exported.code == 0 and exported.stdout.startswith("custody/entry/v1"), exported
    opened = invoke(
        *("-q", "open", ITEM, "--by", "bob", "--purpose", "review", "--out", "-"),
        *("--home", str(world.home)),
    )
    assert opened.code == 0 and opened.stderr == "", opened
    assert opened.stdout_bytes == (world.root / "footage" / "doorbell.mp4").read_bytes()


def test_quiet_keeps_the_files_a_batch_could_not_take(world: World) -> None:
    link = world.root / "link.mp4"
    link.symlink_to(world.root / "footage" / "doorbell.mp4")
    r = invoke(
        *("-q", "ingest", str(link), "--case", CASE, "--by", "bob", "--legal-basis", "warrant"),
        *("--home", str(world.home)),
    )
    assert r.code == 3, r
    lines = r.stderr.splitlines()
    assert lines[0] == f"FAILED    {link}: {link} is a symbolic link", r
    assert lines[1].startswith("custody: error: 1 of 1 file(s) could not be ingested"), r
    assert "ingested, " not in r.stderr  # the summary line is what --quiet drops
    assert r.stdout == ""


def test_quiet_does_not_outlive_its_command(world: World) -> None:
    assert invoke("-q", "case", "new", "Q-3", "--home", str(world.home)).stdout == ""
    loud = invoke("case", "new", "Q-4", "--home", str(world.home))
    assert loud.code == 0 and "Q-4" in loud.stdout, loud


# -- completion ------------------------------------------------------------------------------


def test_shell_completion_is_offered_and_completes_commands_and_options() -> None:
    root_help = invoke("--help").stdout
    assert "--install-completion" in root_help and "--show-completion" in root_help
    env = {**os.environ, "_CUSTODY_COMPLETE": "complete_bash", "COMP_CWORD": "1"}
    words = subprocess.run(
        [sys.executable, "-c", RUN],
        env={**env, "COMP_WORDS": "custody verify-b"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert words.stdout.split() == ["verify-bundle"], words
    opts = subprocess.run(
        [sys.executable, "-c", RUN],
        env={**env, "COMP_WORDS": "custody handoff offer --pur", "COMP_CWORD": "3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert opts.stdout.split() == ["--purpose"], opts
    script = subprocess.run(
        [sys.executable, "-c", RUN, "--show-completion", "bash"],
        env={**os.environ, "SHELL": "/bin/bash"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0 and "_CUSTODY_COMPLETE" in script.stdout, script


# -- help: metavars, required options, roles -------------------------------------------------


def _commands() -> Iterator[tuple[str, TyperCommand]]:
    def walk(cmd: object, path: str) -> Iterator[tuple[str, TyperCommand]]:
        if isinstance(cmd, TyperGroup):
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{path} {name}".strip())
        elif isinstance(cmd, TyperCommand):
            yield path, cmd

    yield from walk(typer.main.get_command(app), "")


COMMANDS = dict(_commands())


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_names_real_metavars_and_marks_required_options(path: str) -> None:
    r = invoke(*path.split(), "--help")
    assert r.code == 0, r
    text = r.stdout
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: custody {path} [OPTIONS]"), usage
    # No typer type markers (`<str>`, `<list[str]>`, `<int range>`) and no `{name}`.
    assert not re.search(r"<[a-z][\w ]*(\[[^\]]*\])?>", text), text
    assert "{" not in usage, usage
    assert "9223372036854775807" not in text  # a log index's bound reads [x>=0]
    command = COMMANDS[path]
    ctx = Context(command, info_name=path)
    for p in command.params:
        record = p.get_help_record(ctx)
        if record is None:
            continue
        names, helptext = record
        if isinstance(p, TyperOption) and not p.is_flag:
            # `--to PARTY`: a metavar in capitals (or a literal choice like html|pdf).
            assert re.fullmatch(r"(-\w, )?--[\w-]+ [A-Z0-9_.,:|\[\]-]+(\.\.\.)?|.*\|.*", names), (
                path,
                names,
            )
        if isinstance(p, TyperArgument):  # ITEM, [PATH]..., or literal words first
            assert re.fullmatch(r"(\[[a-z|]+\] )?\[?[A-Z0-9_|.]+\]?(\.\.\.)?", names), names
        opt = max(p.opts, key=len) if isinstance(p, TyperOption) else None
        if p.required or (path, opt) in _REQUIRED_IN_CODE:
            assert "[required" in helptext or "; required" in helptext, (path, names, helptext)


def _bare_run(*args: str) -> tuple[int, str]:
    r = invoke(*args)
    return r.code, r.stderr


@pytest.mark.parametrize(
    ("path", "args", "missing"),
    [
        ("derive trim", (ITEM, "--end", "2", "--by", "bob", "--reason", "r"), "--start"),
        ("derive trim", (ITEM, "--start", "1", "--by", "bob", "--reason", "r"), "--end"),
        ("derive redact", (ITEM, "--by", "bob", "--reason", "r"), "--box"),
        ("derive transcode", (ITEM, "--by", "bob", "--reason", "r"), "--codec"),
        ("ingest", ("x.mp4", "--by", "bob", "--legal-basis", "warrant"), "--case"),
        ("transparency", ("--to", "2026-01-31", "--out", "t.json"), "--from"),
        ("transparency", ("--from", "2026-01-01", "--out", "t.json"), "--to"),
        ("transparency", ("--from", "2026-01-01", "--to", "2026-01-31"), "--out"),
    ],
)
def test_what_help_marks_required_is_required(
    world: World, path: str, args: tuple[str, ...], missing: str
) -> None:
    assert (path, missing) in _REQUIRED_IN_CODE  # so its --help says [required]
    code, err = _bare_run(*path.split(), *args, "--home", str(world.home))
    assert code == 2, err
    assert err.startswith(f"custody: error: {missing} is required"), err


def test_request_answer_needs_consent_or_decline_as_its_help_says(world: World) -> None:
    assert ("request answer", "--consent") in _REQUIRED_IN_CODE
    assert ("request answer", "--decline") in _REQUIRED_IN_CODE
    args = ("request", "answer", "req.json", "--out", "ans", "--home", str(world.home))
    for given in ((), ("--consent", "--decline")):
        code, err = _bare_run(*args, *given)
        assert code == 2, err
        assert err.startswith("custody: error: give exactly one of --consent and --decline")


@pytest.mark.parametrize("path", ["derive trim", "derive redact", "derive transcode"])
def test_derive_needs_a_reason_as_its_help_says(world: World, path: str) -> None:
    extra = {
        "derive trim": ("--start", "1", "--end", "2"),
        "derive redact": ("--box", "10,10,40,30"),
        "derive transcode": ("--codec", "libx264"),
    }[path]
    home = ("--home", str(world.home))
    code, err = _bare_run(*path.split(), ITEM, *extra, "--by", "bob", *home)
    assert code == 2, err
    assert err.startswith("custody: error: --reason is required"), err
    assert (path, "--reason") in _REQUIRED_IN_CODE


def test_the_role_help_lists_the_roles_the_code_accepts(world: World) -> None:
    from custody.cli.keys import PARTY_ROLES
    from custody.model.types import ROLES

    assert PARTY_ROLES == ROLES
    text = " ".join(invoke("key", "new", "--help").stdout.split())
    listed = re.search(r"The party's role: ([a-z, ]+) or ([a-z]+)\.", text)
    assert listed is not None, text
    assert (*listed.group(1).split(", "), listed.group(2)) == ROLES
    # A role outside them (the key file's 'log', the log key's own) is a usage error
    # naming the same list, before anything is written.
    code, err = _bare_run("key", "new", "lou", "--role", "log", "--home", str(world.home))
    assert code == 2, err
    assert f"is not one of: {', '.join(ROLES)}" in err
    assert not (world.home / "keys" / "lou.key").exists()
