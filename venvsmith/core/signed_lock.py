"""Signing and checking a resolver's lock document (``ResolveResponse.signature``)."""

from __future__ import annotations

from venvsmith.v1 import common_pb2, resolver_pb2

from .convert import pin_from_proto
from .errors import InvalidInput
from .signing import Signer, SigningKeyFile, TrustedKeys, UntrustedAnswer, lock_payload

__all__ = ["check_response", "response_payload", "sign_response"]


def response_payload(response: resolver_pb2.ResolveResponse) -> bytes:
    """What the resolver signs of ``response`` (see :func:`~venvsmith.core.signing.lock_payload`)."""
    env = response.environment
    target = {"markers": {name: env.markers[name] for name in sorted(env.markers)}, "tags": list(env.tags)}
    pins = [pin_from_proto(p).canonical() for p in response.pins]
    return lock_payload(pins, target, response.lock_key, response.requirements_txt, response.pylock_toml)


def sign_response(response: resolver_pb2.ResolveResponse, signer: Signer | SigningKeyFile | None) -> None:
    """Set ``response.signature`` (nothing without a signer)."""
    if signer is None:
        return
    key_id, signature = signer.sign(response_payload(response))
    response.signature.CopyFrom(common_pb2.Signature(key_id=key_id, ed25519=signature))


def check_response(response: resolver_pb2.ResolveResponse, trusted: TrustedKeys) -> None:
    """Raise :class:`~venvsmith.core.signing.UntrustedAnswer` unless a trusted key signed ``response``."""
    try:
        payload = response_payload(response)
    except (ValueError, InvalidInput) as exc:  # a pin the conversion refuses: not what was signed
        raise UntrustedAnswer(f"resolution {response.lock_key[:64]}", f"malformed pins: {exc}") from None
    trusted.check(f"resolution {response.lock_key[:64]}", payload, response.signature.key_id,
                  response.signature.ed25519)
