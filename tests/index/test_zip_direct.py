"""The direct reader of a wheel's METADATA (central directory scan) against zipfile, member for member."""

from __future__ import annotations

import io
import warnings
import zipfile
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import InvalidDistribution
from venvsmith.core.index import archives
from venvsmith.core.index.archives import wheel_metadata
from venvsmith.core.index.ranges import RangeFile


def dist(filename: str) -> DistFile:
    file = DistFile.from_listing(filename, f"https://h/{filename}", "https://h/simple/")
    assert file is not None
    return file


FILES = [dist("foo-1.0-py3-none-any.whl"), dist("foo_bar-2.0-py3-none-any.whl")]

NAMES = [
    "foo-1.0.dist-info/METADATA",
    "foo-1.0.dist-info/RECORD",
    "foo-1.0.dist-info/WHEEL",
    "Foo-1.0.dist-info/METADATA",
    "foo_bar-2.0.dist-info/METADATA",
    "Foo.Bar-2.0.dist-info/METADATA",
    "vendored-3.1.dist-info/METADATA",
    "vendored-3.1.dist-info/RECORD",
    "misnamed.dist-info/METADATA",
    "foo-1.0.dist-info/sub/METADATA",
    "foo-1.0.dist-info/METADATA/x",
    "foo-1.0.dist-info",
    "foo-1.0.data/purelib/foo-1.0.dist-info/METADATA",
    "x/foo-1.0.dist-info/METADATA",
    "ünïcode-1.0.dist-info/METADATA",
    "foo/__init__.py",
    "foo/",
    "foo/ünï.py",
    "METADATA",
]

member = st.tuples(
    st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=20).filter(lambda n: "\x00" not in n)),
    st.binary(max_size=3000) | st.just(b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n" * 40),
    st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    st.booleans(),  # force_zip64 for this member (ZIP64 extra field in its local header)
)


@contextmanager
def _limits(zip64_records: bool, zip64_fields: bool):
    """Make zipfile write ZIP64 end records (any member count) and/or ZIP64 extra fields with 0xFFFFFFFF in
    the central directory (any size or offset), as it does for huge archives."""
    with (
        mock.patch.object(zipfile, "ZIP_FILECOUNT_LIMIT", 1 if zip64_records else zipfile.ZIP_FILECOUNT_LIMIT),
        mock.patch.object(zipfile, "ZIP64_LIMIT", 16 if zip64_fields else zipfile.ZIP64_LIMIT),
    ):
        yield


def build_zip(members, zip64_records: bool = False, zip64_fields: bool = False, comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), _limits(zip64_records, zip64_fields):
        warnings.simplefilter("ignore")  # duplicate names are part of the test
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content, method, force in members:
                info = zipfile.ZipInfo(name, (2020, 1, 2, 3, 4, 6))
                info.compress_type = method
                info.file_size = len(content)  # zipfile decides on ZIP64 fields from it
                with zf.open(info, "w", force_zip64=force or zip64_fields) as out:
                    out.write(content)
            zf.comment = comment
    return buf.getvalue()


def by_zipfile(data: bytes, file: DistFile) -> bytes | str:
    """What the zipfile reader alone says: the METADATA bytes or the error message."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            return zf.read(f"{archives._dist_info_dir(archives._dist_info_dirs(names), file)}/METADATA")
    except KeyError:
        return str(InvalidDistribution(file.filename, "the wheel's .dist-info has no METADATA"))
    except InvalidDistribution as exc:
        return str(exc)


def by_wheel_metadata(data: bytes, file: DistFile) -> bytes | str:
    try:
        return wheel_metadata(io.BytesIO(data), file)
    except InvalidDistribution as exc:
        return str(exc)


def direct(data: bytes, file: DistFile) -> bytes | None | str:
    """The direct reader alone: bytes, ``None`` (it declined), or the error message."""
    try:
        return archives._direct_metadata(io.BytesIO(data), file, None)
    except KeyError:
        return str(InvalidDistribution(file.filename, "the wheel's .dist-info has no METADATA"))
    except InvalidDistribution as exc:
        return str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=st.lists(member, max_size=12),
    zip64_records=st.booleans(),
    zip64_fields=st.booleans(),
    file=st.sampled_from(FILES),
)
def test_direct_reader_agrees_with_zipfile(members, zip64_records, zip64_fields, file):
    data = build_zip(members, zip64_records, zip64_fields)
    expected = by_zipfile(data, file)
    got = direct(data, file)
    assert got is not None, "a plain zip must not need the zipfile fallback"
    event("metadata read" if isinstance(expected, bytes) else expected.partition(": ")[2][:30])
    if isinstance(expected, str):
        assert isinstance(got, str) and _message(got) == _message(expected)
    else:
        assert got == expected
    assert _message(by_wheel_metadata(data, file)) == _message(expected)


def _message(value):
    return value if isinstance(value, bytes) else str(value)


def test_zip64_with_more_members_than_the_classic_record_counts():
    metadata = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(0x10000 + 5):
            zf.writestr(f"foo/m{i}.py", b"")
        zf.writestr("foo-1.0.dist-info/METADATA", metadata, compress_type=zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    assert data.rfind(b"PK\x06\x06") > 0  # zipfile wrote the ZIP64 end record
    assert archives._direct_metadata(io.BytesIO(data), FILES[0], None) == metadata


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_before_read_gets_the_member_extent_and_a_range_file_fetches_it_once(method):
    metadata = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n" + bytes(range(256)) * 300
    members = [(f"foo/m{i}.bin", bytes([i]) * 20_000, zipfile.ZIP_STORED, False) for i in range(20)]
    members.insert(7, ("foo-1.0.dist-info/METADATA", metadata, method, True))
    data = build_zip(members)
    fetches: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        fetches.append((start, end))
        return data[start:end]

    tail = 4096
    reader = RangeFile(len(data), fetch, (len(data) - tail, data[-tail:]), min_chunk=1024)
    seen = []

    def prefetch(info: zipfile.ZipInfo) -> None:
        seen.append(info)
        end = info.header_offset + 30 + len(info.orig_filename.encode()) + len(info.extra)
        reader.ensure(info.header_offset, end + info.compress_size + 1024)

    assert wheel_metadata(reader, FILES[0], before_read=prefetch) == metadata
    (info,) = seen
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        real = zf.getinfo("foo-1.0.dist-info/METADATA")
    assert (info.header_offset, info.compress_size, info.file_size) == (
        real.header_offset,
        real.compress_size,
        real.file_size,
    )
    assert len(fetches) == 1  # the directory was in the tail; the member came in one request


def _with_cp437_name(data: bytes, ascii_name: bytes, raw: bytes) -> bytes:
    assert len(ascii_name) == len(raw) and data.count(ascii_name) == 2  # local header and central directory
    return data.replace(ascii_name, raw)


def test_names_without_the_utf8_flag_are_cp437_as_zipfile_reads_them():
    members = [
        ("foo-1.0.dist-info/METADATA", b"own", zipfile.ZIP_DEFLATED, False),
        ("zzz-1.0.dist-info/RECORD", b"", zipfile.ZIP_STORED, False),
    ]
    data = _with_cp437_name(build_zip(members), b"zzz-1.0.dist-info", b"\x80\x81\x82-1.0.dist-info")
    expected = by_zipfile(data, FILES[1])  # not foo_bar's: both directories are candidates
    assert isinstance(expected, str) and "several .dist-info" in expected and "Çüé-1.0.dist-info" in expected
    assert direct(data, FILES[1]) == expected
    assert direct(data, FILES[0]) == by_zipfile(data, FILES[0]) == b"own"


@pytest.mark.parametrize(
    "damage",
    ["comment", "prefix", "bad crc", "bzip2", "encrypted", "truncated directory", "not a zip", "empty"],
)
def test_unusual_archives_fall_back_to_zipfile_and_say_the_same(damage):
    metadata = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n"
    members = [
        ("foo/__init__.py", b"x = 1\n", zipfile.ZIP_DEFLATED, False),
        ("foo-1.0.dist-info/METADATA", metadata, zipfile.ZIP_STORED, False),
    ]
    data = build_zip(members, comment=b"a comment" if damage == "comment" else b"")
    if damage == "prefix":
        data = b"#!/bin/sh\nexit 0\n" + data  # zipfile reads through prepended data
    elif damage == "bad crc":
        data = data.replace(b"Name: foo", b"Name: fox")
    elif damage == "bzip2":
        members[1] = ("foo-1.0.dist-info/METADATA", metadata, zipfile.ZIP_BZIP2, False)
        data = build_zip(members)
    elif damage == "encrypted":
        at = data.rfind(b"PK\x01\x02")  # the METADATA record: set the "encrypted" flag in the directory
        data = data[: at + 8] + bytes([data[at + 8] | 1]) + data[at + 9 :]
    elif damage == "truncated directory":
        at = data.rfind(b"PK\x01\x02")
        data = data[: at + 10] + data[-22:]
    elif damage == "not a zip":
        data = b"PK not really"
    elif damage == "empty":
        data = b""
    assert direct(data, FILES[0]) is None
    expected = by_zipfile_or_error(data, FILES[0])
    got = by_wheel_metadata(data, FILES[0])
    if isinstance(expected, bytes):
        assert got == expected == metadata
    elif damage == "encrypted":  # zipfile alone asks for a password
        assert "password required" in expected and got.endswith("the wheel's METADATA is encrypted")
    else:
        assert isinstance(got, str) and expected in got


def by_zipfile_or_error(data: bytes, file: DistFile) -> bytes | str:
    try:
        return by_zipfile(data, file)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        return str(exc)


def test_the_direct_reader_scans_a_big_directory_without_zipinfo_objects():
    members = [(f"pkg/mod{i}.py", b"", zipfile.ZIP_STORED, False) for i in range(3000)]
    members.append(("foo-1.0.dist-info/METADATA", b"Name: foo", zipfile.ZIP_DEFLATED, False))
    data = build_zip(members)
    with mock.patch.object(zipfile, "ZipInfo", side_effect=AssertionError("zipfile was used")):
        assert archives._direct_metadata(io.BytesIO(data), FILES[0], None) == b"Name: foo"


def _bomb_wheel(declared: int, inflated: int) -> bytes:
    """A wheel whose METADATA declares ``declared`` bytes but inflates to ``inflated`` (headers patched)."""
    import struct
    import zlib

    payload = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n" + b"x" * (inflated - 46)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("foo-1.0.dist-info/METADATA", payload)
        zf.writestr("foo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
    data = bytearray(buf.getvalue())
    crc = zlib.crc32(payload[:declared])
    # Local header: crc at 14, sizes at 18 (compressed) and 22 (uncompressed); central record: crc at 16,
    # uncompressed size at 24. Patch the uncompressed size (and crc) of the first member in both.
    assert data[:4] == b"PK\x03\x04"
    struct.pack_into("<I", data, 14, crc)
    struct.pack_into("<I", data, 22, declared)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, declared)
    return bytes(data)


def test_a_member_that_inflates_past_its_declared_size_is_never_inflated_whole():
    import tracemalloc

    wheel = _bomb_wheel(declared=1000, inflated=64 << 20)
    assert len(wheel) < 1 << 20  # a small download ...
    tracemalloc.start()
    try:
        try:  # ... whose METADATA is damaged, or read as the 1000 bytes it declares: never 64 MiB of it
            assert len(wheel_metadata(io.BytesIO(wheel), FILES[0])) <= 1000
        except InvalidDistribution:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"inflated {peak} bytes for a member that declares 1000"


def test_a_metadata_declared_larger_than_the_cap_is_refused_before_it_is_read():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("foo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\n" + b"x" * (archives.MAX_METADATA_BYTES + 1))
    reads = []
    with pytest.raises(InvalidDistribution, match="larger than"):
        wheel_metadata(io.BytesIO(buf.getvalue()), FILES[0], before_read=reads.append)
    assert reads == []
