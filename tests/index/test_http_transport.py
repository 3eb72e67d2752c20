"""TLS and proxy set-up of the HTTP client: proxy selection as pure functions, a forwarding proxy on 127.0.0.1,
and a client certificate presented to a local TLS server that requires one."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index.http import HttpClient
from venvsmith.core.index.transport import bypasses_proxy, proxies_from_environment, proxy_for

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# ---------------------------------------------------------------------------------------- pure rules


def test_proxies_from_the_environment_as_urllib_reads_them():
    environ = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128", "HTTP_PROXY": "http://p:1"}
    assert proxies_from_environment(environ) == {"https": "http://lower:3128", "http": "http://p:1"}
    assert proxies_from_environment({"HTTP_PROXY": "http://p:1", "http_proxy": ""}) == {}  # lower case unsets
    assert proxies_from_environment({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}) == {}  # httpoxy
    assert proxies_from_environment({"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}) == {"http": "http://p:1"}
    assert proxies_from_environment({"ALL_PROXY": "socks5://s:1080", "NO_PROXY": "a,b", "PATH": "/bin"}) == {
        "all": "socks5://s:1080",
        "no": "a,b",
    }
    assert proxies_from_environment(os.environ) == urllib.request.getproxies_environment()


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("index.corp", 443, "*", True),
        ("index.corp", 443, "corp", True),
        ("index.corp", 443, ".corp", True),
        ("corp", 443, ".corp", True),
        ("index.corp", 443, "other, index.corp", True),
        ("INDEX.corp.", 443, "index.CORP", True),
        ("badcorp", 443, "corp", False),
        ("index.corp", 443, "index.corp:8443", False),
        ("index.corp", 8443, "index.corp:8443", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("10.1.2.3", 80, "10.1.2.3", True),
        ("::1", 80, "::1/128", True),
        ("[::1]", 80, "[::1]:80", True),
        ("index.corp", 443, "", False),
        ("", 443, "*", False),
    ],
)
def test_no_proxy_matching(host, port, no_proxy, bypass):
    assert bypasses_proxy(host, port, no_proxy) is bypass


def test_proxy_for_each_scheme():
    proxies = {"https": "http://tls-proxy:3128", "all": "proxy:8080", "no": "local.corp"}
    assert proxy_for("https://index.corp/simple/", proxies) == "http://tls-proxy:3128"
    assert proxy_for("http://index.corp/simple/", proxies) == "http://proxy:8080"  # bare host:port is HTTP
    assert proxy_for("https://local.corp/simple/", proxies) is None
    assert proxy_for("https://a.local.corp:99/simple/", proxies) is None
    assert proxy_for("http://index.corp/", {"https": "http://tls-proxy:3128"}) is None
    assert proxy_for("http://index.corp:notaport/", {"http": "http://p:1"}) == "http://p:1"


# ----------------------------------------------------------------------------------- a local proxy


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forwarding proxy: GETs in absolute form are fetched directly and answered back."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]]

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "host")}
        try:
            with direct.open(urllib.request.Request(self.path, headers=headers), timeout=5) as upstream:
                status, body, kind = upstream.status, upstream.read(), upstream.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), ""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def forwarding_proxy() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_ForwardingProxy,), {"seen": seen}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _clear_proxies(monkeypatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_requests_go_through_the_proxy_with_its_credentials(index_builder, index_server, forwarding_proxy, monkeypatch):
    index_builder.add("foo", "1.0")
    server = index_server()
    proxy, seen = forwarding_proxy
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("http_proxy", f"http://proxy%20user:s3cret@{proxy}")
    with HttpClient(timeout=5, retries=1) as client:
        page = client.get(server.project_url("foo"), index=server.url)
    assert page.status_code == 200 and "foo-1.0-py3-none-any.whl" in page.text
    assert seen == [(server.project_url("foo"), "Basic cHJveHkgdXNlcjpzM2NyZXQ=")]  # "proxy user:s3cret"
    assert server.requests[-1].path == "/simple/foo/"


def test_no_proxy_goes_direct(index_builder, index_server, forwarding_proxy, monkeypatch):
    index_builder.add("foo", "1.0")
    server = index_server()
    proxy, seen = forwarding_proxy
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy}")
    monkeypatch.setenv("NO_PROXY", "example.invalid, 127.0.0.0/8")
    with HttpClient(timeout=5, retries=1) as client:
        assert client.get(server.project_url("foo"), index=server.url).status_code == 200
    assert seen == [] and server.requests[-1].path == "/simple/foo/"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.DependencyWarning")
def test_socks_proxy_without_pysocks_is_index_unavailable(monkeypatch):
    try:
        import socks  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PySocks is installed")
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1")
    with HttpClient(timeout=2, retries=1) as client:
        with pytest.raises(IndexUnavailable, match="SOCKS proxy .*PySocks"):
            client.get("http://127.0.0.1:1/simple/", index="idx")


# ------------------------------------------------------------------------------------ client certificate


def _self_signed(directory: Path, name: str) -> Path:
    """A PEM file holding a self-signed certificate for 127.0.0.1 and its key (``openssl`` CLI)."""
    pem = directory / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(pem), "-out", str(directory / f"{name}.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    pem.write_text(pem.read_text() + (directory / f"{name}.crt").read_text())
    return pem


class _WhoAmI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self) -> None:
        peer = self.connection.getpeercert() or {}
        body = dict(part[0] for part in peer.get("subject", ())).get("commonName", "anonymous").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_client_certificate_is_presented(tmp_path):
    server_pem, client_pem = _self_signed(tmp_path, "server"), _self_signed(tmp_path, "agent")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no certificate, no answer
    context.load_verify_locations(tmp_path / "agent.crt")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WhoAmI)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/simple/"
    try:
        ca = str(tmp_path / "server.crt")
        with HttpClient(timeout=5, retries=1, ca_bundle=ca, client_cert=str(client_pem)) as client:
            assert client.get(url, index="idx").content == b"agent"
        with HttpClient(timeout=5, retries=1, ca_bundle=ca) as anonymous:
            with pytest.raises(IndexUnavailable):
                anonymous.get(url, index="idx")
        with HttpClient(retries=1, ca_bundle=ca, client_cert=str(tmp_path / "missing.pem")) as broken:
            with pytest.raises(IndexUnavailable, match="trust store"):
                broken.get(url, index="idx")
    finally:
        server.shutdown()
        server.server_close()
