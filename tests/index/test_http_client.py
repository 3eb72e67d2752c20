"""HttpClient against local servers: auth, retries, redirects, ranges, decoding, pooling."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index import http as http_module
from venvsmith.core.index.auth import Auth, Credential
from venvsmith.core.index.http import HttpClient, unexpected_status
from venvsmith.core.index.pages import ACCEPT

WHEEL = "foo-1.0-py3-none-any.whl"


@pytest.fixture
def client() -> Iterator[HttpClient]:
    client = HttpClient(timeout=5, retries=3, backoff=0.01)
    yield client
    client.close()


@pytest.fixture
def published(index_builder, index_server):
    index_builder.add("foo", "1.0")
    return index_builder


def test_get_page_headers_and_user_agent(client, published, index_server):
    server = index_server()
    page = client.get(server.project_url("foo"), index=server.url, headers={"Accept": ACCEPT})
    assert page.status_code == 200 and WHEEL in page.text
    assert page.headers["content-type"] == page.headers["Content-Type"]  # case-insensitive
    assert page.headers.get("ETAG") and page.url == server.project_url("foo")
    (record,) = server.requests
    assert record.headers["accept"] == ACCEPT
    assert record.headers["user-agent"] == http_module.user_agent()


def test_basic_and_token_auth(client, published, index_server):
    server = index_server(auth=("bob", "pw"), token="t0ken")
    for credential in (Credential(server.url, "bob", "pw"), Credential(server.url, token="t0ken")):
        auth = Auth([credential], use_netrc=False)
        assert client.get(server.project_url("foo"), index=server.url, auth=auth).status_code == 200
    with pytest.raises(IndexUnavailable, match=r"authentication failed \(HTTP 401\).*no credentials were sent"):
        client.get(server.project_url("foo"), index=server.url, auth=Auth(use_netrc=False))
    wrong = Auth([Credential(server.url, "bob", "nope")], use_netrc=False)
    with pytest.raises(IndexUnavailable, match="credentials were rejected") as info:
        client.get(server.project_url("foo"), index="http://****@index/simple/", auth=wrong)
    assert info.value.index == "http://****@index/simple/" and "nope" not in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(client, published, index_server, status):
    server = index_server(fail_status=status, fail_times=2)
    assert client.get(server.project_url("foo"), index=server.url).status_code == 200
    assert server.failures == 2


def test_persistent_5xx_gives_up_naming_the_index(client, published, index_server):
    server = index_server(fail_status=503)
    with pytest.raises(IndexUnavailable, match="HTTP 503 fetching .*gave up after 3 tries") as info:
        client.get(server.project_url("foo"), index="the-index")
    assert info.value.index == "the-index" and server.failures == 3


def test_other_statuses_are_the_callers(client, published, index_server):
    server = index_server()
    missing = client.get(f"{server.base_url}/files/nope.whl", index=server.url)
    assert missing.status_code == 404 and missing.url.endswith("/files/nope.whl")
    error = unexpected_status(missing, server.url)
    assert "HTTP 404" in str(error) and error.index == server.url


def test_redirects_are_followed_with_the_final_url(client, published, index_server):
    server = index_server(auth=("bob", "pw"))
    auth = Auth([Credential(server.url, "bob", "pw")], use_netrc=False)
    page = client.get(f"{server.url}FOO", index=server.url, auth=auth)  # 301 to /simple/foo/ on the same host
    assert page.status_code == 200 and page.url == server.project_url("foo") and WHEEL in page.text
    assert [r.path for r in server.requests] == ["/simple/FOO", "/simple/foo/"]


def test_ranges_and_streaming(client, published, index_server):
    server = index_server()
    data = published.file_path(WHEEL).read_bytes()
    url = server.file_url(WHEEL)
    tail = client.get(url, index=server.url, headers={"Range": "bytes=-100", "Accept-Encoding": "identity"})
    assert tail.status_code == 206 and tail.content == data[-100:]
    assert tail.headers["Content-Range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    with client.stream(url, index=server.url, headers={"Range": "bytes=10-19"}) as part:
        assert part.status_code == 206 and part.read() == data[10:20]
    with client.stream(url, index=server.url) as whole:
        assert b"".join(whole.iter_bytes(100)) == data
    assert server.requests[-1].headers.get("accept-encoding") != "identity"


def test_an_abandoned_stream_gives_its_connection_back(published, index_server):
    server = index_server()
    with HttpClient(timeout=3, retries=1, max_connections=1) as client:
        for _ in range(3):  # one pooled connection: each request needs the previous one's slot
            with client.stream(server.file_url(WHEEL), index=server.url) as response:
                next(response.iter_bytes(10))
            with client.stream(server.file_url(WHEEL), index=server.url) as response:
                assert response.status_code == 200  # never read
        assert client.get(server.project_url("foo"), index=server.url).status_code == 200


def test_unreachable_and_malformed(client, published, index_server):
    server = index_server()
    url = server.url
    server.stop()
    with pytest.raises(IndexUnavailable, match=r"ConnectError fetching .*gave up after 3 tries"):
        client.get(url, index=url)
    with pytest.raises(IndexUnavailable, match="cannot fetch"):
        client.get("ftp://127.0.0.1/simple/", index="ftp-index")


def test_read_timeout_is_retried_then_reported(published, index_server, client):
    server = index_server(delay=1.5)
    slow = HttpClient(timeout=0.3, retries=2, backoff=0.01)
    try:
        with pytest.raises(IndexUnavailable, match=r"ReadTimeout fetching .*gave up after 2 tries"):
            slow.get(server.project_url("foo"), index=server.url)
    finally:
        slow.close()


def test_closed_client_refuses(client, published, index_server):
    server = index_server()
    client.get(server.project_url("foo"), index=server.url)
    client.close()
    with pytest.raises(RuntimeError):
        client.get(server.project_url("foo"), index=server.url)


def test_concurrent_requests_share_the_pool(client, published, index_server):
    server = index_server()
    data = published.file_path(WHEEL).read_bytes()

    def fetch(i: int) -> bool:
        if i % 2:
            return WHEEL in client.get(server.project_url("foo"), index=server.url).text
        with client.stream(server.file_url(WHEEL), index=server.url) as response:
            return b"".join(response.iter_bytes()) == data

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(fetch, range(200)))


# ------------------------------------------------------------------------- a server of odd answers


class _OddHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    peers: list[int]
    other: str

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self) -> None:
        self.peers.append(self.client_address[1])
        body = b""
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
        elif self.path == "/away":
            self.send_response(302)
            self.send_header("Location", f"{self.other}/echo-auth")
        elif self.path == "/echo-auth":
            body = (self.headers.get("Authorization") or "none").encode()
            self.send_response(200)
        elif self.path == "/gzip":
            body = gzip.compress(b"hello " * 1000)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
        elif self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        else:
            body = b"ok"
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def odd_server() -> Iterator[Callable[[], tuple[str, list[int]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(other: str = "") -> tuple[str, list[int]]:
        peers: list[int] = []
        handler = type("Handler", (_OddHandler,), {"peers": peers, "other": other})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", peers

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_too_many_redirects(client, odd_server):
    base, _ = odd_server()
    with pytest.raises(IndexUnavailable, match="cannot fetch .*redirect"):
        client.get(f"{base}/loop", index=base)


def test_credentials_are_not_sent_to_another_host_after_a_redirect(client, odd_server):
    other, _ = odd_server()
    base, _ = odd_server(other.replace("127.0.0.1", "localhost"))
    auth = Auth([Credential(base + "/", "bob", "pw")], use_netrc=False)
    assert client.get(f"{base}/echo-auth", index=base, auth=auth).text.startswith("Basic ")
    moved = client.get(f"{base}/away", index=base, auth=auth)
    assert moved.text == "none" and moved.url.startswith("http://localhost:")


def test_content_encoding_is_decoded(client, odd_server):
    base, _ = odd_server()
    response = client.get(f"{base}/gzip", index=base)
    assert response.content == b"hello " * 1000
    with client.stream(f"{base}/gzip", index=base) as streamed:
        assert b"".join(streamed.iter_bytes(64)) == b"hello " * 1000


def test_a_body_cut_short_is_index_unavailable(client, odd_server):
    base, _ = odd_server()
    with pytest.raises(IndexUnavailable):
        client.get(f"{base}/truncated", index=base)
    with pytest.raises(IndexUnavailable, match="reading .* failed"):
        with client.stream(f"{base}/truncated", index=base) as response:
            response.read()


def test_connections_are_kept_alive(client, odd_server):
    base, peers = odd_server()
    for _ in range(5):
        assert client.get(f"{base}/ok", index=base).content == b"ok"
    assert len(peers) == 5 and len(set(peers)) == 1


def test_proxy_from_the_environment(client, published, index_server, monkeypatch):
    server = index_server()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.base_url)  # the index server answers absolute-form requests too
    proxied = HttpClient(timeout=5, retries=1)
    try:
        page = proxied.get("http://index.invalid/simple/foo/", index="proxied", headers={"Accept": ACCEPT})
        assert page.status_code == 200 and WHEEL in page.text
        assert server.requests[-1].path.startswith("http://index.invalid/")
    finally:
        proxied.close()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassing = HttpClient(timeout=2, retries=1)
    try:
        with pytest.raises(IndexUnavailable, match="ConnectError"):  # straight to the dead port, not the proxy
            bypassing.get(f"http://127.0.0.1:{dead}/simple/foo/", index="direct")
    finally:
        bypassing.close()


def test_user_info_in_a_url_is_basic_auth(client, published, index_server):
    server = index_server(auth=("bob", "p@ss"))
    url = f"http://bob:p%40ss@127.0.0.1:{server.port}/simple/foo/"
    assert client.get(url, index="idx").status_code == 200
    assert server.requests[-1].headers["authorization"].startswith("Basic ")
