"""The end of a ``serve`` command that no stuck request can hold.

After SIGTERM the server drains for the grace period (:func:`venvsmith.cli.serve_options.serve_until_signalled`);
then the engines are closed, for at most :data:`CLOSE_SECONDS`: a worker thread still blocked (in a read from a
trickling index, a build that ignores cancellation) could otherwise make closing, or the interpreter's exit that
joins executor threads, wait without end. :func:`venvsmith.cli.serve_options.exit_after_drain` then ends the
process with ``os._exit`` unless everything finished. Nothing of value is lost that way: the stores write through
temporary files and renames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds closing the engines may take after the grace period.
CLOSE_SECONDS = 3.0


def close_within(close: Callable[[], None], seconds: float = CLOSE_SECONDS) -> bool:
    """Run ``close`` in a daemon thread for at most ``seconds``; True when it finished (failures are logged)."""
    closer = threading.Thread(target=_close_quietly, args=(close,), name="shutdown-close", daemon=True)
    closer.start()
    closer.join(seconds)
    if closer.is_alive():
        log.warning("closing the engines took longer than %.1f s: exiting anyway", seconds)
        return False
    return True


def _close_quietly(close: Callable[[], None]) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001 -- exiting anyway; say what failed
        log.exception("closing the engines failed")
