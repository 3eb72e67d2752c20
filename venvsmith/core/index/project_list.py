"""An index's list of projects (its root page, PEP 503/691), read only when it is small: for "did you mean" hints.

A ``file://`` tree's projects are its directories. An HTTP index's root page is read by
:meth:`IndexSource.known_names <venvsmith.core.index.finder.IndexSource.known_names>` through the page cache (once
per source; fresh, not fetched again; stale, revalidated) with a cap of :data:`ROOT_PAGE_BYTES` and a few seconds:
a private index's list fits, a public index's (tens of MB) does not and is not read. Any failure gives no names: a
hint is never worth an error.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

ROOT_PAGE_BYTES = 2 * 1024 * 1024
ROOT_PAGE_SECONDS = 5.0
_ANCHOR = re.compile(r"<a\b[^>]*>([^<]+)</a>", re.IGNORECASE)


def parse_root_page(body: bytes, content_type: str) -> set[NormalizedName]:
    """Project names of a root page: PEP 691 JSON ``{"projects": [{"name": ...}]}`` or PEP 503 HTML anchors."""
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            doc = json.loads(text)
        except ValueError:
            return set()
        projects = doc.get("projects") if isinstance(doc, dict) else None
        return {canonicalize_name(p["name"]) for p in projects or ()
                if isinstance(p, dict) and isinstance(p.get("name"), str)}
    return {canonicalize_name(unescape(m.group(1)).strip()) for m in _ANCHOR.finditer(text) if m.group(1).strip()}


def local_names(path: Path) -> set[NormalizedName]:
    """The projects of a ``file://`` index tree: its directories (none when it cannot be listed)."""
    from .local import _subdirs

    try:
        return {canonicalize_name(p.name) for p in _subdirs(path)}
    except OSError:
        return set()
