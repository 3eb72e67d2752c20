from __future__ import annotations

import pytest

from tests.fixtures.registry import RegistryProcess, registry_available


@pytest.fixture
def registry(tmp_path):
    if not registry_available():
        pytest.fail("docker-registry is not installed: run `make registry-tools`")
    with RegistryProcess(tmp_path / "registry") as r:
        yield r
