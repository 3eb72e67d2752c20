"""A distribution file as an index or find-links location lists it: the unit the resolver chooses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

SDIST_SUFFIXES = (".tar.gz", ".zip")


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

    @classmethod
    def from_listing(cls, filename: str, url: str, index: str, **info) -> DistFile | None:
        """Parse ``filename`` with ``packaging``; return ``None`` for a name that is not a wheel or sdist."""
        try:
            if filename.endswith(".whl"):
                name, version, build, tags = parse_wheel_filename(filename)
                return cls(filename, url, index, name, version, True, frozenset(tags), build_tag=build, **info)
            if filename.endswith(SDIST_SUFFIXES):
                name, version = parse_sdist_filename(filename)
                return cls(filename, url, index, name, version, False, frozenset(), **info)
        except (InvalidWheelFilename, InvalidSdistFilename):
            return None
        return None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

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
