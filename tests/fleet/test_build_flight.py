"""The build hook of the fleet's single-flight: two builder processes' action caches over one shared store and
Redis run a build once (here two cache instances, as two replicas have, on one shared directory)."""

from __future__ import annotations

import threading

from builder_service.action_cache import ActionResult, FilesystemActionCache, OutputRef
from builder_service.store import FilesystemStore
from venvsmith.core.fleet.flight import FleetFlight
from venvsmith.core.fleet.shared_cache import RedisTier


def test_two_replicas_action_caches_build_once(tmp_path, redis_server):
    shared = tmp_path / "shared"
    replicas = []
    for _ in range(2):
        store = FilesystemStore(shared / "store")
        cache = FilesystemActionCache(shared / "store", store)
        cache.fleet = FleetFlight(RedisTier(redis_server.url), lease_seconds=5)
        replicas.append((store, cache))
    builds: list[int] = []
    started, release = threading.Event(), threading.Event()

    def compute(store):
        def run():
            builds.append(1)
            started.set()
            release.wait(30)
            wheel = OutputRef(store.put_bytes(b"wheel"), "application/zip", "wheel", "p-1-py3-none-any.whl")
            return ActionResult((wheel,))
        return run

    outcomes: list = []

    def ask(replica):
        store, cache = replica
        outcomes.append(cache.get_or_compute_outcome("k", compute(store)))

    first = threading.Thread(target=ask, args=(replicas[0],))
    first.start()
    started.wait(30)
    second = threading.Thread(target=ask, args=(replicas[1],))
    second.start()
    client = redis_server.client()
    channel = "venvsmith:flight:done:action:k"
    for _ in range(600):  # until the second replica waits on the first's result (bounded)
        if client.pubsub_numsub(channel)[0][1] >= 1:
            break
        client.blpop(["never-pushed"], timeout=0.05)
    release.set()
    first.join(30)
    second.join(30)
    assert len(builds) == 1
    assert sorted(outcome for _, outcome in outcomes) == ["cached", "computed"]
    assert outcomes[0][0].outputs == outcomes[1][0].outputs
    for store, cache in replicas:
        cache.close()
        store.close()
