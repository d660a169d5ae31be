"""The rule engine, table-driven: every custody rule, accepted and refused (no CLI, no I/O).

Each case starts from the same small log (four parties, two exhibits, one consent),
admits one more entry through `custody.model.rules.admit` over a `MemoryState`, and
states the outcome: the changes the entry makes, or the exact reason it is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.parties import EntryError, Parties
from custody.model.rules import (
    KNOWN_TYPES,
    Chain,
    Parsed,
    RuleError,
    admit,
    entry_hash,
    evaluate,
    replay,
)
from custody.model.state import (
    KeyEnded,
    KeyRegistered,
    MemoryState,
    PutConsent,
    PutItem,
    RevokeConsent,
    SetHolder,
    SettleOffer,
)
from custody.model.types import REGISTRY, DeriveRequest
from custody.tlog.note import Signer

WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
CASE = "C-1"
A, W, X = "aa" * 32, "bb" * 32, "cc" * 32  # consent item, warrant item, unknown item


def _signer(name: str, seed: int) -> Signer:
    return Signer.from_seed(name, bytes([seed]) * 32)


ANN, BOB, OLGA, CORY = (_signer(n, i) for i, n in enumerate(["ann", "bob", "olga", "cory"], 1))
ROLE = {"ann": "agency", "bob": "agency", "olga": "owner", "cory": "court"}


def sign(type_: str, fields: list[tuple[str, str | int | None]], *signers: Signer) -> bytes:
    return sign_entry(Entry.build(type_, WHEN, fields), list(signers))


def register(s: Signer, role: str | None = None) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("action", "register"),
        ("party", s.name),
        ("role", role or ROLE[s.name]),
        ("vkey", s.verifier_key.encode()),
    ]
    return sign("key", fields, s)


def ingest(item: str, number: int, basis: str, by: Signer = ANN, **extra: str) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{number:04d}"),
        ("item", item),
        ("name", f"f{number}.bin"),
        ("size", 1),
        ("kind", "attachment"),
        ("legal-basis", basis),
        ("by", by.name),
        *extra.items(),
    ]
    return sign("ingest", fields, by)


def grant(onward: str = "court", until: str | None = None, items: tuple[str, ...] = ()) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("action", "grant"),
        ("owner", "olga"),
        ("case", CASE),
        *(("item", i) for i in items),
        ("purpose", "investigation"),
        ("until", until),
        ("onward", onward),
    ]
    return sign("consent", fields, OLGA)


BASE = [register(ANN), register(BOB), register(OLGA), register(CORY)]
BASE += [ingest(A, 1, "consent"), ingest(W, 2, "warrant"), grant()]
GRANT = entry_hash(BASE[6])


def base_state() -> MemoryState:
    return replay(enumerate(BASE))


def access(item: str = A, by: Signer = ANN, *signers: Signer) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("item", item),
        ("by", by.name),
        ("purpose", "review"),
        ("action", "view"),
    ]
    return sign("access", fields, *(signers or (by,)))


def handoff(
    items: tuple[str, ...] = (A,),
    sender: Signer = ANN,
    receiver: Signer = CORY,
    offer: str = "0f" * 16,
    signers: tuple[Signer, ...] | None = None,
) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        *(("item", i) for i in items),
        ("from", sender.name),
        ("to", receiver.name),
        ("purpose", "trial"),
        ("offer", offer),
    ]
    return sign("handoff", fields, *(signers or (sender, receiver)))


def reject(by: Signer = CORY, to: Signer = CORY, offer: str = "0f" * 16) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("item", A),
        ("from", "ann"),
        ("to", to.name),
        ("offer", offer),
        ("by", by.name),
        ("reason", "wrong file"),
    ]
    return sign("reject", fields, by)


def derive(parent: str = A, child: str = X, by: Signer = ANN) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("exhibit", f"{CASE}/0003"),
        ("item", child),
        ("name", "trim.mp4"),
        ("size", 1),
        ("kind", "media"),
        ("parent", parent),
        ("op", "trim"),
        ("param", "start 0"),
        ("reason", "jury excerpt"),
        ("by", by.name),
    ]
    return sign("derive", fields, by)


def revoke_consent(target: str = GRANT, owner: Signer = OLGA) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("action", "revoke"),
        ("owner", owner.name),
        ("case", CASE),
        ("consent", target),
    ]
    return sign("consent", fields, owner)


def key(action: str, s: Signer, *signers: Signer, **extra: str) -> bytes:
    fields: list[tuple[str, str | int | None]] = [("action", action), ("party", s.name)]
    fields += list(extra.items())
    return sign("key", fields, *(signers or (s,)))


NEW_ANN = _signer("ann", 9)


@dataclass(frozen=True)
class Case:
    desc: str
    entry: Callable[[], bytes]
    error: str | None = None  # the exact reason (EntryError.reason), or None: accepted
    changes: Callable[[int], list[object]] | None = None
    before: tuple[Callable[[], bytes], ...] = field(default=())
    rule: bool = True  # a custody rule (RuleError), as opposed to a key/signature rule


CASES = [
    # -- ingest
    Case(
        "ingest a new item",
        lambda: ingest(X, 3, "warrant"),
        changes=lambda i: ["put", X],
    ),
    Case(
        "ingest an item already in the case",
        lambda: ingest(A, 3, "warrant"),
        error=f"item {A[:16]}… was already ingested in case {CASE} at entry 4",
    ),
    Case(
        "ingest not signed by the ingesting party",
        lambda: sign(
            "ingest",
            [
                ("case", CASE),
                ("exhibit", f"{CASE}/0003"),
                ("item", X),
                ("name", "x"),
                ("size", 1),
                ("kind", "attachment"),
                ("by", "bob"),
            ],
            ANN,
        ),
        error="is not signed by the ingesting party 'bob'",
    ),
    Case(
        "ingest naming another holder",
        lambda: ingest(X, 3, "warrant", holder="bob"),
        error="ingest by 'ann' names 'bob' as holder",
    ),
    Case(
        "ingest with a missing field",
        lambda: sign("ingest", [("case", CASE), ("by", "ann")], ANN),
        error="ingest entry has no 'exhibit' field",
    ),
    # -- consent
    Case(
        "grant by the owner",
        lambda: grant(onward="none", items=(A,)),
        changes=lambda i: ["consent"],
    ),
    Case(
        "grant by a party that is not an owner",
        lambda: sign(
            "consent",
            [
                ("action", "grant"),
                ("owner", "ann"),
                ("case", CASE),
                ("purpose", "p"),
                ("onward", "any"),
            ],
            ANN,
        ),
        error="consent is given by 'ann', who is not an owner party",
    ),
    Case(
        "grant not signed by the owner",
        lambda: sign(
            "consent",
            [
                ("action", "grant"),
                ("owner", "olga"),
                ("case", CASE),
                ("purpose", "p"),
                ("onward", "any"),
            ],
            ANN,
        ),
        error="is not signed by the owner 'olga'",
    ),
    Case(
        "grant with an unknown onward",
        lambda: grant(onward="anyone"),
        error="onward 'anyone' is not one of none, court, any",
    ),
    Case(
        "grant with a malformed until",
        lambda: grant(until="next year"),
        error="'until' is not a date like 2026-12-31: 'next year'",
    ),
    Case(
        "consent with an unknown action",
        lambda: sign("consent", [("action", "lend"), ("owner", "olga"), ("case", CASE)], OLGA),
        error="unknown consent action 'lend'",
    ),
    Case("revoke a grant", lambda: revoke_consent(), changes=lambda i: ["revoke", GRANT]),
    Case(
        "revoke a grant that is not on the log",
        lambda: revoke_consent("ee" * 32),
        error=f"revokes consent {'ee' * 6}, which is not on this log",
    ),
    Case(
        "revoke a grant twice",
        lambda: revoke_consent(),
        before=(lambda: revoke_consent(),),
        error=f"consent {GRANT[:12]} (entry 6) was already revoked at entry 7",
    ),
    Case(
        "revoke another owner's grant",
        lambda: revoke_consent(owner=_signer("otto", 7)),
        before=(lambda: register(_signer("otto", 7), "owner"),),
        error=f"consent {GRANT[:12]} (entry 6) was given by 'olga', not 'otto'",
    ),
    # -- handoff
    Case(
        "handoff by the holder to a court (onward court)",
        lambda: handoff(),
        changes=lambda i: ["holder", A, "cory", "offer"],
    ),
    Case(
        "handoff by a party that does not hold the item",
        lambda: handoff(sender=BOB),
        error=f"'bob' may not hand off {CASE}/0001: the current holder is 'ann'",
    ),
    Case(
        "handoff not countersigned by the receiver",
        lambda: handoff(signers=(ANN,)),
        error="is not signed by the receiving party 'cory'",
    ),
    Case(
        "handoff to oneself",
        lambda: handoff(receiver=ANN, signers=(ANN,)),
        error="a handoff needs two different parties",
    ),
    Case(
        "handoff naming no item",
        lambda: handoff(items=()),
        error="handoff names no item",
    ),
    Case(
        "handoff of an offer already settled",
        lambda: handoff(),
        before=(lambda: reject(),),
        error=f"offer {'0f' * 6} was already accepted or refused",
    ),
    Case(
        "handoff of consent footage to an agency (onward court)",
        lambda: handoff(receiver=BOB),
        error=f"outside the owner's consent for {CASE}/0001: consent {GRANT[:12]} (entry 6) "
        "allows onward sharing only to a court (onward court)",
    ),
    Case(
        "handoff of warrant footage to an agency",
        lambda: handoff(items=(W,), receiver=BOB),
        changes=lambda i: ["holder", W, "bob", "offer"],
    ),
    Case(
        "handoff of an item not in the case",
        lambda: handoff(items=(X,)),
        error=f"item {X[:16]}… is not on this log in case {CASE}",
    ),
    # -- reject
    Case("reject by the receiver", lambda: reject(), changes=lambda i: ["offer"]),
    Case(
        "reject by another party",
        lambda: reject(by=BOB),
        error="only the receiver 'cory' may refuse this offer",
    ),
    # -- access
    Case("access by the holder within consent", lambda: access(), changes=lambda i: []),
    Case(
        "access by a party that does not hold the item",
        lambda: access(by=BOB),
        error=f"'bob' may not access {CASE}/0001: the current holder is 'ann'",
    ),
    Case(
        "access not signed by the accessing party",
        lambda: access(A, BOB, ANN),
        error="is not signed by the party accessing the footage 'bob'",
    ),
    Case(
        "access after the consent was revoked",
        lambda: access(),
        before=(lambda: revoke_consent(),),
        error=f"outside the owner's consent for {CASE}/0001: consent {GRANT[:12]} (entry 6) "
        "was revoked at entry 7",
    ),
    Case(
        "access to warrant footage with no consent on the log",
        lambda: access(W),
        before=(lambda: revoke_consent(),),
        changes=lambda i: [],
    ),
    Case(
        "access with an unknown action",
        lambda: sign(
            "access",
            [("case", CASE), ("item", A), ("by", "ann"), ("purpose", "p"), ("action", "print")],
            ANN,
        ),
        error="access entry field 'action' is 'print', not one of view, export",
    ),
    # -- derive
    Case("derive by the holder", lambda: derive(), changes=lambda i: ["put", X]),
    Case(
        "derive by a party that does not hold the parent",
        lambda: derive(by=BOB),
        error=f"'bob' may not derive from {CASE}/0001: the current holder is 'ann'",
    ),
    Case(
        "derive a child already in the case",
        lambda: derive(child=W),
        error=f"derived item {W[:16]}… is already in case {CASE}",
    ),
    # -- the log's own checks
    Case(
        "an entry that names no case",
        lambda: sign("access", [("item", A), ("by", "ann")], ANN),
        error="a access entry must name its case",
    ),
    Case(
        "an unknown entry type",
        lambda: sign("teleport", [("case", CASE)], ANN),
        error="has unknown type 'teleport'",
    ),
    # -- keys (key rules and signatures: EntryError, not a refusal by a custody rule)
    Case(
        "rotate a key",
        lambda: key("rotate", ANN, ANN, NEW_ANN, vkey=NEW_ANN.verifier_key.encode()),
        changes=lambda i: ["ended", "registered"],
        rule=False,
    ),
    Case(
        "revoke a key",
        lambda: key("revoke", ANN, reason="stolen"),
        changes=lambda i: ["ended"],
        rule=False,
    ),
    Case(
        "register a name twice",
        lambda: register(ANN),
        error="party 'ann' was already registered at entry 0",
        rule=False,
    ),
    Case(
        "register an unknown role",
        lambda: register(_signer("zed", 8), "pirate"),
        error="role 'pirate' is not one of owner, agency, lab, court, defence, witness",
        rule=False,
    ),
    Case(
        "a key entry with an unknown action",
        lambda: key("borrow", ANN),
        error="unknown key action 'borrow'",
        rule=False,
    ),
    Case(
        "rotate a key that was revoked",
        lambda: key("rotate", ANN, ANN, NEW_ANN, vkey=NEW_ANN.verifier_key.encode()),
        before=(lambda: key("revoke", ANN, reason="stolen"),),
        error="party 'ann' has no active key to rotate",
        rule=False,
    ),
    Case(
        "an entry signed by a revoked key",
        lambda: access(W),
        before=(lambda: key("revoke", ANN, reason="stolen"),),
        error="signed by 'ann' with a key revoked: stolen at entry 7",
        rule=False,
    ),
    Case(
        "an entry signed by a party that is not registered",
        lambda: access(A, _signer("mallory", 6)),
        error="signed by 'mallory', which is not a registered party",
        rule=False,
    ),
]


def _kinds(changes: list[object]) -> list[object]:
    """A short description of changes, to compare with a case's expectation."""
    out: list[object] = []
    for ch in changes:
        if isinstance(ch, PutItem):
            out += ["put", ch.state.item]
        elif isinstance(ch, SetHolder):
            out += ["holder", ch.item, ch.holder]
        elif isinstance(ch, PutConsent):
            out.append("consent")
        elif isinstance(ch, RevokeConsent):
            out += ["revoke", ch.hash]
        elif isinstance(ch, SettleOffer):
            out.append("offer")
        elif isinstance(ch, KeyEnded):
            out.append("ended")
        elif isinstance(ch, KeyRegistered):
            out.append("registered")
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_rule(case: Case) -> None:
    state = base_state()
    index = len(BASE)
    for make in case.before:
        state.apply(admit(index, make(), state).changes)
        index += 1
    data = case.entry()
    if case.error is None:
        admitted = admit(index, data, state)
        assert case.changes is not None
        assert _kinds(list(admitted.changes)) == case.changes(index)
        state.apply(admitted.changes)
        return
    with pytest.raises(EntryError) as info:
        admit(index, data, state)
    assert info.value.reason == case.error
    assert info.value.index == index
    assert isinstance(info.value, RuleError) == case.rule


def test_every_registered_type_has_a_rule() -> None:
    assert frozenset(REGISTRY) == KNOWN_TYPES
    assert {"key", "ingest", "consent", "handoff", "reject", "access", "derive"} | {
        "request",
        "refusal",
        "review",
        "retention",
        "hold",
        "disposal",
        "analysis",
        "policy",
    } == KNOWN_TYPES


def test_the_state_after_a_handoff_and_a_revocation() -> None:
    state = replay(enumerate([*BASE, handoff(), revoke_consent()]))
    assert state.item(CASE, A) is not None and state.item(CASE, A).holder == "cory"  # type: ignore[union-attr]
    assert state.offer_settled("0f" * 16)
    assert state.consent(GRANT) is not None and state.consent(GRANT).revoked_at == 8  # type: ignore[union-attr]
    assert [c.hash for c in state.consents_covering(CASE, W)] == [GRANT]


def test_a_consent_with_items_covers_only_them() -> None:
    state = replay(enumerate([*BASE, grant(items=(W,))]))
    assert len(state.consents_covering(CASE, W)) == 2
    assert len(state.consents_covering(CASE, A)) == 1


def test_consent_expiry() -> None:
    late = sign_entry(
        Entry.build(
            "access",
            LATER,
            [("case", CASE), ("item", A), ("by", "ann"), ("purpose", "p"), ("action", "view")],
        ),
        [ANN],
    )
    state = replay(enumerate([*BASE[:6], grant(until="2026-12-31")]))
    with pytest.raises(RuleError, match="expired on 2026-12-31"):
        admit(7, late, state)


def test_evaluate_changes_nothing_itself() -> None:
    state = base_state()
    evaluate(len(BASE), SignedEntry.parse(handoff()), state)
    assert state.item(CASE, A).holder == "ann"  # type: ignore[union-attr]


def test_the_chain_interface_wraps_the_engine() -> None:
    """`Chain` (the interface older callers use) gives the engine's answers."""
    parties = Parties()
    for index, data in enumerate(BASE[:4]):
        parties.apply(index, SignedEntry.parse(data).entry)
    chain = Chain()
    for index, data in enumerate([*BASE, handoff()]):
        chain.apply(index, SignedEntry.parse(data), parties)
    assert chain.item(CASE, A).holder == "cory"  # type: ignore[union-attr]
    assert set(chain.items) == {(CASE, A), (CASE, W)}
    assert list(chain.consents) == [GRANT] and chain.offers == {"0f" * 16}
    with pytest.raises(EntryError, match="'ann' may not access"):
        chain.check_access(8, CASE, A, "ann", "2026-11-23T12:00:00Z")


def test_a_derive_dry_run_reads_only_what_the_rule_needs() -> None:
    """Before ffmpeg makes the copy (no bytes, no child file yet), the derive rule is
    checked over the state as derive's `_precheck` does: `DeriveRequest` carries only
    the fields the rule reads."""
    state = replay(enumerate([*BASE, handoff()]))

    def probe(by: str, child: str) -> Entry:
        fields = [("case", CASE), ("exhibit", f"{CASE}/0000"), ("parent", W), ("item", child)]
        return Entry.build("derive", WHEN, [*fields, ("by", by)])

    ann = probe("ann", "0" * 64)
    evaluate(8, Parsed(b"", ann, ("ann",)), state, DeriveRequest.from_entry(ann))
    bob = probe("bob", "1" * 64)
    with pytest.raises(EntryError, match="'bob' may not derive from"):
        evaluate(9, Parsed(b"", bob, ("bob",)), state, DeriveRequest.from_entry(bob))


def test_replay_names_the_first_bad_entry() -> None:
    with pytest.raises(EntryError, match="log entry 7: 'bob' may not access"):
        replay(enumerate([*BASE, access(by=BOB), access(by=BOB)]))
