"""Media probing and packet hashing; the only module that runs ffprobe and ffmpeg.

`probe` measures one file in-process (`custody.infra.avmedia`, PyAV on the system
FFmpeg; docs/spec/media.md §4-§5): the ``custody/snapshot/v2`` metadata snapshot,
and ``streamhash`` (SHA-256 over each stream's packets) and ``framehash`` (SHA-256
of every packet) exactly as ``ffmpeg -map 0 -c copy`` writes them.  Only a
``custody/snapshot/v1`` measurement (to compare with a record written that way)
still runs ``ffprobe -show_format -show_streams -of json``.

The tools (ffprobe for v1 and keyframes, ffmpeg for thumbnails and derived clips)
are called directly with `subprocess` (not ffmpeg-python's helpers) because
custody needs what those hide: the input is passed as ``file:<absolute path>``
so a file named ``concat:...`` or ``-i`` is never read as a protocol or option,
``-protocol_whitelist file`` keeps a playlist inside evidence from reaching the
network, stdin is closed, and the outputs are kept as raw bytes to store.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from custody.errors import CustodyError, FormatError, InputError, UsageError
from custody.media.compare import MediaRecord, PacketList
from custody.media.digest import (
    SNAPSHOT_V1,
    SNAPSHOT_V2,
    SNAPSHOT_VERSIONS,
    StreamDigest,
    snapshot_bytes,
)

__all__ = ["SIDECAR_KINDS", "Measurements", "MediaInfo", "ffmpeg_version", "probe"]

FFPROBE = "ffprobe"
FFMPEG = "ffmpeg"

# The sidecars a media item keeps in the evidence store, by kind.
SIDECAR_KINDS = ("probe", "framehash", "streamhash")

# Demuxers for pictures and text, not footage: a still JPEG/PNG from an export
# is an attachment (file hashes only), whatever ffprobe makes of it.
_STILL_FORMATS = frozenset(
    {"image2", "gif", "apng", "ico", "tty", "bin", "xbin", "adf", "idf", "jpegxl_anim"}
)
# Extensions and magic numbers of containers: a file like this that ffprobe
# rejects is damaged media (an InputError), not an attachment.
_MEDIA_EXTENSION_WORDS = (
    ".mp4 .m4v .mov .qt .3gp .3g2 .mkv .mka .webm .avi .wmv .asf .flv .ts .mts .m2ts .mpg "
    ".mpeg .vob .m4a .mp3 .aac .wav .ogg .oga .ogv .opus .flac .dav .h264 .264 .h265 .265 "
    ".hevc .mxf .dv .rm .rmvb .amr"
)
MEDIA_EXTENSIONS = frozenset(_MEDIA_EXTENSION_WORDS.split())
_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\x1a\x45\xdf\xa3"),  # EBML: Matroska, WebM
    (0, b"RIFF"),  # AVI, WAV
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"),  # ASF, WMV
    (0, b"FLV"),
    (0, b"OggS"),
    (0, b"fLaC"),
    (0, b"ID3"),
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x00\x00\x00\x01"),  # raw H.264 / H.265 (Annex B)
)


@dataclass(frozen=True)
class MediaInfo:
    """What custody measured of one media file.

    `record` holds the snapshot, framehash and streamhash bytes and everything
    derived from them (see `custody.media.compare.MediaRecord`); `problems` are the
    error lines ffmpeg printed (empty for a sound file; a truncated file lists
    e.g. "partial file"); `tool` is the ffmpeg version that measured it, to record
    next to the digests (another ffprobe version may print other fields).
    """

    record: MediaRecord
    problems: tuple[str, ...]
    tool: str

    @property
    def snapshot(self) -> bytes:
        """The canonical snapshot bytes (``custody/snapshot/v1`` or ``v2``): the probe sidecar."""
        return self.record.snapshot

    @property
    def metadata(self) -> dict[str, Any]:
        """The snapshot as a dict (``format``, ``streams``, ``version``)."""
        return self.record.metadata

    @property
    def metadata_digest(self) -> str:
        """BLAKE3 hex of the snapshot bytes."""
        return self.record.metadata_digest

    @property
    def streams(self) -> tuple[StreamDigest, ...]:
        """Per-stream packet digests (``streamhash``), in index order."""
        return self.record.streams

    @property
    def content_digest(self) -> str:
        """The single content digest over all streams (``custody/content/v1``)."""
        return self.record.content_digest

    @property
    def framehash(self) -> bytes:
        """ffmpeg's framehash output, exactly (the per-packet list sidecar)."""
        return self.record.framehash

    @property
    def streamhash(self) -> bytes:
        """ffmpeg's streamhash output, exactly."""
        return self.record.streamhash

    @property
    def packets(self) -> PacketList:
        """The per-packet list, parsed, with each stream's time base."""
        return self.record.packets

    def sidecars(self) -> dict[str, bytes]:
        """The sidecars to keep in the evidence store, by kind (`SIDECAR_KINDS`)."""
        return {"probe": self.snapshot, "framehash": self.framehash, "streamhash": self.streamhash}


def _shown(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _url(path: Path) -> bytes:
    # "file:" + absolute path: never a protocol, an option or stdin, whatever its name.
    return b"file:" + os.fsencode(os.path.abspath(path))


def _run(args: list[bytes | str], what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except FileNotFoundError:
        raise CustodyError(
            f"{what} is not installed (needed to probe media)",
            hint="install ffmpeg, e.g. `apt-get install ffmpeg`",
        ) from None
    except OSError as exc:
        raise CustodyError(f"cannot run {what} ({exc.strerror})") from None


def _error_lines(stderr: bytes) -> tuple[str, ...]:
    text = stderr.decode("utf-8", "replace")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@functools.cache
def ffmpeg_version() -> str:
    """The ffmpeg that custody runs, e.g. ``ffmpeg 5.1.9-0+deb12u1``.

    Raises:
        CustodyError: ffmpeg is not installed or does not report a version.
    """
    result = _run([FFMPEG, "-hide_banner", "-version"], FFMPEG)
    first = result.stdout.decode("utf-8", "replace").partition("\n")[0].split()
    if result.returncode != 0 or len(first) < 3 or first[:2] != ["ffmpeg", "version"]:
        raise CustodyError("ffmpeg did not report its version", hint="check the ffmpeg install")
    return f"ffmpeg {first[2]}"


def _looks_like_media(path: Path, name: str) -> bool:
    if Path(name).suffix.lower() in MEDIA_EXTENSIONS:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if head[4:8] in _BOXES:
        # An ISO BMFF box: a 32-bit size that fits the file (0: to the end, 1: 64-bit),
        # so that text starting "The free..." is not taken for a damaged MP4.
        box = int.from_bytes(head[:4], "big")
        if box in (0, 1) or 8 <= box <= size:
            return True
    return any(head[at : at + len(magic)] == magic for at, magic in _MAGIC)


def _is_footage(doc: Mapping[str, Any]) -> bool:
    """Whether ffprobe's document describes footage or sound, not a picture or text."""
    fmt = doc.get("format", {})
    names = set(str(fmt.get("format_name", "")).split(","))
    if names & _STILL_FORMATS or any(name.endswith("_pipe") for name in names):
        return False
    for stream in doc.get("streams", []):
        kind = stream.get("codec_type")
        if kind == "audio":
            return True
        if kind == "video" and not stream.get("disposition", {}).get("attached_pic"):
            return True
    return False


_CONTEXT = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\] ")


def _reason(lines: tuple[str, ...], path: Path, fallback: str) -> str:
    # ffmpeg prefixes messages with the input URL or "[demuxer @ 0xADDRESS]";
    # the message already names the file, and an address means nothing to a reader.
    line = lines[-1] if lines else fallback
    prefix = _url(path).decode("utf-8", "backslashreplace") + ": "
    line = line[len(prefix) :] if line.startswith(prefix) else line
    return _CONTEXT.sub("", line)


def _is_text(path: Path) -> bool:
    """Whether the file starts like text (UTF-8, no NUL byte): an export's JSON, CSV or
    notes.  No audio or video container is text, so such a file is an attachment and
    ffprobe (some 50 ms a file, most of a batch's time) need not run."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 4 KiB boundary is still text.
        return exc.start >= len(head) - 3 and len(head) == 4096
    return True


def _probe_json(path: Path, name: str) -> dict[str, Any] | None:
    """ffprobe's document, or None if ffprobe does not recognise the file."""
    if _is_text(path):
        return None
    result = _run(
        [
            FFPROBE,
            "-hide_banner",
            "-v",
            "error",
            "-protocol_whitelist",
            "file",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
            _url(path),
        ],
        FFPROBE,
    )
    if result.returncode != 0:
        if _looks_like_media(path, name):
            reason = _reason(_error_lines(result.stderr), path, "ffprobe failed")
            raise InputError(
                f"{name} is not decodable media: {reason}",
                hint="the file may be truncated or damaged; ingest the original export",
            )
        return None
    try:
        doc = json.loads(result.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: ffprobe printed unreadable JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{name}: ffprobe printed no JSON object")
    return doc


def probe(
    path: Path,
    *,
    strict: bool = True,
    name: str | None = None,
    snapshot: str = SNAPSHOT_V2,
) -> MediaInfo | None:
    """Measure a file's metadata and content, or None if it is not media.

    Not media (None): anything libavformat does not recognise that does not look
    like a media container (JSON, CSV, text), pictures (JPEG, PNG: attachments, not
    footage), and files without an audio or video stream (subtitles, data).

    Packets are always hashed in-process (`custody.infra.avmedia`: the digests of
    ``ffmpeg -c copy -f streamhash/framehash``, no process).  `snapshot` chooses the
    metadata snapshot: ``custody/snapshot/v2`` (default) is built in-process too;
    ``custody/snapshot/v1`` runs ffprobe as custody did before, so that a file is
    compared with a v1 record in v1's own terms (docs/spec/media.md §4).

    With `strict` (ingest), a file that libav reports errors for while reading its
    packets (e.g. "partial file" for a truncated MP4) is refused; without it
    (verification), it is measured as far as it goes and the errors are kept in
    `MediaInfo.problems`, so a truncated copy can be classified.

    `name` is what messages call the file (default: `path`); when probing the
    evidence store's copy, pass the original path, whose extension also tells a
    damaged video (InputError) from a file that is not media (None).

    Thread-safe: ingest and verify-bundle call it from several threads at once.

    Raises:
        InputError: the file looks like media but cannot be opened, packet hashing
            fails, or (strict) libav reports errors; the message names the file and
            the reason.
        UsageError: `snapshot` is not a snapshot version.
        CustodyError: PyAV (or, for v1, ffprobe) is not installed.
    """
    if snapshot not in SNAPSHOT_VERSIONS:
        raise UsageError(f"probe: unknown snapshot version {snapshot!r}")
    from custody.infra import avmedia

    shown = name if name is not None else _shown(path)
    if _is_text(path):
        return None
    doc: Mapping[str, Any] | None = None
    if snapshot == SNAPSHOT_V1:
        doc = _probe_json(path, shown)
        if doc is None or not _is_footage(doc):
            return None
    try:
        measured = avmedia.measure(path, snapshot=snapshot == SNAPSHOT_V2)
    except avmedia.OpenFailed as exc:
        reason = _CONTEXT.sub("", exc.reason)
        if doc is not None:
            raise InputError(
                f"{shown}: packet hashing failed: {reason}",
                hint="the file may be truncated or damaged; ingest the original export",
            ) from None
        if _looks_like_media(path, shown):
            raise InputError(
                f"{shown} is not decodable media: {reason}",
                hint="the file may be truncated or damaged; ingest the original export",
            ) from None
        return None
    if doc is None:
        doc = measured.document
        if not _is_footage(doc):
            return None
    problems = measured.problems
    if strict and problems:
        raise InputError(
            f"{shown} is damaged media: {_reason(problems[:1], path, '')}",
            hint="the file may be truncated; ingest the original export",
        )
    try:
        record = MediaRecord(
            snapshot=snapshot_bytes(doc, snapshot),
            framehash=measured.framehash,
            streamhash=measured.streamhash,
        )
    except FormatError as exc:
        raise InputError(f"{shown}: {exc.message}", hint=exc.hint) from None
    tool = ffmpeg_version() if snapshot == SNAPSHOT_V1 else avmedia.library_tool()
    return MediaInfo(record=record, problems=problems, tool=tool)


class Measurements:
    """One file, measured on demand once per snapshot version (`probe` for each).

    A fresh measurement is compared with a recorded one in the recorded snapshot's
    version, so a ``custody/snapshot/v1`` exhibit is never reported "metadata
    changed" only because v2 prints other fields; a file compared with exhibits of
    both versions is measured once for each.  Not thread-safe (one per caller).
    """

    def __init__(self, path: Path, *, strict: bool = False, name: str | None = None) -> None:
        self.path = path
        self.strict = strict
        self.name = name
        self._cache: dict[str, MediaInfo | None] = {}

    def get(self, snapshot: str = SNAPSHOT_V2) -> MediaInfo | None:
        """The file measured with `snapshot` (cached); errors as `probe`'s."""
        if snapshot not in self._cache:
            self._cache[snapshot] = probe(
                self.path, strict=self.strict, name=self.name, snapshot=snapshot
            )
        return self._cache[snapshot]

    def record(self, snapshot: str = SNAPSHOT_V2) -> MediaRecord | None:
        """The media record of `get(snapshot)`, None if not media."""
        info = self.get(snapshot)
        return None if info is None else info.record


def thumbnails(
    path: Path, count: int = 4, width: int = 160, *, name: str | None = None
) -> list[bytes]:
    """Up to `count` JPEG frames of `path`'s footage, evenly spaced, `width` pixels wide.

    Frame i is the first frame at or after the middle of the i-th of `count` equal
    spans of the duration (one frame at the start if the file gives no duration), so
    a reader of a report sees what footage is meant.  The frames come from the first
    video stream that is not cover art, rotated as the file's display matrix says,
    with an even height keeping the aspect ratio; sound-only media gives an empty
    list.  Taken in-process (`custody.infra.avmedia.thumbnails`: one open, a seek
    back to a keyframe and a short decode per frame, libavcodec's mjpeg encoder at
    ffmpeg's ``-q:v 4``): the bytes ``ffmpeg -ss T -i FILE -frames:v 1 -vf
    scale=W:-2 -c:v mjpeg -q:v 4`` writes.  A frame that cannot be produced (e.g. a
    seek past damaged data) is left out.  `name` is what messages call the file
    (default: `path`).  Thread-safe.

    Raises:
        InputError: `count` < 1 or `width` < 2; the file is not media libavformat can
            read; or no frame could be taken (the message names the file and why).
        CustodyError: PyAV is not installed.
    """
    if count < 1 or width < 2:
        raise InputError(f"thumbnails need count >= 1 and width >= 2 (got {count}, {width})")
    from custody.infra import avmedia

    shown = name if name is not None else _shown(path)
    if _is_text(path):
        raise InputError(f"{shown} is not media: it has no frames to show")
    try:
        taken = avmedia.thumbnails(path, count, width)
    except avmedia.OpenFailed as exc:
        if _looks_like_media(path, shown):
            reason = _CONTEXT.sub("", exc.reason)
            raise InputError(
                f"{shown} is not decodable media: {reason}",
                hint="the file may be truncated or damaged; ingest the original export",
            ) from None
        raise InputError(f"{shown} is not media: it has no frames to show") from None
    if not taken.has_video:
        return []
    if not taken.frames:
        reason = _reason(taken.problems, path, "no frame could be decoded")
        raise InputError(f"{shown}: cannot take thumbnails: {reason}")
    return list(taken.frames)


# -- derived clips: trim, redact, transcode (custody.app.derive, docs/derive.md) -------------
#
# The command lines are built with ffmpeg-python (its graph builder escapes filter
# arguments correctly) and run here with subprocess, like everything else in this
# module: input as ``file:<absolute path>`` with ``-protocol_whitelist file``, stdin
# closed, ``-n`` so an existing output is never overwritten.

# Every derived-clip command starts like this; `Rendered.recipe` records it whole.
_DERIVE_PREAMBLE = ("-nostdin", "-hide_banner", "-v", "error", "-n")
# Containers a stream-copy trim can write in the parent's own format.
TRIM_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".3gp", ".mkv", ".mka", ".webm", ".ts", ".mts", ".m2ts", ".avi"}
    | {".flv", ".m4a", ".mp3", ".wav", ".ogg", ".mpg", ".mpeg"}
)
_MOV_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".3gp", ".m4a"})


@dataclass(frozen=True)
class Rendered:
    """An ffmpeg run that made a derived file.

    `args` is the command exactly as run; `recipe` is the same command as one
    shell-quoted line with the input written ``PARENT`` and the output
    ``CHILD<suffix>``, for the log entry (local paths mean nothing elsewhere).
    """

    args: tuple[str, ...]
    recipe: str


def _fs_url(path: Path) -> str:
    return os.fsdecode(_url(path))


def _run_render(stream: Any, src: Path, dst: Path, name: str, what: str) -> Rendered:
    """Compile an ffmpeg-python graph, run it, and return what ran.

    Raises InputError naming `name` and ffmpeg's message if ffmpeg fails.
    """
    import shlex

    compiled: list[str] = stream.compile(cmd=FFMPEG)
    args = (FFMPEG, *_DERIVE_PREAMBLE, *compiled[1:])
    src_url, dst_url = _fs_url(src), _fs_url(dst)
    shown = [
        "PARENT" if a == src_url else f"CHILD{dst.suffix}" if a == dst_url else a for a in args
    ]
    result = _run(list(args), FFMPEG)
    if result.returncode != 0:
        lines = _error_lines(result.stderr)
        line = lines[-1] if lines else f"ffmpeg exited with {result.returncode}"
        for url in (src_url, dst_url):
            line = line.replace(url + ": ", "").replace(url, "the output")
        raise InputError(
            f"{name}: ffmpeg could not {what}: {_CONTEXT.sub('', line)}",
            hint="nothing was recorded; check the parameters against the clip",
        )
    return Rendered(args=args, recipe=shlex.join(shown))


def trim_copy(src: Path, dst: Path, *, cut: str | None, duration: str, name: str) -> Rendered:
    """Write the excerpt of `src` from `cut` for `duration` seconds to `dst`, losslessly.

    Every stream is stream-copied (``-map 0 -c copy``): no packet is re-encoded, so
    the excerpt is a contiguous run of the parent's packets.  `cut` should be the
    decoding time of a keyframe (`video_keyframes`), None to start at the
    beginning (even packets with negative timestamps): the cut is made on the output
    side (``-ss`` after ``-i``), which drops exactly the packets before it, where
    input seeking lands on an index entry or, in MPEG-TS, wherever a bisection
    ends (sometimes a GOP late).  Container tags are kept (``-map_metadata 0``).
    Times are decimal seconds on ffmpeg's timeline for the file (0 at the
    container's start time), as recorded in the derive entry.

    Raises:
        InputError: ffmpeg failed (message names `name` and ffmpeg's reason).
        CustodyError: ffmpeg is not installed.
    """
    import ffmpeg

    inp = ffmpeg.input(_fs_url(src), protocol_whitelist="file")
    options = {"map": "0", "c": "copy", "t": duration, "map_metadata": "0"}
    if cut is not None:
        options["ss"] = cut
    if dst.suffix.lower() in _MOV_SUFFIXES:
        options["movflags"] = "+use_metadata_tags"
    return _run_render(ffmpeg.output(inp, _fs_url(dst), **options), src, dst, name, "trim it")


def video_keyframes(path: Path, *, name: str | None = None) -> list[tuple[Fraction, Fraction]]:
    """(presentation, decoding) time of every keyframe of the first video stream.

    In seconds on ffmpeg's timeline for the file: the stream's timestamps minus
    the container's start time (ffprobe ``format.start_time``), exactly.  Empty if
    the file has no video stream.  A packet without a decoding time gives its
    presentation time for both.

    Raises:
        InputError: ffprobe cannot read the file or prints something unreadable.
        CustodyError: ffprobe is not installed.
    """
    shown = name if name is not None else _shown(path)
    result = _run(
        [
            FFPROBE,
            *("-hide_banner", "-v", "error", "-protocol_whitelist", "file"),
            *("-select_streams", "V:0", "-show_packets"),
            *("-show_entries", "stream=time_base:packet=pts,dts,flags:format=start_time"),
            *("-of", "json", _url(path)),
        ],
        FFPROBE,
    )
    if result.returncode != 0:
        reason = _reason(_error_lines(result.stderr), path, "ffprobe failed")
        raise InputError(f"{shown}: cannot list its keyframes: {reason}")
    try:
        doc = json.loads(result.stdout.decode("utf-8", "replace"))
        streams = doc.get("streams") or []
        if not streams:
            return []
        num, _, den = str(streams[0]["time_base"]).partition("/")
        tb = Fraction(int(num), int(den))
        start = Fraction(str(doc.get("format", {}).get("start_time", "0")))
        out = []
        for packet in doc.get("packets", []):
            if "K" not in str(packet.get("flags", "")) or "pts" not in packet:
                continue
            pts = int(packet["pts"]) * tb - start
            dts = int(packet["dts"]) * tb - start if "dts" in packet else pts
            out.append((pts, dts))
        return out
    except (ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError) as exc:
        raise InputError(f"{shown}: ffprobe printed an unreadable packet list ({exc})") from None


def redact_lossless(
    src: Path,
    dst: Path,
    *,
    box: tuple[int, int, int, int],
    frames: tuple[int, int] | None,
    style: str,
    codec: str,
    pix_fmt: str,
    name: str,
    time_base: Fraction | None = None,
) -> Rendered:
    """Cover `box` (x, y, w, h) of the first video stream in `frames`, losslessly.

    The stream is the first that is not cover art (``V:0``).  `frames` is
    (first, last), inclusive, counting decoded frames from 0 in
    presentation order (the filters' ``n``: a frame number does not depend on how
    ffmpeg offsets timestamps, which varies with the streams mapped); None: every
    frame.  `style` ``box`` fills the box with black (``drawbox``); ``blur``
    box-blurs it (``crop`` + ``boxblur`` + ``overlay``).
    The video is re-encoded with a lossless encoder (`codec` ``libx264`` at
    ``-qp 0``, or ``ffv1``) in the parent's `pix_fmt`, one output frame per input
    frame (``-fps_mode passthrough``) at the same timestamps (the input's time base;
    `time_base`, the parent stream's, as the MP4 track timescale), so every frame the
    filter leaves alone
    decodes to exactly the parent's pixels; audio streams are stream-copied.
    The container follows `dst`'s suffix (Matroska takes any codec; MP4/MOV and
    MPEG-TS take H.264).  Other video, subtitle and data streams are not carried over.

    Raises:
        InputError: ffmpeg failed (message names `name` and ffmpeg's reason).
        CustodyError: ffmpeg is not installed.
    """
    import ffmpeg

    x, y, w, h = box
    inp = ffmpeg.input(_fs_url(src), protocol_whitelist="file")
    when = {} if frames is None else {"enable": f"between(n,{frames[0]},{frames[1]})"}
    video = inp["V:0"]
    if style == "blur":
        split = video.split()
        main, patch = split[0], split[1]
        blurred = patch.crop(x, y, w, h).filter(
            "boxblur", luma_radius="min(w,h)/4", chroma_radius="min(cw,ch)/4", luma_power=2
        )
        video = ffmpeg.overlay(main, blurred, x=x, y=y, format="auto", **when)
    else:
        video = video.drawbox(x, y, w, h, color="black", thickness="fill", **when)
    options = {"qp": "0", "preset": "ultrafast"} if codec == "libx264" else {"level": "3"}
    # Keep every frame's timestamp: encode in the input's time base and, for MP4/MOV,
    # in the parent's track timescale.  Otherwise a phone's variable frame timing is
    # rounded to the muxer's own timescale and the copy is retimed (frame 1 of a real
    # recording moved from 0.185 s to 0.200 s).
    options["enc_time_base:v"] = "-1"
    if dst.suffix.lower() in _MOV_SUFFIXES:
        options["movflags"] = "+use_metadata_tags"  # keep device tags, as a trim does
        if time_base is not None and time_base.numerator == 1:
            options["video_track_timescale"] = str(time_base.denominator)
    out = ffmpeg.output(
        video,
        inp["a?"],
        _fs_url(dst),
        vcodec=codec,
        pix_fmt=pix_fmt,
        acodec="copy",
        fps_mode="passthrough",
        map_metadata="0",
        **options,
    )
    return _run_render(out, src, dst, name, "redact it")


def transcode(
    src: Path,
    dst: Path,
    *,
    codec: str,
    crf: int,
    audio: tuple[str, ...],
    pix_fmt: str,
    name: str,
) -> Rendered:
    """Re-encode the first video stream (not cover art) of `src` with `codec` at `crf` into `dst`.

    Lossy.  One output frame per input frame (``-fps_mode passthrough``) in
    `pix_fmt`; `audio` is ``("copy",)`` (stream-copy every audio stream) or
    ``(encoder, bitrate)``; container tags are kept; the container follows
    `dst`'s suffix (MP4 gets ``+faststart``, H.265 the ``hvc1`` tag players expect).

    Raises:
        InputError: ffmpeg failed (message names `name` and ffmpeg's reason).
        CustodyError: ffmpeg is not installed.
    """
    import ffmpeg

    inp = ffmpeg.input(_fs_url(src), protocol_whitelist="file")
    options: dict[str, str] = {
        "c:v": codec,
        "crf": str(crf),
        "pix_fmt": pix_fmt,
        "fps_mode": "passthrough",
        "map_metadata": "0",
        "c:a": audio[0],
    }
    if len(audio) > 1:
        options["b:a"] = audio[1]
    if codec == "libvpx-vp9":
        options["b:v"] = "0"  # constant quality: crf alone
    if codec == "libx265":
        options["tag:v"] = "hvc1"
    if dst.suffix.lower() in _MOV_SUFFIXES:
        options["movflags"] = "+faststart+use_metadata_tags"
    out = ffmpeg.output(inp["V:0"], inp["a?"], _fs_url(dst), **options)
    return _run_render(out, src, dst, name, "transcode it")


@functools.cache
def encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg has (``ffmpeg -encoders``).

    Raises:
        CustodyError: ffmpeg is not installed or does not list its encoders.
    """
    result = _run([FFMPEG, "-hide_banner", "-encoders"], FFMPEG)
    if result.returncode != 0:
        raise CustodyError("ffmpeg did not list its encoders", hint="check the ffmpeg install")
    names = set()
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split()
        # " V....D libx264   libx264 H.264 ...": six capability letters, then the name.
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and parts[0] != "------":
            names.add(parts[1])
    return frozenset(names)


def decoded_frames(
    path: Path,
    *,
    box: tuple[int, int, int, int],
    frames: tuple[int, int] | None,
    name: str | None = None,
) -> PacketList:
    """SHA-256 of the decoded frames of `path`'s first video stream, as a redaction sees them.

    One ``framehash`` run over the decoded pictures (raw pixels in the decoder's
    pixel format), one line per decoded frame (``-fps_mode passthrough``, so line
    i is the filters' frame ``n`` = i), two streams:

    * stream 0: every frame, with `box` (x, y, w, h) filled black in the frames
      numbered `frames` (first, last; inclusive; None: in every frame): two files
      whose stream 0 agree are pixel-identical outside those frames, and outside
      the box within them;
    * stream 1: the pixels inside `box` of every frame (``crop``), to tell which
      frames the redaction changed.

    Timestamps are the container's (``-copyts``, in the input stream's time base:
    ``-enc_time_base -1``).  One full-frame hash per frame: about 1.4 GB of SHA-256
    per minute of 720p at 30 fps.

    Raises:
        InputError: the file cannot be decoded (message names it and the reason).
        CustodyError: ffmpeg is not installed.
    """
    import ffmpeg

    from custody.media.compare import parse_framehash

    shown = name if name is not None else _shown(path)
    inp = ffmpeg.input(_fs_url(path), protocol_whitelist="file", copyts=None)
    split = inp["V:0"].split()
    x, y, w, h = box
    when = {} if frames is None else {"enable": f"between(n,{frames[0]},{frames[1]})"}
    masked = split[0].drawbox(x, y, w, h, color="black", thickness="fill", **when)
    inside = split[1].crop(x, y, w, h)
    out = ffmpeg.output(
        masked,
        inside,
        "pipe:1",
        format="framehash",
        hash="sha256",
        fps_mode="passthrough",
        enc_time_base="-1",
    )
    compiled: list[str] = out.compile(cmd=FFMPEG)
    # No "-n": the output is a pipe.
    result = _run([FFMPEG, *_DERIVE_PREAMBLE[:-1], *compiled[1:]], FFMPEG)
    if result.returncode != 0:
        fallback = f"ffmpeg exited with {result.returncode}"
        reason = _reason(_error_lines(result.stderr), path, fallback)
        raise InputError(f"{shown}: cannot decode its video: {reason}")
    try:
        return parse_framehash(result.stdout)
    except FormatError as exc:
        raise InputError(f"{shown}: decoded frame list unreadable: {exc.message}") from None
