"""describe(): one sentence per entry type and action, from each point of view."""

from __future__ import annotations

import pytest

from custody.model.describe import describe, label
from custody.model.entry import Entry
from custody.model.types import REGISTRY

TIME = "2026-11-23T13:45:00Z"
A = "a" * 64  # the original
B = "b" * 64  # a derived copy
C = "c" * 64  # another item of the case
EXHIBITS = {A: "2026-0142/0001", B: "2026-0142/0002"}


def entry(type_: str, *fields: tuple[str, str]) -> Entry:
    return Entry(type=type_, time=TIME, fields=fields)


INGEST = entry(
    "ingest",
    ("case", "2026-0142"),
    ("exhibit", "2026-0142/0001"),
    ("item", A),
    ("name", "doorbell.mp4"),
    ("size", "100"),
    ("kind", "media"),
    ("source", "Ring doorbell export"),
    ("legal-basis", "consent"),
    ("ref", "CONSENT-77"),
    ("by", "bob"),
)
DERIVE = entry(
    "derive",
    ("case", "2026-0142"),
    ("exhibit", "2026-0142/0002"),
    ("item", B),
    ("name", "doorbell.trim.mp4"),
    ("size", "50"),
    ("kind", "media"),
    ("parent", A),
    ("op", "trim"),
    ("param", "start 1.500"),
    ("param", "end 3.000"),
    ("param", "ffmpeg ffmpeg -ss 1.5 -i in.mp4 -c copy out.mp4"),
    ("reason", "excerpt for the jury"),
    ("by", "carol"),
)
HANDOFF = entry(
    "handoff",
    ("case", "2026-0142"),
    ("item", A),
    ("item", C),
    ("from", "bob"),
    ("to", "carol"),
    ("purpose", "forensic examination"),
    ("authority", "Order 2026/88"),
    ("offer", "f" * 64),
)

CASES = [
    # (description, entry, about, expected sentence)
    (
        "ingest with source, legal basis and reference",
        INGEST,
        A,
        "2026-0142/0001 (doorbell.mp4) ingested by bob from Ring doorbell export; "
        "legal basis consent (CONSENT-77)",
    ),
    (
        "ingest with nothing optional",
        entry(
            "ingest",
            ("case", "2026-0142"),
            ("exhibit", "2026-0142/0003"),
            ("item", C),
            ("name", "x.json"),
            ("size", "9"),
            ("kind", "attachment"),
            ("by", "bob"),
        ),
        C,
        "2026-0142/0003 (x.json) ingested by bob",
    ),
    (
        "ingest with a reference but no legal basis",
        entry(
            "ingest",
            ("case", "2026-0142"),
            ("exhibit", "2026-0142/0003"),
            ("item", C),
            ("name", "x.json"),
            ("size", "9"),
            ("kind", "attachment"),
            ("ref", "R-1"),
            ("by", "bob"),
        ),
        None,
        "2026-0142/0003 (x.json) ingested by bob; reference R-1",
    ),
    (
        "derive, from the copy's point of view",
        DERIVE,
        B,
        "made by carol from 2026-0142/0001: trim (start 1.500, end 3.000); "
        "reason: excerpt for the jury",
    ),
    (
        "derive, from the parent's point of view",
        DERIVE,
        A,
        "2026-0142/0002 (doorbell.trim.mp4) made from this item by carol: "
        "trim (start 1.500, end 3.000); reason: excerpt for the jury",
    ),
    (
        "derive, in a case's list",
        DERIVE,
        None,
        "2026-0142/0002 (doorbell.trim.mp4) made by carol from 2026-0142/0001: "
        "trim (start 1.500, end 3.000); reason: excerpt for the jury",
    ),
    (
        "handoff with another item, from one item's point of view",
        HANDOFF,
        A,
        "handed from bob to carol for forensic examination; authority Order 2026/88; "
        f"together with item {C[:16]}…",
    ),
    (
        "handoff in a case's list names every item",
        HANDOFF,
        None,
        "handed from bob to carol for forensic examination; authority Order 2026/88; "
        f"items 2026-0142/0001, item {C[:16]}…",
    ),
    (
        "handoff of one item, no authority",
        entry(
            "handoff",
            ("case", "2026-0142"),
            ("item", A),
            ("from", "bob"),
            ("to", "alice"),
            ("purpose", "review"),
            ("offer", "f" * 64),
        ),
        A,
        "handed from bob to alice for review",
    ),
    (
        "reject",
        entry(
            "reject",
            ("case", "2026-0142"),
            ("item", A),
            ("from", "bob"),
            ("to", "lab"),
            ("offer", "f" * 64),
            ("by", "lab"),
            ("reason", "wrong file"),
        ),
        A,
        "offer from bob refused by lab: wrong file",
    ),
    (
        "access: view",
        entry(
            "access",
            ("case", "2026-0142"),
            ("item", A),
            ("by", "bob"),
            ("purpose", "review"),
            ("action", "view"),
        ),
        A,
        "view by bob for review",
    ),
    (
        "access: export, naming the file written",
        entry(
            "access",
            ("case", "2026-0142"),
            ("item", A),
            ("by", "bob"),
            ("purpose", "court copy"),
            ("action", "export"),
            ("out", A),
        ),
        A,
        f"export by bob for court copy; exported file BLAKE3 {A}",
    ),
    (
        "consent grant for the whole case, until a date",
        entry(
            "consent",
            ("action", "grant"),
            ("owner", "garcia"),
            ("case", "2026-0142"),
            ("purpose", "the investigation"),
            ("until", "2026-12-31"),
            ("onward", "court"),
        ),
        A,
        "garcia consents to use for the investigation (every item of the case; "
        "onward sharing court; until 2026-12-31)",
    ),
    (
        "consent grant for listed items, no end date",
        entry(
            "consent",
            ("action", "grant"),
            ("owner", "garcia"),
            ("case", "2026-0142"),
            ("item", A),
            ("item", B),
            ("purpose", "the investigation"),
            ("onward", "none"),
        ),
        None,
        "garcia consents to use for the investigation (2026-0142/0001, 2026-0142/0002; "
        "onward sharing none)",
    ),
    (
        "consent revoke",
        entry("consent", ("action", "revoke"), ("owner", "garcia"), ("consent", "9" * 64)),
        A,
        f"garcia revokes consent {'9' * 12}…",
    ),
    (
        "key register with an organisation",
        entry(
            "key",
            ("action", "register"),
            ("party", "bob"),
            ("role", "agency"),
            ("org", "Metro Police"),
            ("vkey", "bob+01234567+AQ"),
        ),
        None,
        "key of bob registered (agency, Metro Police)",
    ),
    (
        "key register without an organisation",
        entry(
            "key",
            ("action", "register"),
            ("party", "garcia"),
            ("role", "owner"),
            ("vkey", "garcia+01234567+AQ"),
        ),
        None,
        "key of garcia registered (owner)",
    ),
    (
        "key rotate",
        entry("key", ("action", "rotate"), ("party", "bob"), ("vkey", "bob+89abcdef+AQ")),
        None,
        "key of bob rotated",
    ),
    (
        "key revoke",
        entry("key", ("action", "revoke"), ("party", "bob"), ("reason", "laptop stolen")),
        None,
        "key of bob revoked: laptop stolen",
    ),
    (
        "a type this version does not know: its fields, never an error",
        entry("disposal", ("case", "2026-0142"), ("item", A), ("by", "bob"), ("why", "order")),
        A,
        "by=bob why=order",
    ),
    (
        "a known type whose fields do not parse: its fields, never an error",
        entry("access", ("case", "2026-0142"), ("item", A), ("by", "bob")),
        A,
        "by=bob",
    ),
]


@pytest.mark.parametrize(
    ("entry_", "about", "want"),
    [pytest.param(e, a, w, id=d) for d, e, a, w in CASES],
)
def test_describe(entry_: Entry, about: str | None, want: str) -> None:
    assert describe(entry_, about=about, exhibits=EXHIBITS) == want


def test_every_registered_type_has_a_sentence_of_its_own() -> None:
    described = {e.type for _, e, _, w in CASES if "=" not in w}
    # The issue-12 types have their sentences tested in test_describe_oversight.py.
    oversight = {"request", "refusal", "review", "retention", "hold", "disposal"}
    assert described | oversight | {"analysis", "policy"} == set(REGISTRY)


def test_without_exhibit_numbers_items_are_named_by_digest() -> None:
    assert describe(DERIVE, about=B) == (
        f"made by carol from item {A[:16]}…: trim (start 1.500, end 3.000); "
        "reason: excerpt for the jury"
    )


def test_label() -> None:
    assert label(A, EXHIBITS) == "2026-0142/0001"
    assert label(C, EXHIBITS) == f"item {C[:16]}…"
    assert label(None) == "?"
