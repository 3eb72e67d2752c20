"""Where packages come from: :class:`IndexSettings`, the resolver's view of an ``IndexConfig`` (light to
import: a request's cache key needs it before anything is fetched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import InvalidInput
from .auth import Credential, redact, split_userinfo
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
