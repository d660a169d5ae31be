"""Emergency reviews, retention, legal holds and disposal, through the CLI (docs/lifecycle.md).

Real clips, a real home; every refusal is checked to append nothing and to reach the
user as one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import clips
import pytest
from conftest import PASSPHRASE, CliRunnerNS, invoke

from custody.model.rules import entry_hash

CASE = "C-1"


@pytest.fixture(scope="session")
def clip_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lifecycle-clips")
    return (
        clips.make_clip(folder / "door.mp4"),
        clips.make_clip(folder / "street.mp4", pattern="smptebars", frequency=660),
    )


@pytest.fixture
def agency(
    home: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path], tmp_path: Path
) -> Path:
    """The `home` fixture (alice owner, bob agency) with sgt-lee (agency), lab1 (lab) and
    judge (court); C-1/0001 and C-1/0002 ingested by bob under a warrant."""
    cli.run("key", "new", "sgt-lee", "--role", "agency", "--org", "Metro Police")
    cli.run("key", "new", "lab1", "--role", "lab", "--org", "State Lab")
    cli.run("key", "new", "judge", "--role", "court", "--org", "County Court")
    cli.run("case", "new", CASE, "--title", "Lifecycle")
    for clip in clip_pair:
        copy = tmp_path / clip.name
        shutil.copy(clip, copy)
        cli.run(
            *("ingest", str(copy), "--case", CASE, "--by", "bob"),
            *("--legal-basis", "warrant", "--ref", "SW-1"),
        )
    return home


def log_size(cli: type[CliRunnerNS]) -> int:
    """The log's size, from a full `log verify` (which must pass)."""
    return int(json.loads(cli.run("log", "verify", "--json").stdout)["size"])


def object_path(home: Path, clip: Path) -> Path:
    digest = blake3.blake3(clip.read_bytes()).hexdigest()
    return home / "vault" / "objects" / digest[:2] / digest


def entry(cli: type[CliRunnerNS], index: int) -> str:
    return cli.run("log", "entry", str(index)).stdout


def emergency_ingest(cli: type[CliRunnerNS], clip: Path, case: str = "C-2") -> int:
    """bob ingests `clip` into `case` under legal basis emergency; its log index."""
    cli.run("case", "new", case, "--title", "Emergency")
    out = cli.run(
        *("ingest", str(clip), "--case", case, "--by", "bob", "--json"),
        *("--legal-basis", "emergency", "--justification", "a child was missing"),
    )
    return int(json.loads(out.stdout.splitlines()[0])["index"])


# -- legal holds and disposal --------------------------------------------------------------


def test_a_hold_blocks_disposal_until_released(
    agency: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path]
) -> None:
    held = cli.run("hold", CASE, "--reason", "appeal pending", "--by", "bob")
    assert "legal hold placed on case C-1" in held.stdout, held
    hold_index = log_size(cli) - 1
    size = log_size(cli)

    refused = cli.fail(4, "dispose", f"{CASE}/0001", "--by", "bob", "--reason", "retention ended")
    assert "under hold" in refused.stderr and f"(entry {hold_index})" in refused.stderr, refused
    assert "bob" in refused.stderr and "release it first" in refused.stderr, refused
    assert log_size(cli) == size  # nothing appended
    assert object_path(agency, clip_pair[0]).is_file()

    # A case hold is not released by naming an item of the case; the hint says how.
    wrong = cli.fail(3, "hold", "release", f"{CASE}/0001", "--reason", "x", "--by", "bob")
    assert f"'custody hold release {CASE}'" in wrong.stderr, wrong
    released = cli.run("hold", "release", CASE, "--reason", "appeal decided", "--by", "bob")
    assert f"(entry {hold_index}, placed by bob) released" in released.stdout, released
    done = cli.run("dispose", f"{CASE}/0001", "--by", "bob", "--reason", "retention ended")
    assert f"{CASE}/0001 disposed of (log entry {size + 1})" in done.stdout, done
    assert "removed its file and 3 sidecar(s)" in done.stdout, done
    assert not object_path(agency, clip_pair[0]).exists()
    assert not list(
        (agency / "vault" / "sidecars").rglob(object_path(agency, clip_pair[0]).name + ".*")
    )
    assert "type disposal\n" in entry(cli, size + 1)


def test_hold_place_spelling_and_item_holds(agency: Path, cli: type[CliRunnerNS]) -> None:
    placed = cli.run(
        "hold", "place", f"{CASE}/0002", "--reason", "order 24-9", "--by", "lab1", "--json"
    )
    doc = json.loads(placed.stdout)
    assert doc["action"] == "place" and doc["exhibit"] == f"{CASE}/0002", doc
    # The case has no hold of its own: releasing the case names the item's hold.
    nothing = cli.fail(3, "hold", "release", CASE, "--reason", "done", "--by", "lab1")
    assert "there is no hold in force on case C-1" in nothing.stderr, nothing
    assert f"entry {doc['index']}" in nothing.stderr, nothing
    # Another agency party may not release lab1's hold; a court may.
    refused = cli.fail(4, "hold", "release", f"{CASE}/0002", "--reason", "x", "--by", "bob")
    assert refused.stderr.startswith("custody: error: refused: "), refused
    cli.run("hold", "release", f"{CASE}/0002", "--reason", "order lifted", "--by", "judge")
    # An owner may not place a hold.
    owner = cli.fail(4, "hold", CASE, "--reason", "mine", "--by", "alice")
    assert "refused" in owner.stderr, owner
    # Bad spellings are usage errors.
    cli.fail(2, "hold", "release", "--reason", "x", "--by", "bob")
    cli.fail(2, "hold", "place", CASE, "extra", "--reason", "x", "--by", "bob")


def test_two_holds_on_one_target_need_hold_option(agency: Path, cli: type[CliRunnerNS]) -> None:
    cli.run("hold", CASE, "--reason", "appeal", "--by", "bob")
    first = log_size(cli) - 1
    cli.run("hold", CASE, "--reason", "civil claim", "--by", "sgt-lee")
    which = cli.fail(2, "hold", "release", CASE, "--reason", "x", "--by", "bob")
    assert "2 holds in force" in which.stderr and "--hold" in which.stderr, which
    done = cli.run(
        "hold", "release", CASE, "--hold", str(first), "--reason", "appeal decided", "--by", "bob"
    )
    assert f"(entry {first}, placed by bob) released" in done.stdout, done
    # The other hold still blocks disposal.
    refused = cli.fail(4, "dispose", f"{CASE}/0001", "--by", "bob", "--reason", "x")
    assert "sgt-lee" in refused.stderr, refused


def test_disposed_item_is_named_by_nothing_and_vault_check_says_so(
    agency: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cli.run("dispose", f"{CASE}/0001", "--by", "bob", "--reason", "retention ended")
    disposal = log_size(cli) - 1
    opened = cli.fail(
        4,
        "open",
        f"{CASE}/0001",
        "--by",
        "bob",
        "--purpose",
        "look",
        "--out",
        str(tmp_path / "x.mp4"),
    )
    assert f"{CASE}/0001 was disposed of at entry {disposal}" in opened.stderr, opened
    again = cli.run("dispose", f"{CASE}/0001", "--by", "bob", "--reason", "again")
    assert f"already disposed of at entry {disposal}" in again.stdout, again
    assert log_size(cli) == disposal + 1  # no second disposal entry
    analysed = cli.fail(
        4,
        *("analysis", "record", f"{CASE}/0001", "--by", "bob", "--kind", "transcription"),
        *("--tool", "whisper", "--tool-version", "3", "--purpose", "transcript"),
    )
    assert f"was disposed of at entry {disposal}" in analysed.stderr, analysed
    cli.fail(4, "hold", f"{CASE}/0001", "--reason", "too late", "--by", "bob")
    cli.fail(
        4,
        "retention",
        "set",
        f"{CASE}/0001",
        "--until",
        "2030-01-01",
        "--basis",
        "x",
        "--by",
        "bob",
    )

    checked = cli.run("vault", "check")
    assert f"disposed: exhibit {CASE}/0001" in checked.stdout, checked
    assert "disposed by bob at " in checked.stdout and f"(entry {disposal})" in checked.stdout
    assert checked.stdout.rstrip().split("\n")[-1].startswith("OK:"), checked
    doc = json.loads(cli.run("vault", "check", "--json").stdout)
    assert doc["ok"] is True and doc["entries_without_objects"] == [], doc
    assert [d["exhibit"] for d in doc["disposed"]] == [f"{CASE}/0001"], doc
    assert doc["disposed"][0]["entry"] == disposal and doc["disposed"][0]["by"] == "bob"

    # An object deleted by hand, with no disposal entry, is still missing evidence.
    path = object_path(agency, clip_pair[1])
    path.chmod(0o644)
    path.unlink()
    broken = cli.fail(1, "vault", "check")
    assert f"entry without object: exhibit {CASE}/0002" in (broken.stdout_bytes.decode()), broken


def test_a_file_shared_with_another_case_stays_until_both_are_disposed(
    agency: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cli.run("case", "new", "C-9", "--title", "Same file, other case")
    cli.run(
        "ingest",
        str(tmp_path / clip_pair[0].name),
        "--case",
        "C-9",
        "--by",
        "bob",
        "--legal-basis",
        "warrant",
    )
    first = cli.run("dispose", f"{CASE}/0001", "--by", "bob", "--reason", "case closed", "--json")
    doc = json.loads(first.stdout)
    assert doc["kept_for"] == ["C-9/0001"] and doc["object_removed"] is False, doc
    assert object_path(agency, clip_pair[0]).is_file()
    out = tmp_path / "still.mp4"
    cli.run("open", "C-9/0001", "--by", "bob", "--purpose", "other case", "--out", str(out))
    assert out.read_bytes() == clip_pair[0].read_bytes()
    cli.run("vault", "check")  # the object is still named by C-9/0001: no problem
    second = cli.run("dispose", "C-9/0001", "--by", "bob", "--reason", "case closed")
    assert "removed its file" in second.stdout, second
    assert not object_path(agency, clip_pair[0]).exists()
    checked = cli.run("vault", "check")
    assert checked.stdout.count("disposed: exhibit") == 2, checked


def test_an_interrupted_disposal_is_reported_and_finished_by_a_rerun(
    agency: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path]
) -> None:
    args = ["dispose", f"{CASE}/0001", "--by", "bob", "--reason", "retention ended"]
    crashed = subprocess.run(
        [str(Path(sys.executable).parent / "custody"), *args],
        env={**os.environ, "CUSTODY_CRASH_AT": "dispose.entry-committed"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == 137, crashed
    disposal = log_size(cli) - 1
    assert object_path(agency, clip_pair[0]).is_file()
    left = cli.fail(1, "vault", "check")
    assert f"disposed but still stored: exhibit {CASE}/0001" in left.stdout, left
    assert f"run 'custody dispose {CASE}/0001' again" in left.stdout, left
    assert "disposed-of object(s)" in left.stderr, left
    doc = json.loads(invoke("vault", "check", "--json").stdout)
    assert doc["ok"] is False and doc["disposed_still_stored"][0]["entry"] == disposal, doc
    again = cli.run(*args)
    assert f"already disposed of at entry {disposal}" in again.stdout, again
    assert "removed its file" in again.stdout, again
    assert not object_path(agency, clip_pair[0]).exists()
    assert log_size(cli) == disposal + 1
    cli.run("vault", "check")


def test_only_the_holder_disposes(agency: Path, cli: type[CliRunnerNS]) -> None:
    refused = cli.fail(4, "dispose", f"{CASE}/0001", "--by", "sgt-lee", "--reason", "x")
    assert "refused" in refused.stderr and "bob" in refused.stderr, refused
    cli.fail(2, "dispose", f"{CASE}/0001", "--by", "bob", "--reason", " ")


# -- retention -----------------------------------------------------------------------------


def test_retention_due_lists_items_past_their_date(agency: Path, cli: type[CliRunnerNS]) -> None:
    case_ret = cli.run(
        "retention",
        "set",
        CASE,
        "--until",
        "2026-01-31",
        "--basis",
        "Records Act s. 12",
        "--by",
        "bob",
    )
    assert "case C-1 may be kept until 2026-01-31" in case_ret.stdout, case_ret
    case_index = log_size(cli) - 1
    own = cli.run(
        "retention",
        "set",
        f"{CASE}/0002",
        "--until",
        "2031-12-31",
        "--basis",
        "court order",
        "--by",
        "judge",
        "--json",
    )
    assert json.loads(own.stdout)["exhibit"] == f"{CASE}/0002"

    before = json.loads(cli.run("retention", "due", "--as-of", "2026-01-31", "--json").stdout)
    assert before == {"as_of": "2026-01-31", "due": []}  # the last day it may be kept
    after = json.loads(cli.run("retention", "due", "--as-of", "2026-02-10", "--json").stdout)
    assert [d["exhibit"] for d in after["due"]] == [f"{CASE}/0001"], after  # 0002 has its own
    due = after["due"][0]
    assert due["scope"] == "case" and due["retention_entry"] == case_index, due
    assert due["days_over"] == 10 and due["holds"] == [] and due["basis"] == "Records Act s. 12"

    # Under a hold: still listed, with the hold.
    cli.run("hold", f"{CASE}/0001", "--reason", "appeal", "--by", "bob")
    text = cli.run("retention", "due", "--as-of", "2026-02-10", "--case", CASE)
    assert "under hold" in text.stdout and "1 of them under a legal hold" in text.stdout, text
    cli.run("hold", "release", f"{CASE}/0001", "--reason", "decided", "--by", "bob")

    # The item's own retention overrides the case's, both ways.
    cli.run(
        "retention",
        "set",
        f"{CASE}/0002",
        "--until",
        "2026-02-01",
        "--basis",
        "order varied",
        "--by",
        "judge",
    )
    later = json.loads(cli.run("retention", "due", "--as-of", "2026-02-10", "--json").stdout)
    assert sorted(d["exhibit"] for d in later["due"]) == [f"{CASE}/0001", f"{CASE}/0002"], later

    # Disposed items are no longer due.
    cli.run("dispose", f"{CASE}/0001", "--by", "bob", "--reason", "retention ended")
    done = json.loads(cli.run("retention", "due", "--as-of", "2026-02-10", "--json").stdout)
    assert [d["exhibit"] for d in done["due"]] == [f"{CASE}/0002"], done

    cli.fail(2, "retention", "set", CASE, "--until", "31/12/2030", "--basis", "x", "--by", "bob")
    cli.fail(3, "retention", "due", "--case", "NO-SUCH")
    cli.fail(
        3, "retention", "set", "NO-SUCH", "--until", "2030-01-01", "--basis", "x", "--by", "bob"
    )
    cli.fail(4, "retention", "set", CASE, "--until", "2030-01-01", "--basis", "x", "--by", "alice")


# -- emergency reviews -----------------------------------------------------------------------


def test_a_rejected_emergency_disclosure_restricts_the_item(
    agency: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    index = emergency_ingest(cli, tmp_path / clip_pair[1].name)
    # The disclosing party may not review its own disclosure.
    own = cli.fail(4, "review", str(index), "--by", "bob", "--outcome", "upheld", "--note", "fine")
    assert own.stderr.startswith("custody: error: refused: "), own
    size = log_size(cli)
    done = cli.run(
        "review",
        "C-2/0001",
        "--by",
        "sgt-lee",
        "--outcome",
        "rejected",
        "--note",
        "no emergency: a warrant could have been sought",
        "--json",
    )
    doc = json.loads(done.stdout)
    assert doc["index"] == size and doc["ingest"] == index and doc["outcome"] == "rejected", doc
    assert doc["late"] is False and doc["due"] is not None, doc
    assert "type review\n" in entry(cli, size) and "outcome rejected\n" in entry(cli, size)
    # Reviewed once.
    cli.fail(4, "review", str(index), "--by", "lab1", "--outcome", "upheld", "--note", "again")

    # Restricted: no access, no derive, no analysis; a handoff only to a court.
    size = log_size(cli)
    opened = cli.fail(
        4, "open", "C-2/0001", "--by", "bob", "--purpose", "look", "--out", str(tmp_path / "o.mp4")
    )
    assert opened.stderr.startswith("custody: error: refused: "), opened
    assert not (tmp_path / "o.mp4").exists()
    derived = cli.fail(  # a refusal by the rules: exit 4, as for open
        4,
        *("derive", "trim", "C-2/0001", "--start", "0", "--end", "1"),
        *("--by", "bob", "--reason", "excerpt"),
    )
    assert "emergency disclosure" in derived.stderr, derived
    cli.fail(
        4,
        *("analysis", "record", "C-2/0001", "--by", "bob", "--kind", "object-detection"),
        *("--tool", "yolo", "--tool-version", "8", "--purpose", "find the car"),
    )
    assert log_size(cli) == size
    cli.fail(
        4,
        "handoff",
        "offer",
        "C-2/0001",
        "--from",
        "bob",
        "--to",
        "sgt-lee",
        "--purpose",
        "x",
        "--out",
        str(tmp_path / "no.offer"),
    )
    offer = tmp_path / "court.offer"
    cli.run(
        "handoff",
        "offer",
        "C-2/0001",
        "--from",
        "bob",
        "--to",
        "judge",
        "--purpose",
        "the court decides",
        "--out",
        str(offer),
    )
    cli.run("handoff", "accept", str(offer), "--by", "judge")
    # Disposal stays allowed (by the holder, now the court).
    cli.run("dispose", "C-2/0001", "--by", "judge", "--reason", "unlawfully obtained")


def test_review_by_entry_hash_upheld_changes_nothing(
    agency: Path, cli: type[CliRunnerNS], clip_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    index = emergency_ingest(cli, tmp_path / clip_pair[1].name)
    ehash = entry_hash(cli.run("log", "entry", str(index)).stdout_bytes)
    done = cli.run("review", ehash, "--by", "lab1", "--outcome", "upheld", "--note", "justified")
    assert f"the emergency disclosure of C-2/0001 (entry {index}) upheld by lab1" in done.stdout
    out = tmp_path / "ok.mp4"
    cli.run("open", "C-2/0001", "--by", "bob", "--purpose", "investigation", "--out", str(out))
    assert out.is_file()


def test_only_emergency_disclosures_are_reviewed(agency: Path, cli: type[CliRunnerNS]) -> None:
    size = log_size(cli)
    not_one = cli.fail(
        2, "review", f"{CASE}/0001", "--by", "sgt-lee", "--outcome", "upheld", "--note", "x"
    )
    assert "legal basis warrant, not emergency" in not_one.stderr, not_one
    key_entry = cli.fail(2, "review", "0", "--by", "sgt-lee", "--outcome", "upheld", "--note", "x")
    assert "not an ingest" in key_entry.stderr, key_entry
    cli.fail(2, "review", f"{CASE}/0001", "--by", "sgt-lee", "--outcome", "maybe", "--note", "x")
    cli.fail(3, "review", "99999", "--by", "sgt-lee", "--outcome", "upheld", "--note", "x")
    assert log_size(cli) == size


def test_hold_help_explains_place_and_release(cli: type[CliRunnerNS]) -> None:
    text = " ".join(cli.run("hold", "--help").stdout.split())
    assert "'custody hold release CASE|ITEM --reason TEXT' releases" in text, text
    assert "'custody hold place CASE|ITEM ...'" in text, text


def test_a_review_after_its_due_time_is_recorded_as_late(
    tmp_path: Path, clip_pair: tuple[Path, Path]
) -> None:
    # Through the library, with claimed times in the past: the policy's 24 hours run
    # from the emergency ingest's claimed time, and a review four days on is late.
    from custody.app import analysis, evidence, lifecycle
    from custody.app.home import Custody, Home, init

    def pw(_prompt: str) -> str:
        return PASSPHRASE

    home = Home.locate(tmp_path / "past-home")
    init(home, "past.example/log", pw)
    t0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with Custody(home) as c:
        c.new_key("bob", "agency", "Metro Police", pw, t0)
        c.new_key("lee", "agency", "Metro Police", pw, t0)
        analysis.set_policy(
            c, forbid=[], warrant_required=[], review_within=24, note=None, passphrase=pw, now=t0
        )
        evidence.new_case(c, "C-3", "Late review", t0)
        source = evidence.Source(clip_pair[0], legal_basis="emergency", justification="shots fired")
        when = t0 + timedelta(minutes=2)
        [outcome] = evidence.ingest(
            c, [source], case_id="C-3", by=c.signer("bob", pw), now=lambda: when
        )
        assert outcome.status == "ingested", outcome
        done = lifecycle.review(
            c,
            "C-3/0001",
            by="lee",
            outcome="upheld",
            note="justified, but reviewed late",
            passphrase=pw,
            now=t0 + timedelta(days=4),
        )
    assert done.due == "2026-01-06T09:02:00Z" and done.late is True, done
    assert done.as_json()["late"] is True
