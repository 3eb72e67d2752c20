"""Credentials by URL prefix, from index URLs and netrc; redaction of user-info."""

from __future__ import annotations

import base64

import pytest

from venvsmith.core.index.auth import Auth, Credential, matches_prefix, redact, split_userinfo


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:secret@host.example/simple/", "https://****@host.example/simple/"),
        ("https://token@host.example:8443/simple/", "https://****@host.example:8443/simple/"),
        ("https://a%40b:p%3Aw@host.example/", "https://****@host.example/"),
        ("https://host.example/simple/", "https://host.example/simple/"),
        ("file:///tmp/wheels", "file:///tmp/wheels"),
        ("/local/dir", "/local/dir"),
    ],
)
def test_redact(url, expected):
    assert redact(url) == expected


def test_split_userinfo_unquotes():
    assert split_userinfo("https://a%40b:p%3Aw@host.example/x") == ("https://host.example/x", ("a@b", "p:w"))
    assert split_userinfo("https://host.example/x") == ("https://host.example/x", None)
    assert split_userinfo("https://tok@host.example/x") == ("https://host.example/x", ("tok", ""))


@pytest.mark.parametrize(
    ("url", "prefix", "matches"),
    [
        ("https://h.example/simple/foo/", "https://h.example/simple/", True),
        ("https://h.example/simple/foo/", "https://h.example/simple", True),
        ("https://H.EXAMPLE:443/simple/foo/", "https://h.example/simple", True),
        ("https://h.example/simple-evil/foo/", "https://h.example/simple", False),
        ("http://h.example/simple/foo/", "https://h.example/simple", False),
        ("https://h.example:8443/simple/", "https://h.example/simple", False),
        ("https://other.example/simple/", "https://h.example/", False),
        ("https://h.example/anything", "https://h.example", True),
    ],
)
def test_prefix_matching(url, prefix, matches):
    assert matches_prefix(url, prefix) is matches


def test_longest_prefix_wins_and_tokens_are_bearer():
    auth = Auth(
        [
            Credential("https://h.example/", "wide", "pw"),
            Credential("https://h.example/private/", token="tok"),
        ],
        use_netrc=False,
    )
    assert auth.headers("https://h.example/private/simple/foo/") == {"Authorization": "Bearer tok"}
    basic = base64.b64encode(b"wide:pw").decode()
    assert auth.headers("https://h.example/public/foo/") == {"Authorization": f"Basic {basic}"}
    assert auth.headers("https://elsewhere.example/") == {}


def test_a_prefix_credential_also_covers_other_paths_of_its_host_as_a_fallback():
    auth = Auth(
        [
            Credential("https://h.example/simple/", "idx", "1"),
            Credential("https://h.example/other/", "o", "2"),
        ],
        use_netrc=False,
    )
    assert auth.for_url("https://h.example/other/x").username == "o"
    assert auth.for_url("https://h.example/packages/foo-1.0.tar.gz") is not None
    assert auth.for_url("http://h.example/packages/foo-1.0.tar.gz") is None  # another scheme is another realm


def test_credentials_embedded_in_an_index_url_cover_its_host():
    auth = Auth([], ["https://u:p@h.example/simple/"], use_netrc=False)
    cred = auth.for_url("https://h.example/packages/ab/foo-1.0.tar.gz")
    assert (cred.username, cred.password) == ("u", "p")
    assert auth.for_url("https://other.example/simple/") is None


def test_netrc_by_host(tmp_path, monkeypatch):
    rc = tmp_path / "netrc"
    rc.write_text("machine h.example login nu password np\n")
    rc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(rc))
    auth = Auth()
    cred = auth.for_url("https://h.example/simple/foo/")
    assert (cred.username, cred.password) == ("nu", "np")
    assert auth.for_url("https://other.example/") is None
    # Explicit credentials win over netrc.
    explicit = Auth([Credential("https://h.example/", "eu", "ep")])
    assert explicit.for_url("https://h.example/simple/").username == "eu"


def test_missing_or_broken_netrc_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    assert Auth().for_url("https://h.example/") is None
    broken = tmp_path / "broken"
    broken.write_text("machine\n")
    monkeypatch.setenv("NETRC", str(broken))
    assert Auth().for_url("https://h.example/") is None


def test_credential_repr_hides_secrets():
    text = repr(Credential("https://h.example/", "user", "hunter2", "tok"))
    assert "hunter2" not in text and "tok'" not in text
