"""The token file and the role checks (``venvsmith.core.auth``); the servers' use of them is in tests/e2e."""

from __future__ import annotations

import hashlib
import os

import pytest

from venvsmith.core.auth import (
    METHOD_ROLES,
    Principal,
    Role,
    TokenFileError,
    TokenStore,
    bearer_token,
    parse_tokens,
    required_role,
    token_digest,
)
from venvsmith.core.errors import RoleDenied, Unauthenticated

CI = "ci-main-0123456789abcdef"
PR = "pull-request-0123456789"


def test_token_lines_roles_tenants_comments_and_hashed_tokens():
    hashed = hashlib.sha256(b"admin-secret-0123456789").hexdigest()
    tokens = parse_tokens(f"""
# CI of the main branch
{CI} build team-a
{PR}   resolve      # pull-request jobs: never write to the store
sha256:{hashed.upper()} admin
""")
    assert tokens == {
        token_digest(CI): Principal(Role.BUILD, "team-a"),
        token_digest(PR): Principal(Role.RESOLVE, ""),
        bytes.fromhex(hashed): Principal(Role.ADMIN, ""),
    }


@pytest.mark.parametrize(("text", "error"), [
    (f"{CI}\n", "line 1: expected 'TOKEN ROLE [TENANT]'"),
    (f"# ok\n{CI} build\n{PR} writer\n", "line 3: unknown role 'writer'"),
    (f"{CI} build a b\n", "line 1: expected"),
    ("sha256:abc build\n", "line 1: a hashed token is sha256: and 64 hex digits"),
    ("short build\n", "line 1: a token has at least 16 characters"),
    (f"{CI} build\n\n{CI} resolve\n", "line 3: this token is already on an earlier line"),
    (f"{CI} build ../etc\n", "line 1: a tenant is"),
    ("# nothing\n\n", "no tokens"),
])
def test_a_bad_line_is_named(text, error):
    with pytest.raises(TokenFileError, match="tokens.txt.*" + error.replace("[", r"\[").replace("]", r"\]")):
        parse_tokens(text, "tokens.txt")


def test_authorize_matrix(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{CI} build\n{PR} resolve\n")
    store = TokenStore(path)
    method = "/venvsmith.v1.BuilderService/Build"
    with pytest.raises(Unauthenticated, match="needs a token"):
        store.authorize(method, None, Role.BUILD)
    with pytest.raises(Unauthenticated, match="not known"):
        store.authorize(method, "x" * 20, Role.RESOLVE)
    with pytest.raises(RoleDenied) as denied:
        store.authorize(method, PR, Role.BUILD)
    assert denied.value.details().metadata == {"method": method, "role": "resolve", "required_role": "build"}
    assert store.authorize(method, CI, Role.BUILD).role == Role.BUILD
    assert store.authorize(method, CI, Role.RESOLVE).role == Role.BUILD
    with pytest.raises(RoleDenied):
        store.authorize("/venvsmith.v1.BuilderService/SomethingNew", CI, required_role("/x.Y/Z"))


def test_the_file_is_re_read_when_it_changes_and_a_broken_edit_keeps_the_old_tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{CI} build\n")
    store = TokenStore(path)
    assert store.lookup(CI) == Principal(Role.BUILD)
    path.write_text(f"{PR} resolve\n")  # rotation: CI's token revoked, PR's added
    os.utime(path, ns=(1, 1))
    assert store.lookup(CI) is None and store.lookup(PR) == Principal(Role.RESOLVE)
    path.write_text(f"{PR} superuser\n")
    os.utime(path, ns=(2, 2))
    assert store.lookup(PR) == Principal(Role.RESOLVE)  # logged; the previous tokens stay
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenStore(tmp_path / "missing")


def test_bearer_header():
    assert bearer_token({"authorization": f"Bearer {CI}"}) == CI
    assert bearer_token({"authorization": f"bearer  {CI} "}) == CI
    assert bearer_token({"authorization": f"Basic {CI}"}) is None
    assert bearer_token({"authorization": "Bearer "}) is None
    assert bearer_token({}) is None


def test_only_health_is_open_and_every_build_method_needs_build():
    assert {m for m, r in METHOD_ROLES.items() if r is None} == {"/grpc.health.v1.Health/Check",
                                                                  "/grpc.health.v1.Health/Watch"}
    for method in ("Build", "ResolveAndBuild", "PrepareMetadata"):
        assert required_role(f"/venvsmith.v1.BuilderService/{method}") == Role.BUILD
    assert required_role("/venvsmith.v1.ArtifactService/GetArtifact") == Role.RESOLVE


def test_every_rpc_of_the_protos_has_a_role():
    """A new RPC must be given its role here (else only admin tokens may call it)."""
    from venvsmith.v1 import artifact_pb2, builder_pb2, resolver_pb2

    for module in (artifact_pb2, builder_pb2, resolver_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert f"/{service.full_name}/{method.name}" in METHOD_ROLES
