"""`custody verify DIR`: a hashdeep-style audit of a folder against the log (docs/ingest.md,
"Checking a folder").

Every regular file under the folder is hashed once (BLAKE3) and put in one of:

* **matched**: its bytes are an exhibit's, under the exhibit's recorded name (or, in an
  exported bundle's `media/`, under its `<blake3><ext>` name);
* **moved**: its bytes are an exhibit's, under another name;
* **modified**: it has an exhibit's name but other bytes; it is then probed and
  classified against that exhibit as `custody verify FILE` would (same content in
  another container, metadata changed, content modified, or nothing in common);
* **new**: neither its bytes nor its name are an exhibit's;
* **skipped**: a symbolic link (never followed) or not a regular file (a FIFO, a device);
* **unreadable**: it could not be read (the reason is given).

With a case, only that case's exhibits are compared, and its exhibits that no file has
(by bytes, or by name as a modified copy) are **missing**; disposed exhibits are not.
A custody bundle found in the folder (`MANIFEST.json` and `statement.note` side by side)
contributes only its `media/` files; `custody verify-bundle` checks the rest of it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from custody.app.evidence import display, get_case, media_record
from custody.app.export import media_name
from custody.app.home import Custody
from custody.app.lifecycle import disposals
from custody.bundle.verify import MANIFEST, STATEMENT, SUMS_FILES
from custody.errors import CustodyError, InputError
from custody.infra import ffmpeg as media
from custody.infra.store import ItemRow
from custody.infra.vault import Vault, hash_file
from custody.media.compare import Record, Unknown, Verdict, classify

STATUSES = ("matched", "moved", "modified", "new", "skipped", "unreadable")

#: Bundle files that are not evidence: the check files next to the media.
_SUMS_NAMES = frozenset(PurePosixPath(p).name for p in SUMS_FILES)


@dataclass(frozen=True)
class FileResult:
    """One file of the folder: its path relative to the folder (`/`-separated), its
    status (one of `STATUSES`), the exhibits it is (matched, moved) or stands for
    (modified), and for a modified file the verdict against its exhibit."""

    path: str
    status: str
    items: tuple[ItemRow, ...] = ()
    verdict: Verdict | None = None
    reason: str | None = None
    blake3: str | None = None
    size: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "status": self.status}
        if self.blake3 is not None:
            out["digest"] = self.blake3  # the file's BLAKE3 ("item" is an exhibit's)
        if self.size is not None:
            out["size"] = self.size
        if self.items:
            out["exhibits"] = [item_json(i) for i in self.items]
        if self.verdict is not None:
            out.update(self.verdict.to_json())
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def item_json(i: ItemRow) -> dict[str, Any]:
    return {
        "exhibit": i.exhibit,
        "case": i.case_id,
        "name": i.name,
        "item": i.blake3,
        "index": i.ingest_idx,
    }


@dataclass
class DirAudit:
    """The audit of one folder: every file's result, the case's missing exhibits (with
    a case), and the bundles whose media/ alone was audited."""

    folder: str
    case: str | None
    files: list[FileResult] = field(default_factory=list)
    missing: list[ItemRow] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> bool:
        """Every file matched (skipped ones aside), none unreadable, nothing missing."""
        return not self.missing and all(f.status in ("matched", "skipped") for f in self.files)

    @property
    def problems(self) -> int:
        """Files neither matched nor skipped, plus missing exhibits."""
        return len(self.missing) + sum(
            1 for f in self.files if f.status not in ("matched", "skipped")
        )

    def summary(self) -> str:
        """``7 files: 4 matched, 1 moved, 1 modified, 1 new; 1 exhibit of case C missing``."""
        parts = [f"{self.count(s)} {s}" for s in STATUSES if self.count(s) or s == "matched"]
        text = f"{len(self.files)} file{'' if len(self.files) == 1 else 's'}: " + ", ".join(parts)
        if self.case is not None:
            n = len(self.missing)
            text += f"; {n} exhibit{'' if n == 1 else 's'} of case {self.case} missing"
        return text

    def as_json(self) -> dict[str, Any]:
        counts = {s: self.count(s) for s in STATUSES}
        counts["missing"] = len(self.missing)
        return {
            "folder": self.folder,
            "case": self.case,
            "verified": self.ok,
            "summary": self.summary(),
            "counts": counts,
            "files": [f.as_json() for f in self.files],
            "missing": [item_json(i) for i in self.missing],
            "bundles": self.bundles,
        }


def export_name(row: ItemRow) -> str:
    """The item's file name in an exported bundle's media/ (docs/spec/bundle.md §2)."""
    return PurePosixPath(media_name(row.blake3, row.name)).name


def _is_bundle(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() and (folder / STATEMENT).is_file()


def walk(root: Path) -> Iterator[tuple[str, Path, str | None]]:
    """(relative path, path, why it is skipped or None) of everything under `root` to
    audit, sorted by name, never following a symbolic link; a bundle's files other than
    its media are left out (the caller lists the bundles: `bundles_in`)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        rel_here = here.relative_to(root)
        if _is_bundle(here):
            dirs[:] = ["media"] if "media" in dirs and not (here / "media").is_symlink() else []
            files = []
        elif here.name == "media" and _is_bundle(here.parent):
            files = [f for f in files if f not in _SUMS_NAMES]
        dirs.sort(key=os.fsencode)
        linked = [d for d in dirs if (here / d).is_symlink()]
        for name in sorted([*files, *linked], key=os.fsencode):
            path = here / name
            rel = (rel_here / name).as_posix()
            try:
                st = path.lstat()
            except OSError as exc:
                yield rel, path, f"cannot be looked at: {exc.strerror}"
                continue
            if stat.S_ISLNK(st.st_mode):
                target = display(Path(os.readlink(path)))
                yield rel, path, f"symbolic link to {target}, not followed"
            elif not stat.S_ISREG(st.st_mode):
                yield rel, path, "not a regular file"
            else:
                yield rel, path, None
        dirs[:] = [d for d in dirs if d not in linked]


def bundles_in(root: Path) -> list[str]:
    """The custody bundles in the folder (relative paths; `.` for the folder itself)."""
    found = []
    for folder, dirs, _ in os.walk(root, followlinks=False):
        dirs.sort(key=os.fsencode)
        if _is_bundle(Path(folder)):
            found.append(Path(folder).relative_to(root).as_posix())
            dirs[:] = []
    return found


def audit_dir(
    c: Custody,
    root: Path,
    case_id: str | None = None,
    *,
    on_file: Callable[[FileResult], None] | None = None,
    jobs: int | None = None,
) -> DirAudit:
    """Audit the folder `root` against the log's exhibits (of `case_id`, if given).

    Files are hashed (and, when modified, probed) by `jobs` threads (default: one per
    core), a few per thread ahead of the walk; results stay in the walk's order.
    `on_file` is called, in the calling thread and in that order, with each file's
    result as soon as it and those before it are known.  Raises NotFoundError for an
    unknown case, InputError if `root` cannot be walked.
    """
    if case_id is not None:
        get_case(c, case_id)
    rows = c.store.items_in_case(case_id) if case_id is not None else c.store.all_items()
    by_digest: dict[str, list[ItemRow]] = {}
    by_name: dict[str, list[ItemRow]] = {}
    for row in rows:
        by_digest.setdefault(row.blake3, []).append(row)
        by_name.setdefault(row.name, []).append(row)
        by_name.setdefault(export_name(row), []).append(row)
    audit = DirAudit(folder=display(root), case=case_id)
    try:
        os.listdir(root)
    except OSError as exc:
        raise InputError(f"cannot read the folder {display(root)}: {exc.strerror}") from exc
    audit.bundles = bundles_in(root)
    vault = Vault(c.vault_root)
    seen: set[str] = set()
    stood_for: set[str] = set()
    workers = max(1, jobs if jobs is not None else os.cpu_count() or 1)
    for result in _audited(walk(root), workers, vault, by_digest, by_name):
        if result.status in ("matched", "moved"):
            seen.update(i.blake3 for i in result.items)
        elif result.status == "modified":
            stood_for.update(i.blake3 for i in result.items)
        audit.files.append(result)
        if on_file is not None:
            on_file(result)
    if case_id is not None:
        gone = {item for (case, item) in disposals(c) if case == case_id}
        audit.missing = [
            r for r in rows if r.blake3 not in seen | stood_for and r.blake3 not in gone
        ]
    return audit


#: Files submitted ahead of the one being reported, per thread: the pool stays busy and
#: memory stays flat whatever the size of the folder.
_AHEAD_PER_JOB = 4
#: Files larger than this are hashed one at a time: BLAKE3 spreads one file over every
#: core already, and each hash maps a few windows (resident memory) while it runs.
_LARGE = 16 * 1024 * 1024


def _audited(
    found: Iterator[tuple[str, Path, str | None]],
    workers: int,
    vault: Vault,
    by_digest: dict[str, list[ItemRow]],
    by_name: dict[str, list[ItemRow]],
) -> Iterator[FileResult]:
    """The result of each file `walk` found, in its order, `workers` files at a time."""
    pending: deque[Future[FileResult]] = deque()
    large = threading.Lock()

    def audit_one(path: Path, shown: str) -> FileResult:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0  # `_audit_file` reports it
        if size <= _LARGE:
            return _audit_file(vault, path, shown, by_digest, by_name)
        with large:
            return _audit_file(vault, path, shown, by_digest, by_name)

    with ThreadPoolExecutor(workers, thread_name_prefix="custody-verify") as pool:
        try:
            for rel, path, skipped in found:
                shown = display(Path(rel))
                if skipped is not None:
                    done: Future[FileResult] = Future()
                    done.set_result(FileResult(shown, "skipped", reason=skipped))
                    pending.append(done)
                else:
                    pending.append(pool.submit(audit_one, path, shown))
                while len(pending) > workers * _AHEAD_PER_JOB or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _audit_file(
    vault: Vault,
    path: Path,
    shown: str,
    by_digest: dict[str, list[ItemRow]],
    by_name: dict[str, list[ItemRow]],
) -> FileResult:
    try:
        digests = hash_file(path)
    except CustodyError as exc:
        return FileResult(shown, "unreadable", reason=exc.message)
    b3, size, name = digests.blake3_hex, digests.size, path.name
    same_bytes = by_digest.get(b3, [])
    if same_bytes:
        here = [r for r in same_bytes if name in (r.name, export_name(r))]
        if here:
            return FileResult(shown, "matched", tuple(here), blake3=b3, size=size)
        names = ", ".join(sorted({r.name for r in same_bytes}))
        return FileResult(
            shown,
            "moved",
            tuple(same_bytes),
            reason=f"recorded as {names}",
            blake3=b3,
            size=size,
        )
    named = by_name.get(name, [])
    if not named:
        return FileResult(shown, "new", blake3=b3, size=size)
    verdict, row = _classify_against(vault, path, named, Record(blake3=b3, size=size))
    return FileResult(shown, "modified", (row,), verdict, blake3=b3, size=size)


def _classify_against(
    vault: Vault, path: Path, rows: list[ItemRow], new: Record
) -> tuple[Verdict, ItemRow]:
    """The best verdict of the file at `path` against the exhibits recorded under its
    name, and that exhibit (the first of them when nothing relates)."""
    measured = media.Measurements(path)
    try:
        info = measured.get()
    except InputError as exc:
        return Unknown(reason=f"other bytes, and it cannot be probed: {exc.message}"), rows[0]
    if info is None:
        return Unknown(reason="other bytes, and it is not media to compare by content"), rows[0]
    best: tuple[Verdict, ItemRow] | None = None
    for row in rows:
        record = media_record(vault, row.blake3) if row.kind == "media" else None
        if record is None:
            continue
        # Measured in the exhibit's snapshot version (v1 or v2), once per version.
        try:
            again = measured.record(record.snapshot_version)
        except CustodyError:
            continue
        if again is None:
            continue
        verdict = classify(
            Record(row.blake3, row.size, record), Record(new.blake3, new.size, again)
        )
        if best is None or verdict.rank < best[0].rank:
            best = (verdict, row)
    if best is None:
        return Unknown(reason="other bytes; the exhibit of this name is not media"), rows[0]
    return best
