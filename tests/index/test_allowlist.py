"""The allow-list of index and find-links prefixes a server fetches from (no traffic: a pure function)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venvsmith.core.errors import UrlNotAllowed
from venvsmith.core.index.allowlist import AllowList, normalise

INDEX = "http://127.0.0.1:8080/simple/"


def allowed(allow: AllowList, url: str) -> bool:
    return allow.allows(url)


def test_a_url_under_an_allowed_prefix_is_allowed_and_others_are_denied():
    allow = AllowList.from_prefixes([INDEX])
    assert allowed(allow, "http://127.0.0.1:8080/simple/demo/")
    assert allowed(allow, "http://127.0.0.1:8080/simple")
    assert allowed(allow, "HTTP://127.0.0.1:8080/simple/Demo/?x=1#sha256=00")
    for url in ["http://127.0.0.1:8081/simple/", "https://127.0.0.1:8080/simple/", "http://127.0.0.1:8080/",
                "http://127.0.0.1:8080/simplex/", "http://127.0.0.2:8080/simple/", "http://127.0.0.1/simple/",
                "file:///etc/passwd", "/etc/passwd", "ftp://127.0.0.1:8080/simple/"]:
        assert not allowed(allow, url), url


def test_default_ports_are_explicit_and_hosts_are_case_insensitive():
    allow = AllowList.from_prefixes(["https://Index.Example.Test/simple/"])
    assert allowed(allow, "https://index.example.test:443/simple/a/")
    assert allowed(allow, "https://INDEX.example.test./simple/a/")
    assert not allowed(allow, "https://index.example.test:8443/simple/a/")
    assert not allowed(allow, "http://index.example.test/simple/a/")


def test_the_denial_is_permission_denied_naming_the_redacted_url():
    allow = AllowList.from_prefixes([INDEX])
    with pytest.raises(UrlNotAllowed) as info:
        allow.check("http://user:s3cret@127.0.0.1:9/x.whl")
    assert info.value.status == "PERMISSION_DENIED"
    assert info.value.error_reason == "URL_NOT_ALLOWED"
    assert "s3cret" not in info.value.message and "s3cret" not in str(info.value.details())
    assert info.value.details().metadata["url"] == "http://****@127.0.0.1:9/x.whl"


def test_user_info_tricks_do_not_change_the_host():
    allow = AllowList.from_prefixes([INDEX])
    assert allowed(allow, "http://user:pw@127.0.0.1:8080/simple/a/")  # credentials of the allowed index
    for url in ["http://127.0.0.1:8080@169.254.169.254/simple/", "http://127.0.0.1:8080:pw@10.0.0.1/simple/",
                "http://a@127.0.0.1:8080@10.0.0.1/simple/", "http://10.0.0.1\\@127.0.0.1:8080/simple/",
                "http://127.0.0.1:8080%40evil/simple/"]:
        assert not allowed(allow, url), url


@pytest.mark.parametrize("path", ["/simple/../admin/", "/simple/./../x", "/simple/%2e%2e/admin/",
                                  "/simple/%2E%2e/admin/", "/simple/..%2fadmin/", "/simple/%2f../admin",
                                  "/simple/..%5cadmin/", "/simple/a%00/", "/simple/a\\..\\..\\admin",
                                  "/simple/\t../admin/", "/simple/\n/", "/simple/..;/admin/",
                                  "/simple/.;x/../admin"])
def test_traversal_and_encoded_separators_are_refused(path):
    assert not allowed(AllowList.from_prefixes([INDEX]), "http://127.0.0.1:8080" + path)


def test_percent_escapes_of_ordinary_characters_compare_decoded():
    allow = AllowList.from_prefixes(["http://127.0.0.1:8080/~user/"])
    assert allowed(allow, "http://127.0.0.1:8080/%7Euser/a/")


@pytest.mark.parametrize("host", ["127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1", "127.0.0.01", "0x7f000001"])
def test_numeric_shorthand_hosts_are_refused(host):
    assert not allowed(AllowList.from_prefixes([INDEX]), f"http://{host}:8080/simple/")


def test_ipv4_mapped_ipv6_compares_as_ipv4():
    allow = AllowList.from_prefixes([INDEX])
    assert allowed(allow, "http://[::ffff:127.0.0.1]:8080/simple/a/")
    assert allowed(allow, "http://[::FFFF:7f00:1]:8080/simple/a/")
    assert not allowed(allow, "http://[::1]:8080/simple/a/")
    v6 = AllowList.from_prefixes(["http://[::1]:8080/simple/"])
    assert allowed(v6, "http://[0:0:0:0:0:0:0:1]:8080/simple/a/")
    assert not allowed(v6, "http://[::1%25lo]:8080/simple/a/")  # zone ids


@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]", "0.0.0.0", "[::]",
                                  "224.0.0.1", "[fd00:ec2::254]"])
def test_link_local_unspecified_multicast_and_metadata_addresses_are_refused_even_when_named(host):
    """Cloud metadata endpoints live at link-local addresses: never fetched, whatever the operator wrote."""
    with pytest.raises(ValueError):
        normalise(f"http://{host}/latest/")
    assert not allowed(AllowList.from_prefixes([INDEX]), f"http://{host}/latest/")


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "172.16.0.1", "[fd00::1]", "127.0.0.2", "localhost"])
def test_private_and_loopback_addresses_are_allowed_only_when_a_prefix_names_them(host):
    assert not allowed(AllowList.from_prefixes([INDEX, "https://index.example.test/"]), f"http://{host}:8080/simple/")
    assert allowed(AllowList.from_prefixes([f"http://{host}:8080/simple/"]), f"http://{host}:8080/simple/a/")


def test_file_prefixes_compare_real_paths_so_symlinks_cannot_escape(tmp_path: Path):
    root = tmp_path / "links"
    root.mkdir()
    (root / "a.whl").write_bytes(b"x")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("k")
    (root / "escape").symlink_to(secret)
    allow = AllowList.from_prefixes([root.as_uri()])
    assert allowed(allow, (root / "a.whl").as_uri())
    assert allowed(allow, str(root / "a.whl"))  # a bare path
    assert allowed(allow, "file://localhost" + str(root / "a.whl"))
    assert allow.local_path((root / "a.whl").as_uri()) == (root / "a.whl").resolve()
    assert not allowed(allow, (root / "escape" / "key").as_uri())
    assert not allowed(allow, str(root / "escape" / "key"))
    assert not allowed(allow, root.as_uri() + "/../secret/key")
    assert not allowed(allow, root.as_uri() + "/%2e%2e/secret/key")
    assert not allowed(allow, str(root) + "/../secret/key")
    assert not allowed(allow, str(root) + "x/a.whl")  # segment boundary
    assert not allowed(allow, "file://otherhost" + str(root / "a.whl"))
    assert not allowed(allow, "file:///etc/passwd")


def test_a_symlinked_prefix_allows_its_target(tmp_path: Path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    allow = AllowList.from_prefixes([str(tmp_path / "alias")])
    assert allowed(allow, (real / "a.whl").as_uri())


def test_everything_allows_any_location_and_malformed_prefixes_are_errors():
    assert AllowList.everything().allows("file:///etc/passwd")
    assert AllowList.everything().check("http://169.254.169.254/") is None
    with pytest.raises(ValueError, match="invalid allowed index prefix"):
        AllowList.from_prefixes(["http://127.0.0.1:8080/a/../b"])
    with pytest.raises(ValueError):
        AllowList.from_prefixes(["gopher://127.0.0.1/"])


_SEGMENT = st.lists(st.sampled_from([*"ab.%2eEfF5c0/\\@:?#[] \t", "%2e", "%2f", "%2E", "..", "%5c", "%00"]),
                    max_size=8).map("".join)
_HOSTS = st.sampled_from(["127.0.0.1", "127.0.0.1:8080", "127.0.0.1:8081", "[::ffff:127.0.0.1]:8080", "127.1:8080",
                          "u:p@127.0.0.1:8080", "127.0.0.1:8080@10.0.0.1", "10.0.0.1", "localhost:8080",
                          "169.254.169.254", "[::1]:8080", ""])


@given(scheme=st.sampled_from(["http", "HTTP", "https", "file", "ftp", ""]), host=_HOSTS,
       segments=st.lists(_SEGMENT, max_size=5))
def test_whatever_the_form_an_allowed_url_is_on_the_allowed_host_and_path(scheme, host, segments):
    """Property: an allowed URL, parsed the way a client library would parse it, names the allowed host and port
    and a path that, with dot segments resolved, stays under the prefix."""
    from urllib.parse import unquote, urlsplit

    url = f"{scheme}://{host}/simple/" + "/".join(segments) if scheme else "/simple/" + "/".join(segments)
    allow = AllowList.from_prefixes([INDEX])
    if not allow.allows(url):
        return
    parts = urlsplit(url)
    assert parts.scheme.lower() == "http"
    assert parts.hostname in ("127.0.0.1", "::ffff:127.0.0.1") and parts.port == 8080
    resolved = os.path.normpath(unquote(parts.path))
    assert resolved == "/simple" or resolved.startswith("/simple/")


@given(name=st.text(min_size=1, max_size=20))
def test_whatever_the_name_an_allowed_path_stays_in_the_directory(tmp_path_factory, name):
    root = tmp_path_factory.getbasetemp() / "allow-root"
    root.mkdir(exist_ok=True)
    allow = AllowList.from_prefixes([str(root)])
    for url in (str(root) + "/" + name, root.as_uri() + "/" + name):
        path = allow.local_path(url) if allow.allows(url) else None
        if path is not None:
            assert path == root.resolve() or path.is_relative_to(root.resolve())


def test_a_servers_default_allows_the_hosts_and_find_links_of_its_own_configuration(tmp_path: Path):
    from venvsmith.core.config import PipIndexConfig
    from venvsmith.core.index.allowlist import server_allow_list

    links = tmp_path / "links"
    links.mkdir()
    pip = PipIndexConfig(index_url="http://user:pw@127.0.0.1:8080/simple/",
                         extra_index_urls=("https://index.example.test/extra/simple/",), find_links=(str(links),))
    allow = server_allow_list(pip)
    assert allow.allows("http://127.0.0.1:8080/files/a-1.0-py3-none-any.whl")  # the index's files, same host
    assert allow.allows("https://index.example.test/packages/a.whl")
    assert allow.allows((links / "a.whl").as_uri())
    assert not allow.allows("http://127.0.0.1:8081/simple/") and not allow.allows("file:///etc/passwd")
    replaced = server_allow_list(pip, ["http://127.0.0.1:9000/simple/"])  # --allow-index replaces the default
    assert replaced.allows("http://127.0.0.1:9000/simple/a/")
    assert not replaced.allows("http://127.0.0.1:8080/simple/a/") and not replaced.allows(str(links / "a.whl"))
    assert not server_allow_list(PipIndexConfig(index_url=INDEX, no_index=True)).allows(INDEX)


def test_with_pips_built_in_default_index_its_file_host_is_allowed_too():
    from pip._internal.models.index import PyPI  # pip's constants, read at run time

    from venvsmith.core.config import PipIndexConfig
    from venvsmith.core.index.allowlist import server_allow_list

    allow = server_allow_list(PipIndexConfig())
    assert allow.allows(PyPI.simple_url + "demo/")
    assert allow.allows(f"https://{PyPI.file_storage_domain}/packages/aa/bb/demo-1.0-py3-none-any.whl")
    assert not allow.allows("http://169.254.169.254/latest/meta-data/")
