"""Cases, exhibits and evidence ingest: the library API behind `custody case` and
`custody ingest` (docs/ingest.md).

Ingesting a file is, in order:

1. one pass that copies it into the evidence store's staging area, in the kernel
   where it can, and hashes the copy (BLAKE3, optionally SHA-256) as it is written
   (`custody.infra.vault.Vault.stage_file`);
2. for media, the canonical ffprobe snapshot and the per-stream packet hashes of
   the staged copy (`custody.infra.ffmpeg`), kept as sidecars in the store;
3. one write transaction that allocates the exhibit number, appends the signed
   `ingest` entry and records the item: all of it, or none of it;
4. the staged copy is linked into the write-once objects/ (`Staged.place`).

A file refused at any step before 3 leaves no object (its staged copy is
discarded).  An interrupted run leaves at most a staged copy: the next run places
it when its entry was committed and removes it otherwise (`recover`).  A file
already ingested into the case is reported with its log index and nothing is
appended.  docs/ingest.md lists the crash points and what each leaves.

Each media item's entry also records when and where its metadata says it was recorded
(`recorded`, `location`: `custody.media.recorded`), the consent grant it comes under
(`consent`, from `--consent INDEX`: `consent_hash`) and, for an emergency disclosure,
its `justification` (`check_source`).  A clip the custody rules refuse (outside the
window or area of the request its consent answers) fails alone; the batch goes on.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from custody.app.home import Custody
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    LockTimeoutError,
    NotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.infra import ffmpeg as media
from custody.infra.crash import crash_point
from custody.infra.files import NoSpaceError
from custody.infra.indexer import append_indexed
from custody.infra.store import CaseRow, ItemRow, Store
from custody.infra.vault import Recovery, Staged, StagedAhead, Vault, hash_file
from custody.media.compare import (
    ContentModified,
    ExactMatch,
    MediaRecord,
    Record,
    Unknown,
    Verdict,
    classify,
)
from custody.media.digest import SNAPSHOT_VERSION
from custody.media.recorded import Recorded, recorded_of
from custody.media.relation import Relation, names_original, relation, stream_kinds
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.parties import check_entry
from custody.model.rules import entry_hash
from custody.model.timeline import Event as Event
from custody.model.timeline import concerns as concerns
from custody.model.types import LEGAL_BASES as LEGAL_BASES
from custody.tlog.note import Signer

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
        raise NotFoundError(
            f"no item whose BLAKE3 digest starts with {prefix}"
            + (f" in case {case_id}" if case_id is not None else "")
        )
    if len(rows) > 1:
        raise ambiguous(prefix, rows)
    return rows[0]


#: How many candidates an ambiguity message lists (the rest are counted).
_SHOWN_CANDIDATES = 6


def ambiguous(prefix: str, rows: Sequence[ItemRow]) -> UsageError:
    """The error for a digest prefix that names several exhibits: one line listing the
    candidates (exhibit, case, digest) and how to choose.

    The same clip ingested into two cases has one digest: more digits cannot separate
    its exhibits, only the exhibit number or --case can, and the message says so.
    """
    count = f"at least {len(rows)}" if len(rows) >= 20 else str(len(rows))
    shown = [
        f"{r.exhibit} (case {r.case_id}, {r.name}, b3 {r.blake3[:12]}…)"
        for r in rows[:_SHOWN_CANDIDATES]
    ]
    more = f", and {len(rows) - _SHOWN_CANDIDATES} more" if len(rows) > _SHOWN_CANDIDATES else ""
    example = rows[0]
    if len({r.blake3 for r in rows}) == 1:
        cases = sorted({r.case_id for r in rows})
        return UsageError(
            f"{prefix} is one clip ingested as {count} exhibits: "
            f"{'; '.join(shown)}{more}; more digits cannot tell them apart",
            hint=f"give the exhibit number (e.g. {example.exhibit}) or --case "
            f"({' or '.join(cases[:_SHOWN_CANDIDATES])})",
        )
    return UsageError(
        f"digest prefix {prefix} matches {count} exhibits: {'; '.join(shown)}{more}",
        hint=f"give the exhibit number (CASE/NNNN, e.g. {example.exhibit}), more digits of "
        "the digest, or --case CASE",
    )


# -- ingest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file to ingest, with what a manifest row may say about it."""

    path: Path
    source: str | None = None
    legal_basis: str | None = None
    ref: str | None = None
    notes: str | None = None
    #: the log index (or entry hash) of the consent grant it is taken under, as given
    consent: str | None = None
    #: why it could not wait for consent or a warrant (legal basis `emergency`)
    justification: str | None = None


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
    #: the error behind a `failed` outcome (not in the JSON: `error` is its message).
    cause: CustodyError | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        out = {
            k: v for k, v in self.__dict__.items() if v is not None and k not in ("extra", "cause")
        }
        out.update(self.extra)
        return out


_SHOWN_AS_BYTES = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")


def _as_bytes(match: re.Match[str]) -> str:
    ch = match.group()
    if "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{ord(ch) - 0xDC00:02x}"
    return "".join(f"\\x{b:02x}" for b in ch.encode("utf-8"))


def display(path: Path) -> str:
    """A path for messages: bytes that are not UTF-8, and control characters, shown
    as \\xNN escapes (so a name cannot break a line or drive a terminal), never a crash."""
    return _SHOWN_AS_BYTES.sub(_as_bytes, os.fsdecode(os.fsencode(path)))


def recorded_name(raw: bytes) -> tuple[str, str | None]:
    """The `name` (and `name-bytes`) an entry records for a file name's raw bytes.

    A name that is valid UTF-8, has no control character (U+0000-U+001F, U+007F-U+009F)
    and neither starts nor ends with a space is recorded as it is, and `name-bytes`
    is None.  Any other name (evidence is never renamed to fit) is recorded escaped:
    every byte that is not UTF-8, every byte of a control character, and a leading
    or trailing space, as `\\xNN` (two lower-case hex digits); a backslash as
    `\\\\`; with `name-bytes` the lower-case hex of the raw bytes, which is what
    the name is (docs/ingest.md, "File names").
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text and not _SHOWN_AS_BYTES.search(text) and text == text.strip(" "):
        return text, None
    loose = raw.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    escaped = _SHOWN_AS_BYTES.sub(_as_bytes, loose)
    if escaped.startswith(" "):
        escaped = "\\x20" + escaped[1:]
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\x20"
    return escaped, raw.hex()


def expand(paths: Iterable[Path]) -> Iterator[Path]:
    """Files and folders (recursively), in a stable order: folders sorted by name.

    A path that cannot even be looked at (a name too long for the file system) is
    yielded as it is: ingest then refuses it, naming it and the reason.
    """
    for path in paths:
        try:
            folder = path.is_dir() and not path.is_symlink()
        except OSError:
            folder = False
        if folder:
            for root, dirs, files in os.walk(path):
                dirs.sort(key=os.fsencode)
                for name in sorted(files, key=os.fsencode):
                    yield Path(root) / name
        else:
            yield path


def read_manifest(path: Path) -> list[Source]:
    """Rows of a CSV (header row) or JSON (a list of objects) manifest.

    Columns/keys: `path` (required; relative to the manifest's folder), `source`,
    `legal_basis` (or `legal-basis`), `reference` (or `ref`), `notes`, `consent` (the
    log index of the consent grant the file comes under), `justification` (required
    with legal basis `emergency`).
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
        except ValueError as exc:
            # A number too long to convert (over Python's 4300-digit limit).
            raise InputError(f"manifest {display(path)} is not valid JSON: {exc}") from None
        except RecursionError:
            # json.loads recurses once per nesting level: 100,000 "[" exhaust the stack.
            raise InputError(
                f"manifest {display(path)} is nested too deeply to be a list of rows",
                hint="a manifest is a JSON list of objects, one per file",
            ) from None
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            data = data["items"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"manifest {display(path)} must be a JSON list of objects")
        rows = data
    else:
        reader = csv.DictReader(text.splitlines())
        try:
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise InputError(
                    f"manifest {display(path)} has no 'path' column",
                    hint="the first row must name the columns: "
                    "path,source,legal_basis,reference,notes",
                )
            rows = list(reader)
        except csv.Error as exc:
            # e.g. a field over csv's 131072-character limit.
            raise InputError(
                f"manifest {display(path)} is not valid CSV: {exc} (near line {reader.line_num})"
            ) from None
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
        consent, justification = get("consent"), get("justification")
        if basis == "emergency" and justification is None:
            raise InputError(
                f"manifest {display(path)} row {n}: legal basis emergency needs a "
                "'justification': why it could not wait for consent or a warrant"
            )
        for f in expand([target]):
            out.append(
                Source(
                    f,
                    get("source"),
                    basis,
                    get("reference", "ref"),
                    get("notes"),
                    consent,
                    justification,
                )
            )
    return out


@dataclass(frozen=True)
class Prepared:
    """A file hashed, staged and measured, waiting for its entry (`prepare`)."""

    source: Source
    name: str
    name_bytes: str | None
    blake3: str
    sha256: str | None
    size: int
    info: media.MediaInfo | None
    staged: Staged
    #: the exhibit this file already is in the case being ingested into, when the
    #: worker found one (items are never removed: this stays true)
    existing: ItemRow | None = None


def prepare(
    vault: Vault,
    src: Source,
    sha256: bool,
    progress: Callable[[int], None] | None,
    before_measuring: Callable[[], object] | None = None,
    ahead: StagedAhead | None = None,
) -> Prepared:
    """Copy, hash, stage and measure one file, and store its sidecars (runs in a worker
    thread of `ingest`, off the serial append).

    `before_measuring` is called between the copy and the measuring (`ingest` waits
    there for a key being unlocked).  `ahead` is this file's copy started earlier
    (`custody.infra.vault.StagedAhead`, into `vault`): it is taken instead of copying
    the file again (whoever made it drops it, should this raise before taking it).

    The copy is staged (`Vault.stage_file`): the caller places or discards it.  The
    sidecars are durable when this returns (`Vault.put_sidecars`), before any entry
    names the object; should the file then be refused they stay, harmlessly (they are
    content-addressed: a later ingest of the file writes the same bytes).

    Raises:
        InputError: the file is refused (unreadable, empty, a symbolic link, damaged
            media, or named as audio or video without being footage); nothing stays
            in the store.
        StorageError: the store cannot be written (`NoSpaceError` for a full disk).
    """
    name, name_bytes = recorded_name(os.fsencode(src.path.name))
    try:
        st = src.path.lstat()
    except OSError as exc:
        raise InputError(f"{display(src.path)}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise InputError(
            f"{display(src.path)} is a symbolic link",
            hint="ingest the file it points to, so the record names the real file",
        )
    if ahead is not None:
        staged = ahead.take()
    else:
        staged = vault.stage_file(src.path, sha256=sha256, progress=progress)
    try:
        digests = staged.digests
        if before_measuring is not None:
            before_measuring()
        stored = _stored_record(vault, digests.blake3_hex)
        info = media.probe(
            staged.path,
            name=display(src.path),
            snapshot=SNAPSHOT_VERSION if stored is None else stored.snapshot_version,
        )
        if info is None:
            _check_not_named_as_media(src.path)
        elif not _same_measurement(stored, info.record):
            # Durable before the entry that names the object is committed (export and
            # verify read them); written here, by the worker, off the serial append.
            vault.put_sidecars(digests.blake3_hex, info.sidecars())
    except BaseException:
        staged.discard()
        raise
    return Prepared(
        src, name, name_bytes, digests.blake3_hex, digests.sha256_hex, digests.size, info, staged
    )


def _stored_record(vault: Vault, blake3: str) -> MediaRecord | None:
    """The sidecars the store holds already for these bytes (ingested into another case
    before, perhaps by an earlier custody), or None.

    A file is then measured in the snapshot version of its stored probe sidecar, so
    that the bytes agree (a custody that wrote ``custody/snapshot/v1`` with ffprobe and
    one that writes v2 in-process would otherwise disagree on the same file).  An
    unreadable sidecar is left for `Vault.put_sidecars` to report.
    """
    try:
        return media_record(vault, blake3)
    except (FormatError, StorageError, NotFoundError):
        return None


def _same_measurement(stored: MediaRecord | None, fresh: MediaRecord) -> bool:
    """Whether the stored sidecars say what the fresh measurement says: the same
    metadata and content digests.  Their packet-list bytes may still differ (one
    written by the ffmpeg binary, one in-process: the same packets, digests and
    counts, docs/spec/media.md §5.1); the stored ones are kept, never rewritten."""
    return (
        stored is not None
        and stored.metadata_digest == fresh.metadata_digest
        and stored.content_digest == fresh.content_digest
    )


def _check_not_named_as_media(path: Path) -> None:
    """The acceptance rule's second half (docs/ingest.md, "What is footage").

    A name with an audio or video extension says the file is footage; ffprobe has
    just found that it is not (text, a picture, bytes it cannot decode are refused
    by `media.probe` itself).  Recording it as an attachment would hide a broken or
    mislabelled export, so it is refused, whatever its content.

    Raises:
        InputError: the name says audio or video.
    """
    suffix = Path(os.fsdecode(path.name)).suffix.lower()
    # The one list of media extensions is ffmpeg's (it also tells damaged media from
    # other files there).
    if suffix in media.MEDIA_EXTENSIONS:
        raise InputError(
            f"{display(path)} is named as audio or video ({suffix}) but is not footage",
            hint="the export may be damaged or mislabelled; ingest the original export",
        )


def recorded(p: Prepared) -> Recorded:
    """When and where the prepared clip says it was recorded (its metadata snapshot's
    tags, `custody.media.recorded`); nothing for an attachment."""
    return Recorded() if p.info is None else recorded_of(p.info.metadata)


def _ingest_entry(
    p: Prepared,
    case_id: str,
    exhibit: str,
    by: Signer,
    now: datetime,
    consent: str | None = None,
) -> bytes:
    info = p.info
    when = recorded(p)
    fields: list[tuple[str, str | int | None]] = [
        ("case", case_id),
        ("exhibit", exhibit),
        ("item", p.blake3),
        ("name", p.name),
        ("name-bytes", p.name_bytes),
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
        ("consent", consent),
        ("justification", p.source.justification),
        ("recorded", when.time),
        ("location", when.location),
        ("notes", p.source.notes),
        ("by", by.name),
        ("holder", by.name),
    ]
    return sign_entry(Entry.build("ingest", now, fields), [by])


class BatchStopped(StorageError):
    """A batch stopped at a storage fault every later file would meet too (a full disk,
    the log's write lock held by another process past CUSTODY_LOCK_TIMEOUT).

    `done` holds the outcomes up to and including the file that failed; the
    message names the fault, how far the batch got and how many files were not
    attempted.
    """

    def __init__(self, cause: StorageError, done: Sequence[Outcome], total: int) -> None:
        ingested = sum(1 for o in done if o.status == "ingested")
        already = sum(1 for o in done if o.status == "already")
        failed = sum(1 for o in done if o.status == "failed")
        left = total - len(done)
        super().__init__(
            f"{cause.message}; stopped after {len(done)} of {total} file(s) "
            f"({ingested} ingested, {already} already ingested, {failed} failed); "
            f"{left} not attempted",
            hint=(cause.hint + ", then " if cause.hint else "")
            + "run the same command again: what was done is kept, the rest is ingested",
        )
        self.cause = cause
        self.done = tuple(done)
        self.total = total


def check_source(s: Source) -> None:
    """The legal-basis options of one file, before anything is copied (UsageError):
    a known basis; `justification` with `emergency` and only with it; `consent` only
    with legal basis `consent`."""
    if s.legal_basis is not None and s.legal_basis not in LEGAL_BASES:
        raise UsageError(f"legal basis {s.legal_basis!r} is not one of {', '.join(LEGAL_BASES)}")
    shown = display(s.path)
    if s.legal_basis == "emergency" and not (s.justification or "").strip():
        raise UsageError(
            f"{shown}: legal basis emergency needs --justification TEXT (or a manifest "
            "'justification'): why it could not wait for consent or a warrant",
            hint="an emergency disclosure must be reviewed by another party later "
            "(custody review); the justification is what they review",
        )
    if s.justification is not None and s.legal_basis != "emergency":
        raise UsageError(
            f"{shown}: --justification is for legal basis emergency, not {s.legal_basis or 'none'}"
        )
    if s.consent is not None and s.legal_basis != "consent":
        raise UsageError(
            f"{shown}: --consent {s.consent} names a consent, but the legal basis is "
            f"{s.legal_basis or 'not given'}",
            hint="give --legal-basis consent with --consent",
        )


def consent_hash(c: Custody, ref: str) -> str:
    """The entry hash of the consent grant at log index `ref` (or with that entry hash).

    Raises UsageError when `ref` is not a consent grant (a refusal, a revocation,
    another entry), NotFoundError when the log has no such entry.
    """
    text = ref.strip()
    if text.isascii() and text.isdigit() and len(text) <= 19:
        index = int(text)
        data = c.store.entry(index)
    elif re.fullmatch(r"[0-9a-f]{64}", text):
        with c.store.session() as s:
            found = Store.index_of(s, text)
        index = -1 if found is None else found
        data = None if found is None else c.store.entry(found)
    else:
        raise UsageError(
            f"--consent {ref!r} is not a log index",
            hint="give the log index of the consent grant ('custody request list' shows it)",
        )
    if data is None:
        raise NotFoundError(
            f"--consent {ref}: the log has no entry {ref}",
            hint="import the owner's answer first ('custody log import ANSWER') and give the "
            "index it printed",
        )
    entry = SignedEntry.parse(data).entry
    if entry.type == "refusal":
        raise UsageError(
            f"--consent {ref}: log entry {index} is a refusal by {entry.get('owner')}, not a "
            "consent: the owner declined the request",
            hint="footage the owner declined to give cannot be ingested under consent",
        )
    if entry.type != "consent" or entry.get("action") != "grant":
        what = "a consent revocation" if entry.type == "consent" else f"a {entry.type} entry"
        raise UsageError(
            f"--consent {ref}: log entry {index} is {what}, not a consent grant",
            hint="give the log index of the consent grant the footage comes under",
        )
    return entry_hash(data)


def recover(c: Custody, vault: Vault) -> Recovery:
    """Finish or remove what interrupted ingests and derives left in the store's staging
    area: a staged copy whose item is on the log is placed, any other is removed.

    Raises:
        StorageError: the store cannot be read or written.
    """
    return vault.recover(lambda blake3: bool(c.store.items_by_digest(blake3)))


def ingest(
    c: Custody,
    sources: Sequence[Source],
    *,
    case_id: str,
    by: Signer | Future[Signer],
    now: Callable[[], datetime],
    sha256: bool = False,
    jobs: int = 1,
    on_bytes: Callable[[int], None] | None = None,
    on_file: Callable[[Path, int], None] | None = None,
    ahead: StagedAhead | None = None,
) -> Generator[Outcome, None, None]:
    """Ingest `sources` into `case_id`, signed by `by`; yields one Outcome per file, in order.

    Files are copied, hashed, staged, measured and their sidecars stored by `jobs`
    worker threads (the kernel copy, BLAKE3 and the media library all run outside the
    GIL); entries are appended by the calling thread, one short transaction per file,
    in input order, so exhibit numbers follow the order given, and each file's copy
    enters objects/ only once its entry is committed (placed by one more thread while
    the next entry is appended; each Outcome is yielded once its copy is in place).
    At most `_AHEAD_PER_JOB` files per job are prepared ahead of the one being
    appended, so memory and what a stop leaves staged stay small whatever the number
    of files.  A bad file is reported as `failed` with its reason and the rest
    proceed.  A file that another process ingested meanwhile is reported as
    `already`.  Leftovers of interrupted runs are recovered first (`recover`).

    `by` may be a Future of the signer (`Custody.signer_meanwhile`): files are then
    copied, hashed and measured while its key is unlocked, and it is awaited before the
    first entry; whatever it raises stops the batch before any entry is appended.

    `ahead` is the first source's copy, started before the home was opened
    (`custody.infra.vault.StagedAhead`): taken for that file when it was made into
    this home's evidence store (else dropped, and the file copied as any other).  The
    caller drops it in any case once this is done (a no-op once taken).

    Progress: `on_bytes(n)` as bytes are hashed and `on_file(path, size)` as each
    file has been prepared (copied, hashed, measured; `size` 0 for a refused file),
    both from worker threads (the callbacks must be thread-safe); whatever they raise
    stops the batch.

    Raises:
        BatchStopped: the disk filled up or the write lock was not granted in time;
            the batch stops there (after yielding the outcome of the file that failed).
        StorageError, NotFoundError, UsageError: before any file is ingested.
    """
    get_case(c, case_id)
    c.store.require_writable()  # a read-only home: fail before any file is copied
    consents: dict[str, str] = {}
    for s in sources:
        check_source(s)
        if s.consent is not None and s.consent not in consents:
            consents[s.consent] = consent_hash(c, s.consent)
    vault = Vault(c.vault_root)
    recover(c, vault)
    stop = threading.Event()

    def progress(n: int) -> None:
        # Ctrl-C reaches only the main thread: workers notice through this callback,
        # and the vault then drops their temp files (no object is created).
        if stop.is_set():
            raise _Stopped
        if on_bytes is not None:
            on_bytes(n)

    # A key unlocked meanwhile holds Argon2id's memory (64 MiB) for ~0.15 s: the
    # workers copy and hash during it, but load the media library (~50 MB) only after,
    # so the two never add up in the peak memory.
    key_ready = threading.Event()
    if isinstance(by, Future):
        by.add_done_callback(lambda _: key_ready.set())
    else:
        key_ready.set()

    if ahead is not None:
        if sources and ahead.src == sources[0].path and _same_folder(ahead.vault.root, vault.root):
            ahead.attach(progress)  # the bytes it hashed so far, then the rest as it goes
        else:
            ahead.drop()
            ahead = None
    first = ahead

    def unlocked() -> None:
        while not key_ready.wait(0.05):
            if stop.is_set():
                raise _Stopped

    def work(src: Source, ahead: StagedAhead | None) -> Prepared | CustodyError:
        if stop.is_set():
            raise _Stopped
        prepared: Prepared | CustodyError
        try:
            ready = prepare(vault, src, sha256, progress, unlocked, ahead)
        except CustodyError as exc:
            prepared = exc
        else:
            # Off the serial path: a file already in the case needs no transaction.
            try:
                found = c.store.item_in_case(case_id, ready.blake3)
            except CustodyError:
                found = None  # `_commit_one` meets the fault, or finds the item, itself
            except BaseException:
                ready.staged.discard()
                raise
            prepared = ready if found is None else replace(ready, existing=found)
        if on_file is not None:
            try:
                on_file(src.path, prepared.size if isinstance(prepared, Prepared) else 0)
            except BaseException:
                if isinstance(prepared, Prepared):
                    prepared.staged.discard()
                raise
        return prepared

    done: list[Outcome] = []
    workers = max(1, jobs)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="custody-ingest")
    pending: deque[tuple[Source, Future[Prepared | CustodyError]]] = deque()
    queue = iter(sources)

    def submit_ahead() -> None:
        nonlocal first
        # Bounded: the files being prepared and those waiting for their entry.
        while len(pending) < workers * _AHEAD_PER_JOB:
            src = next(queue, None)
            if src is None:
                return
            pending.append((src, pool.submit(work, src, first)))
            first = None

    # One thread places each committed file's copy (a link and a folder fsync) while
    # the next file's entry is appended; outcomes are still told in input order, each
    # once its copy is in place.
    placer = ThreadPoolExecutor(1, thread_name_prefix="custody-place")
    placing: Future[Outcome] | None = None
    stopping: StorageError | None = None
    try:
        submit_ahead()
        while pending or placing is not None:
            step: Outcome | _ToPlace | None = None
            if pending and stopping is None:
                if isinstance(by, Future):
                    # A key being unlocked meanwhile (`Custody.signer_meanwhile`): its
                    # errors (a wrong passphrase, a revoked key) stop the batch here,
                    # before any entry, as they would have before it started (and
                    # `finally` drops every copy staged so far).
                    by = by.result()
                src, future = pending.popleft()
                prepared = future.result()
                submit_ahead()  # the workers go on while this file's entry is appended
                consent = None if src.consent is None else consents[src.consent]
                step = _commit_one(c, src, prepared, case_id, by, now, consent)
            told: list[Outcome] = []
            if placing is not None:
                told.append(placing.result())
                placing = None
            if isinstance(step, _ToPlace):
                placing = placer.submit(_place_one, c, step)
            elif step is not None:
                told.append(step)
            for outcome in told:
                done.append(outcome)
                yield outcome
                # A full disk or a write lock held past CUSTODY_LOCK_TIMEOUT would meet
                # every later file too: stop once for the batch, not once per file
                # (after telling the file whose entry is committed already, if any).
                if outcome.status == "failed" and isinstance(
                    outcome.cause, NoSpaceError | LockTimeoutError
                ):
                    stopping = stopping or outcome.cause
            if stopping is not None and placing is None:
                raise BatchStopped(stopping, done, len(sources))
    finally:
        stop.set()
        placer.shutdown(wait=True)
        pool.shutdown(wait=True, cancel_futures=True)
        # Files staged ahead of a stop are not committed: drop their copies now
        # (the next run would remove them anyway).
        for _, future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                left = future.result()
                if isinstance(left, Prepared):
                    left.staged.discard()


def _same_folder(a: Path, b: Path) -> bool:
    """Whether two paths name the same folder (however each was spelt)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True)
class _ToPlace:
    """A file whose entry is on the log (`_commit_one`), its copy still staged."""

    prepared: Prepared
    shown: str
    case_id: str
    #: the Outcome of the entry this run committed; None: the item was on the log already
    committed: Outcome | None
    existing: ItemRow | None


def _commit_one(
    c: Custody,
    src: Source,
    prepared: Prepared | CustodyError,
    case_id: str,
    by: Signer,
    now: Callable[[], datetime],
    consent: str | None = None,
) -> Outcome | _ToPlace:
    """The serial half of ingesting a prepared file: commit the entry (unless the item is in the
    case already); the file's failed Outcome, or what `_place_one` must place."""
    shown = display(src.path)
    if isinstance(prepared, CustodyError):
        return Outcome(shown, "failed", error=prepared.message, cause=prepared)
    crash_point("ingest.object-staged")
    staged = prepared.staged
    committed: Outcome | None = None
    try:
        # The worker looked in the case (`ingest`); a file it did not find there is
        # appended at once: should another process have ingested it meanwhile, the
        # custody rules refuse the duplicate and it is found below.
        existing = prepared.existing
        if existing is None:
            try:
                with c.log.transaction() as w:
                    number = c.store.next_exhibit_number(w.session, case_id)
                    exhibit = exhibit_label(case_id, number)
                    data = _ingest_entry(prepared, case_id, exhibit, by, now(), consent)
                    index = append_indexed(w, data)
            except CustodyError as exc:
                # Another process may have ingested the same file into the case
                # meanwhile (its transaction won): that is "already", not a failure.
                existing = c.store.item_in_case(case_id, prepared.blake3)
                if existing is None:
                    staged.discard()
                    return Outcome(
                        shown, "failed", blake3=prepared.blake3, error=exc.message, cause=exc
                    )
            else:
                crash_point("ingest.entry-committed")
                committed = Outcome(
                    shown,
                    "ingested",
                    exhibit=exhibit,
                    index=index,
                    blake3=prepared.blake3,
                    sha256=prepared.sha256,
                    size=prepared.size,
                    kind="media" if prepared.info is not None else "attachment",
                )
    except CustodyError as exc:
        staged.discard()
        return Outcome(shown, "failed", blake3=prepared.blake3, error=exc.message, cause=exc)
    return _ToPlace(prepared, shown, case_id, committed, existing)


def _place_one(c: Custody, step: _ToPlace) -> Outcome:
    """The other half: place the copy of a file whose entry is on the log (run by the
    placing thread of `ingest`, while the next file's entry is appended)."""
    prepared, shown = step.prepared, step.shown
    # The entry is on the log (committed now, or before): the copy goes into place.
    # For a file ingested before, this also restores a missing object.  Should it
    # fail, the staged copy stays for the next run to place (`recover`): it is the
    # evidence an entry names.
    try:
        prepared.staged.place()
    except CustodyError as exc:
        return Outcome(shown, "failed", blake3=prepared.blake3, error=exc.message, cause=exc)
    if step.committed is not None:
        crash_point("ingest.object-placed")
        outcome = step.committed
    else:
        row = step.existing or c.store.item_in_case(step.case_id, prepared.blake3)
        assert row is not None
        outcome = _outcome(shown, "already", row)
    when = recorded(prepared)
    outcome.extra.update(
        {k: v for k, v in (("recorded", when.time), ("location", when.location)) if v}
    )
    return outcome


class _Stopped(Exception):
    """Raised in worker threads when the run is being stopped."""


#: Files prepared ahead of the one whose entry is being appended, per worker thread.
_AHEAD_PER_JOB = 2


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


# -- the evidence store against the log ------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """An exhibit whose object is not in objects/ (`staged`: a staged copy is waiting)."""

    exhibit: str
    blake3: str
    staged: bool
    name: str = ""


@dataclass(frozen=True)
class Damaged:
    """An exhibit whose object is there but altered: its bytes no longer hash to its
    name (`problem` says how it was found: the new digest, or why it cannot be read)."""

    exhibit: str
    blake3: str
    name: str
    problem: str


@dataclass(frozen=True)
class VaultCheck:
    """What `check_vault` found: the store's objects against the items on the log."""

    root: Path
    objects: int
    items: int
    orphans: tuple[str, ...]
    missing: tuple[Missing, ...]
    leftovers: tuple[str, ...]
    live: tuple[str, ...]
    repaired: Recovery | None
    quarantined: tuple[str, ...]
    damaged: tuple[Damaged, ...] = ()
    rehashed: bool = False

    @property
    def ok(self) -> bool:
        """No object without an entry, no entry without its object (or with an altered
        one), no leftover."""
        return not (self.orphans or self.missing or self.leftovers or self.damaged)

    def as_json(self) -> dict[str, Any]:
        return {
            "vault": display(self.root),
            "ok": self.ok,
            "objects": self.objects,
            "items": self.items,
            "objects_without_entries": list(self.orphans),
            "entries_without_objects": [
                {"exhibit": m.exhibit, "item": m.blake3, "name": m.name, "staged": m.staged}
                for m in self.missing
            ],
            "rehashed": self.rehashed,
            "altered_objects": [
                {"exhibit": d.exhibit, "item": d.blake3, "name": d.name, "problem": d.problem}
                for d in self.damaged
            ],
            "staged_leftovers": list(self.leftovers),
            "staged_in_progress": list(self.live),
            "repaired": None
            if self.repaired is None
            else {
                "placed": list(self.repaired.placed),
                "removed": list(self.repaired.removed),
                "quarantined": list(self.quarantined),
            },
        }


def check_vault(c: Custody, *, repair: bool = False, rehash: bool = True) -> VaultCheck:
    """Compare the evidence store with the items on the log (`custody vault check`).

    Lists objects that no entry names, entries (exhibits) whose object is missing,
    and copies left in staging/ by interrupted runs; with `rehash` (the default:
    `--quick` turns it off) every object an exhibit names is re-hashed too, and one
    whose bytes changed is listed with its exhibits.  With `repair`, first finishes
    or removes those leftovers (`recover`) and moves objects no entry names into
    vault/quarantine/ (an altered object is never moved: it is evidence of what
    happened to it).

    Raises:
        StorageError: the store or the database cannot be read (or, repairing, written).
    """
    vault = Vault(c.vault_root)
    repaired = recover(c, vault) if repair else None
    # Objects are listed before the items are read: an object placed meanwhile had
    # its entry committed first, so it is not mistaken for an orphan.
    objects = vault.objects()
    staged = vault.staged()
    items = c.store.all_items()
    named = {i.blake3 for i in items}
    present = set(objects)
    staged_for = {h for h, _ in staged}
    orphans = [h for h in objects if h not in named]
    quarantined: list[str] = []
    if repair:
        for h in orphans:
            vault.quarantine(h)
            quarantined.append(h)
        orphans = []
    ordered = sorted(items, key=lambda i: (i.case_id, i.exhibit))
    missing = tuple(
        Missing(i.exhibit, i.blake3, i.blake3 in staged_for, i.name)
        for i in ordered
        if i.blake3 not in present
    )
    damaged: list[Damaged] = []
    if rehash:
        problems: dict[str, str] = {}
        for h in sorted(named & present):
            problem = _object_problem(vault, h)
            if problem is not None:
                problems[h] = problem
        damaged = [
            Damaged(i.exhibit, i.blake3, i.name, problems[i.blake3])
            for i in ordered
            if i.blake3 in problems
        ]
    return VaultCheck(
        root=vault.root,
        objects=len(objects) - len(quarantined),
        items=len(items),
        orphans=tuple(orphans),
        missing=missing,
        leftovers=tuple(h for h, live in staged if not live),
        live=tuple(h for h, live in staged if live),
        repaired=repaired,
        quarantined=tuple(quarantined),
        damaged=tuple(damaged),
        rehashed=rehash,
    )


def _object_problem(vault: Vault, blake3: str) -> str | None:
    """Why the stored object `blake3` is not what its name says, or None if it is."""
    try:
        vault.verify_object(blake3)
    except VerificationError as exc:
        return exc.message
    except (NotFoundError, StorageError) as exc:
        return exc.message  # removed meanwhile, or unreadable: either way not intact
    return None


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
    return media_record(Vault(c.vault_root), row.blake3)


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


def verify_file(
    c: Custody, path: Path, case_id: str | None = None, *, shown: str | None = None
) -> FileVerdict:
    """Classify one file against what this log has ingested (docs/spec/media.md).

    Exact match by BLAKE3 first; otherwise the file is probed and compared with
    the media items (of `case_id`, if given): same content in another container,
    metadata changed, content modified, or unknown.  `shown` is the name messages
    give the file (default: its path; `-` for standard input).
    Raises InputError if the file cannot be read.
    """
    file_name = path.name if shown is None else Path(shown).name
    shown = display(path) if shown is None else shown
    digests = hash_file(path)
    blake3 = digests.blake3_hex
    candidate_rows = c.store.items_by_digest(blake3)
    if case_id is not None:
        candidate_rows = [r for r in candidate_rows if r.case_id == case_id]
    if candidate_rows:
        row = _checked_item(c, candidate_rows[0])
        found = Record(blake3=row.blake3, size=row.size)
        return FileVerdict(shown, classify(found, Record(blake3=blake3, size=digests.size)), row)
    measured = media.Measurements(path)
    info = measured.get()
    if info is None:
        return FileVerdict(
            shown,
            Unknown(
                reason="no ingested file has these bytes, and it is not media to compare by content"
            ),
            None,
        )
    rows = c.store.items_in_case(case_id) if case_id else c.store.all_items()
    verdict, original = compare_media(
        Vault(c.vault_root),
        rows,
        Record(blake3, digests.size, info.record),
        file_name,
        remeasure=measured.record,
    )
    return FileVerdict(shown, verdict, None if original is None else _checked_item(c, original))


def compare_media(
    vault: Vault,
    rows: Iterable[ItemRow],
    new: Record,
    file_name: str,
    *,
    remeasure: Callable[[str], MediaRecord | None] | None = None,
) -> tuple[Verdict, ItemRow | None]:
    """The verdict of a media file (`new`, not an exact copy of any of `rows`) against
    the media items among `rows`, and the exhibit it names as the file's original.

    The strongest relation wins: same content, then metadata changed, then content
    modified.  An exhibit is named as the original of a content-modified file only when
    the file keeps content of most of its streams (`custody.media.relation`); one
    identical stream shared with exhibits that differ in everything else (clips of one
    camera or one test generator) names one only if it was recorded under the file's
    own name and no other such exhibit was.  Otherwise the verdict is unknown, and its
    reason names the exhibits that share a stream (docs/ingest.md).

    Each exhibit is compared with the file measured in the exhibit's own snapshot
    version: `remeasure(version)` gives that measurement (`media.Measurements.record`);
    without it, an exhibit of another version than `new` is skipped.
    """
    media_new = new.media
    assert media_new is not None
    versions: dict[str, Record | None] = {media_new.snapshot_version: new}

    def measured_as(version: str) -> Record | None:
        if version not in versions:
            try:
                again = None if remeasure is None else remeasure(version)
            except CustodyError:
                again = None
            versions[version] = None if again is None else Record(new.blake3, new.size, again)
        return versions[version]

    # Same content digest first (cheap and decisive), then every other media item.
    rows = sorted(
        (r for r in rows if r.kind == "media"),
        key=lambda r: r.content_digest != media_new.content_digest,
    )
    best: tuple[Verdict, ItemRow] | None = None
    weak: list[tuple[ContentModified, ItemRow, Relation]] = []
    for row in rows:
        record = media_record(vault, row.blake3)
        if record is None:
            continue
        candidate = measured_as(record.snapshot_version)
        if candidate is None or candidate.media is None:
            continue
        verdict = classify(Record(row.blake3, row.size, record), candidate)
        if isinstance(verdict, Unknown):
            continue
        if isinstance(verdict, ContentModified):
            rel = relation(verdict, record, candidate.media)
            if not rel.strong:
                weak.append((verdict, row, rel))
                continue
        if best is None or verdict.rank < best[0].rank:
            best = (verdict, row)
        if verdict.rank <= 1:
            break
    if best is not None:
        return best
    if not weak:
        return Unknown(reason="nothing on this log has these bytes or shares its footage"), None
    pick = names_original([(row.name, rel) for _, row, rel in weak], file_name)
    if pick is not None:
        return weak[pick][0], weak[pick][1]
    rel = weak[0][2]
    shared = rel.describe(stream_kinds(media_new))
    exhibits = [row.exhibit for _, row, _ in weak]
    listed = ", ".join(exhibits[:5])
    if len(exhibits) > 5:
        listed += f", and {len(exhibits) - 5} more"
    whom = f"exhibit {listed}" if len(exhibits) == 1 else f"{len(exhibits)} exhibits ({listed})"
    return (
        Unknown(
            reason=f"no ingested file has these bytes; it shares only {shared} of its "
            f"{rel.streams} streams with {whom}, and nothing in its other streams: not "
            "enough to name an exhibit as its original"
        ),
        None,
    )


# -- timeline -----------------------------------------------------------------------


# `Event` and `concerns` are custody.model.timeline's (one timeline class for the whole
# program); they are imported above and stay importable from here for the report and the CLI.


def case_histories(c: Custody, case_id: str) -> dict[str, list[Event]]:
    """Every item's timeline in a case, reading and re-checking the case's entries once.

    Keyed by item (BLAKE3); see `history` for what a timeline holds.
    """
    parties = c.log.parties()
    with c.store.session() as s:
        rows = Store.case_entries(s, case_id)
    checked: list[Event] = []
    for index, data in rows:
        event = Event.of(index, check_entry(index, data, parties))
        typed = event.typed
        if (typed.case_id if typed is not None else event.entry.get("case")) != case_id:
            raise VerificationError(
                f"log entry {index} is indexed under case {case_id} but is about another",
                hint="run 'custody log verify'",
            )
        checked.append(event)
    out: dict[str, list[Event]] = {}
    for item in c.store.items_in_case(case_id):
        out[item.blake3] = [e for e in checked if concerns(e.type, e.fields, item.blake3)]
    return out


def history(c: Custody, row: ItemRow) -> list[Event]:
    """Every log entry about `row`'s item, in log order, each re-checked against the log.

    That is its ingest (or derive), the consents of its case that cover it, every
    handoff, refusal, access and derivation naming it.
    """
    return case_histories(c, row.case_id).get(row.blake3, [])
