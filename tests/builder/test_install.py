"""Installing wheels with installer: scripts, metadata, RECORD, and refusing unsafe wheels before writing."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from builder_service.errors import UnsafeWheel
from builder_service.install import check_wheel, compile_bytecode, install_wheel, install_wheels
from builder_service.relocate import SCRIPT_HEADER
from builder_service.venv import VenvLayout, create_venv
from tests.fixtures.dists import build_wheel, escape_name

PKG_SOURCE = b"def main():\n    print('hello from pkg')\n    return 0\n"


def _rewrite(wheel: Path, *, content: dict[str, bytes] | None = None, symlinks: tuple[str, ...] = ()) -> Path:
    """Rewrite ``wheel`` in place: replace members' bytes (RECORD untouched) or mark members as symlinks."""
    with zipfile.ZipFile(wheel) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            if info.filename in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, (content or {}).get(info.filename, data))
    return wheel


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` with its content (files) or link target (symlinks) or "dir"."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


@pytest.fixture
def venv(tmp_path: Path) -> VenvLayout:
    return create_venv(Path(sys.executable), tmp_path / "venv")


@pytest.fixture
def good_wheel(tmp_path: Path) -> Path:
    return build_wheel(
        tmp_path / "wheels", "pkg", "1.0", files={"pkg/__init__.py": PKG_SOURCE}, console_scripts={"hello": "pkg:main"}
    )


def test_install_writes_files_installer_record_and_relocatable_script(venv: VenvLayout, good_wheel: Path) -> None:
    dist_info = install_wheel(good_wheel, venv)

    site = venv.site_packages
    assert dist_info == "pkg-1.0.dist-info"
    assert (site / "pkg/__init__.py").read_bytes() == PKG_SOURCE
    assert (site / dist_info / "INSTALLER").read_text() == "venvsmith\n"
    script = venv.bin_dir / "hello"
    assert script.read_bytes().startswith(SCRIPT_HEADER)
    assert os.access(script, os.X_OK)

    rows = list(csv.reader((site / dist_info / "RECORD").read_text().splitlines()))
    paths = {row[0] for row in rows}
    assert {"pkg/__init__.py", f"{dist_info}/INSTALLER", f"{dist_info}/RECORD", "../../../bin/hello"} <= paths
    for path, digest, size in rows:
        if digest:  # every recorded hash matches the installed file
            data = (site / path).read_bytes()
            expected = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (expected, len(data)), path

    proc = subprocess.run([script], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "hello from pkg\n"), proc.stderr


def test_data_scripts_and_headers_go_to_their_schemes(venv: VenvLayout, tmp_path: Path) -> None:
    data = "tool-2.0.data"
    wheel = build_wheel(
        tmp_path,
        "tool",
        "2.0",
        files={
            "tool/__init__.py": b"",
            f"{data}/scripts/tool-py": b"#!python\nprint('tool ran')\n",
            f"{data}/scripts/tool-sh": b"#!/bin/sh\necho shell\n",
            f"{data}/headers/tool.h": b"int tool(void);\n",
            f"{data}/data/share/tool/readme.txt": b"data\n",
        },
    )
    install_wheel(wheel, venv)

    py, sh = venv.bin_dir / "tool-py", venv.bin_dir / "tool-sh"
    assert py.read_bytes() == SCRIPT_HEADER + b"print('tool ran')\n"
    assert sh.read_bytes() == b"#!/bin/sh\necho shell\n"  # not a Python launcher: left alone
    assert os.access(py, os.X_OK) and os.access(sh, os.X_OK)
    assert (venv.root / f"include/site/python{venv.python_version}/tool/tool.h").is_file()
    assert (venv.root / "share/tool/readme.txt").read_text() == "data\n"
    assert subprocess.run([py], capture_output=True, text=True, timeout=30).stdout == "tool ran\n"


def _bad_wheels(tmp_path: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (wheel, the member the refusal must name)."""
    out: dict[str, tuple[Path, str | None]] = {}
    d = tmp_path / "bad"
    escape = "../" * 6 + "evil.py"
    out["dotdot"] = (build_wheel(d / "1", "dotdot", "1.0", files={escape: b"x = 1\n"}), escape)
    absolute = os.fspath(tmp_path / "abs_evil.py")
    out["absolute"] = (build_wheel(d / "2", "absolute", "1.0", files={absolute: b"x = 1\n"}), absolute)
    out["drive"] = (build_wheel(d / "3", "drive", "1.0", files={"C:/evil.py": b"x = 1\n"}), "C:/evil.py")
    link = build_wheel(d / "4", "link", "1.0", files={"link/__init__.py": b"", "link/passwd": b"/etc/passwd"})
    out["symlink"] = (_rewrite(link, symlinks=("link/passwd",)), "link/passwd")
    tampered = build_wheel(d / "5", "tampered", "1.0", files={"tampered/__init__.py": b"good = True\n"})
    out["hash"] = (_rewrite(tampered, content={"tampered/__init__.py": b"evil = True\n"}), "tampered/__init__.py")
    short = build_wheel(d / "6", "short", "1.0", files={"short/__init__.py": b"good = True\n"})
    out["size"] = (_rewrite(short, content={"short/__init__.py": b"good = True\n\n"}), "short/__init__.py")
    scheme = "badscheme-1.0.data/nowhere/x.txt"
    out["data-scheme"] = (build_wheel(d / "7", "badscheme", "1.0", files={scheme: b"x"}), scheme)
    script = build_wheel(d / "8", "script", "1.0", files={"script.py": b""}, console_scripts={"../../x": "script:m"})
    out["script-name"] = (script, f"{escape_name('script')}-1.0.dist-info/entry_points.txt")
    return out


BAD = ["dotdot", "absolute", "drive", "symlink", "hash", "size", "data-scheme", "script-name"]


@pytest.mark.parametrize("case", BAD)
def test_unsafe_wheels_are_refused_before_anything_is_written(
    case: str, venv: VenvLayout, good_wheel: Path, tmp_path: Path
) -> None:
    wheel, member = _bad_wheels(tmp_path)[case]
    before = _tree(venv.root)

    with pytest.raises(UnsafeWheel) as info:
        check_wheel(wheel)
    assert (info.value.wheel_name, info.value.member) == (wheel.name, member)
    assert wheel.name in str(info.value)

    with pytest.raises(UnsafeWheel):  # a good wheel first: still nothing written, all are checked up front
        install_wheels([good_wheel, wheel], venv)
    with pytest.raises(UnsafeWheel):
        install_wheel(wheel, venv)

    assert _tree(venv.root) == before
    assert not (tmp_path / "abs_evil.py").exists()
    assert not list(tmp_path.rglob("evil.py")) and not list(Path("/").glob("evil.py"))


def test_unsafe_wheel_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(UnsafeWheel("a-1.0-py3-none-any.whl", "a/../x", "reason")))
    assert (err.wheel_name, err.member, err.reason) == ("a-1.0-py3-none-any.whl", "a/../x", "reason")


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus-1.0-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(UnsafeWheel, match="unreadable"):
        check_wheel(bogus)


def test_compile_bytecode_embeds_no_build_path(venv: VenvLayout, good_wheel: Path) -> None:
    install_wheel(good_wheel, venv)
    compile_bytecode(venv)
    pycs = list((venv.site_packages / "pkg/__pycache__").glob("*.pyc"))
    assert pycs
    for pyc in pycs:
        data = pyc.read_bytes()
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked
        assert os.fsencode(venv.root) not in data


def test_many_wheels_install_concurrently_as_if_in_order(venv: VenvLayout, tmp_path: Path) -> None:
    """Disjoint wheels go in at once (sharing parent directories); the answer is in the order given."""
    wheels = [
        build_wheel(tmp_path / "w", f"p{i}", "1.0", files={f"shared/ns/p{i}.py": b"X = %d\n" % i,
                                                            f"p{i}/__init__.py": b""})
        for i in range(24)
    ]
    assert install_wheels(wheels, venv, workers=4) == [f"p{i}-1.0.dist-info" for i in range(24)]
    for i in range(24):
        assert (venv.site_packages / f"shared/ns/p{i}.py").read_bytes() == b"X = %d\n" % i


@pytest.mark.parametrize("clash", ["file", "script"])
def test_wheels_writing_a_common_file_are_installed_in_order(venv: VenvLayout, tmp_path: Path, clash: str) -> None:
    """As one after the other: the earlier wheel's file is there, the later one fails (installer does not
    overwrite), whatever the threads do."""
    def wheel(name: str, body: bytes) -> Path:
        if clash == "file":
            return build_wheel(tmp_path / name, name, "1.0", files={"common/mod.py": body})
        return build_wheel(tmp_path / name, name, "1.0", files={f"{name}/__init__.py": body},
                           console_scripts={"tool": f"{name}:main"})

    others = [build_wheel(tmp_path / "o", f"other{i}", "1.0") for i in range(6)]
    first, second = wheel("first", b"FIRST = 1\ndef main(): pass\n"), wheel("second", b"SECOND = 1\n")
    for _ in range(3):
        with pytest.raises(FileExistsError):
            install_wheels([*others[:3], first, *others[3:], second], venv, workers=4)
        if clash == "file":
            assert (venv.site_packages / "common/mod.py").read_bytes().startswith(b"FIRST")
        else:
            assert b"from first import main" in (venv.bin_dir / "tool").read_bytes()
        venv = create_venv(Path(sys.executable), tmp_path / f"venv-{_}")
