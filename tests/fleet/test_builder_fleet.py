"""Builder replicas (separate ``serve builder`` processes) sharing one OCI registry (``--store oci://...``) and one
Redis (``--cache redis://...``): one replica downloads, builds and packs; the others wait for its result and read
it from the registry. Counted from each replica's ``/metrics``."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.test_kill9 import assert_no_partial_blob
from tests.fixtures.builder_server import BackgroundCall, BuilderProcess, ResolverProcess, free_port
from tests.fixtures.concurrent import at_once
from tests.fixtures.digests import sha256_file
from tests.fixtures.index import IndexBuilder, IndexServer
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.registry import RegistryProcess
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

#: Bounded waits for a state the test cannot be told about (a lease taken, a replica subscribed, Redis back).
WAIT_STEPS = 1200
STEP = 0.05


def _index(root: Path, build_body: str = "") -> IndexBuilder:
    b = IndexBuilder(root)
    b.add("lib", "1.0")
    b.add("app", "1.0", deps=["lib>=1", "srcpkg"])
    # an sdist with static Metadata 2.2 PKG-INFO (served as its .metadata): resolvers need no builder for it
    b.add("srcpkg", "1.0", kind="sdist", backend="intree", serve_metadata=True, build_body=build_body)
    return b


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def metrics(port: int) -> dict[tuple[str, str], float]:
    """(sample name, its ``kind`` label) -> value, from a replica's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, s.labels.get("kind", ""))
            found[key] = found.get(key, 0.0) + s.value
    return found


class Builder(BuilderProcess):
    """A builder replica on the test's registry (and Redis), with its metrics on a port of its own."""

    def __init__(self, home: Path, index: IndexServer, registry: RegistryProcess, *args: str,
                 redis: RedisServer | None = None, env: dict[str, str] | None = None) -> None:
        self.metrics_port = free_port()
        cache = ("--cache", redis.url) if redis is not None else ()
        super().__init__(home, "--store", f"oci://{registry.host}/fleet", "--metrics-port", str(self.metrics_port),
                         *cache, *args, allow=[index.base_url], env=env)

    def count(self, name: str, kind: str = "") -> int:
        return int(metrics(self.metrics_port).get((name, kind), 0))

    def venv_builds(self) -> int:
        return self.count("venvsmith_build_duration_seconds_count", "venv")

    def sdist_builds(self) -> int:
        return self.count("venvsmith_build_duration_seconds_count", "sdist")

    def downloads(self) -> int:
        return self.count("venvsmith_downloads_total")

    def build(self, index: IndexServer, *reqs: str, venv: bool = True) -> builder_pb2.BuildResult:
        result = None
        for event in self.stub.ResolveAndBuild(request(index, *reqs, venv=venv), timeout=180):
            if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "result":
                result = event.build.result
        assert result is not None
        return result

    def read(self, digest: common_pb2.Digest) -> bytes:
        chunks = self.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=digest), timeout=60)
        return b"".join(c.data for c in chunks)

    def health_details(self) -> str:
        _, call = health_pb2_grpc.HealthStub(self.channel).Check.with_call(health_pb2.HealthCheckRequest(), timeout=10)
        return dict(call.trailing_metadata() or ()).get("venvsmith-health-details", "")


def request(index: IndexServer, *reqs: str, venv: bool = True) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=index.url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=venv, index=config))


def resolutions(port: int) -> int:
    return int(metrics(port).get(("venvsmith_resolutions_total", ""), 0))


def assert_registry_blobs_whole(registry: RegistryProcess) -> None:
    """Every blob the registry holds is whole: its bytes hash to the digest it is filed under."""
    blobs = list((registry.root / "data").rglob("blobs/sha256/*/*/data"))
    assert blobs
    for path in blobs:
        assert sha256_file(path) == path.parent.name, f"partial or corrupt registry blob {path}"


def test_100_identical_requests_over_3_builders_and_3_resolvers_resolve_build_and_download_once(
        tmp_path, registry, redis):
    b = _index(tmp_path / "index")
    with IndexServer(b, delay=0.2) as index:  # every index request takes a while: the requests overlap
        ports = [free_port() for _ in range(3)]
        resolvers = [ResolverProcess(tmp_path / f"r{i}", "--metrics-port", str(ports[i]), allow=[index.base_url],
                                     cache=redis.url) for i in range(3)]
        builders = []
        try:
            builders = [Builder(tmp_path / f"b{i}", index, registry, "--resolver", resolvers[i].address, redis=redis)
                        for i in range(3)]
            results, errors = at_once(100, lambda i: builders[i % 3].build(index, "app"))
            assert errors == []
            assert len(results) == 100
            assert len({(r.lock_key, r.venv_archive.digest.hash) for r in results}) == 1
            assert len({tuple(w.digest.hash for w in r.wheels) for r in results}) == 1
            counts = {
                "resolutions": sum(resolutions(p) for p in ports),
                "venv builds": sum(x.venv_builds() for x in builders),
                "sdist builds": sum(x.sdist_builds() for x in builders),
                "downloads": sum(x.downloads() for x in builders),
            }
            print(f"100 requests over 3 builders: {counts}; per builder: "
                  f"{[(x.venv_builds(), x.sdist_builds(), x.downloads()) for x in builders]}; registry hits: "
                  f"{[x.count('venvsmith_registry_action_hits_total') for x in builders]}")
            assert counts == {"resolutions": 1, "venv builds": 1, "sdist builds": 1, "downloads": 3}
            assert sorted(index.downloads()) == ["app-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl",
                                                 "srcpkg-1.0.tar.gz"]
        finally:
            for x in [*builders, *resolvers]:
                x.stop()


def test_what_replica_a_built_replica_b_serves_from_the_registry_wheels_included(tmp_path, registry):
    b = _index(tmp_path / "index")
    with IndexServer(b) as index:
        with Builder(tmp_path / "a", index, registry) as a:
            built = a.build(index, "app")
            assert (a.downloads(), a.sdist_builds(), a.venv_builds()) == (3, 1, 1)
        index.reset_log()
        with Builder(tmp_path / "b", index, registry) as other:
            served = other.build(index, "app")
            assert (other.downloads(), other.sdist_builds(), other.venv_builds()) == (0, 0, 0), other.log()
            assert index.downloads() == []
            assert other.count("venvsmith_registry_action_hits_total") >= 3  # the wheels' results, at least
            assert [w.digest for w in served.wheels] == [w.digest for w in built.wheels]
            assert served.venv_archive.digest == built.venv_archive.digest
            (sdist_wheel,) = [w for w in served.wheels if w.filename.startswith("srcpkg-")]
            data = other.read(sdist_wheel.digest)  # pulled from the registry, verified
            assert len(data) == sdist_wheel.digest.size_bytes
            assert not list((tmp_path / "b" / "store" / "pending-actions").glob("*.json"))


def test_kill9_of_the_lease_holder_mid_sdist_build_another_replica_finishes(tmp_path, registry, redis):
    b = _index(tmp_path / "index", build_body="import time; time.sleep(4)")
    env = {"VENVSMITH_LEASE_SECONDS": "1"}
    client = redis.client()
    with IndexServer(b) as index, Builder(tmp_path / "a", index, registry, redis=redis, env=env) as a, \
            Builder(tmp_path / "b", index, registry, redis=redis, env=env) as other:
        on_a = BackgroundCall(lambda: a.build(index, "srcpkg", venv=False))
        for _ in range(WAIT_STEPS):  # A holds the build's lease and is inside the build
            if client.keys("venvsmith:flight:lease:action:wheel-build:*"):
                break
            time.sleep(STEP)
        (lease,) = client.keys("venvsmith:flight:lease:action:wheel-build:*")
        waiters = [BackgroundCall(lambda: other.build(index, "srcpkg", venv=False)) for _ in range(3)]
        channel = lease.decode().replace(":lease:", ":done:")
        for _ in range(WAIT_STEPS):  # B waits on the result channel
            if client.pubsub_numsub(channel)[0][1] >= 1:
                break
            time.sleep(STEP)
        assert client.pubsub_numsub(channel)[0][1] >= 1
        a.kill()
        outcomes = [w.join(180) for w in waiters]
        assert all("response" in o for o in outcomes), outcomes
        wheels = {o["response"].wheels[0].digest.hash for o in outcomes}
        assert len(wheels) == 1
        assert other.sdist_builds() == 1  # B took the build over once, for all its callers
        assert "error" in on_a.join(30)  # A's caller saw its server die
        assert other.read(outcomes[0]["response"].wheels[0].digest)
    for home in (tmp_path / "a", tmp_path / "b"):
        assert_no_partial_blob(home)
    assert_registry_blobs_whole(registry)


def test_registry_down_builders_serve_local_venvs_build_locally_and_publish_when_it_returns(tmp_path, registry):
    b = _index(tmp_path / "index")
    b.add("other", "1.0")
    with IndexServer(b) as index:
        with Builder(tmp_path / "a", index, registry) as a:
            warm = a.build(index, "app")
            registry.stop()
            again = a.build(index, "app")  # its venv (and wheels) are in the local cache
            assert again.venv_archive.digest == warm.venv_archive.digest and again.stats.cached
            cold = a.build(index, "other")  # built locally, its results queued for the registry
            assert a.read(cold.venv_archive.digest)
            assert list((tmp_path / "a" / "store" / "pending-actions").glob("*.json"))
        with Builder(tmp_path / "c", index, registry) as c:
            with pytest.raises(grpc.RpcError) as info:
                c.read(warm.wheels[0].digest)  # only the registry has it
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and registry.host in info.value.details()
        registry.start()
        with Builder(tmp_path / "a", index, registry):  # restarted: the pusher's first round sends the queue
            for _ in range(WAIT_STEPS):
                if not list((tmp_path / "a" / "store" / "pending-actions").glob("*.json")):
                    break
                time.sleep(STEP)
            assert not list((tmp_path / "a" / "store" / "pending-actions").glob("*.json"))
        index.reset_log()
        with Builder(tmp_path / "d", index, registry) as d:
            served = d.build(index, "other")
            assert (d.downloads(), d.venv_builds()) == (0, 0)
            assert served.venv_archive.digest == cold.venv_archive.digest
    assert_registry_blobs_whole(registry)


def test_redis_down_builders_keep_serving_say_so_and_recover(tmp_path, registry, redis):
    b = _index(tmp_path / "index")
    b.add("other", "1.0")
    b.add("third", "1.0")
    with IndexServer(b) as index, Builder(tmp_path / "a", index, registry, redis=redis) as a:
        warm = a.build(index, "app")
        assert a.health_details() == ""
        redis.stop()
        assert a.build(index, "app").venv_archive.digest == warm.venv_archive.digest  # local caches
        cold = a.build(index, "other")  # a new build with this process's single-flight only
        assert cold.venv_archive.digest.hash and a.venv_builds() == 2
        details = a.health_details()
        assert "shared cache redis://127.0.0.1" in details and "unreachable" in details, details
        health = health_pb2_grpc.HealthStub(a.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        redis.start()
        for _ in range(WAIT_STEPS):  # the replica pings Redis every second while it is down
            if a.health_details() == "":
                break
            time.sleep(STEP)
        assert a.health_details() == ""
        a.build(index, "third")  # and single-flights through Redis again
        assert redis.client().keys("venvsmith:flight:fence:action:*")
