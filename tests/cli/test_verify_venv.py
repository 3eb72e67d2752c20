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
