"""Isolated PEP 517 builds: limits, scrubbed environment, safe unpacking, build requirements, metadata, cache key.

Hermetic: every sdist carries an in-tree backend (``backend-path = ["_backend"]``) that writes its wheel with
``zipfile``, so no setuptools and no network are needed. The target interpreter is the running one.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from builder_service.action_keys import build_key
from builder_service.errors import (
    BuildError,
    BuildFailed,
    BuildOutOfMemory,
    BuildOutputTooLarge,
    BuildRequirementUnavailable,
    BuildTimeout,
)
from builder_service.limits import BuildLimits, MiB, run_limited
from builder_service.sdist_build import (
    DEFAULT_BUILD_SYSTEM,
    SOURCE_DATE_EPOCH,
    BuildSystem,
    InvalidSdist,
    WheelDirBuildEnv,
    build_wheel,
    extract_sdist,
    prepare_metadata,
    read_build_system,
)
from tests.fixtures.dists import build_wheel as make_wheel

INTERPRETER = Path(sys.executable)
LIMITS = BuildLimits(timeout_seconds=60, memory_bytes=2048 * MiB, max_output_bytes=64 * MiB)
HOOK_VARS = {"_PYPROJECT_HOOKS_BUILD_BACKEND", "_PYPROJECT_HOOKS_BACKEND_PATH_JSON"}
BUILD_VARS = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SOURCE_DATE_EPOCH", "PYTHONHASHSEED"}

# ------------------------------------------------------------------------------------------------ fixtures

_BACKEND = """
import base64, hashlib, json, os, sys, zipfile


def _metadata():
    return ("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION)).encode()


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def get_requires_for_build_wheel(config_settings=None):
    return list(EXTRA_REQUIRES)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    extra = {}
    # BODY
    dist_info = "%s-%s.dist-info" % (NAME, VERSION)
    files = dict(extra)
    files["demo/__init__.py"] = b"VALUE = 1\\n"
    files[dist_info + "/METADATA"] = _metadata()
    files[dist_info + "/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: mybackend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    record = "".join("%s,%s,%d\\n" % (p, _record_hash(d), len(d)) for p, d in sorted(files.items()))
    files[dist_info + "/RECORD"] = (record + dist_info + "/RECORD,,\\n").encode()
    name = "%s-%s-py3-none-any.whl" % (NAME, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in sorted(files.items()):
            zf.writestr(path, data)
    return name
"""

_PREPARE = """

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = "%s-%s.dist-info" % (NAME, VERSION)
    os.makedirs(os.path.join(metadata_directory, dist_info))
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "wb") as f:
        f.write(_metadata() + b"Summary: prepared\\n")
    return dist_info
"""


def backend_source(body: str = "", *, name: str = "demo", version: str = "1.0", extra_requires=(), prepare=False):
    """The in-tree backend module; ``body`` runs at the start of ``build_wheel`` and may fill ``extra``."""
    header = f"NAME = {name!r}\nVERSION = {version!r}\nEXTRA_REQUIRES = {list(extra_requires)!r}\n"
    code = _BACKEND.replace("    # BODY\n", textwrap.indent(textwrap.dedent(body), "    ") + "\n")
    return header + code + (_PREPARE if prepare else "")


def sdist_members(
    body: str = "",
    *,
    requires: Sequence[str] = (),
    extra_requires: Sequence[str] = (),
    prepare: bool = False,
    backend_name: str = "demo",
) -> dict[str, bytes]:
    """Members of a ``demo-1.0`` sdist with the in-tree backend."""
    pyproject = (
        "[build-system]\n"
        f"requires = {json.dumps(list(requires))}\n"
        'build-backend = "mybackend"\n'
        'backend-path = ["_backend"]\n'
    )
    backend = backend_source(body, name=backend_name, extra_requires=extra_requires, prepare=prepare)
    return {
        "demo-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo-1.0/pyproject.toml": pyproject.encode(),
        "demo-1.0/_backend/mybackend.py": backend.encode(),
        "demo-1.0/demo/__init__.py": b"VALUE = 1\n",
    }


def write_tar(path: Path, members: Mapping[str, bytes], special: Sequence[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in special:
            tar.addfile(info)
    return path


def write_zip(path: Path, members: Mapping[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def make_sdist(tmp_path: Path, body: str = "", **options) -> Path:
    return write_tar(tmp_path / "demo-1.0.tar.gz", sdist_members(body, **options))


class RecordingProvider:
    """A fake env provider: records what it is asked to install and answers with fixed pins."""

    def __init__(self, versions: Mapping[str, str]) -> None:
        self.versions = versions
        self.calls: list[tuple[list[str], Path, bool]] = []

    def install(self, requirements: Sequence[str], layout) -> list[str]:
        env_dir = layout.root
        self.calls.append((list(requirements), env_dir, (env_dir / "pyvenv.cfg").is_file()))
        return [f"{Requirement(r).name}=={self.versions[Requirement(r).name]}" for r in requirements]


NO_DEPS = RecordingProvider({})


def install_with_installer(wheel: Path, env_dir: Path) -> None:
    """Install ``wheel`` into the venv at ``env_dir`` with ``installer`` (the scheme asked from its Python)."""
    python = env_dir / "bin" / "python"
    code = "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"
    paths = json.loads(subprocess.check_output([str(python), "-I", "-c", code], text=True))
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")} | {"headers": paths["include"]}
    destination = SchemeDictionaryDestination(scheme, interpreter=str(python), script_kind="posix")
    with WheelFile.open(wheel) as source:
        install(source, destination, additional_metadata={})


def build(sdist: Path, tmp_path: Path, *, limits: BuildLimits = LIMITS, provider=NO_DEPS, **options):
    return build_wheel(
        sdist,
        interpreter=INTERPRETER,
        env_provider=provider,
        out_dir=tmp_path / "out",
        limits=limits,
        work_dir=tmp_path / "work",
        **options,
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, never reaped by a minimal init, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return sys.platform != "linux"
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# ------------------------------------------------------------------------------------------------ builds


def test_builds_wheel_with_in_tree_backend(tmp_path: Path) -> None:
    outcome = build(make_sdist(tmp_path), tmp_path, config_settings={"flag": "on"})
    assert outcome.wheel == tmp_path / "out" / "demo-1.0-py3-none-any.whl"
    assert parse_wheel_filename(outcome.wheel.name)[:2] == ("demo", Version("1.0"))
    assert b"Name: demo" in wheel_files(outcome.wheel)["demo-1.0.dist-info/METADATA"]
    assert outcome.build_requirements == ()
    assert outcome.log.parent == tmp_path / "out" and "+ build_wheel of demo 1.0" in outcome.log.read_text()
    assert list((tmp_path / "work").iterdir()) == []  # the work directory is removed


def test_build_environment_is_scrubbed_and_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SECRET_TOKEN": "s3cr3t",
        "PIP_INDEX_URL": "http://user:pw@index.invalid/simple",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "NETRC": "/root/.netrc",
        "PYTHONPATH": "/nonexistent",
        "VIRTUAL_ENV": "/nonexistent",
    }.items():
        monkeypatch.setenv(name, value)
    body = """
    import json, os, sys
    if "SECRET_TOKEN" in os.environ or "PIP_INDEX_URL" in os.environ:
        raise SystemExit("credentials leaked into the build")
    extra["demo/env.json"] = json.dumps({
        "environ": dict(os.environ), "prefix": sys.prefix, "base_prefix": sys.base_prefix,
        "cwd": os.getcwd(), "config": config_settings,
    }).encode()
    """
    outcome = build(make_sdist(tmp_path, body), tmp_path, config_settings={"flag": "on"})
    seen = json.loads(wheel_files(outcome.wheel)["demo/env.json"])
    environ = seen["environ"]
    assert set(environ) == BUILD_VARS | HOOK_VARS
    work = str(tmp_path / "work")
    assert seen["prefix"] != seen["base_prefix"] and seen["prefix"].startswith(work)  # the fresh build venv
    assert environ["PATH"].split(os.pathsep)[0] == os.path.join(seen["prefix"], "bin")
    assert environ["HOME"].startswith(work) and environ["TMPDIR"].startswith(work)
    assert environ["SOURCE_DATE_EPOCH"] == str(SOURCE_DATE_EPOCH) and environ["PYTHONHASHSEED"] == "0"
    assert seen["cwd"].startswith(work) and seen["cwd"].endswith("demo-1.0")
    assert seen["config"] == {"flag": "on"}


def test_build_requirements_go_through_the_provider_in_two_rounds(tmp_path: Path) -> None:
    provider = RecordingProvider({"helperdep": "1.0", "otherdep": "2.1"})
    sdist = make_sdist(tmp_path, requires=["helperdep"], extra_requires=["otherdep>=2"])
    outcome = build(sdist, tmp_path, provider=provider)
    assert [(reqs, ready) for reqs, _env, ready in provider.calls] == [(["helperdep"], True), (["otherdep>=2"], True)]
    assert provider.calls[0][1] == provider.calls[1][1]  # the same build venv
    assert outcome.build_requirements == ("helperdep==1.0", "otherdep==2.1")


def test_wheel_dir_provider_installs_importable_build_requirements(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    for version in ("1.0", "1.2", "2.0"):
        make_wheel(wheels, "helperdep", version, files={"helperdep.py": f"VALUE = {version!r}\n".encode()})
    make_wheel(wheels, "otherdep", "0.5", files={"otherdep.py": b"VALUE = 'other'\n"})
    body = """
    import helperdep, otherdep
    extra["demo/deps.txt"] = (helperdep.VALUE + " " + otherdep.VALUE).encode()
    """
    sdist = make_sdist(tmp_path, body, requires=["helperdep>=1,<2"], extra_requires=["otherdep"])
    outcome = build(sdist, tmp_path, provider=WheelDirBuildEnv(wheels, install_with_installer))
    assert wheel_files(outcome.wheel)["demo/deps.txt"] == b"1.2 other"
    assert outcome.build_requirements == ("helperdep==1.2", "otherdep==0.5")


def test_missing_build_requirement_is_reported(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    provider = WheelDirBuildEnv(tmp_path / "wheels", install_with_installer)
    with pytest.raises(BuildRequirementUnavailable) as caught:
        build(make_sdist(tmp_path, requires=["helperdep"]), tmp_path, provider=provider)
    assert caught.value.requirement == "helperdep" and caught.value.status == "FAILED_PRECONDITION"


def test_failing_backend_reports_log_tail(tmp_path: Path) -> None:
    body = """
    print("compiling things")
    raise RuntimeError("boom 42")
    """
    with pytest.raises(BuildFailed) as caught:
        build(make_sdist(tmp_path, body), tmp_path)
    error = caught.value
    assert error.status == "FAILED_PRECONDITION" and error.returncode == 1
    assert "RuntimeError: boom 42" in error.log_tail and "compiling things" in error.log_tail
    assert "build_wheel of demo 1.0" in error.message


def test_wheel_for_another_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSdist, match="not for demo 1.0"):
        build(make_sdist(tmp_path, backend_name="other"), tmp_path)


@pytest.mark.slow
def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    body = f"""
    import subprocess, time
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    with open({str(pids)!r}, "w") as f:
        f.write("%d %d" % (os.getpid(), child.pid))
    time.sleep(600)
    """
    start = time.monotonic()
    with pytest.raises(BuildTimeout) as caught:
        build(make_sdist(tmp_path, body), tmp_path, limits=BuildLimits(timeout_seconds=3))
    assert time.monotonic() - start < 10
    assert caught.value.status == "DEADLINE_EXCEEDED" and caught.value.seconds == 3
    hook_pid, child_pid = map(int, pids.read_text().split())
    assert wait_gone(hook_pid) and wait_gone(child_pid)  # the child ignored SIGTERM: SIGKILLed with its group


@pytest.mark.slow
def test_memory_limit(tmp_path: Path) -> None:
    body = "blob = bytearray(2 * 1024 ** 3)\n"
    with pytest.raises(BuildOutOfMemory) as caught:
        build(make_sdist(tmp_path, body), tmp_path, limits=BuildLimits(timeout_seconds=60, memory_bytes=256 * MiB))
    assert caught.value.status == "RESOURCE_EXHAUSTED" and "MemoryError" in caught.value.log_tail


def test_output_flood_is_cut_off(tmp_path: Path) -> None:
    body = """
    for _ in range(64):
        sys.stdout.write("x" * 65536 + "\\n")
    sys.stdout.flush()
    """
    limits = BuildLimits(timeout_seconds=60, max_output_bytes=1 * MiB)
    with pytest.raises(BuildOutputTooLarge) as caught:
        build(make_sdist(tmp_path, body), tmp_path, limits=limits)
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    (log,) = (tmp_path / "out").glob("*.build.log")
    assert log.stat().st_size <= 1 * MiB + 200


def test_huge_file_hits_the_output_limit(tmp_path: Path) -> None:
    body = """
    with open(os.path.join(wheel_directory, "big.bin"), "wb") as f:
        f.write(b"0" * (4 * 1024 * 1024))
    """
    with pytest.raises(BuildOutputTooLarge):
        build(make_sdist(tmp_path, body), tmp_path, limits=BuildLimits(timeout_seconds=60, max_output_bytes=MiB))


def test_prepare_metadata_uses_the_hook(tmp_path: Path) -> None:
    metadata = prepare_metadata(
        make_sdist(tmp_path, prepare=True), interpreter=INTERPRETER, env_provider=NO_DEPS, limits=LIMITS
    )
    assert metadata == b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: prepared\n"


def test_prepare_metadata_falls_back_to_the_wheel_for_a_zip_blob(tmp_path: Path) -> None:
    blob = write_zip(tmp_path / "0f3a9c", sdist_members())  # a store blob: no file name to go by
    metadata = prepare_metadata(blob, interpreter=INTERPRETER, env_provider=NO_DEPS, limits=LIMITS)
    assert metadata == b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"


# ------------------------------------------------------------------------------------------------ run_limited


def run(argv: Sequence[str], tmp_path: Path, limits: BuildLimits = LIMITS, **options):
    return run_limited(
        argv, cwd=tmp_path, env={"PATH": os.defpath}, limits=limits, log_path=tmp_path / "log", **options
    )


def test_run_limited_logs_output(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "-c", "print('hello', flush=True); import sys; print('err', file=sys.stderr)"], tmp_path
    )
    assert result.returncode == 0
    assert (tmp_path / "log").read_text().splitlines()[1:] == ["hello", "err"]


def test_run_limited_sigkills_after_grace(tmp_path: Path) -> None:
    code = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(os.getpid(), flush=True); time.sleep(60)"
    )
    start = time.monotonic()
    with pytest.raises(BuildTimeout):
        run([sys.executable, "-c", code], tmp_path, BuildLimits(timeout_seconds=1), term_grace=0.3)
    assert time.monotonic() - start < 5
    assert wait_gone(int((tmp_path / "log").read_text().splitlines()[1]))


def test_run_limited_kills_stragglers(tmp_path: Path) -> None:
    code = "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True)"
    run([sys.executable, "-c", code], tmp_path)
    assert wait_gone(int((tmp_path / "log").read_text().splitlines()[1]))


def test_run_limited_memory(tmp_path: Path) -> None:
    with pytest.raises(BuildOutOfMemory):
        run([sys.executable, "-c", "bytearray(2 * 1024 ** 3)"], tmp_path, BuildLimits(memory_bytes=256 * MiB))


@pytest.mark.parametrize(
    "argv",
    [
        ["dd", "if=/dev/zero", "of=big", "bs=1M", "count=4"],  # killed by SIGXFSZ
        ["/bin/sh", "-c", "dd if=/dev/zero of=big bs=1M count=4; exit $?"],  # ... reported by a shell as 153
    ],
)
def test_run_limited_file_size(tmp_path: Path, argv: list[str]) -> None:
    with pytest.raises(BuildOutputTooLarge):
        run(argv, tmp_path, BuildLimits(max_output_bytes=MiB))
    assert (tmp_path / "big").stat().st_size <= MiB


def test_run_limited_failure(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed) as caught:
        run([sys.executable, "-c", "import sys; print('nope'); sys.exit(3)"], tmp_path, what="step x")
    assert caught.value.returncode == 3 and "nope" in caught.value.log_tail
    assert caught.value.message == "step x exited with status 3"


def test_errors_pickle() -> None:
    errors: list[BuildError] = [
        BuildFailed("w", 2, "tail"),
        BuildTimeout("w", 3, "tail"),
        BuildOutOfMemory("w", MiB, "tail"),
        BuildOutputTooLarge("w", MiB, "tail"),
        InvalidSdist(Path("x.tar.gz"), "bad"),
        BuildRequirementUnavailable("dep", "gone"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), copy.message, copy.status, copy.log_tail) == (
            type(error),
            error.message,
            error.status,
            error.log_tail,
        )


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        BuildLimits(memory_bytes=0)


# ------------------------------------------------------------------------------------------------ unpacking


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


BASE = {"demo-1.0/setup.py": b""}


@pytest.mark.parametrize(
    ("members", "special", "reason"),
    [
        ({"demo-1.0/../evil.py": b"x"}, [], "escapes"),
        ({"../evil.py": b"x"}, [], "escapes"),
        ({"/tmp/venvsmith-abs-evil.py": b"x"}, [], "absolute"),
        ({}, [_link("demo-1.0/up", "../../evil.py")], "outside"),
        ({}, [_link("demo-1.0/abs", "/etc/passwd")], "outside"),
        ({}, [_link("demo-1.0/a", ".."), _link("demo-1.0/b", "a/..")], "resolves outside"),  # lexically inside
        ({}, [_link("demo-1.0/a", ".."), _link("demo-1.0/a/../../evil.py", "x")], "escapes"),
        ({"demo-1.0/a/evil.py": b"x"}, [_link("demo-1.0/a", "..")], "symlink"),
        ({}, [_link("demo-1.0/h", "../../etc/passwd", tarfile.LNKTYPE)], "escapes"),
        ({}, [_link("demo-1.0/dev", "", tarfile.CHRTYPE)], "special"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, members, special, reason) -> None:
    if members.keys() == {"demo-1.0/a/evil.py"}:  # the link must come first
        sdist = tmp_path / "demo-1.0.tar.gz"
        with tarfile.open(sdist, "w:gz") as tar:
            tar.addfile(special[0])
            info = tarfile.TarInfo("demo-1.0/a/evil.py")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    else:
        sdist = write_tar(tmp_path / "demo-1.0.tar.gz", {**BASE, **members}, special)
    with pytest.raises(InvalidSdist, match=reason) as caught:
        extract_sdist(sdist, tmp_path / "x" / "src", max_bytes=MiB)
    assert caught.value.status == "FAILED_PRECONDITION"
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "x" / "evil.py").exists()
    assert not Path("/tmp/venvsmith-abs-evil.py").exists()


def test_unsafe_zip_member_is_refused(tmp_path: Path) -> None:
    sdist = write_zip(tmp_path / "demo-1.0.zip", {**BASE, "demo-1.0/../../evil.py": b"x"})
    with pytest.raises(InvalidSdist, match="escapes"):
        extract_sdist(sdist, tmp_path / "x" / "src", max_bytes=MiB)


def test_malicious_sdist_never_runs(tmp_path: Path) -> None:
    members = sdist_members("raise SystemExit('ran')") | {"demo-1.0/../evil.py": b"x"}
    with pytest.raises(InvalidSdist, match="escapes"):
        build(write_tar(tmp_path / "demo-1.0.tar.gz", members), tmp_path)
    assert list((tmp_path / "work").iterdir()) == []


def test_extract_keeps_inner_links_and_modes(tmp_path: Path) -> None:
    script = tarfile.TarInfo("demo-1.0/run.sh")
    script.size, script.mode = 2, 0o755
    sdist = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.addfile(script, io.BytesIO(b"#!"))
        tar.addfile(_link("demo-1.0/setup.py", "run.sh"))
        tar.addfile(_link("demo-1.0/copy.sh", "demo-1.0/run.sh", tarfile.LNKTYPE))
    source = extract_sdist(sdist, tmp_path / "src", max_bytes=MiB)
    assert source == tmp_path / "src" / "demo-1.0"
    assert os.readlink(source / "setup.py") == "run.sh" and os.access(source / "run.sh", os.X_OK)
    assert (source / "copy.sh").read_bytes() == b"#!"


def test_extract_size_limit(tmp_path: Path) -> None:
    sdist = write_tar(tmp_path / "demo-1.0.tar.gz", {**BASE, "demo-1.0/big": b"0" * (2 * MiB)})
    with pytest.raises(BuildOutputTooLarge):
        extract_sdist(sdist, tmp_path / "src", max_bytes=MiB)


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(InvalidSdist, match="not a readable"):
        extract_sdist(tmp_path / "junk.tar.gz", tmp_path / "src", max_bytes=MiB)


# ------------------------------------------------------------------------------------------------ build-system


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        (None, DEFAULT_BUILD_SYSTEM),
        ("[project]\nname = 'demo'\n", DEFAULT_BUILD_SYSTEM),
        ("[build-system]\nrequires = ['flit_core>=3']\n", BuildSystem(("flit_core>=3",), DEFAULT_BUILD_SYSTEM.backend)),
        (
            "[build-system]\nrequires = []\nbuild-backend = 'be'\nbackend-path = ['.']\n",
            BuildSystem((), "be", (".",)),
        ),
    ],
)
def test_read_build_system(tmp_path: Path, pyproject: str | None, expected: BuildSystem) -> None:
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    assert read_build_system(tmp_path, tmp_path / "demo-1.0.tar.gz") == expected


@pytest.mark.parametrize(
    "pyproject",
    [
        "[build-system]\nbuild-backend = 'x'\n",
        "[build-system]\nrequires = ['not a ( requirement']\n",
        "[build-system]\nrequires = 'setuptools'\n",
        "[build-system]\nrequires = []\nbackend-path = '.'\n",
        "[build-system\n",
    ],
)
def test_invalid_build_system(tmp_path: Path, pyproject: str) -> None:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    with pytest.raises(InvalidSdist):
        read_build_system(tmp_path, tmp_path / "demo-1.0.tar.gz")


def test_backend_path_outside_the_tree_is_refused(tmp_path: Path) -> None:
    members = sdist_members()
    members["demo-1.0/pyproject.toml"] = b"[build-system]\nrequires = []\nbuild-backend = 'm'\nbackend-path = ['..']\n"
    with pytest.raises(InvalidSdist, match="backend-path"):
        build(write_tar(tmp_path / "demo-1.0.tar.gz", members), tmp_path)


# ------------------------------------------------------------------------------------------------ build key


def test_build_key() -> None:
    sha = "ab" * 32
    key = build_key(sha, "target-1", ["numpy==2.0", "Cython==3.0.0"], {"a": "1", "b": "2"})
    assert len(key) == 64
    assert key == build_key(sha.upper(), "target-1", ["cython==3.0.0", "NumPy==2.0.0"], {"b": "2", "a": "1"})
    others = {
        build_key("cd" * 32, "target-1", ["numpy==2.0", "Cython==3.0.0"], {"a": "1", "b": "2"}),
        build_key(sha, "target-2", ["numpy==2.0", "Cython==3.0.0"], {"a": "1", "b": "2"}),
        build_key(sha, "target-1", ["numpy==2.1", "Cython==3.0.0"], {"a": "1", "b": "2"}),
        build_key(sha, "target-1", ["numpy==2.0", "Cython==3.0.0"], {"a": "1"}),
    }
    assert key not in others and len(others) == 4


@pytest.mark.parametrize("pin", ["numpy", "numpy>=2", "numpy===2.0", "numpy==not-a-version"])
def test_build_key_rejects_non_pins(pin: str) -> None:
    with pytest.raises(ValueError, match="not a pin"):
        build_key("ab" * 32, "t", [pin], {})
