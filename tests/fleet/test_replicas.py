"""Two resolver replicas (separate ``serve resolver`` processes) sharing one real redis-server (``--cache``)."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fixtures.builder_server import BackgroundCall, ResolverProcess, free_port
from tests.fixtures.concurrent import at_once
from tests.fixtures.index import IndexBuilder, IndexServer
from tests.fixtures.redis_server import RedisServer
from venvsmith.v1 import common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

#: Bounded waits for a state the test cannot be told about (a replica subscribing, Redis coming back).
WAIT_STEPS = 600
STEP = 0.05


@pytest.fixture
def index(tmp_path) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path / "index")
    b.add("lib", "1.0")
    b.add("lib", "1.1")
    b.add("app", "1.0", deps=["lib>=1"])
    for name in ("alpha", "beta", "gamma", "delta"):
        b.add(name, "2.0")
    with IndexServer(b) as server:
        yield server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


class Replica(ResolverProcess):
    def __init__(self, home, index: IndexServer, cache: str, env: dict[str, str] | None = None) -> None:
        self.metrics_port = free_port()
        super().__init__(home, "--metrics-port", str(self.metrics_port), allow=[index.url], cache=cache, env=env)

    def resolutions(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
        match = re.search(r"^venvsmith_resolutions_total(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
        assert match, text
        return int(float(match.group(1)))

    def resolve(self, index: IndexServer, *reqs: str, no_cache: bool = False) -> resolver_pb2.ResolveResponse:
        return self.resolver_stub.Resolve(request(index, *reqs, no_cache=no_cache), timeout=120)

    def health_details(self) -> str:
        _, call = health_pb2_grpc.HealthStub(self.channel).Check.with_call(health_pb2.HealthCheckRequest(), timeout=10)
        return dict(call.trailing_metadata() or ()).get("venvsmith-health-details", "")


def request(index: IndexServer, *reqs: str, no_cache: bool = False) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(requirements=list(reqs), index=common_pb2.IndexConfig(index_url=index.url),
                                       no_cache=no_cache)


def pins(response) -> list[tuple[str, str]]:
    return [(p.name, p.version) for p in response.pins]


def test_a_resolution_done_by_a_is_a_cache_hit_on_b_and_b_reuses_its_metadata(tmp_path, index, redis):
    with Replica(tmp_path / "a", index, redis.url) as a, Replica(tmp_path / "b", index, redis.url) as b:
        first = a.resolve(index, "app")
        assert not first.stats.resolution_cache_hit
        assert sorted(pins(first)) == [("app", "1.0"), ("lib", "1.1")]
        second = b.resolve(index, "app")
        assert second.stats.resolution_cache_hit
        assert pins(second) == pins(first) and second.lock_key == first.lock_key
        assert (a.resolutions(), b.resolutions()) == (1, 0)
        # A fresh resolution on B (no_cache) reads the metadata A fetched from Redis, none from the index.
        index.reset_log()
        again = b.resolve(index, "app", no_cache=True)
        assert again.stats.metadata_fetched == 0 and again.stats.metadata_cached >= 2
        assert index.metadata_fetches() == [] and index.downloads() == []


def test_concurrent_identical_cold_requests_over_two_replicas_resolve_once(tmp_path, index, redis):
    index.delay, index.delay_match = 0.3, "/simple/"  # every resolution takes a while: the requests overlap
    with Replica(tmp_path / "a", index, redis.url) as a, Replica(tmp_path / "b", index, redis.url) as b:
        replicas = [a, b]

        results, errors = at_once(12, lambda i: replicas[i % 2].resolve(index, "app", "alpha"))
        assert errors == []
        assert len({r.lock_key for r in results}) == 1 and len(results) == 12
        assert a.resolutions() + b.resolutions() == 1
        assert sum(not r.stats.shared_in_flight and not r.stats.resolution_cache_hit for r in results) == 1


def test_kill9_of_the_lease_holder_mid_resolution_the_other_replica_takes_over(tmp_path, index, redis):
    index.delay, index.delay_match = 4.0, "/simple/beta/"  # A is held inside the resolution
    env = {"VENVSMITH_LEASE_SECONDS": "1"}
    client = redis.client()
    with Replica(tmp_path / "a", index, redis.url, env) as a, Replica(tmp_path / "b", index, redis.url, env) as b:
        on_a = BackgroundCall(lambda: a.resolve(index, "beta"))
        for _ in range(WAIT_STEPS):  # A holds the lease and is inside the slow fetch
            if client.keys("venvsmith:flight:lease:*") and "/simple/beta/" in index.paths():
                break
            time.sleep(STEP)
        on_b = BackgroundCall(lambda: b.resolve(index, "beta"))
        channel = client.keys("venvsmith:flight:lease:*")[0].decode().replace(":lease:", ":done:")
        for _ in range(WAIT_STEPS):  # B waits on the result channel
            if client.pubsub_numsub(channel)[0][1] >= 1:
                break
            time.sleep(STEP)
        assert client.pubsub_numsub(channel)[0][1] >= 1
        a.kill()
        outcome = on_b.join(120)
        assert "response" in outcome, outcome
        assert pins(outcome["response"]) == [("beta", "2.0")]
        assert b.resolutions() == 1
        assert "error" in on_a.join(30)  # A's caller saw its server die


def test_redis_down_replicas_keep_serving_and_say_so_then_recover(tmp_path, index, redis):
    with Replica(tmp_path / "a", index, redis.url) as a:
        warm = a.resolve(index, "app")
        assert a.health_details() == ""
        redis.stop()
        assert pins(a.resolve(index, "app")) == pins(warm)  # from its local cache
        cold = a.resolve(index, "gamma")  # a new resolution, with in-process single-flight and SQLite only
        assert pins(cold) == [("gamma", "2.0")]
        details = a.health_details()
        assert "shared cache redis://127.0.0.1" in details and "unreachable" in details
        health = health_pb2_grpc.HealthStub(a.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        redis.start()
        for _ in range(WAIT_STEPS):  # the replica pings Redis every second while it is down
            if a.health_details() == "":
                break
            time.sleep(STEP)
        assert a.health_details() == ""
        shared = a.resolve(index, "delta")  # and uses it again: the answer is in Redis for the other replicas
        assert not shared.stats.resolution_cache_hit
        assert redis.client().keys("venvsmith:resolution:*")


def test_a_builder_given_the_same_cache_shares_the_resolvers_answers(tmp_path, index, redis):
    from tests.fixtures.builder_server import BuilderProcess

    with Replica(tmp_path / "a", index, redis.url) as a:
        first = a.resolve(index, "app")
        with BuilderProcess(tmp_path / "b", "--cache", redis.url, allow=[index.url]) as builder:
            again = builder.resolver_stub.Resolve(request(index, "app"), timeout=120)
    assert again.stats.resolution_cache_hit and again.lock_key == first.lock_key


def test_a_sqlite_cache_url_puts_the_cache_files_there(tmp_path, index):
    where = tmp_path / "elsewhere"
    with ResolverProcess(tmp_path / "home", allow=[index.url], cache=f"sqlite://{where}") as server:
        server.resolver_stub.Resolve(request(index, "lib"), timeout=120)
    assert (where / "resolutions.sqlite3").is_file() and (where / "index").is_dir()
    assert not (tmp_path / "home" / "resolutions.sqlite3").exists()


def _page_requests(index: IndexServer) -> list:
    return [r for r in index.requests if r.path.startswith("/simple/")]


def test_b_reads_the_index_pages_a_fetched_from_redis(tmp_path, index, redis):
    with Replica(tmp_path / "a", index, redis.url) as a, Replica(tmp_path / "b", index, redis.url) as b:
        first = a.resolve(index, "app", no_cache=True)
        assert first.stats.pages_fetched >= 2 and _page_requests(index)
        keys = [k.decode() for k in redis.client().keys("venvsmith:index-page:*")]
        assert keys and all(index.base_url not in k and "127.0.0.1" not in k for k in keys)  # hashed URLs
        index.reset_log()
        again = b.resolve(index, "app", no_cache=True)
        assert pins(again) == pins(first)
        assert _page_requests(index) == []  # fresh pages from Redis: no page asked of the index
        assert again.stats.pages_fetched == 0 and again.stats.pages_cached >= 2


def test_stale_shared_pages_are_revalidated_not_refetched(tmp_path, index, redis):
    index.cache_control = "no-cache"  # every use revalidates
    with Replica(tmp_path / "a", index, redis.url) as a, Replica(tmp_path / "b", index, redis.url) as b:
        first = a.resolve(index, "app", no_cache=True)
        assert first.stats.pages_fetched >= 2
        index.reset_log()
        again = b.resolve(index, "app", no_cache=True)
        assert pins(again) == pins(first)
        asked = _page_requests(index)
        assert asked and all("if-none-match" in r.headers for r in asked), asked  # conditional, with A's ETag
        assert again.stats.pages_fetched == 0 and again.stats.pages_cached >= 2  # every one answered 304
