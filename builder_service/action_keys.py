"""The keys of the builder's actions: one frozen value per kind, naming everything its result depends on.

:meth:`key` spells a value as its action-cache key; never write those strings by hand. The venv archive's key is
:class:`~builder_service.venv_key.VenvKey`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

_BUILD_SCHEMA = "venvsmith.build-key/1"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _settings_doc(config_settings: Mapping[str, str]) -> dict[str, str]:
    return {str(key): str(value) for key, value in config_settings.items()}


@dataclass(frozen=True)
class FetchedFile:
    """A pinned file (wheel or sdist) brought into the store: its bytes are all it depends on."""

    sha256: str

    def key(self) -> str:
        return f"file:{self.sha256}"


def _canonical_pin(pin: str) -> str:
    name, sep, version = pin.partition("==")
    try:
        if not sep or version.startswith("="):
            raise ValueError("expected name==version")
        canonical = canonicalize_version(Version(version.strip()), strip_trailing_zero=True)
        return f"{canonicalize_name(name.strip(), validate=True)}=={canonical}"
    except (ValueError, InvalidVersion) as exc:
        raise ValueError(f"not a pin: {pin!r} ({exc})") from exc


def build_key(
    sdist_sha256: str, target_digest: str, build_pins: Sequence[str], config_settings: Mapping[str, str]
) -> str:
    """The cache key of a build: sha256 hex of canonical JSON of its inputs (pin order and spelling do not matter)."""
    if not _SHA256.fullmatch(sdist_sha256):
        raise ValueError(f"not a sha256 hex digest: {sdist_sha256!r}")
    document = {
        "schema": _BUILD_SCHEMA,
        "sdist_sha256": sdist_sha256.lower(),
        "target": target_digest,
        "build_pins": sorted({_canonical_pin(pin) for pin in build_pins}),
        "config_settings": _settings_doc(config_settings),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel built from an sdist: its bytes, the target (markers and tags, so the ABI), the static build
    requirements as resolved (``name==version``) and the backend's config settings; and the pinned set's pins of
    what the backend asked for besides (``get_requires_for_build_wheel``, resolved under the pinned set), when a
    build recorded under the key without them installed other versions of those."""

    sdist_sha256: str
    target_digest: str
    build_pins: tuple[str, ...]
    config_settings: tuple[tuple[str, str], ...] = ()
    #: ``name==version`` of the pinned set for the backend's own build requirements; ``()``: the key before them.
    asked_pins: tuple[str, ...] = ()

    def key(self) -> str:
        key = "wheel-build:" + build_key(self.sdist_sha256, self.target_digest, self.build_pins,
                                         dict(self.config_settings))
        if not self.asked_pins:
            return key
        text = json.dumps(sorted({_canonical_pin(pin) for pin in self.asked_pins}), separators=(",", ":"))
        return f"{key}:asked:{hashlib.sha256(text.encode()).hexdigest()}"


@dataclass(frozen=True)
class PreparedMetadata:
    """Core metadata of an sdist prepared by its backend: its bytes, the target and the backend's config settings
    (without any, the key is the one used before they were part of it)."""

    sdist_sha256: str
    target_digest: str
    config_settings: tuple[tuple[str, str], ...] = ()

    def key(self) -> str:
        key = f"metadata:{self.sdist_sha256}:{self.target_digest}"
        if not self.config_settings:
            return key
        text = json.dumps(_settings_doc(dict(self.config_settings)), sort_keys=True, separators=(",", ":"))
        return f"{key}:{hashlib.sha256(text.encode()).hexdigest()}"


@dataclass(frozen=True)
class WheelMetadata:
    """The core metadata read from a stored wheel: the wheel's digest."""

    wheel_sha256: str
    wheel_size: int

    def key(self) -> str:
        return f"wheel-metadata:{self.wheel_sha256}:{self.wheel_size}"


@dataclass(frozen=True)
class Wheelhouse:
    """The wheelhouse archive of a lock key: the exact pins and target name every wheel in it."""

    lock_key: str

    def key(self) -> str:
        return f"wheelhouse:{self.lock_key}"


@dataclass(frozen=True)
class LockWheels:
    """The wheels of a lock key, recorded for the HTTP endpoint's PEP 503 pages."""

    lock_key: str

    def key(self) -> str:
        return f"wheels:{self.lock_key}"


def config_items(config_settings: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``config_settings`` as a key field: sorted pairs (a frozen value must hash)."""
    return tuple(sorted((str(k), str(v)) for k, v in config_settings.items()))
