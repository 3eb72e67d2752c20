"""Hostile input to the builder: unsafe wheels are refused before they are recorded in the store; oversized pins
and undecodable request bytes are INVALID_ARGUMENT with a capped message; the server works afterwards."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from builder_service.digest import Digest
from tests.fixtures.inprocess import inprocess_builder  # noqa: F401 - the `builder` fixture
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2


@pytest.mark.parametrize("member", ["../x", "/etc/evil", "pkg/../../x"])
def test_wheels_only_build_refuses_an_unsafe_wheel_and_stores_nothing(builder, index_builder, index_server, member):
    address, engine = builder
    wheel = index_builder.add("evil", "1.0", files={member: b"owned", "evil/__init__.py": b""})
    index_builder.add("good", "1.0")
    index = index_server()
    config = common_pb2.IndexConfig(index_url=index.url)

    def build(name: str):
        request = builder_pb2.ResolveAndBuildRequest(
            resolve=resolver_pb2.ResolveRequest(requirements=[name], index=config),
            options=builder_pb2.BuildOptions(wheels=True, index=config))
        return list(stub.ResolveAndBuild(request, timeout=120))

    with grpc.insecure_channel(address) as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            build("evil")
        error = CallError.from_rpc(info.value)
        assert (error.status, error.reason) == ("FAILED_PRECONDITION", "UNSAFE_WHEEL"), error
        data = wheel.read_bytes()
        assert not engine.store.contains(Digest(hashlib.sha256(data).hexdigest(), len(data)))
        assert build("good")  # the server still works


def wheels_build(stub, pin: common_pb2.Pin):
    requests = [builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(options=builder_pb2.BuildOptions(wheels=True))),
                builder_pb2.BuildRequest(pin=pin), builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=1))]
    return list(stub.Build(iter(requests), timeout=60))


BIG = 1024 * 1024  # the name is in the URL and file name too: 3 MiB in all, under the 4 MiB request cap
HOSTILE_PINS = {
    "300-char name": ("a" * 300, "1.0"),
    "1 MB name": ("b" * BIG, "1.0"),
    "4300-digit version": ("app", "1" + "0" * 4300),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PINS))
def test_hostile_pin_is_invalid_argument_with_a_capped_message(builder, tmp_path, case):
    address, _ = builder
    name, version = HOSTILE_PINS[case]
    wheel = tmp_path / f"{name}-{version}-py3-none-any.whl"
    pin = common_pb2.Pin(name=name, version=version, url=f"http://127.0.0.1:9/{wheel.name}", filename=wheel.name,
                         is_wheel=True, sha256=hashlib.sha256(b"x").hexdigest(), size=1)
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            wheels_build(stub, pin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert len(info.value.details().encode()) < 1024
    error = CallError.from_rpc(info.value)
    assert [v.field for v in error.details.field_violations] == ["pins[0]"]


def test_malformed_build_stream_is_invalid_argument(builder):
    address, _ = builder
    with grpc.insecure_channel(address) as channel:
        raw = channel.stream_stream("/venvsmith.v1.BuilderService/Build", request_serializer=None,
                                    response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            list(raw(iter([b"\xff\xff\xff"]), timeout=30))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        raw_unary = channel.unary_stream("/venvsmith.v1.BuilderService/ResolveAndBuild", request_serializer=None,
                                         response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            list(raw_unary(b"\xff\xff\xff", timeout=30))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
