"""The start and the end of both ``serve`` commands: what they check before any engine is made, how they listen,
and the life of a started server (health port, metrics, the drain on SIGTERM, the bounded close, the exit).

``serve resolver`` (:mod:`venvsmith.cli`) and ``serve builder`` (:mod:`venvsmith.cli.build`) differ only in their
engines and servers; everything around those is here, once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from venvsmith.cli import serve_options

T = TypeVar("T")


class StartupError(Exception):
    """A server that cannot start (a bad ``--allow-index``, no sandbox): exit 1, the message says why. A port that
    cannot be bound is :func:`venvsmith.cli.listen.listening`'s exit 2."""


@dataclass(frozen=True)
class ServeStart:
    """What a ``serve`` command has read and checked before it makes its engines."""

    #: ``--host`` as it goes into a gRPC address (an IPv6 literal in brackets).
    host: str
    security: Any  # venvsmith.core.grpc_util.ServerSecurity
    signer: Any
    trusted: Any
    allow: Any  # venvsmith.core.index.allowlist.AllowList
    limits: Any  # venvsmith.core.admission.ServerLimits


def server_allow(args: argparse.Namespace) -> Any:
    """The allow-list of ``venvsmith serve``: ``--allow-index`` prefixes, else this server's configuration."""
    from venvsmith.core.config import effective_pip_config
    from venvsmith.core.index.allowlist import server_allow_list

    return server_allow_list(effective_pip_config(), getattr(args, "allow_index", None) or ())


def prepare(args: argparse.Namespace) -> ServeStart:
    """Logs, home, tracing, then every file and list the server needs, checked before anything starts.

    A bad TLS, token or key file raises its own error (exit 2, from :func:`venvsmith.cli.main`); a bad
    ``--allow-index`` raises :class:`StartupError`.
    """
    from venvsmith.cli.security_args import signing_keys
    from venvsmith.core import tracing
    from venvsmith.core.admission import ServerLimits
    from venvsmith.core.grpc_util import ServerSecurity

    serve_options.configure_serving(args)
    host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    security = ServerSecurity.from_args(args)  # a bad file: exit 2 before anything starts
    signer, trusted = signing_keys(args)  # likewise a bad --signing-key / --trusted-key
    try:
        allow = server_allow(args)
    except ValueError as exc:
        raise StartupError(f"--allow-index: {exc}") from None
    tracing.configure(f"venvsmith-{args.service}", getattr(args, "otlp_endpoint", None))
    return ServeStart(host=host, security=security, signer=signer, trusted=trusted, allow=allow,
                      limits=ServerLimits.from_args(args))


def listen(start: ServeStart, port: int, make: Callable[[str], T], close: Callable[[], None]) -> T:
    """``make(address)`` for ``host:port``; when it cannot listen, ``close()`` the engines and exit 2 naming the
    port (:func:`venvsmith.cli.listen.listening`)."""
    from venvsmith.cli.listen import listening

    address = f"{start.host}:{port}"
    try:
        return listening("--port", start.host, port, lambda: make(address))
    except BaseException:
        close()
        raise


def run(args: argparse.Namespace, start: ServeStart, server: Any, close: Callable[[], None],
        lines: list[str]) -> int:
    """Start ``server`` (and ``--health-port``, ``--metrics-port``), print ``lines`` on stdout (the first names the
    bound port: tests and scripts read it), serve until SIGTERM/SIGINT, drain, ``close`` within a bound, exit 0."""
    from venvsmith.cli.listen import listening
    from venvsmith.cli.shutdown import close_within
    from venvsmith.core import tracing
    from venvsmith.core.grpc_util import serve_health_port

    server.start()
    health_port = getattr(args, "health_port", None)
    if health_port is not None:
        try:
            bound = listening("--health-port", start.host, health_port,
                              lambda: serve_health_port(server, f"{start.host}:{health_port}"))
        except BaseException:
            server.stop(None)
            close()
            raise
        serve_options.announce(args, f"health (plaintext grpc.health.v1) on {start.host}:{bound}")

    try:
        metrics = listening("--metrics-port", args.host, args.metrics_port, lambda: serve_options.start_metrics(args))
    except BaseException:
        server.stop(None)
        close()
        raise
    for line in lines:
        print(line, flush=True)
    finished = serve_options.serve_until_signalled(server, args)
    if metrics is not None:
        metrics.shutdown()
    closed = close_within(close)  # bounded: a worker stuck in a read cannot hold the exit
    close_within(tracing.shutdown)  # the spans still buffered go to the collector, within the same bound
    serve_options.exit_after_drain(finished and closed)
    return 0


def failed(exc: StartupError) -> int:
    """Say why the server did not start; the exit status (1)."""
    print(f"error: {exc}", file=sys.stderr)
    return 1
