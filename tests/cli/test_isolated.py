"""``--isolated`` / ``VENVSMITH_ISOLATED=1``: only the indexes on the command line, never pip's configuration; and a
failed resolution lists the indexes that were in effect (credentials redacted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from tests.fixtures.hermetic import isolate
from venvsmith.cli import main
from venvsmith.core.config import PipIndexConfig, effective_pip_config
from venvsmith.core.index.settings import settings_from_config
from venvsmith.v1 import common_pb2, resolver_pb2


@pytest.fixture
def indexes(tmp_path, index_builder_factory, monkeypatch) -> tuple[str, str]:
    """(main, configured): pip's configuration (a pip.conf) names ``configured`` as an extra index, which has a
    newer ``foo`` and a project ``onlythere`` that ``main`` lacks."""
    main_index = index_builder_factory("main")
    main_index.add("foo", "1.0")
    configured = index_builder_factory("configured")
    configured.add("foo", "9.0")
    configured.add("onlythere", "1.0")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nextra-index-url = {configured.simple_url()}\n")
    isolate(monkeypatch, tmp_path / "home", pip_config=str(conf))
    return main_index.simple_url(), configured.simple_url()


def _foo(capsys, *args: str) -> str:
    assert main(["resolve", "foo", "--format", "json", "--no-cache", *args]) == 0
    return {p["name"]: p["version"] for p in json.loads(capsys.readouterr().out)["pins"]}["foo"]


def test_without_isolated_the_configured_extra_index_is_merged(indexes, capsys):
    assert _foo(capsys, "-i", indexes[0]) == "9.0"


def test_isolated_uses_only_the_command_line_indexes(indexes, capsys):
    assert _foo(capsys, "-i", indexes[0], "--isolated") == "1.0"


def test_isolated_ignores_pip_environment_variables(indexes, capsys, monkeypatch):
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", indexes[1])
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert _foo(capsys, "-i", indexes[0]) == "9.0"
    assert _foo(capsys, "-i", indexes[0], "--isolated") == "1.0"


def test_venvsmith_isolated_environment_variable(indexes, capsys, monkeypatch):
    monkeypatch.setenv("VENVSMITH_ISOLATED", "1")
    assert _foo(capsys, "-i", indexes[0]) == "1.0"


def test_failure_lists_the_indexes_in_effect_redacted(indexes, capsys, index_server, index_builder):
    index_builder.add("bar", "1.0")
    server = index_server(auth=("bob", "s3cret-pw"))
    assert "s3cret-pw@" in server.auth_url
    assert main(["resolve", "onlythere", "-i", server.auth_url, "--isolated"]) == 1
    err = capsys.readouterr().err
    assert f"indexes in effect: {server.url.replace('http://', 'http://****@')}" in err
    assert "s3cret-pw" not in err and indexes[1] not in err
    assert main(["resolve", "nowhere", "-i", indexes[0]]) == 1
    err = capsys.readouterr().err
    assert f"indexes in effect: {indexes[1]}, {indexes[0]}" in err


def test_an_isolated_request_ignores_the_servers_pip_configuration(tmp_path, indexes):
    engine = ResolverEngine(EngineSettings(home=tmp_path / "srv", pip=PipIndexConfig(extra_index_urls=(indexes[1],))))
    try:
        for isolated, version in ((False, "9.0"), (True, "1.0")):
            request = resolver_pb2.ResolveRequest(
                requirements=["foo"], index=common_pb2.IndexConfig(index_url=indexes[0], isolated=isolated))
            assert [p.version for p in engine.resolve(request).pins] == [version]
    finally:
        engine.close()


def test_isolated_without_an_index_is_pips_builtin_default(monkeypatch):
    from pip._internal.models.index import PyPI

    configured = PipIndexConfig(index_url="http://127.0.0.1:9/simple/", extra_index_urls=("http://127.0.0.1:9/x/",))
    settings = settings_from_config(common_pb2.IndexConfig(isolated=True), configured, None)
    assert settings.indexes() == [PyPI.simple_url]
    monkeypatch.setenv("VENVSMITH_ISOLATED", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    assert effective_pip_config() == PipIndexConfig()


def test_config_command_reports_isolation(monkeypatch, capsys, tmp_path: Path):
    monkeypatch.setenv("VENVSMITH_HOME", str(tmp_path))
    monkeypatch.setenv("VENVSMITH_ISOLATED", "1")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:9/x/")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "isolated" in out and "127.0.0.1:9" not in out
