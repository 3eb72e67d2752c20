"""PEP 740 provenance documents: the trusted-publisher identities of a file's attestation bundles.

Only the identities are read (for PEP 751's ``attestation-identities``); the attestations themselves are verified,
when a request asks, by :mod:`venvsmith.core.attestations`. Documents are bounded in size, and what is kept of
them in count and length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: A provenance document larger than this is ignored (real ones hold a few attestations of a few KiB each).
MAX_DOCUMENT_BYTES = 1 << 20
MAX_BUNDLES = 16
MAX_CLAIMS = 16
MAX_CLAIM_CHARS = 1024

Identity = Mapping[str, str]


def publisher_identities(body: bytes) -> tuple[Identity, ...]:
    """The distinct ``publisher`` objects of a provenance document's ``attestation_bundles``, each with its
    string-valued claims (``kind`` first, the rest sorted); ``()`` for anything that is not such a document."""
    if len(body) > MAX_DOCUMENT_BYTES:
        return ()
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    bundles = doc.get("attestation_bundles") if isinstance(doc, dict) else None
    if not isinstance(bundles, list):
        return ()
    out: list[Identity] = []
    for bundle in bundles[:MAX_BUNDLES]:
        identity = publisher_identity(bundle.get("publisher") if isinstance(bundle, dict) else None)
        if identity is not None and identity not in out:
            out.append(identity)
    return tuple(out)


def publisher_identity(publisher: Any) -> Identity | None:
    """A ``publisher`` object as an identity: ``kind`` first, then its string claims sorted; ``None`` if not one."""
    if not isinstance(publisher, dict):
        return None
    kind = publisher.get("kind")
    if not isinstance(kind, str) or not kind or len(kind) > MAX_CLAIM_CHARS:
        return None
    claims = sorted(
        (key, value)
        for key, value in publisher.items()
        if key != "kind" and isinstance(key, str) and isinstance(value, str) and len(value) <= MAX_CLAIM_CHARS
        and len(key) <= MAX_CLAIM_CHARS
    )
    return {"kind": kind, **dict(claims[:MAX_CLAIMS])}
