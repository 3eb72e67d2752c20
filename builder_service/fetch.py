"""Bring a pinned file into the store: download (or read) it, verify sha256 and size, and only then store it."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index.allowlist import AllowList
from venvsmith.core.index.auth import Auth, redact
from venvsmith.core.index.http import HttpClient, unexpected_status
from venvsmith.core.index.limits import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_SECONDS
from venvsmith.core.index.local import file_url_to_path, is_file_url
from venvsmith.core.pin import Pin

from .digest import Digest, file_sha256
from .errors import DigestMismatch, RegistryUnavailable
from .store import Store

CHUNK = 1 << 20
log = logging.getLogger(__name__)

#: ``progress(bytes_done, bytes_total)``; total is 0 when unknown.
Progress = Callable[[int, int], None]


class Fetcher:
    """Downloads pinned files into a :class:`Store`; a file whose bytes differ from its pin never enters it.

    A pin's URL (or path) is checked against ``allow`` before anything is opened or connected to
    (:class:`~venvsmith.core.errors.UrlNotAllowed`); a file location is read at its checked real path.
    """

    def __init__(self, store: Store, http: HttpClient, auth: Auth, tmp_dir: Path,
                 allow: AllowList | None = None) -> None:
        self.store = store
        self.http = http
        self.auth = auth
        self.tmp_dir = tmp_dir
        self.allow = allow or AllowList.everything()
        tmp_dir.mkdir(parents=True, exist_ok=True)

    def known(self, pin: Pin) -> Digest | None:
        """The stored digest of ``pin``'s file when its size is known and the store has it."""
        if pin.file.size:
            digest = Digest(file_sha256(pin.file), pin.file.size)
            try:
                if self.store.contains(digest):
                    return digest
            except RegistryUnavailable as e:  # downloaded from the index instead, pushed when the registry is back
                log.warning("%s", e)
        return None

    def fetch(self, pin: Pin, progress: Progress | None = None) -> Digest:
        """Store ``pin``'s file and return its digest; raise :class:`DigestMismatch` naming the file (its actual
        digest goes to the log only: told to the caller, it would let them read any file they can name)."""
        checked = self._checked_path(pin.file.url)
        held = self.known(pin)
        if held is not None:
            return held
        fd, name = tempfile.mkstemp(prefix="fetch-", dir=self.tmp_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                sha, size = self._download(pin, out, progress, checked)
            if sha != pin.file.sha256 or (pin.file.size and size != pin.file.size):
                expected = Digest(file_sha256(pin.file), pin.file.size or 0)  # not the size read: never told
                log.warning("digest mismatch of %s from %s: expected %s, got %s", pin.file.filename,
                            redact(pin.file.url), expected, Digest(sha, size))
                raise DigestMismatch(pin.file.filename, expected, Digest(sha, size), disclose=False)
            return self.store.put_file(tmp, expected=Digest(sha, size))
        finally:
            tmp.unlink(missing_ok=True)

    def _checked_path(self, url: str) -> Path | None:
        """The path to read for a file location (checked), ``None`` for an http(s) URL (checked)."""
        if is_file_url(url) or url.startswith("/"):
            checked = self.allow.local_path(url)
            if checked is not None:
                return checked
            return file_url_to_path(url) if is_file_url(url) else Path(url)
        self.allow.check(url)
        return None

    def _download(self, pin: Pin, out, progress: Progress | None, path: Path | None) -> tuple[str, int]:
        hasher = hashlib.sha256()
        done = 0
        total = pin.file.size or 0
        url = pin.file.url
        if path is not None:
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
