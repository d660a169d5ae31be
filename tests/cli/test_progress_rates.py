"""Progress through files: batch ingest and `custody verify DIR` show how many files are done,
of how many, files/s and bytes/s, on a terminal only (issue #15).

The commands run in child processes with stderr on a pseudo-terminal (python's `pty`),
stdout on a pipe or on the same terminal; and once with both on pipes, where nothing is
drawn.  Nothing here is timed: the rates are read as they are printed, not judged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke
from ptykit import run_on_pipes, run_on_pty

from custody.cli.common import Progress, files_text

CASE = "2026-0150"
CLIPS = 3


@dataclass(frozen=True)
class World:
    """A home with party 'bob' and case CASE, and a folder of CLIPS clips not ingested yet."""

    root: Path
    footage: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("progress")
    env = {
        **os.environ,
        "CUSTODY_HOME": str(root / "home"),
        "CUSTODY_PASSPHRASE": PASSPHRASE,
        "CUSTODY_KDF_PROFILE": "fast",
        "TMPDIR": str(root),
    }
    for name in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY", "CUSTODY_DEBUG"):
        env.pop(name, None)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("CUSTODY_HOME", "CUSTODY_PASSPHRASE", "CUSTODY_KDF_PROFILE"):
            mp.setenv(name, env[name])
        for name in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY", "CUSTODY_DEBUG"):
            mp.delenv(name, raising=False)
        for args in (
            ("init", "--origin", "test.example/progress"),
            ("key", "new", "bob", "--role", "agency"),
            ("case", "new", CASE),
        ):
            r = invoke(*args)
            assert r.code == 0, r
    footage = root / "footage"
    first = clips.make_clip(footage / "cam-0.mp4", seconds=2.0)
    for i in range(1, CLIPS):
        clips.remux(first, footage / f"cam-{i}.mkv")
    yield World(root, footage, env)


def _on_pty(world: World, *args: str, stdout_too: bool = False) -> tuple[int, str, str]:
    return run_on_pty(world.env, *args, stdout_too=stdout_too)


def _on_pipes(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return run_on_pipes(world.env, *args)


def _sizes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


# A rate as rich and files_text print them: `12.3 files/s`, `4.5 MB/s` (or kB/s, bytes/s).
FILES_RATE = r"\d+\.\d files/s"
BYTES_RATE = r"\d+(\.\d)? ?(bytes|kB|MB|GB)/s"


def test_ingest_shows_files_and_bytes_and_their_rates_on_a_terminal(world: World) -> None:
    ingest = ("ingest", str(world.footage), "--case", CASE, "--by", "bob")
    code, stdout, tty = _on_pty(world, *ingest, "--legal-basis", "warrant", "--jobs", "2")
    assert code == 0, tty
    # What was ingested is on stdout, one line a file, as on a pipe.
    assert stdout.count("ingested  ") == CLIPS, stdout
    assert "ingest: hashing, storing, signing" in tty, tty
    assert re.search(rf"{CLIPS}/{CLIPS} files · {FILES_RATE}", tty), tty
    assert re.search(BYTES_RATE, tty), tty
    total_kb = _sizes(world.footage) / 1000
    assert re.search(r"/\s*" + f"{total_kb:.1f}" + r" kB", tty), tty
    # Re-run with stdout on the same terminal: the lines are printed above the progress.
    code, stdout, tty = _on_pty(world, *ingest, "--legal-basis", "warrant", stdout_too=True)
    assert code == 0, tty
    assert tty.count("already    ") == CLIPS, tty
    assert re.search(rf"{CLIPS}/{CLIPS} files", tty), tty


def test_ingest_on_pipes_or_quiet_draws_nothing(world: World, tmp_path: Path) -> None:
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(world.footage / "cam-0.mp4", more / "again.mp4")
    clips.make_clip(more / "new.mp4", seconds=1.0)
    ingest = ("ingest", str(more), "--case", CASE, "--by", "bob", "--legal-basis", "warrant")
    done = _on_pipes(world, *ingest)
    assert done.returncode == 0, done.stderr
    assert "files/s" not in done.stderr and "\x1b[" not in done.stderr
    assert "1 ingested, 1 already ingested, 0 failed" in done.stderr
    quiet = tmp_path / "quiet"
    clips.make_clip(quiet / "other.mp4", seconds=1.5)
    code, _, tty = _on_pty(world, *ingest[:1], str(quiet), *ingest[2:], "-q")
    assert code == 0, tty
    assert "files/s" not in tty and "hashing, storing" not in tty


def test_verify_dir_shows_files_and_bytes_on_a_terminal_only(world: World) -> None:
    code, stdout, tty = _on_pty(world, "verify", str(world.footage))
    assert code == 0, tty
    assert stdout.count("matched") >= CLIPS, stdout
    assert f"verify {world.footage}: hashing and matching files" in tty, tty
    assert re.search(rf"{CLIPS}/{CLIPS} files · {FILES_RATE}", tty), tty
    assert re.search(BYTES_RATE, tty), tty
    piped = _on_pipes(world, "verify", str(world.footage))
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == stdout
    assert "files/s" not in piped.stderr and "\x1b[" not in piped.stderr


def test_files_text_counts_and_rates() -> None:
    assert files_text(0, 200, None) == "0/200 files"
    assert files_text(123, 200, 2.0) == "123/200 files · 61.5 files/s"
    assert files_text(7, None, 0.5) == "7 files · 14.0 files/s"


def test_a_disabled_progress_prints_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal every method does nothing but `echo`, which prints as the command
    would: a result on stdout, a failure on stderr."""
    progress = Progress("ingest", enabled=False)
    with progress:
        progress.phase("hashing", 10, files=2)
        progress.advance(5)
        progress.file_done()
        progress.echo("ingested  2026-0150/0001")
        progress.echo("FAILED    x.mp4: unreadable", error=True)
    out, err = capsys.readouterr()
    assert out == "ingested  2026-0150/0001\n"
    assert err == "FAILED    x.mp4: unreadable\n"


# -- --jobs on the verifiers: the same answer whatever the number of workers ------------------


def test_verify_dir_gives_the_same_audit_with_any_jobs(world: World) -> None:
    runs = [_on_pipes(world, "verify", str(world.footage), "--jobs", n) for n in ("1", "3")]
    assert [r.returncode for r in runs] == [0, 0], runs
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.count("matched") >= CLIPS


def test_verify_bundle_gives_the_same_verdict_with_any_jobs(world: World) -> None:
    bundle = world.root / "bundle-jobs"
    done = _on_pipes(world, "export", CASE, "--to", str(bundle), "--with-media")
    assert done.returncode == 0, done.stderr
    key = _on_pipes(world, "log", "key").stdout.strip()
    verify = ("verify-bundle", str(bundle), "--trust", key)
    runs = [
        _on_pipes(world, *verify, "--seen", str(world.root / f"seen-{n}"), "--jobs", n)
        for n in ("1", "4")
    ]
    assert [r.returncode for r in runs] == [0, 0], runs
    assert "VERIFIED" in runs[0].stdout
    # On a terminal: how many media files it hashes, and bytes/s.
    seen = str(world.root / "seen-tty")
    code, _, tty = _on_pty(world, *verify, "--seen", seen)
    assert code == 0, tty
    sums = ("B3SUMS", "SHA256SUMS")
    exhibits = sum(1 for f in (bundle / "media").iterdir() if f.name not in sums)
    assert exhibits >= CLIPS
    assert f"hashing media ({exhibits} files)" in tty, tty
    assert re.search(BYTES_RATE, tty), tty
    assert runs[0].stdout.replace("seen-1", "seen-N") == runs[1].stdout.replace("seen-4", "seen-N")


@pytest.mark.parametrize("command", ["verify", "verify-bundle", "ingest"])
def test_jobs_must_be_at_least_one(world: World, command: str) -> None:
    done = _on_pipes(world, command, str(world.footage), "--jobs", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("custody: error: ") and "--jobs" in done.stderr
