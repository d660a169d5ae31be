"""Automated analysis on record and the log's policy, through the CLI (docs/lifecycle.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import blake3
import clips
import pytest
from conftest import CliRunnerNS, invoke

from custody.model.entry import SignedEntry

CASE = "C-1"


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clips.make_clip(tmp_path_factory.mktemp("analysis-clips") / "door.mp4")


@pytest.fixture
def agency(home: Path, cli: type[CliRunnerNS], clip: Path, tmp_path: Path) -> Path:
    """The `home` fixture (alice owner, bob agency): C-1/0001, a clip bob took in on
    consent, with alice's consent for the case; C-1/0002, a text attachment bob took
    in under a warrant."""
    cli.run("case", "new", CASE, "--title", "Analysis")
    copy = tmp_path / clip.name
    shutil.copy(clip, copy)
    cli.run("ingest", str(copy), "--case", CASE, "--by", "bob", "--legal-basis", "consent")
    cli.run(
        *("consent", "grant", "--owner", "alice", "--case", CASE),
        *("--purpose", "investigation", "--onward", "court"),
    )
    note = tmp_path / "statement.txt"
    note.write_text("witness statement\n", encoding="utf-8")
    cli.run(
        *("ingest", str(note), "--case", CASE, "--by", "bob"),
        *("--legal-basis", "warrant", "--ref", "SW-7"),
    )
    return home


def log_size(cli: type[CliRunnerNS]) -> int:
    return int(json.loads(cli.run("log", "verify", "--json").stdout)["size"])


def last_entry(cli: type[CliRunnerNS]) -> SignedEntry:
    return SignedEntry.parse(cli.run("log", "entry", str(log_size(cli) - 1)).stdout_bytes)


def test_an_analysis_is_recorded_with_its_result_digest(
    agency: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    result = tmp_path / "transcript.txt"
    result.write_text("00:01 someone rings the bell\n", encoding="utf-8")
    done = cli.run(
        *("analysis", "record", f"{CASE}/0001", "--by", "bob", "--kind", "transcription"),
        *("--tool", "whisper", "--tool-version", "20231117", "--purpose", "transcript"),
        *("--result", str(result), "--json"),
    )
    doc = json.loads(done.stdout)
    digest = blake3.blake3(result.read_bytes()).hexdigest()
    assert doc["result"] == digest and doc["result_name"] == "transcript.txt", doc
    assert doc["exhibit"] == f"{CASE}/0001" and doc["kind"] == "transcription", doc
    e = last_entry(cli).entry
    assert e.type == "analysis" and e.get("result") == digest, e
    assert e.get("tool") == "whisper" and e.get("tool-version") == "20231117", e
    assert e.get("result-name") == "transcript.txt" and e.get("warrant") is None, e
    text = cli.run(
        *("analysis", "record", f"{CASE}/0002", "--by", "bob", "--kind", "other"),
        *("--tool", "grep", "--tool-version", "3.11", "--purpose", "keywords"),
    )
    assert f"other of {CASE}/0002 by bob with grep 3.11" in text.stdout, text


def test_policy_forbids_a_kind_and_nothing_is_appended(
    agency: Path, cli: type[CliRunnerNS]
) -> None:
    set_ = cli.run(
        *("policy", "set", "--forbid", "face-recognition", "--warrant-required", "licence-plate"),
        *("--review-within", "48", "--note", "City ordinance 2025-31"),
    )
    policy_index = log_size(cli) - 1
    assert f"policy recorded as log entry {policy_index}" in set_.stdout, set_
    e = last_entry(cli)
    assert e.entry.type == "policy" and e.signer_names == ("test.example/custody",), e
    assert e.entry.get_all("forbid") == ["face-recognition"], e.entry
    assert e.entry.get("review-within") == "48", e.entry

    size = log_size(cli)
    refused = cli.fail(
        4,
        *("analysis", "record", f"{CASE}/0001", "--by", "bob", "--kind", "face-recognition"),
        *("--tool", "rekognition", "--tool-version", "7", "--purpose", "identify"),
    )
    assert "forbids face-recognition" in refused.stderr, refused
    assert f"(entry {policy_index})" in refused.stderr, refused
    assert log_size(cli) == size  # nothing appended

    # Warrant required: refused without one for consent footage, allowed with one,
    # and allowed without one for an item taken in under a warrant.
    plate = ("--kind", "licence-plate", "--tool", "openalpr", "--tool-version", "2.3.0")
    no_warrant = cli.fail(
        4, "analysis", "record", f"{CASE}/0001", "--by", "bob", *plate, "--purpose", "car"
    )
    assert "warrant" in no_warrant.stderr, no_warrant
    assert log_size(cli) == size
    cli.run(
        *("analysis", "record", f"{CASE}/0001", "--by", "bob", *plate),
        *("--purpose", "car", "--warrant", "SW-2026-0113"),
    )
    assert last_entry(cli).entry.get("warrant") == "SW-2026-0113"
    cli.run("analysis", "record", f"{CASE}/0002", "--by", "bob", *plate, "--purpose", "car")
    assert log_size(cli) == size + 2

    shown = json.loads(cli.run("policy", "show", "--json").stdout)
    assert shown == {
        "entry": policy_index,
        "index": policy_index,
        "time": shown["time"],
        "forbid": ["face-recognition"],
        "warrant_required": ["licence-plate"],
        "review_within_hours": 48,
        "note": "City ordinance 2025-31",
        "replaced": 0,
        "default": False,
    }

    # A new policy replaces the old one whole: face recognition is allowed again.
    cli.run("policy", "set", "--warrant-required", "licence-plate")
    again = json.loads(cli.run("policy", "show", "--json").stdout)
    assert again["forbid"] == [] and again["replaced"] == 1, again
    assert again["review_within_hours"] == 72, again
    cli.run(
        *("analysis", "record", f"{CASE}/0001", "--by", "bob", "--kind", "face-recognition"),
        *("--tool", "rekognition", "--tool-version", "7", "--purpose", "identify"),
    )
    assert "forbidden analyses:       none" in cli.run("policy", "show").stdout


def test_policy_show_without_a_policy_gives_the_defaults(
    home: Path, cli: type[CliRunnerNS]
) -> None:
    shown = json.loads(cli.run("policy", "show", "--json").stdout)
    assert shown["default"] is True and shown["entry"] is None, shown
    assert shown["review_within_hours"] == 72 and shown["forbid"] == [], shown
    assert "no policy entry on this log" in cli.run("policy", "show").stdout


def test_only_the_log_operator_sets_the_policy(
    home: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    personal = tmp_path / "bob-home"
    db = f"sqlite:///{home / 'custody.db'}"
    cli.run("join", "--db", db, "--home", str(personal), "--party", "bob")
    refused = invoke("policy", "set", "--forbid", "face-recognition", "--home", str(personal))
    assert refused.code == 2, refused
    assert "only the log operator, whose home holds the log key 'test.example/custody'" in (
        refused.stderr
    ), refused
    assert "sign the log's policy" in refused.stderr, refused
    shown = invoke("policy", "show", "--json", "--home", str(personal))
    assert shown.code == 0 and json.loads(shown.stdout)["default"] is True, shown


def test_bad_analysis_options_are_usage_errors(
    agency: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    size = log_size(cli)
    base = (
        "analysis",
        "record",
        f"{CASE}/0001",
        "--by",
        "bob",
        "--tool",
        "t",
        "--tool-version",
        "1",
    )
    unknown = cli.fail(2, *base, "--kind", "gait-recognition", "--purpose", "x")
    assert "face-recognition, licence-plate" in unknown.stderr, unknown
    cli.fail(2, *base, "--kind", "other", "--purpose", "  ")
    missing = cli.fail(
        3, *base, "--kind", "other", "--purpose", "x", "--result", str(tmp_path / "none")
    )
    assert "--result" in missing.stderr, missing
    # Not the holder.
    cli.fail(
        4,
        "analysis",
        "record",
        f"{CASE}/0001",
        "--by",
        "alice",
        "--kind",
        "other",
        "--tool",
        "t",
        "--tool-version",
        "1",
        "--purpose",
        "x",
    )
    cli.fail(2, "policy", "set", "--forbid", "mind-reading")
    cli.fail(2, "policy", "set", "--forbid", "other", "--warrant-required", "other")
    cli.fail(2, "policy", "set", "--review-within", "0")
    assert log_size(cli) == size
