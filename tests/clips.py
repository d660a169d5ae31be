"""Real test clips, generated with ffmpeg: never mocks of ffprobe.

Every function writes a real file (tiny: 160x120, a few seconds, x264
ultrafast) and returns its path, so the tests exercise the same ffprobe/ffmpeg
code paths as real footage.  The clips look like a doorbell or phone export:
H.264 + AAC in MP4, with ``creation_time`` and Apple-style device tags
(``com.apple.quicktime.make`` / ``model`` / ``location.ISO6709``).

Usable directly or from pytest fixtures, e.g.::

    @pytest.fixture(scope="session")
    def clip(tmp_path_factory):
        return clips.make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CREATION_TIME = "2024-03-01T10:00:00.000000Z"
MAKE = "Acme"
MODEL = "DoorCam 2"
LOCATION = "+51.5074-000.1278/"


def ffmpeg(*args: str | Path) -> None:
    """Run ffmpeg quietly; raise RuntimeError with its stderr if it fails."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}\n{result.stderr}")


def ffprobe_json(path: Path, *args: str) -> dict[str, Any]:
    """ffprobe's JSON for `path` with extra arguments (e.g. ``-show_packets``)."""
    cmd = ["ffprobe", "-v", "error", *args, "-of", "json", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


@functools.cache
def video_encoder() -> str:
    """libx264 where ffmpeg has it (Debian's does), else the built-in mpeg4."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    return "libx264" if " libx264 " in out else "mpeg4"


def _video_codec_args(rate: int, gop: int) -> list[str]:
    # A fixed GOP (keyframe every `gop` frames, no scene-cut keyframes, no B-frames)
    # makes keyframe positions predictable, which the splice and trim helpers need.
    common = ["-pix_fmt", "yuv420p", "-g", str(gop), "-bf", "0", "-r", str(rate)]
    if video_encoder() == "libx264":
        return ["-c:v", "libx264", "-preset", "ultrafast", "-sc_threshold", "0", *common]
    return ["-c:v", "mpeg4", "-q:v", "5", *common]


def make_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    creation_time: str | None = CREATION_TIME,
    make: str | None = MAKE,
    model: str | None = MODEL,
    location: str | None = LOCATION,
    pattern: str = "testsrc2",
    frequency: int = 440,
    size: str = "160x120",
    rate: int = 15,
    gop: int = 15,
    faststart: bool = True,
) -> Path:
    """An H.264 + AAC MP4 like a camera export, with creation_time and device tags.

    `pattern` is a lavfi video source (testsrc2, testsrc, smptebars, mandelbrot,
    rgbtestsrc); use another pattern/frequency for an unrelated clip.  With
    `faststart` the index (moov) comes first, so a truncated copy stays readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = "+use_metadata_tags" + ("+faststart" if faststart else "")
    tags: list[str] = []
    if creation_time is not None:
        tags += ["-metadata", f"creation_time={creation_time}"]
    if make is not None:
        tags += ["-metadata", f"com.apple.quicktime.make={make}"]
    if model is not None:
        tags += ["-metadata", f"com.apple.quicktime.model={model}"]
    if location is not None:
        tags += ["-metadata", f"com.apple.quicktime.location.ISO6709={location}"]
    ffmpeg(
        *("-f", "lavfi", "-i", f"{pattern}=size={size}:rate={rate}"),
        *("-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=44100"),
        *("-map", "0:v", "-map", "1:a", "-t", f"{seconds}"),
        *_video_codec_args(rate, gop),
        *("-c:a", "aac", "-b:a", "64k"),
        *("-movflags", flags),
        *tags,
        path,
    )
    return path


def remux(src: Path, dst: Path, *, keep_tags: bool = False) -> Path:
    """Stream-copy `src` into the container named by `dst`'s extension (.mkv, .mov, .mp4).

    Like a user's plain ``ffmpeg -i a.mp4 -c copy b.mov``: MP4/MOV output drops
    custom tags unless `keep_tags`.
    """
    keep = keep_tags and dst.suffix in (".mp4", ".mov")
    extra = ["-movflags", "use_metadata_tags"] if keep else []
    ffmpeg("-i", src, "-map", "0", "-c", "copy", "-map_metadata", "0", *extra, dst)
    return dst


def edit_metadata(src: Path, dst: Path, *, creation_time: str | None = None, **tags: str) -> Path:
    """Stream-copy `src` with edited container tags (e.g. a forged creation_time).

    The packets are untouched; every other tag is kept.
    """
    args: list[str] = []
    if creation_time is not None:
        args += ["-metadata", f"creation_time={creation_time}"]
    for key, value in tags.items():
        args += ["-metadata", f"{key}={value}"]
    flags = ["-movflags", "use_metadata_tags"] if dst.suffix in (".mp4", ".mov") else []
    ffmpeg("-i", src, "-map", "0", "-c", "copy", "-map_metadata", "0", *flags, *args, dst)
    return dst


def keyframes(path: Path, stream: str = "v:0") -> list[float]:
    """Presentation times (s) of the keyframes of a stream."""
    doc = ffprobe_json(
        path, "-select_streams", stream, "-show_entries", "packet=pts_time,flags", "-show_packets"
    )
    return [float(p["pts_time"]) for p in doc["packets"] if "K" in p.get("flags", "")]


def duration(path: Path) -> float:
    """The container's duration in seconds."""
    return float(ffprobe_json(path, "-show_format")["format"]["duration"])


def splice_reencoded(src: Path, dst: Path, start: float, end: float) -> tuple[float, float]:
    """Replace the video of [start, end) with a re-encoded, visibly altered version.

    What a forger with ffmpeg does: the span is widened to keyframes (a GOP cannot
    be cut in the middle without re-encoding it), decoded, altered (colours
    inverted) and re-encoded with the same settings; the video before and after
    is stream-copied, as is all of the audio.  Returns the replaced span (s).
    """
    kfs = keyframes(src)
    total = duration(src)
    k0 = max([k for k in kfs if k <= start + 1e-6], default=0.0)
    k1 = min([k for k in kfs if k >= end - 1e-6], default=total)
    work = dst.parent / f".{dst.stem}-splice"
    work.mkdir(exist_ok=True)
    try:
        rate = ffprobe_json(src, "-show_streams", "-select_streams", "v:0")["streams"][0]
        fps = rate["r_frame_rate"]
        middle = work / "middle.mp4"
        ffmpeg(
            *("-ss", f"{k0}", "-to", f"{k1}", "-i", src),
            *("-map", "0:v", "-vf", "negate"),
            *_video_codec_args(round(eval_fraction(fps)), 10_000),
            middle,
        )
        lines = ["ffconcat version 1.0"]
        if k0 > 0:
            lines += [f"file '{src.resolve()}'", "inpoint 0", f"outpoint {k0}"]
        lines += [f"file '{middle.resolve()}'"]
        if k1 < total:
            lines += [f"file '{src.resolve()}'", f"inpoint {k1}"]
        listing = work / "list.ffconcat"
        listing.write_text("\n".join(lines) + "\n")
        ffmpeg(
            # auto_convert off: it would rewrite H.264 to Annex B and put parameter
            # sets into every keyframe, changing packets the forger did not touch.
            *("-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", listing, "-i", src),
            *("-map", "0:v", "-map", "1:a", "-c", "copy", "-map_metadata", "1"),
            *("-movflags", "use_metadata_tags"),
            dst,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return k0, k1


def eval_fraction(text: str) -> float:
    """``"15/1"`` -> 15.0."""
    num, _, den = text.partition("/")
    return float(num) / float(den or 1)


def trim_copy(src: Path, dst: Path, start: float, end: float) -> Path:
    """A stream-copy excerpt of [start, end): how custody's own trim works.

    Input seeking with ``-c copy`` starts at the keyframe at or before `start`;
    every packet is copied unchanged.
    """
    ffmpeg(
        *("-ss", f"{start}", "-i", src, "-t", f"{end - start}"),
        *("-map", "0", "-c", "copy", "-map_metadata", "0"),
        *("-movflags", "use_metadata_tags"),
        dst,
    )
    return dst


def slow_down(src: Path, dst: Path, factor: float = 2.0) -> Path:
    """Stream-copy with the video's timestamps stretched: the same packets, played slower."""
    ffmpeg(
        *("-itsscale:v", f"{factor}", "-i", src),
        *("-map", "0", "-c", "copy", "-map_metadata", "0", "-movflags", "use_metadata_tags"),
        dst,
    )
    return dst


def shift_video(src: Path, dst: Path, seconds: float = 1.0) -> Path:
    """Stream-copy with the video moved `seconds` later against the sound (A/V desync)."""
    ffmpeg(
        *("-itsoffset", f"{seconds}", "-i", src, "-i", src),
        *("-map", "0:v", "-map", "1:a", "-c", "copy", "-map_metadata", "1"),
        *("-movflags", "use_metadata_tags"),
        dst,
    )
    return dst


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    """The first `fraction` of `src`'s bytes: an interrupted copy or download."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@dataclass(frozen=True)
class FlippedBit:
    """Where `flip_bit` changed the file: byte offset, the stream's packet number, its time."""

    offset: int
    stream: int
    packet: int
    time: float


def flip_bit(
    src: Path, dst: Path, *, stream: int = 0, packet: int | None = None, bit: int = 0
) -> FlippedBit:
    """Copy `src` with one bit flipped inside the payload of one packet.

    The packet's file position comes from ``ffprobe -show_packets``; the bit is
    flipped in the middle of its payload (past the NAL header), so the file still
    parses and the change is a content change, not a broken header.  By default
    the middle packet of the stream is hit.
    """
    doc = ffprobe_json(
        src,
        *("-select_streams", str(stream)),
        *("-show_entries", "packet=pts_time,pos,size", "-show_packets"),
    )
    listed = doc["packets"]
    index = len(listed) // 2 if packet is None else packet
    chosen = listed[index]
    offset = int(chosen["pos"]) + int(chosen["size"]) // 2
    data = bytearray(src.read_bytes())
    data[offset] ^= 1 << bit
    dst.write_bytes(bytes(data))
    return FlippedBit(offset=offset, stream=stream, packet=index, time=float(chosen["pts_time"]))


def write_sidecar_json(path: Path) -> Path:
    """A non-media export sidecar, as doorbell and DVR exports carry."""
    path.write_text(
        json.dumps(
            {
                "device": {"make": MAKE, "model": MODEL, "serial": "AC-0001"},
                "export": {"created": "2024-03-02T09:15:00Z", "operator": "owner"},
                "clips": [{"file": "clip.mp4", "start": CREATION_TIME}],
            },
            indent=2,
        )
        + "\n"
    )
    return path


def write_csv(path: Path) -> Path:
    """A non-media export log in CSV."""
    path.write_text("time,event\n2024-03-01T10:00:00Z,motion\n")
    return path


def make_still(path: Path) -> Path:
    """A single JPEG or PNG frame (by extension): an attachment, not footage."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120", "-frames:v", "1", path)
    return path
