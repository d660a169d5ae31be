"""custody.app.verifydir.audit_dir with several threads: the same results, in the walk's
order, as with one."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from custody.app import evidence, verifydir
from custody.app.home import Custody, Home, init
from custody.infra.vault import Vault

PASS = "audit"
CASE = "A-1"


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[Custody, Path]]:
    root = tmp_path / "home"
    init(Home.locate(root), "audit.example/log", lambda _p: PASS)
    originals = tmp_path / "originals"
    originals.mkdir()
    # Sizes in no order: a large file early, so later ones are hashed first.
    sizes = [20 << 20, 3, 70_000, 1, 5 << 20, 12, 400]
    for n, size in enumerate(sizes):
        (originals / f"f{n}.txt").write_bytes(f"{n}\n".encode() + os.urandom(size))
    with Custody.open(root) as c:
        c.new_key("bob", "agency", "Audit", lambda _p: PASS, datetime.now(UTC))
        evidence.new_case(c, CASE, "audit", datetime.now(UTC))
        signer = c.signer("bob", lambda _p: PASS)
        sources = [
            evidence.Source(p, legal_basis="warrant") for p in sorted(originals.iterdir())[:-1]
        ]
        outs = list(
            evidence.ingest(
                c, sources, case_id=CASE, by=signer, now=lambda: datetime.now(UTC), jobs=2
            )
        )
        assert {o.status for o in outs} == {"ingested"}
        folder = tmp_path / "folder"
        shutil.copytree(originals, folder / "a")
        (folder / "b").mkdir()
        os.rename(folder / "a" / "f2.txt", folder / "b" / "moved.txt")
        (folder / "a" / "f4.txt").write_bytes(b"other bytes under an exhibit's name")
        (folder / "b" / "link.txt").symlink_to(folder / "a" / "f0.txt")
        yield c, folder


def test_several_threads_give_the_same_results_in_the_same_order(
    audited: tuple[Custody, Path],
) -> None:
    c, folder = audited
    runs = {}
    for jobs in (1, 4):
        told: list[str] = []

        def tell(result: verifydir.FileResult, told: list[str] = told) -> None:
            told.append(result.path)

        audit = verifydir.audit_dir(c, folder, CASE, jobs=jobs, on_file=tell)
        rows = [
            (f.path, f.status, f.blake3, tuple(i.exhibit for i in f.items)) for f in audit.files
        ]
        assert told == [r[0] for r in rows]  # told as known, in the walk's order
        runs[jobs] = (rows, [m.exhibit for m in audit.missing], audit.summary())
    assert runs[1] == runs[4]
    rows, missing, summary = runs[4]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    statuses = {path: status for path, status, _, _ in rows}
    assert statuses["a/f0.txt"] == "matched" and statuses["b/moved.txt"] == "moved"
    assert statuses["a/f4.txt"] == "modified" and statuses["a/f6.txt"] == "new"
    assert statuses["b/link.txt"] == "skipped"
    assert missing == []
    assert summary.startswith("8 files: 4 matched, 1 moved, 1 modified, 1 new, 1 skipped")


def test_the_default_is_one_thread_per_core(
    audited: tuple[Custody, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, folder = audited
    seen: list[int] = []
    real = ThreadPoolExecutor

    def recording(workers: int, thread_name_prefix: str = "") -> ThreadPoolExecutor:
        seen.append(workers)
        return real(workers, thread_name_prefix=thread_name_prefix)

    monkeypatch.setattr(verifydir, "ThreadPoolExecutor", recording)
    verifydir.audit_dir(c, folder, CASE)
    assert seen == [max(1, os.cpu_count() or 1)]


def test_large_files_are_hashed_one_at_a_time(
    audited: tuple[Custody, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each hash maps a few windows of its file: large files in parallel would multiply
    # the memory, for no speed (BLAKE3 spreads one file over every core already).
    c, folder = audited
    monkeypatch.setattr(verifydir, "_LARGE", 100)
    lock = threading.Lock()
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    real = verifydir._audit_file

    def watched(vault: Vault, path: Path, *args: Any) -> verifydir.FileResult:
        large = path.stat().st_size > 100
        with lock:
            if large:
                if running:
                    overlaps.append((path.name, *running))
                running.append(path.name)
        try:
            return real(vault, path, *args)
        finally:
            with lock:
                if large:
                    running.remove(path.name)

    monkeypatch.setattr(verifydir, "_audit_file", watched)
    audit = verifydir.audit_dir(c, folder, CASE, jobs=4)
    assert len(audit.files) == 8 and overlaps == []
