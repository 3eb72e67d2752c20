"""``options.require_attestations`` over gRPC: real attestations verified by the resolver, FAILED_PRECONDITION with
ATTESTATION_UNVERIFIED (project, filename, reason) when they do not verify."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from tests.fixtures.attestations import GITLAB, SDIST, SDIST_SHA256, provenance, tampered_statement
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.errors import ErrorDetails
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

PROJECT = "gitlab-oidc-project"


@pytest.fixture
def stub(tmp_path: Path):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield resolver_pb2_grpc.ResolverServiceStub(channel)
    channel.close()
    server.stop(0)
    engine.close()


@pytest.fixture
def index(index_builder, index_server):
    index_builder.add_file(SDIST)
    index_builder.attest(SDIST.name, provenance())
    index_builder.add("lib", "1.0")
    return index_server()


def request(url: str, *required: str) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(
        requirements=[PROJECT, "lib"], index=common_pb2.IndexConfig(index_url=url),
        target=common_pb2.TargetSpec(shorthand=common_pb2.TargetShorthand(python_version="3.12")),
        options=common_pb2.ResolutionOptions(require_attestations=list(required)), no_cache=True,
    )


def refused(stub, req) -> tuple[grpc.RpcError, ErrorDetails]:
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(req, timeout=120)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    return err.value, ErrorDetails.from_status(rpc_status.from_call(err.value))


def test_verified_attestations_give_the_verified_identity(stub, index):
    answer = stub.Resolve(request(index.url, "GitLab_OIDC.Project"), timeout=120)  # any spelling of the name
    pin = {p.name: p for p in answer.pins}[PROJECT]
    assert pin.sha256 == SDIST_SHA256
    assert [(i.kind, dict(i.claims)) for i in pin.attestation_identities] == [
        ("GitLab", {k: v for k, v in GITLAB.items() if k != "kind"})]
    packages = {p["name"]: p for p in tomllib.loads(answer.pylock_toml)["packages"]}
    assert packages[PROJECT]["attestation-identities"] == [GITLAB]


def test_a_named_project_without_provenance_is_refused_with_rich_details(stub, index):
    err, details = refused(stub, request(index.url, "lib"))
    reason = "the index serves no provenance document for it"
    assert err.details() == (f"lib: attestations are required but lib-1.0-py3-none-any.whl has none that verify: "
                             f"{reason}")
    assert details.reason == "ATTESTATION_UNVERIFIED"
    assert details.metadata == {"project": "lib", "filename": "lib-1.0-py3-none-any.whl", "reason": reason}
    assert [(v.type, v.subject) for v in details.violations] == [("ATTESTATION_UNVERIFIED",
                                                                  "lib-1.0-py3-none-any.whl")]


def test_all_requires_every_pin(stub, index):
    _, details = refused(stub, request(index.url, ":all:"))
    assert details.metadata["project"] == "lib"


def test_a_tampered_attestation_is_refused(stub, index, index_builder):
    index_builder.attest(SDIST.name, provenance(attestations=[tampered_statement()]))
    _, details = refused(stub, request(index.url, PROJECT))
    assert details.metadata["filename"] == SDIST.name
    assert details.metadata["reason"].startswith(
        "attestation 1 of the GitLab publisher facutuesca/gitlab-oidc-project: Sigstore verification failed: ")


def test_a_file_whose_bytes_differ_from_the_attested_ones_is_refused(stub, index_builder, index_server):
    other = SDIST.read_bytes() + b"\0"  # same name, other content: the index lists its real sha256
    index_builder.add_file(other, SDIST.name)
    index_builder.attest(SDIST.name, provenance())
    index_builder.add("lib", "1.0")
    _, details = refused(stub, request(index_server().url, PROJECT))
    assert details.metadata["reason"] == (
        f"attestation 1 of the GitLab publisher facutuesca/gitlab-oidc-project: it is for sha256 {SDIST_SHA256}, "
        f"not {hashlib.sha256(other).hexdigest()}")


def test_a_bad_name_is_invalid_argument(stub, index):
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(index.url, "no good"), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = ErrorDetails.from_status(rpc_status.from_call(err.value))
    assert [v.field for v in details.field_violations] == ["options.require_attestations"]
