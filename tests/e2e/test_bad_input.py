"""Hostile input over gRPC: oversized names and versions, raw garbage bytes -> INVALID_ARGUMENT, capped echo."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.errors import ErrorDetails, InvalidInput
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

BIG = 3 * 1024 * 1024  # under the 4 MiB request cap (larger: RESOURCE_EXHAUSTED, see test_bounded.py)


@pytest.fixture
def channel(tmp_path: Path):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
    yield channel
    channel.close()
    server.stop(0)
    engine.close()


@pytest.fixture
def index(index_builder, index_server):
    index_builder.add("app", "1.0")
    return index_server()


def request(url: str, requirements=(), constraints=()) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(
        requirements=list(requirements), constraints=list(constraints),
        index=common_pb2.IndexConfig(index_url=url),
        target=common_pb2.TargetSpec(
            shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28")),
    )


HOSTILE = {
    "300-char name": ("requirements", "a" * 300),
    "3 MB name": ("requirements", "b" * BIG),
    "4300-digit version": ("requirements", "app==1" + "0" * 4300),
    "4300-digit version constraint": ("constraints", "app<" + "9" * 4300),
    "3 MB version": ("requirements", "app>=" + "1" * BIG),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_requirement_is_invalid_argument_with_a_capped_echo(channel, index, caplog, case):
    where, text = HOSTILE[case]
    stub = resolver_pb2_grpc.ResolverServiceStub(channel)
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(index.url, ["app"] if where == "constraints" else [text],
                             [text] if where == "constraints" else []), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert len(err.value.details().encode()) < 1024
    status = rpc_status.from_call(err.value)
    assert status is not None and len(status.SerializeToString()) < 2048
    details = ErrorDetails.from_status(status)
    assert details.reason == "INVALID_INPUT"
    assert [v.field for v in details.field_violations] == [f"{where}[0]"]
    assert all(len(r.getMessage()) < 4096 for r in caplog.records)
    # and a good request still works
    assert [p.name for p in stub.Resolve(request(index.url, ["app"])).pins] == ["app"]


def test_malformed_protobuf_is_invalid_argument(channel, index):
    raw = channel.unary_unary("/venvsmith.v1.ResolverService/Resolve", request_serializer=None,
                              response_deserializer=None)
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff", timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    stub = resolver_pb2_grpc.ResolverServiceStub(channel)
    assert [p.name for p in stub.Resolve(request(index.url, ["app"])).pins] == ["app"]


def test_shorten_caps_any_echoed_value():
    from venvsmith.core.errors import shorten

    assert shorten("short") == "short"
    long = "x" * BIG
    cut = shorten(long)
    assert len(cut) < 300 and cut.startswith("x" * 200) and f"({BIG} bytes)" in cut
    exc = InvalidInput(long, "invalid requirement")
    assert len(str(exc)) < 400 and len(exc.facts()["value"]) < 300
