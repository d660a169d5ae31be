"""Private key files, encrypted at rest (docs/spec/keyfile.md).

A key file holds one party's Ed25519 seed, sealed with ChaCha20-Poly1305 under
a key derived from a passphrase with Argon2id (memory-hard, RFC 9106).  The
public header (name, role, verifier key, KDF parameters) is authenticated as
associated data, so editing it makes the file fail to open.  Files are written
durably (temp file, fsync, rename) with mode 0600.

Opening a file never trusts its header further than the bounds below: the KDF
parameters are checked against `KDF_BOUNDS` before any work is done (a file
edited to `t=999999999` would otherwise hang, and one with `m=1` crash), and a
file larger than `MAX_KEY_FILE` is refused unread.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import sys
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

# What a key file may ask of the KDF (docs/spec/keyfile.md), as (parameter, least,
# most, unit).  The bounds take in every profile above with room to strengthen
# them, and keep the worst a file can ask for to about 1 GiB and a few seconds:
# a header is read before anything about it is authenticated, so it must not be
# able to hang or exhaust the machine that opens it.
KDF_BOUNDS = (("m", 8192, 1 << 20, "KiB"), ("t", 1, 10, "passes"), ("p", 1, 8, "lanes"))
# The most a key file may weigh: a header with an organisation of a few KiB.
MAX_KEY_FILE = 64 * 1024
# A file name is at most 255 bytes on the file systems custody runs on.
_MAX_FILE_NAME = 255
_KDF_RE = re.compile(
    r"argon2id m=(0|[1-9][0-9]{0,11}),t=(0|[1-9][0-9]{0,11}),p=(0|[1-9][0-9]{0,11})"
)
_SALT_SIZE, _NONCE_SIZE, _SEALED_SIZE = 16, 12, 32 + 16


def _kdf_params() -> tuple[int, int, int]:
    profile = os.environ.get("CUSTODY_KDF_PROFILE", "default")
    if profile not in KDF_PROFILES:
        raise UsageError(f"CUSTODY_KDF_PROFILE={profile!r} is not one of {', '.join(KDF_PROFILES)}")
    return KDF_PROFILES[profile]


def check_kdf(params: tuple[int, int, int], where: str) -> tuple[int, int, int]:
    """Return `params` (m, t, p) if they are within KDF_BOUNDS, else raise FormatError.

    The error names the key file (`where`), the parameter and the allowed range.
    """
    for (label, least, most, unit), value in zip(KDF_BOUNDS, params, strict=True):
        if not least <= value <= most:
            raise FormatError(
                f"{where}: KDF parameter {label}={value} is outside {least}..{most} ({unit})",
                hint="the key file was edited or damaged: restore it from your backup",
            )
    return params


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
        """Parse a key file; FormatError names the file and the field.

        The KDF parameters must be within KDF_BOUNDS (`check_kdf`), and the salt,
        nonce and sealed seed must have their sizes, so that `unlock` can neither
        hang nor fail on what the header says.
        """
        try:
            if len(data) > MAX_KEY_FILE:
                raise FormatError(f"{where} is too large to be a custody key file")
            lines = data.decode("utf-8").split("\n")
            if lines[0] != VERSION:
                raise FormatError(f"{where} is not a custody key file (no '{VERSION}' line)")
            fields = dict(line.split(" ", 1) for line in lines[1:] if line)
            kdf = _KDF_RE.fullmatch(fields["kdf"])
            if kdf is None:
                raise FormatError(
                    f"{where}: the kdf line is not 'argon2id m=N,t=N,p=N'",
                    hint="the key file was edited or damaged: restore it from your backup",
                )
            m, t, p = check_kdf((int(kdf[1]), int(kdf[2]), int(kdf[3])), where)
            keyfile = cls(
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
        for what, value, size in (
            ("salt", keyfile.salt, _SALT_SIZE),
            ("nonce", keyfile.nonce, _NONCE_SIZE),
            ("sealed", keyfile.sealed, _SEALED_SIZE),
        ):
            if len(value) != size:
                raise FormatError(
                    f"{where}: the {what} is {len(value)} bytes, not {size}",
                    hint="the key file was edited or damaged: restore it from your backup",
                )
        return keyfile

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
    """Seal `signer`'s seed under `passphrase` (fresh salt and nonce).

    Raises UsageError for an empty passphrase, or a role or organisation that
    cannot be one header line (a control character, a newline included).
    """
    if not passphrase:
        raise UsageError("the passphrase is empty", hint="choose a passphrase to protect the key")
    for what, value in (("role", role), ("org", org)):
        if any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in value):
            raise UsageError(
                f"the key's {what} {value!r} contains a control character",
                hint=f"give the {what} as plain text on one line",
            )
    m, t, p = _kdf_params()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    unsealed = KeyFile(signer.name, role, org, signer.verifier_key, (m, t, p), salt, nonce, b"")
    key = _derive(passphrase, salt, m, t, p)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, signer.seed(), unsealed.header().encode())
    return KeyFile(signer.name, role, org, signer.verifier_key, (m, t, p), salt, nonce, sealed)


def _warn_on_stderr(message: str) -> None:
    sys.stderr.write(f"custody: warning: {message}\n")


class KeyStore:
    """A folder of key files, one per party: `<name>.key`, mode 0600.

    `warn(message)` is told, once per path, when a key file or the folder can be
    read by the group or by others (by default a one-line warning on stderr).
    """

    def __init__(self, root: Path, warn: Callable[[str], None] = _warn_on_stderr) -> None:
        self.root = root
        self._warn = warn
        self._warned: set[Path] = set()

    def path(self, name: str) -> Path:
        """The key file of `name`; UsageError if that cannot be a file name.

        Names may contain '/' (a log origin): they are percent-encoded into one
        file name, which must stay within the 255 bytes file systems allow.
        """
        file_name = f"{quote(check_key_name(name), safe='')}.key"
        if len(file_name.encode()) > _MAX_FILE_NAME:
            raise UsageError(
                f"the name '{name[:40]}…' is too long for a key file name "
                f"({len(file_name.encode())} bytes, at most {_MAX_FILE_NAME})",
                hint="choose a shorter name",
            )
        return self.root / file_name

    def exists(self, name: str) -> bool:
        """Whether `name` has a key file here; StorageError if the folder cannot be read."""
        path = self.path(name)
        try:
            path.lstat()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        return True

    def create(self, name: str, role: str, org: str, passphrase: str) -> tuple[KeyFile, Signer]:
        """Generate a new Ed25519 key for `name` and write it sealed; refuses to overwrite."""
        if role not in ROLES:
            raise UsageError(f"role {role!r} is not one of: {', '.join(ROLES)}")
        if self.exists(name):
            raise UsageError(
                f"a key named '{name}' already exists in {self.root}",
                hint="choose another name, or use the existing key",
            )
        signer = Signer.generate(name)
        keyfile = seal(signer, role, org, passphrase)
        self.write(keyfile)
        return keyfile, signer

    def write(self, keyfile: KeyFile) -> Path:
        """Write `keyfile` as its party's key file, durably, mode 0600; returns the path.

        The folder is created with mode 0700 if it is missing.  Raises StorageError
        if the file exists already (key files are never overwritten) or cannot be
        written.
        """
        path = self.path(keyfile.name)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(
                f"cannot create the keys folder {self.root}: {exc.strerror}"
            ) from exc
        write_new(path, keyfile.encode(), mode=0o600)
        return path

    def load(self, name: str) -> KeyFile:
        """Read and parse `name`'s key file (nothing is decrypted).

        Raises NotFoundError when there is none, StorageError when it cannot be
        read, FormatError when it is damaged or asks for KDF parameters outside
        KDF_BOUNDS.  Warns (see the class doc) when it is readable by others.
        """
        path = self.path(name)
        try:
            # O_NONBLOCK: a FIFO put in a key file's place must not hang the open;
            # it is refused below as not a regular file.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                data = f.read(MAX_KEY_FILE + 1) if stat.S_ISREG(mode) else b""
        except FileNotFoundError:
            raise NotFoundError(
                f"no private key for '{name}' in {self.root}",
                hint="create it with 'custody key new NAME --role ROLE', or use --home",
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        if not stat.S_ISREG(mode):
            raise FormatError(f"{path} is not a regular file, so not a custody key file")
        self._check_private(self.root, "the keys folder", 0o700)
        self._check_private(path, "the key file", 0o600, mode)
        return KeyFile.parse(data, str(path))

    def _check_private(self, path: Path, what: str, wanted: int, mode: int | None = None) -> None:
        if path in self._warned:
            return
        if mode is None:
            try:
                mode = path.stat().st_mode
            except OSError:
                return  # the file itself was readable: its folder's mode is only advice
        if mode & 0o077:
            self._warned.add(path)
            self._warn(
                f"{what} {path} is open to other users (mode {stat.S_IMODE(mode):04o}); "
                f"run 'chmod {wanted:o} {path}'"
            )

    def unlock(self, name: str, passphrase: Callable[[str], str]) -> Signer:
        """Load and decrypt `name`'s key; `passphrase(prompt)` supplies the passphrase."""
        keyfile = self.load(name)
        return keyfile.unlock(passphrase(f"Passphrase for key '{name}': "), str(self.path(name)))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(unquote(p.stem) for p in self.root.glob("*.key"))
