"""Parse project pages (PEP 691 JSON, PEP 503 HTML) and find-links pages into :class:`DistFile` lists.

Pure: bytes in, files out. Handles PEP 592 yanking, PEP 658/714 core-metadata attributes, PEP 700 upload
times and sizes, hashes in URL fragments, relative URLs and ``<base href>``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, NormalizedName

from ..distfile import EMPTY_TAGS, SDIST_SUFFIXES, DistFile, split_sdist_filename, split_wheel_filename
from .auth import strip_userinfo

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
#: What to ask an index for: JSON first, HTML as a fallback (as pip does).
ACCEPT = f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_LOWER_HEX = "0123456789abcdef"


@cache
def _hex_lengths() -> dict[str, int]:
    """Hash names a listing may use, with the hex length of their digests (variable-length SHAKE excluded)."""
    return {
        name: hashlib.new(name).digest_size * 2 for name in hashlib.algorithms_guaranteed if "shake" not in name
    }


#: Printable ASCII but for ``#`` (fragment), ``?`` / ``;`` (re-serialised by urlunparse), ``@`` (user-info),
#: ``[ ]`` (IPv6 literal checks) and backslash.
_URL_CHARS = "".join(re.escape(chr(c)) for c in range(0x21, 0x7F) if chr(c) not in "#?;@[]\\")
#: An absolute http(s) URL that ``urljoin``/``urldefrag``/``strip_userinfo`` would return unchanged: only
#: :data:`_URL_CHARS`, with a host right after ``//``.
_PLAIN_URL = re.compile(f"https?://(?!/)[{_URL_CHARS}]+")
#: A URL fragment ``urlsplit`` keeps as written (printable ASCII).
_PLAIN_FRAGMENT = re.compile(r"[!-~]*")

_fast_loads: Callable[[bytes | str], Any] | None
try:  # a much faster JSON decoder when installed; ``json`` otherwise (and for anything orjson refuses)
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency, but stay usable without it
    _fast_loads = None


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


def listed_upload_time(file: DistFile) -> bool:
    """Whether the listing gave ``file`` an upload time, without decoding a JSON entry's deferred fields."""
    listing = file.__dict__.get("_listing")
    if listing is not None:
        return isinstance(listing[1], str)
    return file.upload_time is not None


def parse_links_page(body: bytes, content_type: str, page_url: str, index: str) -> list[DistFile]:
    """Every distribution file linked from a find-links page or a web server's directory listing."""
    return parse_html_page(_decode(body, content_type), page_url, index, None, origin="find-links")


# ------------------------------------------------------------------------------------------------ JSON


def parse_json_page(
    body: bytes | str, page_url: str, index: str, project: NormalizedName | None, origin: str = "index"
) -> list[DistFile]:
    """Files of a PEP 691 JSON project page (``project=None`` keeps every project's files).

    A page lists up to tens of thousands of files, of which a resolution reads a few, so what selecting
    files needs (name, version, tags, Requires-Python, yanked) is decoded here and the rest (URL, hashes,
    upload time, size, core-metadata) when first read: see :class:`_ListedFile`.
    """
    with gc_paused():
        return _parse_json_page(body, page_url, index, project, origin)


def _parse_json_page(
    body: bytes | str, page_url: str, index: str, project: NormalizedName | None, origin: str
) -> list[DistFile]:
    data = _load_json(body)
    if not isinstance(data, dict):
        raise PageError("invalid JSON project page: not an object")
    _check_api_version(data.get("meta"))
    files = data.get("files")
    if not isinstance(files, list):
        raise PageError("invalid JSON project page: no 'files' list")
    out: list[DistFile] = []
    append = out.append
    new = object.__new__
    for entry in files:
        if not isinstance(entry, dict):
            continue
        get = entry.get
        filename, url = get("filename"), get("url")
        if not isinstance(filename, str) or not isinstance(url, str):
            continue
        try:
            if filename.endswith(".whl"):
                name, version, build, tags = split_wheel_filename(filename)
                is_wheel = True
            elif filename.endswith(SDIST_SUFFIXES):
                name, version = split_sdist_filename(filename)
                is_wheel, build, tags = False, (), EMPTY_TAGS
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if project is not None and name != project:
            continue
        requires_python = get("requires-python")
        yanked = get("yanked")
        core = get("core-metadata")
        if core is None:
            core = get("dist-info-metadata")
        dist = new(_ListedFile)
        dist.__dict__.update(
            filename=filename,
            index=index,
            name=name,
            version=version,
            is_wheel=is_wheel,
            tags=tags,
            requires_python=_requires_python(requires_python) if requires_python is not None else None,
            yanked=None if yanked is None or yanked is False else _json_yanked(yanked),
            build_tag=build,
            origin=origin,
            # Only these raw values are kept (the page's decoded JSON is freed once the page is parsed); the
            # URL is made absolute when first read too: a resolution reads the URLs of a few files of a page.
            _listing=(get("hashes"), get("upload-time"), get("size"), core, url, get("provenance"), page_url),
        )
        append(dist)
    return out


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a page is decoded (thread-safe, nestable).

    Decoding a large page allocates tens of thousands of acyclic containers; each allocation burst would
    otherwise trigger collections that traverse every object alive (all pages parsed so far), which costs
    about as much as the decoding itself. Reference counting still frees everything as usual; the collector
    is re-enabled (if it was enabled) when the last concurrent decoder is done.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


class _Deferred:
    """A :class:`DistFile` field of a :class:`_ListedFile`, decoded from the listing entry on first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return getattr(DistFile, self.name, None)
        values = obj.__dict__
        listing = values.get("_listing")
        if listing is not None:
            values.update(_deferred_fields(*listing))
            values.pop("_listing", None)  # after the update: a concurrent reader finds the fields
        return values[self.name]


def _deferred_fields(
    hashes: Any, upload_time: Any, size: Any, core: Any, href: str, provenance: Any, page_url: str
) -> dict[str, Any]:
    link, fragment = _split_absolute(page_url, href)
    return {
        "url": link,
        "provenance": _provenance_url(page_url, provenance),
        "hashes": _clean_hashes(hashes) or (fragment_hashes(fragment) if fragment else {}),
        "upload_time": _parse_time(upload_time),
        "size": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        "core_metadata": bool(core),
        "core_metadata_hashes": _clean_hashes(core) if isinstance(core, dict) else {},
    }


class _ListedFile(DistFile):
    """A :class:`DistFile` from a JSON listing; the fields below are decoded when first read.

    Behaves as a :class:`DistFile` in every way (same fields, equality, hashing, ``repr``,
    ``dataclasses.replace``); only the work of decoding is moved to the first read, which is thread-safe
    (decoding is pure, so two threads decoding at once store equal values).
    """

    url = _Deferred()
    hashes = _Deferred()
    upload_time = _Deferred()
    size = _Deferred()
    core_metadata = _Deferred()
    core_metadata_hashes = _Deferred()
    provenance = _Deferred()


def _load_json(body: bytes | str) -> Any:
    """``json.loads(body)``, by orjson when it can; errors as :class:`PageError`."""
    if _fast_loads is not None:
        try:
            return _fast_loads(body)
        except ValueError:
            pass  # let json decide (and word the error): other encodings, NaN, huge integers, ...
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PageError(f"invalid JSON project page: {exc}") from None


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
    # More than six fractional digits is valid ISO 8601 but not for fromisoformat. (Skipped for the usual
    # "YYYY-MM-DDTHH:MM:SS.ffffffZ", which cannot have more.)
    if not (len(text) == 27 and text.find(".") == 19 and text[26] == "Z"):
        text = _LONG_FRACTION.sub(r"\1", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when if when.tzinfo is UTC else when.astimezone(UTC)


_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


# ------------------------------------------------------------------------------------------------ HTML


@cache
def _anchor_collector() -> type:
    """The ``HTMLParser`` subclass collecting anchors (built on first use: ``html.parser`` is only needed
    for HTML pages)."""
    from html.parser import HTMLParser

    class AnchorCollector(HTMLParser):
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

    return AnchorCollector


def parse_html_page(
    text: str, page_url: str, index: str, project: NormalizedName | None, origin: str = "index"
) -> list[DistFile]:
    """Files linked from a PEP 503 page (``project=None`` keeps every project's files, for find-links)."""
    collector = _anchor_collector()()
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
            provenance=_provenance_url(base, attrs.get("data-provenance")),
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
    url, fragment = _split_absolute(base, href)
    return url, fragment_hashes(fragment) if fragment else {}


def _split_absolute(base: str, href: str) -> tuple[str, str]:
    """(absolute URL without fragment or user-info, the fragment)."""
    if href[:4] == "http":
        # Fast path: an absolute URL the general path below would return unchanged (but for the fragment).
        head, sep, fragment = href.partition("#")
        if _PLAIN_URL.fullmatch(head) and (not sep or _PLAIN_FRAGMENT.fullmatch(fragment)):
            return head, fragment
    url, fragment = urldefrag(urljoin(base, href))
    return strip_userinfo(url), fragment


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
        if name == "sha256" and type(digest) is str and len(digest) == 64 and not digest.strip(_LOWER_HEX):
            out[name] = digest  # the common case, already clean
            continue
        if not isinstance(name, str) or not isinstance(digest, str):
            continue
        name, digest = name.strip().lower(), digest.strip().lower()
        if _hex_lengths().get(name) == len(digest) and _HEX.match(digest):
            out[name] = digest
    return out


def _provenance_url(base: str, value: Any) -> str | None:
    """PEP 740 ``provenance`` / ``data-provenance``: the provenance document's URL (absolute, no user-info)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _split_absolute(base, value.strip())[0]


def _requires_python(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None
