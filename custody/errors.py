"""One error root for everything custody reports to a person.

Every failure a user can cause or meet is a `CustodyError`: a one-line message
that says what is wrong (naming the file, field or log entry), and a hint that
says what to do.  The CLI (`custody.cli`) is the only place that turns
these into output and an exit code; see docs/errors.md.

Exit codes (a contract for scripts):

====  ===================================================================
0     success: everything checked out
1     verification failed: tampering, a bad signature, a broken proof
2     usage error: a bad option or argument
3     input or storage problem: unreadable file, bad format, database
4     refused by the custody rules: not the holder, outside a consent, a
      revoked key, a hold, the log's policy; nothing was recorded
75    done, but a later step is pending (EX_TEMPFAIL): re-run it later
====  ===================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERIFY = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
# Refused by the custody rules (a PolicyError): the same code whichever command meets it.
EXIT_REFUSED = 4
# Done, but a later step is pending (e.g. a receipt waits for a checkpoint): EX_TEMPFAIL.
EXIT_PENDING = 75


class CustodyError(Exception):
    """Root of every error custody reports.

    `message` is one line saying what is wrong; `hint` (optional) says what to do.
    """

    exit_code: int = EXIT_INPUT

    def __init__(self, message: str, hint: str | None = None) -> None:
        # One line: a message must never smuggle a traceback or a multi-line dump.
        self.message = " ".join(message.split("\n")).strip()
        self.hint = hint
        super().__init__(self.message)

    def diagnostics(self) -> str:
        """The human text: the message, then the hint on its own line if there is one."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(CustodyError):
    """The command was called wrongly (a bad option value, a missing argument)."""

    exit_code = EXIT_USAGE


class InputError(CustodyError):
    """A file or value given to custody is unreadable or malformed."""

    exit_code = EXIT_INPUT


class StorageError(CustodyError):
    """The custody home, database or evidence store cannot be used."""

    exit_code = EXIT_INPUT


class LockTimeoutError(StorageError):
    """The log's write lock stayed held by another process for longer than the lock
    timeout (`CUSTODY_LOCK_TIMEOUT`, docs/errors.md).

    A batch (an ingest of many files) stops at the first one: every later file would
    wait as long and fail the same way.
    """


class NotFoundError(InputError):
    """Something named (a key, a case, an item, a log entry) does not exist."""


class KeyFileError(InputError):
    """A private key file cannot be opened (wrong passphrase, damaged file)."""


class PolicyError(CustodyError):
    """A custody rule refuses the action (e.g. only the current holder may hand off).

    Nothing was recorded.  Exit 4 (`EXIT_REFUSED`) whichever command meets the
    rule; a verifier replaying a log that holds such an entry reports it as the
    `VerificationError` it is there (exit 1).
    """

    exit_code = EXIT_REFUSED


class FormatError(InputError):
    """Bytes that should be a note, checkpoint, entry or proof are malformed.

    Parsers raise this (never KeyError/ValueError) with the field that is wrong.
    """


class VerificationError(CustodyError):
    """Something did not verify: a signature, a proof, a digest, a chain rule."""

    exit_code = EXIT_VERIFY
