"""The tamper catalogue: every way of altering a bundle we could think of, each caught
with its own message naming what, where (file, log entry, field) and why.

Two kinds of tampering:

* In transit (someone between the agency and counsel edits files): the bundle is
  copied and edited; the log's signatures no longer cover it.
* By the log itself (the holder of the log key signs a history that breaks the
  custody rules, or shows two histories): `forge` rebuilds the whole log with the
  changed entries, signs a new checkpoint, proofs and statement with the real
  log key, and writes the bundle with custody's own writer.  Only the entry
  signatures, the custody rules and the seen checkpoints can catch these.

Every case runs `custody verify-bundle` as counsel would (exit code + one-line
error), on a copy of one module-scoped export.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import stat
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, CliResult, invoke
from test_bundle import CASE, ORIGIN, World, build_world

import custody.app.export
from custody.app.export import BundleContent, collect, write_bundle
from custody.bundle.verify import ConsistencyFile, Manifest
from custody.media.digest import canonical_json, parse_snapshot
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.tlog.checkpoint import Checkpoint, sign_checkpoint
from custody.tlog.merkle import MemoryTree
from custody.tlog.note import Signer
from custody.tlog.tlogproof import TlogProof


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        root = tmp_path_factory.mktemp("tamper-world")
        mp.setenv("CUSTODY_HOME", str(root / "agency"))
        mp.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])  # not needed here
        yield build_world(root)


@pytest.fixture(scope="module")
def content(world: World) -> BundleContent:
    """What the export collected (for `forge`), with the media of the real bundle."""
    with world.custody() as c:
        return collect(
            c,
            CASE,
            log_signer=c.log_signer(lambda _p: PASSPHRASE),
            now=datetime.now(UTC).replace(microsecond=0),
            with_media=True,
        )


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "no-such-home"))
    monkeypatch.setenv("CUSTODY_SEEN", str(tmp_path / "seen"))
    return tmp_path


@pytest.fixture
def bundle(world: World, desk: Path) -> Path:
    assert world.bundle is not None
    return Path(shutil.copytree(world.bundle, desk / "bundle"))


def caught(world: World, path: Path, *extra: str, probe: bool = False) -> CliResult:
    """Verify as counsel; assert exit 1 with a one-line error (plus hint) and return it."""
    args = ["verify-bundle", str(path), "--trust", world.vkey, *extra]
    if not probe:
        args.append("--no-probe")
    r = invoke(*args)
    assert r.code == 1, r
    assert r.stderr.startswith("custody: error: "), r
    lines = r.stderr.rstrip("\n").split("\n")
    assert len(lines) <= 2 and "Traceback" not in r.stderr, r
    return r


def manifest_of(path: Path) -> Manifest:
    return Manifest.parse((path / "MANIFEST.json").read_bytes())


def media_of(path: Path, world: World, clip: str) -> Path:
    item = next(i for i in manifest_of(path).items if i.item == world.items[clip])
    assert item.media is not None
    return path / item.media


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- forging as the log ------------------------------------------------------------------------


def forge(
    world: World,
    content: BundleContent,
    dst: Path,
    *,
    replace: dict[int, bytes] | None = None,
    append: Sequence[bytes] = (),
    consistency: bool = True,
) -> Path:
    """Rewrite the log's history with `replace`d and `append`ed entries, sign it all
    with the real log key, and write a bundle of it with custody's writer."""
    with world.custody() as c:
        log_signer = c.log_signer(lambda _p: PASSPHRASE)
        entries = [data for _, data in c.store.iter_entries()]
    for index, data in (replace or {}).items():
        entries[index] = data
    first_new = len(entries)
    entries.extend(append)
    tree = MemoryTree()
    for data in entries:
        tree.append(data)
    cp = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), log_signer)
    indexes = [i for i, _ in content.entries] + list(range(first_new, len(entries)))
    olds = [
        ConsistencyFile(
            cf.old_size,
            tree.size,
            tree.root(cf.old_size),
            tree.root(),
            tuple(tree.consistency_proof(cf.old_size)),
            sign_checkpoint(Checkpoint(ORIGIN, cf.old_size, tree.root(cf.old_size)), log_signer),
        )
        for cf in content.consistency
    ]
    forged = dataclasses.replace(
        content,
        checkpoint=cp,
        entries=[(i, entries[i]) for i in indexes],
        proofs={i: TlogProof(i, tuple(tree.inclusion_proof(i)), cp).encode() for i in indexes},
        consistency=olds if consistency else [],
        reports=(),
    )
    write_bundle(forged, dst, log_signer)
    return dst


def signed_by(world: World, entry: Entry, *names: str) -> bytes:
    with world.custody() as c:
        return sign_entry(entry, [c.keystore.unlock(n, lambda _p: PASSPHRASE) for n in names])


# -- in transit: the media and the sidecars ----------------------------------------------------


def test_flipped_media_byte_is_named_with_the_packets_it_changed(
    world: World, bundle: Path
) -> None:
    path = media_of(bundle, world, "clip1")
    flip = clips.flip_bit(path, bundle / "flipped.tmp")
    os.replace(bundle / "flipped.tmp", path)
    r = caught(world, bundle, probe=True)
    assert f"{path.relative_to(bundle)}: is not the file of exhibit {CASE}/0001" in r.stderr
    assert "(field item)" in r.stderr and "the file was altered" in r.stderr
    assert f"content modified: stream 0 (video h264): packet {flip.packet} replaced" in r.stderr


def test_swapped_media_files(world: World, bundle: Path) -> None:
    one, two = media_of(bundle, world, "clip1"), media_of(bundle, world, "clip2")
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    r = caught(world, bundle)
    assert f"holds the bytes of exhibit {CASE}/0002 (porch.mp4), not those of exhibit " in r.stderr
    assert "the media files were swapped" in r.stderr


def test_edited_metadata_snapshot_names_the_field(world: World, bundle: Path) -> None:
    probe = bundle / "items" / world.items["clip1"] / "probe"
    snap = parse_snapshot(probe.read_bytes())
    snap["format"]["tags"]["creation_time"] = "2020-01-01T00:00:00.000000Z"
    probe.write_bytes(canonical_json(snap))
    r = caught(world, bundle, probe=True)
    assert f"items/{world.items['clip1']}/probe: the metadata snapshot of exhibit" in r.stderr
    assert "(field metadata)" in r.stderr and "the snapshot was altered" in r.stderr
    assert "format.tags.creation_time" in r.stderr and "2020-01-01" in r.stderr
    # The same, for a script: --json names the check, the log entry and the field.
    r = invoke("verify-bundle", str(bundle), "--trust", world.vkey, "--json", "--no-probe")
    first = json.loads(r.stdout)["failures"][0]
    assert r.code == 1 and first["check"] == "sidecar" and first["field"] == "metadata"
    assert first["index"] == world.index["ingest1"] and first["where"].endswith("/probe")


def test_edited_packet_list(world: World, bundle: Path) -> None:
    path = bundle / "items" / world.items["clip2"] / "framehash"
    lines = path.read_text().split("\n")
    n = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    fields = lines[n].split(", ")
    fields[5] = "0" * 64  # one packet's hash, the count and stream digests untouched
    lines[n] = ", ".join(fields)
    path.write_text("\n".join(lines))
    r = caught(world, bundle)
    assert f"items/{world.items['clip2']}/framehash: was altered after export" in r.stderr


def test_packet_lists_that_no_longer_give_the_content_digest(world: World, bundle: Path) -> None:
    path = bundle / "items" / world.items["clip2"] / "framehash"
    lines = [line for line in path.read_text().split("\n") if line]
    path.write_text("\n".join(lines[:-1]) + "\n")  # drop the last packet
    r = caught(world, bundle)
    assert "(framehash, streamhash) give content digest" in r.stderr
    assert "(field content)" in r.stderr


# -- in transit: entries, proofs, checkpoint, manifest, statement -------------------------------


def test_edited_entry(world: World, bundle: Path) -> None:
    i = world.index["handoff"]
    path = bundle / "entries" / f"{i}.entry"
    path.write_bytes(path.read_bytes().replace(b"purpose forensic", b"purpose friendly"))
    r = caught(world, bundle)
    assert f"entries/{i}.entry: is not log entry {i} as the log recorded it" in r.stderr
    assert "the entry was altered after export" in r.stderr


def test_removed_entry(world: World, bundle: Path) -> None:
    i = world.index["handoff"]
    (bundle / "entries" / f"{i}.entry").unlink()
    (bundle / "proofs" / f"{i}.tlog-proof").unlink()
    r = caught(world, bundle)
    assert f"entries/{i}.entry: is missing: log entry {i} is listed" in r.stderr
    assert "an entry was removed from the bundle" in r.stderr


def test_reordered_entries(world: World, bundle: Path) -> None:
    a, b = world.index["handoff"], world.index["access"]
    pa, pb = bundle / "entries" / f"{a}.entry", bundle / "entries" / f"{b}.entry"
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    r = caught(world, bundle)
    assert f"entries/{a}.entry: holds log entry {b}, not log entry {a}" in r.stderr
    assert "the entries were reordered" in r.stderr


def test_injected_extra_entry(world: World, bundle: Path) -> None:
    extra = signed_by(
        world,
        Entry.build(
            "access",
            now(),
            [
                ("case", CASE),
                ("item", world.items["clip2"]),
                ("by", "bob"),
                ("purpose", "x"),
                ("action", "view"),
            ],
        ),
        "bob",
    )
    (bundle / "entries" / "999.entry").write_bytes(extra)
    r = caught(world, bundle)
    assert "entries/999.entry: is not in the log's signed bundle statement" in r.stderr
    assert "added to the bundle after export" in r.stderr


def test_proof_for_the_wrong_index(world: World, bundle: Path) -> None:
    a, b = world.index["access"], world.index["handoff"]
    shutil.copy(bundle / "proofs" / f"{b}.tlog-proof", bundle / "proofs" / f"{a}.tlog-proof")
    r = caught(world, bundle)
    assert f"proofs/{a}.tlog-proof: is a proof for log entry {b}, not for log entry {a}" in r.stderr


def test_truncated_proof(world: World, bundle: Path) -> None:
    i = world.index["access"]
    path = bundle / "proofs" / f"{i}.tlog-proof"
    head, _, checkpoint = path.read_bytes().partition(b"\n\n")
    path.write_bytes(b"\n".join(head.split(b"\n")[:-1]) + b"\n\n" + checkpoint)
    r = caught(world, bundle)
    assert (
        f"proofs/{i}.tlog-proof: the inclusion proof of log entry {i} does not verify" in r.stderr
    )
    assert "hashes" in r.stderr


def test_proof_cut_short_mid_file(world: World, bundle: Path) -> None:
    i = world.index["ingest1"]
    path = bundle / "proofs" / f"{i}.tlog-proof"
    path.write_bytes(path.read_bytes()[:60])
    r = caught(world, bundle)
    assert f"proofs/{i}.tlog-proof: is not a valid tlog-proof (truncated or altered)" in r.stderr


def test_replaced_checkpoint(world: World, bundle: Path) -> None:
    with world.custody() as c:
        older = c.log.checkpoint_note(world.checkpoints[0])
    (bundle / "checkpoint.note").write_bytes(older)
    r = caught(world, bundle)
    assert (
        f"checkpoint.note: was replaced: it is the log's checkpoint of size {world.checkpoints[0]}"
        in r.stderr
    )


def test_forged_cosignature(world: World, bundle: Path) -> None:
    path = bundle / "checkpoint.note"
    lines = path.read_text().split("\n")
    n = next(i for i, line in enumerate(lines) if line.startswith("— clerk "))
    sig = bytearray(lines[n].encode())
    sig[-5] = ord("A") if sig[-5] != ord("A") else ord("B")
    lines[n] = sig.decode()
    path.write_text("\n".join(lines))
    r = caught(world, bundle)
    assert "checkpoint.note: a witness cosignature does not verify" in r.stderr
    assert "clerk" in r.stderr


def test_edited_manifest(world: World, bundle: Path) -> None:
    path = bundle / "MANIFEST.json"
    doc = json.loads(path.read_text())
    doc["items"][0]["name"] = "innocent.mp4"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    r = caught(world, bundle)
    assert "MANIFEST.json: was altered after export: its SHA-256 is" in r.stderr


def test_edited_statement_dropping_an_entry(world: World, bundle: Path) -> None:
    path = bundle / "statement.note"
    i = world.index["handoff"]
    text = path.read_text()
    line = next(x for x in text.split("\n") if x.startswith(f"entry {i} "))
    path.write_text(text.replace(line + "\n", ""))
    (bundle / "entries" / f"{i}.entry").unlink()
    r = caught(world, bundle)
    assert "statement.note: the log's signature on the bundle statement does not verify" in r.stderr


def test_tampered_consistency_proof(world: World, bundle: Path) -> None:
    path = bundle / "consistency" / f"{world.checkpoints[0]}.json"
    doc = json.loads(path.read_text())
    doc["proof"][0] = doc["proof"][-1] if len(doc["proof"]) > 1 else "A" * 43 + "="
    path.write_text(json.dumps(doc))
    r = caught(world, bundle)
    assert f"consistency/{world.checkpoints[0]}.json: the log's checkpoint of size" in r.stderr
    assert "is not consistent with the bundle's" in r.stderr


def test_added_file(world: World, bundle: Path) -> None:
    (bundle / "items" / "addendum.txt").write_text("the defendant confessed\n")
    r = caught(world, bundle)
    assert "items/addendum.txt: is not part of the export" in r.stderr


# -- keys -----------------------------------------------------------------------------------------


def test_wrong_log_key_given(world: World, bundle: Path) -> None:
    impostor = Signer.generate(ORIGIN).verifier_key.encode()
    r = invoke("verify-bundle", str(bundle), "--trust", impostor, "--no-probe")
    assert r.code == 1, r
    assert "statement.note: is not signed by the trusted log key" in r.stderr
    assert "the bundle was not exported by the log you trust" in r.stderr


def test_key_of_another_log_given(world: World, bundle: Path) -> None:
    other = Signer.generate("other.example/log").verifier_key.encode()
    r = invoke("verify-bundle", str(bundle), "--trust", other, "--no-probe")
    assert r.code == 1, r
    assert (
        "--trust: the bundle is from log 'test.example/custody', and none of the keys" in r.stderr
    )


def test_party_key_given_out_of_band_differs(world: World, bundle: Path) -> None:
    fake_bob = Signer.generate("bob").verifier_key.encode()
    r = caught(world, bundle, "--trust", fake_bob)
    assert "--trust: the key given for party 'bob'" in r.stderr
    assert "is not a key the log registered for 'bob'" in r.stderr


# -- the log itself breaks the rules (forged with the real log key) ----------------------------


def test_forged_signature(world: World, content: BundleContent, desk: Path) -> None:
    i = world.index["access"]
    with world.custody() as c:
        original = c.store.entry(i)
    assert original is not None
    forged = original.replace(b"purpose examination", b"purpose copying for press")
    out = forge(world, content, desk / "forged", replace={i: forged})
    r = caught(world, out)
    assert f"entries/{i}.entry: log entry {i}: signature by 'carol' does not verify" in r.stderr


def test_entry_signed_by_a_revoked_key(world: World, content: BundleContent, desk: Path) -> None:
    late = signed_by(
        world,
        Entry.build(
            "access",
            now(),
            [
                ("case", CASE),
                ("item", world.items["clip2"]),
                ("by", "dave"),
                ("purpose", "peek"),
                ("action", "view"),
            ],
        ),
        "dave",
    )
    out = forge(world, content, desk / "forged", append=[late])
    r = caught(world, out)
    assert "signed by 'dave' with a key revoked: laptop stolen at entry" in r.stderr
    assert str(world.index["revoke"]) in r.stderr


def test_handoff_by_a_non_holder(world: World, content: BundleContent, desk: Path) -> None:
    handoff = signed_by(
        world,
        Entry.build(
            "handoff",
            now(),
            [
                ("case", CASE),
                ("item", world.items["clip1"]),
                ("from", "bob"),
                ("to", "clerk"),
                ("purpose", "filing"),
                ("offer", secrets.token_hex(16)),
            ],
        ),
        "bob",
        "clerk",
    )
    out = forge(world, content, desk / "forged", append=[handoff])
    r = caught(world, out)
    assert "breaks the custody rules" in r.stderr
    assert f"'bob' may not hand off {CASE}/0001: the current holder is 'carol'" in r.stderr


def test_consent_scope_exceeded(world: World, content: BundleContent, desk: Path) -> None:
    after = Entry(
        "access",
        "2100-01-05T10:00:00Z",
        (
            ("case", CASE),
            ("item", world.items["clip1"]),
            ("by", "carol"),
            ("purpose", "documentary"),
            ("action", "view"),
        ),
    )
    out = forge(world, content, desk / "forged", append=[signed_by(world, after, "carol")])
    r = caught(world, out)
    assert f"outside the owner's consent for {CASE}/0001" in r.stderr
    assert "expired on 2099-12-31" in r.stderr


def test_checkpoint_inconsistent_with_one_seen_before(
    world: World, content: BundleContent, bundle: Path, desk: Path
) -> None:
    seen = desk / "seen"
    r = invoke(
        "verify-bundle", str(bundle), "--trust", world.vkey, "--no-probe", "--seen", str(seen)
    )
    assert r.code == 0, r
    # The log shows a second reader another, equally well-signed history.
    i = world.index["access"]
    with world.custody() as c:
        text = SignedEntry.parse(c.store.entry(i) or b"").entry
    rewritten = Entry(
        text.type, text.time, tuple((k, "nothing" if k == "purpose" else v) for k, v in text.fields)
    )
    out = forge(world, content, desk / "split", replace={i: signed_by(world, rewritten, "carol")})
    assert (
        invoke(
            "verify-bundle",
            str(out),
            "--trust",
            world.vkey,
            "--no-probe",
            "--seen",
            str(desk / "fresh"),
        ).code
        == 0
    )
    r = caught(world, out, "--seen", str(seen))
    assert "this log showed two different histories" in r.stderr
    assert list((seen).glob("*/conflicts/*.checkpoint")), "the contradicting checkpoint is kept"


def test_bundle_hiding_a_checkpoint_seen_before(
    world: World, content: BundleContent, bundle: Path, desk: Path
) -> None:
    seen = desk / "seen"
    assert (
        invoke(
            "verify-bundle", str(bundle), "--trust", world.vkey, "--no-probe", "--seen", str(seen)
        ).code
        == 0
    )
    grown = signed_by(
        world,
        Entry.build(
            "access",
            now(),
            [
                ("case", CASE),
                ("item", world.items["clip3"]),
                ("by", "carol"),
                ("purpose", "x"),
                ("action", "view"),
            ],
        ),
        "carol",
    )
    out = forge(world, content, desk / "no-proofs", append=[grown], consistency=False)
    r = caught(world, out, "--seen", str(seen))
    assert "the bundle has no consistency proof from size" in r.stderr


# -- attacks on the reader: zip and folder ------------------------------------------------------


def zipped(src: Path, dst: Path, extra: Sequence[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, str(path.relative_to(src)))
        for info, data in extra:
            zf.writestr(info, data)
    return dst


def test_zip_with_a_path_traversal_name(world: World, bundle: Path, desk: Path) -> None:
    z = zipped(
        bundle, desk / "evil.zip", [(zipfile.ZipInfo("../../home/counsel/.bashrc"), b"rm -rf ~\n")]
    )
    r = caught(world, z)
    assert "member '../../home/counsel/.bashrc' climbs out of the bundle ('..')" in r.stderr
    z = zipped(bundle, desk / "evil2.zip", [(zipfile.ZipInfo("/etc/cron.d/x"), b"x\n")])
    assert "is an absolute path" in caught(world, z).stderr


def test_zip_with_a_symbolic_link(world: World, bundle: Path, desk: Path) -> None:
    link = zipfile.ZipInfo("items/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = zipped(bundle, desk / "link.zip", [(link, b"/etc/passwd")])
    r = caught(world, z)
    assert "member 'items/link' is a symbolic link: refusing it" in r.stderr


def test_zip_bomb(world: World, bundle: Path, desk: Path) -> None:
    bomb = zipfile.ZipInfo("report/notes.txt")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    z = zipped(bundle, desk / "bomb.zip", [(bomb, bytes(16 << 20))])
    r = caught(world, z)
    assert "member 'report/notes.txt' would expand" in r.stderr and "zip bomb" in r.stderr


def test_folder_with_a_symbolic_link(world: World, bundle: Path) -> None:
    os.symlink("/etc/passwd", bundle / "items" / "passwd")
    r = caught(world, bundle)
    assert "items/passwd is a symbolic link: refusing to follow it" in r.stderr


def test_not_a_bundle_is_an_input_error(world: World, desk: Path) -> None:
    (desk / "holiday").mkdir()
    (desk / "holiday" / "photo.jpg").write_bytes(b"\xff\xd8")
    r = invoke("verify-bundle", str(desk / "holiday"), "--trust", world.vkey)
    assert r.code == 3 and "is not a custody bundle" in r.stderr, r
