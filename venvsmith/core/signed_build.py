"""Signing and checking a builder's answer (``BuildResult.signature``): which artifacts, for which lock key and
target, with which digests, sizes and media types."""

from __future__ import annotations

import json

from venvsmith.v1 import builder_pb2, common_pb2

from .signing import Signer, SigningKeyFile, TrustedKeys

__all__ = ["check_result", "environment_payload", "result_payload", "sign_result"]

_FORMAT = "venvsmith-build-signature/1"
_ENVIRONMENT_FORMAT = "venvsmith-environment-signature/1"
_SINGLE_REFS = ("wheelhouse", "venv_archive", "lock_file")


def _ref(field: str, ref: common_pb2.ArtifactRef) -> dict:
    return {"field": field, "kind": common_pb2.ArtifactKind.Name(ref.kind) if ref.kind in
            common_pb2.ArtifactKind.values() else int(ref.kind),
            "sha256": ref.digest.hash, "size_bytes": ref.digest.size_bytes, "media_type": ref.media_type,
            "filename": ref.filename}


def result_payload(result: builder_pb2.BuildResult) -> bytes:
    """The bytes a builder signs of ``result`` (the proto's ``BuildResult.signature`` comment spells them)."""
    artifacts = [_ref("wheels", w) for w in result.wheels]
    artifacts += [_ref(f, getattr(result, f)) for f in _SINGLE_REFS if result.HasField(f)]
    interpreter = None
    if result.HasField("interpreter"):
        i = result.interpreter
        interpreter = {"path": i.path, "version": i.version, "implementation": i.implementation,
                       "identity": i.identity}
    doc = {"format": _FORMAT, "lock_key": result.lock_key, "target_digest": result.target_digest,
           "artifacts": artifacts, "interpreter": interpreter}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_result(result: builder_pb2.BuildResult, signer: Signer | SigningKeyFile | None) -> None:
    """Set ``result.signature`` (nothing without a signer)."""
    if signer is None:
        return
    key_id, signature = signer.sign(result_payload(result))
    result.signature.CopyFrom(common_pb2.Signature(key_id=key_id, ed25519=signature))


def check_result(result: builder_pb2.BuildResult, trusted: TrustedKeys) -> None:
    """Raise :class:`~venvsmith.core.signing.UntrustedAnswer` unless a trusted key signed ``result``."""
    trusted.check(f"build result {result.lock_key[:64]}", result_payload(result), result.signature.key_id,
                  result.signature.ed25519)


def environment_payload(result: builder_pb2.BuildResult, venv_key: str) -> bytes:
    """The bytes a builder signs of an environment image (its lock document): :func:`result_payload` of the
    BuildResult the image stands for (its wheels, lock file, venv archive and interpreter), and the venv key the
    image is published under (which also names the options, e.g. compiled bytecode, that the result does not)."""
    doc = {"format": _ENVIRONMENT_FORMAT, "venv_key": venv_key, "result": json.loads(result_payload(result))}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
