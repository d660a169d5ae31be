"""Ingest, derive and report under faults: a full disk, refused files, crashes at every
named step of the evidence store, leftovers of killed runs, concurrent ingests, hostile
manifests and file names (issue 9: findings 3, 6, 7, 10, 11)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import clips
import mounts
import pytest
from conftest import CliRunnerNS, invoke

CASE = "C-9"
CUSTODY = [sys.executable, "-c", "import sys; from custody.cli import main; main(sys.argv[1:])"]


def custody(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process (a crash point ends the process, not pytest)."""
    env = dict(os.environ)
    env.pop("CUSTODY_CRASH_AT", None)
    if crash_at is not None:
        env["CUSTODY_CRASH_AT"] = crash_at
    return subprocess.run(
        [*CUSTODY, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fault-footage")
    return {
        "clip": clips.make_clip(d / "doorbell.mp4", seconds=2.0),
        "truncated": clips.truncate(clips.make_clip(d / "whole.mp4"), d / "cut.mp4", 0.6),
        "notes": clips.write_sidecar_json(d / "export-info.json"),
    }


@pytest.fixture
def agency(cli: type[CliRunnerNS], home: Path) -> Path:
    cli.run("case", "new", CASE)
    return home


def ingest(*args: str) -> tuple[int, list[dict[str, object]], str]:
    r = invoke("ingest", *args, "--case", CASE, "--by", "bob", "--legal-basis", "warrant", "--json")
    return r.code, [json.loads(line) for line in r.stdout.splitlines() if line.strip()], r.stderr


def store_files(home: Path, folder: str) -> list[Path]:
    root = home / "vault" / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def assert_clean(home: Path) -> None:
    """Nothing half-done in the store, and the store matches the log."""
    assert store_files(home, "staging") == []
    assert store_files(home, "tmp") == []
    r = invoke("vault", "check", "--json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["ok"] is True
    assert invoke("log", "verify").code == 0


# -- a full disk (finding 3) ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 6 MiB tmpfs holding the custody home (skipped, visibly, where none can be mounted)."""
    with mounts.small_disk(tmp_path / "disk", "6m") as disk:
        monkeypatch.setenv("CUSTODY_HOME", str(disk / "home"))
        yield disk


def fill(disk: Path) -> None:
    """Fill the disk up to its last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_stops_the_batch_cleanly_naming_the_disk(
    cli: type[CliRunnerNS],
    small_disk: Path,
    footage: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The database on another disk: the evidence store is what fills up here (a full
    # database disk is the store's NoSpaceError, and stops a batch the same way).
    monkeypatch.setenv("CUSTODY_DB", f"sqlite:///{tmp_path}/custody.db")
    cli.run("init", "--origin", "test.example/custody")
    cli.run("key", "new", "bob", "--role", "agency")
    cli.run("case", "new", CASE)
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a-small.json").write_text('{"camera": "front"}')
    (batch / "b-big.bin").write_bytes(os.urandom(8 * 1024 * 1024))  # more than the disk
    (batch / "c-small.json").write_text('{"camera": "back"}')
    r = invoke(
        "ingest", str(batch), "--case", CASE, "--by", "bob", "--legal-basis", "warrant",
        "--jobs", "1",
    )  # fmt: skip
    assert r.code == 3, r
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    vault = small_disk / "home" / "vault"
    assert f"custody: error: no space left on the disk holding {vault}: " in r.stderr
    assert "stopped after 2 of 3 file(s) (1 ingested, 0 already ingested, 1 failed)" in r.stderr
    assert "1 not attempted" in r.stderr
    assert "ingested  C-9/0001" in r.stdout and "a-small.json" in r.stdout
    assert "FAILED" in r.stderr and "b-big.bin" in r.stderr
    # Only the file that was done is in the store; nothing partial anywhere.
    home = small_disk / "home"
    assert len(store_files(home, "objects")) == 1
    assert_clean(home)
    # Space again: the same command finishes the job.
    (batch / "b-big.bin").write_bytes(os.urandom(1024 * 1024))
    r = invoke(
        "ingest", str(batch), "--case", CASE, "--by", "bob", "--legal-basis", "warrant",
        "--json",
    )  # fmt: skip
    assert r.code == 0, r
    assert [json.loads(x)["status"] for x in r.stdout.splitlines()] == [
        "already",
        "ingested",
        "ingested",
    ]
    assert_clean(home)


def test_derive_and_report_on_a_full_disk_name_the_disk(
    cli: type[CliRunnerNS],
    small_disk: Path,
    footage: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The database on another disk, so that what fills up is where ffmpeg renders
    # (the database's own full-disk errors are the store's, tested with it).
    monkeypatch.setenv("CUSTODY_DB", f"sqlite:///{tmp_path}/custody.db")
    cli.run("init", "--origin", "test.example/custody")
    cli.run("key", "new", "bob", "--role", "agency")
    cli.run("case", "new", CASE)
    code, rows, _ = ingest(str(footage["clip"]))
    assert code == 0 and rows[0]["status"] == "ingested"
    home = small_disk / "home"
    fill(small_disk)
    r = invoke(
        "derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1", "--by", "bob",
        "--reason", "jury copy",
    )  # fmt: skip
    assert r.code == 3, r
    assert r.stderr.startswith("custody: error: no space left on the disk holding "), r
    assert str(home) in r.stderr and "Traceback" not in r.stderr
    assert not list(home.glob(".derive-*"))
    out = small_disk / "report.html"
    r = invoke("report", CASE, "--out", str(out))
    assert r.code == 3, r
    assert f"no space left on the disk holding {small_disk}: cannot write the report" in r.stderr
    assert not out.exists() and not list(small_disk.glob(".report.html.*"))
    os.unlink(small_disk / "filler")
    assert_clean(home)


# -- nothing enters the store without its entry (finding 6) ----------------------------------


def test_refused_files_leave_nothing_in_the_store(
    agency: Path, footage: dict[str, Path], tmp_path: Path
) -> None:
    # Damaged media: refused while it is measured, before any entry.
    code, rows, _ = ingest(str(footage["truncated"]))
    assert code == 3 and rows[0]["status"] == "failed"
    # A reference the entry format cannot hold: refused at the append.
    code, rows, _ = ingest(str(footage["notes"]), "--ref", "W-1\x1b[2J")
    assert code == 3 and rows[0]["status"] == "failed", rows
    code, rows, _ = ingest(str(footage["notes"]), "--source", " padded ")
    assert code == 3 and rows[0]["status"] == "failed", rows
    assert store_files(agency, "objects") == []
    assert_clean(agency)


def test_vault_check_lists_objects_without_entries_and_entries_without_objects(
    cli: type[CliRunnerNS], agency: Path, footage: dict[str, Path], tmp_path: Path
) -> None:
    code, rows, _ = ingest(str(footage["clip"]), str(footage["notes"]))
    assert code == 0
    r = cli.run("vault", "check")
    assert "OK: evidence store" in r.stdout and "2 object(s), 2 exhibit(s)" in r.stdout
    # An object no entry names (as an older custody left for a refused file) ...
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"never ingested")
    import blake3

    digest = blake3.blake3(stray.read_bytes()).hexdigest()
    orphan = agency / "vault" / "objects" / digest[:2] / digest
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(stray.read_bytes())
    # ... and an exhibit whose object is gone.
    notes = str(rows[1]["blake3"])
    lost = agency / "vault" / "objects" / notes[:2] / notes
    lost.unlink()
    r = cli.fail(1, "vault", "check")
    assert f"object without entry: {digest}" in r.stdout
    assert f"entry without object: exhibit {CASE}/0002  {notes}" in r.stdout
    assert "2 problem(s)" in r.stderr
    r = invoke("vault", "check", "--json")
    assert r.code == 1
    found = json.loads(r.stdout)
    assert found["ok"] is False and found["objects_without_entries"] == [digest]
    assert found["entries_without_objects"] == [
        {"exhibit": f"{CASE}/0002", "item": notes, "name": footage["notes"].name, "staged": False}
    ]
    # --repair quarantines the stray object (kept, out of objects/); the lost one stays
    # a problem until restored, here by ingesting the original file again.
    r = invoke("vault", "check", "--repair")
    assert r.code == 1 and f"quarantined {digest}" in r.stdout
    assert (agency / "vault" / "quarantine" / digest).is_file() and not orphan.exists()
    code, rows, _ = ingest(str(footage["notes"]))
    assert code == 0 and rows[0]["status"] == "already" and lost.is_file()
    assert_clean(agency)


# -- crash points of ingest and derive (findings 6, 7; the crash harness) --------------------


def _staged(home: Path) -> list[Path]:
    return store_files(home, "staging")


@pytest.mark.parametrize(
    ("point", "committed", "staged", "placed"),
    [
        ("ingest.object-staged", False, True, False),
        ("ingest.entry-committed", True, True, False),
        ("ingest.object-placed", True, False, True),
    ],
)
def test_a_crash_at_each_ingest_step_loses_nothing_and_leaves_nothing(
    agency: Path,
    footage: dict[str, Path],
    point: str,
    committed: bool,
    staged: bool,
    placed: bool,
) -> None:
    args = ("ingest", str(footage["clip"]), "--case", CASE, "--by", "bob")
    args += ("--legal-basis", "warrant", "--json")
    r = custody(*args, crash_at=point)
    assert r.returncode == 137, r
    size = json.loads(invoke("log", "verify", "--json").stdout)["size"]
    assert size == (3 if committed else 2)  # two key entries (a case has none), one ingest
    assert bool(_staged(agency)) == staged
    assert bool(store_files(agency, "objects")) == placed
    # An object never exists without its entry, even right after the crash.
    assert placed <= committed
    r = custody(*args)
    assert r.returncode == 0, r
    status = json.loads(r.stdout)["status"]
    assert status == ("already" if committed else "ingested")
    assert json.loads(invoke("log", "verify", "--json").stdout)["size"] == 3
    assert len(store_files(agency, "objects")) == 1
    assert_clean(agency)


@pytest.mark.parametrize(
    ("point", "committed"), [("derive.child-staged", False), ("derive.entry-committed", True)]
)
def test_a_crash_at_each_derive_step_loses_nothing_and_leaves_nothing(
    agency: Path, footage: dict[str, Path], point: str, committed: bool
) -> None:
    assert ingest(str(footage["clip"]))[0] == 0
    args = ("derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1")
    args += ("--by", "bob", "--reason", "jury copy", "--json")
    r = custody(*args, crash_at=point)
    assert r.returncode == 137, r
    assert json.loads(invoke("log", "verify", "--json").stdout)["size"] == (4 if committed else 3)
    assert len(_staged(agency)) == 1 and len(store_files(agency, "objects")) == 1
    assert not list(agency.glob(".derive-*"))
    r = custody(*args)
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["status"] == ("already" if committed else "derived")
    assert json.loads(invoke("log", "verify", "--json").stdout)["size"] == 4
    assert len(store_files(agency, "objects")) == 2
    assert_clean(agency)


def test_a_crash_after_the_report_is_written_leaves_the_report_and_no_temp_file(
    agency: Path, footage: dict[str, Path], tmp_path: Path
) -> None:
    assert ingest(str(footage["notes"]))[0] == 0
    out = tmp_path / "r.html"
    r = custody("report", CASE, "--out", str(out), crash_at="report.written")
    assert r.returncode == 137, r
    assert out.read_bytes().startswith(b"<!DOCTYPE html>") or b"<html" in out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".r.html")) == []
    r = custody("report", CASE, "--out", str(out))
    assert r.returncode == 0, r


# -- leftovers of killed runs (finding 7) -------------------------------------------------------


def test_leftovers_of_killed_derives_and_reports_are_reclaimed(
    agency: Path, footage: dict[str, Path], tmp_path: Path
) -> None:
    assert ingest(str(footage["clip"]))[0] == 0
    # What SIGKILL left: an unlocked work folder and temp report; one a live run holds.
    dead = agency / ".derive-killed"
    dead.mkdir()
    (dead / "doorbell.trim.mp4").write_bytes(b"half a render")
    live = agency / ".derive-running"
    live.mkdir()
    held = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)
    out = tmp_path / "court.html"
    stale = tmp_path / ".court.html.4242.tmp"
    stale.write_bytes(b"<html>half")
    try:
        r = invoke(
            "derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1",
            "--by", "bob", "--reason", "jury copy",
        )  # fmt: skip
        assert r.code == 0, r
        assert not dead.exists() and live.is_dir()
        assert invoke("report", CASE, "--out", str(out)).code == 0
        assert out.is_file() and not stale.exists()
    finally:
        os.close(held)
    assert_clean(agency)


def test_a_kill_during_a_derive_leaves_only_what_the_next_run_reclaims(
    agency: Path, footage: dict[str, Path]
) -> None:
    assert ingest(str(footage["clip"]))[0] == 0
    args = [*CUSTODY, "derive", "redact", f"{CASE}/0001", "--box", "0,0,40,40"]
    args += ["--by", "bob", "--reason", "faces"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the render has started in its work folder, then stop the run.
    for _ in range(400):
        if list(agency.glob(".derive-*")) or proc.poll() is not None:
            break
        subprocess.run(["sleep", "0.01"], check=True)
    proc.kill()
    proc.wait(timeout=30)
    r = invoke("derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1", "--by", "bob",
               "--reason", "jury copy")  # fmt: skip
    assert r.code == 0, r
    assert not list(agency.glob(".derive-*"))
    assert_clean(agency)


# -- acceptance, names, manifests, concurrency (findings 10, 11) ---------------------------------


def test_one_acceptance_rule_for_files_named_as_media(agency: Path, tmp_path: Path) -> None:
    """A name with an audio or video extension must be footage, whatever the bytes."""
    (tmp_path / "text.mp4").write_text("this is a note, not a video\n")
    (tmp_path / "random.mp4").write_bytes(os.urandom(4096))
    (tmp_path / "note.txt").write_text("this is a note\n")
    code, rows, _ = ingest(*(str(tmp_path / n) for n in ("text.mp4", "random.mp4", "note.txt")))
    assert code == 3
    text, random, note = rows
    assert text["status"] == random["status"] == "failed"
    assert "text.mp4 is named as audio or video (.mp4) but is not footage" in str(text["error"])
    assert "random.mp4 is not decodable media" in str(random["error"])
    assert note["status"] == "ingested" and note["kind"] == "attachment"
    assert len(store_files(agency, "objects")) == 1
    assert_clean(agency)


def test_unusual_names_are_recorded_escaped_with_their_raw_bytes(
    cli: type[CliRunnerNS], agency: Path, tmp_path: Path
) -> None:
    folder = os.fsencode(tmp_path / "export")
    os.mkdir(folder)
    names = [b"line\nbreak.txt", b"caf\xe9.txt", b" lead\\trail .txt", b"plain.txt"]
    for n, raw in enumerate(names):
        with open(folder + b"/" + raw, "wb") as f:
            f.write(f"file {n}".encode())
    code, rows, _ = ingest(os.fsdecode(folder))
    assert code == 0 and [r["status"] for r in rows] == ["ingested"] * 4, rows
    by_name = {}
    for row in rows:
        entry = cli.run("log", "entry", str(row["index"])).stdout
        fields = dict(
            line.split(" ", 1) for line in entry.split("\n\n")[0].splitlines()[1:] if " " in line
        )
        by_name[fields["name"]] = fields.get("name-bytes")
    # A leading space is escaped (an entry value has none), the inner one kept; a
    # backslash is doubled, so that every \\xNN in an escaped name is a byte.
    assert by_name == {
        "line\\x0abreak.txt": b"line\nbreak.txt".hex(),
        "caf\\xe9.txt": b"caf\xe9.txt".hex(),
        "\\x20lead\\\\trail .txt": b" lead\\trail .txt".hex(),
        "plain.txt": None,
    }
    for raw in names:
        assert invoke("verify", os.fsdecode(folder + b"/" + raw)).code == 0
    assert_clean(agency)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("nested.json", b"[" * 100_000, "is nested too deeply"),
        ("digits.json", b'[{"path": "a", "source": ' + b"9" * 5000 + b"}]", "is not valid JSON"),
        ("wide.csv", b'path\n"' + b"a" * 200_000 + b'"\n', "is not valid CSV"),
    ],
    ids=["100000 [", "5000 digits", "CSV field over csv's limit"],
)
def test_a_hostile_manifest_is_a_one_line_input_error(
    cli: type[CliRunnerNS], agency: Path, tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    manifest = tmp_path / name
    manifest.write_bytes(content)
    r = cli.fail(
        3, "ingest", "--manifest", str(manifest), "--case", CASE, "--by", "bob",
        "--legal-basis", "warrant",
    )  # fmt: skip
    assert f"manifest {manifest} {needle}" in r.stderr
    assert "internal error" not in r.stderr


def test_a_manifest_path_too_long_for_the_file_system_is_refused_by_name(
    agency: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "long.json"
    manifest.write_text(json.dumps([{"path": "a" * 5000}]))
    code, rows, err = ingest("--manifest", str(manifest))
    assert code == 3 and rows[0]["status"] == "failed", (rows, err)
    assert "File name too long" in str(rows[0]["error"]) and "internal error" not in err


def test_ingest_without_a_legal_basis_is_a_usage_error(
    cli: type[CliRunnerNS], agency: Path, footage: dict[str, Path], tmp_path: Path
) -> None:
    r = cli.fail(2, "ingest", str(footage["notes"]), "--case", CASE, "--by", "bob")
    assert "--legal-basis is required" in r.stderr
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,legal_basis\n{footage['notes']},warrant\n{footage['clip']},\n")
    r = cli.fail(2, "ingest", "--manifest", str(manifest), "--case", CASE, "--by", "bob")
    assert "--legal-basis is required (1 manifest row(s) give none)" in r.stderr
    assert store_files(agency, "objects") == []


def test_four_concurrent_ingests_of_one_folder_report_already_ingested(
    agency: Path, footage: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for n in range(6):
        (folder / f"meta{n}.json").write_text(json.dumps({"n": n}))
    (folder / "clip.mp4").write_bytes(footage["clip"].read_bytes())
    args = ["ingest", str(folder), "--case", CASE, "--by", "bob", "--legal-basis", "warrant"]
    procs = [
        subprocess.Popen(
            [*CUSTODY, *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    statuses: dict[str, list[str]] = {}
    for (out, err), p in zip(results, procs, strict=True):
        assert p.returncode == 0, (out, err)
        assert "UNIQUE" not in out + err
        for row in map(json.loads, out.splitlines()):
            statuses.setdefault(Path(row["path"]).name, []).append(row["status"])
    assert len(statuses) == 7
    for runs in statuses.values():
        assert sorted(runs) == ["already", "already", "already", "ingested"], statuses
    items = json.loads(invoke("case", "show", CASE, "--json").stdout)["items"]
    assert len(items) == 7
    assert_clean(agency)
