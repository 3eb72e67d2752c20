"""The I/O edge of the resolver: a :class:`~venvsmith.core.source.PackageSource` backed by real indexes.

* :mod:`.pages` parses PEP 691 JSON / PEP 503 HTML project pages and find-links pages (pure).
* :mod:`.auth` finds credentials for a URL and redacts URLs for messages.
* :mod:`.http` is the pooled HTTP client, :mod:`.retry` its retry policy (a ``urllib3.Retry``) and
  :mod:`.transport` its TLS and proxy set-up.
* :mod:`.cache` is the SQLite cache of index pages and core metadata.
* :mod:`.metadata_fetch` reads core metadata cheapest first (cache, ``.metadata``, range reads, download),
  with :mod:`.ranges` (a file over HTTP range requests) and :mod:`.archives` (METADATA / PKG-INFO readers).
* :mod:`.local` lists find-links directories and file:// indexes.
* :mod:`.settings` is :class:`IndexSettings`, the configuration of indexes for one request.
* :mod:`.stats` counts what a source fetched and what it served from cache.
* :mod:`.finder` is :class:`IndexSource`, the index strategy over all of them.

The names below are imported on first use: a repeated request answered from the resolution cache needs
none of the fetching machinery.
"""

from __future__ import annotations

import importlib

__all__ = ["IndexSettings", "IndexSource", "SourceStats"]
_WHERE = {"IndexSettings": ".settings", "IndexSource": ".finder", "SourceStats": ".stats"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
