"""The builder asks each interpreter about itself once: discovery, target environment and identity share a probe."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from builder_service.engine import BuildEngine, BuilderSettings
from venvsmith.core.interpreters import ENV_VAR, candidate_paths


def test_one_probe_per_interpreter_answers_discovery_environment_and_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, sys.executable)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    assert len(candidate_paths()) == 1
    engine = BuildEngine(BuilderSettings(home=tmp_path / "home"))
    workspace = engine.workspace  # interpreter lookups live in the workspace both halves share
    try:
        [(interpreter, env)] = workspace.interpreters()
        hits = workspace._query_cache.stats["hits"]
        base = workspace.base_interpreter(interpreter.path)
        assert workspace.environment_of(interpreter) == env
        assert workspace._query_cache.stats["runs"] == 1
        assert workspace._query_cache.stats["hits"] > hits  # identity from the discovery's answer
        assert base.version == str(interpreter.version)
    finally:
        engine.close()
