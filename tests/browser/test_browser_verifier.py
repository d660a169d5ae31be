"""The browser verifier (custody/assets/verify.html) in a real, headless Chromium.

The page is opened from a file:// URL and driven through its stable hooks only
(browserkit.py).  One module-scoped world (tests/cli/test_bundle.py's case: consent,
a two-party handoff, an access, a derived trim, a revoked key, two checkpoints, a
clerk's cosignature, real clips) is exported once; then:

* the genuine bundle, as a folder and as a zip, shows VERIFIED;
* the page makes no network request, carries its Content-Security-Policy and is one
  file under 300 KB;
* every case of the tamper catalogue (tests/cli/test_bundle_tamper.py) that can be
  checked without ffmpeg is built once, verified by `custody verify-bundle --no-probe
  --json` and by the page, and the two must agree: the same verdict, the page naming
  the same failures as verify-bundle (each `check` and `where`: data-check and
  data-where on the page's lines, none missing and none extra), each line
  `where: message` with verify-bundle's sentence (its message up to the first ': ';
  the detail after it comes from each implementation's parsers).

Left out of the comparison, and why:
* a folder holding a symbolic link: a browser's folder picker does not show links at
  all, so the page sees (and verifies) only the bundle's real files;
* checkpoints seen before (`--seen`): the page keeps nothing between visits;
* a party key given out of band (`--trust` for a party): the page takes the log's key.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

import clips
from browserkit import PAGE, Outcome, Page, why_no_browser
from conftest import PASSPHRASE, invoke
from test_bundle import CASE, ORIGIN, World, build_world
from test_bundle_tamper import forge, manifest_of, media_of, now, signed_by, zipped

import custody.app.export
from custody.app.export import BundleContent, collect
from custody.media.digest import canonical_json, parse_snapshot
from custody.model.entry import Entry
from custody.tlog.note import Signer

PAGE_LIMIT = 300 * 1024


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    reason = why_no_browser()
    if reason is not None:
        pytest.skip(reason)
    if not PAGE.is_file():
        pytest.fail(f"{PAGE.relative_to(PAGE.parents[2])} is not built: run `make web`")
    p = Page.open()
    yield p
    p.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        root = tmp_path_factory.mktemp("browser-world")
        mp.setenv("CUSTODY_HOME", str(root / "agency"))
        mp.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])
        yield build_world(root)


@pytest.fixture(scope="module")
def content(world: World) -> BundleContent:
    from datetime import UTC, datetime

    with world.custody() as c:
        return collect(
            c,
            CASE,
            log_signer=c.log_signer(lambda _p: PASSPHRASE),
            now=datetime.now(UTC).replace(microsecond=0),
            with_media=True,
        )


# -- the tamper catalogue, as far as a browser can check it --------------------------------------


@dataclass(frozen=True)
class Ctx:
    world: World
    content: BundleContent
    desk: Path

    def copy(self, name: str) -> Path:
        assert self.world.bundle is not None
        return Path(shutil.copytree(self.world.bundle, self.desk / name))


Make = Callable[[Ctx, str], tuple[Path, str | None]]  # -> (bundle, key; None: the log's key)


def _flipped_media(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = media_of(b, x.world, "clip1")
    clips.flip_bit(path, b / "flipped.tmp")
    (b / "flipped.tmp").replace(path)
    return b, None


def _swapped_media(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    one, two = media_of(b, x.world, "clip1"), media_of(b, x.world, "clip2")
    a, c = one.read_bytes(), two.read_bytes()
    one.write_bytes(c)
    two.write_bytes(a)
    return b, None


def _edited_snapshot(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    probe = b / "items" / x.world.items["clip1"] / "probe"
    snap = parse_snapshot(probe.read_bytes())
    snap["format"]["tags"]["creation_time"] = "2020-01-01T00:00:00.000000Z"
    probe.write_bytes(canonical_json(snap))
    return b, None


def _edited_packet(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "items" / x.world.items["clip2"] / "framehash"
    lines = path.read_text().split("\n")
    k = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    fields = lines[k].split(", ")
    fields[5] = "0" * 64
    lines[k] = ", ".join(fields)
    path.write_text("\n".join(lines))
    return b, None


def _dropped_packet(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "items" / x.world.items["clip2"] / "framehash"
    lines = [line for line in path.read_text().split("\n") if line]
    path.write_text("\n".join(lines[:-1]) + "\n")
    return b, None


def _edited_trim_packet(x: Ctx, n: str) -> tuple[Path, str | None]:
    # The trim's packet list no longer follows its parent's (lineage, web/src/lineage.js).
    b = x.copy(n)
    path = b / "items" / x.world.items["clip3"] / "framehash"
    lines = path.read_text().split("\n")
    video = [i for i, line in enumerate(lines) if line.startswith("0,")]
    fields = lines[video[3]].split(", ")
    fields[5] = "0" * 64
    lines[video[3]] = ", ".join(fields)
    path.write_text("\n".join(lines))
    return b, None


def _edited_entry(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "entries" / f"{x.world.index['handoff']}.entry"
    path.write_bytes(path.read_bytes().replace(b"purpose forensic", b"purpose friendly"))
    return b, None


def _removed_entry(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    i = x.world.index["handoff"]
    (b / "entries" / f"{i}.entry").unlink()
    (b / "proofs" / f"{i}.tlog-proof").unlink()
    return b, None


def _reordered_entries(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    pa = b / "entries" / f"{x.world.index['handoff']}.entry"
    pb = b / "entries" / f"{x.world.index['access']}.entry"
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    return b, None


def _injected_entry(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("item", x.world.items["clip2"]),
        ("by", "bob"),
        ("purpose", "x"),
        ("action", "view"),
    ]
    extra = signed_by(x.world, Entry.build("access", now(), fields), "bob")
    (b / "entries" / "999.entry").write_bytes(extra)
    return b, None


def _proof_wrong_index(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    a, c = x.world.index["access"], x.world.index["handoff"]
    shutil.copy(b / "proofs" / f"{c}.tlog-proof", b / "proofs" / f"{a}.tlog-proof")
    return b, None


def _truncated_proof(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "proofs" / f"{x.world.index['access']}.tlog-proof"
    head, _, checkpoint = path.read_bytes().partition(b"\n\n")
    path.write_bytes(b"\n".join(head.split(b"\n")[:-1]) + b"\n\n" + checkpoint)
    return b, None


def _proof_cut_short(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "proofs" / f"{x.world.index['ingest1']}.tlog-proof"
    path.write_bytes(path.read_bytes()[:60])
    return b, None


def _replaced_checkpoint(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    with x.world.custody() as c:
        older = c.log.checkpoint_note(x.world.checkpoints[0])
    (b / "checkpoint.note").write_bytes(older)
    return b, None


def _forged_cosignature(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "checkpoint.note"
    lines = path.read_text().split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("— clerk "))
    sig = bytearray(lines[k].encode())
    sig[-5] = ord("A") if sig[-5] != ord("A") else ord("B")
    lines[k] = sig.decode()
    path.write_text("\n".join(lines))
    return b, None


def _edited_manifest(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "MANIFEST.json"
    doc = json.loads(path.read_text())
    doc["items"][0]["name"] = "innocent.mp4"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return b, None


def _edited_statement(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "statement.note"
    i = x.world.index["handoff"]
    text = path.read_text()
    line = next(t for t in text.split("\n") if t.startswith(f"entry {i} "))
    path.write_text(text.replace(line + "\n", ""))
    (b / "entries" / f"{i}.entry").unlink()
    return b, None


def _tampered_consistency(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    path = b / "consistency" / f"{x.world.checkpoints[0]}.json"
    doc = json.loads(path.read_text())
    doc["proof"][0] = doc["proof"][-1] if len(doc["proof"]) > 1 else "A" * 43 + "="
    path.write_text(json.dumps(doc))
    return b, None


def _added_file(x: Ctx, n: str) -> tuple[Path, str | None]:
    b = x.copy(n)
    (b / "items" / "addendum.txt").write_text("the defendant confessed\n")
    return b, None


def _wrong_log_key(x: Ctx, n: str) -> tuple[Path, str | None]:
    return x.copy(n), Signer.generate(ORIGIN).verifier_key.encode()


def _key_of_another_log(x: Ctx, n: str) -> tuple[Path, str | None]:
    return x.copy(n), Signer.generate("other.example/log").verifier_key.encode()


def _forged_signature(x: Ctx, n: str) -> tuple[Path, str | None]:
    i = x.world.index["access"]
    with x.world.custody() as c:
        original = c.store.entry(i)
    assert original is not None
    forged = original.replace(b"purpose examination", b"purpose copying for press")
    return forge(x.world, x.content, x.desk / n, replace={i: forged}), None


def _revoked_key(x: Ctx, n: str) -> tuple[Path, str | None]:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("item", x.world.items["clip2"]),
        ("by", "dave"),
        ("purpose", "peek"),
        ("action", "view"),
    ]
    late = signed_by(x.world, Entry.build("access", now(), fields), "dave")
    return forge(x.world, x.content, x.desk / n, append=[late]), None


def _non_holder_handoff(x: Ctx, n: str) -> tuple[Path, str | None]:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("item", x.world.items["clip1"]),
        ("from", "bob"),
        ("to", "clerk"),
        ("purpose", "filing"),
        ("offer", "5" * 32),
    ]
    handoff = signed_by(x.world, Entry.build("handoff", now(), fields), "bob", "clerk")
    return forge(x.world, x.content, x.desk / n, append=[handoff]), None


def _consent_exceeded(x: Ctx, n: str) -> tuple[Path, str | None]:
    after = Entry(
        "access",
        "2100-01-05T10:00:00Z",
        (
            ("case", CASE),
            ("item", x.world.items["clip1"]),
            ("by", "carol"),
            ("purpose", "documentary"),
            ("action", "view"),
        ),
    )
    out = forge(x.world, x.content, x.desk / n, append=[signed_by(x.world, after, "carol")])
    return out, None


def _zip_traversal(x: Ctx, n: str) -> tuple[Path, str | None]:
    extra = [(zipfile.ZipInfo("../../home/counsel/.bashrc"), b"rm -rf ~\n")]
    return zipped(x.copy(n), x.desk / f"{n}.zip", extra), None


def _zip_absolute(x: Ctx, n: str) -> tuple[Path, str | None]:
    extra = [(zipfile.ZipInfo("/etc/cron.d/x"), b"x\n")]
    return zipped(x.copy(n), x.desk / f"{n}.zip", extra), None


def _zip_symlink(x: Ctx, n: str) -> tuple[Path, str | None]:
    link = zipfile.ZipInfo("items/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zipped(x.copy(n), x.desk / f"{n}.zip", [(link, b"/etc/passwd")]), None


def _zip_bomb(x: Ctx, n: str) -> tuple[Path, str | None]:
    bomb = zipfile.ZipInfo("report/notes.txt")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    return zipped(x.copy(n), x.desk / f"{n}.zip", [(bomb, bytes(16 << 20))]), None


def _not_a_bundle(x: Ctx, n: str) -> tuple[Path, str | None]:
    holiday = x.desk / n
    holiday.mkdir()
    (holiday / "photo.jpg").write_bytes(b"\xff\xd8")
    return holiday, None


# name -> (how to make it, the words verify-bundle uses for it: both must show them)
CATALOGUE: dict[str, tuple[Make, str]] = {
    "flipped-media-byte": (_flipped_media, "is not the file of exhibit"),
    "swapped-media": (_swapped_media, "the media files were swapped"),
    "edited-metadata-snapshot": (_edited_snapshot, "the snapshot was altered"),
    "edited-packet-list": (_edited_packet, "was altered after export"),
    "dropped-packet": (_dropped_packet, "(framehash, streamhash) give content digest"),
    "edited-trim-packet": (_edited_trim_packet, "is recorded as a trim of"),
    "edited-entry": (_edited_entry, "the entry was altered after export"),
    "removed-entry": (_removed_entry, "an entry was removed from the bundle"),
    "reordered-entries": (_reordered_entries, "the entries were reordered"),
    "injected-entry": (_injected_entry, "is not in the log's signed bundle statement"),
    "proof-for-wrong-index": (_proof_wrong_index, "is a proof for log entry"),
    "truncated-proof": (_truncated_proof, "does not verify"),
    "proof-cut-short": (_proof_cut_short, "is not a valid tlog-proof (truncated or altered)"),
    "replaced-checkpoint": (_replaced_checkpoint, "was replaced: it is the log's checkpoint"),
    "forged-cosignature": (_forged_cosignature, "a witness cosignature does not verify"),
    "edited-manifest": (_edited_manifest, "was altered after export: its SHA-256 is"),
    "edited-statement": (_edited_statement, "signature on the bundle statement does not verify"),
    "tampered-consistency": (_tampered_consistency, "is not consistent with the bundle's"),
    "added-file": (_added_file, "is not part of the export"),
    "wrong-log-key": (_wrong_log_key, "is not signed by the trusted log key"),
    "key-of-another-log": (_key_of_another_log, "none of the keys"),
    "forged-signature": (_forged_signature, "signature by 'carol' does not verify"),
    "revoked-key": (_revoked_key, "with a key revoked: laptop stolen at entry"),
    "handoff-by-non-holder": (_non_holder_handoff, "the current holder is 'carol'"),
    "consent-scope-exceeded": (_consent_exceeded, "outside the owner's consent for"),
    "zip-path-traversal": (_zip_traversal, "climbs out of the bundle ('..')"),
    "zip-absolute-path": (_zip_absolute, "is an absolute path"),
    "zip-symbolic-link": (_zip_symlink, "is a symbolic link: refusing it"),
    "zip-bomb": (_zip_bomb, "zip bomb"),
    "not-a-bundle": (_not_a_bundle, "is not a custody bundle"),
}


@dataclass(frozen=True)
class Python:
    """What `custody verify-bundle --no-probe --json` said."""

    code: int
    error: str  # the one-line error, without "custody: error: "
    failures: list[dict[str, object]]  # --json's failures (empty when it stopped early)


def python_verdict(path: Path, key: str, seen: Path) -> Python:
    """verify-bundle as counsel runs it, with a seen store of its own (as the page, which
    remembers nothing between visits, has none)."""
    args = ["verify-bundle", str(path), "--trust", key, "--no-probe", "--json"]
    r = invoke(*args, "--seen", str(seen))
    failures: list[dict[str, object]] = []
    if r.stdout.strip():
        failures = list(json.loads(r.stdout).get("failures", []))
    error = r.stderr.split("\n", 1)[0].removeprefix("custody: error: ")
    return Python(r.code, error, failures)


def headline(message: str) -> str:
    """verify-bundle's own sentence: a message up to its first ': ' (what follows is a
    parser's reason, e.g. how many hashes a proof lacks, worded by each implementation)."""
    return message.split(": ", 1)[0]


def after_name(text: str, path: Path) -> str:
    """What a message says after naming the bundle (`/x/y/b.zip: ...`, `b.zip: ...`)."""
    for name in (str(path), path.name):
        if name in text:
            return text.split(name, 1)[1].lstrip(": ").removeprefix("is ").strip()
    return text


@pytest.fixture(scope="module")
def catalogue(
    page: Page,  # first: without a browser, skip before building anything
    world: World,
    content: BundleContent,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Python, Outcome]]]:
    """Every case built, verified by custody verify-bundle and by the page: once."""
    desk = tmp_path_factory.mktemp("browser-tamper")
    ctx = Ctx(world, content, desk)
    results: dict[str, tuple[Python, Outcome]] = {}
    paths.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(desk)
        mp.setenv("CUSTODY_HOME", str(desk / "no-such-home"))
        mp.setenv("CUSTODY_SEEN", str(desk / "seen"))
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])
        for name, (make, _words) in CATALOGUE.items():
            path, key = make(ctx, name)
            key = key or world.vkey
            py = python_verdict(path, key, desk / f"seen-{name}")
            results[name] = (py, page.verify(path, key))
            paths[name] = path
    yield results


paths: dict[str, Path] = {}  # case -> the bundle the catalogue fixture built for it


# -- the page itself ------------------------------------------------------------------------------


def test_the_page_is_one_file_under_300_kb_with_a_csp_forbidding_the_network() -> None:
    if not PAGE.is_file():
        pytest.fail("custody/assets/verify.html is not built: run `make web`")
    data = PAGE.read_bytes()
    assert len(data) < PAGE_LIMIT, f"{len(data):,} bytes"
    text = data.decode("utf-8")
    lower = text.lower()
    # One self-contained file: nothing loaded from elsewhere.
    for outside in ("<script src", "<link ", "@import", "<iframe", 'http-equiv="refresh"'):
        assert outside not in lower, outside
    assert 'http-equiv="content-security-policy"' in lower
    csp = text[lower.index('http-equiv="content-security-policy"') :].split(">", 1)[0]
    assert "default-src 'none'" in csp and "connect-src" not in csp, csp


def test_a_genuine_bundle_folder_is_verified_with_no_network_request(
    page: Page, world: World
) -> None:
    assert world.bundle is not None
    out = page.verify(world.bundle, world.vkey)
    assert out.verdict == "VERIFIED", out.texts()
    assert out.problems == []
    assert page.foreign_requests() == []
    assert any(u.startswith("file:") for u in page.requests), "the performance log saw nothing"


def test_the_verdict_shows_the_evidence_and_what_only_custody_can_check(
    page: Page, world: World
) -> None:
    assert world.bundle is not None
    out = page.verify(world.bundle, world.vkey)
    assert out.verdict == "VERIFIED", out.texts()
    # Per exhibit, its digest, who ingested it and who holds it; who cosigned.
    for item in world.items.values():
        assert item in out.body, item
    for party in ("bob", "carol", "clerk"):  # ingested, holds, cosigned
        assert party in out.body, party
    # What needs ffmpeg is listed as not checked, never as passed.
    note = "not checked here: run custody verify-bundle"
    assert "its derivation (trim)" not in out.body  # a trim is checked from its packet lists
    assert "contiguous excerpt: stream 0 (video): parent packets" in out.body
    assert f"re-probing the file with ffprobe: {note}" in out.body


def test_a_genuine_bundle_zip_is_verified(page: Page, world: World, tmp_path: Path) -> None:
    assert world.bundle is not None
    z = zipped(world.bundle, tmp_path / "bundle.zip")
    out = page.verify(z, world.vkey)
    assert out.verdict == "VERIFIED", out.texts()
    assert page.foreign_requests() == []


def test_the_bundle_statement_lists_what_the_page_checked(world: World) -> None:
    # The genuine bundle the page verified is the one the Python tests describe:
    # a guard that the world has the parts the catalogue tampers with.
    assert world.bundle is not None
    m = manifest_of(world.bundle)
    assert m.consistency == (world.checkpoints[0],)
    assert {"ingest", "consent", "handoff", "access", "derive"} <= {e.type for e in m.entries}


# -- the catalogue: the page and verify-bundle agree ---------------------------------------------


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_the_page_and_verify_bundle_agree(
    case: str, catalogue: dict[str, tuple[Python, Outcome]]
) -> None:
    py, out = catalogue[case]
    words = CATALOGUE[case][1]
    assert py.code in (1, 3), py  # NOT VERIFIED (1), or not a bundle at all (3)
    assert words in py.error or any(words in str(f["message"]) for f in py.failures), py
    assert out.verdict == "NOT VERIFIED", (case, out.texts())
    assert out.problems, "NOT VERIFIED with no problem listed"
    page_text = "\n".join(out.texts())
    assert words in page_text, (words, out.texts())
    if py.failures:
        # The same failures: each (check, where) of verify-bundle's, none other, each
        # line in its words: `where: message`.
        want = {(str(f["check"]), str(f["where"])): str(f["message"]) for f in py.failures}
        got = {(p["check"], p["where"]): p["text"] for p in out.problems}
        assert sorted(got) == sorted(want), (sorted(want), sorted(got))
        for (check, where), message in want.items():
            line = got[(check, where)]
            assert line.startswith(f"{where}: "), line
            assert headline(line.removeprefix(f"{where}: ")) == headline(message), (line, message)
    else:
        # verify-bundle stopped before any check (an unsafe zip, not a bundle): one
        # problem, saying the same after naming the bundle.
        assert len(out.problems) == 1, out.texts()
        path = paths[case]
        mine, theirs = after_name(out.texts()[0], path), after_name(py.error, path)
        assert headline(mine) == headline(theirs), (theirs, mine)


def test_the_whole_catalogue_made_no_network_request(
    page: Page, catalogue: dict[str, tuple[Python, Outcome]]
) -> None:
    assert len(catalogue) == len(CATALOGUE)
    assert page.foreign_requests() == []
