"""Court-report thumbnails taken in-process (`custody.infra.ffmpeg.thumbnails`).

On real clips made with ffmpeg: the JPEG bytes, their size, the frames' times (a clip
of solid colours, one per second), cover art, sound-only and damaged files, the very
bytes the ffmpeg command the report used to run writes, and that an export's two
report builds take each item's frames once.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
from pathlib import Path

import av
import clips
import pytest
from conftest import invoke

from custody.app.home import Custody
from custody.errors import InputError
from custody.infra import ffmpeg as media
from custody.report import court

# One second each, in this order: a frame's mean colour tells the second it is from.
COLOURS = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "white": (255,) * 3}


def _colours(path: Path, size: str = "176x100", rate: int = 25, *args: str) -> Path:
    """Solid colour seconds (lavfi `color` sources concatenated), H.264 in `path`."""
    inputs: list[str] = []
    for name in COLOURS:
        inputs += ["-f", "lavfi", "-i", f"color=c={name}:size={size}:rate={rate}:duration=1"]
    n = len(COLOURS)
    joined = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    clips.ffmpeg(
        *inputs,
        *("-filter_complex", joined, "-map", "[v]"),
        *("-c:v", clips.video_encoder(), "-pix_fmt", "yuv420p", "-g", str(rate)),
        *args,
        path,
    )
    return path


def _mean_rgb(jpeg: bytes) -> tuple[float, float, float]:
    """The mean colour of a JPEG, decoded with PyAV."""
    with av.open(io.BytesIO(jpeg)) as container:
        frame = next(container.decode(video=0)).reformat(format="rgb24")
    data = bytes(frame.planes[0])
    line = frame.planes[0].line_size
    pixels = [
        data[y * line + x * 3 : y * line + x * 3 + 3]
        for y in range(frame.height)
        for x in range(frame.width)
    ]
    return tuple(sum(p[i] for p in pixels) / len(pixels) for i in range(3))  # type: ignore[return-value]


def _colour_of(jpeg: bytes) -> str:
    mean = _mean_rgb(jpeg)
    name, ref = min(
        COLOURS.items(), key=lambda kv: sum((a - b) ** 2 for a, b in zip(kv[1], mean, strict=True))
    )
    assert sum((a - b) ** 2 for a, b in zip(ref, mean, strict=True)) < 30**2, (name, mean)
    return name


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's start-of-frame segment."""
    assert jpeg.startswith(b"\xff\xd8")
    at = 2
    while at < len(jpeg):
        marker, length = jpeg[at + 1], int.from_bytes(jpeg[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(jpeg[at + 5 : at + 7], "big")
            return int.from_bytes(jpeg[at + 7 : at + 9], "big"), height
        at += 2 + length
    raise AssertionError("no SOF segment")


def _ffmpeg_frames(path: Path, count: int, width: int) -> list[bytes]:
    """What the report's thumbnails were before: one ffmpeg run per frame."""
    doc = clips.ffprobe_json(path, "-show_format", "-show_streams")
    footage = [
        s
        for s in doc["streams"]
        if s["codec_type"] == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    duration = float(doc["format"].get("duration") or footage[0].get("duration") or 0)
    times = [duration * (i + 0.5) / count for i in range(count)] if duration > 0 else [0.0]
    out = []
    for at in times:
        run = subprocess.run(
            [
                *("ffmpeg", "-nostdin", "-v", "error", "-ss", f"{at:.3f}", "-i", str(path)),
                *("-map", f"0:{footage[0]['index']}", "-frames:v", "1"),
                *("-vf", f"scale={width}:-2", "-c:v", "mjpeg", "-q:v", "4"),
                *("-f", "image2pipe", "pipe:1"),
            ],
            capture_output=True,
            check=False,
        )
        if run.returncode == 0 and run.stdout.startswith(b"\xff\xd8"):
            out.append(run.stdout)
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("thumbnails")
    colours = _colours(d / "colours.mp4")
    found = {
        "colours": colours,
        "camera": clips.make_clip(d / "camera.mp4", seconds=2.0, size="160x120"),
        "long": clips.make_clip(d / "long.mp4", seconds=4.0, frequency=660),
    }
    found["sound"] = d / "sound.m4a"
    clips.ffmpeg("-i", found["camera"], "-map", "0:a", "-c", "copy", found["sound"])
    # Footage (blue) with cover art (a red picture marked attached_pic), and sound
    # with the same cover: the picture is not footage.
    cover = d / "cover.png"
    clips.ffmpeg("-f", "lavfi", "-i", "color=c=red:size=64x64", "-frames:v", "1", cover)
    blue = d / "blue.mp4"
    clips.ffmpeg(
        *("-f", "lavfi", "-i", "color=c=blue:size=160x120:rate=15:duration=2"),
        *("-c:v", clips.video_encoder(), "-pix_fmt", "yuv420p"),
        blue,
    )
    for name, source, kind in (("cover", blue, "v"), ("sound-cover", found["sound"], "a")):
        found[name] = d / f"{name}.{'mp4' if kind == 'v' else 'm4a'}"
        clips.ffmpeg(
            *("-i", source, "-i", cover, "-map", f"0:{kind}", "-map", "1"),
            *("-c", "copy", "-disposition:1", "attached_pic"),
            found[name],
        )
    # Other containers, B-frames, a display matrix: what the old command wrote, exactly.
    bframes = d / "bframes.mkv"
    clips.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "3"),
        *("-c:v", clips.video_encoder(), "-g", "25", "-pix_fmt", "yuv420p"),
        bframes,
    )
    found["bframes-mkv"] = bframes
    for ext in ("flv", "ts"):
        found[f"bframes-{ext}"] = d / f"bframes.{ext}"
        clips.ffmpeg("-i", bframes, "-c", "copy", found[f"bframes-{ext}"])
    found["mpeg4-avi"] = d / "mpeg4.avi"
    clips.ffmpeg("-i", bframes, "-c:v", "mpeg4", found["mpeg4-avi"])
    found["rotated"] = d / "rotated.mp4"
    clips.ffmpeg(
        "-i", found["camera"], "-c", "copy", "-metadata:s:v", "rotate=90", found["rotated"]
    )
    found["anamorphic"] = d / "anamorphic.mp4"
    clips.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-vf", "setsar=4/3"),
        *("-c:v", clips.video_encoder(), "-pix_fmt", "yuv420p"),
        found["anamorphic"],
    )
    found["raw"] = d / "colours.h264"
    clips.ffmpeg("-i", colours, "-c", "copy", "-f", "h264", found["raw"])
    found["text"] = clips.write_csv(d / "export-log.csv")
    found["junk"] = d / "junk.mp4"
    found["junk"].write_bytes(bytes(range(256)) * 64)
    return found


def test_frames_are_jpegs_of_the_width_with_an_even_height(made: dict[str, Path]) -> None:
    frames = media.thumbnails(made["colours"], 4, 90)  # 176x100 at 90 wide: 51.1 -> 52
    assert len(frames) == 4
    assert all(f.startswith(b"\xff\xd8") for f in frames)
    assert {_jpeg_size(f) for f in frames} == {(90, 52)}
    # ffprobe agrees with the header read above.
    jpeg = made["colours"].with_name("frame.jpg")
    jpeg.write_bytes(frames[0])
    stream = clips.ffprobe_json(jpeg, "-show_streams")["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 90, 52)
    assert {_jpeg_size(f) for f in media.thumbnails(made["camera"], 2, 160)} == {(160, 120)}


def test_count_frames(made: dict[str, Path]) -> None:
    for count in (1, 3, 5):
        frames = media.thumbnails(made["long"], count, 64)
        assert len(frames) == count
        assert len(set(frames)) == count  # different moments of the clip
    with pytest.raises(InputError, match="count >= 1"):
        media.thumbnails(made["long"], 0, 64)
    with pytest.raises(InputError, match="width >= 2"):
        media.thumbnails(made["long"], 2, 1)


def test_frames_are_taken_at_the_middle_of_each_span(made: dict[str, Path]) -> None:
    # 4 s, one colour a second: spans of 1 s, middles at 0.5, 1.5, 2.5 and 3.5 s.
    frames = media.thumbnails(made["colours"], 4, 64)
    assert [_colour_of(f) for f in frames] == list(COLOURS)
    # Two spans of 2 s: at 1.0 s and 3.0 s exactly, the first frame at or after each
    # is the first frame of the second and of the fourth colour.
    assert [_colour_of(f) for f in media.thumbnails(made["colours"], 2, 64)] == ["lime", "white"]
    # Eight spans: 0.25, 0.75, ... 3.75 s, two frames per colour.
    eight = [_colour_of(f) for f in media.thumbnails(made["colours"], 8, 32)]
    assert eight == [c for c in COLOURS for _ in range(2)]


def test_without_a_duration_one_frame_at_the_start(made: dict[str, Path]) -> None:
    # A raw H.264 stream gives no duration (and cannot seek): one frame, its first.
    frames = media.thumbnails(made["raw"], 4, 64)
    assert len(frames) == 1 and _colour_of(frames[0]) == "red"


def test_sound_only_media_has_no_frames(made: dict[str, Path]) -> None:
    assert media.thumbnails(made["sound"]) == []


def test_cover_art_is_not_the_footage(made: dict[str, Path]) -> None:
    for kind in ("cover", "sound-cover"):
        streams = clips.ffprobe_json(made[kind], "-show_streams")["streams"]
        assert [s["disposition"]["attached_pic"] for s in streams] == [0, 1]
    frames = media.thumbnails(made["cover"], 3, 64)
    assert len(frames) == 3 and {_colour_of(f) for f in frames} == {"blue"}
    assert media.thumbnails(made["sound-cover"], 3, 64) == []  # sound with a picture


def test_truncated_clip_gives_the_frames_before_the_damage(
    made: dict[str, Path], tmp_path: Path
) -> None:
    whole = media.thumbnails(made["long"], 4, 64)
    cut = clips.truncate(made["long"], tmp_path / "cut.mp4", 0.6)  # index first: readable
    frames = media.thumbnails(cut, 4, 64, name="cut.mp4")
    assert 1 <= len(frames) < 4
    assert frames == whole[: len(frames)]  # the frames before the damage, unchanged
    # Cut inside the index: nothing to show, and the message names the file.
    head = clips.truncate(made["long"], tmp_path / "head.mp4", 0.01)
    with pytest.raises(InputError, match=r"^head\.mp4"):
        media.thumbnails(head, 4, 64, name="head.mp4")


def test_not_media_is_an_input_error_naming_the_file(made: dict[str, Path]) -> None:
    with pytest.raises(InputError, match=r"^export-log\.csv is not media"):
        media.thumbnails(made["text"], name="export-log.csv")
    with pytest.raises(InputError, match=r"^junk\.mp4 is not decodable media"):
        media.thumbnails(made["junk"], name="junk.mp4")


@pytest.mark.parametrize(
    "kind",
    [
        "camera",
        "colours",
        "bframes-mkv",
        "bframes-flv",
        "bframes-ts",
        "mpeg4-avi",
        "rotated",
        "anamorphic",
        "cover",
    ],
)
def test_the_bytes_of_the_ffmpeg_command(made: dict[str, Path], kind: str) -> None:
    """Seek, frame choice, autorotation, scaling and JPEG encoding are ffmpeg's own."""
    assert media.thumbnails(made[kind], 4, 96) == _ffmpeg_frames(made[kind], 4, 96)


def test_rotated_clip_is_shown_upright(made: dict[str, Path]) -> None:
    frames = media.thumbnails(made["rotated"], 2, 90)  # 160x120 turned: 90x120
    assert {_jpeg_size(f) for f in frames} == {(90, 120)}


def test_threads_take_the_same_frames(made: dict[str, Path]) -> None:
    kinds = ["camera", "colours", "long", "bframes-flv", "cover", "rotated"] * 3
    serial = {k: media.thumbnails(made[k], 4, 64) for k in set(kinds)}
    results: dict[int, list[bytes]] = {}

    def take(i: int, kind: str) -> None:
        results[i] = media.thumbnails(made[kind], 4, 64)

    threads = [threading.Thread(target=take, args=(i, k)) for i, k in enumerate(kinds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(kinds))] == [serial[k] for k in kinds]


def test_an_export_takes_each_items_frames_once(
    made: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in (
        ("init", "--origin", "test.example/custody"),
        ("key", "new", "bob", "--role", "agency", "--org", "Metro Police"),
        ("case", "new", "C1", "--title", "thumbs"),
    ):
        assert invoke(*args).code == 0
    src = tmp_path / "export"
    src.mkdir()
    for kind in ("camera", "colours"):
        shutil.copy(made[kind], src / made[kind].name)
    ingest = invoke("ingest", str(src), "--case", "C1", "--by", "bob", "--legal-basis", "warrant")
    assert ingest.code == 0, ingest
    taken: list[Path] = []
    real = media.thumbnails

    def counting(path: Path, count: int = 4, width: int = 160, *, name: str | None = None):  # type: ignore[no-untyped-def]
        taken.append(path)
        return real(path, count, width, name=name)

    monkeypatch.setattr(court.media, "thumbnails", counting)
    with Custody.open() as c:
        html = tmp_path / "report.html"
        pdf = tmp_path / "report.pdf"
        court.write_report(c, "C1", "html", html)
        court.write_report(c, "C1", "pdf", pdf)
        first = court.build_report(c, "C1")
    assert len(taken) == 2 and len(set(taken)) == 2  # once per item, not once per format
    assert sorted(len(i.thumbnails) for i in first.items) == [4, 4]
    # Another opened home takes them again (the cache lives as long as the `Custody`).
    with Custody.open() as c:
        again = court.build_report(c, "C1")
    assert len(taken) == 4
    assert [i.thumbnails for i in again.items] == [i.thumbnails for i in first.items]
    assert html.read_bytes().startswith(b"<!") and pdf.read_bytes().startswith(b"%PDF")
