"""The .proto contract: checked-in stubs are not stale, and every element of it is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from venvsmith import protogen

STUB_DIR = protogen.ROOT / "venvsmith" / "v1"

# Field numbers of the descriptor.proto messages, as used in SourceCodeInfo.Location.path.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2


def test_proto_sources_exist():
    names = {p.name for p in protogen.proto_files()}
    assert {"common.proto", "resolver.proto"} <= names


def test_checked_in_stubs_are_not_stale(tmp_path: Path):
    """`make protos` must have been run after the last .proto edit: regenerated stubs are byte-equal."""
    written = protogen.generate(tmp_path)
    generated = {p.name: p.read_bytes() for p in written}
    checked_in = {p.name: p.read_bytes() for p in sorted(STUB_DIR.glob("*_pb2*.py*"))}
    assert generated, "protoc wrote nothing"
    assert sorted(generated) == sorted(checked_in), "stub files differ from the protos (run `make protos`)"
    stale = [name for name in generated if generated[name] != checked_in[name]]
    assert not stale, f"stale stubs (run `make protos`): {stale}"


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory) -> descriptor_pb2.FileDescriptorSet:
    import grpc_tools
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("descriptors") / "set.pb"
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{protogen.PROTO_ROOT}",
        f"-I{include}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *[str(p.relative_to(protogen.PROTO_ROOT)) for p in protogen.proto_files()],
    ]
    assert protoc.main(args) == 0
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def _elements(file: descriptor_pb2.FileDescriptorProto):
    """Yield (path, description) for every message, field, enum, enum value, service and rpc (nested too)."""

    def enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str):
        name = f"{scope}{e.name}"
        yield path, f"enum {name}"
        for k, value in enumerate(e.value):
            yield (*path, ENUM_VALUE, k), f"enum value {name}.{value.name}"

    def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str):
        name = f"{scope}{m.name}"
        if m.options.map_entry:  # synthesized for map<,> fields; the field carries the comment
            return
        yield path, f"message {name}"
        for j, f in enumerate(m.field):
            yield (*path, MESSAGE_FIELD, j), f"field {name}.{f.name}"
        for j, nested in enumerate(m.nested_type):
            yield from message(nested, (*path, MESSAGE_NESTED, j), f"{name}.")
        for j, e in enumerate(m.enum_type):
            yield from enum(e, (*path, MESSAGE_ENUM, j), f"{name}.")

    for i, m in enumerate(file.message_type):
        yield from message(m, (FILE_MESSAGE, i), "")
    for i, e in enumerate(file.enum_type):
        yield from enum(e, (FILE_ENUM, i), "")
    for i, s in enumerate(file.service):
        yield (FILE_SERVICE, i), f"service {s.name}"
        for j, method in enumerate(s.method):
            yield (FILE_SERVICE, i, SERVICE_METHOD, j), f"rpc {s.name}.{method.name}"


def test_every_proto_element_has_a_leading_comment(descriptor_set):
    ours = [f for f in descriptor_set.file if f.name.startswith("venvsmith/")]
    assert {f.name for f in ours} == {
        str(p.relative_to(protogen.PROTO_ROOT)) for p in protogen.proto_files()
    }
    missing: list[str] = []
    checked = 0
    for file in ours:
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for path, what in _elements(file):
            checked += 1
            if not comments.get(path, "").strip():
                missing.append(f"{file.name}: {what}")
    assert checked > 50  # the walk really visited the contract
    assert not missing, "undocumented proto elements:\n" + "\n".join(missing)


def test_errors_are_documented_with_their_status_codes(descriptor_set):
    """The service documents which gRPC status each error returns."""
    resolver = next(f for f in descriptor_set.file if f.name == "venvsmith/v1/resolver.proto")
    text = "\n".join(
        loc.leading_comments + "\n".join(loc.leading_detached_comments) for loc in resolver.source_code_info.location
    )
    for status in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNAVAILABLE", "RESOURCE_EXHAUSTED",
                   "DEADLINE_EXCEEDED"):
        assert status in text
