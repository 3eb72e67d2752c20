"""``--cache rediss://USER:PASSWORD@...`` against a real redis-server speaking TLS only, with an ACL user: the
server's certificate is verified against ``--cache-ca``; a wrong password or an unverifiable certificate makes the
tier down (health details naming Redis without the password), never a crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fixtures.builder_server import ResolverProcess
from tests.fixtures.index import IndexBuilder, IndexServer
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.registry import self_signed_tls
from venvsmith.core.fleet.shared_cache import RedisTier
from venvsmith.core.health import HealthState
from venvsmith.v1 import common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

USER = "venvsmith-ci"
PASSWORD = "tls-pw-NEVER-SHOWN-7f3a"


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[RedisServer]:
    with RedisServer(PASSWORD, user=USER, tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("tls-index"))
    b.add("lib", "1.0")
    with IndexServer(b) as server:
        yield server


@pytest.fixture
def other_ca(tmp_path):
    return self_signed_tls(tmp_path / "other")[0]  # a certificate that did not sign the server's


def test_the_tier_verifies_the_certificate_and_authenticates(tls_redis, other_ca):
    assert tls_redis.url.startswith(f"rediss://{USER}:{PASSWORD}@")
    tier = RedisTier(tls_redis.url, ca_file=str(tls_redis.ca_file))
    tier.put("ns", "k", b"over tls", None)
    assert tier.get("ns", "k") == b"over tls" and tier.available()
    tier.close()
    refused = [
        tls_redis.url.replace(PASSWORD, "wrong-password"),  # authentication refused
        tls_redis.url,  # verified against the system's CAs, which did not sign it
    ]
    for url, ca in ((refused[0], str(tls_redis.ca_file)), (refused[1], None), (refused[1], str(other_ca))):
        health = HealthState()
        tier = RedisTier(url, health=health, ca_file=ca)
        assert tier.get("ns", "k") is None and not tier.available()
        details = health.details()
        assert f"shared cache rediss://127.0.0.1:{tls_redis.port}/0" in details, details
        assert PASSWORD not in details and "wrong-password" not in details and USER not in details
        assert health.serving
        tier.close()


def _resolve(server: ResolverProcess, index: IndexServer) -> resolver_pb2.ResolveResponse:
    ask = resolver_pb2.ResolveRequest(requirements=["lib"], index=common_pb2.IndexConfig(index_url=index.url),
                                      no_cache=True)
    return server.resolver_stub.Resolve(ask, timeout=120)


def _details(server: ResolverProcess) -> str:
    _, call = health_pb2_grpc.HealthStub(server.channel).Check.with_call(health_pb2.HealthCheckRequest(), timeout=10)
    return dict(call.trailing_metadata() or ()).get("venvsmith-health-details", "")


def test_serve_resolver_with_a_rediss_cache_and_its_ca(tmp_path, tls_redis, index):
    client = tls_redis.client()
    client.flushdb()
    with ResolverProcess(tmp_path / "a", "--cache-ca", str(tls_redis.ca_file), allow=[index.url],
                         cache=tls_redis.url) as server:
        assert [p.name for p in _resolve(server, index).pins] == ["lib"]
        assert _details(server) == ""
        log = server.log()
    assert client.keys("venvsmith:resolution:*") and client.keys("venvsmith:index-page:*")
    assert PASSWORD not in log


@pytest.mark.parametrize("problem", ["password", "certificate"])
def test_a_refused_password_or_certificate_degrades_to_local_caches(tmp_path, tls_redis, index, other_ca, problem):
    url = tls_redis.url.replace(PASSWORD, "wrong-password") if problem == "password" else tls_redis.url
    ca = tls_redis.ca_file if problem == "password" else other_ca
    with ResolverProcess(tmp_path / "a", "--cache-ca", str(ca), allow=[index.url], cache=url) as server:
        assert [p.name for p in _resolve(server, index).pins] == ["lib"]  # served, from the local caches
        details = _details(server)
        health = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        log = server.log()
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert f"shared cache rediss://127.0.0.1:{tls_redis.port}/0" in details and "unreachable" in details, details
    for secret in (PASSWORD, "wrong-password"):
        assert secret not in details and secret not in log
