"""Custody events: consent, two-party handoffs, access, and party key changes.

The library behind `custody consent`, `custody handoff`, `custody open` and
`custody key rotate|revoke|export|import` (docs/handoff.md).  Every event is a
signed entry appended through `append_indexed`, which also keeps the look-up
tables (parties, items, holders) in step with the log; the custody rules
themselves are `custody.model.rules`, applied by the log before it appends.

Handoffs between custody homes travel as files:

* an **offer** (`custody/offer/v1`) carries the handoff entry signed by the
  releasing party, and the *context*: the entries the receiving log needs to
  check the chain (party keys, the items' ingest/derive entries, consents), as
  exact bytes;
* the receiver re-hashes the media, countersigns (a C2SP cosignature/v1 line
  whose timestamp, the moment it countersigned, is the handoff's claimed time:
  `custody.model.times`), and appends the context it lacks and the handoff in one
  transaction; it writes a **receipt**
  (`custody/receipt/v1`): the doubly signed entry, the receiver's key entry and
  a tlog-proof against a fresh checkpoint of the receiving log;
* the releasing side checks the receipt and appends the same handoff entry to
  its own log, so both logs show who holds the footage now.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

from custody.app.evidence import Source, display, get_case, prepare, recover, resolve_item
from custody.app.home import Custody
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    NotFoundError,
    PolicyError,
    UsageError,
)
from custody.infra.crash import crash_point
from custody.infra.files import fsync_dir, write_new
from custody.infra.indexer import append_indexed, append_indexed_one
from custody.infra.log import LogWriter
from custody.infra.store import ItemRow, PartyRow, Store
from custody.infra.vault import Staged, Vault, hash_file
from custody.model.entry import Entry, SignedEntry, countersign_entry, sign_entry
from custody.model.parties import EntryError
from custody.model.rules import (
    Parsed,
    RuleError,
    entry_hash,
    evaluate,
    judge_in_context,
)
from custody.model.timeline import Keeping
from custody.tlog.note import Signer, VerifierKey
from custody.tlog.tlogproof import TlogProof, verify_tlog_proof

OFFER_VERSION = "custody/offer/v1"
RECEIPT_VERSION = "custody/receipt/v1"
HANDOFF_ENTRY_PREFIX = b"custody/entry/v1\ntype handoff\n"
PassphraseFn = Callable[[str], str]


def _sign_and_append(c: Custody, entry: Entry, signers: Sequence[Signer]) -> int:
    return append_indexed_one(c.log, sign_entry(entry, signers))


# -- keys ------------------------------------------------------------------------------------


def rotate_key(
    c: Custody, name: str, passphrase: PassphraseFn, now: datetime, held_by: str | None = None
) -> tuple[VerifierKey, int]:
    """Replace `name`'s key: the new key is introduced in an entry signed by old and new.

    The old key file is kept, renamed `<name>.<key id>.retired.key`, so entries it
    signed can still be re-signed-checked by anyone holding it.
    """
    from custody.model.types import kept_fields

    try:  # where the new key is kept (entry.md §key): the other keys in this home now
        kept = kept_fields(
            name, c.keystore.names(), c.origin if c.holds_log_key() else None, held_by
        )
    except FormatError as exc:
        raise UsageError(
            exc.message.replace("key entry field 'held-by'", "--held-by"),
            hint="--held-by names the party whose home keeps this key",
        ) from None
    old = c.signer(name, passphrase)
    party = c.party(name)
    new = Signer.generate(name)
    from custody.infra.keystore import seal

    keyfile = seal(new, party.role, party.org, passphrase(f"New passphrase for key '{name}': "))
    entry = Entry.build(
        "key",
        now,
        [("action", "rotate"), ("party", name), ("vkey", new.verifier_key.encode()), *kept],
    )
    path = c.keystore.path(name)
    retired = path.with_name(f"{path.stem}.{old.verifier_key.key_id.hex()}.retired.key")
    staged = path.with_name(f".{path.stem}.new.key")
    write_new(staged, keyfile.encode())
    try:
        index = _sign_and_append(c, entry, [old, new])
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(path, retired)
    os.replace(staged, path)
    return new.verifier_key, index


def keeping(c: Custody) -> Keeping:
    """Where each party's keys on this log were kept, from its `key` entries (for the
    caveats `custody history` and the report show; docs/handoff.md)."""
    with c.store.session() as s:
        rows = Store.key_entries(s)
    return Keeping.of((i, SignedEntry.parse(d).entry) for i, d in rows)


def revoke_key(c: Custody, name: str, reason: str, passphrase: PassphraseFn, now: datetime) -> int:
    """Revoke `name`'s key (signed by that key): it signs nothing after this entry."""
    if not reason.strip():
        raise UsageError("--reason is required: say why the key is revoked")
    signer = c.signer(name, passphrase)
    entry = Entry.build("key", now, [("action", "revoke"), ("party", name), ("reason", reason)])
    return _sign_and_append(c, entry, [signer])


def export_key(c: Custody, name: str) -> bytes:
    """The entry that registered `name`'s current key: self-signed, so any log can take it."""
    row = c.party(name)
    data = c.store.entry(row.entry_idx)
    assert data is not None
    return data


def import_key(c: Custody, data: bytes) -> int:
    """Append another log's `key` entry (exact bytes), e.g. a court's, so this log knows it."""
    try:
        entry = SignedEntry.parse(data).entry
    except CustodyError as exc:
        raise InputError(f"not a custody key entry: {exc.message}") from exc
    if entry.type != "key" or entry.get("action") != "register":
        raise InputError(
            "only a key registration entry can be imported",
            hint="export it with 'custody key export NAME' on the other log",
        )
    with c.log.transaction() as w:
        existing = Store.index_of(w.session, entry_hash(data))
        if existing is not None:
            raise UsageError(f"this key entry is already on this log (entry {existing})")
        known = w.session.get(PartyRow, entry.require("party"))
        if known is not None:
            raise UsageError(
                f"party '{known.name}' is already registered on this log (entry {known.entry_idx})"
            )
        # Made in another home: it keeps its signer's time (claimed times in order).
        return append_indexed(w, data, imported=True)


def import_entries(c: Custody, datas: Sequence[bytes]) -> list[int | None]:
    """Append entries from another log (exact bytes), in the order given, in one
    transaction.  Entries already on this log are skipped (None in the result);
    the others must pass the same signature and custody checks as local ones, but
    keep their signer's time: they are not refused for claiming a time before the
    entry before them (`custody log verify` reports that)."""
    out: list[int | None] = []
    with c.log.transaction() as w:
        for data in datas:
            if Store.index_of(w.session, entry_hash(data)) is not None:
                out.append(None)
            else:
                out.append(append_indexed(w, data, imported=True))
    return out


# -- consent -------------------------------------------------------------------------------


def grant_consent(
    c: Custody,
    *,
    owner: str,
    case: str,
    items: Sequence[str],
    purpose: str,
    until: str | None,
    onward: str,
    passphrase: PassphraseFn,
    now: datetime,
) -> int:
    """Record the owner's consent, signed by the owner."""
    if until is not None:
        try:
            date.fromisoformat(until)
        except ValueError:
            raise UsageError(f"--until {until!r} is not a date like 2026-12-31") from None
    digests = [resolve_item(c, ref, case).blake3 for ref in items]
    signer = c.signer(owner, passphrase)
    fields: list[tuple[str, str | int | None]] = [
        ("action", "grant"),
        ("owner", owner),
        ("case", case),
        *(("item", d) for d in digests),
        ("purpose", purpose),
        ("until", until),
        ("onward", onward),
    ]
    return _sign_and_append(c, Entry.build("consent", now, fields), [signer])


def revoke_consent(
    c: Custody, ref: str, owner: str, passphrase: PassphraseFn, now: datetime
) -> int:
    """Revoke a consent grant, named by its log index or entry hash (prefix)."""
    data, _index = _find_entry(c, ref)
    grant = SignedEntry.parse(data).entry
    if grant.type != "consent" or grant.get("action") != "grant":
        raise UsageError(f"entry {ref} is not a consent grant")
    signer = c.signer(owner, passphrase)
    fields = [
        ("action", "revoke"),
        ("owner", owner),
        ("case", grant.require("case")),
        ("consent", entry_hash(data)),
    ]
    return _sign_and_append(c, Entry.build("consent", now, fields), [signer])


def _find_entry(c: Custody, ref: str) -> tuple[bytes, int]:
    """The bytes and index of the entry `ref` names (a log index or an entry hash).

    Raises NotFoundError if the log has no such entry (an index beyond any log's
    size, such as a 25-digit number, included).
    """
    if ref.isascii() and ref.isdigit():
        if len(ref) > 19 or int(ref) >= 1 << 63:
            raise NotFoundError(f"the log has no entry {ref}")
        data = c.store.entry(int(ref))
        if data is None:
            raise NotFoundError(f"the log has no entry {ref}")
        return data, int(ref)
    with c.store.session() as s:
        index = Store.index_of(s, ref.lower())
    if index is None:
        raise NotFoundError(f"no entry with hash {ref}", hint="give the log index or full hash")
    data = c.store.entry(index)
    assert data is not None
    return data, index


# -- access ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """What `open_item` did: the item, the index of its `access` entry, and how many
    unfinished copies an interrupted earlier `open` to the same path had left."""

    row: ItemRow
    index: int
    leftovers: int = 0


def open_item(
    c: Custody,
    ref: str,
    *,
    by: str,
    purpose: str,
    out: Path,
    case: str | None,
    passphrase: PassphraseFn,
    now: datetime,
) -> Opened:
    """Copy an item out of the store to `out`, logging an `access` entry first.

    The copy is written to a temp file next to `out` and verified against the
    item's digest; the entry is appended (the log refuses a non-holder or use
    outside consent); only then is the file linked into place, never over anything
    (a file, or a symbolic link, dangling or not).  Nothing leaves the store
    unlogged.  Unfinished copies that an interrupted `open` to the same path left
    (`.<name>.<hex>.part`) are removed first and counted in the result: a run
    whose access entry was committed but whose copy never reached `out` is on the
    log, and the re-run logs its own access (docs/handoff.md, "Access").

    Raises NotFoundError for an unknown case or item, or an item not in `case`;
    UsageError if `out` exists; InputError if `out` is a symbolic link or cannot be
    written, or the stored copy does not match its digest; PolicyError if the log
    refuses the access.
    """
    if case is not None:
        get_case(c, case)
    row = resolve_item(c, ref, case)
    if case is not None and row.case_id != case:
        raise NotFoundError(
            f"{row.exhibit} is not in case {case!r}",
            hint=f"list the case's items with 'custody case show {case}'",
        )
    if out.exists():
        raise UsageError(f"{out} already exists; refusing to overwrite it")
    if out.is_symlink():  # a dangling one: `exists` follows links
        raise InputError(
            f"{out} is a symbolic link; refusing to write through it or replace it",
            hint="give a path that does not exist yet",
        )
    signer = c.signer(by, passphrase)
    _dry_run_access(c, row, by, now)  # a disposed item has no object left to read
    vault = Vault(c.vault_root)
    leftovers = clear_stale_temps(out, "part")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        try:
            with vault.open(row.blake3) as src, open(tmp, "xb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc.strerror}") from exc
        if hash_file(tmp).blake3_hex != row.blake3:
            raise InputError(
                f"the stored copy of {row.exhibit} does not match its digest",
                hint="run 'custody log verify' and check the evidence store",
            )
        entry = Entry.build(
            "access",
            now,
            [
                ("case", row.case_id),
                ("item", row.blake3),
                ("by", by),
                ("purpose", purpose),
                ("action", "export"),
                ("out", row.blake3),
            ],
        )
        index = _sign_and_append(c, entry, [signer])
        crash_point("open.access-committed")
        _link_into_place(tmp, out, index)
    finally:
        tmp.unlink(missing_ok=True)
    return Opened(row, index, leftovers)


def open_item_to(
    c: Custody,
    ref: str,
    sink: BinaryIO,
    *,
    by: str,
    purpose: str,
    case: str | None,
    passphrase: PassphraseFn,
    now: datetime,
) -> Opened:
    """`open_item` to a stream (`custody open --out -`: standard output).

    The stored copy is checked against its digest and the `access` entry appended
    first, exactly as for a file; only then are the bytes written to `sink`, hashed
    again on the way.  Raises what `open_item` raises, and InputError when the stored
    copy changed while it was being written (what reached `sink` is then not the item).
    """
    from custody.media.digest import Hasher

    if case is not None:
        get_case(c, case)
    row = resolve_item(c, ref, case)
    if case is not None and row.case_id != case:
        raise NotFoundError(
            f"{row.exhibit} is not in case {case!r}",
            hint=f"list the case's items with 'custody case show {case}'",
        )
    signer = c.signer(by, passphrase)
    _dry_run_access(c, row, by, now)
    vault = Vault(c.vault_root)
    vault.verify_object(row.blake3)  # nothing is logged for a damaged or missing copy
    entry = Entry.build(
        "access",
        now,
        [
            ("case", row.case_id),
            ("item", row.blake3),
            ("by", by),
            ("purpose", purpose),
            ("action", "export"),
            ("out", row.blake3),
        ],
    )
    index = _sign_and_append(c, entry, [signer])
    hasher = Hasher()
    with vault.open(row.blake3) as src:
        while chunk := src.read(1 << 20):
            hasher.update(chunk)
            sink.write(chunk)
    sink.flush()
    if hasher.finish().blake3_hex != row.blake3:
        raise InputError(
            f"the stored copy of {row.exhibit} changed while it was written out: what was "
            f"written is not the item (the access is logged as entry {index})",
            hint="discard the output, run 'custody vault check', and open it again",
        )
    return Opened(row, index)


def _dry_run_access(c: Custody, row: ItemRow, by: str, now: datetime) -> None:
    """The access rule over the committed state, before any byte is read: a refusal (a
    disposed or restricted item, not the holder, outside consent) names the rule, not
    a missing object.  The append checks it again under the lock."""
    from custody.model.entry import format_time
    from custody.model.rules import check_access

    with c.log.state() as view:
        try:
            check_access(c.log.size(), view, row.case_id, row.blake3, by, format_time(now))
        except RuleError as exc:
            raise PolicyError(f"refused: {exc.reason}", hint=exc.hint) from exc


def _link_into_place(tmp: Path, out: Path, index: int) -> None:
    """Link the finished copy to `out`, never replacing whatever appeared there meanwhile.

    On a file system without hard links (FAT or exFAT on a USB stick) the copy is
    renamed instead, after checking once more that nothing is at `out`.  Raises
    InputError naming `out` (the access is logged by then, and the message says so).
    """
    try:
        try:
            os.link(tmp, out)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(out):
                raise FileExistsError(errno.EEXIST, "exists", str(out)) from exc
            os.rename(tmp, out)
    except FileExistsError:
        raise InputError(
            f"{out} appeared while the copy was made; refusing to replace it "
            f"(the access is logged as entry {index})",
            hint="run 'custody open' again with a path that does not exist",
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot write {out}: {exc.strerror} (the access is logged as entry {index})"
        ) from exc
    # Some file systems cannot sync a folder; the copy is complete and in place anyway.
    with contextlib.suppress(OSError):
        fsync_dir(out.parent)


_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


def clear_stale_temps(path: Path, suffix: str) -> int:
    """Remove `.<name>.<8 hex>.<suffix>` files next to `path` (what an interrupted durable
    write to `path` leaves: custody.infra.files, `open`); returns how many.

    Only names of exactly that shape are touched, so no other file of the folder
    can match.  Raises nothing: a folder that cannot be listed has nothing to clear.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.{re.escape(suffix)}")
    removed = 0
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    for name in names:
        if pattern.fullmatch(name):
            stale = path.with_name(name)
            if stale.is_file() and not stale.is_symlink():
                stale.unlink(missing_ok=True)
                removed += 1
    return removed


# -- handoffs ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{where}: not valid base64") from None


@dataclass(frozen=True)
class Offer:
    """A handoff offer: the entry signed by the releasing party, and its context."""

    handoff: bytes
    context: tuple[bytes, ...]

    def encode(self) -> bytes:
        lines = [OFFER_VERSION, f"handoff {_b64(self.handoff)}"]
        lines += [f"context {_b64(d)}" for d in self.context]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> Offer:
        lines = _lines(data, where, OFFER_VERSION)
        handoff = [_unb64(v, where) for k, v in lines if k == "handoff"]
        if len(handoff) != 1:
            raise FormatError(f"{where}: an offer holds exactly one handoff entry")
        context = tuple(_unb64(v, where) for k, v in lines if k == "context")
        return cls(handoff[0], context)

    @property
    def entry(self) -> Entry:
        return SignedEntry.parse(self.handoff).entry


@dataclass(frozen=True)
class Receipt:
    """What the receiver sends back: the countersigned entry, its key, and a proof."""

    log_key: VerifierKey
    entry: bytes
    context: tuple[bytes, ...]
    proof: TlogProof

    def encode(self) -> bytes:
        lines = [RECEIPT_VERSION, f"log-key {self.log_key.encode()}", f"entry {_b64(self.entry)}"]
        lines += [f"context {_b64(d)}" for d in self.context]
        lines.append(f"proof {_b64(self.proof.encode())}")
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> Receipt:
        rows = _lines(data, where, RECEIPT_VERSION)
        lines = dict(rows)
        try:
            return cls(
                VerifierKey.parse(lines["log-key"]),
                _unb64(lines["entry"], where),
                tuple(_unb64(v, where) for k, v in rows if k == "context"),
                TlogProof.parse(_unb64(lines["proof"], where)),
            )
        except KeyError as exc:
            raise FormatError(f"{where}: the receipt has no '{exc.args[0]}' line") from None


def _lines(data: bytes, where: str, version: str) -> list[tuple[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where} is not a custody file (not UTF-8)") from None
    rows = text.rstrip("\n").split("\n")
    if rows[0] != version:
        raise FormatError(f"{where} is not a {version} file", hint="check which file you gave")
    out = []
    for row in rows[1:]:
        key, sep, value = row.partition(" ")
        if not sep:
            raise FormatError(f"{where}: malformed line {row[:40]!r}")
        out.append((key, value))
    return out


def make_offer(
    c: Custody,
    refs: Sequence[str],
    *,
    sender: str,
    receiver: str,
    purpose: str,
    authority: str | None,
    case: str | None,
    passphrase: PassphraseFn,
    now: datetime,
) -> Offer:
    """Write a handoff offer signed by `sender`, checked against the custody rules now.

    Raises NotFoundError if this log has no key of `receiver` (checked first: the
    receiver's key must be imported before anything else can be said of the offer);
    PolicyError (exit 4) if `sender` does not hold an item or the consent does not
    cover handing it to `receiver`.  Nothing is appended by an offer.
    """
    if case is not None:
        get_case(c, case)  # an unknown --case is an error, never silently ignored
    check_receiver(c, receiver)
    rows = [resolve_item(c, ref, case) for ref in refs]
    cases = {r.case_id for r in rows}
    if len(cases) != 1:
        raise UsageError("one offer hands over items of one case", hint="make one offer per case")
    (case_id,) = cases
    signer = c.signer(sender, passphrase)
    fields: list[tuple[str, str | int | None]] = [
        ("case", case_id),
        *(("item", r.blake3) for r in rows),
        ("from", sender),
        ("to", receiver),
        ("purpose", purpose),
        ("authority", authority),
        ("offer", secrets.token_hex(16)),
    ]
    entry = Entry.build("handoff", now, fields)
    data = sign_entry(entry, [signer])
    # Dry run of the rules over the log's custody state, as if the receiver had
    # countersigned already.
    index = c.log.size()
    with c.log.state() as state:
        try:
            evaluate(index, Parsed(data, entry, (sender, receiver)), state)
        except EntryError as exc:
            raise PolicyError(f"refused: {exc.reason}", hint=exc.hint) from exc
    with c.store.session() as s:
        case_rows = Store.case_entries(s, case_id)
    names = {sender, receiver} | _signers_of(d for _i, d in case_rows)
    # The context is in the sender's log order (key entries and case entries merged by
    # index): the receiver judges it in exactly that order (docs/handoff.md).
    ordered = sorted(_key_rows(c, names) + case_rows)
    return Offer(data, tuple(d for _i, d in ordered))


def check_receiver(c: Custody, receiver: str) -> None:
    """NotFoundError unless `receiver` is a party on this log: an offer to a party whose
    key was never imported could not be checked by anyone (docs/handoff.md)."""
    if c.store.party(receiver) is None:
        raise NotFoundError(
            f"no party '{receiver}' on this log: import their key with `custody key import`",
            hint=f"in {receiver}'s home: custody key export {receiver} --out "
            f"{receiver}.keyentry; here: custody key import {receiver}.keyentry (compare "
            "its key id with them out of band); 'custody key list' lists the parties here",
        )


@dataclass(frozen=True)
class MediaCopy:
    """One offered file written next to an offer: the item, where, its access entry."""

    row: ItemRow
    path: Path
    index: int


def offer_media_names(c: Custody, offer: Offer) -> list[tuple[ItemRow, str]]:
    """The offered items and the file name each gets in a `--with-media` folder: its
    ingested name, prefixed with its exhibit number where two share a name."""
    entry = offer.entry
    case = entry.require("case")
    rows = [resolve_item(c, item, case) for item in entry.get_all("item")]
    names = [Path(r.name).name or f"{r.blake3[:16]}.bin" for r in rows]
    out = []
    for row, name in zip(rows, names, strict=True):
        if names.count(name) > 1:
            name = f"{row.exhibit.rsplit('/', 1)[-1]}-{name}"
        out.append((row, name))
    return out


def write_offer_media(
    c: Custody,
    offer: Offer,
    folder: Path,
    *,
    passphrase: PassphraseFn,
    now: datetime,
) -> list[MediaCopy]:
    """Copy the media of `offer`'s items into `folder` (made if missing), for the
    receiver: each copy is an `open` by the releasing party, logged once as an
    `access` entry whose purpose names the handoff, and checked against its digest.

    Every target is checked before anything is copied, so a name already taken in
    `folder` refuses the whole copy with nothing logged.  Raises UsageError for a
    target that exists; InputError for a folder that cannot be made or written;
    PolicyError if the log refuses the access; what `open_item` raises.
    """
    entry = offer.entry
    sender, receiver = entry.require("from"), entry.require("to")
    planned = offer_media_names(c, offer)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--with-media {folder} is not a folder")
    for _row, name in planned:
        target = folder / name
        if os.path.lexists(target):
            raise UsageError(
                f"{display(target)} already exists; refusing to overwrite it (nothing copied)",
                hint="give --with-media an empty or new folder",
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the folder {display(folder)}: {exc.strerror}") from exc
    purpose = f"handoff offer {entry.require('offer')[:12]} to {receiver}: " + entry.require(
        "purpose"
    )
    copies = []
    for row, name in planned:
        done = open_item(
            c,
            row.blake3,
            by=sender,
            purpose=purpose,
            out=folder / name,
            case=row.case_id,
            passphrase=passphrase,
            now=now,
        )
        copies.append(MediaCopy(row, folder / name, done.index))
    return copies


def _signers_of(datas: Iterable[bytes]) -> set[str]:
    return {name for d in datas for name in SignedEntry.parse(d).signer_names}


def _key_rows(c: Custody, names: set[str]) -> list[tuple[int, bytes]]:
    """(index, bytes) of every key entry of these parties (register, rotations,
    revocations), in log order."""
    with c.store.session() as s:
        rows = Store.key_entries(s)
    return [(i, d) for i, d in rows if SignedEntry.parse(d).entry.get("party") in names]


def _key_entries(c: Custody, names: set[str]) -> list[bytes]:
    """Every key entry of these parties, in log order."""
    return [d for _i, d in _key_rows(c, names)]


def _media_by_digest(folder: Path, wanted: set[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root, _dirs, files in os.walk(folder):
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            digest = hash_file(path).blake3_hex
            if digest in wanted:
                found.setdefault(digest, path)
    return found


@dataclass(frozen=True)
class NotCopied:
    """A context entry the receiving log did not append: its rules, in its own order,
    refuse it, while the sender's log, in its order, holds it (docs/handoff.md)."""

    position: int  # 1-based, among the context's entries
    etype: str
    hash: str
    reason: str

    def describe(self) -> str:
        return (
            f"context entry {self.position} ({self.etype} {self.hash[:12]}) was not copied "
            f"to this log: {self.reason}; it was checked in the sender's log order and "
            "stays on the sender's log"
        )


def _import_context(
    w: LogWriter, context: Sequence[bytes], *, judged: bool
) -> tuple[int, list[NotCopied]]:
    """Append the context entries this log lacks, in the context's order.

    Returns how many were appended and the ones not copied.  An entry already on
    this log (same entry hash) is never appended twice.  When the context was
    `judged` in its own log's order (`custody.model.rules.judge_in_context`), an
    entry that this log's rules refuse in this log's order is not copied (it
    changes nothing this log's custody chain holds; the handoff itself must still
    pass this log's rules).  Otherwise such an entry refuses the import.  Raises
    EntryError for an entry whose signatures or key rules fail, InputError for a
    party registered here with another key, PolicyError as said.
    """
    added = 0
    skipped: list[NotCopied] = []
    for position, data in enumerate(context, 1):
        with_hash = entry_hash(data)
        if Store.index_of(w.session, with_hash) is not None:
            continue
        signed = SignedEntry.parse(data)
        e = signed.entry
        if e.type == "key" and e.get("action") == "register":
            known = w.session.get(PartyRow, e.require("party"))
            if known is not None:
                if known.vkey != e.require("vkey") and not _was_key_of(w, known.name, e):
                    raise InputError(
                        f"party '{known.name}' has another key on this log than in the offer",
                        hint="two parties share a name: check with the other side out of band",
                    )
                continue  # registered here already (by its own entry)
        try:
            append_indexed(w, data, imported=True)  # the sender's entry, the sender's time
        except PolicyError as exc:
            if not judged:
                raise
            reason = exc.message.removeprefix("refused: ")
            skipped.append(NotCopied(position, e.type, with_hash, reason))
            continue
        added += 1
    return added, skipped


def _was_key_of(w: LogWriter, name: str, entry: Entry) -> bool:
    return any(k.vkey.encode() == entry.get("vkey") for k in w.state.party_keys(name))


@dataclass(frozen=True)
class Accepted:
    """What `accept_offer` did: the handoff's index on this log, the receipt, whether
    the handoff was on the log already (a re-run), and the context entries not copied."""

    index: int
    receipt: Receipt | None  # None: no checkpoint covers the handoff yet (see `receipt_for`)
    already: bool = False
    not_copied: tuple[NotCopied, ...] = ()


def accept_offer(
    c: Custody,
    offer: Offer,
    *,
    by: str,
    media: Path | None,
    passphrase: PassphraseFn,
    now: datetime | None = None,
) -> Accepted:
    """Accept an offer: judge it, re-hash what was received, countersign, append, sign a
    receipt.

    The offer is judged first in the sender's own order: its context is replayed
    over a state built from the context alone, and the handoff must pass the
    custody rules there (`custody.model.rules.judge_in_context`).  Then the context
    entries this log lacks and the countersigned handoff are appended in one
    transaction, each under this log's rules (docs/handoff.md, "Entries from
    another log").  The receiver countersigns the same text with a cosignature/v1
    line made at `now` (default: the clock, whole seconds): that is the handoff's
    claimed time (`custody.model.times.claimed_time`; the `time` line stays the
    sender's, the moment of the offer), and it must not be more than the tolerance
    before the entry before it on this log (a clock set back is refused).

    If the handoff is already on this log (a re-run after a crash or a lost
    receipt), nothing is appended: a fresh receipt is made for it (`already`).

    Raises InputError naming the file if a received file is missing or not the one
    offered; `custody.model.rules.ContextError` (exit 1) if the context does not hold up in its own
    order; EntryError (exit 1) for a bad signature; PolicyError if the handoff
    breaks a custody rule, in the sender's order or here.
    """
    entry = offer.entry
    if entry.type != "handoff":
        raise InputError("the offer does not hold a handoff entry")
    if entry.require("to") != by:
        raise UsageError(f"this offer is for '{entry.require('to')}', not '{by}'")
    signer = c.signer(by, passphrase)
    vault = Vault(c.vault_root)
    done = _handoff_on_log(c, entry)
    if done is not None:
        index, data = done
        # A run interrupted after its commit may have left the received copies staged:
        # their items are on the log now, so this places them.
        recover(c, vault)
        return Accepted(index, receipt_for(c, index, data, by, passphrase), already=True)
    when = now if now is not None else datetime.now(UTC).replace(microsecond=0)
    countersigned = countersign_entry(offer.handoff, signer, when)
    _judge(c, offer, countersigned, by)
    items = entry.get_all("item")
    details = _item_details(offer)
    received: list[Staged] = []
    if media is not None:
        found = _media_by_digest(media, set(items))
        for item in items:
            if item not in found:
                name = details.get(item, ("?", 0))[0]
                candidate = media / name
                if candidate.is_file():
                    got = hash_file(candidate).blake3_hex
                    raise InputError(
                        f"{display(candidate)} is not the file offered: its BLAKE3 is "
                        f"{got[:16]}…, the offer says {item[:16]}…",
                        hint="the file was swapped or damaged in transit; refuse it and ask "
                        "the sender",
                    )
                raise InputError(
                    f"the offered file {name} (BLAKE3 {item[:16]}…) is not in {display(media)}"
                )
        try:
            for item in items:
                received.append(prepare(vault, Source(found[item]), False, None).staged)
        except BaseException:
            _discard(received)
            raise
    else:
        for item in items:
            if not vault.has(item):
                raise InputError(
                    f"item {item[:16]}… is not in this evidence store",
                    hint="pass --media DIR with the files you received",
                )
            vault.verify_object(item)
    try:
        with c.log.transaction() as w:
            _added, skipped = _import_context(w, offer.context, judged=True)
            index = append_indexed(w, countersigned)
    except BaseException:
        _discard(received)  # nothing enters the store without its entry
        raise
    crash_point("accept.handoff-committed")
    for copy in received:
        copy.place()
    receipt = receipt_for(c, index, countersigned, by, passphrase)
    return Accepted(index, receipt, not_copied=tuple(skipped))


def _discard(staged: Sequence[Staged]) -> None:
    for copy in staged:
        copy.discard()


def _judge(c: Custody, offer: Offer, countersigned: bytes, by: str) -> None:
    """Judge the offer in the sender's order (see `accept_offer`); raises as it says."""
    with c.log.state() as state:
        keys = [k for k in state.party_keys(by) if k.ended_at is None]
    signed = SignedEntry.parse(countersigned)
    try:
        judge_in_context(
            offer.context,
            Parsed(countersigned, signed.entry, signed.signer_names),
            known_keys={by: keys[-1]} if keys else None,
        )
    except RuleError as exc:
        raise PolicyError(f"refused: {exc.reason}", hint=exc.hint) from exc


def _handoff_on_log(c: Custody, entry: Entry) -> tuple[int, bytes] | None:
    """(index, bytes) of the handoff with this text (same offer) on this log, if any."""
    offer_id = entry.require("offer")
    with c.store.session() as s:
        rows = Store.case_entries(s, entry.require("case"))
    for index, data in rows:
        # The cheap byte tests pick the candidates; the parsed text decides.
        if (
            data.startswith(HANDOFF_ENTRY_PREFIX)
            and offer_id.encode() in data
            and SignedEntry.parse(data).entry == entry
        ):
            return index, data
    return None


def receipt_for(
    c: Custody, index: int, data: bytes, by: str, passphrase: PassphraseFn
) -> Receipt | None:
    """A receipt for handoff `index` (bytes `data`), or None while no checkpoint covers it.

    The receipt's inclusion proof is against the latest stored checkpoint when that
    covers the handoff.  When none does, a home holding the log key (one machine,
    or the log operator's) signs one now; any other home cannot, and gets None: the
    handoff is committed, and the receipt can be made once the operator signs the
    next checkpoint (docs/handoff.md, "Receipts").
    """
    latest = c.store.checkpoint()
    if latest is None or latest.size <= index:
        if not c.holds_log_key():
            return None
        c.log.checkpoint(c.log_signer(passphrase))
    proof = c.log.tlog_proof(index)
    return Receipt(c.log_key, data, tuple(_key_entries(c, {by})), proof)


def _item_details(offer: Offer) -> dict[str, tuple[str, int]]:
    out = {}
    for data in offer.context:
        e = SignedEntry.parse(data).entry
        if e.type in ("ingest", "derive"):
            out[e.require("item")] = (e.require("name"), int(e.require("size")))
    return out


def reject_offer(
    c: Custody, offer: Offer, *, by: str, reason: str, passphrase: PassphraseFn, now: datetime
) -> int:
    """Record that `by` refuses an offer (signed `reject` entry); the offer is then spent."""
    entry = offer.entry
    if entry.require("to") != by:
        raise UsageError(f"this offer is for '{entry.require('to')}', not '{by}'")
    if not reason.strip():
        raise UsageError("--reason is required: say why the offer is refused")
    signer = c.signer(by, passphrase)
    fields: list[tuple[str, str | int | None]] = [
        ("case", entry.require("case")),
        *(("item", i) for i in entry.get_all("item")),
        ("from", entry.require("from")),
        ("to", by),
        ("offer", entry.require("offer")),
        ("by", by),
        ("reason", reason),
    ]
    return _sign_and_append(c, Entry.build("reject", now, fields), [signer])


@dataclass(frozen=True)
class Recorded:
    """What `take_receipt` did: the handoff's index on this log, and whether it was
    there already (a re-run)."""

    index: int
    already: bool = False


def take_receipt(c: Custody, receipt: Receipt, *, trusted: VerifierKey | None) -> Recorded:
    """Check a receipt and append its handoff to this (the releasing) log.

    The receipt's proof must verify under the receiving log's key: `trusted` if
    given, else the key recorded the first time this origin sent a receipt
    (trust on first use, kept in `<home>/known-logs/`).  Idempotent: if the
    handoff is on this log already (a re-run, e.g. after a crash), nothing is
    appended, and the pinned key and the copy of the receipt in `<home>/receipts/`
    are completed if they are missing.

    Raises InputError for a key other than the pinned or trusted one, a
    VerificationError if the proof does not verify, what an append raises.
    """
    key = trusted or receipt.log_key
    pinned = _pinned_log_key(c, receipt.log_key.name)
    if pinned is not None and pinned != key:
        raise InputError(
            f"log '{key.name}' signed this receipt with another key than before",
            hint="check the receiving log's verifier key out of band",
        )
    if trusted is not None and trusted != receipt.log_key:
        raise InputError("the receipt names another log key than the one you trust")
    verify_tlog_proof(receipt.proof, receipt.entry, key)
    with c.log.transaction() as w:
        existing = Store.index_of(w.session, entry_hash(receipt.entry))
        if existing is None:
            _import_context(w, receipt.context, judged=False)
            # Countersigned in the receiver's home, at the receiver's time.
            index = append_indexed(w, receipt.entry, imported=True)
    if existing is None:
        # Committed: what follows only completes this home's files, and a re-run
        # (which finds the handoff on the log) completes them too.
        crash_point("receipt.recorded")
    if pinned is None:
        _pin_log_key(c, key)
    folder = c.home.root / "receipts"
    folder.mkdir(exist_ok=True)
    kept = folder / f"{entry_hash(receipt.entry)}.receipt"
    clear_stale_temps(kept, "tmp")  # what an interrupted earlier write of it left
    if not kept.exists():
        write_new(kept, receipt.encode(), mode=0o644)
    if existing is not None:
        return Recorded(existing, already=True)
    return Recorded(index)


def _known_logs(c: Custody) -> Path:
    return c.home.root / "known-logs"


def _pinned_log_key(c: Custody, origin: str) -> VerifierKey | None:
    from hashlib import sha256

    path = _known_logs(c) / f"{sha256(origin.encode()).hexdigest()}.vkey"
    if not path.exists():
        return None
    return VerifierKey.parse(path.read_text().strip())


def _pin_log_key(c: Custody, key: VerifierKey) -> None:
    from hashlib import sha256

    folder = _known_logs(c)
    folder.mkdir(exist_ok=True)
    path = folder / f"{sha256(key.name.encode()).hexdigest()}.vkey"
    if not path.exists():
        write_new(path, (key.encode() + "\n").encode(), mode=0o644)


def check_receipt_later(
    receipt: Receipt,
    newer_checkpoint: bytes,
    consistency: Sequence[bytes],
    trusted: VerifierKey | None = None,
) -> tuple[int, int]:
    """Check that the receipt's checkpoint is a prefix of a newer checkpoint of that log.

    Returns (old size, new size); raises VerificationError if the log forked or
    rolled back (the one rule of custody.tlog.witness.check_extends, which witnesses
    and bundle verification apply too).
    """
    from custody.tlog.checkpoint import open_checkpoint
    from custody.tlog.witness import check_extends

    key = trusted or receipt.log_key
    old = open_checkpoint(receipt.proof.checkpoint, key).checkpoint
    new = open_checkpoint(newer_checkpoint, key).checkpoint
    check_extends(old, new, tuple(consistency))
    return old.size, new.size
