"""Rich error details and server reflection as a client without venvsmith's code sees them.

The client side of these tests uses only grpc, protobuf and googleapis-common-protos: the services are found by
reflection (``grpc.reflection.v1``, what current tools speak), their messages are built from the descriptors the
server sends, and the error details are decoded from ``grpc-status-details-bin`` with the ``google.rpc`` classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import error_details_pb2, status_pb2

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core.config import PipIndexConfig

#: ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
LIST_SERVICES = b"\x3a\x00"
RESOLVER = "venvsmith.v1.ResolverService"


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)
    engine.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(number, payload) of the length-delimited fields of a message (the only kind reflection answers hold)."""
    i = 0
    while i < len(data):
        key = shift = 0
        while True:
            key |= (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                break
        assert key & 7 == 2, f"unexpected wire type in {data!r}"
        size = shift = 0
        while True:
            size |= (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                break
        yield key >> 3, data[i:i + size]
        i += size


def reflect(channel: grpc.Channel, version: str, request: bytes) -> bytes:
    """One ServerReflectionInfo exchange with hand-built request bytes; the raw response."""
    call = channel.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo")
    (answer,) = list(call(iter([request]), timeout=10))
    return answer


def listed_services(answer: bytes) -> set[str]:
    # ServerReflectionResponse.list_services_response = 6 -> ListServiceResponse.service = 1 -> name = 1
    names = set()
    for number, payload in _fields(answer):
        if number == 6:
            for _, service in _fields(payload):
                names.update(name.decode() for n, name in _fields(service) if n == 1)
    return names


def descriptor_files(answer: bytes) -> list[descriptor_pb2.FileDescriptorProto]:
    # ServerReflectionResponse.file_descriptor_response = 4 -> FileDescriptorResponse.file_descriptor_proto = 1
    files = []
    for number, payload in _fields(answer):
        if number == 4:
            files += [descriptor_pb2.FileDescriptorProto.FromString(raw) for n, raw in _fields(payload) if n == 1]
    return files


def resolver_messages(channel: grpc.Channel) -> tuple[type, type]:
    """ResolveRequest and ResolveResponse classes built only from what reflection (v1) sends."""
    # ServerReflectionRequest.file_containing_symbol = 4
    files = {f.name: f for f in descriptor_files(reflect(channel, "v1", _field(4, RESOLVER.encode())))}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        if name not in files:  # ServerReflectionRequest.file_by_filename = 3
            files.update({f.name: f for f in descriptor_files(reflect(channel, "v1", _field(3, name.encode())))})
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in list(files):
        add(name)
    service = pool.FindServiceByName(RESOLVER)
    method = service.methods_by_name["Resolve"]
    return (message_factory.GetMessageClass(method.input_type), message_factory.GetMessageClass(method.output_type))


def resolve_error(address: str, build) -> tuple[grpc.RpcError, status_pb2.Status]:
    """Call Resolve with the request ``build(ResolveRequest)`` makes; the error and its decoded google.rpc.Status."""
    with grpc.insecure_channel(address) as channel:
        request_class, response_class = resolver_messages(channel)
        call = channel.unary_unary(f"/{RESOLVER}/Resolve", request_serializer=request_class.SerializeToString,
                                   response_deserializer=response_class.FromString)
        with pytest.raises(grpc.RpcError) as info:
            call(build(request_class), timeout=30)
    trailers = dict(info.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == info.value.code().value[0] and status.message == info.value.details()
    return info.value, status


def unpack(status: status_pb2.Status, kind):
    found = [d for d in status.details if d.Is(kind.DESCRIPTOR)]
    assert len(found) == 1, f"expected one {kind.DESCRIPTOR.name} in {status.details}"
    message = kind()
    found[0].Unpack(message)
    return message


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_both_versions(address, version):
    with grpc.insecure_channel(address) as channel:
        names = listed_services(reflect(channel, version, LIST_SERVICES))
    assert {RESOLVER, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_reflection_v1_describes_itself(address):
    with grpc.insecure_channel(address) as channel:
        files = descriptor_files(reflect(channel, "v1", _field(4, b"grpc.reflection.v1.ServerReflection")))
    assert [f.package for f in files] == ["grpc.reflection.v1"]
    assert files[0].service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"


def test_bad_requirement_names_its_field_in_bad_request(address):
    def build(request_class):
        request = request_class(requirements=["alpha", "beta>=1", "gamma ==="])
        request.target.shorthand.python_version = "3.11"
        return request

    error, status = resolve_error(address, build)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.domain, info.reason) == ("venvsmith", "INVALID_INPUT")
    assert info.metadata["value"] == "gamma ===" and info.metadata["field"] == "requirements[2]"
    (violation,) = unpack(status, error_details_pb2.BadRequest).field_violations
    assert violation.field == "requirements[2]" and "gamma ===" in violation.description


def test_bad_constraint_and_index_url_field_paths(address):
    def constraint(request_class):
        return request_class(requirements=["alpha"], constraints=["ok<2", "extra[x]<2"])

    def index_url(request_class):
        request = request_class(requirements=["alpha"])
        request.index.extra_index_urls.extend(["https://one.invalid/simple/", "ftp://nope"])
        return request

    for build, field in ((constraint, "constraints[1]"), (index_url, "index.extra_index_urls[1]")):
        _, status = resolve_error(address, build)
        (violation,) = unpack(status, error_details_pb2.BadRequest).field_violations
        assert violation.field == field


def test_conflict_chains_are_precondition_violations(address, index_builder, index_server):
    index_builder.add("left", "1.0", deps=["util>=2"])
    index_builder.add("right", "1.0", deps=["util<2"])
    index_builder.add("util", "1.5")
    index_builder.add("util", "2.1")
    url = index_server().url

    def build(request_class):
        request = request_class(requirements=["left", "right"])
        request.index.index_url = url
        request.target.shorthand.python_version = "3.11"
        return request

    error, status = resolve_error(address, build)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert unpack(status, error_details_pb2.ErrorInfo).reason == "NO_SOLUTION"
    violations = unpack(status, error_details_pb2.PreconditionFailure).violations
    assert {(v.type, v.subject) for v in violations} == {("CONFLICT", "util")}
    assert sorted(v.description for v in violations) == [
        "left (required by you) -> util>=2 (required by left==1.0)",
        "right (required by you) -> util<2 (required by right==1.0)",
    ]


def test_unavailable_index_carries_retry_info(address, index_builder, index_server):
    index_builder.add("util", "1.0")
    url = index_server(fail_status=503, fail_times=None).url

    def build(request_class):
        request = request_class(requirements=["util"])
        request.index.index_url = url
        return request

    error, status = resolve_error(address, build)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert info.reason == "INDEX_UNAVAILABLE" and "127.0.0.1" in info.metadata["index"]
    assert unpack(status, error_details_pb2.RetryInfo).retry_delay.ToTimedelta().total_seconds() > 0


def test_a_stream_ends_with_the_same_details(address, index_builder, index_server):
    index_builder.add("left", "1.0", deps=["util>=2"])
    index_builder.add("right", "1.0", deps=["util<2"])
    index_builder.add("util", "1.5")
    url = index_server().url
    with grpc.insecure_channel(address) as channel:
        request_class, _ = resolver_messages(channel)
        request = request_class(requirements=["left", "right"])
        request.index.index_url = url
        call = channel.unary_stream(f"/{RESOLVER}/ResolveStream", request_serializer=request_class.SerializeToString)
        with pytest.raises(grpc.RpcError) as info:
            list(call(request, timeout=30))
    trailers = dict(info.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert unpack(status, error_details_pb2.ErrorInfo).reason == "NO_SOLUTION"
    assert {v.subject for v in unpack(status, error_details_pb2.PreconditionFailure).violations} == {"util"}
