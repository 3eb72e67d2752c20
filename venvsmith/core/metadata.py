"""Core metadata (METADATA / PKG-INFO) reduced to what resolution needs, parsed with ``packaging``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import InvalidDistribution

#: Version of :meth:`CoreMetadata.to_fields`'s layout.
FIELDS_FORMAT = 1


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

    def to_fields(self) -> str:
        """These fields as JSON (see :meth:`from_fields`): cached next to the raw bytes, so that a process
        reading cached metadata neither imports nor runs the RFC 822 parser."""
        return json.dumps(
            [
                FIELDS_FORMAT,
                self.name,
                str(self.version),
                [str(r) for r in self.requires_dist],
                None if self.requires_python is None else str(self.requires_python),
                sorted(self.provides_extra),
                self.metadata_version,
                sorted(self.dynamic),
            ],
            separators=(",", ":"),
        )

    @classmethod
    def from_fields(cls, text: str) -> CoreMetadata | None:
        """What :meth:`to_fields` wrote; ``None`` for anything else (another format: parse the bytes again)."""
        try:
            fmt, name, version, requires, requires_python, extras, metadata_version, dynamic = json.loads(text)
            if fmt != FIELDS_FORMAT:
                return None
            return cls(
                name=NormalizedName(name),
                version=Version(version),
                requires_dist=tuple(Requirement(r) for r in requires),
                requires_python=None if requires_python is None else SpecifierSet(requires_python),
                provides_extra=frozenset(NormalizedName(e) for e in extras),
                metadata_version=metadata_version,
                dynamic=frozenset(dynamic),
            )
        except (ValueError, TypeError, InvalidRequirement, InvalidSpecifier):
            return None

    @property
    def dependencies_are_static(self) -> bool:
        """For an sdist's PKG-INFO: True when it can be trusted without building (Metadata 2.2+, static deps)."""
        try:
            new_enough = Version(self.metadata_version) >= Version("2.2")
        except InvalidVersion:
            return False
        return new_enough and "requires-dist" not in self.dynamic
