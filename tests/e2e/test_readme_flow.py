"""The README's "Using it" flow, followed literally: serve a builder, make a venv through it, then ``pip install``
from that build's wheelhouse with the lock key the CLI printed. The commands are read from README.md; only the
fixed ports become ephemeral ones, ``.venv/bin/venvsmith`` this interpreter's CLI, ``requirements.txt`` a file
naming this test's index, and pip installs into ``--target`` instead of the running environment."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.index import IndexBuilder, IndexServer

README = Path(__file__).resolve().parents[2] / "README.md"
LOCK_KEY = re.compile(r"lock key ([0-9a-f]+)")

pytestmark = pytest.mark.slow


def readme_command(start: str, **placeholders: str) -> list[str]:
    """The README's command line that starts with ``start`` (its comment dropped), ``<name>`` placeholders
    (``lock_key`` for ``<lock key>``) filled in."""
    lines = [line for line in README.read_text().splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    line = lines[0]
    for name, value in placeholders.items():
        line = line.replace(f"<{name.replace('_', ' ')}>", value)
    return shlex.split(line, comments=True)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("readme-index"))
    b.add("requests", "2.0", deps=["urllib3>=1"])
    b.add("urllib3", "1.26")
    with IndexServer(b) as server:
        yield server


def test_the_readme_flow_works_end_to_end(index, tmp_path):
    serve = readme_command(".venv/bin/venvsmith serve builder ")
    assert serve[:6] == [".venv/bin/venvsmith", "serve", "builder", "--port", "50052", "--http-port"], serve
    builder = BuilderProcess(tmp_path / "server-home", allow=[index.base_url])  # the same, on free ports
    try:
        (tmp_path / "requirements.txt").write_text(f"--index-url {index.url}\nrequests\n")
        venv = readme_command(".venv/bin/venvsmith venv ./env -r requirements.txt --server ")
        at = venv.index("--server") + 1
        assert venv[at] == "127.0.0.1:50052", venv
        argv = cli(*venv[1:at], builder.address, *venv[at + 1:])
        done = subprocess.run(argv, cwd=tmp_path, env=hermetic_env(tmp_path / "client-home"), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        keys = LOCK_KEY.findall(done.stdout)
        assert len(keys) == 1, done.stdout
        key = keys[0]
        assert len(key) == 64  # the whole key: what the wheelhouse URL takes

        pip = readme_command("pip install --index-url http://127.0.0.1:8080/wheelhouse/<lock key>/simple/ ",
                             lock_key=key)
        http = builder.http_url.rstrip("/")
        pip = [a.replace("http://127.0.0.1:8080", http) for a in pip]
        env = hermetic_env(tmp_path / "pip-home")
        env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        done = subprocess.run([sys.executable, "-m", *pip, "--target", str(tmp_path / "site")], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert sorted(p.name for p in (tmp_path / "site").glob("*.dist-info")) == [
            "requests-2.0.dist-info", "urllib3-1.26.dist-info"]

        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as short:  # an abbreviated key says what a key is
            urllib.request.urlopen(f"{http}/wheelhouse/{key[:16]}/simple/", timeout=30)
        assert short.value.code == 404 and b"64 hex digits" in short.value.read()

        # `resolve` and `build` name the same key, spelled the same way.
        done = subprocess.run(cli("resolve", "-r", "requirements.txt", "--server", builder.address), cwd=tmp_path,
                              env=hermetic_env(tmp_path / "client-home"), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert LOCK_KEY.findall(done.stdout) == [key]
        done = subprocess.run(cli("build", "-q", "-r", "requirements.txt", "--server", builder.address),
                              cwd=tmp_path, env=hermetic_env(tmp_path / "client-home"), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert LOCK_KEY.findall(done.stdout) == [key]
    finally:
        assert builder.stop() == 0, builder.log()
