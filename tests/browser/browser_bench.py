"""`make bench`: the browser verifier's media throughput in headless Chromium.

A genuine bundle with one large random exhibit (an attachment: checked by its
BLAKE3 and SHA-256 alone, so nothing but hashing dominates) is exported with the
CLI and verified by the shipped page (custody/assets/verify.html) exactly as
counsel would: the folder given to `#bundle-folder`, the key pasted into `#trust`,
`#verify` pressed, the clock stopped when `#verdict` reads VERIFIED.  The figure is
the exhibit's size over that wall time (best of three): BLAKE3 through the page's
code path, with everything else the page does to such a bundle (SHA-256 of the same
bytes, signatures, proofs) counted against it, so it is a lower bound of BLAKE3's
own speed.  Issue 14 aims at >= 200 MB/s (MB = 10^6 bytes).

Recorded as `browser_blake3_mb_per_s`; skipped, saying why, without chromium,
chromedriver, selenium or the built page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from browserkit import PAGE, Page, why_no_browser

PASSPHRASE = "bench"
ORIGIN = "bench.example/custody"
Say = Callable[[str, str], None]
Record = Callable[[str, float, str], None]


def _custody(*args: str) -> str:
    argv = [sys.executable, "-c", "import sys; from custody.cli import main; main(sys.argv[1:])"]
    env = {**os.environ, "CUSTODY_PASSPHRASE": PASSPHRASE, "CUSTODY_KDF_PROFILE": "fast"}
    return subprocess.run(
        [*argv, *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def _random_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = written.to_bytes(8, "little") + block[8:]  # no two MiB alike
            f.write(chunk[: size - written])
            written += len(chunk)


def _bundle(work: Path, size: int) -> tuple[Path, str]:
    """A genuine exported bundle holding one random exhibit of `size` bytes (kept)."""
    bundle, keyfile = work / "bundle", work / "log.vkey"
    if bundle.is_dir() and keyfile.is_file() and (work / "size").read_text() == str(size):
        return bundle, keyfile.read_text().strip()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    home = str(work / "home")
    big = work / "recording.bin"
    _random_file(big, size)
    _custody("init", "--home", home, "--origin", ORIGIN)
    _custody("key", "new", "bench-agency", "--role", "agency", "--home", home)
    _custody("case", "new", "BROWSER", "--home", home)
    _custody(
        "ingest", str(big), "--case", "BROWSER", "--by", "bench-agency",
        "--legal-basis", "warrant", "--ref", "W-1", "--home", home,
    )  # fmt: skip
    big.unlink()
    _custody("log", "checkpoint", "--home", home)
    _custody("export", "BROWSER", "--to", str(bundle), "--with-media", "--home", home)
    keyfile.write_text(_custody("log", "key", "--home", home))
    (work / "size").write_text(str(size))
    return bundle, keyfile.read_text().strip()


def bench_browser(bench: Path, gib: float, say: Say, record: Record) -> None:
    print("browser verifier: headless Chromium", flush=True)
    reason = why_no_browser() or (None if PAGE.is_file() else f"{PAGE} is not built (make web)")
    if reason is not None:
        say("browser BLAKE3 MB/s", f"skipped: {reason}")
        return
    size = int(gib * (1 << 30))
    bundle, key = _bundle(bench / "browser", size)
    page = Page.open()
    try:
        best = float("inf")
        for _ in range(3):
            out = page.verify(bundle, key, timeout=600)
            if out.verdict != "VERIFIED":
                raise RuntimeError(f"the page did not verify the bench bundle: {out.texts()}")
            best = min(best, out.seconds)
        foreign = page.foreign_requests()
        if foreign:
            raise RuntimeError(f"the page made network requests: {foreign}")
    finally:
        page.close()
    rate = size / 1e6 / best
    say(
        f"browser: verify a bundle with {size / 1e6:,.0f} MB of media",
        f"{rate:,.0f} MB/s  ({best:.1f} s; BLAKE3 + SHA-256; aim >= 200)",
    )
    record("browser_blake3_mb_per_s", rate, "MB/s")
