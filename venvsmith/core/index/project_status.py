"""PEP 792 project status markers: ``active``, ``archived``, ``quarantined``, ``deprecated``.

JSON pages (simple API 1.4) carry ``"project-status": {"status": ..., "reason": ...}`` at the project level,
HTML pages ``<meta name="pypi:project-status" content="...">`` and ``<meta name="pypi:project-status-reason"
content="...">``. Pure: bytes in, status out. What the resolver does with each status is decided by its
caller (:mod:`venvsmith.core.index.finder`): a quarantined project's files are not used; archived and
deprecated projects are used, with a note in the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

#: PEP 792's statuses; anything else is read as ``active`` (the PEP: unknown values are treated as active).
STATUSES = frozenset({"active", "archived", "quarantined", "deprecated"})
#: Statuses that make a project's files unusable.
UNUSABLE = frozenset({"quarantined"})
#: Statuses used with a warning.
WARNED = frozenset({"archived", "deprecated"})
#: Bound on the reason kept (and echoed in answers and errors).
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class ProjectStatus:
    """A non-``active`` status one index gave a project."""

    status: str
    reason: str = ""
    #: Redacted display of the index that said so.
    index: str = ""

    def describe(self, name: str) -> str:
        """``"project foo is quarantined on <index>: <reason>"`` (no reason part when none was given)."""
        where = f" on {self.index}" if self.index else ""
        because = f": {self.reason}" if self.reason else ""
        return f"project {name} is {self.status}{where}{because}"


def _status(status: Any, reason: Any, index: str) -> ProjectStatus | None:
    if not isinstance(status, str):
        return None
    status = status.strip().lower()
    if status not in STATUSES or status == "active":
        return None
    text = reason.strip() if isinstance(reason, str) else ""
    text = " ".join(text.split())  # one line: it is echoed in messages
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "..."
    return ProjectStatus(status, text, index)


def json_project_status(data: Any, index: str) -> ProjectStatus | None:
    """The status of a decoded PEP 691 project page, ``None`` when active or absent."""
    if not isinstance(data, dict):
        return None
    value = data.get("project-status")
    if not isinstance(value, dict):
        return None
    return _status(value.get("status"), value.get("reason"), index)


@cache
def _meta_collector() -> type:
    from html.parser import HTMLParser

    class MetaCollector(HTMLParser):
        """Collects ``<meta name=... content=...>`` pairs (the first of each name wins)."""

        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.meta: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag != "meta":
                return
            found = dict(attrs)
            name, content = found.get("name"), found.get("content")
            if name and content is not None:
                self.meta.setdefault(name.strip().lower(), content)

    return MetaCollector


#: Cheap pre-check: most HTML pages carry no status, and are not parsed a second time for it.
_HAS_STATUS = re.compile(rb"pypi:project-status", re.I)


def html_project_status(body: bytes | str, index: str) -> ProjectStatus | None:
    """The status of a PEP 503 project page, from its ``pypi:project-status`` meta elements."""
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
    if not _HAS_STATUS.search(raw):
        return None
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    collector = _meta_collector()()
    try:
        collector.feed(text)
        collector.close()
    except Exception:  # noqa: BLE001 - HTMLParser is lenient; keep what was collected
        pass
    meta = collector.meta
    return _status(meta.get("pypi:project-status"), meta.get("pypi:project-status-reason"), index)


def page_project_status(body: bytes, content_type: str, index: str) -> ProjectStatus | None:
    """The status a project page (JSON or HTML) gives, ``None`` when active or absent."""
    from .pages import _load_json, content_kind

    if content_kind(content_type, body) == "json":
        if b"project-status" not in body:
            return None
        try:
            return json_project_status(_load_json(body), index)
        except ValueError:
            return None
    return html_project_status(body, index)
