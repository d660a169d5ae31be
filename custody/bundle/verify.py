"""Defence bundles, `custody/bundle/v1`: formats and offline verification (pure).

docs/spec/bundle.md is the byte-level description.  This module holds the
formats (the manifest, the signed bundle statement, the consistency-proof file)
and `verify_bundle`, which checks a bundle against keys trusted out of band:
the statement and checkpoint signatures, every inclusion proof, every entry's
signatures (party keys from the bundle's `key` entries), the custody rules
(`custody.model.rules`), the consistency proofs, the checkpoints the verifier saw
before (`custody.tlog.witness.check_extends`), the sidecars against the entries'
digests, the lineage of derived items from their packet lists
(`custody.media.lineage`) and the media against their BLAKE3.

Pure: the bundle's files come through a `BundleSource` and media re-probing
through a `MediaProber`, both supplied by the caller (`custody.bundle.reader`
reads folders and ZIP archives safely and runs ffprobe); nothing here touches a
database, a subprocess or a clock.

Verification raises.  `verify_bundle` checks everything it can, collects each
failure (what, where, why) into a `BundleReport`, and raises
`BundleVerificationError` carrying that report if anything failed; the error's
one-line message is the first failure.  It returns the report only when the
bundle verified.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from custody.bundle.timestamps import (
    MAX_TOKEN,
    EntryTime,
    Token,
    VerifiedStamp,
    check_times,
    load_certificates,
    timestamp_size,
    verify_token,
)
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    NotFoundError,
    VerificationError,
)
from custody.media.compare import (
    MediaRecord,
    PacketList,
    Record,
    classify,
    diff_metadata,
    is_contiguous_run,
)
from custody.media.digest import FileDigests
from custody.media.lineage import derive_params, prove_audio_copied, prove_trim, trim_range
from custody.model.describe import signed_with_shared_key
from custody.model.entry import MAX_ENTRY_BYTES, SignedEntry, parse_time
from custody.model.parties import EntryError, Parties, check_entry
from custody.model.rules import Chain
from custody.model.state import EmergencyState, MemoryState
from custody.model.timeline import Event, Keeping, named_parties
from custody.model.times import Disorder, find_disorder
from custody.model.types import Derive, Disposal, Handoff, Ingest, KeyEvent
from custody.tlog.checkpoint import Checkpoint, open_checkpoint
from custody.tlog.merkle import HASH_SIZE, ProofError, leaf_hash, verify_consistency
from custody.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Note,
    SignatureError,
    Signer,
    UnverifiedNoteError,
    VerifierKey,
    open_note,
    sign_note,
)
from custody.tlog.tlogproof import TlogProof, verify_tlog_proof
from custody.tlog.witness import Extension, ForkError, check_extends

__all__ = [
    "BUNDLE_V1",
    "CHECKPOINT",
    "MANIFEST",
    "STATEMENT",
    "STATEMENT_V1",
    "VERIFY_MD",
    "BundleReport",
    "BundleSource",
    "BundleVerificationError",
    "ConsistencyFile",
    "Disposed",
    "Emergency",
    "Failure",
    "FileInfo",
    "ItemReport",
    "Manifest",
    "ManifestEntry",
    "ManifestItem",
    "ManifestParty",
    "MediaProber",
    "Policy",
    "PolicyCheck",
    "Statement",
    "Trust",
    "UnsafeBundleError",
    "check_bundle_path",
    "consistency_path",
    "cosigner_names",
    "entry_path",
    "is_litter",
    "parties_needed",
    "proof_path",
    "select_entries",
    "sidecar_path",
    "verify_bundle",
]

BUNDLE_V1 = "custody/bundle/v1"
STATEMENT_V1 = "custody/bundle-statement/v1"

MANIFEST = "MANIFEST.json"
STATEMENT = "statement.note"
CHECKPOINT = "checkpoint.note"
VERIFY_MD = "VERIFY.md"
SIDECAR_KINDS = ("probe", "framehash", "streamhash")

# Read limits (docs/spec/bundle.md §9): what a legitimate file can weigh.
MAX_MEMBERS = 200_000
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20
MAX_MANIFEST = 256 << 20
MAX_SMALL = 1 << 20
MAX_SIDECAR = 1 << 30

_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
# The digits of 2^64-1: a longer size or index is out of range whatever its digits, and
# must be refused before int(), which refuses more than 4300 digits with ValueError.
_MAX_DIGITS = 20
_ENTRY_FILE = re.compile(r"entries/(0|[1-9][0-9]*)\.entry")
_PROOF_FILE = re.compile(r"proofs/(0|[1-9][0-9]*)\.tlog-proof")
_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_HINT_REEXPORT = "ask the exporting agency for a fresh copy of the bundle, and keep this one"


class UnsafeBundleError(VerificationError):
    """A bundle is built to attack its reader: a path outside it, a link, a zip bomb.

    An export never writes such a bundle, so this is a verification failure (exit 1).
    """


def _short(h: str | bytes) -> str:
    text = h.hex() if isinstance(h, bytes) else h
    return text[:16] + "…"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64_hash(text: str, what: str) -> bytes:
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise FormatError(f"{what} is not base64") from None
    if len(raw) != HASH_SIZE or _b64(raw) != text:
        raise FormatError(f"{what} is not canonical base64 of 32 bytes")
    return raw


# ---------------------------------------------------------------------------------
# Paths


def check_bundle_path(name: str) -> str:
    """Return `name` if it may be a path inside a bundle (spec §2), else raise.

    Raises UnsafeBundleError naming what is wrong: an absolute path, a `..`
    component, a backslash, or a name custody never writes.
    """
    shown = name[:120]
    if not name or len(name.encode("utf-8", "replace")) > 512:
        raise UnsafeBundleError(f"bundle member {shown!r} has an empty or over-long name")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise UnsafeBundleError(
            f"bundle member {shown!r} is an absolute path: refusing to read it",
            hint="a bundle holds relative paths only; this one was made to attack its reader",
        )
    if "\\" in name:
        raise UnsafeBundleError(f"bundle member {shown!r} contains a backslash: refusing it")
    parts = name.split("/")
    if any(p == ".." for p in parts):
        raise UnsafeBundleError(
            f"bundle member {shown!r} climbs out of the bundle ('..'): refusing it",
            hint="a bundle holds relative paths only; this one was made to attack its reader",
        )
    if len(parts) > 8 or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise UnsafeBundleError(
            f"bundle member {shown!r} is not a name custody writes in a bundle: refusing it"
        )
    return name


def is_litter(name: str) -> bool:
    """Operating-system litter that a verifier ignores (.DS_Store, __MACOSX/...)."""
    parts = name.split("/")
    if ".." in parts or name.startswith("/") or "\\" in name:
        return False
    return parts[0] == "__MACOSX" or parts[-1] in _LITTER


def entry_path(index: int) -> str:
    return f"entries/{index}.entry"


def proof_path(index: int) -> str:
    return f"proofs/{index}.tlog-proof"


def consistency_path(old_size: int) -> str:
    return f"consistency/{old_size}.json"


def sidecar_path(item: str, kind: str) -> str:
    return f"items/{item}/{kind}"


# The media folder's checksum files (spec §2.2): `b3sum -c B3SUMS` and
# `sha256sum -c SHA256SUMS`, run inside media/, check every media file with no custody.
MEDIA_DIR = "media/"
B3SUMS = MEDIA_DIR + "B3SUMS"
SHA256SUMS = MEDIA_DIR + "SHA256SUMS"
SUMS_FILES = (B3SUMS, SHA256SUMS)
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  ([A-Za-z0-9][A-Za-z0-9._-]{0,127})")


def sums_text(digests: Iterable[tuple[str, str]]) -> bytes:
    """A b3sum/sha256sum check file: ``<hex>  <name>`` per (media path, hex digest),
    names relative to media/, sorted by name, each line ending in a newline."""
    lines = sorted((path.removeprefix(MEDIA_DIR), hex_) for path, hex_ in digests)
    return "".join(f"{hex_}  {name}\n" for name, hex_ in lines).encode("ascii")


def parse_sums(data: bytes, where: str) -> dict[str, str]:
    """media path -> hex digest of a check file custody wrote (`sums_text`).

    Raises FormatError naming the line for anything else: another layout, an
    escaped name, a name given twice."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where} is not ASCII text: {exc.reason}") from exc
    if text and not text.endswith("\n"):
        raise FormatError(f"{where}: the last line has no newline")
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = _SUMS_LINE.fullmatch(line)
        if m is None:
            raise FormatError(
                f"{where} line {number} is not '<64 hex digits>  <file name>': {line[:80]!r}"
            )
        path = MEDIA_DIR + m.group(2)
        if path in out:
            raise FormatError(f"{where} line {number} names {m.group(2)} a second time")
        out[path] = m.group(1)
    return out


# ---------------------------------------------------------------------------------
# Strict JSON


def _reject_constant(name: str) -> Any:
    raise FormatError(f"JSON holds {name}, which custody never writes")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"JSON object has the key {key!r} twice")
        out[key] = value
    return out


def load_json(data: bytes, where: str) -> dict[str, Any]:
    """Parse a JSON object strictly (UTF-8, no duplicate keys, no NaN).

    Raises FormatError naming `where`: not UTF-8 JSON, nested deeper than Python's
    recursion limit, a number of more than 4300 digits, a duplicate key, NaN or
    Infinity, or not an object.
    """
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
        )
    except FormatError as exc:
        raise FormatError(f"{where}: {exc.message}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{where} is not valid UTF-8 JSON: {exc}") from None
    except ValueError:
        # json raises a plain ValueError (not JSONDecodeError) for an integer beyond
        # int()'s 4300-digit limit; no number custody writes comes near it.
        raise FormatError(
            f"{where} is not valid UTF-8 JSON: a number has more than 4300 digits"
        ) from None
    if not isinstance(value, dict):
        raise FormatError(f"{where} is not a JSON object")
    return value


def _field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise FormatError(f"{where} has no '{key}' field")
    return obj[key]


def _str(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(key) if optional else _field(obj, key, where)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise FormatError(f"{where}: '{key}' is not a string")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(key) if optional else _field(obj, key, where)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{where}: '{key}' is not a non-negative integer")
    return value


def _hex64(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = _str(obj, key, where, optional=optional)
    if value is not None and not _HEX64.fullmatch(value):
        raise FormatError(f"{where}: '{key}' is not 64 lower-case hex digits")
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = _field(obj, key, where)
    if not isinstance(value, list):
        raise FormatError(f"{where}: '{key}' is not a list")
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{where} is not a JSON object")
    return value


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{where} is not a path")
    try:
        return check_bundle_path(value)
    except UnsafeBundleError as exc:
        raise FormatError(f"{where}: {exc.message}") from None


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------
# The consistency-proof file (spec §5)


@dataclass(frozen=True)
class ConsistencyFile:
    """An RFC 9162 consistency proof between two checkpoints of one log (spec §5).

    The JSON that `custody log consistency OLD NEW --json` prints, plus the old
    signed checkpoint (optional: the witness does not need it).
    """

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: tuple[bytes, ...]
    old_checkpoint: bytes | None = None

    def to_json(self) -> bytes:
        obj: dict[str, Any] = {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": _b64(self.old_root),
            "new_root": _b64(self.new_root),
            "proof": [_b64(h) for h in self.proof],
        }
        if self.old_checkpoint is not None:
            obj["old_checkpoint"] = self.old_checkpoint.decode("utf-8")
        return _dump(obj)

    @classmethod
    def parse(cls, data: bytes, where: str = "consistency proof") -> ConsistencyFile:
        """Parse the JSON; FormatError naming the field that is wrong."""
        obj = load_json(data, where)
        old_size = _int(obj, "old_size", where)
        new_size = _int(obj, "new_size", where)
        old_root = _unb64_hash(_str(obj, "old_root", where), f"{where}: old_root")
        new_root = _unb64_hash(_str(obj, "new_root", where), f"{where}: new_root")
        hashes = _list(obj, "proof", where)
        if len(hashes) > 128:
            raise FormatError(f"{where}: 'proof' has {len(hashes)} hashes; at most 128 possible")
        proof = []
        for n, h in enumerate(hashes, 1):
            if not isinstance(h, str):
                raise FormatError(f"{where}: proof hash {n} is not a string")
            proof.append(_unb64_hash(h, f"{where}: proof hash {n}"))
        old_cp = _str(obj, "old_checkpoint", where, optional=True)
        return cls(
            old_size,
            new_size,
            old_root,
            new_root,
            tuple(proof),
            None if old_cp is None else old_cp.encode("utf-8"),
        )


# ---------------------------------------------------------------------------------
# The bundle statement (spec §4)


@dataclass(frozen=True)
class Statement:
    """The text of `statement.note`: the log's list of what the bundle holds.

    The constructor enforces the format; `text()` is canonical and `parse`
    accepts only canonical text.
    """

    origin: str
    case: str
    exported: str
    size: int
    root: bytes
    manifest: str
    entries: tuple[tuple[int, str], ...]

    def __post_init__(self) -> None:
        for what, value in (("origin", self.origin), ("case", self.case)):
            if not value or any(ch.isspace() for ch in value) or not value.isprintable():
                raise FormatError(f"bundle statement: {what} {value!r} is not one word")
        parse_time(self.exported, "exported")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise FormatError("bundle statement: checkpoint size is not a non-negative integer")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise FormatError("bundle statement: checkpoint root is not 32 bytes")
        if not _HEX64.fullmatch(self.manifest):
            raise FormatError("bundle statement: manifest digest is not 64 lower-case hex digits")
        last = -1
        for index, h in self.entries:
            if index <= last:
                raise FormatError(
                    f"bundle statement: entry {index} is out of order (after entry {last})"
                )
            if index >= self.size:
                raise FormatError(
                    f"bundle statement: entry {index} is beyond the checkpoint (size {self.size})"
                )
            if not _HEX64.fullmatch(h):
                raise FormatError(f"bundle statement: hash of entry {index} is not 64 hex digits")
            last = index

    def text(self) -> str:
        lines = [
            STATEMENT_V1,
            f"origin {self.origin}",
            f"case {self.case}",
            f"exported {self.exported}",
            f"checkpoint {self.size} {_b64(self.root)}",
            f"manifest {self.manifest}",
            *(f"entry {i} {h}" for i, h in self.entries),
        ]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Statement:
        """Parse statement text; FormatError naming the line."""
        if not text.endswith("\n"):
            raise FormatError("bundle statement does not end with a newline")
        lines = text[:-1].split("\n")
        if lines[0] != STATEMENT_V1:
            raise FormatError(
                f"bundle statement does not start with {STATEMENT_V1!r}",
                hint="this bundle was written by another tool or a newer custody",
            )
        if len(lines) < 6:
            raise FormatError("bundle statement is missing some of its first six lines")
        heads = ("origin", "case", "exported", "checkpoint", "manifest")
        values: dict[str, str] = {}
        for n, key in enumerate(heads, start=1):
            k, sep, v = lines[n].partition(" ")
            if k != key or not sep:
                raise FormatError(f"bundle statement line {n + 1} should start with '{key} '")
            values[key] = v
        size_text, _, root_text = values["checkpoint"].partition(" ")
        if not _DECIMAL.fullmatch(size_text):
            raise FormatError("bundle statement: checkpoint size is not a decimal number")
        if len(size_text) > _MAX_DIGITS:
            raise FormatError(
                f"bundle statement: checkpoint size has {len(size_text)} digits; "
                "a tree size is at most 2^64-1"
            )
        root = _unb64_hash(root_text, "bundle statement: checkpoint root")
        entries = []
        for n, line in enumerate(lines[6:], start=7):
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != "entry" or not _DECIMAL.fullmatch(parts[1]):
                raise FormatError(f"bundle statement line {n} is not 'entry <index> <hash>'")
            if len(parts[1]) > _MAX_DIGITS:
                raise FormatError(
                    f"bundle statement line {n}: entry index has {len(parts[1])} digits; "
                    "an index is at most 2^64-2"
                )
            entries.append((int(parts[1]), parts[2]))
        statement = cls(
            values["origin"],
            values["case"],
            values["exported"],
            int(size_text),
            root,
            values["manifest"],
            tuple(entries),
        )
        if statement.text() != text:
            raise FormatError("bundle statement is not in canonical form")
        return statement

    def sign(self, log_signer: Signer) -> bytes:
        """The statement as a signed note by the log's key (whose name is the origin)."""
        if log_signer.name != self.origin:
            raise InputError(
                f"key {log_signer.name!r} is not the key of log {self.origin!r}",
                hint="the bundle statement is signed with the log's own key",
            )
        return sign_note(self.text(), [log_signer])


# ---------------------------------------------------------------------------------
# The manifest (spec §3)


@dataclass(frozen=True)
class FileInfo:
    size: int
    sha256: str


@dataclass(frozen=True)
class ManifestEntry:
    index: int
    hash: str
    type: str

    @property
    def file(self) -> str:
        return entry_path(self.index)

    @property
    def proof(self) -> str:
        return proof_path(self.index)


@dataclass(frozen=True)
class ManifestParty:
    name: str
    role: str
    org: str
    vkey: str
    registered_at: int
    ended_at: int | None
    end: str | None


@dataclass(frozen=True)
class ManifestItem:
    item: str
    exhibit: str
    name: str
    size: int
    kind: str
    entry: int
    parent: str | None
    sidecars: tuple[tuple[str, str], ...]
    media: str | None

    def sidecar(self, kind: str) -> str | None:
        return dict(self.sidecars).get(kind)


@dataclass(frozen=True)
class Manifest:
    """`MANIFEST.json`, parsed and checked (spec §3)."""

    origin: str
    log_key: str
    case: str
    exported: str
    tool: str
    checkpoint_size: int
    checkpoint_root: bytes
    entries: tuple[ManifestEntry, ...]
    consistency: tuple[int, ...]
    parties: tuple[ManifestParty, ...]
    items: tuple[ManifestItem, ...]
    report: tuple[str, ...]
    files: Mapping[str, FileInfo]

    def encode(self) -> bytes:
        """The manifest bytes custody writes (sorted keys, indent 2, final newline)."""
        return _dump(
            {
                "version": BUNDLE_V1,
                "origin": self.origin,
                "log_key": self.log_key,
                "case": self.case,
                "exported": self.exported,
                "tool": self.tool,
                "checkpoint": {
                    "file": CHECKPOINT,
                    "size": self.checkpoint_size,
                    "root": _b64(self.checkpoint_root),
                },
                "entries": [
                    {
                        "index": e.index,
                        "hash": e.hash,
                        "type": e.type,
                        "file": e.file,
                        "proof": e.proof,
                    }
                    for e in self.entries
                ],
                "consistency": [
                    {"old_size": s, "file": consistency_path(s)} for s in self.consistency
                ],
                "parties": [p.__dict__ for p in self.parties],
                "items": [
                    {
                        "item": i.item,
                        "exhibit": i.exhibit,
                        "name": i.name,
                        "size": i.size,
                        "kind": i.kind,
                        "entry": i.entry,
                        "parent": i.parent,
                        "sidecars": dict(i.sidecars),
                        "media": i.media,
                    }
                    for i in self.items
                ],
                "report": list(self.report),
                "verify": VERIFY_MD,
                "files": {
                    p: {"size": f.size, "sha256": f.sha256} for p, f in sorted(self.files.items())
                },
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Parse and check the manifest; FormatError naming the field that is wrong."""
        w = MANIFEST
        obj = load_json(data, w)
        version = _str(obj, "version", w)
        if version != BUNDLE_V1:
            raise FormatError(
                f"{w}: version is {version!r}, this custody reads {BUNDLE_V1!r}",
                hint="verify it with the custody version that wrote it, or a newer one",
            )
        cp = _obj(_field(obj, "checkpoint", w), f"{w}: checkpoint")
        if _str(cp, "file", f"{w}: checkpoint") != CHECKPOINT:
            raise FormatError(f"{w}: checkpoint file is not {CHECKPOINT}")
        if _str(obj, "verify", w) != VERIFY_MD:
            raise FormatError(f"{w}: 'verify' is not {VERIFY_MD}")
        entries: list[ManifestEntry] = []
        for n, raw in enumerate(_list(obj, "entries", w)):
            ew = f"{w}: entries[{n}]"
            e = _obj(raw, ew)
            me = ManifestEntry(_int(e, "index", ew), _hex64(e, "hash", ew), _str(e, "type", ew))
            if _str(e, "file", ew) != me.file or _str(e, "proof", ew) != me.proof:
                raise FormatError(f"{ew}: file names are not {me.file} and {me.proof}")
            if entries and me.index <= entries[-1].index:
                raise FormatError(f"{ew}: index {me.index} is out of order")
            entries.append(me)
        consistency: list[int] = []
        for n, raw in enumerate(_list(obj, "consistency", w)):
            cw = f"{w}: consistency[{n}]"
            c = _obj(raw, cw)
            size = _int(c, "old_size", cw)
            if _str(c, "file", cw) != consistency_path(size):
                raise FormatError(f"{cw}: file is not {consistency_path(size)}")
            if consistency and size <= consistency[-1]:
                raise FormatError(f"{cw}: old_size {size} is out of order")
            consistency.append(size)
        parties = []
        for n, raw in enumerate(_list(obj, "parties", w)):
            pw = f"{w}: parties[{n}]"
            p = _obj(raw, pw)
            parties.append(
                ManifestParty(
                    _str(p, "name", pw),
                    _str(p, "role", pw),
                    _str(p, "org", pw),
                    _str(p, "vkey", pw),
                    _int(p, "registered_at", pw),
                    _int(p, "ended_at", pw, optional=True),
                    _str(p, "end", pw, optional=True),
                )
            )
        items = []
        for n, raw in enumerate(_list(obj, "items", w)):
            iw = f"{w}: items[{n}]"
            i = _obj(raw, iw)
            sidecars = _obj(_field(i, "sidecars", iw), f"{iw}: sidecars")
            if sidecars and sorted(sidecars) != sorted(SIDECAR_KINDS):
                raise FormatError(f"{iw}: sidecars must be none or {', '.join(SIDECAR_KINDS)}")
            media = i.get("media")
            kind = _str(i, "kind", iw)
            if kind not in ("media", "attachment"):
                raise FormatError(f"{iw}: kind {kind!r} is not media or attachment")
            items.append(
                ManifestItem(
                    _hex64(i, "item", iw),
                    _str(i, "exhibit", iw),
                    _str(i, "name", iw),
                    _int(i, "size", iw),
                    kind,
                    _int(i, "entry", iw),
                    _hex64(i, "parent", iw, optional=True),
                    tuple(
                        (k, _path(v, f"{iw}: sidecars.{k}")) for k, v in sorted(sidecars.items())
                    ),
                    None if media is None else _path(media, f"{iw}: media"),
                )
            )
        report = tuple(_path(p, f"{w}: report[{n}]") for n, p in enumerate(_list(obj, "report", w)))
        files: dict[str, FileInfo] = {}
        for path, raw in _obj(_field(obj, "files", w), f"{w}: files").items():
            fw = f"{w}: files[{path!r}]"
            _path(path, fw)
            if path in (MANIFEST, STATEMENT):
                raise FormatError(f"{fw}: the manifest and the statement are not listed")
            f = _obj(raw, fw)
            files[path] = FileInfo(_int(f, "size", fw), _hex64(f, "sha256", fw))
        manifest = cls(
            origin=_str(obj, "origin", w),
            log_key=_str(obj, "log_key", w),
            case=_str(obj, "case", w),
            exported=_str(obj, "exported", w),
            tool=_str(obj, "tool", w),
            checkpoint_size=_int(cp, "size", f"{w}: checkpoint"),
            checkpoint_root=_unb64_hash(_str(cp, "root", f"{w}: checkpoint"), f"{w}: root"),
            entries=tuple(entries),
            consistency=tuple(consistency),
            parties=tuple(parties),
            items=tuple(items),
            report=report,
            files=files,
        )
        missing = sorted(p for p in manifest.referenced() if p not in files)
        if missing:
            raise FormatError(f"{w}: {missing[0]} is named but not listed in 'files'")
        return manifest

    def referenced(self) -> list[str]:
        """Every path the manifest names outside `files`."""
        paths = [CHECKPOINT, VERIFY_MD, *self.report]
        for e in self.entries:
            paths += [e.file, e.proof]
        paths += [consistency_path(s) for s in self.consistency]
        for i in self.items:
            paths += [p for _, p in i.sidecars]
            if i.media is not None:
                paths.append(i.media)
        return paths


# ---------------------------------------------------------------------------------
# Inputs of verification


class BundleSource(Protocol):
    """The files of a bundle, as `custody.bundle.reader` reads them from a folder or a ZIP.

    `names()` lists every regular file ('/'-separated relative paths) except
    ignored litter; `read` returns a file's bytes, refusing more than `limit`
    (UnsafeBundleError) and raising NotFoundError for a file that is not there;
    `digests` streams a file (of any size) through BLAKE3 and SHA-256.
    """

    @property
    def label(self) -> str: ...

    def names(self) -> Collection[str]: ...

    def read(self, name: str, limit: int) -> bytes: ...

    def digests(self, name: str) -> FileDigests: ...


class MediaProber(Protocol):
    """Re-measures a media file of the bundle (metadata snapshot + packet hashes).

    `tool` is the ffmpeg version (compare with an entry's `tool`); `probe`
    returns the file's media record, or None if it is not media; it raises
    CustodyError if the file cannot be measured.  `snapshot` is the snapshot
    version to measure in (that of the record it is compared with; None: the
    current one), so a comparison never mixes versions (docs/spec/media.md §4).
    """

    @property
    def tool(self) -> str: ...

    def probe(self, name: str, snapshot: str | None = None) -> MediaRecord | None: ...


@dataclass(frozen=True)
class Trust:
    """What the verifier trusts: keys given out of band, or (loudly) the bundle's own."""

    keys: tuple[VerifierKey, ...] = ()
    bundle_keys: bool = False


@dataclass(frozen=True)
class PolicyCheck:
    """One verification policy in the verdict: asked for and met, failed, or not asked.

    `name` is `witnesses`, `published` or `timestamps` (docs/verify-bundle.md,
    "Policies"); `detail` is a plain sentence: what was checked, or how to ask for it.
    """

    name: str
    checked: bool
    ok: bool
    detail: str

    def line(self) -> str:
        state = ("met" if self.ok else "NOT MET") if self.checked else "not checked"
        return f"{self.name}: {state}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "checked": self.checked, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Policy:
    """What the verifier demands beyond the bundle itself (docs/verify-bundle.md, "Policies").

    `witnesses` and `quorum`: at least `quorum` (default: all of them) of these witness
    keys must have validly cosigned the bundle's checkpoint.  `published`: called with
    the bundle's checkpoint note once it verified with the log key, it compares it with
    a published log and returns the check (raising `VerificationError` on a
    contradiction); the caller does the fetching, so this module stays pure.
    `tsa_certs`: certificates (PEM or DER) of the RFC 3161 time-stamping authorities
    trusted to bound when each entry was appended; `time_tolerance`: how far, in
    seconds, an entry's claimed time may lie outside that interval.
    """

    witnesses: tuple[VerifierKey, ...] = ()
    quorum: int | None = None
    published: Callable[[bytes], PolicyCheck] | None = None
    tsa_certs: tuple[bytes, ...] = ()
    time_tolerance: int = 600


# ---------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Failure:
    """One thing that did not verify: which check, where (file), what and why."""

    check: str
    where: str
    message: str
    hint: str | None = None
    index: int | None = None
    field: str | None = None

    def line(self) -> str:
        return f"{self.where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "where": self.where, "message": self.message}
        for key in ("hint", "index", "field"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class ItemReport:
    """The verdict for one item: identity, checks done, holders and events."""

    item: str
    exhibit: str
    name: str
    kind: str
    size: int
    entry: int
    parent: str | None = None
    media: str | None = None
    checked: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    holders: list[tuple[str, str, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    disposed: Disposed | None = None  # the item's `disposal` entry, if it has one

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def verdict(self) -> str:
        if self.failures:
            return "NOT VERIFIED: " + self.failures[0].line()
        return "VERIFIED: " + "; ".join(self.checked)

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "exhibit": self.exhibit,
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "entry": self.entry,
            "parent": self.parent,
            "media": self.media,
            "verified": self.ok,
            "verdict": self.verdict,
            "checked": list(self.checked),
            "failures": [f.to_json() for f in self.failures],
            "holders": [{"party": p, "how": how, "entry": i} for p, how, i in self.holders],
            "events": [e.verdict_json() for e in self.events],
            "disposed": None if self.disposed is None else self.disposed.to_json(),
        }


@dataclass(frozen=True)
class Disposed:
    """An item's `disposal` entry: its object left the evidence store, so the bundle
    carries its entries but not its file (docs/spec/bundle.md §3, `items`)."""

    by: str
    time: str
    index: int
    reason: str

    def sentence(self) -> str:
        return f"disposed by {self.by} at {self.time} (entry {self.index}): {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "time": self.time, "entry": self.index, "reason": self.reason}


@dataclass(frozen=True)
class Emergency:
    """An emergency disclosure in the bundle (an ingest with legal basis emergency) and
    its review, as the replayed custody rules record it, judged as of `as_of` (the
    bundle's export time): `status` is `upheld`, `rejected`, `overdue` (no review on
    record and the review was due before `as_of`) or `pending` (not yet due); `late`
    says a review came after it was due."""

    exhibit: str
    state: EmergencyState
    as_of: str

    @property
    def status(self) -> str:
        e = self.state
        if e.outcome is not None:
            return e.outcome
        return "overdue" if parse_time(e.due) < parse_time(self.as_of) else "pending"

    @property
    def late(self) -> bool:
        e = self.state
        return e.reviewed_time is not None and parse_time(e.reviewed_time) > parse_time(e.due)

    def sentence(self) -> str:
        e = self.state
        what = f"the emergency disclosure of exhibit {self.exhibit} by {e.by} (entry {e.index})"
        if e.outcome is None:
            if self.status == "overdue":
                return (
                    f"{what} has no review on record: it was due by {e.due}; none is on "
                    f"record as of {self.as_of} (review OVERDUE)"
                )
            return f"{what} is not reviewed yet: the review is due by {e.due}"
        late = f", LATE (it was due by {e.due})" if self.late else ""
        text = (
            f"{what} was {e.outcome} on review by {e.reviewer} at {e.reviewed_time} "
            f"(entry {e.reviewed_at}){late}"
        )
        if e.outcome == "rejected":
            text += ": access and derivation are refused from then on, handoff only to a court"
        return text

    def to_json(self) -> dict[str, Any]:
        e = self.state
        return {
            "exhibit": self.exhibit,
            "item": e.item,
            "entry": e.index,
            "by": e.by,
            "time": e.time,
            "due": e.due,
            "status": self.status,
            "late": self.late,
            "review": None
            if e.reviewed_at is None
            else {
                "entry": e.reviewed_at,
                "by": e.reviewer,
                "time": e.reviewed_time,
                "outcome": e.outcome,
            },
            "as_of": self.as_of,
            "text": self.sentence(),
        }


@dataclass(frozen=True)
class Caveat:
    """A finding shown with the verdict, not a failure: a signature on log entry `index`
    made with a key its party did not hold alone (`custody.model.timeline.Keeping`)."""

    index: int
    party: str
    text: str

    def line(self) -> str:
        return f"log entry {self.index}: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.index, "party": self.party, "text": self.text}


@dataclass(frozen=True)
class Cosignature:
    name: str
    role: str | None
    timestamp: int
    trusted: bool

    def to_json(self) -> dict[str, Any]:
        when = datetime.fromtimestamp(min(self.timestamp, 253402300799), UTC)
        return {
            "name": self.name,
            "role": self.role,
            "timestamp": self.timestamp,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trusted": self.trusted,
        }


@dataclass
class BundleReport:
    """Everything `verify_bundle` checked and found."""

    source: str
    origin: str | None = None
    case: str | None = None
    exported: str | None = None
    log_key: str | None = None
    trusted_bundle_keys: bool = False
    checkpoint_size: int | None = None
    checkpoint_root: bytes | None = None
    checkpoint_note: bytes | None = None
    cosignatures: list[Cosignature] = field(default_factory=list)
    entries: int = 0
    signatures: int = 0
    consistency: list[int] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    record: list[bytes] = field(default_factory=list)
    conflict: bytes | None = None
    items: list[ItemReport] = field(default_factory=list)
    case_events: list[Event] = field(default_factory=list)
    # Emergency disclosures and their reviews, from the replayed rules (empty when the
    # rules could not be replayed): overdue, late and rejected ones are also notes.
    emergencies: list[Emergency] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    caveats: list[Caveat] = field(default_factory=list)
    policies: list[PolicyCheck] = field(default_factory=list)
    # Claimed times out of order (docs/spec/entry.md rule 5): reported, never a failure.
    disorder: list[Disorder] = field(default_factory=list)
    # RFC 3161 tokens that verified, and each entry's claimed time against the interval
    # they bound (docs/spec/timestamp.md); empty unless --tsa-cert was given.
    timestamps: list[VerifiedStamp] = field(default_factory=list)
    times: list[EntryTime] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def verdict(self) -> str:
        if self.ok:
            return "VERIFIED"
        return "NOT VERIFIED: " + self.failures[0].line()

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "VERIFIED" if self.ok else "NOT VERIFIED",
            "summary": self.verdict,
            "bundle": self.source,
            "origin": self.origin,
            "case": self.case,
            "exported": self.exported,
            "log_key": self.log_key,
            "trust": "bundle-keys" if self.trusted_bundle_keys else "given",
            "checkpoint": None
            if self.checkpoint_size is None or self.checkpoint_root is None
            else {
                "size": self.checkpoint_size,
                "root": _b64(self.checkpoint_root),
                "cosignatures": [c.to_json() for c in self.cosignatures],
            },
            "entries": self.entries,
            "signatures": self.signatures,
            "consistency": list(self.consistency),
            "seen": list(self.seen),
            "items": [i.to_json() for i in self.items],
            "case_events": [e.verdict_json() for e in self.case_events],
            "emergencies": [e.to_json() for e in self.emergencies],
            "failures": [f.to_json() for f in self.failures],
            "notes": list(self.notes),
            "caveats": [c.to_json() for c in self.caveats],
            "policies": [p.to_json() for p in self.policies],
            "time_order": [d.to_json() for d in self.disorder],
            "timestamps": [t.to_json() for t in self.timestamps],
            "times": [t.to_json() for t in self.times],
        }


class BundleVerificationError(VerificationError):
    """The bundle did not verify; `report` holds every check and every failure."""

    def __init__(self, report: BundleReport) -> None:
        self.report = report
        first = report.failures[0]
        more = len(report.failures) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"NOT VERIFIED: {first.line()}{tail}", hint=first.hint)


class _Stop(Exception):
    """Raised inside the verifier when nothing further can be trusted."""


# ---------------------------------------------------------------------------------
# Verification


def verify_bundle(
    source: BundleSource,
    trust: Trust,
    *,
    seen: Sequence[tuple[str, bytes]] = (),
    prober: MediaProber | None = None,
    policy: Policy | None = None,
) -> BundleReport:
    """Verify a bundle (docs/spec/bundle.md §6) against keys trusted out of band.

    `seen` holds the checkpoints of this log the verifier saw before, as (label,
    note bytes); `prober` re-measures media (None: no re-probing); `policy` what the
    verifier demands beyond the bundle (witness quorum, a published log, trusted
    time), each reported in `BundleReport.policies` as met, failed or not checked.
    Returns the report when everything verified.

    Raises:
        BundleVerificationError: anything failed; `.report` lists every failure,
            the message names the first (what, where, why).  The report's
            `record` lists the checkpoints that may be remembered as seen, and
            `conflict` the checkpoint that contradicted one seen before.
        InputError: the source is not a custody bundle at all.
    """
    verifier = _Verifier(source, trust, prober, policy or Policy())
    with contextlib.suppress(_Stop):
        verifier.run(seen)
    report = verifier.report
    if report.failures:
        raise BundleVerificationError(report)
    return report


@dataclass
class _Item:
    """An item of the case: the index and typed form of the entry that records it."""

    index: int
    typed: Ingest | Derive
    record: MediaRecord | None = None
    report: ItemReport | None = None


class _Verifier:
    def __init__(
        self,
        source: BundleSource,
        trust: Trust,
        prober: MediaProber | None,
        policy: Policy | None = None,
    ) -> None:
        self.source = source
        self.trust = trust
        self.prober = prober
        self.policy = policy or Policy()
        self.report = BundleReport(source=source.label)
        self.names = set(source.names())
        self.cache: dict[str, bytes] = {}
        self.digests: dict[str, FileDigests] = {}
        self.failed_paths: set[str] = set()
        self.cosigned: set[tuple[str, bytes]] = set()
        # entry hash -> log index of the bundle's entries (from the signed statement), so
        # sentences name the request, consent, ingest or hold an entry refers to
        self.indexes: dict[str, int] = {}

    # -- helpers ------------------------------------------------------------------

    def fail(
        self,
        check: str,
        where: str,
        message: str,
        hint: str | None = None,
        *,
        index: int | None = None,
        field: str | None = None,
        item: ItemReport | None = None,
    ) -> None:
        failure = Failure(check, where, message, hint, index, field)
        self.report.failures.append(failure)
        if check != "seen":  # the seen check says nothing about the file's own bytes
            self.failed_paths.add(where)
        if item is not None:
            item.failures.append(failure)

    def stop(self, check: str, where: str, message: str, hint: str | None = None) -> NoReturn:
        """Record a failure after which nothing else in the bundle can be trusted."""
        self.fail(check, where, message, hint)
        raise _Stop

    def read(self, name: str, limit: int) -> bytes | None:
        """A file's bytes, or None if it is absent (the caller reports that)."""
        if name in self.cache:
            return self.cache[name]
        if name not in self.names:
            return None
        try:
            data = self.source.read(name, limit)
        except NotFoundError:
            return None
        self.cache[name] = data
        return data

    def file_digests(self, name: str) -> FileDigests | None:
        if name in self.digests:
            return self.digests[name]
        if name not in self.names:
            return None
        try:
            d = self.source.digests(name)
        except NotFoundError:
            return None
        self.digests[name] = d
        return d

    # -- the run ------------------------------------------------------------------

    def run(self, seen: Sequence[tuple[str, bytes]]) -> None:
        r = self.report
        if MANIFEST not in self.names and STATEMENT not in self.names:
            raise InputError(
                f"{self.source.label} is not a custody bundle: it has neither {MANIFEST} "
                f"nor {STATEMENT}",
                hint="give the folder or .zip that 'custody export' wrote",
            )
        statement_bytes = self.read(STATEMENT, MAX_MANIFEST)
        manifest_bytes = self.read(MANIFEST, MAX_MANIFEST)
        if statement_bytes is None:
            self.stop(
                "statement",
                STATEMENT,
                "is missing: without the log's signed statement nothing says which entries "
                "belong in this bundle",
                _HINT_REEXPORT,
            )
        if manifest_bytes is None:
            self.stop("manifest", MANIFEST, "is missing", _HINT_REEXPORT)
        assert statement_bytes is not None and manifest_bytes is not None
        log_key = self._log_key(statement_bytes, manifest_bytes)
        statement = self._statement(statement_bytes, log_key)
        r.origin, r.case, r.exported = statement.origin, statement.case, statement.exported
        self.indexes = {h: i for i, h in statement.entries}
        r.log_key = log_key.encode()
        manifest = self._manifest(manifest_bytes, statement)
        cp_bytes, cp = self._checkpoint(log_key, statement)
        entries, damaged = self._entries(statement)
        self._proofs(entries, cp, log_key)
        parties, signed, bad_signatures = self._signatures(entries, log_key)
        # Each verified entry is parsed and typed once, here; the steps below read the
        # typed values (`Event.typed`), never the entry's text again.
        events = {index: Event.of(index, s) for index, s in signed.items()}
        self._trusted_parties(parties, log_key)
        self._key_timeline(events, parties, cp_bytes, log_key)
        self._caveats(events)
        self._time_order(signed)
        if damaged or bad_signatures:
            r.notes.append(
                "the custody rules were not replayed: some entries are missing, altered or "
                "badly signed (see above)"
            )
        else:
            state = self._rules(signed, events, parties, log_key)
            if state is not None:
                self._emergencies(state, events, statement)
        verified_old = self._consistency(manifest, cp, log_key)
        self._seen(seen, cp, cp_bytes, verified_old, log_key)
        self._items(manifest, events, statement)
        self._cosignatures(cp_bytes, log_key, parties)
        self._witness_policy()
        self._published_policy(cp_bytes)
        self._timestamp_policy(manifest, cp_bytes, cp, verified_old, signed)
        self._sums(manifest)
        self._files(manifest)

    # -- 2. the statement and the log key ----------------------------------------

    def _log_key(self, statement_bytes: bytes, manifest_bytes: bytes) -> VerifierKey:
        try:
            note = Note.parse(statement_bytes)
            origin = Statement.parse(note.text).origin
        except FormatError as exc:
            self.stop("statement", STATEMENT, f"is malformed: {exc.message}", _HINT_REEXPORT)
        if self.trust.bundle_keys:
            self.report.trusted_bundle_keys = True
            try:
                key = VerifierKey.parse(
                    _str(load_json(manifest_bytes, MANIFEST), "log_key", MANIFEST)
                )
            except FormatError as exc:
                self.stop("manifest", MANIFEST, f"has no usable log key: {exc.message}")
            self.report.notes.append(
                f"the log key was taken from the bundle itself ({key.encode()}), not given out "
                "of band: this shows the bundle is intact, not that it comes from that log"
            )
            return key
        given = [k for k in self.trust.keys if k.alg == ALG_ED25519 and k.name == origin]
        if not given:
            names = ", ".join(sorted({k.name for k in self.trust.keys})) or "none"
            self.stop(
                "trust",
                "--trust",
                f"the bundle is from log '{origin}', and none of the keys given is that "
                f"log's (keys given for: {names})",
                "pass the log's verifier key, obtained from the agency out of band, with --trust",
            )
        idents = {(s.name, s.key_id) for s in note.signatures}
        return next((k for k in given if (k.name, k.key_id) in idents), given[0])

    def _statement(self, data: bytes, log_key: VerifierKey) -> Statement:
        try:
            opened = open_note(data, [log_key])
        except UnverifiedNoteError:
            signers = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in Note.parse(data).signatures)
            self.stop(
                "statement",
                STATEMENT,
                f"is not signed by the trusted log key {log_key.name}+{log_key.key_id.hex()} "
                f"(it is signed by {signers}): the bundle was not exported by the log you "
                "trust, or the key given is not that log's",
                "check the log's verifier key with the agency, out of band",
            )
        except SignatureError:
            self.stop(
                "statement",
                STATEMENT,
                "the log's signature on the bundle statement does not verify: the list of "
                "entries or the manifest digest was altered after export",
                _HINT_REEXPORT,
            )
        return Statement.parse(opened.text)

    # -- 3. the manifest -----------------------------------------------------------

    def _manifest(self, data: bytes, statement: Statement) -> Manifest:
        got = hashlib.sha256(data).hexdigest()
        if got != statement.manifest:
            self.stop(
                "manifest",
                MANIFEST,
                f"was altered after export: its SHA-256 is {_short(got)}, the log's signed "
                f"bundle statement says {_short(statement.manifest)}",
                _HINT_REEXPORT,
            )
        try:
            manifest = Manifest.parse(data)
        except FormatError as exc:
            self.stop("manifest", MANIFEST, f"is malformed: {exc.message}")
        checks = (
            ("origin", manifest.origin, statement.origin),
            ("case", manifest.case, statement.case),
            ("exported", manifest.exported, statement.exported),
            ("checkpoint size", manifest.checkpoint_size, statement.size),
            ("checkpoint root", _b64(manifest.checkpoint_root), _b64(statement.root)),
            (
                "entries",
                [(e.index, e.hash) for e in manifest.entries],
                list(statement.entries),
            ),
        )
        for what, mine, theirs in checks:
            if mine != theirs:
                self.stop(
                    "manifest", MANIFEST, f"its {what} disagrees with the signed bundle statement"
                )
        if self.trust.bundle_keys and manifest.log_key != (self.report.log_key or ""):
            self.stop("manifest", MANIFEST, "its log key changed while it was read")
        return manifest

    # -- 4. the checkpoint -----------------------------------------------------------

    def _checkpoint(self, log_key: VerifierKey, statement: Statement) -> tuple[bytes, Checkpoint]:
        data = self.read(CHECKPOINT, MAX_SMALL)
        if data is None:
            self.stop("checkpoint", CHECKPOINT, "is missing", _HINT_REEXPORT)
        try:
            cp = open_checkpoint(data, log_key).checkpoint
        except CustodyError as exc:
            self.stop(
                "checkpoint",
                CHECKPOINT,
                f"does not verify with the log key: {exc.message}",
                exc.hint,
            )
        if cp.size != statement.size or cp.root != statement.root:
            self.stop(
                "checkpoint",
                CHECKPOINT,
                f"was replaced: it is the log's checkpoint of size {cp.size} (root "
                f"{_short(cp.root)}), but the signed bundle statement names size "
                f"{statement.size} (root {_short(statement.root)})",
                _HINT_REEXPORT,
            )
        r = self.report
        r.checkpoint_size, r.checkpoint_root, r.checkpoint_note = cp.size, cp.root, data
        return data, cp

    # -- 5. entries ---------------------------------------------------------------------

    def _entries(self, statement: Statement) -> tuple[dict[int, bytes], bool]:
        by_hash = {h: i for i, h in statement.entries}
        listed = {i for i, _ in statement.entries}
        present: dict[int, bytes] = {}
        damaged = False
        for index, want in statement.entries:
            name = entry_path(index)
            data = self.read(name, MAX_ENTRY_BYTES + 1)
            if data is None:
                damaged = True
                self.fail(
                    "entry",
                    name,
                    f"is missing: log entry {index} is listed in the log's signed bundle "
                    "statement, so an entry was removed from the bundle",
                    _HINT_REEXPORT,
                    index=index,
                )
                continue
            got = leaf_hash(data).hex()
            if got != want:
                damaged = True
                other = by_hash.get(got)
                if other is not None:
                    self.fail(
                        "entry",
                        name,
                        f"holds log entry {other}, not log entry {index} (by the leaf hashes "
                        "in the log's signed bundle statement): the entries were reordered",
                        _HINT_REEXPORT,
                        index=index,
                    )
                else:
                    self.fail(
                        "entry",
                        name,
                        f"is not log entry {index} as the log recorded it: its leaf hash is "
                        f"{_short(got)}, the log's signed bundle statement says {_short(want)}:"
                        " the entry was altered after export",
                        _HINT_REEXPORT,
                        index=index,
                    )
                continue
            present[index] = data
        for name in sorted(self.names):
            for folder, pattern in (("entries/", _ENTRY_FILE), ("proofs/", _PROOF_FILE)):
                if not name.startswith(folder):
                    continue
                m = pattern.fullmatch(name)
                if m is None or int(m.group(1)) not in listed:
                    damaged = True
                    self.fail(
                        "entry",
                        name,
                        "is not in the log's signed bundle statement: it was added to the "
                        "bundle after export",
                        "ignore this file; nothing vouches for it",
                    )
        self.report.entries = len(present)
        return present, damaged

    # -- 6. inclusion proofs -------------------------------------------------------------

    def _proofs(self, entries: Mapping[int, bytes], cp: Checkpoint, log_key: VerifierKey) -> None:
        for index, data in sorted(entries.items()):
            name = proof_path(index)
            raw = self.read(name, MAX_SMALL)
            if raw is None:
                self.fail(
                    "proof",
                    name,
                    f"is missing: log entry {index} has no inclusion proof",
                    _HINT_REEXPORT,
                    index=index,
                )
                continue
            try:
                proof = TlogProof.parse(raw)
            except FormatError as exc:
                self.fail(
                    "proof",
                    name,
                    f"is not a valid tlog-proof (truncated or altered): {exc.message}",
                    _HINT_REEXPORT,
                    index=index,
                )
                continue
            if proof.index != index:
                self.fail(
                    "proof",
                    name,
                    f"is a proof for log entry {proof.index}, not for log entry {index}",
                    _HINT_REEXPORT,
                    index=index,
                )
                continue
            try:
                embedded = Checkpoint.parse(Note.parse(proof.checkpoint).text)
            except FormatError as exc:  # pragma: no cover - TlogProof.parse checked it
                self.fail("proof", name, f"its checkpoint is malformed: {exc.message}")
                continue
            if embedded != cp:
                self.fail(
                    "proof",
                    name,
                    f"is against the log's checkpoint of size {embedded.size}, not the "
                    f"bundle's checkpoint (size {cp.size})",
                    _HINT_REEXPORT,
                    index=index,
                )
                continue
            try:
                verify_tlog_proof(proof, data, log_key)
            except ProofError as exc:
                self.fail(
                    "proof",
                    name,
                    f"the inclusion proof of log entry {index} does not verify: {exc.message}",
                    exc.hint,
                    index=index,
                )
            except CustodyError as exc:
                self.fail(
                    "proof",
                    name,
                    f"its checkpoint does not verify with the log key: {exc.message}",
                    exc.hint,
                    index=index,
                )

    # -- 7. signatures ---------------------------------------------------------------------

    def _signatures(
        self, entries: Mapping[int, bytes], log_key: VerifierKey
    ) -> tuple[Parties, dict[int, SignedEntry], bool]:
        parties = Parties()
        bad = False
        for index, data in sorted(entries.items()):
            try:
                entry = SignedEntry.parse(data).entry
            except CustodyError:
                continue  # check_entry below reports it
            if entry.type != "key":
                continue
            try:
                parties.apply(index, entry)
            except EntryError as exc:
                bad = True
                self.fail("signature", entry_path(index), exc.message, exc.hint, index=index)
        signed: dict[int, SignedEntry] = {}
        for index, data in sorted(entries.items()):
            try:
                # A `policy` entry is signed by the log key, not a party (spec §6 step 7).
                signed[index] = check_entry(index, data, parties, log_key)
            except EntryError as exc:
                bad = True
                self.fail("signature", entry_path(index), exc.message, exc.hint, index=index)
                continue
            self.report.signatures += len(signed[index].note.signatures)
        return parties, signed, bad

    def _trusted_parties(self, parties: Parties, log_key: VerifierKey) -> None:
        for key in self.trust.keys:
            if key == log_key or (key.name == log_key.name and key.alg == ALG_ED25519):
                continue
            history = parties.keys.get(key.name)
            if not history:
                self.report.notes.append(
                    f"key {key.encode()} (given with --trust) is not a party of this bundle: "
                    "used to check cosignatures only"
                )
                continue
            if not any(k.vkey.public == key.public for k in history):
                registered = ", ".join(
                    f"{k.vkey.name}+{k.vkey.key_id.hex()} (entry {k.registered_at})"
                    for k in history
                )
                self.fail(
                    "trust",
                    "--trust",
                    f"the key given for party '{key.name}' ({key.name}+{key.key_id.hex()}) is "
                    f"not a key the log registered for '{key.name}' (it registered "
                    f"{registered}): the bundle's signatures by '{key.name}' are not by the "
                    "key you trust",
                    "check the party's verifier key with the party, out of band",
                )

    def _key_timeline(
        self, events: Mapping[int, Event], parties: Parties, cp_bytes: bytes, log_key: VerifierKey
    ) -> None:
        """Spec §2.1: the bundle carries the key timeline of every party its entries sign
        or name, and (noted, not failed) nothing beyond that and its checkpoint's cosigners.

        A signer without a key entry is already a signature failure; a party an entry
        only names (the sender a refusal names, say) is checked here.
        """
        needed = parties_needed(events.values())
        for name, index in sorted(needed.items(), key=lambda kv: kv[1]):
            if name not in parties.keys:
                self.fail(
                    "keys",
                    STATEMENT,
                    f"lists no key entry of party '{name}', whom log entry {index} names: the "
                    "bundle leaves out part of the key timeline its entries need",
                    _HINT_REEXPORT,
                    index=index,
                )
        cosigners = set(cosigner_names(cp_bytes, log_key.name))
        extra = sorted(set(parties.keys) - set(needed) - cosigners)
        if extra:
            self.report.notes.append(
                f"the bundle carries the key entries of {', '.join(extra)}, whom none of its "
                "entries signs or names: it tells more than it must (docs/spec/bundle.md §2.1)"
            )

    # -- 8. custody rules ------------------------------------------------------------------

    def _caveats(self, events: Mapping[int, Event]) -> None:
        """Signatures made with a key kept in a shared home, from the bundle's own key
        entries (each one signed: any verifier sees them, offline)."""
        keeping = Keeping.of((i, ev.entry) for i, ev in sorted(events.items()))
        for index, ev in sorted(events.items()):
            for signer in ev.signers:
                text = signed_with_shared_key(ev.entry, signer, keeping.key_at(signer, index))
                if text is not None:
                    self.report.caveats.append(Caveat(index, signer, text))

    def _time_order(self, signed: Mapping[int, SignedEntry]) -> None:
        """Claimed times in order over the bundle's entries in index order (docs/spec/entry.md
        rule 5): each entry claiming a time more than the tolerance before the one listed
        before it is a note, never a failure (a log written before the rule still verifies)."""
        for found in find_disorder(sorted(signed.items())):
            self.report.disorder.append(found)
            self.report.notes.append(found.sentence())

    def _rules(
        self,
        signed: Mapping[int, SignedEntry],
        events: Mapping[int, Event],
        parties: Parties,
        log_key: VerifierKey,
    ) -> MemoryState | None:
        """Replay the custody rules over the bundle's entries in log order, into a state
        that knows the log key (so `policy` entries are checked as the log checked them);
        the state replayed, or None if an entry broke a rule (a failure)."""
        chain = Chain(state=MemoryState(log_vkey=log_key))
        for index, s in sorted(signed.items()):
            if s.entry.type == "key":
                continue
            typed = events[index].typed
            case = typed.case_id if typed is not None else None
            if case not in (None, self.report.case):
                self.report.notes.append(f"log entry {index} is about case {case}, not this case")
            try:
                chain.apply(index, s, parties)
            except EntryError as exc:
                self.fail(
                    "rule",
                    entry_path(index),
                    f"breaks the custody rules: {exc.message}",
                    exc.hint,
                    index=index,
                )
                return None
        return chain.state

    def _emergencies(
        self, state: MemoryState, events: Mapping[int, Event], statement: Statement
    ) -> None:
        """The emergency disclosures of the replayed state, as of the bundle's export
        time (the latest time the log vouches for; no clock here): each is listed, and an
        overdue, late or rejected review is also a note (never a failure: the log
        accepts a late review, and an overdue one is what the verdict must show)."""
        for e in sorted(state.emergencies.values(), key=lambda x: x.index):
            ev = events.get(e.index)
            exhibit = ev.typed.exhibit if ev is not None and isinstance(ev.typed, Ingest) else "?"
            found = Emergency(exhibit, replace(e), statement.exported)
            self.report.emergencies.append(found)
            if found.status in ("overdue", "rejected") or found.late:
                self.report.notes.append(found.sentence())

    # -- 9. consistency ----------------------------------------------------------------------

    def _consistency(
        self, manifest: Manifest, cp: Checkpoint, log_key: VerifierKey
    ) -> dict[int, ConsistencyFile]:
        """The consistency files whose proof and old checkpoint verified, by old size."""
        verified: dict[int, ConsistencyFile] = {}
        for old_size in manifest.consistency:
            name = consistency_path(old_size)
            data = self.read(name, MAX_SMALL)
            if data is None:
                self.fail("consistency", name, "is missing", _HINT_REEXPORT)
                continue
            try:
                cf = ConsistencyFile.parse(data, name)
            except FormatError as exc:
                self.fail("consistency", name, f"is malformed: {exc.message}", _HINT_REEXPORT)
                continue
            if cf.old_size != old_size or cf.new_size != cp.size or cf.new_root != cp.root:
                self.fail(
                    "consistency",
                    name,
                    f"is not a proof from size {old_size} to the bundle's checkpoint "
                    f"(size {cp.size}): it says {cf.old_size} to {cf.new_size}",
                    _HINT_REEXPORT,
                )
                continue
            if cf.old_checkpoint is None:
                self.fail("consistency", name, "has no old_checkpoint", _HINT_REEXPORT)
                continue
            try:
                old = open_checkpoint(cf.old_checkpoint, log_key).checkpoint
            except CustodyError as exc:
                self.fail(
                    "consistency",
                    name,
                    f"its old checkpoint does not verify with the log key: {exc.message}",
                    exc.hint,
                )
                continue
            if old.size != old_size or old.root != cf.old_root:
                self.fail(
                    "consistency",
                    name,
                    f"its old_root/old_size are not those of its old checkpoint (size {old.size})",
                    _HINT_REEXPORT,
                )
                continue
            try:
                verify_consistency(old_size, cp.size, old.root, cp.root, cf.proof)
            except ProofError as exc:
                self.fail(
                    "consistency",
                    name,
                    f"the log's checkpoint of size {old_size} is not consistent with the "
                    f"bundle's (size {cp.size}): {exc.message}",
                    "the log rewrote its history after it signed the older checkpoint, or "
                    "the proof was altered",
                )
                continue
            verified[old_size] = cf
            self.report.consistency.append(old_size)
        return verified

    # -- 10. seen checkpoints -----------------------------------------------------------------

    def _seen(
        self,
        seen: Sequence[tuple[str, bytes]],
        cp: Checkpoint,
        cp_bytes: bytes,
        verified_old: Mapping[int, ConsistencyFile],
        log_key: VerifierKey,
    ) -> None:
        """Check the bundle's checkpoint against each checkpoint of this log seen before.

        A seen checkpoint no larger than the bundle's must be extended by it
        (`custody.tlog.witness.check_extends`, with the bundle's consistency
        proof from that size); a larger one cannot be checked from the bundle.
        """
        r = self.report
        fork = False
        larger: list[int] = []
        same_size_matched = False
        for label, note in seen:
            try:
                s = open_checkpoint(note, log_key).checkpoint
            except CustodyError as exc:
                self.fail(
                    "seen",
                    label,
                    f"a checkpoint of this log seen before does not verify with the trusted log "
                    f"key: {exc.message}",
                    "the log's key changed, or another key was trusted before: compare the "
                    "keys out of band before going on",
                )
                continue
            if s.size > cp.size:
                larger.append(s.size)
                continue
            if 0 < s.size < cp.size and s.size not in verified_old:
                if s.size in self._listed_consistency:
                    continue  # its proof failed above
                self.fail(
                    "seen",
                    CHECKPOINT,
                    f"the bundle has no consistency proof from size {s.size}, a checkpoint "
                    f"of this log seen before ({label}): it cannot show that its checkpoint "
                    f"(size {cp.size}) extends what was seen",
                    "ask the agency for the consistency proof ('custody log consistency "
                    f"{s.size} {cp.size} --json') or a fresh export",
                )
                continue
            proven = verified_old.get(s.size)
            try:
                how = check_extends(s, cp, None if proven is None else proven.proof)
            except ForkError:
                fork = True
                if s.size == cp.size:
                    detail = (
                        f"the bundle's checkpoint of size {cp.size} has root {_short(cp.root)}, "
                        f"but the checkpoint of size {s.size} seen before has root "
                        f"{_short(s.root)}"
                    )
                else:
                    assert proven is not None  # a larger tree is only compared through a proof
                    detail = (
                        f"the bundle proves the log's tree of size {s.size} had root "
                        f"{_short(proven.old_root)}, but the checkpoint of size {s.size} seen "
                        f"before has root {_short(s.root)}"
                    )
                self._fork(label, detail)
                continue
            if how is Extension.SAME:
                same_size_matched = True
                r.seen.append(f"size {s.size}: the same checkpoint")
            elif how is Extension.PROVEN:
                r.seen.append(f"size {s.size}: consistent (proof verified)")
        if larger and not same_size_matched:
            r.notes.append(
                f"the bundle's checkpoint (size {cp.size}) is older than a checkpoint of this "
                f"log seen before (size {max(larger)}); its consistency with it cannot be "
                "checked from this bundle"
            )
        elif larger:
            r.seen.append(
                f"older than size {max(larger)} seen before, and identical to the checkpoint "
                f"of size {cp.size} recorded then"
            )
        if fork:
            r.conflict = cp_bytes
        else:
            r.record = [
                cp_bytes,
                *(cf.old_checkpoint for cf in verified_old.values() if cf.old_checkpoint),
            ]

    @property
    def _listed_consistency(self) -> set[int]:
        return {
            int(name[len("consistency/") : -len(".json")])
            for name in self.names
            if re.fullmatch(r"consistency/(0|[1-9][0-9]*)\.json", name)
        }

    def _fork(self, label: str, detail: str) -> None:
        self.fail(
            "seen",
            CHECKPOINT,
            f"this log showed two different histories: {detail} (seen before: {label})",
            "keep this bundle and the checkpoint seen before: together they prove the log "
            "forked; report it",
        )

    # -- 11. items -------------------------------------------------------------------------------

    def _items(self, manifest: Manifest, events: Mapping[int, Event], statement: Statement) -> None:
        defined: dict[str, _Item] = {}
        for index, ev in sorted(events.items()):
            t = ev.typed
            if (
                isinstance(t, Ingest | Derive)
                and t.case == statement.case
                and t.item not in defined
            ):
                defined[t.item] = _Item(index, t)
        listed = {mi.item for mi in manifest.items}
        for b3, it in defined.items():
            if b3 not in listed:
                self.fail(
                    "item",
                    MANIFEST,
                    f"exhibit {it.typed.exhibit} (log entry {it.index}) is missing from "
                    "the manifest",
                    index=it.index,
                )
        exhibits = {b3: it.typed.exhibit or b3[:16] for b3, it in defined.items()}
        # Disposed items: their entries are here, their files and perhaps their sidecars
        # not (spec §3, `items`); from the verified entries, whether or not the rules replayed.
        disposed: dict[str, Disposed] = {}
        for index, ev in sorted(events.items()):
            d = ev.typed
            if isinstance(d, Disposal) and d.case == statement.case and d.item not in disposed:
                disposed[d.item] = Disposed(d.by, ev.time, index, d.reason)
        about: dict[str, list[Event]] = {}
        for _, ev in sorted(events.items()):
            named = ev.items
            if not named and ev.type != "key":
                self.report.case_events.append(_listed(ev, exhibits, None, self.indexes))
            for b3 in named:
                about.setdefault(b3, []).append(ev)
        for mi in manifest.items:
            report = ItemReport(
                mi.item, mi.exhibit, mi.name, mi.kind, mi.size, mi.entry, mi.parent, mi.media
            )
            self.report.items.append(report)
            found = defined.get(mi.item)
            if found is None:
                self.fail(
                    "item",
                    MANIFEST,
                    f"lists item {_short(mi.item)} ({mi.exhibit}), which no verified entry in "
                    "the bundle records",
                    item=report,
                )
                continue
            found.report = report
            report.disposed = disposed.get(mi.item)
            self._item_fields(mi, found, report)
            self._history(mi.item, about, report, exhibits)
            found.record = self._sidecars(mi, found, report)
        for mi in manifest.items:
            found = defined.get(mi.item)
            if found is not None and found.report is not None:
                self._media(mi, found, found.report, defined, exhibits)
                self._lineage(found, defined, exhibits)

    def _item_fields(self, mi: ManifestItem, it: _Item, report: ItemReport) -> None:
        e = it.typed
        mine: dict[str, object] = {
            "exhibit": mi.exhibit,
            "name": mi.name,
            "size": str(mi.size),
            "kind": mi.kind,
            "entry": mi.entry,
            "parent": mi.parent,
        }
        theirs: dict[str, object] = {
            "exhibit": e.exhibit,
            "name": e.name,
            "size": str(e.size),
            "kind": e.kind,
            "entry": it.index,
            "parent": e.parent if isinstance(e, Derive) else None,
        }
        for key, value in mine.items():
            if value != theirs[key]:
                self.fail(
                    "item",
                    MANIFEST,
                    f"item {mi.exhibit}: '{key}' is {value!r}, but log entry {it.index} says "
                    f"{theirs[key]!r}",
                    index=it.index,
                    field=key,
                    item=report,
                )

    def _history(
        self,
        b3: str,
        about: Mapping[str, Sequence[Event]],
        report: ItemReport,
        exhibits: Mapping[str, str],
    ) -> None:
        for ev in about.get(b3, ()):
            e = ev.typed
            if isinstance(e, Ingest):
                report.holders.append((e.by, "ingest", ev.index))
            elif isinstance(e, Derive) and e.item == b3:
                label = exhibits.get(e.parent, e.parent[:16])
                report.holders.append((e.by, f"derive from {label}", ev.index))
            elif isinstance(e, Handoff):
                report.holders.append((e.receiver, f"handoff from {e.sender}", ev.index))
            report.events.append(_listed(ev, exhibits, b3, self.indexes))

    def _sidecars(self, mi: ManifestItem, it: _Item, report: ItemReport) -> MediaRecord | None:
        e = it.typed
        metadata, content = e.metadata, e.content
        if not mi.sidecars:
            if report.disposed is not None and (metadata is not None or content is not None):
                report.checked.append(
                    "its metadata snapshot and packet lists left the evidence store with it"
                )
            elif metadata is not None or content is not None:
                self.fail(
                    "sidecar",
                    MANIFEST,
                    f"exhibit {mi.exhibit} has metadata and content digests in log entry "
                    f"{it.index}, but the bundle carries no sidecars for it",
                    _HINT_REEXPORT,
                    index=it.index,
                    item=report,
                )
            return None
        data: dict[str, bytes] = {}
        for kind in SIDECAR_KINDS:
            path = mi.sidecar(kind) or sidecar_path(mi.item, kind)
            raw = self.read(path, MAX_SIDECAR)
            if raw is None:
                self.fail(
                    "sidecar",
                    path,
                    f"is missing ({kind} of exhibit {mi.exhibit})",
                    _HINT_REEXPORT,
                    item=report,
                )
                return None
            data[kind] = raw
        try:
            record = MediaRecord(
                snapshot=data["probe"], framehash=data["framehash"], streamhash=data["streamhash"]
            )
        except FormatError as exc:
            kind = next((k for k in ("framehash", "streamhash") if k in exc.message), "probe")
            self.fail(
                "sidecar",
                mi.sidecar(kind) or sidecar_path(mi.item, kind),
                f"is malformed (the {kind} of exhibit {mi.exhibit}): {exc.message}",
                _HINT_REEXPORT,
                item=report,
            )
            return None
        ok = True
        if metadata is not None and record.metadata_digest != metadata:
            ok = False
            self._metadata_failure(mi, it, report, record, metadata)
        if content is not None and record.content_digest != content:
            ok = False
            self.fail(
                "sidecar",
                mi.sidecar("framehash") or sidecar_path(mi.item, "framehash"),
                f"the packet lists of exhibit {mi.exhibit} (framehash, streamhash) give content "
                f"digest {_short(record.content_digest)}, but log entry {it.index} (field "
                f"content) says {_short(content)}: the packet lists were altered",
                _HINT_REEXPORT,
                index=it.index,
                field="content",
                item=report,
            )
        for line in e.streams:
            # `<index> <type> <codec> <packets> <digest> [<extradata>]`: the layout has grown
            # over versions, so each stream's digest and packet count are looked up by value.
            parts = line.split(" ")
            # ASCII digits only (str.isdigit() accepts superscripts, which int() refuses),
            # and no more than a stream index can have (int() refuses 4300).
            if not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > _MAX_DIGITS:
                continue
            n = int(parts[0])
            have = next((s for s in record.streams if s.index == n), None)
            if have is None or have.digest not in parts or str(have.packets) not in parts:
                ok = False
                got = f"{have.packets} packets, {_short(have.digest)}" if have else "no stream"
                self.fail(
                    "sidecar",
                    mi.sidecar("streamhash") or sidecar_path(mi.item, "streamhash"),
                    f"stream {n} of exhibit {mi.exhibit}: the packet lists give {got}, but log "
                    f"entry {it.index} (field stream) says {line!r}",
                    _HINT_REEXPORT,
                    index=it.index,
                    field="stream",
                    item=report,
                )
        if ok:
            report.checked.append(f"metadata snapshot and packet lists match log entry {it.index}")
        return record

    def _metadata_failure(
        self, mi: ManifestItem, it: _Item, report: ItemReport, record: MediaRecord, want: str
    ) -> None:
        detail = ""
        if mi.media is not None and self.prober is not None:
            # The file is the evidence: if it still hashes to the entry's digest, its own
            # snapshot says which fields of the bundle's snapshot were edited.
            d = self.file_digests(mi.media)
            if d is not None and d.blake3_hex == mi.item:
                try:
                    fresh = self.prober.probe(mi.media, record.metadata.get("version"))
                except CustodyError:
                    fresh = None
                if fresh is not None and fresh.metadata_digest == want:
                    changes = diff_metadata(fresh.metadata, record.metadata)
                    if changes:
                        shown = "; ".join(c.describe() for c in changes[:3])
                        detail = f"; against the file itself: {shown}"
        self.fail(
            "sidecar",
            mi.sidecar("probe") or sidecar_path(mi.item, "probe"),
            f"the metadata snapshot of exhibit {mi.exhibit} hashes to "
            f"{_short(record.metadata_digest)}, but log entry {it.index} (field metadata) "
            f"says {_short(want)}: the snapshot was altered{detail}",
            _HINT_REEXPORT,
            index=it.index,
            field="metadata",
            item=report,
        )

    def _media(
        self,
        mi: ManifestItem,
        it: _Item,
        report: ItemReport,
        defined: Mapping[str, _Item],
        exhibits: Mapping[str, str],
    ) -> None:
        if mi.media is None:
            if report.disposed is not None:
                report.checked.insert(0, report.disposed.sentence())
            else:
                report.checked.append("the file itself is not in the bundle")
            return
        d = self.file_digests(mi.media)
        if d is None:
            self.fail(
                "media",
                mi.media,
                f"is missing: the manifest says exhibit {mi.exhibit} was exported with its file",
                _HINT_REEXPORT,
                item=report,
            )
            return
        size = it.typed.size
        if d.blake3_hex != mi.item or d.size != size:
            other = defined.get(d.blake3_hex)
            if other is not None:
                self.fail(
                    "media",
                    mi.media,
                    f"holds the bytes of exhibit {exhibits[d.blake3_hex]} "
                    f"({other.typed.name}), not those of exhibit {mi.exhibit} "
                    f"({mi.name}): the media files were swapped",
                    _HINT_REEXPORT,
                    index=it.index,
                    field="item",
                    item=report,
                )
                return
            detail = ""
            if self.prober is not None and it.record is not None:
                try:
                    fresh = self.prober.probe(mi.media, it.record.metadata.get("version"))
                    verdict = classify(
                        Record(mi.item, size, it.record),
                        Record(d.blake3_hex, d.size, fresh),
                    )
                    detail = f"; {verdict.summary}"
                except CustodyError as exc:
                    detail = f"; it cannot be re-probed: {exc.message}"
            sizes = "" if d.size == size else f" ({d.size:,} bytes, the log says {size:,})"
            self.fail(
                "media",
                mi.media,
                f"is not the file of exhibit {mi.exhibit} that log entry {it.index} recorded: "
                f"its BLAKE3 is {_short(d.blake3_hex)}, the log says {_short(mi.item)} "
                f"(field item){sizes}: the file was altered{detail}",
                "compare with the agency's evidence store; this copy is not the evidence",
                index=it.index,
                field="item",
                item=report,
            )
            return
        sha = it.typed.sha256
        if sha is not None and d.sha256_hex != sha:
            self.fail(
                "media",
                mi.media,
                f"its SHA-256 is {_short(d.sha256_hex or '')}, log entry {it.index} (field "
                f"sha256) says {_short(sha)}",
                index=it.index,
                field="sha256",
                item=report,
            )
            return
        report.checked.insert(
            0,
            f"file bit-for-bit as recorded (BLAKE3 {_short(mi.item)}, {d.size:,} bytes"
            + (", SHA-256 too" if sha else "")
            + ")",
        )
        self._reprobe(mi, it, report)

    def _reprobe(self, mi: ManifestItem, it: _Item, report: ItemReport) -> None:
        e = it.typed
        metadata, content = e.metadata, e.content
        if self.prober is None or mi.media is None or (metadata is None and content is None):
            return
        try:
            version = None if it.record is None else it.record.metadata.get("version")
            fresh = self.prober.probe(mi.media, version)
        except CustodyError as exc:
            self.report.notes.append(f"{mi.media} could not be re-probed: {exc.message}")
            return
        same_tool = e.tool == self.prober.tool
        got = (fresh.metadata_digest, fresh.content_digest) if fresh is not None else (None, None)
        if got == (metadata, content):
            report.checked.append(f"re-probed with {self.prober.tool}: identical")
            return
        changes = ""
        if fresh is not None and it.record is not None:
            diff = diff_metadata(it.record.metadata, fresh.metadata)
            if diff:
                changes = ": " + "; ".join(c.describe() for c in diff[:3])
        if same_tool:
            self.fail(
                "media",
                mi.media,
                f"re-probed with {self.prober.tool} (the tool log entry {it.index} names), it "
                "does not give the metadata and content digests the log recorded: the "
                f"recorded measurements do not describe this file{changes}",
                index=it.index,
                field="metadata",
                item=report,
            )
        else:
            self.report.notes.append(
                f"{mi.media}: re-probed with {self.prober.tool}, which prints the snapshot "
                f"differently from {e.tool or 'the ingesting tool'}{changes} (not counted)"
            )

    def _lineage(
        self, it: _Item, defined: Mapping[str, _Item], exhibits: Mapping[str, str]
    ) -> None:
        """Re-prove a derived item from the packet lists in the bundle (custody.media.lineage).

        A trim is proven whole (a contiguous run of the parent's packets covering
        the declared range); a redaction or transcode that declares its sound
        copied has that part proven; the rest of those is declared, not proven.
        """
        e = it.typed
        report = it.report
        if not isinstance(e, Derive) or report is None:
            return
        parent = defined.get(e.parent)
        label = exhibits.get(e.parent, e.parent[:16])
        op = e.op
        records = (
            None
            if parent is None or parent.record is None or it.record is None
            else (parent.record.packets, it.record.packets)
        )
        if op != "trim":
            params = "; ".join(e.params)
            report.checked.append(
                f"a declared {op} of {label} (log entry {it.index}"
                + (f": {params})" if params else ")")
            )
            if records is not None and op in ("redact", "transcode"):
                self._copied_sound(it, e, report, label, records)
            return
        if records is None:
            report.checked.append(f"a declared trim of {label}; packets not compared")
            return
        try:
            declared = trim_range(dict(derive_params(e.params, it.index)))
        except VerificationError:
            # Entries written by other tools may state the range otherwise
            # (HH:MM:SS, say): the excerpt is still proven a contiguous run, only
            # its coverage of the range goes unchecked, and the verdict says so.
            declared = None
        try:
            if declared is None:
                run = is_contiguous_run(*records)
            else:
                run = prove_trim(*records, start=declared[0], end=declared[1]).run
        except VerificationError as exc:
            self._lineage_failed(it, report, f"a trim of {label}", exc)
            return
        report.checked.append(f"an excerpt of {label}: {run.summary}")
        if declared is None:
            self.report.notes.append(
                f"exhibit {report.exhibit}: its trim's declared range is not in decimal seconds "
                "(docs/spec/entry.md), so the excerpt was not checked to cover it"
            )

    def _copied_sound(
        self,
        it: _Item,
        e: Derive,
        report: ItemReport,
        label: str,
        records: tuple[PacketList, PacketList],
    ) -> None:
        """Prove the sound a redaction or transcode declares copied is its parent's, packet
        for packet (`prove_audio_copied`)."""
        op = e.op
        try:
            params = dict(derive_params(e.params, it.index))
            if params.get("audio-codec") != "copy":
                return
            copies = prove_audio_copied(*records)
        except VerificationError as exc:
            self._lineage_failed(it, report, f"a {op} of {label} with its sound copied", exc)
            return
        for a in copies:
            report.checked.append(f"the sound of the {op}, declared copied: {a.describe()}")

    def _lineage_failed(
        self, it: _Item, report: ItemReport, what: str, exc: VerificationError
    ) -> None:
        self.fail(
            "lineage",
            sidecar_path(it.typed.item, "framehash"),
            f"exhibit {report.exhibit} is recorded as {what} (log entry {it.index}), "
            f"but {exc.message}",
            "the excerpt is not what its derive entry says it is"
            if isinstance(it.typed, Derive) and it.typed.op == "trim"
            else "the copy is not what its derive entry says it is",
            index=it.index,
            field="parent",
            item=report,
        )

    # -- 12. cosignatures -----------------------------------------------------------------------

    def _cosignatures(self, cp_bytes: bytes, log_key: VerifierKey, parties: Parties) -> None:
        keys: dict[tuple[str, bytes], tuple[VerifierKey, str | None, bool]] = {}
        for history in parties.keys.values():
            for pk in history:
                k = VerifierKey(pk.name, ALG_COSIGNATURE_V1, pk.vkey.public)
                keys[(k.name, k.key_id)] = (k, pk.role, False)
        for given in (*self.trust.keys, *self.policy.witnesses):
            if given.name == log_key.name and given.alg == ALG_ED25519:
                continue
            k = VerifierKey(given.name, ALG_COSIGNATURE_V1, given.public)
            role = keys.get((k.name, k.key_id), (k, None, True))[1]
            keys[(k.name, k.key_id)] = (k, role, True)
        try:
            opened = open_checkpoint(cp_bytes, log_key, [k for k, _, _ in keys.values()])
        except CustodyError as exc:
            self.fail(
                "cosignature",
                CHECKPOINT,
                f"a witness cosignature does not verify: {exc.message}",
                "the checkpoint's cosignature lines were altered",
            )
            return
        for key, timestamp in opened.cosignatures:
            _, role, trusted = keys[(key.name, key.key_id)]
            self.report.cosignatures.append(Cosignature(key.name, role, timestamp, trusted))
            self.cosigned.add((key.name, key.key_id))
        cosigners = {c.name for c in self.report.cosignatures if c.trusted}
        for name in sorted({k.name for k, _, trusted in keys.values() if trusted} - cosigners):
            self.report.notes.append(
                f"{name} (a key given with --trust) did not cosign the bundle's checkpoint"
            )

    # -- policies (docs/verify-bundle.md, "Policies") ---------------------------------------

    def _witness_policy(self) -> None:
        witnesses = {
            (k.name, k.key_id): k
            for k in (
                VerifierKey(w.name, ALG_COSIGNATURE_V1, w.public) for w in self.policy.witnesses
            )
        }
        if not witnesses:
            count = len(self.report.cosignatures)
            self.report.policies.append(
                PolicyCheck(
                    "witnesses",
                    False,
                    True,
                    f"the checkpoint carries {count} cosignature{'' if count == 1 else 's'}; "
                    "give --witness VKEY (and --quorum N) to require cosignatures by "
                    "witnesses you trust",
                )
            )
            return
        quorum = len(witnesses) if self.policy.quorum is None else self.policy.quorum
        signed = sorted(name for (name, kid) in witnesses if (name, kid) in self.cosigned)
        missing = sorted(name for (name, kid) in witnesses if (name, kid) not in self.cosigned)
        ok = len(signed) >= quorum
        detail = (
            f"{len(signed)} of the {len(witnesses)} witnesses given with --witness cosigned "
            f"the checkpoint ({', '.join(signed) or 'none'}); {quorum} required"
        )
        if missing:
            detail += f"; no valid cosignature by {', '.join(missing)}"
        self.report.policies.append(PolicyCheck("witnesses", True, ok, detail))
        if not ok:
            self.fail(
                "witnesses",
                CHECKPOINT,
                f"only {len(signed)} of the {quorum} witness cosignatures required by --quorum "
                f"are on the checkpoint (missing: {', '.join(missing)})",
                "ask the agency for a bundle whose checkpoint the witnesses cosigned "
                "(custody log witness, then export), or check which witnesses you require",
            )

    def _published_policy(self, cp_bytes: bytes) -> None:
        check = self.policy.published
        if check is None:
            self.report.policies.append(
                PolicyCheck(
                    "published",
                    False,
                    True,
                    "give --published SOURCE (the log's published tiles) to check that the "
                    "bundle's checkpoint is the log everyone else sees",
                )
            )
            return
        try:
            result = check(cp_bytes)
        except VerificationError as exc:
            self.report.policies.append(PolicyCheck("published", True, False, exc.message))
            self.fail("published", CHECKPOINT, exc.message, exc.hint)
            return
        self.report.policies.append(result)
        if result.checked and not result.ok:
            self.fail("published", CHECKPOINT, result.detail)

    # -- trusted time (docs/spec/timestamp.md) -----------------------------------------------

    def _timestamp_policy(
        self,
        manifest: Manifest,
        cp_bytes: bytes,
        cp: Checkpoint,
        verified_old: Mapping[int, ConsistencyFile],
        signed: Mapping[int, SignedEntry],
    ) -> None:
        """Verify `timestamps/<size>.tst` against --tsa-cert and bound each entry's time."""
        from datetime import timedelta

        from custody.model.times import claimed_time

        paths = sorted(
            (p for p in manifest.files if p.startswith("timestamps/")),
            key=lambda p: (timestamp_size(p) or 0, p),
        )
        count = f"{len(paths)} timestamp token{'' if len(paths) == 1 else 's'}"
        if not self.policy.tsa_certs:
            self.report.policies.append(
                PolicyCheck(
                    "timestamps",
                    False,
                    True,
                    f"the bundle holds {count}; give --tsa-cert to check them and bound "
                    "when each entry was appended",
                )
            )
            return
        trusted = []
        for n, data in enumerate(self.policy.tsa_certs):
            try:
                trusted += load_certificates(data, f"--tsa-cert #{n + 1}")
            except CustodyError as exc:
                self.report.policies.append(PolicyCheck("timestamps", True, False, exc.message))
                self.fail("timestamps", "--tsa-cert", exc.message, exc.hint)
                return
        bodies = {cp.size: cp_bytes}
        bodies.update({s: cf.old_checkpoint for s, cf in verified_old.items() if cf.old_checkpoint})
        stamps: list[VerifiedStamp] = []
        bad = 0
        for path in paths:
            size = timestamp_size(path)
            if size is None:
                self.fail(
                    "timestamps", path, "is not a name custody writes (timestamps/<size>.tst)"
                )
                bad += 1
                continue
            note = bodies.get(size)
            if note is None:
                self.fail(
                    "timestamps",
                    path,
                    f"stamps a checkpoint of size {size}, which the bundle does not hold "
                    f"(neither {CHECKPOINT} nor a verified {consistency_path(size)})",
                    _HINT_REEXPORT,
                )
                bad += 1
                continue
            raw = self.read(path, MAX_TOKEN)
            if raw is None:
                continue  # reported by the files check
            try:
                token = Token.parse(raw, path)
                body = Note.parse(note).text.encode("utf-8")
                stamps.append(verify_token(token, body, size, trusted, path))
            except CustodyError as exc:
                self.fail("timestamps", path, exc.message.removeprefix(f"{path}: "), exc.hint)
                bad += 1
        self.report.timestamps = stamps
        if not stamps:
            detail = (
                f"--tsa-cert was given, but none of the bundle's {count} verified"
                if paths
                else "--tsa-cert was given, but the bundle holds no timestamp token"
            )
            self.report.policies.append(PolicyCheck("timestamps", True, False, detail))
            if not paths:
                self.fail(
                    "timestamps",
                    "timestamps/",
                    "the bundle holds no RFC 3161 timestamp token, but --tsa-cert asks for "
                    "trusted time",
                    "ask the agency to run 'custody log timestamp' after its checkpoints, "
                    "then export again",
                )
            return
        entries = {
            i: (s.entry.type, f"{s.entry.type} by {', '.join(s.signer_names)}", claimed_time(s))
            for i, s in signed.items()
        }
        tolerance = timedelta(seconds=self.policy.time_tolerance)
        self.report.times = check_times(entries, stamps, tolerance)
        outside = [t for t in self.report.times if t.failed]
        for t in outside:
            self.fail(
                "timestamps",
                entry_path(t.index),
                t.sentence(),
                f"more than the {self.policy.time_tolerance} s tolerance (--time-tolerance): "
                "the signer's clock was wrong, the time was falsified, or the entry was "
                "signed long before it reached the log",
                index=t.index,
            )
        tsas = ", ".join(sorted({s.tsa for s in stamps}))
        n = len(stamps)
        detail = f"{n} RFC 3161 token{'' if n == 1 else 's'} by {tsas} verified"
        if bad:
            detail += f" ({bad} did not)"
        if outside:
            one = len(outside) == 1
            detail += (
                f"; {len(outside)} entr{'y' if one else 'ies'} claim{'s' if one else ''} a "
                f"time outside {'its' if one else 'their'} interval (log "
                f"entr{'y' if one else 'ies'} {', '.join(str(t.index) for t in outside)})"
            )
        else:
            detail += "; every entry's claimed time within its interval"
        self.report.policies.append(PolicyCheck("timestamps", True, not (bad or outside), detail))

    # -- 13. files ----------------------------------------------------------------------------

    def _sums(self, manifest: Manifest) -> None:
        """Step 13a: media/B3SUMS and media/SHA256SUMS (spec §2.2) list every media file of
        the manifest, once, with its BLAKE3 (the item) and the manifest's SHA-256."""
        media = {mi.media: mi.item for mi in manifest.items if mi.media is not None}
        listed = [path for path in SUMS_FILES if path in manifest.files]
        if not listed:
            if media:
                self.report.notes.append(
                    f"the bundle has no {B3SUMS} or {SHA256SUMS} (exported by an older "
                    "custody): the media can be checked only with custody"
                )
            return
        expected = {
            B3SUMS: media,
            SHA256SUMS: {
                path: manifest.files[path].sha256 for path in media if path in manifest.files
            },
        }
        for path in SUMS_FILES:
            if path not in listed:
                self.fail(
                    "sums",
                    path,
                    f"is not in the manifest, though {listed[0]} is: an exporter writes both",
                    _HINT_REEXPORT,
                )
                continue
            data = self.read(path, MAX_MANIFEST)
            if data is None:
                continue  # step 13 reports it missing
            try:
                sums = parse_sums(data, path)
            except FormatError as exc:
                self.fail("sums", path, exc.message.removeprefix(f"{path} "), _HINT_REEXPORT)
                continue
            problems = []
            want = expected[path]
            for name in sorted(want.keys() - sums.keys()):
                problems.append(f"does not list {name.removeprefix(MEDIA_DIR)}")
            for name in sorted(sums.keys() - want.keys()):
                problems.append(
                    f"lists {name.removeprefix(MEDIA_DIR)}, not a media file of the manifest"
                )
            for name in sorted(sums.keys() & want.keys()):
                if sums[name] != want[name]:
                    problems.append(
                        f"gives {name.removeprefix(MEDIA_DIR)} the digest {_short(sums[name])}, "
                        f"the manifest {_short(want[name])}"
                    )
            if problems:
                shown = "; ".join(problems[:3])
                more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
                self.fail(
                    "sums",
                    path,
                    f"disagrees with the manifest: {shown}{more}",
                    "a tool checking the media with this file would be misled; " + _HINT_REEXPORT,
                )

    def _files(self, manifest: Manifest) -> None:
        for path, info in sorted(manifest.files.items()):
            if path in self.failed_paths:
                continue
            if path not in self.names:
                self.fail("file", path, "is missing: the manifest lists it", _HINT_REEXPORT)
                continue
            data = self.cache.get(path)
            if data is not None:
                size, sha = len(data), hashlib.sha256(data).hexdigest()
            else:
                d = self.file_digests(path)
                if d is None:  # pragma: no cover - listed in names
                    continue
                size, sha = d.size, d.sha256_hex or ""
            if size != info.size or sha != info.sha256:
                self.fail(
                    "file",
                    path,
                    f"was altered after export: its SHA-256 is {_short(sha)} ({size:,} bytes), "
                    f"the manifest, which the log's signed statement vouches for, says "
                    f"{_short(info.sha256)} ({info.size:,} bytes)",
                    _HINT_REEXPORT,
                )
        for name in sorted(self.names - set(manifest.files) - {MANIFEST, STATEMENT}):
            if name in self.failed_paths:
                continue
            self.fail(
                "file",
                name,
                "is not part of the export (the manifest does not list it): it was added to "
                "the bundle afterwards",
                "ignore this file; nothing vouches for it",
            )


def _listed(
    ev: Event, exhibits: Mapping[str, str], b3: str | None, indexes: Mapping[str, int]
) -> Event:
    """One entry as the verdict lists it: with the sentence `custody.model.describe` gives
    it from the point of view of item `b3` (None: the case's own events), naming the
    entries it refers to by their index (`indexes`: entry hash -> index)."""
    return replace(ev, what=ev.describe(about=b3, exhibits=exhibits, indexes=indexes))


def parties_needed(events: Iterable[Event]) -> dict[str, int]:
    """The parties whose key timeline a bundle of these entries must carry (spec §2.1):
    everyone who signs or is named by a non-key entry, each with the first such entry.

    An entry this version cannot type contributes its signers only; a `policy` entry
    none (the log key signs it, and the log key is no party).
    """
    needed: dict[str, int] = {}
    for ev in sorted(events, key=lambda e: e.index):
        if ev.type in ("key", "policy"):
            continue
        typed = ev.typed
        for name in (*ev.signers, *(named_parties(typed) if typed is not None else ())):
            needed.setdefault(name, ev.index)
    return needed


def cosigner_names(checkpoint: bytes, origin: str) -> tuple[str, ...]:
    """The names on the cosignature lines of a signed checkpoint (every signer but the log).

    Raises FormatError if the note does not parse.
    """
    return tuple(s.name for s in Note.parse(checkpoint).signatures if s.name != origin)


def select_entries(
    events: Iterable[Event],
    *,
    size: int | None = None,
    cosigners: Collection[str] = (),
) -> list[int]:
    """The indexes of the entries a bundle carries, chosen from the case's entries and
    candidate key entries (spec §2.1), ascending.

    Kept: every non-key entry; every key entry (register, rotate, revoke) of a party that
    one of those signs or names (`parties_needed`), or whose name is in `cosigners` (the
    witnesses on the bundle's checkpoint).  Of key entries only those below `size` (the
    checkpoint's tree size, when it is known) can be proven, so only those are kept.
    """
    listed = sorted(events, key=lambda e: e.index)
    wanted = set(parties_needed(listed)) | set(cosigners)
    kept = []
    for ev in listed:
        if ev.type != "key":
            kept.append(ev.index)
            continue
        typed = ev.typed
        if (
            isinstance(typed, KeyEvent)
            and typed.party in wanted
            and (size is None or ev.index < size)
        ):
            kept.append(ev.index)
    return kept


def parties_of(events: Iterable[Event]) -> Parties:
    """The party key timeline from the key entries among `events` (in index order).

    Raises EntryError if a key entry breaks a key rule (`custody.model.parties`).
    """
    parties = Parties()
    for ev in sorted(events, key=lambda e: e.index):
        if ev.type == "key":
            parties.apply(ev.index, ev.entry)
    return parties
