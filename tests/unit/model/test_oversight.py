"""The audit findings and transparency counts of custody.model.oversight, over signed
entries built in memory (no home, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from custody.errors import FormatError
from custody.model.entry import SignedEntry, sign_entry
from custody.model.oversight import (
    COUNTS,
    Ledger,
    audit,
    compute,
    count_period,
    decode_indices,
    differences,
    encode_indices,
    months,
    parse_report,
    report_text,
    select,
)
from custody.model.rules import entry_hash
from custody.model.types import (
    Access,
    Analysis,
    Consent,
    Disposal,
    Handoff,
    Ingest,
    KeyEvent,
    Policy,
    Refusal,
    Request,
    Retention,
    Review,
    Typed,
    build,
)
from custody.tlog.note import Signer

CASE = "2026-0142"
OTHER = "2026-0200"
ROOT = bytes(range(32))
NOV1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def item(n: int) -> str:
    return f"{n:02x}" * 32


class FakeLog:
    """Signed entries in log order, built with the library (signatures are not what the
    ledger reads: one key signs them all)."""

    def __init__(self) -> None:
        self.signer = Signer.generate("test")
        self.entries: list[tuple[int, SignedEntry]] = []
        self.hashes: list[str] = []

    def add(self, cls: type[Typed], when: datetime, **values: Any) -> int:
        data = sign_entry(build(cls, when, **values).entry, [self.signer])
        index = len(self.entries)
        self.entries.append((index, SignedEntry.parse(data)))
        self.hashes.append(entry_hash(data))
        return index

    def ledger(self) -> Ledger:
        return Ledger.of(self.entries)

    def party(self, name: str, role: str, org: str | None) -> int:
        key = Signer.generate(name).verifier_key.encode()
        return self.add(KeyEvent, NOV1, action="register", party=name, role=role, org=org, vkey=key)

    def ingest(
        self, when: datetime, n: int, basis: str | None, case: str = CASE, **extra: Any
    ) -> int:
        return self.add(
            Ingest,
            when,
            case=case,
            exhibit=f"{case}/{n:04d}",
            item=item(n),
            name=f"clip{n}.mp4",
            size=1000,
            kind="media",
            legal_basis=basis,
            by="bob",
            **extra,
        )


def parties(log: FakeLog) -> None:
    log.party("alice", "owner", "Alice Home")
    log.party("dave", "owner", None)
    log.party("bob", "agency", "Met Police")
    log.party("carol", "agency", "Met Police")
    log.party("erin", "agency", "Kent Police")
    log.party("judge", "court", "Crown Court")
    log.party("lab", "lab", "Forensics Ltd")


def at(day: int, hour: int = 10, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def test_requests_answers_and_unanswered() -> None:
    log = FakeLog()
    parties(log)
    common = {"case": CASE, "by": "bob", "purpose": "burglary", "start": "2026-10-30T20:00:00Z"}
    common["end"] = "2026-10-30T23:00:00Z"
    r1 = log.add(Request, at(2), owner="alice", answer_by="2026-11-10", **common)
    r2 = log.add(Request, at(2), owner="dave", answer_by="2026-11-10", **common)
    r3 = log.add(Request, at(3), answer_by="2026-11-12", **common)  # never answered
    r4 = log.add(Request, at(3), answer_by="2026-11-05", **common)  # answered late
    r5 = log.add(Request, at(4), **common)  # no answer-by: never "unanswered"
    yes = log.add(
        Consent,
        at(5),
        action="grant",
        owner="alice",
        case=CASE,
        purpose="burglary",
        onward="court",
        request=log.hashes[r1],
    )
    no = log.add(Refusal, at(6), case=CASE, owner="dave", request=log.hashes[r2])
    late = log.add(
        Consent,
        at(8),
        action="grant",
        owner="alice",
        case=CASE,
        purpose="burglary",
        onward="none",
        request=log.hashes[r4],
    )
    # A grant that answers no request is not an answer.
    log.add(Consent, at(8), action="grant", owner="alice", case=CASE, purpose="x", onward="none")
    ledger = log.ledger()
    c = count_period(ledger, date(2026, 11, 1), date(2026, 11, 30), at(1, month=12))
    assert c["requests.sent"] == [r1, r2, r3, r4, r5]
    assert c["requests.consented"] == [yes, late]
    assert c["requests.declined"] == [no]
    assert c["requests.unanswered"] == [r3, r4]
    assert c["requests.answered-late"] == [late]
    # Judged on 11 November, r3's answer-by (the 12th) has not passed yet.
    early = count_period(ledger, date(2026, 11, 1), date(2026, 11, 30), at(11))
    assert early["requests.unanswered"] == [r4]
    # A request is unanswered in the period its answer-by date falls in.
    assert count_period(ledger, date(2026, 11, 11), date(2026, 11, 30), at(1, month=12))[
        "requests.unanswered"
    ] == [r3]


def test_received_emergencies_and_reviews() -> None:
    log = FakeLog()
    parties(log)
    w = log.ingest(at(2), 1, "warrant", ref="W-1")
    c = log.ingest(at(2), 2, "consent")
    o = log.ingest(at(2), 3, "voluntary")
    n = log.ingest(at(2), 4, None)
    log.add(Policy, at(3), review_within="24")
    e1 = log.ingest(at(4), 5, "emergency", justification="a child missing")
    e2 = log.ingest(at(4), 6, "emergency", justification="fire")
    e3 = log.ingest(at(4), 7, "emergency", justification="threat")
    e4 = log.ingest(at(20), 8, "emergency", justification="flood")
    up = log.add(
        Review,
        at(4, 20),
        case=CASE,
        item=item(5),
        ingest=log.hashes[e1],
        by="carol",
        outcome="upheld",
        note="ok",
    )
    rej = log.add(
        Review,
        at(7),
        case=CASE,
        item=item(6),
        ingest=log.hashes[e2],
        by="carol",
        outcome="rejected",
        note="no emergency",
    )
    ledger = log.ledger()
    assert ledger.emergencies[log.hashes[e1]].review_hours == 24
    got = count_period(ledger, date(2026, 11, 1), date(2026, 11, 30), at(21))
    assert got["received.warrant"] == [w]
    assert got["received.consent"] == [c]
    assert got["received.other"] == [o, n]
    assert got["received.emergency"] == [e1, e2, e3, e4]
    assert got["emergency.upheld"] == [up]
    assert got["emergency.rejected"] == [rej]
    assert got["emergency.reviewed-late"] == [rej]
    # e2 was reviewed after its due time, e3 never; e4's is not due until the 21st, 10:00.
    assert got["emergency.overdue"] == [e2, e3]

    found = audit(ledger, at(21))
    flags = {f.index: f.flag for f in found if f.section == "emergency"}
    assert flags == {e1: "upheld", e2: "rejected, late", e3: "overdue", e4: "pending"}
    overdue = next(f for f in found if f.index == e3)
    assert "review due 2026-11-05T10:00:00Z (24 h, policy entry" in overdue.text


def test_handoffs_analyses_disposals() -> None:
    log = FakeLog()
    parties(log)
    log.ingest(at(2), 1, "warrant", ref="W")

    def handoff(when: datetime, frm: str, to: str) -> int:
        return log.add(
            Handoff,
            when,
            case=CASE,
            items=(item(1),),
            sender=frm,
            receiver=to,
            purpose="examination",
            offer="ab" * 16,
        )

    within = handoff(at(3), "bob", "carol")
    log.party("metlab", "lab", "Met Police")  # the force's own lab: still out of the agency
    in_house_lab = handoff(at(3, 12), "carol", "metlab")
    back = handoff(at(3, 14), "metlab", "carol")
    other_force = handoff(at(4), "carol", "erin")
    to_lab = handoff(at(5), "erin", "lab")
    to_court = handoff(at(6), "lab", "judge")
    tx = log.add(
        Analysis,
        at(7),
        case=CASE,
        item=item(1),
        by="judge",
        kind="transcription",
        tool="whisper",
        tool_version="3",
        purpose="transcript",
    )
    v = log.add(Access, at(7), case=CASE, item=item(1), by="judge", purpose="trial", action="view")
    x = log.add(
        Access, at(7), case=CASE, item=item(1), by="judge", purpose="trial", action="export"
    )
    d = log.add(Disposal, at(8), case=CASE, item=item(1), by="judge", reason="case closed")
    got = count_period(log.ledger(), date(2026, 11, 1), date(2026, 11, 30), at(30))
    assert got["handoff.within"] == [within, back]
    assert got["handoff.elsewhere"] == [in_house_lab, other_force, to_lab]
    assert got["handoff.court"] == [to_court]
    assert got["analysis.transcription"] == [tx]
    assert got["analysis.face-recognition"] == []
    assert got["access.view"] == [v]
    assert got["access.export"] == [x]
    assert got["disposals"] == [d]
    outside = select(audit(log.ledger(), at(30)), case=CASE)
    out = {f.index: f.flag for f in outside if f.section == "handoff"}
    assert out == {
        in_house_lab: "out of the agency",
        other_force: "out of the agency",
        to_lab: "out of the agency",
        to_court: "to a court",
    }


def test_retention_item_over_case_and_disposed_items() -> None:
    log = FakeLog()
    parties(log)
    i1 = log.ingest(at(2), 1, "warrant", ref="W")
    i2 = log.ingest(at(2), 2, "warrant", ref="W")
    i3 = log.ingest(at(2), 3, "warrant", ref="W")
    log.add(Retention, at(3), case=CASE, until="2026-11-10", basis="policy 4", by="bob")
    # Item 2's own retention overrides the case's, even if it comes earlier or later.
    log.add(Retention, at(3), case=CASE, item=item(2), until="2027-06-30", basis="trial", by="bob")
    log.add(Disposal, at(12), case=CASE, item=item(3), by="bob", reason="retention over")
    ledger = log.ledger()
    nov = count_period(ledger, date(2026, 11, 1), date(2026, 11, 30), at(30))
    assert nov["retention.past"] == [i1]

    # Kept until the 10th inclusive: at the end of the 9th nothing is past ...
    def past(last_day: int) -> list[int]:
        return count_period(ledger, date(2026, 11, 1), date(2026, 11, last_day), at(30))[
            "retention.past"
        ]

    assert past(9) == []
    # ... at the end of the 10th items 1 and 3 are, until 3 is disposed of on the 12th.
    assert past(10) == [i1, i3]
    assert past(11) == [i1, i3]
    assert past(12) == [i1]
    found = [f for f in audit(ledger, at(30)) if f.section == "retention"]
    assert [f.index for f in found] == [i1]
    assert "kept until 2026-11-10 (the case's retention" in found[0].text
    assert "20 days past it" in found[0].text
    assert i2 not in [f.index for f in found]


def test_consent_scope_findings_and_unplaced_clips() -> None:
    log = FakeLog()
    parties(log)
    req = log.add(
        Request,
        at(2),
        case=CASE,
        by="bob",
        owner="alice",
        purpose="burglary",
        start="2026-10-30T20:00:00Z",
        end="2026-10-30T23:00:00Z",
        area="51.5,-0.12,200",
    )
    g = log.add(
        Consent,
        at(3),
        action="grant",
        owner="alice",
        case=CASE,
        purpose="The burglary  at 12 Elm St",
        until="2026-11-15",
        onward="court",
        request=log.hashes[req],
    )
    placed = log.ingest(
        at(4),
        1,
        "consent",
        consent=log.hashes[g],
        recorded="2026-10-30T21:00:00Z",
        location="51.5,-0.12",
    )
    unplaced = log.ingest(at(4), 2, "consent", consent=log.hashes[g])

    def access(when: datetime, n: int, purpose: str) -> int:
        return log.add(
            Access, when, case=CASE, item=item(n), by="bob", purpose=purpose, action="view"
        )

    same = access(at(5), 1, "the burglary at 12 elm st")  # same words, other case and spaces
    differs = access(at(6), 1, "a robbery elsewhere")
    expired = access(at(16), 1, "the burglary at 12 Elm St")
    log.add(Consent, at(17), action="revoke", owner="alice", consent=log.hashes[g])
    revoked = access(at(18), 2, "the burglary at 12 Elm St")
    ledger = log.ledger()
    found = audit(ledger, at(20))
    scope = {f.index: f.flag for f in found if f.section == "consent"}
    assert scope == {
        differs: "purpose differs",
        expired: "after expiry",
        revoked: "after revocation",
    }
    assert same not in scope
    assert [f.index for f in found if f.section == "access"] == [same, differs, expired, revoked]
    gone = {f.index: f.text for f in found if f.section == "unplaced"}
    assert list(gone) == [unplaced]
    assert "has no recorded time and no recorded location" in gone[unplaced]
    assert placed not in gone
    # select: by time, party and case
    assert [f.index for f in select(found, start=at(16), end=at(17)) if f.section == "access"] == [
        expired
    ]
    assert select(found, party="nobody") == []
    assert select(found, case=OTHER) == []


def test_months_and_report_round_trip() -> None:
    log = FakeLog()
    parties(log)
    a = log.ingest(at(28), 1, "warrant", ref="W")
    b = log.ingest(at(2, month=12), 2, "warrant", ref="W")
    ledger = log.ledger()
    assert [m[0] for m in months(date(2026, 11, 15), date(2027, 1, 3))] == [
        "2026-11",
        "2026-12",
        "2027-01",
    ]
    rep = compute(
        ledger, "example.org/log", ROOT, date(2026, 11, 1), date(2026, 12, 31), at(31, month=12)
    )
    assert rep.counts["received.warrant"] == [a, b]
    assert rep.monthly["2026-11"]["received.warrant"] == 1
    assert rep.monthly["2026-12"]["received.warrant"] == 1
    text = report_text(rep)
    assert f"count received.warrant 2 {a}-{b}\n" in text
    back = parse_report(text)
    assert back == rep
    assert differences(back, rep) == []
    # A count edited (number and list together) is caught against the recomputation.
    forged = parse_report(
        text.replace(f"count received.warrant 2 {a}-{b}", f"count received.warrant 1 {a}")
    )
    assert differences(forged, rep) == [
        f"count received.warrant is 1 in the report but 2 recomputed from the log (leaves out {b})"
    ]
    month_forged = parse_report(
        text.replace("month 2026-12 received.warrant 1", "month 2026-12 received.warrant 0")
    )
    assert differences(month_forged, rep) == [
        "month 2026-12 count received.warrant is 0 in the report but 1 recomputed from the log"
    ]
    assert len(text.splitlines()) == 5 + len(COUNTS) * 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("count received.warrant 2", "count received.warrant 3"), "says '3' but lists 2"),
        (("custody/transparency/v1", "custody/transparency/v2"), "line 1"),
        (("period 2026-11-01", "period 2026-13-01"), "line 4"),
        (("count disposals 0 -", "count disposals 0 "), "count"),
        (("count disposals 0 -", "count disposals 1 99"), "not in a log of"),
        (("count access.view", "count access.look"), "where 'access.view' should be"),
        (("as-of 2026-12-31T10:00:00Z", "as-of yesterday"), "line 5"),
    ],
)
def test_parse_report_refuses(edit: tuple[str, str], message: str) -> None:
    log = FakeLog()
    parties(log)
    log.ingest(at(28), 1, "warrant", ref="W")
    log.ingest(at(28), 2, "warrant", ref="W")
    rep = compute(log.ledger(), "o", ROOT, date(2026, 11, 1), date(2026, 12, 31), at(31, month=12))
    text = report_text(rep)
    assert edit[0] in text
    with pytest.raises(FormatError, match="transparency report") as exc:
        parse_report(text.replace(edit[0], edit[1], 1))
    assert message in exc.value.message


def test_indices_encoding() -> None:
    assert encode_indices([]) == "-"
    assert encode_indices([3]) == "3"
    assert encode_indices([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert decode_indices("1-3,7,9-10", 11, "x") == [1, 2, 3, 7, 9, 10]
    for bad in ("3-1", "1,2", "2,1", "1-2,3", "01", "1,,2", "", "1-1"):
        with pytest.raises(FormatError):
            decode_indices(bad, 100, "x")
    with pytest.raises(FormatError, match="not in a log of 10"):
        decode_indices("5-10", 10, "x")


def test_ledger_refuses_out_of_order_entries() -> None:
    log = FakeLog()
    parties(log)
    with pytest.raises(FormatError, match="entry 2 comes where entry 0 should"):
        Ledger.of(log.entries[2:])


def test_period_bounds() -> None:
    log = FakeLog()
    with pytest.raises(FormatError, match="ends"):
        compute(log.ledger(), "o", ROOT, date(2026, 11, 2), date(2026, 11, 1), NOV1)
    with pytest.raises(FormatError, match="longer than"):
        compute(log.ledger(), "o", ROOT, date(2000, 1, 1), date(2026, 11, 1), NOV1)
    # A report of an empty log: every count zero, still one line per count and month.
    rep = compute(
        log.ledger(), "o", ROOT, date(2026, 11, 1), date(2026, 11, 1), NOV1 + timedelta(days=1)
    )
    assert all(v == [] for v in rep.counts.values())
    assert parse_report(report_text(rep)) == rep


@pytest.mark.parametrize("as_of_day", [5, 29, 40, 80])
def test_monthly_numbers_are_the_counts_of_each_months_part(as_of_day: int) -> None:
    """The one-pass monthly numbers of `compute` are, count by count, what `count_period`
    gives over each month's part of the period (the spec's definition), including things
    that fall due across a month's end and a report made before the period ended."""
    log = FakeLog()
    parties(log)
    window = {"start": "2026-10-30T20:00:00Z", "end": "2026-10-30T23:00:00Z"}
    r1 = log.add(
        Request, at(25), case=CASE, by="bob", purpose="p", answer_by="2026-11-30", **window
    )
    log.add(Request, at(28), case=CASE, by="bob", purpose="p", answer_by="2026-12-02", **window)
    log.add(Refusal, at(2, month=12), case=CASE, owner="dave", request=log.hashes[r1])
    e1 = log.ingest(at(29, 12), 1, "emergency", justification="fire")  # due 2 December
    log.ingest(at(20), 2, "emergency", justification="flood")
    log.add(
        Review,
        at(3, month=12),
        case=CASE,
        item=item(1),
        ingest=log.hashes[e1],
        by="carol",
        outcome="rejected",
        note="late and wrong",
    )
    log.ingest(at(10), 3, "warrant", ref="W")
    log.add(Retention, at(11), case=CASE, until="2026-11-20", basis="b", by="bob")
    log.add(Disposal, at(5, month=12), case=CASE, item=item(3), by="bob", reason="r")
    ledger = log.ledger()
    start, end = date(2026, 11, 15), date(2026, 12, 20)
    as_of = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=as_of_day)
    rep = compute(ledger, "o", ROOT, start, end, as_of)
    for label, lo, hi in months(start, end):
        want = {k: len(v) for k, v in count_period(ledger, lo, hi, as_of).items()}
        assert rep.monthly[label] == want, label
    if as_of_day == 80:
        assert rep.monthly["2026-12"]["emergency.overdue"] == 1
        assert rep.monthly["2026-11"]["retention.past"] == 3
        assert rep.monthly["2026-12"]["retention.past"] == 2
