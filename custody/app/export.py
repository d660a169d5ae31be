"""Defence bundles: export from a custody home.

`export_case` writes a `custody/bundle/v1` bundle (docs/spec/bundle.md): the
case's entries and the key entries of the parties they need (spec §2.1, nothing of
other cases' parties) with tlog-proofs against one checkpoint
(cosignatures merged in), consistency proofs from every earlier stored
checkpoint, sidecars, optionally the media, the court report
(written by the `report` function the caller passes, `custody.report.court.write_report`:
the report layer is above this one), VERIFY.md, the manifest and the log-signed bundle
statement.  A bundle is built under a partial name (`.<name>.partial-<pid>-<hex>`,
locked while written) and renamed into place, so a half-written one never carries the
final name; the next export to that name removes the partials of killed exports.

Reading and verifying a bundle is `custody.bundle.reader`: it needs no home and
imports no store, so it does not live here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from custody import __version__
from custody.app.home import Custody
from custody.app.timestamp import TimestampStore, checkpoint_body
from custody.app.witness import merged_checkpoint
from custody.bundle.page import VERIFIER_PAGE, verifier_page
from custody.bundle.reader import Progress
from custody.bundle.timestamps import timestamp_path
from custody.bundle.verify import (
    B3SUMS,
    BUNDLE_V1,
    CHECKPOINT,
    MANIFEST,
    SHA256SUMS,
    SIDECAR_KINDS,
    STATEMENT,
    VERIFY_MD,
    ConsistencyFile,
    FileInfo,
    Manifest,
    ManifestEntry,
    ManifestItem,
    ManifestParty,
    Statement,
    consistency_path,
    cosigner_names,
    entry_path,
    parties_of,
    proof_path,
    select_entries,
    sidecar_path,
    sums_text,
)
from custody.errors import (
    NotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.infra.crash import crash_point
from custody.infra.files import fsync_dir, no_space_error, reclaim, work_dir
from custody.infra.store import Store
from custody.infra.vault import Vault, display_path
from custody.media.digest import CHUNK_SIZE, Hasher
from custody.model.entry import SignedEntry, format_time
from custody.model.timeline import Event
from custody.model.types import Derive, Disposal, Ingest
from custody.tlog.checkpoint import Checkpoint
from custody.tlog.merkle import leaf_hash
from custody.tlog.note import Note, Signer, VerifierKey
from custody.tlog.tlogproof import TlogProof

__all__ = [
    "BundleContent",
    "ExportItem",
    "ExportSummary",
    "ReportWriter",
    "collect",
    "export_case",
    "write_bundle",
]

# The court report is written in a work folder of this name in the temp directory.
_REPORT_PREFIX = "custody-report-"

# A media file keeps its extension in the bundle when it looks like one (media/<blake3>.mp4).
_EXT = re.compile(r"\.[a-z0-9]{1,10}")


# =================================================================================
# Export


@dataclass(frozen=True)
class ExportItem:
    """One item to write: its BLAKE3, its sidecars (kind -> bytes) and its file, if exported."""

    item: str
    sidecars: Mapping[str, bytes]
    media: Path | None = None


@dataclass(frozen=True)
class BundleContent:
    """Everything a bundle holds, before it is written (`write_bundle` derives the rest).

    `checkpoint` is the signed checkpoint note (cosignatures included); `entries`
    the case's entries and the candidate key entries (those the checkpoint covers),
    of which `write_bundle` keeps the ones the others need (spec §2.1,
    `custody.bundle.verify.select_entries`); `proofs` the encoded tlog-proof of each
    entry against the checkpoint, `consistency` the proofs
    from earlier checkpoints to it.  The item fields, the parties and the
    manifest are computed from the entries, never taken from elsewhere.
    """

    origin: str
    log_key: VerifierKey
    case: str
    exported: str
    checkpoint: bytes
    entries: Sequence[tuple[int, bytes]]
    proofs: Mapping[int, bytes]
    consistency: Sequence[ConsistencyFile]
    items: Sequence[ExportItem]
    reports: Sequence[tuple[str, Path]] = ()
    tool: str = f"custody {__version__}"
    # RFC 3161 tokens over checkpoints the bundle holds (size, DER token): the bundle's
    # own and those of `consistency` (docs/spec/timestamp.md).
    timestamps: Sequence[tuple[int, bytes]] = ()


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    case: str
    entries: int
    items: int
    media: int
    checkpoint_size: int
    consistency: int
    cosignatures: tuple[str, ...]
    report: tuple[str, ...]
    timestamps: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.path),
            "case": self.case,
            "entries": self.entries,
            "items": self.items,
            "media": self.media,
            "checkpoint_size": self.checkpoint_size,
            "consistency": self.consistency,
            "cosignatures": list(self.cosignatures),
            "report": list(self.report),
            "timestamps": list(self.timestamps),
        }


def _closure(chosen: set[str], named: Iterable[frozenset[str]]) -> set[str]:
    """The chosen items plus every item named together with one of them (to a fixed point).

    `named` holds, per entry, the items it names (`custody.model.timeline.named_items`).
    Replaying the custody rules needs each item's whole history, and that history
    includes the other items of a shared handoff and a derivation's parent or children.
    """
    closure = set(chosen)
    listed = list(named)
    grown = True
    while grown:
        grown = False
        for items in listed:
            if items & closure and not items <= closure:
                closure |= items
                grown = True
    return closure


def _defined(events: Iterable[Event], case: str) -> dict[str, tuple[int, Ingest | Derive]]:
    """The items of `case`, each with the index and typed form of the `ingest` or
    `derive` entry that first records it, in log order."""
    defined: dict[str, tuple[int, Ingest | Derive]] = {}
    for ev in sorted(events, key=lambda e: e.index):
        t = ev.typed
        if isinstance(t, Ingest | Derive) and t.case == case and t.item not in defined:
            defined[t.item] = (ev.index, t)
    return defined


def _resolve_items(
    refs: Sequence[str], defined: Mapping[str, Ingest | Derive], case: str
) -> set[str]:
    chosen: set[str] = set()
    for ref in refs:
        if "/" in ref:
            hits = [b3 for b3, e in defined.items() if e.exhibit == ref]
        elif re.fullmatch(r"[0-9a-fA-F]{6,64}", ref):
            hits = [b3 for b3 in defined if b3.startswith(ref.lower())]
        else:
            raise UsageError(
                f"--items {ref!r} is neither an exhibit number ({case}/NNNN) nor a BLAKE3 "
                "digest prefix",
                hint="give the exhibit number, or at least 6 hex digits of the digest",
            )
        if not hits:
            raise NotFoundError(
                f"case {case} has no item {ref}",
                hint=f"list its exhibits with 'custody case show {case}'",
            )
        if len(hits) > 1:
            shown = "; ".join(f"{defined[b3].exhibit} (b3 {b3[:12]}…)" for b3 in sorted(hits)[:6])
            raise UsageError(
                f"--items {ref} matches {len(hits)} exhibits of case {case}: {shown}"
                + (f", and {len(hits) - 6} more" if len(hits) > 6 else ""),
                hint="give the exhibit number (CASE/NNNN) or more digits of the digest",
            )
        chosen.add(hits[0])
    return chosen


class ReportWriter(Protocol):
    """Writes the court report of a case to a file: `custody.report.court.write_report`.

    Passed in by the caller (the CLI) rather than imported: the report layer
    sits above this one and imports it, and fpdf2 loads only when a report is written.
    """

    def __call__(
        self,
        c: Custody,
        case_id: str,
        fmt: str,
        out: Path,
        *,
        now: datetime | None = None,
        checkpoint_size: int | None = None,
    ) -> None: ...


def _find_reports(
    c: Custody,
    case: str,
    workdir: Path,
    checkpoint_size: int,
    now: datetime,
    write_report: ReportWriter | None,
) -> list[tuple[str, Path]]:
    """The court report of `case` in HTML and PDF, stating the bundle's checkpoint and time.

    None for `write_report`: no report.  Raises what `write_report` raises.
    """
    if write_report is None:
        return []
    out = []
    for fmt in ("html", "pdf"):
        path = workdir / f"report.{fmt}"
        write_report(c, case, fmt, path, checkpoint_size=checkpoint_size, now=now)
        out.append((f"report/report.{fmt}", path))
    return out


def collect(
    c: Custody,
    case: str,
    *,
    log_signer: Signer,
    now: datetime,
    items: Sequence[str] = (),
    with_media: bool = False,
    checkpoint_size: int | None = None,
) -> BundleContent:
    """Gather what a bundle of `case` holds from the custody home (spec §2).

    Raises NotFoundError (no such case, item or checkpoint), UsageError (a
    checkpoint too small to cover the entries, a bad --items), StorageError (a
    sidecar or evidence file missing from the evidence store).
    """
    with c.store.session() as s:
        case_rows = Store.case_entries(s, case)
        key_rows = Store.key_entries(s)
        # The log's policy entries are log-wide, like key entries: every one up to the
        # checkpoint travels, so the replay knows the policy each entry was judged under.
        policy_rows = Store.type_entries(s, "policy")
    if not case_rows:
        raise NotFoundError(
            f"the log has no entries for case {case}",
            hint="list cases with 'custody case list'",
        )
    # Each entry is parsed and typed once (`Event.typed`) and carried from here on.
    parsed = {i: Event.of(i, SignedEntry.parse(d)) for i, d in case_rows}
    defined = {b3: t for b3, (_, t) in _defined(parsed.values(), case).items()}
    wanted = set(defined)
    selected = case_rows
    if items:
        wanted = _closure(_resolve_items(items, defined, case), (e.items for e in parsed.values()))
        # Consents stay whole (a revocation names its grant, not the items); so do entries
        # that name no item.  The rest: those about an item of the closure.
        selected = [
            (i, d)
            for i, d in case_rows
            if parsed[i].type == "consent" or not parsed[i].items or parsed[i].items & wanted
        ]
    keys = {i: Event.of(i, SignedEntry.parse(d)) for i, d in key_rows}
    # The checkpoint must cover the selected entries and the key entries of the parties
    # they need (spec §2.1); the witnesses' key entries are added once it is chosen.
    covered = select_entries([*(parsed[i] for i, _ in selected), *keys.values()])
    needed = covered[-1] + 1

    if checkpoint_size is not None:
        row = c.store.checkpoint(checkpoint_size)
        if row is None:
            raise NotFoundError(
                f"the log stored no checkpoint of size {checkpoint_size}",
                hint="list them with 'custody log checkpoints', or leave out --checkpoint",
            )
        if row.size < needed:
            raise UsageError(
                f"the checkpoint of size {row.size} does not cover log entry {needed - 1} "
                "of this case",
                hint="leave out --checkpoint: export signs a new one",
            )
        note = bytes(row.note)
    else:
        latest = c.store.checkpoint()
        note = bytes(latest.note) if latest is not None and latest.size >= needed else b""
        if not note:
            note = c.log.checkpoint(log_signer)
    parties = c.log.parties()
    note = merged_checkpoint(c, note, parties)
    cp = Checkpoint.parse(Note.parse(note).text)

    # The candidates: the selected entries and every key entry the checkpoint covers;
    # `write_bundle` keeps the key entries of the parties they need (`select_entries`).
    entries = sorted([*selected, *((i, d) for i, d in (*key_rows, *policy_rows) if i < cp.size)])
    proofs = {
        i: TlogProof(i, tuple(c.log.inclusion_proof(i, cp.size)), note).encode() for i, _ in entries
    }
    consistency = []
    for row in c.store.checkpoints():
        if 0 < row.size < cp.size:
            consistency.append(
                ConsistencyFile(
                    old_size=int(row.size),
                    new_size=cp.size,
                    old_root=bytes(row.root),
                    new_root=cp.root,
                    proof=tuple(c.log.consistency_proof(int(row.size), cp.size)),
                    old_checkpoint=merged_checkpoint(c, bytes(row.note), parties),
                )
            )

    # The RFC 3161 tokens over the checkpoints the bundle holds: its own (size cp.size)
    # and the old checkpoints of its consistency files (0 < size < cp.size).
    stamps = TimestampStore(c.home.root)
    held = {cf.old_size: cf.old_checkpoint for cf in consistency if cf.old_checkpoint}
    held[cp.size] = note
    timestamps = [
        (size, token)
        for size in stamps.sizes()
        if size in held
        for token in stamps.tokens(size, checkpoint_body(held[size]))[:1]
    ]

    # A disposed item's entries travel, but its object left the evidence store: no media
    # file, and its sidecars only if the store still has them all (spec §3, `items`).
    disposed = {
        t.item for i, _ in selected if isinstance(t := parsed[i].typed, Disposal) and t.case == case
    }
    vault = Vault(c.vault_root)
    export_items = []
    for b3, e in defined.items():
        if b3 not in wanted:
            continue
        sidecars: dict[str, bytes] = {}
        if b3 in disposed:
            export_items.append(ExportItem(b3, _kept_sidecars(vault, b3), None))
            continue
        if e.metadata is not None or e.content is not None:
            for kind in SIDECAR_KINDS:
                try:
                    sidecars[kind] = vault.read_sidecar(b3, kind)
                except NotFoundError:
                    raise StorageError(
                        f"the evidence store has no {kind} sidecar for exhibit "
                        f"{e.exhibit} ({b3[:16]}…)",
                        hint="the evidence store is incomplete; restore it from a backup",
                    ) from None
        path = None
        if with_media:
            path = vault.path_for(b3)
            if not path.is_file():
                raise StorageError(
                    f"the evidence store has no file for exhibit {e.exhibit} ({b3[:16]}…)",
                    hint="restore the evidence store from a backup, or export without --with-media",
                )
        export_items.append(ExportItem(b3, sidecars, path))
    return BundleContent(
        origin=c.origin,
        log_key=c.log_key,
        case=case,
        exported=format_time(now),
        checkpoint=note,
        entries=entries,
        proofs=proofs,
        consistency=consistency,
        items=export_items,
        timestamps=timestamps,
    )


def _kept_sidecars(vault: Vault, item: str) -> dict[str, bytes]:
    """The sidecars of a disposed item, if the evidence store still has every one of them
    (a disposal may have removed them with the object), else none."""
    sidecars: dict[str, bytes] = {}
    for kind in SIDECAR_KINDS:
        try:
            sidecars[kind] = vault.read_sidecar(item, kind)
        except NotFoundError:
            return {}
    return sidecars


# -- writing ------------------------------------------------------------------------


class _Writer(Protocol):
    def add_bytes(self, name: str, data: bytes) -> FileInfo: ...

    def add_file(
        self, name: str, src: Path, expect_blake3: str | None, progress: Progress | None
    ) -> FileInfo: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def _copy(
    src: Path, write: Callable[[bytes], Any], expect: str | None, progress: Progress | None
) -> FileInfo:
    """Stream `src` to `write`, hashing what is copied; check its BLAKE3 if `expect`.

    A failure to read `src` is a StorageError naming it; an OSError from `write`
    propagates, for the bundle writer to name the bundle and the real cause (a full
    disk is the disk being written, never the evidence store being read).
    """
    hasher = Hasher(sha256=True)
    try:
        f = src.open("rb")
    except OSError as exc:
        raise StorageError(f"cannot read {display_path(src)}: {exc.strerror}") from exc
    with f:
        while True:
            try:
                chunk = f.read(CHUNK_SIZE)
            except OSError as exc:
                raise StorageError(f"cannot read {display_path(src)}: {exc.strerror}") from exc
            if not chunk:
                break
            hasher.update(chunk)
            write(chunk)
            if progress is not None:
                progress(len(chunk))
    d = hasher.finish()
    if expect is not None and d.blake3_hex != expect:
        raise VerificationError(
            f"evidence store object {expect} is damaged: its bytes now hash to {d.blake3_hex}",
            hint="restore it from a backup before exporting",
        )
    return FileInfo(d.size, d.sha256_hex or "")


def _write_failed(final: Path, what: str, exc: OSError) -> StorageError:
    """The error of a failed write of the bundle `final`: a NoSpaceError naming the
    disk when it is full, else `what` with the system's reason."""
    return no_space_error(exc, final.parent, what) or StorageError(f"{what}: {exc.strerror}")


def _partial_prefix(final: Path) -> str:
    """The name prefix of `final`'s partial copies: `.<name>.partial-`."""
    return f".{final.name}.partial-"


def _partial_name(final: Path) -> Path:
    """A fresh partial location next to `final`: `.<name>.partial-<pid>-<random>`.

    The PID says which process made it; whether that process is still alive is
    told by the flock(2) it holds on the partial while writing (`_reclaim_partials`).
    """
    return final.parent / f"{_partial_prefix(final)}{os.getpid()}-{secrets.token_hex(4)}"


def _reclaim_partials(final: Path) -> None:
    """Remove partial bundles of `final` left by killed exports (nobody holds their lock).

    A partial of a live export is locked and stays; so does anything that cannot be
    removed now (the next export tries again).
    """
    reclaim(final.parent, _partial_prefix(final))


def _locked(path: Path, fd: int) -> bool:
    """Take the flock that marks `path` as in use; False if `path` was removed meanwhile
    (a concurrent `_reclaim_partials` may remove a partial between its creation and the
    lock: then the caller makes another)."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


class _FolderWriter:
    def __init__(self, final: Path) -> None:
        self.final = final
        while True:
            self.tmp = _partial_name(final)
            try:
                self.tmp.mkdir(mode=0o755)
                self.fd = os.open(self.tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise _write_failed(final, f"cannot create {display_path(self.tmp)}", exc) from exc
            if _locked(self.tmp, self.fd):
                break
            os.close(self.fd)

    def _open(self, name: str) -> BinaryIO:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return os.fdopen(fd, "wb")

    def add_bytes(self, name: str, data: bytes) -> FileInfo:
        try:
            with self._open(name) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise _write_failed(self.final, f"cannot write {name} of the bundle", exc) from exc
        return FileInfo(len(data), hashlib.sha256(data).hexdigest())

    def add_file(
        self, name: str, src: Path, expect_blake3: str | None, progress: Progress | None
    ) -> FileInfo:
        try:
            with self._open(name) as f:
                info = _copy(src, f.write, expect_blake3, progress)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise _write_failed(self.final, f"cannot write {name} of the bundle", exc) from exc
        return info

    def commit(self) -> None:
        try:
            for folder, _, _ in os.walk(self.tmp):
                fsync_dir(Path(folder))
            crash_point("export.written")
            if self.final.exists():
                raise UsageError(f"{display_path(self.final)} already exists; not replacing it")
            os.rename(self.tmp, self.final)
            fsync_dir(self.final.parent)
        except OSError as exc:
            raise _write_failed(
                self.final, f"cannot finish {display_path(self.final)}", exc
            ) from exc
        finally:
            os.close(self.fd)
        crash_point("export.renamed")

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _ZipWriter:
    def __init__(self, final: Path, when: tuple[int, int, int, int, int, int]) -> None:
        self.final = final
        self.when = when
        while True:
            self.tmp = _partial_name(final)
            try:
                fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _write_failed(final, f"cannot create {display_path(self.tmp)}", exc) from exc
            if _locked(self.tmp, fd):
                break
            os.close(fd)
        # The archive is written through the locked descriptor, which stays open (and
        # the partial locked) until the archive is linked into place or removed.
        self.file = os.fdopen(fd, "w+b")
        self.zf = zipfile.ZipFile(self.file, "w", allowZip64=True)

    def _info(self, name: str, compress: int) -> zipfile.ZipInfo:
        zi = zipfile.ZipInfo(name, self.when)
        zi.compress_type = compress
        zi.create_system = 3  # Unix: the mode bits below mean "regular file, rw-r--r--"
        zi.external_attr = (stat.S_IFREG | 0o644) << 16
        return zi

    def add_bytes(self, name: str, data: bytes) -> FileInfo:
        try:
            self.zf.writestr(self._info(name, zipfile.ZIP_DEFLATED), data)
        except OSError as exc:
            raise _write_failed(self.final, f"cannot write {display_path(self.tmp)}", exc) from exc
        return FileInfo(len(data), hashlib.sha256(data).hexdigest())

    def add_file(
        self, name: str, src: Path, expect_blake3: str | None, progress: Progress | None
    ) -> FileInfo:
        # Media is compressed already: stored, so a reader can stream it at disk speed.
        compress = zipfile.ZIP_STORED if expect_blake3 else zipfile.ZIP_DEFLATED
        try:
            with self.zf.open(self._info(name, compress), "w", force_zip64=True) as dst:
                return _copy(src, dst.write, expect_blake3, progress)
        except OSError as exc:
            raise _write_failed(self.final, f"cannot write {display_path(self.tmp)}", exc) from exc

    def commit(self) -> None:
        try:
            self.zf.close()
            self.file.flush()
            os.fsync(self.file.fileno())
            crash_point("export.written")
            os.link(self.tmp, self.final)  # fails rather than replace an existing file
            self.tmp.unlink()
            fsync_dir(self.final.parent)
        except FileExistsError:
            raise UsageError(
                f"{display_path(self.final)} already exists; not replacing it"
            ) from None
        except OSError as exc:
            raise _write_failed(
                self.final, f"cannot finish {display_path(self.final)}", exc
            ) from exc
        finally:
            self.file.close()
        crash_point("export.renamed")

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.zf.close()
        with contextlib.suppress(Exception):
            self.file.close()
        self.tmp.unlink(missing_ok=True)


def media_name(item: str, name: str) -> str:
    """An item's path in a bundle: `media/<blake3><ext>` (docs/spec/bundle.md §2)."""
    suffix = Path(name).suffix.lower()
    return f"media/{item}{suffix if _EXT.fullmatch(suffix) else ''}"


def write_bundle(
    content: BundleContent, to: Path, log_signer: Signer, *, progress: Progress | None = None
) -> Manifest:
    """Write `content` as a bundle at `to` (a folder, or a ZIP if it ends in .zip).

    Everything the manifest says about entries, items and parties is derived
    from the entries themselves; the manifest's SHA-256 goes into the bundle
    statement, which `log_signer` (the log's key) signs.

    Raises UsageError if `to` exists, StorageError if it cannot be written,
    VerificationError if an evidence file no longer has its digest.
    """
    _reclaim_partials(to)
    if to.exists():
        raise UsageError(
            f"{display_path(to)} already exists", hint="export to a new folder or .zip name"
        )
    cp = Checkpoint.parse(Note.parse(content.checkpoint).text)
    events = {i: Event.of(i, SignedEntry.parse(d)) for i, d in content.entries}
    # Only what the case's entries need (spec §2.1): the key entries of the parties who
    # sign or are named by them, and of the witnesses who cosigned the checkpoint.
    kept = select_entries(
        events.values(), size=cp.size, cosigners=cosigner_names(content.checkpoint, content.origin)
    )
    data_of = dict(content.entries)
    content = dataclasses.replace(content, entries=[(i, data_of[i]) for i in kept])
    parties = parties_of(events[i] for i in kept)
    defined = _defined((events[i] for i in kept), content.case)
    when = datetime.strptime(content.exported, "%Y-%m-%dT%H:%M:%SZ")
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    writer: _Writer = _ZipWriter(to, stamp) if to.suffix.lower() == ".zip" else _FolderWriter(to)
    try:
        files: dict[str, FileInfo] = {CHECKPOINT: writer.add_bytes(CHECKPOINT, content.checkpoint)}
        for i, data in content.entries:
            files[entry_path(i)] = writer.add_bytes(entry_path(i), data)
            files[proof_path(i)] = writer.add_bytes(proof_path(i), content.proofs[i])
        for cf in content.consistency:
            files[consistency_path(cf.old_size)] = writer.add_bytes(
                consistency_path(cf.old_size), cf.to_json()
            )
        for size, token in content.timestamps:
            files[timestamp_path(size)] = writer.add_bytes(timestamp_path(size), token)
        items = []
        for it in sorted(content.items, key=lambda x: defined[x.item][0]):
            index, e = defined[it.item]
            sidecars = []
            for kind, data in sorted(it.sidecars.items()):
                path = sidecar_path(it.item, kind)
                files[path] = writer.add_bytes(path, data)
                sidecars.append((kind, path))
            media_path = None
            if it.media is not None:
                media_path = media_name(it.item, e.name)
                files[media_path] = writer.add_file(media_path, it.media, it.item, progress)
            items.append(
                ManifestItem(
                    item=it.item,
                    exhibit=e.exhibit,
                    name=e.name,
                    size=e.size,
                    kind=e.kind,
                    entry=index,
                    parent=e.parent if isinstance(e, Derive) else None,
                    sidecars=tuple(sidecars),
                    media=media_path,
                )
            )
        # b3sum/sha256sum check files for the media folder (docs/spec/bundle.md §2.2):
        # BLAKE3 is the item itself (add_file checked it while copying), SHA-256 is what
        # the manifest lists; both files are listed in the manifest like any other.
        media_files = [(i.media, i.item) for i in items if i.media is not None]
        if media_files:
            files[B3SUMS] = writer.add_bytes(B3SUMS, sums_text(media_files))
            files[SHA256SUMS] = writer.add_bytes(
                SHA256SUMS, sums_text((path, files[path].sha256) for path, _ in media_files)
            )
        report = []
        for name, source in content.reports:
            files[name] = writer.add_file(name, source, None, None)
            report.append(name)
        party_rows = tuple(
            ManifestParty(
                k.name, k.role, k.org, k.vkey.encode(), k.registered_at, k.ended_at, k.end_reason
            )
            for history in parties.keys.values()
            for k in history
        )
        manifest_entries = tuple(
            ManifestEntry(i, leaf_hash(d).hex(), events[i].type) for i, d in content.entries
        )
        disposed = {
            t.item: i
            for i in kept
            if isinstance(t := events[i].typed, Disposal) and t.case == content.case
        }
        verify_md = render_verify_md(content, cp, party_rows, items, disposed)
        files[VERIFY_MD] = writer.add_bytes(VERIFY_MD, verify_md.encode("utf-8"))
        # the browser verifier (docs/browser-verifier.md), covered by the manifest like any file
        files[VERIFIER_PAGE] = writer.add_bytes(VERIFIER_PAGE, verifier_page())
        manifest = Manifest(
            origin=content.origin,
            log_key=content.log_key.encode(),
            case=content.case,
            exported=content.exported,
            tool=content.tool,
            checkpoint_size=cp.size,
            checkpoint_root=cp.root,
            entries=manifest_entries,
            consistency=tuple(cf.old_size for cf in content.consistency),
            parties=party_rows,
            items=tuple(items),
            report=tuple(report),
            files=files,
        )
        manifest_bytes = manifest.encode()
        statement = Statement(
            origin=content.origin,
            case=content.case,
            exported=content.exported,
            size=cp.size,
            root=cp.root,
            manifest=hashlib.sha256(manifest_bytes).hexdigest(),
            entries=tuple((e.index, e.hash) for e in manifest_entries),
        )
        writer.add_bytes(MANIFEST, manifest_bytes)
        writer.add_bytes(STATEMENT, statement.sign(log_signer))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return manifest


def export_case(
    c: Custody,
    case: str,
    to: Path,
    *,
    log_signer: Signer,
    now: datetime,
    items: Sequence[str] = (),
    with_media: bool = False,
    checkpoint_size: int | None = None,
    progress: Progress | None = None,
    report: ReportWriter | None = None,
    phases: Callable[[str, int | None], None] | None = None,
) -> ExportSummary:
    """Export `case` as a bundle at `to` (see `collect` and `write_bundle`).

    `report` writes the court report into the bundle (`custody.report.court.write_report`;
    None: the bundle has no report).  `phases` is told each phase as it starts, with its
    size in bytes where it has one (the media to copy; `progress` then counts them).
    Raises what `collect`, `write_bundle` and `report` raise.
    """

    def phase(name: str, total: int | None = None) -> None:
        if phases is not None:
            phases(name, total)

    if not to.parent.is_dir():
        if to.exists():
            raise UsageError(
                f"{display_path(to)} already exists", hint="export to a new folder or .zip name"
            )
        raise UsageError(f"the folder {display_path(to.parent)} does not exist")
    # What a killed export left (partial bundles of `to`, report work folders) is removed
    # first, even when this export then stops because `to` exists (a kill after the
    # rename leaves the bundle and the report's work folder).
    _reclaim_partials(to)
    reclaim(Path(tempfile.gettempdir()), _REPORT_PREFIX)
    if to.exists():
        raise UsageError(
            f"{display_path(to)} already exists", hint="export to a new folder or .zip name"
        )
    phase("collecting entries, proofs and checkpoints")
    content = collect(
        c,
        case,
        log_signer=log_signer,
        now=now,
        items=items,
        with_media=with_media,
        checkpoint_size=checkpoint_size,
    )
    # The report's work folder is locked while in use, so a killed export's is reclaimed
    # by the next one (`custody.infra.files.work_dir`).
    with work_dir(Path(tempfile.gettempdir()), _REPORT_PREFIX) as tmp:
        size = Checkpoint.parse(Note.parse(content.checkpoint).text).size
        if report is not None:
            phase("writing the court report (HTML and PDF)")
        reports = _find_reports(c, case, tmp, size, now, report)
        content = dataclasses.replace(content, reports=reports)
        phase(
            "writing the bundle" + (", copying media" if with_media else ""), _media_bytes(content)
        )
        manifest = write_bundle(content, to, log_signer, progress=progress)
    cosigners = tuple(
        s.name for s in Note.parse(content.checkpoint).signatures if s.name != content.origin
    )
    return ExportSummary(
        path=to,
        case=case,
        entries=len(manifest.entries),
        items=len(manifest.items),
        media=sum(1 for i in manifest.items if i.media),
        checkpoint_size=manifest.checkpoint_size,
        consistency=len(manifest.consistency),
        cosignatures=cosigners,
        report=manifest.report,
        timestamps=tuple(size for size, _ in content.timestamps),
    )


def _media_bytes(content: BundleContent) -> int | None:
    """How many bytes of media the bundle will copy (None: none, or a size unknown)."""
    total = 0
    for it in content.items:
        if it.media is not None:
            try:
                total += it.media.stat().st_size
            except OSError:  # write_bundle names the file that cannot be read
                return None
    return total or None


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def render_verify_md(
    content: BundleContent,
    cp: Checkpoint,
    parties: Sequence[ManifestParty],
    items: Sequence[ManifestItem],
    disposed: Mapping[str, int] | None = None,
) -> str:
    """VERIFY.md: how a stranger checks this bundle, with custody or without it.

    `disposed` maps the BLAKE3 of each disposed item to its `disposal` entry's index."""
    gone = disposed or {}
    vkey = content.log_key.encode()
    intro = (
        f"This is a `{BUNDLE_V1}` bundle exported {content.exported} from the custody log "
        f"**{_md(content.origin)}**: {len(content.entries)} signed log entries, each with a "
        f"proof that it is in the log, the log's checkpoint of size {cp.size}, consistency "
        f"proofs from {len(content.consistency)} earlier checkpoint(s), and {len(items)} "
        "item(s) with their metadata snapshots and packet lists"
        + (", and their files." if any(i.media for i in items) else ".")
    )
    lines = [
        f"# Verifying this custody bundle (case {_md(content.case)})",
        "",
        *textwrap.wrap(intro, width=88),
        "",
        "Nothing here is to be trusted on its own word.  Everything is checked against",
        "**the log's verifier key**, which you must obtain from the agency by another",
        "channel (a letter, a court filing, a phone call) and compare character for",
        "character.  For this log it should be:",
        "",
        f"    {vkey}",
        "",
        "(The manifest carries the same key, but a forger would put their own key there.)",
        "",
        "## With custody",
        "",
        "    custody verify-bundle THIS-BUNDLE --trust 'LOG-VERIFIER-KEY'",
        "",
        "It needs no database and no account; it prints a verdict per item and overall,",
        "exits 0 for VERIFIED and 1 for NOT VERIFIED (saying what, where and why).  It",
        "remembers the checkpoints it has seen (`--seen DIR`), so a log that shows you one",
        "history now and another later is caught.  `--json` prints the same as JSON.",
        "",
        "## In a browser, with nothing installed",
        "",
        "Open `verify.html` (in this bundle) in a current browser, choose this bundle's",
        "folder or .zip, paste the log's verifier key and press Verify.  The page makes no",
        "network request; it checks what a browser can and lists the rest (re-probing with",
        "ffmpeg, lineage that needs decoding) as not checked.  A copy of the page from the",
        "agency or from `custody verifier-page` is better than the one in the bundle, which",
        "came with the bundle (`custody verify-bundle` checks it against the manifest).",
        "",
        "## With any RFC 6962 and signed-note implementation",
        "",
        "The formats are specified in custody's `docs/spec/` (bundle.md, signed-note.md,",
        "checkpoint.md, tlog-proof.md, entry.md, media.md).  With Go's",
        "`golang.org/x/mod/sumdb/note` and `golang.org/x/mod/sumdb/tlog`:",
        "",
        "1. `statement.note` is a signed note: `note.Open(data, note.VerifierList(v))`",
        "   with `v, _ := note.NewVerifier(logKey)`.  Its text lists `checkpoint <size>",
        "   <root>`, `manifest <sha256>` and one `entry <index> <hash>` line per entry.",
        "2. `sha256sum MANIFEST.json` must be the `manifest` line; then every file listed",
        "   under `files` in `MANIFEST.json` must have that SHA-256, and there must be no",
        "   other file.",
        "3. `checkpoint.note` opens with the same verifier; its body is origin, size and",
        "   base64 root, which must be those of the statement's `checkpoint` line.",
        "4. For each `entry <i> <hash>`: `entries/<i>.entry` hashes to `<hash>` as",
        "   `tlog.RecordHash(data)`; `proofs/<i>.tlog-proof` (`c2sp.org/tlog-proof@v1`)",
        "   gives the proof hashes, and `tlog.CheckRecord(proof, size, root, i, hash)`",
        "   must succeed.",
        "5. The `key` entries give each party's verifier key (`vkey` line); every entry",
        "   must open with `note.Open` under the keys valid at its index, signed by the",
        "   parties the custody rules of entry.md require (both parties of a handoff).",
        "   A `policy` entry is the exception: it opens with the log key alone.",
        "6. For each `consistency/<s>.json`: `old_checkpoint` opens with the log key and",
        "   `tlog.CheckTree(proof, size, root, s, old_root)` must succeed.",
        "7. For each item: `b3sum items/<blake3>/probe` is the entry's `metadata` field;",
        "   the content digest of media.md §6 over `framehash` and `streamhash` is its",
        "   `content` field; `b3sum media/<file>` is its `item` field.  A disposed item",
        "   (a `disposal` entry names it) has no file here, and may have no sidecars.",
        *(
            [
                "   All media at once, inside `media/`: `b3sum -c B3SUMS` and",
                "   `sha256sum -c SHA256SUMS` (both files are listed in the manifest, step 2).",
            ]
            if any(i.media for i in items)
            else []
        ),
        "8. Each `timestamps/<size>.tst` is a DER RFC 3161 TimeStampToken over the body",
        "   (the signed text, no signature lines) of the checkpoint of that size:",
        "   `openssl ts -verify -token_in -in timestamps/<size>.tst -data BODY -CAfile",
        "   TSA-ROOT.pem` (docs/spec/timestamp.md).",
        "",
        "## Parties in this bundle",
        "",
        "| name | role | organisation | verifier key | registered at entry | ended |",
        "|---|---|---|---|---|---|",
    ]
    for p in parties:
        ended = "" if p.ended_at is None else f"entry {p.ended_at} ({_md(p.end or '')})"
        lines.append(
            f"| {_md(p.name)} | {p.role} | {_md(p.org)} | `{p.vkey}` | {p.registered_at} "
            f"| {ended} |"
        )
    lines += [
        "",
        "## Items",
        "",
        "| exhibit | name | BLAKE3 | bytes | log entry | file in bundle |",
        "|---|---|---|---|---|---|",
    ]
    for i in items:
        where = i.media or (
            f"(disposed of at log entry {gone[i.item]})" if i.item in gone else "(not exported)"
        )
        lines.append(
            f"| {_md(i.exhibit)} | {_md(i.name)} | `{i.item}` | {i.size} | {i.entry} | {where} |"
        )
    return "\n".join(lines) + "\n"
