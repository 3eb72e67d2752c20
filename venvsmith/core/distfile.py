"""A distribution file as an index or find-links location lists it: the unit the resolver chooses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache

from packaging.tags import InvalidTag, Tag, parse_tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

SDIST_SUFFIXES = (".tar.gz", ".zip")

# -- memoised pieces of file-name parsing -------------------------------------------------------------
#
# An index page lists tens of thousands of files but only a handful of distinct project-name spellings,
# versions, build tags and tag strings. ``packaging`` still does every bit of parsing and validation; these
# helpers only remember its answers per distinct string (bounded, thread-safe), so equal strings share one
# ``Version`` / ``frozenset[Tag]`` object -- which also makes later tag-rank lookups cheap.


@lru_cache(maxsize=1 << 16)
def parse_version(text: str) -> Version:
    """``Version(text)``, memoised per string (raises :class:`InvalidVersion` like ``Version``)."""
    return Version(text)


@lru_cache(maxsize=1 << 12)
def parse_tags(text: str) -> frozenset[Tag]:
    """``packaging.tags.parse_tag(text)``, memoised per tag string (e.g. ``"py2.py3-none-any"``)."""
    return parse_tag(text)


@lru_cache(maxsize=1 << 12)
def _wheel_name(part: str) -> NormalizedName:
    """The canonical project name of a wheel's name part, validated by ``parse_wheel_filename``."""
    return parse_wheel_filename(f"{part}-0-py3-none-any.whl")[0]


@lru_cache(maxsize=1 << 10)
def _wheel_build(part: str) -> tuple:
    """A wheel's build tag ``(number, rest)``, parsed by ``parse_wheel_filename``."""
    return parse_wheel_filename(f"x-0-{part}-py3-none-any.whl")[2]


@lru_cache(maxsize=1 << 12)
def _sdist_name(part: str) -> NormalizedName:
    return canonicalize_name(part)


def split_wheel_filename(filename: str) -> tuple[NormalizedName, Version, tuple, frozenset[Tag]]:
    """``packaging.utils.parse_wheel_filename`` (same result, same errors), with every piece memoised.

    The file name is cut exactly as ``packaging`` cuts it; each piece is then parsed by ``packaging`` once
    per distinct string.
    """
    if not filename.endswith(".whl"):
        raise InvalidWheelFilename(f"Invalid wheel filename (extension must be '.whl'): {filename!r}")
    stem = filename[:-4]
    dashes = stem.count("-")
    if dashes not in (4, 5):
        raise InvalidWheelFilename(f"Invalid wheel filename (wrong number of parts): {filename!r}")
    parts = stem.split("-", dashes - 2)
    name = _wheel_name(parts[0])
    try:
        version = parse_version(parts[1])
    except InvalidVersion:
        raise InvalidWheelFilename(f"Invalid wheel filename (invalid version): {filename!r}") from None
    build = _wheel_build(parts[2]) if dashes == 5 else ()
    try:
        tags = parse_tags(parts[-1])
    except InvalidTag:
        raise InvalidWheelFilename(f"Invalid wheel filename (invalid tag component): {filename!r}") from None
    return name, version, build, tags


def split_sdist_filename(filename: str) -> tuple[NormalizedName, Version]:
    """``packaging.utils.parse_sdist_filename`` (same result, same errors), with the pieces memoised."""
    if filename.endswith(".tar.gz"):
        stem = filename[:-7]
    elif filename.endswith(".zip"):
        stem = filename[:-4]
    else:
        return parse_sdist_filename(filename)  # raises the right error
    name_part, sep, version_part = stem.rpartition("-")
    if not sep or not name_part:
        return parse_sdist_filename(filename)  # raises the right error
    try:
        version = parse_version(version_part)
    except InvalidVersion:
        raise InvalidSdistFilename(f"Invalid sdist filename (invalid version): {filename!r}") from None
    return _sdist_name(name_part), version


@dataclass(frozen=True, eq=False)
class DistFile:
    """One file of a project: a wheel or an sdist, with everything its listing said about it.

    Build one with :meth:`from_listing`, which refuses names that are not distribution files.
    """

    filename: str
    #: Absolute URL of the file, credentials stripped (they are applied per request).
    url: str
    #: Redacted URL of the index or find-links location that listed the file.
    index: str
    name: NormalizedName
    version: Version
    is_wheel: bool
    #: Wheel tags ("py3-none-any" expands to one tag); empty for sdists.
    tags: frozenset[Tag]
    hashes: Mapping[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    #: ``None`` when not yanked, else the reason (possibly empty), per PEP 592.
    yanked: str | None = None
    upload_time: datetime | None = None
    size: int | None = None
    #: PEP 658/714: a ``<url>.metadata`` file exists; its hashes when the index gave them.
    core_metadata: bool = False
    core_metadata_hashes: Mapping[str, str] = field(default_factory=dict)
    #: Build tag of a wheel (sorts after the version), ``()`` when absent.
    build_tag: tuple = ()
    #: Where the listing came from: "index", "find-links" or "direct" (a URL requirement).
    origin: str = "index"
    #: PEP 740: URL of the file's provenance document (its attestations), when the index serves one.
    provenance: str | None = None
    #: When this resolver first saw the file listed, for a listing without ``upload_time`` (private mirrors,
    #: find-links): what ``exclude-newer`` compares instead (see :mod:`venvsmith.core.index.first_seen`).
    first_seen: datetime | None = None

    @classmethod
    def from_listing(cls, filename: str, url: str, index: str, **info) -> DistFile | None:
        """Parse ``filename`` with ``packaging``; return ``None`` for a name that is not a wheel or sdist."""
        try:
            if filename.endswith(".whl"):
                name, version, build, tags = split_wheel_filename(filename)
                return cls(filename, url, index, name, version, True, tags, build_tag=build, **info)
            if filename.endswith(SDIST_SUFFIXES):
                name, version = split_sdist_filename(filename)
                return cls(filename, url, index, name, version, False, EMPTY_TAGS, **info)
        except ValueError:  # InvalidWheelFilename, InvalidSdistFilename, or int() of a 4300-digit release segment
            return None
        return None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def is_local(self) -> bool:
        """The file is on this machine's disk (a ``file://`` URL)."""
        return self.url[:7].lower() == "file://"

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    @cached_property
    def key(self) -> tuple[str, str]:
        """Identity of the file across listings: (filename, sha256 or url)."""
        return (self.filename, self.sha256 or self.url)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DistFile) and self.key == other.key

    def __repr__(self) -> str:
        return f"DistFile({self.filename!r} from {self.index!r})"


#: The tags of every sdist (shared).
EMPTY_TAGS: frozenset[Tag] = frozenset()
