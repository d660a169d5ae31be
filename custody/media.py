"""Media probing and packet hashing: the only module that runs ffprobe and ffmpeg.

For one file, `probe` runs exactly two processes (docs/spec/media.md):

1. ``ffprobe -show_format -show_streams -of json`` -> the canonical metadata
   snapshot (``custody/snapshot/v1``) and its digest;
2. one ``ffmpeg -map 0 -c copy`` with two outputs, ``streamhash`` (SHA-256 over
   each stream's packets) and ``framehash`` (SHA-256 of every packet), -> the
   per-stream digests, the per-packet list and the content digest.

Both are called directly with `subprocess` (not ffmpeg-python's helpers) because
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
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.core.compare import MediaRecord, PacketList
from custody.core.digest import StreamDigest, snapshot_bytes
from custody.errors import CustodyError, FormatError, InputError

__all__ = ["SIDECAR_KINDS", "MediaInfo", "ffmpeg_version", "probe"]

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
_MEDIA_EXTENSIONS = frozenset(_MEDIA_EXTENSION_WORDS.split())
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
    derived from them (see `custody.core.compare.MediaRecord`); `problems` are the
    error lines ffmpeg printed (empty for a sound file; a truncated file lists
    e.g. "partial file"); `tool` is the ffmpeg version that measured it, to record
    next to the digests (another ffprobe version may print other fields).
    """

    record: MediaRecord
    problems: tuple[str, ...]
    tool: str

    @property
    def snapshot(self) -> bytes:
        """The canonical snapshot bytes (``custody/snapshot/v1``), stored as the probe sidecar."""
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
    if Path(name).suffix.lower() in _MEDIA_EXTENSIONS:
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


def _probe_json(path: Path, name: str) -> dict[str, Any] | None:
    """ffprobe's document, or None if ffprobe does not recognise the file."""
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


class _PacketHashing:
    """One ffmpeg run with two outputs: streamhash to an extra pipe, framehash to stdout.

    Started before ffprobe runs, so the two processes overlap (a short clip then
    costs one process start-up of wall time, not two); `cancel` if the file turns
    out not to be media.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        read_end, write_end = os.pipe()
        self._streamhash = bytearray()
        args: list[bytes | str] = [
            FFMPEG,
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-protocol_whitelist",
            "file",
            "-i",
            _url(path),
            # Output 1: one SHA-256 per stream over its packets, to the extra pipe.
            *("-map", "0", "-c", "copy", "-f", "streamhash", "-hash", "sha256"),
            f"pipe:{write_end}",
            # Output 2: one line per packet, to stdout.
            *("-map", "0", "-c", "copy", "-f", "framehash", "-hash", "sha256"),
            "pipe:1",
        ]
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_end,),
            )
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            if isinstance(exc, FileNotFoundError):
                raise CustodyError(
                    "ffmpeg is not installed (needed to hash media packets)",
                    hint="install ffmpeg, e.g. `apt-get install ffmpeg`",
                ) from None
            raise CustodyError(f"cannot run ffmpeg ({exc.strerror})") from None
        os.close(write_end)  # the child holds its copy; EOF comes when it exits
        self._reader = threading.Thread(
            target=self._drain, args=(read_end,), name="custody-streamhash", daemon=True
        )
        self._reader.start()

    def _drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as f:
            self._streamhash.extend(f.read())

    def cancel(self) -> None:
        """Stop ffmpeg and reap it."""
        self._proc.kill()
        self._proc.communicate()
        self._reader.join()

    def finish(self, name: str) -> tuple[bytes, bytes, tuple[str, ...]]:
        """(framehash bytes, streamhash bytes, error lines); InputError if ffmpeg failed."""
        try:
            stdout, stderr = self._proc.communicate()
        except BaseException:
            self.cancel()
            raise
        self._reader.join()
        if self._proc.returncode != 0:
            reason = _reason(
                _error_lines(stderr), self._path, f"ffmpeg exited with {self._proc.returncode}"
            )
            raise InputError(
                f"{name}: packet hashing failed: {reason}",
                hint="the file may be truncated or damaged; ingest the original export",
            )
        return stdout, bytes(self._streamhash), _error_lines(stderr)


def probe(path: Path, *, strict: bool = True, name: str | None = None) -> MediaInfo | None:
    """Measure a file's metadata and content, or None if it is not media.

    Not media (None): anything ffprobe does not recognise that does not look like
    a media container (JSON, CSV, text), pictures (JPEG, PNG: attachments, not
    footage), and files without an audio or video stream (subtitles, data).

    With `strict` (ingest), a file that ffmpeg reports errors for while reading
    its packets (e.g. "partial file" for a truncated MP4) is refused; without it
    (verification), it is measured as far as it goes and the errors are kept in
    `MediaInfo.problems`, so a truncated copy can be classified.

    `name` is what messages call the file (default: `path`); when probing the
    evidence store's copy, pass the original path, whose extension also tells a
    damaged video (InputError) from a file that is not media (None).

    Raises:
        InputError: the file looks like media but ffprobe rejects it, packet
            hashing fails, or (strict) ffmpeg reports errors; the message names
            the file and the reason.
        CustodyError: ffmpeg/ffprobe are not installed.
    """
    shown = name if name is not None else _shown(path)
    hashing = _PacketHashing(path)
    try:
        doc = _probe_json(path, shown)
        footage = doc is not None and _is_footage(doc)
    except BaseException:
        hashing.cancel()
        raise
    if doc is None or not footage:
        hashing.cancel()
        return None
    framehash, streamhash, problems = hashing.finish(shown)
    if strict and problems:
        raise InputError(
            f"{shown} is damaged media: {_reason(problems[:1], path, '')}",
            hint="the file may be truncated; ingest the original export",
        )
    try:
        record = MediaRecord(
            snapshot=snapshot_bytes(doc), framehash=framehash, streamhash=streamhash
        )
    except FormatError as exc:
        raise InputError(f"{shown}: {exc.message}", hint=exc.hint) from None
    return MediaInfo(record=record, problems=problems, tool=ffmpeg_version())
