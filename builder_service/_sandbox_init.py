"""Set up the filesystem of the ``namespaces`` sandbox, drop every capability, then exec the build command.

Usage: ``python -I -S _sandbox_init.py [--hide DIR]... [--read DIR]... [--write DIR]... [--chdir DIR] -- ARGV...``
or ``python -I -S _sandbox_init.py --die-with-parent -- ARGV...`` (in front of ``unshare``: exec ``ARGV`` with
``PR_SET_PDEATHSIG`` set, so that the sandbox dies with the builder, whose ``--kill-child`` then kills the rest).

Runs as root of a fresh user namespace, in fresh mount, network, IPC, UTS and PID namespaces (``unshare
--user --map-root-user --mount --net --ipc --uts --pid --fork --kill-child --mount-proc``), as their PID 1:
when it (the build command it becomes) exits, the kernel kills every process left in the PID namespace.

1. every mount is remounted read-only (the mounts this namespace copied keep their other flags);
2. each ``--hide`` directory gets an empty tmpfs on top (``/tmp``, the service's home, its store);
3. each ``--read`` directory is bound back read-only, each ``--write`` directory read-write, from descriptors
   opened before step 2 hid them;
4. the capability bounding set is emptied and ``no_new_privs`` set, so the command (root in the namespace, but
   with no capability after ``exec``) cannot remount anything writable again or gain privileges through a
   set-user-ID program.

Standard library only. Exits 125 when the sandbox cannot be set up: a build never runs half-sandboxed.
"""

from __future__ import annotations

import ctypes
import os
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
_KEPT_FLAGS = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
EXIT_SETUP_FAILED = 125

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The sandbox could not be set up."""


def _encode(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = _encode
    if _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)) != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {source} on {target} ({fstype or 'bind'}, flags {flags:#x}): {os.strerror(err)}")


def _unescape(field: str) -> str:
    """A mountinfo path (``\\040`` for a space, and so on)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[tuple[str, int]]:
    """``(mount point, per-mount flags to keep)`` of every mount this process sees."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        for line in info:
            fields = line.split()
            options = fields[5].split(",")
            found.append((_unescape(fields[4]), sum(_KEPT_FLAGS.get(option, 0) for option in options)))
    return found


def _flags_of(path: str) -> int:
    """The per-mount flags to keep of the mount at ``path`` (the last one mounted there)."""
    flags = 0
    for point, kept in mounts():
        if point == path:
            flags = kept
    return flags


def remount_read_only() -> None:
    """Every mount read-only (of mounts stacked on one path, the top one: the others cannot be reached)."""
    top: dict[str, int] = {}
    for point, kept in mounts():
        top.pop(point, None)
        top[point] = kept
    for point, kept in top.items():
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def bind(fd: int, target: str, writable: bool) -> None:
    """Bind the directory open as ``fd`` on ``target`` (created when missing), read-only or read-write."""
    os.makedirs(target, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    kept = _flags_of(target)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | kept | (0 if writable else MS_RDONLY))


def drop_capabilities() -> None:
    """Empty the bounding set (no capability survives ``exec``) and forbid gaining privileges."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as last:
        last_cap = int(last.read())
    for cap in range(last_cap + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise SetupError(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SetupError(f"cannot set no_new_privs: {os.strerror(ctypes.get_errno())}")


def parse(argv: list[str]) -> tuple[dict[str, list[str]], str | None, list[str]]:
    """``({"--hide": [...], "--read": [...], "--write": [...]}, chdir, command)``."""
    dirs: dict[str, list[str]] = {"--hide": [], "--read": [], "--write": []}
    chdir = None
    i = 0
    while i < len(argv) and argv[i] != "--":
        option, value = argv[i], argv[i + 1]
        if option == "--chdir":
            chdir = value
        else:
            dirs[option].append(os.path.abspath(value))
        i += 2
    command = argv[i + 1 :]
    if not command:
        raise SetupError("no command")
    return dirs, chdir, command


def setup(dirs: dict[str, list[str]], chdir: str | None) -> None:
    """Steps 1 to 4 of the module's description."""
    chdir = chdir or os.getcwd()
    opened = []
    for option in ("--read", "--write"):
        for path in dirs[option]:
            try:
                opened.append((os.open(path, os.O_PATH | os.O_DIRECTORY), path, option == "--write"))
            except FileNotFoundError:
                if option == "--write":
                    raise SetupError(f"writable directory {path} does not exist") from None
    remount_read_only()
    for path in dirs["--hide"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            if path == "/tmp":
                os.chmod(path, 0o1777)
    for fd, path, writable in opened:
        bind(fd, path, writable)
        os.close(fd)
    os.chdir(chdir)  # the old working directory is on the mount below the binds
    drop_capabilities()


def die_with_parent() -> None:
    """SIGKILL when the process that started this one dies (kept across ``exec``)."""
    parent = os.getppid()
    if _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0:
        raise SetupError(f"cannot set the parent-death signal: {os.strerror(ctypes.get_errno())}")
    if os.getppid() != parent:
        raise SetupError("the builder exited before the build started")


def main(argv: list[str]) -> int:
    try:
        if argv[:2] == ["--die-with-parent", "--"]:
            command = argv[2:]
            die_with_parent()
        else:
            dirs, chdir, command = parse(argv)
            setup(dirs, chdir)
    except (SetupError, OSError, IndexError, KeyError) as exc:
        sys.stderr.write(f"venvsmith: cannot set up the build sandbox: {exc}\n")
        return EXIT_SETUP_FAILED
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"venvsmith: cannot run {command[0]}: {exc}\n")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
