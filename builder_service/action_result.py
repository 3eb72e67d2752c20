"""What an action produced: :class:`ActionResult` (its outputs as :class:`OutputRef` digests into a store, when,
and free-form ``meta``), serialised as canonical JSON for the action cache, the registry and Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from .digest import Digest
from .errors import InvalidDigest

__all__ = ["KINDS", "ActionResult", "ArtifactKindName", "InvalidActionResult", "MissingOutputs", "Outcome",
           "OutputRef"]

#: How :meth:`~builder_service.action_cache.ActionCacheBase.get_or_compute_outcome` got its result.
Outcome = Literal["computed", "shared", "cached"]
ArtifactKindName = Literal["wheel", "sdist", "wheelhouse", "venv_archive", "lock_file", "metadata", "log"]
KINDS: frozenset[str] = frozenset(get_args(ArtifactKindName))
_FORMAT_VERSION = 1


class InvalidActionResult(ValueError):
    """A serialised or constructed result that does not have the expected shape."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"invalid action result: {reason}")
        self.value = value
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.value, self.reason))


class MissingOutputs(LookupError):
    """``put`` of a result whose output blobs are not (all) in the store."""

    def __init__(self, key: str, digests: Iterable[Digest]) -> None:
        self.key = key
        self.digests = tuple(digests)
        super().__init__(f"action {key!r}: outputs not in the store: {', '.join(map(str, self.digests))}")

    def __reduce__(self):
        return (type(self), (self.key, self.digests))


@dataclass(frozen=True)
class OutputRef:
    """One output of an action: a blob plus what it is and what to call it."""

    digest: Digest
    media_type: str
    kind: str
    filename: str

    def __post_init__(self) -> None:
        if not isinstance(self.digest, Digest):
            raise InvalidActionResult(self, "digest must be a Digest")
        if self.kind not in KINDS:
            raise InvalidActionResult(self, f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if not isinstance(self.media_type, str) or not isinstance(self.filename, str):
            raise InvalidActionResult(self, "media_type and filename must be str")

    def to_dict(self) -> dict[str, str]:
        return {"digest": str(self.digest), "media_type": self.media_type, "kind": self.kind, "filename": self.filename}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputRef:
        try:
            return cls(Digest.parse(data["digest"]), data["media_type"], data["kind"], data["filename"])
        except (KeyError, TypeError, InvalidDigest) as e:
            raise InvalidActionResult(data, f"bad output: {e}") from e


@dataclass(frozen=True)
class ActionResult:
    """What an action produced: its outputs, when, and free-form string metadata (log digest, lock key...)."""

    outputs: tuple[OutputRef, ...]
    created_at: float = field(default_factory=time.time)
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        outputs = tuple(self.outputs)
        if not all(isinstance(o, OutputRef) for o in outputs):
            raise InvalidActionResult(self, "outputs must be OutputRef")
        meta = dict(self.meta)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise InvalidActionResult(self, "meta must map str to str")
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "meta", MappingProxyType(meta))

    def __hash__(self) -> int:
        return hash((self.outputs, self.created_at, tuple(sorted(self.meta.items()))))

    @property
    def digests(self) -> tuple[Digest, ...]:
        """The output digests, in output order."""
        return tuple(o.digest for o in self.outputs)

    def output(self, kind: str) -> OutputRef | None:
        """The first output of ``kind``, if any."""
        return next((o for o in self.outputs if o.kind == kind), None)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace)."""
        data = {
            "version": _FORMAT_VERSION,
            "outputs": [o.to_dict() for o in self.outputs],
            "created_at": self.created_at,
            "meta": dict(self.meta),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ActionResult:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as e:
            raise InvalidActionResult(text, f"not JSON: {e}") from e
        if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
            raise InvalidActionResult(text, f"expected an object with version {_FORMAT_VERSION}")
        outputs, created_at, meta = data.get("outputs"), data.get("created_at"), data.get("meta", {})
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise InvalidActionResult(text, "outputs must be a list of objects")
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise InvalidActionResult(text, "created_at must be a number")
        if not isinstance(meta, dict):
            raise InvalidActionResult(text, "meta must be an object")
        return cls(tuple(OutputRef.from_dict(o) for o in outputs), float(created_at), meta)
