"""Where packages come from: :class:`IndexSettings`, the resolver's view of an ``IndexConfig`` (light to
import: a request's cache key needs it before anything is fetched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from ..config import PipIndexConfig, default_index_url
from ..errors import InvalidInput, at_field, parsed_each
from .auth import Credential, redact, split_userinfo

if TYPE_CHECKING:
    from venvsmith.v1 import common_pb2
from .local import is_file_url, location_path

Strategy = Literal["first-index", "unsafe-best-match"]


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from (the resolver's view of ``IndexConfig``)."""

    #: The default index; ``None``: no default index.
    index_url: str | None = None
    #: Searched in this order, before the default index.
    extra_index_urls: Sequence[str] = ()
    #: Directories, file:// URLs, local HTML files or http(s) pages linking distribution files.
    find_links: Sequence[str] = ()
    #: Ignore the default and extra indexes (find-links only).
    no_index: bool = False
    strategy: Strategy = "first-index"
    #: Canonical name -> the only index asked for it.
    package_index: Mapping[str, str] = field(default_factory=dict)
    credentials: Sequence[Credential] = ()
    #: Directory of the SQLite page/metadata cache; ``None``: no on-disk cache.
    cache_dir: Path | None = None
    #: Never touch the network: cached pages (fresh or not) and cached metadata only.
    offline: bool = False
    #: CA bundle for TLS; default: ``PIP_CERT`` / ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``, else system.
    ca_bundle: str | None = None
    #: Client certificate for TLS (a PEM file with the key), as pip's ``client-cert``.
    client_cert: str | None = None
    timeout: float = 30.0
    retries: int = 3

    def __post_init__(self) -> None:
        if self.strategy not in ("first-index", "unsafe-best-match"):
            raise InvalidInput(str(self.strategy), "unknown index strategy")

    def indexes(self) -> list[str]:
        """Index URLs in priority order: extras as given, then the default; duplicates dropped."""
        if self.no_index:
            return []
        urls = [*self.extra_index_urls, *([self.index_url] if self.index_url else [])]
        seen: set[str] = set()
        out = []
        for url in urls:
            if _index_key(url) not in seen:
                seen.add(_index_key(url))
                out.append(url)
        return out

    def describe(self) -> str:
        """The indexes and find-links in effect, credentials redacted (for error messages)."""
        indexes = ", ".join(redact(u) for u in self.indexes()) or "none"
        text = f"indexes in effect: {indexes}"
        if self.find_links:
            text += f"; find-links: {', '.join(redact(u) for u in self.find_links)}"
        return text


def check_url(url: str, what: str) -> str:
    """``url`` stripped, if it is an http(s) or file URL or a directory path; else :class:`InvalidInput`."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return url
    if parts.scheme == "file" and parts.path:
        return url
    if not parts.scheme and url.startswith(("/", ".")):
        return url
    raise InvalidInput(url, f"invalid {what} URL (http, https or file URL, or a directory path)")


def settings_from_config(index: common_pb2.IndexConfig, pip: PipIndexConfig, cache_dir: Path | None,
                         at: str = "index") -> IndexSettings:
    """The effective index configuration of a request: its ``IndexConfig``, completed from pip's configuration
    (``pip``) unless the request is ``isolated``; then pip's built-in default index when none is named.

    ``at`` is the request field of ``index``: an :class:`InvalidInput` names the offending field under it.
    """
    if index.isolated:
        pip = PipIndexConfig(cert=pip.cert)  # the server's own TLS trust is not an index choice
    no_index = index.no_index or pip.no_index
    with at_field(f"{at}.index_url"):
        index_url = check_url(index.index_url, "index") if index.index_url else None
    if index_url is None and not no_index:
        index_url = default_index_url(pip)
    extras = list(parsed_each(lambda u: check_url(u, "extra index"), f"{at}.extra_index_urls",
                              index.extra_index_urls)) or list(pip.extra_index_urls)
    find_links = list(parsed_each(lambda u: check_url(u, "find-links"), f"{at}.find_links",
                                  index.find_links)) or list(pip.find_links)
    known = {u for u in [index_url, *extras] if u}
    package_index: dict[str, str] = {}
    for name, url in index.package_index.items():
        if url not in known:
            raise InvalidInput(url, f"package_index for {name} names an index that is not configured",
                               field=f"{at}.package_index[{name}]")
        package_index[canonicalize_name(name)] = url
    from venvsmith.v1 import common_pb2

    strategy: Strategy = "unsafe-best-match" if index.strategy == common_pb2.UNSAFE_BEST_MATCH else "first-index"
    return IndexSettings(
        index_url=None if no_index else index_url,
        extra_index_urls=[] if no_index else extras,
        find_links=find_links,
        no_index=no_index,
        strategy=strategy,
        package_index=package_index,
        credentials=[Credential(c.url_prefix, c.username, c.password, c.token) for c in index.credentials],
        cache_dir=cache_dir,
        ca_bundle=pip.cert,
        client_cert=pip.client_cert,
    )


@dataclass(frozen=True)
class _Index:
    """One configured index: the URL to request (no user-info, trailing slash) and its redacted name."""

    url: str
    display: str
    path: Path | None

    @classmethod
    def of(cls, configured: str) -> _Index:
        stripped, _ = split_userinfo(configured.strip())
        url = stripped if stripped.endswith("/") else stripped + "/"
        return cls(url, redact(configured.strip()), location_path(url) if is_file_url(url) else None)


def _index_key(url: str) -> str:
    return _Index.of(url).url
