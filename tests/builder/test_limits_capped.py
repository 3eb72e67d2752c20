"""A request's build limits are capped by the builder's own: a client cannot grant itself more time, memory or
output than the operator allows."""

from __future__ import annotations

from pathlib import Path

from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.limits import BuildLimits, MiB
from builder_service.sandbox import NoSandbox
from venvsmith.v1 import builder_pb2

SERVER = BuildLimits(timeout_seconds=60, memory_bytes=512 * MiB, max_output_bytes=32 * MiB)


def limits_for(tmp_path: Path, **asked: int) -> BuildLimits:
    engine = BuildEngine(BuilderSettings(home=tmp_path / "home", limits=SERVER, sandbox=NoSandbox()))
    try:
        options = builder_pb2.BuildOptions(limits=builder_pb2.BuildLimits(**asked))
        return engine.workspace.limits(options)
    finally:
        engine.close()


def test_larger_limits_than_the_servers_are_capped(tmp_path: Path) -> None:
    asked = limits_for(tmp_path, timeout_seconds=10**6, memory_bytes=1 << 50, max_output_bytes=1 << 50)
    assert asked == SERVER


def test_smaller_limits_are_kept_and_unset_ones_are_the_servers(tmp_path: Path) -> None:
    assert limits_for(tmp_path, timeout_seconds=5) == BuildLimits(5, SERVER.memory_bytes, SERVER.max_output_bytes)
    assert limits_for(tmp_path) == SERVER
