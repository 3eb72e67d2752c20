"""Offline PEP 740 verification (venvsmith.core.attestations) on real Sigstore-signed attestations."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.attestations import (
    GITHUB,
    GITHUB_FILENAME,
    GITHUB_PROVENANCE,
    GITHUB_SHA256,
    GITLAB,
    SDIST,
    SDIST_SHA256,
    attestation,
    provenance,
    tampered_statement,
)
from venvsmith.core.attestations import MAX_ATTESTATIONS, required, verify_provenance
from venvsmith.core.errors import AttestationUnverified


def reason(document: bytes | None, filename: str = SDIST.name, sha256: str = SDIST_SHA256) -> str:
    with pytest.raises(AttestationUnverified) as caught:
        verify_provenance("gitlab-oidc-project", filename, sha256, document)
    err = caught.value
    assert (err.project, err.filename) == ("gitlab-oidc-project", filename)
    assert err.details().reason == "ATTESTATION_UNVERIFIED"
    assert err.details().metadata == {"project": "gitlab-oidc-project", "filename": filename, "reason": err.reason}
    assert err.message == (f"gitlab-oidc-project: attestations are required but {filename} has none that verify: "
                           f"{err.reason}")
    return err.reason


def test_a_real_gitlab_attestation_verifies_and_gives_the_verified_publisher():
    assert verify_provenance("gitlab-oidc-project", SDIST.name, SDIST_SHA256, provenance()) == (GITLAB,)


def test_a_real_github_provenance_document_verifies_from_the_digest_alone():
    doc = GITHUB_PROVENANCE.read_bytes()
    assert verify_provenance("pypi-attestations", GITHUB_FILENAME, GITHUB_SHA256, doc) == (GITHUB,)


def test_a_missing_document_fails():
    assert reason(None) == "the index serves no provenance document for it"


def test_another_files_digest_fails():
    assert reason(provenance(), sha256="ab" * 32) == (
        f"attestation 1 of the GitLab publisher facutuesca/gitlab-oidc-project: it is for sha256 {SDIST_SHA256}, "
        f"not {'ab' * 32}")


def test_another_file_name_fails():
    assert reason(provenance(), filename="gitlab_oidc_project-0.0.4.tar.gz") == (
        "attestation 1 of the GitLab publisher facutuesca/gitlab-oidc-project: it is for "
        "'gitlab_oidc_project-0.0.3.tar.gz', not gitlab_oidc_project-0.0.4.tar.gz")


def test_a_publisher_the_certificate_was_not_issued_to_fails():
    other = {**GITLAB, "repository": "attacker/gitlab-oidc-project"}
    text = reason(provenance(publisher=other))
    assert text.startswith("attestation 1 of the GitLab publisher attacker/gitlab-oidc-project: Sigstore "
                           "verification failed: "), text
    assert "attacker/gitlab-oidc-project" in text.split("failed: ", 1)[1]


def test_a_tampered_statement_fails_its_signature():
    text = reason(provenance(attestations=[tampered_statement()]))
    assert text.startswith("attestation 1 of the GitLab publisher facutuesca/gitlab-oidc-project: Sigstore "
                           "verification failed: "), text


def test_a_tampered_log_entry_fails():
    att = attestation()
    entry = att["verification_material"]["transparency_entries"][0]
    entry["inclusionProof"]["logIndex"] = str(int(entry["inclusionProof"]["logIndex"]) + 1)
    text = reason(provenance(attestations=[att]))
    assert "Sigstore verification failed: " in text


def test_one_bad_attestation_among_good_ones_fails():
    text = reason(provenance(attestations=[attestation(), tampered_statement()]))
    assert text.startswith("attestation 2 of the GitLab publisher"), text


def test_the_number_of_attestations_is_capped_before_any_is_verified():
    many = [attestation()] * (MAX_ATTESTATIONS + 1)
    assert reason(provenance(attestations=many)) == (
        f"its provenance document holds {MAX_ATTESTATIONS + 1} attestations, more than {MAX_ATTESTATIONS}")


@pytest.mark.parametrize("document, expected", [
    (b"[not json", "malformed provenance document (1 errors, first: : Invalid JSON: "),
    (json.dumps({"version": 1, "attestation_bundles": []}).encode(), "its provenance document holds no attestation"),
    (json.dumps({"version": 1, "attestation_bundles": [{"publisher": {"kind": "Nope"}, "attestations": []}]}).encode(),
     "malformed provenance document (1 errors, first: attestation_bundles.0.publisher: "),
])
def test_malformed_documents_fail(document, expected):
    assert reason(document).startswith(expected)


def test_names_and_all():
    assert required({"app"}, "app") and required({":all:"}, "lib") and not required({"app"}, "lib")


def test_verification_reaches_no_network_and_writes_nothing_to_the_users_directories(tmp_path):
    """Run in a fresh interpreter with an audit hook that refuses every socket (a TUF refresh would need one) and
    a home directory of its own that must stay empty (sigstore's TUF cache would be written there)."""
    home = tmp_path / "home"
    home.mkdir()
    script = textwrap.dedent("""
        import sys
        def refuse(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
                raise RuntimeError(f"network use: {event} {args}")
        sys.addaudithook(refuse)
        from tests.fixtures.attestations import provenance, SDIST, SDIST_SHA256
        from venvsmith.core.attestations import verify_provenance
        print(verify_provenance("gitlab-oidc-project", SDIST.name, SDIST_SHA256, provenance()))
    """)
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_DATA_HOME": str(home / "data")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    assert "facutuesca/gitlab-oidc-project" in done.stdout
    assert list(home.rglob("*")) == []


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
#: Paths into the real attestation whose value a mutation replaces.
PATHS = [("version",), ("envelope", "statement"), ("envelope", "signature"), ("verification_material", "certificate"),
         ("verification_material", "transparency_entries"),
         ("verification_material", "transparency_entries", 0, "inclusionProof"),
         ("verification_material", "transparency_entries", 0, "canonicalizedBody"),
         ("verification_material", "transparency_entries", 0, "logIndex"),
         ("verification_material", "transparency_entries", 0, "integratedTime")]
BASE64 = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=JSON | BASE64)
def test_any_change_to_an_attestation_is_a_failure_with_a_reason_never_a_crash(path, value):
    att = attestation()
    node = att
    for key in path[:-1]:
        node = node[key]
    if node[path[-1]] == value:
        return
    node[path[-1]] = value
    with pytest.raises(AttestationUnverified) as caught:
        verify_provenance("gitlab-oidc-project", SDIST.name, SDIST_SHA256, provenance(attestations=[att]))
    assert caught.value.reason
