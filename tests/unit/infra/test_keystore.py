"""Private key files: sealed with Argon2id + ChaCha20-Poly1305, mode 0600."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.errors import FormatError, KeyFileError, UsageError
from custody.infra.keystore import KeyFile, KeyStore


def test_round_trip_and_file_mode(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys")
    keyfile, signer = ks.create("alice", "owner", "Alice's house", "pw")
    path = ks.path("alice")
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"sealed " in path.read_bytes() and signer.seed() not in path.read_bytes()
    assert "m=8192,t=1,p=1" in path.read_text()  # the KDF parameters are on record
    again = ks.unlock("alice", lambda _p: "pw")
    assert again.verifier_key == keyfile.verifier_key == signer.verifier_key
    assert ks.names() == ["alice"]


def test_wrong_passphrase(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    ks.create("alice", "owner", "", "pw")
    with pytest.raises(KeyFileError, match="wrong passphrase for key 'alice'"):
        ks.unlock("alice", lambda _p: "PW")


def test_header_is_authenticated(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    ks.create("alice", "owner", "", "pw")
    path = ks.path("alice")
    path.chmod(0o600)
    path.write_text(path.read_text().replace("role owner", "role court"))
    with pytest.raises(KeyFileError):
        ks.unlock("alice", lambda _p: "pw")


@pytest.mark.parametrize("damage", [b"", b"custody/key/v1\nname x\n", b"\xff\xfe", b"hello"])
def test_damaged_files_are_format_errors(damage: bytes) -> None:
    with pytest.raises(FormatError):
        KeyFile.parse(damage, "k.key")


def test_refuses_overwrite_and_bad_input(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    ks.create("alice", "owner", "", "pw")
    with pytest.raises(UsageError, match="already exists"):
        ks.create("alice", "owner", "", "pw")
    with pytest.raises(UsageError, match="role"):
        ks.create("bob", "pirate", "", "pw")
    with pytest.raises(UsageError, match="empty"):
        ks.create("bob", "owner", "", "")
    with pytest.raises(FormatError):
        ks.create("bad name", "owner", "", "pw")


def test_default_kdf_is_memory_hard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUSTODY_KDF_PROFILE")
    ks = KeyStore(tmp_path)
    ks.create("alice", "owner", "", "pw")
    assert "kdf argon2id m=65536,t=2,p=1" in ks.path("alice").read_text()
