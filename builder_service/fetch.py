"""Bring a pinned file into the store: download (or read) it, verify sha256 and size, and only then store it."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index.auth import Auth, redact
from venvsmith.core.index.http import HttpClient, unexpected_status
from venvsmith.core.index.limits import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_SECONDS
from venvsmith.core.index.local import file_url_to_path, is_file_url
from venvsmith.core.pin import Pin

from .digest import Digest, file_sha256
from .errors import DigestMismatch
from .store import Store

CHUNK = 1 << 20

#: ``progress(bytes_done, bytes_total)``; total is 0 when unknown.
Progress = Callable[[int, int], None]


class Fetcher:
    """Downloads pinned files into a :class:`Store`; a file whose bytes differ from its pin never enters it."""

    def __init__(self, store: Store, http: HttpClient, auth: Auth, tmp_dir: Path) -> None:
        self.store = store
        self.http = http
        self.auth = auth
        self.tmp_dir = tmp_dir
        tmp_dir.mkdir(parents=True, exist_ok=True)

    def known(self, pin: Pin) -> Digest | None:
        """The stored digest of ``pin``'s file when its size is known and the store has it."""
        if pin.file.size:
            digest = Digest(file_sha256(pin.file), pin.file.size)
            if self.store.contains(digest):
                return digest
        return None

    def fetch(self, pin: Pin, progress: Progress | None = None) -> Digest:
        """Store ``pin``'s file and return its digest; raise :class:`DigestMismatch` naming the file."""
        held = self.known(pin)
        if held is not None:
            return held
        fd, name = tempfile.mkstemp(prefix="fetch-", dir=self.tmp_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                sha, size = self._download(pin, out, progress)
            if sha != pin.file.sha256 or (pin.file.size and size != pin.file.size):
                raise DigestMismatch(
                    pin.file.filename,
                    Digest(file_sha256(pin.file), pin.file.size or size),
                    Digest(sha, size),
                )
            return self.store.put_file(tmp, expected=Digest(sha, size))
        finally:
            tmp.unlink(missing_ok=True)

    def _download(self, pin: Pin, out, progress: Progress | None) -> tuple[str, int]:
        hasher = hashlib.sha256()
        done = 0
        total = pin.file.size or 0
        url = pin.file.url
        if is_file_url(url) or url.startswith("/"):
            path = file_url_to_path(url) if is_file_url(url) else Path(url)
            try:
                src = open(path, "rb")
            except OSError as exc:  # like an HTTP 404 of an index: the location does not serve the file
                raise IndexUnavailable(pin.file.index or redact(url),
                                       f"cannot read {pin.file.filename}: {exc.strerror}") from None
            with src:
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
            return hasher.hexdigest(), done
        # The pin's declared size bounds the download (a longer body is not that file); else the server's cap.
        cap = pin.file.size or MAX_DOWNLOAD_BYTES
        with self.http.stream(
            url, index=pin.file.index or redact(url), auth=self.auth, max_bytes=cap, seconds=MAX_DOWNLOAD_SECONDS
        ) as response:
            if response.status_code != 200:
                raise unexpected_status(response, pin.file.index or redact(url))
            total = total or int(response.headers.get("content-length") or 0)
            for chunk in response.iter_bytes(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        return hasher.hexdigest(), done
