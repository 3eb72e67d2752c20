"""``venvsmith serve builder --sandbox auto|bwrap|namespaces|none``: the sandbox in use is printed and reported by
the health endpoint; a sandbox that does not work here stops the server from starting."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env

pytestmark = pytest.mark.slow


def health(server: BuilderProcess) -> str:
    with urllib.request.urlopen(f"{server.http_url}healthz", timeout=10) as answer:
        return answer.read().decode()


def test_auto_picks_a_real_sandbox_and_reports_it(tmp_path: Path) -> None:
    with BuilderProcess(tmp_path / "home") as server:
        assert server.proc.stdout is not None
        line = server.proc.stdout.readline().strip()
        assert line in ("build sandbox: bwrap", "build sandbox: namespaces")
        assert f"{line}\n" in health(server)


def test_none_is_said_out_loud(tmp_path: Path) -> None:
    with BuilderProcess(tmp_path / "home", "--sandbox", "none") as server:
        assert server.proc.stdout is not None
        assert server.proc.stdout.readline().strip() == "build sandbox: none (builds run unsandboxed)"
        assert health(server).startswith("ok\n") and "build sandbox: none\n" in health(server)


@pytest.mark.parametrize(("mode", "expected"), [
    ("bwrap", "no usable build sandbox for --sandbox bwrap: bwrap: not installed"),
    ("auto", "(--sandbox none runs builds unsandboxed)"),
])
def test_a_missing_sandbox_refuses_to_start(tmp_path: Path, mode: str, expected: str) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**hermetic_env(tmp_path / "home"), "PATH": str(empty)}  # neither bwrap nor unshare on the PATH
    done = subprocess.run(cli("serve", "builder", "--port", "0", "--sandbox", mode), env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr and "listening" not in done.stdout
