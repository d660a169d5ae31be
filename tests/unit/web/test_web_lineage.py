"""The browser verifier's lineage check (web/src/lineage.js; issue 14) against verify-bundle.

Real bundles exported by the custody CLI with a trim and a redaction (`custody derive`),
verified in node (web/test/verify-node.mjs) and by `custody verify-bundle --json`:

- genuine: both VERIFIED; the page proves the trim a contiguous excerpt in the same words,
  checks the redaction's copied sound and lists its frames as "not checked here";
- tampered packet lists (a parent's timestamps shifted, which the signed content digest
  does not cover; a packet of the trim altered): the same `lineage` failure, same `where`,
  same message.

web/test/lineage.mjs checks the pure parts (times printed as Python prints them, packet
lists built by hand) in node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
WEB = REPO / "web"
NODE = shutil.which("node")
HAS_DEPS = (WEB / "node_modules" / "hash-wasm").is_dir()
pytestmark = pytest.mark.skipif(
    NODE is None or not HAS_DEPS, reason="node and web/node_modules (run `make web`) are needed"
)
CUSTODY = str(Path(sys.executable).parent / "custody")
NOTE = "not checked here: run custody verify-bundle"


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A bundle of a clip, a trim of it and a redaction of it, and the log key file."""
    sys.path.insert(0, str(REPO / "tests"))
    from clips import make_clip

    work = tmp_path_factory.mktemp("web-lineage")
    env = {
        **os.environ,
        "CUSTODY_HOME": str(work / "home"),
        "CUSTODY_PASSPHRASE": "web",
        "CUSTODY_KDF_PROFILE": "fast",
        "CUSTODY_SEEN": str(work / "seen"),
    }

    def run(*args: str) -> str:
        return subprocess.run(
            [CUSTODY, *args], env=env, capture_output=True, text=True, check=True
        ).stdout

    clip = make_clip(work / "door.mp4", seconds=4.0)
    run("init", "--origin", "web.example/custody")
    run("key", "new", "agent", "--role", "agency")
    run("case", "new", "W1")
    run("ingest", str(clip), "--case", "W1", "--by", "agent", "--legal-basis", "warrant")
    run("derive", "trim", "W1/0001", "--start", "1.5", "--end", "3.0", "--by", "agent",
        "--reason", "the excerpt for court")  # fmt: skip
    run("derive", "redact", "W1/0001", "--box", "10,10,40,30", "--start", "0.5", "--end", "1.0",
        "--by", "agent", "--reason", "a face")  # fmt: skip
    run("log", "checkpoint")
    run("export", "W1", "--to", str(work / "bundle"), "--with-media")
    key = work / "log.vkey"
    key.write_text(run("log", "key"))
    return {"folder": work / "bundle", "key": key}


def _js(bundle: Path, key: Path) -> dict[str, Any]:
    assert NODE is not None
    r = subprocess.run(
        [NODE, str(WEB / "test" / "verify-node.mjs"), str(bundle), str(key)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
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


def _failures(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = report.get("failures") or report.get("data", {}).get("failures") or []
    return [(f["check"], f["where"], f["message"]) for f in found]


def _items(report: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = report.get("items") or report.get("data", {}).get("items") or []
    return items


def _by_op(bundle: Path) -> dict[str, dict[str, Any]]:
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    ops = {"0001": "parent", "0002": "trim", "0003": "redact"}
    return {ops[m["exhibit"].split("/")[-1]]: m for m in manifest["items"]}


def test_genuine_trim_and_redaction_verify_like_verify_bundle(derived: dict[str, Path]) -> None:
    js = _js(derived["folder"], derived["key"])
    py = _py(derived["folder"], derived["key"])
    assert _failures(py) == [], py
    assert js["problems"] == [] and js["verdict"] == "VERIFIED", js["problems"]
    ex = {e["exhibit"].split("/")[-1]: e for e in js["exhibits"]}
    py_checked = {i["exhibit"].split("/")[-1]: i.get("checked", []) for i in _items(py)}
    trim = [c for c in ex["0002"]["checked"] if c.startswith("an excerpt of W1/0001: ")]
    assert trim and trim[0].startswith(
        "an excerpt of W1/0001: contiguous excerpt: stream 0 (video)"
    )
    if py_checked.get("0002"):  # verify-bundle's words for the same proof
        assert trim[0] in py_checked["0002"], py_checked["0002"]
    assert not any("(trim)" in n for n in ex["0002"]["notChecked"])
    redact = ex["0003"]
    assert any(c.startswith("a declared redact of W1/0001 (log entry ") for c in redact["checked"])
    assert (
        f"its derivation (redact) from its parent, frame by frame: {NOTE}" in redact["notChecked"]
    )


def _shift_timestamps(path: Path, by: int, *, seconds: bool = False) -> None:
    """Add `by` ticks (or `by` seconds in every stream's time base) to every packet's dts
    and pts (the signed content digest covers packet counts and payload hashes, not
    timestamps)."""
    out = []
    ticks: dict[int, int] = {}
    for line in path.read_text().splitlines(keepends=True):
        if m := re.match(r"#tb (\d+): (\d+)/(\d+)", line):
            ticks[int(m[1])] = by * int(m[3]) // int(m[2]) if seconds else by
        if line.startswith("#") or not line.strip():
            out.append(line)
            continue
        f = line.split(",")
        for i in (1, 2):
            width = len(f[i])
            f[i] = str(int(f[i]) + ticks[int(f[0])]).rjust(width)
        out.append(",".join(f))
    path.write_text("".join(out))


def _alter_packet(path: Path, n: int) -> None:
    """Change the payload hash of the n-th packet of stream 0."""
    lines = path.read_text().splitlines(keepends=True)
    seen = 0
    for i, line in enumerate(lines):
        if line.startswith("#") or not re.match(r"\s*0,", line):
            continue
        if seen == n:
            h = line.rstrip("\n").split(",")[5].strip()
            lines[i] = line.replace(h, ("0" if h[0] != "0" else "1") + h[1:])
            break
        seen += 1
    path.write_text("".join(lines))


@pytest.mark.parametrize("how", ["parent-retimed", "parent-shifted", "trim-packet"])
def test_tampered_packet_lists_fail_lineage_like_verify_bundle(
    derived: dict[str, Path], tmp_path: Path, how: str
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(derived["folder"], bundle)
    items = _by_op(bundle)
    if how == "parent-retimed":
        _shift_timestamps(bundle / items["parent"]["sidecars"]["framehash"], 900000)
    elif how == "parent-shifted":  # every stream 10 s later: the trim no longer covers 1.5-3 s
        _shift_timestamps(bundle / items["parent"]["sidecars"]["framehash"], 10, seconds=True)
    else:
        _alter_packet(bundle / items["trim"]["sidecars"]["framehash"], 3)
    js = _js(bundle, derived["key"])
    py = _py(bundle, derived["key"])
    assert js["verdict"] == "NOT VERIFIED"
    want = [f for f in _failures(py) if f[0] == "lineage"]
    got = [
        (p["check"], p["where"], p["message"]) for p in js["problems"] if p["check"] == "lineage"
    ]
    assert want, _failures(py)
    assert got == want, (got, want)
    assert want[0][1] == f"items/{items['trim']['item']}/framehash"
    assert want[0][2].startswith("exhibit W1/0002 is recorded as a trim of W1/0001 (log entry ")
    if how == "parent-shifted":
        assert (
            "of the excerpt covers 11.000-13.000 s of the parent, not the declared 1.500-3.000 s"
            in (want[0][2])
        )


def test_pure_lineage_in_node(tmp_path: Path) -> None:
    """web/test/lineage.mjs: times printed as Python prints them (half-even ties of the
    double, negatives, large values), hand-made packet lists, checkLineage's words."""
    from fractions import Fraction

    values = [(1, 16), (3, 16), (5, 16), (1, 3), (2, 3), (-1, 48), (-1, 100000), (1024, 48000)]
    values += [(123456789, 90000), (5, 2000), (15, 2000), (1, 1), (0, 1), (2**60 + 1, 1000)]
    cases = {"times": [[n, d, f"{float(Fraction(n, d)):.3f}"] for n, d in values]}
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    assert NODE is not None
    r = subprocess.run(
        [NODE, str(WEB / "test" / "lineage.mjs"), str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
