"""The rules of issue 12 (docs/spec/entry.md custody rules 6-14), each accepted and refused:
requests and their answers, emergency disclosures and their reviews, retention, legal
holds, disposal, automated analysis and the log's policy.  Pure: entries signed with test
keys, admitted through `custody.model.rules.admit` over a `MemoryState` that knows the
log key, exactly as `log verify` and verify-bundle replay them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custody.model.entry import Entry, sign_entry
from custody.model.parties import EntryError
from custody.model.rules import RuleError, admit, entry_hash, replay
from custody.model.state import (
    AnswerRequest,
    Change,
    Dispose,
    MemoryState,
    PutConsent,
    PutEmergency,
    PutHold,
    PutItem,
    PutRequest,
    ReleaseHold,
    ReviewEmergency,
    SetPolicy,
)
from custody.tlog.note import Signer

WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CASE = "C-1"
ORIGIN = "metro.example/custody"
CLIP, WARRANTED, EMERGENCY = "a1" * 32, "b2" * 32, "c3" * 32  # consent, warrant, emergency
NEW = "d4" * 32  # an item not ingested yet


def _signer(name: str, seed: int) -> Signer:
    return Signer.from_seed(name, bytes([seed]) * 32)


ANN, BOB, OLGA, OSCAR, CORY, LARA = (
    _signer(n, i) for i, n in enumerate(["ann", "bob", "olga", "oscar", "cory", "lara"], 1)
)
LOG = _signer(ORIGIN, 40)
ROLE = {
    "ann": "agency",
    "bob": "agency",
    "olga": "owner",
    "oscar": "owner",
    "cory": "court",
    "lara": "lab",
}
Fields = list[tuple[str, str | int | None]]


def sign(type_: str, fields: Fields, *signers: Signer, when: datetime = WHEN) -> bytes:
    return sign_entry(Entry.build(type_, when, fields), list(signers))


def register(s: Signer) -> bytes:
    fields: Fields = [
        ("action", "register"),
        ("party", s.name),
        ("role", ROLE[s.name]),
        ("vkey", s.verifier_key.encode()),
    ]
    return sign("key", fields, s)


def request(
    by: Signer = ANN, owner: str | None = "olga", case: str = CASE, ref: str | None = None
) -> bytes:
    fields: Fields = [
        ("case", case),
        ("by", by.name),
        ("owner", owner),
        ("purpose", "burglary at 12 High St"),
        ("start", "2026-11-20T18:00:00Z"),
        ("end", "2026-11-20T20:00:00Z"),
        ("area", "51.5,-0.1,200"),
        ("answer-by", "2026-11-30"),
        ("ref", ref),
    ]
    return sign("request", fields, by)


REQ = request()
REQ_HASH = entry_hash(REQ)


def grant(
    owner: Signer = OLGA,
    req: str | None = REQ_HASH,
    items: tuple[str, ...] = (),
    until: str | None = None,
    case: str = CASE,
) -> bytes:
    fields: Fields = [
        ("action", "grant"),
        ("owner", owner.name),
        ("case", case),
        *(("item", i) for i in items),
        ("purpose", "investigation"),
        ("until", until),
        ("onward", "court"),
        ("request", req),
    ]
    return sign("consent", fields, owner)


def refusal(owner: Signer = OLGA, req: str = REQ_HASH, case: str = CASE) -> bytes:
    fields: Fields = [("case", case), ("owner", owner.name), ("request", req), ("reason", "no")]
    return sign("refusal", fields, owner)


def ingest(
    item: str, number: int, basis: str, by: Signer = ANN, when: datetime = WHEN, **extra: str
) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{number:04d}"),
        ("item", item),
        ("name", f"clip{number}.mp4"),
        ("size", 1),
        ("kind", "media"),
        ("legal-basis", basis),
        *((k.replace("_", "-"), v) for k, v in extra.items()),
        ("by", by.name),
    ]
    return sign("ingest", fields, by, when=when)


GRANT = grant()
GRANT_HASH = entry_hash(GRANT)
EMERGENCY_INGEST = ingest(EMERGENCY, 3, "emergency", justification="a child is missing")
EMERGENCY_HASH = entry_hash(EMERGENCY_INGEST)

BASE = [register(s) for s in (ANN, BOB, OLGA, OSCAR, CORY, LARA)]
BASE += [
    REQ,
    GRANT,
    ingest(CLIP, 1, "consent", consent=GRANT_HASH, recorded="2026-11-20T19:00:00Z"),
    ingest(WARRANTED, 2, "warrant", ref="W-1"),
    EMERGENCY_INGEST,
]


def state(*more: bytes, log_key: bool = True) -> MemoryState:
    """The state after BASE and `more` (a log whose key is LOG, unless not `log_key`)."""
    return replay(
        enumerate([*BASE, *more]), MemoryState(log_vkey=LOG.verifier_key if log_key else None)
    )


def accepted(*more: bytes, log_key: bool = True) -> tuple[int, list[Change], MemoryState]:
    """Admit the last of `more` after BASE and the others: (its index, changes, state after)."""
    *before, last = more
    st = state(*before, log_key=log_key)
    index = len(BASE) + len(before)
    changes = admit(index, last, st).changes
    st.apply(changes)
    return index, changes, st


def refused(*more: bytes, log_key: bool = True) -> str:
    """The reason the last of `more` is refused by a custody rule (RuleError)."""
    *before, last = more
    st = state(*before, log_key=log_key)
    with pytest.raises(RuleError) as info:
        admit(len(BASE) + len(before), last, st)
    return info.value.reason


# -- the base story is itself accepted ----------------------------------------------------


def test_the_base_story_records_the_request_its_answer_and_the_emergency() -> None:
    st = state()
    req = st.request(REQ_HASH)
    assert req is not None and req.index == 6 and req.owner == "olga"
    assert req.answers == ((7, "olga", "consent"),)
    consent = st.consent(GRANT_HASH)
    assert consent is not None and consent.request == REQ_HASH
    em = st.emergency(EMERGENCY_HASH)
    assert em is not None and (em.index, em.by, em.item) == (10, "ann", EMERGENCY)
    assert em.due == "2026-11-26T12:00:00Z"  # 72 hours, no policy
    assert em.reviewed_at is None


# -- rule 6: requests ------------------------------------------------------------------------


def test_a_request_is_recorded() -> None:
    index, changes, st = accepted(request(ref="R-2"))
    assert [type(c) for c in changes] == [PutRequest]
    [put] = changes
    assert isinstance(put, PutRequest) and put.request.index == index
    assert put.request.area == "51.5,-0.1,200" and put.request.start == "2026-11-20T18:00:00Z"
    assert st.request(put.request.hash) is not None


def test_an_owner_cannot_make_a_request() -> None:
    assert refused(request(by=OLGA)) == (
        "request is made by 'olga', an owner party: owners answer requests, they do not make them"
    )


def test_a_request_is_signed_by_its_asker() -> None:
    fields: Fields = [
        ("case", CASE),
        ("by", "bob"),
        ("purpose", "p"),
        ("start", "2026-11-20T18:00:00Z"),
        ("end", "2026-11-20T20:00:00Z"),
    ]
    assert refused(sign("request", fields, ANN)) == "is not signed by the asking party 'bob'"


def test_the_same_request_twice_is_refused() -> None:
    assert refused(REQ) == f"request {REQ_HASH[:12]} (entry 6) is on this log already"


# -- rule 7: answers -------------------------------------------------------------------------


def test_a_consent_answering_a_request_answers_it() -> None:
    other = request(owner=None, ref="R-open")
    index, changes, st = accepted(other, grant(OSCAR, entry_hash(other)))
    assert [type(c) for c in changes] == [PutConsent, AnswerRequest]
    answer = changes[1]
    assert isinstance(answer, AnswerRequest) and (answer.owner, answer.outcome) == (
        "oscar",
        "consent",
    )
    req = st.request(entry_hash(other))
    assert req is not None and req.answers == ((index, "oscar", "consent"),)


def test_a_refusal_answers_a_request() -> None:
    other = request(owner="oscar", ref="R-3")
    index, changes, st = accepted(other, refusal(OSCAR, entry_hash(other)))
    assert changes == [AnswerRequest(entry_hash(other), index, "oscar", "refusal")]
    req = st.request(entry_hash(other))
    assert req is not None and req.answers[-1][2] == "refusal"


def test_an_answer_needs_the_request_on_the_log() -> None:
    missing = "ee" * 32
    assert refused(refusal(req=missing)) == (
        f"answers request {missing[:12]} (field 'request'), which is not on this log"
    )
    assert refused(grant(req=missing)).startswith("answers request eeeeeeeeeeee")


def test_an_answer_is_for_the_requests_case() -> None:
    assert refused(refusal(case="C-2")) == (
        f"answers request {REQ_HASH[:12]} (entry 6), which is for case C-1, not C-2 (field 'case')"
    )


def test_only_the_owner_asked_answers() -> None:
    assert refused(refusal(OSCAR)) == (
        f"answers request {REQ_HASH[:12]} (entry 6), which asks 'olga', not 'oscar'"
    )


def test_an_owner_answers_once() -> None:
    assert refused(refusal()) == (
        f"'olga' answered request {REQ_HASH[:12]} (entry 6) already at entry 7 (consent)"
    )


def test_a_refusal_is_an_owners() -> None:
    fields: Fields = [("case", CASE), ("owner", "ann"), ("request", REQ_HASH)]
    assert refused(sign("refusal", fields, ANN)) == (
        "refusal is given by 'ann', who is not an owner party"
    )


# -- rule 8: ingest under a consent, and emergency disclosures ----------------------------------


def test_a_clip_recorded_outside_the_window_is_refused() -> None:
    late = ingest(NEW, 4, "consent", consent=GRANT_HASH, recorded="2026-11-20T21:30:00Z")
    assert refused(late) == (
        "clip 'clip4.mp4' was recorded at 2026-11-20T21:30:00Z (field 'recorded'), outside "
        "the window 2026-11-20T18:00:00Z to 2026-11-20T20:00:00Z of request "
        f"{REQ_HASH[:12]} (entry 6), which consent {GRANT_HASH[:12]} (entry 7) answers"
    )


def test_a_clip_recorded_outside_the_area_is_refused() -> None:
    far = ingest(NEW, 4, "consent", consent=GRANT_HASH, location="51.51,-0.1")
    reason = refused(far)
    assert reason.startswith("clip 'clip4.mp4' was recorded at 51.51,-0.1 (field 'location'), ")
    assert "1112 m from the centre of the area 51.5,-0.1,200 (radius 200 m)" in reason
    assert f"of request {REQ_HASH[:12]} (entry 6)" in reason


def test_a_clip_inside_the_scope_or_without_metadata_is_taken_in() -> None:
    inside = ingest(
        NEW,
        4,
        "consent",
        consent=GRANT_HASH,
        recorded="2026-11-20T18:00:00Z",
        location="51.5005,-0.1",
    )
    _, changes, _ = accepted(inside)
    assert [type(c) for c in changes] == [PutItem]
    _, changes, _ = accepted(ingest(NEW, 4, "consent", consent=GRANT_HASH))  # unknown: allowed
    assert [type(c) for c in changes] == [PutItem]


def test_an_ingest_naming_a_consent_needs_legal_basis_consent() -> None:
    assert refused(ingest(NEW, 4, "warrant", consent=GRANT_HASH)) == (
        f"clip 'clip4.mp4' names consent {GRANT_HASH[:12]} (field 'consent') but its "
        "legal-basis is warrant, not consent"
    )


def test_an_ingest_naming_an_unknown_consent_is_refused() -> None:
    assert refused(ingest(NEW, 4, "consent", consent=REQ_HASH)) == (
        f"clip 'clip4.mp4' names consent {REQ_HASH[:12]} (field 'consent'), which is not a "
        "consent grant on this log"
    )


def test_an_ingest_under_a_revoked_expired_or_narrow_consent_is_refused() -> None:
    revoke = sign(
        "consent",
        [("action", "revoke"), ("owner", "olga"), ("case", CASE), ("consent", GRANT_HASH)],
        OLGA,
    )
    assert refused(revoke, ingest(NEW, 4, "consent", consent=GRANT_HASH)).endswith(
        f"consent {GRANT_HASH[:12]} (entry 7) was revoked at entry 11"
    )
    short = grant(OSCAR, None, until="2026-11-22")
    later = ingest(NEW, 4, "consent", consent=entry_hash(short))
    assert refused(short, later).endswith("expired on 2026-11-22")
    narrow = grant(OSCAR, None, items=(CLIP,))
    other = ingest(NEW, 4, "consent", consent=entry_hash(narrow))
    assert "lists items and this clip (item d4d4d4d4d4d4d4d4…) is not one of them" in refused(
        narrow, other
    )


def test_an_emergency_ingest_needs_a_justification() -> None:
    assert refused(ingest(NEW, 4, "emergency")) == (
        "clip 'clip4.mp4' is ingested with legal-basis emergency but the entry has no "
        "'justification' field"
    )


def test_an_emergency_is_due_for_review_within_the_policy_in_force() -> None:
    rule = policy(review_within="24")
    index, changes, _ = accepted(rule, ingest(NEW, 4, "emergency", justification="fire"))
    assert [type(c) for c in changes] == [PutItem, PutEmergency]
    em = changes[1]
    assert isinstance(em, PutEmergency)
    assert (em.emergency.index, em.emergency.time) == (index, "2026-11-23T12:00:00Z")
    assert em.emergency.due == "2026-11-24T12:00:00Z"


# -- rule 9: reviews -------------------------------------------------------------------------


def review(outcome: str = "upheld", by: Signer = BOB, item: str = EMERGENCY, of: str = "") -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("ingest", of or EMERGENCY_HASH),
        ("by", by.name),
        ("outcome", outcome),
        ("note", "checked"),
    ]
    return sign("review", fields, by, when=WHEN + timedelta(hours=80))


def test_a_review_by_another_party_is_recorded() -> None:
    index, changes, st = accepted(review())
    assert changes == [
        ReviewEmergency(EMERGENCY_HASH, index, "upheld", "bob", "2026-11-26T20:00:00Z")
    ]
    em = st.emergency(EMERGENCY_HASH)
    assert em is not None and (em.outcome, em.reviewer, em.reviewed_at) == ("upheld", "bob", index)
    item = st.item(CASE, EMERGENCY)
    assert item is not None and item.restricted_at is None  # upheld: no restriction


def test_the_disclosing_party_may_not_review_it() -> None:
    assert refused(review(by=ANN)) == (
        f"'ann' made emergency disclosure {EMERGENCY_HASH[:12]} (entry 10) and may not review it"
    )


def test_only_an_emergency_disclosure_is_reviewed_and_only_once() -> None:
    warrant_ingest = entry_hash(BASE[9])
    assert refused(review(of=warrant_ingest, item=WARRANTED)) == (
        f"reviews ingest {warrant_ingest[:12]} (field 'ingest'), which is not an emergency "
        "disclosure on this log"
    )
    assert refused(review(), review("rejected", CORY)) == (
        f"emergency disclosure {EMERGENCY_HASH[:12]} (entry 10) was reviewed already at "
        "entry 11 (upheld)"
    )
    assert "not item a1a1a1a1a1a1a1a1… in case C-1" in refused(review(item=CLIP))


# -- rule 10: a rejected disclosure restricts the item; a disposed item is closed ------------


def access(item: str, by: Signer = ANN) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("by", by.name),
        ("purpose", "review"),
        ("action", "view"),
    ]
    return sign("access", fields, by, when=WHEN + timedelta(hours=90))


def handoff(item: str, receiver: Signer, offer: str = "0f" * 16) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("from", "ann"),
        ("to", receiver.name),
        ("purpose", "trial"),
        ("offer", offer),
    ]
    return sign("handoff", fields, ANN, receiver, when=WHEN + timedelta(hours=90))


def derive(parent: str) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/0009"),
        ("item", NEW),
        ("name", "trim.mp4"),
        ("size", 1),
        ("kind", "media"),
        ("parent", parent),
        ("op", "trim"),
        ("reason", "excerpt"),
        ("by", "ann"),
    ]
    return sign("derive", fields, ANN, when=WHEN + timedelta(hours=90))


def test_a_rejected_disclosure_restricts_the_item() -> None:
    rejected = review("rejected")
    index, _, st = accepted(rejected)
    item = st.item(CASE, EMERGENCY)
    assert item is not None and item.restricted_at == index
    why = "its emergency disclosure was rejected on review at entry 11"
    assert refused(rejected, access(EMERGENCY)) == f"C-1/0003 may not be accessed: {why}"
    assert refused(rejected, derive(EMERGENCY)) == f"C-1/0003 may not be derived from: {why}"
    assert refused(rejected, analysis(EMERGENCY)) == f"C-1/0003 may not be analysed: {why}"
    assert refused(rejected, handoff(EMERGENCY, BOB)) == (
        f"C-1/0003 may be handed off only to a court: {why}"
    )
    _, changes, _ = accepted(rejected, handoff(EMERGENCY, CORY))
    assert len(changes) == 2  # to a court: allowed
    _, changes, _ = accepted(rejected, disposal(EMERGENCY))
    assert [type(c) for c in changes] == [Dispose]


def test_nothing_names_a_disposed_item() -> None:
    gone = disposal(WARRANTED)
    index, changes, st = accepted(gone)
    assert changes == [Dispose(CASE, WARRANTED, index)]
    item = st.item(CASE, WARRANTED)
    assert item is not None and item.disposed_at == index
    closed = "C-1/0002 was disposed of at entry 11: it can no longer"
    assert refused(gone, access(WARRANTED)) == f"{closed} be accessed"
    assert refused(gone, handoff(WARRANTED, CORY)) == f"{closed} be handed off"
    assert refused(gone, derive(WARRANTED)) == f"{closed} be derived from"
    assert refused(gone, analysis(WARRANTED)) == f"{closed} be analysed"
    assert refused(gone, retention(WARRANTED)) == f"{closed} have a retention period"
    assert refused(gone, hold(WARRANTED)) == f"{closed} be put under hold"
    assert refused(gone, disposal(WARRANTED)) == f"{closed} be disposed of again"


# -- rules 11 and 12: retention, holds, disposal -----------------------------------------------


def retention(item: str | None = None, by: Signer = ANN) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("until", "2027-11-23"),
        ("basis", "retention schedule 4.2"),
        ("by", by.name),
    ]
    return sign("retention", fields, by, when=WHEN + timedelta(hours=90))


def hold(item: str | None = None, by: Signer = ANN) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("action", "place"),
        ("reason", "appeal pending"),
        ("by", by.name),
    ]
    return sign("hold", fields, by, when=WHEN + timedelta(hours=90))


def release(placed: bytes, by: Signer = ANN, case: str = CASE) -> bytes:
    fields: Fields = [
        ("case", case),
        ("action", "release"),
        ("hold", entry_hash(placed)),
        ("reason", "appeal decided"),
        ("by", by.name),
    ]
    return sign("hold", fields, by, when=WHEN + timedelta(hours=91))


def disposal(item: str, by: Signer = ANN) -> bytes:
    fields: Fields = [("case", CASE), ("item", item), ("by", by.name), ("reason", "retention over")]
    return sign("disposal", fields, by, when=WHEN + timedelta(hours=92))


def test_retention_is_set_by_an_agency_lab_or_court() -> None:
    for by in (ANN, LARA, CORY):
        _, changes, _ = accepted(retention(by=by))
        assert changes == []
        _, changes, _ = accepted(retention(CLIP, by=by))
        assert changes == []
    assert refused(retention(by=OLGA)) == (
        "'olga' has role owner: only an agency, a lab or a court sets retention and holds"
    )
    assert refused(retention(NEW)) == "item d4d4d4d4d4d4d4d4… is not on this log in case C-1"


def test_a_hold_is_placed_and_released() -> None:
    placed = hold(CLIP)
    index, changes, st = accepted(placed)
    assert [type(c) for c in changes] == [PutHold]
    h = st.hold(entry_hash(placed))
    assert h is not None and (h.index, h.item, h.by, h.released_at) == (index, CLIP, "ann", None)
    assert [x.hash for x in st.holds_covering(CASE, CLIP)] == [entry_hash(placed)]
    assert st.holds_covering(CASE, WARRANTED) == []
    index, changes, st = accepted(placed, release(placed))
    assert changes == [ReleaseHold(entry_hash(placed), index)]
    assert st.holds_covering(CASE, CLIP)[0].released_at == index
    _, changes, _ = accepted(placed, release(placed, CORY))  # a court may release it
    assert [type(c) for c in changes] == [ReleaseHold]
    assert refused(hold(by=OSCAR)).startswith("'oscar' has role owner")


def test_a_hold_is_released_only_by_its_placer_or_a_court_and_once() -> None:
    placed = hold()
    h = entry_hash(placed)[:12]
    assert refused(placed, release(placed, BOB)) == (
        f"hold {h} (entry 11) was placed by 'ann': only that party or a court may release it"
    )
    assert refused(placed, release(placed), release(placed, CORY)) == (
        f"hold {h} (entry 11) was released already at entry 12"
    )
    assert (
        refused(placed, release(placed, case="C-2"))
        == f"hold {h} (entry 11) is on case C-1, not C-2"
    )
    assert refused(release(placed)) == (
        f"releases hold {h} (field 'hold'), which is not on this log"
    )


def test_disposal_is_the_holders_and_refused_under_a_hold() -> None:
    assert refused(disposal(WARRANTED, BOB)) == (
        "'bob' may not dispose of C-1/0002: the current holder is 'ann'"
    )
    on_item, on_case = hold(WARRANTED), hold(None, CORY)
    assert refused(on_item, disposal(WARRANTED)) == (
        f"C-1/0002 is under hold {entry_hash(on_item)[:12]} (entry 11) on it, placed by ann: "
        "release it first"
    )
    assert refused(on_case, disposal(WARRANTED)) == (
        f"C-1/0002 is under hold {entry_hash(on_case)[:12]} (entry 11) on its case, placed by "
        "cory: release it first"
    )
    _, changes, _ = accepted(on_item, release(on_item), disposal(WARRANTED))
    assert [type(c) for c in changes] == [Dispose]


# -- rules 13 and 14: analysis and the log's policy ---------------------------------------------


def analysis(item: str, kind: str = "transcription", by: Signer = ANN, **extra: str) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("by", by.name),
        ("kind", kind),
        ("tool", "whisper"),
        ("tool-version", "3"),
        ("purpose", "transcript for trial"),
        *extra.items(),
    ]
    return sign("analysis", fields, by, when=WHEN + timedelta(hours=90))


def policy(
    forbid: tuple[str, ...] = (),
    warrant: tuple[str, ...] = (),
    review_within: str | None = None,
    signers: tuple[Signer, ...] = (LOG,),
) -> bytes:
    fields: Fields = [
        *(("forbid", k) for k in forbid),
        *(("warrant-required", k) for k in warrant),
        ("review-within", review_within),
    ]
    return sign("policy", fields, *signers, when=WHEN + timedelta(hours=1))


def test_an_analysis_by_the_holder_is_recorded() -> None:
    _, changes, _ = accepted(analysis(CLIP, result="ab" * 32))
    assert changes == []
    assert refused(analysis(CLIP, by=BOB)) == (
        "'bob' may not analyse C-1/0001: the current holder is 'ann'"
    )


def test_the_policy_forbids_a_kind_of_analysis() -> None:
    rule = policy(forbid=("face-recognition",))
    assert refused(rule, analysis(WARRANTED, "face-recognition")) == (
        "the log's policy (entry 11) forbids face-recognition analysis: C-1/0002 may not be "
        "analysed so"
    )
    _, changes, _ = accepted(rule, analysis(WARRANTED, "transcription"))
    assert changes == []
    # A newer policy replaces the older whole: the kind is allowed again.
    _, changes, st = accepted(rule, policy(), analysis(WARRANTED, "face-recognition"))
    assert changes == [] and st.policy() is not None and st.policy().index == 12  # type: ignore[union-attr]


def test_the_policy_requires_a_warrant_for_a_kind() -> None:
    rule = policy(warrant=("licence-plate",))
    assert refused(rule, analysis(CLIP, "licence-plate")) == (
        "the log's policy (entry 11) requires a warrant for licence-plate analysis, and "
        "C-1/0001 was not taken in under a warrant (field 'warrant' not given)"
    )
    _, changes, _ = accepted(rule, analysis(CLIP, "licence-plate", warrant="W-9"))
    assert changes == []
    _, changes, _ = accepted(rule, analysis(WARRANTED, "licence-plate"))  # ingested on a warrant
    assert changes == []


def test_an_analysis_of_consent_footage_needs_the_consent_in_force() -> None:
    revoke = sign(
        "consent",
        [("action", "revoke"), ("owner", "olga"), ("case", CASE), ("consent", GRANT_HASH)],
        OLGA,
    )
    assert refused(revoke, analysis(CLIP)).startswith("outside the owner's consent for C-1/0001")


def test_a_policy_is_the_log_keys() -> None:
    index, changes, st = accepted(policy(("face-recognition",), ("licence-plate",), "48"))
    [change] = changes
    assert isinstance(change, SetPolicy)
    assert change.policy.index == index
    assert change.policy.forbid == frozenset({"face-recognition"})
    assert change.policy.warrant_required == frozenset({"licence-plate"})
    assert change.policy.review_hours == 48
    assert st.policy() == change.policy


def test_a_policy_signed_by_a_party_or_where_the_log_key_is_unknown_is_refused() -> None:
    with pytest.raises(EntryError) as info:
        admit(len(BASE), policy(signers=(ANN,)), state())
    assert not isinstance(info.value, RuleError)
    assert info.value.reason == (
        f"is a policy entry signed by 'ann': a policy entry is signed by the log key of "
        f"{ORIGIN} and only by it"
    )
    with pytest.raises(EntryError, match="signed by 'ann'"):
        admit(len(BASE), policy(signers=(LOG, ANN)), state())
    assert refused(policy(), log_key=False) == (
        "is a policy entry, and the log key that must sign it is not known here"
    )
    tampered = policy(("face-recognition",)).replace(b"face-recognition", b"transcription", 1)
    with pytest.raises(EntryError, match="does not verify"):
        admit(len(BASE), tampered, state())
