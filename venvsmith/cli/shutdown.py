"""Shutdown of the ``serve`` commands that no stuck request can hold.

On SIGTERM or SIGINT the gRPC server stops accepting and gives in-flight calls ``grace`` seconds; then the
engines are closed, for at most ``close_seconds``; then the process exits. A worker thread still blocked
(in a read from a trickling index, a build that ignores cancellation) would keep a normal interpreter exit
waiting, since executor threads are joined at exit: so the process ends with ``os._exit`` once output is
flushed. Nothing of value is lost that way: the stores write through temporary files and renames.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Seconds in-flight calls get after SIGTERM before they are cancelled.
GRACE_SECONDS = 5.0
#: Seconds closing the engines may take after the grace period.
CLOSE_SECONDS = 3.0


def serve_until_signalled(
    server: Any, close: Callable[[], None], *, grace: float = GRACE_SECONDS, close_seconds: float = CLOSE_SECONDS
) -> int:
    """Block until SIGTERM/SIGINT, stop ``server`` (a started ``grpc.Server``) within ``grace``, run ``close``
    within ``close_seconds``, then exit the process with status 0 (returns only if exiting failed)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=grace).wait(grace + 1.0)
    closer = threading.Thread(target=_close_quietly, args=(close,), name="shutdown-close", daemon=True)
    closer.start()
    closer.join(close_seconds)
    if closer.is_alive():
        log.warning("closing the engines took longer than %.1f s: exiting anyway", close_seconds)
    exit_now(0)
    return 0


def _close_quietly(close: Callable[[], None]) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001 -- exiting anyway; say what failed
        log.exception("closing the engines failed")


def exit_now(status: int) -> None:
    """Flush the standard streams and the logs, then end the process without joining any thread."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(status)
