"""The index configuration a command sends: the caller's effective one (command line, requirements files, pip's
configuration and environment), so that ``--server`` resolves what the embedded run would; and what of it may
leave this machine (credentials only with ``--forward-credentials``, and only over TLS)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from venvsmith.core.auth import SecurityConfigError
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.index.auth import Auth, redact, split_userinfo
from venvsmith.v1 import common_pb2

log = logging.getLogger("venvsmith.config")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def local_path(location: str) -> str:
    """A find-links directory named relative to the caller's directory, made absolute (the server may run
    elsewhere); URLs are kept as given."""
    if _URL.match(location) or not os.path.exists(location):
        return location
    return os.path.abspath(location)


def complete_from_pip(index: common_pb2.IndexConfig, pip: PipIndexConfig) -> common_pb2.IndexConfig:
    """``index`` (command line and requirements files) completed field by field from this caller's pip
    configuration, as the embedded engine would complete it: each list the request left empty takes pip's,
    ``index_url`` pip's ``index-url``, ``no_index`` is either's."""
    out = common_pb2.IndexConfig()
    out.CopyFrom(index)
    if not out.index_url and pip.index_url:
        out.index_url = pip.index_url
    if not out.extra_index_urls:
        out.extra_index_urls.extend(pip.extra_index_urls)
    if not out.find_links:
        out.find_links.extend(local_path(f) for f in pip.find_links)
    out.no_index = out.no_index or pip.no_index
    for key, origin, why in pip.ignored:
        log.info("pip setting %s (from %s) ignored: %s", key, origin, why)
    return out


@dataclass
class Outgoing:
    """The index configuration put on the wire, and the locations whose credentials were kept back."""

    index: common_pb2.IndexConfig
    withheld: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


def _locations(index: common_pb2.IndexConfig) -> list[str]:
    return [u for u in (index.index_url, *index.extra_index_urls, *index.find_links) if u]


def for_server(index: common_pb2.IndexConfig, *, forward: bool, tls: bool,
               netrc_auth: Auth | None = None) -> Outgoing:
    """``index`` as sent to a server: user-info removed from every URL. With ``forward`` (only over ``tls``,
    else :class:`SecurityConfigError`) the credentials of those URLs, and this caller's netrc entries for their
    hosts, travel as ``IndexCredential`` instead; without it they stay here (the server uses its own)."""
    if forward and not tls:
        raise SecurityConfigError("--forward-credentials needs a TLS connection to the server (--tls-ca): "
                                  "credentials are never sent in plaintext")
    out = common_pb2.IndexConfig()
    out.CopyFrom(index)
    stripped: dict[str, str] = {}
    secrets: list[tuple[str, tuple[str, str]]] = []
    for url in _locations(index):
        bare, userinfo = split_userinfo(url)
        stripped[url] = bare
        if userinfo:
            secrets.append((bare, userinfo))
    out.index_url = stripped.get(index.index_url, index.index_url)
    del out.extra_index_urls[:]
    out.extra_index_urls.extend(stripped[u] for u in index.extra_index_urls)
    del out.find_links[:]
    out.find_links.extend(stripped[u] for u in index.find_links)
    for name, url in index.package_index.items():
        out.package_index[name] = split_userinfo(url)[0]
    sent = Outgoing(out)
    if not forward:
        sent.withheld = [redact(u) for u in _locations(index) if split_userinfo(u)[1]]
        return sent
    for bare, (user, password) in secrets:
        out.credentials.add(url_prefix=bare, username=user, password=password)
        sent.forwarded.append(bare)
    auth = netrc_auth or Auth(use_netrc=True)
    for bare in dict.fromkeys(stripped.values()):
        if bare.startswith(("http://", "https://")) and bare not in sent.forwarded:
            found = auth.for_url(bare)
            if found is not None and found.url_prefix not in sent.forwarded:
                out.credentials.add(url_prefix=found.url_prefix, username=found.username,
                                    password=found.password, token=found.token)
                sent.forwarded.append(found.url_prefix)
    return sent
