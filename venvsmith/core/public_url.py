"""What a server tells its callers its address is: the operator's ``--public-url``, checked, or an address of this
host that clients can reach when it listens on every interface (never ``0.0.0.0`` or ``::``).

:func:`check_public_url` validates and normalises an operator's URL; :func:`advertised_host` picks the host for
URLs when there is none: the address the server is bound to when that is one address, else this host's name when
it resolves to a non-loopback address of this host, else the first non-loopback address of this host.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable, Iterable
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from venvsmith.core.errors import shorten
from venvsmith.core.index.auth import redact

__all__ = ["WILDCARDS", "Advertised", "advertised_host", "check_public_url", "local_addresses", "url_host"]

#: Bind addresses that mean "every interface": never an address a client can use.
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def check_public_url(text: str) -> str:
    """``text`` as a base URL for artifact URLs (``http(s)://host[:port][/prefix]/``, with a trailing slash).

    :raises ValueError: not http or https, no host, a wildcard host, user info (credentials), a query or a
        fragment, a bad port; the message shows the URL with any credentials redacted.
    """
    shown = shorten(redact(text.strip()))
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{shown!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{shown!r}: the scheme must be http or https")
    if "@" in parts.netloc:
        raise ValueError(f"{shown!r}: must not carry user info (a user name or password)")
    if not parts.hostname:
        raise ValueError(f"{shown!r}: no host")
    if parts.hostname in WILDCARDS or _unspecified(parts.hostname):
        raise ValueError(f"{shown!r}: {parts.hostname} is no address a client can connect to")
    if parts.query or "?" in text:
        raise ValueError(f"{shown!r}: must not have a query")
    if parts.fragment or "#" in text:
        raise ValueError(f"{shown!r}: must not have a fragment")
    if port == 0:
        raise ValueError(f"{shown!r}: port 0 is no port a client can connect to")
    netloc = parts.netloc.lower()
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as it goes into a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _usable(address: str) -> bool:
    """Not loopback, link-local or unspecified: an address another host may reach this one at."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def _resolve(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
    except (OSError, UnicodeError):
        return []


def local_addresses() -> list[str]:
    """This host's interface addresses, IPv4 first (Linux: every interface's; elsewhere: what its name resolves
    to)."""
    found: list[str] = []
    if sys.platform.startswith("linux"):
        import fcntl
        import struct

        siocgifaddr = 0x8915
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(sock.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
                except OSError:  # no IPv4 address on it
                    continue
                found.append(socket.inet_ntoa(packed[20:24]))
        try:
            with open("/proc/net/if_inet6", encoding="ascii") as fh:
                for line in fh:
                    raw = line.split()[0]
                    found.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
        except (OSError, ValueError, IndexError):
            pass
    else:
        found = _resolve(socket.gethostname())
    return list(dict.fromkeys(found))


class Advertised(NamedTuple):
    """The host for URLs and, in words, why it was chosen (for the operator's log)."""

    host: str
    why: str


def advertised_host(
    bind: str,
    *,
    hostname: Callable[[], str] = socket.gethostname,
    resolve: Callable[[str], Iterable[str]] = _resolve,
    addresses: Callable[[], Iterable[str]] = local_addresses,
) -> Advertised:
    """The host (bracketed when IPv6) URLs should name for a server bound to ``bind``, and why.

    ``bind`` one address (``127.0.0.1``, a name): that. A wildcard: this host's name when it resolves to a
    non-loopback address of this host, else the first non-loopback address of this host, else ``127.0.0.1``
    (a host with loopback only is reachable on loopback only).
    """
    bind = bind.strip()
    if bind not in WILDCARDS and not _unspecified(bind):
        return Advertised(url_host(bind.strip("[]")), "the address the server is bound to")
    mine = list(addresses())
    usable = [a for a in mine if _usable(a)]
    name = hostname()
    if name:
        resolved = [a for a in resolve(name) if _usable(a) and a in mine]
        if resolved:
            return Advertised(name, f"this host's name, which resolves to {resolved[0]}, an address of this host")
    if usable:
        return Advertised(url_host(usable[0]), "the first non-loopback address of this host")
    return Advertised("127.0.0.1", "this host has no address but loopback")
