"""Launcher run in front of every build subprocess: apply resource limits, then exec the real command.

Usage: ``python -I -S _backend_runner.py MEMORY_BYTES FSIZE_BYTES -- ARGV...``

Setting the limits here instead of in a ``preexec_fn`` keeps :func:`builder_service.limits.run_limited` safe
in a multi-threaded server (CPython documents ``preexec_fn`` as unsafe with threads). Standard library only;
the limits survive ``exec``. Exits 126 when the limits cannot be applied, 127 when the command cannot run.

On Linux the command is also tied to the builder's life (``PR_SET_PDEATHSIG``, kept across ``exec``): the time
limit is enforced by the builder, so a build orphaned by a builder killed mid-build would otherwise run on with
no limit at all. (The signal comes when the *thread* that started the process ends; the builder's threads wait
for their builds.)
"""

from __future__ import annotations

import os
import resource
import signal
import sys


def _clamp(limit: int, which: int) -> int:
    """``limit`` lowered to the current hard limit (an unprivileged process cannot raise it)."""
    _soft, hard = resource.getrlimit(which)
    return limit if hard == resource.RLIM_INFINITY else min(limit, hard)


def _die_with_parent() -> bool:
    """Linux: get SIGKILL when the process that started this one dies; False if it is already gone."""
    if not sys.platform.startswith("linux"):
        return True
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no usable libc: best effort
        return True
    return os.getppid() == parent  # the parent may have died before the prctl took effect


def main(argv: list[str]) -> int:
    """Apply the limits in ``argv`` and exec the command after ``--``; returns only on failure."""
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _backend_runner.py MEMORY_BYTES FSIZE_BYTES -- ARGV...\n")
        return 126
    if not _die_with_parent():
        sys.stderr.write("venvsmith: the builder exited before the build started\n")
        return 126
    try:
        for which, value in ((resource.RLIMIT_AS, int(argv[0])), (resource.RLIMIT_FSIZE, int(argv[1]))):
            limit = _clamp(value, which)
            resource.setrlimit(which, (limit, limit))
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"venvsmith: cannot apply build limits: {exc}\n")
        return 126
    # Python ignores these two; ignored dispositions survive exec, so restore the defaults for the command.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    command = argv[3:]
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"venvsmith: cannot run {command[0]}: {exc}\n")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
