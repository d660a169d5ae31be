"""Private key files: sealed with Argon2id + ChaCha20-Poly1305, mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from custody.errors import FormatError, KeyFileError, UsageError
from custody.infra.keystore import KDF_PROFILES, MAX_KEY_FILE, KeyFile, KeyStore, check_kdf


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


# -- bounds on what a key file may ask (issue 9) ----------------------------------------


def _edited(tmp_path: Path, old: str, new: str) -> KeyStore:
    ks = KeyStore(tmp_path)
    ks.create("alice", "owner", "", "pw")
    path = ks.path("alice")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return ks


def test_every_profile_is_within_the_bounds() -> None:
    for profile in KDF_PROFILES.values():
        assert check_kdf(profile, "k.key") == profile


@pytest.mark.parametrize(
    ("kdf", "parameter"),
    [
        ("m=99999999999,t=1,p=1", "m=99999999999 is outside 8192..1048576 (KiB)"),
        ("m=1,t=1,p=1", "m=1 is outside"),
        ("m=8191,t=1,p=1", "m=8191 is outside"),
        ("m=1048577,t=1,p=1", "m=1048577 is outside"),
        ("m=8192,t=999999999,p=1", "t=999999999 is outside 1..10 (passes)"),
        ("m=8192,t=0,p=1", "t=0 is outside"),
        ("m=8192,t=11,p=1", "t=11 is outside"),
        ("m=8192,t=1,p=0", "p=0 is outside 1..8 (lanes)"),
        ("m=8192,t=1,p=99999999999", "p=99999999999 is outside"),
    ],
)
def test_kdf_parameters_outside_the_bounds_are_refused_before_any_work(
    tmp_path: Path, kdf: str, parameter: str
) -> None:
    ks = _edited(tmp_path, "kdf argon2id m=8192,t=1,p=1", f"kdf argon2id {kdf}")
    with pytest.raises(FormatError) as caught:
        ks.unlock("alice", lambda _p: "pw")
    assert caught.value.message.startswith(f"{ks.path('alice')}: KDF parameter {parameter}")


@pytest.mark.parametrize(
    "kdf", ["m=-5,t=1,p=1", "m=08192,t=1,p=1", "t=1,m=8192,p=1", "scrypt m=8192,t=1,p=1", "m=8192"]
)
def test_a_kdf_line_of_another_shape_is_refused(tmp_path: Path, kdf: str) -> None:
    line = kdf if kdf.startswith("scrypt") else f"argon2id {kdf}"
    ks = _edited(tmp_path, "kdf argon2id m=8192,t=1,p=1", f"kdf {line}")
    with pytest.raises(FormatError, match="the kdf line is not 'argon2id m=N,t=N,p=N'"):
        ks.load("alice")


@pytest.mark.parametrize("field", ["salt", "nonce", "sealed"])
def test_salt_nonce_and_seal_must_have_their_sizes(tmp_path: Path, field: str) -> None:
    ks = KeyStore(tmp_path)
    ks.create("alice", "owner", "", "pw")
    path = ks.path("alice")
    lines = [
        f"{field} AAAA" if line.startswith(f"{field} ") else line
        for line in path.read_text().split("\n")
    ]
    path.write_text("\n".join(lines))
    with pytest.raises(FormatError, match=f"the {field} is 3 bytes, not"):
        ks.load("alice")


def test_a_huge_or_special_key_file_is_refused_unread(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    ks.path("alice").write_bytes(b"custody/key/v1\norg " + b"x" * MAX_KEY_FILE)
    with pytest.raises(FormatError, match="too large to be a custody key file"):
        ks.load("alice")
    ks.path("bob").symlink_to("/dev/zero")
    with pytest.raises(FormatError, match="not a regular file"):
        ks.load("bob")
    os.mkfifo(ks.path("carol"))  # opening a FIFO for reading would wait for a writer
    with pytest.raises(FormatError, match="not a regular file"):
        ks.load("carol")


def test_names_too_long_for_a_file_are_usage_errors(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    with pytest.raises(UsageError, match="too long for a key file name"):
        ks.exists("a" * 300)
    # An origin's '/' takes three bytes in the file name.
    with pytest.raises(UsageError, match="too long"):
        ks.create("a/" * 85 + "a", "log", "", "pw")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("org", ["\x1b[2J", "two\nlines", "nul\x00"])
def test_an_org_that_cannot_be_one_header_line_is_refused(tmp_path: Path, org: str) -> None:
    ks = KeyStore(tmp_path / "keys")
    with pytest.raises(UsageError, match=r"the key.s org .* contains a control character"):
        ks.create("alice", "owner", org, "pw")
    assert not (tmp_path / "keys").exists()


def test_readable_key_files_and_folders_are_warned_about_once(tmp_path: Path) -> None:
    warnings: list[str] = []
    ks = KeyStore(tmp_path / "keys", warn=warnings.append)
    ks.create("alice", "owner", "", "pw")
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    ks.unlock("alice", lambda _p: "pw")
    assert warnings == []
    ks.path("alice").chmod(0o640)
    (tmp_path / "keys").chmod(0o755)
    ks.unlock("alice", lambda _p: "pw")
    ks.unlock("alice", lambda _p: "pw")
    assert warnings == [
        f"the keys folder {tmp_path / 'keys'} is open to other users (mode 0755); "
        f"run 'chmod 700 {tmp_path / 'keys'}'",
        f"the key file {ks.path('alice')} is open to other users (mode 0640); "
        f"run 'chmod 600 {ks.path('alice')}'",
    ]
