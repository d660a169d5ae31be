"""`media/B3SUMS` and `media/SHA256SUMS` in an exported bundle (docs/spec/bundle.md §2.2):
the real `b3sum -c` and `sha256sum -c` pass inside the media folder with no custody, and
`custody verify-bundle` fails a check file that disagrees with the manifest.

One module-scoped home and export (two real clips and an attachment); each test copies
the bundle it alters.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, CliResult, invoke

import custody.app.export
from custody.bundle.verify import Manifest, parse_sums, sums_text
from custody.errors import FormatError

CASE = "2026-0301"

needs_tools = pytest.mark.skipif(
    shutil.which("b3sum") is None or shutil.which("sha256sum") is None,
    reason="b3sum and sha256sum are needed (Debian: apt install b3sum coreutils)",
)


def ok(*args: str | Path) -> CliResult:
    r = invoke(*map(str, args))
    assert r.code == 0, r
    return r


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(bundle folder, the log's verifier key) of a case with two clips and a note."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("sums")
        mp.setenv("CUSTODY_HOME", str(root / "home"))
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        mp.delenv("CUSTODY_VAULT", raising=False)
        mp.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])  # no report
        ok("init", "--origin", "sums.example/custody")
        ok("key", "new", "bob", "--role", "agency")
        ok("case", "new", CASE)
        door = clips.make_clip(root / "in" / "Door Cam.MP4")
        porch = clips.make_clip(root / "in" / "porch.mov", pattern="smptebars", frequency=880)
        notes = clips.write_sidecar_json(root / "in" / "export-info.json")
        ok(
            "ingest",
            door,
            porch,
            notes,
            "--case",
            CASE,
            "--by",
            "bob",
            "--legal-basis",
            "warrant",
            "--sha256",
        )
        vkey = ok("log", "key").stdout.strip()
        bundle = root / "bundle"
        ok("export", CASE, "--to", bundle, "--with-media")
        yield bundle, vkey


def _copy(exported: tuple[Path, str], tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(exported[0], bundle)
    return bundle


def _verify(bundle: Path, vkey: str) -> CliResult:
    return invoke("verify-bundle", str(bundle), "--trust", vkey, "--no-probe", "--json")


@needs_tools
def test_b3sum_and_sha256sum_pass_inside_media(exported: tuple[Path, str]) -> None:
    media = exported[0] / "media"
    files = sorted(p.name for p in media.iterdir() if p.name not in ("B3SUMS", "SHA256SUMS"))
    assert len(files) == 3  # both clips and the attachment
    for tool, sums in (("b3sum", "B3SUMS"), ("sha256sum", "SHA256SUMS")):
        run = subprocess.run([tool, "-c", sums], cwd=media, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert sorted(line.rsplit(": ", 1) for line in run.stdout.splitlines()) == [
            [name, "OK"] for name in files
        ]
    # The check files are what the manifest (which the statement signs) lists for them.
    manifest = Manifest.parse((exported[0] / "MANIFEST.json").read_bytes())
    for name in ("media/B3SUMS", "media/SHA256SUMS"):
        data = (exported[0] / name).read_bytes()
        assert manifest.files[name].sha256 == hashlib.sha256(data).hexdigest()
    # VERIFY.md, which counsel reads first, tells them how.
    assert "`b3sum -c B3SUMS`" in (exported[0] / "VERIFY.md").read_text()
    b3 = parse_sums((media / "B3SUMS").read_bytes(), "B3SUMS")
    assert b3 == {i.media: i.item for i in manifest.items if i.media is not None}


@needs_tools
def test_the_real_tools_catch_an_altered_media_file(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    bundle = _copy(exported, tmp_path)
    victim = next(p for p in (bundle / "media").iterdir() if p.suffix == ".mp4")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    for tool, sums in (("b3sum", "B3SUMS"), ("sha256sum", "SHA256SUMS")):
        run = subprocess.run(
            [tool, "-c", sums], cwd=bundle / "media", capture_output=True, text=True
        )
        assert run.returncode == 1
        assert f"{victim.name}: FAILED" in run.stdout


def test_an_untouched_bundle_verifies(exported: tuple[Path, str]) -> None:
    r = _verify(*exported)
    assert r.code == 0, r
    assert json.loads(r.stdout)["verdict"] == "VERIFIED"


def _failures(r: CliResult) -> list[dict[str, str]]:
    assert r.code == 1, r
    report = json.loads(r.stdout)
    assert report["verdict"] != "VERIFIED"
    return list(report["failures"])


def test_a_tampered_b3sums_line_fails(exported: tuple[Path, str], tmp_path: Path) -> None:
    bundle = _copy(exported, tmp_path)
    sums = bundle / "media" / "B3SUMS"
    lines = sums.read_text().splitlines(keepends=True)
    name = lines[0].split("  ", 1)[1].strip()
    lines[0] = "0" * 64 + "  " + name + "\n"
    sums.write_text("".join(lines))
    failures = _failures(_verify(bundle, exported[1]))
    sums_failures = [f for f in failures if f["check"] == "sums"]
    assert len(sums_failures) == 1, failures
    assert sums_failures[0]["where"] == "media/B3SUMS"
    assert f"gives {name} the digest 0000000000000000" in sums_failures[0]["message"]


def test_a_dropped_sha256sums_line_fails(exported: tuple[Path, str], tmp_path: Path) -> None:
    bundle = _copy(exported, tmp_path)
    sums = bundle / "media" / "SHA256SUMS"
    lines = sums.read_text().splitlines(keepends=True)
    dropped = lines.pop().split("  ", 1)[1].strip()
    sums.write_text("".join(lines))
    failures = [f for f in _failures(_verify(bundle, exported[1])) if f["check"] == "sums"]
    assert [f["where"] for f in failures] == ["media/SHA256SUMS"]
    assert f"does not list {dropped}" in failures[0]["message"]


def test_a_malformed_sums_file_names_its_line(exported: tuple[Path, str], tmp_path: Path) -> None:
    bundle = _copy(exported, tmp_path)
    sums = bundle / "media" / "B3SUMS"
    sums.write_text(sums.read_text() + "not a checksum line\n")
    failures = [f for f in _failures(_verify(bundle, exported[1])) if f["check"] == "sums"]
    assert len(failures) == 1
    assert "line 4 is not '<64 hex digits>  <file name>'" in failures[0]["message"]


def test_a_deleted_sums_file_fails(exported: tuple[Path, str], tmp_path: Path) -> None:
    bundle = _copy(exported, tmp_path)
    (bundle / "media" / "SHA256SUMS").unlink()
    failures = _failures(_verify(bundle, exported[1]))
    assert any(
        f["where"] == "media/SHA256SUMS" and "is missing" in f["message"] for f in failures
    ), failures


def test_sums_format_round_trip_and_refusals() -> None:
    a, b = "a" * 64, "b" * 64
    text = sums_text([("media/z.mp4", a), ("media/c.mov", b)])
    assert text == f"{b}  c.mov\n{a}  z.mp4\n".encode()
    assert parse_sums(text, "B3SUMS") == {"media/c.mov": b, "media/z.mp4": a}
    for bad, why in (
        (f"{a} z.mp4\n".encode(), "line 1 is not"),
        (f"{a}  z.mp4\n{b}  z.mp4\n".encode(), "line 2 names z.mp4 a second time"),
        (f"{a}  z.mp4".encode(), "the last line has no newline"),
        (f"{a}  ../z.mp4\n".encode(), "line 1 is not"),
        ("é\n".encode(), "is not ASCII"),
    ):
        with pytest.raises(FormatError, match=why):
            parse_sums(bad, "B3SUMS")
