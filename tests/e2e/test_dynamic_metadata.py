"""An sdist whose dependencies are dynamic: the resolver asks the builder, which runs the backend in isolation."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from builder_service.engine import BuildEngine, BuilderSettings
from resolver_service.engine import EngineSettings, ResolverEngine
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.convert import pin_from_proto
from venvsmith.core.errors import DynamicMetadata
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

INTREE_BACKEND = '''
import base64, hashlib, os, zipfile

def _meta(config_settings):
    dep = "dep<2" if (config_settings or {}).get("legacy") else "dep>=2"
    return "Metadata-Version: 2.1\\nName: dyn\\nVersion: 1.0\\nRequires-Dist: %s\\n" % dep

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, "dyn-1.0.dist-info")
    os.makedirs(d)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write(_meta(config_settings))
    return "dyn-1.0.dist-info"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("not needed to resolve")
'''


def _dynamic_sdist(out: Path) -> Path:
    path = out / "dyn-1.0.tar.gz"
    members = {
        "dyn-1.0/PKG-INFO": b"Metadata-Version: 2.2\nName: dyn\nVersion: 1.0\nDynamic: Requires-Dist\n",
        "dyn-1.0/pyproject.toml": b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "dyn-1.0/backend.py": INTREE_BACKEND.encode(),
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def index(tmp_path, index_builder):
    index_builder.add("dep", "1.0")
    index_builder.add("dep", "2.5")
    links = tmp_path / "links"
    links.mkdir()
    _dynamic_sdist(links)
    return index_builder.simple_url(), str(links)


def _request(index):
    simple, links = index
    return resolver_pb2.ResolveRequest(
        requirements=["dyn"], index=common_pb2.IndexConfig(index_url=simple, find_links=[links]))


def test_without_a_builder_dynamic_metadata_is_a_precondition_failure(tmp_path, index):
    engine = ResolverEngine(EngineSettings(home=tmp_path / "r", pip=PipIndexConfig(index_url=index[0])))
    with pytest.raises(DynamicMetadata) as err:
        engine.resolve(_request(index))
    assert "dyn-1.0.tar.gz" in err.value.message
    engine.close()


@pytest.mark.slow
def test_with_a_builder_the_backend_prepares_metadata(tmp_path, index):
    builder = BuildEngine(BuilderSettings(home=tmp_path / "h", pip=PipIndexConfig()))
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "h", pip=PipIndexConfig(index_url=index[0])),
                              builder.wheels)
    pins = {p.name: p.version for p in resolver.resolve(_request(index)).pins}
    assert pins == {"dyn": "1.0", "dep": "2.5"}
    builder.close()
    resolver.close()


@pytest.mark.slow
def test_metadata_prepared_with_other_config_settings_is_prepared_again(tmp_path, index):
    """The backend's config settings can change the metadata it prepares, so they are part of its action key."""
    builder = BuildEngine(BuilderSettings(home=tmp_path / "h", pip=PipIndexConfig()))
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "h", pip=PipIndexConfig(index_url=index[0])),
                              builder.wheels)
    try:
        pin = pin_from_proto(next(p for p in resolver.resolve(_request(index)).pins if p.name == "dyn"))
        target = TargetEnvironment.from_local()
        simple, links = index

        def requires(**config_settings: str) -> bytes:
            options = builder_pb2.BuildOptions(index=common_pb2.IndexConfig(index_url=simple, find_links=[links]),
                                               config_settings=config_settings)
            return builder.wheels.prepare_metadata(pin, target, options)[1]

        assert b"Requires-Dist: dep>=2" in requires()
        assert b"Requires-Dist: dep<2" in requires(legacy="1")
        assert b"Requires-Dist: dep>=2" in requires()  # each is kept under its own key
    finally:
        builder.close()
        resolver.close()
