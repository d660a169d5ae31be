"""Tests for custody.media.lineage: the pure lineage proofs, on hand-made packet lists.

No ffmpeg here: packet lists and decoded-frame lists are built as
`custody.infra.ffmpeg` would give them, so each rule (coverage of a trim, frames
of a redaction, copied sound) is shown failing on exactly what breaks it.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from custody.errors import VerificationError
from custody.media.compare import Packet, PacketList, StreamHeader
from custody.media.lineage import (
    RedactParams,
    check_declared_frames,
    derive_params,
    prove_audio_copied,
    prove_redact,
    prove_trim,
    redact_params,
    report_transcode,
    trim_range,
)


def _packets(*streams: tuple[str, list[bytes]]) -> PacketList:
    """Packet lists at 10 packets a second: packet i of each stream is at i/10 s."""
    headers = []
    lists = []
    for index, (kind, hashes) in enumerate(streams):
        headers.append(StreamHeader(index, Fraction(1, 10), kind, "x"))
        lists.append(
            tuple(Packet(index, i, i, 1, 10, h.ljust(32, b"\0")) for i, h in enumerate(hashes))
        )
    return PacketList(tuple(headers), tuple(lists))


def _h(names: str) -> list[bytes]:
    return [n.encode() for n in names]


PARENT = _packets(("video", _h("abcdefghij")), ("audio", _h("ABCDEFGHIJ")))


def test_a_trim_is_proven_when_its_run_covers_the_declared_range() -> None:
    child = _packets(("video", _h("cdef")), ("audio", _h("CDEF")))
    proof = prove_trim(PARENT, child, start=Fraction(3, 10), end=Fraction(5, 10))
    assert proof.run.summary.startswith("contiguous excerpt")
    assert proof.lines()[0] == f"PROVEN: {proof.run.summary}"
    assert proof.to_json()["declared"] == [0.3, 0.5]


def test_a_trim_that_misses_its_declared_range_is_refused() -> None:
    child = _packets(("video", _h("cdef")), ("audio", _h("CDEF")))
    with pytest.raises(VerificationError, match=r"not the declared 0\.300-0\.900 s"):
        prove_trim(PARENT, child, start=Fraction(3, 10), end=Fraction(9, 10))


def test_a_trim_with_a_foreign_packet_is_refused() -> None:
    child = _packets(("video", _h("cdXYf")), ("audio", _h("CDEFG")))
    with pytest.raises(VerificationError, match="stream 0"):
        prove_trim(PARENT, child, start=Fraction(2, 10), end=Fraction(5, 10), allow_boundary=0)


def test_copied_sound_is_proven_packet_for_packet() -> None:
    (copy,) = prove_audio_copied(PARENT, _packets(("video", _h("zz")), ("audio", _h("ABCDEFGHIJ"))))
    assert (copy.stream, copy.parent_stream, copy.packets) == (1, 1, 10)
    assert copy.describe() == "audio stream 1 (x): all 10 packets identical to parent stream 1"


def test_altered_or_missing_sound_is_refused() -> None:
    altered = _packets(("video", _h("a")), ("audio", _h("ABCxEFGHIJ")))
    with pytest.raises(VerificationError, match="first difference at packet 3"):
        prove_audio_copied(PARENT, altered)
    with pytest.raises(VerificationError, match="the copy has 0 audio streams, its parent 1"):
        prove_audio_copied(PARENT, _packets(("video", _h("a"))))


def test_derive_parameters_parse_or_name_the_bad_line() -> None:
    assert derive_params(["start 1.500", "mode copy"], 7) == (("start", "1.500"), ("mode", "copy"))
    with pytest.raises(VerificationError, match="log entry 7: derive parameter 'start' is not"):
        derive_params(["start"], 7)
    assert trim_range({"start": "1.5", "end": "3.000"}) == (Fraction(3, 2), Fraction(3))
    with pytest.raises(VerificationError, match="has no 'end' parameter"):
        trim_range({"start": "1.5"})
    with pytest.raises(VerificationError, match="'1e3' is not decimal seconds"):
        trim_range({"start": "1e3", "end": "2"})


def test_redaction_parameters_are_all_or_nothing() -> None:
    assert redact_params({"box": "0,0,2,2"}) == RedactParams((0, 0, 2, 2))
    full = redact_params({"box": "0,0,2,2", "start": "0.2", "end": "0.4", "frames": "3-5"})
    assert full == RedactParams((0, 0, 2, 2), Fraction(1, 5), Fraction(2, 5), (3, 5))
    with pytest.raises(VerificationError, match="together, or none of them"):
        redact_params({"box": "0,0,2,2", "start": "0.2"})
    with pytest.raises(VerificationError, match="box '0,0,0,2' is not X,Y,W,H"):
        redact_params({"box": "0,0,0,2"})
    with pytest.raises(VerificationError, match="frames '5-3' is not FIRST-LAST"):
        redact_params({"box": "0,0,2,2", "start": "0.2", "end": "0.4", "frames": "5-3"})


def _frames(hashes: list[bytes], boxes: list[bytes]) -> PacketList:
    """Decoded frame lists: stream 0 the masked frames, stream 1 the box, 10 fps."""
    tb = Fraction(1, 10)

    def packets(stream: int, hs: list[bytes]) -> tuple[Packet, ...]:
        return tuple(Packet(stream, i, i, 1, 100, h) for i, h in enumerate(hs))

    return PacketList(
        streams=(
            StreamHeader(0, tb, "video", "rawvideo"),
            StreamHeader(1, tb, "video", "rawvideo"),
        ),
        packets=(packets(0, hashes), packets(1, boxes)),
    )


def test_a_redaction_is_proven_from_its_frames_and_its_sound() -> None:
    frames = [bytes([i]) * 32 for i in range(10)]
    boxes = [bytes([100 + i]) * 32 for i in range(10)]
    covered = [*boxes[:3], b"\xff" * 32, b"\xff" * 32, b"\xff" * 32, *boxes[6:]]
    declared = RedactParams((0, 0, 2, 2), Fraction(3, 10), Fraction(5, 10), (3, 5))
    child_packets = _packets(("video", _h("0123456789")), ("audio", _h("ABCDEFGHIJ")))
    proof = prove_redact(
        declared, _frames(frames, boxes), _frames(frames, covered), PARENT, child_packets
    )
    assert (proof.frames, proof.outside, proof.inside, proof.inside_changed) == (10, 7, 3, 3)
    assert [a.packets for a in proof.audio] == [10]
    assert proof.summary.startswith("10 decoded frames compared: 7 outside 0.300-0.500 s")
    # The same redaction with its sound replaced is refused.
    dubbed = _packets(("video", _h("0123456789")), ("audio", _h("ABCDEFGHIZ")))
    with pytest.raises(VerificationError, match="first difference at packet 9"):
        prove_redact(declared, _frames(frames, boxes), _frames(frames, covered), PARENT, dubbed)


def test_declared_frames_must_be_those_the_range_shows() -> None:
    frames = _frames([bytes([i]) * 32 for i in range(10)], [b"\0" * 32] * 10)
    check_declared_frames(frames, RedactParams((0, 0, 1, 1)), Fraction(0))
    check_declared_frames(
        frames, RedactParams((0, 0, 1, 1), Fraction(3, 10), Fraction(5, 10), (3, 5)), Fraction(0)
    )
    with pytest.raises(VerificationError, match=r"declares frames 3-6 .* shows frames 3-5"):
        check_declared_frames(
            frames,
            RedactParams((0, 0, 1, 1), Fraction(3, 10), Fraction(5, 10), (3, 6)),
            Fraction(0),
        )


def test_a_transcode_reports_what_it_can_check() -> None:
    child = _packets(("video", _h("abcdefgh")), ("audio", _h("ABCDEFGHIJ")))
    copied = report_transcode({"codec": "libx264", "audio-codec": "copy"}, PARENT, child)
    assert (copied.parent_frames, copied.child_frames, copied.audio_reencoded) == (10, 8, False)
    assert "  video: 8 frames, parent 10 (frames were added or dropped)" in copied.lines()
    assert [a.packets for a in copied.audio] == [10]
    lossy = report_transcode({"codec": "libx264", "audio-codec": "aac"}, PARENT, child)
    assert (lossy.audio, lossy.audio_reencoded) == ((), True)
    with pytest.raises(VerificationError, match="first difference at packet 0"):
        report_transcode(
            {"codec": "libx264", "audio-codec": "copy"},
            PARENT,
            _packets(("video", _h("a")), ("audio", _h("xBCDEFGHIJ"))),
        )
