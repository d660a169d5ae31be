"""custody.media.compare: classifying real edited clips against an ingested one.

Every variant is made with ffmpeg from one generated clip, the way an editor or a
forger would make it, and must be classified with the right detail.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import clips
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import FormatError, VerificationError
from custody.infra import ffmpeg as media
from custody.infra.vault import hash_file
from custody.media import compare
from custody.media.compare import (
    ContentModified,
    ExactMatch,
    MediaRecord,
    MetadataChanged,
    Packet,
    PacketList,
    Record,
    SameContent,
    StreamHeader,
    Unknown,
    classify,
    diff_metadata,
    is_contiguous_run,
    parse_framehash,
    parse_streamhash,
)

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

NEW_TIME = "2025-06-01T12:00:00.000000Z"


def record_of(path: Path) -> Record:
    digests = hash_file(path)
    info = media.probe(path, strict=False)
    return Record(digests.blake3_hex, digests.size, None if info is None else info.record)


@dataclass
class Variants:
    original: Record
    path: Path
    work: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Variants:
    work = tmp_path_factory.mktemp("compare")
    # 3 s, a keyframe every second: room for a splice and a trim in the middle.
    path = clips.make_clip(work / "original.mp4", seconds=3)
    return Variants(record_of(path), path, work)


def _verdict(base: Variants, candidate: Path) -> compare.Verdict:
    verdict = classify(base.original, record_of(candidate))
    json.dumps(verdict.to_json())  # always serialisable for --json
    assert "\n" not in verdict.summary
    return verdict


def test_the_same_file_is_an_exact_match(base: Variants, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(base.path, copy)
    verdict = _verdict(base, copy)
    assert isinstance(verdict, ExactMatch)
    assert verdict.to_json()["verdict"] == "exact"


@pytest.mark.parametrize("ext", ["mkv", "mov"])
def test_a_remux_is_the_same_content_with_the_differing_fields_listed(
    base: Variants, ext: str
) -> None:
    verdict = _verdict(base, clips.remux(base.path, base.work / f"remux.{ext}"))
    assert isinstance(verdict, SameContent), verdict.summary
    assert verdict.old_format != verdict.new_format
    paths = {c.path for c in verdict.fields}
    assert "format.size" in paths
    assert "same content in another container" in verdict.summary
    by_path = {c.path: c for c in verdict.fields}
    if ext == "mkv":
        assert by_path["format.format_name"].new == "matroska,webm"
        # Matroska upper-cases tag names: reported as a rename, not as a loss.
        make = by_path["format.tags.com.apple.quicktime.make"]
        assert make.change == "renamed" and make.container
        assert make.new_path == "format.tags.COM.APPLE.QUICKTIME.MAKE"
        # Matroska has no per-stream creation time: a notable loss, named.
        lost = by_path["streams[0].tags.creation_time"]
        assert (lost.old, lost.new, lost.container) == (clips.CREATION_TIME, None, False)
        assert lost in verdict.notable
    else:
        # A plain .mov remux drops the device tags: notable, and in the summary.
        make = by_path["format.tags.com.apple.quicktime.make"]
        assert (make.old, make.new, make.change) == (clips.MAKE, None, "removed")
        assert "format.tags.com.apple.quicktime.make Acme -> (absent)" in verdict.summary
        assert by_path["format.tags.major_brand"].container


def test_a_creation_time_edit_is_named_old_to_new(base: Variants) -> None:
    edited = clips.edit_metadata(base.path, base.work / "edited.mp4", creation_time=NEW_TIME)
    verdict = _verdict(base, edited)
    assert isinstance(verdict, MetadataChanged), verdict.summary
    change = next(c for c in verdict.fields if c.path == "format.tags.creation_time")
    assert (change.old, change.new, change.change) == (clips.CREATION_TIME, NEW_TIME, "changed")
    assert not change.container
    assert verdict.summary.startswith(
        f"metadata changed: format.tags.creation_time {clips.CREATION_TIME} -> {NEW_TIME}"
    )
    detail = verdict.to_json()
    assert detail["verdict"] == "metadata-changed"
    assert {"field": "format.tags.creation_time", "old": clips.CREATION_TIME}.items() <= next(
        f for f in detail["fields"] if f["field"] == "format.tags.creation_time"
    ).items()


def test_a_device_tag_edit_is_named(base: Variants) -> None:
    edited = clips.edit_metadata(
        base.path, base.work / "model.mp4", **{"com.apple.quicktime.model": "Other Cam"}
    )
    verdict = _verdict(base, edited)
    assert isinstance(verdict, MetadataChanged)
    assert "format.tags.com.apple.quicktime.model DoorCam 2 -> Other Cam" in verdict.summary


def test_a_flipped_bit_names_the_stream_packet_and_time(base: Variants) -> None:
    flipped = base.work / "flipped.mp4"
    where = clips.flip_bit(base.path, flipped, stream=0)
    verdict = _verdict(base, flipped)
    assert isinstance(verdict, ContentModified), verdict.summary
    (stream,) = verdict.streams
    assert (stream.index, stream.codec_type, stream.status) == (0, "video", "modified")
    (span,) = stream.spans
    assert (span.kind, span.old_first, span.old_end) == ("replaced", where.packet, where.packet + 1)
    assert span.start is not None and span.end is not None
    assert float(span.start) == pytest.approx(where.time, abs=1e-3)
    assert span.end - span.start == Fraction(1, 15)
    assert "stream 0 (video" in verdict.summary
    assert f"packet {where.packet} replaced, {where.time:.3f}-" in verdict.summary


def test_a_flipped_bit_in_the_audio_is_found_too(base: Variants) -> None:
    flipped = base.work / "flipped-audio.mp4"
    where = clips.flip_bit(base.path, flipped, stream=1)
    verdict = _verdict(base, flipped)
    assert isinstance(verdict, ContentModified)
    (stream,) = verdict.streams
    assert stream.codec_type == "audio"
    assert stream.spans[0].old_first == where.packet


def test_a_spliced_span_is_found_with_its_time_range(base: Variants) -> None:
    spliced = base.work / "spliced.mp4"
    k0, k1 = clips.splice_reencoded(base.path, spliced, 1.2, 1.6)
    assert (k0, k1) == (1.0, 2.0)  # widened to the keyframes around the edit
    verdict = _verdict(base, spliced)
    assert isinstance(verdict, ContentModified), verdict.summary
    (stream,) = verdict.streams  # the audio was copied: unchanged
    assert stream.codec_type == "video"
    starts = [s.start for s in stream.spans if s.start is not None]
    ends = [s.end for s in stream.spans if s.end is not None]
    assert float(min(starts)) == pytest.approx(k0, abs=0.07)
    assert float(max(ends)) == pytest.approx(k1, abs=0.07)
    assert "1.000-2.000 s" in verdict.summary


def test_a_truncated_copy_has_its_missing_packets_named(base: Variants) -> None:
    cut = clips.truncate(base.path, base.work / "cut.mp4", 0.6)
    verdict = _verdict(base, cut)
    assert isinstance(verdict, ContentModified), verdict.summary
    assert {s.index for s in verdict.streams} == {0, 1}
    for stream in verdict.streams:
        last = stream.spans[-1]
        assert last.kind == "missing" and last.old_end == stream.old_packets
        assert last.end is not None and float(last.end) == pytest.approx(3.0, abs=0.05)
        assert stream.new_packets < stream.old_packets
    assert "cut off at the end" in verdict.summary


def test_slowed_down_video_is_retimed_content(base: Variants) -> None:
    verdict = _verdict(base, clips.slow_down(base.path, base.work / "slow.mp4", 2.0))
    assert isinstance(verdict, ContentModified), verdict.summary
    (stream,) = verdict.streams
    assert (stream.index, stream.status) == (0, "retimed")
    (span,) = stream.spans
    assert span.kind == "retimed" and span.old_first == 1 and span.old_end == 45
    assert span.shift is not None and float(span.shift) == pytest.approx(44 / 15, abs=0.01)
    assert "retimed (identical packets" in verdict.summary


def test_video_moved_against_its_sound_is_found(base: Variants) -> None:
    verdict = _verdict(base, clips.shift_video(base.path, base.work / "shifted.mp4", 1.0))
    assert isinstance(verdict, ContentModified), verdict.summary
    (stream,) = verdict.streams
    (span,) = stream.spans
    assert (span.kind, span.against) == ("shifted", 0)
    assert span.shift is not None and float(span.shift) == pytest.approx(1.0, abs=0.03)
    assert "shifted 1.0" in verdict.summary


def test_an_unrelated_clip_is_unknown(base: Variants) -> None:
    other = clips.make_clip(base.work / "other.mp4", pattern="smptebars", frequency=1000)
    verdict = _verdict(base, other)
    assert isinstance(verdict, Unknown)
    assert verdict.rank == 4 and verdict.to_json()["verdict"] == "unknown"


def test_a_file_that_is_not_media_is_unknown(base: Variants, tmp_path: Path) -> None:
    sidecar = record_of(clips.write_sidecar_json(tmp_path / "export.json"))
    assert sidecar.media is None
    assert isinstance(classify(base.original, sidecar), Unknown)
    assert isinstance(classify(sidecar, base.original), Unknown)
    assert isinstance(classify(sidecar, sidecar), ExactMatch)


def test_verdict_ranks_order_the_kinds() -> None:
    kinds: list[type[compare.Verdict]] = [
        ExactMatch,
        SameContent,
        MetadataChanged,
        ContentModified,
        Unknown,
    ]
    assert [k.rank for k in kinds] == [0, 1, 2, 3, 4]
    assert [k.kind for k in kinds] == [
        "exact",
        "same-content",
        "metadata-changed",
        "content-modified",
        "unknown",
    ]


# -- trims ------------------------------------------------------------------------


def test_a_trim_is_a_contiguous_run_of_its_parent(base: Variants) -> None:
    assert base.original.media is not None
    trimmed = record_of(clips.trim_copy(base.path, base.work / "trim.mp4", 1.0, 2.0))
    assert trimmed.media is not None
    run = is_contiguous_run(base.original.media.packets, trimmed.media.packets)
    video, audio = run.streams
    assert (video.parent_first, video.parent_end) == (15, 30)
    assert video.head == video.tail == 0
    assert float(video.start or 0) == pytest.approx(1.0) and float(video.end or 0) == 2.0
    assert audio.parent_end - audio.parent_first == audio.child_packets
    assert "contiguous excerpt" in run.summary
    json.dumps(run.to_json())
    # A trim is not the same file, nor the same content.
    assert isinstance(classify(base.original, trimmed), ContentModified)


def test_a_spliced_clip_is_not_a_contiguous_run(base: Variants) -> None:
    assert base.original.media is not None
    spliced = base.work / "spliced-for-run.mp4"
    clips.splice_reencoded(base.path, spliced, 1.2, 1.6)
    child = record_of(spliced).media
    assert child is not None
    with pytest.raises(VerificationError, match=r"stream 0 \(video\).*packet 15") as err:
        is_contiguous_run(base.original.media.packets, child.packets)
    assert "1.000 s" in err.value.message


def _packets(*streams: tuple[str, list[bytes]]) -> PacketList:
    headers = []
    lists = []
    for index, (kind, hashes) in enumerate(streams):
        headers.append(StreamHeader(index, Fraction(1, 10), kind, "x"))
        lists.append(
            tuple(Packet(index, i, i, 1, 10, h.ljust(32, b"\0")) for i, h in enumerate(hashes))
        )
    return PacketList(tuple(headers), tuple(lists))


def _h(*names: str) -> list[bytes]:
    return [n.encode() for n in names]


def test_boundary_packets_may_differ_up_to_the_allowance() -> None:
    parent = _packets(("video", _h("a", "b", "c", "d", "e", "f")))
    child = _packets(("video", _h("X", "c", "d", "Y")))  # re-encoded cut points
    run = is_contiguous_run(parent, child, allow_boundary=1)
    (stream,) = run.streams
    assert (stream.parent_first, stream.parent_end, stream.head, stream.tail) == (2, 4, 1, 1)
    with pytest.raises(VerificationError, match="its first packet is not in the parent"):
        is_contiguous_run(parent, child, allow_boundary=0)
    child = _packets(("video", _h("c", "d", "X")))
    with pytest.raises(VerificationError, match="packets 0-1 match parent packets 2-3, packet 2"):
        is_contiguous_run(parent, child, allow_boundary=0)
    with pytest.raises(VerificationError, match="none of its first 2 packets is in the parent"):
        is_contiguous_run(parent, _packets(("video", _h("X", "Y", "Z"))), allow_boundary=1)


def test_streams_of_a_trim_must_come_from_the_same_time() -> None:
    parent = _packets(("video", _h(*"abcdefgh")), ("audio", _h(*"ABCDEFGH")))
    ok = _packets(("video", _h(*"cde")), ("audio", _h(*"CDE")))
    assert is_contiguous_run(parent, ok, allow_boundary=0)
    desync = _packets(("video", _h(*"bc")), ("audio", _h(*"FG")))
    with pytest.raises(VerificationError, match=r"stream 1 of the excerpt comes from"):
        is_contiguous_run(parent, desync, allow_boundary=0)
    wrong_type = _packets(("audio", _h(*"abc")))
    with pytest.raises(VerificationError, match="audio in the excerpt but video"):
        is_contiguous_run(parent, wrong_type)


def test_repeated_packets_are_placed_next_to_the_video() -> None:
    # Silence: every audio packet is the same, so the audio run fits anywhere;
    # it must be placed where the video run is.
    parent = _packets(("video", _h(*"abcdefgh")), ("audio", _h(*"SSSSSSSS")))
    child = _packets(("video", _h(*"fg")), ("audio", _h(*"SS")))
    video, audio = is_contiguous_run(parent, child, allow_boundary=0).streams
    assert (video.parent_first, audio.parent_first) == (5, 5)


# -- the diff of packet lists, as a property ----------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    old=st.lists(st.sampled_from("abcdefghij"), max_size=30),
    new=st.lists(st.sampled_from("abcdefghijXYZ"), max_size=30),
)
def test_differing_spans_turn_the_old_packets_into_the_new(old: list[str], new: list[str]) -> None:
    o = [x.encode() for x in old]
    n = [x.encode() for x in new]
    runs = compare._align(o, n)
    rebuilt: list[bytes] = []
    position = 0
    for kind, a0, a1, b0, b1 in runs:
        assert a0 == position
        rebuilt += o[a0:a1] if kind == "equal" else n[b0:b1]
        position = a1
    assert position == len(o)
    assert rebuilt == n


def test_shared_start_up_packets_alone_do_not_relate_files() -> None:
    # Same first packet (an encoder's priming packet), nothing else in common.
    old = _packets(("video", _h(*"abcdef")), ("audio", _h("P", *"klmno")))
    new = _packets(("video", _h(*"uvwxyz")), ("audio", _h("P", *"pqrst")))
    assert compare._compare_streams(old, new)[1] == 1 < compare.MIN_EVIDENCE
    assert compare._compare_streams(old, old)[1] == 6


# -- parsers ------------------------------------------------------------------------

FRAMEHASH = (
    b"""#format: frame checksums
#version: 2
#hash: SHA256
#extradata 0,                              39, EXTRA
#software: Lavf59.27.100
#tb 0: 1/15360
#media_type 0: video
#codec_id 0: h264
#dimensions 0: 160x120
#sar 0: 1/1
#tb 1: 1/44100
#media_type 1: audio
#codec_id 1: aac
#sample_rate 1: 44100
#channel_layout_name 1: mono
#stream#, dts,        pts, duration,     size, hash
1,      -1024,      -1024,     1024,      280, HASH1, S=1,       10, HASH2
0,          0,          0,     1024,     4746, HASH3
0, -9223372036854775808, -9223372036854775808,     1024,     10, HASH4
""".replace(b"EXTRA", b"ab" * 32)
    .replace(b"HASH1", b"11" * 32)
    .replace(b"HASH2", b"22" * 32)
    .replace(b"HASH3", b"33" * 32)
    .replace(b"HASH4", b"44" * 32)
)


def test_parse_framehash() -> None:
    parsed = parse_framehash(FRAMEHASH)
    video, audio = parsed.streams
    assert (video.time_base, video.media_type, video.codec) == (Fraction(1, 15360), "video", "h264")
    assert video.extradata == "ab" * 32 and video.extradata_size == 39
    assert audio.extradata is None
    first_audio = parsed.packets[1][0]
    assert (first_audio.dts, first_audio.pts, first_audio.size) == (-1024, -1024, 280)
    assert first_audio.hash == bytes.fromhex("11" * 32)
    assert parsed.packets[0][1].pts is None and parsed.packets[0][1].timestamp is None
    assert parsed.time_of(1, 0, 1) == (Fraction(-1024, 44100), Fraction(0))
    assert parsed.time_of(0, 1, 2) is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.replace(b"#version: 2", b"#version: 1"), "format version 1"),
        (lambda d: d.replace(b"#hash: SHA256", b"#hash: MD5"), "expected 'SHA256'"),
        (lambda d: d.replace(b"#tb 1: 1/44100\n", b""), "stream 1 has no #tb"),
        (lambda d: d.replace(b"#tb 1: 1/44100", b"#tb 1: 0/1"), "bad time base"),
        (lambda d: d.replace(b"#media_type 1: audio", b"#media_type 1: smell"), "unknown media"),
        (lambda d: d + b"0, 1, 2\n", "line 20: expected 6"),
        (lambda d: d + b"0, x, 2, 3, 4, " + b"00" * 32 + b"\n", "line 20: dts 'x'"),
        (lambda d: d + b"0, 1, 2, 3, 4, zz\n", "line 20: packet hash"),
        (lambda d: d + "\u00e9".encode(), "not ASCII"),
        (lambda d: d.replace(b"#extradata 0,", b"#extradata 0"), "malformed #extradata"),
    ],
)
def test_parse_framehash_names_what_is_wrong(mutate: object, message: str) -> None:
    assert callable(mutate)
    with pytest.raises(FormatError, match=message):
        parse_framehash(mutate(FRAMEHASH))


def test_parse_streamhash() -> None:
    data = b"0,v,SHA256=" + b"aa" * 32 + b"\n1,a,SHA256=" + b"bb" * 32 + b"\n"
    assert parse_streamhash(data) == {0: ("video", "aa" * 32), 1: ("audio", "bb" * 32)}
    with pytest.raises(FormatError, match="line 1"):
        parse_streamhash(b"0,v,MD5=00\n")
    with pytest.raises(FormatError, match="listed twice"):
        parse_streamhash(data + b"1,a,SHA256=" + b"bb" * 32 + b"\n")
    with pytest.raises(FormatError, match="ASCII"):
        parse_streamhash(b"\xff")


def test_a_media_record_refuses_sidecars_that_disagree(base: Variants) -> None:
    record = base.original.media
    assert record is not None
    with pytest.raises(FormatError, match="streamhash lists streams"):
        MediaRecord(
            snapshot=record.snapshot,
            framehash=record.framehash,
            streamhash=record.streamhash.splitlines(keepends=True)[0],
        )
    swapped = record.streamhash.replace(b"0,v,", b"0,a,")
    with pytest.raises(FormatError, match="stream 0 is audio in streamhash"):
        MediaRecord(snapshot=record.snapshot, framehash=record.framehash, streamhash=swapped)
    with pytest.raises(FormatError, match="canonical"):
        MediaRecord(
            snapshot=record.snapshot + b" ",
            framehash=record.framehash,
            streamhash=record.streamhash,
        )


def test_diff_metadata_pairs_tags_by_case_and_orders_paths() -> None:
    old = {
        "format": {"tags": {"make": "Acme", "creation_time": "1"}},
        "streams": [{"index": i} for i in range(11)],
    }
    new = {
        "format": {"tags": {"MAKE": "Acme", "creation_time": "2"}},
        "streams": [{"index": i, "x": 1} if i in (2, 10) else {"index": i} for i in range(11)],
    }
    changes = diff_metadata(old, new)
    assert [c.path for c in changes] == [
        "format.tags.creation_time",
        "format.tags.make",
        "streams[2].x",
        "streams[10].x",
    ]
    assert [c.change for c in changes] == ["changed", "renamed", "added", "added"]
    assert changes[1].describe() == "format.tags.make renamed format.tags.MAKE"
    assert changes[0].describe() == "format.tags.creation_time 1 -> 2"
