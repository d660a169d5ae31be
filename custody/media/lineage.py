"""Lineage proofs of derived clips: trims, redactions, transcodes (pure).

A derived clip's `derive` entry (docs/spec/entry.md) names its parent, the
operation and its exact parameters.  These functions decide, from packet lists
(``-c copy -f framehash``, docs/spec/media.md) and decoded frame hashes that the
caller measured, whether the child is what the entry declares (docs/derive.md):

* a **trim** is a contiguous run of its parent's packets covering the declared
  range (`prove_trim`);
* a **redaction** changes only the declared box, only in the declared frames,
  and copies the sound packet for packet (`prove_redact`, built on
  `prove_redaction` over decoded frame hashes and `prove_audio_copied`);
* a lossy **transcode** is not provable frame by frame: `report_transcode`
  states what can be checked (frame counts, copied sound).

They read no file and run no program: `custody.app.derive` measures the files
with ffmpeg and calls them, and `custody.bundle.verify` calls the ones that need
only packet lists (a trim, the sound of a redaction or transcode) on the
sidecars a bundle carries, so that a defence verifier re-proves them offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from custody.errors import InputError, UsageError, VerificationError
from custody.media.compare import ContiguousRun, MediaRecord, PacketList, is_contiguous_run

__all__ = [
    "AudioCopy",
    "Proof",
    "RedactParams",
    "RedactProof",
    "TranscodeReport",
    "TrimProof",
    "box_text",
    "check_declared_frames",
    "derive_params",
    "entry_box",
    "frame_range",
    "frames_between",
    "param",
    "parse_box",
    "presentation_order",
    "prove_audio_copied",
    "prove_redact",
    "prove_redaction",
    "prove_trim",
    "redact_params",
    "report_transcode",
    "seconds_of",
    "start_time",
    "trim_range",
    "video_packets",
]

# Slack for comparing times across files: a millisecond (Matroska's time base),
# added to one packet (trim coverage) or one tick of each time base (retiming).
_EDGE = Fraction(1, 1000)


# -- the parameters of a derive entry --------------------------------------------------------


def seconds_of(text: str, what: str) -> Fraction:
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


def box_text(box: tuple[int, int, int, int]) -> str:
    """A box as the entries and messages write it: ``X,Y,W,H``."""
    return ",".join(str(v) for v in box)


def derive_params(values: Iterable[str], index: int) -> tuple[tuple[str, str], ...]:
    """A derive entry's `param` lines (``name value``) as (name, value) pairs, in order.

    Raises:
        VerificationError: a line that is not ``name value``, naming log entry `index`.
    """
    out: list[tuple[str, str]] = []
    for value in values:
        name, sep, rest = value.partition(" ")
        if not sep:
            raise VerificationError(
                f"log entry {index}: derive parameter {value!r} is not 'name value'"
            )
        out.append((name, rest))
    return tuple(out)


def param(params: Mapping[str, str], name: str) -> str:
    """The derive parameter `name`; VerificationError if the entry has none."""
    value = params.get(name)
    if value is None:
        raise VerificationError(f"the derive entry has no '{name}' parameter")
    return value


def frame_range(text: str) -> tuple[int, int]:
    """A ``FIRST-LAST`` frame range (inclusive); VerificationError if malformed or reversed."""
    m = re.fullmatch(r"(\d+)-(\d+)", text)
    if m is None or int(m[1]) > int(m[2]):
        raise VerificationError(f"derive parameter frames {text!r} is not FIRST-LAST")
    return int(m[1]), int(m[2])


def entry_box(text: str) -> tuple[int, int, int, int]:
    """A box parameter of an entry (see `parse_box`); VerificationError if malformed."""
    try:
        return parse_box(text)
    except UsageError:
        raise VerificationError(f"derive parameter box {text!r} is not X,Y,W,H") from None


def trim_range(params: Mapping[str, str]) -> tuple[Fraction, Fraction]:
    """The (start, end) seconds a trim entry declares.

    Raises:
        VerificationError: a missing or malformed `start` or `end`.
    """
    return seconds_of(param(params, "start"), "start"), seconds_of(param(params, "end"), "end")


@dataclass(frozen=True)
class RedactParams:
    """What a redaction entry declares: the box, and the range with the frames it covers.

    `start`, `end` and `frames` are all None for a redaction of the whole clip.
    """

    box: tuple[int, int, int, int]
    start: Fraction | None = None
    end: Fraction | None = None
    frames: tuple[int, int] | None = None


def redact_params(params: Mapping[str, str]) -> RedactParams:
    """Parse a redaction entry's `box`, and its `start`, `end` and `frames` if declared.

    Raises:
        VerificationError: a missing or malformed box, a malformed time or frame
            range, or only some of `start`, `end` and `frames`.
    """
    box = entry_box(param(params, "box"))
    declared = [params.get("start"), params.get("end"), params.get("frames")]
    if any(v is None for v in declared) and any(v is not None for v in declared):
        raise VerificationError(
            "a redaction declares 'start', 'end' and 'frames' together, or none of them"
        )
    if declared[0] is None or declared[1] is None or declared[2] is None:
        return RedactParams(box)
    return RedactParams(
        box,
        seconds_of(declared[0], "start"),
        seconds_of(declared[1], "end"),
        frame_range(declared[2]),
    )


# -- proofs (on packet and frame lists) ---------------------------------------------------


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
            f"changed, and only within box {box_text(self.box)}"
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
                f"the declared box {box_text(box)}"
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


def video_packets(packets: PacketList) -> int:
    """The number of packets of the first video stream (0 without video)."""
    return next(
        (
            len(p)
            for h, p in zip(packets.streams, packets.packets, strict=True)
            if h.media_type == "video"
        ),
        0,
    )


def presentation_order(record: MediaRecord, index: int) -> PacketList:
    """Stream `index`'s packets in presentation order, as a one-stream packet list.

    Packet lists (``-c copy -f framehash``) are on ffmpeg's timeline for the file:
    container timestamps minus its start time.

    Raises:
        InputError: the packet list has no stream `index`.
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


def start_time(record: MediaRecord) -> Fraction:
    """The container's start time (ffprobe ``format.start_time``), 0 if absent."""
    value = record.metadata.get("format", {}).get("start_time")
    try:
        return Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


def check_declared_frames(
    parent_frames: PacketList, declared: RedactParams, offset: Fraction
) -> None:
    """Check that a redaction's frame numbers are the frames its time range shows.

    The frame numbers are what ffmpeg acted on; the times are what a person asked
    for: they must describe the same frames of the parent.  `parent_frames` are
    the parent's decoded frames and `offset` its container start time (see
    `frames_between`).  Nothing to check for a redaction of the whole clip.

    Raises:
        VerificationError: the range shows other frames (or none).
    """
    lo, hi, covered = declared.start, declared.end, declared.frames
    if lo is None or hi is None or covered is None:
        return
    shown = frames_between(parent_frames, lo, hi, offset)
    if shown != covered:
        which = "no frame" if shown is None else f"frames {shown[0]}-{shown[1]}"
        raise VerificationError(
            f"the derive entry declares frames {covered[0]}-{covered[1]} for "
            f"{_s(lo)}-{_s(hi)} s, but the parent shows {which} in that range"
        )


def prove_redact(
    declared: RedactParams,
    parent_frames: PacketList,
    child_frames: PacketList,
    parent_packets: PacketList,
    child_packets: PacketList,
    *,
    offset: Fraction = Fraction(0),
) -> RedactProof:
    """Prove a redaction whole: its frames (`check_declared_frames`, `prove_redaction`)
    and its sound (`prove_audio_copied`).

    `parent_frames`/`child_frames` are the decoded frame lists of the two files
    (see `prove_redaction`), `parent_packets`/`child_packets` their packet lists,
    `offset` the parent's container start time.

    Raises:
        VerificationError: naming the frame, box or audio packet that breaks the claim.
    """
    check_declared_frames(parent_frames, declared, offset)
    frames, outside, inside, changed = prove_redaction(
        parent_frames, child_frames, box=declared.box, frames=declared.frames, offset=offset
    )
    audio = prove_audio_copied(parent_packets, child_packets)
    return RedactProof(
        declared.box,
        declared.start,
        declared.end,
        declared.frames,
        frames,
        outside,
        inside,
        changed,
        audio,
    )


def report_transcode(
    params: Mapping[str, str], parent: PacketList, child: PacketList
) -> TranscodeReport:
    """What can be checked of a lossy transcode from the two packet lists.

    The frame counts, and the sound when the entry declares it copied
    (``audio-codec copy``): then it must be the parent's packet for packet.

    Raises:
        VerificationError: no `codec` parameter, or copied sound that differs.
    """
    copied = params.get("audio-codec") == "copy"
    return TranscodeReport(
        codec=param(params, "codec"),
        parent_frames=video_packets(parent),
        child_frames=video_packets(child),
        audio=prove_audio_copied(parent, child) if copied else (),
        audio_reencoded=not copied and any(h.media_type == "audio" for h in parent.streams),
    )
