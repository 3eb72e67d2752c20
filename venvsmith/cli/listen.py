"""``serve``: a port that cannot be listened on is one line naming it, exit 2 (see :mod:`venvsmith.cli.exits`),
found before any engine is made."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

from venvsmith.cli.exits import EXIT_BAD_INPUT, LISTEN_FAILED, CommandFailed

T = TypeVar("T")


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another server, or one still shutting down)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no such address on this host"
    return exc.strerror or str(exc)


def check_ports(host: str, ports: dict[str, int | None]) -> None:
    """Raise :class:`CommandFailed` naming the first of ``ports`` (option -> port; 0 and None skipped) that
    cannot be bound on ``host`` now."""
    for option, port in ports.items():
        if not port:
            continue
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise CommandFailed(LISTEN_FAILED, f"cannot listen on {host}:{port} ({option}): {exc}",
                                EXIT_BAD_INPUT) from None
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
            try:
                probe.bind(address)
            except OSError as exc:
                raise CommandFailed(LISTEN_FAILED, f"cannot listen on {host}:{port} ({option}): {_why(exc)}",
                                    EXIT_BAD_INPUT) from None


def listening(what: str, host: str, port: int, start: Callable[[], T]) -> T:
    """``start()`` (binding ``host:port``); an OSError, or grpc's RuntimeError "Failed to bind", becomes one line
    naming ``what`` and the port, exit 2."""
    try:
        return start()
    except (OSError, RuntimeError) as exc:
        why = _why(exc) if isinstance(exc, OSError) else str(exc)
        raise CommandFailed(LISTEN_FAILED, f"cannot listen on {host}:{port} ({what}): {why}", EXIT_BAD_INPUT) from None
