"""Cases, exhibits and evidence ingest: the library API behind `custody case` and
`custody ingest` (docs/ingest.md).

Ingesting a file is, in order:

1. one read pass that hashes it (BLAKE3, optionally SHA-256) while copying it into
   the write-once evidence store (`custody.infra.vault`);
2. for media, the canonical ffprobe snapshot and the per-stream packet hashes of
   the stored copy (`custody.infra.ffmpeg`), kept as sidecars in the store;
3. one write transaction that allocates the exhibit number, appends the signed
   `ingest` entry and records the item: all of it, or none of it.

An interrupted run therefore leaves at most a stored object with no entry, and a
re-run finishes it; a file already ingested into the case is reported with its
log index and nothing is appended.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from custody.app.home import Custody
from custody.errors import CustodyError, InputError, NotFoundError, UsageError, VerificationError
from custody.infra import ffmpeg as media
from custody.infra.indexer import append_indexed
from custody.infra.store import CaseRow, ItemRow, Store
from custody.infra.vault import Vault, hash_file
from custody.media.compare import ExactMatch, MediaRecord, Record, Unknown, Verdict, classify
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.parties import check_entry
from custody.tlog.note import Signer

LEGAL_BASES = ("consent", "warrant", "subpoena", "exigent", "voluntary")
_CASE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_case_id(case_id: str) -> str:
    if not _CASE_RE.fullmatch(case_id):
        raise UsageError(
            f"case id {case_id!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' (e.g. 2026-0142), up to 64 characters",
        )
    return case_id


def exhibit_label(case_id: str, number: int) -> str:
    return f"{case_id}/{number:04d}"


# -- cases ------------------------------------------------------------------------


def new_case(c: Custody, case_id: str, title: str, now: datetime) -> CaseRow:
    check_case_id(case_id)
    with c.store.writer() as s:
        if s.get(CaseRow, case_id) is not None:
            raise UsageError(f"case {case_id} already exists")
        row = CaseRow(case_id=case_id, title=title, created=now.isoformat())
        s.add(row)
    return row


def get_case(c: Custody, case_id: str) -> CaseRow:
    row = c.store.case(case_id)
    if row is None:
        raise NotFoundError(
            f"no case {case_id!r}",
            hint=f"create it with 'custody case new {case_id}', or list cases with "
            "'custody case list'",
        )
    return row


# -- items ----------------------------------------------------------------------------


def resolve_item(c: Custody, ref: str, case_id: str | None = None) -> ItemRow:
    """An item by exhibit number (`2026-0142/0003`) or BLAKE3 digest or unique prefix.

    Raises NotFoundError, or UsageError for an ambiguous prefix.
    """
    if "/" in ref:
        row = c.store.item_by_exhibit(ref)
        if row is None:
            raise NotFoundError(
                f"no exhibit {ref}", hint="list a case's items with 'custody case show CASE'"
            )
        return row
    prefix = ref.lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", prefix):
        raise UsageError(
            f"{ref!r} is neither an exhibit number (CASE/NNNN) nor a BLAKE3 digest prefix",
            hint="give at least 6 hex digits of the digest, or the exhibit number",
        )
    rows = c.store.items_by_digest_prefix(prefix, case_id)
    if not rows:
        raise NotFoundError(f"no item whose BLAKE3 digest starts with {prefix}")
    if len(rows) > 1:
        labels = ", ".join(r.exhibit for r in rows[:5])
        raise UsageError(
            f"digest prefix {prefix} matches {len(rows)} items ({labels})",
            hint="give more digits, the exhibit number, or --case",
        )
    return rows[0]


# -- ingest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file to ingest, with what a manifest row may say about it."""

    path: Path
    source: str | None = None
    legal_basis: str | None = None
    ref: str | None = None
    notes: str | None = None


@dataclass
class Outcome:
    """What happened to one file: `ingested`, `already` (ingested before) or `failed`."""

    path: str
    status: str
    exhibit: str | None = None
    index: int | None = None
    blake3: str | None = None
    sha256: str | None = None
    size: int | None = None
    kind: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "extra"}
        out.update(self.extra)
        return out


def display(path: Path) -> str:
    """A path for messages: undecodable bytes shown as \\xNN escapes, never a crash."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def expand(paths: Iterable[Path]) -> Iterator[Path]:
    """Files and folders (recursively), in a stable order: folders sorted by name."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                dirs.sort(key=os.fsencode)
                for name in sorted(files, key=os.fsencode):
                    yield Path(root) / name
        else:
            yield path


def read_manifest(path: Path) -> list[Source]:
    """Rows of a CSV (header row) or JSON (a list of objects) manifest.

    Columns/keys: `path` (required; relative to the manifest's folder), `source`,
    `legal_basis` (or `legal-basis`), `reference` (or `ref`), `notes`.
    Raises InputError naming the manifest and the row.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest {display(path)}: {exc}") from exc
    rows: list[dict[str, Any]]
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"manifest {display(path)} is not valid JSON: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            data = data["items"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"manifest {display(path)} must be a JSON list of objects")
        rows = data
    else:
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise InputError(
                f"manifest {display(path)} has no 'path' column",
                hint="the first row must name the columns: path,source,legal_basis,reference,notes",
            )
        rows = list(reader)
    out = []
    for n, row in enumerate(rows, start=1):
        p = row.get("path")
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"manifest {display(path)} row {n}: 'path' is missing")

        def get(*keys: str, row: dict[str, Any] = row) -> str | None:
            for k in keys:
                v = row.get(k)
                if v is not None and str(v).strip():
                    return str(v).strip()
            return None

        basis = get("legal_basis", "legal-basis")
        if basis is not None and basis not in LEGAL_BASES:
            raise InputError(
                f"manifest {display(path)} row {n}: legal basis {basis!r} is not one of "
                f"{', '.join(LEGAL_BASES)}"
            )
        target = Path(p.strip())
        if not target.is_absolute():
            target = path.parent / target
        for f in expand([target]):
            out.append(Source(f, get("source"), basis, get("reference", "ref"), get("notes")))
    return out


@dataclass(frozen=True)
class Prepared:
    source: Source
    name: str
    blake3: str
    sha256: str | None
    size: int
    info: media.MediaInfo | None


def prepare(
    vault: Vault, src: Source, sha256: bool, progress: Callable[[int], None] | None
) -> Prepared:
    """Hash + store + probe one file (runs in a worker thread)."""
    try:
        name = src.path.name.encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{display(src.path)}: the file name is not valid UTF-8",
            hint="rename the file (keep a note of the original name) and ingest it again",
        ) from None
    try:
        st = src.path.lstat()
    except OSError as exc:
        raise InputError(f"{display(src.path)}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise InputError(
            f"{display(src.path)} is a symbolic link",
            hint="ingest the file it points to, so the record names the real file",
        )
    stored = vault.put_file(src.path, sha256=sha256, progress=progress)
    digests = stored.digests
    info = media.probe(stored.path, name=display(src.path))
    if info is not None:
        for kind, data in info.sidecars().items():
            if not vault.has_sidecar(digests.blake3_hex, kind):
                vault.put_sidecar(digests.blake3_hex, kind, data)
    return Prepared(src, name, digests.blake3_hex, digests.sha256_hex, digests.size, info)


def _ingest_entry(p: Prepared, case_id: str, exhibit: str, by: Signer, now: datetime) -> bytes:
    info = p.info
    fields: list[tuple[str, str | int | None]] = [
        ("case", case_id),
        ("exhibit", exhibit),
        ("item", p.blake3),
        ("name", p.name),
        ("size", p.size),
        ("sha256", p.sha256),
        ("kind", "media" if info else "attachment"),
    ]
    if info is not None:
        fields.append(("metadata", info.metadata_digest))
        fields.append(("content", info.content_digest))
        for s in info.streams:
            fields.append(
                (
                    "stream",
                    f"{s.index} {s.codec_type} {s.codec_name} {s.packets} {s.digest} "
                    f"{s.extradata or '-'}",
                )
            )
        fields.append(("tool", info.tool))
    fields += [
        ("source", p.source.source),
        ("legal-basis", p.source.legal_basis),
        ("ref", p.source.ref),
        ("notes", p.source.notes),
        ("by", by.name),
        ("holder", by.name),
    ]
    return sign_entry(Entry.build("ingest", now, fields), [by])


def ingest(
    c: Custody,
    sources: Sequence[Source],
    *,
    case_id: str,
    by: Signer,
    now: Callable[[], datetime],
    sha256: bool = False,
    jobs: int = 1,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Outcome]:
    """Ingest `sources` into `case_id`, signed by `by`; yields one Outcome per file, in order.

    Files are hashed, stored and probed by `jobs` threads (BLAKE3 and ffmpeg both run
    outside the GIL); entries are appended one transaction per file, in input order,
    so exhibit numbers follow the order given.  A bad file is reported as `failed`
    with its reason and the rest proceed.
    """
    get_case(c, case_id)
    for s in sources:
        if s.legal_basis is not None and s.legal_basis not in LEGAL_BASES:
            raise UsageError(
                f"legal basis {s.legal_basis!r} is not one of {', '.join(LEGAL_BASES)}"
            )
    vault = Vault(c.home.vault_root)
    stop = threading.Event()

    def progress(n: int) -> None:
        # Ctrl-C reaches only the main thread: workers notice through this callback,
        # and the vault then drops their temp files (no object is created).
        if stop.is_set():
            raise _Stopped
        if on_bytes is not None:
            on_bytes(n)

    def work(src: Source) -> Prepared | CustodyError:
        try:
            return prepare(vault, src, sha256, progress)
        except CustodyError as exc:
            return exc

    pool = ThreadPoolExecutor(max(1, jobs))
    try:
        for src, prepared in zip(sources, pool.map(work, sources), strict=True):
            shown = display(src.path)
            if isinstance(prepared, CustodyError):
                yield Outcome(shown, "failed", error=prepared.message)
                continue
            existing = c.store.item_in_case(case_id, prepared.blake3)
            if existing is not None:
                yield _outcome(shown, "already", existing)
                continue
            try:
                with c.log.transaction() as w:
                    number = c.store.next_exhibit_number(w.session, case_id)
                    exhibit = exhibit_label(case_id, number)
                    when = now()
                    data = _ingest_entry(prepared, case_id, exhibit, by, when)
                    append_indexed(w, data)
                row = c.store.item_in_case(case_id, prepared.blake3)
                assert row is not None
            except CustodyError as exc:
                yield Outcome(shown, "failed", blake3=prepared.blake3, error=exc.message)
                continue
            yield _outcome(shown, "ingested", row)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class _Stopped(Exception):
    """Raised in worker threads when the run is being stopped."""


def _outcome(shown: str, status: str, row: ItemRow) -> Outcome:
    return Outcome(
        shown,
        status,
        exhibit=row.exhibit,
        index=row.ingest_idx,
        blake3=row.blake3,
        sha256=row.sha256,
        size=row.size,
        kind=row.kind,
    )


# -- verification of files -------------------------------------------------------------


@dataclass(frozen=True)
class FileVerdict:
    """The answer for one file put in front of custody."""

    path: str
    verdict: Verdict
    item: ItemRow | None

    @property
    def exact(self) -> bool:
        return isinstance(self.verdict, ExactMatch)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, **self.verdict.to_json()}
        if self.item is not None:
            out.update(
                exhibit=self.item.exhibit,
                log_index=self.item.ingest_idx,
                ingested_at=self.item.ingested_at,
                ingested_by=self.item.ingested_by,
                holder=self.item.holder,
                item=self.item.blake3,
            )
        return out


def media_record(vault: Vault, blake3: str) -> MediaRecord | None:
    """The ingested media record of an item, rebuilt from its sidecars (None if absent)."""
    if not vault.has_sidecar(blake3, "probe"):
        return None
    return MediaRecord(
        snapshot=vault.read_sidecar(blake3, "probe"),
        framehash=vault.read_sidecar(blake3, "framehash"),
        streamhash=vault.read_sidecar(blake3, "streamhash"),
    )


def item_record(c: Custody, row: ItemRow) -> MediaRecord | None:
    """The media record kept for an item (None for attachments)."""
    return media_record(Vault(c.home.vault_root), row.blake3)


def _checked_item(c: Custody, row: ItemRow) -> ItemRow:
    """The item row, after checking its ingest entry on the log really names this file."""
    data = c.store.entry(row.ingest_idx)
    entry = SignedEntry.parse(data).entry if data is not None else None
    # An exhibit's record is its `ingest` entry, or its `derive` entry for a derived clip.
    if entry is None or entry.type not in ("ingest", "derive") or entry.get("item") != row.blake3:
        raise VerificationError(
            f"exhibit {row.exhibit}: log entry {row.ingest_idx} does not record this file",
            hint="the database's item index was altered; run 'custody log verify'",
        )
    return row


def verify_file(c: Custody, path: Path, case_id: str | None = None) -> FileVerdict:
    """Classify one file against what this log has ingested (docs/spec/media.md).

    Exact match by BLAKE3 first; otherwise the file is probed and compared with
    the media items (of `case_id`, if given): same content in another container,
    metadata changed, content modified, or unknown.
    Raises InputError if the file cannot be read.
    """
    shown = display(path)
    digests = hash_file(path)
    blake3 = digests.blake3_hex
    candidate_rows = c.store.items_by_digest(blake3)
    if case_id is not None:
        candidate_rows = [r for r in candidate_rows if r.case_id == case_id]
    if candidate_rows:
        row = _checked_item(c, candidate_rows[0])
        found = Record(blake3=row.blake3, size=row.size)
        return FileVerdict(shown, classify(found, Record(blake3=blake3, size=digests.size)), row)
    info = media.probe(path, strict=False)
    new = Record(blake3=blake3, size=digests.size, media=info.record if info else None)
    if info is None:
        return FileVerdict(
            shown,
            Unknown(
                reason="no ingested file has these bytes, and it is not media to compare by content"
            ),
            None,
        )
    vault = Vault(c.home.vault_root)
    rows = c.store.items_in_case(case_id) if case_id else c.store.all_items()
    # Same content digest first (cheap and decisive), then every other media item.
    rows = sorted(
        (r for r in rows if r.kind == "media"),
        key=lambda r: r.content_digest != info.content_digest,
    )
    best: tuple[Verdict, ItemRow] | None = None
    for row in rows:
        record = media_record(vault, row.blake3)
        if record is None:
            continue
        verdict = classify(Record(row.blake3, row.size, record), new)
        if isinstance(verdict, Unknown):
            continue
        if best is None or verdict.rank < best[0].rank:
            best = (verdict, row)
        if verdict.rank <= 1:
            break
    if best is None:
        return FileVerdict(
            shown, Unknown(reason="nothing on this log has these bytes or shares its footage"), None
        )
    return FileVerdict(shown, best[0], _checked_item(c, best[1]))


# -- timeline -----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One log entry about an item, for `custody history`."""

    index: int
    type: str
    time: str
    signers: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]

    def as_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for k, v in self.fields:
            if k in fields:
                existing = fields[k]
                fields[k] = [*existing, v] if isinstance(existing, list) else [existing, v]
            else:
                fields[k] = v
        return {
            "index": self.index,
            "type": self.type,
            "time": self.time,
            "signed_by": list(self.signers),
            "fields": fields,
        }


def concerns(type_: str, fields: Sequence[tuple[str, str]], item: str) -> bool:
    """Whether an entry of an item's case (its type and fields) is about the item: it
    names the item, derives from it, or is a consent of the case that may cover it."""
    items = [v for k, v in fields if k == "item"]
    if type_ == "consent":
        action = next((v for k, v in fields if k == "action"), None)
        return not items or item in items or action == "revoke"
    return item in items or any(k == "parent" and v == item for k, v in fields)


def case_histories(c: Custody, case_id: str) -> dict[str, list[Event]]:
    """Every item's timeline in a case, reading and re-checking the case's entries once.

    Keyed by item (BLAKE3); see `history` for what a timeline holds.
    """
    parties = c.log.parties()
    with c.store.session() as s:
        rows = Store.case_entries(s, case_id)
    checked = []
    for index, data in rows:
        signed = check_entry(index, data, parties)
        if signed.entry.get("case") != case_id:
            raise VerificationError(
                f"log entry {index} is indexed under case {case_id} but is about another",
                hint="run 'custody log verify'",
            )
        checked.append((index, signed))
    out: dict[str, list[Event]] = {}
    for item in c.store.items_in_case(case_id):
        out[item.blake3] = [
            Event(index, sg.entry.type, sg.entry.time, sg.signer_names, sg.entry.fields)
            for index, sg in checked
            if concerns(sg.entry.type, sg.entry.fields, item.blake3)
        ]
    return out


def history(c: Custody, row: ItemRow) -> list[Event]:
    """Every log entry about `row`'s item, in log order, each re-checked against the log.

    That is its ingest (or derive), the consents of its case that cover it, every
    handoff, refusal, access and derivation naming it.
    """
    return case_histories(c, row.case_id).get(row.blake3, [])
