"""`custody audit`: the oversight body's questions answered from a real log, as text and
JSON, with its filters (case, party, time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clips
import pytest
from conftest import CliRunnerNS

from custody.app.home import Custody

CASE = "2026-0142"
OTHER = "2026-0300"


def clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def size() -> int:
    with Custody.open() as c:
        return c.log.size()


@pytest.fixture
def log(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> dict[str, int]:
    run = cli.run
    run("key", "new", "carol", "--role", "agency", "--org", "Metro Police")
    run("key", "new", "lab1", "--role", "lab", "--org", "State Forensic Lab")
    run("key", "new", "judge", "--role", "court", "--org", "County Court")
    run("case", "new", CASE, "--title", "Burglary, Elm St")
    run("case", "new", OTHER, "--title", "Another case")
    at: dict[str, int] = {}
    warrant = clips.make_clip(tmp_path / "hall.mp4")
    consented = clips.make_clip(tmp_path / "porch.mp4", pattern="mandelbrot", frequency=660)
    elsewhere = clips.make_clip(tmp_path / "shop.mp4", pattern="rgbtestsrc", frequency=990)

    def ingest(path: Path, case: str, basis: str) -> int:
        out = run(
            "ingest",
            str(path),
            "--case",
            case,
            "--by",
            "bob",
            "--legal-basis",
            basis,
            "--ref",
            "W-17",
            "--json",
        ).stdout
        return int(json.loads(out.splitlines()[0])["index"])

    at["warrant"] = ingest(warrant, CASE, "warrant")
    run(
        "consent",
        "grant",
        "--owner",
        "alice",
        "--case",
        CASE,
        "--purpose",
        "the burglary at 12 Elm St",
        "--onward",
        "court",
    )
    at["consent"] = size() - 1
    at["consented"] = ingest(consented, CASE, "consent")
    at["other-case"] = ingest(elsewhere, OTHER, "warrant")
    run(
        "open",
        f"{CASE}/0002",
        "--by",
        "bob",
        "--purpose",
        "the burglary at 12 Elm St",
        "--out",
        str(tmp_path / "copy1.mp4"),
    )
    at["same-purpose"] = size() - 1
    run(
        "open",
        f"{CASE}/0002",
        "--by",
        "bob",
        "--purpose",
        "a robbery on Oak Road",
        "--out",
        str(tmp_path / "copy2.mp4"),
    )
    at["other-purpose"] = size() - 1
    run(
        "open",
        f"{OTHER}/0001",
        "--by",
        "bob",
        "--purpose",
        "the shop theft",
        "--out",
        str(tmp_path / "copy3.mp4"),
    )
    at["other-case-access"] = size() - 1
    bus = clips.make_clip(tmp_path / "bus.mp4", frequency=770)
    out = run(
        "ingest",
        str(bus),
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "emergency",
        "--justification",
        "a person missing, last seen on this bus",
        "--json",
    ).stdout
    at["emergency"] = int(json.loads(out.splitlines()[0])["index"])
    # A clip taken under the consent that answered a request, with no recorded time or
    # place in its metadata: allowed, but listed (its window cannot be checked).
    run(
        "request",
        "new",
        "--case",
        CASE,
        "--by",
        "bob",
        "--owner",
        "alice",
        "--purpose",
        "the burglary",
        "--from",
        "2026-11-20T21:00:00Z",
        "--to",
        "2026-11-20T23:00:00Z",
        "--area",
        "51.5,-0.12,300",
        "--out",
        str(tmp_path / "request"),
    )
    run(
        "request",
        "answer",
        str(tmp_path / "request"),
        "--by",
        "alice",
        "--consent",
        "--out",
        str(tmp_path / "answer"),
    )
    run("log", "import", str(tmp_path / "answer"))
    bare = clips.make_clip(tmp_path / "bare.mp4", frequency=330, creation_time=None, location=None)
    out = run(
        "ingest",
        str(bare),
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "consent",
        "--consent",
        str(size() - 1),
        "--json",
    ).stdout
    at["unplaced"] = int(json.loads(out.splitlines()[0])["index"])
    run(
        "analysis",
        "record",
        f"{CASE}/0004",
        "--by",
        "bob",
        "--kind",
        "licence-plate",
        "--tool",
        "PlateReader",
        "--tool-version",
        "2",
        "--purpose",
        "the getaway car",
    )
    at["analysis"] = size() - 1
    run(
        "retention",
        "set",
        f"{CASE}/0001",
        "--until",
        clock().date().isoformat(),
        "--basis",
        "30 days, force policy",
        "--by",
        "bob",
    )
    at["retention"] = size() - 1
    for to in ("carol", "lab1"):
        offer = tmp_path / f"offer-{to}"
        frm = "bob" if to == "carol" else "carol"
        run(
            "handoff",
            "offer",
            f"{CASE}/0001",
            "--from",
            frm,
            "--to",
            to,
            "--purpose",
            "examination",
            "--out",
            str(offer),
        )
        run("handoff", "accept", str(offer), "--by", to)
        at[f"handoff-{to}"] = size() - 1
    return at


def audit(cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    later = clock() + timedelta(days=4)  # time has passed: the review is overdue
    monkeypatch.setattr("custody.cli.audit.now", lambda: later)
    return cli.run("audit", *args).stdout


def test_audit_text_names_every_finding_by_entry(
    cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch, log: dict[str, int]
) -> None:
    text = audit(cli, monkeypatch)
    assert text.startswith("Audit of log test.example/custody (")
    assert "Accesses: who opened what, and why (3)\n" in text
    for key in ("same-purpose", "other-purpose", "other-case-access"):
        assert f"  entry {log[key]}  " in text
    outside = text.split("Uses outside a consent: purpose, expiry, revocation (2)\n")[1]
    line, analysed = outside.splitlines()[:2]
    assert line.startswith(f"  entry {log['other-purpose']}  ")
    assert "for 'a robbery on Oak Road'; consent entry" in line
    assert line.endswith("[purpose differs]")
    # The analysis of the clip taken under the request's consent, for another purpose.
    assert analysed.startswith(f"  entry {log['analysis']}  ")
    assert "licence-plate of 2026-0142/0004 by bob for 'the getaway car'" in analysed
    assert analysed.endswith(
        "was given for 'the burglary' (for a person to judge) [purpose differs]"
    )
    emergency = text.split("Emergency disclosures and their reviews (1)\n")[1].splitlines()[0]
    assert emergency.startswith(f"  entry {log['emergency']}  ")
    assert "NOT REVIEWED: overdue" in emergency and "(72 h, default)" in emergency
    past = text.split("Items past their retention date (1)\n")[1].splitlines()[0]
    assert past.startswith(f"  entry {log['warrant']}  ")
    assert f"its own retention, entry {log['retention']}, by bob" in past
    handoffs = text.split("Handoffs out of the agency (1)\n")[1].splitlines()[0]
    assert handoffs.startswith(f"  entry {log['handoff-lab1']}  ")
    assert "to lab1 (lab, State Forensic Lab)" in handoffs
    assert f"entry {log['handoff-carol']}  " not in text.split("Handoffs out")[1]
    analyses = text.split("Automated analyses, by kind (1: licence-plate 1)\n")[1]
    assert analyses.startswith(f"  entry {log['analysis']}  ")
    assert "licence-plate of 2026-0142/0004 by bob with PlateReader 2" in analyses
    unplaced = text.split("without a recorded time or place (1)\n")[1].splitlines()[0]
    assert unplaced.startswith(f"  entry {log['unplaced']}  ")
    assert "has no recorded time and no recorded location" in unplaced


def test_audit_json_and_filters(
    cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch, log: dict[str, int]
) -> None:
    doc = json.loads(audit(cli, monkeypatch, "--json"))
    assert doc["log"] == "test.example/custody"
    sections = doc["sections"]
    assert [f["entry"] for f in sections["consent"]["findings"]] == [
        log["other-purpose"],
        log["analysis"],
    ]
    assert sections["consent"]["findings"][0]["flag"] == "purpose differs"
    assert sections["emergency"]["findings"][0]["flag"] == "overdue"
    assert sections["access"]["count"] == 3
    # --case: only that case's findings
    one = json.loads(audit(cli, monkeypatch, "--json", "--case", OTHER))["sections"]
    assert [f["entry"] for f in one["access"]["findings"]] == [log["other-case-access"]]
    assert one["emergency"]["count"] == 0
    # --party: only entries naming the party
    lab = json.loads(audit(cli, monkeypatch, "--json", "--party", "lab1"))["sections"]
    assert [f["entry"] for f in lab["handoff"]["findings"]] == [log["handoff-lab1"]]
    assert lab["access"]["count"] == 0
    # --from/--to: a day with nothing in it
    empty = json.loads(
        audit(cli, monkeypatch, "--json", "--from", "2020-01-01", "--to", "2020-01-31")
    )
    assert all(s["count"] == 0 for s in empty["sections"].values())
    assert empty["filters"]["to"] == "2020-01-31T23:59:59Z"


def test_audit_refuses_bad_filters(cli: type[CliRunnerNS], log: dict[str, int]) -> None:
    r = cli.fail(3, "audit", "--party", "nobody")
    assert "no party named 'nobody'" in r.stderr
    r = cli.fail(3, "audit", "--case", "9999-0001")
    assert "no case '9999-0001'" in r.stderr
    r = cli.fail(2, "audit", "--from", "last week")
    assert "--from 'last week' is not a date" in r.stderr
    r = cli.fail(2, "audit", "--from", "2026-12-02", "--to", "2026-12-01")
    assert "is before --from" in r.stderr
