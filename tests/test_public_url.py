"""The address a server advertises (``venvsmith.core.public_url``): never a wildcard, a reachable one first."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venvsmith.cli import build_parser
from venvsmith.cli.serve_options import ConfigError, apply_config
from venvsmith.core.public_url import advertised_host, check_public_url


def _pick(bind, name="ci-builder", resolves=(), addresses=()):
    return advertised_host(bind, hostname=lambda: name, resolve=lambda _: list(resolves),
                           addresses=lambda: list(addresses))


def test_one_bound_address_is_advertised_as_is():
    assert _pick("127.0.0.1", addresses=["10.0.0.5"]).host == "127.0.0.1"
    assert _pick("::1").host == "[::1]"
    assert _pick("builder.internal").host == "builder.internal"


def test_a_wildcard_prefers_the_hosts_name_when_it_is_an_address_of_this_host():
    mine = ["127.0.0.1", "10.0.0.5", "fd00::2"]
    chosen = _pick("0.0.0.0", resolves=["10.0.0.5"], addresses=mine)
    assert chosen.host == "ci-builder" and "10.0.0.5" in chosen.why
    # A name that resolves to loopback only (a common /etc/hosts), or to another host, is not reachable here.
    assert _pick("0.0.0.0", resolves=["127.0.1.1"], addresses=mine).host == "10.0.0.5"
    assert _pick("::", resolves=["192.0.2.77"], addresses=mine).host == "10.0.0.5"
    assert _pick("0.0.0.0", resolves=[], addresses=["127.0.0.1", "fe80::1", "fd00::2"]).host == "[fd00::2]"
    assert _pick("0.0.0.0", addresses=["127.0.0.1", "::1"]).host == "127.0.0.1"


_ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


@given(bind=st.sampled_from(["0.0.0.0", "::", "", "[::]"]), name=st.sampled_from(["", "h", "ci.example"]),
       resolves=st.lists(_ips, max_size=4), addresses=st.lists(_ips, max_size=6))
def test_a_wildcard_is_never_advertised(bind, name, resolves, addresses):
    host = _pick(bind, name, resolves, addresses).host
    bare = host.strip("[]")
    assert bare not in ("0.0.0.0", "::", "")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        assert host == name  # a name is advertised only when it resolves to an address of this host
        return
    assert not ip.is_unspecified
    usable = [a for a in addresses if not (ipaddress.ip_address(a).is_loopback or ipaddress.ip_address(a).is_link_local
                                           or ipaddress.ip_address(a).is_unspecified
                                           or ipaddress.ip_address(a).is_multicast)]
    if usable:
        assert bare in usable
    else:
        assert bare == "127.0.0.1"


@given(st.text(max_size=60))
def test_check_public_url_accepts_only_http_urls_without_credentials_or_query(text):
    try:
        url = check_public_url(text)
    except ValueError:
        return
    assert url.startswith(("http://", "https://")) and url.endswith("/")
    assert "@" not in url and "?" not in url and "#" not in url


def test_public_url_is_a_config_key_an_env_var_and_a_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("VENVSMITH_PUBLIC_URL", raising=False)
    config = tmp_path / "serve.toml"
    config.write_text('public_url = "http://file.example.test:8080"\n')
    parser = build_parser()

    def args(*argv):
        argv = ["serve", "builder", "--config", str(config), *argv]
        return apply_config(parser, argv, parser.parse_args(argv))

    assert args().public_url == "http://file.example.test:8080/"
    monkeypatch.setenv("VENVSMITH_PUBLIC_URL", "https://env.example.test/")
    assert args().public_url == "https://env.example.test/"
    assert args("--public-url", "http://flag.example.test/").public_url == "http://flag.example.test/"
    config.write_text('public_url = "https://user:pw-1234@file.example.test/"\n')
    monkeypatch.delenv("VENVSMITH_PUBLIC_URL")
    with pytest.raises(ConfigError, match=r"serve.toml:1: key 'public_url'.*user info") as caught:
        args()
    assert "pw-1234" not in str(caught.value)
