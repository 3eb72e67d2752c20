"""PEP 740 provenance -> PEP 751 ``attestation-identities``: read for the pinned files only, and bounded."""

from __future__ import annotations

import json
import tomllib

import pytest
from packaging.pylock import Pylock

from tests.cli.test_cli import hermetic, run  # noqa: F401 - hermetic: autouse fixture
from venvsmith.core.index.provenance import MAX_DOCUMENT_BYTES

GITHUB = {"kind": "GitHub", "repository": "org/app", "workflow": "release.yml", "environment": "release"}
GITLAB = {"kind": "GitLab", "repository": "group/app", "workflow_filepath": ".gitlab-ci.yml"}


def provenance(*publishers: dict) -> dict:
    bundles = [{"publisher": {**p, "claims": {"nested": "dropped"}}, "attestations": [{"version": 1}]}
               for p in publishers]
    return {"version": 1, "attestation_bundles": bundles}


@pytest.fixture
def attested(index_builder):
    b = index_builder
    b.add("app", "1.0", deps=["lib"])
    b.add("app", "2.0", deps=["lib"])
    b.add("lib", "1.0")
    b.attest("app-2.0-py3-none-any.whl", provenance(GITHUB, GITLAB, GITHUB))
    b.attest("app-1.0-py3-none-any.whl", provenance({"kind": "Other"}))
    return b


def packages(capsys, *index_args: str) -> dict[str, dict]:
    code, out, err = run(capsys, "resolve", "app", "--python-version", "3.12", "--format", "pylock", *index_args)
    assert code == 0, err
    doc = tomllib.loads(out)
    Pylock.from_dict(doc)  # validates, attestation-identities included
    return {p["name"]: p for p in doc["packages"]}


@pytest.mark.parametrize("formats", [("json",), ("html",)])
def test_identities_of_the_pinned_file_from_an_http_index(capsys, attested, index_server, formats):
    server = index_server(attested, formats=formats)
    found = packages(capsys, "--index-url", server.url)
    assert found["app"]["attestation-identities"] == [GITHUB, GITLAB]  # distinct, string claims only
    assert "attestation-identities" not in found["lib"]
    fetched = [p for p in server.paths("GET") if p.endswith(".provenance")]
    assert fetched == ["/files/app-2.0-py3-none-any.whl.provenance"]  # the pinned file's only


def test_identities_from_a_file_index(capsys, attested):
    assert packages(capsys, "--index-url", attested.simple_url())["app"]["attestation-identities"] == [GITHUB, GITLAB]


def test_an_oversized_or_malformed_document_gives_no_identities(capsys, attested, index_server):
    server = index_server(attested)
    attested.attest("app-2.0-py3-none-any.whl", json.dumps(provenance(GITHUB)).encode() + b" " * MAX_DOCUMENT_BYTES)
    assert "attestation-identities" not in packages(capsys, "--index-url", server.url)["app"]
    attested.attest("app-2.0-py3-none-any.whl", b"[not json")
    assert "attestation-identities" not in packages(capsys, "--index-url", server.url, "--no-cache")["app"]

