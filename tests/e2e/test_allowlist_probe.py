"""The hostile probe of issue 11, item 1, against real ``venvsmith serve`` processes: a caller names locations on
the server's host (any file, any loopback port) in Build pins, indexes, find-links and direct URLs. A server
fetches only under the prefixes its operator allows (``--allow-index``), refusing others PERMISSION_DENIED before
any connection; a digest mismatch never tells the caller what the bytes really were.

"Must not connect" checks use a loopback listener on a port no prefix allows, recording every connection.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from tests.fixtures.builder_server import BuilderProcess, ResolverProcess
from tests.fixtures.dists import build_wheel
from tests.fixtures.hermetic import isolate
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.core.errors import ErrorDetails
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2


class Listener:
    """A TCP listener on 127.0.0.1 that accepts and records every connection (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Redirector:
    """An HTTP server on 127.0.0.1 answering every GET with a 302 to ``target``."""

    def __init__(self, target: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    it = Listener()
    yield it
    it.close()


@pytest.fixture(scope="module")
def redirector(listener) -> Iterator[Redirector]:
    it = Redirector(f"http://127.0.0.1:{listener.port}/files/plain-1.0-py3-none-any.whl")
    yield it
    it.close()


@pytest.fixture(scope="module")
def links(tmp_path_factory) -> Path:
    """An allowed find-links directory with one wheel, and a symlink leading out of it to a secret."""
    root = tmp_path_factory.mktemp("links")
    build_wheel(root, "plain", "1.0")
    secret = tmp_path_factory.mktemp("secret") / "key.txt"
    secret.write_text("the host's secret\n")
    (root / "escape.whl").symlink_to(secret)
    return root


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("index"))
    b.add("plain", "1.0")
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index, links, redirector) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("probe-home"), http=False,
                             allow=[index.base_url, str(links), redirector.base_url])
    yield process
    assert process.stop() == 0, process.log()


def wheel_pin(url: str, data: bytes, filename: str = "plain-1.0-py3-none-any.whl") -> common_pb2.Pin:
    return common_pb2.Pin(name="plain", version="1.0", url=url, filename=filename, is_wheel=True,
                          sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def build(server: BuilderProcess, pin: common_pb2.Pin) -> list[builder_pb2.BuildEvent]:
    header = builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(
        target=common_pb2.TargetSpec(), options=builder_pb2.BuildOptions(wheels=True)))
    requests = [header, builder_pb2.BuildRequest(pin=pin), builder_pb2.BuildRequest(end=builder_pb2.BuildEnd())]
    return list(server.stub.Build(iter(requests), timeout=60))


def failure(call) -> tuple[grpc.RpcError, ErrorDetails, str]:
    """The error of ``call()``, its decoded details, and everything the caller received about it as text."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    status = rpc_status.from_call(error)
    details = ErrorDetails.from_status(status) if status is not None else ErrorDetails()
    return error, details, f"{error.details()} {status}"


def test_a_plain_pin_from_an_allowed_find_links_directory_builds(server, links):
    wheel = links / "plain-1.0-py3-none-any.whl"
    events = build(server, wheel_pin(wheel.as_uri(), wheel.read_bytes()))
    assert [w.filename for w in events[-1].result.wheels] == [wheel.name]


@pytest.mark.parametrize("where", ["file", "bare path", "loopback port", "symlink out", "dot-dot"])
def test_a_pin_naming_a_location_outside_the_allow_list_is_permission_denied_before_any_connection(
        server, listener, links, where):
    secret = Path("/etc/passwd")
    url = {
        "file": secret.as_uri(),
        "bare path": str(secret),
        "loopback port": f"http://127.0.0.1:{listener.port}/files/plain-1.0-py3-none-any.whl",
        "symlink out": (links / "escape.whl").as_uri(),
        "dot-dot": (links.as_uri() + "/../" + secret.name),
    }[where]
    before = listener.connections
    error, details, said = failure(lambda: build(server, wheel_pin(url, b"guess")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, said
    assert details.reason == "URL_NOT_ALLOWED" and details.metadata["url"]
    assert listener.connections == before, "the builder connected to a location it does not allow"


def test_a_redirect_from_an_allowed_location_to_another_is_refused_before_it_is_followed(server, listener,
                                                                                        redirector):
    before = listener.connections
    error, details, said = failure(lambda: build(server, wheel_pin(redirector.base_url + "x.whl", b"guess")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, said
    assert details.reason == "URL_NOT_ALLOWED" and str(listener.port) in details.metadata["url"]
    assert listener.connections == before, "the builder followed a redirect to a location it does not allow"


def test_a_wrong_sha256_is_data_loss_without_the_real_digest_and_the_file_is_not_stored(server, links):
    wheel = links / "plain-1.0-py3-none-any.whl"
    data = wheel.read_bytes()
    real = hashlib.sha256(data).hexdigest()
    for pin in (wheel_pin(wheel.as_uri(), b"a guess"), common_pb2.Pin(
            name="plain", version="1.0", url=wheel.as_uri(), filename=wheel.name, is_wheel=True, sha256="0" * 64)):
        error, details, said = failure(lambda pin=pin: build(server, pin))
        assert error.code() == grpc.StatusCode.DATA_LOSS, said
        assert details.reason == "DIGEST_MISMATCH"
        assert real not in said and f"/{len(data)}" not in said and str(len(data)) not in said
        assert not details.metadata.get("actual")
    assert real in server.log(), "the real digest goes to the server's log"


def test_resolver_requests_naming_other_locations_are_permission_denied(server, listener, index):
    """The resolver co-hosted by the builder: indexes, find-links and direct URLs of a request."""
    before = listener.connections
    elsewhere = f"http://127.0.0.1:{listener.port}/simple/"
    for request in (
        resolver_pb2.ResolveRequest(requirements=["plain"], index=common_pb2.IndexConfig(index_url=elsewhere)),
        resolver_pb2.ResolveRequest(requirements=["plain"], index=common_pb2.IndexConfig(
            index_url=index.url, extra_index_urls=[elsewhere])),
        resolver_pb2.ResolveRequest(requirements=["plain"], index=common_pb2.IndexConfig(
            no_index=True, find_links=["/etc"])),
        resolver_pb2.ResolveRequest(requirements=["plain @ file:///etc/passwd"],
                                    index=common_pb2.IndexConfig(index_url=index.url)),
        resolver_pb2.ResolveRequest(requirements=["plain"], constraints=[f"plain @ {elsewhere}plain-1.0.whl"],
                                    index=common_pb2.IndexConfig(index_url=index.url)),
    ):
        error, details, said = failure(lambda request=request: server.resolver_stub.Resolve(request, timeout=60))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, said
        assert details.reason == "URL_NOT_ALLOWED"
    assert listener.connections == before
    answer = server.resolver_stub.Resolve(resolver_pb2.ResolveRequest(
        requirements=["plain"], index=common_pb2.IndexConfig(index_url=index.url)), timeout=60)
    assert [p.name for p in answer.pins] == ["plain"]


def test_a_resolver_server_by_default_fetches_only_from_its_own_configuration(tmp_path, index):
    with ResolverProcess(tmp_path / "r") as server:
        request = resolver_pb2.ResolveRequest(requirements=["plain"], index=common_pb2.IndexConfig(index_url=index.url))
        error, details, said = failure(lambda: server.resolver_stub.Resolve(request, timeout=60))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, said
    assert index.base_url in details.metadata["url"]


def test_a_resolver_server_configured_with_an_index_allows_that_index_by_default(tmp_path, index):
    with ResolverProcess(tmp_path / "r", env={"PIP_INDEX_URL": index.url}) as server:
        answer = server.resolver_stub.Resolve(resolver_pb2.ResolveRequest(requirements=["plain"]), timeout=60)
    assert [p.name for p in answer.pins] == ["plain"]


def test_an_index_page_redirecting_elsewhere_is_refused_before_the_redirect_is_followed(server, listener, redirector):
    before = listener.connections
    request = resolver_pb2.ResolveRequest(requirements=["plain"],
                                          index=common_pb2.IndexConfig(index_url=redirector.base_url + "simple/"))
    error, details, said = failure(lambda: server.resolver_stub.Resolve(request, timeout=60))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, said
    assert listener.connections == before


def test_the_http_client_checks_each_redirect_and_without_a_list_follows_it(listener, redirector):
    from venvsmith.core.errors import IndexUnavailable, UrlNotAllowed
    from venvsmith.core.index.allowlist import AllowList
    from venvsmith.core.index.http import HttpClient

    url = redirector.base_url + "simple/plain/"
    before = listener.connections
    with HttpClient(retries=1, allow=AllowList.from_prefixes([redirector.base_url])) as client:
        with pytest.raises(UrlNotAllowed):
            client.get(url, index=redirector.base_url)
        with pytest.raises(UrlNotAllowed):  # a streamed GET too, and again on the same pooled connection
            with client.stream(url, index=redirector.base_url):
                pass
    assert listener.connections == before
    with HttpClient(retries=1, timeout=5) as client, pytest.raises(IndexUnavailable):
        client.get(url, index=redirector.base_url)  # unchecked (the CLI's client): the listener is reached
    assert listener.connections > before


def test_the_embedded_cli_still_reads_the_local_locations_its_user_names(tmp_path, monkeypatch, capsys, links):
    """The CLI acts for its own user: a file:// index, a find-links directory and a direct file URL all work."""
    import json

    from venvsmith.cli import main

    isolate(monkeypatch, tmp_path / "home")
    index = IndexBuilder(tmp_path / "index")
    index.add("plain", "1.0")
    wheel = links / "plain-1.0-py3-none-any.whl"
    for argv in (["--index-url", index.simple_url(), "plain"], ["--no-index", "--find-links", str(links), "plain"],
                 ["--no-index", f"plain @ {wheel.as_uri()}"]):
        assert main(["resolve", "--format", "json", *argv]) == 0, capsys.readouterr().err
        assert [p["name"] for p in json.loads(capsys.readouterr().out)["pins"]] == ["plain"]
