"""Private key files, encrypted at rest (docs/spec/keyfile.md).

A key file holds one party's Ed25519 seed, sealed with ChaCha20-Poly1305 under
a key derived from a passphrase with Argon2id (memory-hard, RFC 9106).  The
public header (name, role, verifier key, KDF parameters) is authenticated as
associated data, so editing it makes the file fail to open.  Files are written
durably (temp file, fsync, rename) with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from custody.errors import FormatError, KeyFileError, NotFoundError, StorageError, UsageError
from custody.infra.files import write_new
from custody.tlog.note import Signer, VerifierKey, check_key_name

VERSION = "custody/key/v1"
ROLES = ("owner", "agency", "lab", "court", "defence", "log", "witness")

# RFC 9106's second recommended option is 64 MiB, t=3; we take 64 MiB, t=2 so
# that unlocking a key stays near 0.1 s on a small machine.  Test suites may set
# CUSTODY_KDF_PROFILE=fast (8 MiB, t=1); the parameters used are written into
# every file, so a weak file is visible to anyone who looks.
KDF_PROFILES = {"default": (65536, 2, 1), "fast": (8192, 1, 1)}


def _kdf_params() -> tuple[int, int, int]:
    profile = os.environ.get("CUSTODY_KDF_PROFILE", "default")
    if profile not in KDF_PROFILES:
        raise UsageError(f"CUSTODY_KDF_PROFILE={profile!r} is not one of {', '.join(KDF_PROFILES)}")
    return KDF_PROFILES[profile]


def _derive(passphrase: str, salt: bytes, memory: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory)
    return kdf.derive(passphrase.encode("utf-8"))


@dataclass(frozen=True)
class KeyFile:
    """The public header of a key file, and the sealed seed."""

    name: str
    role: str
    org: str
    verifier_key: VerifierKey
    kdf: tuple[int, int, int]
    salt: bytes
    nonce: bytes
    sealed: bytes

    def header(self) -> str:
        m, t, p = self.kdf
        lines = [
            VERSION,
            f"name {self.name}",
            f"role {self.role}",
            f"org {self.org}",
            f"vkey {self.verifier_key.encode()}",
            f"kdf argon2id m={m},t={t},p={p}",
            f"salt {base64.b64encode(self.salt).decode()}",
            f"nonce {base64.b64encode(self.nonce).decode()}",
        ]
        return "\n".join(lines) + "\n"

    def encode(self) -> bytes:
        return (self.header() + f"sealed {base64.b64encode(self.sealed).decode()}\n").encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> KeyFile:
        """Parse a key file; FormatError names the file and the field."""
        try:
            lines = data.decode("utf-8").split("\n")
            if lines[0] != VERSION:
                raise FormatError(f"{where} is not a custody key file (no '{VERSION}' line)")
            fields = dict(line.split(" ", 1) for line in lines[1:] if line)
            m, t, p = (int(kv.split("=")[1]) for kv in fields["kdf"].split(" ", 1)[1].split(","))
            return cls(
                name=fields["name"],
                role=fields["role"],
                org=fields["org"],
                verifier_key=VerifierKey.parse(fields["vkey"]),
                kdf=(m, t, p),
                salt=base64.b64decode(fields["salt"], validate=True),
                nonce=base64.b64decode(fields["nonce"], validate=True),
                sealed=base64.b64decode(fields["sealed"], validate=True),
            )
        except FormatError:
            raise
        except (KeyError, ValueError, IndexError, UnicodeDecodeError, binascii.Error) as exc:
            raise FormatError(
                f"{where} is damaged ({type(exc).__name__}: {exc})",
                hint="restore the key file from your backup",
            ) from exc

    def unlock(self, passphrase: str, where: str) -> Signer:
        """Decrypt the seed; KeyFileError on a wrong passphrase or a tampered header."""
        key = _derive(passphrase, self.salt, *self.kdf)
        try:
            seed = ChaCha20Poly1305(key).decrypt(self.nonce, self.sealed, self.header().encode())
        except InvalidTag:
            raise KeyFileError(
                f"wrong passphrase for key '{self.name}' ({where})",
                hint="check CUSTODY_PASSPHRASE or --passphrase-file, or type it again",
            ) from None
        signer = Signer.from_seed(self.name, seed)
        if signer.verifier_key != self.verifier_key:
            raise KeyFileError(f"{where}: the sealed key does not match its verifier key")
        return signer


def seal(signer: Signer, role: str, org: str, passphrase: str) -> KeyFile:
    """Seal `signer`'s seed under `passphrase` (fresh salt and nonce)."""
    if not passphrase:
        raise UsageError("the passphrase is empty", hint="choose a passphrase to protect the key")
    m, t, p = _kdf_params()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    unsealed = KeyFile(signer.name, role, org, signer.verifier_key, (m, t, p), salt, nonce, b"")
    key = _derive(passphrase, salt, m, t, p)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, signer.seed(), unsealed.header().encode())
    return KeyFile(signer.name, role, org, signer.verifier_key, (m, t, p), salt, nonce, sealed)


class KeyStore:
    """A folder of key files, one per party: `<name>.key`, mode 0600."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        # Names may contain '/' (a log origin); quote them into one file name.
        return self.root / f"{quote(check_key_name(name), safe='')}.key"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def create(self, name: str, role: str, org: str, passphrase: str) -> tuple[KeyFile, Signer]:
        """Generate a new Ed25519 key for `name` and write it sealed; refuses to overwrite."""
        if role not in ROLES:
            raise UsageError(f"role {role!r} is not one of: {', '.join(ROLES)}")
        if self.exists(name):
            raise UsageError(
                f"a key named '{name}' already exists in {self.root}",
                hint="choose another name, or use the existing key",
            )
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = Signer.generate(name)
        keyfile = seal(signer, role, org, passphrase)
        write_new(self.path(name), keyfile.encode(), mode=0o600)
        return keyfile, signer

    def load(self, name: str) -> KeyFile:
        path = self.path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"no private key for '{name}' in {self.root}",
                hint="create it with 'custody key new NAME --role ROLE', or use --home",
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        return KeyFile.parse(data, str(path))

    def unlock(self, name: str, passphrase: Callable[[str], str]) -> Signer:
        """Load and decrypt `name`'s key; `passphrase(prompt)` supplies the passphrase."""
        keyfile = self.load(name)
        return keyfile.unlock(passphrase(f"Passphrase for key '{name}': "), str(self.path(name)))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(unquote(p.stem) for p in self.root.glob("*.key"))
