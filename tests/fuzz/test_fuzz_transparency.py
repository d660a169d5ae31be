"""Fuzzing the transparency-report reader (docs/spec/transparency.md): the file
`custody transparency --check` is given (JSON, HTML or the bare note), the signed note
inside it and its `custody/transparency/v1` text.  Each returns a value or raises
CustodyError.

The seeds are genuine: a report of a small log, signed with a log key, as each of the
three files `custody transparency` writes or reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st

from custody.app.transparency import convenient, read_report_file, report_json
from custody.model.entry import SignedEntry, sign_entry
from custody.model.oversight import Ledger, Report, compute, parse_report, report_text
from custody.model.types import Access, Ingest, build
from custody.report.transparency_html import render
from custody.tlog import merkle
from custody.tlog.note import Note, Signer, open_note, sign_note

ORIGIN = "test.example/custody"
LOG_KEY = Signer.from_seed(ORIGIN, bytes(range(32)))


@dataclass(frozen=True)
class Seeds:
    report: Report
    note: bytes
    json: bytes
    html: bytes


@functools.cache
def entries() -> list[tuple[int, SignedEntry]]:
    """Four entries claimed at 2026-11-20T09:30:00Z: ingests under warrant, consent and
    warrant, and a view (the example of docs/spec/transparency.md §6)."""
    bob = Signer.from_seed("bob", bytes(range(1, 33)))
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    typed = [
        build(
            Ingest,
            when,
            case="2026-0142",
            exhibit=f"2026-0142/000{n}",
            item=f"{n:02x}" * 32,
            name=f"clip{n}.mp4",
            size=10,
            kind="media",
            legal_basis=basis,
            by="bob",
        )
        for n, basis in ((1, "warrant"), (2, "consent"), (3, "warrant"))
    ]
    typed.append(
        build(
            Access,
            when,
            case="2026-0142",
            item="01" * 32,
            by="bob",
            purpose="trial",
            action="view",
        )
    )
    return [(i, SignedEntry.parse(sign_entry(t.entry, [bob]))) for i, t in enumerate(typed)]


def root() -> bytes:
    return merkle.root_from_leaves([merkle.leaf_hash(e.data) for _i, e in entries()])


@functools.cache
def seeds() -> Seeds:
    report = compute(
        Ledger.of(entries()),
        ORIGIN,
        root(),
        date(2026, 10, 15),
        date(2026, 12, 31),
        datetime(2027, 1, 2, tzinfo=UTC),
    )
    note = sign_note(report_text(report), [LOG_KEY])
    return Seeds(report, note, report_json(note, report), render(note, report))


def _seeds(*names: str) -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: inputs([getattr(seeds(), n) for n in names]))


def _read(data: bytes) -> None:
    _kind, note, file_check = read_report_file(data, "report.json")
    opened = open_note(note, [LOG_KEY.verifier_key])
    report = parse_report(opened.text)
    file_check(report)


@fuzz_settings()
@given(_seeds("json", "html", "note"))
def test_report_file(data: bytes) -> None:
    check(lambda: _read(data))


@fuzz_settings()
@given(_seeds("note"))
def test_report_text(data: bytes) -> None:
    def parse() -> None:
        report = parse_report(Note.parse(data).text)
        report_text(report)

    check(parse)


def test_the_genuine_files_read_back() -> None:
    s = seeds()
    assert s.report.counts["received.warrant"] == [0, 2]
    for data, kind in ((s.json, "json"), (s.html, "html"), (s.note, "note")):
        got_kind, note, file_check = read_report_file(data, "f")
        assert got_kind == kind
        assert note == s.note
        report = parse_report(open_note(note, [LOG_KEY.verifier_key]).text)
        assert report == s.report
        assert file_check(report) == []
    assert convenient(s.report)["counts"]["access.view"] == {"count": 1, "indices": [3]}
    assert [m for m in s.report.monthly] == ["2026-10", "2026-11", "2026-12"]


def test_the_spec_example_is_what_custody_writes() -> None:
    """docs/spec/transparency.md §6 is a real report: the same entries, key and period
    give exactly its bytes, and its signature verifies with the verifier key it gives."""
    spec = (Path(__file__).parents[2] / "docs" / "spec" / "transparency.md").read_text()
    example = spec.split("## 6. Example")[1].split("```\n")[1]
    report = compute(
        Ledger.of(entries()),
        ORIGIN,
        root(),
        date(2026, 11, 1),
        date(2026, 11, 30),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert example.encode() == sign_note(report_text(report), [LOG_KEY])
    assert LOG_KEY.verifier_key.encode() in spec
    assert parse_report(open_note(example.encode(), [LOG_KEY.verifier_key]).text) == report
