"""``--cache URL`` (config key ``cache``, ``VENVSMITH_CACHE``): where the resolution and metadata caches live.

- ``sqlite:///DIR`` (or empty: the embedded default) — SQLite files under DIR (default ``$VENVSMITH_HOME``), as
  always; nothing is shared beyond the processes that share the directory.
- ``redis://[[USER]:PASSWORD@]HOST:PORT/N`` or ``rediss://...`` (TLS, the server's certificate verified against
  ``--cache-ca FILE`` / ``VENVSMITH_CACHE_CA``, else the system's CAs) — Redis database N is shared by every replica
  given the same URL: the resolution cache, the metadata cache (by file sha256), the index pages with their
  validators and the single-flight leases. The local SQLite files stay in front of it, so a replica keeps serving
  from them while Redis is down (or refuses the password or the certificate).

The password is never shown: logs, health details and error messages name the URL by :func:`describe_url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class CacheLocation:
    """A parsed ``--cache``: the local SQLite directory (None: the home directory) and the Redis URL, if any."""

    directory: Path | None = None
    redis_url: str | None = None

    def describe(self) -> str:
        """The URL without its user name and password (for logs and health details)."""
        if self.redis_url is None:
            return f"sqlite://{self.directory or ''}"
        return describe_url(self.redis_url)


def describe_url(url: str) -> str:
    """``url`` without user-info and query (``redis://[::1]:6379/0`` keeps its brackets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparseable URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_cache_url(text: str | None) -> CacheLocation:
    """``text`` as a :class:`CacheLocation`; ValueError naming what is wrong."""
    text = (text or "").strip()
    if not text:
        return CacheLocation()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ValueError(f"{describe_url(text)!r}: {exc}") from None
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise ValueError(f"{describe_url(text)!r}: a sqlite cache is sqlite:///DIRECTORY (three slashes), "
                             "not a host")
        return CacheLocation(directory=Path(parts.path) if parts.path not in ("", "/") else None)
    if parts.scheme in ("redis", "rediss"):
        shown = describe_url(text)  # never the password
        if not parts.hostname:
            raise ValueError(f"{shown!r}: a redis cache is redis://HOST:PORT/N")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{shown!r}: {exc}") from None
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"{shown!r}: the database is a number (redis://HOST:PORT/N), not {db!r}")
        return CacheLocation(redis_url=text)
    raise ValueError(f"{describe_url(text)!r}: the cache is sqlite:///DIRECTORY, redis://HOST:PORT/N or "
                     "rediss://HOST:PORT/N")
