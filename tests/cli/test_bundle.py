"""Defence bundles end to end: export on one home, verify with no home at all.

One module-scoped "world" (a log with consent, a two-party handoff, an access, a
derived trim, a revoked key, two checkpoints and a court clerk's cosignature,
on real clips made by ffmpeg) is exported once; each test copies what it needs.
`build_world` is shared with tests/test_bundle_tamper.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke

from custody.app.home import Custody
from custody.bundle.verify import Manifest, Statement
from custody.infra import ffmpeg as media
from custody.infra.vault import Vault
from custody.model.entry import Entry, sign_entry
from custody.tlog.note import Note, Signer

CASE = "2026-0142"
ORIGIN = "test.example/custody"


def ok(*args: str) -> str:
    r = invoke(*args)
    assert r.code == 0, r
    return r.stdout


@dataclass
class World:
    """A custody home with a realistic case, and what the tests need to know about it."""

    root: Path
    home: Path
    vkey: str
    items: dict[str, str] = field(default_factory=dict)  # clip1, clip2, clip3 -> BLAKE3
    index: dict[str, int] = field(default_factory=dict)  # event -> log index
    checkpoints: list[int] = field(default_factory=list)
    bundle: Path | None = None

    def custody(self) -> Custody:
        return Custody.open(self.home)

    def signer(self, c: Custody, name: str) -> Signer:
        return c.keystore.unlock(name, lambda _prompt: PASSPHRASE)

    def append(self, name: str, entry: Entry, *signers: str) -> int:
        with self.custody() as c:
            data = sign_entry(entry, [self.signer(c, s) for s in signers])
            index = c.log.append(data)
        self.index[name] = index
        return index

    def checkpoint(self) -> bytes:
        note = invoke("log", "checkpoint", "--home", str(self.home)).stdout_bytes
        size = int(Note.parse(note).text.split("\n")[1])
        self.checkpoints.append(size)
        return note


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def build_world(root: Path) -> World:
    """Build the case (needs CUSTODY_PASSPHRASE and CUSTODY_KDF_PROFILE=fast set)."""
    home = root / "agency"
    h = str(home)
    ok("init", "--home", h, "--origin", ORIGIN)
    for name, role in (
        ("alice", "owner"),
        ("bob", "agency"),
        ("carol", "lab"),
        ("clerk", "court"),
        ("dave", "lab"),
    ):
        ok("key", "new", name, "--role", role, "--home", h)
    vkey = ok("log", "key", "--home", h).strip()
    w = World(root, home, vkey)
    footage = root / "footage"
    door = clips.make_clip(footage / "doorbell.mp4")
    porch = clips.make_clip(footage / "porch.mp4", pattern="smptebars", frequency=880)
    trim = clips.trim_copy(door, footage / "doorbell-excerpt.mp4", 0.0, 1.0)
    notes = clips.write_sidecar_json(footage / "export-info.json")
    ok("case", "new", CASE, "--home", h)
    for clip, basis, ref in (
        (door, "consent", "CONSENT-1"),
        (porch, "warrant", "W-7"),
        (notes, "warrant", "W-7"),
    ):
        ok(
            "ingest",
            str(clip),
            "--case",
            CASE,
            "--by",
            "bob",
            "--legal-basis",
            basis,
            "--ref",
            ref,
            "--home",
            h,
        )
    with w.custody() as c:
        rows = {r.name: r for r in c.store.items_in_case(CASE)}
        w.items["clip1"] = rows["doorbell.mp4"].blake3
        w.items["clip2"] = rows["porch.mp4"].blake3
        w.index["ingest1"] = rows["doorbell.mp4"].ingest_idx
        w.index["ingest2"] = rows["porch.mp4"].ingest_idx
        w.items["notes"] = rows["export-info.json"].blake3
    clip1 = w.items["clip1"]
    w.append(
        "consent",
        Entry.build(
            "consent",
            _now(),
            [
                ("action", "grant"),
                ("owner", "alice"),
                ("case", CASE),
                ("purpose", "burglary investigation"),
                ("until", "2099-12-31"),
                ("onward", "any"),
            ],
        ),
        "alice",
    )
    w.checkpoint()
    w.append(
        "handoff",
        Entry.build(
            "handoff",
            _now(),
            [
                ("case", CASE),
                ("item", clip1),
                ("from", "bob"),
                ("to", "carol"),
                ("purpose", "forensic examination"),
                ("authority", "W-7"),
                ("offer", secrets.token_hex(16)),
            ],
        ),
        "bob",
        "carol",
    )
    w.append(
        "access",
        Entry.build(
            "access",
            _now(),
            [
                ("case", CASE),
                ("item", clip1),
                ("by", "carol"),
                ("purpose", "examination"),
                ("action", "view"),
            ],
        ),
        "carol",
    )
    # A trim made with ffmpeg -c copy, recorded as custody's derive would record it.
    with w.custody() as c:
        stored = Vault(c.home.vault_root).put_file(trim)
        info = media.probe(stored.path)
        assert info is not None
        for kind, data in info.sidecars().items():
            Vault(c.home.vault_root).put_sidecar(stored.digests.blake3_hex, kind, data)
    w.items["clip3"] = stored.digests.blake3_hex
    w.append(
        "derive",
        Entry.build(
            "derive",
            _now(),
            [
                ("case", CASE),
                ("parent", clip1),
                ("item", stored.digests.blake3_hex),
                ("exhibit", f"{CASE}/0004"),
                ("name", "doorbell-excerpt.mp4"),
                ("size", stored.digests.size),
                ("kind", "media"),
                ("metadata", info.metadata_digest),
                ("content", info.content_digest),
                *(
                    ("stream", f"{s.index} {s.codec_type} {s.codec_name} {s.packets} {s.digest}")
                    for s in info.streams
                ),
                ("op", "trim"),
                ("param", "start 00:00:00.000"),
                ("param", "end 00:00:01.000"),
                ("tool", info.tool),
                ("reason", "the moment of the break-in, for the jury"),
                ("by", "carol"),
            ],
        ),
        "carol",
    )
    w.append(
        "revoke",
        Entry.build(
            "key", _now(), [("action", "revoke"), ("party", "dave"), ("reason", "laptop stolen")]
        ),
        "dave",
    )
    note = w.checkpoint()
    (root / "cp.note").write_bytes(note)
    ok(
        "witness",
        "cosign",
        str(root / "cp.note"),
        "--key",
        "clerk",
        "--log-key",
        vkey,
        "--out",
        str(root / "cp.cosigned"),
        "--home",
        h,
    )
    ok("log", "add-cosignature", str(root / "cp.cosigned"), "--home", h)
    w.bundle = root / "bundle"
    ok("export", CASE, "--to", str(w.bundle), "--with-media", "--home", h)
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        root = tmp_path_factory.mktemp("world")
        mp.setenv("CUSTODY_HOME", str(root / "agency"))
        yield build_world(root)


@pytest.fixture
def counsel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Defence counsel's machine: a fresh directory, no custody home, its own seen store."""
    desk = tmp_path / "counsel"
    desk.mkdir()
    monkeypatch.chdir(desk)
    monkeypatch.setenv("CUSTODY_HOME", str(desk / "no-such-home"))
    monkeypatch.setenv("CUSTODY_SEEN", str(desk / "seen"))
    return desk


@pytest.fixture
def no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports without the human report (tested in test_export_writes_the_layout_of_the_spec
    and by tests/test_report.py): rendering thumbnails and a PDF takes a second each time."""
    import custody.app.export

    monkeypatch.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])


def copy_bundle(world: World, dst: Path) -> Path:
    assert world.bundle is not None
    shutil.copytree(world.bundle, dst)
    return dst


# -- export ----------------------------------------------------------------------------------


def test_export_writes_the_layout_of_the_spec(world: World) -> None:
    b = world.bundle
    assert b is not None
    manifest = Manifest.parse((b / "MANIFEST.json").read_bytes())
    statement = Statement.parse(Note.parse((b / "statement.note").read_bytes()).text)
    assert statement.origin == ORIGIN and statement.case == CASE
    # Every entry of the case, and the key entries of the parties it needs (spec §2.1):
    # alice, bob and carol sign its entries, the clerk cosigned its checkpoint.  Dave,
    # registered and revoked on the same log but no part of the case, is left out.
    types = [e.type for e in manifest.entries]
    assert types.count("key") == 4
    assert world.index["revoke"] not in {e.index for e in manifest.entries}
    assert sorted(t for t in types if t != "key") == sorted(
        ["ingest", "ingest", "ingest", "consent", "handoff", "access", "derive"]
    )
    assert [(e.index, e.hash) for e in manifest.entries] == list(statement.entries)
    # One checkpoint, cosigned by the clerk; a consistency proof from the first one.
    assert statement.size == world.checkpoints[-1]
    assert manifest.consistency == (world.checkpoints[0],)
    assert "— clerk " in (b / "checkpoint.note").read_text()
    # Sidecars for all three items, media for all three, the parties, VERIFY.md.
    assert {i.item for i in manifest.items} == set(world.items.values())
    for item in manifest.items:
        assert item.media is not None and (b / item.media).is_file()
        kinds = {k for k, _ in item.sidecars}
        if item.kind == "media":
            assert kinds == {"probe", "framehash", "streamhash"}
        else:  # the JSON export notes: an attachment, checked by its BLAKE3 alone
            assert item.item == world.items["notes"] and kinds == set()
    assert {p.name for p in manifest.parties} == {"alice", "bob", "carol", "clerk"}
    assert all(p.ended_at is None and p.end is None for p in manifest.parties)
    listed = set(manifest.files) | {"MANIFEST.json", "statement.note"}
    on_disk = {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()}
    assert listed == on_disk
    # The human report rides along when this custody has one (custody.report.court).
    try:
        import custody.report.court  # noqa: F401
    except ModuleNotFoundError:
        assert manifest.report == ()
    else:
        assert manifest.report == ("report/report.html", "report/report.pdf")
    text = (b / "VERIFY.md").read_text()
    assert world.vkey in text and "custody verify-bundle" in text and "tlog.CheckRecord" in text


def test_bundle_verifies_on_a_machine_with_no_custody_home(
    world: World, counsel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from custody.infra.store import Store

    def no_database(*_a: object, **_k: object) -> None:
        raise AssertionError("verify-bundle must not open a database")

    monkeypatch.setattr(Store, "open", no_database)
    b = copy_bundle(world, counsel / "bundle")
    r = invoke("verify-bundle", str(b), "--trust", world.vkey)
    assert r.code == 0, r
    out = r.stdout
    assert out.rstrip().endswith("VERIFIED")
    assert "cosigned by clerk (court)" in out
    assert f"exhibit {CASE}/0001  doorbell.mp4" in out
    assert "holders: bob (ingest, entry" in out and "-> carol (handoff from bob" in out
    assert "an excerpt of 2026-0142/0001: contiguous excerpt" in out
    assert f"exhibit {CASE}/0003  export-info.json  (attachment" in out
    assert "re-probed with ffmpeg" in out and "file bit-for-bit as recorded" in out
    assert "consistent with the log's earlier checkpoints" in out
    assert not (counsel / "no-such-home").exists()


def test_zip_bundle_verifies_and_reports_json(world: World, counsel: Path, no_report: None) -> None:
    z = counsel / "bundle.zip"
    invoke("export", CASE, "--to", str(z), "--with-media", "--home", str(world.home))
    assert z.is_file()
    r = invoke("verify-bundle", str(z), "--trust", world.vkey, "--json", "--no-probe")
    assert r.code == 0, r
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "VERIFIED" and doc["failures"] == []
    assert doc["checkpoint"]["cosignatures"][0]["name"] == "clerk"
    by_exhibit = {i["exhibit"]: i for i in doc["items"]}
    clip1 = by_exhibit[f"{CASE}/0001"]
    assert [h["party"] for h in clip1["holders"]] == ["bob", "carol"]
    assert {e["type"] for e in clip1["events"]} >= {"ingest", "handoff", "access", "derive"}
    assert by_exhibit[f"{CASE}/0004"]["parent"] == world.items["clip1"]
    assert by_exhibit[f"{CASE}/0003"]["verified"] and by_exhibit[f"{CASE}/0003"]["media"]


def test_verify_refuses_without_trusted_keys_and_warns_loudly_with_bundle_keys(
    world: World, counsel: Path
) -> None:
    b = copy_bundle(world, counsel / "bundle")
    r = invoke("verify-bundle", str(b))
    assert r.code == 2 and "needs the log's verifier key" in r.stderr, r
    r = invoke("verify-bundle", str(b), "--trust-bundle-keys", "--no-probe")
    assert r.code == 0, r
    assert r.stderr.startswith("WARNING: --trust-bundle-keys")
    assert "TAKEN FROM THE BUNDLE ITSELF" in r.stdout
    # Self-asserted keys are never remembered as seen.
    assert "not recorded as seen" in r.stdout
    r = invoke("verify-bundle", str(b), "--trust", world.vkey, "--trust-bundle-keys")
    assert r.code == 2, r


def test_trust_accepts_a_key_file_and_party_keys(world: World, counsel: Path) -> None:
    b = copy_bundle(world, counsel / "bundle")
    bob = ok("key", "show", "bob", "--home", str(world.home)).strip()
    keys = counsel / "keys.txt"
    keys.write_text(f"# from the agency's letter\n{world.vkey}\n{bob}\n")
    r = invoke("verify-bundle", str(b), "--trust", str(keys), "--no-probe")
    assert r.code == 0, r


def test_export_without_media_still_checks_every_sidecar(
    world: World, counsel: Path, no_report: None
) -> None:
    b = counsel / "nomedia"
    ok("export", CASE, "--to", str(b), "--home", str(world.home))
    assert not (b / "media").exists()
    r = invoke("verify-bundle", str(b), "--trust", world.vkey)
    assert r.code == 0, r
    assert "metadata snapshot and packet lists match log entry" in r.stdout
    assert "the file itself is not in the bundle" in r.stdout


def test_export_items_takes_the_whole_entangled_history(
    world: World, counsel: Path, no_report: None
) -> None:
    b = counsel / "porch-only"
    ok("export", CASE, "--to", str(b), "--items", f"{CASE}/0002", "--home", str(world.home))
    m = Manifest.parse((b / "MANIFEST.json").read_bytes())
    assert [i.item for i in m.items] == [world.items["clip2"]]
    indexes = {e.index for e in m.entries}
    assert world.index["consent"] in indexes  # case-wide: names no item
    assert world.index["handoff"] not in indexes and world.index["derive"] not in indexes
    assert invoke("verify-bundle", str(b), "--trust", world.vkey).code == 0
    # The excerpt brings its parent and the parent's handoff (the rules need them).
    b = counsel / "excerpt"
    ok(
        "export",
        CASE,
        "--to",
        str(b),
        "--items",
        world.items["clip3"][:12],
        "--home",
        str(world.home),
    )
    m = Manifest.parse((b / "MANIFEST.json").read_bytes())
    assert {i.item for i in m.items} == {world.items["clip1"], world.items["clip3"]}
    assert world.index["handoff"] in {e.index for e in m.entries}
    assert invoke("verify-bundle", str(b), "--trust", world.vkey, "--no-probe").code == 0


def test_export_refuses_an_existing_path_and_an_unknown_case(
    world: World, counsel: Path, cli: type
) -> None:
    assert world.bundle is not None
    r = cli.fail(2, "export", CASE, "--to", str(world.bundle), "--home", str(world.home))
    assert "already exists" in r.stderr
    r = cli.fail(3, "export", "NOPE", "--to", str(counsel / "x"), "--home", str(world.home))
    assert "no entries for case NOPE" in r.stderr
    r = cli.fail(
        3,
        "export",
        CASE,
        "--to",
        str(counsel / "y"),
        "--items",
        f"{CASE}/0099",
        "--home",
        str(world.home),
    )
    assert "has no item" in r.stderr


def test_seen_checkpoints_accept_a_log_that_only_grew(
    world: World, counsel: Path, no_report: None
) -> None:
    b = copy_bundle(world, counsel / "first")
    r = invoke("verify-bundle", str(b), "--trust", world.vkey, "--no-probe")
    assert r.code == 0 and "recorded as seen" in r.stdout, r
    r = invoke("verify-bundle", str(b), "--trust", world.vkey, "--no-probe")
    assert "size " + str(world.checkpoints[-1]) + ": the same checkpoint" in r.stdout
    # The log grows (one more access) and a newer bundle is exported: consistent.
    grown = World(world.root, counsel / "agency-later", world.vkey, dict(world.items))
    shutil.copytree(world.home, grown.home)
    with grown.custody() as c:
        clip3 = world.items["clip3"]
        entry = Entry.build(
            "access",
            _now(),
            [
                ("case", CASE),
                ("item", clip3),
                ("by", "carol"),
                ("purpose", "review"),
                ("action", "view"),
            ],
        )
        c.log.append(sign_entry(entry, [grown.signer(c, "carol")]))
    newer = counsel / "newer"
    ok("export", CASE, "--to", str(newer), "--home", str(grown.home))
    r = invoke("verify-bundle", str(newer), "--trust", world.vkey, "--no-probe")
    assert r.code == 0, r
    assert f"size {world.checkpoints[-1]}: consistent (proof verified)" in r.stdout
    # The older bundle, checked again after the newer one: matches what was recorded.
    r = invoke("verify-bundle", str(b), "--trust", world.vkey, "--no-probe")
    assert r.code == 0, r
    assert "older than size" in r.stdout and "identical to the checkpoint" in r.stdout


# -- an independent verifier: the Go program of docs/verify-bundle.md ----------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "verify-bundle.md"
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="module")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the Go program printed in docs/verify-bundle.md (x/mod note + tlog only)."""
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain (`go`) is not installed")
    if not (GOPATH / "src/golang.org/x/mod/sumdb/tlog/tlog.go").is_file():
        pytest.skip(f"golang.org/x/mod is not installed under {GOPATH}")
    text = DOC.read_text()
    source = text.split("```go\n", 1)[1].split("```", 1)[0]
    out = tmp_path_factory.mktemp("go-bundle")
    (out / "verify_bundle.go").write_text(source)
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOFLAGS": "",
        "GOCACHE": str(out / "cache"),
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        ["go", "build", "-o", str(out / "verify_bundle"), str(out / "verify_bundle.go")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"go build of the program in docs/verify-bundle.md failed:\n{result.stderr}")
    return out / "verify_bundle"


def test_the_documented_go_verifier_agrees(world: World, go_verifier: Path, tmp_path: Path) -> None:
    b = copy_bundle(world, tmp_path / "bundle")
    run = [str(go_verifier), str(b), world.vkey]
    result = subprocess.run(run, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    n = len(Manifest.parse((b / "MANIFEST.json").read_bytes()).entries)
    assert result.stdout.startswith(f"OK: {n} entries in the log's tree of {world.checkpoints[-1]}")
    entry = b / "entries" / f"{world.index['handoff']}.entry"
    entry.write_bytes(entry.read_bytes().replace(b"forensic", b"friendly"))
    result = subprocess.run(run, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "altered after export" in result.stderr
    # The same bundle as a ZIP, with the folder members custody's own zips hold.
    assert world.bundle is not None
    z = tmp_path / "bundle.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(world.bundle.rglob("*")):
            rel = path.relative_to(world.bundle).as_posix()
            zf.write(path, rel + "/" if path.is_dir() else rel)
    result = subprocess.run(
        [str(go_verifier), str(z), world.vkey], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {n} entries in the log's tree of")
    # A file the manifest does not list was injected: the Go program now sees it.
    b2 = copy_bundle(world, tmp_path / "injected")
    (b2 / "entries" / "999.entry").write_bytes(b"custody/entry/v1\n")
    result = subprocess.run(
        [str(go_verifier), str(b2), world.vkey], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "not listed in the manifest" in result.stderr


# -- the pure formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("entries/7.entry", None),
        ("items/ab12/framehash", None),
        ("../x", "climbs out"),
        ("a/../../x", "climbs out"),
        ("/etc/passwd", "absolute"),
        ("C:x", "absolute"),
        ("a\\b", "backslash"),
        ("a//b", "not a name custody writes"),
        (".hidden", "not a name custody writes"),
        ("a/b/c/d/e/f/g/h/i", "not a name custody writes"),
        ("", "empty"),
    ],
)
def test_bundle_paths(name: str, why: str | None) -> None:
    from custody.bundle.verify import UnsafeBundleError, check_bundle_path

    if why is None:
        assert check_bundle_path(name) == name
    else:
        with pytest.raises(UnsafeBundleError, match=why):
            check_bundle_path(name)


def test_statement_round_trips_and_refuses_anything_else() -> None:
    from custody.errors import FormatError

    st = Statement(ORIGIN, CASE, "2026-11-30T09:00:00Z", 9, bytes(32), "a" * 64, ((0, "b" * 64),))
    assert Statement.parse(st.text()) == st
    for bad, why in (
        (st.text().replace("case ", "case  "), "not one word|canonical"),
        (st.text().replace("custody/bundle-statement/v1", "custody/bundle-statement/v2"), "start"),
        (st.text() + "entry 12 " + "c" * 64 + "\n", "beyond the checkpoint"),
        (st.text() + "entry 0 " + "c" * 64 + "\n", "out of order"),
        (st.text() + "note hello\n", "is not 'entry"),
    ):
        with pytest.raises(FormatError, match=why):
            Statement.parse(bad)


def test_manifest_parsing_is_strict(world: World) -> None:
    from custody.bundle.verify import ConsistencyFile, load_json
    from custody.errors import FormatError

    assert world.bundle is not None
    raw = (world.bundle / "MANIFEST.json").read_bytes()
    m = Manifest.parse(raw)
    assert Manifest.parse(m.encode()) == m and m.encode() == raw
    for change, why in (
        (lambda d: d.update(version="custody/bundle/v9"), "this custody reads"),
        (lambda d: d["files"].pop("VERIFY.md"), "is named but not listed"),
        (lambda d: d["items"][0].update(media="../../etc/passwd"), "climbs out"),
        (lambda d: d["entries"][0].update(index=True), "not a non-negative integer"),
    ):
        bad = json.loads(raw)
        change(bad)
        with pytest.raises(FormatError, match=why):
            Manifest.parse(json.dumps(bad).encode())
    with pytest.raises(FormatError, match="twice"):
        load_json(b'{"a": 1, "a": 2}', "x")
    with pytest.raises(FormatError, match="NaN"):
        load_json(b'{"a": NaN}', "x")
    # The consistency files are `custody log consistency --json` plus the old checkpoint.
    cf = ConsistencyFile.parse(
        (world.bundle / "consistency" / f"{world.checkpoints[0]}.json").read_bytes()
    )
    assert (cf.old_size, cf.new_size) == (world.checkpoints[0], world.checkpoints[-1])
    assert ConsistencyFile.parse(cf.to_json()) == cf
