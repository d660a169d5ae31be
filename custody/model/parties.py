"""Party keys over time, and the signature check of one log entry (pure).

A party's key is introduced by a `key` entry (docs/spec/entry.md §key) and is
valid for entries from that index on, until it is rotated or revoked.  Every
signature line on an entry must come from a key that is valid at the entry's
index; an entry signed by a revoked key is refused, while the key's earlier
entries still verify.

A signature line is Ed25519 (type 0x01) by the party's key, or, on a handoff
only and only by its receiver, a C2SP cosignature/v1 (type 0x04) countersignature
by the same Ed25519 key: its key id is that of the type-0x04 key with the same
name and public key (`custody.model.entry.cosignature_key_id`), and it signs
``cosignature/v1\ntime <t>\n`` + the entry text, `t` being the moment the
receiver countersigned (the handoff's claimed time, `custody.model.times`).

`Parties` is fed key entries in log order; `check_entry` then verifies any
entry against it, in any order (which lets `custody log verify` spread the
signature checks over several processes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from custody.errors import CustodyError, VerificationError
from custody.model.entry import Entry, SignedEntry, cosignature_key_id
from custody.model.names import check_party_name
from custody.model.state import Change, KeyEnded, KeyRegistered, PartyKey, key_at
from custody.model.types import ROLES, KeyEvent
from custody.tlog.note import ALG_COSIGNATURE_V1, NoteSignature, VerifierKey

__all__ = [
    "POLICY_TYPE",
    "ROLES",
    "EntryError",
    "Parties",
    "PartyKey",
    "check_entry",
    "check_policy_signature",
    "check_signatures",
    "key_changes",
    "matches",
]


def matches(key: PartyKey, sig: NoteSignature) -> bool:
    """Whether signature line `sig` names `key`: its Ed25519 key id, or the key id of
    the cosignature/v1 key with the same name and public key (a countersignature)."""
    if sig.name != key.vkey.name:
        return False
    if sig.key_id == key.vkey.key_id:
        return True
    return sig.key_id == cosignature_key_id(key.vkey.name, key.vkey.public)


def _is_countersignature(key: PartyKey, sig: NoteSignature) -> bool:
    return sig.key_id != key.vkey.key_id


class EntryError(VerificationError):
    """Log entry `index` is wrong: malformed, badly signed, or against a rule."""

    def __init__(self, index: int, reason: str, hint: str | None = None) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"log entry {index}: {reason}", hint=hint)

    def __reduce__(self) -> tuple[type[EntryError], tuple[int, str, str | None]]:
        # Picklable, so that verification workers can hand the error back.
        return (EntryError, (self.index, self.reason, self.hint))


@dataclass
class Parties:
    """The party keys the log has introduced so far, with their validity spans."""

    keys: dict[str, list[PartyKey]] = field(default_factory=dict)

    def copy(self) -> Parties:
        """An independent copy (key histories are lists of immutable PartyKey)."""
        return Parties({name: list(keys) for name, keys in self.keys.items()})

    def party_keys(self, name: str) -> Sequence[PartyKey]:
        """The key history of `name`, oldest first (the `StateView` look-up)."""
        return self.keys.get(name, [])

    def apply(self, index: int, entry: Entry) -> None:
        """Take a `key` entry into account (other entries are ignored).

        Raises EntryError when the entry breaks a key rule (re-registering a
        name, rotating or revoking a key that is not active) or is malformed.
        """
        if entry.type != "key":
            return
        try:
            typed = KeyEvent.from_entry(entry)
        except CustodyError as exc:
            raise EntryError(index, exc.message) from exc
        self.apply_changes(key_changes(index, typed, self.party_keys))

    def apply_changes(self, changes: Sequence[Change]) -> None:
        """Apply the key changes among `changes` (the others are not about keys)."""
        for ch in changes:
            if isinstance(ch, KeyRegistered):
                self.keys.setdefault(ch.key.name, []).append(ch.key)
            elif isinstance(ch, KeyEnded):
                history = self.keys[ch.name]
                last = history[-1]
                history[-1] = last.ended(ch.index, ch.reason)

    def current(self, name: str) -> PartyKey | None:
        """The active key of `name` at the end of what was applied, or None."""
        history = self.keys.get(name)
        if not history or history[-1].ended_at is not None:
            return None
        return history[-1]

    def signing_keys(self, name: str, index: int) -> list[PartyKey]:
        """The keys of `name` that may sign entry `index`.

        Normally one; at a rotation entry both the old key (its last act) and the
        new one (its first) may sign.
        """
        return [
            key
            for key in self.keys.get(name, [])
            if key.registered_at <= index and (key.ended_at is None or index <= key.ended_at)
        ]

    def key_at(self, name: str, index: int) -> PartyKey | None:
        """The key of `name` valid for ordinary entries at `index`, or None."""
        return key_at(self.keys.get(name, []), index)

    def key_for(self, sig: NoteSignature, index: int) -> PartyKey | None:
        """The key that may have made signature line `sig` on entry `index` (by its
        Ed25519 or its cosignature/v1 key id: `matches`), or None."""
        return next((k for k in self.signing_keys(sig.name, index) if matches(k, sig)), None)


def key_changes(
    index: int, e: KeyEvent, keys_of: Callable[[str], Sequence[PartyKey]]
) -> list[Change]:
    """The rule for a `key` entry (docs/spec/entry.md §key): what it changes.

    `keys_of(name)` is the key history of a party so far.  Raises EntryError when
    a name is registered twice or breaks the party-name rule
    (`custody.model.names.check_party_name`), a role is unknown, a key's name is
    not the party's, or a key that is not active is rotated or revoked.  Signatures (and
    the proof of possession) are `check_entry`'s business.
    """
    name = e.party
    history = keys_of(name)
    try:
        if e.action == "register":
            check_party_name(name)
            if history:
                first = history[0].registered_at
                raise EntryError(index, f"party '{name}' was already registered at entry {first}")
            assert e.role is not None and e.vkey is not None  # KeyEvent.check
            if e.role not in ROLES:
                raise EntryError(index, f"role {e.role!r} is not one of {', '.join(ROLES)}")
            vkey = VerifierKey.parse(e.vkey)
            _check_vkey_name(index, name, vkey)
            return [KeyRegistered(PartyKey(name, e.role, e.org or "", vkey, index))]
        current = history[-1] if history and history[-1].ended_at is None else None
        if current is None:
            raise EntryError(index, f"party '{name}' has no active key to {e.action}")
        ended = "rotated" if e.action == "rotate" else f"revoked: {e.reason or ''}"
        changes: list[Change] = [KeyEnded(name, index, ended.strip())]
        if e.action == "rotate":
            assert e.vkey is not None  # KeyEvent.check
            vkey = VerifierKey.parse(e.vkey)
            _check_vkey_name(index, name, vkey)
            changes.append(KeyRegistered(PartyKey(name, current.role, current.org, vkey, index)))
        return changes
    except EntryError:
        raise
    except CustodyError as exc:
        raise EntryError(index, exc.message) from exc


def _check_countersigner(index: int, signed: SignedEntry, sig: NoteSignature) -> None:
    """A cosignature/v1 line is allowed only as a handoff's receiver's countersignature."""
    entry = signed.entry
    if entry.type != "handoff" or entry.get("to") != sig.name:
        raise EntryError(
            index,
            f"carries a cosignature/v1 line by '{sig.name}', which only the receiver of a "
            "handoff may add (its countersignature)",
        )
    if len(signed.countersignatures) > 1:
        raise EntryError(
            index, "carries more than one cosignature/v1 line: a handoff is countersigned once"
        )


def _check_vkey_name(index: int, name: str, vkey: VerifierKey) -> None:
    if vkey.name != name:
        raise EntryError(index, f"key entry for '{name}' carries a key named '{vkey.name}'")


def check_entry(
    index: int, data: bytes, parties: Parties, log_key: VerifierKey | None = None
) -> SignedEntry:
    """Parse entry `index` and verify every signature line on it.

    Each signature must be by a party key valid at `index` (for a `key` entry,
    the key it introduces, or the key it rotates or revokes); a `policy` entry's
    by the log key `log_key` alone (`check_policy_signature`).  Raises EntryError
    naming the entry and what is wrong.
    """
    try:
        signed = SignedEntry.parse(data)
    except CustodyError as exc:
        raise EntryError(index, f"malformed: {exc.message}") from exc
    if signed.entry.type == POLICY_TYPE:
        return check_policy_signature(index, signed, log_key)
    return check_signatures(index, signed, parties)


#: The entry type signed by the log key rather than by a party (docs/spec/entry.md §policy).
POLICY_TYPE = "policy"


def check_policy_signature(
    index: int, signed: SignedEntry, log_key: VerifierKey | None
) -> SignedEntry:
    """The signature check of a `policy` entry (docs/spec/entry.md §policy): signed by
    the log key `log_key` (its name is the log's origin), and by nothing else.

    Returns `signed`; raises EntryError naming the entry and what is wrong, and where
    `log_key` is None (the log key is not known here: a policy cannot be checked).
    """
    if log_key is None:
        raise EntryError(
            index,
            "is a policy entry, signed by the log key, and the log key is not known here",
            hint="a policy entry is checked on its own log (custody log verify) or in a bundle "
            "of that log (custody verify-bundle), where the log key is known",
        )
    if not signed.note.signatures:
        raise EntryError(index, "carries no signature")
    message = signed.note.text.encode("utf-8")
    for sig in signed.note.signatures:
        if sig.name != log_key.name or sig.key_id != log_key.key_id:
            raise EntryError(
                index,
                f"is a policy entry signed by '{sig.name}': a policy entry is signed by the "
                f"log key of {log_key.name} and only by it",
                hint="a policy is set with 'custody policy set' in the home holding the log key",
            )
        try:
            log_key.verify(message, sig.signature)
        except VerificationError:
            raise EntryError(
                index,
                "the log key's signature on this policy entry does not verify: the entry "
                "was changed after signing, or the signature was forged",
                hint="restore the entry from a backup or an exported bundle",
            ) from None
    return signed


def check_signatures(index: int, signed: SignedEntry, parties: Parties) -> SignedEntry:
    """`check_entry` for an entry already parsed: every signature line, by a key of
    `parties` valid at `index`, and a key entry's proof of possession.

    Returns `signed`; raises EntryError naming the entry and what is wrong.
    """
    if not signed.note.signatures:
        raise EntryError(index, "carries no signature")
    message = signed.note.text.encode("utf-8")
    for sig in signed.note.signatures:
        key = parties.key_for(sig, index)
        if key is None:
            history = parties.keys.get(sig.name, [])
            if not history:
                raise EntryError(index, f"signed by '{sig.name}', which is not a registered party")
            known = next((k for k in history if matches(k, sig)), None)
            if known is not None and known.ended_at is not None and index > known.ended_at:
                raise EntryError(
                    index,
                    f"signed by '{sig.name}' with a key {known.end_reason} at entry "
                    f"{known.ended_at}",
                    hint="a revoked or rotated key may not sign anything new",
                )
            if known is not None:
                raise EntryError(
                    index,
                    f"signed by '{sig.name}' with a key registered only at entry "
                    f"{known.registered_at}",
                )
            raise EntryError(index, f"signature by '{sig.name}' uses a key id that party never had")
        vkey = key.vkey
        if _is_countersignature(key, sig):
            _check_countersigner(index, signed, sig)
            vkey = VerifierKey(vkey.name, ALG_COSIGNATURE_V1, vkey.public)
        try:
            vkey.verify(message, sig.signature)
        except VerificationError:
            raise EntryError(
                index,
                f"signature by '{sig.name}' does not verify: the entry bytes were changed "
                "after signing, or the signature was forged",
                hint="restore the entry from a backup or an exported bundle",
            ) from None
    entry = signed.entry
    if entry.type == "key" and entry.get("action") in ("register", "rotate"):
        # Proof of possession: the key being introduced must sign its own entry.
        introduced = entry.get("vkey")
        if introduced is None or not any(
            s.name == entry.get("party") and s.key_id == VerifierKey.parse(introduced).key_id
            for s in signed.note.signatures
        ):
            raise EntryError(index, "a key entry must be signed by the key it introduces")
    if entry.type == "key" and entry.get("action") in ("rotate", "revoke"):
        # The key that ends here (valid up to and including this entry) must sign its own
        # end: a rotate is signed by the old key and the new, a revoke by the key revoked
        # (docs/spec/entry.md §key).  Without this, anyone able to append could replace
        # or end another party's key.
        party = entry.get("party")
        for ended in (k for k in parties.keys.get(party or "", []) if k.ended_at == index):
            if not any(
                s.name == party and s.key_id == ended.vkey.key_id for s in signed.note.signatures
            ):
                action = entry.get("action")
                raise EntryError(
                    index,
                    f"a key {action} entry for '{party}' must be signed by the key it "
                    f"{'rotates' if action == 'rotate' else 'revokes'} (key id "
                    f"{ended.vkey.key_id.hex()})",
                    hint="rotate or revoke a key in the home that holds it "
                    "(custody key rotate|revoke)",
                )
    return signed
