"""The browser verifier (web/, custody/assets/verify.html; issue 14) without a browser.

- its pure modules (web/src/merkle.js, note.js, tlog.js) in node, on the transparency-dev
  Merkle vectors (../shared/vectors/merkle; skipped, visibly, where absent) and on signed
  notes, checkpoints, cosignatures, tlog-proofs and Merkle proofs made by custody's code;
- its whole `verifyBundle` in node (web/test/verify-node.mjs) against `custody
  verify-bundle` on a real exported bundle, folder and zip, genuine and tampered;
- the shipped page: under 300 KB, the Content-Security-Policy, the stable ids, the same
  bytes a rebuild gives, `custody verifier-page`, and its copy in every bundle.

The Chromium tests are tests/browser/test_browser_verifier.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunnerNS

from custody.bundle.page import VERIFIER_PAGE, verifier_page
from custody.tlog.checkpoint import Checkpoint, cosign, cosignature_verifier_key, sign_checkpoint
from custody.tlog.merkle import MemoryTree, leaf_hash
from custody.tlog.note import Signer, sign_note
from custody.tlog.tlogproof import TlogProof

REPO = Path(__file__).resolve().parents[3]
WEB = REPO / "web"
PAGE = REPO / "custody" / "assets" / "verify.html"
NODE = shutil.which("node")
HAS_DEPS = (WEB / "node_modules" / "hash-wasm").is_dir() and (
    WEB / "node_modules" / "esbuild"
).is_dir()
needs_node = pytest.mark.skipif(
    NODE is None or not HAS_DEPS, reason="node and web/node_modules (run `make web`) are needed"
)
CUSTODY = str(Path(sys.executable).parent / "custody")  # the venv's console script
VECTORS = Path(os.environ.get("CUSTODY_VECTORS") or REPO.parent / "shared" / "vectors") / "merkle"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _node(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def _cases(tmp: Path) -> Path:
    """Notes, a cosigned checkpoint, a tlog-proof and Merkle proofs, all made by custody."""
    tree = MemoryTree()
    entries = [f"entry {i}\n".encode() for i in range(13)]
    for e in entries:
        tree.append(e)
    inclusion = [
        {
            "index": i,
            "size": n,
            "leaf": _b64(leaf_hash(entries[i])),
            "proof": [_b64(h) for h in tree.inclusion_proof(i, n)],
            "root": _b64(tree.root(n)),
        }
        for n in range(1, 14)
        for i in range(n)
    ]
    consistency = [
        {
            "size1": a,
            "size2": b,
            "root1": _b64(tree.root(a)),
            "root2": _b64(tree.root(b)),
            "proof": [_b64(h) for h in tree.consistency_proof(a, b)],
        }
        for b in range(1, 14)
        for a in range(1, b + 1)
    ]
    alice, other = Signer.generate("test.example/alice"), Signer.generate("test.example/alice")
    text = "custody/entry/v1\ntype example\ntime 2026-01-01T00:00:00Z\nnote a signed note\n"
    log = Signer.generate("test.example/custody")
    witness = Signer.generate("test.example/witness")
    cp = Checkpoint("test.example/custody", 13, tree.root(13))
    cp_note = cosign(sign_checkpoint(cp, log), witness, 1767225600)
    proof = TlogProof(5, tuple(tree.inclusion_proof(5, 13)), cp_note).encode()
    cases: dict[str, Any] = {
        "inclusion": inclusion,
        "consistency": consistency,
        "leaves": [{"data": e.decode(), "hash": leaf_hash(e).hex()} for e in entries],
        "note": {
            "vkey": alice.verifier_key.encode(),
            "other_vkey": other.verifier_key.encode(),
            "text": text,
            "note": sign_note(text, [alice]).decode(),
        },
        "checkpoint": {
            "log_vkey": log.verifier_key.encode(),
            "witness_vkey": cosignature_verifier_key(witness).encode(),
            "note": cp_note.decode(),
            "size": 13,
            "timestamp": 1767225600,
        },
        "tlog_proof": {"index": 5, "entry": entries[5].decode(), "proof": proof.decode()},
    }
    path = tmp / "cases.json"
    path.write_text(json.dumps(cases))
    return path


@needs_node
def test_pure_modules_agree_with_custody(tmp_path: Path) -> None:
    r = _node(WEB / "test" / "selfcheck.mjs", _cases(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["failures"] == []
    assert out["ran"]["custody_inclusion"] == 91 and out["ran"]["custody_consistency"] == 91
    assert out["ran"]["notes"] == 2 and out["ran"]["spec_examples"] == 3


@needs_node
@pytest.mark.skipif(not VECTORS.is_dir(), reason=f"shared Merkle vectors not found at {VECTORS}")
def test_merkle_vectors(tmp_path: Path) -> None:
    r = _node(WEB / "test" / "selfcheck.mjs", _cases(tmp_path), VECTORS)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["failures"] == []
    want_inc = len(list((VECTORS / "inclusion").rglob("*.json")))
    want_con = len(list((VECTORS / "consistency").rglob("*.json")))
    assert want_inc and want_con
    assert out["ran"]["inclusion_vectors"] == want_inc
    assert out["ran"]["consistency_vectors"] == want_con


# -- the shipped page ----------------------------------------------------------------------------


def test_shipped_page_is_one_small_offline_file() -> None:
    data = PAGE.read_bytes()
    assert len(data) < 300 * 1024
    assert verifier_page() == data
    html = data.decode("utf-8")
    csp = (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'unsafe-inline'; "
        'img-src data: blob:; worker-src blob:">'
    )
    assert csp in html
    assert "connect-src" not in html.split("<script>")[0]
    for hook in ('id="bundle"', 'id="bundle-folder"', 'id="trust"', 'id="verify"'):
        assert hook in html
    for hook in ('id="verdict"', 'id="problems"'):
        assert hook in html
    assert "<script src" not in html and "<link" not in html  # everything inlined
    assert html.count("</script") == 1


@needs_node
def test_rebuild_reproduces_the_shipped_bytes(tmp_path: Path) -> None:
    """`make web` is reproducible: rebuilding from web/ gives the shipped file exactly
    (if this fails after editing web/src, run `make web` and commit the result)."""
    out = tmp_path / "verify.html"
    r = _node(WEB / "build.mjs", "--out", out)
    assert r.returncode == 0, r.stderr
    again = tmp_path / "again.html"
    assert _node(WEB / "build.mjs", "--out", again).returncode == 0
    assert out.read_bytes() == again.read_bytes(), "two builds differ"
    assert out.read_bytes() == PAGE.read_bytes(), "the shipped verify.html is stale: make web"


def test_verifier_page_command(cli: type[CliRunnerNS], tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    r = cli.run("verifier-page", "--out", str(out))
    assert out.read_bytes() == PAGE.read_bytes()
    assert f"wrote {out}" in r.stderr
    assert cli.run("verifier-page").stdout_bytes == PAGE.read_bytes()


# -- verifyBundle in node against verify-bundle --------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real bundle (folder and zip) of one ingested clip, and the log key file."""
    sys.path.insert(0, str(REPO / "tests"))
    from clips import make_clip

    work = tmp_path_factory.mktemp("web-bundle")
    env = {
        **os.environ,
        "CUSTODY_HOME": str(work / "home"),
        "CUSTODY_PASSPHRASE": "web",
        "CUSTODY_KDF_PROFILE": "fast",
        "CUSTODY_SEEN": str(work / "seen"),
    }
    custody = [CUSTODY]

    def run(*args: str) -> str:
        return subprocess.run(
            [*custody, *args], env=env, capture_output=True, text=True, check=True
        ).stdout

    clip = make_clip(work / "door.mp4")
    run("init", "--origin", "web.example/custody")
    run("key", "new", "agent", "--role", "agency")
    run("case", "new", "W1")
    run("ingest", str(clip), "--case", "W1", "--by", "agent", "--legal-basis", "warrant")
    run("ingest", str(make_clip(work / "b.mp4", seconds=1.0)), "--case", "W1", "--by", "agent",
        "--legal-basis", "warrant")  # fmt: skip
    run("log", "checkpoint")
    run("export", "W1", "--to", str(work / "bundle"), "--with-media")
    run("export", "W1", "--to", str(work / "bundle.zip"), "--with-media")
    key = work / "log.vkey"
    key.write_text(run("log", "key"))
    return {"folder": work / "bundle", "zip": work / "bundle.zip", "key": key, "env": work}


def _js(bundle: Path, key: Path) -> dict[str, Any]:
    r = _node(WEB / "test" / "verify-node.mjs", bundle, key)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _py(bundle: Path, key: Path) -> dict[str, Any]:
    r = subprocess.run(
        [CUSTODY, "verify-bundle", str(bundle), "--trust",
         key.read_text().strip(), "--json", "--seen", str(bundle.parent / "seen-py")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _py_failures(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = report.get("failures") or report.get("data", {}).get("failures") or []
    return [(f["check"], f["where"], f["message"]) for f in found]


def test_bundle_carries_the_page_in_its_manifest(exported: dict[str, Path]) -> None:
    folder = exported["folder"]
    assert (folder / VERIFIER_PAGE).read_bytes() == PAGE.read_bytes()
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert VERIFIER_PAGE in manifest["files"]
    assert "verify.html" in (folder / "VERIFY.md").read_text()


@needs_node
@pytest.mark.parametrize("form", ["folder", "zip"])
def test_genuine_bundle_verifies_in_node(exported: dict[str, Path], form: str) -> None:
    out = _js(exported[form], exported["key"])
    assert out["problems"] == [] and out["verdict"] == "VERIFIED"
    assert len(out["exhibits"]) == 2
    for ex in out["exhibits"]:
        assert ex["checked"][0].startswith("file bit-for-bit as recorded (BLAKE3 ")
        assert ex["checked"][1].startswith("metadata snapshot and packet lists match log entry")
        assert ex["holder"] == "agent"
    assert any("run custody verify-bundle" in n for n in out["notChecked"])


def _tamper(src: Path, dst: Path, how: str) -> None:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "MANIFEST.json").read_text())
    item = manifest["items"][0]
    if how == "media":
        with (dst / item["media"]).open("r+b") as f:
            f.seek(1000)
            b = f.read(1)
            f.seek(1000)
            f.write(bytes([b[0] ^ 1]))
    elif how == "probe":
        p = dst / item["sidecars"]["probe"]
        p.write_bytes(p.read_bytes().replace(b"Acme", b"Acmf"))
    elif how == "entry-removed":
        (dst / "entries" / "1.entry").unlink()
    elif how == "manifest":
        p = dst / "MANIFEST.json"
        p.write_bytes(p.read_bytes().replace(b'"tool"', b'"tool" ', 1))
    elif how == "injected":
        (dst / "entries" / "9.entry").write_bytes(b"x")
    elif how == "page":
        (dst / VERIFIER_PAGE).write_bytes(b"<html>a forged verifier</html>")
    elif how == "sums":
        p = dst / "media" / "B3SUMS"
        lines = p.read_text().splitlines(keepends=True)
        p.write_text("".join(lines[1:]))


@needs_node
@pytest.mark.parametrize(
    "how", ["media", "probe", "entry-removed", "manifest", "injected", "page", "sums"]
)
def test_tampered_bundle_same_first_problem_as_verify_bundle(
    exported: dict[str, Path], tmp_path: Path, how: str
) -> None:
    bundle = tmp_path / "bundle"
    _tamper(exported["folder"], bundle, how)
    js = _js(bundle, exported["key"])
    py = _py(bundle, exported["key"])
    assert js["verdict"] == "NOT VERIFIED"
    got = [(p["check"], p["where"], p["message"]) for p in js["problems"]]
    want = _py_failures(py)
    assert want, py
    # the first failure verify-bundle reports: same check, same file, same opening words
    # (verify-bundle may add what ffprobe saw of an altered file, which a browser cannot)
    check, where, message = want[0]
    assert any(
        c == check and w == where and m.split(":")[0] == message.split(":")[0] for c, w, m in got
    ), (got, want)
