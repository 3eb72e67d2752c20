"""PEP 740 attestations verified offline: a file's provenance document against its name and sha256.

What is checked, for every attestation of every bundle of the document (all must pass):

- the Sigstore signing certificate chains to a Fulcio root of the trust root *shipped with the sigstore
  package* (read from the package, never refreshed over TUF, nothing written to the user's cache), at a time
  the transparency log vouches for; its SCT verifies against the trust root's CT logs;
- the Rekor log entry's inclusion proof and signed checkpoint (or promise) verify offline, and the entry is
  consistent with the envelope;
- the certificate was issued to the bundle's trusted publisher (repository and workflow as the publisher
  kind defines them, via ``pypi-attestations``' publisher policies);
- the DSSE envelope's signature verifies, and its in-toto statement has exactly one subject whose name is the
  file's (wheel tags in any order) and whose sha256 is the file's, with a predicate type PyPI knows.

Only the digest is needed (never the file's bytes). Not checked: that the publisher is the one *you* expect
(the verified identities are recorded; compare them), claims the certificate does not carry (a GitHub
``environment``), and revocation (Sigstore certificates are short-lived; there is none).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from functools import cache
from importlib import resources

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from .errors import AttestationUnverified, InvalidInput
from .index.provenance import MAX_DOCUMENT_BYTES, Identity, publisher_identity

#: ``--require-attestations :all:``: every pin.
ALL = ":all:"
#: Most attestations verified for one file (real files carry one or two); a document with more is refused.
MAX_ATTESTATIONS = 8
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Where the sigstore package ships the production instance's trusted root (its embedded TUF target).
_EMBEDDED_ROOT = ("sigstore._store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")


def attestation_names(values: Iterable[str]) -> frozenset[str]:
    """``--require-attestations`` / ``require_attestations``: canonical project names (each value may be
    comma-separated) or :data:`ALL`; :class:`InvalidInput` for anything else."""
    out: set[str] = set()
    for raw in values:
        for value in raw.split(","):
            value = value.strip()
            if value == ALL:
                out.add(ALL)
            elif value:
                if not all(c.isalnum() or c in "-_." for c in value):
                    raise InvalidInput(value, "invalid project name in require-attestations")
                out.add(canonicalize_name(value))
    return frozenset(out)


def required(names: Collection[str], project: str) -> bool:
    """Whether ``project`` (canonical) is among ``names`` (canonical names or :data:`ALL`)."""
    return ALL in names or project in names


def verify_provenance(project: str, filename: str, sha256: str, document: bytes | None) -> tuple[Identity, ...]:
    """The publisher identities of ``document`` (``filename``'s provenance) once every attestation in it verifies
    for ``filename`` with ``sha256``; :class:`AttestationUnverified` naming ``project``, the file and why."""

    def fail(reason: str) -> AttestationUnverified:
        return AttestationUnverified(project, filename, reason)

    if document is None:
        raise fail("the index serves no provenance document for it")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise fail(f"its provenance document is larger than {MAX_DOCUMENT_BYTES} bytes")
    if not sha256:
        raise fail("the index publishes no sha256 for it")
    from pydantic import ValidationError
    from pypi_attestations import Provenance

    try:
        provenance = Provenance.model_validate_json(document)
    except ValidationError as exc:
        raise fail(f"malformed provenance document ({exc.error_count()} errors, first: "
                   f"{_first_error(exc)})") from None
    bundles = provenance.attestation_bundles
    count = sum(len(bundle.attestations) for bundle in bundles)
    if count == 0:
        raise fail("its provenance document holds no attestation")
    if count > MAX_ATTESTATIONS:
        raise fail(f"its provenance document holds {count} attestations, more than {MAX_ATTESTATIONS}")
    identities: list[Identity] = []
    for bundle in bundles:
        publisher = bundle.publisher
        # The policy a trusted publisher's certificate must satisfy (pypi-attestations' own, not re-implemented).
        policy = publisher._as_policy()  # noqa: SLF001
        for number, attestation in enumerate(bundle.attestations, 1):
            problem = _check(attestation, policy, filename, sha256.lower())
            if problem:
                raise fail(f"attestation {number} of the {publisher.kind} publisher {_label(publisher)}: {problem}")
        identity = publisher_identity(publisher.model_dump(mode="json", exclude_none=True))
        if identity is not None and identity not in identities:
            identities.append(identity)
    return tuple(identities)


def _check(attestation, policy, filename: str, sha256: str) -> str:
    """Why ``attestation`` does not verify for the file, ``""`` when it does."""
    from pypi_attestations import AttestationType, ConversionError
    from sigstore.errors import Error as SigstoreError

    try:
        bundle = attestation.to_bundle()
        payload_type, payload = _verifier().verify_dsse(bundle, policy)
    except (SigstoreError, ConversionError, ValueError) as exc:
        return f"Sigstore verification failed: {exc}"
    if payload_type != _PAYLOAD_TYPE:
        return f"the envelope holds {payload_type!r}, not an in-toto statement"
    try:
        statement = json.loads(payload)
    except ValueError:
        return "the signed statement is not JSON"
    if not isinstance(statement, dict) or statement.get("_type") != _STATEMENT_TYPE:
        return "the signed statement is not an in-toto v1 statement"
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        return "the signed statement must have exactly one subject"
    name, digest = subjects[0].get("name"), subjects[0].get("digest")
    if not isinstance(name, str) or _parsed(name) is None or _parsed(name) != _parsed(filename):
        return f"it is for {name!r}, not {filename}"
    if not isinstance(digest, dict) or str(digest.get("sha256", "")).lower() != sha256:
        return f"it is for sha256 {digest.get('sha256') if isinstance(digest, dict) else None}, not {sha256}"
    if statement.get("predicateType") not in {kind.value for kind in AttestationType}:  # the predicates PyPI accepts
        return f"unknown predicate type {statement.get('predicateType')!r}"
    return ""


def _parsed(filename: str) -> object:
    """A distribution file name parsed (wheel tags as a set), ``None`` when it is not one."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def _label(publisher) -> str:
    return str(getattr(publisher, "repository", "") or getattr(publisher, "email", "")
               or getattr(publisher, "project_id", ""))


def _first_error(exc) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}"[:200]


@cache
def _verifier():
    """A Sigstore verifier over the production trust root embedded in the installed sigstore package."""
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    package, *parts = _EMBEDDED_ROOT
    with resources.as_file(resources.files(package).joinpath(*parts)) as path:
        return Verifier(trusted_root=TrustedRoot.from_file(str(path)))
