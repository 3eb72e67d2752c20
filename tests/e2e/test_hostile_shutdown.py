"""SIGTERM ends a server whose worker is stuck reading from a trickling index, within the grace period and a margin."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import grpc
import pytest

from tests.fixtures.builder_server import BuilderProcess, ResolverProcess
from tests.fixtures.hostile import hostile_servers
from venvsmith.cli.shutdown import CLOSE_SECONDS
from venvsmith.v1 import common_pb2, resolver_pb2


def _trickle(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(100000):
        handler.send(b"<")
        time.sleep(0.1)


GRACE_SECONDS = 5.0


@pytest.mark.parametrize("process", [ResolverProcess, BuilderProcess], ids=["resolver", "builder"])
def test_sigterm_exits_while_a_worker_is_stuck_in_a_trickling_read(tmp_path, process):
    with hostile_servers() as make:
        index = make(_trickle)
        server = process(tmp_path / "home", "--grace-period", str(GRACE_SECONDS), allow=[index.url])
        try:
            request = resolver_pb2.ResolveRequest(
                requirements=["foo"], index=common_pb2.IndexConfig(index_url=index.url)
            )
            errors: list[grpc.RpcError] = []

            def call() -> None:
                try:
                    server.resolver_stub.Resolve(request, timeout=600)  # a patient client: no deadline helps
                except grpc.RpcError as exc:
                    errors.append(exc)

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            waited = time.monotonic() + 60
            while index.sent == 0 and time.monotonic() < waited:  # the worker is now inside the slow read
                time.sleep(0.05)
            assert index.sent > 0
            server.proc.send_signal(signal.SIGTERM)
            try:
                returncode = server.proc.wait(timeout=GRACE_SECONDS + CLOSE_SECONDS + 10)  # a bounded wait
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server did not exit after SIGTERM:\n{server.log()[-3000:]}")
            assert returncode == 0
            caller.join(10)
            assert errors and errors[0].code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        finally:
            server.stop()
