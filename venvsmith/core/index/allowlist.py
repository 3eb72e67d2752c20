"""Which locations a server may fetch from: the operator's allow-list of index and find-links URL prefixes.

A caller may name any URL or path (an index, a find-links directory, a direct URL, a pin's file): a server fetches
it only when it lies under a prefix its operator allows, checked *before* any connection is made or file opened
(server-side request forgery: cloud metadata endpoints, internal services, the host's own files).

Both sides are normalised before they are compared: scheme and host lower-cased, default ports made explicit,
user-info dropped (it names credentials, not a location), a path compared segment by segment (``/simple`` does
not cover ``/simplex``). Forms whose meaning depends on who parses them are refused outright: ``..`` or ``.``
segments, percent-encoded dots, slashes, backslashes or NUL, backslashes, whitespace and control characters,
several ``@`` in the authority, non-ASCII or numeric shorthand hosts (``127.1``, ``0x7f000001``), and IP
literals of link-local, unspecified, multicast or cloud metadata addresses (even when a prefix names them).
IPv4-mapped IPv6 literals are compared as their IPv4 address. ``file://`` locations are compared by their
resolved real paths, so a symlink inside an allowed directory cannot lead out of it.

Pure: no I/O but ``os.path.realpath`` of file locations.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..errors import UrlNotAllowed
from .auth import redact

if TYPE_CHECKING:
    from ..config import PipIndexConfig

__all__ = ["AllowList", "Location", "normalise", "origin_of", "server_allow_list"]

#: Longest URL considered at all.
MAX_URL_LENGTH = 8192
#: Longest URL echoed in an error.
MAX_ECHO = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Escapes that change how a path splits into segments, whoever decodes them.
_ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c|00)", re.I)
_HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")
#: A host made only of numbers (decimal, octal, hex labels): an IPv4 address in some inet_aton shorthand.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?")
#: Addresses no index lives at: instance metadata services (the IPv4 one is link-local anyway).
_METADATA = frozenset({ipaddress.ip_address("fd00:ec2::254")})


class _Refused(ValueError):
    """A URL form the allow-list does not accept; the message says why."""


@dataclass(frozen=True)
class Location:
    """A normalised location: ``("file", "", 0, parts of the real path)`` or ``(scheme, host, port, segments)``."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]

    def within(self, prefix: Location) -> bool:
        """This location is ``prefix`` or lies under it (on segment boundaries)."""
        return ((self.scheme, self.host, self.port) == (prefix.scheme, prefix.host, prefix.port)
                and self.segments[: len(prefix.segments)] == prefix.segments)

    def path(self) -> Path:
        """The real path of a ``file`` location."""
        return Path("/" + "/".join(self.segments))


def _host(netloc: str, hostname: str | None) -> str:
    if netloc.count("@") > 1:
        raise _Refused("more than one '@' in the authority")
    if "%" in netloc.rpartition("@")[2]:
        raise _Refused("percent-encoded or zone-scoped host")
    if not hostname:
        raise _Refused("no host")
    if not hostname.isascii():
        raise _Refused("non-ASCII host")
    host = hostname.lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        host = host.removesuffix(".")
        if _NUMERIC_HOST.fullmatch(host) or not _HOST.fullmatch(host):
            raise _Refused("not a host name or a canonical IP address") from None
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local or address.is_unspecified or address.is_multicast or address in _METADATA:
        raise _Refused("a link-local, unspecified, multicast or metadata address")
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _segments(path: str) -> tuple[str, ...]:
    if _ENCODED_SEPARATORS.search(path):
        raise _Refused("percent-encoded dot, slash, backslash or NUL in the path")
    raw = [s for s in path.split("/") if s]
    if any(s.partition(";")[0] in (".", "..") for s in raw):  # "..;" is ".." to some servers
        raise _Refused("'.' or '..' path segment")
    return tuple(unquote(s) for s in raw)


def _real_parts(path: str) -> tuple[str, ...]:
    if "\x00" in path:
        raise _Refused("NUL in the path")
    return Path(os.path.realpath(path)).parts[1:]


def normalise(url: str) -> Location:
    """``url`` (an http(s) or file URL, or a local path) as a :class:`Location`; ``ValueError`` (saying why) for
    any form the allow-list refuses."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise _Refused("empty or too long")
    if "\\" in url or any(ch <= " " or ch == "\x7f" for ch in url):
        raise _Refused("backslash, whitespace or control character")
    if url.startswith(("/", "./", "../")) or url in (".", ".."):  # a local path (relative: to this process)
        return Location("file", "", 0, _real_parts(os.path.abspath(url)))
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc.lower() not in ("", "localhost"):
                raise _Refused("a file URL names a remote host")
            if _ENCODED_SEPARATORS.search(parts.path):
                raise _Refused("percent-encoded dot, slash, backslash or NUL in the path")
            path = unquote(parts.path)
            if not path.startswith("/") or any(s in (".", "..") for s in path.split("/")):
                raise _Refused("not an absolute path without '.' or '..' segments")
            return Location("file", "", 0, _real_parts(path))
        if scheme not in _DEFAULT_PORTS:
            raise _Refused("not an http, https or file URL")
        host = _host(parts.netloc, parts.hostname)
        port = parts.port or _DEFAULT_PORTS[scheme]
    except _Refused:
        raise
    except ValueError as exc:  # a malformed port or IPv6 literal
        raise _Refused(str(exc) or "malformed URL") from None
    return Location(scheme, host, port, _segments(parts.path))


def _echo(url: str) -> str:
    text = redact(url) if isinstance(url, str) else repr(url)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


class AllowList:
    """URL prefixes a server may fetch from; :meth:`everything` (the embedded CLI, acting for its own user)
    allows any location."""

    def __init__(self, prefixes: Iterable[Location] = (), *, unrestricted: bool = False,
                 described: Iterable[str] = ()) -> None:
        self.prefixes = tuple(prefixes)
        self.unrestricted = unrestricted
        self.described = tuple(described)

    @classmethod
    def from_prefixes(cls, prefixes: Iterable[str]) -> AllowList:
        """The allow-list of these URL prefixes (or directory paths); ``ValueError`` naming a malformed one."""
        locations, described = [], []
        for prefix in prefixes:
            try:
                locations.append(normalise(prefix.strip()))
            except ValueError as exc:
                raise ValueError(f"invalid allowed index prefix {_echo(prefix)!r}: {exc}") from None
            described.append(_echo(prefix.strip()))
        return cls(locations, described=described)

    @classmethod
    def everything(cls) -> AllowList:
        return cls(unrestricted=True, described=["everything"])

    def allows(self, url: str) -> bool:
        try:
            self.check(url)
        except UrlNotAllowed:
            return False
        return True

    def check(self, url: str) -> Location | None:
        """The normalised location of ``url`` if it is allowed (``None`` when the list is unrestricted), else
        :class:`~venvsmith.core.errors.UrlNotAllowed` naming it (redacted)."""
        if self.unrestricted:
            return None
        try:
            location = normalise(url)
        except ValueError as exc:
            raise UrlNotAllowed(_echo(url), str(exc)) from None
        if not any(location.within(prefix) for prefix in self.prefixes):
            raise UrlNotAllowed(_echo(url), "not under an index or find-links prefix this server allows")
        return location

    def local_path(self, url: str) -> Path | None:
        """The real path to open for a file location ``url`` once it is checked (``None`` when unrestricted)."""
        location = self.check(url)
        return None if location is None else location.path()

    def check_all(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.check(url)

    def __repr__(self) -> str:
        return f"AllowList({', '.join(self.described)})"


def origin_of(url: str) -> str:
    """The scheme://host:port/ of an http(s) URL (credentials dropped); other locations as they are."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in _DEFAULT_PORTS and parts.netloc:
        return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}/"
    return url.strip()


def server_allow_list(pip: PipIndexConfig, allowed: Iterable[str] = ()) -> AllowList:
    """A server's allow-list: the prefixes the operator gave (``serve --allow-index``; they *replace* the
    default), else the default: the hosts (scheme, host and port) of the indexes and http(s) find-links in the
    server's own configuration, its find-links directories, and, when the default index is pip's built-in one,
    the host that index serves its files from."""
    given = [prefix for prefix in allowed if prefix.strip()]
    if given:
        return AllowList.from_prefixes(given)
    from ..config import default_index_url

    prefixes = [*pip.extra_index_urls, *pip.find_links]
    if not pip.no_index:
        prefixes.append(default_index_url(pip))
        if not pip.index_url:
            from pip._internal.models.index import PyPI  # only pip's constant, read at run time

            prefixes.append(f"https://{PyPI.file_storage_domain}/")
    return AllowList.from_prefixes(dict.fromkeys(origin_of(p) for p in prefixes))
