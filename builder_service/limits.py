"""Run a build subprocess under a wall-clock, memory and output-size limit, its output streamed to a log.

:func:`run_limited` starts the command in a new session (its own process group) through
:mod:`builder_service._backend_runner`, which applies ``RLIMIT_AS`` (memory) and ``RLIMIT_FSIZE`` (largest file
written) before ``exec``. Output goes to the build's :class:`~builder_service.build_log.BuildLog` (bounded: its
head and tail are kept); a build whose output passes ``max_output_bytes`` in all is killed. On timeout the whole process
group gets SIGTERM, then SIGKILL after a grace period; processes the command left behind are killed too.
Failures raise a :class:`BuildError` whose ``status`` is the gRPC status code name the builder returns.

POSIX only (``resource``, process groups).
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder_service import _backend_runner
from builder_service.build_log import DEFAULT_MAX_LOG_BYTES, BuildLog
from builder_service.errors import BuildError, BuildFailed, BuildOutOfMemory, BuildOutputTooLarge, BuildTimeout
from venvsmith.core import cancellation

__all__ = [
    "GiB",
    "MiB",
    "BuildLimits",
    "limited_argv",
    "run_limited",
]

MiB = 1024**2
GiB = 1024**3

#: Seconds between SIGTERM and SIGKILL of a timed-out process group.
TERM_GRACE_SECONDS = 5.0

_MEMORY_RE = re.compile(r"^(?:\w+\.)*MemoryError\b|std::bad_alloc|Cannot allocate memory|out of memory", re.M | re.I)
_FSIZE_TEXT = (os.strerror(errno.EFBIG), f"[Errno {errno.EFBIG}]")


@dataclass(frozen=True)
class BuildLimits:
    """Limits of one sdist build (all of its subprocesses together for time; each process for memory)."""

    #: Wall-clock limit of the whole build, in seconds.
    timeout_seconds: float = 3600
    #: Address-space limit (``RLIMIT_AS``) of every build process, in bytes.
    memory_bytes: int = 8 * GiB
    #: Largest file a build process may write (``RLIMIT_FSIZE``), largest wheel, and most output (stdout and
    #: stderr) a build may print in all before it is killed, in bytes.
    max_output_bytes: int = 2 * GiB
    #: Largest stored build log, in bytes: beyond it the log keeps its first and last halves
    #: (:class:`~builder_service.build_log.BuildLog`); the build goes on.
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES

    def __post_init__(self) -> None:
        for field in ("timeout_seconds", "memory_bytes", "max_output_bytes", "max_log_bytes"):
            if not getattr(self, field) > 0:
                raise ValueError(f"BuildLimits.{field} must be positive, not {getattr(self, field)!r}")


def limited_argv(argv: Sequence[str], limits: BuildLimits) -> list[str]:
    """``argv`` prefixed with the launcher that applies ``limits`` (``argv[0]`` is looked up on the env's ``PATH``)."""
    launcher = str(Path(_backend_runner.__file__).resolve())
    return [sys.executable, "-I", "-S", launcher, str(limits.memory_bytes), str(limits.max_output_bytes), "--", *argv]


class _Process:
    """A started process group: its output pump and its killing."""

    def __init__(self, popen: subprocess.Popen[bytes], log: BuildLog) -> None:
        self.popen = popen
        self.log = log
        assert popen.stdout is not None
        self.fd = popen.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.eof = False

    def exited(self) -> bool:
        """Whether the leader has exited; it stays a zombie (so its process group id stays reserved)."""
        if self.popen.returncode is not None:
            return True
        if hasattr(os, "waitid"):
            try:
                return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                return True
        return self.popen.poll() is not None

    def pump(self, until: float) -> None:
        """Copy output to the log until ``until`` (monotonic), EOF, or the log overflows."""
        while not self.eof and not self.log.overflowed:
            remaining = until - time.monotonic()
            if remaining <= 0 or not self.selector.select(timeout=remaining):
                return
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                self.eof = True
                self.selector.unregister(self.fd)
                return
            self.log.write(data)

    def run(self, deadline: float) -> str:
        """Pump output until the leader exits (``"exited"``), ``deadline`` passes, the log overflows or every
        caller of the work has gone (``"cancelled"``, :func:`venvsmith.core.cancellation.should_stop`)."""
        while not self.exited():
            if self.log.overflowed:
                return "overflow"
            if cancellation.should_stop():
                return "cancelled"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if self.eof:
                time.sleep(min(0.01, deadline - now))
            else:
                self.pump(min(now + 0.05, deadline))
        self.kill_group(signal.SIGKILL)  # stragglers the command left behind
        self.pump(time.monotonic() + 1.0)  # the rest of the output
        return "overflow" if self.log.overflowed else "exited"

    def terminate(self, grace: float) -> None:
        """SIGTERM the group, keep pumping up to ``grace`` seconds while the leader exits, then SIGKILL the group."""
        self.kill_group(signal.SIGTERM)
        end = time.monotonic() + grace
        while not self.exited() and time.monotonic() < end:
            if self.eof or self.log.overflowed:
                time.sleep(0.02)
            else:
                self.pump(min(time.monotonic() + 0.05, end))
        self.kill_group(signal.SIGKILL)

    def kill_group(self, signum: int) -> None:
        if self.popen.returncode is None:  # once reaped, the group id may belong to someone else
            try:
                os.killpg(self.popen.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> int:
        """Kill what is left, reap the leader and close the pipe; returns the exit status."""
        self.kill_group(signal.SIGKILL)
        returncode = self.popen.wait()
        self.selector.close()
        assert self.popen.stdout is not None
        self.popen.stdout.close()
        return returncode


def run_limited(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: BuildLimits,
    log_path: Path | None = None,
    log: BuildLog | None = None,
    what: str | None = None,
    deadline: float | None = None,
    term_grace: float = TERM_GRACE_SECONDS,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> subprocess.CompletedProcess[None]:
    """Run ``argv`` under ``limits`` with exactly ``env``, its output going to ``log`` (the build's
    :class:`~builder_service.build_log.BuildLog`), or to a log of its own appended to ``log_path``.

    :param what: names the step in errors and in the log (default: ``argv[0]``).
    :param deadline: a :func:`time.monotonic` time the step must also finish by (the rest of a build's budget).
    :param wrap: turns the limited command line into the one started (a :mod:`~builder_service.sandbox`'s).
    :raises BuildTimeout: the time limit passed; the process group was killed.
    :raises BuildOutputTooLarge: the output of the build passed ``max_output_bytes`` or a file write hit
        ``RLIMIT_FSIZE``.
    :raises BuildOutOfMemory: the command failed with a memory error.
    :raises BuildFailed: any other non-zero exit.
    """
    if log is None:
        if log_path is None:
            raise TypeError("run_limited needs log or log_path")
        own = BuildLog(log_path, min(DEFAULT_MAX_LOG_BYTES, limits.max_output_bytes),
                       kill_bytes=limits.max_output_bytes)
        try:
            return run_limited(argv, cwd=cwd, env=env, limits=limits, log=own, what=what, deadline=deadline,
                               term_grace=term_grace, wrap=wrap)
        finally:
            own.close()
    what = what or str(argv[0])
    start = time.monotonic()
    end = start + limits.timeout_seconds if deadline is None else min(start + limits.timeout_seconds, deadline)
    log.begin(what)
    command = limited_argv(argv, limits)
    popen = subprocess.Popen(
        wrap(command) if wrap is not None else command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    process = _Process(popen, log)
    try:
        outcome = process.run(end)
        if outcome in ("timeout", "cancelled"):
            process.terminate(term_grace)
    finally:
        returncode = process.close()
    if outcome == "cancelled":
        raise cancellation.Cancelled(f"every caller cancelled: {what} was stopped (its processes killed)")
    tail = log.tail_text()
    if outcome == "timeout":
        raise BuildTimeout(what, limits.timeout_seconds, tail)
    if outcome == "overflow":
        raise BuildOutputTooLarge(what, limits.max_output_bytes, tail)
    if returncode != 0:
        raise _classify(what, returncode, tail, limits)
    return subprocess.CompletedProcess(list(argv), returncode)


def _classify(what: str, returncode: int, tail: str, limits: BuildLimits) -> BuildError:
    """The error for a non-zero exit, from its signal and the end of its output."""
    # A shell reports a child killed by signal N as status 128 + N.
    signals = {-returncode, returncode - 128}
    if getattr(signal, "SIGXFSZ", 0) in signals or any(text in tail for text in _FSIZE_TEXT):
        return BuildOutputTooLarge(what, limits.max_output_bytes, tail)
    if _MEMORY_RE.search(tail):
        return BuildOutOfMemory(what, limits.memory_bytes, tail)
    hint = " (SIGKILL: possibly the kernel's out-of-memory killer)" if signal.SIGKILL in signals else ""
    return BuildFailed(what, returncode, tail, hint)
