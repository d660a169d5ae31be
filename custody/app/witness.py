"""Witnesses: cosigning a log's checkpoints, and the log's store of cosignatures.

A witness (a court clerk, a defence team) cosigns a checkpoint to say "at this
time this was the largest tree of this log I had seen, and it extends every
tree I cosigned before" (c2sp.org/tlog-witness).  `cosign_checkpoint` keeps
that promise: it remembers, per origin, the last size and root it cosigned
(`WitnessStore`, in the witness's custody home), requires an RFC 9162
consistency proof from there, and refuses a rollback or a fork (the rule is
`custody.tlog.witness.check_extends`, worded by `check_update`; the errors are
re-exported from there).  `add_checkpoint` is the same decision for an HTTP
request (c2sp.org/tlog-witness add-checkpoint, `custody witness serve`), with the
same state and lock; docs/spec/witness-http.md.

The log takes cosigned checkpoints back with `add_cosignature` (custody log
add-cosignature) and keeps them in `CosignatureStore`, write-once files in its
home; `merged_checkpoint` appends every stored cosignature line to a
checkpoint, which is how exports carry them.  docs/spec/bundle.md §8.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from custody.app.home import Custody
from custody.bundle.verify import ConsistencyFile, load_json
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    NotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.infra.crash import crash_point
from custody.infra.files import replace_durably, write_new
from custody.model.parties import Parties
from custody.tlog.checkpoint import Checkpoint, cosign, open_checkpoint
from custody.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Note,
    NoteSignature,
    SignatureError,
    Signer,
    VerifierKey,
    append_signatures,
)
from custody.tlog.witness import (
    ForkError,
    LogMismatchError,
    ProofNeededError,
    RollbackError,
    check_extends,
)
from custody.tlog.witnessproto import AddCheckpoint, check_request

__all__ = [
    "STATE_V1",
    "WITNESS_ROLES",
    "CosignatureStore",
    "ForkError",
    "LogMismatchError",
    "RollbackError",
    "UnknownLogError",
    "WitnessState",
    "WitnessStore",
    "add_checkpoint",
    "add_cosignature",
    "check_update",
    "check_witness_update",
    "cosign_checkpoint",
    "cosignature_keys",
    "merged_checkpoint",
]

STATE_V1 = "custody/witness-state/v1"
WITNESS_ROLES = ("court", "defence", "witness")
_MAX_NOTE = 1 << 20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…"


# ---------------------------------------------------------------------------------
# The witness's memory


@dataclass(frozen=True)
class WitnessState:
    """What a witness last cosigned for one log: size, root, the note, and the log key."""

    origin: str
    log_key: VerifierKey
    size: int
    root: bytes
    checkpoint: bytes
    cosigned_at: int

    def encode(self) -> bytes:
        obj = {
            "version": STATE_V1,
            "origin": self.origin,
            "log_key": self.log_key.encode(),
            "size": self.size,
            "root": _b64(self.root),
            "checkpoint": self.checkpoint.decode("utf-8"),
            "cosigned_at": self.cosigned_at,
        }
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, where: str) -> WitnessState:
        """Parse a state file; FormatError naming the file and field."""
        obj = load_json(data, where)
        try:
            if obj.get("version") != STATE_V1:
                raise FormatError(f"{where}: version is not {STATE_V1}")
            note = str(obj["checkpoint"]).encode("utf-8")
            cp = Checkpoint.parse(Note.parse(note).text)
            state = cls(
                origin=str(obj["origin"]),
                log_key=VerifierKey.parse(str(obj["log_key"])),
                size=int(obj["size"]),
                root=base64.b64decode(str(obj["root"]), validate=True),
                checkpoint=note,
                cosigned_at=int(obj["cosigned_at"]),
            )
        except FormatError as exc:
            raise FormatError(f"{where}: {exc.message}", hint="restore it from a backup") from None
        except (KeyError, ValueError, TypeError) as exc:
            raise FormatError(
                f"{where} is damaged: {exc}", hint="restore it from a backup"
            ) from None
        if (cp.origin, cp.size, cp.root) != (state.origin, state.size, state.root):
            raise FormatError(f"{where}: its checkpoint disagrees with its size and root")
        return state


class WitnessStore:
    """Per-origin witness state in `<home>/witness/<sha256(origin)>.json`."""

    def __init__(self, home_root: Path) -> None:
        self.root = home_root / "witness"

    def path(self, origin: str) -> Path:
        return self.root / f"{hashlib.sha256(origin.encode('utf-8')).hexdigest()}.json"

    @contextlib.contextmanager
    def locked(self, origin: str) -> Iterator[None]:
        """Hold the origin's lock: two cosignings at once must not both see the old state."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path(origin).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot use the witness state in {self.root}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self, origin: str) -> WitnessState | None:
        path = self.path(origin)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the witness state {path}: {exc.strerror}") from exc
        state = WitnessState.parse(data, str(path))
        if state.origin != origin:
            raise StorageError(f"{path} holds the state of another log ({state.origin})")
        return state

    def save(self, state: WitnessState) -> None:
        replace_durably(self.path(state.origin), state.encode())
        crash_point("witness.state-saved")


def check_witness_update(
    state: WitnessState | None, cp: Checkpoint, proof: ConsistencyFile | None
) -> None:
    """Decide whether a witness may cosign `cp` after `state` (c2sp.org/tlog-witness).

    The rule itself is `custody.tlog.witness.check_extends`; this words its
    refusals for a witness and checks that a proof file is between the right sizes.

    Raises:
        RollbackError: `cp` is smaller than what was cosigned.
        ForkError: same size with another root, or the consistency proof fails.
        LogMismatchError: `cp` is of another log than `state`.
        UsageError: a proof is needed and missing, or is not from the cosigned size.
    """
    if state is None:
        return  # trust on first use: nothing seen, nothing to be consistent with
    if (
        proof is not None
        and 0 < state.size < cp.size
        and (proof.old_size != state.size or proof.new_size != cp.size)
    ):
        raise UsageError(
            f"the proof is from size {proof.old_size} to {proof.new_size}, but this witness "
            f"needs one from {state.size} to {cp.size}",
            hint=f"custody log consistency {state.size} {cp.size} --json",
        )
    check_update(state, cp, None if proof is None else proof.proof)


def check_update(state: WitnessState | None, cp: Checkpoint, proof: Sequence[bytes] | None) -> None:
    """The update rule of every custody witness (file or HTTP): may it cosign `cp` now?

    `proof` is the RFC 9162 consistency proof from `state.size` to `cp.size`
    (None: none was given).  Raises what `check_witness_update` raises.
    """
    if state is None:
        return
    cosigned = Checkpoint(state.origin, state.size, state.root)
    try:
        check_extends(cosigned, cp, proof)
    except RollbackError as exc:
        raise RollbackError(
            exc.known,
            exc.new,
            f"refusing to cosign: the checkpoint of {cp.origin} has size {cp.size}, but this "
            f"witness already cosigned size {state.size} (a rollback)",
            "a log only grows; keep this checkpoint as evidence",
        ) from None
    except ForkError as exc:
        if exc.cause is None:
            raise ForkError(
                exc.known,
                exc.new,
                message=f"refusing to cosign: this log showed two different histories: size "
                f"{cp.size} has root {_short(cp.root)} here, but this witness cosigned root "
                f"{_short(state.root)} for that size",
                hint="keep both checkpoints: together they prove the log forked",
            ) from None
        raise ForkError(
            exc.known,
            exc.new,
            exc.cause,
            message=f"refusing to cosign: this log showed two different histories: the "
            f"checkpoint of size {cp.size} is not consistent with size {state.size} this "
            f"witness cosigned: {exc.cause.message}",
            hint="keep both checkpoints: together they prove the log rewrote its history",
        ) from exc.cause
    except ProofNeededError:
        raise UsageError(
            f"a consistency proof from size {state.size} (the last this witness cosigned) to "
            f"{cp.size} is needed",
            hint=f"on the log's home: custody log consistency {state.size} {cp.size} --json "
            "> proof.json, then pass --proof proof.json",
        ) from None


def _check_pinned(state: WitnessState | None, origin: str, log_key: VerifierKey | None) -> None:
    """Refuse a log key other than the one the witness pinned for `origin`."""
    if state is not None and log_key is not None and log_key != state.log_key:
        raise VerificationError(
            f"the log key given for {origin} ({log_key.name}+{log_key.key_id.hex()}) is not "
            f"the one this witness pinned ({state.log_key.name}+{state.log_key.key_id.hex()})",
            hint="another key claims this log's name: check it out of band",
        )


def cosign_checkpoint(
    store: WitnessStore,
    note: bytes,
    witness: Signer,
    *,
    log_key: VerifierKey | None,
    proof: ConsistencyFile | None,
    timestamp: int,
) -> tuple[bytes, WitnessState]:
    """Verify `note`, check it against the witness's state, cosign it and remember it.

    The log key is `log_key`, or the one pinned in the state (a different key
    for a pinned origin is refused).  Returns the note with the witness's
    cosignature/v1 line appended (unchanged if this key had cosigned it already).

    Raises what `open_checkpoint` and `check_witness_update` raise, and
    VerificationError for a log key other than the pinned one.
    """
    try:
        origin = Checkpoint.parse(Note.parse(note).text).origin
    except FormatError as exc:
        raise FormatError(f"not a checkpoint: {exc.message}", hint=exc.hint) from None
    with store.locked(origin):
        state = store.load(origin)
        _check_pinned(state, origin, log_key)
        key = log_key or (state.log_key if state is not None else None)
        if key is None:
            raise UsageError(
                f"no log key known for {origin}",
                hint="pass the log's verifier key with --log-key (this witness pins it)",
            )
        cp = open_checkpoint(note, key).checkpoint
        check_witness_update(state, cp, proof)
        mine = VerifierKey(witness.name, ALG_COSIGNATURE_V1, witness.public)
        if any(
            s.name == mine.name and s.key_id == mine.key_id for s in Note.parse(note).signatures
        ):
            open_checkpoint(note, key, [mine])  # ours, and valid: nothing to add
            if state is not None and state.size == cp.size:
                return note, state
            out = note
        else:
            out = cosign(note, witness, timestamp)
        new_state = WitnessState(origin, key, cp.size, cp.root, out, timestamp)
        store.save(new_state)
        return out, new_state


class UnknownLogError(NotFoundError):
    """An add-checkpoint request for an origin this witness was not told to witness (404)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        super().__init__(
            f"this witness does not witness the log {origin!r}",
            hint="its operator passes the log's verifier key with --log",
        )


def add_checkpoint(
    store: WitnessStore,
    request: AddCheckpoint,
    witness: Signer,
    log_keys: Mapping[str, VerifierKey],
    *,
    timestamp: int,
) -> tuple[NoteSignature, WitnessState]:
    """The witness's side of c2sp.org/tlog-witness `add-checkpoint`, under the origin's lock.

    `log_keys` maps each origin this witness witnesses to its log key.  Checks,
    in the spec's order, that the origin is known, that the log key signed the
    checkpoint, the protocol's conditions (`custody.tlog.witnessproto.check_request`)
    and the update rule of `witness cosign` (`check_update`); then cosigns the
    checkpoint at `timestamp`, saves the new state (durably, before returning) and
    returns the cosignature line and the state.

    Raises:
        UnknownLogError: no log key for the origin (404).
        VerificationError: the log's signature is missing or fails, or the key is
            not the one pinned in the state (403).
        ProtocolError: BadRequestError (400), SizeConflictError (409),
            UnprocessableError (422).
        ForkError, RollbackError: the checkpoint does not extend the cosigned one (422).
        StorageError: the state cannot be read or saved.
    """
    cp = request.parsed
    key = log_keys.get(cp.origin)
    if key is None:
        raise UnknownLogError(cp.origin)
    with store.locked(cp.origin):
        state = store.load(cp.origin)
        _check_pinned(state, cp.origin, key)
        opened = open_checkpoint(request.checkpoint, key)
        check_request(0 if state is None else state.size, request, cp)
        check_update(state, cp, request.proof)
        # Cosign the log's own note (its signature alone), whatever else the request carried.
        ours = [s for s in opened.note.signatures if (s.name, s.key_id) == (key.name, key.key_id)]
        base = Note(opened.note.text, (ours[0],)).encode()
        out = cosign(base, witness, timestamp)
        signature = Note.parse(out).signatures[-1]
        new_state = WitnessState(cp.origin, key, cp.size, cp.root, out, timestamp)
        store.save(new_state)
        return signature, new_state


# ---------------------------------------------------------------------------------
# The log's side: stored cosignatures


class CosignatureStore:
    """Cosigned checkpoints a log took back: `<home>/cosignatures/<size>/<sha256>.checkpoint`.

    Files are written once (temp file, fsync, link) and never changed, like the
    database's append-only checkpoint table, which keeps the log's own note.
    """

    def __init__(self, home_root: Path) -> None:
        self.root = home_root / "cosignatures"

    def add(self, size: int, note: bytes) -> Path:
        folder = self.root / str(size)
        path = folder / f"{hashlib.sha256(note).hexdigest()}.checkpoint"
        if path.exists():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror}") from exc
        write_new(path, note, mode=0o444)
        return path

    def notes(self, size: int) -> list[bytes]:
        folder = self.root / str(size)
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.checkpoint")):
            try:
                with path.open("rb") as f:
                    out.append(f.read(_MAX_NOTE))
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        return out


def cosignature_keys(parties: Parties) -> dict[tuple[str, bytes], tuple[VerifierKey, str]]:
    """The cosignature/v1 key of every party key ever registered, with the party's role."""
    keys: dict[tuple[str, bytes], tuple[VerifierKey, str]] = {}
    for history in parties.keys.values():
        for pk in history:
            if pk.vkey.alg != ALG_ED25519:
                continue
            k = VerifierKey(pk.name, ALG_COSIGNATURE_V1, pk.vkey.public)
            keys[(k.name, k.key_id)] = (k, pk.role)
    return keys


def add_cosignature(c: Custody, note: bytes) -> tuple[int, list[tuple[str, str, int]], Path]:
    """Keep a cosigned checkpoint of this log; returns (size, [(name, role, time)], file).

    The note must open with the log key, have the same text as the checkpoint
    this log stored at its size, and carry at least one valid cosignature by a
    registered party.

    Raises:
        NotFoundError: the log stored no checkpoint of that size.
        VerificationError: the log's or a party's signature fails, or the text is
            not the stored checkpoint's (another history: a fork).
        InputError: no cosignature by a registered party.
    """
    if len(note) > _MAX_NOTE:
        raise InputError(f"the cosigned checkpoint is {len(note)} bytes: too large")
    cp = open_checkpoint(note, c.log_key).checkpoint
    row = c.store.checkpoint(cp.size)
    if row is None:
        raise NotFoundError(
            f"this log stored no checkpoint of size {cp.size}",
            hint="a witness can only cosign checkpoints this log signed and stored",
        )
    if Note.parse(bytes(row.note)).text != Note.parse(note).text:
        raise VerificationError(
            f"the cosigned checkpoint of size {cp.size} is not the one this log stored (root "
            f"{_short(cp.root)}, stored {_short(bytes(row.root))}): two histories",
            hint="keep both: a checkpoint signed by this log's key that it did not store "
            "means the key was used elsewhere",
        )
    keys = cosignature_keys(c.log.parties())
    opened = open_checkpoint(note, c.log_key, [k for k, _ in keys.values()])
    if not opened.cosignatures:
        raise InputError(
            f"the checkpoint of size {cp.size} carries no cosignature by a party of this log",
            hint="the witness's key must be registered on this log (custody key import)",
        )
    path = CosignatureStore(c.home.root).add(cp.size, note)
    who = [(k.name, keys[(k.name, k.key_id)][1], ts) for k, ts in opened.cosignatures]
    return cp.size, who, path


def merged_checkpoint(c: Custody, note: bytes, parties: Parties | None = None) -> bytes:
    """`note` (a checkpoint this log stored) with every stored cosignature line appended.

    Only cosignatures that verify with a registered party's cosignature key are
    taken; the log's bytes are kept exactly and lines are appended after them.
    """
    base = Note.parse(note)
    cp = Checkpoint.parse(base.text)
    stored = CosignatureStore(c.home.root).notes(cp.size)
    if not stored:
        return note
    keys = cosignature_keys(parties if parties is not None else c.log.parties())
    present = {(s.name, s.key_id) for s in base.signatures}
    message = base.text.encode("utf-8")
    extra: list[NoteSignature] = []
    for data in stored:
        try:
            other = Note.parse(data)
        except CustodyError:
            continue
        if other.text != base.text:
            continue
        for sig in other.signatures:
            ident = (sig.name, sig.key_id)
            if ident in present or ident not in keys:
                continue
            try:
                keys[ident][0].verify(message, sig.signature)
            except SignatureError:
                continue
            extra.append(sig)
            present.add(ident)
    return append_signatures(note, extra) if extra else note
