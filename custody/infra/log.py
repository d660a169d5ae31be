"""The custody log: an append-only RFC 6962 Merkle log of signed entries.

`Log` sits on a `Store`: it appends entries (checking every signature and custody
rule first, with the one rule engine of `custody.model.rules`, so the log never
accepts what `verify` would reject), signs checkpoints, serves inclusion and
consistency proofs from stored tree nodes with O(log n) reads, and re-verifies
the whole log from its entry bytes.

An append reads the custody state the rules need from indexed state tables
(`custody.infra.state`) and the tree's right border from O(log n) stored nodes,
and writes the entry, its nodes and the state changes in one transaction: its
cost does not grow with the size of the case or the log.  A single append
(`Log.append_one`) does the parsing, signature checks and rules before it takes the
write lock, over the committed state, and under the lock only confirms them (or
evaluates the rules again over the state then), so many writers queue for a few
statements each.  `verify` replays every entry and fails if the state tables
disagree with the replay.

Claimed times in order (docs/spec/entry.md rule 5): an entry appended as made in
this home (the default) is refused when it claims a time more than the tolerance
before the entry before it (`custody.model.rules.check_order`); one appended with
`imported=True` (a key file, an owner's consent, a handoff's context or receipt)
keeps its signer's time, is not refused for it, and is skipped over as the
reference for a later entry of the same transaction (its time is another clock's).
`verify` never fails for disorder: it lists it (`LogReport.disorder`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from custody.errors import (
    CustodyError,
    NotFoundError,
    PolicyError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.infra.crash import crash_point
from custody.infra.state import DbState, compare, write_all
from custody.infra.store import CheckpointRow, EntryRow, Session, Store
from custody.model.entry import Entry, SignedEntry, parse_time
from custody.model.parties import EntryError, Parties, check_entry
from custody.model.rules import (
    Admitted,
    Parsed,
    RuleError,
    admit,
    check_access,
    check_not_ahead,
    check_order,
    evaluate,
)
from custody.model.state import MemoryState, StateView
from custody.model.times import Disorder, OrderWatch, Stamp, claimed_time_of
from custody.model.types import Access, Typed
from custody.tlog import merkle
from custody.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from custody.tlog.note import Signer, VerifierKey
from custody.tlog.tlogproof import TlogProof

KEY_ENTRY_PREFIX = b"custody/entry/v1\ntype key\n"
ACCESS_ENTRY_PREFIX = b"custody/entry/v1\ntype access\n"


class CheckpointError(VerificationError):
    """A stored checkpoint does not verify or does not match the entries."""


@dataclass(frozen=True)
class Prechecked:
    """An entry admitted outside the write lock (`Log.precheck`), as entry `index`
    over the committed state the log had then.

    `keys` is, for each signature in order, the public key (encoded) that verified
    it.  Under the lock `LogWriter.append_checked` uses this only to skip verifying
    the signatures again, and only when the keys valid at the entry's real index
    are the same ones; the custody rules are always evaluated again over the
    state under the lock unless the log did not grow meanwhile.
    """

    index: int
    data: bytes
    admitted: Admitted
    keys: tuple[str, ...]


def _signing_keys(signed: SignedEntry, index: int, view: StateView) -> tuple[str, ...] | None:
    """For each signature, the key (encoded) `check_signatures` would verify it with at
    `index` over `view` (None if some signature has no such key)."""
    out = []
    for sig in signed.note.signatures:
        key = Parties({sig.name: list(view.party_keys(sig.name))}).key_for(sig, index)
        if key is None:
            return None
        out.append(key.vkey.encode())
    return tuple(out)


class LogWriter:
    """Appends entries inside one write transaction (see `Log.transaction`).

    Each append reads the custody state it needs from the indexed state tables
    (`custody.infra.state.DbState`: a few rows, cached for the transaction) and
    writes the changes the rules return in the same transaction, so its cost does
    not grow with the case or the log.
    """

    def __init__(self, log: Log, session: Session, pre: Prechecked | None = None) -> None:
        self.log = log
        self.session = session
        # With a pre-check: also whether only `access` entries (which change no state)
        # were appended since it read the state, in the same round trip.
        self._quiet = False
        if pre is None:
            self.size = Store.log_size(session)
        else:
            self.size, self._quiet = Store.log_size_and_quiet_since(session, pre.index)
        self._frontier = log._frontier(session, self.size)
        # The state tables, once built, stay built: asked once per `Log`.
        if not log._state_ready:
            if Store.has_state(session):
                log._state_ready = True
            else:
                log._rebuild_state(session, self.size)
        self.state = DbState(session)
        self._start = self.size
        self.last: Typed | None = None
        self._entries: list[dict[str, Any]] = []
        self._nodes: list[dict[str, Any]] = []
        self._previous: Stamp | None = None  # the order rule's reference (see the module)
        self._previous_read = False

    @property
    def parties(self) -> Parties:
        """The party keys as of the current end of the log."""
        return Parties(
            {
                name: list(self.state.party_keys(name))
                for name in Store.state_key_names(self.session)
            }
        )

    def append(self, data: bytes, *, imported: bool = False) -> int:
        """Check and append one entry; returns its index.

        Raises EntryError (and appends nothing) if a signature is not by a valid
        party key, the entry is malformed or breaks a key rule; PolicyError
        ("refused: ...") if it breaks a custody rule, or claims a time out of
        order unless `imported` (module docstring).
        """
        return self.append_checked(data, imported=imported)[0]

    def previous(self) -> Stamp | None:
        """The claimed time the next entry made in this home is compared with: the
        last entry appended in this transaction but not imported, else the last
        committed entry (None on an empty log, or if it does not parse)."""
        if not self._previous_read:
            self._previous_read = True
            self._previous = _last_stamp(self.session, self._start)
        return self._previous

    def append_checked(
        self, data: bytes, pre: Prechecked | None = None, *, imported: bool = False
    ) -> tuple[int, Typed]:
        """`append`, also returning the typed entry (parsed once, for the indexer).

        With `pre` (the same bytes, checked by `Log.precheck` before the lock was
        taken) the work under the lock is short: if the log did not grow since, the
        pre-check's result stands (the state it read is the state now); otherwise
        the custody rules are evaluated again over the state now, and the
        signatures are verified again only if the keys valid at the new index are
        not the ones that verified them.  The result is what `admit` at this index
        gives, so the log still never accepts what `log verify` refuses.
        """
        index = self.size
        try:
            admitted = self._admit(index, data, pre)
            check_not_ahead(index, admitted.signed, datetime.now(UTC))
            if not imported:
                check_order(index, admitted.signed, self.previous())
        except RuleError as exc:
            # Nothing was appended: this is a refusal, not a damaged log.
            raise PolicyError(f"refused: {exc.reason}", hint=exc.hint) from exc
        if not imported:
            self._previous_read = True
            self._previous = Stamp.of(index, admitted.signed)
        self.state.apply(admitted.changes)
        entry = admitted.signed.entry
        leaf = merkle.leaf_hash(data)
        new_nodes, self._frontier = merkle.append_leaf(self._frontier, index, leaf)
        self._entries.append(
            {
                "idx": index,
                "data": data,
                "etype": entry.type,
                "item": entry.get("item"),
                "case_id": entry.get("case"),
                "ehash": leaf.hex(),
            }
        )
        self._nodes.extend({"level": lv, "idx": i, "hash": h} for (lv, i), h in new_nodes)
        self.size += 1
        self.last = admitted.typed
        return index, admitted.typed

    def _admit(self, index: int, data: bytes, pre: Prechecked | None) -> Admitted:
        if pre is None or pre.data != data or index < pre.index:
            return admit(index, data, self.state)
        signed = pre.admitted.signed
        if self.size == self._start and (
            index == pre.index or (self._quiet and signed.entry.type == "access")
        ):
            # Nothing was appended since the pre-check read the committed state of
            # `pre.index` entries, or only access entries, which change no state and
            # no key: that state is the state now, and the rule for an access entry
            # (the holder, a consent in force) gives the same answer at this index.
            return pre.admitted
        if signed.entry.type == "key" or _signing_keys(signed, index, self.state) != pre.keys:
            return admit(index, data, self.state)
        typed = pre.admitted.typed
        return Admitted(signed, typed, evaluate(index, signed, self.state, typed))

    def flush(self) -> None:
        Store.insert_log_rows_at_once(self.session, self._entries, self._nodes)
        self._entries, self._nodes = [], []

    def root(self) -> bytes:
        return merkle.root_from_frontier(self._frontier)


@dataclass(frozen=True)
class LogReport:
    """What `Log.verify` checked."""

    size: int
    root: bytes
    checkpoints: int
    latest_checkpoint: int | None
    parties: int
    signatures: int
    disorder: tuple[Disorder, ...] = ()  # claimed times out of order (reported, not failed)


def _last_stamp(s: Session, size: int) -> Stamp | None:
    """The claimed time of entry `size - 1` (None: no entry, or one that does not parse)."""
    if size == 0:
        return None
    row = s.get(EntryRow, size - 1)
    if row is None:
        return None
    try:
        return Stamp.of(size - 1, SignedEntry.parse(bytes(row.data)))
    except CustodyError:
        return None


class Log:
    def __init__(self, store: Store, origin: str) -> None:
        self.store = store
        self.origin = origin
        self._state_ready = False

    # -- appending ---------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, pre: Prechecked | None = None) -> Iterator[LogWriter]:
        """A write transaction: everything appended in it commits together, or nothing.
        (`pre`: the pre-check of the entry `append_one` appends in it.)"""
        with self.store.writer() as s:
            writer = LogWriter(self, s, pre)
            yield writer
            writer.flush()

    def append(self, data: bytes) -> int:
        """Check and append one entry in its own transaction; returns its index."""
        return self.append_one(data)[0]

    def append_one(
        self,
        data: bytes,
        index: Callable[[Session, int, Typed], None] | None = None,
        *,
        imported: bool = False,
    ) -> tuple[int, Typed]:
        """Append one entry in its own transaction with a short hold of the write lock:
        parsing, signature checks and the rules run first, outside the lock, over the
        committed state (`precheck`); under the lock only what must be serial
        (`LogWriter.append_checked` with the pre-check).  `index(session, idx, typed)`
        adds look-up rows in the same transaction (`custody.infra.indexer`).

        Raises what `LogWriter.append` raises.
        """
        pre = self.precheck(data, imported=imported)
        with self.transaction(pre) as w:
            idx, typed = w.append_checked(data, pre, imported=imported)
            if index is not None:
                index(w.session, idx, typed)
        return idx, typed

    def precheck(self, data: bytes, *, imported: bool = False) -> Prechecked | None:
        """Admit `data` as the next entry over the committed state, without the write
        lock; None if it does not pass now (the check under the lock then decides,
        over the state then, and names the reason) or the state tables are not built.
        Key entries are checked again in full under the lock."""
        with self.store.session() as s:
            if not self._state_ready:
                if not Store.has_state(s):
                    return None
                self._state_ready = True
            # The size first: state read after it is at least as new, and a log that
            # grew meanwhile is evaluated again under the lock.
            index = Store.log_size(s)
            view = DbState(s)
            previous = None if imported else _last_stamp(s, index)
            try:
                admitted = admit(index, data, view, previous=previous)
            except EntryError:
                return None
            keys = _signing_keys(admitted.signed, index, view)
        if keys is None:  # pragma: no cover - admit checked every signature's key
            return None
        return Prechecked(index, data, admitted, keys)

    def size(self) -> int:
        with self.store.session() as s:
            return Store.log_size(s)

    def parties(self) -> Parties:
        """The party key timeline of the whole log."""
        with self.store.session() as s:
            return self.load_parties(s)

    def load_parties(self, s: Session) -> Parties:
        """The party key timeline, from the state tables (or the key entries, before the
        state of an older database is built)."""
        if Store.has_state(s):
            state = DbState(s)
            return Parties({n: list(state.party_keys(n)) for n in Store.state_key_names(s)})
        parties = Parties()
        for idx, data in Store.key_entries(s):
            parties.apply(idx, SignedEntry.parse(data).entry)
        return parties

    @contextlib.contextmanager
    def state(self) -> Iterator[StateView]:
        """A read-only view of the custody state at the current end of the log (for dry
        runs of the rules: an offer, a derive), valid inside the `with` block."""
        with self.store.session() as s:
            if Store.has_state(s):
                yield DbState(s)
            else:
                yield self._replayed(Store.log_size(s))

    def _replayed(self, size: int) -> MemoryState:
        """The custody state replayed from entries [0, size) by the rules alone.

        Signatures are not checked again (every entry passed them when it was
        appended; `log verify` checks them); access entries change no state and
        are skipped.  Raises EntryError if an entry breaks a rule.
        """
        state = MemoryState(log_vkey=self._log_vkey())
        for idx, data in self.store.iter_entries(0, size):
            if data.startswith(ACCESS_ENTRY_PREFIX):
                continue
            signed = SignedEntry.parse(data)
            state.apply(evaluate(idx, signed, state))
        return state

    def _log_vkey(self) -> VerifierKey | None:
        """The log's verifier key, as the database records it (`meta` `log_vkey`)."""
        with self.store.session() as s:
            text = Store.log_vkey(s)
        return None if text is None else VerifierKey.parse(text)

    def _rebuild_state(self, s: Session, size: int) -> None:
        """Fill the state tables of a database made before they existed (once)."""
        write_all(s, self._replayed(size))
        Store.mark_state(s)

    def _frontier(self, s: Session, size: int) -> list[bytes]:
        ids = merkle.range_nodes(0, size)
        nodes = Store.get_nodes(s, ids)
        missing = [i for i in ids if i not in nodes]
        if missing:
            raise StorageError(
                f"the log's tree is missing node {missing[0]} at size {size}",
                hint="the database is damaged: run 'custody log verify'",
            )
        return [nodes[i] for i in ids]

    def root(self, size: int | None = None) -> tuple[int, bytes]:
        with self.store.session() as s:
            n = Store.log_size(s)
            size = n if size is None else size
            if size > n:
                raise UsageError(f"the log has {n} entries, not {size}")
            return size, merkle.root_from_frontier(self._frontier(s, size))

    # -- checkpoints and proofs -----------------------------------------------------

    def checkpoint(self, signer: Signer) -> bytes:
        """Sign and store a checkpoint of the current tree; returns the signed note.

        If a checkpoint of this size exists already it is returned unchanged.
        Raises UsageError if `signer` is not the log's key, StorageError (or its
        LockTimeoutError) if the checkpoint cannot be stored.
        """
        if signer.name != self.origin:
            raise UsageError(f"key '{signer.name}' is not this log's key ('{self.origin}')")
        with self.store.writer() as s:
            size = Store.log_size(s)
            existing = s.get(CheckpointRow, size)
            if existing is not None:
                return bytes(existing.note)
            root = merkle.root_from_frontier(self._frontier(s, size))
            note = sign_checkpoint(Checkpoint(self.origin, size, root), signer)
            s.add(CheckpointRow(size=size, root=root, note=note))
        crash_point("checkpoint.committed")
        return note

    def checkpoint_note(self, size: int | None = None) -> bytes:
        row = self.store.checkpoint(size)
        if row is None:
            where = "yet" if size is None else f"at size {size}"
            raise NotFoundError(
                f"the log has no checkpoint {where}",
                hint="sign one with 'custody log checkpoint'",
            )
        return bytes(row.note)

    def _proof(self, plan: list[list[tuple[int, int]]]) -> list[bytes]:
        with self.store.session() as s:
            nodes = Store.get_nodes(s, [n for group in plan for n in group])
        try:
            return merkle.assemble(plan, nodes)
        except merkle.ProofError as exc:
            raise StorageError(f"cannot build the proof: {exc.message}") from exc

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry `index` in the tree of `size` entries."""
        n = self.size()
        if not 0 <= index < size <= n:
            raise UsageError(f"entry {index} is not in a tree of {size} entries (the log has {n})")
        return self._proof(merkle.inclusion_proof_nodes(index, size))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof between the trees of `old` and `new` entries."""
        n = self.size()
        if not 0 < old <= new <= n:
            raise UsageError(f"no consistency proof from size {old} to {new} (the log has {n})")
        return self._proof(merkle.consistency_proof_nodes(old, new))

    def tlog_proof(self, index: int, size: int | None = None) -> TlogProof:
        """A c2sp.org/tlog-proof@v1 for entry `index` against a stored checkpoint."""
        note = self.checkpoint_note(size)
        row = self.store.checkpoint(size)
        assert row is not None  # checkpoint_note raised otherwise
        if index >= row.size:
            raise UsageError(
                f"entry {index} is not covered by the checkpoint of size {row.size}",
                hint="sign a newer checkpoint with 'custody log checkpoint'",
            )
        proof = self.inclusion_proof(index, int(row.size))
        return TlogProof(index=index, hashes=tuple(proof), checkpoint=note)

    # -- verification ---------------------------------------------------------------

    def verify(
        self,
        log_key: VerifierKey,
        *,
        progress: Callable[[int, int], None] | None = None,
        jobs: int | None = None,
        chunk: int = 4000,
    ) -> LogReport:
        """Recompute the whole log from its entry bytes and check everything.

        Checks every entry's format and signatures (by keys valid at that
        index), that the indexes have no gap, that every stored tree node is
        the hash recomputed from the entries, and that every stored checkpoint
        is signed by `log_key` and matches the recomputed root at its size.  The
        custody rules are replayed once, in log order, and the indexed custody
        state (holders, consents, offers, key timelines) is compared with what
        the replay built.

        Raises EntryError naming the first bad entry, CheckpointError naming the
        first bad checkpoint, VerificationError if the indexed custody state
        disagrees with the entries, or StorageError if the database cannot be read.
        """
        total = self.size()
        checkpoints = self.store.checkpoints()
        by_size: dict[int, CheckpointRow] = {}
        for row in checkpoints:
            try:
                opened = open_checkpoint(bytes(row.note), log_key)
            except CustodyError as exc:
                raise CheckpointError(
                    f"checkpoint at size {row.size}: {exc.message}",
                    hint="the checkpoint was altered, or the log key given is not this log's",
                ) from exc
            cp = opened.checkpoint
            if cp.size != row.size or cp.root != bytes(row.root) or cp.origin != self.origin:
                raise CheckpointError(
                    f"checkpoint at size {row.size}: its signed text disagrees with the "
                    "database columns"
                )
            if cp.size > total:
                raise CheckpointError(
                    f"checkpoint at size {cp.size} is beyond the end of the log ({total} "
                    "entries): entries were removed"
                )
            by_size[cp.size] = row

        # The party key timeline comes first, from the key entries alone (a few rows,
        # found through the `etype` look-up column).  Trusting that column cannot make
        # a bad log pass: a key entry hidden from it is caught by the workers below
        # ("key entry missing from the index"), and a non-key entry labelled `key`
        # is parsed and ignored.
        parties = Parties()
        key_indexes: set[int] = set()
        apply_error: EntryError | None = None
        with self.store.session() as s:
            key_rows = Store.key_entries(s)
        for idx, data in key_rows:
            if idx >= total:
                continue
            key_indexes.add(idx)
            if apply_error is None:
                apply_error = _apply_keys(parties, idx, [data])

        jobs = jobs or (os.cpu_count() or 1)
        ranges = [(a, min(a + chunk, total)) for a in range(0, total, chunk)]
        pool: ProcessPoolExecutor | None = None
        if jobs > 1 and len(ranges) > 2:
            pool = ProcessPoolExecutor(
                jobs,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(self.store.url, parties, key_indexes, log_key),
            )
            results: Iterator[_ChunkResult] = pool.map(_check_range, *zip(*ranges, strict=True))
        else:
            _WORKER.update(
                store=self.store, parties=parties, key_indexes=key_indexes, log_key=log_key
            )
            results = (_check_range(a, b) for a, b in ranges)

        frontier: list[bytes] = []
        size = 0
        signatures = 0
        # One replay of the custody rules, in log order, over the state built so far
        # (key entries included: they are rules too).
        state = MemoryState(log_vkey=log_key)  # policy entries are the log key's (rule 14)
        watch = OrderWatch()  # claimed times in order: reported, never a failure
        if 0 in by_size and by_size[0].root != merkle.EMPTY_ROOT:
            raise CheckpointError("checkpoint at size 0 does not carry the empty tree's root")
        try:
            for (a, b), (leaves, parsed, check_err, nsig) in zip(ranges, results, strict=True):
                errs = [check_err] if check_err is not None else []
                if apply_error is not None and apply_error.index < b:
                    errs.append(apply_error)
                # The custody rules, in log order, over what the worker parsed.
                for offset, signed in enumerate(parsed):
                    try:
                        if isinstance(signed, tuple):
                            check_access(a + offset, state, *signed)
                            watch.see(Stamp(a + offset, "access", parse_time(signed[3])))
                        else:
                            state.apply(evaluate(a + offset, signed, state))
                            when = claimed_time_of(signed.data, signed.entry)
                            watch.see(Stamp(a + offset, signed.entry.type, when))
                    except EntryError as exc:
                        errs.append(exc)
                        break
                if errs:
                    raise min(errs, key=lambda e: e.index)
                signatures += nsig
                expected: list[tuple[tuple[int, int], bytes]] = []
                for leaf in leaves:
                    new_nodes, frontier = merkle.append_leaf(frontier, size, leaf)
                    expected.extend(new_nodes)
                    size += 1
                    if size in by_size:
                        self._check_checkpoint(by_size[size], frontier)
                self._check_nodes(expected)
                if progress:
                    progress(size, total)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            _WORKER.clear()

        with self.store.session() as s:
            if Store.has_state(s):
                compare(s, state)
        latest = max(by_size) if by_size else None
        return LogReport(
            size=size,
            root=merkle.root_from_frontier(frontier),
            checkpoints=len(by_size),
            latest_checkpoint=latest,
            parties=len(parties.keys),
            signatures=signatures,
            disorder=tuple(watch.found),
        )

    @staticmethod
    def _check_checkpoint(row: CheckpointRow, frontier: list[bytes]) -> None:
        root = merkle.root_from_frontier(frontier)
        if root != bytes(row.root):
            raise CheckpointError(
                f"checkpoint at size {row.size} does not match the entries: the log's "
                "history was rewritten after it was signed",
                hint="compare with an exported bundle or a witness's copy of this checkpoint",
            )

    def _check_nodes(self, expected: Sequence[tuple[tuple[int, int], bytes]]) -> None:
        """Compare recomputed tree nodes with the stored ones (proofs are served from them)."""
        by_level: dict[int, list[tuple[int, bytes]]] = {}
        for (level, idx), h in expected:
            by_level.setdefault(level, []).append((idx, h))
        for level, items in by_level.items():
            stored = self.store.nodes_at_level(level, items[0][0], items[-1][0])
            for idx, h in items:
                if stored.get(idx) != h:
                    where = (
                        f"log entry {idx}: its bytes do not match the leaf hash stored in the tree"
                        if level == 0
                        else f"stored tree node (level {level}, index {idx}) is wrong"
                    )
                    raise VerificationError(where, hint="the database was altered outside custody")


def _apply_keys(parties: Parties, start: int, buf: Sequence[bytes]) -> EntryError | None:
    """Apply the chunk's key entries to `parties`; return the first rule error, if any."""
    for offset, data in enumerate(buf):
        if data.startswith(KEY_ENTRY_PREFIX):
            try:
                parties.apply(start + offset, SignedEntry.parse(data).entry)
            except EntryError as exc:
                return exc
            except CustodyError as exc:
                return EntryError(start + offset, f"malformed: {exc.message}")
    return None


def _access_of(e: Entry) -> Access | None:
    """The typed `access` entry, or None (not an access entry, or a malformed one, which
    the rules in the main process then refuse with its reason)."""
    if e.type != "access":
        return None
    try:
        return Access.from_entry(e)
    except CustodyError:
        return None


_ChunkResult = tuple[list[bytes], list[Parsed | tuple[str, str, str, str]], EntryError | None, int]
_WORKER: dict[str, Any] = {}


def _init_worker(url: str, parties: Parties, key_indexes: set[int], log_key: VerifierKey) -> None:
    """Pool initializer: each verification worker opens its own database connection."""
    _WORKER.update(store=Store.open(url), parties=parties, key_indexes=key_indexes, log_key=log_key)


def _check_range(start: int, end: int) -> _ChunkResult:
    """Verify entries [start, end): (leaf hashes, first error, signatures checked)."""
    store: Store = _WORKER["store"]
    parties: Parties = _WORKER["parties"]
    key_indexes: set[int] = _WORKER["key_indexes"]
    leaves: list[bytes] = []
    parsed: list[Parsed | tuple[str, str, str, str]] = []
    nsig = 0
    expected = start
    for idx, data in store.iter_entries(start, end, chunk=end - start):
        if idx != expected:
            return leaves, parsed, EntryError(expected, "is missing: the log has a gap here"), nsig
        try:
            signed = check_entry(idx, data, parties, _WORKER["log_key"])
        except EntryError as exc:
            return leaves, parsed, exc, nsig
        if signed.entry.type == "key" and idx not in key_indexes:
            return (
                leaves,
                parsed,
                EntryError(
                    idx,
                    "is a key entry missing from the database's key index (altered outside "
                    "custody)",
                ),
                nsig,
            )
        nsig += len(signed.note.signatures)
        leaves.append(merkle.leaf_hash(data))
        e = signed.entry
        access = _access_of(e)
        if access is not None and access.by in signed.signer_names:
            # The bulk of a busy log: hand back a few strings, not the parsed entry.
            parsed.append((access.case, access.item, access.by, e.time))
        else:
            parsed.append(Parsed(data, e, signed.signer_names))
        expected += 1
    if expected != end:
        return leaves, parsed, EntryError(expected, "is missing: the log has a gap here"), nsig
    return leaves, parsed, None, nsig
