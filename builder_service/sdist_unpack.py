"""Unpack an sdist safely: no absolute paths, no ``..``, no links or writes escaping the tree, caps on its total
size, member count and compression ratio (``venvsmith.core.index.limits``)."""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from builder_service.errors import BuildOutputTooLarge, InvalidSdist
from venvsmith.core.index.limits import MAX_UNPACKED_BYTES, archive_problem

__all__ = ["extract_sdist"]


class _Unpacker:
    """Writes archive members under ``root``; refuses anything that could land or point outside it."""

    def __init__(self, sdist: Path, root: Path, max_bytes: int) -> None:
        self.sdist = sdist
        self.root = root
        self.budget = max_bytes
        self.max_bytes = max_bytes
        #: The archive's own size: what it unpacks to is held to ``limits.MAX_RATIO`` times it.
        self.compressed = sdist.stat().st_size
        self.members = 0
        self.written = 0

    def count(self, name: str, size: int = 0) -> None:
        """One more member (or ``size`` more bytes of the current one), within the caps of ``limits``."""
        if size:
            self.written += size
        else:
            self.members += 1
        problem = archive_problem(
            members=self.members, unpacked=self.written, compressed=self.compressed, max_unpacked=MAX_UNPACKED_BYTES
        )
        if problem:
            raise InvalidSdist(self.sdist, f"refused at member {name!r}: {problem}")

    def refuse(self, name: str, reason: str) -> InvalidSdist:
        return InvalidSdist(self.sdist, f"unsafe member {name!r}: {reason}")

    def parts(self, name: str) -> tuple[str, ...]:
        self.count(name)
        path = PurePosixPath(name)
        if "\0" in name or path.is_absolute():
            raise self.refuse(name, "absolute path")
        parts = tuple(part for part in path.parts if part not in ("", "."))
        if ".." in parts:
            raise self.refuse(name, "path escapes the archive")
        return parts

    def _place(self, name: str, parts: tuple[str, ...]) -> Path:
        """The path for ``parts`` after making its parents (never through a symlink) and clearing the leaf."""
        current = self.root
        for part in parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise self.refuse(name, f"goes through the symlink {'/'.join(current.relative_to(self.root).parts)}")
            if not current.exists():
                current.mkdir()
            elif not current.is_dir():
                raise self.refuse(name, "a parent is not a directory")
        target = current / parts[-1]
        if target.is_symlink() or target.is_file():
            target.unlink()  # a later member of the same name wins, as in tar
        elif target.exists():
            raise self.refuse(name, "would replace a directory")
        return target

    def directory(self, name: str) -> None:
        parts = self.parts(name)
        if parts:
            target = self.root.joinpath(*parts)
            if target.is_dir() and not target.is_symlink():
                return
            self._place(name, parts).mkdir()

    def file(self, name: str, stream: IO[bytes], executable: bool) -> None:
        parts = self.parts(name)
        if not parts:
            raise self.refuse(name, "not a file name")
        target = self._place(name, parts)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(target, flags, 0o755 if executable else 0o644), "wb") as out:
            while chunk := stream.read(1 << 20):
                self.budget -= len(chunk)
                self.count(name, len(chunk))
                if self.budget < 0:
                    raise BuildOutputTooLarge(f"unpacking {self.sdist.name}", self.max_bytes, "")
                out.write(chunk)

    def symlink(self, name: str, link: str) -> None:
        parts = self.parts(name)
        if not parts:
            raise self.refuse(name, "not a file name")
        resolved = os.path.normpath(os.path.join(*parts[:-1], link) if len(parts) > 1 else link)
        if os.path.isabs(link) or resolved == ".." or resolved.startswith("../"):
            raise self.refuse(name, f"symlink to {link!r} points outside the archive")
        os.symlink(link, self._place(name, parts))

    def hardlink(self, name: str, link: str) -> None:
        source = self.root.joinpath(*self.parts(link))
        if source.is_symlink() or not source.is_file():
            raise self.refuse(name, f"hard link to {link!r}, which is not a file unpacked before it")
        with open(source, "rb") as stream:
            self.file(name, stream, os.access(source, os.X_OK))

    def check_links(self) -> None:
        """Refuse symlinks that escape ``root`` once resolved against the whole tree (chains of links)."""
        real_root = os.path.realpath(self.root)
        for directory, dirnames, filenames in os.walk(self.root):
            for entry in (*dirnames, *filenames):
                path = os.path.join(directory, entry)
                if os.path.islink(path):
                    real = os.path.realpath(path)
                    if os.path.commonpath([real_root, real]) != real_root:
                        name = os.path.relpath(path, self.root)
                        raise self.refuse(name, f"symlink resolves outside the archive ({os.readlink(path)!r})")


def _unpack_tar(unpacker: _Unpacker, archive: tarfile.TarFile) -> None:
    for member in archive:
        if member.isdir():
            unpacker.directory(member.name)
        elif member.isreg():
            stream = archive.extractfile(member)
            assert stream is not None
            unpacker.file(member.name, stream, bool(member.mode & 0o111))
        elif member.issym():
            unpacker.symlink(member.name, member.linkname)
        elif member.islnk():
            unpacker.hardlink(member.name, member.linkname)
        else:
            raise unpacker.refuse(member.name, "device, fifo or other special file")


def _unpack_zip(unpacker: _Unpacker, archive: zipfile.ZipFile) -> None:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if (mode & 0o170000) == 0o120000:
            raise unpacker.refuse(info.filename, "symlinks in zip sdists are not supported")
        if info.is_dir():
            unpacker.directory(info.filename)
        else:
            with archive.open(info) as stream:
                unpacker.file(info.filename, stream, bool(mode & 0o111))


def extract_sdist(sdist: Path, dest: Path, *, max_bytes: int) -> Path:
    """Unpack ``sdist`` (tar, any compression, or zip; told by content) into the new directory ``dest``.

    Returns the source tree (the archive's single top-level directory, else ``dest``).

    :raises InvalidSdist: not an archive, or a member is absolute, escapes via ``..`` or a link, or is special.
    :raises BuildOutputTooLarge: the members add up to more than ``max_bytes``.
    """
    dest.mkdir(parents=True)
    unpacker = _Unpacker(sdist, dest, max_bytes)
    try:
        with open(sdist, "rb") as file:
            is_zip = file.read(4) == b"PK\x03\x04"
        if is_zip:
            with zipfile.ZipFile(sdist) as archive:
                _unpack_zip(unpacker, archive)
        else:
            with tarfile.open(sdist, "r:*") as archive:
                _unpack_tar(unpacker, archive)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InvalidSdist(sdist, f"not a readable tar or zip archive: {exc}") from exc
    unpacker.check_links()
    entries = list(dest.iterdir())
    source = entries[0] if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() else dest
    if not (source / "pyproject.toml").is_file() and not (source / "setup.py").is_file():
        raise InvalidSdist(sdist, "has neither pyproject.toml nor setup.py")
    return source


# ------------------------------------------------------------------------------------------------ metadata
