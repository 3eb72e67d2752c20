"""Parse project pages (PEP 691 JSON, PEP 503 HTML) and find-links pages into :class:`DistFile` lists.

Pure: bytes in, files out. Handles PEP 592 yanking, PEP 658/714 core-metadata attributes, PEP 700 upload
times and sizes, hashes in URL fragments, relative URLs and ``<base href>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import NormalizedName

from ..distfile import DistFile
from .auth import strip_userinfo

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
#: What to ask an index for: JSON first, HTML as a fallback (as pip does).
ACCEPT = f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

#: Hash names a listing may use, with the hex length of their digests (variable-length SHAKE excluded).
_HEX_LENGTHS = {
    name: hashlib.new(name).digest_size * 2 for name in hashlib.algorithms_guaranteed if "shake" not in name
}
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class PageError(ValueError):
    """A page could not be parsed at all (invalid JSON, unsupported API version)."""


def content_kind(content_type: str, body: bytes) -> str:
    """``"json"`` or ``"html"``: from the media type, sniffing the body when the type says neither."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_CONTENT_TYPE or media.endswith("+json") or media == "application/json":
        return "json"
    if media in HTML_CONTENT_TYPES:
        return "html"
    return "json" if body.lstrip()[:1] == b"{" else "html"


def parse_project_page(
    body: bytes, content_type: str, page_url: str, index: str, project: NormalizedName
) -> list[DistFile]:
    """Files of ``project`` listed by one index page; ``page_url`` is the URL after redirects."""
    if content_kind(content_type, body) == "json":
        return parse_json_page(body, page_url, index, project)
    return parse_html_page(_decode(body, content_type), page_url, index, project)


def parse_links_page(body: bytes, content_type: str, page_url: str, index: str) -> list[DistFile]:
    """Every distribution file linked from a find-links page or a web server's directory listing."""
    return parse_html_page(_decode(body, content_type), page_url, index, None, origin="find-links")


# ------------------------------------------------------------------------------------------------ JSON


def parse_json_page(
    body: bytes | str, page_url: str, index: str, project: NormalizedName | None, origin: str = "index"
) -> list[DistFile]:
    """Files of a PEP 691 JSON project page (``project=None`` keeps every project's files)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PageError(f"invalid JSON project page: {exc}") from None
    if not isinstance(data, dict):
        raise PageError("invalid JSON project page: not an object")
    _check_api_version(data.get("meta"))
    files = data.get("files")
    if not isinstance(files, list):
        raise PageError("invalid JSON project page: no 'files' list")
    out: list[DistFile] = []
    for entry in files:
        if not isinstance(entry, dict):
            continue
        filename, url = entry.get("filename"), entry.get("url")
        if not isinstance(filename, str) or not isinstance(url, str):
            continue
        link, fragment_hashes = _absolute(page_url, url)
        hashes = _clean_hashes(entry.get("hashes")) or fragment_hashes
        core = entry.get("core-metadata")
        if core is None:
            core = entry.get("dist-info-metadata")
        size = entry.get("size")
        dist = DistFile.from_listing(
            filename,
            link,
            index,
            hashes=hashes,
            requires_python=_requires_python(entry.get("requires-python")),
            yanked=_json_yanked(entry.get("yanked")),
            upload_time=_parse_time(entry.get("upload-time")),
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            core_metadata=bool(core),
            core_metadata_hashes=_clean_hashes(core) if isinstance(core, dict) else {},
            origin=origin,
        )
        if dist is not None and (project is None or dist.name == project):
            out.append(dist)
    return out


def _check_api_version(meta: Any) -> None:
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if isinstance(version, str):
        major = version.split(".", 1)[0]
        if major.isdigit() and int(major) > 1:
            raise PageError(f"unsupported simple API version {version}")


def _json_yanked(value: Any) -> str | None:
    """PEP 691: ``true`` or a non-empty reason string means yanked (pip treats ``""`` as not yanked)."""
    if isinstance(value, str):
        return value or None
    return "" if value is True else None


def _parse_time(value: Any) -> datetime | None:
    """PEP 700 ``upload-time`` (ISO 8601, usually ending in ``Z``) as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    # More than six fractional digits is valid ISO 8601 but not for fromisoformat.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# ------------------------------------------------------------------------------------------------ HTML


class _AnchorCollector(HTMLParser):
    """Collects ``<a>`` attributes and the first ``<base href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            # The first occurrence of an attribute wins, as in browsers.
            found: dict[str, str | None] = {}
            for key, value in attrs:
                found.setdefault(key, value)
            self.anchors.append(found)
        elif tag == "base" and self.base is None:
            href = dict(attrs).get("href")
            if href:
                self.base = href


def parse_html_page(
    text: str, page_url: str, index: str, project: NormalizedName | None, origin: str = "index"
) -> list[DistFile]:
    """Files linked from a PEP 503 page (``project=None`` keeps every project's files, for find-links)."""
    collector = _AnchorCollector()
    try:
        collector.feed(text)
        collector.close()
    except Exception:  # HTMLParser is lenient; keep what was collected before a failure
        pass
    base = urljoin(page_url, collector.base) if collector.base else page_url
    out: list[DistFile] = []
    for attrs in collector.anchors:
        href = attrs.get("href")
        if not href:
            continue
        link, hashes = _absolute(base, href.strip())
        filename = _filename(link)
        if not filename:
            continue
        # PEP 714: the new attribute name wins; a bare attribute (no value) still means "available".
        key = next((k for k in ("data-core-metadata", "data-dist-info-metadata") if k in attrs), None)
        core = (attrs[key] or "") if key else None
        has_core, core_hashes = _html_core_metadata(core)
        dist = DistFile.from_listing(
            filename,
            link,
            index,
            hashes=hashes,
            requires_python=_requires_python(attrs.get("data-requires-python")),
            # PEP 592: the attribute's presence means yanked; its value (maybe empty) is the reason.
            yanked=(attrs["data-yanked"] or "") if "data-yanked" in attrs else None,
            core_metadata=has_core,
            core_metadata_hashes=core_hashes,
            origin=origin,
        )
        if dist is not None and (project is None or dist.name == project):
            out.append(dist)
    return out


def _html_core_metadata(value: str | None) -> tuple[bool, dict[str, str]]:
    """PEP 658/714 attribute value: ``"true"`` or ``"<hashname>=<hex>"``; absent or ``"false"`` means none."""
    if value is None or value.strip().lower() == "false":
        return False, {}
    name, sep, digest = value.strip().partition("=")
    if sep:
        return True, _clean_hashes({name: digest})
    return True, {}


# --------------------------------------------------------------------------------------------- helpers


def _decode(body: bytes, content_type: str) -> str:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.I)
    encoding = match.group(1) if match else "utf-8"
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _absolute(base: str, href: str) -> tuple[str, dict[str, str]]:
    """(absolute URL without fragment or user-info, hashes from a ``#<hashname>=<hex>`` fragment)."""
    url, fragment = urldefrag(urljoin(base, href))
    return strip_userinfo(url), fragment_hashes(fragment)


def fragment_hashes(fragment: str) -> dict[str, str]:
    """``{"sha256": hex}`` from a URL fragment ``sha256=<hex>``; empty for any other fragment."""
    name, sep, digest = fragment.partition("=")
    return _clean_hashes({name: digest}) if sep else {}


def _filename(url: str) -> str:
    """The unquoted last path segment of ``url`` (empty for a directory URL)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    return unquote(path.rsplit("/", 1)[-1])


def _clean_hashes(value: Any) -> dict[str, str]:
    """Known hash names mapped to lower-case hex digests; anything else is dropped."""
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, str] = {}
    for name, digest in value.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            continue
        name, digest = name.strip().lower(), digest.strip().lower()
        if _HEX_LENGTHS.get(name) == len(digest) and _HEX.match(digest):
            out[name] = digest
    return out


def _requires_python(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None
