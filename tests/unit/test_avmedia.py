"""custody.infra.avmedia: in-process packet hashes equal the ffmpeg CLI's, on every clip kind.

For every kind of clip the tests make (tests/clips.py and the derive/ingest tests:
camera MP4s and their remuxes, B-frames, audio-only files, raw H.264, cover art,
trims, retimed and spliced copies, lossless redactions, transcodes, truncated
files), the real ``ffmpeg -map 0 -c copy -f streamhash|framehash -hash sha256`` is
run and compared with what custody measures in-process: streamhash bytes and
framehash bytes equal, hence every parsed packet (size, hash, dts, pts,
duration), extradata, codec, media type, time base and the content digest.  The
``custody/snapshot/v2`` document is checked field by field against ffprobe's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clips
import pytest

from custody.errors import InputError
from custody.infra import avmedia
from custody.infra import ffmpeg as media
from custody.media.compare import MediaRecord, Record, classify, parse_framehash
from custody.media.digest import SNAPSHOT_V1, SNAPSHOT_V2, parse_snapshot, snapshot_bytes

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

_LAVFI_V = ("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15")
_LAVFI_A = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100")


def _cli(path: Path, muxer: str) -> bytes:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file"]
    cmd += ["-i", f"file:{path.resolve()}", "-map", "0", "-c", "copy"]
    cmd += ["-f", muxer, "-hash", "sha256", "-"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def _av(*args: str | Path, out: Path) -> Path:
    clips.ffmpeg(*args, out)
    return out


def _kinds(d: Path) -> dict[str, Path]:
    orig = clips.make_clip(d / "camera.mp4", seconds=2.0)
    kinds: dict[str, Callable[[], Path]] = {
        "mp4": lambda: orig,
        "mp4-moov-at-end": lambda: clips.make_clip(d / "late.mp4", faststart=False),
        "mov": lambda: clips.remux(orig, d / "porch.mov"),
        "mkv": lambda: clips.remux(orig, d / "doorbell.mkv"),
        "mkv-tags": lambda: clips.remux(orig, d / "tags.mkv", keep_tags=True),
        "ts": lambda: clips.remux(orig, d / "dvr.ts"),
        "avi": lambda: clips.remux(orig, d / "dvr.avi"),
        "flv": lambda: clips.remux(orig, d / "stream.flv"),
        "edited": lambda: clips.edit_metadata(
            orig, d / "edited.mp4", creation_time="2025-06-01T12:00:00.000000Z"
        ),
        "trim": lambda: clips.trim_copy(orig, d / "trim.mp4", 1.0, 2.0),
        "slow": lambda: clips.slow_down(orig, d / "slow.mp4"),
        "shifted": lambda: clips.shift_video(orig, d / "shifted.mp4"),
        "b-frames-mp4": lambda: _av(
            *_LAVFI_V,
            *_LAVFI_A,
            *("-map", "0:v", "-map", "1:a", "-t", "2"),
            *("-c:v", "libx264", "-preset", "fast", "-bf", "3", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac"),
            out=d / "bframes.mp4",
        ),
        "b-frames-mkv": lambda: _av(
            *_LAVFI_V,
            *("-t", "2", "-c:v", "libx264", "-bf", "3", "-pix_fmt", "yuv420p"),
            out=d / "bframes.mkv",
        ),
        "b-frames-ts": lambda: _av(
            *_LAVFI_V,
            *_LAVFI_A,
            *("-map", "0:v", "-map", "1:a", "-t", "2"),
            *("-c:v", "libx264", "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "mp2"),
            out=d / "bframes.ts",
        ),
        "webm": lambda: _av(
            *_LAVFI_V,
            *_LAVFI_A,
            *("-map", "0:v", "-map", "1:a", "-t", "1"),
            *("-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"),
            out=d / "clip.webm",
        ),
        "h264": lambda: _av(*_LAVFI_V, "-t", "1", "-c:v", "libx264", out=d / "raw.h264"),
        "wav": lambda: _av(*_LAVFI_A, "-t", "1", out=d / "sound.wav"),
        "mp3": lambda: _av(*_LAVFI_A, "-t", "1", out=d / "sound.mp3"),
        "m4a": lambda: _av(*_LAVFI_A, "-t", "1", "-c:a", "aac", out=d / "call.m4a"),
        "flac": lambda: _av(*_LAVFI_A, "-t", "1", out=d / "sound.flac"),
        "ogg": lambda: _av(*_LAVFI_A, "-t", "1", out=d / "sound.ogg"),
        "opus": lambda: _av(*_LAVFI_A, "-t", "1", "-c:a", "libopus", out=d / "sound.opus"),
        "pcm-mov": lambda: _av(*_LAVFI_A, "-t", "1", "-c:a", "pcm_s16le", out=d / "pcm.mov"),
    }
    found = {k: make() for k, make in kinds.items()}
    cover = clips.make_still(d / "cover.png")
    found["cover-art-mp3"] = _av(
        "-i",
        found["mp3"],
        "-i",
        cover,
        *("-map", "0", "-map", "1", "-c", "copy"),
        *("-disposition:1", "attached_pic"),
        out=d / "cover.mp3",
    )
    found["cover-art-m4a"] = _av(
        "-i",
        found["m4a"],
        "-i",
        cover,
        *("-map", "0", "-map", "1", "-c", "copy"),
        *("-disposition:1", "attached_pic"),
        out=d / "cover.m4a",
    )
    # Streams beside audio and video: a timecode (data), an attachment, subtitles.
    found["timecode-mov"] = _av(
        "-i", orig, "-map", "0", "-c", "copy", "-timecode", "01:00:00:00", out=d / "tc.mov"
    )
    font = d / "font.ttf"
    font.write_bytes(b"not really a font\n")
    found["attachment-mkv"] = _av(
        "-i",
        orig,
        "-map",
        "0",
        "-c",
        "copy",
        "-attach",
        font,
        "-metadata:s:2",
        "mimetype=application/x-truetype-font",
        out=d / "att.mkv",
    )
    srt = d / "words.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    found["subtitles-mp4"] = _av(
        "-i",
        orig,
        "-i",
        srt,
        "-map",
        "0",
        "-map",
        "1",
        "-c",
        "copy",
        "-c:s",
        "mov_text",
        out=d / "subs.mp4",
    )
    found["subtitles-mkv"] = _av(
        "-i", orig, "-i", srt, "-map", "0", "-map", "1", "-c", "copy", out=d / "subs.mkv"
    )
    spliced = d / "spliced.mp4"
    clips.splice_reencoded(orig, spliced, 0.5, 1.0)
    found["spliced"] = spliced
    for codec, suffix in (("ffv1", ".mkv"), ("libx264", ".mkv"), ("libx264", ".mp4")):
        dst = d / f"redact-{codec}{suffix}"
        media.redact_lossless(
            orig,
            dst,
            box=(10, 10, 40, 30),
            frames=(3, 9),
            style="box",
            codec=codec,
            pix_fmt="yuv420p",
            name="camera.mp4",
        )
        found[f"redact-{codec}{suffix}"] = dst
    dst = d / "transcode.mp4"
    media.transcode(
        orig, dst, codec="libx264", crf=30, audio=("copy",), pix_fmt="yuv420p", name="camera.mp4"
    )
    found["transcode"] = dst
    found["truncated"] = clips.truncate(orig, d / "cut.mp4", 0.7)
    return found


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _kinds(tmp_path_factory.mktemp("kinds"))


KINDS = [
    "mp4", "mp4-moov-at-end", "mov", "mkv", "mkv-tags", "ts", "avi", "flv", "edited", "trim",
    "slow", "shifted", "b-frames-mp4", "b-frames-mkv", "b-frames-ts", "webm", "h264", "wav",
    "mp3", "m4a", "flac", "ogg", "opus", "pcm-mov", "cover-art-mp3", "cover-art-m4a",
    "spliced", "redact-ffv1.mkv", "redact-libx264.mkv", "redact-libx264.mp4", "transcode",
    "truncated", "timecode-mov", "attachment-mkv", "subtitles-mp4", "subtitles-mkv",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_in_process_packets_equal_the_ffmpeg_cli(kinds: dict[str, Path], kind: str) -> None:
    path = kinds[kind]
    measured = avmedia.measure(path)
    cli_stream, cli_frame = _cli(path, "streamhash"), _cli(path, "framehash")
    assert measured.streamhash == cli_stream
    assert measured.framehash == cli_frame  # byte for byte, side data and order included
    ours, theirs = parse_framehash(measured.framehash), parse_framehash(cli_frame)
    assert ours.streams == theirs.streams  # time base, media type, codec, extradata
    for mine, ref in zip(ours.packets, theirs.packets, strict=True):
        assert [(p.size, p.hash, p.dts, p.pts, p.duration) for p in mine] == [
            (p.size, p.hash, p.dts, p.pts, p.duration) for p in ref
        ]
    info = media.probe(path, strict=False)
    assert info is not None
    reference = MediaRecord(snapshot=info.snapshot, framehash=cli_frame, streamhash=cli_stream)
    assert info.content_digest == reference.content_digest
    assert info.streams == reference.streams


def _flatten(value: Any, at: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{at}.{k}" if at else k))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{at}[{i}]"))
        return out
    return {at: value}


# libavformat's own estimate of an MPEG-TS audio stream's bit rate; ffprobe's
# stream analysis ends on another packet and prints another estimate
# (docs/spec/media.md §4.2).
_ESTIMATES: set[tuple[str, str]] = set()


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_v2_fields_are_ffprobes(kinds: dict[str, Path], kind: str) -> None:
    path = kinds[kind]
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    ffprobe = _flatten(json.loads(out))
    ours = _flatten(avmedia.measure(path).document)
    assert ours, "the v2 document has fields"
    differ = {
        k: (v, ffprobe.get(k, "<absent>"))
        for k, v in ours.items()
        if ffprobe.get(k, "<absent>") != v and (kind, k) not in _ESTIMATES
    }
    assert differ == {}
    for key in ("format.format_name", "format.nb_streams", "streams[0].codec_type"):
        assert key in ours


def test_v2_snapshot_is_versioned_and_parses(kinds: dict[str, Path]) -> None:
    info = media.probe(kinds["mp4"])
    assert info is not None
    assert info.record.snapshot_version == SNAPSHOT_V2
    assert parse_snapshot(info.snapshot)["version"] == SNAPSHOT_V2
    streams = info.metadata["streams"]
    assert streams[0]["codec_name"] == "h264" and streams[0]["width"] == 160
    assert streams[0]["pix_fmt"] == "yuv420p" and streams[1]["channel_layout"] == "mono"
    assert info.metadata["format"]["tags"]["creation_time"] == clips.CREATION_TIME
    assert info.tool == media.ffmpeg_version()  # PyAV runs on the system FFmpeg


def test_cover_art_is_not_footage(kinds: dict[str, Path]) -> None:
    for kind in ("cover-art-mp3", "cover-art-m4a"):
        doc = avmedia.measure(kinds[kind]).document
        assert [s["disposition"]["attached_pic"] for s in doc["streams"]] == [0, 1]
        art_only = {"format": doc["format"], "streams": doc["streams"][1:]}
        assert not media._is_footage(art_only)  # the picture alone is not footage
        assert media._is_footage(doc)  # the sound is


def test_stills_and_text_are_not_media(tmp_path: Path) -> None:
    for still in (clips.make_still(tmp_path / "a.jpg"), clips.make_still(tmp_path / "b.png")):
        assert media.probe(still) is None
        assert media.probe(still, snapshot=SNAPSHOT_V1) is None
    assert media.probe(clips.write_sidecar_json(tmp_path / "export.json")) is None


def test_damaged_media_is_refused_when_strict(kinds: dict[str, Path], tmp_path: Path) -> None:
    cut = kinds["truncated"]
    # The first error libav reports, exactly the lines `ffmpeg -v error` prints.
    with pytest.raises(InputError, match=r"cut\.mp4 is damaged media: Invalid NAL unit size"):
        media.probe(cut)
    found = media.probe(cut, strict=False)
    assert found is not None and any("partial file" in p for p in found.problems)
    late = clips.truncate(kinds["mp4-moov-at-end"], tmp_path / "late.mp4", 0.5)
    with pytest.raises(InputError, match=r"late\.mp4 is not decodable media: moov atom"):
        media.probe(late)


def test_probing_from_many_threads_keeps_each_files_errors(kinds: dict[str, Path]) -> None:
    names = ["mp4", "truncated", "mkv", "truncated", "ts", "wav", "truncated", "mov"] * 3
    results: dict[int, tuple[str, ...] | None] = {}

    def work(i: int, kind: str) -> None:
        info = media.probe(kinds[kind], strict=False)
        results[i] = None if info is None else info.problems

    threads = [threading.Thread(target=work, args=(i, k)) for i, k in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, kind in enumerate(names):
        problems = results[i]
        assert problems is not None
        if kind == "truncated":
            assert any("partial file" in p for p in problems)
        else:
            assert problems == ()


def test_tool_is_the_loaded_libavutil() -> None:
    assert avmedia.library_tool().startswith("ffmpeg ")
    assert avmedia.library_tool() == media.ffmpeg_version()


def test_rescale_matches_libavutil_rounding() -> None:
    from fractions import Fraction

    # av_rescale_q rounds to nearest, halves away from zero.
    assert avmedia.rescale_q(-1, Fraction(1, 1000000), Fraction(1, 2)) == 0
    assert avmedia.rescale_q(250000, Fraction(1, 1000000), Fraction(1, 2)) == 1
    assert avmedia.rescale_q(-250000, Fraction(1, 1000000), Fraction(1, 2)) == -1
    assert avmedia.rescale_q(-66666, Fraction(1, 1000000), Fraction(1, 15360)) == -1024


def test_a_v1_record_still_verifies_identical(kinds: dict[str, Path]) -> None:
    # An entry written the old way: ffprobe's snapshot, the CLI's framehash/streamhash.
    path = kinds["mp4"]
    out = subprocess.run(
        [
            *("ffprobe", "-hide_banner", "-v", "error", "-protocol_whitelist", "file"),
            *("-show_format", "-show_streams", "-of", "json", f"file:{path.resolve()}"),
        ],
        capture_output=True,
        check=True,
    ).stdout
    old = MediaRecord(
        snapshot=snapshot_bytes(json.loads(out), SNAPSHOT_V1),
        framehash=_cli(path, "framehash"),
        streamhash=_cli(path, "streamhash"),
    )
    assert old.snapshot_version == SNAPSHOT_V1
    again = media.probe(path, strict=False, snapshot=old.snapshot_version)
    assert again is not None
    assert (again.metadata_digest, again.content_digest) == (
        old.metadata_digest,
        old.content_digest,
    )
    assert again.framehash == old.framehash and again.streamhash == old.streamhash
    size = path.stat().st_size
    other = Record("0" * 64, size, again.record)
    assert classify(Record("f" * 64, size, old), other).to_json()["verdict"] == "same-content"
    # Measured in v2 instead, the snapshots differ: versions must never be mixed.
    now = media.probe(path)
    assert now is not None and now.metadata_digest != old.metadata_digest
    assert now.content_digest == old.content_digest


def test_measurements_are_cached_per_version(kinds: dict[str, Path]) -> None:
    measured = media.Measurements(kinds["mkv"])
    v2 = measured.get()
    v1 = measured.get(SNAPSHOT_V1)
    assert v1 is not None and v2 is not None
    assert measured.get() is v2 and measured.get(SNAPSHOT_V1) is v1
    assert v1.record.snapshot_version == SNAPSHOT_V1 and v2.record.snapshot_version == SNAPSHOT_V2
    assert v1.content_digest == v2.content_digest
