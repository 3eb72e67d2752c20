"""The TLS and token flags of the servers (``serve``) and of the commands that call them (``--server``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_client_security(p: argparse.ArgumentParser) -> None:
    """``--tls-ca``, ``--tls-cert``/``--tls-key`` (client certificate) and ``--token`` of a ``--server`` call."""
    group = p.add_argument_group("server security (with --server)")
    group.add_argument("--tls-ca", metavar="FILE",
                       help="connect with TLS, verifying the server by this CA (PEM; also VENVSMITH_TLS_CA)")
    group.add_argument("--tls-cert", metavar="FILE",
                       help="client certificate for mutual TLS (PEM; also VENVSMITH_TLS_CERT)")
    group.add_argument("--tls-key", metavar="FILE", help="its private key (PEM; also VENVSMITH_TLS_KEY)")
    group.add_argument("--token", help="bearer token sent on every call (also VENVSMITH_TOKEN)")


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


def client_security(args: Any, address: str | None) -> Any:
    """The :class:`~venvsmith.core.tls.ClientSecurity` of a call to ``address``; ``None`` when nothing is
    remote (the embedded engines load no gRPC)."""
    if not address:
        return None
    from venvsmith.core.tls import ClientSecurity

    return ClientSecurity.from_args(args)
