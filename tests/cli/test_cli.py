"""The ``venvsmith`` command for real: in-process (``main([...])``), as ``python -m venvsmith.cli``, and against a
resolver server started with ``venvsmith serve resolver --port 0``.

Hermetic: VENVSMITH_HOME is a temporary directory, ``PIP_CONFIG_FILE=os.devnull`` and no other ``PIP_*``
variable, and every resolve names ``--index-url`` (a local HTTP index or a ``file://`` simple tree).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.tags import sys_tags

from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.cli import main
from venvsmith.core.reqfile import read_requirements

#: A fixed target, so answers do not depend on the machine running the tests.
LINUX = ["--python-version", "3.11", "--platform", "x86_64-manylinux_2_28"]
WINDOWS_38 = ["--python-version", "3.8", "--platform", "windows"]
WIN_WHEEL = "lib-1.0-cp38-cp38-win_amd64.whl"
LINUX_WHEEL = "lib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hermetic_env(home: Path) -> dict[str, str]:
    """The environment for subprocesses: nothing but the test's own indexes and state directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(VENVSMITH_HOME=str(home), PIP_CONFIG_FILE=os.devnull, PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same for in-process runs; returns this test's VENVSMITH_HOME."""
    for var in list(os.environ):
        if var.startswith("PIP_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("VENVSMITH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def builder(tmp_path_factory) -> IndexBuilder:
    """One index for the whole module (built once; tests must not add to it)."""
    b = IndexBuilder(tmp_path_factory.mktemp("cli-index"))
    b.add("app", "1.0", deps=["lib>=1", 'winonly; sys_platform == "win32"'])
    b.add("lib", "1.0", tag="cp38-cp38-win_amd64")
    b.add("lib", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    b.add("winonly", "1.0")
    b.add("router", "1.0", deps=["util<2"], upload_time=datetime(2024, 1, 1, tzinfo=UTC))
    b.add("router", "2.0", deps=["util>=2"], upload_time=datetime(2024, 6, 1, tzinfo=UTC))
    b.add("util", "1.5", upload_time=datetime(2023, 1, 1, tzinfo=UTC))
    b.add("util", "2.1", upload_time=datetime(2024, 5, 1, tzinfo=UTC))
    b.add("left", "1.0", deps=["util>=2"])
    b.add("right", "1.0", deps=["util<2"])
    b.add("srconly", "1.0", kind="sdist", deps=["util"])
    b.add("beta", "1.0")
    b.add("beta", "2.0b1")
    return b


@pytest.fixture(scope="module")
def index(builder: IndexBuilder) -> Iterator[IndexServer]:
    with IndexServer(builder) as server:
        yield server


@pytest.fixture(scope="module")
def file_index(builder: IndexBuilder) -> str:
    return builder.simple_url()


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``venvsmith ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def resolve_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "resolve", "--format", "json", *argv)
    assert code == 0, err
    return json.loads(out)


def versions(doc: dict) -> dict[str, str]:
    return {p["name"]: p["version"] for p in doc["pins"]}


# ------------------------------------------------------------------------------------------- formats


def test_json_format_schema(capsys, index, builder):
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "app")
    assert {"pins", "lock_key"} <= set(doc)
    assert HEX64.match(doc["lock_key"])
    assert versions(doc) == {"app": "1.0", "lib": "1.0"}
    for pin in doc["pins"]:
        assert {"name", "version", "url", "sha256", "index"} <= set(pin)
        assert all(isinstance(pin[k], str) for k in ("name", "version", "url", "sha256", "index"))
        assert pin["index"] == index.url
        assert pin["url"] == index.file_url(pin["filename"])
        assert HEX64.match(pin["sha256"]) and pin["sha256"] == builder.get(pin["filename"]).sha256
    assert [p["name"] for p in doc["pins"]] == ["lib", "app"]  # install order: dependencies first
    lib = doc["pins"][0]
    assert lib["filename"] == LINUX_WHEEL and lib["is_wheel"] is True


def test_requirements_format_has_hashes_and_parses_like_pip(capsys, index, tmp_path: Path):
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "app", "router")
    code, out, _ = run(capsys, "resolve", "--index-url", index.url, *LINUX, "app", "router",
                       "--format", "requirements", "-o", str(tmp_path / "locked.txt"))
    assert code == 0 and out == ""
    text = (tmp_path / "locked.txt").read_text()
    assert text.count("--hash=sha256:") == len(doc["pins"])
    expected = {p["name"]: (p["version"], p["sha256"]) for p in doc["pins"]}
    assert read_requirements(tmp_path / "locked.txt").requirements == sorted(
        f"{name}=={version}" for name, (version, _) in expected.items())

    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    with PipSession() as session:
        parsed = list(parse_requirements(str(tmp_path / "locked.txt"), session=session))
    seen = {}
    for line in parsed:
        name, _, version = line.requirement.strip().partition("==")
        seen[name] = (version, line.options["hashes"]["sha256"][0])
        assert len(line.options["hashes"]["sha256"]) == 1
    assert seen == expected


def test_pylock_format_is_pep_751(capsys, index, builder):
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "app", "srconly", "--format", "pylock")
    assert code == 0, err
    lock = tomllib.loads(out)
    assert lock["lock-version"] == "1.0" and lock["created-by"]
    packages = {p["name"]: p for p in lock["packages"]}
    assert {n: p["version"] for n, p in packages.items()} == {"app": "1.0", "lib": "1.0", "srconly": "1.0",
                                                             "util": "2.1"}
    for name, package in packages.items():
        files = package.get("wheels", [])
        if "sdist" in package:
            files = [*files, package["sdist"]]
        assert files, f"{name} has neither wheels nor sdist"
        for f in files:
            assert f["hashes"]["sha256"] == builder.get(f["name"]).sha256
            assert f["url"] == index.file_url(f["name"])
    assert "sdist" in packages["srconly"] and "wheels" not in packages["srconly"]
    assert [w["name"] for w in packages["lib"]["wheels"]] == [LINUX_WHEEL]


def test_text_format(capsys, index):
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "app")
    assert code == 0, err
    lines = out.splitlines()
    assert re.match(rf"^lib==1\.0\s+{re.escape(LINUX_WHEEL)}\s+\({re.escape(index.url)}\)$", lines[0])
    assert lines[1].startswith("app==1.0 ")
    assert re.match(r"^# 2 pins, lock key [0-9a-f]{64}, \d+ ms$", lines[-1])


# ----------------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("argv", "bad"),
    [
        (["app>="], "app>="),
        (["--platform", "amiga-os", "app"], "amiga-os"),
        (["--python-version", "three", "app"], "three"),
        (["--exclude-newer", "yesterday", "app"], "yesterday"),
        (["--no-binary", "bad name!", "app"], "bad name!"),
        (["-r", "no-such-requirements.txt"], "no-such-requirements.txt"),
        (["-c", "no-such-constraints.txt", "app"], "no-such-constraints.txt"),
        (["--environment", "no-such-env.json", "app"], "no-such-env.json"),
        (["--index", "app", "app"], "app"),
        ([], "requirement"),
    ],
)
def test_bad_input_exits_2_naming_the_bad_string(capsys, index, tmp_path, monkeypatch, argv, bad):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *argv)
    assert code == 2, (out, err)
    assert bad in err and out == ""


def test_bad_environment_file_and_requirements_file_exit_2(capsys, index, tmp_path):
    (tmp_path / "env.json").write_text("{not json")
    code, _, err = run(capsys, "resolve", "--index-url", index.url, "--environment", str(tmp_path / "env.json"), "app")
    assert code == 2 and "env.json" in err and "not JSON" in err
    (tmp_path / "env.json").write_text('{"markers": {}}')
    code, _, err = run(capsys, "resolve", "--index-url", index.url, "--environment", str(tmp_path / "env.json"), "app")
    assert code == 2 and "tags" in err
    (tmp_path / "reqs.txt").write_text("app\n-e ./src\n")
    code, _, err = run(capsys, "resolve", "--index-url", index.url, "-r", str(tmp_path / "reqs.txt"))
    assert code == 2 and f"{tmp_path / 'reqs.txt'}:2:" in err
    code, _, err = run(capsys, "resolve", "--index-url", index.url, "--format", "yaml", "app")
    assert code == 2 and "yaml" in err


def test_no_solution_exits_1_with_the_explanation_on_stderr(capsys, index):
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "left", "right")
    assert code == 1 and out == ""
    assert "FAILED_PRECONDITION" not in err  # embedded: no gRPC status names unless -v
    assert "left==1.0 requires util>=2" in err and "right==1.0 requires util<2" in err
    code, _, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "--only-binary", ":all:", "srconly")
    assert code == 1 and "srconly" in err


# ----------------------------------------------------------------------------- requirements and options


def test_requirement_and_constraint_files(capsys, index, tmp_path):
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "more.txt").write_text("beta  # a comment\n")
    (tmp_path / "reqs.txt").write_text("router \\\n  --hash=sha256:0000\n-r nested/more.txt\n")
    (tmp_path / "cons.txt").write_text("util<2\n")
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "-r", str(tmp_path / "reqs.txt"),
                       "-c", str(tmp_path / "cons.txt"))
    assert versions(doc) == {"router": "1.0", "util": "1.5", "beta": "1.0"}
    # A constraint never adds a project.
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "-c", str(tmp_path / "cons.txt"), "beta")
    assert versions(doc) == {"beta": "1.0"}


def test_options_from_a_requirements_file(capsys, file_index, tmp_path, monkeypatch):
    """--pre, --index-url, --only-binary given inside the file, with ${VAR} expansion."""
    (tmp_path / "reqs.txt").write_text("--pre\n--index-url ${TEST_INDEX}\n--only-binary=:all:\nbeta\n")
    monkeypatch.setenv("TEST_INDEX", file_index)
    doc = resolve_json(capsys, "-r", str(tmp_path / "reqs.txt"), *LINUX)
    assert versions(doc) == {"beta": "2.0b1"}
    assert doc["pins"][0]["index"] == file_index


def test_pre_and_exclude_newer(capsys, index):
    assert versions(resolve_json(capsys, "--index-url", index.url, *LINUX, "beta")) == {"beta": "1.0"}
    assert versions(resolve_json(capsys, "--index-url", index.url, *LINUX, "--pre", "beta")) == {"beta": "2.0b1"}
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "--exclude-newer", "2024-03-01", "router")
    assert versions(doc) == {"router": "1.0", "util": "1.5"}
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "--exclude-newer", "2024-07-01T00:00:00Z", "router")
    assert versions(doc) == {"router": "2.0", "util": "2.1"}


def test_binary_options_use_pip_semantics(capsys, index):
    code, _, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "--only-binary", ":all:", "srconly")
    assert code == 1
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "--only-binary", ":all:",
                       "--no-binary", "srconly,other", "srconly")
    assert versions(doc) == {"srconly": "1.0", "util": "2.1"}
    doc = resolve_json(capsys, "--index-url", index.url, *LINUX, "--only-binary", ":all:",
                       "--only-binary", ":none:", "srconly")
    assert [p["is_wheel"] for p in doc["pins"] if p["name"] == "srconly"] == [False]


# --------------------------------------------------------------------------------------- targets


def test_target_python_and_platform_pick_a_different_wheel(capsys, file_index):
    windows = resolve_json(capsys, "--index-url", file_index, *WINDOWS_38, "app")
    files = {p["name"]: p["filename"] for p in windows["pins"]}
    assert files == {"app": "app-1.0-py3-none-any.whl", "lib": WIN_WHEEL, "winonly": "winonly-1.0-py3-none-any.whl"}
    linux = resolve_json(capsys, "--index-url", file_index, *LINUX, "app")
    assert {p["name"]: p["filename"] for p in linux["pins"]} == {"app": "app-1.0-py3-none-any.whl",
                                                                 "lib": LINUX_WHEEL}
    assert windows["lock_key"] != linux["lock_key"]
    if "cp311-cp311-manylinux_2_17_x86_64" in {str(t) for t in sys_tags()}:  # the host itself, when it fits
        host = resolve_json(capsys, "--index-url", file_index, "app")
        assert {p["filename"] for p in host["pins"]} == {"app-1.0-py3-none-any.whl", LINUX_WHEEL}


def test_env_text_and_json(capsys):
    code, out, _ = run(capsys, "env")
    assert code == 0
    assert out.startswith(f"python {'.'.join(map(str, sys.version_info[:3]))}")
    assert "markers:" in out and "sys_platform = " in out and re.search(r"tags \(\d+, best first\):", out)
    code, out, _ = run(capsys, "env", "--format", "json")
    doc = json.loads(out)
    assert doc["markers"]["python_full_version"] == doc["python_version"]
    assert doc["markers"]["sys_platform"] == sys.platform
    assert doc["tags"] and doc["tags"][0] == str(next(iter(sys_tags())))
    assert doc["interpreter"]

    code, out, _ = run(capsys, "env", "--format", "json", "--python-version", "3.12", "--platform", "macos")
    mac = json.loads(out)
    assert mac["markers"]["sys_platform"] == "darwin" and mac["markers"]["python_version"] == "3.12"
    assert mac["markers"]["platform_system"] == "Darwin" and mac["platform"] == "macos"
    assert mac["tags"][0].startswith("cp312-cp312-macosx_") and "py3-none-any" in mac["tags"]
    code, out, _ = run(capsys, "env", "--python-version", "3.12", "--platform", "macos")
    assert "sys_platform = 'darwin'" in out and "platform macos" in out

    code, _, err = run(capsys, "env", "--python-version", "3.12", "--platform", "amiga-os")
    assert code == 2 and "amiga-os" in err


def test_environment_file_round_trip(capsys, file_index, tmp_path):
    code, out, _ = run(capsys, "env", "--format", "json", *WINDOWS_38)
    assert code == 0
    (tmp_path / "agent.json").write_text(out)
    from_file = resolve_json(capsys, "--index-url", file_index, "--environment", str(tmp_path / "agent.json"), "app")
    from_shorthand = resolve_json(capsys, "--index-url", file_index, *WINDOWS_38, "app")
    assert {p["filename"] for p in from_file["pins"]} >= {WIN_WHEEL, "winonly-1.0-py3-none-any.whl"}
    assert from_file["lock_key"] == from_shorthand["lock_key"]


def test_find_links_plain_directory(capsys, builder, tmp_path, monkeypatch):
    links = builder.root / "plain-links"
    if not links.exists():
        links.mkdir()
        for name in ("beta-1.0-py3-none-any.whl", "router-1.0-py3-none-any.whl", "util-1.5-py3-none-any.whl"):
            os.link(builder.file_path(name), links / name)
    empty = IndexBuilder(tmp_path / "empty").simple_url()
    monkeypatch.chdir(builder.root)  # a relative directory is the caller's, made absolute for the server
    doc = resolve_json(capsys, "--index-url", empty, "--find-links", "plain-links", *LINUX, "router", "beta")
    assert versions(doc) == {"router": "1.0", "util": "1.5", "beta": "1.0"}
    for pin in doc["pins"]:
        assert pin["index"] == os.path.abspath(links)
        assert pin["sha256"] == builder.get(pin["filename"]).sha256
    doc = resolve_json(capsys, "--no-index", "--index-url", empty, "--find-links", str(links), *LINUX, "beta")
    assert versions(doc) == {"beta": "1.0"}


# ------------------------------------------------------------------------------------------- state


def test_each_venvsmith_home_is_separate(capsys, index, tmp_path, monkeypatch):
    argv = ("--index-url", index.url, *LINUX, "app", "router")
    monkeypatch.setenv("VENVSMITH_HOME", str(tmp_path / "a"))
    first = resolve_json(capsys, *argv)
    second = resolve_json(capsys, *argv)
    assert not first["stats"]["resolution_cache_hit"] and second["stats"]["resolution_cache_hit"]
    assert (tmp_path / "a").is_dir() and any((tmp_path / "a").iterdir())
    monkeypatch.setenv("VENVSMITH_HOME", str(tmp_path / "b"))
    other = resolve_json(capsys, *argv)
    stats = other["stats"]
    assert not stats["resolution_cache_hit"]
    assert stats["pages_cached"] == 0 and stats["metadata_cached"] == 0 and stats["metadata_fetched"] > 0
    assert other["lock_key"] == first["lock_key"]
    assert {p.name for p in (tmp_path / "b").iterdir()} and not (tmp_path / "home").exists()


def test_config_command_shows_pip_configuration(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://configured.invalid/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "/links-a /links-b")
    code, out, _ = run(capsys, "config")
    assert code == 0
    assert f"home:             {tmp_path / 'home'}" in out
    assert "index-url:        http://configured.invalid/simple" in out
    assert "find-links:       /links-a /links-b" in out
    assert "index-url from :env:.index-url (PIP_INDEX_URL)" in out


def test_config_command_never_prints_index_credentials(capsys, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://ci-user:s3cret-pw@127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://__token__:tok-secret@127.0.0.1:9/extra")
    code, out, err = run(capsys, "config")
    assert code == 0
    assert "127.0.0.1:9/simple" in out and "127.0.0.1:9/extra" in out
    assert "s3cret" not in out + err and "tok-secret" not in out + err


# ---------------------------------------------------------------------------------- subprocesses


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "venvsmith.cli", *argv]


@pytest.mark.slow
def test_subprocess_cli_matches_in_process(capsys, index, tmp_path):
    embedded = resolve_json(capsys, "--index-url", index.url, *LINUX, "app", "router")
    proc = subprocess.run(_cli("resolve", "--index-url", index.url, *LINUX, "--format", "json", "app", "router"),
                          env=hermetic_env(tmp_path / "sub-home"), cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["lock_key"] == embedded["lock_key"] and doc["pins"] == embedded["pins"]
    assert not doc["stats"]["resolution_cache_hit"]  # its own home: nothing shared with the in-process runs
    assert (tmp_path / "sub-home").is_dir()
    bad = subprocess.run(_cli("resolve", "--index-url", index.url, "app>="), env=hermetic_env(tmp_path / "sub-home"),
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "app>=" in bad.stderr


class ServerProcess:
    """``venvsmith serve resolver --port 0`` in a subprocess; ``address`` is parsed from its first line."""

    def __init__(self, home: Path, allow: tuple[str, ...] = ()) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log = (home / "server.log").open("w")
        self.proc = subprocess.Popen(
            _cli("serve", "resolver", "--host", "127.0.0.1", "--port", "0",
                 *(arg for prefix in allow for arg in ("--allow-index", prefix))),
            env=hermetic_env(home), cwd=home, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise RuntimeError("the resolver server printed nothing within 60 s") from None
        match = re.search(r"listening on (\S+):(\d+)$", line.strip())
        if not match:
            self.stop()
            raise RuntimeError(f"unexpected first line from the server: {line!r}")
        self.host, self.port = match.group(1), int(match.group(2))
        assert self.port > 0
        self.address = f"{self.host}:{self.port}"

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory, index, builder) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("server-home"), allow=(index.base_url, str(builder.root)))
    yield process
    assert process.stop() == 0  # SIGTERM is a clean shutdown


@pytest.mark.slow
def test_remote_gives_the_same_answer_as_embedded(capsys, server, index, file_index):
    for url in (index.url, file_index):
        argv = ("--index-url", url, *LINUX, "app", "router")
        embedded = resolve_json(capsys, *argv)
        remote = resolve_json(capsys, "--server", server.address, *argv)
        assert remote["lock_key"] == embedded["lock_key"]
        assert remote["pins"] == embedded["pins"]
    windows = resolve_json(capsys, "--server", server.address, "--index-url", file_index, *WINDOWS_38, "app")
    assert WIN_WHEEL in {p["filename"] for p in windows["pins"]}
    for fmt in ("requirements", "pylock", "text"):
        local = run(capsys, "resolve", "--index-url", index.url, *LINUX, "--format", fmt, "app")
        remote = run(capsys, "resolve", "--server", server.address, "--index-url", index.url, *LINUX,
                     "--format", fmt, "app")
        assert local[0] == remote[0] == 0
        if fmt != "text":  # text shows timings
            assert local[1] == remote[1]


@pytest.mark.slow
def test_remote_exit_codes(capsys, server, index, tmp_path):
    code, _, err = run(capsys, "resolve", "--server", server.address, "--index-url", index.url, *LINUX,
                       "left", "right")
    assert code == 1 and "left==1.0 requires util>=2" in err
    code, _, err = run(capsys, "resolve", "--server", server.address, "--index-url", index.url, "app>=")
    assert code == 2 and "app>=" in err
    code, _, err = run(capsys, "resolve", "--server", server.address, "--index-url", index.url,
                       "--platform", "amiga-os", "app")
    assert code == 2 and "amiga-os" in err
    code, out, _ = run(capsys, "env", "--server", server.address, "--format", "json", "--python-version", "3.12",
                       "--platform", "macos")
    assert code == 0 and json.loads(out)["markers"]["sys_platform"] == "darwin"
    # The server kept its own state under its VENVSMITH_HOME; this test's home was never created.
    assert not (tmp_path / "home").exists()


@pytest.mark.slow
def test_remote_server_down_exits_3(capsys, index):
    with IndexServer(IndexBuilder(index.builder.root / "unused")) as probe:
        dead = f"127.0.0.1:{probe.port}"  # a port that was just closed: nothing listens there
    code, _, err = run(capsys, "resolve", "--server", dead, "--timeout", "5", "--retries", "0", "--index-url",
                       index.url, "app")
    assert code == 3 and "UNAVAILABLE" in err and dead in err
