"""The decisions that close issue 14's spec gaps, pinned against the code.

Each test states one rule that docs/spec/ now writes down (docs/verify-bundle.md,
"Spec gaps closed") and checks that custody behaves exactly so, so that the spec and
the code cannot drift apart unnoticed.  A second implementation (the browser verifier
of web/) is written from the same text.
"""

from __future__ import annotations

import re
import zipfile
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from custody.app.export import media_name
from custody.bundle import verify
from custody.bundle.reader import ZipSource
from custody.bundle.verify import UnsafeBundleError, check_bundle_path
from custody.errors import FormatError, VerificationError
from custody.media.compare import is_contiguous_run, parse_framehash
from custody.media.lineage import prove_trim
from custody.model.entry import Entry, sign_entry
from custody.model.rules import RuleError, entry_hash, replay
from custody.tlog.note import ALG_ED25519, Signer, VerifierKey

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec"


def spec(name: str) -> str:
    return " ".join((SPEC / name).read_text(encoding="utf-8").split())


# -- bundle.md: zip-bomb thresholds, folder members, integers, media extension ----------


def test_zip_thresholds_in_the_spec_are_the_codes_constants() -> None:
    text = spec("bundle.md")
    members = re.search(r"more than \*\*([\d,]+)\*\* central-directory records", text)
    floor = re.search(r"\*\*greater than ([\d,]+) bytes\*\* \(1 MiB\)", text)
    ratio = re.search(r"\*\*and greater than (\d+) ×\*\* max\(its compressed size, 1\)", text)
    assert members and floor and ratio, "bundle.md §6 step 1 no longer states the thresholds"
    assert int(members[1].replace(",", "")) == verify.MAX_MEMBERS == 200_000
    assert int(floor[1].replace(",", "")) == verify.RATIO_FLOOR == 1 << 20
    assert int(ratio[1]) == verify.MAX_RATIO == 100


def _zip(tmp_path: Path, members: dict[str, bytes], folders: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder in folders:
            zf.writestr(zipfile.ZipInfo(folder), b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_the_path_rule_accepts_custodys_own_folder_members(tmp_path: Path) -> None:
    folders = ("entries/", "proofs/", "items/", "items/" + "ab" * 32 + "/", "media/")
    folders += ("consistency/", "report/", "timestamps/", "__MACOSX/")
    path = _zip(tmp_path, {"entries/0.entry": b"x", "__MACOSX/._x": b"litter"}, folders)
    source = ZipSource(path)
    try:
        assert set(source.names()) == {"entries/0.entry"}  # folders hold no data
        assert source.ignored == ["__MACOSX/._x"]  # litter: listed, never read
    finally:
        source.zf.close()
    for bad in ("../entries/", "/abs/", "a\\b/"):
        with pytest.raises(UnsafeBundleError):
            ZipSource(_zip(tmp_path, {}, (bad,)))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty or over-long"),
        ("a/" * 256 + "b", "empty or over-long"),  # 513 bytes
        ("/etc/passwd", "absolute path"),
        ("C:x", "absolute path"),
        ("a\\b", "backslash"),
        ("entries/../x", "climbs out"),
        ("/".join("a" * 9), "not a name custody writes"),
        (".hidden", "not a name custody writes"),
        ("a/" + "b" * 129, "not a name custody writes"),
    ],
)
def test_the_path_rule_messages_in_their_documented_order(name: str, message: str) -> None:
    with pytest.raises(UnsafeBundleError, match=message):
        check_bundle_path(name)
    assert check_bundle_path("/".join("a" * 8)) == "/".join("a" * 8)  # 8 components pass


def test_zip_bomb_boundary_is_strictly_greater(tmp_path: Path) -> None:
    # A run of zeros deflates far beyond 100-fold: only the 1 MiB floor lets it pass.
    exactly = _zip(tmp_path, {"items/x": bytes(verify.RATIO_FLOOR)})
    ZipSource(exactly).zf.close()
    over = _zip(tmp_path, {"items/x": bytes(verify.RATIO_FLOOR + 1)})
    with pytest.raises(UnsafeBundleError, match="zip bomb"):
        ZipSource(over)


@pytest.mark.parametrize("value", ["42.0", "4.2e1", "-1", "true", '"42"'])
def test_manifest_integers_are_plain_json_integers(value: str) -> None:
    obj = verify.load_json(f'{{"size": {value}}}'.encode(), "MANIFEST.json")
    with pytest.raises(FormatError, match="'size' is not a non-negative integer"):
        verify._int(obj, "size", "MANIFEST.json")
    assert verify._int(verify.load_json(b'{"size": 42}', "m"), "size", "m") == 42


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("CLIP.MP4", ".mp4"),  # lower-cased before matching
        ("door.bell.MoV", ".mov"),
        ("archive.tar.gz", ".gz"),
        (".mp4", ""),
        ("clip.", ""),
        ("clip.abcdefghijk", ""),  # 11 characters after the dot
        ("clip.mp 4", ""),
        ("noext", ""),
    ],
)
def test_media_extension_is_lower_cased_then_matched(name: str, ext: str) -> None:
    item = "ab" * 32
    assert media_name(item, name) == f"media/{item}{ext}"


# -- signed-note.md: strict RFC 8032 (libsodium), not ZIP-215 -------------------------------

L = 2**252 + 27742317777372353535851937790883648493


def test_ed25519_refuses_a_small_order_key_that_plain_rfc8032_equations_accept() -> None:
    # The identity point as public key, R = identity, S = 0: [S]B = R + [k]A holds for
    # every message, cofactored or not.  Only the small-order checks refuse it.
    identity = bytes([1]) + bytes(31)
    key = VerifierKey("forger", ALG_ED25519, identity)
    with pytest.raises(VerificationError):
        key.verify(b"anything\n", identity + bytes(32))


def test_ed25519_refuses_a_non_canonical_s() -> None:
    signer = Signer.from_seed("alice", bytes(range(32)))
    text = b"a signed text\n"
    sig = signer.sign(text)
    signer.verifier_key.verify(text, sig)  # the honest signature verifies
    s = int.from_bytes(sig[32:], "little")
    forged = sig[:32] + (s + L).to_bytes(32, "little")
    with pytest.raises(VerificationError):
        signer.verifier_key.verify(text, forged)


# -- media.md §5: framehash fields are column-padded --------------------------------------

FRAMEHASH = "\n".join(
    [
        "#format: frame checksums",
        "#version: 2",
        "#hash: SHA256",
        "#extradata 0,                              47, " + "f5" * 32,
        "#software: Lavf59.27.100",
        "#tb 0: 1/15360",
        "#media_type 0: video",
        "#codec_id 0: h264",
        "#stream#, dts,        pts, duration,     size, hash",
        "0,      -1024,          0,     1024,     1617, " + "01" * 32,
        "0,          0,       2048,     1024,      388, " + "02" * 32 + ", S=1,  8, " + "aa" * 32,
        "0,       1024,       1024,     1024,      190, " + "03" * 32,
        "",
    ]
)


def test_framehash_is_read_field_by_field_with_padding_stripped() -> None:
    packets = parse_framehash(FRAMEHASH.encode("ascii"))
    [stream] = packets.streams
    assert stream.extradata == "f5" * 32 and stream.extradata_size == 47
    got = [(p.dts, p.pts, p.duration, p.size, p.hash[:1]) for p in packets.packets[0]]
    assert got == [
        (-1024, 0, 1024, 1617, b"\x01"),
        (0, 2048, 1024, 388, b"\x02"),  # side data after the 6th field: ignored
        (1024, 1024, 1024, 190, b"\x03"),
    ]


# -- media.md §10 and derive.md §2: contiguous runs, coverage, ties ------------------------


def _packets(hashes: list[int], start: int = 0) -> bytes:
    lines = ["#version: 2", "#hash: SHA256", "#tb 0: 1/10", "#media_type 0: video"]
    for n, h in enumerate(hashes):
        t = start + n
        lines.append(f"0, {t:10d}, {t:10d},        1,      100, {h:064x}")
    return ("\n".join(lines) + "\n").encode("ascii")


def test_a_repeated_run_takes_the_first_placement_and_coverage_is_exact() -> None:
    parent = parse_framehash(_packets([1, 2, 3, 1, 2, 3, 4]))
    child = parse_framehash(_packets([1, 2, 3]))
    run = is_contiguous_run(parent, child)
    # Fewest dropped packets first (none), then the first placement found: packets 0-2.
    [stream] = run.streams
    assert (stream.parent_first, stream.parent_end, stream.head, stream.tail) == (0, 3, 0, 0)
    # Coverage (derive.md §2): run 0.0-0.3 s; slack = one packet (0.1 s) + 0.001 s.
    prove_trim(parent, child, start=Fraction(0), end=Fraction("0.4"))
    with pytest.raises(VerificationError, match="not the declared"):
        prove_trim(parent, child, start=Fraction(0), end=Fraction("0.402"))


# -- entry.md: consent and derived copies, holder, offers ---------------------------------

ANN = Signer.from_seed("ann", bytes([1]) * 32)
OLGA = Signer.from_seed("olga", bytes([2]) * 32)
CASE, PARENT, CHILD = "C-1", "aa" * 32, "cc" * 32


def _sign(type_: str, fields: list[tuple[str, str | int | None]], *signers: Signer) -> bytes:
    return sign_entry(
        Entry.build(type_, datetime(2026, 11, 23, 12, 0, tzinfo=UTC), fields), list(signers)
    )


def _register(s: Signer, role: str) -> bytes:
    return _sign(
        "key",
        [
            ("action", "register"),
            ("party", s.name),
            ("role", role),
            ("vkey", s.verifier_key.encode()),
        ],
        s,
    )


def _ingest(**extra: str) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("exhibit", f"{CASE}/0001"),
        ("item", PARENT),
        ("name", "clip.mp4"),
        ("size", 1),
        ("kind", "attachment"),
        ("legal-basis", "consent"),
        ("by", "ann"),
        *extra.items(),
    ]
    return _sign("ingest", fields, ANN)


def _grant(*items: str) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("action", "grant"),
        ("owner", "olga"),
        ("case", CASE),
        *(("item", i) for i in items),
        ("purpose", "investigation"),
        ("onward", "any"),
    ]
    return _sign("consent", fields, OLGA)


def _derive() -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("exhibit", f"{CASE}/0002"),
        ("item", CHILD),
        ("name", "clip.trim.mp4"),
        ("size", 1),
        ("kind", "attachment"),
        ("parent", PARENT),
        ("op", "trim"),
        ("param", "start 0.000"),
        ("reason", "excerpt"),
        ("by", "ann"),
    ]
    return _sign("derive", fields, ANN)


def _access(item: str) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("item", item),
        ("by", "ann"),
        ("purpose", "review"),
        ("action", "view"),
    ]
    return _sign("access", fields, ANN)


KEYS = [_register(ANN, "agency"), _register(OLGA, "owner")]


def test_a_derived_copy_inherits_the_need_for_consent_not_the_coverage() -> None:
    listed = [*KEYS, _ingest(), _grant(PARENT), _derive()]
    replay(enumerate([*listed, _access(PARENT)]))  # the parent is covered
    with pytest.raises(RuleError, match="no consent on this log covers C-1/0002"):
        replay(enumerate([*listed, _access(CHILD)]))
    # A grant with no item line covers the whole case: parent and child alike.
    replay(enumerate([*KEYS, _ingest(), _grant(), _derive(), _access(CHILD)]))


def test_any_owners_covering_grant_counts_and_the_ingest_consent_binds_one() -> None:
    # Nothing ties an owner to an item: olga's whole-case grant covers ann's clip.
    replay(enumerate([*KEYS, _grant(), _ingest(), _access(PARENT)]))
    # The ingest's `consent` field binds the item to that grant, which must cover it.
    grant_other = _grant(CHILD)
    with pytest.raises(RuleError, match="is not one of them"):
        replay(enumerate([*KEYS, grant_other, _ingest(consent=entry_hash(grant_other))]))


def test_ingest_holder_absent_is_by_and_another_holder_is_refused() -> None:
    replay(enumerate([*KEYS, _grant(), _ingest()]))
    replay(enumerate([*KEYS, _grant(), _ingest(holder="ann")]))
    with pytest.raises(RuleError, match="ingest by 'ann' names 'olga' as holder"):
        replay(enumerate([*KEYS, _grant(), _ingest(holder="olga")]))


# -- verify-bundle.md §7: the Go program says what it leaves out ----------------------------


def test_the_go_program_states_what_it_does_not_check() -> None:
    text = " ".join((SPEC.parent / "verify-bundle.md").read_text(encoding="utf-8").split())
    assert "What the Go program does not check" in text
    assert "Spec gaps closed" in text
