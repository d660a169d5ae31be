"""Bundles of the issue-12 entries, end to end: a disposed item exports and verifies as
disposed (never as missing evidence), a file missing without a disposal still fails, the
log's policy entries travel and are checked against the log key, and an emergency
disclosure whose review is overdue at export is reported; the court report says the same.

Everything runs through the commands (ingest, dispose, review, policy set, analysis
record, export, verify-bundle) on real clips made by ffmpeg; only the export "some days
later" goes through the library, which takes the export time as an argument.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clips
import pytest
from conftest import PASSPHRASE, CliRunnerNS, invoke

from custody.app.export import export_case
from custody.app.home import Custody
from custody.bundle.verify import Emergency
from custody.infra.vault import Vault
from custody.model.entry import Entry, sign_entry
from custody.model.parties import EntryError, Parties, check_entry
from custody.model.state import EmergencyState
from custody.report.court import write_report

CASE = "C1"
Cli = type[CliRunnerNS]


def _ingest(cli: Cli, home: Path, clip: Path, *basis: str) -> str:
    """Ingest `clip` into CASE by bob; its BLAKE3 (from the home's item rows)."""
    cli.run("ingest", str(clip), "--case", CASE, "--by", "bob", *basis)
    with Custody.open(home) as c:
        return next(r.blake3 for r in c.store.items_in_case(CASE) if r.name == clip.name)


def _world(cli: Cli, home: Path, tmp_path: Path, clips_wanted: int = 2) -> list[str]:
    """A case with `clips_wanted` clips ingested under a warrant; their BLAKE3s."""
    cli.run("key", "new", "carol", "--role", "court", "--org", "County Court")
    cli.run("case", "new", CASE)
    items = []
    for n in range(clips_wanted):
        clip = clips.make_clip(
            tmp_path / "footage" / f"cam{n}.mp4", pattern="testsrc2", frequency=440 + 220 * n
        )
        items.append(_ingest(cli, home, clip, "--legal-basis", "warrant", "--ref", "W-1"))
    return items


def _vkey(cli: Cli) -> str:
    return cli.run("log", "key").stdout.strip()


def _verify(bundle: Path, vkey: str, *extra: str) -> tuple[int, dict[str, Any]]:
    r = invoke("verify-bundle", str(bundle), "--trust", vkey, "--json", *extra)
    return r.code, json.loads(r.stdout)


def _item(report: dict[str, Any], b3: str) -> dict[str, Any]:
    return next(i for i in report["items"] if i["item"] == b3)


def _index_of(bundle: Path, etype: str) -> list[int]:
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    return [e["index"] for e in manifest["entries"] if e["type"] == etype]


# -- disposal -------------------------------------------------------------------------------


def test_a_disposed_item_exports_without_its_file_and_verifies_as_disposed(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    gone, kept = _world(cli, home, tmp_path)
    cli.run("dispose", f"{CASE}/0001", "--by", "bob", "--reason", "retention period ended")
    with Custody.open(home) as c:
        assert not Vault(c.vault_root).path_for(gone).exists()  # it left the evidence store
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle), "--with-media")

    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    listed = {i["item"]: i for i in manifest["items"]}
    assert listed[gone]["media"] is None  # entries travel, the file cannot
    assert listed[kept]["media"] is not None
    assert not list((bundle / "media").glob(f"{gone}*"))
    (disposal,) = _index_of(bundle, "disposal")

    code, report = _verify(bundle, _vkey(cli))
    assert code == 0, report["summary"]
    assert report["verdict"] == "VERIFIED"
    d = _item(report, gone)
    assert d["verified"] is True
    assert d["disposed"]["by"] == "bob"
    assert d["disposed"]["entry"] == disposal
    assert d["disposed"]["reason"] == "retention period ended"
    assert d["verdict"].startswith(f"VERIFIED: disposed by bob at {d['disposed']['time']} ")
    assert f"(entry {disposal})" in d["verdict"]
    assert not d["failures"]
    other = _item(report, kept)
    assert other["disposed"] is None
    assert "file bit-for-bit as recorded" in other["verdict"]
    # the disposal is on the item's own timeline, in words
    whats = [e["what"] for e in d["events"]]
    assert any(w.startswith("this item disposed of by bob") for w in whats), whats

    text = invoke("verify-bundle", str(bundle), "--trust", _vkey(cli))
    assert text.code == 0, text
    assert f"VERIFIED: disposed by bob at {d['disposed']['time']} (entry {disposal})" in text.stdout

    # `custody show` says so, in text and JSON.
    shown = cli.run("show", f"{CASE}/0001").stdout
    assert f"disposed    by bob at {d['disposed']['time']} (entry {disposal})" in shown
    assert json.loads(cli.run("show", f"{CASE}/0001", "--json").stdout)["disposed"] == {
        "by": "bob",
        "time": d["disposed"]["time"],
        "entry": disposal,
        "index": disposal,
        "reason": "retention period ended",
    }
    assert "disposed" not in json.loads(cli.run("show", f"{CASE}/0002", "--json").stdout)

    # The court report in the bundle says so too, and certifies no copy of it.
    html = (bundle / "report" / "report.html").read_text()
    assert "disposed by bob at" in html
    assert "no copy of it is certified" in html


def test_a_file_missing_without_a_disposal_still_fails(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    first, second = _world(cli, home, tmp_path)
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle), "--with-media")
    (media,) = list((bundle / "media").glob(f"{first}*"))
    media.unlink()
    code, report = _verify(bundle, _vkey(cli))
    assert code == 1
    item = _item(report, first)
    assert item["disposed"] is None
    assert not item["verified"]
    assert any("is missing" in f["message"] for f in item["failures"]), item["failures"]

    # In the evidence store: an object gone without a disposal entry is an error at export.
    with Custody.open(home) as c:
        path = Vault(c.vault_root).path_for(second)
    path.chmod(0o600)
    path.unlink()
    r = cli.fail(3, "export", CASE, "--to", str(tmp_path / "again"), "--with-media")
    assert f"the evidence store has no file for exhibit {CASE}/0002" in r.stderr


# -- policy ---------------------------------------------------------------------------------


def test_policy_entries_travel_in_the_bundle_and_are_checked_against_the_log_key(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    cli.run("policy", "set", "--forbid", "face-recognition", "--warrant-required", "licence-plate")
    (item,) = _world(cli, home, tmp_path, clips_wanted=1)
    result = tmp_path / "transcript.txt"
    result.write_text("a dog barks; a van drives past\n")
    cli.run(
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
        "20231117",
        "--purpose",
        "transcript for the file",
        "--result",
        str(result),
    )
    refused = invoke(
        "analysis",
        "record",
        f"{CASE}/0001",
        "--by",
        "bob",
        "--kind",
        "face-recognition",
        "--tool",
        "facefind",
        "--tool-version",
        "1.0",
        "--purpose",
        "identify the visitor",
    )
    assert refused.code == 4 and "face-recognition" in refused.stderr, refused
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle))
    policies = _index_of(bundle, "policy")
    assert len(policies) == 1  # log-wide, like key entries: it names no case

    code, report = _verify(bundle, _vkey(cli))
    assert code == 0, report["summary"]
    policy = next(e for e in report["case_events"] if e["type"] == "policy")
    assert policy["index"] == policies[0]
    assert policy["what"].startswith(
        "log policy: forbids face-recognition; requires a warrant for licence-plate"
    )
    with Custody.open(home) as c:
        origin = c.origin
    assert policy["signers"] == [origin]  # the log key, not a party
    events = _item(report, item)["events"]
    analysis = next(e for e in events if e["type"] == "analysis")
    assert analysis["what"].startswith(
        "transcription analysis of this item by bob with whisper 20231117"
    )
    # The report in the bundle lists the analysis on record for the exhibit.
    assert "whisper 20231117" in (bundle / "report" / "report.html").read_text()

    # The signature rule verify-bundle applies to a policy entry (check_entry with the
    # trusted log key): the log key's signature, and no party's.
    data = (bundle / "entries" / f"{policies[0]}.entry").read_bytes()
    with Custody.open(home) as c:
        log_key = c.log_key
        bob = c.signer("bob", lambda _prompt: PASSPHRASE)
        log_signer = c.log_signer(lambda _prompt: PASSPHRASE)
    parties = Parties()
    assert check_entry(policies[0], data, parties, log_key).entry.type == "policy"
    with pytest.raises(EntryError, match="log key is not known here"):
        check_entry(policies[0], data, parties, None)
    entry = Entry("policy", "2026-11-23T13:45:00Z", (("forbid", "transcription"),))
    with pytest.raises(EntryError, match=r"signed by 'bob'.*the log key of"):
        check_entry(7, sign_entry(entry, [bob]), parties, log_key)
    forged = sign_entry(entry, [log_signer]).replace(b"forbid transcription", b"forbid other")
    with pytest.raises(EntryError, match="does not verify"):
        check_entry(7, forged, parties, log_key)


# -- emergency disclosures --------------------------------------------------------------------


def test_an_emergency_review_overdue_at_export_is_reported(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    cli.run("key", "new", "carol", "--role", "court", "--org", "County Court")
    cli.run("case", "new", CASE)
    footage = tmp_path / "footage"
    why = ("--legal-basis", "emergency", "--justification", "a child missing since 21:00")
    left = _ingest(cli, home, clips.make_clip(footage / "a.mp4"), *why)
    reviewed = _ingest(cli, home, clips.make_clip(footage / "b.mp4", frequency=880), *why)
    cli.run(
        "review",
        f"{CASE}/0002",
        "--by",
        "carol",
        "--outcome",
        "upheld",
        "--note",
        "imminent danger shown",
    )
    vkey = _vkey(cli)

    # Exported now: both within the 72 hours, one reviewed, one pending.
    now_bundle = tmp_path / "now"
    cli.run("export", CASE, "--to", str(now_bundle))
    code, report = _verify(now_bundle, vkey)
    assert code == 0, report["summary"]
    status = {e["item"]: e["status"] for e in report["emergencies"]}
    assert status == {left: "pending", reviewed: "upheld"}
    assert not any("OVERDUE" in n for n in report["notes"])

    # Exported four days later (export takes its time as an argument): one is overdue.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=4)
    late_bundle = tmp_path / "later"
    with Custody.open(home) as c:
        signer = c.log_signer(lambda _prompt: PASSPHRASE)
        export_case(c, CASE, late_bundle, log_signer=signer, now=later, report=write_report)
    code, report = _verify(late_bundle, vkey)
    assert code == 0, report["summary"]  # an overdue review is a finding, not a failure
    found = {e["item"]: e for e in report["emergencies"]}
    assert found[left]["status"] == "overdue"
    assert found[left]["review"] is None
    assert found[left]["as_of"] == report["exported"]
    assert found[left]["due"] < report["exported"]
    assert found[reviewed]["status"] == "upheld"
    assert found[reviewed]["review"]["by"] == "carol"
    assert found[reviewed]["late"] is False
    overdue = [n for n in report["notes"] if "review OVERDUE" in n]
    assert len(overdue) == 1 and f"exhibit {CASE}/0001" in overdue[0], report["notes"]

    text = invoke("verify-bundle", str(late_bundle), "--trust", vkey)
    assert text.code == 0, text
    assert "emergency disclosures and their reviews" in text.stdout
    assert text.stdout.count("review OVERDUE") == 1  # listed once, not again under notes
    assert "was upheld on review by carol" in text.stdout

    html = (late_bundle / "report" / "report.html").read_text()
    assert "Emergency disclosures and their reviews" in html
    assert "review OVERDUE" in html
    assert "a child missing since 21:00" in html


# -- requests and their answers ---------------------------------------------------------------


def _answer(cli: Cli, tmp_path: Path, name: str, *request: str, answer: tuple[str, ...]) -> int:
    """`request new` by bob, `request answer` by alice, `log import`: the answer's index."""
    req, ans = tmp_path / f"{name}.request", tmp_path / f"{name}.answer"
    cli.run("request", "new", "--case", CASE, "--by", "bob", *request, "--out", str(req))
    cli.run("request", "answer", str(req), "--by", "alice", *answer, "--out", str(ans))
    out = cli.run("log", "import", str(ans)).stdout
    return int(out.rsplit("entry", 1)[1].split()[0])


def test_requests_and_their_answers_travel_with_the_items_they_cover(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    cli.run("case", "new", CASE)
    window = ("--from", "2024-03-01T09:00:00Z", "--to", "2024-03-01T11:00:00Z")
    consent = _answer(
        cli,
        tmp_path,
        "asked",
        "--purpose",
        "the burglary at 12 Elm St",
        *window,
        "--area",
        "51.5074,-0.1278,500",
        "--owner",
        "alice",
        answer=("--consent", "--onward", "court"),
    )
    refusal = _answer(
        cli,
        tmp_path,
        "declined",
        "--purpose",
        "a second look",
        *window,
        answer=("--decline", "--reason", "privacy"),
    )
    footage = tmp_path / "footage"
    under = _ingest(
        cli,
        home,
        clips.make_clip(footage / "door.mp4"),
        "--legal-basis",
        "consent",
        "--consent",
        str(consent),
    )
    _ingest(
        cli,
        home,
        clips.make_clip(footage / "other.mp4", frequency=880),
        "--legal-basis",
        "warrant",
        "--ref",
        "W-9",
    )
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle), "--items", f"{CASE}/0001")
    requests = _index_of(bundle, "request")
    assert len(requests) == 2  # the case's requests name no item: they stay whole
    assert _index_of(bundle, "refusal") == [refusal]
    assert consent in _index_of(bundle, "consent")

    code, report = _verify(bundle, _vkey(cli))
    assert code == 0, report["summary"]
    assert [i["item"] for i in report["items"]] == [under]  # --items kept one exhibit
    said = {e["index"]: e["what"] for e in report["case_events"]}
    assert said[requests[0]].startswith(
        "bob asks alice for footage from 2024-03-01T09:00:00Z to 2024-03-01T11:00:00Z within "
        "500 m of 51.5074,-0.1278 for the burglary at 12 Elm St"
    )
    assert said[consent].endswith(f"answering request (entry {requests[0]})")
    assert said[refusal] == f"alice declines request (entry {requests[1]}): privacy"
    ingest = _item(report, under)["events"][0]["what"]
    assert f"under consent (entry {consent}); recorded at" in ingest

    # On the home, every item's history lists the case's requests and their answers,
    # naming the entries they answer by index.
    history = cli.run("history", f"{CASE}/0002").stdout
    assert f"alice declines request (entry {requests[1]}): privacy" in history
    assert f"answering request (entry {requests[0]})" in history


def test_an_emergency_review_is_judged_late_or_overdue_against_its_due_time() -> None:
    """The verdict's judgement of one disclosure (pure: no bundle needed)."""
    base = EmergencyState(
        hash="3" * 64,
        index=20,
        case=CASE,
        item="a" * 64,
        by="bob",
        time="2026-11-20T10:00:00Z",
        due="2026-11-23T10:00:00Z",
    )
    pending = Emergency(f"{CASE}/0001", base, "2026-11-23T09:59:59Z")
    assert (pending.status, pending.late) == ("pending", False)
    overdue = Emergency(f"{CASE}/0001", base, "2026-11-23T10:00:01Z")
    assert overdue.status == "overdue"
    assert overdue.sentence() == (
        f"the emergency disclosure of exhibit {CASE}/0001 by bob (entry 20) has no review on "
        "record: it was due by 2026-11-23T10:00:00Z; none is on record as of "
        "2026-11-23T10:00:01Z (review OVERDUE)"
    )
    late = replace(
        base,
        reviewed_at=31,
        outcome="rejected",
        reviewer="carol",
        reviewed_time="2026-11-24T08:00:00Z",
    )
    judged = Emergency(f"{CASE}/0001", late, "2026-12-01T00:00:00Z")
    assert (judged.status, judged.late) == ("rejected", True)
    assert judged.sentence() == (
        f"the emergency disclosure of exhibit {CASE}/0001 by bob (entry 20) was rejected on "
        "review by carol at 2026-11-24T08:00:00Z (entry 31), LATE (it was due by "
        "2026-11-23T10:00:00Z): access and derivation are refused from then on, handoff only "
        "to a court"
    )
    assert judged.to_json()["review"] == {
        "entry": 31,
        "by": "carol",
        "time": "2026-11-24T08:00:00Z",
        "outcome": "rejected",
    }
    on_time = Emergency(
        f"{CASE}/0001", replace(late, reviewed_time="2026-11-23T10:00:00Z"), "2026-12-01T00:00:00Z"
    )
    assert on_time.late is False  # a review at the due time itself is on time
