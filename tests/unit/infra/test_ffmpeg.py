"""custody.infra.ffmpeg: probing and packet hashing of real clips generated with ffmpeg."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import blake3
import clips
import pytest

from custody.errors import InputError
from custody.infra import ffmpeg as media
from custody.media.compare import MediaRecord
from custody.media.digest import content_digest, parse_snapshot

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(work: Path) -> Path:
    return clips.make_clip(work / "clip.mp4")


@pytest.fixture(scope="module")
def info(clip: Path) -> media.MediaInfo:
    found = media.probe(clip)
    assert found is not None
    return found


def test_probe_measures_metadata_and_content(info: media.MediaInfo) -> None:
    fmt = info.metadata["format"]
    assert fmt["tags"]["creation_time"] == clips.CREATION_TIME
    assert fmt["tags"]["com.apple.quicktime.make"] == clips.MAKE
    assert fmt["tags"]["com.apple.quicktime.model"] == clips.MODEL
    assert info.metadata["version"] == "custody/snapshot/v2"
    assert [(s.index, s.codec_type, s.codec_name) for s in info.streams] == [
        (0, "video", "h264" if clips.video_encoder() == "libx264" else "mpeg4"),
        (1, "audio", "aac"),
    ]
    assert info.streams[0].packets == 30  # 2 s at 15 fps
    assert info.metadata_digest == blake3.blake3(info.snapshot).hexdigest()
    assert info.content_digest == content_digest(info.streams)
    assert info.problems == ()
    assert info.tool.startswith("ffmpeg ")
    assert set(info.sidecars()) == set(media.SIDECAR_KINDS)
    assert info.packets.streams[0].media_type == "video"
    assert len(info.packets.packets[1]) == info.streams[1].packets


def test_snapshot_has_no_path_in_it(clip: Path, info: media.MediaInfo, tmp_path: Path) -> None:
    assert b"filename" not in info.snapshot and str(clip.parent).encode() not in info.snapshot
    elsewhere = tmp_path / "renamed copy.mp4"
    shutil.copyfile(clip, elsewhere)
    moved = media.probe(elsewhere)
    assert moved is not None
    assert moved.snapshot == info.snapshot
    assert moved.metadata_digest == info.metadata_digest
    assert moved.record == info.record


def test_stream_digests_match_a_plain_streamhash_run(clip: Path, info: media.MediaInfo) -> None:
    # The two-output trick must give what a second implementation gets from the
    # single command in docs/spec/media.md.
    out = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-i", str(clip)),
            *("-map", "0", "-c", "copy", "-f", "streamhash", "-hash", "sha256", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.encode() == info.streamhash
    lines = out.splitlines()
    assert [line.split("=")[1] for line in lines] == [s.digest for s in info.streams]


def test_record_rebuilt_from_sidecars_is_the_same(info: media.MediaInfo) -> None:
    sidecars = info.sidecars()
    again = MediaRecord(
        snapshot=sidecars["probe"],
        framehash=sidecars["framehash"],
        streamhash=sidecars["streamhash"],
    )
    assert again == info.record
    assert again.content_digest == info.content_digest
    assert again.metadata_digest == info.metadata_digest
    assert parse_snapshot(sidecars["probe"]) == info.metadata


def test_a_remux_keeps_the_content_digest(clip: Path, info: media.MediaInfo, work: Path) -> None:
    remuxed = media.probe(clips.remux(clip, work / "remux.mkv"))
    assert remuxed is not None
    assert remuxed.content_digest == info.content_digest
    assert remuxed.metadata_digest != info.metadata_digest


def test_files_that_are_not_footage_are_not_media(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("The free text of an officer's note.\n")
    for path in (
        clips.write_sidecar_json(tmp_path / "export.json"),
        clips.write_csv(tmp_path / "log.csv"),
        text,
        clips.make_still(tmp_path / "still.jpg"),
        clips.make_still(tmp_path / "still.png"),
    ):
        assert media.probe(path) is None, path.name


def test_audio_only_is_media(tmp_path: Path) -> None:
    audio = tmp_path / "call.m4a"
    clips.ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", audio)
    found = media.probe(audio)
    assert found is not None and [s.codec_type for s in found.streams] == ["audio"]


def test_a_truncated_mp4_without_its_index_is_an_input_error(work: Path, tmp_path: Path) -> None:
    whole = clips.make_clip(work / "plain.mp4", faststart=False)
    cut = clips.truncate(whole, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(InputError, match=r"cut\.mp4 is not decodable media: .*") as err:
        media.probe(cut)
    assert "\n" not in err.value.message
    # The same bytes under the evidence store's extension-less name, shown by the
    # original name: still recognised as damaged media, not an attachment.
    stored = tmp_path / ("ab" * 32)
    shutil.copyfile(cut, stored)
    with pytest.raises(InputError, match=r"^exhibit\.mp4 is not decodable media"):
        media.probe(stored, name="exhibit.mp4")


def test_a_truncated_faststart_mp4_is_refused_strictly_and_measured_leniently(
    clip: Path, tmp_path: Path
) -> None:
    cut = clips.truncate(clip, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(InputError, match=r"cut\.mp4 is damaged media: .*partial file"):
        media.probe(cut)
    found = media.probe(cut, strict=False)
    assert found is not None
    assert any("partial file" in p for p in found.problems)


def test_garbage_with_a_media_name_is_an_input_error(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mov"
    fake.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match=r"clip\.mov is not decodable media"):
        media.probe(fake)


def test_names_that_look_like_protocols_or_options_are_just_files(
    clip: Path, info: media.MediaInfo, tmp_path: Path
) -> None:
    for name in ("concat:a.mp4|b.mp4", "-i x.mp4", "pipe:0.mp4"):
        odd = tmp_path / name
        shutil.copyfile(clip, odd)
        found = media.probe(odd)
        assert found is not None and found.snapshot == info.snapshot, name


def test_ffmpeg_version_is_reported() -> None:
    assert media.ffmpeg_version().startswith("ffmpeg ")


def _jcs(value: object) -> str:
    """A separate, minimal JCS for strings and integers, as docs/spec/media.md gives it."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return (
            "{"
            + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _jcs(value[k]) for k in keys)
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_jcs(x) for x in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _ffmpeg_text(clip: Path, muxer: str) -> str:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-map", "0", "-c", "copy"]
    cmd += ["-f", muxer, "-hash", "sha256", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_a_second_implementation_reproduces_the_digests(clip: Path, info: media.MediaInfo) -> None:
    # Follow docs/spec/media.md with plain ffprobe/ffmpeg runs and no custody code.
    out = subprocess.run(
        [
            *("ffprobe", "-hide_banner", "-v", "error", "-protocol_whitelist", "file"),
            *("-show_format", "-show_streams", "-of", "json", f"file:{clip.resolve()}"),
        ],
        capture_output=True,
        check=True,
    ).stdout
    doc = json.loads(out.decode("utf-8", "replace"))
    doc["format"].pop("filename")
    snapshot = {
        "format": doc["format"],
        "streams": doc["streams"],
        "version": "custody/snapshot/v1",
    }
    v1 = media.probe(clip, snapshot="custody/snapshot/v1")
    assert v1 is not None and v1.content_digest == info.content_digest
    assert blake3.blake3(_jcs(snapshot).encode()).hexdigest() == v1.metadata_digest

    framehash = _ffmpeg_text(clip, "framehash")
    assert framehash.encode() == info.framehash
    extradata = {
        int(line.split()[1].rstrip(",")): line.split()[-1]
        for line in framehash.splitlines()
        if line.startswith("#extradata ")
    }
    packets: dict[int, int] = {}
    for line in framehash.splitlines():
        if line and not line.startswith("#"):
            stream = int(line.split(",")[0])
            packets[stream] = packets.get(stream, 0) + 1
    words = {"v": "video", "a": "audio", "s": "subtitle", "d": "data", "t": "attachment"}
    text = "custody/content/v1\n"
    for line in _ffmpeg_text(clip, "streamhash").splitlines():
        index, letter, digest = line.split(",")
        i = int(index)
        text += (
            f"{i} {words[letter]} {packets[i]} {digest[len('SHA256=') :]} {extradata.get(i, '-')}\n"
        )
    assert blake3.blake3(text.encode()).hexdigest() == info.content_digest
