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
(redaction); or, for a lossy transcode, only what the entry declares.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from custody.app.evidence import Prepared, Source, exhibit_label, item_record, prepare, resolve_item
from custody.app.home import Custody
from custody.errors import InputError, NotFoundError, UsageError, VerificationError
from custody.infra import ffmpeg as media
from custody.infra.indexer import append_indexed
from custody.infra.store import ItemRow, Store
from custody.infra.vault import Vault, hash_file
from custody.media.compare import ContiguousRun, MediaRecord, PacketList, is_contiguous_run
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.parties import check_entry
from custody.model.rules import Chain, Parsed
from custody.tlog.note import Signer

__all__ = [
    "OPS",
    "REDACT_STYLES",
    "TRANSCODE_CODECS",
    "AudioCopy",
    "Derived",
    "Lineage",
    "ParentMissingError",
    "RedactProof",
    "TranscodeReport",
    "TrimProof",
    "describe_entry",
    "format_seconds",
    "frames_between",
    "lineage",
    "parse_box",
    "parse_seconds",
    "prove_audio_copied",
    "prove_redaction",
    "prove_trim",
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
# Slack for comparing times across files: a millisecond (Matroska's time base),
# added to one packet (trim coverage) or one tick of each time base (retiming).
_EDGE = Fraction(1, 1000)
_MICRO = 1_000_000

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


def _seconds_of(text: str, what: str) -> Fraction:
    """An entry's decimal seconds as an exact fraction; VerificationError if malformed."""
    if not re.fullmatch(r"\d+(\.\d{1,6})?", text):
        raise VerificationError(f"derive parameter {what} {text!r} is not decimal seconds")
    return Fraction(text)


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` in pixels (left, top, width, height) -> a tuple.

    Raises:
        UsageError: not four whole numbers, or a zero width or height.
    """
    parts = text.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\s*\d{1,6}\s*", p) for p in parts):
        raise UsageError(
            f"--box {text!r} is not X,Y,W,H",
            hint="four whole numbers of pixels: left, top, width, height (e.g. 10,10,40,30)",
        )
    x, y, w, h = (int(p) for p in parts)
    if w == 0 or h == 0:
        raise UsageError(f"--box {text!r} has no area", hint="width and height must be at least 1")
    return x, y, w, h


def _box_text(box: tuple[int, int, int, int]) -> str:
    return ",".join(str(v) for v in box)


# -- proofs (pure: they work on packet and frame lists) ------------------------------------


@dataclass(frozen=True)
class AudioCopy:
    """An audio stream of the child whose packets are exactly its parent stream's."""

    stream: int
    parent_stream: int
    codec: str
    packets: int

    def describe(self) -> str:
        return (
            f"audio stream {self.stream} ({self.codec}): all {self.packets} packets identical "
            f"to parent stream {self.parent_stream}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "parent_stream": self.parent_stream,
            "codec": self.codec,
            "packets": self.packets,
        }


def prove_audio_copied(parent: PacketList, child: PacketList) -> tuple[AudioCopy, ...]:
    """Prove every audio stream of `parent` is in `child` packet for packet.

    The k-th audio stream of the child is matched with the k-th of the parent
    (a redaction or transcode drops data streams, so indexes may shift); their
    packet hash sequences must be equal (docs/spec/media.md: audio equality
    uses packet hashes, not decoded samples).

    Raises:
        VerificationError: a stream is missing, or names the first packet that differs.
    """
    p_audio = [h for h in parent.streams if h.media_type == "audio"]
    c_audio = [h for h in child.streams if h.media_type == "audio"]
    if len(p_audio) != len(c_audio):
        raise VerificationError(
            f"the copy has {len(c_audio)} audio streams, its parent {len(p_audio)}"
        )
    out = []
    for ph, ch in zip(p_audio, c_audio, strict=True):
        p = [q.hash for q in parent.packets[ph.index]]
        c = [q.hash for q in child.packets[ch.index]]
        if p != c:
            first = next(
                (i for i, (a, b) in enumerate(zip(p, c, strict=False)) if a != b),
                min(len(p), len(c)),
            )
            raise VerificationError(
                f"audio stream {ch.index} of the copy is not parent stream {ph.index} packet "
                f"for packet: {len(c)} vs {len(p)} packets, first difference at packet {first}"
            )
        out.append(AudioCopy(ch.index, ph.index, ch.codec, len(c)))
    return tuple(out)


@dataclass(frozen=True)
class TrimProof:
    """A trim is a contiguous run of its parent's packets that covers the declared range."""

    run: ContiguousRun
    start: Fraction
    end: Fraction

    kind = "contiguous-run"

    def lines(self) -> list[str]:
        return [
            f"PROVEN: {self.run.summary}",
            f"  it covers the declared {_s(self.start)}-{_s(self.end)} s of the parent "
            "(a stream copy starts at the keyframe at or before the start)",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "proven": True,
            "summary": self.run.summary,
            "declared": [float(self.start), float(self.end)],
            "streams": [r.to_json() for r in self.run.streams],
        }


def prove_trim(
    parent: PacketList,
    child: PacketList,
    *,
    start: Fraction,
    end: Fraction,
    allow_boundary: int = 1,
) -> TrimProof:
    """Prove `child` is an excerpt of `parent` that covers [start, end] s.

    `is_contiguous_run` (docs/spec/media.md §10) places each child stream in the
    parent; every stream's run must then reach from at or before `start` to at or
    after `end` (within one packet).  Times are on ffmpeg's timeline for the
    parent, which starts at 0 at the container's start time: the one ``-ss``
    seeks on and the packet lists (``-c copy -f framehash``) are written on.

    Raises:
        VerificationError: not a contiguous run (naming the stream and packet), or
            a run that does not cover the declared range.
    """
    run = is_contiguous_run(parent, child, allow_boundary=allow_boundary)
    for r in run.streams:
        if r.start is None or r.end is None:
            continue
        header = parent.streams[r.index]
        longest = max((p.duration for p in parent.packets[r.index]), default=0)
        slack = longest * header.time_base + _EDGE
        if r.start > start + slack or r.end < end - slack:
            raise VerificationError(
                f"stream {r.index} ({r.codec_type}) of the excerpt covers "
                f"{_s(r.start)}-{_s(r.end)} s of the parent, "
                f"not the declared {_s(start)}-{_s(end)} s"
            )
    return TrimProof(run, start, end)


@dataclass(frozen=True)
class RedactProof:
    """What the frame-by-frame comparison of a redaction found."""

    box: tuple[int, int, int, int]
    start: Fraction | None  # None: the whole clip
    end: Fraction | None
    covered: tuple[int, int] | None  # the frames the range covers (first, last), 0-based
    frames: int
    outside: int  # frames outside [start, end]: all identical
    inside: int
    inside_changed: int  # of which changed (only inside the box)
    audio: tuple[AudioCopy, ...]

    kind = "frames"

    @property
    def summary(self) -> str:
        where = (
            "the whole clip"
            if self.start is None or self.end is None or self.covered is None
            else f"{_s(self.start)}-{_s(self.end)} s (frames {self.covered[0]}-{self.covered[1]})"
        )
        return (
            f"{self.frames} decoded frames compared: {self.outside} outside {where} "
            f"bit-identical to the parent's; {self.inside} inside, {self.inside_changed} "
            f"changed, and only within box {_box_text(self.box)}"
        )

    def lines(self) -> list[str]:
        out = [f"PROVEN: {self.summary} (every pixel outside the box identical)"]
        out += [f"  {a.describe()}" for a in self.audio]
        if self.inside and not self.inside_changed:
            out.append("  note: no frame inside the range changed: the box covers nothing visible")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "proven": True,
            "summary": self.summary,
            "box": list(self.box),
            "range": None
            if self.start is None or self.end is None
            else [float(self.start), float(self.end)],
            "covered_frames": None if self.covered is None else list(self.covered),
            "frames": self.frames,
            "outside": self.outside,
            "outside_identical": self.outside,
            "inside": self.inside,
            "inside_changed": self.inside_changed,
            "audio": [a.to_json() for a in self.audio],
        }


def frames_between(
    frames: PacketList, start: Fraction, end: Fraction, offset: Fraction
) -> tuple[int, int] | None:
    """(first, last) numbers of the decoded frames shown between `start` and `end` s.

    `frames` is `custody.infra.ffmpeg.decoded_frames` of the file (stream 0, container
    timestamps); a frame's time is its timestamp minus `offset` (the container's
    start time), compared exactly with [start, end].  None if no frame is shown
    in that range.

    Raises:
        VerificationError: the frames in the range are not consecutive (timestamps
            out of order), so no frame range describes them.
    """
    tb = frames.streams[0].time_base
    inside = [
        i
        for i, f in enumerate(frames.packets[0])
        if f.timestamp is not None and start <= f.timestamp * tb - offset <= end
    ]
    if not inside:
        return None
    if inside != list(range(inside[0], inside[-1] + 1)):
        raise VerificationError(
            f"the frames shown between {_s(start)} and {_s(end)} s are not consecutive "
            "(their timestamps are out of order)"
        )
    return inside[0], inside[-1]


def prove_redaction(
    parent: PacketList,
    child: PacketList,
    *,
    box: tuple[int, int, int, int],
    frames: tuple[int, int] | None,
    offset: Fraction = Fraction(0),
) -> tuple[int, int, int, int]:
    """Prove a redaction changed only `box`, only in frames `frames` (inclusive).

    `parent` and `child` are `custody.infra.ffmpeg.decoded_frames(path, box=box,
    frames=frames)` of the two files: stream 0 hashes every decoded frame with the
    box filled in the frames the redaction covers, stream 1 the box's pixels.
    Frames are paired in order; the copy must have as many, each at the same time
    relative to its first frame (within 1 ms plus a tick of each time base), and
    every stream-0 hash must be the parent's: a frame outside `frames` is then
    pixel for pixel the parent's, and a frame inside differs at most within the
    box.  `frames` None: every frame is inside.  `offset` (the parent's container
    start time) only places frames in time for messages.

    Returns:
        (frames, outside, inside, inside_changed): inside_changed counts the frames
        whose box pixels differ from the parent's.

    Raises:
        VerificationError: naming the first frame (number and time) that breaks this.
    """
    if len(parent.streams) != 2 or len(child.streams) != 2:
        raise VerificationError("decoded frame lists must have a masked and a box stream")
    p_all, p_box = parent.packets
    c_all, c_box = child.packets
    if len(p_all) != len(c_all) or len(p_box) != len(p_all) or len(c_box) != len(c_all):
        raise VerificationError(
            f"the redacted copy has {len(c_all)} video frames, its parent {len(p_all)}: "
            "frames were added or dropped"
        )
    if not p_all:
        raise VerificationError("the parent has no video frames to compare")
    tb_p, tb_c = parent.streams[0].time_base, child.streams[0].time_base
    p0, c0 = p_all[0].timestamp, c_all[0].timestamp
    tolerance = _EDGE + tb_p + tb_c
    first, last = (0, len(p_all) - 1) if frames is None else frames
    changed = 0
    for i, (pf, cf) in enumerate(zip(p_all, c_all, strict=True)):
        pt, ct = pf.timestamp, cf.timestamp
        if pt is not None and ct is not None and p0 is not None and c0 is not None:
            into_parent, into_child = (pt - p0) * tb_p, (ct - c0) * tb_c
            if abs(into_child - into_parent) > tolerance:
                raise VerificationError(
                    f"frame {i} is {_s(into_child)} s into the redacted copy "
                    f"but {_s(into_parent)} s into its parent: it was retimed"
                )
        within = first <= i <= last
        if pf.hash != cf.hash:
            when = f" ({_s(pt * tb_p - offset)} s)" if pt is not None else ""
            if not within:
                raise VerificationError(
                    f"frame {i}{when} of the redacted copy differs from its parent's but lies "
                    f"outside the frames {first}-{last} the declared range covers"
                )
            raise VerificationError(
                f"frame {i}{when} of the redacted copy differs from its parent's outside "
                f"the declared box {_box_text(box)}"
            )
        if within and p_box[i].hash != c_box[i].hash:
            changed += 1
    inside = min(last, len(p_all) - 1) - first + 1 if first < len(p_all) else 0
    return len(p_all), len(p_all) - inside, inside, changed


@dataclass(frozen=True)
class TranscodeReport:
    """A lossy transcode: nothing to prove frame by frame; what can be checked is."""

    codec: str
    parent_frames: int
    child_frames: int
    audio: tuple[AudioCopy, ...]  # empty when the sound was re-encoded
    audio_reencoded: bool

    kind = "declared"

    @property
    def summary(self) -> str:
        return (
            f"lossy transcode to {self.codec}: not provable frame by frame; "
            "the parameters are as the signed derive entry declares them"
        )

    def lines(self) -> list[str]:
        out = [f"NOT PROVEN (by design): {self.summary}"]
        frames = f"  video: {self.child_frames} frames, parent {self.parent_frames}"
        if self.child_frames != self.parent_frames:
            frames += " (frames were added or dropped)"
        out.append(frames)
        if self.audio_reencoded:
            out.append("  audio: re-encoded (lossy), not compared")
        out += [f"  {a.describe()}" for a in self.audio]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "proven": False,
            "summary": self.summary,
            "parent_frames": self.parent_frames,
            "child_frames": self.child_frames,
            "audio_reencoded": self.audio_reencoded,
            "audio": [a.to_json() for a in self.audio],
        }


Proof = TrimProof | RedactProof | TranscodeReport


def _s(value: Fraction) -> str:
    return f"{float(value):.3f}"


def _video_packets(packets: PacketList) -> int:
    return next(
        (
            len(p)
            for h, p in zip(packets.streams, packets.packets, strict=True)
            if h.media_type == "video"
        ),
        0,
    )


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

    `parent`/`child` are (path, record, name for messages).  Raises
    VerificationError if the child is not what the parameters say.
    """
    p_path, p_rec, p_name = parent
    c_path, c_rec, c_name = child
    if op == "trim":
        start = _seconds_of(_param(params, "start"), "start")
        end = _seconds_of(_param(params, "end"), "end")
        return prove_trim(p_rec.packets, c_rec.packets, start=start, end=end)
    if op == "redact":
        box = _entry_box(_param(params, "box"))
        declared = [params.get("start"), params.get("end"), params.get("frames")]
        if any(v is None for v in declared) and any(v is not None for v in declared):
            raise VerificationError(
                "a redaction declares 'start', 'end' and 'frames' together, or none of them"
            )
        lo = hi = None
        covered = None
        if declared[0] is not None and declared[1] is not None and declared[2] is not None:
            lo, hi = _seconds_of(declared[0], "start"), _seconds_of(declared[1], "end")
            covered = _frame_range(declared[2])
        p_frames, c_frames = _in_parallel(
            lambda: media.decoded_frames(p_path, box=box, frames=covered, name=p_name),
            lambda: media.decoded_frames(c_path, box=box, frames=covered, name=c_name),
        )
        offset = _start_time(p_rec)
        if lo is not None and hi is not None and covered is not None:
            # The frame numbers are what ffmpeg acted on; the times are what a person
            # asked for.  They must describe the same frames of the parent.
            shown = frames_between(p_frames, lo, hi, offset)
            if shown != covered:
                which = "no frame" if shown is None else f"frames {shown[0]}-{shown[1]}"
                raise VerificationError(
                    f"the derive entry declares frames {covered[0]}-{covered[1]} for "
                    f"{_s(lo)}-{_s(hi)} s, but the parent shows {which} in that range"
                )
        frames, outside, inside, changed = prove_redaction(
            p_frames, c_frames, box=box, frames=covered, offset=offset
        )
        audio = prove_audio_copied(p_rec.packets, c_rec.packets)
        return RedactProof(box, lo, hi, covered, frames, outside, inside, changed, audio)
    if op == "transcode":
        copied = params.get("audio-codec") == "copy"
        return TranscodeReport(
            codec=_param(params, "codec"),
            parent_frames=_video_packets(p_rec.packets),
            child_frames=_video_packets(c_rec.packets),
            audio=prove_audio_copied(p_rec.packets, c_rec.packets) if copied else (),
            audio_reencoded=not copied
            and any(h.media_type == "audio" for h in p_rec.packets.streams),
        )
    raise VerificationError(f"unknown derive operation {op!r}")


def _presentation(record: MediaRecord, index: int) -> PacketList:
    """Stream `index`'s packets in presentation order, as a one-stream packet list.

    Packet lists (``-c copy -f framehash``) are on ffmpeg's timeline for the file:
    container timestamps minus its start time.
    """
    packets = record.packets
    if not 0 <= index < len(packets.streams):
        raise InputError(f"the packet list has no stream {index}")
    ordered = sorted(
        (p for p in packets.packets[index] if p.timestamp is not None),
        key=lambda p: p.timestamp or 0,
    )
    header = replace(packets.streams[index], index=0)
    return PacketList(streams=(header,), packets=(tuple(ordered),))


def _frame_range(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)-(\d+)", text)
    if m is None or int(m[1]) > int(m[2]):
        raise VerificationError(f"derive parameter frames {text!r} is not FIRST-LAST")
    return int(m[1]), int(m[2])


def _start_time(record: MediaRecord) -> Fraction:
    """The container's start time (ffprobe ``format.start_time``), 0 if absent."""
    value = record.metadata.get("format", {}).get("start_time")
    try:
        return Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise VerificationError(f"the derive entry has no '{name}' parameter")
    return value


def _entry_box(text: str) -> tuple[int, int, int, int]:
    try:
        return parse_box(text)
    except UsageError:
        raise VerificationError(f"derive parameter box {text!r} is not X,Y,W,H") from None


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
        EntryError: `by` may not derive from the item (not its holder; outside
            consent): exit 1, the message names the holder.
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
        EntryError: `by` may not derive from the item (exit 1, names the holder).
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
            f"--box {_box_text(box)} reaches outside the {width}x{height} frame of {row.exhibit}",
            hint=f"x + width must be at most {width}, y + height at most {height}",
        )
    if style == "blur" and pix_fmt not in _BLUR_PIX_FMTS:
        raise UsageError(
            f"{row.exhibit} is {pix_fmt} video, which the blur cannot keep losslessly",
            hint="use --style box (a filled box) for this clip",
        )
    applied = _align_box(box, pix_fmt, width, height)
    params: list[tuple[str, str]] = [("box", _box_text(applied)), ("style", style)]
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
                _presentation(record, int(video["index"])),
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
        EntryError: `by` may not derive from the item (exit 1, names the holder).
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
    """Dry-run the custody rules for a derive by `by` from `row` (EntryError if refused).

    The log applies the same rule again when the entry is appended; this spares
    an ffmpeg run that could never be recorded.
    """
    parties = c.log.parties()
    chain = Chain()
    with c.store.session() as s:
        rows = Store.case_entries(s, row.case_id)
    for index, data in rows:
        chain.apply(index, SignedEntry.parse(data), parties)
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
    chain.apply(c.log.size(), Parsed(b"", probe, (by,)), parties)


def _ready(c: Custody, row: ItemRow, by: str, when: datetime) -> Path:
    """Check that `by` may derive from `row` now and that its file is here; its path.

    Raises EntryError (the custody rules refuse it) or ParentMissingError.
    """
    _precheck(c, row, by, when)
    vault = Vault(c.home.vault_root)
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
    """Run ffmpeg, store and measure the child, prove it, then append its entry."""
    vault = Vault(c.home.vault_root)
    parent_path = vault.path_for(row.blake3)
    stem = Path(row.name).stem or "clip"
    with tempfile.TemporaryDirectory(prefix=".derive-", dir=c.home.root) as tmp:
        out = Path(tmp) / f"{stem}.{op}{suffix}"
        rendered = render(parent_path, out, row.exhibit)
        prepared = prepare(vault, Source(out), sha256 or row.sha256 is not None, None)
    info = prepared.info
    if info is None:
        raise InputError(
            f"ffmpeg's {op} of {row.exhibit} is not media", hint="nothing was recorded"
        )
    existing = c.store.item_in_case(row.case_id, prepared.blake3)
    if existing is not None:
        return Derived("already", op, row, existing, existing.ingest_idx, params, None)
    try:
        proof = _prove(
            op,
            dict(params),
            (parent_path, record, row.exhibit),
            (vault.path_for(prepared.blake3), info.record, f"the {op} of {row.exhibit}"),
        )
    except VerificationError as exc:
        raise InputError(
            f"the {op} of {row.exhibit} could not be proven, so it was not recorded: {exc.message}",
            hint="nothing was appended to the log; please report this with the clip's details",
        ) from exc
    recorded = (*params, ("ffmpeg", rendered.recipe))
    with c.log.transaction() as w:
        number = c.store.next_exhibit_number(w.session, row.case_id)
        exhibit = exhibit_label(row.case_id, number)
        data = _derive_entry(prepared, row, exhibit, op, recorded, reason, by, now())
        index = append_indexed(w, data)
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


def describe_entry(fields: Sequence[tuple[str, str]]) -> str:
    """One line for a timeline about a `derive` entry, from its fields.

    E.g. ``trim into 2026-0142/0002 (doorbell.trim.mp4): start 1.500, end 3.000,
    mode copy, cut 1.000; reason: excerpt for the jury`` (the ffmpeg command line is
    left out; `custody log entry N` shows it).
    """
    first: dict[str, str] = {}
    for k, v in fields:
        first.setdefault(k, v)
    params = [v for k, v in fields if k == "param" and not v.startswith("ffmpeg ")]
    line = f"{first.get('op', '?')} into {first.get('exhibit', '?')} ({first.get('name', '?')})"
    if params:
        line += ": " + ", ".join(params)
    return line + f"; reason: {first.get('reason', '?')}"


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
    params: list[tuple[str, str]] = []
    for value in entry.get_all("param"):
        name, sep, rest = value.partition(" ")
        if not sep:
            raise VerificationError(
                f"log entry {row.ingest_idx}: derive parameter {value!r} is not 'name value'"
            )
        params.append((name, rest))
    parent_digest = entry.require("parent")
    parent = c.store.item_in_case(row.case_id, parent_digest)
    if parent is None:
        raise ParentMissingError(
            f"exhibit {row.exhibit} was derived from item {parent_digest[:16]}…, "
            "which is not in this custody home",
            hint="prove its lineage where the parent is held",
        )
    vault = Vault(c.home.vault_root)
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
        params=tuple(params),
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
