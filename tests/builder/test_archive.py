"""Deterministic tar.zst packing of venvs, and extraction that refuses to escape its destination."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from builder_service.archive import MTIME, pack, unpack
from builder_service.errors import UnsafeArchive
from builder_service.venv import build_venv
from tests.builder.test_venv import assert_works, wheels

INTERPRETER = Path(sys.executable)


def members(archive: Path) -> list[tarfile.TarInfo]:
    with open(archive, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zst:
        with tarfile.open(fileobj=zst, mode="r|") as tar:
            return list(tar)


def tar_zst(path: Path, entries: list[tuple[str, str, str | bytes]]) -> Path:
    """Write a tar.zst of (kind, name, payload) entries: kind file (bytes), dir, sym/hard (link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.linkname = payload if isinstance(payload, str) else ""
            tar.addfile(info)
    path.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    return path


# ------------------------------------------------------------------------------------------------ pack


def test_pack_normalises_metadata_and_reports_the_digest(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/private").write_text("p")
    os.chmod(tree / "sub/private", 0o600)
    (tree / "run").write_text("#!/bin/sh\n")
    os.chmod(tree / "run", 0o700)
    (tree / "sub-b").write_text("after sub/ and everything in it: entries are depth first")
    (tree / ("long-" + "x" * 150)).write_text("long name")
    (tree / "ünïcode").write_text("u")
    (tree / "link").symlink_to("sub/private")
    os.chmod(tree / "sub", 0o700)
    os.utime(tree / "run", (12345, 12345))

    out = tmp_path / "out.tar.zst"
    sha, size = pack(tree, out)

    assert (sha, size) == (hashlib.sha256(out.read_bytes()).hexdigest(), out.stat().st_size)
    infos = members(out)
    names = [i.name for i in infos]
    assert names == sorted(names, key=lambda n: [os.fsencode(part) for part in n.split("/")])
    assert {(i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos} == {(0, 0, "", "", MTIME)}
    modes = {i.name: (i.type, i.mode) for i in infos}
    assert modes["sub"] == (tarfile.DIRTYPE, 0o755)
    assert modes["sub/private"] == (tarfile.REGTYPE, 0o644)
    assert modes["run"] == (tarfile.REGTYPE, 0o755)
    assert modes["link"] == (tarfile.SYMTYPE, 0o777)
    assert not any(key in i.pax_headers for i in infos for key in ("mtime", "atime", "ctime", "uid", "gid"))
    assert not list(tmp_path.glob(".out.tar.zst.*"))  # the temp file was renamed

    unpack(out, tmp_path / "copy")
    assert (tmp_path / "copy" / ("long-" + "x" * 150)).read_text() == "long name"
    assert (tmp_path / "copy/ünïcode").read_text() == "u"
    assert os.readlink(tmp_path / "copy/link") == "sub/private"
    assert os.access(tmp_path / "copy/run", os.X_OK) and not os.access(tmp_path / "copy/sub/private", os.X_OK)


def test_pack_does_not_depend_on_times_modes_or_location(tmp_path: Path) -> None:
    for name in ("a", "bb/deeper"):
        tree = tmp_path / name / "tree"
        (tree / "d").mkdir(parents=True)
        (tree / "d/f").write_bytes(b"content")
        (tree / "l").symlink_to("d/f")
    os.utime(tmp_path / "bb/deeper/tree/d/f", (1, 1))
    os.chmod(tmp_path / "bb/deeper/tree/d/f", 0o600)
    first = pack(tmp_path / "a/tree", tmp_path / "1.tar.zst")
    assert first == pack(tmp_path / "bb/deeper/tree", tmp_path / "2.tar.zst")


@pytest.mark.slow
def test_same_wheels_give_the_same_venv_archive(tmp_path: Path, monkeypatch) -> None:
    import builder_service.install as install

    monkeypatch.setattr(install, "INSTALL_WORKERS", 1)  # one wheel after the other ...
    first = build_venv(INTERPRETER, wheels(tmp_path / "w1"), tmp_path / "one" / "venv", compile_bytecode=True)
    monkeypatch.setattr(install, "INSTALL_WORKERS", 4)  # ... or several at once: the same tree
    old = os.umask(0o077)  # a second build with other permissions, other times, in another place
    try:
        second = build_venv(INTERPRETER, wheels(tmp_path / "w2"), tmp_path / "two/x" / "other", compile_bytecode=True)
    finally:
        os.umask(old)
    for path in second.root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (1_000_000_000, 1_000_000_000))

    a = pack(first.root, tmp_path / "a.tar.zst")
    b = pack(second.root, tmp_path / "b.tar.zst")
    assert a == b
    assert (tmp_path / "a.tar.zst").read_bytes() == (tmp_path / "b.tar.zst").read_bytes()


@pytest.mark.slow
def test_unpacked_venv_runs_anywhere(tmp_path: Path) -> None:
    layout = build_venv(INTERPRETER, wheels(tmp_path / "wheels"), tmp_path / "build" / "venv")
    archive = tmp_path / "venv.tar.zst"
    pack(layout.root, archive)

    dest = tmp_path / "agent" / "job-17" / "env"
    unpack(archive, dest)
    assert_works(dest)
    if (layout.root / "lib64").is_symlink():
        assert os.readlink(dest / "lib64") == "lib"
    assert pack(dest, tmp_path / "again.tar.zst") == pack(layout.root, tmp_path / "orig.tar.zst")


# ---------------------------------------------------------------------------------------------- unpack


def test_unpack_round_trip_with_links_and_modes(tmp_path: Path) -> None:
    archive = tar_zst(
        tmp_path / "a.tar.zst",
        [
            ("dir", "lib", ""),
            ("file", "lib/mod.py", b"x = 1\n"),
            ("sym", "lib64", "lib"),
            ("file", "lib64/via-link.py", b"through an inside link\n"),
            ("hard", "lib/copy.py", "lib/mod.py"),
            ("sym", "bin/python3.12", "/usr/bin/python3.12"),
            ("sym", "bin/python", "python3.12"),
            ("file", "nested/implicit/parents.txt", b"p"),
        ],
    )
    dest = tmp_path / "out"
    unpack(archive, dest)
    assert (dest / "lib/mod.py").read_text() == "x = 1\n"
    assert (dest / "lib/via-link.py").read_text() == "through an inside link\n"
    assert (dest / "lib/copy.py").read_text() == "x = 1\n"
    assert os.readlink(dest / "bin/python3.12") == "/usr/bin/python3.12"
    assert (dest / "nested/implicit/parents.txt").read_text() == "p"


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
@pytest.mark.parametrize("small_file", [0, 1 << 20], ids=["streamed", "by-writers"])
def test_unpack_answers_what_a_scan_of_the_tree_finds(read_only: bool, small_file: int, tmp_path: Path,
                                                      monkeypatch) -> None:
    """The stats unpack answers are the tree's manifest, as a scan after it records it; ``read_only`` makes
    every file and directory unwritable in the same pass (the node cache's sealed trees), symlinks as they were."""
    import builder_service.archive as archive_module
    from builder_service.venv_template import record

    monkeypatch.setattr(archive_module, "_SMALL_FILE", small_file)
    entries: list = [("dir", "lib", ""), ("file", "lib/mod.py", b"x = 1\n"), ("sym", "lib64", "lib"),
                     ("hard", "lib/copy.py", "lib/mod.py"), ("sym", "bin/python", "/usr/bin/python3"),
                     ("file", "bin/tool", b"#!/bin/sh\n"), ("file", "deep/a/b/c.txt", b"c" * 5000)]
    archive = tar_zst(tmp_path / "a.tar.zst", entries)
    os.chmod(archive, 0o644)
    dest = tmp_path / "out"
    files = unpack(archive, dest, read_only=read_only)
    assert files == record(dest) and set(files) == {"lib/mod.py", "lib/copy.py", "bin/tool", "deep/a/b/c.txt"}
    writable = [p for p in [dest, *dest.rglob("*")] if not p.is_symlink() and os.lstat(p).st_mode & 0o222]
    if read_only:
        assert writable == []
        assert os.readlink(dest / "lib64") == "lib" and (dest / "lib64/mod.py").read_text() == "x = 1\n"
    else:
        assert dest in writable and dest / "lib/mod.py" in writable


@pytest.mark.parametrize("case", ["dotdot-inside", "symlink-out", "later-link", "hardlink-out"])
def test_a_refused_read_only_unpack_leaves_nothing(case: str, tmp_path: Path) -> None:
    archive = tar_zst(tmp_path / "a.tar.zst", [("file", "pkg/first.py", b"x"), *ESCAPES[case]])
    with pytest.raises(UnsafeArchive):
        unpack(archive, tmp_path / "sub" / "dest", read_only=True)
    assert os.listdir(tmp_path / "sub") == []


def test_unpack_accepts_dot_slash_names(tmp_path: Path) -> None:
    archive = tar_zst(
        tmp_path / "a.tar.zst",
        [
            ("dir", "./", ""),
            ("dir", "./bin", ""),
            ("sym", "./bin/python", "/usr/bin/python3"),
            ("file", "./bin/tool", b"t"),
            ("hard", "./bin/tool2", "./bin/tool"),
        ],
    )
    unpack(archive, tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out/bin")) == ["python", "tool", "tool2"]


def test_pack_refuses_to_write_into_the_packed_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inside"):
        pack(tmp_path, tmp_path / "self.tar.zst")


ESCAPES = {
    "dotdot": [("file", "../evil", b"x")],
    "dotdot-inside": [("dir", "a", ""), ("file", "a/../../evil", b"x")],
    "dot-slash-absolute": [("file", ".//tmp/venvsmith-evil-absolute", b"x")],
    "absolute": [("file", "/tmp/venvsmith-evil-absolute", b"x")],
    "symlink-out": [("sym", "lib/evil", "../../evil")],
    "symlink-absolute": [("sym", "lib/evil", "/etc/passwd")],
    "python-to-root": [("sym", "bin/python", "/")],
    "python-to-dir": [("sym", "bin/python", "/etc")],
    "through-python-link": [("sym", "bin/python3", "/usr/bin/python3"), ("file", "bin/python3/evil", b"x")],
    "link-via-python-link": [("sym", "bin/python3", "/usr/bin/python3"), ("sym", "t", "bin/python3/x")],
    "later-link": [("sym", "t", "bin/python3/x"), ("sym", "bin/python3", "/usr/bin/python3")],
    "hardlink-out": [("hard", "evil", "../outside.txt")],
    "hardlink-absolute": [("hard", "evil", "/etc/passwd")],
    "write-through-symlink": [("sym", "f", "g"), ("file", "f", b"x")],
    "device": [("fifo", "p", "")],
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_unpack_refuses_escapes_and_leaves_nothing(case: str, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("outside")
    entries = ESCAPES[case]
    if case == "device":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("p")
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
        archive = tmp_path / "a.tar.zst"
        archive.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    else:
        archive = tar_zst(tmp_path / "a.tar.zst", entries)
    dest = tmp_path / "sub" / "dest"

    with pytest.raises(UnsafeArchive) as info:
        unpack(archive, dest)
    assert info.value.archive == archive
    assert not dest.exists()
    assert os.listdir(tmp_path / "sub") == []  # no temporary directory left behind
    assert sorted(os.listdir(tmp_path)) == ["a.tar.zst", "outside.txt", "sub"]
    assert not Path("/tmp/venvsmith-evil-absolute").exists()


def test_unpack_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    archive = tar_zst(tmp_path / "a.tar.zst", [("file", "f", b"x")])
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest/keep").write_text("k")
    with pytest.raises(UnsafeArchive, match="not an empty directory"):
        unpack(archive, tmp_path / "dest")
    (tmp_path / "empty").mkdir()
    unpack(archive, tmp_path / "empty")
    assert (tmp_path / "empty/f").read_bytes() == b"x"


def test_unpack_reports_a_corrupt_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)
    with pytest.raises(UnsafeArchive, match="corrupt"):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_packed_archive_is_readable_by_zstd_and_tar(tmp_path: Path) -> None:
    if not (shutil.which("tar") and shutil.which("zstd")):
        pytest.skip("no tar or zstd command")
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d/f").write_text("hi")
    pack(tree, tmp_path / "t.tar.zst")
    listing = subprocess.run(
        ["tar", "--use-compress-program=zstd -d", "-tf", tmp_path / "t.tar.zst"], capture_output=True, text=True
    )
    assert listing.stdout.split() == ["d/", "d/f"]


@pytest.mark.parametrize(
    "entries",
    [
        [("file", "a", b"1"), ("file", "a", b"2")],
        [("file", "d/a", b"1"), ("file", "./d/a", b"2")],
        [("file", "a", b"1"), ("dir", "a", "")],
        [("dir", "a", ""), ("file", "a", b"1")],
        [("file", "a", b"1"), ("file", "a/b", b"2")],
        [("sym", "a", "b"), ("sym", "a", "c")],
    ],
    ids=["file-twice", "file-twice-dot-slash", "file-then-dir", "dir-then-file", "file-as-parent", "link-twice"],
)
def test_unpack_refuses_members_that_collide(entries: list, tmp_path: Path) -> None:
    archive = tar_zst(tmp_path / "a.tar.zst", entries)
    with pytest.raises(UnsafeArchive):
        unpack(archive, tmp_path / "sub" / "dest")
    assert os.listdir(tmp_path / "sub") == []


@pytest.mark.parametrize("small_file", [0, 1 << 20])
def test_unpack_many_files_small_and_streamed(small_file: int, tmp_path: Path, monkeypatch) -> None:
    """Small members go through the writer threads, large ones are streamed: both give the same tree."""
    import builder_service.archive as archive_module

    monkeypatch.setattr(archive_module, "_SMALL_FILE", small_file)
    monkeypatch.setattr(archive_module, "_MAX_PENDING", 64 << 10)  # forces waiting on the writers
    entries: list = []
    expected: dict[str, bytes] = {}
    for i in range(300):
        name = f"pkg{i % 7}/sub{i % 3}/m{i}.py"
        data = hashlib.sha256(str(i).encode()).digest() * (i * 13 % 700)
        entries.append(("file", name, data))
        expected[name] = data
    entries.append(("hard", "pkg0/copy.py", "pkg0/sub0/m0.py"))
    expected["pkg0/copy.py"] = expected["pkg0/sub0/m0.py"]
    archive = tar_zst(tmp_path / "a.tar.zst", entries)
    unpack(archive, tmp_path / "out")
    found = {
        str(p.relative_to(tmp_path / "out")): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()
    }
    assert found == expected


def test_a_failed_background_write_fails_the_unpack(tmp_path: Path, monkeypatch) -> None:
    """Even when the failed write is collected early (the writers are kept short), it is not forgotten."""
    import errno

    import builder_service.archive as archive_module

    real_write = archive_module._write_file

    def failing(path: str, data: bytes, mode: int) -> list[int]:
        if path.endswith("/m3.py"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data, mode)

    monkeypatch.setattr(archive_module, "_write_file", failing)
    monkeypatch.setattr(archive_module, "_MAX_PENDING", 1)  # every submit waits for the oldest write
    archive = tar_zst(tmp_path / "a.tar.zst", [("file", f"pkg/m{i}.py", b"x = 1\n") for i in range(40)])
    with pytest.raises(OSError, match="No space"):
        unpack(archive, tmp_path / "sub" / "dest")
    assert os.listdir(tmp_path / "sub") == []
