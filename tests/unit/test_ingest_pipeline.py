"""custody.app.evidence.ingest: the pipeline of `jobs` workers and one serial appender.

Exhibit numbers follow the input order whatever order the workers finish in; only a few
files per worker are prepared ahead of the one being appended; a stop leaves nothing
staged; progress is told in bytes and in files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from custody.app import evidence
from custody.app.home import Custody, Home, init
from custody.infra.files import NoSpaceError
from custody.infra.vault import Staged, Vault
from custody.tlog.note import Signer

PASS = "pipeline"
CASE = "P-1"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Custody, Signer]]:
    root = tmp_path / "home"
    init(Home.locate(root), "pipeline.example/log", lambda _p: PASS)
    with Custody.open(root) as c:
        c.new_key("bob", "agency", "Pipeline", lambda _p: PASS, datetime.now(UTC))
        evidence.new_case(c, CASE, "pipeline", datetime.now(UTC))
        yield c, c.signer("bob", lambda _p: PASS)


def _files(folder: Path, sizes: list[int]) -> list[evidence.Source]:
    folder.mkdir()
    out = []
    for n, size in enumerate(sizes):
        path = folder / f"note{n:03d}.txt"
        path.write_bytes(f"file {n}\n".encode() + os.urandom(size))
        out.append(evidence.Source(path, legal_basis="warrant"))
    return out


def _ingest(
    home: tuple[Custody, Signer], sources: list[evidence.Source], **kw: object
) -> Generator[evidence.Outcome, None, None]:
    c, signer = home
    return evidence.ingest(
        c,
        sources,
        case_id=CASE,
        by=signer,
        now=lambda: datetime.now(UTC),
        **kw,  # type: ignore[arg-type]
    )


def _staging(c: Custody) -> list[Path]:
    folder = c.vault_root / "staging"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_exhibit_numbers_follow_the_input_order_with_several_jobs(
    home: tuple[Custody, Signer], tmp_path: Path
) -> None:
    # The first file is the largest: later ones are ready first.
    sources = _files(tmp_path / "in", [40 << 20, 10, 100_000, 5, 3 << 20, 7, 1, 20_000])
    outcomes = list(_ingest(home, sources, jobs=4))
    assert [o.path for o in outcomes] == [evidence.display(s.path) for s in sources]
    assert [o.status for o in outcomes] == ["ingested"] * len(sources)
    assert [o.exhibit for o in outcomes] == [f"{CASE}/{n:04d}" for n in range(1, 9)]
    indexes = [o.index or 0 for o in outcomes]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    c, _ = home
    for o, s in zip(outcomes, sources, strict=True):
        row = c.store.item_in_case(CASE, o.blake3 or "")
        assert row is not None and row.exhibit == o.exhibit and row.ingest_idx == o.index
        assert row.size == o.size == s.path.stat().st_size and o.kind == "attachment"
    assert _staging(c) == []


def test_a_re_run_is_already_ingested_and_appends_nothing(
    home: tuple[Custody, Signer], tmp_path: Path
) -> None:
    sources = _files(tmp_path / "in", [10, 20, 30, 40])
    first = list(_ingest(home, sources, jobs=2))
    c, _ = home
    size = c.log.size()
    again = list(_ingest(home, sources, jobs=2))
    assert [o.status for o in again] == ["already"] * 4
    assert [(o.exhibit, o.index) for o in again] == [(o.exhibit, o.index) for o in first]
    assert c.log.size() == size


@pytest.mark.parametrize("jobs", [1, 3])
def test_only_a_few_files_per_job_are_prepared_ahead(
    home: tuple[Custody, Signer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    sources = _files(tmp_path / "in", [100] * 30)
    started = 0
    lock = threading.Lock()
    real = evidence.prepare

    def counting(*args: object, **kw: object) -> evidence.Prepared:
        nonlocal started
        with lock:
            started += 1
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(evidence, "prepare", counting)
    limit = jobs * evidence._AHEAD_PER_JOB
    seen = 0
    for outcome in _ingest(home, sources, jobs=jobs):
        assert outcome.status == "ingested"
        seen += 1
        with lock:
            # Started: the file just told, the next one (its entry is appended while
            # this one's copy is placed), and at most `limit` after that.
            assert started - seen <= limit + 1
    assert seen == started == 30


def test_a_stop_leaves_nothing_staged_and_what_was_appended_placed(
    home: tuple[Custody, Signer], tmp_path: Path
) -> None:
    sources = _files(tmp_path / "in", [1000] * 20)
    outcomes = _ingest(home, sources, jobs=2)
    first = next(outcomes)
    outcomes.close()  # as a Ctrl-C in the caller's loop does
    c, _ = home
    assert first.status == "ingested"
    assert _staging(c) == []
    # The second file's entry was being appended as the first was told: it is
    # committed and placed too; every object has its entry, and nothing else is kept.
    items = c.store.items_in_case(CASE)
    assert [i.exhibit for i in items] == [f"{CASE}/0001", f"{CASE}/0002"]
    objects = sorted(p.name for p in (c.vault_root / "objects").rglob("*") if p.is_file())
    assert objects == sorted(i.blake3 for i in items)
    # The next run ingests the rest, in order, after them.
    rest = list(_ingest(home, sources, jobs=2))
    assert [o.status for o in rest] == ["already"] * 2 + ["ingested"] * 18
    assert [o.exhibit for o in rest] == [f"{CASE}/{n:04d}" for n in range(1, 21)]


def test_progress_is_told_in_bytes_and_in_files(
    home: tuple[Custody, Signer], tmp_path: Path
) -> None:
    sources = _files(tmp_path / "in", [17 << 20, 10, 0, 999])
    empty = tmp_path / "in" / "empty.txt"
    empty.write_bytes(b"")
    sources.append(evidence.Source(empty, legal_basis="warrant"))
    lock = threading.Lock()
    told_bytes = 0
    told_files: dict[Path, int] = {}

    def on_bytes(n: int) -> None:
        nonlocal told_bytes
        with lock:
            told_bytes += n

    def on_file(path: Path, size: int) -> None:
        with lock:
            assert path not in told_files
            told_files[path] = size

    outcomes = list(_ingest(home, sources, jobs=2, on_bytes=on_bytes, on_file=on_file))
    sizes = {s.path: s.path.stat().st_size for s in sources}
    assert [o.status for o in outcomes] == ["ingested"] * 4 + ["failed"]
    assert told_files == {**sizes, empty: 0}
    assert told_bytes == sum(sizes.values())


def test_a_full_disk_stops_the_batch_with_every_committed_file_told(
    home: tuple[Custody, Signer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _files(tmp_path / "in", [100] * 12)
    real = Vault.stage_file

    def full_at_the_fifth(self: Vault, src: Path, **kw: Any) -> Staged:
        if src.name == "note004.txt":
            raise NoSpaceError(f"no space left on the disk holding {self.root}: test")
        return real(self, src, **kw)

    monkeypatch.setattr(Vault, "stage_file", full_at_the_fifth)
    told: list[evidence.Outcome] = []
    with pytest.raises(evidence.BatchStopped) as err:
        for outcome in _ingest(home, sources, jobs=3):
            told.append(outcome)
    assert [o.status for o in told] == ["ingested"] * 4 + ["failed"]
    assert err.value.done == tuple(told)
    assert "stopped after 5 of 12 file(s) (4 ingested, 0 already ingested, 1 failed)" in (
        err.value.message
    )
    c, _ = home
    assert _staging(c) == []
    assert len(c.store.items_in_case(CASE)) == 4
