"""The target environment: shorthand expansion, validation, marker evaluation, digests, real interpreters."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import packaging
import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.markers import Marker, default_environment
from packaging.tags import Tag, mac_platforms, sys_tags
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from venvsmith.core import target as target_module
from venvsmith.core.errors import InvalidInput
from venvsmith.core.interpreters import discover_interpreters
from venvsmith.core.target import MARKER_NAMES, PLATFORMS, TargetEnvironment, host_platform_name, linux_platform_tags

NATIVE_FIRST = target_module._LINUX_NATIVE_FIRST


def shorthand(version: str = "3.12", platform: str = "linux", implementation: str = "cpython"):
    return TargetEnvironment.from_shorthand(version, platform, implementation)


def strs(env: TargetEnvironment) -> list[str]:
    return [str(tag) for tag in env.tags]


def platforms_of(env: TargetEnvironment, interpreter: str, abi: str) -> list[str]:
    return [t.platform for t in env.tags if t.interpreter == interpreter and t.abi == abi]


# -- shorthands -----------------------------------------------------------------------------------------


def test_linux_is_x86_64_glibc_2_28() -> None:
    env = shorthand("3.12", "linux")
    assert env.platform == "linux"
    assert dict(env.markers) == {
        "implementation_name": "cpython",
        "implementation_version": "3.12.0",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.12.0",
        "python_version": "3.12",
        "sys_platform": "linux",
    }
    names = strs(env)
    manylinux = [n for n in names if n.startswith("cp312-cp312-many")]
    assert manylinux[:2] == ["cp312-cp312-manylinux_2_28_x86_64", "cp312-cp312-manylinux_2_27_x86_64"]
    assert manylinux[-3:] == [
        "cp312-cp312-manylinux_2_6_x86_64",
        "cp312-cp312-manylinux_2_5_x86_64",
        "cp312-cp312-manylinux1_x86_64",
    ]
    assert "cp312-cp312-manylinux2014_x86_64" in names
    assert "cp312-cp312-manylinux2010_x86_64" in names
    assert not any("manylinux_2_29" in n or "musllinux" in n for n in names)
    assert names[0] == ("cp312-cp312-linux_x86_64" if NATIVE_FIRST else "cp312-cp312-manylinux_2_28_x86_64")
    assert names[-1] == "py30-none-any"
    assert names[-15:-12] == ["cp312-none-any", "py312-none-any", "py3-none-any"]
    assert "cp311-abi3-manylinux_2_17_x86_64" in names and "cp312-none-manylinux_2_17_x86_64" in names
    # The same as the names it stands for.
    assert env.tags == shorthand("3.12", "x86_64-unknown-linux-gnu").tags
    assert env.tags == shorthand("3.12", "x86_64-manylinux_2_28").tags


def test_manylinux2014_is_manylinux_2_17() -> None:
    env = shorthand("3.11.4", "x86_64-manylinux2014")
    assert env.tags == shorthand("3.11.4", "x86_64-manylinux_2_17").tags
    assert env.platform == "x86_64-manylinux2014"
    many = [p for p in platforms_of(env, "cp311", "cp311") if p.startswith("many")]
    assert many[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def test_aarch64_linux_stops_at_manylinux2014() -> None:
    env = shorthand("3.10", "aarch64-unknown-linux-gnu")
    assert env.markers["platform_machine"] == "aarch64"
    plats = platforms_of(env, "cp310", "cp310")
    many = [p for p in plats if p.startswith("many")]
    assert many[0] == "manylinux_2_28_aarch64"
    assert many[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert "linux_aarch64" in plats and not any("x86_64" in p for p in plats)
    assert env.tags == shorthand("3.10", "aarch64-manylinux_2_28").tags


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_musl(arch: str) -> None:
    env = shorthand("3.12.3", f"{arch}-unknown-linux-musl")
    plats = platforms_of(env, "cp312", "cp312")
    musl = [f"musllinux_1_2_{arch}", f"musllinux_1_1_{arch}", f"musllinux_1_0_{arch}"]
    assert plats == ([f"linux_{arch}", *musl] if NATIVE_FIRST else [*musl, f"linux_{arch}"])
    assert env.markers["sys_platform"] == "linux" and env.markers["platform_machine"] == arch


def test_macos_is_apple_silicon_13() -> None:
    env = shorthand("3.12", "macos")
    assert env.platform == "macos"
    m = env.markers
    assert (m["sys_platform"], m["platform_system"], m["os_name"], m["platform_machine"]) == (
        "darwin",
        "Darwin",
        "posix",
        "arm64",
    )
    assert platforms_of(env, "cp312", "cp312") == list(mac_platforms((13, 0), "arm64"))
    names = strs(env)
    assert names[0] == "cp312-cp312-macosx_13_0_arm64"
    assert "cp312-cp312-macosx_11_0_arm64" in names and "cp312-cp312-macosx_10_9_universal2" in names
    assert names[-1] == "py30-none-any"
    assert env.tags == shorthand("3.12", "aarch64-apple-darwin").tags


def test_intel_macos() -> None:
    env = shorthand("3.9.6", "x86_64-apple-darwin")
    assert env.markers["platform_machine"] == "x86_64"
    plats = platforms_of(env, "cp39", "cp39")
    assert plats == list(mac_platforms((13, 0), "x86_64"))
    assert plats[0] == "macosx_13_0_x86_64"
    assert "macosx_10_12_x86_64" in plats and "macosx_10_9_universal2" in plats


@pytest.mark.parametrize(
    ("name", "platform_tag", "machine"),
    [
        ("windows", "win_amd64", "AMD64"),
        ("x86_64-pc-windows-msvc", "win_amd64", "AMD64"),
        ("i686-pc-windows-msvc", "win32", "x86"),
        ("aarch64-pc-windows-msvc", "win_arm64", "ARM64"),
    ],
)
def test_windows(name: str, platform_tag: str, machine: str) -> None:
    env = shorthand("3.13", name)
    m = env.markers
    assert (m["sys_platform"], m["platform_system"], m["os_name"], m["platform_machine"]) == (
        "win32",
        "Windows",
        "nt",
        machine,
    )
    names = strs(env)
    assert names[:4] == [
        f"cp313-cp313-{platform_tag}",
        f"cp313-abi3-{platform_tag}",
        f"cp313-none-{platform_tag}",
        f"cp312-abi3-{platform_tag}",
    ]
    assert {t.platform for t in env.tags} == {platform_tag, "any"}
    assert names[-1] == "py30-none-any"


def test_old_cpython_abi_has_pymalloc_flag() -> None:
    assert strs(shorthand("3.7", "linux"))[1].startswith("cp37-cp37m-")
    assert strs(shorthand("3.8", "windows"))[0] == "cp38-cp38-win_amd64"


def test_pypy() -> None:
    env = shorthand("3.10", "linux", "pypy")
    m = env.markers
    assert (m["implementation_name"], m["platform_python_implementation"]) == ("pypy", "PyPy")
    assert m["implementation_version"] == "7.3.0" and m["python_full_version"] == "3.10.0"
    names = strs(env)
    assert names[0] == (
        "pp310-pypy310_pp73-linux_x86_64" if NATIVE_FIRST else "pp310-pypy310_pp73-manylinux_2_28_x86_64"
    )
    assert "pp310-none-manylinux_2_17_x86_64" in names
    assert "pp3-none-any" in names and not any(n.startswith("cp") for n in names)
    assert shorthand("3.10", "linux", "PyPy").tags == env.tags


def test_every_platform_name_expands() -> None:
    for name, spec in PLATFORMS.items():
        env = shorthand("3.12.1", name)
        assert env.platform == name
        assert set(env.markers) == set(MARKER_NAMES)
        assert env.markers["platform_machine"] == spec.machine
        assert env.tags and env.tags[-1] == Tag("py30", "none", "any")
        if spec.alias_of:
            assert env.canonical() == shorthand("3.12.1", spec.alias_of).canonical()
    assert {"linux", "macos", "windows", "x86_64-manylinux_2_40", "aarch64-manylinux_2_17"} <= set(PLATFORMS)


def test_empty_platform_is_the_hosts() -> None:
    try:
        host = host_platform_name()
    except InvalidInput:
        pytest.skip("no platform name describes this machine")
    env = TargetEnvironment.from_shorthand("3.11")
    assert env.platform == host
    assert env.tags == shorthand("3.11", host).tags
    assert env.markers["sys_platform"] == sys.platform


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares with this Linux host")
def test_host_shorthand_matches_this_interpreter() -> None:
    try:
        host = host_platform_name()
    except InvalidInput:
        pytest.skip("no platform name describes this machine")
    local = TargetEnvironment.from_local()
    env = TargetEnvironment.from_shorthand(local.markers["python_full_version"], host)
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if host.endswith(glibc.replace("glibc 2.", "manylinux_2_")) and sys.implementation.name == "cpython":
        assert env.tags == local.tags
    for key in ("python_version", "python_full_version", "sys_platform", "platform_system", "os_name"):
        assert env.markers[key] == local.markers[key]


def test_x_y_means_x_y_0() -> None:
    env = shorthand("3.11", "linux")
    assert env.markers["python_full_version"] == "3.11.0"
    assert env.python_version == Version("3.11.0")


@given(minor=st.integers(0, 40), micro=st.integers(0, 300), short=st.booleans())
def test_versions_round_trip_into_markers(minor: int, micro: int, short: bool) -> None:
    text = f"3.{minor}" if short else f"3.{minor}.{micro}"
    env = TargetEnvironment.from_shorthand(text, "x86_64-pc-windows-msvc")
    full = f"3.{minor}.0" if short else text
    assert env.markers["python_full_version"] == full == env.markers["implementation_version"]
    assert env.markers["python_version"] == f"3.{minor}"
    assert env.python_version == Version(full)
    assert env.tags[0] == Tag(f"cp3{minor}", f"cp3{minor}m" if minor < 8 else f"cp3{minor}", "win_amd64")


_VALID = re.compile(r"3\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?")


@given(text=st.text(alphabet="0123456789.3 abrc+-", max_size=12))
def test_any_python_version_string_is_accepted_or_rejected_by_name(text: str) -> None:
    if _VALID.fullmatch(text):
        assert TargetEnvironment.from_shorthand(text, "windows").markers["python_version"].startswith("3.")
    else:
        with pytest.raises(InvalidInput) as info:
            TargetEnvironment.from_shorthand(text, "windows")
        assert info.value.value == text


@pytest.mark.parametrize(
    "bad", ["", "3", "3.", "3.12.", "3.12.1.2", "3.x", " 3.12", "3.12 ", "3.12rc1", "03.12", "3.012", "v3.12"]
)
def test_bad_python_version(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_shorthand(bad, "linux")
    assert info.value.value == bad
    assert "invalid Python version" in str(info.value)
    assert info.value.status == "INVALID_ARGUMENT"


@pytest.mark.parametrize("bad", ["2.7", "4.0", "2.7.18"])
def test_unsupported_python_major(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_shorthand(bad, "linux")
    assert info.value.value == bad


@pytest.mark.parametrize("bad", ["solaris", "x86_64-manylinux_2_99", "x86_64-manylinux_2_16", "darwin"])
def test_bad_platform_lists_known_names(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_shorthand("3.12", bad)
    assert info.value.value == bad
    assert "unknown platform" in str(info.value)
    assert "x86_64-manylinux_2_28" in str(info.value) and "aarch64-apple-darwin" in str(info.value)


def test_bad_implementation() -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_shorthand("3.12", "linux", "jython")
    assert info.value.value == "jython" and "cpython" in str(info.value)
    assert shorthand("3.12", "linux", "").canonical() == shorthand("3.12", "linux").canonical()


def test_linux_platform_tags() -> None:
    tags = linux_platform_tags("x86_64", glibc=(2, 17))
    many = [t for t in tags if t.startswith("many")]
    assert many[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert "manylinux_2_12_x86_64" in many and "manylinux2010_x86_64" in many
    assert many[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert linux_platform_tags("armv8l", glibc=(2, 17)).count("linux_armv7l") == 1
    riscv = [t for t in linux_platform_tags("riscv64", glibc=(2, 31)) if t.startswith("many")]
    assert riscv[-2:] == ["manylinux_2_17_riscv64", "manylinux2014_riscv64"]
    assert linux_platform_tags("x86_64") == ["linux_x86_64"]


# -- from_mapping ---------------------------------------------------------------------------------------


def test_from_mapping_round_trip() -> None:
    env = shorthand("3.12.4", "aarch64-apple-darwin")
    again = TargetEnvironment.from_mapping(dict(env.markers), strs(env), platform=env.platform)
    assert again == env and again.digest() == env.digest()
    data = json.loads(json.dumps(env.as_dict()))
    assert data["python_version"] == "3.12.4"
    assert TargetEnvironment.from_mapping(data["markers"], data["tags"], data["platform"]) == env


def _markers(**changes: str | None) -> dict[str, str]:
    markers = dict(shorthand("3.12.4", "linux").markers)
    for key, value in changes.items():
        if value is None:
            del markers[key]
        else:
            markers[key] = value
    return markers


def test_from_mapping_rejects_missing_and_unknown_keys() -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping(_markers(platform_release=None), ["py3-none-any"])
    assert info.value.value == "platform_release" and "missing" in str(info.value)
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping(_markers(python_implementation="CPython"), ["py3-none-any"])
    assert info.value.value == "python_implementation" and "unknown" in str(info.value)
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping(_markers(extra="x"), ["py3-none-any"])
    assert info.value.value == "extra"
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping({}, ["py3-none-any"])
    assert info.value.value == "implementation_name"


def test_from_mapping_checks_versions() -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping(_markers(python_full_version="three"), ["py3-none-any"])
    assert info.value.value == "three"
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping(_markers(python_version="3.11"), ["py3-none-any"])
    assert info.value.value == "3.11"
    markers = _markers(python_full_version="3.12.4+")  # non-tagged CPython builds say so
    assert TargetEnvironment.from_mapping(markers, ["py3-none-any"]).python_version == Version("3.12.4+local")
    with pytest.raises(InvalidInput):
        TargetEnvironment.from_mapping(_markers(os_name=3), ["py3-none-any"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["cp312-cp312", "cp312-cp312-linux_x86_64-x", "cp312--any", "3cp-none-any", ""]
)
def test_from_mapping_rejects_bad_tags(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_mapping(_markers(), ["py3-none-any", bad])
    assert info.value.value == bad


def test_from_mapping_needs_a_list_of_tags() -> None:
    with pytest.raises(InvalidInput):
        TargetEnvironment.from_mapping(_markers(), [])
    with pytest.raises(InvalidInput):
        TargetEnvironment.from_mapping(_markers(), "py3-none-any")
    with pytest.raises(InvalidInput):
        TargetEnvironment.from_mapping(_markers(), ["py3-none-any", 7])  # type: ignore[list-item]


def test_compressed_tag_sets_expand_in_order() -> None:
    env = TargetEnvironment.from_mapping(
        _markers(), ["cp312-abi3.none-manylinux_2_17_x86_64.manylinux2014_x86_64", "py2.py3-none-any"]
    )
    assert strs(env) == [
        "cp312-abi3-manylinux_2_17_x86_64",
        "cp312-abi3-manylinux2014_x86_64",
        "cp312-none-manylinux_2_17_x86_64",
        "cp312-none-manylinux2014_x86_64",
        "py2-none-any",
        "py3-none-any",
    ]


# -- ranks, evaluation, identity -----------------------------------------------------------------------


def test_tag_ranks() -> None:
    env = shorthand("3.12", "linux")
    assert env.tag_rank[env.tags[0]] == 0
    _, _, _, wheel_tags = parse_wheel_filename(
        "numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    )
    rank = env.best_tag_rank(wheel_tags)
    assert rank == min(env.tag_rank[t] for t in wheel_tags)
    pure = env.best_tag_rank(parse_wheel_filename("six-1.16.0-py2.py3-none-any.whl")[3])
    assert rank is not None and pure is not None and rank < pure
    assert env.best_tag_rank(parse_wheel_filename("x-1-cp312-cp312-win_amd64.whl")[3]) is None
    assert env.best_tag_rank(parse_wheel_filename("x-1-cp312-cp312-manylinux_2_34_x86_64.whl")[3]) is None
    assert env.best_tag_rank([]) is None
    dup = TargetEnvironment.from_mapping(_markers(), ["py3-none-any", "py2-none-any", "py3-none-any"])
    assert dup.tag_rank[Tag("py3", "none", "any")] == 0 and dup.tag_rank[Tag("py2", "none", "any")] == 1


def test_evaluate_uses_the_target_not_the_host() -> None:
    windows = shorthand("3.12", "windows")
    linux = shorthand("3.12", "linux")
    marker = Marker('sys_platform == "win32" and platform_machine == "AMD64"')
    assert windows.evaluate(marker) and not linux.evaluate(marker)
    assert not linux.evaluate(Marker('python_full_version >= "3.12.1"'))
    assert shorthand("3.12.1").evaluate(Marker('python_full_version >= "3.12.1"'))
    assert linux.evaluate(Marker('python_version < "3.13" and implementation_name == "cpython"'))
    assert not linux.evaluate(Marker('platform_release >= "5"'))  # unknown release


def test_evaluate_with_extras() -> None:
    env = shorthand("3.12", "linux")
    marker = Marker('extra == "test"')
    assert not env.evaluate(marker)
    assert env.evaluate(marker, ["test"])
    assert env.evaluate(marker, ["docs", "test"])
    assert not env.evaluate(marker, ["docs"])
    assert env.evaluate(Marker('extra == "test-extra"'), ["Test_Extra"])  # PEP 685 normalisation
    both = Marker('python_version >= "3.10" and extra == "socks"')
    assert env.evaluate(both, ["socks"]) and not shorthand("3.9").evaluate(both, ["socks"])
    assert env.evaluate(Marker('extra != "test"'))
    assert env.evaluate(Marker('sys_platform == "linux"'), ["anything"])


def test_evaluate_undefined_comparison_is_invalid_input() -> None:
    marker = Marker('python_version ~= "three"')
    with pytest.raises(InvalidInput) as info:
        shorthand("3.12", "linux").evaluate(marker)
    assert info.value.value == str(marker)


def test_digest_is_stable_and_discriminating() -> None:
    a = shorthand("3.12.1", "linux")
    assert a.digest() == shorthand("3.12.1", "linux").digest()
    assert re.fullmatch(r"[0-9a-f]{64}", a.digest())
    # A label is not part of the identity: the alias and the name it stands for give one digest.
    assert a.digest() == shorthand("3.12.1", "x86_64-unknown-linux-gnu").digest()
    assert a.digest() != shorthand("3.12.2", "linux").digest()
    assert a.digest() != shorthand("3.12.1", "aarch64-unknown-linux-gnu").digest()
    assert a.digest() != shorthand("3.12.1", "x86_64-manylinux_2_17").digest()
    canonical = a.canonical()
    assert list(canonical["markers"]) == sorted(canonical["markers"])
    assert canonical["tags"] == strs(a)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert a.digest() == __import__("hashlib").sha256(text.encode()).hexdigest()
    reordered = TargetEnvironment.from_mapping(dict(reversed(list(a.markers.items()))), strs(a))
    assert reordered.digest() == a.digest()
    swapped = TargetEnvironment.from_mapping(dict(a.markers), [strs(a)[1], strs(a)[0], *strs(a)[2:]])
    assert swapped.digest() != a.digest()  # tag order is preference: part of the identity


@given(st.lists(st.tuples(st.integers(6, 14), st.integers(0, 20)), min_size=2, max_size=5, unique=True))
def test_distinct_versions_give_distinct_digests(versions: list[tuple[int, int]]) -> None:
    digests = {shorthand(f"3.{minor}.{micro}", "windows").digest() for minor, micro in versions}
    assert len(digests) == len(versions)


def test_hashable_picklable_immutable() -> None:
    env = shorthand("3.12", "macos")
    assert hash(env) == hash(shorthand("3.12", "macos")) and env == shorthand("3.12", "macos")
    assert len({env, shorthand("3.12", "macos"), shorthand("3.11", "macos")}) == 2
    assert pickle.loads(pickle.dumps(env)) == env
    with pytest.raises(TypeError):
        env.markers["python_version"] = "2.7"  # type: ignore[index]
    assert "3.12.0" in repr(env) and len(repr(env)) < 300


def test_from_local_is_packagings_view_of_this_interpreter() -> None:
    env = TargetEnvironment.from_local()
    assert dict(env.markers) == default_environment()
    assert list(env.tags) == list(sys_tags())
    assert env.interpreter == sys.executable and env.platform == ""
    assert str(env.python_version) == default_environment()["python_full_version"]


# -- other interpreters ---------------------------------------------------------------------------------


def test_from_interpreter_without_our_packaging_matches_local(monkeypatch, tmp_path: Path) -> None:
    # Point the probe at a directory without packaging: the interpreter reports facts instead, and the tags
    # built from them here must be what packaging says in-process.
    monkeypatch.setattr(packaging, "__file__", str(tmp_path / "packaging" / "__init__.py"))
    env = TargetEnvironment.from_interpreter(sys.executable)
    local = TargetEnvironment.from_local()
    assert dict(env.markers) == dict(local.markers)
    assert env.tags == local.tags


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="shell-script fake interpreters")
def test_from_interpreter_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        TargetEnvironment.from_interpreter(tmp_path / "missing-python")
    assert info.value.value == str(tmp_path / "missing-python")
    for name, body in [
        ("fails", "echo boom >&2; exit 3"),
        ("garbage", "echo not json"),
        ("wrong", "echo '{}'"),
    ]:
        with pytest.raises(InvalidInput) as info:
            TargetEnvironment.from_interpreter(_script(tmp_path / name, body))
        assert info.value.value == str(tmp_path / name)
    with pytest.raises(InvalidInput, match="within"):
        TargetEnvironment.from_interpreter(_script(tmp_path / "slow", "exec sleep 10"), timeout=0.3)


_DETERMINISTIC = (
    "python_version",
    "python_full_version",
    "sys_platform",
    "platform_system",
    "os_name",
    "platform_machine",
    "implementation_name",
    "platform_python_implementation",
)

_PIP_TAGS = (
    "import json; from pip._vendor.packaging.tags import sys_tags; "
    "print(json.dumps([str(t) for t in sys_tags()]))"
)


def _pip_sys_tags(exe: Path) -> list[str] | None:
    """sys_tags() as the interpreter's own pip (an older, vendored packaging) computes it, if it can."""
    proc = subprocess.run([str(exe), "-I", "-c", _PIP_TAGS], capture_output=True, text=True, timeout=30)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="host platform name derived from glibc")
def test_shorthand_matches_every_real_interpreter() -> None:
    try:
        host = host_platform_name()
    except InvalidInput:
        pytest.skip("no platform name describes this machine")
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    same_glibc = host.endswith("-manylinux_2_" + glibc.rpartition(".")[2])
    interpreters = [i for i in discover_interpreters() if i.implementation == "cpython"]
    if not interpreters:
        pytest.skip("no CPython interpreters found")

    def check(interpreter) -> list[str]:
        problems: list[str] = []
        real = TargetEnvironment.from_interpreter(interpreter.path)
        assert real.interpreter == str(interpreter.path)
        full = real.markers["python_full_version"]
        expected = TargetEnvironment.from_shorthand(full, host)
        for key in _DETERMINISTIC:
            if real.markers[key] != expected.markers[key]:
                problems.append(f"{interpreter}: {key} {real.markers[key]!r} != {expected.markers[key]!r}")
        if same_glibc and real.tags != expected.tags:
            diff = set(strs(real)) ^ set(strs(expected))
            problems.append(f"{interpreter}: tags differ ({len(real.tags)} vs {len(expected.tags)}: {diff})")
        if interpreter.version < Version("3.10"):
            # Our packaging cannot run there, so the tags were built from the interpreter's facts; check them
            # against an independent oracle, that interpreter's pip. Its older packaging differs in two
            # documented ways only: linux_<arch> comes after manylinux (packaging < 26.3), and there is no
            # cpXY-none-any (packaging < 22 passed no interpreter to compatible_tags).
            pip = _pip_sys_tags(interpreter.path)
            if pip is not None:
                cp_any = f"cp{interpreter.version.major}{interpreter.version.minor}-none-any"
                native = re.compile(r".*-linux_[a-z0-9_]+$")
                ours = [t for t in strs(real) if t != cp_any]
                if [t for t in ours if not native.match(t)] != [t for t in pip if not native.match(t)]:
                    problems.append(f"{interpreter}: non-native tags differ from pip's")
                if [t for t in ours if native.match(t)] != [t for t in pip if native.match(t)]:
                    problems.append(f"{interpreter}: native tags differ from pip's")
        return problems

    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for found in pool.map(check, interpreters) for p in found]
    assert not problems, "\n".join(problems)
