"""The human report of a case, in HTML or PDF (docs/report.md).

A report is what a judge or defence counsel reads: the case and the checkpoint
it rests on, each exhibit's integrity block (hashes, metadata and content
digests, legal basis), a timeline of every signed log entry about it, the
handoffs with their verified signatures, the derived clips with their parents,
a strip of frames from each clip, the result of verifying all of it, and a
certification in the shape of Federal Rule of Evidence 902(14).

`build_report` checks and gathers everything into a `Report` (plain data);
`render_html` and `render_pdf` only lay it out.  A failed check does not raise:
the report exists to say plainly what failed (`Report.passed`,
`Report.failures`), so the CLI decides the exit code.

Every value that comes from the log (file names, purposes, party names) is
user-controlled: HTML escapes all of it, and both formats show control and
format characters (e.g. U+202E, which reverses the text after it) as visible
``<U+202E>`` codes, so a name cannot disguise itself on the page.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import html
import io
import os
import re
import threading
import unicodedata
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from custody import __version__
from custody.app.events import keeping as key_keeping
from custody.app.evidence import Event, case_histories, concerns, display, get_case, media_record
from custody.app.home import Custody
from custody.bundle.verify import Emergency
from custody.errors import CustodyError, InputError, NotFoundError, UsageError
from custody.infra import ffmpeg as media
from custody.infra.crash import crash_point
from custody.infra.files import fsync_dir, no_space_error, reclaim
from custody.infra.store import ItemRow, Store
from custody.infra.vault import Vault
from custody.media.compare import MediaRecord
from custody.media.lineage import derive_params, redact_params, seconds_of, trim_range
from custody.media.recorded import recorded_of
from custody.model.describe import describe
from custody.model.describe import label as item_label
from custody.model.entry import Entry, format_time, parse_time
from custody.model.parties import Parties, check_entry
from custody.model.rules import entry_hash
from custody.model.times import OrderWatch, Stamp, span
from custody.model.types import Analysis, Disposal, Ingest
from custody.report.timeline import Chart, Holding, layout, svg
from custody.tlog.checkpoint import open_checkpoint

__all__ = [
    "FORMATS",
    "Check",
    "Report",
    "build_report",
    "render",
    "render_html",
    "render_pdf",
    "write_report",
]

FORMATS = ("html", "pdf")
THUMBNAILS = 4
THUMBNAIL_WIDTH = 160

# Thumbnails already taken with an opened home, by (stored file, digest, count, width):
# an export builds the report once for HTML and once for PDF, and the frames of a
# file the report has just re-hashed to its digest cannot differ between the two.
# Kept as long as the `Custody` (one command); failures are not kept.
_FRAMES: weakref.WeakKeyDictionary[Custody, dict[tuple[str, str, int, int], tuple[bytes, ...]]]
_FRAMES = weakref.WeakKeyDictionary()
_FRAMES_LOCK = threading.Lock()


def _thumbnails(c: Custody, path: Path, blake3: str, count: int, name: str) -> tuple[bytes, ...]:
    """`media.thumbnails` of the verified stored file `path`, taken once per home."""
    key = (os.fspath(path), blake3, count, THUMBNAIL_WIDTH)
    with _FRAMES_LOCK:
        hit = _FRAMES.get(c, {}).get(key)
    if hit is not None:
        return hit
    frames = tuple(media.thumbnails(path, count, THUMBNAIL_WIDTH, name=name))
    with _FRAMES_LOCK:
        _FRAMES.setdefault(c, {})[key] = frames
    return frames


# -- the report as data -----------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One thing the report verified: what, about what, and the outcome in words."""

    subject: str  # "log", "checkpoint", an exhibit number, "log entry 12"
    what: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class TimelineRow:
    index: int
    time: str
    type: str
    summary: str
    signers: tuple[str, ...]
    covered: bool  # inside the checkpoint the report rests on
    # "13 min earlier than entry 9 (access), listed before it": its claimed time is
    # earlier than the claimed time of the entry before it on this timeline
    disorder: str | None = None
    receiver: str | None = None  # a handoff of this exhibit: who received it
    disposes: bool = False  # the disposal of this exhibit


@dataclass(frozen=True)
class Stream:
    index: str
    description: str  # "video h264, 30 packets"
    packets_sha256: str
    extradata_sha256: str | None


@dataclass(frozen=True)
class MediaFacts:
    """What a clip's metadata snapshot says of it, where it says it (None otherwise)."""

    recorded: str | None = None  # YYYY-MM-DDTHH:MM:SSZ, `custody.media.recorded`
    duration: float | None = None  # seconds
    resolution: str | None = None  # "1920x1080"
    codecs: str | None = None  # "h264 video, aac audio"
    device: str | None = None  # "Apple iPhone 12"
    frame_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Redaction:
    """A redacted clip's declared box (pixels of its frame) and span (None: whole clip)."""

    box: tuple[int, int, int, int]
    start: float | None
    end: float | None


@dataclass(frozen=True)
class TrimSpan:
    """A trim's declared span and the span the excerpt really has, in seconds of its
    parent: a lossless cut starts at the keyframe at or before the declared start."""

    declared_start: float
    declared_end: float
    actual_start: float
    actual_end: float | None  # the cut plus the excerpt's own duration, where measured

    @property
    def starts_early(self) -> bool:
        return self.actual_start < self.declared_start - 0.0005


@dataclass(frozen=True)
class ItemReport:
    """One exhibit: its signed record, timeline, frames and checks."""

    exhibit: str
    name: str
    kind: str
    size: int
    blake3: str
    sha256: str | None
    metadata: str | None
    content: str | None
    streams: tuple[Stream, ...]
    measured_with: str | None
    legal_basis: str | None
    ref: str | None
    source: str | None
    notes: str | None
    acquired_by: str
    acquired_at: str
    record_index: int
    holder: str
    parent: str | None  # exhibit (or BLAKE3) of the original, for a derived clip
    timeline: tuple[TimelineRow, ...]
    thumbnails: tuple[bytes, ...]
    thumbnail_note: str | None
    checks: tuple[Check, ...]
    # "disposed by X at T (entry N): reason" when its `disposal` entry is in the log
    disposed: str | None = None
    analyses: tuple[AnalysisRow, ...] = ()  # automated analyses on record, in log order
    facts: MediaFacts = MediaFacts()
    op: str | None = None  # trim | redact | transcode, for a derived clip
    redaction: Redaction | None = None
    trim: TrimSpan | None = None
    thumbnail_times: tuple[float, ...] = ()  # seconds into the clip of each frame shown
    ffmpeg_command: str | None = None  # the command line that made a derived clip

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True)
class AnalysisRow:
    """One `analysis` entry: software that analysed an exhibit, and why."""

    index: int
    time: str
    kind: str
    tool: str
    tool_version: str
    by: str
    purpose: str
    warrant: str | None
    result: str | None
    result_name: str | None
    covered: bool


@dataclass(frozen=True)
class EmergencyRow:
    """An emergency disclosure of an exhibit (an ingest with legal basis emergency) and
    its review, as of the report's generation time."""

    exhibit: str
    index: int
    time: str
    by: str
    justification: str
    due: str | None  # None: the custody state has no record of it (see `status`)
    status: str  # upheld | rejected | overdue | pending | unknown
    text: str
    covered: bool


@dataclass(frozen=True)
class HandoffRow:
    index: int
    time: str
    exhibits: tuple[str, ...]
    released_by: str
    received_by: str
    purpose: str
    authority: str | None
    released_signed: bool
    received_signed: bool
    covered: bool


@dataclass(frozen=True)
class DerivedRow:
    index: int
    time: str
    exhibit: str
    name: str
    blake3: str
    parent: str
    parent_blake3: str
    op: str
    params: tuple[str, ...]
    tool: str | None
    reason: str | None
    by: str
    covered: bool


@dataclass(frozen=True)
class PartyInfo:
    name: str
    role: str
    org: str
    vkey: str
    registered_at: int
    status: str


@dataclass(frozen=True)
class Report:
    """Everything a report says, gathered and checked by `build_report`."""

    case_id: str
    title: str
    case_opened: str
    origin: str
    log_vkey: str
    checkpoint_size: int
    checkpoint_root: str  # base64, as in the checkpoint text
    checkpoint_note: str | None  # the signed checkpoint, verbatim; None if there is none
    generated: str
    tool: str
    ffmpeg: str
    items: tuple[ItemReport, ...]
    handoffs: tuple[HandoffRow, ...]
    derived: tuple[DerivedRow, ...]
    parties: tuple[PartyInfo, ...]
    checks: tuple[Check, ...]  # log-wide checks; each item carries its own
    notes: tuple[str, ...]  # things a reader should know that are not failures
    emergencies: tuple[EmergencyRow, ...] = ()
    holdings: tuple[Holding, ...] = ()  # who held each exhibit when, for the picture
    disorders: tuple[str, ...] = ()  # "C1/0001: log entry 10 …": times out of order

    @property
    def all_checks(self) -> tuple[Check, ...]:
        return self.checks + tuple(c for item in self.items for c in item.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.all_checks if not c.passed)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def verdict(self) -> str:
        return "PASSED" if self.passed else "FAILED"


# -- gathering -----------------------------------------------------------------------------


def _get(fields: Sequence[tuple[str, str]], key: str) -> str | None:
    return next((v for k, v in fields if k == key), None)


def _all(fields: Sequence[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in fields if k == key]


def build_report(
    c: Custody,
    case_id: str,
    *,
    now: datetime | None = None,
    checkpoint_size: int | None = None,
    thumbnails: int = THUMBNAILS,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Check and gather the report of `case_id`.

    The report rests on the stored checkpoint of `checkpoint_size` entries (default:
    the latest; if the log has none, on the current tree, with a note saying so).
    It re-verifies the whole log with the log's key, re-checks the signatures of every
    entry of the case, re-hashes every exhibit's stored file, and compares the
    metadata and content records kept in the evidence store with the signed digests.
    `now` is the time the report says it was generated (default: the clock).
    `progress`, if given, is told in a few words what is being done (the CLI shows it
    on a terminal): the log, then each exhibit in turn.

    Raises:
        NotFoundError: no such case, or no stored checkpoint of `checkpoint_size`.
        StorageError: the database cannot be read.
    Failed checks do not raise: they are in `Report.failures`.
    """
    case = get_case(c, case_id)
    when = now if now is not None else datetime.now(UTC)
    checks: list[Check] = []
    notes: list[str] = []
    say = progress if progress is not None else (lambda _what: None)
    say("re-verifying the whole log")

    # The log as a whole, then the checkpoint the report rests on.
    try:
        verified = c.log.verify(c.log_key)
        counts = f"{verified.size} entries, {verified.signatures} signatures, "
        counts += f"{verified.checkpoints} checkpoint" + ("" if verified.checkpoints == 1 else "s")
        checks.append(
            Check(
                "log",
                "whole log recomputed from its entries",
                True,
                f"{counts}: every signature, custody rule, tree node and checkpoint verified",
            )
        )
    except CustodyError as exc:
        checks.append(Check("log", "whole log recomputed from its entries", False, exc.message))
    size, root, note = _basis(c, checkpoint_size, checks, notes)

    try:
        parties = c.log.parties()
    except CustodyError as exc:
        checks.append(Check("log", "party keys read from the key entries", False, exc.message))
        parties = Parties()

    # Every entry of the case, each signature re-checked.
    scanned: list[Event] = []
    with c.store.session() as s:
        rows = Store.case_entries(s, case_id)
    hashes: dict[int, str] = {}
    for index, data in rows:
        try:
            signed = check_entry(index, data, parties)
        except CustodyError as exc:
            checks.append(Check(f"log entry {index}", "entry signatures", False, exc.message))
            continue
        scanned.append(Event.of(index, signed))
        hashes[index] = entry_hash(data)
    # Consents, acceptances, refusals (any entry) signed with a key its party did not
    # hold alone, as the signed key entries record it (docs/handoff.md).
    keeping = key_keeping(c)
    for e in scanned:
        notes += [f"log entry {e.index}: {caveat}" for caveat in keeping.caveats(e)]
    newer = [e.index for e in scanned if e.index >= size]
    if newer:
        notes.append(
            f"{len(newer)} entries of this case (from entry {newer[0]}) are newer than the "
            f"checkpoint of size {size}: they are shown, marked †, but no signed checkpoint "
            "covers them yet"
        )

    items = c.store.items_in_case(case_id)
    exhibits: dict[str, str] = {row.blake3: row.exhibit for row in items}
    for e in scanned:
        if e.type == "derive":
            child, label = _get(e.fields, "item"), _get(e.fields, "exhibit")
            if child and label:
                exhibits.setdefault(child, label)

    vault = Vault(c.vault_root)
    # Every exhibit's timeline, from one pass over the case's entries.
    histories: dict[str, list[Event]] | None = None
    histories_error: CustodyError | None = None
    try:
        histories = case_histories(c, case_id)
    except CustodyError as exc:
        histories_error = exc
    disposed = _disposals(scanned)
    item_reports = []
    for n, row in enumerate(items, 1):
        say(f"exhibit {n} of {len(items)}, {row.exhibit}: re-hashing the stored file")
        item_reports.append(
            _item_report(
                c,
                vault,
                row,
                scanned,
                exhibits,
                size,
                thumbnails,
                histories,
                histories_error,
                disposed.get(row.blake3),
                {h: i for i, h in hashes.items()},
            )
        )
    say("writing the report")
    emergencies = _emergencies(c, scanned, hashes, exhibits, size, format_time(when), notes)

    try:
        ffmpeg = media.ffmpeg_version()
    except CustodyError:
        ffmpeg = "ffmpeg (not available)"

    return Report(
        case_id=case.case_id,
        title=case.title,
        case_opened=case.created,
        origin=c.origin,
        log_vkey=c.log_key.encode(),
        checkpoint_size=size,
        checkpoint_root=base64.b64encode(root).decode(),
        checkpoint_note=note,
        generated=format_time(when),
        tool=f"custody {__version__}",
        ffmpeg=ffmpeg,
        items=tuple(item_reports),
        handoffs=tuple(_handoffs(scanned, exhibits, size)),
        derived=tuple(_derived(scanned, exhibits, size)),
        parties=tuple(_parties(parties, scanned, items)),
        checks=tuple(checks),
        notes=tuple(notes),
        emergencies=tuple(emergencies),
        holdings=tuple(h for i in item_reports for h in _holdings(i)),
        disorders=_disorders(item_reports),
    )


def _holdings(item: ItemReport) -> list[Holding]:
    """Who held `item` when, by its timeline: who acquired (or made) it, then each
    handoff's receiver from the handoff's claimed time (no earlier than any entry before
    it in log order), until its disposal if any."""
    try:
        start = parse_time(item.acquired_at)
    except CustodyError:
        return []
    out = [Holding(item.exhibit, item.acquired_by, start, None, item.record_index)]
    floor = start  # the latest claimed time so far, in log order
    for t in item.timeline:
        try:
            at = parse_time(t.time)
        except CustodyError:
            continue
        last = out[-1]
        # A claimed time earlier than an entry before it in log order (out of order) is
        # drawn from the latest time before it: the log's order says who held it after
        # whom, and the holder before did what the entries before it say.
        drawn = max(at, floor) if t.index > item.record_index else at
        floor = max(floor, at)
        claimed = at if drawn != at else None
        if t.type == "handoff" and t.receiver and t.index > item.record_index:
            out[-1] = dataclasses.replace(last, end=drawn)
            out.append(Holding(item.exhibit, t.receiver, drawn, None, t.index, claimed))
        elif t.type == "disposal" and t.disposes:
            out[-1] = dataclasses.replace(last, end=drawn)
            break
    return out


def _disorders(items: Sequence[ItemReport]) -> tuple[str, ...]:
    """Each entry of the case whose claimed time is earlier than that of the entry
    before it on an exhibit's timeline, once, naming the first exhibit it is seen on."""
    seen: dict[int, str] = {}
    for item in items:
        for t in item.timeline:
            if t.disorder and t.index not in seen:
                seen[t.index] = f"log entry {t.index} ({t.type}, on {item.exhibit}'s timeline) "
                seen[t.index] += f"claims {t.time}, {t.disorder}"
    return tuple(seen[i] for i in sorted(seen))


def _timeline_rows(
    timeline: Sequence[Event],
    blake3: str,
    exhibits: Mapping[str, str],
    indexes: Mapping[str, int] | None,
    size: int,
) -> tuple[TimelineRow, ...]:
    """The rows of an exhibit's timeline, in log index order, each entry whose claimed
    time is earlier than the one listed before it flagged (docs/report.md)."""
    watch = OrderWatch(timedelta(0))
    rows = []
    for e in sorted(timeline, key=lambda e: e.index):
        try:
            found = watch.see(Stamp(e.index, e.type, parse_time(e.time)))
        except CustodyError:
            found = None
        flag = None
        if found is not None:
            flag = (
                f"{span(found.gap)} earlier than entry {found.previous_index} "
                f"({found.previous_type}), listed before it"
            )
        receiver = _get(e.fields, "to") if blake3 in _all(e.fields, "item") else None
        typed = e.typed
        rows.append(
            TimelineRow(
                e.index,
                e.time,
                e.type,
                _summary(e, blake3, exhibits, indexes),
                e.signers,
                e.index < size,
                flag,
                receiver if e.type == "handoff" else None,
                isinstance(typed, Disposal) and typed.item == blake3,
            )
        )
    return tuple(rows)


def _facts(meta: Mapping[str, Any], signed_recorded: str | None) -> MediaFacts:
    """A clip's recording time, duration, resolution, codecs and device from its
    metadata snapshot (the signed `recorded` field first, where the entry has one)."""
    fmt: dict[str, Any] = meta["format"] if isinstance(meta.get("format"), dict) else {}
    raw = meta.get("streams")
    streams = [st for st in raw if isinstance(st, dict)] if isinstance(raw, list) else []
    duration = _number(fmt.get("duration"))
    if duration is None:
        duration = next(
            (d for st in streams if (d := _number(st.get("duration"))) is not None), None
        )
    video = next(
        (
            st
            for st in streams
            if st.get("codec_type") == "video"
            and not (isinstance(d := st.get("disposition"), dict) and d.get("attached_pic"))
        ),
        None,
    )
    frame: tuple[int, int] | None = None
    if video is not None:
        w, h = video.get("width"), video.get("height")
        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
            frame = (w, h)
    codecs = ", ".join(
        f"{st['codec_name']} {st.get('codec_type', 'data')}"
        for st in streams
        if isinstance(st.get("codec_name"), str)
    )
    raw_tags = fmt.get("tags")
    tags = {str(k).lower(): v for k, v in raw_tags.items()} if isinstance(raw_tags, dict) else {}
    make = next((tags[k] for k in _MAKE_TAGS if isinstance(tags.get(k), str)), None)
    model = next((tags[k] for k in _MODEL_TAGS if isinstance(tags.get(k), str)), None)
    device = " ".join(v.strip() for v in (make, model) if v and v.strip()) or None
    return MediaFacts(
        recorded=signed_recorded or recorded_of(meta).time,
        duration=duration,
        resolution=f"{frame[0]}x{frame[1]}" if frame else None,
        codecs=codecs or None,
        device=device,
        frame_size=frame,
    )


_MAKE_TAGS = ("com.apple.quicktime.make", "make", "com.android.manufacturer", "manufacturer")
_MODEL_TAGS = ("com.apple.quicktime.model", "model", "com.android.model")


def _number(value: object) -> float | None:
    try:
        n = float(str(value))
    except ValueError:
        return None
    return n if n >= 0 and n == n and n != float("inf") else None


def _derivation(
    fields: Sequence[tuple[str, str]], index: int, duration: float | None
) -> tuple[str | None, Redaction | None, TrimSpan | None, str | None]:
    """A derive entry's operation, redaction box, trim span and ffmpeg command line
    (None where the entry does not declare them or declares them malformed: the
    lineage proof, not the report, judges those)."""
    op = _get(fields, "op")
    try:
        params = dict(derive_params(_all(fields, "param"), index))
    except CustodyError:
        return op, None, None, None
    command = params.get("ffmpeg")
    redaction = trim = None
    try:
        if op == "redact":
            declared = redact_params(params)
            redaction = Redaction(
                declared.box,
                None if declared.start is None else float(declared.start),
                None if declared.end is None else float(declared.end),
            )
        elif op == "trim":
            start, end = trim_range(params)
            cut = seconds_of(params["cut"], "cut") if "cut" in params else start
            trim = TrimSpan(
                float(start),
                float(end),
                float(cut),
                None if duration is None else float(cut) + duration,
            )
    except CustodyError:
        pass
    return op, redaction, trim, command


def _disposals(scanned: Sequence[Event]) -> dict[str, str]:
    """Each disposed item's sentence, ``disposed by X at T (entry N): reason``."""
    out: dict[str, str] = {}
    for e in scanned:
        d = e.typed
        if isinstance(d, Disposal) and d.item not in out:
            out[d.item] = f"disposed by {d.by} at {e.time} (entry {e.index}): {d.reason}"
    return out


def _emergencies(
    c: Custody,
    scanned: Sequence[Event],
    hashes: Mapping[int, str],
    exhibits: Mapping[str, str],
    size: int,
    as_of: str,
    notes: list[str],
) -> list[EmergencyRow]:
    """The case's emergency disclosures with their review status (the custody state's
    record: when the review was due under the log's policy, who reviewed it, how), as of
    the report's time; an overdue, late or rejected one is also a note."""
    found = [
        (e, t) for e in scanned if isinstance(t := e.typed, Ingest) and t.legal_basis == "emergency"
    ]
    if not found:
        return []
    out = []
    with c.log.state() as view:
        for e, t in found:
            state = view.emergency(hashes[e.index])
            exhibit = exhibits.get(t.item, t.exhibit)
            if state is None:
                text = (
                    f"the emergency disclosure of exhibit {exhibit} (entry {e.index}) is not in "
                    "the custody state: its review status is unknown"
                )
                row = EmergencyRow(
                    exhibit,
                    e.index,
                    e.time,
                    t.by,
                    t.justification or "",
                    None,
                    "unknown",
                    text,
                    e.index < size,
                )
                notes.append(text)
            else:
                em = Emergency(exhibit, state, as_of)
                row = EmergencyRow(
                    exhibit,
                    e.index,
                    e.time,
                    t.by,
                    t.justification or "",
                    state.due,
                    em.status,
                    em.sentence(),
                    e.index < size,
                )
                if em.status in ("overdue", "rejected") or em.late:
                    notes.append(em.sentence())
            out.append(row)
    return out


def _analyses(timeline: Sequence[Event], blake3: str, size: int) -> tuple[AnalysisRow, ...]:
    return tuple(
        AnalysisRow(
            e.index,
            e.time,
            a.kind,
            a.tool,
            a.tool_version,
            a.by,
            a.purpose,
            a.warrant,
            a.result,
            a.result_name,
            e.index < size,
        )
        for e in timeline
        if isinstance(a := e.typed, Analysis) and a.item == blake3
    )


def _basis(
    c: Custody, checkpoint_size: int | None, checks: list[Check], notes: list[str]
) -> tuple[int, bytes, str | None]:
    """(size, root, signed note text) of the checkpoint the report rests on."""
    row = c.store.checkpoint(checkpoint_size)
    if row is None:
        if checkpoint_size is not None:
            raise NotFoundError(
                f"the log has no checkpoint at size {checkpoint_size}",
                hint="sign one with 'custody log checkpoint', or leave out the size",
            )
        size, root = c.log.root()
        notes.append(
            "the log has no signed checkpoint: this report rests on the current tree "
            f"({size} entries); sign one with 'custody log checkpoint' before relying on it"
        )
        return size, root, None
    data = bytes(row.note)
    try:
        opened = open_checkpoint(data, c.log_key)
        cp = opened.checkpoint
        if cp.size != row.size or cp.root != bytes(row.root):
            raise CustodyError("its signed text disagrees with the database's size and root")
        checks.append(
            Check(
                "checkpoint",
                "checkpoint signed by the log key",
                True,
                f"size {cp.size}, signed by {c.log_key.name}",
            )
        )
    except CustodyError as exc:
        checks.append(
            Check(
                "checkpoint",
                "checkpoint signed by the log key",
                False,
                f"checkpoint at size {row.size}: {exc.message}",
            )
        )
    return int(row.size), bytes(row.root), data.decode("utf-8", "replace")


def _item_report(
    c: Custody,
    vault: Vault,
    row: ItemRow,
    scanned: Sequence[Event],
    exhibits: Mapping[str, str],
    size: int,
    thumbnail_count: int,
    histories: dict[str, list[Event]] | None,
    histories_error: CustodyError | None,
    disposed: str | None = None,
    indexes: Mapping[str, int] | None = None,
) -> ItemReport:
    checks: list[Check] = []
    subject = row.exhibit
    kept: MediaRecord | None = None
    facts = MediaFacts()

    # The timeline is `custody history`'s.  If the log cannot give it (an entry of the
    # case fails its signature check), the report still shows the entries that verified.
    try:
        if histories is None:
            raise histories_error or CustodyError("the case's timeline could not be read")
        timeline = sorted(histories.get(row.blake3, []), key=lambda e: e.index)
    except CustodyError as exc:
        detail = f"{subject}: {exc.message}"
        checks.append(Check(subject, "timeline read from the log", False, detail))
        timeline = [e for e in scanned if concerns(e.type, e.fields, row.blake3)]
    events = {e.index: e for e in timeline}

    # The signed record of the item: its ingest (or derive) entry.
    record = events.get(row.ingest_idx)
    if (
        record is None
        or record.type not in ("ingest", "derive")
        or _get(record.fields, "item") != row.blake3
    ):
        checks.append(
            Check(
                subject,
                "signed record of the file",
                False,
                f"{subject}: its signed record, log entry {row.ingest_idx}, did not verify "
                "or does not record this file",
            )
        )
        fields: tuple[tuple[str, str], ...] = ()
    else:
        fields = record.fields
        wrong = _disagreements(row, fields)
        if _holder(fields, timeline, row.blake3) != row.holder:
            wrong.append("holder")
        checks.append(
            Check(
                subject,
                "signed record of the file",
                not wrong,
                f"{subject}: the database's record disagrees with log entry "
                f"{row.ingest_idx} on {', '.join(wrong)}"
                if wrong
                else f"log entry {row.ingest_idx}, signed by {', '.join(record.signers)}",
            )
        )

    if disposed is not None:
        # Not a missing file: its signed disposal entry says it left the evidence store.
        checks.append(Check(subject, "stored file", True, f"{subject} was {disposed}"))
        stored_ok = False
    else:
        stored_ok = _check_stored(vault, row, checks)
        if row.kind == "media" and fields:
            kept = _check_media_records(vault, row, fields, checks)
    if kept is not None:
        facts = _facts(kept.metadata, _get(fields, "recorded"))
    is_derived = record is not None and record.type == "derive"
    op, redaction, trim, command = (
        _derivation(fields, row.ingest_idx, facts.duration) if is_derived else (None,) * 4
    )

    frames: list[bytes] = []
    times: tuple[float, ...] = ()
    note: str | None = None
    if row.kind != "media":
        note = None
    elif disposed is not None:
        note = "not shown: the exhibit was disposed of"
    elif not stored_ok:
        note = "not shown: the stored file failed verification"
    else:
        try:
            frames = list(
                _thumbnails(
                    c,
                    vault.path_for(row.blake3),
                    row.blake3,
                    thumbnail_count,
                    f"{row.exhibit} ({row.name})",
                )
            )
            if not frames:
                note = "no picture: the clip has no video stream"
            elif facts.duration is not None and len(frames) == thumbnail_count:
                d = facts.duration
                times = tuple(d * (i + 0.5) / thumbnail_count for i in range(thumbnail_count))
        except CustodyError as exc:
            note = f"not shown: {exc.message}"

    parent = _get(fields, "parent") if record is not None and record.type == "derive" else None
    return ItemReport(
        exhibit=row.exhibit,
        name=_get(fields, "name") or row.name,
        kind=_get(fields, "kind") or row.kind,
        size=row.size,
        blake3=row.blake3,
        sha256=_get(fields, "sha256") or row.sha256,
        metadata=_get(fields, "metadata") or row.metadata_digest,
        content=_get(fields, "content") or row.content_digest,
        streams=tuple(_stream(line) for line in _all(fields, "stream")),
        measured_with=_get(fields, "tool"),
        legal_basis=_get(fields, "legal-basis"),
        ref=_get(fields, "ref"),
        source=_get(fields, "source"),
        notes=_get(fields, "notes"),
        acquired_by=_get(fields, "by") or row.ingested_by,
        acquired_at=record.time if record is not None else row.ingested_at,
        record_index=row.ingest_idx,
        holder=_holder(fields, timeline, row.blake3) if fields else row.holder,
        parent=exhibits.get(parent, parent) if parent else None,
        timeline=_timeline_rows(timeline, row.blake3, exhibits, indexes, size),
        thumbnails=tuple(frames),
        thumbnail_note=note,
        checks=tuple(checks),
        disposed=disposed,
        analyses=_analyses(timeline, row.blake3, size),
        facts=facts,
        op=op,
        redaction=redaction,
        trim=trim,
        thumbnail_times=times,
        ffmpeg_command=command,
    )


def _holder(fields: Sequence[tuple[str, str]], timeline: Sequence[Event], blake3: str) -> str:
    """Who holds the item by the log: who acquired it, then each handoff's receiver."""
    holder = _get(fields, "by") or "?"
    for e in timeline:
        if e.type == "handoff" and blake3 in _all(e.fields, "item"):
            holder = _get(e.fields, "to") or holder
    return holder


def _disagreements(row: ItemRow, fields: Sequence[tuple[str, str]]) -> list[str]:
    """The fields on which the database's item row differs from its signed entry."""
    expected: dict[str, str | int | None] = {
        "exhibit": row.exhibit,
        "name": row.name,
        "size": row.size,
        "sha256": row.sha256,
        "kind": row.kind,
        "metadata": row.metadata_digest,
        "content": row.content_digest,
    }
    wrong = []
    for key, value in expected.items():
        signed = _get(fields, key)
        if (None if value is None else str(value)) != signed:
            wrong.append(key)
    return wrong


def _check_stored(vault: Vault, row: ItemRow, checks: list[Check]) -> bool:
    what = "stored file re-hashed (BLAKE3)"
    try:
        digests = vault.verify_object(row.blake3)
    except CustodyError as exc:
        checks.append(Check(row.exhibit, what, False, f"{row.exhibit}: {exc.message}"))
        return False
    if digests.size != row.size:
        checks.append(
            Check(
                row.exhibit,
                what,
                False,
                f"{row.exhibit}: the stored file has {digests.size} bytes, the record says "
                f"{row.size}",
            )
        )
        return False
    checks.append(
        Check(row.exhibit, what, True, f"{digests.size} bytes; BLAKE3 matches the signed record")
    )
    return True


def _check_media_records(
    vault: Vault, row: ItemRow, fields: Sequence[tuple[str, str]], checks: list[Check]
) -> MediaRecord | None:
    """Check the kept snapshot and packet hashes against the signed digests; the record
    when it gives them (the report then reads the clip's facts from it), else None."""
    what = "metadata snapshot and packet hashes kept in the evidence store"
    try:
        rec = media_record(vault, row.blake3)
    except CustodyError as exc:
        checks.append(Check(row.exhibit, what, False, f"{row.exhibit}: {exc.message}"))
        return None
    if rec is None:
        checks.append(
            Check(row.exhibit, what, False, f"{row.exhibit}: the evidence store has no snapshot")
        )
        return None
    wrong = [
        label
        for label, kept, signed in (
            ("metadata digest", rec.metadata_digest, _get(fields, "metadata")),
            ("content digest", rec.content_digest, _get(fields, "content")),
        )
        if kept != signed
    ]
    checks.append(
        Check(
            row.exhibit,
            what,
            not wrong,
            f"{row.exhibit}: the stored records do not give the signed {' and '.join(wrong)}"
            if wrong
            else "the snapshot and packet hashes give the signed metadata and content digests",
        )
    )
    return None if wrong else rec


def _stream(line: str) -> Stream:
    parts = line.split(" ")
    if len(parts) != 6:
        return Stream("?", line, "", None)
    index, kind, codec, packets, digest, extra = parts
    return Stream(
        index, f"{kind} {codec}, {packets} packets", digest, None if extra == "-" else extra
    )


def _label(exhibits: Mapping[str, str], blake3: str | None) -> str:
    return item_label(blake3, exhibits)


def _summary(
    e: Event, blake3: str, exhibits: Mapping[str, str], indexes: Mapping[str, int] | None = None
) -> str:
    """One line saying what a log entry records, in words: the sentence `describe()`
    gives every listing of entries (CLI history, verify-bundle, this report), naming
    the entries it refers to by index where `indexes` (entry hash -> index) knows them."""
    return describe(
        Entry(e.type, e.time, e.fields), about=blake3, exhibits=exhibits, indexes=indexes
    )


def _handoffs(scanned: Sequence[Event], exhibits: Mapping[str, str], size: int) -> list[HandoffRow]:
    out = []
    for e in scanned:
        if e.type != "handoff":
            continue
        sender, receiver = _get(e.fields, "from") or "?", _get(e.fields, "to") or "?"
        out.append(
            HandoffRow(
                index=e.index,
                time=e.time,
                exhibits=tuple(_label(exhibits, i) for i in _all(e.fields, "item")),
                released_by=sender,
                received_by=receiver,
                purpose=_get(e.fields, "purpose") or "",
                authority=_get(e.fields, "authority"),
                released_signed=sender in e.signers,
                received_signed=receiver in e.signers,
                covered=e.index < size,
            )
        )
    return out


def _derived(scanned: Sequence[Event], exhibits: Mapping[str, str], size: int) -> list[DerivedRow]:
    out = []
    for e in scanned:
        if e.type != "derive":
            continue
        f = e.fields
        parent = _get(f, "parent") or ""
        child = _get(f, "item") or ""
        out.append(
            DerivedRow(
                index=e.index,
                time=e.time,
                exhibit=_get(f, "exhibit") or _label(exhibits, child),
                name=_get(f, "name") or "",
                blake3=child,
                parent=_label(exhibits, parent),
                parent_blake3=parent,
                op=_get(f, "op") or "",
                params=tuple(_all(f, "param")),
                tool=_get(f, "tool"),
                reason=_get(f, "reason"),
                by=_get(f, "by") or "",
                covered=e.index < size,
            )
        )
    return out


def _parties(
    parties: Parties, scanned: Sequence[Event], items: Sequence[ItemRow]
) -> list[PartyInfo]:
    """The parties who signed an entry of the case or hold one of its items, with the
    key each has now (from the log's key entries)."""
    names = {n for e in scanned for n in e.signers} | {row.holder for row in items}
    out = []
    for name in sorted(names):
        keys = parties.keys.get(name)
        if not keys:
            continue
        first, last = keys[0], keys[-1]
        status = (
            "active" if last.ended_at is None else f"{last.end_reason} at entry {last.ended_at}"
        )
        out.append(
            PartyInfo(name, last.role, last.org, last.vkey.encode(), first.registered_at, status)
        )
    return out


# -- output ------------------------------------------------------------------------------


def render(report: Report, fmt: str) -> bytes:
    """The report as HTML (UTF-8) or PDF bytes.  Raises UsageError for another format."""
    if fmt == "html":
        return render_html(report)
    if fmt == "pdf":
        return render_pdf(report)
    raise UsageError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")


def write_report(
    c: Custody,
    case_id: str,
    fmt: str,
    out: Path,
    *,
    now: datetime | None = None,
    checkpoint_size: int | None = None,
) -> None:
    """Write the report of `case_id` to `out` as `fmt` ("html" or "pdf").

    The file is written whole or not at all (temp file, fsync, rename).  A failed
    verification does not raise: the report says FAILED and what failed; call
    `build_report` and `render` to act on the verdict.

    Raises:
        UsageError: `fmt` is not "html" or "pdf".
        NotFoundError: no such case or checkpoint.
        InputError: `out` cannot be written.
    """
    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    report = build_report(c, case_id, now=now, checkpoint_size=checkpoint_size)
    save(render(report, fmt), out)


def save(data: bytes, out: Path) -> None:
    """Write `data` to `out` whole or not at all: a temp file beside it, fsync, rename.

    The temp file (`.NAME.PID.tmp`) is locked while it is written, so the temp
    files a killed run left beside `out` are removed by the next save to it.

    Raises:
        NoSpaceError: the disk holding `out` is full (a StorageError naming it).
        InputError: `out` cannot be written for another reason.
    """
    folder = out.parent
    reclaim(folder, f".{out.name}.", suffix=".tmp")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):  # a folder that cannot be opened: best effort
            fsync_dir(folder)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        full = no_space_error(exc, folder, f"cannot write the report {display(out)}")
        if full is not None:
            raise full from None
        raise InputError(f"cannot write the report {display(out)}: {exc.strerror or exc}") from None
    crash_point("report.written")


# -- the document, once for both formats ---------------------------------------------------
# `_document` lays the report out as a list of blocks; `render_html` and `render_pdf`
# only draw blocks, so the two formats cannot say different things.


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Para:
    text: str
    style: str = ""  # "", "strong" or "note"


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    text: str


@dataclass(frozen=True)
class _Fields:
    """Label/value rows; `digest` values are set in monospace, each on one line."""

    rows: tuple[tuple[str, str, bool], ...]


@dataclass(frozen=True)
class _Table:
    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[int, ...]  # relative column widths in the PDF
    # The column of outcomes custody wrote (✓/✗), coloured in HTML.  Only that one:
    # a user's text that starts with ✓ must not look like a verified result.
    status: int | None = None


@dataclass(frozen=True)
class _Frames:
    frames: tuple[bytes, ...]
    label: str
    # Per frame, the redaction box to outline as fractions of the frame (x, y, w, h),
    # or None; `aspect` is the frame's width / height where known.
    outlines: tuple[tuple[float, float, float, float] | None, ...] = ()
    aspect: float | None = None


@dataclass(frozen=True)
class _Chart:
    """The picture of who held each exhibit when (`custody.report.timeline`)."""

    chart: Chart


@dataclass(frozen=True)
class _Command:
    """A command line to type: monospace, broken only between its words, never in one."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class _PageBreak:
    """The summary is a page of its own: what follows starts on a new page."""


@dataclass(frozen=True)
class _Verbatim:
    text: str


@dataclass(frozen=True)
class _SignHere:
    labels: tuple[str, ...]


_Block = (
    _Heading
    | _Para
    | _Verdict
    | _Fields
    | _Table
    | _Frames
    | _Verbatim
    | _SignHere
    | _Chart
    | _Command
    | _PageBreak
)

PASS_MARK, FAIL_MARK = "✓", "✗"

_METHOD = (
    "Each file was identified by hash values: the BLAKE3-256 digest of its exact bytes "
    "(and, where shown, SHA-256), computed in the same pass that copied it into a "
    "write-once, content-addressed evidence store. For footage, the digest of a canonical "
    "metadata snapshot (read with ffmpeg's libraries) and SHA-256 digests over each "
    "stream's packets were recorded "
    "as well. These values were written into a log entry signed with the Ed25519 key of the "
    "party who acquired the file; every later event (consent, handoff, access, derivation) "
    "is an entry signed by the parties to it, a handoff by both the releasing and the "
    "receiving party. Each entry is a leaf of an append-only Merkle tree (RFC 6962 / "
    "RFC 9162, SHA-256), and a checkpoint signed with the log's Ed25519 key commits to the "
    "tree's size and root hash."
)
_DECLARATION = (
    "I certify that I am qualified to make this certification by my training and "
    "responsibilities, stated below; that the records identified above were copied and "
    "identified by the process of digital identification described; and that the result "
    "of that identification is as stated above. I declare under penalty of perjury that "
    "the foregoing is true and correct."
)
_SIGNATURE_LINES = (
    "Name",
    "Title and qualification",
    "Organisation",
    "Date and place",
    "Signature",
)
_FORM_NOTE = (
    "This section is a form, not legal advice. custody fills in the records, the method, "
    "the hash values and the result; it has no effect until a qualified person has reviewed "
    "and signed it, and the proponent must give the adverse party reasonable written notice "
    "and make the records available for inspection (Rule 902(11))."
)


def _entry_no(index: int, covered: bool) -> str:
    return f"{index}" if covered else f"{index} †"


def _result_text(r: Report) -> str:
    gone = sum(1 for i in r.items if i.disposed)
    if r.passed:
        kept = len(r.items) - gone
        tail = (
            f" {gone} further record{'s were' if gone > 1 else ' was'} disposed of, as "
            "recorded in the log, and no copy of "
            f"{'them' if gone > 1 else 'it'} is certified."
            if gone
            else ""
        )
        return (
            f"On {r.generated}, {r.tool} re-computed the BLAKE3 digest of each stored copy and "
            "found it identical to the value recorded when the file was acquired, and "
            "re-verified the whole log: every signature, custody rule, tree hash and "
            f"checkpoint. Result: PASSED for all {kept} records{' kept' if gone else ''}.{tail}"
        )
    return (
        f"On {r.generated}, {r.tool} re-computed the BLAKE3 digest of each stored copy and "
        "re-verified the whole log. Result: FAILED. "
        + " ".join(f"{c.detail}." for c in r.failures)
        + " These records must not be certified as identical to the originals until each "
        "failure is explained."
    )


def _seconds(x: float) -> str:
    """Seconds for a reader: "2.000 s", "1 min 5.300 s", "1 h 2 min 3.000 s"."""
    whole_min, sec = divmod(x, 60.0)
    h, m = divmod(int(whole_min), 60)
    if h:
        return f"{h} h {m} min {sec:.3f} s"
    if m:
        return f"{m} min {sec:.3f} s"
    return f"{sec:.3f} s"


def _trim_lines(item: ItemReport) -> tuple[str, str]:
    """A trim's declared and actual span, as the exhibit page and the table show them."""
    t = item.trim
    assert t is not None
    parent = item.parent or "its parent"
    declared = f"{t.declared_start:.3f} – {t.declared_end:.3f} s of {parent}"
    end = f"{t.actual_end:.3f}" if t.actual_end is not None else "?"
    actual = f"{t.actual_start:.3f} – {end} s of {parent}"
    if t.starts_early:
        actual += (
            f": it starts {t.declared_start - t.actual_start:.3f} s before the declared start, "
            f"at the keyframe at {t.actual_start:.3f} s (a cut without re-encoding begins at "
            "the keyframe at or before the start), so it shows more than was declared"
        )
    return declared, actual


def _redaction_line(item: ItemReport) -> str:
    red = item.redaction
    assert red is not None
    x, y, w, h = red.box
    where = f"box {x},{y},{w},{h}: {w}x{h} pixels, {x} from the left and {y} from the top"
    if item.facts.resolution:
        where += f" of the {item.facts.resolution} frame"
    when = (
        f", from {red.start:.3f} to {red.end:.3f} s"
        if red.start is not None and red.end is not None
        else ", the whole clip"
    )
    shown = "; outlined in red on the frames above that fall in it" if item.thumbnails else ""
    return where + when + shown


def _integrity(item: ItemReport) -> _Fields:
    rows: list[tuple[str, str, bool]] = [
        ("Exhibit", item.exhibit, False),
        ("File name", item.name, False),
        ("Kind", item.kind, False),
        ("Size", f"{item.size:,} bytes", False),
    ]
    f = item.facts
    if item.kind == "media":
        rows.append(("Recorded (its metadata)", f.recorded or "not in its metadata", False))
        rows.append(("Duration", _seconds(f.duration) if f.duration is not None else "?", False))
        if f.resolution:
            rows.append(("Resolution", f.resolution, False))
        if f.codecs:
            rows.append(("Codecs", f.codecs, False))
        rows.append(("Device (its metadata)", f.device or "not in its metadata", False))
    if item.trim is not None:
        declared, actual = _trim_lines(item)
        rows += [("Declared span", declared, False), ("Actual span", actual, False)]
    if item.redaction is not None:
        rows.append(("Redaction", _redaction_line(item), False))
    rows += [
        ("BLAKE3", item.blake3, True),
        ("SHA-256", item.sha256 or "not recorded", bool(item.sha256)),
    ]
    if item.kind == "media":
        rows.append(("Metadata digest", item.metadata or "not recorded", bool(item.metadata)))
        rows.append(("Content digest", item.content or "not recorded", bool(item.content)))
        for st in item.streams:
            rows.append((f"Stream {st.index}", st.description, False))
            if st.packets_sha256:
                rows.append((f"Stream {st.index} packets SHA-256", st.packets_sha256, True))
            if st.extradata_sha256:
                rows.append((f"Stream {st.index} extradata SHA-256", st.extradata_sha256, True))
        if item.measured_with:
            tool = "Made and measured with" if item.parent else "Measured with"
            rows.append((tool, item.measured_with, False))
    if item.parent:
        rows.append(("Derived from", item.parent, False))
        if item.op:
            appendix = " (its ffmpeg command line is in the appendix)"
            rows.append(("Operation", item.op + (appendix if item.ffmpeg_command else ""), False))
    by = f"{item.acquired_by}, {item.acquired_at} (log entry {item.record_index})"
    if item.parent:
        # A derived clip inherits its parent's legal basis (docs/spec/entry.md).
        rows += [("Made by", by, False), ("Legal basis", f"as for {item.parent}", False)]
    else:
        rows += [
            ("Acquired by", by, False),
            ("Source", item.source or "not stated", False),
            ("Legal basis", item.legal_basis or "not stated", False),
            ("Reference", item.ref or "none recorded", False),
        ]
    if item.notes:
        rows.append(("Notes", item.notes, False))
    rows.append(("Current holder", item.holder, False))
    if item.disposed:
        rows.append(("Disposed", item.disposed, False))
    return _Fields(tuple(rows))


def _outlines(item: ItemReport) -> tuple[tuple[float, float, float, float] | None, ...]:
    """Per frame shown, the redaction box as fractions of the frame, where it applies:
    every frame for a whole-clip redaction, else the frames taken inside its span."""
    red, size = item.redaction, item.facts.frame_size
    if red is None or size is None or not item.thumbnails:
        return ()
    x, y, w, h = red.box
    box = (x / size[0], y / size[1], w / size[0], h / size[1])
    if red.start is None or red.end is None:
        return tuple(box for _ in item.thumbnails)
    if len(item.thumbnail_times) != len(item.thumbnails):
        return tuple(box for _ in item.thumbnails)  # times unknown: outline the area on all
    lo, hi = red.start, red.end
    return tuple(box if lo <= t <= hi else None for t in item.thumbnail_times)


def _cell_status(passed: bool) -> str:
    return f"{PASS_MARK} passed" if passed else f"{FAIL_MARK} FAILED"


def _some(names: Sequence[str], most: int = 6) -> str:
    """`names` joined, the first `most` of them and how many more (the summary is a page)."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _not_covered(r: Report) -> list[str]:
    """What a PASSED does not say, in plain words, for this case."""
    out = [
        "Anything before acquisition. custody vouches for each file from the moment it was "
        "acquired (who and when: each exhibit's page). What happened to the footage before "
        "that, on the camera, in the owner's phone or app, or while it was exported, is "
        "outside the log. The recording time and device shown are what the file's own "
        "metadata says; whoever made the file could have set them.",
        "Events the log was not told about. The log proves that the entries it holds are "
        "unaltered, signed and in their order; it cannot show a copy made, watched or passed "
        "on without custody recording it, or an entry someone chose not to make.",
    ]
    newer = sum(1 for i in r.items for t in i.timeline if not t.covered)
    if newer:
        out.append(
            f"Entries after the checkpoint. {newer} timeline rows (marked †) are newer than "
            f"the signed checkpoint of {r.checkpoint_size} entries; no signed checkpoint "
            "commits to them yet."
        )
    transcodes = [i.exhibit for i in r.items if i.op == "transcode"]
    if transcodes:
        out.append(
            f"Declared, not proven: {_some(transcodes)} "
            + ("is a transcode" if len(transcodes) == 1 else "are transcodes")
            + ", re-encoded with loss. The log records the declared settings and the "
            "parent; that the re-encoded footage shows the same scenes is not proven."
        )
    derived = [i.exhibit for i in r.items if i.op in ("trim", "redact")]
    if derived:
        out.append(
            f"Trims and redactions ({_some(derived)}) were proven against their parent "
            "when they were made (packets and decoded frames compared) before being recorded. "
            "This report re-checks their stored files, not that proof; `custody verify FILE` "
            "repeats it."
        )
    early = [i for i in r.items if i.trim is not None and i.trim.starts_early]
    for i in early[:3]:
        assert i.trim is not None
        out.append(
            f"{i.exhibit} is a trim declared to start at {i.trim.declared_start:.3f} s of "
            f"{i.parent}, but it starts at {i.trim.actual_start:.3f} s, the keyframe before: "
            "it shows more than was declared (declared and actual span on its page)."
        )
    if len(early) > 3:
        out.append(
            f"So do {_some([i.exhibit for i in early[3:]])}: trims that start at the keyframe "
            "before their declared start (declared and actual span on each one's page)."
        )
    if r.disorders:
        out.append(
            f"Claimed times. Each entry's time is the clock of the computer that signed it. "
            f"{len(r.disorders)} entr{'y claims' if len(r.disorders) == 1 else 'ies claim'} "
            "a time earlier than the entry listed before it (marked on the timelines): "
            + "; ".join(r.disorders[:3])
            + (f"; and {len(r.disorders) - 3} more" if len(r.disorders) > 3 else "")
            + "."
        )
    else:
        out.append(
            "Claimed times. Each entry's time is the clock of the computer that signed it, "
            "not an independent clock; on every timeline here they read in order."
        )
    out.append(
        "Who used the keys. A signature shows that a party's key signed; which person held "
        "that key is what the log's key entries and the organisations say."
    )
    return out


def _checked_text(r: Report) -> str:
    derived = sum(1 for i in r.items if i.parent)
    made = f" ({derived} of them copies derived from the others)" if derived else ""
    return (
        f"This report covers case {r.case_id} ({r.title or 'untitled'}): {len(r.items)} "
        f"exhibit{'s' if len(r.items) != 1 else ''}{made}. On {r.generated}, {r.tool} re-read "
        f"the custody log {r.origin} up to its signed checkpoint of {r.checkpoint_size} "
        "entries and checked that every entry is signed by the parties it names with keys "
        "valid at the time; that the custody rules hold (only the holder hands an exhibit "
        "on, and each party signs its own part); that the log was only ever added to (its "
        "Merkle tree and its signed checkpoint); and that each exhibit's stored copy is bit "
        "for bit the file recorded when it was acquired or made (its BLAKE3 digest computed "
        "again)."
    )


def _verdict_text(r: Report) -> str:
    if r.passed:
        return (
            "PASSED: every exhibit is bit for bit the file recorded when it was acquired or "
            "made, and every log entry about it verifies."
        )
    return (
        f"FAILED: {len(r.failures)} check{'s' if len(r.failures) != 1 else ''} failed, listed "
        "above and in the verification section. Do not rely on the exhibits named there until "
        "each failure is explained."
    )


def _summary_page(r: Report) -> list[_Block]:
    doc: list[_Block] = [
        _Heading(2, "Summary"),
        _Heading(4, "What was checked"),
        _Para(_checked_text(r)),
        _Heading(4, "The result"),
        _Verdict(r.passed, _verdict_text(r)),
        _Heading(4, "What this does not cover"),
    ]
    doc += [_Para(f"• {line}") for line in _not_covered(r)]
    doc.append(
        _Para(
            "Anyone can repeat these checks without trusting whoever made this report: see "
            "“Check this yourself”, after the inventory.",
            "strong",
        )
    )
    doc.append(_PageBreak())
    return doc


def _inventory(r: Report) -> list[_Block]:
    doc: list[_Block] = [_Heading(2, "Inventory of exhibits")]
    if not r.items:
        return [*doc, _Para("The case has no exhibits.")]
    rows = []
    for i in r.items:
        f = i.facts
        if i.kind != "media":
            recorded, duration = "not a recording", "—"
        else:
            recorded = f.recorded or "not in its metadata"
            duration = _seconds(f.duration) if f.duration is not None else "?"
        verdict = _cell_status(i.passed)
        if i.disposed:
            verdict += " (disposed)"
        rows.append((i.exhibit, i.name, recorded, duration, f"{i.size:,} bytes", verdict))
    head = ("Exhibit", "File", "Recorded", "Duration", "Size", "Verdict")
    doc.append(_Table(head, tuple(rows), (11, 27, 20, 14, 15, 13), 5))
    doc.append(
        _Para(
            "Recorded: the time the file's own metadata gives for the start of the recording "
            "(UTC). Verdict: whether the stored copy and its records passed every check.",
            "note",
        )
    )
    if r.holdings:
        doc.append(_Heading(3, "Who held each exhibit when"))
        doc.append(_Chart(layout(r.holdings, parse_time(r.generated), _ended(r))))
        lines = []
        for i in r.items:
            mine = [h for h in r.holdings if h.exhibit == i.exhibit]
            if mine:
                held = "; ".join(
                    f"{h.holder} from {format_time(h.claimed or h.start)} (entry {h.entry}"
                    + (", out of order: drawn from the entry before it)" if h.claimed else ")")
                    for h in mine
                )
                lines.append(f"{i.exhibit}: {held}" + ("; disposed" if i.disposed else ""))
        doc.append(
            _Para(
                "Each bar runs from the exhibit's acquisition (or making) to this report, in "
                "the colour of the party that held it; a black mark is a handoff. "
                + " ".join(f"{line}." for line in lines),
                "note",
            )
        )
    return doc


def _ended(r: Report) -> dict[str, str]:
    return {i.exhibit: "disposed" for i in r.items if i.disposed}


def _check_yourself(r: Report) -> list[_Block]:
    return [
        _Heading(2, "Check this yourself"),
        _Para(
            "This report is a reading of the case's defence bundle (the folder or .zip file "
            "it came in, which holds the signed entries, the proofs and the checkpoint). To "
            "verify the bundle on your own computer, where custody is installed, run (with the "
            "path of the bundle in place of BUNDLE):"
        ),
        _Command(("custody", "verify-bundle", "BUNDLE", "--trust", r.log_vkey)),
        _Para(
            "The --trust value is the log's verifier key. Compare it character by character "
            "with the key you received from the log's operator by another route (a letter, a "
            "telephone call, a court filing), not with a copy inside the bundle: the check "
            "means only as much as that comparison. The last line says VERIFIED or names "
            "what failed; exit status 0 means verified, 1 that something is not what it claims."
        ),
        _Fields((("Log verifier key", r.log_vkey, True),)),
        _Para(
            "Without custody, each exhibit file's BLAKE3 and SHA-256 digests (b3sum FILE, "
            "sha256sum FILE) must equal the values on its page."
        ),
    ]


def _appendix(r: Report) -> list[_Block]:
    made = [i for i in r.items if i.ffmpeg_command]
    if not made:
        return []
    doc: list[_Block] = [
        _Heading(2, "Appendix: ffmpeg command lines"),
        _Para(
            "The exact command each derived clip was made with, as its signed derive entry "
            "records it (paths are the working copies custody used)."
        ),
    ]
    for i in made:
        doc.append(
            _Heading(
                4, f"{i.exhibit}: {i.op or 'derive'} of {i.parent}, log entry {i.record_index}"
            )
        )
        doc.append(_Verbatim(i.ffmpeg_command or ""))
    return doc


def _document(r: Report) -> list[_Block]:
    verdict = _Verdict(r.passed, f"Verification {r.verdict}")
    doc: list[_Block] = [_Heading(1, f"Chain of custody report: case {r.case_id}"), verdict]
    doc += [_Para(f"{FAIL_MARK} {c.detail}", "strong") for c in r.failures]
    doc += _summary_page(r)
    doc += _inventory(r)
    doc += _check_yourself(r)

    doc.append(_Heading(2, "1. Case details"))
    summary = [
        ("Case", r.case_id, False),
        ("Title", r.title or "untitled", False),
        ("Opened", r.case_opened, False),
        ("Exhibits", str(len(r.items)), False),
        ("Log origin", r.origin, False),
        ("Log verifier key", r.log_vkey, True),
        ("Checkpoint size", f"{r.checkpoint_size} entries", False),
        ("Checkpoint root (base64)", r.checkpoint_root, True),
        ("Generated", r.generated, False),
        ("Generated by", f"{r.tool}; {r.ffmpeg}", False),
    ]
    doc.append(_Fields(tuple(summary)))
    if r.checkpoint_note is not None:
        doc.append(_Para("The signed checkpoint this report rests on, verbatim:"))
        doc.append(_Verbatim(r.checkpoint_note))
    doc += [_Para(f"Note: {n}", "note") for n in r.notes]

    doc += [_Heading(2, "2. Verification"), verdict]
    checks = tuple(
        (c.subject, c.what, f"{PASS_MARK} passed" if c.passed else f"{FAIL_MARK} FAILED", c.detail)
        for c in r.all_checks
    )
    doc.append(_Table(("Subject", "Check", "Result", "Detail"), checks, (14, 26, 11, 49), 2))

    doc.append(_Heading(2, "3. Parties"))
    parties = tuple(
        (p.name, p.role, p.org, f"log entry {p.registered_at}", p.status) for p in r.parties
    )
    head: tuple[str, ...] = ("Party", "Role", "Organisation", "Key registered", "Key status")
    doc.append(_Table(head, parties, (15, 12, 28, 18, 27)))
    rows: tuple[tuple[str, ...], ...]
    doc.append(_Fields(tuple((f"Verifier key of {p.name}", p.vkey, True) for p in r.parties)))

    doc.append(_Heading(2, "4. Exhibits"))
    if not r.items:
        doc.append(_Para("The case has no exhibits."))
    for item in r.items:
        result = "passed" if item.passed else "FAILED"
        doc.append(_Heading(3, f"Exhibit {item.exhibit}: {item.name} ({result})"))
        if item.trim is not None and item.trim.starts_early:
            declared, actual = _trim_lines(item)
            doc.append(_Para(f"Declared span {declared}; actual span {actual}.", "strong"))
        if item.thumbnails:
            size = item.facts.frame_size
            outlines = _outlines(item)
            doc.append(
                _Frames(
                    item.thumbnails,
                    f"exhibit {item.exhibit}",
                    outlines,
                    size[0] / size[1] if size else None,
                )
            )
            caption = (
                f"{len(item.thumbnails)} frames, evenly spaced through the clip, taken "
                "from the stored copy."
            )
            if any(o is not None for o in outlines):
                caption += " The red outline is the declared redaction box."
            doc.append(_Para(caption, "note"))
        elif item.thumbnail_note:
            doc.append(_Para(f"Frames {item.thumbnail_note}", "note"))
        doc.append(_integrity(item))
        doc.append(_Heading(4, "Timeline: every signed log entry about this exhibit"))
        rows = tuple(
            (
                _entry_no(t.index, t.covered),
                t.time + (" (out of order)" if t.disorder else ""),
                t.type,
                (f"Claimed time {t.disorder}. " if t.disorder else "") + t.summary,
                ", ".join(t.signers),
            )
            for t in item.timeline
        )
        head = ("Entry", "Claimed time", "Type", "What", "Signed by (verified)")
        doc.append(_Table(head, rows, (7, 19, 9, 50, 15)))
        doc.append(
            _Para(
                "In log order (the order the entries were recorded); a claimed time is the "
                "signer's clock.",
                "note",
            )
        )
        doc.append(_Heading(4, "Automated analyses on record"))
        if item.analyses:
            rows = tuple(
                (
                    _entry_no(a.index, a.covered),
                    a.time,
                    a.kind,
                    f"{a.tool} {a.tool_version}",
                    a.by,
                    a.purpose,
                    a.warrant or "none recorded",
                    (f"{a.result_name}: " if a.result_name else "") + (a.result or "not kept"),
                )
                for a in item.analyses
            )
            head = ("Entry", "Time", "Kind", "Tool", "By", "Purpose", "Warrant", "Result BLAKE3")
            doc.append(_Table(head, rows, (6, 15, 12, 12, 9, 16, 10, 20)))
        else:
            doc.append(_Para("No automated analysis of this exhibit is on record."))

    doc.append(_Heading(2, "5. Handoffs"))
    if r.handoffs:
        head = ("Entry", "Time", "Exhibits", "Released by", "Received by", "Purpose")
        head += ("Authority", "Signatures verified")
        rows = tuple(
            (
                _entry_no(h.index, h.covered),
                h.time,
                ", ".join(h.exhibits),
                h.released_by,
                h.received_by,
                h.purpose,
                h.authority or "none recorded",
                _signatures(h),
            )
            for h in r.handoffs
        )
        doc.append(_Table(head, rows, (6, 19, 10, 10, 10, 16, 12, 17), 7))
    else:
        doc.append(_Para("No handoff is recorded: each exhibit is with the party who acquired it."))

    doc.append(_Heading(2, "6. Derived clips"))
    if r.derived:
        by_exhibit = {i.exhibit: i for i in r.items}
        head = ("Entry", "Exhibit", "File name", "Parent", "Operation", "Parameters")
        head += ("Made by", "Reason")
        rows = tuple(
            (
                _entry_no(d.index, d.covered),
                d.exhibit,
                d.name,
                d.parent,
                d.op,
                _derived_params(d, by_exhibit.get(d.exhibit)),
                d.by,
                d.reason or "",
            )
            for d in r.derived
        )
        doc.append(_Table(head, rows, (6, 10, 16, 10, 10, 24, 10, 14)))
        if any(i.ffmpeg_command for i in r.items):
            doc.append(_Para("The ffmpeg command lines are in the appendix.", "note"))
    else:
        doc.append(_Para("No derived clip is recorded."))

    doc.append(_Heading(2, "7. Emergency disclosures and their reviews"))
    if r.emergencies:
        head = ("Entry", "Time", "Exhibit", "Disclosed by", "Justification", "Review due")
        head += ("Review",)
        rows = tuple(
            (
                _entry_no(em.index, em.covered),
                em.time,
                em.exhibit,
                em.by,
                em.justification,
                em.due or "unknown",
                em.text,
            )
            for em in r.emergencies
        )
        doc.append(_Table(head, rows, (6, 15, 10, 10, 19, 15, 25)))
        doc.append(
            _Para(
                f"Review status as of {r.generated}: an emergency disclosure must be reviewed "
                "by a party other than the one who made it within the period the log's "
                "policy sets (72 hours unless a policy entry says otherwise).",
                "note",
            )
        )
    else:
        doc.append(_Para("No emergency disclosure is recorded in this case."))

    doc += _certification(r)
    doc.append(_Para("† marks entries newer than the checkpoint this report rests on.", "note"))
    doc += _appendix(r)
    return doc


def _derived_params(d: DerivedRow, item: ItemReport | None) -> str:
    """A derived clip's parameters without its ffmpeg command line (in the appendix); a
    trim's declared and actual span side by side."""
    shown = "; ".join(p for p in d.params if not p.startswith("ffmpeg ")) or "none"
    t = item.trim if item is not None else None
    if t is not None:
        end = f"{t.actual_end:.3f}" if t.actual_end is not None else "?"
        early = " (from the keyframe before the declared start)" if t.starts_early else ""
        shown = (
            f"declared {t.declared_start:.3f}–{t.declared_end:.3f} s; actual "
            f"{t.actual_start:.3f}–{end} s{early}. {shown}"
        )
    return shown


def _certification(r: Report) -> list[_Block]:
    doc: list[_Block] = [
        _Heading(2, "8. Certification (FRE 902(14))"),
        _Para(
            "Certification of data copied from an electronic device, storage medium or file, "
            "in the shape of Federal Rule of Evidence 902(14), made in the manner of "
            "Rule 902(11).",
            "strong",
        ),
        _Heading(4, f"(a) Records identified: case {r.case_id}"),
    ]
    for i in r.items:
        rows: tuple[tuple[str, str, bool], ...] = (
            ("Exhibit", f"{i.exhibit}: {i.name} ({i.size:,} bytes)", False),
            ("BLAKE3", i.blake3, True),
            ("SHA-256", i.sha256 or "not recorded", bool(i.sha256)),
        )
        if i.disposed:
            rows += (("Disposed", f"{i.disposed}; no copy of it is certified", False),)
        doc.append(_Fields(rows))
    log = (
        ("Log", r.origin, False),
        ("Log verifier key", r.log_vkey, True),
        ("Checkpoint", f"{r.checkpoint_size} entries", False),
        ("Checkpoint root (base64)", r.checkpoint_root, True),
    )
    doc += [
        _Heading(4, "(b) Process of digital identification"),
        _Para(_METHOD),
        _Fields(log),
        _Heading(4, "(c) Result"),
        _Verdict(r.passed, _result_text(r)),
        _Heading(4, "(d) Declaration"),
    ]
    if not r.passed:
        doc.append(_Para("Do not sign: the verification FAILED.", "strong"))
    doc += [_Para(_DECLARATION), _SignHere(_SIGNATURE_LINES), _Para(_FORM_NOTE, "note")]
    return doc


def _signatures(h: HandoffRow) -> str:
    if h.released_signed and h.received_signed:
        return f"{PASS_MARK} both verified"
    signed = ((h.released_by, h.released_signed), (h.received_by, h.received_signed))
    missing = [name for name, ok in signed if not ok]
    return f"{FAIL_MARK} missing: {', '.join(missing)}"


def _visible(text: object) -> str:
    """Text with control and format characters (bidi overrides, zero-width marks) shown
    as their code points (<U+202E>), so that what is printed is what is recorded."""
    return "".join(
        f"<U+{ord(ch):04X}>" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in str(text)
    )


# -- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:10.5pt;color:#111;
max-width:62em;margin:2em auto;padding:0 1em;line-height:1.35}
h1{font-size:1.6em;margin-bottom:.3em}
h2{font-size:1.25em;border-bottom:1px solid #999;margin-top:1.8em}
h3{font-size:1.08em;margin-top:1.6em}h4{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.4em 0 .8em}
th,td{border:1px solid #bbb;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#eee}table.fields th{width:14em;font-weight:normal;background:#f6f6f6}
code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.85em}
code{overflow-wrap:anywhere}code.digest{white-space:nowrap;overflow-wrap:normal}
pre.command{white-space:normal}pre.command .word{white-space:nowrap}
.frame{position:relative;display:inline-block;line-height:0}.frame img{display:block}
.redbox{position:absolute;border:2px solid #e00000;box-sizing:border-box}
.chart{overflow-x:auto;margin:.4em 0}hr.page{border:0;border-top:1px dashed #bbb;margin:2em 0}
@media print{hr.page{break-after:page;border:0}}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em;
border:1px solid #ddd}
.verdict{font-weight:bold;padding:.4em .7em;border:2px solid}
h1+.verdict{font-size:1.3em}
.passed{color:#0a5d1e;border-color:#0a5d1e;background:#e9f6ec}
.failed{color:#9b1111;border-color:#9b1111;background:#fbeaea}
td.ok{color:#0a5d1e}td.bad{color:#9b1111;font-weight:bold}p.strong{font-weight:bold}
.frames{display:flex;gap:6px;flex-wrap:wrap;margin:.4em 0}.frames img{border:1px solid #888}
.note{color:#555}table.sign td{height:2.4em}table.sign th{width:14em}
@media print{body{margin:0;max-width:none}h2,h3,h4{break-after:avoid}tr{break-inside:avoid}}
"""


def _e(value: object) -> str:
    return html.escape(_visible(value), quote=True)


def _html_block(b: _Block) -> str:
    if isinstance(b, _Heading):
        return f"<h{b.level}>{_e(b.text)}</h{b.level}>"
    if isinstance(b, _Para):
        return f'<p class="{b.style}">{_e(b.text)}</p>' if b.style else f"<p>{_e(b.text)}</p>"
    if isinstance(b, _Verdict):
        return f'<p class="verdict {"passed" if b.passed else "failed"}">{_e(b.text)}</p>'
    if isinstance(b, _Fields):
        rows = "".join(
            f"<tr><th>{_e(label)}</th><td>{_html_digest(v) if digest else _e(v)}</td></tr>"
            for label, v, digest in b.rows
        )
        return f'<table class="fields">{rows}</table>'
    if isinstance(b, _Chart):
        return f'<div class="chart">{svg(b.chart, _visible)}</div>'
    if isinstance(b, _Command):
        words = " ".join(
            f'<span class="word">{_html_digest(w) if _is_key(w) else _e(w)}</span>' for w in b.words
        )
        return f'<pre class="command">{words}</pre>'
    if isinstance(b, _PageBreak):
        return '<hr class="page">'
    if isinstance(b, _Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in b.head)
        body = "".join(
            "<tr>"
            + "".join(_html_cell(cell, n == b.status) for n, cell in enumerate(row))
            + "</tr>"
            for row in b.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(b, _Frames):
        n = len(b.frames)
        imgs = []
        for i, f in enumerate(b.frames, 1):
            img = (
                f'<img src="data:image/jpeg;base64,{base64.b64encode(f).decode()}" '
                f'alt="{_e(f"frame {i} of {n} of {b.label}")}">'
            )
            box = b.outlines[i - 1] if i - 1 < len(b.outlines) else None
            if box is not None:
                x, y, w, h = (round(v * 100, 3) for v in box)
                img += (
                    f'<span class="redbox" title="the declared redaction box" style="left:{x}%;'
                    f'top:{y}%;width:{w}%;height:{h}%"></span>'
                )
            imgs.append(f'<span class="frame">{img}</span>')
        return f'<div class="frames">{"".join(imgs)}</div>'
    if isinstance(b, _Verbatim):
        return "<pre>" + "\n".join(_e(line) for line in b.text.rstrip("\n").split("\n")) + "</pre>"
    rows = "".join(f"<tr><th>{_e(label)}</th><td></td></tr>" for label in b.labels)
    return f'<table class="sign">{rows}</table>'


_KEY_RE = re.compile(r"[a-z0-9._/-]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*")


def _is_key(text: str) -> bool:
    """Whether `text` is a verifier key (NAME+KEYID+BASE64): it may break only after
    its two '+' separators, never inside a part."""
    return _KEY_RE.fullmatch(text) is not None


def _key_parts(text: str) -> list[str]:
    """A verifier key in the parts a line may end after ('name+', 'keyid+', 'key'); any
    other value whole."""
    if not _is_key(text):
        return [text]
    name, keyid, key = text.split("+", 2)
    return [f"{name}+", f"{keyid}+", key]


def _html_digest(value: str) -> str:
    """A digest or key in monospace that never breaks inside; a key may break after its
    '+' separators (<wbr>)."""
    return '<code class="digest">' + "<wbr>".join(_e(p) for p in _key_parts(value)) + "</code>"


def _html_cell(text: str, status: bool) -> str:
    if status:
        return f'<td class="{"ok" if text.startswith(PASS_MARK) else "bad"}">{_e(text)}</td>'
    return f"<td>{_e(text)}</td>"


def render_html(report: Report) -> bytes:
    """A self-contained HTML page: inline CSS, frames as data: URIs, no script; every
    value escaped."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        # No script and no network: only inline styles and data: images may load.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Chain of custody report: case {_e(report.case_id)}</title>\n"
        f"<style>{_CSS}</style></head><body>\n"
    )
    body = "\n".join(_html_block(b) for b in _document(report))
    return (head + body + "\n</body></html>\n").encode("utf-8")


# -- PDF ------------------------------------------------------------------------------------

# DejaVu (Debian's fonts-dejavu-core, listed in .ci/sysdeps.sh) draws names and paths in
# any European script.  Without it the PDF falls back to the PDF core fonts (Latin-1).
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
)
_FONT_FILES = {
    ("sans", ""): "DejaVuSans.ttf",
    ("sans", "B"): "DejaVuSans-Bold.ttf",
    ("mono", ""): "DejaVuSansMono.ttf",
}
# The core-font fallback spells our own typography in Latin-1.
_LATIN1 = str.maketrans({"✓": "OK", "✗": "X", "—": "-", "–": "-", "…": "...", "†": "+"})

_MARGIN = 15.0
_LABEL_W = 48.0
# 64 hex digits of monospace at 7.5 pt take 102 mm: a digest fits on one line beside
# its label (A4 less margins leaves 132 mm), so no digest is ever broken.
_MONO_PT = 7.5
_MIN_MONO_PT = 5.0  # the smallest a key is set in before it is broken at a '+'
_TEXT_PT = 8.5


def _font_dir() -> Path | None:
    for d in _FONT_DIRS:
        if all((d / name).is_file() for name in _FONT_FILES.values()):
            return d
    return None


class _PDF(FPDF):
    def __init__(self, report: Report) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.report = report
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, margin=_MARGIN)
        fonts = _font_dir()
        self.unicode = fonts is not None
        if fonts is not None:
            for (family, style), name in _FONT_FILES.items():
                self.add_font(family, style, str(fonts / name))
            self.sans, self.mono = "sans", "mono"
        else:
            self.sans, self.mono = "helvetica", "courier"

    def t(self, text: object) -> str:
        """`text` as the current font can draw it: any other character as its code point
        (<U+4E2D>)."""
        s = _visible(text)
        if not self.unicode:
            s = s.translate(_LATIN1)
            return "".join(ch if ord(ch) < 256 else f"<U+{ord(ch):04X}>" for ch in s)
        cmap = getattr(self.current_font, "cmap", None)
        if not cmap:
            return s
        return "".join(ch if ord(ch) in cmap or ch == " " else f"<U+{ord(ch):04X}>" for ch in s)

    def footer(self) -> None:
        r = self.report
        self.set_y(-10)
        self.set_font(self.sans, "", 7)
        text = (
            f"Case {r.case_id}: chain of custody report generated {r.generated} by {r.tool}. "
            f"Verification {r.verdict}. Page {self.page_no()}/{{nb}}"
        )
        self.cell(0, 4, self.t(text), align="C")

    def need(self, height: float) -> None:
        """Start a new page unless `height` mm fit on this one."""
        if self.will_page_break(height):
            self.add_page()

    def block(self, b: _Block) -> None:
        if isinstance(b, _Heading):
            size, keep = {1: (16.0, 20.0), 2: (12.5, 30.0), 3: (10.5, 30.0)}.get(b.level, (9, 20))
            self.need(keep)
            self.ln({1: 0, 2: 3, 3: 2}.get(b.level, 1))
            self.set_font(self.sans, "B", size)
            self.multi_cell(0, size * 0.5, self.t(b.text), new_x="LMARGIN", new_y="NEXT")
            if b.level == 2:
                self.set_draw_color(150)
                self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
                self.set_draw_color(0)
            self.ln(1.5)
        elif isinstance(b, _Para):
            size = 7.5 if b.style == "note" else _TEXT_PT
            self.set_font(self.sans, "B" if b.style == "strong" else "", size)
            self.set_text_color(90 if b.style == "note" else 0)
            self.multi_cell(0, size * 0.5, self.t(b.text), new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0)
            self.ln(1.5)
        elif isinstance(b, _Verdict):
            self.verdict(b)
        elif isinstance(b, _Fields):
            self.fields(b)
        elif isinstance(b, _Table):
            self.grid(b)
        elif isinstance(b, _Frames):
            self.frames(b)
        elif isinstance(b, _Chart):
            self.chart(b.chart)
        elif isinstance(b, _Command):
            self.command(b)
        elif isinstance(b, _PageBreak):
            self.add_page()
        elif isinstance(b, _Verbatim):
            self.set_font(self.mono, "", 7)
            lines = b.text.rstrip("\n").split("\n")
            for line in lines:
                self.multi_cell(0, 3.4, self.t(line), align="L", new_x="LMARGIN", new_y="NEXT")
            self.ln(1.5)
        else:
            self.sign_here(b)

    def verdict(self, b: _Verdict) -> None:
        color = (10, 93, 30) if b.passed else (155, 17, 17)
        big = len(b.text) < 40
        self.set_font(self.sans, "B", 13 if big else _TEXT_PT)
        self.set_text_color(*color)
        self.set_draw_color(*color)
        self.set_line_width(0.6)
        self.multi_cell(
            0,
            9 if big else 4.5,
            self.t(b.text),
            border=1,
            padding=2,
            new_x="LMARGIN",
            new_y="NEXT",
        )
        self.set_line_width(0.2)
        self.set_text_color(0)
        self.set_draw_color(0)
        self.ln(2)

    def fields(self, b: _Fields) -> None:
        height = 4.2
        for label, value, digest in b.rows:
            self.need(height)
            y = self.get_y()
            self.set_font(self.sans, "", _TEXT_PT)
            self.set_text_color(80)
            self.multi_cell(_LABEL_W, height, self.t(label), new_x="RIGHT", new_y="NEXT")
            bottom = self.get_y()
            self.set_text_color(0)
            self.set_xy(self.l_margin + _LABEL_W, y)
            if digest:
                self.unbroken(value, height)
            else:
                self.multi_cell(0, height, self.t(value), align="L", new_x="LMARGIN", new_y="NEXT")
            self.set_y(max(self.get_y(), bottom))
        self.ln(1.5)

    def unbroken(self, value: str, height: float) -> None:
        """A digest or verifier key from the current x, never broken inside: monospace
        at 7.5 pt, smaller (down to 5 pt) if that does not fit, and only then a key on
        two or three lines, each ending at one of its '+' separators."""
        x = self.get_x()
        room = self.w - self.r_margin - x
        text = self.t(value)
        size = _MONO_PT
        self.set_font(self.mono, "", size)
        while self.get_string_width(text) > room and size > _MIN_MONO_PT:
            size = max(size - 0.25, _MIN_MONO_PT)
            self.set_font(self.mono, "", size)
        if self.get_string_width(text) <= room:
            self.cell(room, height, text, new_x="LMARGIN", new_y="NEXT")
            return
        parts = [self.t(p) for p in _key_parts(value)]
        # Broken at its '+': as large as its longest part allows (a 128-character
        # origin, the longest there is, fits at 4.5 pt).
        size = _MONO_PT
        self.set_font(self.mono, "", size)
        while max(self.get_string_width(p) for p in parts) > room and size > 4.0:
            size -= 0.25
            self.set_font(self.mono, "", size)
        lines = [""]
        for part in parts:
            if lines[-1] and self.get_string_width(lines[-1] + part) > room:
                lines.append("")
            lines[-1] += part
        for line in lines:
            self.set_x(x)
            if self.get_string_width(line) <= room:
                self.cell(room, height, line, new_x="LMARGIN", new_y="NEXT")
            else:  # a value that is no key and too long for any line: wrapped, as before
                self.multi_cell(room, height, line, new_x="LMARGIN", new_y="NEXT")

    def command(self, b: _Command) -> None:
        """A command line in monospace, broken only between words (a key is one word,
        shrunk to fit a line of its own if need be)."""
        size, height = 8.0, 4.2
        self.set_font(self.mono, "", size)
        room = self.w - self.l_margin - self.r_margin - 4
        self.need(height * 3)
        self.set_fill_color(246, 246, 246)
        line = ""
        for word in b.words:
            w = self.t(word)
            trial = f"{line} {w}" if line else w
            if line and self.get_string_width(trial) > room:
                self.set_x(self.l_margin + 2)
                self.cell(room, height, line, fill=True, new_x="LMARGIN", new_y="NEXT")
                line = "    " + w
            else:
                line = trial
        self.set_x(self.l_margin + 2)
        if self.get_string_width(line) <= room:
            self.cell(room, height, line, fill=True, new_x="LMARGIN", new_y="NEXT")
        else:
            self.set_x(self.l_margin + 2)
            self.unbroken(line.strip(), height)
        self.set_font(self.sans, "", _TEXT_PT)
        self.ln(2)

    def chart(self, c: Chart) -> None:
        """Who held each exhibit when, drawn with vector operators (rectangles, lines)."""
        label_w, lane_h, bar_h = 26.0, 6.0, 4.0
        left = self.l_margin + label_w
        axis_w = self.w - self.r_margin - left
        self.need(len(c.lanes) * lane_h + 18)
        y0 = self.get_y() + 1
        self.set_line_width(0.15)
        for n, lane in enumerate(c.lanes):
            y = y0 + n * lane_h
            self.set_font(self.sans, "B", 7)
            self.set_text_color(0)
            self.set_xy(self.l_margin, y)
            self.cell(label_w, bar_h, self.t(lane.exhibit))
            self.set_font(self.sans, "", 6.5)
            for seg in lane.segments:
                x, w = left + seg.x0 * axis_w, max((seg.x1 - seg.x0) * axis_w, 0.3)
                self.set_fill_color(*seg.colour)
                self.set_draw_color(50)
                self.rect(x, y, w, bar_h, style="DF")
                name = self.t(seg.holder)
                if self.get_string_width(name) + 2 < w:
                    self.set_text_color(255)
                    self.set_xy(x + 0.8, y)
                    self.cell(w - 1, bar_h, name)
            self.set_draw_color(0)
            self.set_line_width(0.4)
            for seg in lane.segments[1:]:
                x = left + seg.x0 * axis_w
                self.line(x, y - 0.6, x, y + bar_h + 0.6)
            self.set_line_width(0.15)
            if lane.ended and lane.segments:
                self.set_text_color(150, 0, 0)
                self.set_xy(left + lane.segments[-1].x1 * axis_w + 0.8, y)
                self.cell(20, bar_h, self.t(lane.ended))
        axis = y0 + len(c.lanes) * lane_h
        self.set_draw_color(90)
        self.line(left, axis, left + axis_w, axis)
        self.set_text_color(60)
        self.set_font(self.sans, "", 6.5)
        self.set_xy(left, axis + 0.5)
        self.cell(axis_w / 2, 3.5, self.t(c.start))
        self.cell(axis_w / 2, 3.5, self.t(c.end), align="R")
        x, y = left, axis + 5
        for holder, colour in c.legend:
            self.set_fill_color(*colour)
            self.set_draw_color(50)
            self.rect(x, y + 0.5, 3, 3, style="DF")
            self.set_text_color(0)
            self.set_xy(x + 4, y)
            name = self.t(holder)
            self.cell(self.get_string_width(name) + 1, 4, name)
            x += self.get_string_width(name) + 9
        self.set_draw_color(0)
        self.set_fill_color(255)
        self.set_text_color(0)
        self.set_y(y + 6)

    def grid(self, b: _Table) -> None:
        size = 7.5
        self.set_font(self.sans, "", size)
        heading = FontFace(emphasis="BOLD", fill_color=(235, 235, 235))
        with self.table(
            col_widths=b.widths,
            text_align="LEFT",
            line_height=size * 0.48,
            headings_style=heading,
            padding=0.8,
        ) as table:
            row = table.row()
            for h in b.head:
                row.cell(self.t(h))
            for values in b.rows:
                row = table.row()
                for v in values:
                    row.cell(self.t(v))
        self.ln(2)

    def frames(self, b: _Frames) -> None:
        """Frames side by side, each fitted into a 40 x 25 mm box (aspect kept), the
        redaction box outlined in red on those it applies to."""
        w, h, gap = 40.0, 25.0, 3.0
        self.need(h + 2)
        x, y = self.l_margin, self.get_y()
        for n, frame in enumerate(b.frames):
            if x + w > self.w - self.r_margin + 0.01:
                break
            box = b.outlines[n] if n < len(b.outlines) else None
            if b.aspect:
                iw, ih = (w, w / b.aspect) if w / b.aspect <= h else (h * b.aspect, h)
                ix, iy = x + (w - iw) / 2, y + (h - ih) / 2
                self.image(io.BytesIO(frame), x=ix, y=iy, w=iw, h=ih)
                if box is not None:
                    self.set_draw_color(224, 0, 0)
                    self.set_line_width(0.5)
                    bx, by, bw, bh = box
                    self.rect(ix + bx * iw, iy + by * ih, bw * iw, bh * ih)
                    self.set_line_width(0.2)
                    self.set_draw_color(0)
            else:
                self.image(io.BytesIO(frame), x=x, y=y, w=w, h=h, keep_aspect_ratio=True)
            x += w + gap
        self.set_y(y + h + 1.5)

    def sign_here(self, b: _SignHere) -> None:
        self.need(len(b.labels) * 10 + 4)
        self.set_font(self.sans, "", _TEXT_PT)
        for label in b.labels:
            self.ln(5)
            y = self.get_y()
            self.cell(_LABEL_W, 5, self.t(label))
            self.line(self.l_margin + _LABEL_W, y + 5, self.w - self.r_margin, y + 5)
            self.ln(5)
        self.ln(3)


def render_pdf(report: Report) -> bytes:
    """An A4 PDF of the report (fpdf2), with DejaVu fonts for Unicode text where installed."""
    pdf = _PDF(report)
    pdf.set_title(f"Chain of custody report: case {report.case_id}")
    pdf.set_creator(report.tool)
    pdf.set_producer(report.tool)
    generated = datetime.strptime(report.generated, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    pdf.set_creation_date(generated)
    pdf.alias_nb_pages()
    pdf.add_page()
    for b in _document(report):
        pdf.block(b)
    return bytes(pdf.output())
