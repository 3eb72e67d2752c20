"""Read core metadata out of distribution archives: a wheel's ``.dist-info/METADATA``, an sdist's PKG-INFO.

Works on any seekable binary file object, so a local file, a downloaded temp file and the lazy
range-request file of :mod:`.ranges` all go through the same code.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO

from packaging.utils import canonicalize_name

from ..distfile import DistFile
from ..errors import InvalidDistribution

#: Errors that mean "this archive is damaged", whichever reader hit them.
ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, NotImplementedError, OSError)


def wheel_metadata(
    fileobj: BinaryIO, file: DistFile, before_read: Callable[[zipfile.ZipInfo], None] | None = None
) -> bytes:
    """``METADATA`` of the wheel's own ``<name>-<version>.dist-info`` directory.

    :param before_read: called with the member's :class:`~zipfile.ZipInfo` before it is read (lets a
        range-request file fetch the member's bytes in one request).
    """
    try:
        with zipfile.ZipFile(fileobj) as zf:
            info = zf.getinfo(f"{_dist_info_dir(zf.namelist(), file)}/METADATA")
            if before_read is not None:
                before_read(info)
            return zf.read(info)
    except KeyError:
        raise InvalidDistribution(file.filename, "the wheel's .dist-info has no METADATA") from None
    except ARCHIVE_ERRORS as exc:
        raise InvalidDistribution(file.filename, f"unreadable wheel: {exc}") from None


def _dist_info_dir(names: list[str], file: DistFile) -> str:
    dirs = sorted(
        {n.split("/", 1)[0] for n in names if "/" in n and n.split("/", 1)[0].endswith(".dist-info")}
    )
    # "<escaped name>-<version>.dist-info": neither part contains "-" (PEP 427).
    own = [d for d in dirs if canonicalize_name(d[: -len(".dist-info")].rpartition("-")[0]) == file.name]
    if len(own) == 1:
        return own[0]
    if not own and len(dirs) == 1:
        return dirs[0]  # a misnamed directory; the name check on METADATA reports the mismatch
    if not dirs:
        raise InvalidDistribution(file.filename, "the wheel has no .dist-info directory")
    raise InvalidDistribution(
        file.filename, f"the wheel has several .dist-info directories: {', '.join(dirs)}"
    )


def sdist_pkg_info(fileobj: BinaryIO, file: DistFile) -> bytes:
    """The top-level ``<dir>/PKG-INFO`` of an sdist (``.tar.gz`` or ``.zip``)."""
    try:
        if file.filename.lower().endswith(".zip"):
            with zipfile.ZipFile(fileobj) as zf:
                for name in zf.namelist():
                    if _is_top_pkg_info(name):
                        return zf.read(name)
        else:
            with tarfile.open(fileobj=fileobj, mode="r:*") as tf:
                for member in tf:
                    if member.isfile() and _is_top_pkg_info(member.name):
                        extracted = tf.extractfile(member)
                        if extracted is not None:
                            return extracted.read()
    except ARCHIVE_ERRORS as exc:
        raise InvalidDistribution(file.filename, f"unreadable sdist: {exc}") from None
    raise InvalidDistribution(file.filename, "the sdist has no top-level PKG-INFO")


def _is_top_pkg_info(name: str) -> bool:
    parts = name.removeprefix("./").split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"


def archive_metadata(fileobj: BinaryIO, file: DistFile) -> bytes:
    """Raw core metadata of a whole archive: a wheel's METADATA or an sdist's PKG-INFO."""
    return wheel_metadata(fileobj, file) if file.is_wheel else sdist_pkg_info(fileobj, file)
