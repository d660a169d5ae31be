"""Genuine inputs for the fuzzers: every untrusted format, as the real `custody` writes it.

Mutating genuine bytes reaches far deeper into a parser than random bytes do (random
bytes rarely get past a version line), so the fuzzers start from what custody itself
writes: entries of every type, a signed checkpoint, an inclusion proof, a consistency
proof, an offer and its receipt, a key file, the probe snapshot and packet lists of a
real clip, and a whole defence bundle with its media.  They are made once per test
session by running the installed `custody` command on a real ffmpeg-generated clip.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import clips
from conftest import invoke

CASE = "F-1"
PASSPHRASE = "fuzz passphrase"


@dataclass
class Corpus:
    """Genuine bytes of every format, and the bundle folder and ZIP they came from."""

    entries: list[bytes] = field(default_factory=list)
    checkpoints: list[bytes] = field(default_factory=list)
    log_key: str = ""
    proofs: list[bytes] = field(default_factory=list)
    consistency: list[bytes] = field(default_factory=list)
    offers: list[bytes] = field(default_factory=list)
    receipts: list[bytes] = field(default_factory=list)
    key_files: list[bytes] = field(default_factory=list)
    snapshots: list[bytes] = field(default_factory=list)
    framehashes: list[bytes] = field(default_factory=list)
    streamhashes: list[bytes] = field(default_factory=list)
    manifests: list[bytes] = field(default_factory=list)
    statements: list[bytes] = field(default_factory=list)
    bundle: Path = Path()
    bundle_zip: Path = Path()
    clip: Path = Path()


class _Home:
    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str) -> str:
        result = invoke(*args, "--home", str(self.root))
        if result.code != 0:
            raise RuntimeError(f"custody {' '.join(args)} failed: {result!r}")
        return result.stdout


@contextmanager
def _environment(root: Path) -> Iterator[None]:
    """The variables the custody commands read, set for the build and restored after it."""
    saved = dict(os.environ)
    os.environ.update(
        CUSTODY_PASSPHRASE=PASSPHRASE, CUSTODY_KDF_PROFILE="fast", CUSTODY_SEEN=str(root / "seen")
    )
    for name in ("CUSTODY_HOME", "CUSTODY_DB", "CUSTODY_CRASH_AT", "CUSTODY_DEBUG"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def corpus() -> Corpus:
    """The corpus of this test session, built on first use (a few seconds) and kept.

    Raises RuntimeError naming the custody command that failed; a failed build is
    not retried (every fuzzer would pay for it again), each caller gets the error.
    """
    result = _built()
    if isinstance(result, BaseException):
        raise RuntimeError(f"the fuzzing corpus could not be built: {result}")
    return result


@functools.cache
def _built() -> Corpus | Exception:
    root = Path(tempfile.mkdtemp(prefix="custody-fuzz-corpus-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    try:
        with _environment(root):
            return build(root)
    except Exception as exc:
        return exc


def build(root: Path) -> Corpus:
    """Run a small custody story under `root` (in this process) and collect what it wrote."""
    owner, agency = _Home(root / "owner"), _Home(root / "agency")
    owner.run("init", "--origin", "owner.example/log")
    agency.run("init", "--origin", "agency.example/log")
    owner.run("key", "new", "garcia", "--role", "owner", "--org", "12 Elm St")
    agency.run("key", "new", "jones", "--role", "agency", "--org", "Metro Police")
    agency.run("key", "export", "jones", "--out", str(root / "jones.keyentry"))
    owner.run("key", "import", str(root / "jones.keyentry"))
    clip = clips.make_clip(root / "clip.mp4")
    notes = clips.write_csv(root / "notes.csv")
    owner.run("case", "new", CASE, "--title", "Fuzzing")
    ingest = ("--case", CASE, "--by", "garcia", "--source", "doorbell", "--legal-basis", "consent")
    owner.run("ingest", str(clip), str(notes), *ingest)
    owner.run(
        *("consent", "grant", "--owner", "garcia", "--case", CASE),
        *("--purpose", "investigation", "--onward", "any"),
    )
    owner.run("log", "checkpoint")
    owner.run(
        *("derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1"),
        *("--by", "garcia", "--reason", "excerpt"),
    )
    owner.run(
        *("open", f"{CASE}/0001", "--by", "garcia", "--purpose", "review"),
        *("--out", str(root / "opened.mp4")),
    )
    offer = root / "offer"
    owner.run(
        *("handoff", "offer", f"{CASE}/0001", "--from", "garcia", "--to", "jones"),
        *("--purpose", "investigation", "--out", str(offer)),
    )
    media = root / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(clip.read_bytes())
    agency.run("handoff", "accept", str(offer), "--by", "jones", "--media", str(media))
    owner.run("handoff", "receipt", f"{offer}.receipt")
    owner.run("log", "checkpoint")

    c = Corpus(clip=clip)
    size = int(json.loads(owner.run("log", "verify", "--json"))["size"])
    c.entries = [owner.run("log", "entry", str(i)).encode() for i in range(size)]
    c.log_key = owner.run("log", "key").strip()
    owner.run("log", "checkpoint", "--out", str(root / "cp"))
    c.checkpoints = [(root / "cp").read_bytes()]
    for i in (0, size // 2, size - 1):
        out = root / f"proof-{i}"
        owner.run("log", "prove", str(i), "--out", str(out))
        c.proofs.append(out.read_bytes())
    c.offers = [offer.read_bytes()]
    c.receipts = [Path(f"{offer}.receipt").read_bytes()]
    c.key_files = [p.read_bytes() for p in sorted((root / "owner").rglob("*.key"))]
    for kind, into in (
        ("probe", c.snapshots),
        ("framehash", c.framehashes),
        ("streamhash", c.streamhashes),
    ):
        into.extend(p.read_bytes() for p in sorted((root / "owner").rglob(f"*.{kind}")))
    c.bundle = root / "bundle"
    owner.run("export", CASE, "--to", str(c.bundle), "--with-media")
    c.bundle_zip = root / "bundle.zip"
    with zipfile.ZipFile(c.bundle_zip, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(c.bundle.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(c.bundle).as_posix())
    c.consistency = [p.read_bytes() for p in sorted((c.bundle / "consistency").glob("*.json"))]
    c.checkpoints.append((c.bundle / "checkpoint.note").read_bytes())
    c.manifests = [(c.bundle / "MANIFEST.json").read_bytes()]
    c.statements = [(c.bundle / "statement.note").read_bytes()]
    return c
