"""A pin: one chosen candidate with its file, why it is here, and what it needs; plus the lock key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packaging.utils import NormalizedName
from packaging.version import Version

from .distfile import DistFile
from .target import TargetEnvironment


@dataclass(frozen=True)
class Pin:
    """A chosen distribution file of the pinned set."""

    name: NormalizedName
    version: Version
    file: DistFile
    extras: tuple[str, ...] = ()
    #: Requirement chains from a root requirement to this project.
    required_by: tuple[str, ...] = ()
    #: Canonical names of the pins this one depends on.
    dependencies: tuple[str, ...] = ()
    #: The release's sdist next to a chosen wheel, when the listing offers a usable one (pylock's ``sdist``).
    #: Not part of :meth:`canonical`: the lock key is the chosen file's alone.
    sdist: DistFile | None = None
    #: PEP 740 publisher identities of the chosen file (``{"kind": ..., "repository": ...}``), from its
    #: index's provenance document; not part of :meth:`canonical` (nor of equality).
    attestation_identities: tuple[Mapping[str, str], ...] = field(default=(), compare=False)

    def canonical(self) -> dict:
        """What identifies this pin in a lock key: never where it was listed or why it was chosen."""
        return {
            "name": self.name,
            "version": str(self.version),
            "extras": list(self.extras),
            "filename": self.file.filename,
            "sha256": self.file.sha256 or "",
            "url": "" if self.file.sha256 else self.file.url,
        }


def lock_key(pins: Sequence[Pin], target: TargetEnvironment) -> str:
    """sha256 (hex) of the canonical pinned set plus the target environment; names a build."""
    doc = {
        "pins": sorted((p.canonical() for p in pins), key=lambda d: d["name"]),
        "target": target.canonical(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
