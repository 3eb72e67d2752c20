"""PEP 740 publisher identities of the pins; for the projects a request names in ``require_attestations``,
verified (their pinned files must carry attestations that verify offline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from venvsmith.core.attestations import attestation_names, required, verify_provenance
from venvsmith.core.index.finder import IndexSource
from venvsmith.core.pin import Pin

__all__ = ["attestation_names", "with_identities"]


def with_identities(pins: Sequence[Pin], names: frozenset[str], source: IndexSource) -> tuple[Pin, ...]:
    """``pins`` with their publisher identities: verified for the pins ``names`` requires
    (:class:`~venvsmith.core.errors.AttestationUnverified` for the first, in pin order, that does not verify),
    read as the index states them for the others (no request for files without provenance)."""
    verify = [pin for pin in pins if names and required(names, pin.name)]
    read = [pin for pin in pins if not (names and required(names, pin.name))]
    found = dict(zip((p.name for p in read), source.attestation_identities([p.file for p in read]), strict=True))
    documents = source.provenance_documents([pin.file for pin in verify]) if verify else []
    for pin, document in zip(verify, documents, strict=True):
        found[pin.name] = verify_provenance(pin.name, pin.file.filename, pin.file.sha256 or "", document)
    return tuple(replace(pin, attestation_identities=found[pin.name]) if found[pin.name] else pin for pin in pins)
