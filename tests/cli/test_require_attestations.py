"""``--require-attestations`` on ``resolve`` (the embedded resolver verifies) and on ``verify`` (the client
verifies a lock itself, trusting no server), on real Sigstore-signed attestations served by a hermetic index."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from tests.cli.test_cli import hermetic, run  # noqa: F401 - hermetic: autouse fixture
from tests.fixtures.attestations import GITLAB, SDIST, SDIST_SHA256, provenance, tampered_statement

PROJECT = "gitlab-oidc-project"
TARGET = ("--python-version", "3.12")


@pytest.fixture
def index(index_builder, index_server):
    index_builder.add_file(SDIST)
    index_builder.attest(SDIST.name, provenance())
    index_builder.add("lib", "1.0")
    return index_server()


def resolve(capsys, url: str, *args: str) -> tuple[int, str, str]:
    return run(capsys, "resolve", PROJECT, "lib", *TARGET, "--index-url", url, "--format", "pylock", "--no-cache",
               *args)


def test_resolve_records_the_verified_publisher(capsys, index):
    code, out, err = resolve(capsys, index.url, "--require-attestations", PROJECT)
    assert code == 0, err
    packages = {p["name"]: p for p in tomllib.loads(out)["packages"]}
    assert packages[PROJECT]["attestation-identities"] == [GITLAB]


@pytest.mark.parametrize("flags, project, filename", [
    (("--require-attestations", "lib"), "lib", "lib-1.0-py3-none-any.whl"),
    (("--require-attestations", PROJECT, "--require-attestations", ":all:"), "lib", "lib-1.0-py3-none-any.whl"),
])
def test_resolve_fails_for_a_named_pin_without_provenance(capsys, index, flags, project, filename):
    code, out, err = resolve(capsys, index.url, *flags)
    assert code == 1 and out == ""
    assert (f"{project}: attestations are required but {filename} has none that verify: the index serves no "
            "provenance document for it") in err


def test_resolve_fails_for_a_publisher_the_certificate_was_not_issued_to(capsys, index, index_builder):
    index_builder.attest(SDIST.name, provenance(publisher={**GITLAB, "repository": "someone/else"}))
    code, _out, err = resolve(capsys, index.url, "--require-attestations", PROJECT)
    assert code == 1
    assert (f"{PROJECT}: attestations are required but {SDIST.name} has none that verify: attestation 1 of the "
            "GitLab publisher someone/else: Sigstore verification failed: ") in err


def test_resolve_rejects_a_bad_name(capsys, index):
    code, _out, err = resolve(capsys, index.url, "--require-attestations", "bad name")
    assert code == 2 and "invalid project name in require-attestations" in err


def lock(capsys, index, tmp_path):
    code, out, err = resolve(capsys, index.url)
    assert code == 0, err
    path = tmp_path / "pylock.toml"
    path.write_text(out)
    return path


def verify(capsys, path, url, *args):
    return run(capsys, "verify", str(path), PROJECT, "lib", *TARGET, "--index-url", url, *args)


def test_verify_checks_the_attestations_itself(capsys, index, index_builder, tmp_path):
    path = lock(capsys, index, tmp_path)
    code, out, err = verify(capsys, path, index.url, "--require-attestations", PROJECT)
    assert code == 0, err
    # the index now serves a tampered attestation: the same lock no longer verifies
    index_builder.attest(SDIST.name, provenance(attestations=[tampered_statement()]))
    code, out, err = verify(capsys, path, index.url, "--require-attestations", PROJECT)
    assert code == 1
    assert (f"{PROJECT}==0.0.3: {SDIST.name} has no attestation that verifies: attestation 1 of the GitLab "
            "publisher facutuesca/gitlab-oidc-project: Sigstore verification failed: ") in err


def test_verify_fails_a_pin_without_provenance(capsys, index, tmp_path):
    path = lock(capsys, index, tmp_path)
    code, _out, err = verify(capsys, path, index.url, "--require-attestations", ":all:")
    assert code == 1
    assert ("lib==1.0: lib-1.0-py3-none-any.whl has no attestation that verifies: the index serves no provenance "
            "document for it") in err
    assert PROJECT not in err.split("INVALID", 1)[1]  # only lib fails


def test_verify_fails_a_file_other_than_the_attested_one(capsys, index_builder, index_server, tmp_path):
    other = SDIST.read_bytes() + b"\0"
    index_builder.add_file(other, SDIST.name)
    index_builder.attest(SDIST.name, provenance())
    index_builder.add("lib", "1.0")
    index = index_server()
    path = lock(capsys, index, tmp_path)
    code, _out, err = verify(capsys, path, index.url, "--require-attestations", PROJECT)
    assert code == 1
    assert f"it is for sha256 {SDIST_SHA256}, not {hashlib.sha256(other).hexdigest()}" in err


def test_a_remote_answer_is_checked_for_attestations_by_the_client(index, index_builder, tmp_path):
    """``venv --server`` checks the answer against the client's own indexes (verify_answer): attestations too,
    when the request requires them, so a server that skipped the check or lied about it is caught."""
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.cli import build_parser, build_request
    from venvsmith.cli.verify import verify_answer
    from venvsmith.core.config import PipIndexConfig

    args = build_parser().parse_args(["resolve", PROJECT, "lib", *TARGET, "--index-url", index.url,
                                      "--require-attestations", PROJECT])
    request = build_request(args)
    engine = ResolverEngine(EngineSettings(home=tmp_path / "server", pip=PipIndexConfig()))
    try:
        answer = engine.resolve(request)
    finally:
        engine.close()
    assert verify_answer(args, request, answer.pins, "").valid
    index_builder.attest(SDIST.name, provenance(attestations=[tampered_statement()]))
    reasons = verify_answer(args, request, answer.pins, "").reasons
    assert len(reasons) == 1 and reasons[0].startswith(
        f"{PROJECT}==0.0.3: {SDIST.name} has no attestation that verifies: attestation 1 of the GitLab publisher "
        "facutuesca/gitlab-oidc-project: Sigstore verification failed: "), reasons
