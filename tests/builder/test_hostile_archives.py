"""Hostile archives and downloads: compression bombs in wheels, sdists and venv archives; endless downloads.

Each is refused before (or while) writing, and the disk space its target took stays within the cap.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from builder_service.archive import unpack
from builder_service.errors import InvalidSdist, UnsafeArchive, UnsafeWheel
from builder_service.fetch import Fetcher
from builder_service.install import check_wheel, install_wheel, install_wheels
from builder_service.sdist_unpack import extract_sdist
from builder_service.store.filesystem import FilesystemStore
from builder_service.venv import create_venv
from tests.fixtures.hostile import endless, hostile_servers
from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index.auth import Auth
from venvsmith.core.index.http import HttpClient
from venvsmith.core.index.limits import MAX_MEMBERS, MAX_UNPACKED_BYTES, archive_problem, unpacked_cap
from venvsmith.core.pin import Pin

MiB = 1 << 20
ZEROS = bytes(MiB)


def _written(root: Path) -> int:
    """Bytes of every file under ``root`` (what an unpacker wrote there)."""
    return sum(entry.stat().st_size for entry in root.rglob("*") if entry.is_file() and not entry.is_symlink())


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def bomb_wheel(out: Path, zeros_mib: int, *, lie_to: int | None = None) -> Path:
    """A valid wheel ``bomb-1.0`` whose ``bomb/zeros.bin`` is ``zeros_mib`` MiB of zeros (about 1000x smaller
    deflated); with ``lie_to`` its headers declare that many uncompressed bytes instead."""
    path = out / "bomb-1.0-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("bomb/__init__.py", b""),
            ("bomb-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n"),
            ("bomb-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        ):
            zf.writestr(name, data)
            records.append(f"{name},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}")
        sha = hashlib.sha256()
        with zf.open("bomb/zeros.bin", "w", force_zip64=True) as member:
            for _ in range(zeros_mib):
                member.write(ZEROS)
                sha.update(ZEROS)
        records.append(f"bomb/zeros.bin,sha256={_b64(sha.digest())},{zeros_mib * MiB}")
        records.append("bomb-1.0.dist-info/RECORD,,")
        zf.writestr("bomb-1.0.dist-info/RECORD", "\n".join(records) + "\n")
    if lie_to is not None:
        _lie_about_size(path, "bomb/zeros.bin", zeros_mib * MiB, lie_to)
    return path


def _lie_about_size(path: Path, member: str, real: int, declared: int) -> None:
    """Rewrite the uncompressed size of ``member`` in its local header and central directory entry."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature + b"")
        while at != -1:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                field = int.from_bytes(data[at + size_at : at + size_at + 4], "little")
                if field == 0xFFFFFFFF:  # zip64: the size is in the extra field
                    extra = data.find(real.to_bytes(8, "little"), name_at)
                    data[extra : extra + 8] = declared.to_bytes(8, "little")
                else:
                    data[at + size_at : at + size_at + 4] = declared.to_bytes(4, "little")
                break
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def gib_wheel(tmp_path_factory) -> Path:
    """1 GiB of zeros in a wheel of about 1 MB."""
    return bomb_wheel(tmp_path_factory.mktemp("gib"), 1024)


@pytest.fixture
def venv(tmp_path: Path):
    return create_venv(Path(sys.executable), tmp_path / "venv")


def test_a_wheel_declaring_1_gib_from_1_mb_is_refused_before_writing(gib_wheel, venv):
    assert gib_wheel.stat().st_size < 2 * MiB
    with pytest.raises(UnsafeWheel, match="compression bomb") as info:
        check_wheel(gib_wheel)
    assert info.value.status == "FAILED_PRECONDITION"
    before = _written(venv.root)
    with pytest.raises(UnsafeWheel, match="compression bomb"):
        install_wheels([gib_wheel], venv)
    assert _written(venv.root) == before


def test_writing_stops_at_the_cap_even_without_the_check(gib_wheel, venv):
    before = _written(venv.root)
    with pytest.raises(UnsafeWheel, match="writes more than"):
        install_wheel(gib_wheel, venv, check=False)
    assert _written(venv.root) - before <= unpacked_cap(gib_wheel.stat().st_size) + 2 * MiB


def test_a_member_inflating_past_its_declared_size_is_refused(tmp_path, venv):
    wheel = bomb_wheel(tmp_path, 64, lie_to=1000)
    assert zipfile.ZipFile(wheel).getinfo("bomb/zeros.bin").file_size == 1000
    before = _written(venv.root)
    with pytest.raises(UnsafeWheel):
        install_wheels([wheel], venv)
    assert _written(venv.root) == before


def test_a_small_highly_compressible_wheel_still_installs(tmp_path, venv):
    wheel = bomb_wheel(tmp_path, 8)  # 8 MiB of zeros: a ratio over 200, but under the floor where it matters
    install_wheels([wheel], venv)
    assert (venv.root / venv.purelib / "bomb" / "zeros.bin").stat().st_size == 8 * MiB


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_an_sdist_tar_bomb_is_refused_within_the_cap(tmp_path):
    sdist = tmp_path / "bomb-1.0.tar.gz"
    size = 256 * MiB
    with tarfile.open(sdist, "w:gz") as tar:
        setup = b"from setuptools import setup\nsetup()\n"
        info = tarfile.TarInfo("bomb-1.0/setup.py")
        info.size = len(setup)
        tar.addfile(info, io.BytesIO(setup))
        info = tarfile.TarInfo("bomb-1.0/zeros.bin")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size)))
    dest = tmp_path / "src"
    with pytest.raises(InvalidSdist, match="compression bomb"):
        extract_sdist(sdist, dest, max_bytes=2 << 30)
    assert _written(dest) <= unpacked_cap(sdist.stat().st_size) + MiB


def test_a_venv_archive_bomb_is_refused_before_writing(tmp_path):
    archive = tmp_path / "venv.tar.zst"
    size = 128 * MiB
    with open(archive, "wb") as raw, zstandard.ZstdCompressor().stream_writer(raw) as zst:
        with tarfile.open(fileobj=zst, mode="w|") as tar:
            info = tarfile.TarInfo("zeros.bin")
            info.size = size
            tar.addfile(info, io.BufferedReader(_Zeros(size)))
    with pytest.raises(UnsafeArchive, match="compression bomb"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_archive_caps_on_members_and_total():
    assert archive_problem(members=MAX_MEMBERS + 1, unpacked=0, compressed=1) == f"more than {MAX_MEMBERS} members"
    too_big = MAX_UNPACKED_BYTES + 1
    assert "unpacks to more than" in (archive_problem(members=1, unpacked=too_big, compressed=too_big) or "")
    assert archive_problem(members=10, unpacked=100 * MiB, compressed=10 * MiB) is None


def test_a_download_longer_than_the_pins_size_is_cut_at_that_size(tmp_path):
    with hostile_servers() as make, HttpClient(timeout=10, retries=1) as http:
        server = make(endless)
        url = server.url + "foo-1.0-py3-none-any.whl"
        file = DistFile.from_listing(
            "foo-1.0-py3-none-any.whl", url, server.url, size=1000, hashes={"sha256": "0" * 64}
        )
        assert file is not None
        pin = Pin(file.name, file.version, file)
        store = FilesystemStore(tmp_path / "store")
        fetcher = Fetcher(store, http, Auth(use_netrc=False), tmp_path / "tmp")
        with pytest.raises(IndexUnavailable, match="over the cap of 1000 bytes"):
            fetcher.fetch(pin)
        assert server.sent < 32 * MiB  # the client stopped reading (the rest is what socket buffers took)
    assert not any(os.scandir(tmp_path / "tmp"))
