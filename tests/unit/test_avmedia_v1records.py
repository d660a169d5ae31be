"""Records written the old way (``custody/snapshot/v1``: ffprobe) keep verifying.

A clip is ingested as custody did before the in-process measurement (the v1
snapshot from ffprobe), then verified by today's custody, which measures in v2 by
default: every comparison must be made in the record's own version, so the same
file is "identical", a remux "same content" and a bundle of it verifies.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import clips
import pytest
from conftest import invoke

from custody.app import evidence
from custody.infra import ffmpeg as media
from custody.media.digest import SNAPSHOT_V1, parse_snapshot

CASE = "2026-0007"


@pytest.fixture
def v1_home(cli: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clip = clips.make_clip(tmp_path / "doorbell.mp4")
    cli.run("case", "new", CASE)
    with monkeypatch.context() as m:
        m.setattr(media, "probe", functools.partial(media.probe, snapshot=SNAPSHOT_V1))
        m.setattr(evidence, "SNAPSHOT_VERSION", SNAPSHOT_V1)  # what custody wrote before
        cli.run("ingest", str(clip), "--case", CASE, "--by", "bob", "--legal-basis", "consent")
    probes = list(home.rglob("*.probe"))
    assert len(probes) == 1
    assert parse_snapshot(probes[0].read_bytes())["version"] == SNAPSHOT_V1
    return clip


def _verify(path: Path) -> dict[str, Any]:
    r = invoke("verify", str(path), "--json")
    assert r.code in (0, 1), r
    return dict(json.loads(r.stdout.splitlines()[0]))


def test_v1_exhibits_compare_in_v1(v1_home: Path, tmp_path: Path) -> None:
    clip = v1_home
    remux = _verify(clips.remux(clip, tmp_path / "doorbell.mkv"))
    assert remux["verdict"] == "same-content", remux
    # Same container, other bytes, same fields: no field may differ because of versions.
    moved = clips.remux(clip, tmp_path / "copy.mp4", keep_tags=True)
    again = _verify(moved)
    assert again["verdict"] in ("same-content", "metadata-changed"), again
    notable = [f for f in again.get("fields", []) if not f["container"]]
    assert notable == [], again
    edited = _verify(
        clips.edit_metadata(clip, tmp_path / "edited.mp4", creation_time="2020-01-01T00:00:00Z")
    )
    assert edited["verdict"] == "metadata-changed", edited
    changed = {f["field"] for f in edited["fields"] if not f["container"]}
    assert "format.tags.creation_time" in changed
    assert not any(f["field"].startswith("version") for f in edited["fields"])


def test_a_bundle_of_a_v1_exhibit_verifies_with_an_identical_reprobe(
    v1_home: Path, tmp_path: Path, cli: Any
) -> None:
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle), "--with-media")
    vkey = cli.run("log", "key").stdout.strip().splitlines()[-1]
    r = invoke("verify-bundle", str(bundle), "--trust", vkey, "--seen", str(tmp_path / "seen"))
    assert r.code == 0, r
    assert "identical" in r.stdout and "re-probed with ffmpeg" in r.stdout, r.stdout


def test_verify_dir_compares_a_v1_exhibit_in_v1(v1_home: Path, tmp_path: Path) -> None:
    seized = tmp_path / "seized"
    seized.mkdir()
    # Under the recorded name, other bytes: the same packets in a copy of the container.
    clips.remux(v1_home, seized / "doorbell.mp4", keep_tags=True)
    r = invoke("verify", str(seized), "--case", CASE, "--json")
    assert r.code == 1, r
    report = json.loads(r.stdout)
    (row,) = report["files"]
    assert row["status"] == "modified"
    assert row["verdict"] in ("same-content", "metadata-changed"), row
    assert [f for f in row.get("fields", []) if not f["container"]] == [], row


def test_the_bundle_prober_measures_once_per_version(
    v1_home: Path, tmp_path: Path, cli: Any
) -> None:
    from custody.bundle.reader import FfmpegProber, FolderSource

    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle), "--with-media")
    (name,) = [p.relative_to(bundle).as_posix() for p in (bundle / "media").glob("*.mp4")]
    prober = FfmpegProber(FolderSource(bundle), tmp_path / "work", jobs=2)
    try:
        prober.prefetch()  # measures the file as its recorded sidecar says: v1
        old = prober.probe(name, SNAPSHOT_V1)
        new = prober.probe(name)
        assert old is not None and new is not None
        assert old.snapshot_version == SNAPSHOT_V1 and new.snapshot_version != SNAPSHOT_V1
        assert prober.probe(name, SNAPSHOT_V1) is old and prober.probe(name) is new
        assert old.content_digest == new.content_digest
        assert prober.tool == media.ffmpeg_version()
    finally:
        prober.close()


def test_the_same_file_into_another_case_keeps_its_v1_sidecars(
    v1_home: Path, tmp_path: Path, cli: Any, home: Path
) -> None:
    # The bytes were measured in v1 by an earlier custody; ingested again now (into
    # another case), they are measured in the stored version: the sidecars are kept,
    # never rewritten, and the new entry's metadata digest is the stored probe's.
    import blake3

    probe = next(home.rglob("*.probe"))
    before = {p: p.read_bytes() for p in probe.parent.iterdir()}
    cli.run("case", "new", "2026-0008")
    r = invoke(
        "ingest", str(v1_home), "--case", "2026-0008", "--by", "bob",
        "--legal-basis", "consent", "--json",
    )  # fmt: skip
    assert r.code == 0, r
    assert {p: p.read_bytes() for p in probe.parent.iterdir()} == before
    item = json.loads(r.stdout.splitlines()[0])
    shown = json.loads(invoke("show", item["exhibit"], "--json").stdout)
    assert blake3.blake3(before[probe]).hexdigest() in json.dumps(shown), shown
    bundle = tmp_path / "b8"
    cli.run("export", "2026-0008", "--to", str(bundle), "--with-media")
    vkey = cli.run("log", "key").stdout.strip().splitlines()[-1]
    r = invoke("verify-bundle", str(bundle), "--trust", vkey, "--seen", str(tmp_path / "s8"))
    assert r.code == 0, r
