"""In-process media measurement with PyAV: no process per file (docs/spec/media.md §4-§5).

`measure(path)` opens a file with libavformat (through PyAV, built against the
system FFmpeg, so the very libraries the ``ffmpeg``/``ffprobe`` binaries use),
demuxes every packet once and returns:

- ``streamhash`` and ``framehash`` bytes as ``ffmpeg -map 0 -c copy -f
  streamhash|framehash -hash sha256`` writes them, emulating what ffmpeg's stream
  copy does to packets (drop each stream's packets before its first keyframe, shift
  timestamps by the container's start time, audio dts re-derivation, the muxer's
  dts fix-ups);
- the ffprobe-like document of the ``custody/snapshot/v2`` metadata snapshot;
- the error lines libav logged while reading (a truncated MP4's "partial file").

`thumbnails(path, count, width)` takes a court report's JPEG frames of a clip the
same way, in-process: one open, a seek and a short decode per frame.

PyAV is imported inside the functions (``import av`` costs ~100 ms, and
``custody --help`` must stay fast).  Thread-safe: several threads may measure at
once (ingest ``--jobs``); libav's log lines are captured per thread.

PyAV 12 does not expose a stream's ``disposition`` or ``sample_aspect_ratio``; they
are read from the ``AVStream`` struct (``libavformat`` 59 layout) behind PyAV's
stream object, and the read is checked against the fields PyAV does expose
(index, time base, start time, duration, frame count): a mismatch is an error,
never a guess.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import threading
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from custody.errors import CustodyError

__all__ = ["Measured", "OpenFailed", "Thumbnails", "library_tool", "measure", "thumbnails"]

NOPTS = -(2**63)
_AV_TIME_BASE = 1_000_000

# AV_DISPOSITION_* bits in the order ffprobe 5.1 prints them.
DISPOSITIONS: tuple[tuple[str, int], ...] = (
    ("default", 0x1),
    ("dub", 0x2),
    ("original", 0x4),
    ("comment", 0x8),
    ("lyrics", 0x10),
    ("karaoke", 0x20),
    ("forced", 0x40),
    ("hearing_impaired", 0x80),
    ("visual_impaired", 0x100),
    ("clean_effects", 0x200),
    ("attached_pic", 0x400),
    ("timed_thumbnails", 0x800),
    ("captions", 0x10000),
    ("descriptions", 0x20000),
    ("metadata", 0x40000),
    ("dependent", 0x80000),
    ("still_image", 0x100000),
)
_LETTERS = {"video": "v", "audio": "a", "subtitle": "s", "data": "d", "attachment": "t"}


class OpenFailed(Exception):
    """libavformat cannot open the file as media; `reason` is its last error line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Measured:
    """One in-process measurement: the sidecar bytes, the snapshot document, errors."""

    framehash: bytes
    streamhash: bytes
    document: dict[str, Any]  # {"format": {...}, "streams": [...]}, ffprobe's key names
    problems: tuple[str, ...]


# ---------------------------------------------------------------------------------
# libav's own functions, through ctypes on the libraries PyAV loaded.


def _loaded_library(stem: str) -> str:
    """The path of the loaded shared library whose file name starts with `stem`."""
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6:
                path = parts[5].strip()
                if os.path.basename(path).startswith(stem + ".so"):
                    return path
    raise CustodyError(f"PyAV is loaded but {stem} is not mapped: cannot identify the FFmpeg build")


@functools.cache
def _libs() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    import av  # noqa: F401  (loads libavutil/libavcodec into the process)

    util = ctypes.CDLL(_loaded_library("libavutil"))
    codec = ctypes.CDLL(_loaded_library("libavcodec"))
    util.av_version_info.restype = ctypes.c_char_p
    util.av_version_info.argtypes = []
    codec.avcodec_get_name.restype = ctypes.c_char_p
    codec.avcodec_get_name.argtypes = [ctypes.c_int]
    util.av_get_pix_fmt_name.restype = ctypes.c_char_p
    util.av_get_pix_fmt_name.argtypes = [ctypes.c_int]
    util.av_channel_layout_describe.restype = ctypes.c_int
    util.av_channel_layout_describe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    util.av_channel_layout_from_mask.restype = ctypes.c_int
    util.av_channel_layout_from_mask.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    util.av_channel_layout_default.restype = None
    util.av_channel_layout_default.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return util, codec


@functools.cache
def library_tool() -> str:
    """``"ffmpeg " + av_version_info()`` of the libavutil PyAV loaded.

    With the system build, e.g. ``ffmpeg 5.1.9-0+deb12u1``: the string
    `custody.infra.ffmpeg.ffmpeg_version` gives for the ffmpeg binary.
    """
    util, _ = _libs()
    version = util.av_version_info()
    if not version:
        raise CustodyError("libavutil reports no version")
    return "ffmpeg " + bytes(version).decode("ascii", "replace")


def _versions() -> tuple[str, dict[str, tuple[int, int, int]]]:
    """PyAV's version and the versions of the libav* libraries it loaded."""
    from av._core import library_versions
    from av.about import __version__

    return str(__version__), dict(library_versions)


@functools.cache
def _software() -> str:
    major, minor, micro = _versions()[1]["libavformat"]
    return f"Lavf{major}.{minor}.{micro}"


# AVStream (libavformat 59, FFmpeg 5.1): int index; int id; void *priv_data;
# AVRational time_base; int64 start_time; int64 duration; int64 nb_frames;
# int disposition; enum discard; AVRational sample_aspect_ratio; ...
class _AVStream59(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_int),
        ("id", ctypes.c_int),
        ("priv_data", ctypes.c_void_p),
        ("tb_num", ctypes.c_int),
        ("tb_den", ctypes.c_int),
        ("start_time", ctypes.c_int64),
        ("duration", ctypes.c_int64),
        ("nb_frames", ctypes.c_int64),
        ("disposition", ctypes.c_int),
        ("discard", ctypes.c_int),
        ("sar_num", ctypes.c_int),
        ("sar_den", ctypes.c_int),
        ("metadata", ctypes.c_void_p),
        ("avg_num", ctypes.c_int),
        ("avg_den", ctypes.c_int),
    ]


_R_FRAME_RATE_AT = 200  # AVStream.r_frame_rate (offsetof, libavformat 59)


# AVStream.codecpar (libavformat 59), and AVCodecParameters (libavcodec 59): offsets
# checked against the headers with offsetof.
_CODECPAR_AT = 208


class _CodecPar59(ctypes.Structure):
    _fields_ = [
        ("codec_type", ctypes.c_int),  # 0
        ("codec_id", ctypes.c_int),  # 4
        ("codec_tag", ctypes.c_uint32),  # 8
        ("extradata", ctypes.c_void_p),  # 16
        ("extradata_size", ctypes.c_int),  # 24
        ("format", ctypes.c_int),  # 28
        ("bit_rate", ctypes.c_int64),  # 32
        ("bits_per_coded_sample", ctypes.c_int),  # 40
        ("bits_per_raw_sample", ctypes.c_int),  # 44
        ("profile", ctypes.c_int),  # 48
        ("level", ctypes.c_int),  # 52
        ("width", ctypes.c_int),  # 56
        ("height", ctypes.c_int),  # 60
        ("sar_num", ctypes.c_int),  # 64
        ("sar_den", ctypes.c_int),  # 68
        ("field_order", ctypes.c_int),  # 72
        ("color_range", ctypes.c_int),  # 76
        ("color_primaries", ctypes.c_int),  # 80
        ("color_trc", ctypes.c_int),  # 84
        ("color_space", ctypes.c_int),  # 88
        ("chroma_location", ctypes.c_int),  # 92
        ("video_delay", ctypes.c_int),  # 96
        ("legacy_layout", ctypes.c_uint64),  # 104 (channel_layout, deprecated)
        ("legacy_channels", ctypes.c_int),  # 112
        ("sample_rate", ctypes.c_int),  # 116
        ("block_align", ctypes.c_int),  # 120
        ("frame_size", ctypes.c_int),  # 124
        ("initial_padding", ctypes.c_int),  # 128
        ("trailing_padding", ctypes.c_int),  # 132
        ("seek_preroll", ctypes.c_int),  # 136
        ("layout_order", ctypes.c_int),  # 144 (ch_layout.order; 0: unspecified)
        ("nb_channels", ctypes.c_int),  # 148 (ch_layout.nb_channels)
    ]


_PAR_LAYOUT_AT = 144  # &codecpar->ch_layout, for av_channel_layout_describe
_ORDER_UNSPEC, _ORDER_NATIVE = 0, 1


class _ChannelLayout(ctypes.Structure):
    """AVChannelLayout: order, nb_channels, u (mask or map pointer), opaque."""

    _fields_ = [
        ("order", ctypes.c_int),
        ("nb_channels", ctypes.c_int),
        ("mask", ctypes.c_uint64),
        ("opaque", ctypes.c_void_p),
    ]


def _describe(layout: Any) -> str:
    util, _ = _libs()
    buf = ctypes.create_string_buffer(256)
    if util.av_channel_layout_describe(layout, buf, 256) < 0:
        return ""
    return buf.value.decode("ascii", "replace")


def _audio_layout(par: _CodecPar59, par_at: int) -> tuple[int, int, str, str]:
    """(order, channels, layout as ffprobe names it, as the ffmpeg CLI's copy names it).

    avcodec_parameters_to_context (FFmpeg 5.1) prefers the deprecated channels /
    channel_layout fields where they disagree with ch_layout (the WAV demuxer sets
    only those); the CLI gives a layout of unspecified order the default layout for
    its channel count (guess_input_channel_layout), which framehash prints.
    """
    util, _ = _libs()
    inconsistent = (par.legacy_channels and par.legacy_channels != par.nb_channels) or (
        par.legacy_layout
        and (
            par.layout_order != _ORDER_NATIVE
            or _ChannelLayout.from_address(par_at + _PAR_LAYOUT_AT).mask != par.legacy_layout
        )
    )
    if not inconsistent:
        where: Any = ctypes.c_void_p(par_at + _PAR_LAYOUT_AT)
        order, channels = par.layout_order, par.nb_channels
    elif par.legacy_layout:
        where = _ChannelLayout()
        util.av_channel_layout_from_mask(ctypes.byref(where), par.legacy_layout)
        order, channels = where.order, where.nb_channels
        where = ctypes.byref(where)
    else:
        order, channels = _ORDER_UNSPEC, par.legacy_channels
        where = ctypes.byref(_ChannelLayout(_ORDER_UNSPEC, channels, 0, None))
    named = _describe(where)
    shown = named
    if order == _ORDER_UNSPEC and channels > 0:
        default = _ChannelLayout()
        util.av_channel_layout_default(ctypes.byref(default), channels)
        shown = _describe(ctypes.byref(default))
    return order, channels, named, shown


# PyAV 12's Stream object: PyObject header, Cython vtable pointer, then `AVStream *ptr`.
_PTR_OFFSET = 3 * ctypes.sizeof(ctypes.c_void_p)


@dataclass(frozen=True)
class _StreamInfo:
    """The AVStream/codecpar fields PyAV 12 does not expose, read once per stream."""

    index: int
    tb_num: int
    tb_den: int
    start_time: int
    duration: int
    nb_frames: int
    disposition: int
    sar: tuple[int, int]
    avg_frame_rate: tuple[int, int]
    r_frame_rate: tuple[int, int]
    # From codecpar (PyAV 12 has no codec context for data and attachment streams):
    codec_name: str  # avcodec_get_name(codec_id): the descriptor name
    extradata: bytes | None
    pix_fmt: str | None
    bit_rate: int
    width: int
    height: int
    par_sar: tuple[int, int]
    video_delay: int  # ffmpeg's has_b_frames for a stream copy
    sample_rate: int
    frame_size: int
    channels: int
    layout_order: int  # 0 is AV_CHANNEL_ORDER_UNSPEC
    layout_name: str  # av_channel_layout_describe, as ffprobe prints it
    copy_layout_name: str  # as the ffmpeg CLI's stream copy (framehash) names it


def _raw_stream(stream: Any) -> _StreamInfo:
    pyav, libraries = _versions()
    lavf = libraries["libavformat"][0]
    if lavf != 59 or not pyav.startswith("12."):
        raise CustodyError(
            f"custody reads stream dispositions with PyAV 12 on libavformat 59; found PyAV "
            f"{pyav}, libavformat {lavf}",
            hint="install the versions pyproject.toml names (make venv)",
        )
    address = ctypes.c_void_p.from_address(id(stream) + _PTR_OFFSET).value
    if not address:
        raise CustodyError("PyAV stream without an AVStream")
    raw = _AVStream59.from_address(address)
    tb = stream.time_base
    start = NOPTS if stream.start_time is None else stream.start_time
    duration = NOPTS if stream.duration is None else stream.duration
    if (
        raw.index != stream.index
        or tb is None
        or Fraction(raw.tb_num, raw.tb_den) != tb
        or raw.start_time != start
        or raw.duration != duration
        or raw.nb_frames != stream.frames
    ):
        raise CustodyError("PyAV's stream layout is not the one custody reads (AVStream, lavf 59)")
    # Copied out: the structs live only as long as the container.
    r_rate = (ctypes.c_int * 2).from_address(address + _R_FRAME_RATE_AT)
    par_at = ctypes.c_void_p.from_address(address + _CODECPAR_AT).value
    if not par_at:
        raise CustodyError("PyAV stream without codec parameters")
    par = _CodecPar59.from_address(par_at)
    cc = stream.codec_context
    if cc is not None and (
        (cc.codec is not None and par.codec_id != int(cc.codec.id))
        or par.width != int(getattr(cc, "width", 0) or 0)
        or par.sample_rate != int(getattr(cc, "sample_rate", 0) or 0)
    ):
        raise CustodyError("PyAV's codec parameters are not laid out as custody reads them")
    extradata = None
    if par.extradata:
        extradata = ctypes.string_at(par.extradata, max(par.extradata_size, 0))
    util, codec = _libs()
    pix = util.av_get_pix_fmt_name(par.format) if stream.type == "video" else None
    order, channels, layout, copied = 0, 0, "", ""
    if stream.type == "audio":
        order, channels, layout, copied = _audio_layout(par, par_at)
    name = codec.avcodec_get_name(par.codec_id)
    return _StreamInfo(
        index=raw.index,
        tb_num=raw.tb_num,
        tb_den=raw.tb_den,
        start_time=raw.start_time,
        duration=raw.duration,
        nb_frames=raw.nb_frames,
        disposition=raw.disposition,
        sar=(raw.sar_num, raw.sar_den),
        avg_frame_rate=(raw.avg_num, raw.avg_den),
        r_frame_rate=(r_rate[0], r_rate[1]),
        codec_name=name.decode("ascii", "replace") if name else "none",
        extradata=extradata,
        pix_fmt=pix.decode("ascii", "replace") if pix else None,
        bit_rate=par.bit_rate,
        width=par.width,
        height=par.height,
        par_sar=(par.sar_num, par.sar_den),
        video_delay=par.video_delay,
        sample_rate=par.sample_rate,
        frame_size=par.frame_size,
        channels=channels,
        layout_order=order,
        layout_name=layout,
        copy_layout_name=copied,
    )


# AVPacket (libavcodec 59): pts at 8, dts at 16, size at 32, stream_index at 36,
# AVPacketSideData *side_data at 48, int side_data_elems at 56; AVPacketSideData is
# {uint8_t *data; size_t size; enum type} (24 bytes).  PyAV 12's Packet: PyObject
# header, vtable pointer, then `AVPacket *ptr`.
_PKT_SIZE, _PKT_INDEX, _PKT_SIDE, _PKT_SIDE_N, _SIDE_BYTES = 32, 36, 48, 56, 24


def side_data(packet: Any) -> list[bytes]:
    """The payloads of the packet's side data, in order (framehash's ``S=`` fields)."""
    address = ctypes.c_void_p.from_address(id(packet) + _PTR_OFFSET).value
    if not address:
        return []
    size = ctypes.c_int.from_address(address + _PKT_SIZE).value
    index = ctypes.c_int.from_address(address + _PKT_INDEX).value
    if size != packet.size or index != packet.stream_index:
        raise CustodyError("PyAV's packet layout is not the one custody reads (AVPacket, lavc 59)")
    count = ctypes.c_int.from_address(address + _PKT_SIDE_N).value
    table = ctypes.c_void_p.from_address(address + _PKT_SIDE).value
    if count <= 0 or not table:
        return []
    out = []
    for i in range(count):
        entry = table + i * _SIDE_BYTES
        data = ctypes.c_void_p.from_address(entry).value
        length = ctypes.c_size_t.from_address(entry + 8).value
        out.append(ctypes.string_at(data, length) if data and length else b"")
    return out


# ---------------------------------------------------------------------------------
# libavutil arithmetic, exactly (mathematics.c).

_ROUND_DOWN, _ROUND_UP, _ROUND_NEAR_INF = 2, 3, 5


def rescale_rnd(a: int, b: int, c: int, rnd: int) -> int:
    """av_rescale_rnd: a * b / c with libavutil's rounding (b, c > 0)."""
    if a < 0:
        return -rescale_rnd(-a, b, c, rnd ^ ((rnd >> 1) & 1))
    r = {_ROUND_NEAR_INF: c // 2, _ROUND_UP: c - 1}.get(rnd, 0)
    return (a * b + r) // c


def rescale_q(a: int, bq: Fraction, cq: Fraction, rnd: int = _ROUND_NEAR_INF) -> int:
    """av_rescale_q(_rnd): `a` from time base `bq` to `cq`."""
    return rescale_rnd(a, bq.numerator * cq.denominator, cq.numerator * bq.denominator, rnd)


class _Delta:
    """av_rescale_delta state (``ist->filter_in_rescale_delta_last``)."""

    def __init__(self) -> None:
        self.last = NOPTS

    def rescale(
        self, in_tb: Fraction, in_ts: int, fs_tb: Fraction, duration: int, out_tb: Fraction
    ) -> int:
        simple = (
            self.last == NOPTS
            or not duration
            or in_tb.numerator * out_tb.denominator <= out_tb.numerator * in_tb.denominator
        )
        if not simple:
            a = rescale_q(2 * in_ts - 1, in_tb, fs_tb, _ROUND_DOWN) >> 1
            b = (rescale_q(2 * in_ts + 1, in_tb, fs_tb, _ROUND_UP) + 1) >> 1
            if not (self.last < 2 * a - b or self.last > 2 * b - a):
                this = min(max(self.last, a), b)
                self.last = this + duration
                return rescale_q(this, fs_tb, out_tb)
        self.last = rescale_q(in_ts, in_tb, fs_tb) + duration
        return rescale_q(in_ts, in_tb, out_tb)


# ---------------------------------------------------------------------------------
# Logging: libav's error lines, per thread.

_LOG_SETUP = threading.Lock()
_log_ready = False


def _setup_logging() -> None:
    global _log_ready
    with _LOG_SETUP:
        if _log_ready:
            return
        import av.logging

        # Route libav's messages through PyAV's callback (so Capture sees them), never
        # collapse repeats across threads, and keep only errors.
        av.logging.set_skip_repeated(False)
        av.logging.set_level(av.logging.ERROR)
        _log_ready = True


def _error_lines(logs: list[tuple[int, str, str]]) -> list[str]:
    import av.logging

    return [msg.strip() for level, _name, msg in logs if level <= av.logging.ERROR and msg.strip()]


# ---------------------------------------------------------------------------------
# The snapshot document (custody/snapshot/v2).


def _seconds(ts: int, tb: Fraction) -> str:
    # ffprobe: ts * av_q2d(tb) printed with "%f".
    return "%f" % (ts * (tb.numerator / tb.denominator))


def _tags(metadata: dict[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in metadata.items()}


def _stream_doc(stream: Any, raw: _StreamInfo) -> dict[str, Any]:
    kind = stream.type
    doc: dict[str, Any] = {"index": stream.index}
    if raw.codec_name not in ("none", "unknown_codec"):  # ffprobe: only with a descriptor
        doc["codec_name"] = raw.codec_name
    doc["codec_type"] = kind
    if kind == "video":
        doc["width"] = raw.width
        doc["height"] = raw.height
        if raw.pix_fmt is not None:
            doc["pix_fmt"] = raw.pix_fmt
    elif kind == "audio":
        doc["sample_rate"] = str(raw.sample_rate)
        doc["channels"] = raw.channels
        if raw.layout_order != 0:  # ffprobe prints a layout unless its order is unspecified
            doc["channel_layout"] = raw.layout_name
    tb = stream.time_base
    # ffprobe: "%d/%d" of the stored rationals.
    doc["r_frame_rate"] = "{}/{}".format(*raw.r_frame_rate)
    doc["avg_frame_rate"] = "{}/{}".format(*raw.avg_frame_rate)
    doc["time_base"] = f"{raw.tb_num}/{raw.tb_den}"
    if raw.start_time != NOPTS:
        doc["start_pts"] = raw.start_time
        doc["start_time"] = _seconds(raw.start_time, tb)
    if raw.duration != NOPTS and raw.duration != 0:
        doc["duration_ts"] = raw.duration
        doc["duration"] = _seconds(raw.duration, tb)
    if raw.bit_rate > 0:
        doc["bit_rate"] = str(raw.bit_rate)
    if raw.nb_frames:
        doc["nb_frames"] = str(raw.nb_frames)
    doc["disposition"] = {name: int(bool(raw.disposition & bit)) for name, bit in DISPOSITIONS}
    tags = _tags(stream.metadata)
    if tags:
        doc["tags"] = tags
    return doc


def _format_doc(container: Any) -> dict[str, Any]:
    fmt = container.format
    doc: dict[str, Any] = {
        "nb_streams": len(container.streams),
        "format_name": fmt.name,
        "format_long_name": fmt.long_name,
    }
    start = container.start_time
    if start is not None and start != NOPTS:
        doc["start_time"] = _seconds(start, Fraction(1, _AV_TIME_BASE))
    duration = container.duration
    if duration is not None and duration not in (0, NOPTS):
        doc["duration"] = _seconds(duration, Fraction(1, _AV_TIME_BASE))
    if container.size >= 0:
        doc["size"] = str(int(container.size))
    if container.bit_rate and container.bit_rate > 0:
        doc["bit_rate"] = str(int(container.bit_rate))
    tags = _tags(container.metadata)
    if tags:
        doc["tags"] = tags
    return doc


# ---------------------------------------------------------------------------------
# Packets: ffmpeg -map 0 -c copy -f framehash/streamhash, emulated.


@dataclass
class _Out:
    """One output stream: what ffmpeg's stream copy and the hash muxer keep per stream."""

    index: int
    kind: str
    tb: Fraction
    offset: int  # the input ts_offset in this stream's time base
    sample_rate: int
    frame_size: int
    started: bool = False
    last_mux_dts: int = NOPTS
    delta: _Delta | None = None
    count: int = 0
    # ffmpeg's InputStream timing (AV_TIME_BASE units), for packets without a dts.
    has_b_frames: int = 0
    avg_rate: Fraction | None = None
    saw_first_ts: bool = False
    ist_dts: int = 0
    next_dts: int = NOPTS
    # The muxer's duration guess for packets without one (compute_muxer_pkt_fields).
    guess_num: int = 0
    guess_den: int = 0
    pcm_bits: int = 0
    channels: int = 0


def _header(container: Any, raws: list[_StreamInfo]) -> list[str]:
    lines = ["#format: frame checksums\n", "#version: 2\n", "#hash: SHA256\n"]
    for raw in raws:
        if raw.extradata is not None:
            digest = hashlib.sha256(raw.extradata).hexdigest()
            lines.append(f"#extradata {raw.index}, {len(raw.extradata):31d}, {digest}\n")
    lines.append(f"#software: {_software()}\n")
    for stream, raw in zip(container.streams, raws, strict=True):
        kind = stream.type
        i = stream.index
        lines.append(f"#tb {i}: {raw.tb_num}/{raw.tb_den}\n")
        lines.append(f"#media_type {i}: {kind}\n")
        lines.append(f"#codec_id {i}: {raw.codec_name}\n")
        if kind == "audio":
            lines.append(f"#sample_rate {i}: {raw.sample_rate}\n")
            lines.append(f"#channel_layout_name {i}: {raw.copy_layout_name}\n")
        elif kind == "video":
            sar = raw.sar if raw.sar[0] else raw.par_sar
            lines.append(f"#dimensions {i}: {raw.width}x{raw.height}\n")
            lines.append("#sar {}: {}/{}\n".format(i, *sar))
    lines.append("#stream#, dts,        pts, duration,     size, hash\n")
    return lines


_US = Fraction(1, _AV_TIME_BASE)


def _track_input(out: _Out, dts: int, pts: int, duration: int) -> None:
    """process_input_packet (stream copy): ffmpeg's running estimate of the input dts."""
    if not out.saw_first_ts:
        rate = out.avg_rate
        first = 0
        if rate is not None and rate.numerator:
            first = int(-out.has_b_frames * _AV_TIME_BASE / (rate.numerator / rate.denominator))
        if pts != NOPTS:
            first += rescale_q(pts, out.tb, _US)
        out.ist_dts = first
        out.saw_first_ts = True
    if out.next_dts == NOPTS:
        out.next_dts = out.ist_dts
    if dts != NOPTS:
        out.next_dts = out.ist_dts = rescale_q(dts, out.tb, _US)
    out.ist_dts = out.next_dts
    if out.kind == "audio":
        if out.sample_rate:
            out.next_dts += _AV_TIME_BASE * out.frame_size // out.sample_rate
        else:
            out.next_dts += rescale_q(duration, out.tb, _US)
    elif out.kind == "video" and duration:
        out.next_dts += rescale_q(duration, out.tb, _US)


def _copy_packet(out: _Out, packet: Any) -> tuple[int, int, int] | None:
    """(dts, pts, duration) ffmpeg's stream copy writes for `packet`, or None if it drops it."""
    dts = NOPTS if packet.dts is None else packet.dts + out.offset
    pts = NOPTS if packet.pts is None else packet.pts + out.offset
    _track_input(out, dts, pts, int(packet.duration or 0))
    if not out.started:
        if not packet.is_keyframe:
            return None
        out.started = True
    if dts == NOPTS:
        dts = rescale_q(out.ist_dts, _US, out.tb)
    if pts == NOPTS and dts != NOPTS and out.has_b_frames == 0:
        pts = dts  # compute_muxer_pkt_fields: no reordering delay, pts is dts
    if dts != NOPTS and out.kind == "audio" and out.sample_rate > 0:
        # do_streamcopy: audio dts re-derived on the 1/sample_rate grid, pts := dts.
        if out.delta is None:
            out.delta = _Delta()
        dts = out.delta.rescale(out.tb, dts, Fraction(1, out.sample_rate), out.frame_size, out.tb)
        pts = dts
    duration = int(packet.duration or 0)
    if duration == 0:
        # The muxer guesses a duration: one frame at r_frame_rate, one audio frame.
        num, den = out.guess_num, out.guess_den
        if out.pcm_bits and out.channels:
            num, den = packet.size * 8 // (out.pcm_bits * out.channels), out.sample_rate
        if num > 0 and den > 0:
            b, c = num * out.tb.denominator, den * out.tb.numerator
            duration = rescale_rnd(1, b, c, _ROUND_NEAR_INF)
    # of_write_packet: an invalid dts > pts is replaced by a guess, then dts is made
    # monotonous (framehash is AVFMT_TS_NONSTRICT: equal dts are allowed).
    if dts != NOPTS and pts != NOPTS and dts > pts:
        last = out.last_mux_dts + 1
        pts = dts = pts + dts + last - min(pts, dts, last) - max(pts, dts, last)
    checked = out.kind in ("audio", "video", "subtitle") and out.last_mux_dts != NOPTS
    if checked and dts != NOPTS and dts < out.last_mux_dts:
        if pts != NOPTS and pts >= dts:
            pts = max(pts, out.last_mux_dts)
        dts = out.last_mux_dts
    out.last_mux_dts = dts
    return dts, pts, duration


class _Lines:
    """One stream's packet lines, compactly: the text, where each line ends, its dts."""

    def __init__(self, tb: Fraction) -> None:
        self.tb = tb
        self.text = bytearray()
        self.ends = array("Q")
        self.dts = array("q")

    def add(self, dts: int, line: str) -> None:
        self.text += line.encode("ascii")
        self.ends.append(len(self.text))
        self.dts.append(dts)

    def line(self, i: int) -> bytes:
        return bytes(self.text[self.ends[i - 1] if i else 0 : self.ends[i]])


def _interleaved(streams: list[_Lines]) -> bytes:
    """The packet lines in the order ffmpeg's muxer writes them: by dts, ties by stream index.

    A merge of the per-stream lists, each stream's own order kept: the muxer
    (interleave_packet_per_dts) outputs the earliest queued packet once every stream
    has one queued, or at the end, comparing dts in seconds exactly.
    """
    import heapq

    heap: list[tuple[Fraction, int, int]] = []
    for i, lines in enumerate(streams):
        if lines.dts:
            heapq.heappush(heap, (lines.dts[0] * lines.tb, i, 0))
    out = bytearray()
    while heap:
        _, i, at = heapq.heappop(heap)
        lines = streams[i]
        out += lines.line(at)
        if at + 1 < len(lines.dts):
            heapq.heappush(heap, (lines.dts[at + 1] * lines.tb, i, at + 1))
    return bytes(out)


def _pyav() -> Any:
    """The `av` package (PyAV), imported on first use, with libav's logging captured."""
    try:
        import av
        import av.container
        import av.error
        import av.logging
    except ImportError as exc:
        raise CustodyError(
            f"PyAV is not installed ({exc})", hint="install custody's dependencies (make venv)"
        ) from None
    _setup_logging()
    return av


def _open(av: Any, path: Path, logs: list[Any], options: dict[str, str]) -> Any:
    """`path` opened with these format options (never PyAV's `options=`: it reaches the
    codec contexts too, and crashes PyAV 12 on FLV), tag values decoded with U+FFFD for
    invalid UTF-8.  Raises OpenFailed with libav's last error line."""
    try:
        return av.container.open(
            os.fspath(path), container_options=options, metadata_errors="replace"
        )
    except av.error.FFmpegError as exc:
        lines = _error_lines(logs)
        raise OpenFailed(lines[-1] if lines else (exc.strerror or str(exc))) from None
    except OSError as exc:
        raise OpenFailed(exc.strerror or str(exc)) from None


def measure(path: Path, *, snapshot: bool = True) -> Measured:
    """Demux `path` once in-process: framehash, streamhash, snapshot document, errors.

    Raises:
        OpenFailed: libavformat cannot open the file (`reason` is libav's message).
        CustodyError: PyAV is missing or not the build custody reads.
    """
    av = _pyav()
    problems: list[str] = []
    with av.logging.Capture(local=True) as logs:
        # As ffmpeg and ffprobe do: read every program map of an MPEG-TS.
        container = _open(av, path, logs, {"protocol_whitelist": "file", "scan_all_pmts": "1"})
        try:
            return _demux(container, logs, problems, snapshot)
        finally:
            container.close()


def _demux(container: Any, logs: list[Any], problems: list[str], snapshot: bool) -> Measured:
    import av.error

    streams = list(container.streams)
    raws = [_raw_stream(s) for s in streams]
    document: dict[str, Any] = {}
    if snapshot:
        document = {
            "format": _format_doc(container),
            "streams": [_stream_doc(s, r) for s, r in zip(streams, raws, strict=True)],
        }
    else:
        document = {
            "format": {"format_name": container.format.name},
            "streams": [
                {
                    "index": s.index,
                    "codec_type": s.type,
                    "disposition": {n: int(bool(r.disposition & b)) for n, b in DISPOSITIONS},
                }
                for s, r in zip(streams, raws, strict=True)
            ],
        }
    start = container.start_time
    ts_offset = -start if start is not None and start != NOPTS else 0
    outs: list[_Out] = []
    for stream, raw in zip(streams, raws, strict=True):
        tb = Fraction(raw.tb_num, raw.tb_den)
        audio = stream.type == "audio"
        out = _Out(
            index=stream.index,
            kind=stream.type,
            tb=tb,
            offset=rescale_q(ts_offset, Fraction(1, _AV_TIME_BASE), tb),
            sample_rate=raw.sample_rate if audio else 0,
            frame_size=raw.frame_size if audio else 0,
        )
        if stream.type == "video":
            out.has_b_frames = raw.video_delay
            num, den = raw.avg_frame_rate
            out.avg_rate = Fraction(num, den) if num and den else None
            if tb.numerator * 1000 > tb.denominator:
                # ff_compute_frame_duration: a coarse time base is one tick per frame.
                out.guess_num, out.guess_den = tb.numerator, tb.denominator
        elif audio:
            pcm = re.fullmatch(r"pcm_[suf](8|16|24|32|64)(le|be)?", raw.codec_name)
            if pcm:
                out.pcm_bits, out.channels = int(pcm[1]), raw.channels
            elif out.frame_size > 0:
                out.guess_num, out.guess_den = out.frame_size, out.sample_rate
        outs.append(out)
    container.gen_pts = False  # ffmpeg reads packets as the demuxer gives them (no +genpts)
    hashes = [hashlib.sha256() for _ in streams]
    lines = _header(container, raws)
    per_stream = [_Lines(out.tb) for out in outs]
    try:
        for packet in container.demux():
            if packet.dts is None and packet.pts is None and packet.size == 0:
                continue  # PyAV's end-of-file flush packet, not a packet of the file
            out = outs[packet.stream_index]
            timing = _copy_packet(out, packet)
            if timing is None:
                continue
            dts, pts, duration = timing
            digest = hashlib.sha256(packet)
            hashes[out.index].update(packet)
            line = (
                f"{out.index}, {dts:10d}, {pts:10d}, {duration:8d}, {packet.size:8d}, "
                f"{digest.hexdigest()}"
            )
            extra = side_data(packet)
            if extra:
                line += f", S={len(extra)}" + "".join(
                    f", {len(d):8d}, {hashlib.sha256(d).hexdigest()}" for d in extra
                )
            per_stream[out.index].add(dts, line + "\n")
            out.count += 1
    except av.error.FFmpegError as exc:
        # ffmpeg prints the read error and ends the input there (exit status 0).
        problems.append(exc.strerror or str(exc))
    problems[:0] = _error_lines(logs)

    streamhash = "".join(
        f"{s.index},{_LETTERS.get(s.type, '?')},SHA256={h.hexdigest()}\n"
        for s, h in zip(streams, hashes, strict=True)
    )
    return Measured(
        framehash="".join(lines).encode("ascii") + _interleaved(per_stream),
        streamhash=streamhash.encode("ascii"),
        document=document,
        problems=tuple(problems),
    )


# ---------------------------------------------------------------------------------
# Thumbnails: JPEG frames of the footage, as `ffmpeg -ss T -i FILE -frames:v 1
# -vf scale=W:-2 -c:v mjpeg -q:v 4` makes them, without a process per frame.

# AVStream (libavformat 59): AVPacketSideData *side_data at 184, int nb_side_data at
# 192 (after the 104-byte attached_pic packet at 80); AV_PKT_DATA_DISPLAYMATRIX is 5.
_SIDE_DATA_AT, _NB_SIDE_DATA_AT, _DISPLAYMATRIX = 184, 192, 5
_AVFMT_SEEK_TO_PTS = 0x4000000
_JPEG_QSCALE = 4  # ffmpeg's -q:v 4: qmin = qmax = 4 with AV_CODEC_FLAG_QSCALE


@dataclass(frozen=True)
class Thumbnails:
    """What `thumbnails` took: the JPEG frames, whether there is footage, libav's errors."""

    frames: tuple[bytes, ...]
    has_video: bool
    problems: tuple[str, ...]


def _display_matrix(stream: Any) -> tuple[int, ...] | None:
    """The stream's display matrix (9 int32, 16.16 fixed point), or None."""
    if not getattr(stream, "nb_side_data", 0):
        return None
    address = ctypes.c_void_p.from_address(id(stream) + _PTR_OFFSET).value
    if not address:
        return None
    count = ctypes.c_int.from_address(address + _NB_SIDE_DATA_AT).value
    table = ctypes.c_void_p.from_address(address + _SIDE_DATA_AT).value
    if count != stream.nb_side_data or not table:
        raise CustodyError("PyAV's stream layout is not the one custody reads (AVStream, lavf 59)")
    for i in range(count):
        entry = table + i * _SIDE_BYTES
        data = ctypes.c_void_p.from_address(entry).value
        length = ctypes.c_size_t.from_address(entry + 8).value
        kind = ctypes.c_int.from_address(entry + 16).value
        if kind == _DISPLAYMATRIX and data and length >= 36:
            return tuple((ctypes.c_int32 * 9).from_address(data))
    return None


def _rotation_filters(matrix: tuple[int, ...] | None) -> list[tuple[str, str]]:
    """The filters ffmpeg 5.1's autorotation inserts for `matrix` (ffmpeg_filter.c)."""
    if matrix is None:
        return []
    util, _ = _libs()
    util.av_display_rotation_get.restype = ctypes.c_double
    util.av_display_rotation_get.argtypes = [ctypes.c_void_p]
    raw = (ctypes.c_int32 * 9)(*matrix)
    theta = -float(round(util.av_display_rotation_get(ctypes.addressof(raw))))
    theta -= 360 * ((theta / 360 + 0.9 / 360) // 1)
    if abs(theta - 90) < 1.0:
        return [("transpose", "cclock_flip" if matrix[3] > 0 else "clock")]
    if abs(theta - 180) < 1.0:
        flips = [("hflip", "")] if matrix[0] < 0 else []
        return flips + ([("vflip", "")] if matrix[4] < 0 else [])
    if abs(theta - 270) < 1.0:
        return [("transpose", "clock_flip" if matrix[3] < 0 else "cclock")]
    if abs(theta) > 1.0:
        return [("rotate", f"{theta}*PI/180")]
    return [("vflip", "")] if matrix[4] < 0 else []


def _footage(container: Any) -> Any | None:
    """The first video stream that is not cover art (attached_pic), or None."""
    for stream in container.streams:
        if stream.type == "video" and not _raw_stream(stream).disposition & 0x400:
            return stream
    return None


def _times(container: Any, stream: Any, count: int) -> list[int]:
    """Microseconds from the start: the middle of each of `count` equal spans, or [0].

    Each is rounded to the millisecond (as the ``-ss %.3f`` custody gave ffmpeg).
    """
    duration: Fraction | None = None
    if container.duration is not None and container.duration > 0:
        duration = Fraction(container.duration, _AV_TIME_BASE)
    elif stream.duration is not None and stream.duration > 0 and stream.time_base:
        duration = stream.duration * stream.time_base
    if duration is None:
        return [0]
    return [round(duration * (2 * i + 1) * 1000 / (2 * count)) * 1000 for i in range(count)]


def _frame_at(
    container: Any, stream: Any, at: int, start: int, seek_back: int, *, fresh: bool
) -> Any | None:
    """The frame ``ffmpeg -ss AT -i FILE -frames:v 1`` outputs, `at` in microseconds.

    As ffmpeg 5.1 (open_input_file, accurate seek): seek the whole file back to a
    keyframe at or before `start` + `at` (`seek_back` earlier, the CLI's dts
    heuristic), then decode on to the first frame whose pts, shifted by
    -(start + at) rescaled to the stream's time base, is not negative.  A file that
    cannot seek is decoded on from where it is (as ffmpeg: "could not seek"); a
    `fresh` one (nothing read yet) is not sought to 0, so a raw stream that cannot
    seek at all still gives its first frame.
    """
    import av.error

    if at or not fresh:  # a freshly opened file is at its start: no seek to 0 needed
        with contextlib.suppress(av.error.FFmpegError):
            container.seek(start + at - seek_back, backward=True)  # flushes the decoders
    offset = rescale_q(-(start + at), _US, stream.time_base)
    for packet in container.demux(stream):
        for frame in packet.decode():
            if frame.pts is None:
                if at == 0:
                    return frame
                continue
            if frame.pts + offset >= 0:
                return frame
    return None


def _scaled(
    frame: Any, filters: list[tuple[str, str]], sar: Fraction, width: int
) -> tuple[Any, Fraction]:
    """`frame` rotated as ffmpeg would, then `width` wide, even height, yuvj420p."""
    import av.filter

    if filters:
        graph = av.filter.Graph()
        nodes = [
            graph.add_buffer(
                width=frame.width,
                height=frame.height,
                format=frame.format,
                time_base=frame.time_base or Fraction(1, _AV_TIME_BASE),
            )
        ]
        for name, args in filters:
            nodes.append(graph.add(name, args or None))
        nodes.append(graph.add("buffersink"))
        graph.link_nodes(*nodes).configure()
        graph.push(frame)
        frame = graph.pull()
        if any(name == "transpose" for name, _ in filters) and sar:
            sar = 1 / sar
    in_w, in_h = frame.width, frame.height
    # scale=W:-2: height = av_rescale(W, in_h, in_w * 2) * 2, the aspect ratio kept.
    height = max(2, rescale_rnd(width, in_h, in_w * 2, _ROUND_NEAR_INF) * 2)
    out = frame.reformat(width=width, height=height, format="yuvj420p", interpolation="BICUBIC")
    out_sar = sar * Fraction(height * in_w, width * in_h) if sar else Fraction(0)
    return out, out_sar


def _jpeg(frame: Any, sar: Fraction) -> bytes:
    """One JPEG of `frame` with libavcodec's mjpeg encoder at ffmpeg's ``-q:v 4``."""
    import av.codec.context

    enc: Any = av.codec.context.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = frame.width, frame.height, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.thread_count = 1  # one slice: optimal Huffman tables, no restart markers (as ffmpeg)
    enc.qscale = True
    if sar:
        enc.sample_aspect_ratio = sar  # the JFIF header's pixel aspect
    enc.options = {"qmin": str(_JPEG_QSCALE), "qmax": str(_JPEG_QSCALE)}
    try:
        return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])
    finally:
        enc.close()


def thumbnails(path: Path, count: int, width: int) -> Thumbnails:
    """JPEG frames of the first video stream of `path` that is not cover art, in-process.

    Frame i is the first frame at or after the middle of the i-th of `count` equal
    spans of the duration (the container's, else the stream's; one frame at the start
    without one): a seek back to a keyframe, then decoding forward.  Each is rotated
    as the file's display matrix says (ffmpeg's autorotation), scaled to `width`
    pixels wide with an even height keeping the aspect ratio (bicubic, as ffmpeg's
    ``scale=W:-2``) and encoded with the mjpeg encoder at qscale 4: the bytes of
    ``ffmpeg -ss T -i FILE -frames:v 1 -vf scale=W:-2 -c:v mjpeg -q:v 4``.  A frame
    that cannot be decoded (damaged data) is left out and libav's error kept in
    `problems`.  Thread-safe: each call opens its own container and codecs.

    Raises:
        OpenFailed: libavformat cannot open the file.
        CustodyError: PyAV is missing or not the build custody reads.
    """
    av = _pyav()
    with av.logging.Capture(local=True) as logs:
        container = _open(av, path, logs, {"protocol_whitelist": "file"})
        problems: list[str] = []
        frames: list[bytes] = []
        try:
            stream = _footage(container)
            if stream is None:
                return Thumbnails((), False, ())
            # One decoding thread: libav logs from its own threads escape the capture.
            stream.codec_context.thread_count = 1
            raw = _raw_stream(stream)
            sar = Fraction(*raw.sar) if raw.sar[0] and raw.sar[1] else Fraction(0)
            if not sar:
                cc_sar = stream.codec_context.sample_aspect_ratio
                sar = Fraction(cc_sar) if cc_sar else Fraction(0)
            filters = _rotation_filters(_display_matrix(stream))
            begin = container.start_time
            start = begin if begin not in (None, NOPTS) else 0
            # ffmpeg seeks 3/23 s earlier in a format that seeks by dts when some
            # stream has a reordering delay (B-frames).
            by_dts = not int(getattr(container.format, "flags", 0)) & _AVFMT_SEEK_TO_PTS
            delayed = any(_raw_stream(s).video_delay for s in container.streams)
            seek_back = 3 * _AV_TIME_BASE // 23 if by_dts and delayed else 0
            fresh = True
            for at in _times(container, stream, count):
                try:
                    frame = _frame_at(container, stream, at, start, seek_back, fresh=fresh)
                    fresh = False
                    if frame is None:
                        problems.append(f"no frame at {at / _AV_TIME_BASE:.3f} s")
                        continue
                    scaled, out_sar = _scaled(frame, filters, sar, width)
                    data = _jpeg(scaled, out_sar)
                except (av.error.FFmpegError, ValueError) as exc:
                    problems.append(getattr(exc, "strerror", None) or str(exc))
                    continue
                if data.startswith(b"\xff\xd8"):
                    frames.append(data)
        finally:
            container.close()
        problems[:0] = _error_lines(logs)
    return Thumbnails(tuple(frames), True, tuple(problems))
