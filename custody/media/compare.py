"""Classifying a file against an ingested record (docs/spec/media.md, "Classification").

Pure: it works on what `custody.infra.ffmpeg` measured (the canonical snapshot and the
raw ``framehash`` / ``streamhash`` outputs) and on what the evidence store kept
as sidecars, so a verifier without ffmpeg reaches the same verdict from a bundle.

- `MediaRecord` parses the three sidecars (snapshot, framehash, streamhash) into
  metadata, per-packet lists and stream digests; a record that exists is well formed.
- `classify(ingested, candidate)` returns exactly one verdict: `ExactMatch`,
  `SameContent`, `MetadataChanged`, `ContentModified` or `Unknown`, each a frozen
  dataclass with a one-line `summary` and `to_json()` detail.
- `is_contiguous_run(parent, child)` proves that a trim is a contiguous run of its
  parent's packets, or raises `VerificationError` saying where it breaks.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from fractions import Fraction
from typing import Any, ClassVar

from custody.errors import FormatError, VerificationError
from custody.media.digest import (
    StreamDigest,
    content_digest,
    metadata_digest,
    parse_snapshot,
)

__all__ = [
    "ContentModified",
    "ContiguousRun",
    "ExactMatch",
    "FieldChange",
    "MediaRecord",
    "MetadataChanged",
    "Packet",
    "PacketList",
    "PacketSpan",
    "Record",
    "SameContent",
    "StreamChange",
    "StreamHeader",
    "StreamRun",
    "Unknown",
    "Verdict",
    "classify",
    "diff_metadata",
    "is_contiguous_run",
    "parse_framehash",
    "parse_streamhash",
]

# AV_NOPTS_VALUE as framehash prints it: "no timestamp".
_NOPTS = -(2**63)

_MEDIA_TYPES = ("video", "audio", "subtitle", "data", "attachment")
# streamhash labels each stream with av_get_media_type_string()[0].
_TYPE_LETTERS = {"v": "video", "a": "audio", "s": "subtitle", "d": "data", "t": "attachment"}


# ---------------------------------------------------------------------------------
# Packets: the framehash and streamhash outputs.


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as ``framehash`` lists it: timestamps in its stream's time base.

    `dts`/`pts` are None where ffmpeg had no timestamp; `hash` is the SHA-256 of
    the packet payload (32 bytes).
    """

    stream: int
    dts: int | None
    pts: int | None
    duration: int
    size: int
    hash: bytes

    @property
    def timestamp(self) -> int | None:
        """The presentation timestamp, or the decoding one where there is none."""
        return self.pts if self.pts is not None else self.dts


@dataclass(frozen=True)
class StreamHeader:
    """What framehash's header says about one stream."""

    index: int
    time_base: Fraction
    media_type: str
    codec: str
    extradata: str | None = None  # SHA-256 hex of the codec configuration
    extradata_size: int = 0


@dataclass(frozen=True)
class PacketList:
    """A parsed ``framehash`` listing: per-stream headers and packets in stream order.

    `packets[i]` is the tuple of stream i's packets in file order (the index of a
    packet in that tuple is its "packet number" in reports).
    """

    streams: tuple[StreamHeader, ...]
    packets: tuple[tuple[Packet, ...], ...]

    def __post_init__(self) -> None:
        if len(self.streams) != len(self.packets):
            raise FormatError("packet list: one packet tuple per stream is required")
        for i, header in enumerate(self.streams):
            if header.index != i:
                raise FormatError(f"packet list: stream {i} is labelled {header.index}")

    def time_of(self, stream: int, first: int, end: int) -> tuple[Fraction, Fraction] | None:
        """The time range in seconds covered by packets [first, end) of `stream`.

        From the earliest timestamp to the latest timestamp plus duration; None if
        the range is empty or no packet in it has a timestamp.
        """
        tb = self.streams[stream].time_base
        starts: list[int] = []
        ends: list[int] = []
        for packet in self.packets[stream][first:end]:
            ts = packet.timestamp
            if ts is not None:
                starts.append(ts)
                ends.append(ts + max(packet.duration, 0))
        if not starts:
            return None
        return min(starts) * tb, max(ends) * tb


def _int_field(text: str, what: str, line_no: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise FormatError(
            f"framehash line {line_no}: {what} {text.strip()!r} is not an integer"
        ) from None


# A stream index or extradata size longer than this is malformed: ffmpeg writes small
# numbers, and int() refuses more than 4300 digits with ValueError.
_MAX_INDEX_DIGITS = 20


def _index_field(text: str, what: str, line_no: int) -> int:
    """A run of ASCII digits from a header regex as an int; FormatError if it is too long."""
    if len(text) > _MAX_INDEX_DIGITS:
        raise FormatError(
            f"framehash line {line_no}: {what} has {len(text)} digits; "
            f"at most {_MAX_INDEX_DIGITS} are possible"
        )
    return int(text)


def _hex32(text: str, what: str, line_no: int) -> bytes:
    text = text.strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise FormatError(f"framehash line {line_no}: {what} is not a SHA-256 hex digest")
    return bytes.fromhex(text)


_HEADER_STREAM = re.compile(r"#(tb|media_type|codec_id) (\d+): (.*)")
_HEADER_EXTRADATA = re.compile(r"#extradata (\d+),\s*(\d+),\s*([0-9a-f]{64})")


def parse_framehash(data: bytes) -> PacketList:
    """Parse ffmpeg's ``framehash`` output (format version 2, SHA-256).

    Header lines start with ``#``; the ones custody reads are ``#version``, ``#hash``,
    ``#extradata N, size, hash``, ``#tb N: num/den``, ``#media_type N: type`` and
    ``#codec_id N: name``; others (``#software``, ``#dimensions`` ...) are skipped.
    Packet lines are ``stream, dts, pts, duration, size, hash`` optionally followed
    by side-data fields, which are not part of a packet's identity.

    Raises:
        FormatError: naming the line that is wrong.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError(f"framehash: not ASCII text (byte {exc.start})") from None
    version: int | None = None
    hash_name: str | None = None
    tbs: dict[int, Fraction] = {}
    types: dict[int, str] = {}
    codecs: dict[int, str] = {}
    extradata: dict[int, tuple[int, str]] = {}
    rows: list[Packet] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#version:"):
                version = _int_field(line.partition(":")[2], "version", line_no)
            elif line.startswith("#hash:"):
                hash_name = line.partition(":")[2].strip()
            elif line.startswith("#extradata "):
                m = _HEADER_EXTRADATA.fullmatch(line)
                if not m:
                    raise FormatError(f"framehash line {line_no}: malformed #extradata line")
                index = _index_field(m[1], "extradata stream index", line_no)
                extradata[index] = (_index_field(m[2], "extradata size", line_no), m[3])
            elif m := _HEADER_STREAM.fullmatch(line):
                key, value = m[1], m[3].strip()
                index = _index_field(m[2], f"#{key} stream index", line_no)
                if key == "tb":
                    num, slash, den = value.partition("/")
                    n = _int_field(num, "time base", line_no)
                    d = _int_field(den, "time base", line_no) if slash else 0
                    if n <= 0 or d <= 0:
                        raise FormatError(f"framehash line {line_no}: bad time base {value!r}")
                    tbs[index] = Fraction(n, d)
                elif key == "media_type":
                    if value not in _MEDIA_TYPES:
                        raise FormatError(f"framehash line {line_no}: unknown media type {value!r}")
                    types[index] = value
                else:
                    codecs[index] = value
            continue
        fields = line.split(",")
        if len(fields) < 6:
            raise FormatError(f"framehash line {line_no}: expected 6 comma-separated fields")
        stream = _int_field(fields[0], "stream", line_no)
        dts = _int_field(fields[1], "dts", line_no)
        pts = _int_field(fields[2], "pts", line_no)
        rows.append(
            Packet(
                stream=stream,
                dts=None if dts == _NOPTS else dts,
                pts=None if pts == _NOPTS else pts,
                duration=_int_field(fields[3], "duration", line_no),
                size=_int_field(fields[4], "size", line_no),
                hash=_hex32(fields[5], "packet hash", line_no),
            )
        )
    if version != 2:
        raise FormatError(
            f"framehash: format version {version}, expected 2",
            hint="produce it with `ffmpeg ... -f framehash -hash sha256` (ffmpeg 4 or later)",
        )
    if hash_name != "SHA256":
        raise FormatError(f"framehash: hash is {hash_name!r}, expected 'SHA256'")
    count = max([*tbs, *types, *(r.stream for r in rows), -1]) + 1
    headers: list[StreamHeader] = []
    for i in range(count):
        if i not in tbs or i not in types:
            raise FormatError(f"framehash: stream {i} has no #tb or #media_type header")
        size, digest = extradata.get(i, (0, None))
        headers.append(
            StreamHeader(
                index=i,
                time_base=tbs[i],
                media_type=types[i],
                codec=codecs.get(i, "unknown"),
                extradata=digest,
                extradata_size=size,
            )
        )
    per_stream: list[list[Packet]] = [[] for _ in range(count)]
    for row in rows:
        if row.stream < 0:
            raise FormatError(f"framehash: negative stream index {row.stream}")
        per_stream[row.stream].append(row)
    return PacketList(streams=tuple(headers), packets=tuple(tuple(p) for p in per_stream))


_STREAMHASH_LINE = re.compile(r"(\d+),([vasdt]),SHA256=([0-9a-f]{64})")


def parse_streamhash(data: bytes) -> dict[int, tuple[str, str]]:
    """Parse ffmpeg's ``streamhash`` output: stream index -> (media type, SHA-256 hex).

    Raises:
        FormatError: a line is not ``<index>,<v|a|s|d|t>,SHA256=<64 hex>``, or an
            index repeats.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("streamhash: not ASCII text") from None
    result: dict[int, tuple[str, str]] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        m = _STREAMHASH_LINE.fullmatch(line)
        if not m:
            raise FormatError(
                f"streamhash line {line_no}: expected '<index>,<type>,SHA256=<hex>'",
                hint="produce it with `ffmpeg ... -f streamhash -hash sha256`",
            )
        if len(m[1]) > _MAX_INDEX_DIGITS:
            raise FormatError(
                f"streamhash line {line_no}: stream index has {len(m[1])} digits; "
                f"at most {_MAX_INDEX_DIGITS} are possible"
            )
        index = int(m[1])
        if index in result:
            raise FormatError(f"streamhash line {line_no}: stream {index} listed twice")
        result[index] = (_TYPE_LETTERS[m[2]], m[3])
    return result


# ---------------------------------------------------------------------------------
# Records.


@dataclass(frozen=True)
class MediaRecord:
    """Everything custody knows about a media file's metadata and content.

    Built from the three sidecars exactly as stored: the canonical snapshot
    (``probe``), and ffmpeg's ``framehash`` and ``streamhash`` outputs.  The
    constructor parses and cross-checks them, so a MediaRecord that exists is
    consistent; the derived fields (`metadata`, `packets`, `streams`, digests)
    are computed here, the same way at ingest and at verification.

    Raises:
        FormatError: a sidecar is malformed, or framehash and streamhash disagree
            about the streams.
    """

    snapshot: bytes
    framehash: bytes
    streamhash: bytes
    metadata: dict[str, Any] = field(init=False, repr=False, compare=False)
    packets: PacketList = field(init=False, repr=False, compare=False)
    streams: tuple[StreamDigest, ...] = field(init=False, repr=False, compare=False)
    metadata_digest: str = field(init=False, compare=False)
    content_digest: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        metadata = parse_snapshot(self.snapshot)
        packets = parse_framehash(self.framehash)
        hashes = parse_streamhash(self.streamhash)
        if sorted(hashes) != list(range(len(packets.streams))):
            raise FormatError(
                f"media record: streamhash lists streams {sorted(hashes)}, "
                f"framehash has {len(packets.streams)}"
            )
        streams: list[StreamDigest] = []
        for header in packets.streams:
            media_type, digest = hashes[header.index]
            if media_type != header.media_type:
                raise FormatError(
                    f"media record: stream {header.index} is {media_type} in streamhash "
                    f"but {header.media_type} in framehash"
                )
            streams.append(
                StreamDigest(
                    index=header.index,
                    codec_type=header.media_type,
                    codec_name=header.codec,
                    packets=len(packets.packets[header.index]),
                    digest=digest,
                    extradata=header.extradata,
                )
            )
        object.__setattr__(self, "metadata", metadata)
        object.__setattr__(self, "packets", packets)
        object.__setattr__(self, "streams", tuple(streams))
        object.__setattr__(self, "metadata_digest", metadata_digest(self.snapshot))
        object.__setattr__(self, "content_digest", content_digest(streams))

    @property
    def snapshot_version(self) -> str:
        """The snapshot's version marker (``custody/snapshot/v1`` or ``v2``).

        Two records are compared only in one version: a verifier re-measures a file
        in the version of the record it compares it with (docs/spec/media.md §4).
        """
        return str(self.metadata["version"])

    @property
    def format_name(self) -> str:
        """The container format: ffprobe's ``format_name``, plus the major brand if any.

        One demuxer reads MP4 and QuickTime (``mov,mp4,m4a,3gp,3g2,mj2``); the
        ISO BMFF major brand (``isom``, ``qt``, ``mp42``...) tells them apart, so
        an MP4 rewritten as a .mov counts as another container.
        """
        fmt = self.metadata["format"]
        name = str(fmt.get("format_name", ""))
        tags = fmt.get("tags")
        brand = tags.get("major_brand") if isinstance(tags, dict) else None
        return f"{name} ({str(brand).strip()})" if brand else name


@dataclass(frozen=True)
class Record:
    """A file as classification sees it: its BLAKE3 (hex), size, and media record if media."""

    blake3: str
    size: int
    media: MediaRecord | None = None


# ---------------------------------------------------------------------------------
# Metadata differences.

# Fields that a remux into another container changes by itself: container
# bookkeeping, not statements about the footage.  They are still reported, but
# apart, so that "same content, other container" reads sanely and a dropped
# creation_time or device tag stands out.  Tag names compare case-insensitively
# (Matroska upper-cases them).
_CONTAINER_FORMAT = frozenset(
    {
        "format_name",
        "format_long_name",
        "size",
        "bit_rate",
        "duration",
        "start_time",
        "probe_score",
        "nb_programs",
    }
)
_CONTAINER_FORMAT_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
_CONTAINER_STREAM = frozenset(
    {
        "bit_rate",
        "codec_tag",
        "codec_tag_string",
        "duration",
        "duration_ts",
        "id",
        "nb_frames",
        "start_pts",
        "start_time",
        "time_base",
        "r_frame_rate",
        "avg_frame_rate",
        "extradata_size",
        "is_avc",
        "nal_length_size",
    }
)
_CONTAINER_STREAM_TAGS = frozenset({"duration", "handler_name", "vendor_id", "encoder", "language"})
_STREAM_PATH = re.compile(r"streams\[\d+\]\.(.*)")


def _is_container_field(path: str, renamed: bool) -> bool:
    if renamed:
        return True  # only the spelling of a tag name changed
    if path.startswith("format."):
        rest = path[len("format.") :]
        if rest.startswith("tags."):
            return rest[len("tags.") :].lower() in _CONTAINER_FORMAT_TAGS
        return rest in _CONTAINER_FORMAT
    m = _STREAM_PATH.fullmatch(path)
    if m:
        rest = m[1]
        if rest.startswith("tags."):
            return rest[len("tags.") :].lower() in _CONTAINER_STREAM_TAGS
        return rest in _CONTAINER_STREAM or rest.startswith("disposition.")
    return False


@dataclass(frozen=True)
class FieldChange:
    """One snapshot field that differs.

    `path` names it as ``format.tags.creation_time`` or ``streams[0].tags.creation_time``
    (the candidate's spelling in `new_path` when only the tag name's case changed);
    `old`/`new` are the values, None where the field is absent.  `container` is
    True for fields a remux changes by itself (see docs/spec/media.md).
    """

    path: str
    old: Any
    new: Any
    container: bool
    new_path: str | None = None

    @property
    def change(self) -> str:
        """``changed``, ``added``, ``removed`` or ``renamed`` (tag name case only)."""
        if self.new_path is not None and self.old == self.new:
            return "renamed"
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"

    def describe(self) -> str:
        """``path old -> new`` for people."""
        if self.change == "renamed":
            return f"{self.path} renamed {self.new_path}"
        return f"{self.path} {_show(self.old)} -> {_show(self.new)}"

    def to_json(self) -> dict[str, Any]:
        """The change as plain JSON values."""
        out: dict[str, Any] = {
            "field": self.path,
            "change": self.change,
            "old": self.old,
            "new": self.new,
            "container": self.container,
        }
        if self.new_path is not None:
            out["new_field"] = self.new_path
        return out


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, str) and (not value or value != value.strip()):
        return repr(value)  # make empty or space-padded values visible
    return str(value)


def _flatten(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{path}[{i}]")
    else:
        yield path, value


def _tags_paths(flat: Mapping[str, Any]) -> dict[str, str]:
    """Map a case-folded tag path to its spelling, for tag paths only."""
    out: dict[str, str] = {}
    for path in flat:
        head, sep, tag = path.partition(".tags.")
        if sep:
            out[f"{head}.tags.{tag.lower()}"] = path
    return out


def diff_metadata(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Every snapshot field that differs between two parsed snapshots, in path order.

    Streams are compared by index.  A tag present on both sides under names that
    differ only in case (Matroska upper-cases tag names) pairs up, and is reported
    as ``renamed`` if its value is the same.
    """
    flat_old = dict(_flatten({k: v for k, v in old.items() if k != "version"}, ""))
    flat_new = dict(_flatten({k: v for k, v in new.items() if k != "version"}, ""))
    only_old = set(flat_old) - set(flat_new)
    only_new = set(flat_new) - set(flat_old)
    # Pair tag names that differ only in case and exist on one side each.
    new_by_fold = {k: v for k, v in _tags_paths(flat_new).items() if v in only_new}
    pairs: dict[str, str] = {}
    for fold, old_path in _tags_paths(flat_old).items():
        if old_path in only_old and fold in new_by_fold:
            pairs[old_path] = new_by_fold[fold]
    paired_new = set(pairs.values())
    changes: list[FieldChange] = []
    for path in sorted(set(flat_old) | set(flat_new), key=_path_key):
        if path in paired_new:
            continue
        if path in pairs:
            new_path = pairs[path]
            changes.append(
                FieldChange(
                    path=path,
                    old=flat_old[path],
                    new=flat_new[new_path],
                    container=_is_container_field(path, flat_old[path] == flat_new[new_path]),
                    new_path=new_path,
                )
            )
            continue
        a = flat_old.get(path)
        b = flat_new.get(path)
        if a != b or (path in flat_old) != (path in flat_new):
            changes.append(
                FieldChange(path=path, old=a, new=b, container=_is_container_field(path, False))
            )
    return tuple(changes)


def _path_key(path: str) -> tuple[Any, ...]:
    # "format..." before "streams[...]", and streams[2] before streams[10].
    parts = re.split(r"\[(\d+)\]", path)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


# ---------------------------------------------------------------------------------
# Packet differences.


@dataclass(frozen=True)
class PacketSpan:
    """A run of packets that differ between the ingested stream and the candidate's.

    `kind` is ``replaced`` (both have packets here, and they differ), ``missing``
    (the ingested packets [old_first, old_end) have no counterpart), ``added``
    (the candidate's packets [new_first, new_end) have none), ``retimed``
    (identical packets presented at other times: slowed down, sped up) or
    ``shifted`` (the whole stream moved against stream `against`: A/V desync).
    Packet numbers count from 0 within the stream.  `start`/`end` are seconds on the ingested file's
    timeline (for ``added``: the candidate's), None where there are no timestamps.
    """

    kind: str
    old_first: int
    old_end: int
    new_first: int
    new_end: int
    start: Fraction | None
    end: Fraction | None
    shift: Fraction | None = None  # ``retimed``/``shifted``: the timing difference (s)
    against: int | None = None  # ``shifted``: the stream it moved against

    def describe(self, old_total: int) -> str:
        """A short phrase for people, e.g. ``packets 15-29 replaced, 1.000-2.000 s``."""
        if self.kind == "shifted":
            what = (
                f"all {self.old_end} packets identical but shifted "
                f"{_seconds(self.shift or Fraction(0))} s against stream {self.against}"
            )
        elif self.kind == "retimed":
            noun = "packet" if self.old_end - self.old_first == 1 else "packets"
            what = (
                f"{noun} {_range(self.old_first, self.old_end - 1)} retimed "
                f"(identical packets, timestamps up to {_seconds(self.shift or Fraction(0))} s off)"
            )
        elif self.kind == "added":
            count, first, last = self.new_end - self.new_first, self.new_first, self.new_end - 1
            what = f"{_n(count, 'packet')} added (candidate {_range(first, last)})"
        else:
            count, first, last = self.old_end - self.old_first, self.old_first, self.old_end - 1
            noun = "packet" if count == 1 else "packets"
            what = f"{noun} {_range(first, last)} {self.kind}"
            if self.kind == "missing" and self.old_end == old_total:
                what += " (cut off at the end)"
        if self.start is not None and self.end is not None:
            what += f", {_seconds(self.start)}-{_seconds(self.end)} s"
        return what

    def to_json(self) -> dict[str, Any]:
        """The span as plain JSON values (seconds as floats)."""
        return {
            "kind": self.kind,
            "old_packets": [self.old_first, self.old_end],
            "new_packets": [self.new_first, self.new_end],
            "start": None if self.start is None else float(self.start),
            "end": None if self.end is None else float(self.end),
            **({} if self.shift is None else {"shift": float(self.shift)}),
            **({} if self.against is None else {"against": self.against}),
        }


def _range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _seconds(value: Fraction) -> str:
    return f"{float(value):.3f}"


@dataclass(frozen=True)
class StreamChange:
    """How one stream's content differs.

    `status`: ``modified`` (packets and/or codec configuration differ),
    ``retimed`` (identical packets, other timestamps; a ``retimed`` or ``shifted``
    span says how), ``missing`` (the candidate
    lacks the stream), ``added`` (only the candidate has it) or ``type-changed``
    (the stream at this index is of another type).
    """

    index: int
    codec_type: str
    codec_name: str
    status: str
    old_packets: int
    new_packets: int
    spans: tuple[PacketSpan, ...] = ()
    extradata_changed: bool = False

    def describe(self) -> str:
        """One phrase for people: the stream and what differs."""
        head = f"stream {self.index} ({self.codec_type} {self.codec_name})"
        if self.status == "missing":
            return f"{head} missing ({_n(self.old_packets, 'packet')})"
        if self.status == "added":
            return f"{head} added ({_n(self.new_packets, 'packet')})"
        if self.status == "type-changed":
            return f"{head} replaced by a stream of another type"
        parts = [span.describe(self.old_packets) for span in self.spans[:3]]
        if len(self.spans) > 3:
            parts.append(f"{len(self.spans) - 3} more differing runs")
        if self.extradata_changed:
            parts.append("codec configuration (extradata) differs")
        return f"{head}: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The change as plain JSON values."""
        return {
            "stream": self.index,
            "codec_type": self.codec_type,
            "codec_name": self.codec_name,
            "status": self.status,
            "old_packets": self.old_packets,
            "new_packets": self.new_packets,
            "extradata_changed": self.extradata_changed,
            "spans": [span.to_json() for span in self.spans],
        }


_Run = tuple[str, int, int, int, int]

# How many distinctive packets, in one run that matches in order, make a file
# related to an ingested one (see `_evidence`).
MIN_EVIDENCE = 3


def _align(old: Sequence[bytes], new: Sequence[bytes]) -> list[_Run]:
    """(kind, old_first, old_end, new_first, new_end) runs covering both sequences.

    Kinds: ``equal``, ``replaced``, ``missing``, ``added``.
    """
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    end_old, end_new = len(old) - suffix, len(new) - suffix
    mid_old = old[prefix:end_old]
    mid_new = new[prefix:end_new]
    runs: list[_Run] = []
    if prefix:
        runs.append(("equal", 0, prefix, 0, prefix))
    if mid_old and mid_new and set(mid_old) & set(mid_new):
        # Only the differing middle goes through difflib, so a flipped bit or a
        # spliced span in an hour of footage costs a few comparisons, not n*m.
        matcher = SequenceMatcher(None, mid_old, mid_new, autojunk=False)
        kinds = {"replace": "replaced", "delete": "missing", "insert": "added", "equal": "equal"}
        runs += [
            (kinds[tag], prefix + i1, prefix + i2, prefix + j1, prefix + j2)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        ]
    else:
        # Nothing in common: pair packets up from the start (replaced), and what is
        # left over on one side is missing or added.  For a truncated file this
        # reads as it happened: the last packet cut short, the rest missing.
        paired = min(len(mid_old), len(mid_new))
        if paired:
            runs.append(("replaced", prefix, prefix + paired, prefix, prefix + paired))
        if len(mid_old) > paired:
            runs.append(("missing", prefix + paired, end_old, end_new, end_new))
        elif len(mid_new) > paired:
            runs.append(("added", end_old, end_old, prefix + paired, end_new))
    if suffix:
        runs.append(("equal", end_old, len(old), end_new, len(new)))
    return runs


def _evidence(old: Sequence[bytes], runs: Sequence[_Run]) -> int:
    """The most distinctive packets in one matching run: how strongly two files are related.

    A packet is distinctive if its hash occurs once in its ingested stream:
    digital silence or a static black frame encodes to the same packet over and
    over.  Even a distinctive packet alone proves little: an AAC encoder's first
    packet (priming silence) is the same in every file it makes.  Several
    distinctive packets matching in order do not happen by chance.
    """
    counts = Counter(old)
    best = 0
    for kind, a0, a1, _, _ in runs:
        if kind == "equal":
            best = max(best, sum(1 for h in old[a0:a1] if counts[h] == 1))
    return best


def _retiming(old: PacketList, new: PacketList, index: int) -> PacketSpan | None:
    """For a stream whose packets are identical: where their timing differs, if anywhere.

    Each packet's timestamp is taken relative to the stream's first packet, in
    seconds, so a container that starts its timeline elsewhere (Matroska starts
    at 0 where MP4 starts audio at -1024 samples) does not count; nor does
    rounding to a coarser time base (Matroska's 1 ms), up to one tick of each.
    """
    tb_old, tb_new = old.streams[index].time_base, new.streams[index].time_base
    tolerance = tb_old + tb_new
    first_old = first_new = None
    deviating: list[tuple[int, Fraction]] = []
    for i, (a, b) in enumerate(zip(old.packets[index], new.packets[index], strict=True)):
        ta, tb = a.timestamp, b.timestamp
        if ta is None or tb is None:
            continue
        if first_old is None or first_new is None:
            first_old, first_new = ta, tb
        shift = abs((tb - first_new) * tb_new - (ta - first_old) * tb_old)
        if shift > tolerance:
            deviating.append((i, shift))
    if not deviating:
        return None
    first, last = deviating[0][0], deviating[-1][0] + 1
    times = old.time_of(index, first, last)
    return PacketSpan(
        kind="retimed",
        old_first=first,
        old_end=last,
        new_first=first,
        new_end=last,
        start=None if times is None else times[0],
        end=None if times is None else times[1],
        shift=max(shift for _, shift in deviating),
    )


def _compare_streams(old: PacketList, new: PacketList) -> tuple[tuple[StreamChange, ...], int]:
    """The differing streams, and the strongest evidence that the files are related."""
    changes: list[StreamChange] = []
    unchanged: list[int] = []
    evidence = 0
    for index in range(max(len(old.streams), len(new.streams))):
        if index >= len(new.streams):
            h = old.streams[index]
            changes.append(
                StreamChange(index, h.media_type, h.codec, "missing", len(old.packets[index]), 0)
            )
            continue
        if index >= len(old.streams):
            h = new.streams[index]
            changes.append(
                StreamChange(index, h.media_type, h.codec, "added", 0, len(new.packets[index]))
            )
            continue
        ho, hn = old.streams[index], new.streams[index]
        po, pn = old.packets[index], new.packets[index]
        if ho.media_type != hn.media_type:
            changes.append(
                StreamChange(index, ho.media_type, ho.codec, "type-changed", len(po), len(pn))
            )
            continue
        old_hashes = [p.hash for p in po]
        runs = _align(old_hashes, [p.hash for p in pn])
        evidence = max(evidence, _evidence(old_hashes, runs))
        differing = [run for run in runs if run[0] != "equal"]
        extradata_changed = ho.extradata != hn.extradata
        if not differing and not extradata_changed:
            retimed = _retiming(old, new, index)
            if retimed is not None:
                changes.append(
                    StreamChange(
                        index, ho.media_type, ho.codec, "retimed", len(po), len(pn), (retimed,)
                    )
                )
            else:
                unchanged.append(index)
            continue
        spans = []
        for kind, a0, a1, b0, b1 in differing:
            times = new.time_of(index, b0, b1) if kind == "added" else old.time_of(index, a0, a1)
            spans.append(
                PacketSpan(
                    kind=kind,
                    old_first=a0,
                    old_end=a1,
                    new_first=b0,
                    new_end=b1,
                    start=None if times is None else times[0],
                    end=None if times is None else times[1],
                )
            )
        changes.append(
            StreamChange(
                index=index,
                codec_type=ho.media_type,
                codec_name=ho.codec,
                status="modified",
                old_packets=len(po),
                new_packets=len(pn),
                spans=tuple(spans),
                extradata_changed=extradata_changed,
            )
        )
    changes += _desync(old, new, unchanged)
    changes.sort(key=lambda change: change.index)
    return tuple(changes), evidence


def _start(packets: PacketList, index: int) -> Fraction | None:
    for packet in packets.packets[index]:
        if packet.timestamp is not None:
            return packet.timestamp * packets.streams[index].time_base
    return None


def _desync(old: PacketList, new: PacketList, unchanged: Sequence[int]) -> list[StreamChange]:
    """Streams with identical packets and timing that moved against the others.

    Each stream's start is compared relative to the first unchanged stream's, so
    a remux that starts the whole timeline elsewhere does not count, while video
    shifted a second against its sound does.
    """
    timed = [i for i in unchanged if _start(old, i) is not None and _start(new, i) is not None]
    if len(timed) < 2:
        return []
    ref = timed[0]
    ref_old, ref_new = _start(old, ref), _start(new, ref)
    assert ref_old is not None and ref_new is not None
    ref_tolerance = old.streams[ref].time_base + new.streams[ref].time_base
    moved: list[StreamChange] = []
    for index in timed[1:]:
        start_old, start_new = _start(old, index), _start(new, index)
        assert start_old is not None and start_new is not None
        shift = abs((start_new - ref_new) - (start_old - ref_old))
        tolerance = ref_tolerance + old.streams[index].time_base + new.streams[index].time_base
        if shift <= tolerance:
            continue
        header = old.streams[index]
        count = len(old.packets[index])
        times = old.time_of(index, 0, count)
        span = PacketSpan(
            kind="shifted",
            old_first=0,
            old_end=count,
            new_first=0,
            new_end=count,
            start=None if times is None else times[0],
            end=None if times is None else times[1],
            shift=shift,
            against=ref,
        )
        moved.append(
            StreamChange(index, header.media_type, header.codec, "retimed", count, count, (span,))
        )
    return moved


# ---------------------------------------------------------------------------------
# Verdicts.


@dataclass(frozen=True)
class Verdict(ABC):
    """The result of classifying one file against one ingested record.

    Subclasses are the five kinds; `kind` names it for --json, `rank` orders them
    from the strongest relation (0, exact) to none (4, unknown) so a caller that
    classified a file against several records can keep the best.
    """

    kind: ClassVar[str] = ""
    rank: ClassVar[int] = 99

    @property
    @abstractmethod
    def summary(self) -> str:
        """One line for people."""

    def detail(self) -> dict[str, Any]:
        """Structured detail for --json (without kind and summary)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        """``{"verdict": kind, "summary": ..., **detail}`` as plain JSON values."""
        return {"verdict": self.kind, "summary": self.summary, **self.detail()}


def _list_fields(changes: Sequence[FieldChange], limit: int = 3) -> str:
    shown = "; ".join(c.describe() for c in changes[:limit])
    if len(changes) > limit:
        shown += f"; and {len(changes) - limit} more"
    return shown


@dataclass(frozen=True)
class ExactMatch(Verdict):
    """The file's bytes are exactly the ingested file's (same BLAKE3)."""

    kind: ClassVar[str] = "exact"
    rank: ClassVar[int] = 0
    blake3: str

    @property
    def summary(self) -> str:
        return f"exact match: the bytes are identical (BLAKE3 {self.blake3[:16]}...)"

    def detail(self) -> dict[str, Any]:
        return {"blake3": self.blake3}


@dataclass(frozen=True)
class SameContent(Verdict):
    """Different file bytes, identical packets in every stream, other container or layout.

    `fields` lists every snapshot field that differs; those with ``container``
    False are the ones a remux would not change by itself (e.g. a dropped
    ``creation_time``), listed first in the summary.
    """

    kind: ClassVar[str] = "same-content"
    rank: ClassVar[int] = 1
    old_format: str
    new_format: str
    fields: tuple[FieldChange, ...]

    @property
    def notable(self) -> tuple[FieldChange, ...]:
        """The differing fields a remux does not explain."""
        return tuple(c for c in self.fields if not c.container)

    @property
    def summary(self) -> str:
        if self.old_format != self.new_format:
            head = f"same content in another container ({self.old_format} -> {self.new_format})"
        else:
            head = f"same content, container rewritten ({self.new_format})"
        if not self.fields:
            return head + "; no metadata field differs"
        container = len(self.fields) - len(self.notable)
        tail = f"{_n(container, 'container field')} differ"
        if self.notable:
            tail = f"metadata also differs: {_list_fields(self.notable)}; {tail}"
        return f"{head}; {tail}"

    def detail(self) -> dict[str, Any]:
        return {
            "old_format": self.old_format,
            "new_format": self.new_format,
            "fields": [c.to_json() for c in self.fields],
        }


@dataclass(frozen=True)
class MetadataChanged(Verdict):
    """Identical packets and container format, but snapshot fields differ."""

    kind: ClassVar[str] = "metadata-changed"
    rank: ClassVar[int] = 2
    fields: tuple[FieldChange, ...]

    @property
    def summary(self) -> str:
        notable = [c for c in self.fields if not c.container]
        if not notable:
            return (
                "metadata changed outside what ffprobe shows; only container fields differ: "
                + _list_fields(self.fields)
            )
        container = [c for c in self.fields if c.container]
        return "metadata changed: " + _list_fields([*notable, *container])

    def detail(self) -> dict[str, Any]:
        return {"fields": [c.to_json() for c in self.fields]}


@dataclass(frozen=True)
class ContentModified(Verdict):
    """Packets differ: which streams, which packets, which time ranges.

    `fields` are the snapshot differences as well (a re-encoded span usually
    changes sizes and bit rates; a tampered file may also carry edited tags).
    """

    kind: ClassVar[str] = "content-modified"
    rank: ClassVar[int] = 3
    streams: tuple[StreamChange, ...]
    fields: tuple[FieldChange, ...]

    @property
    def summary(self) -> str:
        return "content modified: " + "; ".join(s.describe() for s in self.streams)

    def detail(self) -> dict[str, Any]:
        return {
            "streams": [s.to_json() for s in self.streams],
            "fields": [c.to_json() for c in self.fields],
        }


@dataclass(frozen=True)
class Unknown(Verdict):
    """No relation to the ingested record."""

    kind: ClassVar[str] = "unknown"
    rank: ClassVar[int] = 4
    reason: str

    @property
    def summary(self) -> str:
        return f"unknown: {self.reason}"

    def detail(self) -> dict[str, Any]:
        return {"reason": self.reason}


def classify(ingested: Record, candidate: Record) -> Verdict:
    """Classify `candidate` against one `ingested` record (docs/spec/media.md).

    Rules, in order:

    1. same BLAKE3: `ExactMatch`;
    2. either is not media: `Unknown`;
    3. every stream has identical packets and codec configuration: a metadata value
       present in both and different (outside container bookkeeping) ->
       `MetadataChanged`, even if the container changed too; otherwise container
       format differs -> `SameContent`; same format and some snapshot field differs
       -> `MetadataChanged`; nothing in the snapshot differs (only the byte layout)
       -> `SameContent`;
    4. some stream of the candidate has a run of packets, matching in order, that
       holds at least `MIN_EVIDENCE` packets occurring once in the ingested
       stream: `ContentModified` with the differing streams, packets and times;
    5. otherwise `Unknown`.
    """
    if candidate.blake3 == ingested.blake3:
        return ExactMatch(blake3=ingested.blake3)
    old, new = ingested.media, candidate.media
    if old is None or new is None:
        which = "the ingested file" if old is None else "this file"
        return Unknown(reason=f"the bytes differ and {which} is not media")
    fields = diff_metadata(old.metadata, new.metadata)
    streams, evidence = _compare_streams(old.packets, new.packets)
    if not streams:
        # A value present in both and different (an edited creation_time, a new
        # device model) is an edit even when the container was rewritten too: a
        # remux loses or renames fields, it does not invent other values.
        edited = any(f.change == "changed" and not f.container for f in fields)
        if (old.format_name != new.format_name and not edited) or not fields:
            return SameContent(
                old_format=old.format_name, new_format=new.format_name, fields=fields
            )
        return MetadataChanged(fields=fields)
    if evidence >= MIN_EVIDENCE:
        return ContentModified(streams=streams, fields=fields)
    return Unknown(reason="no run of distinctive packets in common with the ingested file")


# ---------------------------------------------------------------------------------
# Trims: a contiguous run of the parent's packets.


@dataclass(frozen=True)
class StreamRun:
    """Where one stream of a child sits in its parent.

    The child's packets [head, child_packets - tail) equal the parent's packets
    [parent_first, parent_end); the `head` first and `tail` last child packets are
    boundary packets allowed to differ.  `start`/`end`: the run in seconds on the
    parent's timeline.
    """

    index: int
    codec_type: str
    parent_first: int
    parent_end: int
    child_packets: int
    head: int
    tail: int
    start: Fraction | None
    end: Fraction | None

    def to_json(self) -> dict[str, Any]:
        """The run as plain JSON values."""
        return {
            "stream": self.index,
            "codec_type": self.codec_type,
            "parent_packets": [self.parent_first, self.parent_end],
            "child_packets": self.child_packets,
            "boundary_head": self.head,
            "boundary_tail": self.tail,
            "start": None if self.start is None else float(self.start),
            "end": None if self.end is None else float(self.end),
        }


@dataclass(frozen=True)
class ContiguousRun:
    """Proof that a child's streams are contiguous runs of the parent's."""

    streams: tuple[StreamRun, ...]

    @property
    def summary(self) -> str:
        """One line for people."""
        parts = []
        for run in self.streams:
            where = f"parent packets {run.parent_first}-{run.parent_end - 1}"
            if run.start is not None and run.end is not None:
                where += f", {_seconds(run.start)}-{_seconds(run.end)} s"
            if run.head or run.tail:
                where += f", {run.head}+{run.tail} boundary packets differ"
            parts.append(f"stream {run.index} ({run.codec_type}): {where}")
        return "contiguous excerpt: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The proof as plain JSON values."""
        return {"summary": self.summary, "streams": [run.to_json() for run in self.streams]}


def _occurrences(haystack: bytes, needle: bytes, limit: int = 1000) -> list[int]:
    """Packet positions where `needle` (concatenated 32-byte hashes) occurs in `haystack`."""
    found: list[int] = []
    start = 0
    while len(found) < limit:
        at = haystack.find(needle, start)
        if at < 0:
            break
        if at % 32 == 0:
            found.append(at // 32)
        start = at + 1
    return found


def _longest_run(parent: Sequence[bytes], child: Sequence[bytes]) -> tuple[int, int]:
    """(length, parent start) of the longest run of `child`'s first packets in `parent`."""
    best = (0, -1)
    for start, h in enumerate(parent):
        if h != child[0]:
            continue
        n = 0
        while n < len(child) and start + n < len(parent) and parent[start + n] == child[n]:
            n += 1
        if n > best[0]:
            best = (n, start)
    return best


def _overlap(a: StreamRun, b: StreamRun) -> Fraction:
    if a.start is None or a.end is None or b.start is None or b.end is None:
        return Fraction(0)
    return min(a.end, b.end) - max(a.start, b.start)


def is_contiguous_run(
    parent: PacketList, child: PacketList, *, allow_boundary: int = 1
) -> ContiguousRun:
    """Prove that every stream of `child` is a contiguous run of `parent`'s packets.

    A stream-copy trim passes with no boundary packets; a trim whose cut points
    were re-encoded passes if at most `allow_boundary` packets at each end of each
    stream differ.  Streams are matched by index and must be of the same type; the
    runs of all streams must overlap in time on the parent's timeline (a "trim"
    that takes video from one moment and audio from another is not one).

    Returns:
        The matching run per stream (empty child streams are skipped).

    Raises:
        VerificationError: naming the stream and the child packet where the run
            breaks, or the streams whose runs do not overlap.
    """
    if allow_boundary < 0:
        raise VerificationError(f"allow_boundary must not be negative, got {allow_boundary}")
    if len(child.streams) > len(parent.streams):
        raise VerificationError(
            f"the excerpt has {len(child.streams)} streams, its parent only {len(parent.streams)}"
        )
    candidates: list[list[StreamRun]] = []
    for header in child.streams:
        index = header.index
        parent_header = parent.streams[index]
        if parent_header.media_type != header.media_type:
            raise VerificationError(
                f"stream {index} is {header.media_type} in the excerpt "
                f"but {parent_header.media_type} in the parent"
            )
        c = [p.hash for p in child.packets[index]]
        if not c:
            continue
        p = [q.hash for q in parent.packets[index]]
        haystack = b"".join(p)
        runs: list[StreamRun] = []
        for total in range(2 * allow_boundary + 1):
            for head in range(max(0, total - allow_boundary), min(total, allow_boundary) + 1):
                tail = total - head
                interior = c[head : len(c) - tail]
                if not interior:
                    continue
                for at in _occurrences(haystack, b"".join(interior)):
                    times = parent.time_of(index, at, at + len(interior))
                    runs.append(
                        StreamRun(
                            index=index,
                            codec_type=header.media_type,
                            parent_first=at,
                            parent_end=at + len(interior),
                            child_packets=len(c),
                            head=head,
                            tail=tail,
                            start=None if times is None else times[0],
                            end=None if times is None else times[1],
                        )
                    )
            if runs:
                break
        if not runs:
            raise VerificationError(
                _break_message(index, header.media_type, p, c, child, allow_boundary)
            )
        candidates.append(runs)
    if not candidates:
        raise VerificationError("the excerpt has no packets to compare")
    # Anchor on the stream with the fewest possible placements (usually video,
    # whose packets are all distinct), then place every other stream where it
    # overlaps the anchor most: repeated audio packets (silence) can match in
    # many places, and only one of them is the excerpt's.
    anchor = min(candidates, key=len)[0]
    chosen = [max(runs, key=lambda run: _overlap(run, anchor)) for runs in candidates]
    for run in chosen:
        if run is anchor or run.start is None or anchor.start is None:
            continue
        if _overlap(run, anchor) < 0:
            raise VerificationError(
                f"stream {run.index} of the excerpt comes from "
                f"{_seconds(run.start)}-{_seconds(run.end or run.start)} s of the parent "
                f"but stream {anchor.index} from "
                f"{_seconds(anchor.start)}-{_seconds(anchor.end or anchor.start)} s",
                hint="the streams of a trim must come from the same part of the parent",
            )
    return ContiguousRun(streams=tuple(chosen))


def _break_message(
    index: int,
    media_type: str,
    parent: Sequence[bytes],
    child: Sequence[bytes],
    lst: PacketList,
    allow_boundary: int,
) -> str:
    # Say where the excerpt stops following the parent, from the best start
    # among the packets allowed to differ.
    best = (0, -1, 0)
    for skip in range(min(allow_boundary, len(child) - 1) + 1):
        n, start = _longest_run(parent, child[skip:])
        if n > best[0]:
            best = (n, start, skip)
    n, start, skip = best
    if start < 0:
        tried = min(allow_boundary, len(child) - 1) + 1
        which = "its first packet is not" if tried == 1 else f"none of its first {tried} packets is"
        return (
            f"stream {index} ({media_type}) of the excerpt is not a run of the parent's "
            f"packets: {which} in the parent"
        )
    first, brk = skip, skip + n
    times = lst.time_of(index, brk, brk + 1)
    at = f" ({_seconds(times[0])} s into the excerpt)" if times else ""
    return (
        f"stream {index} ({media_type}) of the excerpt is not a contiguous run of the "
        f"parent's packets: its packets {_range(first, brk - 1)} match parent packets "
        f"{_range(start, start + n - 1)}, packet {brk}{at} does not"
    )
