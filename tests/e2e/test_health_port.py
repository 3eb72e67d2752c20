"""``serve --health-port``: plaintext grpc.health.v1 beside a (mutual) TLS main port, for kubelet's gRPC probes,
with the main server's health (NOT_SERVING while it drains). A real resolver server subprocess on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.test_tls import make_ca, make_leaf
from tests.fixtures.builder_server import BackgroundCall, ResolverProcess, cli, free_port, hermetic_env
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")]

RESOLVER = "venvsmith.v1.ResolverService"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def _status(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_plaintext_health_port_beside_mutual_tls_follows_the_drain(tmp_path, index_builder, index_server):
    ca = make_ca(tmp_path, "ca")
    server_cert, client_cert = make_leaf(tmp_path, "server", ca), make_leaf(tmp_path, "client", ca, server=False)
    index_builder.add("dep", "1.0")
    index = index_server(delay=2)  # every page takes 2 s: the Resolve is in flight at SIGTERM
    health_port = free_port()
    with ResolverProcess(tmp_path / "r", "--tls-cert", str(server_cert[0]), "--tls-key", str(server_cert[1]),
                         "--tls-client-ca", str(ca[0]), "--health-port", str(health_port), "--grace-period", "30",
                         allow=[index.url]) as server:
        probe = grpc.insecure_channel(f"127.0.0.1:{health_port}")
        credentials = grpc.ssl_channel_credentials(ca[0].read_bytes(), client_cert[1].read_bytes(),
                                                   client_cert[0].read_bytes())
        secure = grpc.secure_channel(server.address, credentials)
        try:
            # The probe port answers in plaintext, for the whole server and each service; the main port does not.
            assert _status(probe, "") == SERVING and _status(probe, RESOLVER) == SERVING
            with pytest.raises(grpc.RpcError) as plaintext:
                _status(server.channel, "")
            assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
            assert _status(secure, RESOLVER) == SERVING
            # Only health is on the probe port: no resolutions in plaintext.
            with pytest.raises(grpc.RpcError) as other:
                resolver_pb2_grpc.ResolverServiceStub(probe).DescribeEnvironment(
                    resolver_pb2.DescribeEnvironmentRequest(), timeout=10)
            assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED

            request = resolver_pb2.ResolveRequest(requirements=["dep"],
                                                  index=common_pb2.IndexConfig(index_url=index.url))
            caller = BackgroundCall(lambda: resolver_pb2_grpc.ResolverServiceStub(secure).Resolve(request, timeout=60))
            time.sleep(0.7)  # the call is in flight, waiting on the slow index
            server.proc.terminate()
            seen = []
            while not caller.done and len(seen) < 200:
                seen.append(_status(probe, RESOLVER))
                if seen[-1] == NOT_SERVING:
                    break
                time.sleep(0.02)
            assert seen and seen[-1] == NOT_SERVING and not caller.done, seen
            assert _status(probe, "") == NOT_SERVING
            outcome = caller.join(60)
            assert "error" not in outcome, outcome.get("error")
            assert [p.name for p in outcome["response"].pins] == ["dep"]  # type: ignore[attr-defined]
            assert server.proc.wait(30) == 0
            # The probe port stopped with the server.
            with pytest.raises(grpc.RpcError):
                _status(probe, "")
        finally:
            probe.close()
            secure.close()


def test_health_port_is_a_checked_port_option(tmp_path):


    done = subprocess.run(cli("serve", "resolver", "--port", "0", "--health-port", "70000"),
                          env=hermetic_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--health-port (health_port): 70000 is not a port" in done.stderr
