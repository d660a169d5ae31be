"""Monitoring a published log (`custody monitor`), and `verify-bundle --published`.

A monitor fetches a log's published checkpoint (C2SP tlog-tiles, docs/spec/tiles.md),
verifies the log's signature and the cosignatures of the witnesses it was given, and
compares the tree with the last one it saw for that origin (its state, one file per
origin in the state folder):

* a smaller tree is a shrunk log, the same size with another root a fork;
* a larger tree must be consistent with the old one: the RFC 9162 consistency proof is
  computed from the published tiles themselves and verified against both roots, so a
  rewritten history fails however the publisher arranged its tiles;
* every tile new since then is checked: each full tile hashes to its parent in the tile
  above, and the tree hash computed from the tiles is the checkpoint's root.

Any of these is a `VerificationError` (exit 1) and leaves the state as it was.  With no
state for the origin the monitor trusts the tree on first use, checks every tile, and
says so.  The state is replaced atomically after the checks
(crash point ``monitor.state-saved``).

`published_check` is the same comparison for one bundle's checkpoint, as the
``published`` policy of `custody.bundle.verify.Policy`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.bundle.verify import PolicyCheck
from custody.errors import (
    FormatError,
    StorageError,
    VerificationError,
)
from custody.infra.crash import crash_point
from custody.infra.files import replace_durably
from custody.infra.tilesource import TileSource, open_source
from custody.tlog import merkle
from custody.tlog.checkpoint import Checkpoint, VerifiedCheckpoint, open_checkpoint
from custody.tlog.note import Note, VerifierKey
from custody.tlog.tiles import CHECKPOINT_PATH, Tile, TileReader, new_tiles, tiles_for_size

__all__ = [
    "ENV_MONITOR",
    "STATE_V1",
    "MonitorReport",
    "MonitorState",
    "default_state_dir",
    "monitor",
    "published_check",
]

STATE_V1 = "custody/monitor-state/v1"
ENV_MONITOR = "CUSTODY_MONITOR"
_MAX_STATE = 1 << 20


def default_state_dir() -> Path:
    """$CUSTODY_MONITOR, else $XDG_STATE_HOME/custody/monitor, else
    ~/.local/state/custody/monitor."""
    env = os.environ.get(ENV_MONITOR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "custody" / "monitor"


def _short(h: bytes) -> str:
    return base64.b64encode(h).decode()[:12] + "..."


@dataclass(frozen=True)
class MonitorState:
    """The last tree a monitor verified for one origin (docs/spec/tiles.md, "Monitor")."""

    origin: str
    size: int
    root: bytes
    checkpoint: bytes  # the signed note, as fetched
    source: str

    def encode(self) -> bytes:
        doc = {
            "format": STATE_V1,
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "checkpoint": self.checkpoint.decode("utf-8"),
            "source": self.source,
        }
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, where: str) -> MonitorState:
        """Raises FormatError naming `where` and the field."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise FormatError(f"{where} is not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != STATE_V1:
            raise FormatError(f"{where}: format is not {STATE_V1}")
        try:
            origin, size, root, note, source = (
                doc["origin"],
                doc["size"],
                doc["root"],
                doc["checkpoint"],
                doc["source"],
            )
        except KeyError as exc:
            raise FormatError(f"{where}: field {exc.args[0]} is missing") from None
        if not isinstance(origin, str) or not isinstance(source, str):
            raise FormatError(f"{where}: origin and source must be strings")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= merkle.MAX_SIZE:
            raise FormatError(f"{where}: size must be a whole number in 0..2^64-1")
        if not isinstance(note, str):
            raise FormatError(f"{where}: checkpoint must be a string")
        try:
            raw = base64.b64decode(root, validate=True) if isinstance(root, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != merkle.HASH_SIZE:
            raise FormatError(f"{where}: root must be a base64 SHA-256 hash")
        return cls(origin, size, raw, note.encode("utf-8"), source)


def _state_path(state_dir: Path, origin: str) -> Path:
    return state_dir / f"{hashlib.sha256(origin.encode('utf-8')).hexdigest()}.json"


def _load_state(state_dir: Path, origin: str) -> MonitorState | None:
    path = _state_path(state_dir, origin)
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_STATE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read the monitor state {path}: {exc.strerror or exc}") from None
    state = MonitorState.parse(data, str(path))
    if state.origin != origin:
        raise FormatError(f"{path} is the state of '{state.origin}', not of '{origin}'")
    return state


@dataclass(frozen=True)
class MonitorReport:
    """What one monitor run found (all checks passed)."""

    source: str
    origin: str
    size: int
    root: bytes
    previous: int | None  # None: first run (trust on first use)
    tiles_checked: int
    full_tiles_checked: int
    cosigned_by: tuple[str, ...]
    state_file: Path

    def verdict(self) -> str:
        tiles = (
            f"{self.full_tiles_checked} {'new ' if self.previous is not None else ''}"
            f"full tile{'' if self.full_tiles_checked == 1 else 's'} verified"
        )
        witnessed = f"; cosigned by {', '.join(self.cosigned_by)}" if self.cosigned_by else ""
        if self.previous is None:
            return (
                f"log {self.origin}: size {self.size}, first seen: trusted on first use "
                f"(no earlier state); {tiles}, tree hash matches the checkpoint{witnessed}"
            )
        if self.previous == self.size:
            return f"log {self.origin}: size {self.size}, unchanged{witnessed}"
        return (
            f"log {self.origin}: size {self.previous} → {self.size}, consistent; {tiles}{witnessed}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "source": self.source,
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "previous_size": self.previous,
            "first_seen": self.previous is None,
            "tiles_checked": self.tiles_checked,
            "full_tiles_checked": self.full_tiles_checked,
            "cosigned_by": list(self.cosigned_by),
            "state_file": str(self.state_file),
            "verdict": self.verdict(),
        }


def _fetch_checkpoint(
    src: TileSource, log_key: VerifierKey, witnesses: Sequence[VerifierKey] = ()
) -> VerifiedCheckpoint:
    where = src.where(CHECKPOINT_PATH)
    data = src.read(CHECKPOINT_PATH)
    try:
        return open_checkpoint(data, log_key, witnesses)
    except VerificationError as exc:
        raise VerificationError(f"{where}: {exc.message}", exc.hint) from None
    except FormatError as exc:
        raise FormatError(f"{where}: {exc.message}", exc.hint) from None


def _check_tiles(src: TileSource, reader: TileReader, root: bytes, tiles: Sequence[Tile]) -> int:
    try:
        return reader.verify(root, tiles)
    except VerificationError as exc:
        raise VerificationError(f"{src.base}: {exc.message}", exc.hint) from None


def monitor(
    source: str,
    log_key: VerifierKey,
    *,
    witnesses: Sequence[VerifierKey] = (),
    state_dir: Path | None = None,
) -> MonitorReport:
    """Check the log published at `source` against the last tree seen (see the module).

    `witnesses` are cosignature/v1 keys: a cosignature by one of them must verify (none
    is required).  Raises VerificationError (exit 1) on a bad signature, a shrunk log,
    a fork, a rewritten history or a tile that does not hash to its parent; InputError
    when the source cannot be read; StorageError when the state cannot be saved.
    """
    state_dir = default_state_dir() if state_dir is None else state_dir
    src = open_source(source)
    verified = _fetch_checkpoint(src, log_key, witnesses)
    cp = verified.checkpoint
    state = _load_state(state_dir, cp.origin)
    reader = TileReader(src.read, cp.size)
    if state is None:
        tiles = tiles_for_size(cp.size)
        full = _check_tiles(src, reader, cp.root, tiles)
    else:
        if cp.size < state.size:
            raise VerificationError(
                f"log {cp.origin} shrank: {src.base} publishes size {cp.size}, but this "
                f"monitor saw size {state.size} (root {_short(state.root)})",
                hint="a log only grows: the published log was rolled back or replaced",
            )
        if cp.size == state.size and cp.root != state.root:
            raise VerificationError(
                f"log {cp.origin} forked: {src.base} publishes size {cp.size} with root "
                f"{_short(cp.root)}, but this monitor saw root {_short(state.root)} at that size",
                hint="two different trees signed by the log key: keep both checkpoints as "
                f"evidence (the earlier one is in {_state_path(state_dir, cp.origin)})",
            )
        tiles = new_tiles(state.size, cp.size)
        full = _check_tiles(src, reader, cp.root, tiles)
        if cp.size > state.size:
            try:
                proof = reader.consistency_proof(state.size, cp.size)
                merkle.verify_consistency(state.size, cp.size, state.root, cp.root, proof)
            except VerificationError as exc:
                raise VerificationError(
                    f"log {cp.origin} rewrote its history: the tree of size {cp.size} "
                    f"published at {src.base} is not consistent with size {state.size} "
                    f"(root {_short(state.root)}) that this monitor saw ({exc.message})",
                    hint="the log signed two histories: keep both checkpoints as evidence "
                    f"(the earlier one is in {_state_path(state_dir, cp.origin)})",
                ) from None
    new = MonitorState(cp.origin, cp.size, cp.root, verified.note.encode(), src.base)
    path = _state_path(state_dir, cp.origin)
    if state is None or state.encode() != new.encode():
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot make {state_dir}: {exc.strerror or exc}") from None
        replace_durably(path, new.encode())
        crash_point("monitor.state-saved")
    return MonitorReport(
        source=src.base,
        origin=cp.origin,
        size=cp.size,
        root=cp.root,
        previous=None if state is None else state.size,
        tiles_checked=len(tiles),
        full_tiles_checked=full,
        cosigned_by=tuple(k.name for k, _ in verified.cosignatures),
        state_file=path,
    )


def published_check(source: str, log_key: VerifierKey) -> Callable[[bytes], PolicyCheck]:
    """The ``published`` policy of verify-bundle: compare a bundle's checkpoint with the
    log published at `source`.

    The returned function takes the bundle's checkpoint note (already verified with the
    log key).  The same size: the roots must be equal.  Published larger: the RFC 9162
    consistency proof from the bundle's size to the published one, computed from the
    published tiles, must verify against both roots.  Either failing is a
    VerificationError (a split view: the bundle's tree is not the one published).
    Published size smaller: not checked (a consistency proof from the published size
    to the bundle's would be needed), and the detail says so.  Fetch errors are InputError (exit 3).
    """

    def check(note: bytes) -> PolicyCheck:
        mine = Checkpoint.parse(Note.parse(note).text)
        src = open_source(source)
        published = _fetch_checkpoint(src, log_key).checkpoint
        if published.origin != mine.origin:  # pragma: no cover - both verified by log_key
            raise VerificationError(f"{src.base} publishes '{published.origin}'")
        if published.size < mine.size:
            return PolicyCheck(
                "published",
                False,
                False,
                f"the log published at {src.base} has size {published.size}, smaller than "
                f"the bundle's checkpoint ({mine.size}): the bundle's tree cannot be checked "
                "against it until the log publishes size "
                f"{mine.size} or more (ask the agency to run 'custody log publish')",
            )
        split = (
            f"the bundle's checkpoint (size {mine.size}, root {_short(mine.root)}) is not "
            f"in the log published at {src.base} (size {published.size}, root "
            f"{_short(published.root)})"
        )
        hint = (
            "the agency showed this bundle a different history than it publishes "
            "(a split view or a rewritten log)"
        )
        if published.size == mine.size:
            if published.root != mine.root:
                raise VerificationError(f"{split}: the same size with another root", hint)
        else:
            # The consistency proof, computed from the published tiles, ties the bundle's
            # root to the published one; tiles that were not authenticated cannot pass.
            reader = TileReader(src.read, published.size)
            try:
                proof = reader.consistency_proof(mine.size, published.size)
            except VerificationError as exc:
                raise VerificationError(f"{src.base}: {exc.message}", exc.hint) from None
            try:
                merkle.verify_consistency(
                    mine.size, published.size, mine.root, published.root, proof
                )
            except VerificationError as exc:
                raise VerificationError(f"{split}: {exc.message}", hint) from None
        same = "the same tree" if published.size == mine.size else f"size {published.size}"
        return PolicyCheck(
            "published",
            True,
            True,
            f"the bundle's checkpoint (size {mine.size}) is in the log published at "
            f"{src.base} ({same}; consistency proven from its tiles)",
        )

    return check
