"""The I/O edge of the resolver: a :class:`~resolver_service.source.PackageSource` backed by real indexes.

* :mod:`.pages` parses PEP 691 JSON / PEP 503 HTML project pages and find-links pages (pure).
* :mod:`.auth` finds credentials for a URL and redacts URLs for messages.
* :mod:`.http` is the pooled HTTP client with retries.
* :mod:`.cache` is the SQLite cache of index pages and core metadata.
* :mod:`.metadata_fetch` reads core metadata cheapest first (cache, ``.metadata``, range reads, download),
  with :mod:`.ranges` (a file over HTTP range requests) and :mod:`.archives` (METADATA / PKG-INFO readers).
* :mod:`.local` lists find-links directories and file:// indexes.
* :mod:`.stats` counts what a source fetched and what it served from cache.
* :mod:`.finder` is :class:`IndexSource`, the index strategy over all of them.
"""

from .finder import IndexSettings, IndexSource, SourceStats

__all__ = ["IndexSettings", "IndexSource", "SourceStats"]
