"""Digests: file identity, metadata identity and content identity (docs/spec/media.md).

Three kinds of hash, each for its job (see ../shared/DESIGN.md):

- **File identity**: BLAKE3 of the exact bytes (plus SHA-256 where a court asks for
  it), computed by `Hasher` over chunks the caller reads.  The core never opens a
  file: the evidence store (`custody.infra.vault`) does the I/O and feeds chunks in.
- **Metadata identity**: `snapshot_bytes` turns ffprobe's JSON into the canonical
  snapshot ``custody/snapshot/v1`` and `metadata_digest` hashes those exact bytes.
- **Content identity**: `content_digest` summarises the per-stream packet hashes
  (``custody/content/v1``).

Everything here is pure: no subprocess, no clock, no database.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import blake3

from custody.errors import FormatError, UsageError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CHUNK_SIZE",
    "CONTENT_VERSION",
    "SNAPSHOT_V1",
    "SNAPSHOT_V2",
    "SNAPSHOT_VERSION",
    "SNAPSHOT_VERSIONS",
    "FileDigests",
    "Hasher",
    "StreamDigest",
    "canonical_json",
    "content_digest",
    "hash_bytes",
    "hash_stream",
    "metadata_digest",
    "parse_snapshot",
    "snapshot_bytes",
]

# 16 MiB: large enough that BLAKE3's multithreaded mode splits the work across every
# core and per-call overhead vanishes, small enough that a few buffers in flight stay
# far below the 150 MB memory budget.
CHUNK_SIZE = 16 * 1024 * 1024

SNAPSHOT_V1 = "custody/snapshot/v1"  # ffprobe's JSON (docs/spec/media.md §4.1)
SNAPSHOT_V2 = "custody/snapshot/v2"  # measured in-process with libavformat (§4.2)
SNAPSHOT_VERSION = SNAPSHOT_V2  # what custody writes now
SNAPSHOT_VERSIONS = (SNAPSHOT_V1, SNAPSHOT_V2)
CONTENT_VERSION = "custody/content/v1"

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileDigests:
    """The identity of a file's exact bytes: its size, BLAKE3 and optional SHA-256."""

    size: int
    blake3: bytes
    sha256: bytes | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            raise FormatError(f"file size must not be negative, got {self.size}")
        if len(self.blake3) != 32:
            raise FormatError(f"BLAKE3 digest must be 32 bytes, got {len(self.blake3)}")
        if self.sha256 is not None and len(self.sha256) != 32:
            raise FormatError(f"SHA-256 digest must be 32 bytes, got {len(self.sha256)}")

    @property
    def blake3_hex(self) -> str:
        """The BLAKE3 digest as 64 lowercase hex digits (the evidence store's object name)."""
        return self.blake3.hex()

    @property
    def sha256_hex(self) -> str | None:
        """The SHA-256 digest as 64 lowercase hex digits, or None if it was not computed."""
        return None if self.sha256 is None else self.sha256.hex()


class Hasher:
    """Streaming BLAKE3 (and optionally SHA-256) over chunks of a file.

    Feed chunks in file order with `update`; `finish` returns the digests of
    everything fed so far (it may be called again after more updates).
    BLAKE3 runs multithreaded (`blake3.AUTO`): the binding releases the GIL and
    splits chunks of a few MiB across every core, which is how custody keeps up
    with ``b3sum``.  Feed large chunks (`CHUNK_SIZE`) for that to pay off.
    """

    def __init__(self, *, sha256: bool = False) -> None:
        self._blake3 = blake3.blake3(max_threads=blake3.blake3.AUTO)
        self._sha256 = hashlib.sha256() if sha256 else None
        self._size = 0

    def update(self, chunk: Buffer) -> None:
        """Add the next chunk of the file (bytes, bytearray, memoryview, mmap...)."""
        with memoryview(chunk) as view:
            # A memoryview of any buffer: no copy, and .nbytes counts bytes even for
            # views whose items are wider than one byte.
            self._blake3.update(view)
            if self._sha256 is not None:
                self._sha256.update(view)
            self._size += view.nbytes

    @property
    def size(self) -> int:
        """The number of bytes fed so far."""
        return self._size

    def finish(self) -> FileDigests:
        """The digests of everything fed so far."""
        return FileDigests(
            size=self._size,
            blake3=self._blake3.digest(),
            sha256=None if self._sha256 is None else self._sha256.digest(),
        )


class Readable(Protocol):
    """A binary file-like object that fills a caller's buffer (`io.RawIOBase`, `BufferedReader`)."""

    def readinto(self, buffer: Any, /) -> int | None: ...


def hash_bytes(data: Buffer, *, sha256: bool = False) -> FileDigests:
    """The digests of `data` held in memory."""
    hasher = Hasher(sha256=sha256)
    hasher.update(data)
    return hasher.finish()


def hash_stream(
    readable: Readable,
    *,
    sha256: bool = False,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> FileDigests:
    """Hash everything `readable` yields until end of file.

    One reused buffer of `chunk_size` bytes is filled with ``readinto``, so memory
    does not grow with the file.  `progress` (if given) is called with the number of
    bytes just hashed after each chunk; whatever it raises propagates (that is how a
    caller cancels).  The caller opens and closes the file; `OSError` from reading
    propagates for the caller to turn into an `InputError` naming the path.
    (`custody.infra.vault.hash_file` is the faster path for files on disk: it maps them.)

    Raises:
        UsageError: `chunk_size` is not positive.
    """
    if chunk_size <= 0:
        raise UsageError(f"hash_stream: chunk_size must be positive, got {chunk_size}")
    hasher = Hasher(sha256=sha256)
    buffer = bytearray(chunk_size)
    with memoryview(buffer) as view:
        while True:
            n = readable.readinto(view)
            if not n:
                break
            hasher.update(view[:n])
            if progress is not None:
                progress(n)
    return hasher.finish()


# ---------------------------------------------------------------------------------
# Metadata identity: the canonical ffprobe snapshot.


def canonical_json(value: object) -> bytes:
    """Canonical JSON (RFC 8785, JCS) of a value made of dicts, lists, str, int, bool, None.

    Keys sorted by their UTF-16 code units, no whitespace, strings escaped as in
    JCS (only ``"``, ``\\`` and control characters; ``\\b \\t \\n \\f \\r`` short forms,
    others ``\\u00xx``), UTF-8.  ffprobe prints every number as an integer (all
    fractional values are strings), so a float here means the input is not an
    ffprobe document: FormatError, rather than inventing a float encoding.

    Raises:
        FormatError: a float, a non-string key, or a type JSON cannot carry.
    """
    parts: list[str] = []
    _encode(value, parts, "$")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (from a "\ud800" escape) has no UTF-8 encoding.
        raise FormatError(
            "snapshot: a string holds a lone UTF-16 surrogate and cannot be encoded as UTF-8"
        ) from exc


def _encode(value: object, out: list[str], where: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        # Python's escaping with ensure_ascii=False is exactly JCS's: short forms for
        # \b \t \n \f \r, lowercase \u00xx for other controls, nothing else escaped.
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, f"{where}[{i}]")
        out.append("]")
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        for key in keys:
            if not isinstance(key, str):
                raise FormatError(f"snapshot: key {key!r} at {where} is not a string")
        out.append("{")
        for i, key in enumerate(sorted(keys, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out, f"{where}.{key}")
        out.append("}")
    elif isinstance(value, float):
        raise FormatError(
            f"snapshot: {where} is a fractional number ({value!r}); "
            "ffprobe prints those as strings",
            hint="the snapshot must come from `ffprobe -of json`",
        )
    else:
        raise FormatError(
            f"snapshot: {where} has a value JSON cannot carry ({type(value).__name__})"
        )


def snapshot_bytes(ffprobe_output: Mapping[str, Any], version: str = SNAPSHOT_V1) -> bytes:
    """The canonical metadata snapshot of one file (`version`, default ``custody/snapshot/v1``).

    `ffprobe_output` is the parsed JSON of ``ffprobe -show_format -show_streams -of
    json`` (v1), or the document `custody.infra.avmedia` builds in-process with
    ffprobe's key names (v2).  The snapshot keeps ``format`` and ``streams`` with
    every field given, except ``format.filename`` (the path it was probed at, which
    says nothing about the file), and adds ``"version": <version>``; then
    `canonical_json`.  See docs/spec/media.md §4.

    Raises:
        FormatError: the document is not ffprobe's (no format object, streams not a
            list), or `version` is not a snapshot version.
    """
    if version not in SNAPSHOT_VERSIONS:
        raise FormatError(f"snapshot: unknown version {version!r}")
    fmt = ffprobe_output.get("format")
    if not isinstance(fmt, Mapping):
        raise FormatError("ffprobe output: no `format` object", hint="probe with -show_format")
    streams = ffprobe_output.get("streams", [])
    if not isinstance(streams, list) or not all(isinstance(s, Mapping) for s in streams):
        raise FormatError("ffprobe output: `streams` is not a list of objects")
    fmt = {k: v for k, v in fmt.items() if k != "filename"}
    return canonical_json({"format": fmt, "streams": streams, "version": version})


def parse_snapshot(data: bytes) -> dict[str, Any]:
    """Parse snapshot bytes (e.g. a stored ``probe`` sidecar) back into a dict.

    Parse, don't validate: the bytes must be exactly canonical and carry the
    version marker, so whatever parses here hashes to the digest it was stored under.

    Raises:
        FormatError: not UTF-8 JSON, a number of more than 4300 digits, nesting deeper
            than Python's recursion limit, not canonical, or not a ``custody/snapshot/v1``
            or ``custody/snapshot/v2``.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"snapshot: not UTF-8 JSON ({exc})") from exc
    except ValueError:
        # json raises a plain ValueError for an integer beyond int()'s 4300-digit limit;
        # ffprobe never prints one.
        raise FormatError("snapshot: a number has more than 4300 digits") from None
    except RecursionError:
        raise FormatError("snapshot: JSON nested too deeply to be ffprobe's") from None
    if not isinstance(value, dict):
        raise FormatError("snapshot: not a JSON object")
    version = value.get("version")
    if version not in SNAPSHOT_VERSIONS:
        raise FormatError(
            f"snapshot: version is {version!r}, expected one of {', '.join(SNAPSHOT_VERSIONS)}",
            hint="this custody understands custody/snapshot/v1 and custody/snapshot/v2",
        )
    if not isinstance(value.get("format"), dict) or not isinstance(value.get("streams"), list):
        raise FormatError("snapshot: needs a `format` object and a `streams` list")
    try:
        canonical = canonical_json(value)
    except RecursionError:
        # The encoder recurses in Python; json's C decoder counts its depth apart from
        # that (from Python 3.12 against a separate, higher limit), so a nesting that
        # json.loads accepted can still be too deep to encode.
        raise FormatError("snapshot: JSON nested too deeply to be ffprobe's") from None
    if canonical != data:
        raise FormatError(
            "snapshot: bytes are not in canonical form",
            hint="a snapshot is stored exactly as custody wrote it; it was altered",
        )
    if version == SNAPSHOT_V2:
        # v2 is custody's own document: exactly these members, streams as objects.
        if set(value) != {"format", "streams", "version"}:
            extra = sorted(set(value) - {"format", "streams", "version"})
            raise FormatError(f"snapshot: unexpected top-level member {extra[0]!r}")
        if not all(isinstance(s, dict) for s in value["streams"]):
            raise FormatError("snapshot: `streams` must be a list of objects")
    return value


def metadata_digest(snapshot: bytes) -> str:
    """The metadata digest: BLAKE3 of the exact snapshot bytes, 64 lowercase hex digits."""
    return blake3.blake3(snapshot).hexdigest()


# ---------------------------------------------------------------------------------
# Content identity.

_CODEC_TYPES = ("video", "audio", "subtitle", "data", "attachment")


@dataclass(frozen=True)
class StreamDigest:
    """The content identity of one stream.

    `digest` is ffmpeg's ``streamhash`` SHA-256 over the stream's packet payloads
    in order (hex); `packets` how many packets there are; `extradata` the SHA-256
    of the codec configuration (e.g. H.264 SPS/PPS) from ``framehash``, or None if
    the stream has none.
    """

    index: int
    codec_type: str
    codec_name: str
    packets: int
    digest: str
    extradata: str | None = None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise FormatError(f"stream index must not be negative, got {self.index}")
        if self.codec_type not in _CODEC_TYPES:
            raise FormatError(f"stream {self.index}: unknown codec type {self.codec_type!r}")
        if not self.codec_name or any(c.isspace() for c in self.codec_name):
            raise FormatError(f"stream {self.index}: bad codec name {self.codec_name!r}")
        if self.packets < 0:
            raise FormatError(f"stream {self.index}: negative packet count")
        if not _HEX64.fullmatch(self.digest):
            raise FormatError(f"stream {self.index}: digest is not 64 lowercase hex digits")
        if self.extradata is not None and not _HEX64.fullmatch(self.extradata):
            raise FormatError(f"stream {self.index}: extradata hash is not 64 lowercase hex digits")


def content_digest(streams: Sequence[StreamDigest]) -> str:
    """The content digest of a file (``custody/content/v1``), 64 lowercase hex digits.

    BLAKE3 over ``custody/content/v1\\n`` followed by one line per stream in index
    order: ``<index> <codec_type> <packets> <streamhash hex> <extradata hex or ->\\n``.
    Codec names are left out on purpose: they are ffmpeg's labels, not content.

    Raises:
        FormatError: stream indices are not 0, 1, 2, ... in order.
    """
    lines = [CONTENT_VERSION + "\n"]
    for position, stream in enumerate(streams):
        if stream.index != position:
            raise FormatError(
                f"content digest: stream {position} has index {stream.index}; "
                "streams must be listed 0, 1, 2, ... in order"
            )
        lines.append(
            f"{stream.index} {stream.codec_type} {stream.packets} {stream.digest} "
            f"{stream.extradata or '-'}\n"
        )
    return blake3.blake3("".join(lines).encode("ascii")).hexdigest()
