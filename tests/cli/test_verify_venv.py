"""``venvsmith venv --server`` checks the server's pins against the client's own indexes before unpacking: a server
that lies about a pin's hash gets exit 1 and nothing unpacked; ``--no-verify`` skips the check.

The lying server is the real builder servicer behind a wrapper that changes one streamed pin (as
``test_cli_build._OtherHostBuilder`` changes the interpreter); everything stays on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli_build import hermetic, run  # noqa: F401 - hermetic: autouse fixture
from tests.fixtures.index import IndexBuilder, IndexServer

pytestmark = pytest.mark.slow
FORGED = "cd" * 32


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("verify-venv-index"))
    b.add("app", "1.0", deps=["lib>=1"])
    b.add("lib", "1.0")
    with IndexServer(b) as server:
        yield server


class _LyingBuilder:
    """The real builder servicer, streaming ``lib``'s pin with a forged sha256 (``lie=True``); else honest."""

    def __init__(self, real) -> None:
        self.real = real
        self.lie = True

    def __getattr__(self, name):
        return getattr(self.real, name)

    def ResolveAndBuild(self, request, context):  # noqa: N802 - the gRPC method's name
        for event in self.real.ResolveAndBuild(request, context):
            if self.lie and event.WhichOneof("event") == "resolve" and event.resolve.WhichOneof("event") == "pin" \
                    and event.resolve.pin.name == "lib":
                event.resolve.pin.sha256 = FORGED
            yield event


@pytest.fixture(scope="module")
def lying(tmp_path_factory) -> Iterator[tuple[str, _LyingBuilder]]:
    from builder_service.artifact_service import ArtifactServicer
    from builder_service.engine import BuildEngine, BuilderSettings
    from builder_service.service import BuilderServicer
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.clients.resolver import EmbeddedResolver
    from venvsmith.core.grpc_util import build_server
    from venvsmith.v1 import artifact_pb2_grpc, builder_pb2_grpc

    home = tmp_path_factory.mktemp("lying-server-home")
    resolver = EmbeddedResolver(ResolverEngine(EngineSettings(home=home)))
    engine = BuildEngine(BuilderSettings(home=home), resolver)
    servicer = _LyingBuilder(BuilderServicer(engine))
    server, port = build_server([(builder_pb2_grpc.add_BuilderServiceServicer_to_server, servicer),
                                 (artifact_pb2_grpc.add_ArtifactServiceServicer_to_server,
                                  ArtifactServicer(engine.store))],
                                ["venvsmith.v1.BuilderService", "venvsmith.v1.ArtifactService"], "127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(0)
        engine.close()
        resolver.close()


def test_a_server_that_lies_about_a_hash_is_refused_and_nothing_is_unpacked(capsys, index, lying, tmp_path: Path):
    address, servicer = lying
    servicer.lie = True
    dest = tmp_path / "env"
    code, _, err = run(capsys, "venv", str(dest), "-q", "--server", address, "--index-url", index.url, "app")
    assert code == 1, err
    assert "lib==1.0" in err and FORGED in err and "nothing unpacked" in err
    assert not dest.exists() or not any(dest.iterdir())


def test_no_verify_skips_the_check(capsys, index, lying, tmp_path: Path):
    address, servicer = lying
    servicer.lie = True
    dest = tmp_path / "env"
    code, out, err = run(capsys, "venv", str(dest), "-q", "--no-verify", "--server", address,
                         "--index-url", index.url, "app")
    assert code == 0, err
    assert "venv ready" in out and (dest / "pyvenv.cfg").is_file()


def test_an_honest_server_passes_the_check(capsys, index, lying, tmp_path: Path):
    address, servicer = lying
    servicer.lie = False
    dest = tmp_path / "env"
    code, out, err = run(capsys, "venv", str(dest), "-q", "--server", address, "--index-url", index.url, "app")
    assert code == 0, err
    assert (dest / "pyvenv.cfg").is_file()


# ------------------------------------------------------------------- check (3): a venv directory or archive


@pytest.fixture(scope="module")
def tool_index(tmp_path_factory) -> Iterator[IndexBuilder]:
    b = IndexBuilder(tmp_path_factory.mktemp("verify-tree-index"))
    b.add("tool", "1.0", deps=["lib>=1"], console_scripts={"tool": "tool:main"})  # an installer-written script
    b.add("lib", "1.0")
    yield b


def _venv_and_lock(capsys, tool_index: IndexBuilder, tmp_path: Path) -> tuple[Path, Path]:
    url = tool_index.simple_url()
    dest = tmp_path / "env"
    code, _, err = run(capsys, "venv", str(dest), "-q", "--isolated", "--link-mode", "copy", "--index-url", url, "tool")
    assert code == 0, err
    lock = tmp_path / "pylock.toml"
    code, _, err = run(capsys, "resolve", "--isolated", "--index-url", url, "--format", "pylock", "-o", str(lock),
                       "tool")
    assert code == 0, err
    return dest, lock


def _verify_tree(capsys, tool_index: IndexBuilder, lock: Path, venv: Path) -> tuple[int, str]:
    code, out, err = run(capsys, "verify", "--isolated", "--index-url", tool_index.simple_url(), str(lock), "tool",
                         "--venv", str(venv))
    return code, out + err


def _site(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def test_a_venv_directory_verifies(capsys, tool_index, tmp_path):
    venv, lock = _venv_and_lock(capsys, tool_index, tmp_path)
    assert (venv / "bin" / "tool").is_file()
    code, text = _verify_tree(capsys, tool_index, lock, venv)
    assert code == 0, text


def test_a_modified_file_in_the_venv_is_invalid_and_named(capsys, tool_index, tmp_path):
    venv, lock = _venv_and_lock(capsys, tool_index, tmp_path)
    target = _site(venv) / "lib" / "__init__.py"
    target.write_text(target.read_text() + "import os  # injected\n")
    code, text = _verify_tree(capsys, tool_index, lock, venv)
    assert code == 1, text
    assert f"{target.relative_to(venv)}: modified" in text


def test_a_file_changed_with_its_installed_record_is_caught_by_the_pinned_wheel(capsys, tool_index, tmp_path):
    """A builder that rewrites the RECORD to match its changes: the pinned wheel's own RECORD still disagrees."""
    import base64
    import hashlib

    venv, lock = _venv_and_lock(capsys, tool_index, tmp_path)
    site = _site(venv)
    target = site / "lib" / "__init__.py"
    data = target.read_bytes() + b"import os  # injected\n"
    target.write_bytes(data)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record = site / "lib-1.0.dist-info" / "RECORD"
    lines = [f"lib/__init__.py,sha256={digest},{len(data)}" if line.startswith("lib/__init__.py,") else line
             for line in record.read_text().splitlines()]
    record.write_text("\n".join(lines) + "\n")
    code, text = _verify_tree(capsys, tool_index, lock, venv)
    assert code == 1, text
    assert "modified" not in text
    assert "lib/__init__.py: differs from the pinned wheel lib-1.0-py3-none-any.whl" in text


def test_a_file_added_to_site_packages_is_invalid(capsys, tool_index, tmp_path):
    venv, lock = _venv_and_lock(capsys, tool_index, tmp_path)
    (_site(venv) / "zz-evil.pth").write_text("import os\n")
    code, text = _verify_tree(capsys, tool_index, lock, venv)
    assert code == 1, text
    assert "zz-evil.pth: in site-packages but in no RECORD" in text


def test_a_venv_archive_verifies_and_a_bad_one_is_bad_input(capsys, tool_index, tmp_path):
    import json

    _venv, lock = _venv_and_lock(capsys, tool_index, tmp_path)
    code, out, err = run(capsys, "build", "-q", "--isolated", "--format", "json", "--no-wheelhouse",
                         "--index-url", tool_index.simple_url(), "tool")
    assert code == 0, err
    ref = next(a["digest"] for a in json.loads(out)["artifacts"] if a["kind"] == "venv_archive")
    archive = tmp_path / "env.tar.zst"
    code, _, err = run(capsys, "fetch", ref, str(archive))
    assert code == 0, err
    code, text = _verify_tree(capsys, tool_index, lock, archive)
    assert code == 0, text
    code, text = _verify_tree(capsys, tool_index, lock, lock)  # not an archive
    assert code == 2 and "not a venv directory or .tar.zst archive" in text, text
