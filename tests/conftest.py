"""Shared pytest configuration: Hypothesis profiles and the hermetic index fixtures.

Fixtures:

* ``index_builder`` -- an :class:`~tests.fixtures.index.IndexBuilder` rooted in ``tmp_path / "index"``.
* ``index_builder_factory`` -- ``make(name="index")`` returns another builder under ``tmp_path / name``
  (for tests with several indexes / find-links locations).
* ``index_server`` -- factory ``index_server(builder=None, **options)`` returning a started
  :class:`~tests.fixtures.index.IndexServer` (default builder: ``index_builder``); stopped at teardown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # make ``import tests.fixtures`` work however pytest was started
    sys.path.insert(0, str(_ROOT))

from tests.fixtures.index import IndexBuilder, IndexServer  # noqa: E402
from tests.fixtures.registry import RegistryProcess, registry_available  # noqa: E402

settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)


@pytest.fixture
def index_builder(tmp_path: Path) -> IndexBuilder:
    """An empty index under ``tmp_path / "index"``."""
    return IndexBuilder(tmp_path / "index")


@pytest.fixture
def index_builder_factory(tmp_path: Path) -> Callable[[str], IndexBuilder]:
    """``make(name)`` -> a fresh :class:`IndexBuilder` under ``tmp_path / name`` (names must differ)."""

    def make(name: str = "index") -> IndexBuilder:
        return IndexBuilder(tmp_path / name)

    return make


@pytest.fixture
def index_server(index_builder: IndexBuilder) -> Iterator[Callable[..., IndexServer]]:
    """Factory: ``index_server(builder=None, **options)`` -> a started :class:`IndexServer`.

    ``options`` are :class:`IndexServer`'s keyword arguments (``formats``, ``ranges``, ``auth``, ``token``,
    ``fail_status``, ``fail_times``, ``fail_match``, ``delay``, ``delay_match``, ``cache_control``). Every server
    started through the factory is stopped at teardown.
    """
    started: list[IndexServer] = []

    def start(builder: IndexBuilder | None = None, **options: Any) -> IndexServer:
        server = IndexServer(builder if builder is not None else index_builder, **options).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    """A real ``docker-registry`` on an ephemeral 127.0.0.1 port, its storage under ``tmp_path``; a test that
    needs one fails (never skips) where it is not installed."""
    if not registry_available():
        pytest.fail("docker-registry is not installed: run `make registry-tools`")
    with RegistryProcess(tmp_path / "registry") as r:
        yield r
