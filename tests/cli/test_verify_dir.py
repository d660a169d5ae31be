"""`custody verify DIR` (the hashdeep-style folder audit), which exhibit a modified file is
named against, and the messages for ambiguous digest prefixes (docs/ingest.md).

One module-scoped home, built once: case C holds four real clips, three of which share an
identical video stream (one test pattern, other sounds), and a JSON attachment; case D
holds the first clip again (the same clip in two cases).  Each test copies what it alters.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import clips
import pytest
from conftest import PASSPHRASE, CliResult, invoke

import custody.app.export
from custody.app.evidence import ambiguous

CASE, OTHER = "2026-0400", "2026-0401"
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "json"


def ok(*args: str | Path) -> CliResult:
    r = invoke(*map(str, args))
    assert r.code == 0, r
    return r


@dataclass(frozen=True)
class World:
    root: Path
    clips: dict[str, Path]  # recorded name -> the original file
    exhibits: dict[str, str]  # recorded name -> exhibit number in CASE
    unrelated: Path  # the same test pattern's video as door/side/garage, another sound
    bundle: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("verify-dir")
        mp.setenv("CUSTODY_HOME", str(root / "home"))
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        for var in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY"):
            mp.delenv(var, raising=False)
        mp.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])  # no report
        src = root / "footage"
        made = {
            "door.mp4": clips.make_clip(src / "door.mp4", frequency=440),
            "side.mp4": clips.make_clip(src / "side.mp4", frequency=550),
            "garage.mp4": clips.make_clip(src / "garage.mp4", frequency=660),
            "porch.mp4": clips.make_clip(src / "porch.mp4", pattern="smptebars", frequency=880),
            "export-info.json": clips.write_sidecar_json(src / "export-info.json"),
        }
        unrelated = clips.make_clip(root / "unrelated" / "other.mp4", frequency=770)
        ok("init", "--origin", "verify-dir.example/custody")
        ok("key", "new", "bob", "--role", "agency")
        ok("case", "new", CASE)
        ok("case", "new", OTHER)
        ok("ingest", *made.values(), "--case", CASE, "--by", "bob", "--legal-basis", "warrant")
        ok("ingest", made["door.mp4"], "--case", OTHER, "--by", "bob", "--legal-basis", "warrant")
        shown = json.loads(ok("case", "show", CASE, "--json").stdout)
        exhibits = {i["name"]: i["exhibit"] for i in shown["items"]}
        bundle = root / "bundle"
        ok("export", CASE, "--to", bundle, "--with-media")
        yield World(root, made, exhibits, unrelated, bundle)


@pytest.fixture(autouse=True)
def _world_home(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test reads the module's home (conftest gives each test an empty one)."""
    monkeypatch.setenv("CUSTODY_HOME", str(world.root / "home"))


def audit(folder: Path, *extra: str) -> tuple[int, dict]:
    r = invoke("verify", str(folder), "--json", *extra)
    assert r.code in (0, 1), r
    return r.code, json.loads(r.stdout)


def validator(name: str) -> Any:
    """A validator for docs/json/`name`, resolving its references to the other schemas."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=referencing.Registry().with_resources(resources))


def by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


def test_a_mixed_folder(world: World, tmp_path: Path) -> None:
    d = tmp_path / "seized"
    (d / "copies").mkdir(parents=True)
    shutil.copy(world.clips["door.mp4"], d / "door.mp4")
    shutil.copy(world.clips["porch.mp4"], d / "copies" / "porch-copy.mp4")
    (d / "edited").mkdir()
    clips.edit_metadata(
        world.clips["side.mp4"], d / "edited" / "side.mp4", creation_time="2024-03-09T09:00:00Z"
    )
    (d / "export-info.json").write_text('{"camera": "someone else"}\n')
    (d / "notes.txt").write_text("seized from the DVR\n")
    os.symlink(world.clips["garage.mp4"], d / "latest.mp4")
    code, report = audit(d, "--case", CASE)
    assert code == 1
    files = by_path(report)
    assert {p: f["status"] for p, f in files.items()} == {
        "door.mp4": "matched",
        "copies/porch-copy.mp4": "moved",
        "edited/side.mp4": "modified",
        "export-info.json": "modified",
        "notes.txt": "new",
        "latest.mp4": "skipped",
    }
    assert [e["exhibit"] for e in files["door.mp4"]["exhibits"]] == [world.exhibits["door.mp4"]]
    assert files["copies/porch-copy.mp4"]["reason"] == "recorded as porch.mp4"
    side = files["edited/side.mp4"]
    assert side["verdict"] == "metadata-changed"
    assert side["exhibits"][0]["exhibit"] == world.exhibits["side.mp4"]
    assert any(f["field"] == "format.tags.creation_time" for f in side["fields"])
    assert files["export-info.json"]["verdict"] == "unknown"
    assert "not followed" in files["latest.mp4"]["reason"]
    # garage.mp4 is in the folder only as a link, which is not followed: missing.
    assert [m["exhibit"] for m in report["missing"]] == [world.exhibits["garage.mp4"]]
    assert report["counts"] == {
        "matched": 1,
        "moved": 1,
        "modified": 2,
        "new": 1,
        "skipped": 1,
        "unreadable": 0,
        "missing": 1,
    }
    assert report["verified"] is False
    validator("verify-dir.schema.json").validate(report)
    r = invoke("verify", str(d), "--case", CASE, "--jsonl")
    assert r.code == 1, r
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    check = validator("verify-dir.jsonl.schema.json")
    for line in lines:
        check.validate(line)
    assert [x.get("status") for x in lines[:-1]] == [f["status"] for f in report["files"]] + [
        "missing"
    ]
    assert lines[-1]["final"] is True and lines[-1]["counts"] == report["counts"]
    # The text: one line per file, the missing exhibit, then the summary line.
    r = invoke("verify", str(d), "--case", CASE)
    assert r.code == 1
    lines = r.stdout.splitlines()
    assert lines[-1] == (
        f"6 files: 1 matched, 1 moved, 2 modified, 1 new, 1 skipped; 1 exhibit of case {CASE} "
        "missing"
    )
    assert f"missing    {world.exhibits['garage.mp4']}  garage.mp4: " in r.stdout
    side_line = next(line for line in lines if "edited/side.mp4" in line)
    assert side_line.startswith(f"modified   {world.exhibits['side.mp4']}  edited/side.mp4: ")
    assert "metadata changed: format.tags.creation_time" in side_line
    assert r.stderr.startswith("custody: error: ")
    assert "the audit did not pass: 5 not matched or missing" in r.stderr


def test_a_complete_folder_passes(world: World, tmp_path: Path) -> None:
    d = tmp_path / "complete"
    for name, src in world.clips.items():
        (d / "x" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, d / "x" / name)
    code, report = audit(d, "--case", CASE)
    assert code == 0, report
    assert report["verified"] is True and report["missing"] == []
    assert {f["status"] for f in report["files"]} == {"matched"}
    # Without --case the clip in both cases names both exhibits; nothing can be missing.
    code, report = audit(d)
    assert code == 0
    door = by_path(report)["x/door.mp4"]
    assert sorted(e["case"] for e in door["exhibits"]) == [CASE, OTHER]
    assert report["counts"]["missing"] == 0 and report["case"] is None


def test_an_exported_bundle_is_audited_by_its_media(world: World, tmp_path: Path) -> None:
    r = invoke("verify", str(world.bundle), "--case", CASE)
    assert r.code == 0, r
    assert r.stdout.splitlines()[-1] == f"5 files: 5 matched; 0 exhibits of case {CASE} missing"
    assert "is a custody bundle: only its media/ was audited" in r.stderr
    # A bundle whose media lost one file and had another altered.
    _, shown = audit(world.bundle, "--case", CASE)
    where = {f["exhibits"][0]["name"]: f["path"] for f in shown["files"]}
    assert sorted(where) == sorted(world.clips)
    assert all(p.startswith("media/") for p in where.values())
    b = tmp_path / "bundle"
    shutil.copytree(world.bundle, b)
    (b / where["porch.mp4"]).unlink()
    door_name = where["door.mp4"]
    door_exhibit = world.exhibits["door.mp4"]
    clips.flip_bit(world.bundle / door_name, b / door_name)  # rewrites the copy
    code, report = audit(b, "--case", CASE)
    assert code == 1
    assert by_path(report)[door_name]["status"] == "modified"
    assert by_path(report)[door_name]["exhibits"][0]["exhibit"] == door_exhibit
    assert [m["name"] for m in report["missing"]] == ["porch.mp4"]
    assert report["bundles"] == ["."]


def test_one_folder_at_a_time(world: World, tmp_path: Path) -> None:
    r = invoke("verify", str(tmp_path), str(world.clips["door.mp4"]))
    assert r.code == 2, r
    assert "give one folder to audit, or files to verify" in r.stderr


def test_an_unrelated_clip_sharing_one_stream_names_no_exhibit(world: World) -> None:
    r = invoke("verify", str(world.unrelated), "--json")
    assert r.code == 1, r
    out = json.loads(r.stdout.splitlines()[0])
    assert out["verdict"] == "unknown"
    assert "exhibit" not in out
    # door (in both cases), side and garage share its video; porch shares nothing.
    assert "shares only stream 0 (video) of its 2 streams with 4 exhibits (" in out["reason"]
    for name in ("door.mp4", "side.mp4", "garage.mp4"):
        assert world.exhibits[name] in out["reason"]
    assert world.exhibits["porch.mp4"] not in out["reason"]


def test_a_clip_under_an_exhibits_name_sharing_one_stream_is_named(
    world: World, tmp_path: Path
) -> None:
    renamed = tmp_path / "side.mp4"
    shutil.copy(world.unrelated, renamed)
    r = invoke("verify", str(renamed), "--json")
    assert r.code == 1, r
    out = json.loads(r.stdout.splitlines()[0])
    assert out["verdict"] == "content-modified"
    assert out["exhibit"] == world.exhibits["side.mp4"]
    assert [s["stream"] for s in out["streams"]] == [1]  # the sound


def test_a_spliced_copy_is_still_named_against_its_original(world: World, tmp_path: Path) -> None:
    spliced = tmp_path / "evidence.mp4"
    clips.splice_reencoded(world.clips["door.mp4"], spliced, 0.5, 1.0)
    r = invoke("verify", str(spliced), "--case", CASE, "--json")
    assert r.code == 1, r
    out = json.loads(r.stdout.splitlines()[0])
    assert out["verdict"] == "content-modified"
    assert out["exhibit"] == world.exhibits["door.mp4"]


def test_the_same_clip_in_two_cases_lists_both_exhibits(world: World) -> None:
    r = invoke("show", "--json", "x")  # warm-up: a bad reference is a usage error
    assert r.code == 2
    _, report = audit(world.root / "footage")
    door = by_path(report)["door.mp4"]["digest"]
    r = invoke("show", door[:10])
    assert r.code == 2, r
    err = r.stderr.splitlines()
    assert len(err) == 2
    assert err[0] == (
        f"custody: error: {door[:10]} is one clip ingested as 2 exhibits: "
        f"{world.exhibits['door.mp4']} (case {CASE}, door.mp4, b3 {door[:12]}…); "
        f"{OTHER}/0001 (case {OTHER}, door.mp4, b3 {door[:12]}…); more digits cannot tell "
        "them apart"
    )
    assert err[1] == (
        f"  hint: give the exhibit number (e.g. {world.exhibits['door.mp4']}) or --case "
        f"({CASE} or {OTHER})"
    )
    r = invoke("show", door[:10], "--case", OTHER, "--json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["exhibit"] == f"{OTHER}/0001"


def test_a_prefix_of_two_clips_lists_them() -> None:
    rows = [
        SimpleNamespace(exhibit=f"C/{n:04d}", case_id="C", name=f"cam{n}.mp4", blake3=b3)
        for n, b3 in ((1, "abcdef01" + "0" * 56), (2, "abcdef02" + "0" * 56))
    ]
    err = ambiguous("abcdef", rows)  # type: ignore[arg-type]
    assert err.exit_code == 2
    assert err.message == (
        "digest prefix abcdef matches 2 exhibits: C/0001 (case C, cam1.mp4, b3 abcdef010000…); "
        "C/0002 (case C, cam2.mp4, b3 abcdef020000…)"
    )
    assert err.hint is not None and "more digits" in err.hint and "--case" in err.hint
    many = [
        SimpleNamespace(exhibit=f"C/{n:04d}", case_id="C", name="x.mp4", blake3=f"{n:064x}")
        for n in range(20)
    ]
    err = ambiguous("000000", many)  # type: ignore[arg-type]
    assert "matches at least 20 exhibits" in err.message
    assert err.message.endswith(", and 14 more")
