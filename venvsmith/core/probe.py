"""Ask an interpreter about itself: the one subprocess every caller that needs an interpreter's facts goes through.

:func:`probe` runs the interpreter isolated (``-I -S -B``: no environment variables, no site-packages, no cwd on
``sys.path``, no bytecode written), without a shell, with a time limit and a cap on what it may print, and runs
one script (:data:`PROBE_SCRIPT`, valid Python 3.6+; Python 2, which has no ``-I``, fails it) that answers
everything the callers need in one JSON object (:class:`Probe`):

* version and implementation, and ``sys.executable`` (interpreter discovery, :mod:`venvsmith.core.interpreters`);
* the base interpreter and the facts that identify its build (what a venv made with it depends on);
* the PEP 508 markers and ``sys_tags()`` computed by *our* ``packaging`` appended to ``sys.path``, or, where our
  ``packaging`` cannot be imported, the facts ``sys_tags()`` reads (:mod:`venvsmith.core.target` builds the tags);
* when asked, the ``sysconfig`` install scheme for a venv prefix, after creating that venv with the interpreter's
  own ``venv`` module (``builder_service.venv``).

:class:`ProbeCache` keeps answers in a JSON file, keyed by the interpreter binary's file identity (real path,
size, mtime), and counts the subprocesses it ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "MAX_OUTPUT",
    "PROBE_SCRIPT",
    "Probe",
    "ProbeCache",
    "ProbeError",
    "file_identity",
    "probe",
]

#: Bytes of standard output a probed interpreter may write (its answer); more ends it.
MAX_OUTPUT = 4 * 1024 * 1024
#: Bytes of standard error kept (the last ones) for an error message.
_MAX_STDERR = 64 * 1024
_CHUNK = 64 * 1024


class ProbeError(Exception):
    """Probing the interpreter at ``path`` failed; ``reason`` says how, ``kind`` is one of
    run, timeout, output, exit, answer."""

    def __init__(self, path: str, kind: str, reason: str, stderr: str = "") -> None:
        super().__init__(f"interpreter {path}: {reason}")
        self.path = path
        self.kind = kind
        self.reason = reason
        #: The end of what the interpreter wrote to standard error.
        self.stderr = stderr

    def __reduce__(self):
        return (type(self), (self.path, self.kind, self.reason, self.stderr))


@dataclass(frozen=True)
class Probe:
    """What one interpreter said about itself (the probe script's JSON answer, checked only where read)."""

    #: The path that was run.
    path: str
    report: Mapping[str, Any]

    @property
    def version_info(self) -> tuple[int, int, int, str, int]:
        """``sys.version_info``; ``ValueError`` when the answer has none."""
        try:
            major, minor, micro, level, serial = self.report["version_info"]
            return int(major), int(minor), int(micro), str(level), int(serial)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"no version in the answer ({exc})") from None

    @property
    def implementation(self) -> str:
        """``sys.implementation.name`` (``"python2"`` for Python 2)."""
        return str(self.report["implementation"])

    @property
    def executable(self) -> str:
        """``sys.executable`` as the interpreter reports it (a wrapper names the real binary)."""
        return str(self.report.get("executable") or "")

    @property
    def base(self) -> Mapping[str, Any]:
        """``path`` (``sys._base_executable``) and ``build`` (the facts that tell this build from another)."""
        return self.report["base"]

    @property
    def markers(self) -> Mapping[str, Any]:
        return self.report["markers"]

    @property
    def tags(self) -> list[str] | None:
        """``sys_tags()`` by our packaging in the interpreter; None when it could not import there (see facts)."""
        return self.report.get("tags")

    @property
    def facts(self) -> Mapping[str, Any]:
        """What ``sys_tags()`` reads, reported where our packaging does not import."""
        return self.report["facts"]

    @property
    def scheme(self) -> Mapping[str, str]:
        """purelib, platlib and scripts of the venv scheme, relative to the venv prefix (when asked)."""
        return self.report["scheme"]


# Runs in the probed interpreter. argv[1] is a JSON request: {"packaging": dir, "venv": path or null,
# "create": bool, "environment": bool (markers and tags)}. Must stay valid Python 3.6; imports only the
# standard library, plus our packaging when that imports there.
PROBE_SCRIPT = r"""
import json, os, sys
request = json.loads(sys.argv[1])
v = sys.version_info
impl = getattr(sys, "implementation", None)
report = {
    "version_info": [v[0], v[1], v[2], v[3], v[4]],
    "implementation": impl.name if impl is not None else "python2",
    "executable": sys.executable or "",
}
if v[0] >= 3:
    import sysconfig
    dest = request.get("venv")
    if dest and request.get("create"):
        import venv
        venv.EnvBuilder(symlinks=True, with_pip=False).create(dest)
    base = getattr(sys, "_base_executable", "") or sys.executable
    report["base"] = {"path": base, "build": [
        sys.version, sys.implementation.cache_tag or "", getattr(sys, "abiflags", ""),
        sysconfig.get_config_var("SOABI") or "", os.path.realpath(base), sys.base_prefix]}
    if dest:
        names = sysconfig.get_scheme_names()
        scheme = "venv" if "venv" in names else ("nt" if os.name == "nt" else "posix_prefix")
        prefix = {"base": dest, "platbase": dest, "installed_base": dest, "installed_platbase": dest}
        paths = sysconfig.get_paths(scheme, vars=prefix)
        keys = ("purelib", "platlib", "scripts")
        report["scheme"] = dict((key, os.path.relpath(paths[key], dest)) for key in keys)
if v[0] >= 3 and request.get("environment", True):
    import platform, struct, subprocess
    sys.path.append(request["packaging"])
    try:
        from packaging.markers import default_environment
        from packaging.tags import sys_tags
        report["markers"] = dict(default_environment())
        report["tags"] = [str(tag) for tag in sys_tags()]
    except Exception as exc:
        report["packaging_error"] = "%s: %s" % (type(exc).__name__, exc)

        def full_version(info):
            version = "%d.%d.%d" % (info.major, info.minor, info.micro)
            if info.releaselevel != "final":
                version += info.releaselevel[0] + str(info.serial)
            return version

        report["markers"] = {
            "implementation_name": sys.implementation.name,
            "implementation_version": full_version(sys.implementation.version),
            "os_name": os.name,
            "platform_machine": platform.machine(),
            "platform_release": platform.release(),
            "platform_system": platform.system(),
            "platform_version": platform.version(),
            "python_full_version": platform.python_version(),
            "platform_python_implementation": platform.python_implementation(),
            "python_version": ".".join(platform.python_version_tuple()[:2]),
            "sys_platform": sys.platform,
        }
        try:
            glibc = os.confstr("CS_GNU_LIBC_VERSION")
        except (AttributeError, OSError, ValueError):
            glibc = None
        mac_version, _, mac_machine = platform.mac_ver()
        if mac_version.startswith("10.16"):
            mac_version = subprocess.run(
                [sys.executable, "-sS", "-c", "import platform; print(platform.mac_ver()[0])"],
                check=True, env={"SYSTEM_VERSION_COMPAT": "0"}, stdout=subprocess.PIPE, universal_newlines=True,
            ).stdout.strip()
        from importlib.machinery import EXTENSION_SUFFIXES
        names = (
            "Py_DEBUG", "Py_GIL_DISABLED", "WITH_PYMALLOC", "Py_UNICODE_SIZE", "EXT_SUFFIX", "py_version_nodot"
        )
        report["facts"] = {
            "implementation": sys.implementation.name,
            "version": list(sys.version_info[:2]),
            "config": dict((name, sysconfig.get_config_var(name)) for name in names),
            "gettotalrefcount": hasattr(sys, "gettotalrefcount"),
            "debug_extensions": "_d.pyd" in EXTENSION_SUFFIXES,
            "maxunicode": sys.maxunicode,
            "sysconfig_platform": sysconfig.get_platform(),
            "system": platform.system(),
            "is_32bit": struct.calcsize("P") == 4,
            "glibc": glibc,
            "mac_version": mac_version,
            "mac_machine": mac_machine,
        }
sys.stdout.write(json.dumps(report))
"""


def file_identity(path: str | os.PathLike[str]) -> str:
    """What must not change for a cached answer about ``path`` to stay valid: real path, size, mtime."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _packaging_dir() -> str:
    """The directory our ``packaging`` is in (found, not imported: this process may never need it)."""
    import importlib.util

    spec = importlib.util.find_spec("packaging")
    assert spec is not None and spec.origin is not None, "packaging is a dependency of venvsmith"
    return str(Path(spec.origin).resolve().parent.parent)


def _drain(stream: IO[bytes], keep: bytearray, limit: int, tail: bool, over: threading.Event) -> None:
    """Read ``stream`` to its end; keep at most ``limit`` bytes (the first, or with ``tail`` the last ones)."""
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        keep += chunk
        if len(keep) > limit:
            if not tail:
                over.set()
                return
            del keep[:-limit]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if sys.platform != "win32":
            os.killpg(proc.pid, 9)  # the whole session: a wrapper's children hold the pipes too
        else:  # pragma: no cover - POSIX here
            proc.kill()
    except OSError:
        pass


def _run(path: str, request: Mapping[str, Any], timeout: float, max_output: int, cwd: str | None) -> dict[str, Any]:
    argv = [path, "-I", "-S", "-B", "-c", PROBE_SCRIPT, json.dumps(dict(request))]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=cwd, start_new_session=sys.platform != "win32")
    except OSError as exc:
        raise ProbeError(path, "run", f"cannot run interpreter ({exc.strerror or exc})") from None
    assert proc.stdout is not None and proc.stderr is not None
    out, err, over = bytearray(), bytearray(), threading.Event()
    readers = [threading.Thread(target=_drain, args=(proc.stdout, out, max_output, False, over), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, err, _MAX_STDERR, True, threading.Event()),
                                daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not over.is_set() and time.monotonic() < deadline:
            over.wait(0.01)
        if over.is_set():
            raise ProbeError(path, "output", f"interpreter wrote more than {max_output} bytes")
        if proc.returncode is None:
            raise ProbeError(path, "timeout", f"interpreter did not answer within {timeout:g}s")
        for reader in readers:  # it ended; a leftover child holding the pipes gets until the deadline
            reader.join(max(deadline - time.monotonic(), 0.1))
        if over.is_set():
            raise ProbeError(path, "output", f"interpreter wrote more than {max_output} bytes")
    finally:
        if proc.returncode is None:
            _kill(proc)
            proc.wait()
        elif any(reader.is_alive() for reader in readers):
            _kill(proc)  # leftovers of its session hold the pipes (so the session, and its id, still exist)
        for reader in readers:
            reader.join(1.0)
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode != 0:
        stderr = err.decode("utf-8", "replace").strip()
        lines = stderr.splitlines()
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ProbeError(path, "exit", f"not a usable Python 3 interpreter ({detail})", stderr)
    text = out.decode("utf-8", "replace")
    try:
        report = json.loads(text)
        if not isinstance(report, dict) or "version_info" not in report or "implementation" not in report:
            raise ValueError("no version and implementation")
    except ValueError as exc:
        raise ProbeError(path, "answer", f"unexpected answer from interpreter ({exc}): {text[:200]!r}") from None
    return report


def probe(
    path: str | os.PathLike[str],
    *,
    timeout: float = 30.0,
    cache: ProbeCache | None = None,
    venv: str | os.PathLike[str] | None = None,
    create: bool = False,
    environment: bool = True,
    max_output: int = MAX_OUTPUT,
) -> Probe:
    """Run the probe script in the interpreter at ``path`` (once while its binary is unchanged, with ``cache``).

    The answer holds version, implementation, executable, base interpreter and, with ``environment`` or a
    ``cache`` (whose answers serve every caller), markers and tags or the facts for them. With ``venv`` it holds
    the venv scheme for that prefix; with ``create`` too the interpreter first creates an empty venv (symlinks,
    no pip) there, in the same subprocess. Answers about a venv are not cached. Raises :class:`ProbeError`,
    naming ``path``.
    """
    exe = os.fspath(path)
    dest = os.fspath(venv) if venv is not None else None
    creating = create and dest is not None
    request = {"packaging": _packaging_dir(), "venv": dest, "create": creating,
               "environment": (environment or cache is not None) and not creating}
    cwd = os.path.dirname(dest) if creating and dest is not None else None
    if cwd is not None and not os.path.isdir(cwd):
        cwd = None
    if cache is None or dest is not None:
        return Probe(exe, _run(exe, request, timeout, max_output, cwd))
    try:
        key = file_identity(exe)
    except OSError as exc:
        raise ProbeError(exe, "run", f"cannot run interpreter ({exc.strerror or exc})") from None
    held = cache.get(key, "probe")
    if held is not None:
        if "error" in held:
            raise ProbeError(exe, held.get("kind", "answer"), str(held["error"]))
        return Probe(exe, held)
    cache.count_run()
    try:
        report = _run(exe, request, timeout, max_output, cwd)
    except ProbeError as exc:
        if exc.kind != "run":  # a binary that cannot be started now may be fixed without changing it
            cache.put(key, "probe", {"error": exc.reason, "kind": exc.kind})
        raise
    cache.put(key, "probe", report)
    return Probe(exe, report)


class ProbeCache:
    """Probe answers kept in a JSON file, valid while the interpreter binary is unchanged; thread-safe.

    ``stats`` counts the probe subprocesses run through it (``runs``) and the answers it gave from memory
    (``hits``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._remove_orphaned_temp_files()
        try:
            self._data: dict[str, dict] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._data = {}
        self._dirty = False
        self._lock = threading.Lock()
        self.stats = {"runs": 0, "hits": 0}

    def get(self, identity: str, kind: str) -> dict | None:
        with self._lock:
            found = self._data.get(f"{kind}|{identity}")
            if found is not None:
                self.stats["hits"] += 1
            return found

    def put(self, identity: str, kind: str, value: dict) -> None:
        with self._lock:
            self._data[f"{kind}|{identity}"] = value
            self._dirty = True

    def count_run(self) -> None:
        with self._lock:
            self.stats["runs"] += 1

    def _remove_orphaned_temp_files(self) -> None:
        """Delete the ``<name>.<pid>.<thread>.tmp`` files of :meth:`save` that a process killed mid-write left
        (one whose pid no longer runs); a live writer's file is left alone."""
        for tmp in self.path.parent.glob(f"{self.path.name}.*.*.tmp"):
            pid = tmp.name[len(self.path.name) + 1:].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(self._data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
