"""Derived clips (trim, redact, transcode) and their lineage, on real clips made with ffmpeg.

The redaction's frame claims are checked twice: by custody's own proof, and here by an
independent ffmpeg decode (`framemd5`) of the two files, so a bug shared by the proof
and the code that made the copy cannot hide.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import clips
import pytest
from conftest import invoke

from custody.app import derive, evidence
from custody.app.home import Custody
from custody.errors import UsageError, VerificationError
from custody.media import lineage
from custody.media.compare import Packet, PacketList, StreamHeader
from custody.model.entry import SignedEntry

CASE = "2026-0142"


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4 s doorbell clip (15 fps, a keyframe every second), an MPEG-TS copy, a sidecar."""
    d = tmp_path_factory.mktemp("derive-footage")
    orig = clips.make_clip(d / "doorbell.mp4", seconds=4.0)
    # A pixel format H.264 cannot keep (4:4:0), lossless FFV1 + FLAC in Matroska.
    odd = d / "lab.mkv"
    clips.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15"),
        *("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000"),
        *("-t", "2", "-map", "0", "-map", "1", "-c:v", "ffv1", "-pix_fmt", "yuv440p"),
        *("-c:a", "flac", odd),
    )
    return {
        "orig": orig,
        "ts": clips.remux(orig, d / "dvr.ts"),
        "odd": odd,
        "sidecar": clips.write_sidecar_json(d / "export-info.json"),
    }


@pytest.fixture
def agency(cli, home: Path, footage: dict[str, Path]) -> Path:  # type: ignore[no-untyped-def]
    """bob (agency) holds exhibit 0001 (the MP4) of the case, taken in under a warrant."""
    cli.run("case", "new", CASE)
    cli.run(
        "ingest",
        str(footage["orig"]),
        *("--case", CASE, "--by", "bob", "--legal-basis", "warrant", "--ref", "W-1"),
    )
    return home


def derive_json(*args: str) -> dict[str, object]:
    r = invoke("derive", *args, "--json")
    assert r.code == 0, r
    out: dict[str, object] = json.loads(r.stdout)
    return out


def entry_of(index: int) -> SignedEntry:
    r = invoke("log", "entry", str(index))
    assert r.code == 0, r
    return SignedEntry.parse(r.stdout_bytes)


def stored(home: Path, blake3: str) -> Path:
    return home / "vault" / "objects" / blake3[:2] / blake3


def lineage_json(ref: str) -> dict[str, object]:
    r = invoke("derive", "lineage", ref, "--json")
    assert r.code == 0, r
    out: dict[str, object] = json.loads(r.stdout)
    return out


def framemd5(path: Path) -> list[str]:
    """Independent check: MD5 of every decoded video frame, in presentation order."""
    out = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"),
            *("-fps_mode", "passthrough", "-f", "framemd5", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


# -- trim ------------------------------------------------------------------------------------


def test_trim_is_a_new_exhibit_with_a_signed_derive_entry_and_a_proven_lineage(  # type: ignore[no-untyped-def]
    cli, agency: Path
) -> None:
    size_before = len(cli.run("log", "verify", "--json").stdout)
    out = derive_json(
        "trim",
        f"{CASE}/0001",
        *("--start", "1.5", "--end", "3", "--by", "bob", "--reason", "excerpt for the jury"),
    )
    assert out["status"] == "derived" and out["exhibit"] == f"{CASE}/0002"
    assert out["op"] == "trim" and out["name"] == "doorbell.trim.mp4"
    child = str(out["blake3"])
    import blake3

    assert blake3.blake3(stored(agency, child).read_bytes()).hexdigest() == child
    # Stream copy from the keyframe at 1.0 s: packets 15-44 of the video, unchanged.
    proof = out["proof"]
    assert isinstance(proof, dict) and proof["kind"] == "contiguous-run" and proof["proven"]
    video = proof["streams"][0]
    assert video["parent_packets"] == [15, 45] and video["boundary_head"] == 0

    signed = entry_of(int(str(out["index"])))
    e = signed.entry
    assert e.type == "derive" and signed.signer_names == ("bob",)
    parent = cli.run("show", f"{CASE}/0001", "--json")
    assert e.get("parent") == json.loads(parent.stdout)["blake3"]
    assert e.get("case") == CASE and e.get("item") == child
    assert e.get("exhibit") == f"{CASE}/0002" and e.get("name") == "doorbell.trim.mp4"
    assert e.get("size") == str(out["size"]) and e.get("kind") == "media"
    assert e.get("metadata") and e.get("content") and len(e.get_all("stream")) == 2
    assert e.get("op") == "trim" and e.get("by") == "bob"
    assert e.get("reason") == "excerpt for the jury"
    assert (e.get("tool") or "").startswith("ffmpeg ")
    params = e.get_all("param")
    assert params[:4] == ["start 1.500", "end 3.000", "mode copy", "cut 1.000"]
    recipe = params[4]
    assert recipe.startswith("ffmpeg ffmpeg -nostdin") and "-c copy" in recipe
    assert "-i PARENT" in recipe and recipe.endswith("CHILD.mp4")

    # The new exhibit is held by the party that made it.
    shown = json.loads(cli.run("show", f"{CASE}/0002", "--json").stdout)
    assert shown["holder"] == "bob" and shown["log_index"] == out["index"]

    # Lineage, re-proven from the evidence store.
    lin = lineage_json(f"{CASE}/0002")
    assert lin["derived"] and lin["parent_exhibit"] == f"{CASE}/0001" and lin["op"] == "trim"
    assert lin["proof"]["kind"] == "contiguous-run"  # type: ignore[index]
    text = cli.run("derive", "lineage", f"{CASE}/0002").stdout
    assert "PROVEN: contiguous excerpt: stream 0 (video): parent packets 15-44" in text
    assert "covers the declared 1.500-3.000 s" in text

    # The same trim again: the same bytes, already an exhibit; nothing appended.
    again = derive_json(
        "trim", f"{CASE}/0001", "--start", "1.5", "--end", "3", "--by", "bob", "--reason", "again"
    )
    assert again["status"] == "already" and again["exhibit"] == f"{CASE}/0002"

    # History of the parent still works and now shows the derivation.
    hist = json.loads(cli.run("history", f"{CASE}/0001", "--json").stdout)
    assert [ev["type"] for ev in hist["timeline"]] == ["ingest", "derive"]
    cli.run("history", f"{CASE}/0001")
    cli.run("history", f"{CASE}/0002")
    assert len(cli.run("log", "verify", "--json").stdout) >= size_before


def test_lineage_of_an_ingested_item_is_none(cli, agency: Path) -> None:  # type: ignore[no-untyped-def]
    assert lineage_json(f"{CASE}/0001")["derived"] is False
    assert "was ingested, not derived" in cli.run("derive", "lineage", f"{CASE}/0001").stdout
    with Custody.open(agency) as c:
        assert derive.lineage(c, evidence.resolve_item(c, f"{CASE}/0001")) is None


# -- redact ----------------------------------------------------------------------------------


def test_redaction_changes_only_the_box_only_in_the_range(  # type: ignore[no-untyped-def]
    cli, agency: Path, footage: dict[str, Path]
) -> None:
    out = derive_json(
        "redact",
        f"{CASE}/0001",
        *("--box", "11,10,41,30", "--start", "1", "--end", "2", "--style", "blur"),
        *("--by", "bob", "--reason", "a bystander's face"),
    )
    assert out["exhibit"] == f"{CASE}/0002" and out["name"] == "doorbell.redact.mp4"
    params = {p["name"]: p["value"] for p in out["params"]}  # type: ignore[attr-defined]
    # Widened to whole 4:2:0 chroma samples, so nothing outside the box changes.
    assert params["box"] == "10,10,42,30" and params["style"] == "blur"
    assert params["start"] == "1.000" and params["end"] == "2.000"
    assert params["frames"] == "15-30"  # 15 fps: frames shown at 1.000 ... 2.000 s
    assert params["codec"] == "libx264" and params["qp"] == "0"
    assert params["audio-codec"] == "copy"
    proof = out["proof"]
    assert isinstance(proof, dict) and proof["kind"] == "frames"
    assert (proof["frames"], proof["outside"], proof["inside"]) == (60, 44, 16)
    assert proof["inside_changed"] == 16
    assert proof["audio"][0]["packets"] == 174

    # Independently of custody: decode both files and compare frame by frame.
    child = stored(agency, str(out["blake3"]))
    parent, copy = framemd5(footage["orig"]), framemd5(child)
    assert len(parent) == len(copy) == 60
    differ = [i for i, (a, b) in enumerate(zip(parent, copy, strict=True)) if a != b]
    assert differ == list(range(15, 31))

    lin = lineage_json(f"{CASE}/0002")
    assert lin["proof"]["outside_identical"] == 44  # type: ignore[index]
    text = cli.run("derive", "lineage", f"{CASE}/0002").stdout
    assert "44 outside 1.000-2.000 s (frames 15-30) bit-identical" in text
    assert "only within box 10,10,42,30" in text
    assert "audio stream 1 (aac): all 174 packets identical" in text
    cli.run("log", "verify")


def test_redaction_of_the_whole_clip_and_of_mpeg_ts(  # type: ignore[no-untyped-def]
    cli, agency: Path, footage: dict[str, Path]
) -> None:
    whole = derive_json(
        "redact", f"{CASE}/0001", "--box", "0,0,40,40", "--by", "bob", "--reason", "plate"
    )
    assert whole["proof"]["inside"] == whole["proof"]["inside_changed"] == 60  # type: ignore[index]
    assert not any(p["name"] == "frames" for p in whole["params"])  # type: ignore[attr-defined]
    # MPEG-TS starts its timeline at 1.4 s and its AAC has ADTS headers: the copy stays
    # in MPEG-TS so the sound keeps its exact packets, and times count from the start.
    cli.run("ingest", str(footage["ts"]), "--case", CASE, "--by", "bob", "--legal-basis", "warrant")
    ts = derive_json(
        "redact",
        f"{CASE}/0003",
        *("--box", "10,10,40,30", "--start", "1", "--end", "2", "--by", "bob", "--reason", "x"),
    )
    assert ts["name"] == "dvr.redact.ts" and ts["proof"]["audio"][0]["packets"] == 174  # type: ignore[index]
    cut = derive_json(
        "trim", f"{CASE}/0003", "--start", "1.5", "--end", "3", "--by", "bob", "--reason", "x"
    )
    assert cut["proof"]["streams"][0]["parent_packets"] == [15, 45]  # type: ignore[index]
    for exhibit in ("0002", "0004", "0005"):
        lineage_json(f"{CASE}/{exhibit}")


def test_redaction_of_video_h264_cannot_keep_uses_ffv1(  # type: ignore[no-untyped-def]
    cli, agency: Path, footage: dict[str, Path]
) -> None:
    cli.run(
        "ingest", str(footage["odd"]), "--case", CASE, "--by", "bob", "--legal-basis", "warrant"
    )
    redact = ("redact", f"{CASE}/0002", "--box", "11,11,41,31", "--start", "0.5", "--end", "1")
    r = cli.fail(2, "derive", *redact, "--style", "blur", "--by", "bob", "--reason", "x")
    assert "yuv440p video, which the blur cannot keep" in r.stderr
    out = derive_json(*redact, "--by", "bob", "--reason", "x")
    params = {p["name"]: p["value"] for p in out["params"]}  # type: ignore[attr-defined]
    assert out["name"] == "lab.redact.mkv" and params["codec"] == "ffv1"
    assert params["box"] == "10,10,42,32" and params["frames"] == "8-15"  # 4:4:0: even rows
    assert out["proof"]["audio"][0]["codec"] == "flac"  # type: ignore[index]


def test_lineage_refuses_a_stored_copy_that_was_altered(  # type: ignore[no-untyped-def]
    cli, agency: Path
) -> None:
    out = derive_json(
        "trim", f"{CASE}/0001", "--start", "0", "--end", "2", "--by", "bob", "--reason", "x"
    )
    path = stored(agency, str(out["blake3"]))
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    r = cli.fail(1, "derive", "lineage", f"{CASE}/0002")
    assert "does not match its BLAKE3 digest" in r.stderr


# -- transcode -------------------------------------------------------------------------------


def test_transcode_states_its_parameters_and_proves_the_copied_sound(  # type: ignore[no-untyped-def]
    cli, agency: Path
) -> None:
    out = derive_json(
        "transcode",
        f"{CASE}/0001",
        *("--codec", "libx264", "--crf", "30", "--by", "bob", "--reason", "court player"),
    )
    params = {p["name"]: p["value"] for p in out["params"]}  # type: ignore[attr-defined]
    assert params["codec"] == "libx264" and params["crf"] == "30"
    assert params["pix_fmt"] == "yuv420p" and params["audio-codec"] == "copy"
    proof = out["proof"]
    assert isinstance(proof, dict) and proof["kind"] == "declared" and proof["proven"] is False
    assert proof["child_frames"] == proof["parent_frames"] == 60
    text = cli.run("derive", "lineage", f"{CASE}/0002").stdout
    assert "NOT PROVEN (by design): lossy transcode to libx264" in text
    assert "audio stream 1 (aac): all 174 packets identical" in text
    e = entry_of(int(str(out["index"]))).entry
    assert "param crf 30" in [f"param {v}" for v in e.get_all("param")]
    cli.run("log", "verify")


def test_a_bundle_reproves_a_trim_and_copied_sound_offline(  # type: ignore[no-untyped-def]
    cli, agency: Path, tmp_path: Path
) -> None:
    """verify-bundle re-proves from the bundle's packet lists alone (custody.media.lineage):
    the trim as a run covering its declared range, the redaction's sound as copied."""
    derive_json(
        "trim",
        f"{CASE}/0001",
        *("--start", "1.5", "--end", "3", "--by", "bob", "--reason", "excerpt for the jury"),
    )
    derive_json(
        "redact",
        f"{CASE}/0001",
        *("--box", "10,10,20,20", "--by", "bob", "--reason", "a bystander's face"),
    )
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle))
    vkey = cli.run("log", "key").stdout.strip()
    r = cli.run(
        "verify-bundle", str(bundle), "--trust", vkey, "--no-probe", "--seen", str(tmp_path / "s")
    )
    assert f"an excerpt of {CASE}/0001: contiguous excerpt" in r.stdout
    assert f"a declared redact of {CASE}/0001" in r.stdout
    assert "the sound of the redact, declared copied: audio stream 1 (aac): all" in r.stdout


# -- refusals --------------------------------------------------------------------------------


def test_only_the_holder_may_derive(cli, agency: Path) -> None:  # type: ignore[no-untyped-def]
    before = json.loads(cli.run("log", "verify", "--json").stdout)["size"]
    r = cli.fail(
        4,
        "derive",
        "trim",
        f"{CASE}/0001",
        *("--start", "1", "--end", "2", "--by", "alice", "--reason", "mine"),
    )
    assert "'alice' may not derive from" in r.stderr and "current holder is 'bob'" in r.stderr
    assert json.loads(cli.run("log", "verify", "--json").stdout)["size"] == before
    assert len(json.loads(cli.run("case", "show", CASE, "--json").stdout)["items"]) == 1


def test_footage_taken_on_consent_is_derived_from_only_within_it(  # type: ignore[no-untyped-def]
    cli, home: Path, footage: dict[str, Path]
) -> None:
    cli.run("case", "new", CASE)
    cli.run(
        "ingest", str(footage["orig"]), "--case", CASE, "--by", "bob", "--legal-basis", "consent"
    )
    trim = ("derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1", "--by", "bob")
    r = cli.fail(4, *trim, "--reason", "excerpt")
    assert "no consent on this log covers" in r.stderr
    cli.run(
        *("consent", "grant", "--owner", "alice", "--case", CASE),
        *("--purpose", "burglary investigation", "--onward", "court"),
    )
    assert derive_json(*trim[1:], "--reason", "excerpt")["status"] == "derived"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("trim", "--start", "3", "--end", "2"), "--start 3.000 is not before --end 2.000"),
        (("trim", "--start", "1", "--end", "9"), "--end 9.000 is beyond the end of"),
        (("trim", "--start", "5", "--end", "6"), "--start 5.000 is beyond the end of"),
        (("trim", "--start", "1,5", "--end", "2"), "--start '1,5' is not a time"),
        (("trim", "--end", "2"), "--start is required"),
        (("redact", "--box", "10,10,40"), "--box '10,10,40' is not X,Y,W,H"),
        (("redact", "--box", "10,10,0,30"), "has no area"),
        (("redact", "--box", "150,10,40,30"), "reaches outside the 160x120 frame"),
        (("redact", "--box", "1,1,4,4", "--start", "2", "--end", "1"), "is not before"),
        (("redact", "--box", "1,1,4,4", "--style", "pixelate"), "--style 'pixelate'"),
        (("transcode", "--codec", "prores"), "--codec 'prores' is not supported"),
        (("transcode", "--codec", "libx264", "--crf", "99"), "--crf 99 is out of range"),
    ],
)
def test_bad_parameters_are_usage_errors(  # type: ignore[no-untyped-def]
    cli, agency: Path, args: tuple[str, ...], message: str
) -> None:
    op, *rest = args
    r = cli.fail(2, "derive", op, f"{CASE}/0001", *rest, "--by", "bob", "--reason", "x")
    assert message in r.stderr


def test_attachments_and_missing_reasons_are_refused(  # type: ignore[no-untyped-def]
    cli, agency: Path, footage: dict[str, Path]
) -> None:
    cli.run(
        "ingest", str(footage["sidecar"]), "--case", CASE, "--by", "bob", "--legal-basis", "warrant"
    )
    times = ("--start", "0", "--end", "1")
    r = cli.fail(2, "derive", "trim", f"{CASE}/0002", *times, "--by", "bob", "--reason", "x")
    assert "is an attachment, not footage" in r.stderr
    r = cli.fail(2, "derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1", "--by", "bob")
    assert "--reason is required" in r.stderr


# -- the derived file itself ------------------------------------------------------------------


def test_a_derived_file_verifies_as_an_exact_match(  # type: ignore[no-untyped-def]
    cli, agency: Path, tmp_path: Path
) -> None:
    out = derive_json(
        "trim", f"{CASE}/0001", "--start", "1", "--end", "2", "--by", "bob", "--reason", "x"
    )
    copy = tmp_path / "exhibit-0002.mp4"
    shutil.copyfile(stored(agency, str(out["blake3"])), copy)
    r = cli.run("verify", str(copy))
    assert r.stdout.startswith("EXACT MATCH") and f"exhibit {CASE}/0002" in r.stdout


# -- the pure parts --------------------------------------------------------------------------


def test_times_and_boxes_parse_exactly() -> None:
    assert derive.parse_seconds("1.5", "--start") == 1_500_000
    assert derive.parse_seconds("01:02.25", "--start") == 62_250_000
    assert derive.parse_seconds("1:00:00", "--end") == 3_600_000_000
    assert derive.parse_seconds("0.033367", "--end") == 33_367
    for bad in ("", "-1", "1:60", "1.1234567", "1e3", "a"):
        with pytest.raises(UsageError):
            derive.parse_seconds(bad, "--start")
    assert derive.format_seconds(1_500_000) == "1.500"
    assert derive.format_seconds(33_367) == "0.033367"
    assert derive.parse_box("10, 20,30,40") == (10, 20, 30, 40)
    with pytest.raises(UsageError):
        derive.parse_box("10,20,30,-4")


def _frames(hashes: list[bytes], boxes: list[bytes], step: int = 1000) -> PacketList:
    """Decoded frame lists as `media.decoded_frames` gives them: 15 fps at `step` 1000."""
    tb = Fraction(1, 15000)

    def packets(stream: int, hs: list[bytes]) -> tuple[Packet, ...]:
        return tuple(Packet(stream, i * step, i * step, step, 100, h) for i, h in enumerate(hs))

    return PacketList(
        streams=(
            StreamHeader(0, tb, "video", "rawvideo"),
            StreamHeader(1, tb, "video", "rawvideo"),
        ),
        packets=(packets(0, hashes), packets(1, boxes)),
    )


def test_prove_redaction_names_the_frame_that_breaks_the_claim() -> None:
    # Stream 0: each frame with the box filled in frames 3-5; stream 1: the box's pixels.
    frames = [bytes([i]) * 32 for i in range(10)]
    boxes = [bytes([100 + i]) * 32 for i in range(10)]
    box = (0, 0, 2, 2)
    parent = _frames(frames, boxes)
    blurred = [*boxes[:3], b"\xff" * 32, b"\xff" * 32, b"\xff" * 32, *boxes[6:]]
    child = _frames(frames, blurred)
    assert lineage.prove_redaction(parent, child, box=box, frames=(3, 5)) == (10, 7, 3, 3)
    # What the decoder shows for frame 5 when only frames 3-4 are declared: unmasked.
    unmasked = _frames([*frames[:5], b"\x55" * 32, *frames[6:]], blurred)
    with pytest.raises(VerificationError, match=r"frame 5 \(0\.333 s\).*outside the frames 3-4"):
        lineage.prove_redaction(parent, unmasked, box=box, frames=(3, 4))
    spilled = _frames([*frames[:4], b"\xee" * 32, *frames[5:]], blurred)
    with pytest.raises(VerificationError, match=r"frame 4 .* outside the declared box 0,0,2,2"):
        lineage.prove_redaction(parent, spilled, box=box, frames=(3, 5))
    with pytest.raises(VerificationError, match="9 video frames, its parent 10"):
        lineage.prove_redaction(parent, _frames(frames[:9], boxes[:9]), box=box, frames=None)
    slow = _frames(frames, boxes, step=2000)
    with pytest.raises(VerificationError, match=r"frame 1 is 0\.133 s into the redacted copy"):
        lineage.prove_redaction(parent, slow, box=box, frames=None)


def test_prove_trim_refuses_a_run_that_misses_the_declared_range(footage: dict[str, Path]) -> None:
    from custody.infra import ffmpeg as media

    parent = media.probe(footage["orig"])
    assert parent is not None
    # The parent is a contiguous run of itself, but it does not reach 4.5 s.
    lineage.prove_trim(parent.packets, parent.packets, start=Fraction(1), end=Fraction(3))
    with pytest.raises(VerificationError, match=r"not the declared 1\.000-4\.500 s"):
        lineage.prove_trim(parent.packets, parent.packets, start=Fraction(1), end=Fraction(9, 2))
    # Audio packets replaced: the copy is not the parent's sound.
    audio = parent.packets.packets[1]
    forged = replace(
        parent.packets,
        packets=(parent.packets.packets[0], (replace(audio[0], hash=b"\x00" * 32), *audio[1:])),
    )
    with pytest.raises(VerificationError, match="first difference at packet 0"):
        lineage.prove_audio_copied(parent.packets, forged)
