"""The embedded ``venvsmith resolve`` imports no server machinery: gRPC (with asyncio and ssl's event loop),
Prometheus (with http.server and email), the metrics and the builder's store.

They were a third of the process's wall clock for a warm resolution (``bench/resolve_bench.py``, the README's
"Resolve speed" section); a module-level import of any of them on the CLI's path brings that back. Measured in a
fresh interpreter, since the test process itself has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.index import IndexBuilder, IndexServer

#: Modules the embedded resolve must not import (a server or the builder needs them, a resolution does not).
SERVER_ONLY = (
    "grpc",
    "grpc_status",
    "prometheus_client",
    "asyncio",
    "venvsmith.core.observe",
    "venvsmith.core.grpc_util",
    "builder_service.store.filesystem",
)

_PROBE = """
import json, sys
from venvsmith.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump({"exit": code, "imported": sorted(m for m in MODULES if m in sys.modules)}, fh)
""".replace("MODULES", repr(SERVER_ONLY))


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> IndexBuilder:
    b = IndexBuilder(tmp_path_factory.mktemp("embedded-imports-index"))
    b.add("app", "1.0", deps=["lib>=1"])
    b.add("lib", "1.0")
    return b


@pytest.fixture(scope="module")
def http_index(builder: IndexBuilder) -> Iterator[str]:
    with IndexServer(builder) as server:
        yield server.url


def _resolve_in_fresh_interpreter(tmp_path: Path, index_url: str, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(VENVSMITH_HOME=str(tmp_path / "home"), PIP_CONFIG_FILE=os.devnull)
    report = tmp_path / "imports.json"
    argv = ["resolve", "app", "--index-url", index_url, "--python-version", "3.11", "--format", "json", *extra]
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(report), *argv], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pins"], proc.stdout
    return json.loads(report.read_text())


@pytest.mark.parametrize("kind", ["file", "http"])
def test_embedded_resolve_imports_no_server_machinery(tmp_path: Path, builder: IndexBuilder, http_index: str,
                                                      kind: str) -> None:
    url = builder.simple_url() if kind == "file" else http_index
    first = _resolve_in_fresh_interpreter(tmp_path, url)
    assert first == {"exit": 0, "imported": []}
    # A new resolution over cached pages and metadata (the bench's warm case, ``--no-cache``), then the
    # resolution cache's answer: the same.
    assert _resolve_in_fresh_interpreter(tmp_path, url, "--no-cache") == {"exit": 0, "imported": []}
    assert _resolve_in_fresh_interpreter(tmp_path, url) == {"exit": 0, "imported": []}
