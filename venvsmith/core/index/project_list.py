"""An index's list of projects (its root page, PEP 503/691), read only when it is small: for "did you mean" hints.

A ``file://`` tree's projects are its directories. An HTTP index's root page is read with a cap of
:data:`ROOT_PAGE_BYTES` and a few seconds: a private index's list fits, a public index's (tens of MB) does not
and is not read. Any failure gives no names: a hint is never worth an error.
"""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from ..errors import ServiceError
from .pages import ACCEPT

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


def root_names(index: Any, http: Any, auth: Any, deadline: float | None) -> set[NormalizedName]:
    """The projects of one configured index (a ``settings._Index``), or none when they cannot be had cheaply."""
    if index.path is not None:
        from .local import _subdirs

        try:
            return {canonicalize_name(p.name) for p in _subdirs(index.path)}
        except OSError:
            return set()
    try:
        response = http.get(index.url, index=index.display, auth=auth, headers={"Accept": ACCEPT},
                            max_bytes=ROOT_PAGE_BYTES, deadline=deadline, seconds=ROOT_PAGE_SECONDS)
    except ServiceError:  # too large, unreachable, refused: no hint
        return set()
    if response.status_code != 200:
        return set()
    return parse_root_page(response.content, response.headers.get("content-type", ""))
