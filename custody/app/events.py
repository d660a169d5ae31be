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
* the receiver re-hashes the media, countersigns, and appends the context it
  lacks and the handoff in one transaction; it writes a **receipt**
  (`custody/receipt/v1`): the doubly signed entry, the receiver's key entry and
  a tlog-proof against a fresh checkpoint of the receiving log;
* the releasing side checks the receipt and appends the same handoff entry to
  its own log, so both logs show who holds the footage now.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from custody.app.evidence import Source, display, prepare, resolve_item
from custody.app.home import Custody
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    NotFoundError,
    PolicyError,
    UsageError,
)
from custody.infra.files import write_new
from custody.infra.indexer import append_indexed
from custody.infra.log import LogWriter
from custody.infra.store import ItemRow, PartyRow, Store
from custody.infra.vault import Vault, hash_file
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.parties import EntryError
from custody.model.rules import Parsed, entry_hash, evaluate
from custody.tlog.note import Signer, VerifierKey, add_signatures
from custody.tlog.tlogproof import TlogProof, verify_tlog_proof

OFFER_VERSION = "custody/offer/v1"
RECEIPT_VERSION = "custody/receipt/v1"
PassphraseFn = Callable[[str], str]


def _sign_and_append(c: Custody, entry: Entry, signers: Sequence[Signer]) -> int:
    with c.log.transaction() as w:
        return append_indexed(w, sign_entry(entry, signers))


# -- keys ------------------------------------------------------------------------------------


def rotate_key(
    c: Custody, name: str, passphrase: PassphraseFn, now: datetime
) -> tuple[VerifierKey, int]:
    """Replace `name`'s key: the new key is introduced in an entry signed by old and new.

    The old key file is kept, renamed `<name>.<key id>.retired.key`, so entries it
    signed can still be re-signed-checked by anyone holding it.
    """
    old = c.signer(name, passphrase)
    party = c.party(name)
    new = Signer.generate(name)
    from custody.infra.keystore import seal

    keyfile = seal(new, party.role, party.org, passphrase(f"New passphrase for key '{name}': "))
    entry = Entry.build(
        "key", now, [("action", "rotate"), ("party", name), ("vkey", new.verifier_key.encode())]
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
        return append_indexed(w, data)


def import_entries(c: Custody, datas: Sequence[bytes]) -> list[int | None]:
    """Append entries from another log (exact bytes), in the order given, in one
    transaction.  Entries already on this log are skipped (None in the result);
    the others must pass the same signature and custody checks as local ones."""
    out: list[int | None] = []
    with c.log.transaction() as w:
        for data in datas:
            if Store.index_of(w.session, entry_hash(data)) is not None:
                out.append(None)
            else:
                out.append(append_indexed(w, data))
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
    if ref.isdigit():
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
) -> tuple[ItemRow, int]:
    """Copy an item out of the store to `out`, logging an `access` entry first.

    The copy is written to a temp file and verified against the item's digest;
    the entry is appended (the log refuses a non-holder or use outside consent);
    only then is the file moved into place.  Nothing leaves the store unlogged.
    """
    row = resolve_item(c, ref, case)
    if out.exists():
        raise UsageError(f"{out} already exists; refusing to overwrite it")
    signer = c.signer(by, passphrase)
    vault = Vault(c.home.vault_root)
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
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return row, index


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


def _case_entries(c: Custody, case: str) -> list[bytes]:
    """The bytes of a case's entries in log order (an offer's context)."""
    with c.store.session() as s:
        return [data for _index, data in Store.case_entries(s, case)]


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

    Raises EntryError (exit 1) if `sender` does not hold an item or the consent does
    not cover handing it to `receiver`; nothing is appended by an offer.
    """
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
    case_datas = _case_entries(c, case_id)
    key_entries = _key_entries(c, {sender} | _signers_of(case_datas))
    return Offer(data, tuple(key_entries + case_datas))


def _signers_of(datas: Iterable[bytes]) -> set[str]:
    return {name for d in datas for name in SignedEntry.parse(d).signer_names}


def _key_entries(c: Custody, names: set[str]) -> list[bytes]:
    """Every key entry of these parties (register, rotations, revocations), in log order."""
    with c.store.session() as s:
        rows = Store.key_entries(s)
    out = []
    for _index, data in rows:
        if SignedEntry.parse(data).entry.get("party") in names:
            out.append(data)
    return out


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


def _import_context(w: LogWriter, context: Sequence[bytes]) -> int:
    """Append the offer's context entries this log lacks; returns how many."""
    added = 0
    for data in context:
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
        append_indexed(w, data)
        added += 1
    return added


def _was_key_of(w: LogWriter, name: str, entry: Entry) -> bool:
    return any(k.vkey.encode() == entry.get("vkey") for k in w.state.party_keys(name))


def accept_offer(
    c: Custody,
    offer: Offer,
    *,
    by: str,
    media: Path | None,
    passphrase: PassphraseFn,
) -> tuple[int, Receipt]:
    """Accept an offer: re-hash what was received, countersign, append, sign a receipt.

    The entry's claimed time is the sender's (it is signed already); the receiver's
    countersignature covers the same text.

    Raises InputError naming the file if a received file is missing or not the one
    offered; EntryError (exit 1) if the handoff breaks a custody rule here.
    """
    entry = offer.entry
    if entry.type != "handoff":
        raise InputError("the offer does not hold a handoff entry")
    if entry.require("to") != by:
        raise UsageError(f"this offer is for '{entry.require('to')}', not '{by}'")
    signer = c.signer(by, passphrase)
    items = entry.get_all("item")
    details = _item_details(offer)
    vault = Vault(c.home.vault_root)
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
        for item in items:
            prepare(vault, Source(found[item]), False, None)
    else:
        for item in items:
            if not vault.has(item):
                raise InputError(
                    f"item {item[:16]}… is not in this evidence store",
                    hint="pass --media DIR with the files you received",
                )
            vault.verify_object(item)
    countersigned = add_signatures(offer.handoff, [signer])
    with c.log.transaction() as w:
        _import_context(w, offer.context)
        index = append_indexed(w, countersigned)
    # A fresh checkpoint covering the handoff, for the receipt's inclusion proof.
    c.log.checkpoint(c.log_signer(passphrase))
    proof = c.log.tlog_proof(index)
    receipt = Receipt(c.log_key, countersigned, tuple(_key_entries(c, {by})), proof)
    return index, receipt


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


def take_receipt(c: Custody, receipt: Receipt, *, trusted: VerifierKey | None) -> int:
    """Check a receipt and append its handoff to this (the releasing) log.

    The receipt's proof must verify under the receiving log's key: `trusted` if
    given, else the key recorded the first time this origin sent a receipt
    (trust on first use, kept in `<home>/known-logs/`).
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
        _import_context(w, receipt.context)
        if Store.index_of(w.session, entry_hash(receipt.entry)) is not None:
            raise UsageError("this receipt's handoff is already on this log")
        index = append_indexed(w, receipt.entry)
    if pinned is None:
        _pin_log_key(c, key)
    folder = c.home.root / "receipts"
    folder.mkdir(exist_ok=True)
    write_new(folder / f"{entry_hash(receipt.entry)}.receipt", receipt.encode(), mode=0o644)
    return index


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
