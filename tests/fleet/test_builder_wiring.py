"""Which builders single-flight across replicas: an oci:// store (shared action results) with a Redis ``cache``;
a file store or a SQLite cache stays local (nothing is contacted to decide)."""

from __future__ import annotations

import pytest

from builder_service.registry_actions import RegistryActions
from builder_service.sandbox import preferred_sandbox
from builder_service.workspace import BuilderSettings, Workspace

STORE = "oci://127.0.0.1:9/fleet"  # never contacted here
REDIS = "redis://127.0.0.1:9/0"


@pytest.mark.parametrize(("store", "cache", "shared", "fleet"), [
    (STORE, REDIS, True, True),
    (STORE, "", True, False),
    (STORE, "sqlite:///tmp/elsewhere", True, False),
    ("", REDIS, False, False),
    ("", "", False, False),
])
def test_fleet_single_flight_only_with_a_shared_store_and_redis(tmp_path, store, cache, shared, fleet):
    settings = BuilderSettings(home=tmp_path, store=store, cache=cache, lease_seconds=3,
                               sandbox=preferred_sandbox(hidden=[tmp_path]))
    workspace = Workspace(settings)
    try:
        assert isinstance(workspace.actions.shared, RegistryActions) is shared
        assert (workspace.actions.fleet is not None) is fleet
        if fleet:
            assert workspace.actions.fleet.lease_ms == 3000
            assert workspace.actions.fleet.tier.description == "redis://127.0.0.1:9/0"
            assert workspace.actions.fleet.tier.component == "shared cache redis://127.0.0.1:9/0"
    finally:
        workspace.close()
        workspace.actions.close()
        workspace.store.close()


def test_a_builder_serving_its_own_resolver_shares_that_resolvers_redis_tier(tmp_path, monkeypatch):
    from venvsmith.cli.compose import embedded_engines

    monkeypatch.setenv("VENVSMITH_HOME", str(tmp_path))
    monkeypatch.setenv("VENVSMITH_CACHE", REDIS)
    monkeypatch.setenv("VENVSMITH_STORE", STORE)
    resolver, lazy = embedded_engines(sandbox=preferred_sandbox(hidden=[tmp_path]))
    try:
        builder = lazy.get()
        assert resolver.shared is not None
        assert builder.workspace.fleet is not None and builder.workspace.fleet.tier is resolver.shared
    finally:
        lazy.close()
        resolver.close()
