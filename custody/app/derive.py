"""Derived clips: trims, redactions and transcodes, and the proof of their lineage.

The library behind `custody derive` (docs/derive.md).  Deriving a clip is, in order:

1. a dry run of the custody rules (docs/spec/entry.md): only the current holder of
   the parent may derive from it, within any consent it was taken in on; a refusal
   costs no ffmpeg run;
2. one ffmpeg run (`custody.infra.ffmpeg`) into a temp file: a **trim** is a stream copy
   (every packet unchanged), a **redaction** re-encodes the video losslessly with the
   declared box covered during the declared time range and copies the audio, a
   **transcode** re-encodes lossily with the declared codec;
3. the child is stored and measured like an ingested file (`custody.app.evidence.prepare`);
4. the relation to the parent is **proven before anything is recorded** (the same
   proof `lineage` gives later): a derivation custody cannot prove is refused;
5. one write transaction allocates the child's exhibit number and appends one
   `derive` entry signed by the deriving party, with the parent, the exact
   parameters, the ffmpeg command line and version, and the child's digests; the
   child's exhibit is indexed with the deriving party as holder.

`lineage(c, row)` re-proves, from the files in the evidence store, what a derived
item is: a contiguous run of its parent's packets (trim); its parent with only the
declared box changed, only in the declared time range, and the sound untouched
(redaction); or, for a lossy transcode, only what the entry declares.  This module
does the I/O (ffmpeg runs, the store, the log); the proofs are pure and live in
`custody.media.lineage`, where offline bundle verification uses them too.
`parse_box` is re-exported from there for the command line.
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from custody.app.evidence import (
    Prepared,
    Source,
    exhibit_label,
    item_record,
    prepare,
    recover,
    resolve_item,
)
from custody.app.home import Custody
from custody.errors import (
    CustodyError,
    InputError,
    NotFoundError,
    PolicyError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.infra import ffmpeg as media
from custody.infra.crash import crash_point
from custody.infra.files import no_space_error, work_dir
from custody.infra.indexer import append_indexed
from custody.infra.store import ItemRow
from custody.infra.vault import Vault, hash_file
from custody.media.compare import MediaRecord
from custody.media.lineage import (
    Proof,
    box_text,
    derive_params,
    frames_between,
    parse_box,
    presentation_order,
    prove_redact,
    prove_trim,
    redact_params,
    report_transcode,
    start_time,
    trim_range,
)
from custody.model import rules
from custody.model.entry import Entry, sign_entry
from custody.model.parties import check_entry
from custody.model.rules import Parsed
from custody.model.types import DeriveRequest
from custody.tlog.note import Signer

__all__ = [
    "OPS",
    "REDACT_STYLES",
    "TRANSCODE_CODECS",
    "Derived",
    "Lineage",
    "ParentMissingError",
    "format_seconds",
    "lineage",
    "parse_box",
    "parse_seconds",
    "redact",
    "transcode",
    "trim",
]

OPS = ("trim", "redact", "transcode")
REDACT_STYLES = ("box", "blur")
# Transcode codecs: the container they are written in, the default and highest CRF.
TRANSCODE_CODECS: dict[str, tuple[str, int, int]] = {
    "libx264": (".mp4", 23, 51),
    "libx265": (".mp4", 28, 51),
    "libvpx-vp9": (".webm", 32, 63),
}
# Audio codecs each transcode container takes as they are (stream copy); others
# are re-encoded with the encoder and bitrate given.
_AUDIO_COPY = {
    ".mp4": frozenset({"aac", "mp3", "alac", "ac3", "eac3"}),
    ".webm": frozenset({"opus", "vorbis"}),
}
_AUDIO_ENCODE = {".mp4": ("aac", "128k"), ".webm": ("libopus", "96k")}
# Pixel formats libx264 encodes losslessly at -qp 0 (`ffmpeg -h encoder=libx264`);
# anything else is redacted with FFV1, which takes many more.
_X264_PIX_FMTS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv16"}
    | {"nv21", "yuv420p10le", "yuv422p10le", "yuv444p10le", "gray", "gray10le"}
)
# Pixel formats the blur's `overlay` works in without converting (a conversion
# there and back would change every frame, and the proof would refuse the copy).
_BLUR_PIX_FMTS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le"}
    | {"yuv422p10le", "gbrp"}
)
# Containers a redaction keeps when the parent is in one (with lossless H.264).
_REDACT_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".ts", ".mts", ".m2ts"})
# Chroma subsampling (horizontal, vertical) of the few formats subsampled more than
# 2x2; a redaction box is widened to these multiples so that it covers whole chroma
# samples (otherwise a blur spills one luma pixel outside the declared box).
_CHROMA_ALIGN = {"yuv411p": (4, 1), "yuv410p": (4, 4), "yuvj411p": (4, 1)}
_MICRO = 1_000_000
# A render that fails with less than this free on its disk failed for want of space
# (ffmpeg's own message only says the muxer could not write).
_MIN_FREE = 1024 * 1024

T = TypeVar("T")


class ParentMissingError(NotFoundError):
    """A derived item's parent is not in this evidence store, so its lineage cannot be
    proven here (e.g. only the derived clip was handed over to this custody home)."""


# -- parameters ----------------------------------------------------------------------------

_TIME_RE = re.compile(r"(?:(?:(\d+):)?(\d{1,2}):)?(\d+)(?:\.(\d{1,6}))?")


def parse_seconds(text: str, option: str) -> int:
    """A time given on the command line, in microseconds.

    Accepts seconds (``1.5``, ``90``) or ``[HH:]MM:SS[.ffffff]`` (``01:02.5``,
    ``00:01:02.500``), with up to six decimals.

    Raises:
        UsageError: naming `option` and showing the accepted forms.
    """
    m = _TIME_RE.fullmatch(text.strip())
    bad = UsageError(
        f"{option} {text!r} is not a time",
        hint="give seconds (1.5) or [HH:]MM:SS[.mmm] (00:01:02.500), at most 6 decimals",
    )
    if m is None:
        raise bad
    hours, minutes, seconds, fraction = m.groups()
    if minutes is not None and int(seconds) >= 60:
        raise bad
    if hours is not None and int(minutes) >= 60:
        raise bad
    whole = (int(hours or 0) * 60 + int(minutes or 0)) * 60 + int(seconds)
    return whole * _MICRO + int((fraction or "").ljust(6, "0"))


def format_seconds(us: int) -> str:
    """Microseconds as decimal seconds for entries and ffmpeg: ``1.500``, ``0.033367``."""
    whole, frac = divmod(us, _MICRO)
    if frac % 1000 == 0:
        return f"{whole}.{frac // 1000:03d}"
    return f"{whole}.{frac:06d}"


def _in_parallel(*jobs: Callable[[], T]) -> list[T]:
    """Run independent ffmpeg jobs at once (each waits on its own process)."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


def _prove(
    op: str,
    params: Mapping[str, str],
    parent: tuple[Path, MediaRecord, str],
    child: tuple[Path, MediaRecord, str],
) -> Proof:
    """The proof for one derivation, from the two files and their media records.

    `parent`/`child` are (path, record, name for messages).  The files are
    decoded here for a redaction; the proofs themselves are `custody.media.lineage`.
    Raises VerificationError if the child is not what the parameters say.
    """
    p_path, p_rec, p_name = parent
    c_path, c_rec, c_name = child
    if op == "trim":
        start, end = trim_range(params)
        return prove_trim(p_rec.packets, c_rec.packets, start=start, end=end)
    if op == "redact":
        declared = redact_params(params)
        box, covered = declared.box, declared.frames
        p_frames, c_frames = _in_parallel(
            lambda: media.decoded_frames(p_path, box=box, frames=covered, name=p_name),
            lambda: media.decoded_frames(c_path, box=box, frames=covered, name=c_name),
        )
        return prove_redact(
            declared, p_frames, c_frames, p_rec.packets, c_rec.packets, offset=start_time(p_rec)
        )
    if op == "transcode":
        return report_transcode(params, p_rec.packets, c_rec.packets)
    raise VerificationError(f"unknown derive operation {op!r}")


# -- deriving ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Derived:
    """The outcome of one derivation.

    `status` is ``derived`` (a new exhibit and `derive` entry at `index`) or
    ``already`` (the same bytes are already an exhibit of the case, e.g. the same
    trim made twice: nothing was appended, `index` is that exhibit's entry and
    `proof` is None).
    """

    status: str
    op: str
    parent: ItemRow
    child: ItemRow
    index: int
    params: tuple[tuple[str, str], ...]
    proof: Proof | None

    def as_json(self) -> dict[str, Any]:
        c = self.child
        return {
            "status": self.status,
            "op": self.op,
            "parent": self.parent.blake3,
            "parent_exhibit": self.parent.exhibit,
            "exhibit": c.exhibit,
            "index": self.index,
            "blake3": c.blake3,
            "sha256": c.sha256,
            "size": c.size,
            "name": c.name,
            "kind": c.kind,
            "params": [{"name": k, "value": v} for k, v in self.params],
            "proof": None if self.proof is None else self.proof.to_json(),
        }


Render = Callable[[Path, Path, str], media.Rendered]


def trim(
    c: Custody,
    ref: str,
    *,
    start: str,
    end: str,
    by: Signer,
    reason: str,
    now: Callable[[], datetime],
    case: str | None = None,
    sha256: bool = False,
) -> Derived:
    """Derive the excerpt [start, end] s of item `ref`, losslessly (stream copy).

    Every packet is copied unchanged, so the excerpt starts at the keyframe at or
    before `start` (a GOP cannot be cut in the middle without re-encoding it): it
    may show up to one GOP more than asked, never less.  The entry records that
    keyframe's time as `cut`.  `start`/`end` are seconds from the start of the
    parent (its container's start time), as `parse_seconds` reads them.

    Raises:
        UsageError: a bad time, `start` >= `end`, a time beyond the clip, an
            attachment as parent, an empty reason.
        PolicyError: `by` may not derive from the item (not its holder; outside
            consent): exit 4, the message names the holder.
        InputError: ffmpeg failed, or the excerpt could not be proven; nothing recorded.
    """
    row, record = _media_parent(c, ref, case)
    lo, hi = parse_seconds(start, "--start"), parse_seconds(end, "--end")
    _check_range(row, record, lo, hi)
    reason = _clean_reason(reason)
    parent_path = _ready(c, row, by.name, now())
    cut = _cut_point(parent_path, row, lo)
    params = (
        ("start", format_seconds(lo)),
        ("end", format_seconds(hi)),
        ("mode", "copy"),
        ("cut", format_seconds(cut)),
    )
    suffix = Path(row.name).suffix.lower()
    suffix = suffix if suffix in media.TRIM_SUFFIXES else ".mkv"

    def render(src: Path, dst: Path, name: str) -> media.Rendered:
        return media.trim_copy(
            src,
            dst,
            cut=format_seconds(cut) if cut > 0 else None,
            duration=format_seconds(hi - cut),
            name=name,
        )

    return _finish(c, row, record, "trim", params, suffix, render, by, reason, now, sha256)


def _cut_point(parent_path: Path, row: ItemRow, start: int) -> int:
    """Where a stream copy of [start, ...] must begin, in microseconds.

    The decoding time of the last keyframe shown at or before `start` (floored to
    the microsecond, so that ffmpeg's cut keeps that keyframe and drops what comes
    before it); `start` itself if the clip has no video or no keyframe that early.
    """
    keyframes = sorted(media.video_keyframes(parent_path, name=row.exhibit))
    before = [k for k in keyframes if k[0] <= Fraction(start, _MICRO)]
    if not before:
        return start
    pts, dts = before[-1]
    return max(0, math.floor(min(pts, dts) * _MICRO))


def redact(
    c: Custody,
    ref: str,
    *,
    box: tuple[int, int, int, int],
    start: str | None = None,
    end: str | None = None,
    style: str = "box",
    by: Signer,
    reason: str,
    now: Callable[[], datetime],
    case: str | None = None,
    sha256: bool = False,
) -> Derived:
    """Derive a copy of item `ref` with `box` (x, y, w, h) covered during [start, end] s.

    `style` ``box`` fills it black; ``blur`` blurs it.  Without `start` and `end`
    the whole clip is covered; with one of them, the other defaults to the start or
    end of the clip.  The box is widened to whole chroma samples (even coordinates
    for 4:2:0 video) so that nothing outside it changes; the entry records the box
    as applied.  The video is re-encoded losslessly (H.264 at ``-qp 0``, or FFV1
    for pixel formats H.264 cannot keep), the audio copied, so that frames outside
    the range decode to exactly the parent's pixels.  The copy is written in the
    parent's container if that is MP4/MOV, Matroska or MPEG-TS (and H.264 is
    used), else in Matroska.

    Raises:
        UsageError: a box outside the frame, a bad time or range, a parent without
            exactly one video stream, an empty reason.
        PolicyError: `by` may not derive from the item (exit 4, names the holder).
        InputError: ffmpeg failed, or the redaction could not be proven; nothing recorded.
    """
    if style not in REDACT_STYLES:
        raise UsageError(f"--style {style!r} is not one of {', '.join(REDACT_STYLES)}")
    row, record = _media_parent(c, ref, case)
    video = _single_video(row, record)
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    pix_fmt = str(video.get("pix_fmt") or "")
    x, y, w, h = box
    if x + w > width or y + h > height:
        raise UsageError(
            f"--box {box_text(box)} reaches outside the {width}x{height} frame of {row.exhibit}",
            hint=f"x + width must be at most {width}, y + height at most {height}",
        )
    if style == "blur" and pix_fmt not in _BLUR_PIX_FMTS:
        raise UsageError(
            f"{row.exhibit} is {pix_fmt} video, which the blur cannot keep losslessly",
            hint="use --style box (a filled box) for this clip",
        )
    applied = _align_box(box, pix_fmt, width, height)
    params: list[tuple[str, str]] = [("box", box_text(applied)), ("style", style)]
    span: tuple[int, int] | None = None
    if start is not None or end is not None:
        span = (
            0 if start is None else parse_seconds(start, "--start"),
            _duration_us(record) if end is None else parse_seconds(end, "--end"),
        )
        _check_range(row, record, *span)
    reason = _clean_reason(reason)
    _ready(c, row, by.name, now())
    covered: tuple[int, int] | None = None
    if span is not None:
        lo, hi = span
        # ffmpeg is told frame numbers, which do not depend on how it offsets
        # timestamps (that varies with the streams mapped).  Frame n is the n-th
        # video packet in presentation order; the proof checks this against the
        # decoded frames before anything is recorded.
        try:
            covered = frames_between(
                presentation_order(record, int(video["index"])),
                Fraction(lo, _MICRO),
                Fraction(hi, _MICRO),
                Fraction(0),
            )
        except VerificationError as exc:
            raise InputError(f"{row.exhibit}: {exc.message}") from None
        if covered is None:
            raise UsageError(
                f"no frame of {row.exhibit} is shown between {format_seconds(lo)} and "
                f"{format_seconds(hi)} s",
                hint="widen the range to include at least one frame",
            )
        params += [
            ("start", format_seconds(lo)),
            ("end", format_seconds(hi)),
            ("frames", f"{covered[0]}-{covered[1]}"),
        ]
    codec = "libx264" if pix_fmt in _X264_PIX_FMTS else "ffv1"
    if codec not in media.encoders():
        codec = "ffv1"
    params += [("codec", codec)]
    params += [("qp", "0")] if codec == "libx264" else [("level", "3")]
    params += [("pix_fmt", pix_fmt), ("audio-codec", "copy")]
    # The parent's own container where it takes lossless H.264 (so that copied sound
    # keeps its exact packets: MPEG-TS AAC, say, would lose its ADTS headers in
    # Matroska); Matroska otherwise.
    suffix = Path(row.name).suffix.lower()
    if codec != "libx264" or suffix not in _REDACT_SUFFIXES:
        suffix = ".mkv"

    time_base = record.packets.streams[int(video["index"])].time_base

    def render(src: Path, dst: Path, name: str) -> media.Rendered:
        return media.redact_lossless(
            src,
            dst,
            box=applied,
            frames=covered,
            style=style,
            codec=codec,
            pix_fmt=pix_fmt,
            name=name,
            time_base=time_base,
        )

    return _finish(c, row, record, "redact", tuple(params), suffix, render, by, reason, now, sha256)


def transcode(
    c: Custody,
    ref: str,
    *,
    codec: str,
    crf: int | None = None,
    by: Signer,
    reason: str,
    now: Callable[[], datetime],
    case: str | None = None,
    sha256: bool = False,
) -> Derived:
    """Derive a lossy re-encode of item `ref`'s first video stream with `codec`.

    For playback (e.g. a court's player): 8-bit 4:2:0 video at `crf` (default per
    codec: libx264 23, libx265 28, libvpx-vp9 32), MP4 (H.264/H.265) or WebM (VP9);
    the sound is copied where the container takes it, else re-encoded (AAC 128k
    for MP4, Opus 96k for WebM).  A transcode is not provable frame by frame: its
    lineage states the declared parameters (and proves copied sound unchanged).

    Raises:
        UsageError: an unknown codec or one this ffmpeg lacks, a CRF out of range,
            an attachment as parent, an empty reason.
        PolicyError: `by` may not derive from the item (exit 4, names the holder).
        InputError: ffmpeg failed; nothing recorded.
    """
    if codec not in TRANSCODE_CODECS:
        raise UsageError(
            f"--codec {codec!r} is not supported", hint=f"use one of {', '.join(TRANSCODE_CODECS)}"
        )
    suffix, default_crf, max_crf = TRANSCODE_CODECS[codec]
    available = media.encoders()
    if codec not in available:
        usable = [k for k in TRANSCODE_CODECS if k in available]
        raise UsageError(
            f"this ffmpeg has no {codec} encoder",
            hint=f"use one of {', '.join(usable)}" if usable else "install an ffmpeg with libx264",
        )
    quality = default_crf if crf is None else crf
    if not 0 <= quality <= max_crf:
        raise UsageError(f"--crf {quality} is out of range for {codec} (0-{max_crf})")
    row, record = _media_parent(c, ref, case)
    if not any(s.get("codec_type") == "video" for s in record.metadata.get("streams", [])):
        raise UsageError(f"{row.exhibit} has no video stream to transcode")
    reason = _clean_reason(reason)
    _ready(c, row, by.name, now())
    audio_codecs = {
        str(s.get("codec_name"))
        for s in record.metadata.get("streams", [])
        if s.get("codec_type") == "audio"
    }
    audio: tuple[str, ...] = ("copy",)
    if not audio_codecs <= _AUDIO_COPY[suffix]:
        audio = _AUDIO_ENCODE[suffix]
    params: list[tuple[str, str]] = [
        ("codec", codec),
        ("crf", str(quality)),
        ("pix_fmt", "yuv420p"),
        ("audio-codec", audio[0]),
    ]
    if len(audio) > 1:
        params.append(("audio-bitrate", audio[1]))

    def render(src: Path, dst: Path, name: str) -> media.Rendered:
        return media.transcode(
            src, dst, codec=codec, crf=quality, audio=audio, pix_fmt="yuv420p", name=name
        )

    return _finish(
        c, row, record, "transcode", tuple(params), suffix, render, by, reason, now, sha256
    )


def _media_parent(c: Custody, ref: str, case: str | None) -> tuple[ItemRow, MediaRecord]:
    row = resolve_item(c, ref, case)
    record = item_record(c, row) if row.kind == "media" else None
    if record is None:
        raise UsageError(
            f"{row.exhibit} ({row.name}) is an attachment, not footage: nothing to derive",
            hint="trim, redact and transcode work on media items",
        )
    return row, record


def _single_video(row: ItemRow, record: MediaRecord) -> Mapping[str, Any]:
    videos = [
        s
        for s in record.metadata.get("streams", [])
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if len(videos) != 1:
        raise UsageError(
            f"{row.exhibit} has {len(videos)} video streams; a redaction works on exactly one"
        )
    stream: Mapping[str, Any] = videos[0]
    if not stream.get("width") or not stream.get("height") or not stream.get("pix_fmt"):
        raise UsageError(f"{row.exhibit}: ffprobe reports no frame size or pixel format")
    return stream


def _align_box(
    box: tuple[int, int, int, int], pix_fmt: str, width: int, height: int
) -> tuple[int, int, int, int]:
    """Widen `box` outwards to whole chroma samples, within the frame."""
    if pix_fmt.startswith(("gray", "yuv444", "yuvj444", "gbr", "rgb", "bgr")):
        return box
    ax, ay = _CHROMA_ALIGN.get(pix_fmt, (2, 2))
    x, y, w, h = box
    x0, y0 = x - x % ax, y - y % ay
    x1, y1 = min(width, -(-(x + w) // ax) * ax), min(height, -(-(y + h) // ay) * ay)
    return x0, y0, x1 - x0, y1 - y0


def _duration_us(record: MediaRecord) -> int:
    """The parent's duration in microseconds (ffprobe's container duration)."""
    value = record.metadata.get("format", {}).get("duration")
    try:
        return int(Fraction(str(value)) * _MICRO)
    except (ValueError, ZeroDivisionError):
        return 0


def _check_range(row: ItemRow, record: MediaRecord, lo: int, hi: int) -> None:
    """Refuse a time range that is empty or reaches beyond the clip (UsageError)."""
    if lo >= hi:
        raise UsageError(
            f"--start {format_seconds(lo)} is not before --end {format_seconds(hi)}",
            hint="the range is [start, end] in seconds from the start of the clip",
        )
    duration = _duration_us(record)
    if duration <= 0:
        raise UsageError(f"{row.exhibit} has no known duration to cut in")
    if hi > duration:
        which = "--end" if lo < duration else "--start"
        value = hi if which == "--end" else lo
        raise UsageError(
            f"{which} {format_seconds(value)} is beyond the end of {row.exhibit} "
            f"({format_seconds(duration)} s)",
            hint=f"times count from the start of the clip: 0 to {format_seconds(duration)}",
        )


def _clean_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise UsageError("--reason is required: say why the copy is made")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise UsageError("--reason must be one line of text")
    return text


def _precheck(c: Custody, row: ItemRow, by: str, when: datetime) -> None:
    """Dry-run the custody rules for a derive by `by` from `row` (PolicyError if refused).

    The log applies the same rule again when the entry is appended; this spares
    an ffmpeg run that could never be recorded.
    """
    probe = Entry.build(
        "derive",
        when,
        [
            ("case", row.case_id),
            ("exhibit", exhibit_label(row.case_id, 0)),
            ("parent", row.blake3),
            ("item", "0" * 64),
            ("by", by),
        ],
    )
    # The same rule the append applies, over the indexed state: O(1) rows, however
    # large the case.  A refusal here is a refusal, as it would be at the append (not
    # a damaged entry of the log: nothing was appended, so no entry is named).
    with c.log.state() as state:
        try:
            rules.evaluate(
                c.log.size(), Parsed(b"", probe, (by,)), state, DeriveRequest.from_entry(probe)
            )
        except rules.RuleError as exc:
            raise PolicyError(f"refused: {exc.reason}", hint=exc.hint) from exc


def _ready(c: Custody, row: ItemRow, by: str, when: datetime) -> Path:
    """Check that `by` may derive from `row` now and that its file is here; its path.

    Raises PolicyError (the custody rules refuse it) or ParentMissingError.
    """
    _precheck(c, row, by, when)
    vault = Vault(c.vault_root)
    if not vault.has(row.blake3):
        raise ParentMissingError(
            f"the file of {row.exhibit} is not in this evidence store",
            hint="derive on the custody home that holds the footage",
        )
    return vault.path_for(row.blake3)


def _finish(
    c: Custody,
    row: ItemRow,
    record: MediaRecord,
    op: str,
    params: tuple[tuple[str, str], ...],
    suffix: str,
    render: Render,
    by: Signer,
    reason: str,
    now: Callable[[], datetime],
    sha256: bool,
) -> Derived:
    """Run ffmpeg, stage and measure the child, prove it, append its entry, then place it.

    The render runs in a work folder `<home>/.derive-*` that a killed run's
    successor removes (`custody.infra.files.work_dir`); the child enters the
    evidence store's objects/ only once its entry is committed, as at ingest.

    Raises:
        InputError: the render is not media, or its lineage cannot be proven.
        StorageError: the home or store cannot be written (a full disk is named).
    """
    vault = Vault(c.vault_root)
    recover(c, vault)
    parent_path = vault.path_for(row.blake3)
    stem = Path(row.name).stem or "clip"
    with work_dir(c.home.root, ".derive-") as tmp:
        out = tmp / f"{stem}.{op}{suffix}"
        try:
            rendered = render(parent_path, out, row.exhibit)
        except CustodyError as exc:
            # ffmpeg reports a full disk as a failed render: name the real cause.
            raise _full_disk(tmp, op, row) or exc from None
        prepared = prepare(vault, Source(out), sha256 or row.sha256 is not None, None)
    try:
        crash_point("derive.child-staged")
        return _commit(c, row, record, op, params, rendered.recipe, prepared, reason, by, now)
    finally:
        # Placed once committed; otherwise (refused, already there) the copy goes.
        prepared.staged.discard()


def _full_disk(folder: Path, op: str, row: ItemRow) -> StorageError | None:
    """A NoSpaceError if the disk holding `folder` has no space left, else None."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize >= _MIN_FREE:
        return None
    return no_space_error(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        folder.parent,
        f"ffmpeg could not write the {op} of {row.exhibit}",
    )


def _commit(
    c: Custody,
    row: ItemRow,
    record: MediaRecord,
    op: str,
    params: tuple[tuple[str, str], ...],
    recipe: str,
    prepared: Prepared,
    reason: str,
    by: Signer,
    now: Callable[[], datetime],
) -> Derived:
    """Prove the staged child, append its `derive` entry, place it in the store."""
    info = prepared.info
    if info is None:
        raise InputError(
            f"ffmpeg's {op} of {row.exhibit} is not media", hint="nothing was recorded"
        )
    existing = c.store.item_in_case(row.case_id, prepared.blake3)
    if existing is not None:
        prepared.staged.place()  # restores the object, should it be missing
        return Derived("already", op, row, existing, existing.ingest_idx, params, None)
    parent_path = Vault(c.vault_root).path_for(row.blake3)
    try:
        proof = _prove(
            op,
            dict(params),
            (parent_path, record, row.exhibit),
            (prepared.staged.path, info.record, f"the {op} of {row.exhibit}"),
        )
    except VerificationError as exc:
        raise InputError(
            f"the {op} of {row.exhibit} could not be proven, so it was not recorded: {exc.message}",
            hint="nothing was appended to the log; please report this with the clip's details",
        ) from exc
    recorded = (*params, ("ffmpeg", recipe))
    with c.log.transaction() as w:
        number = c.store.next_exhibit_number(w.session, row.case_id)
        exhibit = exhibit_label(row.case_id, number)
        data = _derive_entry(prepared, row, exhibit, op, recorded, reason, by, now())
        index = append_indexed(w, data)
    crash_point("derive.entry-committed")
    prepared.staged.place()
    child = c.store.item_in_case(row.case_id, prepared.blake3)
    assert child is not None
    return Derived("derived", op, row, child, index, recorded, proof)


def _derive_entry(
    p: Prepared,
    parent: ItemRow,
    exhibit: str,
    op: str,
    params: Sequence[tuple[str, str]],
    reason: str,
    by: Signer,
    when: datetime,
) -> bytes:
    """The signed `derive` entry (docs/spec/entry.md), fields laid out as for `ingest`."""
    info = p.info
    assert info is not None
    fields: list[tuple[str, str | int | None]] = [
        ("case", parent.case_id),
        ("exhibit", exhibit),
        ("parent", parent.blake3),
        ("item", p.blake3),
        ("name", p.name),
        ("size", p.size),
        ("sha256", p.sha256),
        ("kind", "media"),
        ("metadata", info.metadata_digest),
        ("content", info.content_digest),
    ]
    for s in info.streams:
        fields.append(
            (
                "stream",
                f"{s.index} {s.codec_type} {s.codec_name} {s.packets} {s.digest} "
                f"{s.extradata or '-'}",
            )
        )
    fields.append(("op", op))
    fields += [("param", f"{k} {v}") for k, v in params]
    fields += [("tool", media.ffmpeg_version()), ("reason", reason), ("by", by.name)]
    return sign_entry(Entry.build("derive", when, fields), [by])


# -- lineage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lineage:
    """Where a derived item comes from, and the proof of it.

    `proof` is a `TrimProof` or `RedactProof` (proven: `lineage` raised otherwise)
    or a `TranscodeReport` (lossy: only the declared parameters, stated as such).
    """

    exhibit: str
    item: str
    index: int
    time: str
    by: str
    reason: str
    tool: str
    op: str
    params: tuple[tuple[str, str], ...]
    parent_exhibit: str
    parent: str
    parent_name: str
    proof: Proof

    def lines(self) -> list[str]:
        """Human lines for `custody verify` and `custody derive lineage`."""
        shown = ", ".join(f"{k} {v}" for k, v in self.params if k != "ffmpeg")
        out = [
            f"derived by {self.op} from exhibit {self.parent_exhibit} ({self.parent_name}), "
            f"log entry {self.index}, by {self.by} at {self.time}: {self.reason}",
            f"  parameters: {shown}",
            f"  made with {self.tool}",
        ]
        out += [f"  {line}" for line in self.proof.lines()]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "exhibit": self.exhibit,
            "item": self.item,
            "entry": self.index,
            "time": self.time,
            "by": self.by,
            "reason": self.reason,
            "tool": self.tool,
            "op": self.op,
            "params": [{"name": k, "value": v} for k, v in self.params],
            "parent": self.parent,
            "parent_exhibit": self.parent_exhibit,
            "parent_name": self.parent_name,
            "proof": self.proof.to_json(),
        }


def lineage(c: Custody, row: ItemRow) -> Lineage | None:
    """The lineage of `row`, re-proven from the evidence store; None if it was ingested.

    Reads the item's entry from the log (signatures re-checked), checks that both
    stored files still have their recorded BLAKE3 digests, measures them afresh
    with ffmpeg, and proves the relation the entry declares (module docstring).
    Takes a few ffmpeg runs: well under a second for a clip of seconds; a
    redaction decodes both files completely.

    Raises:
        VerificationError: the entry is not about this item, a stored file does not
            match its digest, or the proof fails (naming the stream, packet or frame).
        ParentMissingError: the parent's file is not in this evidence store.
        InputError: ffmpeg cannot read a stored file.
    """
    data = c.store.entry(row.ingest_idx)
    if data is None:
        raise VerificationError(
            f"exhibit {row.exhibit}: the log has no entry {row.ingest_idx}",
            hint="the database's item index was altered; run 'custody log verify'",
        )
    entry = check_entry(row.ingest_idx, data, c.log.parties()).entry
    if entry.get("item") == row.blake3 and entry.type == "ingest":
        return None
    if (
        entry.type != "derive"
        or entry.get("item") != row.blake3
        or entry.get("case") != row.case_id
    ):
        raise VerificationError(
            f"exhibit {row.exhibit}: log entry {row.ingest_idx} does not record this file",
            hint="the database's item index was altered; run 'custody log verify'",
        )
    params = derive_params(entry.get_all("param"), row.ingest_idx)
    parent_digest = entry.require("parent")
    parent = c.store.item_in_case(row.case_id, parent_digest)
    if parent is None:
        raise ParentMissingError(
            f"exhibit {row.exhibit} was derived from item {parent_digest[:16]}…, "
            "which is not in this custody home",
            hint="prove its lineage where the parent is held",
        )
    vault = Vault(c.vault_root)
    for item in (parent, row):
        if not vault.has(item.blake3):
            raise ParentMissingError(
                f"the file of exhibit {item.exhibit} is not in this evidence store",
                hint="prove the lineage on the custody home that holds both files",
            )
    p_path, c_path = vault.path_for(parent.blake3), vault.path_for(row.blake3)
    p_info, c_info = _in_parallel(lambda: _measure(p_path, parent), lambda: _measure(c_path, row))
    proof = _prove(
        entry.require("op"),
        dict(params),
        (p_path, p_info.record, f"exhibit {parent.exhibit}"),
        (c_path, c_info.record, f"exhibit {row.exhibit}"),
    )
    return Lineage(
        exhibit=row.exhibit,
        item=row.blake3,
        index=row.ingest_idx,
        time=entry.time,
        by=entry.require("by"),
        reason=entry.require("reason"),
        tool=entry.require("tool"),
        op=entry.require("op"),
        params=params,
        parent_exhibit=parent.exhibit,
        parent=parent.blake3,
        parent_name=parent.name,
        proof=proof,
    )


def _measure(path: Path, row: ItemRow) -> media.MediaInfo:
    """Check a stored file against its digest, then measure it afresh."""
    if hash_file(path).blake3_hex != row.blake3:
        raise VerificationError(
            f"the stored file of exhibit {row.exhibit} does not match its BLAKE3 digest",
            hint="the evidence store was altered; run 'custody verify' on it",
        )
    info = media.probe(path, name=f"exhibit {row.exhibit}")
    if info is None:
        raise InputError(f"the stored file of exhibit {row.exhibit} is not media")
    return info
