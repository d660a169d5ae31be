"""describe() and the timeline rules of the issue-12 entry types: requests, refusals,
emergency ingests and their reviews, retention, legal holds, disposals, analyses, policy."""

from __future__ import annotations

import pytest

from custody.model.describe import describe, signed_with_shared_key
from custody.model.entry import Entry
from custody.model.timeline import concerns, named_parties
from custody.model.types import KeyEvent, parse_typed

TIME = "2026-11-23T13:45:00Z"
A = "a" * 64  # an item of the case
C = "c" * 64  # another item of the case
R = "1" * 64  # the entry hash of a request
G = "2" * 64  # the entry hash of a consent grant
I = "3" * 64  # noqa: E741 - the entry hash of an emergency ingest
H = "4" * 64  # the entry hash of a hold placed
EXHIBITS = {A: "2026-0142/0001"}
INDEXES = {R: 12, G: 14, I: 20, H: 30}
CASE = ("case", "2026-0142")


def entry(type_: str, *fields: tuple[str, str]) -> Entry:
    return Entry(type=type_, time=TIME, fields=fields)


REQUEST = entry(
    "request",
    CASE,
    ("by", "bob"),
    ("owner", "alice"),
    ("purpose", "the burglary at 12 Elm St"),
    ("start", "2026-11-20T21:00:00Z"),
    ("end", "2026-11-20T23:30:00Z"),
    ("area", "51.5007,-0.1246,200"),
    ("answer-by", "2026-11-30"),
    ("ref", "REQ-2026-9"),
)
REQUEST_BARE = entry(
    "request",
    CASE,
    ("by", "bob"),
    ("purpose", "the burglary"),
    ("start", "2026-11-20T21:00:00Z"),
    ("end", "2026-11-20T23:30:00Z"),
)
CONSENT_ANSWER = entry(
    "consent",
    ("action", "grant"),
    ("owner", "alice"),
    CASE,
    ("purpose", "the burglary"),
    ("onward", "court"),
    ("request", R),
)
REFUSAL = entry("refusal", CASE, ("owner", "alice"), ("request", R), ("reason", "privacy"))
REFUSAL_BARE = entry("refusal", CASE, ("owner", "alice"), ("request", R))


def ingest(*extra: tuple[str, str]) -> Entry:
    return entry(
        "ingest",
        CASE,
        ("exhibit", "2026-0142/0001"),
        ("item", A),
        ("name", "porch.mp4"),
        ("size", "100"),
        ("kind", "media"),
        *extra,
        ("by", "bob"),
    )


INGEST_CONSENT = ingest(
    ("legal-basis", "consent"),
    ("consent", G),
    ("recorded", "2026-11-20T22:10:05Z"),
    ("location", "51.5010,-0.1240"),
)
INGEST_EMERGENCY = ingest(
    ("legal-basis", "emergency"), ("justification", "a child missing since 21:00")
)
REVIEW = entry(
    "review",
    CASE,
    ("item", A),
    ("ingest", I),
    ("by", "carol"),
    ("outcome", "upheld"),
    ("note", "imminent danger shown"),
)
REVIEW_REJECTED = entry(
    "review",
    CASE,
    ("item", A),
    ("ingest", I),
    ("by", "carol"),
    ("outcome", "rejected"),
    ("note", "no danger shown"),
)
RETENTION_CASE = entry(
    "retention", CASE, ("until", "2033-11-23"), ("basis", "statute s.12"), ("by", "bob")
)
RETENTION_ITEM = entry(
    "retention",
    CASE,
    ("item", A),
    ("until", "2027-01-31"),
    ("basis", "not evidential"),
    ("by", "bob"),
)
HOLD = entry("hold", CASE, ("action", "place"), ("reason", "civil suit filed"), ("by", "bob"))
HOLD_ITEM_RELEASE = entry(
    "hold",
    CASE,
    ("item", A),
    ("action", "release"),
    ("hold", H),
    ("reason", "suit settled"),
    ("by", "judge"),
)
DISPOSAL = entry("disposal", CASE, ("item", A), ("by", "bob"), ("reason", "retention ended"))
ANALYSIS = entry(
    "analysis",
    CASE,
    ("item", A),
    ("by", "bob"),
    ("kind", "transcription"),
    ("tool", "whisper"),
    ("tool-version", "20231117"),
    ("purpose", "transcript for the file"),
    ("warrant", "W-2026-77"),
    ("result", "e" * 64),
    ("result-name", "porch.txt"),
)
ANALYSIS_BARE = entry(
    "analysis",
    CASE,
    ("item", A),
    ("by", "bob"),
    ("kind", "licence-plate"),
    ("tool", "openalpr"),
    ("tool-version", "2.3"),
    ("purpose", "find the van"),
)
POLICY = entry(
    "policy",
    ("forbid", "face-recognition"),
    ("warrant-required", "licence-plate"),
    ("warrant-required", "object-detection"),
    ("review-within", "48"),
    ("note", "council resolution 2026/4"),
)
POLICY_EMPTY = entry("policy")

CASES = [
    (
        "a request addressed to an owner, with area, deadline and reference",
        REQUEST,
        None,
        None,
        "bob asks alice for footage from 2026-11-20T21:00:00Z to 2026-11-20T23:30:00Z "
        "within 200 m of 51.5007,-0.1246 for the burglary at 12 Elm St; answer by "
        "2026-11-30; reference REQ-2026-9",
    ),
    (
        "a request to nobody in particular, no area",
        REQUEST_BARE,
        None,
        None,
        "bob asks for footage from 2026-11-20T21:00:00Z to 2026-11-20T23:30:00Z for the burglary",
    ),
    (
        "a consent answering a request, index known",
        CONSENT_ANSWER,
        A,
        INDEXES,
        "alice consents to use for the burglary (every item of the case; onward sharing "
        "court), answering request (entry 12)",
    ),
    (
        "a consent answering a request, index unknown",
        CONSENT_ANSWER,
        A,
        None,
        "alice consents to use for the burglary (every item of the case; onward sharing "
        f"court), answering request {R[:12]}…",
    ),
    (
        "a refusal with a reason",
        REFUSAL,
        None,
        INDEXES,
        "alice declines request (entry 12): privacy",
    ),
    (
        "a refusal without a reason",
        REFUSAL_BARE,
        None,
        None,
        f"alice declines request {R[:12]}… (no reason given)",
    ),
    (
        "an ingest under a consent, with recorded time and place",
        INGEST_CONSENT,
        A,
        INDEXES,
        "2026-0142/0001 (porch.mp4) ingested by bob; legal basis consent; under consent "
        "(entry 14); recorded at 2026-11-20T22:10:05Z at location 51.5010,-0.1240",
    ),
    (
        "an emergency ingest with its justification",
        INGEST_EMERGENCY,
        A,
        None,
        "2026-0142/0001 (porch.mp4) ingested by bob; legal basis emergency; emergency "
        "disclosure, justified: a child missing since 21:00",
    ),
    (
        "a review upheld, on the item's own timeline",
        REVIEW,
        A,
        INDEXES,
        "emergency disclosure (entry 20) of this item upheld on review by carol: imminent "
        "danger shown",
    ),
    (
        "a review rejected, in a case's list",
        REVIEW_REJECTED,
        None,
        None,
        f"emergency disclosure {I[:12]}… of 2026-0142/0001 rejected on review by carol: "
        "no danger shown",
    ),
    (
        "a retention of the whole case",
        RETENTION_CASE,
        A,
        None,
        "every item of the case to be kept until 2033-11-23, set by bob; basis: statute s.12",
    ),
    (
        "a retention of one item",
        RETENTION_ITEM,
        A,
        None,
        "this item to be kept until 2027-01-31, set by bob; basis: not evidential",
    ),
    (
        "a hold placed on the case",
        HOLD,
        None,
        None,
        "legal hold on every item of the case placed by bob: civil suit filed",
    ),
    (
        "a hold on an item released",
        HOLD_ITEM_RELEASE,
        None,
        INDEXES,
        "legal hold (entry 30) on 2026-0142/0001 released by judge: suit settled",
    ),
    (
        "a disposal",
        DISPOSAL,
        A,
        None,
        "this item disposed of by bob: retention ended",
    ),
    (
        "an analysis with warrant and result",
        ANALYSIS,
        A,
        None,
        "transcription analysis of this item by bob with whisper 20231117 for transcript "
        f"for the file; warrant W-2026-77; result porch.txt BLAKE3 {'e' * 64}",
    ),
    (
        "an analysis without warrant or result, named by exhibit",
        ANALYSIS_BARE,
        None,
        None,
        "licence-plate analysis of 2026-0142/0001 by bob with openalpr 2.3 for find the van",
    ),
    (
        "a policy forbidding and requiring, with its review period",
        POLICY,
        None,
        None,
        "log policy: forbids face-recognition; requires a warrant for licence-plate, "
        "object-detection; emergency disclosures to be reviewed within 48 hours; note: "
        "council resolution 2026/4",
    ),
    (
        "an empty policy allows every kind, review within the default",
        POLICY_EMPTY,
        None,
        None,
        "log policy: forbids no kind of analysis; emergency disclosures to be reviewed "
        "within 72 hours",
    ),
]


@pytest.mark.parametrize(
    ("e", "about", "indexes", "want"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_sentence(e: Entry, about: str | None, indexes: dict[str, int] | None, want: str) -> None:
    parse_typed(e)  # each example is a well-formed entry of its type
    assert describe(e, about=about, exhibits=EXHIBITS, indexes=indexes) == want


def test_every_issue_12_type_has_a_sentence_not_the_field_fallback() -> None:
    described = {e.type for _, e, _, _, w in CASES if "=" not in w}
    assert described >= {
        "request",
        "refusal",
        "review",
        "retention",
        "hold",
        "disposal",
        "analysis",
        "policy",
    }


def test_a_malformed_new_entry_falls_back_to_its_fields() -> None:
    bad = entry("review", CASE, ("item", A), ("ingest", I), ("by", "carol"), ("outcome", "maybe"))
    assert describe(bad) == f"ingest={I} by=carol outcome=maybe"


@pytest.mark.parametrize(
    ("e", "item", "expected"),
    [
        (RETENTION_CASE, C, True),  # a whole-case retention is about every item
        (HOLD, C, True),
        (REQUEST, C, True),  # requests and refusals: the case's items (timeline.CASE_WIDE)
        (REFUSAL, C, True),
        (RETENTION_ITEM, A, True),
        (RETENTION_ITEM, C, False),  # an item's retention is about that item only
        (HOLD_ITEM_RELEASE, C, False),
        (REVIEW, A, True),
        (REVIEW, C, False),
        (DISPOSAL, C, False),
        (ANALYSIS, A, True),
        (ANALYSIS, C, False),
        (POLICY, A, False),  # log-wide, not on an item's timeline
    ],
)
def test_concerns(e: Entry, item: str, expected: bool) -> None:
    assert concerns(e.type, e.fields, item) is expected


@pytest.mark.parametrize(
    ("e", "parties"),
    [
        (REQUEST, ("bob",)),  # not the owner asked: they may have no key on this log
        (REQUEST_BARE, ("bob",)),
        (REFUSAL, ("alice",)),
        (REVIEW, ("carol",)),
        (RETENTION_CASE, ("bob",)),
        (HOLD_ITEM_RELEASE, ("judge",)),
        (DISPOSAL, ("bob",)),
        (ANALYSIS, ("bob",)),
        (POLICY, ()),  # signed by the log key; names no party
    ],
)
def test_named_parties(e: Entry, parties: tuple[str, ...]) -> None:
    assert named_parties(parse_typed(e)) == parties


def test_a_refusal_signed_with_a_shared_key_has_a_caveat() -> None:
    key = KeyEvent(
        entry=entry("key"),
        action="register",
        party="alice",
        role="owner",
        vkey="-",
        kept="shared",
        held_by="bob",
    )
    assert signed_with_shared_key(REFUSAL, "alice", key) == (
        "alice's refusal of a request was signed with a key held by bob"
    )
    assert signed_with_shared_key(REVIEW, "carol", key) is None
