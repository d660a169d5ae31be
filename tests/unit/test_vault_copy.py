"""custody.infra.vault: the one-pass kernel copy (copy_file_range, its fallbacks) and the
checks that make its result safe (docs/ingest.md, "How a file is copied")."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from custody.errors import InputError, StorageError
from custody.infra import files
from custody.infra import vault as vault_module
from custody.infra.files import NoSpaceError
from custody.infra.vault import Vault
from custody.media.digest import hash_bytes

MiB = 1024 * 1024
WINDOW = vault_module._COPY_WINDOW


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vault")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five and a bit copy windows, so the copy runs ahead of the hash and stops."""
    path = tmp_path_factory.mktemp("copy-src") / "big.bin"
    path.write_bytes(os.urandom(5 * WINDOW + 12345))
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Less than one window: copied and hashed in the caller's thread."""
    path = tmp_path_factory.mktemp("copy-small") / "clip.mp4"
    path.write_bytes(os.urandom(70_001))
    return path


def _left(v: Vault) -> list[Path]:
    """Everything a copy leaves in the store besides its result."""
    return sorted(p for d in ("objects", "tmp", "staging") for p in (v.root / d).rglob("*"))


def _refusing(errno_: int) -> Callable[..., int]:
    def refuse(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno_, os.strerror(errno_))

    return refuse


def _check_stored(v: Vault, src: Path, *, sha256: bool = False) -> tuple[str, ...]:
    stored = v.put_file(src, sha256=sha256)
    data = src.read_bytes()
    expected = hash_bytes(data)
    assert stored.digests.size == expected.size and stored.digests.blake3 == expected.blake3
    if sha256:
        assert stored.digests.sha256 == hashlib.sha256(data).digest()
    assert stored.path.read_bytes() == data  # byte-identical
    return v.last_copy


@pytest.mark.parametrize("which", ["big", "small"])
def test_a_copy_is_made_in_the_kernel_and_is_byte_identical(
    vault: Vault, big: Path, small: Path, which: str
) -> None:
    src = big if which == "big" else small
    assert _check_stored(vault, src, sha256=True) == ("copy_file_range",)


@pytest.mark.parametrize(
    "errno_", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM]
)
@pytest.mark.parametrize("which", ["big", "small"])
def test_copy_file_range_refused_falls_back_to_sendfile(
    vault: Vault,
    big: Path,
    small: Path,
    which: str,
    errno_: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "copy_file_range", _refusing(errno_))
    assert _check_stored(vault, big if which == "big" else small) == ("sendfile",)


@pytest.mark.parametrize("errno_", [errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_sendfile_refused_too_falls_back_to_reads(
    vault: Vault, big: Path, errno_: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "copy_file_range", _refusing(errno.EXDEV))
    monkeypatch.setattr(os, "sendfile", _refusing(errno_))
    assert _check_stored(vault, big, sha256=True) == ("read",)


def test_a_kernel_copy_that_copies_nothing_falls_back(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some file systems answer copy_file_range with 0 bytes rather than an error.
    monkeypatch.setattr(os, "copy_file_range", lambda *a, **k: 0)
    assert _check_stored(vault, big) == ("sendfile",)


def test_a_refusal_half_way_continues_where_the_copy_was(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.copy_file_range

    def until_two_windows(src: int, dst: int, count: int, *offsets: Any) -> int:
        if offsets[0] >= 2 * WINDOW:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst, count, *offsets)

    monkeypatch.setattr(os, "copy_file_range", until_two_windows)
    assert _check_stored(vault, big) == ("copy_file_range", "sendfile")


def test_the_copy_stays_a_few_windows_ahead_of_the_hash(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.copy_file_range
    hashed = [0]
    ahead: list[int] = []

    def watched(src: int, dst: int, count: int, *offsets: Any) -> int:
        ahead.append(offsets[0] + count - hashed[0])
        return real(src, dst, count, *offsets)

    def progress(n: int) -> None:
        hashed[0] += n

    monkeypatch.setattr(os, "copy_file_range", watched)
    vault.put_file(big, progress=progress)
    assert hashed[0] == big.stat().st_size
    # The hash reports a window once it is hashed; the copy may be the windows being
    # mapped and hashed, plus _COPY_AHEAD, ahead of that.
    assert max(ahead) <= vault_module._COPY_AHEAD + 2 * WINDOW


def test_a_source_changed_during_the_copy_is_refused(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "recording.mp4"
    src.write_bytes(os.urandom(3 * WINDOW))

    def camera_still_writing(n: int) -> None:
        with src.open("ab") as f:
            f.write(b"more footage")

    with pytest.raises(InputError, match=r"recording\.mp4 changed while it was being read"):
        vault.stage_file(src, progress=camera_still_writing)
    assert _left(vault) == []


def test_a_source_rewritten_in_place_with_its_mtime_put_back_is_refused(
    vault: Vault, tmp_path: Path
) -> None:
    # Same size, same mtime (utime puts it back): the ctime still tells.
    src = tmp_path / "clip.mp4"
    src.write_bytes(os.urandom(3 * WINDOW))
    st = src.stat()

    def tamper(n: int) -> None:
        with src.open("r+b") as f:
            f.seek(WINDOW + 10)
            f.write(b"X")
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))

    with pytest.raises(InputError, match="changed while it was being read"):
        vault.put_file(src, progress=tamper)
    assert _left(vault) == []


def test_a_source_truncated_during_the_copy_is_refused(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(os.urandom(4 * WINDOW))

    def truncate(n: int) -> None:
        os.truncate(src, WINDOW)

    with pytest.raises(InputError, match="changed while it was being read"):
        vault.stage_file(src, progress=truncate)
    assert _left(vault) == []


def test_a_read_error_in_the_kernel_copy_names_the_file_and_where(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_copy, real_pread = os.copy_file_range, os.pread
    bad = 3 * WINDOW + 5 * MiB

    def copy(src: int, dst: int, count: int, *offsets: Any) -> int:
        if offsets[0] <= bad < offsets[0] + count:
            raise OSError(errno.EIO, "Input/output error")
        return real_copy(src, dst, count, *offsets)

    def pread(fd: int, n: int, offset: int) -> bytes:
        if offset <= bad < offset + n:
            raise OSError(errno.EIO, "Input/output error")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "copy_file_range", copy)
    monkeypatch.setattr(os, "pread", pread)
    with pytest.raises(InputError, match=rf"big\.bin: read error near byte {bad} \(Input/output"):
        vault.stage_file(big)
    assert _left(vault) == []


def test_an_io_error_writing_the_copy_is_the_store_s(
    vault: Vault, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EIO, but the source reads fine: the copy's side failed.
    monkeypatch.setattr(os, "copy_file_range", _refusing(errno.EIO))
    with pytest.raises(StorageError, match="cannot write a copy") as err:
        vault.stage_file(big)
    assert not isinstance(err.value, InputError)
    assert _left(vault) == []


@pytest.mark.parametrize("method", ["copy_file_range", "sendfile", "pwrite"])
def test_a_full_disk_during_the_copy_keeps_nothing(
    vault: Vault, big: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if method != "copy_file_range":
        monkeypatch.setattr(os, "copy_file_range", _refusing(errno.EXDEV))
    if method == "pwrite":
        monkeypatch.setattr(os, "sendfile", _refusing(errno.EINVAL))
    monkeypatch.setattr(os, method, _refusing(errno.ENOSPC))
    with pytest.raises(NoSpaceError, match="No space left on device") as err:
        vault.stage_file(big)
    assert err.value.hint == "free some space"
    assert _left(vault) == []


def test_a_stop_during_the_copy_leaves_nothing(vault: Vault, big: Path) -> None:
    class Stop(Exception):
        pass

    def stop(n: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        vault.stage_file(big, progress=stop)
    assert _left(vault) == []
    # The store is usable at once (no copier thread left behind holding the temp file).
    assert vault.stage_file(big).digests == hash_bytes(big.read_bytes())


def test_several_sidecars_are_stored_with_one_folder_sync(
    vault: Vault, small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = vault.stage_file(small)
    hexd = staged.digests.blake3_hex
    synced: list[Path] = []
    real = files.fsync_dir

    def counting(path: Path) -> None:
        synced.append(path)
        real(path)

    monkeypatch.setattr(vault_module, "fsync_dir", counting)
    sidecars = {"probe": b"{}", "framehash": b"#f\n", "streamhash": b"#s\n"}
    paths = vault.put_sidecars(hexd, sidecars)
    assert {k: p.read_bytes() for k, p in paths.items()} == sidecars
    assert all(p.stat().st_mode & 0o777 == 0o444 for p in paths.values())
    folder = vault.sidecar_path(hexd, "probe").parent
    assert synced.count(folder) == 1
    synced.clear()
    assert vault.put_sidecars(hexd, sidecars) == paths  # again: a no-op, nothing synced
    assert synced == []
    with pytest.raises(StorageError, match="different framehash sidecar"):
        vault.put_sidecars(hexd, {"framehash": b"other"})
    staged.discard()


def test_large_copies_run_one_at_a_time_small_ones_alongside(
    vault: Vault, tmp_path: Path, small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each large copy maps a few windows (resident memory): --jobs workers copying
    # several large files must not multiply that.
    files = []
    for n in range(3):
        path = tmp_path / f"large{n}.bin"
        path.write_bytes(os.urandom(2 * WINDOW + n))
        files.append(path)
    lock = threading.Lock()
    running: list[int] = []
    most = [0]
    real = vault_module._Copier.run

    def watched(self: vault_module._Copier) -> None:
        with lock:
            running.append(self.size)
            most[0] = max(most[0], sum(1 for s in running if s > WINDOW))
        try:
            real(self)
        finally:
            with lock:
                running.remove(self.size)

    monkeypatch.setattr(vault_module._Copier, "run", watched)
    with ThreadPoolExecutor(4) as pool:
        stored = list(pool.map(vault.put_file, [*files, small]))
    assert [s.path.read_bytes() for s in stored] == [p.read_bytes() for p in [*files, small]]
    assert most[0] == 1
