"""The issue-12 scenario end to end: a transparency report whose every count matches what
was done, `transparency --check` passing on the JSON and the HTML file, and failing,
naming the count, when one number is edited.

Three requests (consented, declined, unanswered); a warrant ingest; two emergency
disclosures, one reviewed and one left overdue; a face-recognition analysis refused
under a policy that forbids it and a transcription recorded; a disposal; an item past
retention; an export and a handoff to a court.  The report is made "four days later"
(the command's clock is moved on, as time would pass) so the overdue review and the
retention date have passed; the entries themselves are claimed now, in order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import clips
import pytest
from conftest import CliRunnerNS

from custody.app.home import Custody
from custody.model.oversight import COUNTS

CASE = "2026-0142"
LATER = timedelta(days=4)


def clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Scenario:
    home: Path
    tmp: Path
    made_at: datetime
    expected: dict[str, list[int]]


def _size() -> int:
    with Custody.open() as c:
        return c.log.size()


@pytest.fixture
def scenario(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> Scenario:
    run = cli.run
    for name, role, org in (
        ("dave", "owner", "14 Elm St"),
        ("frank", "owner", "16 Elm St"),
        ("carol", "agency", "Metro Police"),
        ("judge", "court", "County Court"),
    ):
        run("key", "new", name, "--role", role, "--org", org)
    run("case", "new", CASE, "--title", "Burglary, Elm St")
    # Five clips; their metadata says they were recorded at clips.CREATION_TIME in London.
    footage = [
        clips.make_clip(tmp_path / f"{name}.mp4", frequency=freq)
        for name, freq in (
            ("hallway", 440),
            ("garage", 550),
            ("porch", 660),
            ("bus", 770),
            ("street", 880),
        )
    ]
    e: dict[str, list[int]] = {name: [] for name in COUNTS}

    def last(*args: str) -> int:
        """Run a command that appends one entry; the index of that entry."""
        run(*args)
        return _size() - 1

    def ingest(path: Path, *basis: str) -> int:
        out = run("ingest", str(path), "--case", CASE, "--by", "bob", *basis, "--json").stdout
        return int(json.loads(out.splitlines()[0])["index"])

    warrant = ("--legal-basis", "warrant", "--ref", "Warrant 2026/17")
    e["received.warrant"] = [ingest(footage[0], *warrant), ingest(footage[1], *warrant)]
    # Three requests, to three owners, each to be answered by tomorrow.
    answer_by = (clock().date() + timedelta(days=1)).isoformat()
    for owner in ("alice", "dave", "frank"):
        e["requests.sent"].append(
            last(
                "request",
                "new",
                "--case",
                CASE,
                "--by",
                "bob",
                "--owner",
                owner,
                "--purpose",
                "the burglary at 12 Elm St",
                "--from",
                "2024-03-01T09:00:00Z",
                "--to",
                "2024-03-01T11:00:00Z",
                "--area",
                "51.5074,-0.1278,500",
                "--answer-by",
                answer_by,
                "--out",
                str(tmp_path / f"request-{owner}"),
            )
        )
    run(
        "request",
        "answer",
        str(tmp_path / "request-alice"),
        "--by",
        "alice",
        "--consent",
        "--onward",
        "court",
        "--out",
        str(tmp_path / "answer-alice"),
    )
    run(
        "request",
        "answer",
        str(tmp_path / "request-dave"),
        "--by",
        "dave",
        "--decline",
        "--reason",
        "I do not share my camera",
        "--out",
        str(tmp_path / "answer-dave"),
    )
    e["requests.consented"] = [last("log", "import", str(tmp_path / "answer-alice"))]
    e["requests.declined"] = [last("log", "import", str(tmp_path / "answer-dave"))]
    e["requests.unanswered"] = [e["requests.sent"][2]]  # frank never answers
    e["received.consent"] = [
        ingest(
            footage[2],
            "--legal-basis",
            "consent",
            "--consent",
            str(e["requests.consented"][0]),
        )
    ]
    e["received.emergency"] = [
        ingest(
            footage[3],
            "--legal-basis",
            "emergency",
            "--justification",
            "a child missing, seen on this bus",
        ),
        ingest(footage[4], "--legal-basis", "emergency", "--justification", "threat to life"),
    ]
    e["emergency.upheld"] = [
        last(
            "review",
            f"{CASE}/0004",
            "--by",
            "carol",
            "--outcome",
            "upheld",
            "--note",
            "the child was found thanks to it",
        )
    ]
    e["emergency.overdue"] = [e["received.emergency"][1]]  # nobody reviews it
    run("policy", "set", "--forbid", "face-recognition", "--note", "banned in this city")
    refused = cli.fail(
        4,
        "analysis",
        "record",
        f"{CASE}/0001",
        "--by",
        "bob",
        "--kind",
        "face-recognition",
        "--tool",
        "FaceX",
        "--tool-version",
        "9.1",
        "--purpose",
        "identify the burglar",
    )
    assert "face-recognition" in refused.stderr
    e["analysis.transcription"] = [
        last(
            "analysis",
            "record",
            f"{CASE}/0001",
            "--by",
            "bob",
            "--kind",
            "transcription",
            "--tool",
            "whisper",
            "--tool-version",
            "3.1",
            "--purpose",
            "what was said",
        )
    ]
    run(
        "retention",
        "set",
        f"{CASE}/0004",
        "--until",
        clock().date().isoformat(),
        "--basis",
        "emergency footage: kept one day",
        "--by",
        "bob",
    )
    e["retention.past"] = [e["received.emergency"][0]]
    e["disposals"] = [last("dispose", f"{CASE}/0002", "--by", "bob", "--reason", "not relevant")]
    e["access.export"] = [
        last(
            "open",
            f"{CASE}/0001",
            "--by",
            "bob",
            "--purpose",
            "investigation",
            "--out",
            str(tmp_path / "copy.mp4"),
        )
    ]
    offer = tmp_path / "offer"
    run(
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "bob",
        "--to",
        "judge",
        "--purpose",
        "trial",
        "--out",
        str(offer),
    )
    e["handoff.court"] = [last("handoff", "accept", str(offer), "--by", "judge")]
    return Scenario(home, tmp_path, clock(), e)


def _make(cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch, s: Scenario, out: Path) -> None:
    later = s.made_at + LATER
    monkeypatch.setattr("custody.cli.audit.now", lambda: later)
    day = s.made_at.date()
    cli.run(
        "transparency",
        "--from",
        (day - timedelta(days=1)).isoformat(),
        "--to",
        (day + timedelta(days=6)).isoformat(),
        "--out",
        str(out),
    )


def test_every_count_matches_and_check_catches_an_edit(
    cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> None:
    out = scenario.tmp / "report.json"
    _make(cli, monkeypatch, scenario, out)
    doc = json.loads(out.read_text())
    got = {name: doc["counts"][name]["indices"] for name in COUNTS}
    want = {name: scenario.expected.get(name, []) for name in COUNTS}
    assert got == want
    assert all(doc["counts"][n]["count"] == len(want[n]) for n in COUNTS)
    assert doc["checkpoint"]["size"] == _size() - 0  # the checkpoint covers the whole log
    note = doc["note"]
    assert note.startswith("custody/transparency/v1\nlog test.example/custody\n")
    assert f"count disposals 1 {want['disposals'][0]}\n" in note
    assert "\n— test.example/custody " in note  # signed by the log key
    # The months the period touches add up to the period's counts, for event counts.
    for name in ("requests.sent", "received.warrant", "disposals"):
        assert sum(m[name] for m in doc["months"].values()) == len(want[name])

    ok = cli.run("transparency", "--check", str(out))
    assert ok.stdout.startswith(f"OK: {out} is signed by the log key of test.example/custody")
    # The log grows after the report, and the report still checks (it names its tree);
    # so it does in a home without the log's private key (an auditor's).
    cli.run(
        "open",
        f"{CASE}/0001",
        "--by",
        "judge",
        "--purpose",
        "trial",
        "--out",
        str(scenario.tmp / "again.mp4"),
    )
    log_key = scenario.home / "keys" / f"{quote('test.example/custody', safe='')}.key"
    log_key.rename(scenario.tmp / "log-key.elsewhere")
    cli.run("transparency", "--check", str(out))

    # Editing a number in the file's convenient copy fails, naming the count.
    edited = json.loads(out.read_text())
    edited["counts"]["disposals"]["count"] = 0
    forged = scenario.tmp / "forged.json"
    forged.write_text(json.dumps(edited))
    r = cli.fail(1, "transparency", "--check", str(forged))
    assert "the file's count disposals differs from the signed note's" in r.stderr

    # Editing the signed note itself breaks the signature, and the count is named.
    edited = json.loads(out.read_text())
    n = want["access.export"][0]
    edited["note"] = edited["note"].replace(f"count access.export 1 {n}", "count access.export 0 -")
    assert edited["note"] != doc["note"]
    forged.write_text(json.dumps(edited))
    r = cli.fail(1, "transparency", "--check", str(forged))
    assert "count access.export is 0 in the report but 1 recomputed from the log" in r.stderr

    # Checked with another key of the same name (a forged log key), it is refused.
    from custody.tlog.note import Signer

    impostor = Signer.generate("test.example/custody").verifier_key.encode()
    other = cli.fail(1, "transparency", "--check", str(out), "--log-key", impostor)
    assert str(out) in other.stderr
    # In a home of another log, the report is not that log's.
    elsewhere = scenario.tmp / "other-home"
    cli.run("init", "--origin", "other.example/log", "--home", str(elsewhere))
    r = cli.fail(1, "transparency", "--check", str(out), "--home", str(elsewhere))
    assert "reports on log 'test.example/custody'; this home's log is 'other.example/log'" in (
        r.stderr
    )


def test_html_report_shows_tables_and_checks(
    cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> None:
    out = scenario.tmp / "report.html"
    _make(cli, monkeypatch, scenario, out)
    page = out.read_text()
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert page.count("<svg") == len(re.findall(r"<h3>\d{4}-\d{2}</h3>", page)) >= 1
    overdue = scenario.expected["emergency.overdue"]
    assert f'<td class="n" data-count="emergency.overdue">{len(overdue)}</td>' in page
    cli.run("transparency", "--check", str(out))
    # An edited table cell fails the check, naming it.
    forged = scenario.tmp / "forged.html"
    forged.write_text(
        page.replace(
            '<td class="n" data-count="emergency.overdue">1</td>',
            '<td class="n" data-count="emergency.overdue">0</td>',
        )
    )
    r = cli.fail(1, "transparency", "--check", str(forged))
    assert "the HTML table's count emergency.overdue says '0', the signed note 1" in r.stderr


def test_only_the_log_operator_signs_a_report(cli: type[CliRunnerNS], home: Path) -> None:
    log_key = home / "keys" / f"{quote('test.example/custody', safe='')}.key"
    assert log_key.is_file()
    log_key.rename(home / "log-key.kept-elsewhere")
    r = cli.fail(
        2,
        "transparency",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--out",
        str(home / "r.json"),
    )
    assert "only the log operator" in r.stderr and "transparency report" in r.stderr
    assert not (home / "r.json").exists()
    # The file of a home holding only the public log key can still be checked: see above.
    bad = cli.fail(
        2, "transparency", "--from", "2026-11-30", "--to", "2026-11-01", "--out", "r.json"
    )
    assert "before it starts" in bad.stderr
    wrong = cli.fail(
        2, "transparency", "--from", "2026-11-01", "--to", "2026-11-30", "--out", "r.txt"
    )
    assert ".json or .html" in wrong.stderr
