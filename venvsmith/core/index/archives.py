"""Read core metadata out of distribution archives: a wheel's ``.dist-info/METADATA``, an sdist's PKG-INFO.

Works on any seekable binary file object, so a local file, a downloaded temp file and the lazy
range-request file of :mod:`.ranges` all go through the same code.
"""

from __future__ import annotations

import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Protocol

from packaging.utils import canonicalize_name

from ..distfile import DistFile
from ..errors import InvalidDistribution
from .limits import MAX_METADATA_BYTES


class SeekableReader(Protocol):
    """What the zip readers need of a file: a local or temporary file, or a range-request :class:`RangeFile`."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, n: int = -1, /) -> bytes: ...

    def tell(self) -> int: ...


#: Errors that mean "this archive is damaged", whichever reader hit them.

ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, NotImplementedError, OSError)


def wheel_metadata(
    fileobj: SeekableReader, file: DistFile, before_read: Callable[[zipfile.ZipInfo], None] | None = None
) -> bytes:
    """``METADATA`` of the wheel's own ``<name>-<version>.dist-info`` directory.

    The zip's central directory is scanned directly for the ``.dist-info`` entries and only the METADATA
    member is read (:func:`_direct_metadata`); an archive the direct reader does not handle plainly (a
    comment, prepended data, several disks, encryption, a method other than stored or deflate, a bad CRC ...)
    goes through :mod:`zipfile` instead, which either reads it or reports the damage.

    :param before_read: called with the member's :class:`~zipfile.ZipInfo` before it is read (lets a
        range-request file fetch the member's bytes in one request).
    """
    def checked(info: zipfile.ZipInfo) -> None:
        if max(info.file_size, info.compress_size) > MAX_METADATA_BYTES:
            raise InvalidDistribution(file.filename, f"the wheel's METADATA is larger than {MAX_METADATA_BYTES} bytes")
        if before_read is not None:
            before_read(info)

    try:
        data = _direct_metadata(fileobj, file, checked)
        if data is not None:
            return data
        with zipfile.ZipFile(fileobj) as zf:
            info = zf.getinfo(f"{_dist_info_dir(_dist_info_dirs(zf.namelist()), file)}/METADATA")
            if info.flag_bits & 0x1:  # zipfile would ask for a password (a RuntimeError)
                raise InvalidDistribution(file.filename, "the wheel's METADATA is encrypted")
            checked(info)
            with zf.open(info) as member:
                # A bounded read: zipfile's read() of a whole member inflates all of its stream first, even past
                # the declared size; read(n) inflates at most n bytes.
                return member.read(info.file_size)
    except KeyError:
        raise InvalidDistribution(file.filename, "the wheel's .dist-info has no METADATA") from None
    except ARCHIVE_ERRORS as exc:
        raise InvalidDistribution(file.filename, f"unreadable wheel: {exc}") from None


def _dist_info_dirs(names: Iterable[str]) -> set[str]:
    """Top-level ``*.dist-info`` directories among member names."""
    return {n.split("/", 1)[0] for n in names if "/" in n and n.split("/", 1)[0].endswith(".dist-info")}


def _dist_info_dir(found: set[str], file: DistFile) -> str:
    dirs = sorted(found)
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


# --------------------------------------------------------------------------------- direct zip reading
# Record layouts (APPNOTE.TXT 4.3): the end of central directory record, the ZIP64 end of central directory
# locator and record, a central directory file header and a local file header.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_CENTRAL_LENGTHS = struct.Struct("<3H")  # name, extra and comment lengths, at offset 28
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_LOCAL_LENGTHS = struct.Struct("<2H")  # name and extra lengths, at offset 26
_DIST_INFO = b".dist-info"
#: General purpose flags the direct reader leaves to zipfile: encrypted, patched data, strong encryption.
_UNUSUAL_FLAGS = 0x1 | 0x20 | 0x40
_UTF8_FLAG = 0x800
#: Newest "version needed to extract" that zipfile reads (zipfile.MAX_EXTRACT_VERSION).
_MAX_EXTRACT_VERSION = 63


def _direct_metadata(
    fileobj: SeekableReader, file: DistFile, before_read: Callable[[zipfile.ZipInfo], None] | None
) -> bytes | None:
    """The own METADATA read straight from the central directory's bytes, or ``None`` when the archive is
    anything but a plain zip (then zipfile reads it). Selection and errors are those of the zipfile path."""
    size = fileobj.seek(0, 2)
    if size < _EOCD.size:
        return None
    fileobj.seek(size - _EOCD.size)
    end = fileobj.read(_EOCD.size)
    if len(end) != _EOCD.size:
        return None
    signature, disk, cd_disk, _, count, cd_size, cd_offset, comment = _EOCD.unpack(end)
    if signature != _EOCD_SIG or comment or disk or cd_disk:
        return None  # a comment (the record is elsewhere) or several disks
    eocd_at = size - _EOCD.size
    if eocd_at >= _ZIP64_LOCATOR.size:
        fileobj.seek(eocd_at - _ZIP64_LOCATOR.size)
        locator = fileobj.read(_ZIP64_LOCATOR.size)
        if len(locator) == _ZIP64_LOCATOR.size and locator[:4] == _ZIP64_LOCATOR_SIG:
            _, z64_disk, z64_offset, disks = _ZIP64_LOCATOR.unpack(locator)
            z64_at = eocd_at - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size
            if z64_disk or disks > 1 or z64_at < 0 or z64_offset != z64_at:
                return None
            fileobj.seek(z64_at)
            record = fileobj.read(_ZIP64_EOCD.size)
            if len(record) != _ZIP64_EOCD.size:
                return None
            sig, record_size, _, _, disk, cd_disk, _, count, cd_size, cd_offset = _ZIP64_EOCD.unpack(record)
            if sig != _ZIP64_EOCD_SIG or record_size != _ZIP64_EOCD.size - 12 or disk or cd_disk:
                return None
            eocd_at = z64_at
    if cd_offset + cd_size != eocd_at:
        return None  # data before the archive (zipfile shifts every offset), or a damaged directory
    fileobj.seek(cd_offset)
    directory = fileobj.read(cd_size)
    if len(directory) != cd_size:
        return None
    found = _scan_directory(directory, count)
    if found is None:
        return None
    dirs, metadata_records = found
    target = f"{_dist_info_dir(dirs, file)}/METADATA"
    at = metadata_records.get(target)
    if at is None:
        raise KeyError(target)
    return _read_member(fileobj, directory, at, target, before_read)


def _scan_directory(directory: bytes, count: int) -> tuple[set[str], dict[str, int]] | None:
    """(top-level ``.dist-info`` directories, offset in ``directory`` of each ``<dir>/METADATA`` record,
    the last of equal names as zipfile's lookup has it) from every record's name; ``None`` if malformed."""
    dirs: set[str] = set()
    metadata: dict[str, int] = {}
    lengths = _CENTRAL_LENGTHS.unpack_from
    is_record = directory.startswith
    find = directory.find
    pos = 0
    records = 0
    limit = len(directory) - _CENTRAL.size
    while pos <= limit:
        if not is_record(_CENTRAL_SIG, pos):
            return None
        name_length, extra_length, comment_length = lengths(directory, pos + 28)
        start = pos + _CENTRAL.size
        end = start + name_length
        if find(_DIST_INFO, start, end) >= 0:
            name = directory[start:end]
            if b"\x00" in name:  # zipfile cuts a name at its first NUL
                name = name[: name.index(b"\x00")]
            top, slash, rest = name.partition(b"/")
            if slash and top.endswith(_DIST_INFO):
                flags = directory[pos + 8] | directory[pos + 9] << 8
                try:
                    text = name.decode("utf-8" if flags & _UTF8_FLAG else "cp437")
                except UnicodeDecodeError:
                    return None
                dirs.add(text.split("/", 1)[0])
                if rest == b"METADATA":
                    metadata[text] = pos
        pos = end + extra_length + comment_length
        records += 1
    if pos != len(directory) or (records != count and count != 0xFFFF):
        return None
    return dirs, metadata


def _read_member(
    fileobj: SeekableReader,
    directory: bytes,
    at: int,
    name: str,
    before_read: Callable[[zipfile.ZipInfo], None] | None,
) -> bytes | None:
    (_, _, _, extract_version, _, flags, method, _, _, crc, compressed, size, name_length, extra_length, _, _, _, _,
     offset) = _CENTRAL.unpack_from(directory, at)
    if (
        flags & _UNUSUAL_FLAGS
        or method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        or extract_version > _MAX_EXTRACT_VERSION
    ):
        return None
    start = at + _CENTRAL.size
    raw_name = directory[start : start + name_length]
    extra = directory[start + name_length : start + name_length + extra_length]
    if 0xFFFFFFFF in (compressed, size, offset):
        sizes = _zip64_extra(extra, size == 0xFFFFFFFF, compressed == 0xFFFFFFFF, offset == 0xFFFFFFFF)
        if sizes is None:
            return None
        size, compressed, offset = (
            sizes[0] if sizes[0] is not None else size,
            sizes[1] if sizes[1] is not None else compressed,
            sizes[2] if sizes[2] is not None else offset,
        )
    if before_read is not None:  # always set by wheel_metadata: it checks the declared sizes
        info = zipfile.ZipInfo(name)
        info.orig_filename = name
        info.header_offset = offset
        info.compress_size = compressed
        info.file_size = size
        info.extra = extra
        info.CRC = crc
        info.compress_type = method
        info.flag_bits = flags
        before_read(info)
    fileobj.seek(offset)
    header = fileobj.read(_LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIG:
        return None
    local_name_length, local_extra_length = _LOCAL_LENGTHS.unpack_from(header, 26)
    local_name = fileobj.read(local_name_length)
    if local_name != raw_name:
        return None
    if local_extra_length:
        fileobj.seek(local_extra_length, 1)
    data = fileobj.read(compressed)
    if len(data) != compressed:
        return None
    if method == zipfile.ZIP_DEFLATED:
        try:
            inflater = zlib.decompressobj(-15)
            # Never more than the declared size (+1 to see a longer stream): a member that lies about its size
            # cannot inflate past it (a zip bomb behind a small declared METADATA).
            data = inflater.decompress(data, size + 1)
            if inflater.unconsumed_tail or len(data) > size:
                return None  # longer than declared: zipfile then reports the damage
            data += inflater.flush()
        except zlib.error:
            return None
    if len(data) != size or zlib.crc32(data) != crc:
        return None
    return data


def _zip64_extra(
    extra: bytes, want_size: bool, want_compressed: bool, want_offset: bool
) -> tuple[int | None, int | None, int | None] | None:
    """(size, compressed size, header offset) from a ZIP64 extra field, each when asked for."""
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if kind == 0x0001:
            values: list[int | None] = []
            cursor = 0
            for wanted in (want_size, want_compressed, want_offset):
                if wanted:
                    if cursor + 8 > len(body):
                        return None
                    values.append(struct.unpack_from("<Q", body, cursor)[0])
                    cursor += 8
                else:
                    values.append(None)
            return values[0], values[1], values[2]
        pos += 4 + length
    return None


def sdist_pkg_info(fileobj: IO[bytes], file: DistFile) -> bytes:
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


def archive_metadata(fileobj: IO[bytes], file: DistFile) -> bytes:
    """Raw core metadata of a whole archive: a wheel's METADATA or an sdist's PKG-INFO."""
    return wheel_metadata(fileobj, file) if file.is_wheel else sdist_pkg_info(fileobj, file)
