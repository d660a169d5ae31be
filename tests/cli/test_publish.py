"""`custody log publish` (C2SP tlog-tiles) and `custody monitor`, end to end.

Publishing: the files a reader sees, incremental publishing that never changes a full
tile, a folder of another history refused, readers never shown a checkpoint before its
tiles (a crash between the two).  Monitoring: trust on first use, growth checked
for consistency from the tiles, and exit 1 for a shrunk log, a fork, a rewritten
history under the same key, and a flipped tile byte; a folder or an http URL.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliRunnerNS, invoke
from publishkit import grow

from custody.app.home import Custody
from custody.tlog import merkle
from custody.tlog.tiles import Tile, decode_entries, decode_tile

ORIGIN = "test.example/custody"


def log_key(cli: type[CliRunnerNS]) -> str:
    return cli.run("log", "key").stdout.strip()


def publish(cli: type[CliRunnerNS], to: Path, *extra: str, home: Path | None = None) -> dict:
    where = ("--home", str(home)) if home else ()
    cli.run("log", "checkpoint", *where)
    r = cli.run("log", "publish", "--to", str(to), "--json", *extra, *where)
    return json.loads(r.stdout)


def monitor(cli: type[CliRunnerNS], source: Path | str, state: Path, key: str) -> str:
    return cli.run("monitor", str(source), "--log-key", key, "--state", str(state)).stdout


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def logged(cli: type[CliRunnerNS], home: Path) -> Path:
    """The conftest home grown to 300 entries (one full tile)."""
    assert grow(297) == 300
    return home


def test_publish_writes_checkpoint_and_hash_tiles(
    cli: type[CliRunnerNS], logged: Path, tmp_path: Path
) -> None:
    pub = tmp_path / "pub"
    report = publish(cli, pub)
    assert report["size"] == 300 and report["previous_size"] is None
    assert files(pub) == ["checkpoint", "tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"]
    with Custody.open() as c:
        stored = c.log.checkpoint_note()
        tree = merkle.MemoryTree()
        leaves = [data for _, data in c.store.iter_entries()]
    assert (pub / "checkpoint").read_bytes() == stored
    for d in leaves:
        tree.append(d)
    level0 = decode_tile(Tile(0, 0), (pub / "tile/0/000").read_bytes())
    assert level0 == [merkle.leaf_hash(d) for d in leaves[:256]]
    assert (pub / "tile/1/000.p/1").read_bytes() == merkle.root_from_leaves(level0)
    # Hashes only: no entry of the log is in the folder.
    assert all(b"custody/entry/v1" not in (pub / f).read_bytes() for f in files(pub))


def test_publish_with_entries(cli: type[CliRunnerNS], logged: Path, tmp_path: Path) -> None:
    pub = tmp_path / "pub"
    publish(cli, pub)
    # Asked later, the bundles of the tiles published before are written too.
    report = publish(cli, pub, "--with-entries")
    assert report["entry_bundles_written"] == 2
    bundle = decode_entries(Tile(0, 1, 44), (pub / "tile/entries/001.p/44").read_bytes())
    hashes = decode_tile(Tile(0, 1, 44), (pub / "tile/0/001.p/44").read_bytes())
    assert [merkle.leaf_hash(e) for e in bundle] == hashes


def test_publish_needs_a_checkpoint(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> None:
    r = cli.fail(3, "log", "publish", "--to", str(tmp_path / "pub"))
    assert "no checkpoint to publish yet" in r.stderr and "log checkpoint" in r.stderr


def test_publish_is_incremental_and_says_what_waits(
    cli: type[CliRunnerNS], logged: Path, tmp_path: Path
) -> None:
    pub, state = tmp_path / "pub", tmp_path / "state"
    key = log_key(cli)
    publish(cli, pub)
    assert "trusted on first use" in monitor(cli, pub, state, key)
    full = pub / "tile/0/000"
    before = full.stat().st_ino, full.read_bytes()
    grow(300)
    report = publish(cli, pub)
    assert report["previous_size"] == 300 and report["size"] == 600
    assert report["written"] == [
        "tile/0/001",
        "tile/0/002.p/88",
        "tile/1/000.p/2",
        "checkpoint",
    ]
    assert (full.stat().st_ino, full.read_bytes()) == before  # never rewritten
    assert (pub / "tile/0/001.p/44").exists()  # older readers still find their partial tile
    out = monitor(cli, pub, state, key)
    assert out.strip() == f"log {ORIGIN}: size 300 → 600, consistent; 1 new full tile verified"
    # Nothing new: nothing written; entries appended after the checkpoint are named.
    grow(5)
    r = cli.run("log", "publish", "--to", str(pub))
    assert "0 tiles written, checkpoint unchanged" in r.stdout
    assert "5 entries appended after this checkpoint" in r.stderr
    assert monitor(cli, pub, state, key).strip() == f"log {ORIGIN}: size 600, unchanged"


def test_monitor_json(cli: type[CliRunnerNS], logged: Path, tmp_path: Path) -> None:
    pub = tmp_path / "pub"
    publish(cli, pub)
    r = cli.run(
        "monitor", str(pub), "--log-key", log_key(cli), "--state", str(tmp_path / "s"), "--json"
    )
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["first_seen"] and doc["size"] == 300
    assert doc["full_tiles_checked"] == 1 and doc["tiles_checked"] == 3
    state = json.loads(Path(doc["state_file"]).read_text())
    assert state["format"] == "custody/monitor-state/v1" and state["size"] == 300


def test_monitor_state_default_location(
    cli: type[CliRunnerNS], logged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = tmp_path / "pub"
    publish(cli, pub)
    monkeypatch.delenv("CUSTODY_MONITOR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    cli.run("monitor", str(pub), "--log-key", log_key(cli))
    assert len(list((tmp_path / "xdg/custody/monitor").glob("*.json"))) == 1
    monkeypatch.setenv("CUSTODY_MONITOR", str(tmp_path / "env"))
    assert "trusted on first use" in cli.run("monitor", str(pub), "--log-key", log_key(cli)).stdout


# -- another history under the same key -------------------------------------------------------


@pytest.fixture
def twin(logged: Path, tmp_path: Path) -> Path:
    """A copy of the home at 300 entries: the same log key, and from here its own history."""
    twin = tmp_path / "twin"
    shutil.copytree(logged, twin)
    return twin


def test_publish_refuses_a_folder_of_another_history(
    cli: type[CliRunnerNS], logged: Path, twin: Path, tmp_path: Path
) -> None:
    pub = tmp_path / "pub"
    grow(300, tag="real")
    publish(cli, pub)
    grow(300, twin, tag="rebuilt")
    cli.run("log", "checkpoint", "--home", str(twin))
    r = cli.fail(1, "log", "publish", "--to", str(pub), "--home", str(twin))
    assert "has another root than this log at that size" in r.stderr
    # Without the checkpoint, the full tiles still tell: a full tile never changes.
    (pub / "checkpoint").unlink()
    r = cli.fail(1, "log", "publish", "--to", str(pub), "--home", str(twin))
    assert "tile/0/001 is already published with other content" in r.stderr


def test_monitor_catches_rewritten_history_fork_and_shrink(
    cli: type[CliRunnerNS], logged: Path, twin: Path, tmp_path: Path
) -> None:
    key = log_key(cli)
    real, rebuilt, state = tmp_path / "real", tmp_path / "rebuilt", tmp_path / "state"
    for copy in ("twin2", "twin3"):
        shutil.copytree(logged, tmp_path / copy)
    grow(300, tag="real")
    publish(cli, real)
    assert "trusted on first use" in monitor(cli, real, state, key)
    # The rebuilt log has the same key and the first 300 entries, then another history.
    grow(400, twin, tag="rebuilt")
    publish(cli, rebuilt, home=twin)
    args = ("monitor", str(rebuilt), "--log-key", key, "--state", str(state))
    r = cli.fail(1, *args)
    assert "rewrote its history: the tree of size 700" in r.stderr
    assert "not consistent with size 600" in r.stderr
    # The state is unchanged: the real log still monitors fine.
    assert "size 600, unchanged" in monitor(cli, real, state, key)
    # Same size, another root: a fork.
    fork = tmp_path / "fork"
    grow(300, tmp_path / "twin2", tag="forked")
    publish(cli, fork, home=tmp_path / "twin2")
    r = cli.fail(1, "monitor", str(fork), "--log-key", key, "--state", str(state))
    assert "forked: " in r.stderr and "size 600 with root" in r.stderr
    # Smaller: a shrunk log (the copy of the home at 300 entries, published).
    small = tmp_path / "small"
    cli.run("log", "checkpoint", "--home", str(tmp_path / "twin3"))
    publish(cli, small, home=tmp_path / "twin3")
    r = cli.fail(1, "monitor", str(small), "--log-key", key, "--state", str(state))
    assert "shrank: " in r.stderr and "publishes size 300" in r.stderr


def test_monitor_catches_a_flipped_tile_byte(
    cli: type[CliRunnerNS], logged: Path, tmp_path: Path
) -> None:
    key = log_key(cli)
    pub = tmp_path / "pub"
    publish(cli, pub)
    for name, why in [
        ("tile/0/000", "tile/0/000 does not hash to its parent"),
        ("tile/0/001.p/44", "not the checkpoint's root"),
        ("tile/1/000.p/1", "not the checkpoint's root"),
    ]:
        tile = pub / name
        good = tile.read_bytes()
        tile.write_bytes(good[:20] + bytes([good[20] ^ 1]) + good[21:])
        r = cli.fail(1, "monitor", str(pub), "--log-key", key, "--state", str(tmp_path / name))
        assert why in r.stderr, r
        tile.write_bytes(good)
    # A truncated tile; a missing one.
    (pub / "tile/0/000").write_bytes(b"\0" * 31)
    r = cli.fail(1, "monitor", str(pub), "--log-key", key, "--state", str(tmp_path / "t"))
    assert "tile/0/000 is 31 bytes, not 8192" in r.stderr
    (pub / "tile/0/000").unlink()
    r = cli.fail(1, "monitor", str(pub), "--log-key", key, "--state", str(tmp_path / "m"))
    assert "tile/0/000 of the tree of size 300 is not published" in r.stderr


def test_monitor_checks_the_signature(cli: type[CliRunnerNS], logged: Path, tmp_path: Path) -> None:
    pub = tmp_path / "pub"
    publish(cli, pub)
    cp = pub / "checkpoint"
    cp.write_bytes(cp.read_bytes().replace(b"\n300\n", b"\n301\n"))
    r = cli.fail(1, "monitor", str(pub), "--log-key", log_key(cli), "--state", str(tmp_path / "s"))
    assert f"{pub}/checkpoint" in r.stderr
    r = cli.fail(2, "monitor", str(pub), "--log-key", "nonsense", "--state", str(tmp_path / "s"))
    assert "--log-key" in r.stderr


# -- readers never see a checkpoint before its tiles -----------------------------------------


def test_a_crash_between_tiles_and_checkpoint_shows_readers_the_old_tree(
    cli: type[CliRunnerNS], logged: Path, tmp_path: Path
) -> None:
    key = log_key(cli)
    pub, state = tmp_path / "pub", tmp_path / "state"
    publish(cli, pub)
    old = (pub / "checkpoint").read_bytes()
    grow(300)
    cli.run("log", "checkpoint")
    env = {**os.environ, "CUSTODY_CRASH_AT": "publish.tiles-written"}
    custody = Path(sys.executable).parent / "custody"
    crashed = subprocess.run(
        [str(custody), "log", "publish", "--to", str(pub)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 137, crashed.stderr
    assert (pub / "tile/0/001").exists()  # the new tiles are there ...
    assert (pub / "checkpoint").read_bytes() == old  # ... the checkpoint not yet
    assert "size 300" in monitor(cli, pub, state, key)
    assert not [p for p in pub.rglob("*") if p.name.endswith(".tmp")]
    r = cli.run("log", "publish", "--to", str(pub))
    assert "published test.example/custody at size 600 (was 300)" in r.stdout
    assert "size 300 → 600, consistent" in monitor(cli, pub, state, key)


# -- over HTTP --------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static web server on loopback serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_Quiet, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_monitor_over_http(
    cli: type[CliRunnerNS], logged: Path, tmp_path: Path, served: tuple[Path, str]
) -> None:
    www, url = served
    key = log_key(cli)
    publish(cli, www / "log")
    state = tmp_path / "state"
    assert "trusted on first use" in monitor(cli, f"{url}/log/", state, key)
    grow(300)
    publish(cli, www / "log")
    assert "size 300 → 600, consistent" in monitor(cli, f"{url}/log", state, key)
    r = cli.fail(3, "monitor", f"{url}/nothing", "--log-key", key, "--state", str(state))
    assert f"{url}/nothing/checkpoint is not published (HTTP 404)" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli.fail(3, "monitor", f"http://127.0.0.1:{port}/log", "--log-key", key)
    assert f"cannot fetch http://127.0.0.1:{port}/log/checkpoint" in r.stderr


def test_monitor_of_nothing(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> None:
    key = log_key(cli)
    r = cli.fail(3, "monitor", str(tmp_path / "absent"), "--log-key", key)
    assert "is not a folder of a published log" in r.stderr
    r = cli.fail(3, "monitor", "ftp://example.org/log", "--log-key", key)
    assert "not ftp:" in r.stderr


# -- verify-bundle --published ----------------------------------------------------------------


@pytest.fixture
def bundle(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> Path:
    """A case with one clip, exported; tmp_path/before is the home before the case."""
    import clips

    shutil.copytree(home, tmp_path / "before")
    clip = clips.make_clip(tmp_path / "door.mp4", seconds=1.0)
    cli.run("case", "new", "C-9", "--title", "published")
    cli.run(
        *("ingest", str(clip), "--case", "C-9", "--by", "alice"),
        *("--source", "doorbell", "--legal-basis", "consent"),
    )
    cli.run("log", "checkpoint")
    out = tmp_path / "bundle"
    cli.run("export", "C-9", "--to", str(out))
    return out


def _published_policy(r: object) -> dict:
    doc = json.loads(r.stdout)  # type: ignore[attr-defined]
    (check,) = [p for p in doc["policies"] if p["name"] == "published"]
    return check  # type: ignore[no-any-return]


def test_verify_bundle_published(
    cli: type[CliRunnerNS], home: Path, bundle: Path, tmp_path: Path
) -> None:
    key = log_key(cli)
    pub = tmp_path / "pub"
    verify = ("verify-bundle", str(bundle), "--trust", key, "--no-probe", "--json")
    # Not asked: the verdict says how to ask.
    check = _published_policy(cli.run(*verify))
    assert not check["checked"] and "--published SOURCE" in check["detail"]
    # Published at the bundle's size, then larger: the bundle's tree is the published one.
    cli.run("log", "publish", "--to", str(pub))
    check = _published_policy(cli.run(*verify, "--published", str(pub)))
    assert check["checked"] and check["ok"] and "(the same tree;" in check["detail"], check
    grow(300)
    publish(cli, pub)
    check = _published_policy(cli.run(*verify, "--published", str(pub)))
    assert check["checked"] and check["ok"] and "is in the log published at" in check["detail"]
    # A published full tile altered where the proof needs it (leaves 4..7): caught.
    tile = pub / "tile/0/000"
    good = tile.read_bytes()
    tile.write_bytes(good[: 5 * 32] + bytes([good[5 * 32] ^ 1]) + good[5 * 32 + 1 :])
    r = invoke(*verify, "--published", str(pub))
    assert r.code == 1 and not _published_policy(r)["ok"], r
    tile.write_bytes(good)
    # Published smaller than the bundle's tree: not checked, and why.
    before, small = tmp_path / "before", tmp_path / "small"
    cli.run("log", "checkpoint", "--home", str(before))
    cli.run("log", "publish", "--to", str(small), "--home", str(before))
    check = _published_policy(cli.run(*verify, "--published", str(small)))
    assert not check["checked"] and "smaller than the bundle's checkpoint" in check["detail"]
    # The same key, another history: the agency showed the bundle a split view.
    grow(300, before, tag="other")
    publish(cli, small, home=before)
    r = cli.fail(
        1, "verify-bundle", str(bundle), "--trust", key, "--no-probe", "--published", str(small)
    )
    assert "is not in the log published at" in r.stderr or "NOT VERIFIED" in r.stdout, r
    r = invoke(*verify, "--published", str(small))
    assert r.code == 1, r
    check = _published_policy(r)
    assert (
        check["checked"] and not check["ok"] and "is not in the log published at" in check["detail"]
    )
    # A published source that cannot be read is an input error, not a verdict.
    r = cli.fail(3, *verify[:-1], "--published", str(tmp_path / "absent"))
    assert "is not a folder of a published log" in r.stderr
    r = invoke("verify-bundle", str(bundle), "--trust-bundle-keys", "--published", str(pub))
    assert r.code == 2 and "--published needs the log's key from --trust" in r.stderr, r


def test_monitor_checks_cosignatures(cli: type[CliRunnerNS], logged: Path, tmp_path: Path) -> None:
    """A witness's cosignature, merged into the published checkpoint, is verified with
    --witness (given as the witness's Ed25519 key, as `key show` prints it)."""
    cli.run("key", "new", "clerk", "--role", "court")
    cli.run("log", "checkpoint", "--out", str(tmp_path / "cp"))
    cosigned = tmp_path / "cosigned"
    cli.run(
        *("witness", "cosign", str(tmp_path / "cp"), "--key", "clerk"),
        *("--log-key", log_key(cli), "--out", str(cosigned)),
    )
    cli.run("log", "add-cosignature", str(cosigned))
    pub = tmp_path / "pub"
    cli.run("log", "publish", "--to", str(pub))
    assert (pub / "checkpoint").read_bytes().count("— ".encode()) == 2
    with Custody.open() as c:
        clerk = c.party("clerk").vkey
    out = cli.run(
        *("monitor", str(pub), "--log-key", log_key(cli)),
        *("--witness", clerk, "--state", str(tmp_path / "s")),
    ).stdout
    assert "cosigned by clerk" in out
    # A cosignature line that does not verify is a failure, not ignored.
    cp = pub / "checkpoint"
    lines = cp.read_bytes().split(b"\n")
    name, sig = lines[-2].split(b" ")[1:3]
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    lines[-2] = "— ".encode() + name + b" " + base64.b64encode(bytes(raw))
    cp.write_bytes(b"\n".join(lines))
    r = cli.fail(
        1,
        *("monitor", str(pub), "--log-key", log_key(cli)),
        *("--witness", clerk, "--state", str(tmp_path / "s2")),
    )
    assert f"{pub}/checkpoint" in r.stderr


class _ToFtp(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "ftp://127.0.0.1/checkpoint")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_monitor_follows_redirects_only_to_http(cli: type[CliRunnerNS], home: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ToFtp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/log"
        r = cli.fail(3, "monitor", url, "--log-key", log_key(cli))
        assert "redirected to ftp://127.0.0.1/checkpoint, not an http(s) URL" in r.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
