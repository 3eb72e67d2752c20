"""The lock document of an environment image: a referrer manifest of artifact type :data:`LOCK_ARTIFACT` whose
``subject`` is the environment, so that ``skopeo``/``oras`` users fetch the lock of an environment and a builder
with ``--trusted-key`` checks an image before it serves it.

Its layers (each titled by ``org.opencontainers.image.title``):

* the builder's lock file (``requirements-<lock key>.txt``, :data:`REQUIREMENTS_MEDIA`, the BuildResult's
  ``lock_file``);
* when the build came through ResolveAndBuild: the resolver's ``pylock.toml`` (:data:`PYLOCK_MEDIA`) and its
  ``requirements.txt`` (when it differs from the builder's);
* signed statements (:data:`STATEMENT_MEDIA`): the exact bytes signed, the signature in the layer's annotations
  (``io.venvsmith.signature.key-id``, ``io.venvsmith.signature.ed25519`` in base64) and what they are in
  ``io.venvsmith.statement``:

  - ``build`` (a builder with ``--signing-key``):
    :func:`~venvsmith.core.signed_build.environment_payload`, the BuildResult signature's payload of the
    image's wheels, lock file, venv archive and interpreter, with the venv key;
  - ``resolution`` (the resolver signed its answer): :func:`~venvsmith.core.signed_lock.response_payload`, the
    payload of ``ResolveResponse.signature`` (it names the sha256 of the pylock.toml and requirements.txt layers).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from venvsmith.core.interpreters import BaseInterpreter
from venvsmith.core.signed_build import environment_payload
from venvsmith.core.signed_lock import response_payload
from venvsmith.core.signing import Signer, SigningKeyFile, TrustedKeys, UntrustedAnswer
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

from .action_cache import OutputRef
from .digest import Digest
from .store.filesystem import FilesystemStore
from .venv_key import interpreter_to_proto

__all__ = ["LOCK_ARTIFACT", "PYLOCK_MEDIA", "REQUIREMENTS_MEDIA", "STATEMENT_MEDIA", "LockDocument", "LockInputs",
           "Statement", "build_statement", "check_statement", "layers", "resolution_document"]

LOCK_ARTIFACT = "application/vnd.venvsmith.lock.v1"
REQUIREMENTS_MEDIA = "text/plain"
PYLOCK_MEDIA = "application/vnd.venvsmith.pylock.v1+toml"
STATEMENT_MEDIA = "application/vnd.venvsmith.signed-statement.v1+json"
_ANN = "io.venvsmith."
_TITLE = "org.opencontainers.image.title"
_JSON_MEDIA = "application/json"
BUILD, RESOLUTION = "build", "resolution"


@dataclass(frozen=True)
class Statement:
    """Signed bytes (a blob in the store) and who signed them."""

    role: str
    payload: OutputRef
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class LockDocument:
    """What an environment image's lock referrer holds: lock files and signed statements."""

    files: tuple[OutputRef, ...] = ()
    statements: tuple[Statement, ...] = field(default=())

    def with_(self, files: Sequence[OutputRef] = (), statements: Sequence[Statement] = ()) -> LockDocument:
        """These files (first, without repeating a digest) and statements added."""
        merged: dict[Digest, OutputRef] = {f.digest: f for f in [*files, *self.files][::-1]}
        ordered = [f for f in [*files, *self.files] if merged.pop(f.digest, None) is not None]
        return LockDocument(tuple(ordered), (*self.statements, *statements))

    def blobs(self) -> list[OutputRef]:
        return [*self.files, *(s.payload for s in self.statements)]

    def to_json(self) -> dict:
        return {"files": [_ref_json(f) for f in self.files],
                "statements": [[s.role, _ref_json(s.payload), s.key_id, s.signature.hex()] for s in self.statements]}

    @classmethod
    def from_json(cls, doc: dict) -> LockDocument:
        return cls(tuple(_ref_of(f) for f in doc.get("files", [])),
                   tuple(Statement(role, _ref_of(ref), key, bytes.fromhex(sig))
                         for role, ref, key, sig in doc.get("statements", [])))


@dataclass(frozen=True)
class LockInputs:
    """What a build gives its environment image's lock document: the builder's lock file, and the resolver's part
    (:func:`resolution_document`) when the build came through ResolveAndBuild."""

    lock_file: OutputRef
    resolution: LockDocument = LockDocument()


def _ref_json(o: OutputRef) -> list:
    return [o.digest.hash, o.digest.size_bytes, o.media_type, o.kind, o.filename]


def _ref_of(doc: list) -> OutputRef:
    h, n, media, kind, name = doc
    return OutputRef(Digest(h, n), media, kind, name)


def resolution_document(store: FilesystemStore, response: resolver_pb2.ResolveResponse) -> LockDocument:
    """The resolver's part of a lock document (ResolveAndBuild): its pylock.toml and requirements.txt, stored, and
    its signature when it signed."""
    key = response.lock_key[:16]
    files = []
    if response.pylock_toml:
        files.append(OutputRef(store.put_bytes(response.pylock_toml.encode()), PYLOCK_MEDIA, "lock_file",
                               "pylock.toml"))
    if response.requirements_txt:
        files.append(OutputRef(store.put_bytes(response.requirements_txt.encode()), REQUIREMENTS_MEDIA, "lock_file",
                               f"requirements-{key}.resolver.txt"))
    statements = []
    if response.signature.key_id:
        payload = response_payload(response)
        ref = OutputRef(store.put_bytes(payload), _JSON_MEDIA, "lock_file", f"resolution-{key}.json")
        statements.append(Statement(RESOLUTION, ref, response.signature.key_id, response.signature.ed25519))
    return LockDocument(tuple(files), tuple(statements))


def build_statement(store: FilesystemStore, signer: Signer | SigningKeyFile, *, lock_key: str, venv_key: str,
                    target_digest: str, archive: OutputRef, wheels: Sequence[OutputRef], lock_file: OutputRef,
                    base: BaseInterpreter) -> Statement:
    """The builder's signed statement of an environment image (see the module docstring)."""
    result = builder_pb2.BuildResult(lock_key=lock_key, target_digest=target_digest,
                                     wheels=[ref_to_proto(w) for w in wheels], lock_file=ref_to_proto(lock_file),
                                     venv_archive=ref_to_proto(archive), interpreter=interpreter_to_proto(base))
    payload = environment_payload(result, venv_key)
    key_id, signature = signer.sign(payload)
    ref = OutputRef(store.put_bytes(payload), _JSON_MEDIA, "lock_file", f"environment-{lock_key[:16]}.json")
    return Statement(BUILD, ref, key_id, signature)


_KINDS = {"wheel": common_pb2.WHEEL, "venv_archive": common_pb2.VENV_ARCHIVE, "lock_file": common_pb2.LOCK_FILE}


def ref_to_proto(out: OutputRef) -> common_pb2.ArtifactRef:
    """The ArtifactRef fields a signature covers (as :func:`~builder_service.engine.ref_to_proto` sets them)."""
    return common_pb2.ArtifactRef(digest=common_pb2.Digest(hash=out.digest.hash, size_bytes=out.digest.size_bytes),
                                  media_type=out.media_type, filename=out.filename,
                                  kind=_KINDS.get(out.kind, common_pb2.ARTIFACT_KIND_UNSPECIFIED))


def layers(document: LockDocument) -> list[dict]:
    """The lock referrer's layer descriptors."""
    out: list[dict] = []
    for f in document.files:
        media = f.media_type if f.media_type == PYLOCK_MEDIA else REQUIREMENTS_MEDIA
        out.append(_descriptor(media, f.digest, {_TITLE: f.filename}))
    for s in document.statements:
        out.append(_descriptor(STATEMENT_MEDIA, s.payload.digest, {
            _TITLE: s.payload.filename, f"{_ANN}statement": s.role, f"{_ANN}signature.key-id": s.key_id,
            f"{_ANN}signature.ed25519": base64.b64encode(s.signature).decode()}))
    return out


def _descriptor(media: str, digest: Digest, annotations: dict[str, str]) -> dict:
    return {"mediaType": media, "digest": f"sha256:{digest.hash}", "size": digest.size_bytes,
            "annotations": annotations}


def check_statement(referrer: dict, read: Callable[[Digest], bytes], trusted: TrustedKeys, *, venv_key: str,
                    lock_key: str, archive: Digest) -> None:
    """Raise :class:`~venvsmith.core.signing.UntrustedAnswer` unless the lock referrer ``referrer`` (a parsed
    manifest) has a ``build`` statement signed by a trusted key for this venv key, lock key and venv archive, whose
    lock file is one of the referrer's layers; ``read(digest)`` returns a (small) blob's bytes."""
    what = f"environment image {venv_key}"
    try:
        layer_list = referrer["layers"]
        statement = next(lay for lay in layer_list if lay.get("mediaType") == STATEMENT_MEDIA
                         and (lay.get("annotations") or {}).get(f"{_ANN}statement") == BUILD)
    except (KeyError, TypeError, AttributeError, StopIteration):
        raise UntrustedAnswer(what, "its lock document has no signed build statement") from None
    ann = statement.get("annotations") or {}
    try:
        digest = Digest(str(statement["digest"]).removeprefix("sha256:"), int(statement["size"]))
        signature = base64.b64decode(ann.get(f"{_ANN}signature.ed25519", ""), validate=True)
    except (KeyError, ValueError, TypeError):
        raise UntrustedAnswer(what, "malformed build statement") from None
    payload = read(digest)
    trusted.check(what, payload, str(ann.get(f"{_ANN}signature.key-id", "")), signature)
    try:
        doc = json.loads(payload)
        result = doc["result"]
        artifacts = {a["field"]: a for a in result["artifacts"] if a["field"] != "wheels"}
        venv, lock = artifacts["venv_archive"], artifacts["lock_file"]
        listed = {str(lay.get("digest")) for lay in layer_list if lay.get("mediaType") == REQUIREMENTS_MEDIA}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UntrustedAnswer(what, "the signed build statement is not an environment signature") from None
    if doc.get("venv_key") != venv_key or result.get("lock_key") != lock_key:
        raise UntrustedAnswer(what, "its signed build statement is about another environment")
    if (venv["sha256"], venv["size_bytes"]) != (archive.hash, archive.size_bytes):
        raise UntrustedAnswer(what, "its layer is not the venv archive its signed build statement names")
    if f"sha256:{lock['sha256']}" not in listed:
        raise UntrustedAnswer(what, "its lock file is not the one its signed build statement names")
