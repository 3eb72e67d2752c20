"""What a builder tells its callers its address is: artifact URLs and wheelhouse links name ``--public-url``
(``VENVSMITH_PUBLIC_URL``, config key ``public_url``), else an address clients can reach — never ``0.0.0.0``.

Hermetic: the servers bind ``0.0.0.0`` on ephemeral ports, but every connection of the test goes to ``127.0.0.1``
(the advertised host is only looked at, never connected to).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import grpc
import pytest

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.core.public_url import advertised_host, check_public_url
from venvsmith.v1 import builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

PUBLIC = "https://builds.example.test:8443/venvsmith"
_HTTP_PORT = re.compile(r"HTTP endpoint on \S+:(\d+)")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("public-url-index"))
    b.add("leaf", "1.0")
    b.add("root", "1.0", deps=["leaf"])
    with IndexServer(b) as server:
        yield server


def _build(port: int, index: IndexServer) -> builder_pb2.BuildResult:
    config = common_pb2.IndexConfig(index_url=index.url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["root"], index=config),
        options=builder_pb2.BuildOptions(wheels=True, wheelhouse=True, index=config))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # the test connects over loopback only
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        results = [e.build.result for e in stub.ResolveAndBuild(request, timeout=120)
                   if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result"]
    assert len(results) == 1
    return results[0]


def _refs(result: builder_pb2.BuildResult) -> list[common_pb2.ArtifactRef]:
    return [*result.wheels, result.wheelhouse, result.lock_file]


def _http_port(server: BuilderProcess) -> int:
    match = _HTTP_PORT.search(server.log())
    assert match, server.log()
    return int(match.group(1))


def _get(port: int, path: str, accept: str = "text/html") -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def _page_links(port: int, lock_key: str, project: str) -> list[str]:
    parser = _Links()
    parser.feed(_get(port, f"/wheelhouse/{lock_key}/simple/{project}/").decode())
    page = json.loads(_get(port, f"/wheelhouse/{lock_key}/simple/{project}/", "application/vnd.pypi.simple.v1+json"))
    return parser.hrefs + [f["url"] for f in page["files"]]


def test_bound_to_every_interface_it_advertises_a_reachable_address(tmp_path, index):
    with BuilderProcess(tmp_path / "home", "--host", "0.0.0.0", allow=[index.base_url]) as server:
        result = _build(server.port, index)
        base = urlsplit(result.http_base_url)
        assert base.hostname not in ("0.0.0.0", "::", None), result.http_base_url
        for ref in _refs(result):
            assert ref.http_url.startswith(result.http_base_url), ref
            assert "0.0.0.0" not in ref.http_url and "[::]" not in ref.http_url
        assert base.hostname == advertised_host("0.0.0.0").host.strip("[]")
        assert f"artifact URLs are {result.http_base_url}" in server.log()  # the operator is told which, and why
        http_port = _http_port(server)
        assert base.port == http_port
        # The same path answers on loopback (the advertised host itself is not connected to).
        wheel = result.wheels[0]
        data = _get(http_port, urlsplit(wheel.http_url).path)
    assert hashlib.sha256(data).hexdigest() == wheel.digest.hash


def test_public_url_is_in_every_artifact_url_and_wheelhouse_link(tmp_path, index):
    env = {"VENVSMITH_PUBLIC_URL": PUBLIC}
    with BuilderProcess(tmp_path / "home", "--host", "0.0.0.0", allow=[index.base_url], env=env) as server:
        result = _build(server.port, index)
        http_port = _http_port(server)
        links = _page_links(http_port, result.lock_key, "root") + _page_links(http_port, result.lock_key, "leaf")
        # A page asked for by a non-normalized name is redirected under the public URL too.
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/wheelhouse/{result.lock_key}/simple/Root")
        with pytest.raises(urllib.error.HTTPError) as redirect:
            urllib.request.build_opener(_NoRedirect).open(request, timeout=30)
    assert result.http_base_url == PUBLIC + "/"
    for ref in _refs(result):
        assert ref.http_url.startswith(PUBLIC + "/blobs/"), ref
    assert len(links) == 4
    for link in links:
        assert link.startswith(PUBLIC + "/blobs/"), link
    assert redirect.value.headers["Location"] == f"{PUBLIC}/wheelhouse/{result.lock_key}/simple/root/"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.parametrize(("value", "why"), [
    ("ftp://builds.example.test/", "http or https"),
    ("https://ci:s3cr3t-password@builds.example.test/", "user info"),
    ("https://builds.example.test/?x=1", "query"),
    ("https://builds.example.test/#top", "fragment"),
    ("http://0.0.0.0:8080/", "no address"),
    ("builds.example.test:8080", "http or https"),
])
def test_a_bad_public_url_stops_the_server_naming_it(tmp_path, value, why):
    home = tmp_path / "home"
    home.mkdir()
    for argv, env, named in (
        (["--public-url", value], {}, "--public-url"),
        ([], {"VENVSMITH_PUBLIC_URL": value}, "VENVSMITH_PUBLIC_URL"),
    ):
        done = subprocess.run(cli("serve", "builder", "--port", "0", "--http-port", "0", *argv),
                              env={**hermetic_env(home), **env}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert named in done.stderr and why in done.stderr, done.stderr
        assert "s3cr3t-password" not in done.stderr


def test_public_url_is_normalised():
    assert check_public_url("HTTPS://Builds.Example.Test:8443/a/b") == "https://builds.example.test:8443/a/b/"
    assert check_public_url("http://[fd00::2]:8080") == "http://[fd00::2]:8080/"
