"""Deterministic ``tar.zst`` archives of a directory (a venv), and safe streaming extraction.

:func:`pack` gives the same bytes for the same tree wherever and whenever it was built: entries in sorted
depth-first order (byte-wise by name), POSIX pax format with no time or owner records, mtime
:data:`MTIME`, uid/gid 0, empty user and group names, modes normalised (``0o755`` for directories and
executables, ``0o644`` for other files, ``0o777`` for symlinks), symlinks kept as symlinks with their target
as is, hard links stored as separate files, and zstd at a fixed level, single-threaded, with a checksum and
without a content size in the frame header.

:func:`unpack` refuses (:class:`UnsafeArchive`) members that would escape the destination: absolute
names, ``..`` components, device files, hard links to anything but an earlier regular member, and
symlinks whose target leaves the tree. The one exception are absolute symlinks named ``bin/python*`` whose
target is an interpreter (``.../python3.12``, ``.../pypy3``): a venv's interpreter links to its base
interpreter by absolute path, legitimately. Nothing is ever written through a symlink. Extraction goes to
a temporary sibling directory that is renamed to ``dest`` at the end, so a refused archive leaves nothing.
"""

from __future__ import annotations

import gc
import hashlib
import io
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, BinaryIO, cast

import zstandard

from venvsmith.core.index.limits import archive_problem

from .errors import UnsafeArchive
from .file_stat import FileStat, stat_key
from .trees import NOT_WRITABLE, remove_sealed, seal

__all__ = ["MTIME", "ZSTD_LEVEL", "iter_tree", "pack", "unpack", "unpack_stream"]

#: mtime of every member (the epoch, like ``SOURCE_DATE_EPOCH=0``).
MTIME = 0
#: zstd compression level. Measured on jupyter's venv (173 MiB of tar): level 3 packs in 1.1 s to 47 MiB,
#: level 10 in 8.4 s to 41 MiB; reading is as fast either way. A first build waits for the packing, a repeat
#: only moves 15% more bytes: level 3.
ZSTD_LEVEL = 3
_CHUNK = 1 << 20

def file_mode(mode: int) -> int:
    """The one mode a regular file has in an archive and once unpacked: ``0o755`` if any execute bit, else
    ``0o644``."""
    return 0o755 if mode & 0o111 else 0o644


_INTERPRETER_LINK = re.compile(r"bin/python[^/]*")
_INTERPRETER_TARGET = re.compile(r"(?:python|pypy)[0-9.]*[a-z]*")


# ------------------------------------------------------------------------------------------------ pack


def iter_tree(root: Path, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """``(archive name, entry)`` for everything under ``root``, depth first, children sorted byte-wise."""
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for entry in entries:
        name = prefix + entry.name
        yield name, entry
        if entry.is_dir(follow_symlinks=False):
            yield from iter_tree(Path(entry.path), name + "/")


def _tarinfo(name: str, entry: os.DirEntry[str]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(entry.path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        info.mode = file_mode(st.st_mode)
    else:
        raise ValueError(f"cannot archive {entry.path}: not a file, directory or symlink")
    return info


class _HashingWriter:
    """A write-only file that hashes and counts what passes through to ``raw``."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def pack(directory: Path, out_path: Path, *, level: int = ZSTD_LEVEL) -> tuple[str, int]:
    """Write a deterministic ``tar.zst`` of ``directory``'s contents to ``out_path``; return (sha256 hex, size).

    The file appears atomically (written next to ``out_path``, then renamed).
    """
    directory, out_path = Path(directory), Path(out_path)
    if _inside(os.path.realpath(out_path.parent), os.path.realpath(directory)):
        raise ValueError(f"cannot write the archive {out_path} inside the directory it packs")
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=False, threads=0)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingWriter(raw)
            # zstandard only calls write() and flush(), which _HashingWriter has.
            with compressor.stream_writer(cast(IO[bytes], hashing), closefd=False) as zst:
                with tarfile.open(fileobj=zst, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for name, entry in iter_tree(directory):
                        info = _tarinfo(name, entry)
                        if info.isreg():
                            with open(entry.path, "rb") as f:
                                tar.addfile(info, f)
                        else:
                            tar.addfile(info)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashing.sha256.hexdigest(), hashing.size


# ---------------------------------------------------------------------------------------------- unpack


def _name_problem(name: str) -> str | None:
    if not name or "\x00" in name or name in (".", "./"):
        return "empty name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.split("/") or ".." in name.split("\\"):
        return "path with a '..' component"
    return None


def _member_name(raw: str) -> str:
    """``raw`` without trailing slashes and leading ``./`` (``tar -C dir -c .`` writes ``./bin/python``)."""
    name = raw.rstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name or "."


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


#: Regular members up to this size are read into memory and written by the writer threads; larger ones
#: are streamed to disk by the reading thread.
_SMALL_FILE = 4 << 20
#: Bytes read ahead of the writer threads at most (bounds memory whatever the archive).
_MAX_PENDING = 32 << 20
_WRITERS = 2
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _write_file(path: str, data: bytes, mode: int) -> FileStat:
    """Create ``path`` (never through a symlink, never over a file) holding ``data``: its stat once written."""
    fd = os.open(path, _CREATE, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return stat_key(os.fstat(fd))
    finally:
        os.close(fd)


class _Writers:
    """File contents written by a few threads, in the background of the reading thread: creating, writing
    and closing a file are system calls that release the GIL, so they overlap with decompression and tar
    header parsing (most of a venv's 10k+ members are small files). At most :data:`_MAX_PENDING` bytes wait."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="unpack")
        self._pending: deque[tuple[Future, str, int]] = deque()
        self._bytes = 0
        self._failed: tuple[str, BaseException] | None = None  # the first failed write: (member, error)
        #: The stat of each file written, by member name (the tree's manifest, without a second scan).
        self.stats: dict[str, FileStat] = {}

    def submit(self, name: str, path: str, data: bytes, mode: int) -> None:
        self._pending.append((self._pool.submit(_write_file, path, data, mode), name, len(data)))
        self._bytes += len(data)
        while self._bytes > _MAX_PENDING or len(self._pending) > 4096:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        future, name, size = self._pending.popleft()
        self._bytes -= size
        exc = future.exception()
        if exc is None:
            self.stats[name] = future.result()
        elif self._failed is None:
            self._failed = (name, exc)

    def drain(self) -> tuple[str, BaseException] | None:
        """Wait for every pending write; the first failure (member name, exception), if any."""
        while self._pending:
            self._wait_oldest()
        return self._failed

    def close(self) -> None:
        for future, _, _ in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


class _Extractor:
    """Extracts members one at a time below ``root`` (an existing empty directory).

    Directories this extractor made itself (``mkdir``, never replaced: a later member of the same name fails
    with "exists") are remembered, so a member whose parent is one of them needs no ``realpath``: only
    members under a directory reached some other way (through a symlink in the tree) are checked the slow way.
    """

    def __init__(self, archive: Path, root: Path, compressed: int, read_only: bool = False) -> None:
        """``archive`` names the source in errors; ``compressed`` is its size in bytes (the ratio check's base);
        ``read_only``: files are created without write permission (see :func:`unpack_stream`)."""
        self.archive = archive
        self.read_only = read_only
        self.root = os.path.realpath(root)
        self.links: list[tuple[str, str]] = []  # relative symlinks: (member name, lexical target)
        self.real_dirs: set[str] = {""}  # member names of directories created here, "" for the root
        self.taken: set[str] = set()  # names of non-directory members extracted so far
        self.symlinks: set[str] = set()  # ... of which symlinks
        self.writers = _Writers()
        #: Members and regular-file bytes so far, against ``limits`` (a tar member's data is exactly its size).
        self.members = 0
        self.unpacked = 0
        self.compressed = compressed

    def refuse(self, member: str | None, reason: str) -> UnsafeArchive:
        return UnsafeArchive(self.archive, member, reason)

    def target(self, name: str) -> str:
        """The path of member ``name``, after checking that no symlink leads it out of the tree."""
        path = os.path.join(self.root, *name.split("/"))
        if not _inside(os.path.realpath(os.path.dirname(path)), self.root):
            raise self.refuse(name, "parent directory leads outside the destination (through a symlink)")
        return path

    def parent(self, name: str) -> str:
        """The path of member ``name``, its parent directories created (see the class docstring)."""
        parent = name.rpartition("/")[0]
        if parent in self.real_dirs:
            return f"{self.root}/{name}"
        # Create missing parents one by one, remembering those made here; anything else that is already
        # there (a symlink in the tree) sends the member to the realpath check.
        parts = parent.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in self.real_dirs:
                continue
            if prefix in self.taken and prefix not in self.symlinks:
                raise self.refuse(name, f"parent {prefix!r} is a file member")
            if prefix in self.taken or os.path.lexists(os.path.join(self.root, *parts[:i])):
                return self._checked_parent(name)
            os.mkdir(os.path.join(self.root, *parts[:i]), 0o755)
            self.real_dirs.add(prefix)
        return os.path.join(self.root, *name.split("/"))

    def _checked_parent(self, name: str) -> str:
        path = self.target(name)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        return path

    def claim(self, name: str) -> None:
        if name in self.taken or name in self.real_dirs:
            raise self.refuse(name, "duplicate member")
        self.taken.add(name)

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.members += 1
        if member.isreg():
            self.unpacked += member.size
        problem = archive_problem(members=self.members, unpacked=self.unpacked, compressed=self.compressed)
        if problem:
            raise self.refuse(member.name, problem)
        name = _member_name(member.name)
        if name == "." and member.isdir():
            return
        problem = _name_problem(name)
        if problem:
            raise self.refuse(member.name, problem)
        if member.isdir():
            if name in self.real_dirs:
                return
            if name in self.taken:
                raise self.refuse(name, "directory member over an existing non-directory")
            path = self.parent(name)
            if os.path.lexists(path):
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise self.refuse(name, "directory member over an existing non-directory")
            else:
                os.mkdir(path, 0o755)
                if "/" not in name or name.rpartition("/")[0] in self.real_dirs:
                    self.real_dirs.add(name)
        elif member.isreg():
            self.claim(name)
            path = self.parent(name)
            mode = file_mode(member.mode) & (NOT_WRITABLE if self.read_only else -1)
            source = tar.extractfile(member)
            if member.size <= _SMALL_FILE:
                self.writers.submit(name, path, source.read() if source is not None else b"", mode)
                return
            try:
                fd = os.open(path, _CREATE, mode)
            except FileExistsError:
                raise self.refuse(name, "duplicate member") from None
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    shutil.copyfileobj(source, out, _CHUNK)
                out.flush()
                self.writers.stats[name] = stat_key(os.fstat(fd))
        elif member.issym():
            self.claim(name)
            self.symlinks.add(name)
            self.symlink(name, member.linkname)
        elif member.islnk():
            self.claim(name)
            self.hardlink(name, member.linkname)
        else:
            raise self.refuse(name, "not a file, directory or link")

    def finish(self) -> None:
        """Wait for the background writes; a failed one is raised here."""
        failed = self.writers.drain()
        if failed is not None:
            name, exc = failed
            if isinstance(exc, FileExistsError):
                raise self.refuse(name, "duplicate member")
            raise exc

    def symlink(self, name: str, link: str) -> None:
        if not link or "\x00" in link:
            raise self.refuse(name, "empty symlink target")
        if os.path.isabs(link):
            if not (_INTERPRETER_LINK.fullmatch(name) and _INTERPRETER_TARGET.fullmatch(posixpath.basename(link))):
                raise self.refuse(name, f"absolute symlink target {link!r} (allowed only for bin/python*)")
        else:
            lexical = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
            if lexical == ".." or lexical.startswith("../") or posixpath.isabs(lexical):
                raise self.refuse(name, f"symlink target {link!r} leads outside the destination")
            self.links.append((name, lexical))
        path = self.parent(name)
        try:
            os.symlink(link, path)
        except FileExistsError:
            raise self.refuse(name, "duplicate member") from None

    def hardlink(self, name: str, link: str) -> None:
        link = _member_name(link)
        problem = _name_problem(link)
        if problem:
            raise self.refuse(name, f"hard link target {link!r}: {problem}")
        self.finish()  # the target must be on disk
        source = self.target(link)
        if not (os.path.lexists(source) and stat.S_ISREG(os.lstat(source).st_mode)):
            raise self.refuse(name, f"hard link target {link!r} is not an earlier regular file")
        path = self.parent(name)
        try:
            os.link(source, path)
        except FileExistsError:
            raise self.refuse(name, "duplicate member") from None
        self.writers.stats[name] = stat_key(os.lstat(path))

    def check_links(self) -> None:
        """Every relative symlink's target path stays in the tree, through whatever the later members made."""
        for name, lexical in self.links:
            parts = lexical.split("/")
            for i in range(1, len(parts)):
                prefix = os.path.join(self.root, *parts[:i])
                if not _inside(os.path.realpath(prefix), self.root):
                    raise self.refuse(name, f"symlink target {lexical!r} leads outside the destination")


def unpack(archive: Path, dest: Path, *, read_only: bool = False) -> dict[str, FileStat]:
    """Extract the ``tar.zst`` at ``archive`` to ``dest`` (which must not exist, or be an empty directory).

    Streams: memory use does not grow with the archive. Raises :class:`UnsafeArchive` (leaving nothing
    behind) for a member that would escape ``dest``; see the module docstring. ``read_only`` and the answer: as
    :func:`unpack_stream`'s.
    """
    archive = Path(archive)
    with open(archive, "rb") as raw:
        return unpack_stream(raw, dest, source=archive, compressed=os.fstat(raw.fileno()).st_size,
                             read_only=read_only)


def unpack_stream(raw: IO[bytes] | io.RawIOBase, dest: Path, *, source: Path, compressed: int,
                  verify: Callable[[], None] | None = None, read_only: bool = False) -> dict[str, FileStat]:
    """Extract the ``tar.zst`` read from ``raw`` (a file, or bytes as they arrive) to ``dest``, atomically.

    ``dest`` must not exist, or be an empty directory; the members go to a staging directory next to it, renamed
    to ``dest`` at the end. ``source`` names the archive in errors; ``compressed`` is its size in bytes (the
    compression-ratio bound). ``verify`` is called after the last member is written and before the rename: a
    caller reading from the network checks there that what it read is the digest it asked for. Whatever fails
    (an unsafe member, a corrupt stream, ``verify``, a full disk, a broken download) leaves nothing behind.

    The answer is the stat of every regular file written, by relative path: what
    :func:`~builder_service.venv_template.record` would find in ``dest`` now, without a second scan. With
    ``read_only`` the files are created without write permission and the directories lose theirs before the
    rename (``dest`` itself just after): the sealed tree the node cache keeps, made in one pass.
    """
    dest = Path(os.path.abspath(dest))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UnsafeArchive(source, None, f"destination {dest} exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    collecting = gc.isenabled()
    try:
        os.chmod(tmp, 0o755)
        extractor = _Extractor(source, tmp, compressed, read_only)
        # tarfile keeps every member it read: thousands of objects that no cycle holds, which the collector
        # would scan again and again while they pile up.
        gc.disable()
        try:
            # zstandard only calls read() (or readinto()) on its source, which both kinds of raw have.
            with zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], raw), closefd=False) as zst:
                try:
                    # tarfile's stream mode reads in small records; a buffer in between makes those cheap.
                    with tarfile.open(fileobj=io.BufferedReader(zst, _CHUNK), mode="r|") as tar:
                        for member in tar:
                            extractor.extract(tar, member)
                except (tarfile.TarError, zstandard.ZstdError) as exc:
                    raise UnsafeArchive(source, None, f"corrupt archive: {exc}") from exc
            extractor.finish()
        finally:
            extractor.writers.close()
            if collecting:
                gc.enable()
        extractor.check_links()
        if verify is not None:
            verify()
        if read_only:
            seal(tmp, files=False, below=True)  # the files were made read-only
        os.rename(tmp, dest)
        if read_only:
            os.chmod(dest, stat.S_IMODE(os.lstat(dest).st_mode) & NOT_WRITABLE)
    except BaseException:
        remove_sealed(tmp)
        raise
    return extractor.writers.stats

