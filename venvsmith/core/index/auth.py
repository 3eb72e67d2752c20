"""Credentials by URL prefix (explicit, embedded in index URLs, netrc) and URL redaction for messages."""

from __future__ import annotations

import base64
import netrc
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "****"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Credential:
    """Credentials for every URL under ``url_prefix``: basic (username/password) or a bearer token."""

    url_prefix: str
    username: str = ""
    password: str = ""
    token: str = ""

    def header(self) -> str:
        """The ``Authorization`` header value."""
        if self.token:
            return f"Bearer {self.token}"
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"Credential({self.url_prefix!r}, username={self.username!r}, secret={REDACTED})"


def redact(url: str) -> str:
    """``url`` with its user-info (user name, password or token) replaced by ``****``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """Split ``url`` into the URL without user-info and the (unquoted) ``(user, password)`` it embedded."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def strip_userinfo(url: str) -> str:
    """``url`` without user-info."""
    return split_userinfo(url)[0]


def _realm(url: str) -> tuple[str, str, int | None]:
    """(scheme, lower-cased host, port with the scheme's default filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def matches_prefix(url: str, prefix: str) -> bool:
    """True when ``url`` lies under ``prefix``: same realm, and the path is the prefix's or below it."""
    if _realm(url) != _realm(prefix):
        return False
    path, base = urlsplit(url).path or "/", urlsplit(prefix).path or "/"
    if path == base or base.endswith("/") and path.startswith(base):
        return True
    return path.startswith(base + "/")


class Auth:
    """Finds the credential for a URL: the longest matching prefix, else one for the same host (scheme, host
    and port), else the netrc entry for the host.

    The same-host fallback is pip's rule (it keys credentials by host): an index's files are often served
    from another path of that host (``/simple/`` lists ``/packages/...``), and they need the same login.
    """

    def __init__(
        self,
        credentials: Iterable[Credential] = (),
        index_urls: Iterable[str] = (),
        netrc_path: Path | None = None,
        use_netrc: bool = True,
    ) -> None:
        entries = list(credentials)
        for url in index_urls:
            stripped, userinfo = split_userinfo(url)
            if userinfo:
                entries.append(Credential(stripped, userinfo[0], userinfo[1]))
        # Longest prefix first so the most specific credential wins.
        self._entries = sorted(entries, key=lambda c: len(urlsplit(c.url_prefix).path or "/"), reverse=True)
        self._use_netrc = use_netrc
        self._netrc_path = netrc_path
        self._netrc: netrc.netrc | None = None
        self._netrc_loaded = False
        self._lock = threading.Lock()

    def for_url(self, url: str) -> Credential | None:
        """The credential to send with a request for ``url`` (which carries no user-info itself)."""
        for entry in self._entries:
            if matches_prefix(url, entry.url_prefix):
                return entry
        realm = _realm(url)
        for entry in self._entries:
            if _realm(entry.url_prefix) == realm:
                return entry
        return self._from_netrc(url)

    def headers(self, url: str) -> dict[str, str]:
        """``{"Authorization": ...}`` for ``url``, or an empty dict."""
        cred = self.for_url(url)
        return {"Authorization": cred.header()} if cred else {}

    def _from_netrc(self, url: str) -> Credential | None:
        if not self._use_netrc:
            return None
        rc = self._load_netrc()
        if rc is None:
            return None
        host = urlsplit(url).hostname or ""
        found = rc.authenticators(host)
        if not found:
            return None
        login, _account, password = found
        return Credential(f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/", login or "", password or "")

    def _load_netrc(self) -> netrc.netrc | None:
        with self._lock:
            if not self._netrc_loaded:
                self._netrc_loaded = True
                path = self._netrc_path or Path(os.environ.get("NETRC") or Path.home() / ".netrc")
                try:
                    self._netrc = netrc.netrc(os.fspath(path)) if path.is_file() else None
                except (OSError, netrc.NetrcParseError):
                    self._netrc = None
            return self._netrc
