"""The TLS and token flags of the servers (``serve``) and of the commands that call them (``--server``)."""

from __future__ import annotations

import argparse
from typing import Any


class _Unsigned(argparse.Action):
    """``--trusted-key`` on a command whose answers carry no signature: a usage error (exit 2), never ignored."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string}: the answers of '{parser.prog}' are not signed (only resolve, build and "
                     "venv answers are), so there is nothing to check: drop the flag")


def add_client_security(p: argparse.ArgumentParser, *, signed: bool = True) -> None:
    """``--tls-ca``, ``--tls-cert``/``--tls-key`` (client certificate) and ``--token`` of a ``--server`` call;
    ``--trusted-key`` too, refused as a usage error when the command's answers are not ``signed``."""
    group = p.add_argument_group("server security (with --server)")
    group.add_argument("--tls-ca", metavar="FILE",
                       help="connect with TLS, verifying the server by this CA (PEM; also VENVSMITH_TLS_CA)")
    group.add_argument("--tls-cert", metavar="FILE",
                       help="client certificate for mutual TLS (PEM; also VENVSMITH_TLS_CERT)")
    group.add_argument("--tls-key", metavar="FILE", help="its private key (PEM; also VENVSMITH_TLS_KEY)")
    group.add_argument("--token", help="bearer token sent on every call (also VENVSMITH_TOKEN)")
    if not signed:
        group.add_argument("--trusted-key", action=_Unsigned, metavar="FILE",
                           help="not accepted here: this command's answers are not signed (exit 2)")
        return
    group.add_argument("--trusted-key", action="append", default=[], metavar="FILE",
                       help="accept only answers signed by this ed25519 public key (PEM or 32 raw bytes; "
                            "repeatable): an unsigned answer or one by another key is refused (exit 1)")


def add_server_security(p: argparse.ArgumentParser) -> None:
    """``serve``: TLS, mutual TLS and bearer tokens, and the TLS/token of its own calls to another server."""
    group = p.add_argument_group("security")
    group.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate chain (PEM; re-read "
                                                          "when it changes)")
    group.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    group.add_argument("--tls-client-ca", metavar="FILE",
                       help="mutual TLS: refuse clients without a certificate signed by this CA (PEM)")
    group.add_argument("--auth-tokens", metavar="FILE",
                       help="require a bearer token on every call: lines 'TOKEN ROLE [TENANT]' (ROLE: resolve, "
                            "build, admin; TOKEN may be sha256:<hex>); re-read when it changes. Also guards the "
                            "HTTP endpoint")
    group.add_argument("--tls-ca", metavar="FILE",
                       help="--builder/--resolver: connect with TLS, verifying by this CA (also VENVSMITH_TLS_CA)")
    group.add_argument("--token", help="--builder/--resolver: bearer token for those calls (also VENVSMITH_TOKEN)")
    group.add_argument("--signing-key", metavar="FILE",
                       help="sign answers with this ed25519 private key (PEM PKCS#8 or 32 raw bytes): the "
                            "resolver its lock documents, the builder its answers (BuildResult) and action-cache "
                            "entries; re-read when the file changes")
    group.add_argument("--trusted-key", action="append", default=[], metavar="FILE",
                       help="builder: an action-cache entry counts only when signed by one of these ed25519 "
                            "public keys (repeatable; re-read when they change); any other is a miss, rebuilt (and "
                            "re-signed)")


def client_security(args: Any, address: str | None) -> Any:
    """The :class:`~venvsmith.core.tls.ClientSecurity` of a call to ``address``; ``None`` when nothing is
    remote (the embedded engines load no gRPC)."""
    if not address:
        return None
    from venvsmith.core.tls import ClientSecurity

    return ClientSecurity.from_args(args)


def signing_keys(args: Any) -> tuple[Any, Any]:
    """``(signer, trusted keys)`` of ``--signing-key`` / ``--trusted-key`` (None each when not given); a bad file
    raises :class:`~venvsmith.core.signing.KeyFileError` naming it (exit 2)."""
    path, trusted = getattr(args, "signing_key", None), getattr(args, "trusted_key", None) or []
    if not path and not trusted:
        return None, None
    from venvsmith.core.signing import SigningKeyFile, TrustedKeyFiles

    # Re-read when the files change, so a server's keys rotate without a restart.
    return (SigningKeyFile(path) if path else None), (TrustedKeyFiles(trusted) if trusted else None)
