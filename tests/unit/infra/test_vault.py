"""custody.infra.vault: the write-once, content-addressed evidence store."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from custody.errors import (
    FormatError,
    InputError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from custody.infra import vault as vault_module
from custody.infra.vault import Vault, hash_file
from custody.media.digest import hash_bytes

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vault")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 MiB: three 16 MiB windows, the last one partial."""
    path = tmp_path_factory.mktemp("vault-src") / "big.bin"
    path.write_bytes(os.urandom(40 * MiB + 7))
    return path


def _objects(v: Vault) -> list[Path]:
    return sorted(p for p in (v.root / "objects").rglob("*") if p.is_file())


def _tmp_files(v: Vault) -> list[Path]:
    return sorted((v.root / "tmp").iterdir())


def test_put_file_stores_a_read_only_copy_named_by_its_blake3(vault: Vault, big: Path) -> None:
    seen: list[int] = []
    stored = vault.put_file(big, sha256=True, progress=seen.append)
    data = big.read_bytes()
    assert stored.digests == hash_bytes(data, sha256=True)
    assert stored.digests.blake3_hex == blake3.blake3(data).hexdigest()
    hexd = stored.digests.blake3_hex
    assert stored.path == vault.root / "objects" / hexd[:2] / hexd == vault.path_for(hexd)
    assert not stored.already_present
    assert stored.path.read_bytes() == data
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o444
    assert sum(seen) == len(data) and len(seen) == 3
    assert vault.has(hexd)
    assert _tmp_files(vault) == []
    with vault.open(hexd) as f:
        assert f.read(10) == data[:10]


def test_a_second_put_does_not_rewrite_the_object(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "clip.bin"
    src.write_bytes(b"evidence" * 1000)
    first = vault.put_file(src)
    before = first.path.stat()
    os.utime(first.path, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    before = first.path.stat()
    again = vault.put_file(src)
    after = again.path.stat()
    assert again.already_present and again.path == first.path
    assert again.digests == first.digests
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _objects(vault) == [first.path]
    assert _tmp_files(vault) == []


def test_an_interrupted_put_leaves_no_object(vault: Vault, big: Path) -> None:
    calls: list[int] = []

    def cancel(n: int) -> None:
        calls.append(n)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vault.put_file(big, progress=cancel)
    assert calls == [16 * MiB]
    assert _objects(vault) == []
    assert _tmp_files(vault) == []  # removed on the way out
    # The store is still usable, and the re-run finishes the job.
    assert not vault.put_file(big).already_present


def test_a_killed_put_leaves_only_a_temp_file_that_the_next_open_removes(
    vault: Vault, big: Path
) -> None:
    # os._exit in the middle of the copy: no finally blocks, no cleanup, like kill -9.
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from custody.infra.vault import Vault
        calls = []
        def die(n):
            calls.append(n)
            if len(calls) == 2:  # the first window is written by now
                os._exit(7)
        Vault(Path({str(vault.root)!r})).put_file(Path({str(big)!r}), progress=die)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False)
    assert result.returncode == 7
    assert _objects(vault) == []
    leftovers = _tmp_files(vault)
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    Vault(vault.root)
    assert _tmp_files(vault) == []


def test_opening_a_vault_spares_temp_files_a_live_writer_holds(vault: Vault) -> None:
    fd, path = vault._new_temp()  # held (flock) as during a put_file in another process
    try:
        Vault(vault.root)
        assert path.exists()
    finally:
        os.close(fd)
    Vault(vault.root)
    assert not path.exists()


def test_bad_sources_are_input_errors_naming_the_file(vault: Vault, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.mp4 is empty \(0 bytes\)"):
        vault.put_file(empty)
    with pytest.raises(InputError, match=r"missing\.mp4: no such file"):
        vault.put_file(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="is a directory"):
        vault.put_file(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        vault.put_file(fifo)
    assert _objects(vault) == [] and _tmp_files(vault) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_source_is_an_input_error(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "locked.mp4"
    src.write_bytes(b"x")
    src.chmod(0)
    with pytest.raises(InputError, match=r"locked\.mp4: permission denied"):
        vault.put_file(src)


def test_a_name_that_is_not_utf8_is_shown_escaped(vault: Vault, tmp_path: Path) -> None:
    name = os.fsdecode(b"clip-\xff.mp4")
    with pytest.raises(InputError, match=r"clip-\\xff\.mp4: no such file"):
        vault.put_file(tmp_path / name)
    (tmp_path / name).write_bytes(b"abc")
    assert vault.put_file(tmp_path / name).digests.size == 3


def test_without_mmap_prefaulting_the_store_falls_back_to_read(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kernels before 5.14 refuse MADV_POPULATE_READ with EINVAL.
    def refuse(fd: int, offset: int, length: int) -> mmap.mmap:
        vault_module._populate_unsupported.set()
        raise vault_module._NoPopulate

    monkeypatch.setattr(vault_module, "_map_window", refuse)
    try:
        seen: list[int] = []
        stored = vault.put_file(big, progress=seen.append)
        assert stored.digests == hash_bytes(big.read_bytes())
        assert stored.path.read_bytes() == big.read_bytes()
        assert sum(seen) == big.stat().st_size
        assert hash_file(big) == stored.digests
    finally:
        vault_module._populate_unsupported.clear()


def test_a_read_error_half_way_is_an_input_error(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = vault_module._map_window

    def failing(fd: int, offset: int, length: int) -> mmap.mmap:
        if offset:
            raise vault_module._ReadError(OSError(errno.EIO, "Input/output error"), offset)
        return real(fd, offset, length)

    monkeypatch.setattr(vault_module, "_map_window", failing)
    with pytest.raises(InputError, match=r"big\.bin: read error near byte 16777216 \(Input/output"):
        hash_file(big, sha256=True)  # 16 MiB windows (hashing alone maps 64 MiB)
    # A copy reads the source in the kernel (tests/unit/test_vault_copy.py has more).
    real_copy, real_pread = os.copy_file_range, os.pread

    def copy(src: int, dst: int, count: int, *offsets: int) -> int:
        if offsets[0]:
            raise OSError(errno.EIO, "Input/output error")
        return real_copy(src, dst, count, *offsets)

    def pread(fd: int, n: int, offset: int) -> bytes:
        if offset:
            raise OSError(errno.EIO, "Input/output error")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(vault_module, "_map_window", real)
    monkeypatch.setattr(os, "copy_file_range", copy)
    monkeypatch.setattr(os, "pread", pread)
    with pytest.raises(InputError, match=r"big\.bin: read error near byte 16777216 \(Input/output"):
        vault.put_file(big)
    assert _objects(vault) == [] and _tmp_files(vault) == []


def test_a_full_disk_is_a_storage_error(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full)
    with pytest.raises(StorageError, match="No space left") as err:
        vault.put_file(big)
    assert err.value.hint == "free some space"
    assert _objects(vault) == [] and _tmp_files(vault) == []


def test_an_unusable_vault_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create"):
        Vault(blocker / "vault")


def test_digests_must_be_well_formed(vault: Vault) -> None:
    for bad in ("", "ab", "G" * 64, "AB" * 32, "../" + "a" * 61):
        with pytest.raises(FormatError, match="not a BLAKE3 digest"):
            vault.path_for(bad)
    missing = "0" * 64
    assert not vault.has(missing)
    with pytest.raises(NotFoundError):
        vault.open(missing)
    with pytest.raises(NotFoundError):
        vault.verify_object(missing)


def test_sidecars_are_write_once(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"payload")
    hexd = vault.put_file(src).digests.blake3_hex
    path = vault.put_sidecar(hexd, "framehash", b"#format: frame checksums\n")
    assert path == vault.root / "sidecars" / hexd[:2] / f"{hexd}.framehash"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    mtime = path.stat().st_mtime_ns
    assert vault.put_sidecar(hexd, "framehash", b"#format: frame checksums\n") == path
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(StorageError, match="different framehash sidecar"):
        vault.put_sidecar(hexd, "framehash", b"other")
    assert vault.read_sidecar(hexd, "framehash") == b"#format: frame checksums\n"
    assert vault.has_sidecar(hexd, "framehash") and not vault.has_sidecar(hexd, "probe")
    with pytest.raises(NotFoundError, match="no probe sidecar"):
        vault.read_sidecar(hexd, "probe")
    with pytest.raises(FormatError, match="sidecar kind"):
        vault.put_sidecar(hexd, "../x", b"")
    with pytest.raises(NotFoundError, match="no object"):
        vault.put_sidecar("1" * 64, "probe", b"{}")
    assert _tmp_files(vault) == []


def test_verify_object_catches_a_damaged_copy(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"original bytes" * 100)
    stored = vault.put_file(src)
    hexd = stored.digests.blake3_hex
    assert vault.verify_object(hexd) == stored.digests
    stored.path.chmod(0o644)
    with stored.path.open("r+b") as f:
        f.seek(5)
        f.write(b"X")
    with pytest.raises(VerificationError, match=f"object {hexd} is damaged"):
        vault.verify_object(hexd)


def test_a_put_over_a_damaged_object_of_another_size_is_refused(
    vault: Vault, tmp_path: Path
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"0123456789")
    stored = vault.put_file(src)
    stored.path.chmod(0o644)
    stored.path.write_bytes(b"012")
    with pytest.raises(StorageError, match="damaged: 3 bytes, expected 10"):
        vault.put_file(src)


def test_hash_file_of_an_empty_file_is_defined(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hash_file(empty).blake3 == blake3.blake3(b"").digest()


def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    # A 256 MiB sparse file: if the copy held it in memory, RSS would pass 256 MB.
    # VmHWM, not ru_maxrss: the latter inherits the forking pytest's peak at exec.
    src = tmp_path / "sparse.bin"
    with src.open("wb") as f:
        f.truncate(256 * MiB)
    script = textwrap.dedent(
        f"""
        import re
        from pathlib import Path
        from custody.infra.vault import Vault
        Vault(Path({str(tmp_path / "vault")!r})).put_file(Path({str(src)!r}))
        status = Path("/proc/self/status").read_text()
        print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert int(out) < 150, f"peak RSS {out.strip()} MB"


# -- staging: nothing in objects/ before its entry is committed ---------------------------------


def _staging(v: Vault) -> list[Path]:
    # staging/ is made by the first stage_file.
    folder = v.root / "staging"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_staged_copy_is_complete_but_not_an_object_until_placed(vault: Vault, big: Path) -> None:
    staged = vault.stage_file(big, sha256=True)
    hexd = staged.digests.blake3_hex
    assert staged.digests == hash_bytes(big.read_bytes(), sha256=True)
    assert not vault.has(hexd) and _objects(vault) == [] and _tmp_files(vault) == []
    assert [p.name[:64] for p in _staging(vault)] == [hexd]
    assert staged.path.read_bytes() == big.read_bytes()
    # Sidecars may be written for a staged copy (they are measured before the entry).
    vault.put_sidecar(hexd, "probe", b"{}")
    assert vault.staged() == [(hexd, True)]  # held by this (live) Staged
    assert staged.place() == vault.path_for(hexd)
    assert vault.has(hexd) and _staging(vault) == []
    assert stat.S_IMODE(vault.path_for(hexd).stat().st_mode) == 0o444
    again = vault.stage_file(big)
    assert again.already_present and _staging(vault) == []
    again.place()


def test_a_discarded_copy_leaves_nothing(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "refused.bin"
    src.write_bytes(b"refused at the append")
    staged = vault.stage_file(src)
    staged.discard()
    staged.discard()  # idempotent
    assert _staging(vault) == [] and _objects(vault) == [] and _tmp_files(vault) == []


def test_recover_places_what_the_log_names_and_removes_the_rest(
    tmp_path: Path,
) -> None:
    """What a killed run leaves in staging/: run in a child that exits without cleaning."""
    root = tmp_path / "vault"
    kept, dropped = tmp_path / "kept.bin", tmp_path / "dropped.bin"
    kept.write_bytes(b"its entry was committed")
    dropped.write_bytes(b"its entry was not")
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from custody.infra.vault import Vault
        v = Vault(Path({str(root)!r}))
        v.stage_file(Path({str(kept)!r}))
        v.stage_file(Path({str(dropped)!r}))
        os._exit(137)
        """
    )
    r = subprocess.run([sys.executable, "-c", child], check=False, capture_output=True)
    assert r.returncode == 137, r.stderr
    v = Vault(root)
    k = blake3.blake3(kept.read_bytes()).hexdigest()
    d = blake3.blake3(dropped.read_bytes()).hexdigest()
    assert sorted(v.staged()) == sorted([(k, False), (d, False)])
    done = v.recover(lambda h: h == k)
    assert done.placed == (k,) and done.removed == (d,)
    assert v.has(k) and not v.has(d) and _staging(v) == []
    assert v.recover(lambda h: True) == vault_module.Recovery((), ())


def test_recover_leaves_a_live_process_s_staged_copy_alone(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "in-flight.bin"
    src.write_bytes(b"being ingested right now")
    staged = vault.stage_file(src)
    assert Vault(vault.root).recover(lambda h: False) == vault_module.Recovery((), ())
    assert staged.place() == vault.path_for(staged.digests.blake3_hex)


def test_quarantine_moves_an_unnamed_object_out_of_objects(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "stray.bin"
    src.write_bytes(b"no entry names me")
    hexd = vault.put_file(src).digests.blake3_hex
    assert vault.objects() == [hexd]
    assert vault.quarantine(hexd) == vault.root / "quarantine" / hexd
    assert vault.objects() == [] and not vault.has(hexd)
    with pytest.raises(NotFoundError):
        vault.quarantine(hexd)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (skipped, visibly, where none can be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"disk-full tests need a tmpfs mount (as root): {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("stage", [False, True])
def test_a_really_full_disk_names_the_disk_and_keeps_nothing(
    tiny_disk: Path, big: Path, stage: bool
) -> None:
    """A real ENOSPC in the middle of a mapped window: once a BufferError ("cannot close
    exported pointers exist") from the window's close, now the disk's name."""
    v = Vault(tiny_disk / "vault")
    with pytest.raises(StorageError) as err:
        if stage:
            v.stage_file(big)
        else:
            v.put_file(big)
    assert err.value.message.startswith(f"no space left on the disk holding {v.root}: ")
    assert "No space left on device" in err.value.message and err.value.hint == "free some space"
    assert _objects(v) == [] and _tmp_files(v) == [] and _staging(v) == []
