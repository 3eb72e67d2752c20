"""Core metadata (METADATA / PKG-INFO) reduced to what resolution needs, parsed with ``packaging``."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import InvalidDistribution


@dataclass(frozen=True)
class CoreMetadata:
    """The fields of a distribution's core metadata that the resolver reads."""

    name: NormalizedName
    version: Version
    requires_dist: tuple[Requirement, ...]
    requires_python: SpecifierSet | None
    provides_extra: frozenset[NormalizedName]
    metadata_version: str
    #: Lower-cased field names listed as ``Dynamic`` (Metadata 2.2+, sdists only).
    dynamic: frozenset[str]

    @classmethod
    def from_bytes(cls, data: bytes, filename: str) -> CoreMetadata:
        """Parse RFC 822 core metadata; raise :class:`InvalidDistribution` naming ``filename`` when unusable."""
        from packaging.metadata import parse_email  # pulls in the email package: only when parsing

        raw, _unparsed = parse_email(data)
        try:
            name = canonicalize_name(raw["name"])
            version = Version(raw["version"])
        except KeyError as exc:
            raise InvalidDistribution(filename, f"metadata has no {exc.args[0]} field") from None
        except InvalidVersion as exc:
            raise InvalidDistribution(filename, f"metadata has an invalid version: {exc}") from None
        requires: list[Requirement] = []
        for line in raw.get("requires_dist", []):
            try:
                requires.append(Requirement(line))
            except InvalidRequirement as exc:
                raise InvalidDistribution(filename, f"invalid Requires-Dist {line!r}: {exc}") from None
        requires_python = None
        if raw.get("requires_python"):
            try:
                requires_python = SpecifierSet(raw["requires_python"])
            except InvalidSpecifier:
                raise InvalidDistribution(
                    filename, f"invalid Requires-Python {raw['requires_python']!r}"
                ) from None
        return cls(
            name=name,
            version=version,
            requires_dist=tuple(requires),
            requires_python=requires_python,
            provides_extra=frozenset(canonicalize_name(e) for e in raw.get("provides_extra", [])),
            metadata_version=raw.get("metadata_version", "1.0"),
            dynamic=frozenset(d.lower() for d in raw.get("dynamic", [])),
        )

    @property
    def dependencies_are_static(self) -> bool:
        """For an sdist's PKG-INFO: True when it can be trusted without building (Metadata 2.2+, static deps)."""
        try:
            new_enough = Version(self.metadata_version) >= Version("2.2")
        except InvalidVersion:
            return False
        return new_enough and "requires-dist" not in self.dynamic
