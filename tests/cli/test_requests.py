"""`custody request new|answer|list` and ingest under a request's consent or an emergency.

The agency's home is the `home` fixture (alice, owner; bob, agency); the owner carol
answers in a home of her own, as an owner would, and the agency imports her key and
her answer file.  Clips are real MP4s made by ffmpeg with creation_time and location
tags.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import blake3
import clips
import pytest
from conftest import CliRunnerNS

from custody.model.entry import SignedEntry
from custody.model.rules import entry_hash

CASE = "2026-0142"
AREA = "51.5074,-0.1278,200"  # 200 m around a point in London
WINDOW = ("2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")


def _index(text: str, pattern: str) -> int:
    m = re.search(pattern, text)
    assert m is not None, text
    return int(m.group(1))


def _clip(path: Path, when: str | None, where: str | None, pattern: str) -> Path:
    return clips.make_clip(
        path, creation_time=when, location=where, pattern=pattern, seconds=1.0, make=None
    )


@pytest.fixture
def owner_home(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> Path:
    """carol's own home (her log), and her key known to the agency's log."""
    owner = tmp_path / "carol-home"
    cli.run("init", "--home", str(owner), "--origin", "carol.example/custody")
    cli.run("key", "new", "carol", "--role", "owner", "--org", "12 High St", "--home", str(owner))
    key = tmp_path / "carol.key"
    key.write_bytes(cli.run("key", "export", "carol", "--home", str(owner)).stdout_bytes)
    cli.run("key", "import", str(key))
    cli.run("case", "new", CASE)
    return owner


def _request(cli: type[CliRunnerNS], out: Path, *extra: str) -> tuple[int, str]:
    r = cli.run(
        "request",
        "new",
        "--case",
        CASE,
        "--by",
        "bob",
        "--purpose",
        "burglary at 14 High St",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--out",
        str(out),
        *extra,
    )
    index = _index(r.stdout, r"log entry (\d+)")
    return index, entry_hash(out.read_bytes())


def _answer(cli: type[CliRunnerNS], owner: Path, request: Path, out: Path, *how: str) -> int:
    r = cli.run(
        "request",
        "answer",
        str(request),
        "--by",
        "carol",
        *how,
        "--out",
        str(out),
        "--home",
        str(owner),
    )
    assert "nothing was added to this home's log" in r.stdout
    imported = cli.run("log", "import", str(out))
    return _index(imported.stdout, r": entry (\d+)")


def clips_b3(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


def _entry(cli: type[CliRunnerNS], index: int) -> SignedEntry:
    return SignedEntry.parse(cli.run("log", "entry", str(index)).stdout_bytes)


def test_consented_request_limits_ingest_to_its_window_and_area(
    cli: type[CliRunnerNS], home: Path, owner_home: Path, tmp_path: Path
) -> None:
    request = tmp_path / "request.entry"
    req_index, req_hash = _request(cli, request, "--area", AREA, "--answer-by", "2099-12-31")
    # The request file is the entry exactly as on the log.
    assert request.read_bytes() == cli.run("log", "entry", str(req_index)).stdout_bytes
    answer = tmp_path / "answer.entry"
    consent_index = _answer(
        cli, owner_home, request, answer, "--consent", "--until", "2099-01-31", "--onward", "court"
    )
    grant = _entry(cli, consent_index).entry
    assert (grant.type, grant.get("action"), grant.get("request")) == ("consent", "grant", req_hash)
    assert (grant.get("case"), grant.get("purpose"), grant.get("onward")) == (
        CASE,
        "burglary at 14 High St",
        "court",
    )
    # carol's own log got nothing from answering (only her key entry is there).
    own = cli.run("log", "entry", "0", "--home", str(owner_home)).stdout_bytes
    assert SignedEntry.parse(own).entry.type == "key"
    gone = cli.fail(2, "log", "entry", "1", "--home", str(owner_home))
    assert "it has 1 entries" in gone.stderr
    assert cli.run("request", "list", "--home", str(owner_home)).stdout.startswith("no requests")

    inside = _clip(tmp_path / "porch.mp4", "2026-03-01T10:30:00Z", "+51.5075-000.1279/", "testsrc")
    late = _clip(tmp_path / "late.mp4", "2026-03-01T12:30:00Z", "+51.5075-000.1279/", "smptebars")
    far = _clip(tmp_path / "far.mp4", "2026-03-01T10:40:00Z", "+51.6000-000.1279/", "rgbtestsrc")
    undated = _clip(tmp_path / "undated.mp4", None, None, "mandelbrot")
    r = cli.fail(
        4,
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "consent",
        "--consent",
        str(consent_index),
        "--json",
        str(inside),
        str(late),
        str(far),
        str(undated),
    )
    outcomes = {Path(o["path"]).name: o for o in map(json.loads, r.stdout.splitlines())}
    assert outcomes["porch.mp4"]["status"] == "ingested"
    assert outcomes["porch.mp4"]["recorded"] == "2026-03-01T10:30:00Z"
    assert outcomes["undated.mp4"]["status"] == "ingested"  # unknown time and place: allowed
    assert "recorded" not in outcomes["undated.mp4"]
    late_error = outcomes["late.mp4"]["error"]
    assert outcomes["late.mp4"]["status"] == "failed"
    assert "clip 'late.mp4'" in late_error and "field 'recorded'" in late_error
    assert f"outside the window {WINDOW[0]} to {WINDOW[1]}" in late_error
    assert f"(entry {req_index})" in late_error
    far_error = outcomes["far.mp4"]["error"]
    assert "clip 'far.mp4'" in far_error and "field 'location'" in far_error
    assert AREA in far_error
    assert "2 of 4 file(s) could not be ingested" in r.stderr

    objects = {p.name for p in (Path(home) / "vault" / "objects").rglob("*") if p.is_file()}
    assert clips_b3(inside) in objects and clips_b3(late) not in objects
    assert clips_b3(far) not in objects
    ingest = _entry(cli, outcomes["porch.mp4"]["index"]).entry
    assert ingest.get("consent") == entry_hash(answer.read_bytes())
    assert ingest.get("recorded") == "2026-03-01T10:30:00Z"
    assert ingest.get("location") == "51.5075,-0.1279"
    cli.run("log", "verify")
    # A verifier with the bundle alone replays the same rules over the request, the
    # answer and the ingest naming it.
    cli.run("log", "checkpoint")
    cli.run("export", CASE, "--to", str(tmp_path / "bundle"))
    log_key = cli.run("log", "key").stdout.strip()
    verified = cli.run("verify-bundle", str(tmp_path / "bundle"), "--trust", log_key)
    assert "VERIFIED" in verified.stdout

    listed = json.loads(cli.run("request", "list", "--json").stdout)
    assert [(x["entry"], x["status"]) for x in listed] == [(req_index, "consented")]
    assert listed[0]["answers"] == [
        {
            "answer": "consent",
            "entry": consent_index,
            "index": consent_index,
            "late": False,
            "onward": "court",
            "owner": "carol",
            "time": grant.time,
            "until": "2099-01-31",
        }
    ]
    text = cli.run("request", "list", "--case", CASE).stdout
    assert f"entry {req_index}  consented" in text and f"window  {WINDOW[0]} to {WINDOW[1]}" in text


def test_declined_request_and_its_refusal_is_no_consent(
    cli: type[CliRunnerNS], owner_home: Path, tmp_path: Path
) -> None:
    request = tmp_path / "request.entry"
    req_index, req_hash = _request(cli, request, "--owner", "carol")
    refusal_index = _answer(
        cli, owner_home, request, tmp_path / "no.entry", "--decline", "--reason", "no camera there"
    )
    refusal = _entry(cli, refusal_index).entry
    assert refusal.type == "refusal"
    assert (refusal.get("request"), refusal.get("owner"), refusal.get("reason")) == (
        req_hash,
        "carol",
        "no camera there",
    )
    listed = json.loads(cli.run("request", "list", "--json").stdout)
    assert listed[0]["status"] == "declined"
    assert listed[0]["answers"][0]["answer"] == "refusal"
    assert listed[0]["answers"][0]["reason"] == "no camera there"
    # The owner cannot answer twice: the log refuses a second answer (a consent now).
    second = tmp_path / "yes.entry"
    cli.run(
        "request",
        "answer",
        str(request),
        "--by",
        "carol",
        "--consent",
        "--out",
        str(second),
        "--home",
        str(owner_home),
    )
    again = cli.fail(4, "log", "import", str(second))
    assert "answered" in again.stderr and "already" in again.stderr
    # A refusal's index is not a consent to ingest under.
    clip = _clip(tmp_path / "porch.mp4", "2026-03-01T10:30:00Z", None, "testsrc")
    r = cli.fail(
        2,
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "consent",
        "--consent",
        str(refusal_index),
        str(clip),
    )
    assert f"log entry {refusal_index} is a refusal by carol" in r.stderr
    assert "declined" in r.stderr
    # Nor is any other entry.
    r = cli.fail(
        2,
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "consent",
        "--consent",
        str(req_index),
        str(clip),
    )
    assert f"log entry {req_index} is a request entry, not a consent grant" in r.stderr
    r = cli.fail(
        3,
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "consent",
        "--consent",
        "9999",
        str(clip),
    )
    assert "the log has no entry 9999" in r.stderr
    # --consent goes with --legal-basis consent only.
    r = cli.fail(
        2,
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "warrant",
        "--consent",
        "1",
        str(clip),
    )
    assert "--consent 1 names a consent, but the legal basis is warrant" in r.stderr


def test_request_list_statuses(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> None:
    cli.run("case", "new", CASE)
    cli.run("case", "new", "other")
    past, _ = _request(cli, tmp_path / "a.entry", "--answer-by", "2020-01-01", "--ref", "INC-1")
    future, _ = _request(cli, tmp_path / "b.entry", "--answer-by", "2099-12-31", "--ref", "INC-2")
    open_ended, _ = _request(cli, tmp_path / "c.entry", "--ref", "INC-3")
    elsewhere = _index(
        cli.run(
            "request",
            "new",
            "--case",
            "other",
            "--by",
            "bob",
            "--purpose",
            "p",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "--out",
            str(tmp_path / "d.entry"),
        ).stdout,
        r"log entry (\d+)",
    )
    listed = json.loads(cli.run("request", "list", "--json").stdout)
    assert [(x["entry"], x["status"]) for x in listed] == [
        (past, "unanswered"),
        (future, "awaiting"),
        (open_ended, "awaiting"),
        (elsewhere, "awaiting"),
    ]
    assert [
        x["entry"] for x in json.loads(cli.run("request", "list", "--case", CASE, "--json").stdout)
    ] == [past, future, open_ended]
    # A date is the whole day in UTC.
    assert (listed[3]["start"], listed[3]["end"]) == (
        "2026-03-01T00:00:00Z",
        "2026-03-02T23:59:59Z",
    )
    assert "entry 1" not in cli.run("request", "list", "--case", "nothing").stdout


def test_late_answer_is_accepted_and_marked(
    cli: type[CliRunnerNS], home: Path, tmp_path: Path
) -> None:
    """alice answers in the agency's home (a shared one): bob's key is known there, so
    the request's signature is checked; the answer came after answer-by."""
    cli.run("case", "new", CASE)
    request = tmp_path / "request.entry"
    _request(cli, request, "--answer-by", "2020-01-01")
    answer = tmp_path / "answer.entry"
    r = cli.run(
        "request", "answer", str(request), "--by", "alice", "--consent", "--out", str(answer)
    )
    assert "its signature by bob verifies" in r.stdout
    assert "late" in r.stdout
    cli.run("log", "import", str(answer))
    listed = json.loads(cli.run("request", "list", "--json").stdout)
    assert listed[0]["status"] == "consented" and listed[0]["answers"][0]["late"] is True


def test_request_new_options(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> None:
    cli.run("case", "new", CASE)
    out = tmp_path / "r.entry"
    index, _ = _request(cli, out)
    # Never overwrites; an identical request (a re-run) appends nothing.
    cli.fail(
        2,
        "request",
        "new",
        "--case",
        CASE,
        "--by",
        "bob",
        "--purpose",
        "burglary at 14 High St",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--out",
        str(out),
    )
    again = tmp_path / "again.entry"
    r = cli.run(
        "request",
        "new",
        "--case",
        CASE,
        "--by",
        "bob",
        "--purpose",
        "burglary at 14 High St",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--out",
        str(again),
    )
    assert f"on the log already as entry {index}: nothing was appended" in r.stdout
    assert again.read_bytes() == out.read_bytes()
    # Offsets are converted to UTC.
    off = tmp_path / "off.entry"
    cli.run(
        "request",
        "new",
        "--case",
        CASE,
        "--by",
        "bob",
        "--purpose",
        "p",
        "--from",
        "2026-03-01T11:00:00+01:00",
        "--to",
        "2026-03-01T12:30:00+01:00",
        "--out",
        str(off),
    )
    entry = SignedEntry.parse(off.read_bytes()).entry
    assert (entry.get("start"), entry.get("end")) == (
        "2026-03-01T10:00:00Z",
        "2026-03-01T11:30:00Z",
    )

    def new(*args: str) -> str:
        base = [
            "request",
            "new",
            "--case",
            CASE,
            "--by",
            "bob",
            "--purpose",
            "p",
            "--out",
            str(tmp_path / "x.entry"),
        ]
        return cli.fail(2, *base, *args).stderr

    assert "--from 'tomorrow' is not a time" in new("--from", "tomorrow", "--to", WINDOW[1])
    assert "is after --to" in new("--from", WINDOW[1], "--to", WINDOW[0])
    assert "--area" in new("--from", WINDOW[0], "--to", WINDOW[1], "--area", "51.5,-0.1")
    assert "--answer-by" in new("--from", WINDOW[0], "--to", WINDOW[1], "--answer-by", "soon")
    assert "--owner: party name 'Bad Name'" in new(
        "--from", WINDOW[0], "--to", WINDOW[1], "--owner", "Bad Name"
    )
    assert not (tmp_path / "x.entry").exists()
    # An owner does not make requests: the rules refuse it.
    r = cli.fail(
        4,
        "request",
        "new",
        "--case",
        CASE,
        "--by",
        "alice",
        "--purpose",
        "p",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--out",
        str(tmp_path / "y.entry"),
    )
    assert "owner" in r.stderr
    assert not (tmp_path / "y.entry").exists()
    # The case must exist.
    r = cli.fail(
        3,
        "request",
        "new",
        "--case",
        "nope",
        "--by",
        "bob",
        "--purpose",
        "p",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--out",
        str(tmp_path / "z.entry"),
    )
    assert "no case 'nope'" in r.stderr


def test_request_answer_refusals(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> None:
    cli.run("case", "new", CASE)
    request = tmp_path / "request.entry"
    _request(cli, request, "--owner", "carol")

    def answer(code: int, path: Path, *args: str) -> str:
        return cli.fail(
            code, "request", "answer", str(path), "--out", str(tmp_path / "a.entry"), *args
        ).stderr

    assert "asks 'carol', not 'alice'" in answer(2, request, "--by", "alice", "--consent")
    assert "exactly one of --consent and --decline" in answer(2, request, "--by", "alice")
    assert "exactly one of" in answer(2, request, "--by", "alice", "--consent", "--decline")
    other = tmp_path / "other.entry"
    _request(cli, other)
    assert "'bob' is an agency party, not an owner" in answer(2, other, "--by", "bob", "--consent")
    assert "--until" in answer(2, other, "--by", "alice", "--consent", "--until", "31/12/2026")
    assert "--onward" in answer(2, other, "--by", "alice", "--consent", "--onward", "everyone")
    assert "go with --consent" in answer(
        2, other, "--by", "alice", "--decline", "--until", "2026-12-31"
    )
    # Untrusted files: one line naming the file.
    junk = tmp_path / "junk.entry"
    junk.write_bytes(b"\x00\xffnot an entry")
    assert f"{junk} is not a custody request file" in answer(3, junk, "--by", "alice", "--consent")
    ingest_like = tmp_path / "key.entry"
    ingest_like.write_bytes(cli.run("log", "entry", "1").stdout_bytes)
    assert f"{ingest_like} is a key entry, not a request" in answer(
        3, ingest_like, "--by", "alice", "--consent"
    )
    # An altered request (its purpose changed): bob's key, known here, does not verify it.
    altered = tmp_path / "altered.entry"
    altered.write_bytes(other.read_bytes().replace(b"burglary", b"anything"))
    r = answer(1, altered, "--by", "alice", "--consent")
    assert "the signature of 'bob' does not verify" in r
    assert not (tmp_path / "a.entry").exists()
    assert (
        "no such file"
        in answer(3, tmp_path / "missing.entry", "--by", "alice", "--consent").lower()
    )


def test_emergency_ingest_needs_a_justification(
    cli: type[CliRunnerNS], home: Path, tmp_path: Path
) -> None:
    cli.run("case", "new", CASE)
    clip = _clip(tmp_path / "fire.mp4", "2026-03-01T10:30:00Z", None, "testsrc")
    r = cli.fail(
        2, "ingest", "--case", CASE, "--by", "bob", "--legal-basis", "emergency", str(clip)
    )
    assert "--legal-basis emergency needs --justification" in r.stderr
    r = cli.fail(
        2,
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "warrant",
        "--justification",
        "why",
        str(clip),
    )
    assert "--justification is for legal basis emergency, not warrant" in r.stderr
    out = cli.run(
        "ingest",
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "emergency",
        "--justification",
        "a child missing; the footage may show the car",
        "--json",
        str(clip),
    )
    index = json.loads(out.stdout)["index"]
    entry = _entry(cli, index).entry
    assert entry.get("legal-basis") == "emergency"
    assert entry.get("justification") == "a child missing; the footage may show the car"
    assert entry.get("recorded") == "2026-03-01T10:30:00Z"


def test_manifest_consent_and_justification_columns(
    cli: type[CliRunnerNS], owner_home: Path, tmp_path: Path
) -> None:
    request = tmp_path / "request.entry"
    _request(cli, request, "--area", AREA)
    consent_index = _answer(cli, owner_home, request, tmp_path / "answer.entry", "--consent")
    _clip(tmp_path / "in.mp4", "2026-03-01T10:30:00Z", "+51.5075-000.1279/", "testsrc")
    _clip(tmp_path / "late.mp4", "2026-03-01T12:30:00Z", None, "smptebars")
    _clip(tmp_path / "fire.mp4", "2026-03-01T12:30:00Z", None, "rgbtestsrc")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "path,legal_basis,consent,justification\n"
        f"in.mp4,consent,{consent_index},\n"
        f"late.mp4,consent,{consent_index},\n"
        "fire.mp4,emergency,,life at risk\n"
    )
    r = cli.fail(4, "ingest", "--case", CASE, "--by", "bob", "--manifest", str(manifest), "--json")
    outcomes = {Path(o["path"]).name: o for o in map(json.loads, r.stdout.splitlines())}
    assert [outcomes[n]["status"] for n in ("in.mp4", "late.mp4", "fire.mp4")] == [
        "ingested",
        "failed",
        "ingested",
    ]
    assert "clip 'late.mp4'" in outcomes["late.mp4"]["error"]
    assert _entry(cli, outcomes["fire.mp4"]["index"]).entry.get("justification") == "life at risk"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,legal_basis\nfire.mp4,emergency\n")
    r = cli.fail(3, "ingest", "--case", CASE, "--by", "bob", "--manifest", str(bad))
    assert "row 1: legal basis emergency needs a 'justification'" in r.stderr


@pytest.mark.parametrize(
    ("text", "end", "want"),
    [
        ("2026-03-01T10:00:00Z", False, "2026-03-01T10:00:00Z"),
        ("2026-03-01T10:00:00+00:00", True, "2026-03-01T10:00:00Z"),
        ("2026-03-01T00:30:00+01:00", False, "2026-02-28T23:30:00Z"),
        ("2026-03-01T10:00:00-05:30", False, "2026-03-01T15:30:00Z"),
        ("2026-03-01", False, "2026-03-01T00:00:00Z"),
        ("2026-03-01", True, "2026-03-01T23:59:59Z"),
    ],
)
def test_window_time(text: str, end: bool, want: str) -> None:
    from custody.app.requests import window_time

    assert window_time(text, "--from", end=end) == want


@pytest.mark.parametrize(
    "text",
    ["2026-03-01T10:00:00", "2026-03-01 10:00:00Z", "2026-02-30", "10:00", "2026-03-01T25:00:00Z"],
)
def test_window_time_refused(text: str) -> None:
    from custody.app.requests import window_time
    from custody.errors import UsageError

    with pytest.raises(UsageError, match=r"--to .* is not a time like"):
        window_time(text, "--to", end=True)
