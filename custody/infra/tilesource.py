"""Reading a published log (C2SP tlog-tiles) from a folder or an http(s) URL.

`open_source(source)` gives a `TileSource` whose `read(path)` returns the bytes of
``<source>/<path>`` (``checkpoint``, ``tile/0/000``, ...), bounded in size: a tile is
at most 256 hashes (8 KiB), an entry bundle at most 256 entries of 64 KiB, a
checkpoint at most 1 MiB.  A path that is not published raises
`custody.errors.NotFoundError`; every other failure (connection refused, a timeout,
a too large answer, a path that leaves the folder) an `InputError` naming the URL or
file.  custody.tlog.tiles reads the tree from these bytes.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO

from custody.errors import InputError, NotFoundError
from custody.tlog.tiles import CHECKPOINT_PATH, MAX_ENTRY, WIDTH, parse_path

__all__ = ["DEFAULT_TIMEOUT", "TileSource", "limit_for", "open_source"]

DEFAULT_TIMEOUT = 30.0
_MAX_CHECKPOINT = 1 << 20


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): urllib would also follow one to ftp:."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.URLError(f"redirected to {newurl[:100]}, not an http(s) URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def limit_for(path: str) -> int:
    """The largest answer accepted for `path` (a checkpoint, a tile, an entry bundle)."""
    if path == CHECKPOINT_PATH:
        return _MAX_CHECKPOINT
    tile, entries = parse_path(path)
    if entries:
        return tile.width * (2 + MAX_ENTRY)
    return WIDTH * 32


@dataclass(frozen=True)
class TileSource:
    """A published log: `base` is a folder or an http(s) URL (without the trailing slash)."""

    base: str
    folder: Path | None = None
    timeout: float = DEFAULT_TIMEOUT

    def where(self, path: str) -> str:
        return f"{self.base}/{path}"

    def read(self, path: str) -> bytes:
        """The bytes published at `path`; NotFoundError if there are none (see the module)."""
        limit = limit_for(path)
        if self.folder is not None:
            return self._read_file(path, limit)
        return self._read_url(path, limit)

    def _read_file(self, path: str, limit: int) -> bytes:
        assert self.folder is not None
        target = self.folder / path
        try:
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFoundError(f"{target} does not exist") from None
        except OSError as exc:
            raise InputError(f"cannot read {target}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InputError(f"{target} is larger than the {limit} bytes a {_kind(path)} may be")
        return data

    def _read_url(self, path: str, limit: int) -> bytes:
        url = self.where(path)
        request = urllib.request.Request(url, headers={"User-Agent": "custody-monitor"})
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                data: bytes = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFoundError(f"{url} is not published (HTTP 404)") from None
            raise InputError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = getattr(reason, "strerror", None) or str(reason)
            raise InputError(
                f"cannot fetch {url}: {text}", hint="is the server up and the URL right?"
            ) from None
        except TimeoutError:
            raise InputError(
                f"cannot fetch {url}: no answer within {self.timeout:g} s",
                hint="is the server up and the URL right?",
            ) from None
        except OSError as exc:
            raise InputError(f"cannot fetch {url}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise InputError(f"{url} is larger than the {limit} bytes a {_kind(path)} may be")
        return data


def _kind(path: str) -> str:
    if path == CHECKPOINT_PATH:
        return "checkpoint"
    return "entry bundle" if path.startswith("tile/entries/") else "tile"


def open_source(source: str, timeout: float = DEFAULT_TIMEOUT) -> TileSource:
    """A `TileSource` for `source`: an http(s) URL, or a folder (a path or a file: URL).

    Raises:
        InputError: another URL scheme, or a folder that does not exist.
    """
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise InputError(f"{source} has no host", hint="e.g. https://example.org/log")
        return TileSource(source.rstrip("/"), timeout=timeout)
    if parsed.scheme == "file":
        folder = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise InputError(
            f"{source}: a published log is a folder or an http(s) URL, not {parsed.scheme}:"
        )
    else:
        folder = Path(source)
    if not folder.is_dir():
        raise InputError(
            f"{folder} is not a folder of a published log",
            hint="give the folder 'custody log publish --to' wrote, or its http(s) URL",
        )
    return TileSource(str(folder).rstrip("/") or "/", folder=folder, timeout=timeout)
