"""What an answer says about itself (``ResolveResponse.notes``): time sources and PEP 792 project statuses.

* A pin whose index listed no upload time, resolved with ``exclude-newer``: the answer names the time used
  instead, when this resolver first saw the file (see :mod:`venvsmith.core.index.first_seen`).
* A pinned project an index marks archived or deprecated: a warning naming the status and reason.
* A quarantined project is never pinned; a resolution that fails is told which projects were quarantined
  (:func:`quarantine_violations`), since "no versions" alone would hide why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName

from venvsmith.core.errors import Violation

if TYPE_CHECKING:
    from venvsmith.core.index.project_status import ProjectStatus
    from venvsmith.core.pin import Pin

    from .selection import SelectionPolicy

#: Violation type of a project status in a NO_SOLUTION error's details.
PROJECT_STATUS = "PROJECT_STATUS"


def answer_notes(
    pins: Sequence[Pin], policy: SelectionPolicy, statuses: Mapping[NormalizedName, Sequence[ProjectStatus]]
) -> list[str]:
    """The notes of an answer made of ``pins``, in pin order (time sources first, then statuses)."""
    notes: list[str] = []
    if policy.exclude_newer is not None:
        for pin in pins:
            for file in (pin.file, pin.sdist):
                if file is None or file.upload_time is not None or file.first_seen is None:
                    continue
                seen = file.first_seen.astimezone(UTC).isoformat()
                notes.append(
                    f"{pin.name}=={pin.version}: {file.filename} has no upload time on {file.index}; "
                    f"exclude-newer used the time this resolver first saw it, {seen}"
                )
    for pin in pins:
        for status in statuses.get(pin.name, ()):
            notes.append(status.describe(pin.name))
    return notes


def quarantine_violations(statuses: Mapping[NormalizedName, Sequence[ProjectStatus]]) -> list[Violation]:
    """One ``PROJECT_STATUS`` violation per quarantined project seen while resolving."""
    from venvsmith.core.index.project_status import UNUSABLE

    return [
        Violation(PROJECT_STATUS, name, status.describe(name))
        for name, found in sorted(statuses.items())
        for status in found
        if status.status in UNUSABLE
    ]
