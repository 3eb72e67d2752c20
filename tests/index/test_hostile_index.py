"""Hostile indexes on 127.0.0.1: an endless page, a trickling server. Bounded bytes and bounded time per fetch."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.hostile import LINE, endless, hostile_servers
from venvsmith.core.errors import DeadlineExceeded, IndexUnavailable, ServiceError
from venvsmith.core.index import IndexSettings, IndexSource
from venvsmith.core.index.http import CHUNK, HttpClient
from venvsmith.core.index.limits import MAX_PAGE_BYTES


@pytest.fixture
def hostile():
    with hostile_servers() as make:
        yield make


def _headers_then_trickle(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(100000):
        handler.send(b"<")
        time.sleep(0.1)


def _trickled_headers(handler) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + b"X-Slow: " + b"a" * 100000:
        handler.send(bytes([byte]))
        time.sleep(0.1)


def test_endless_page_ends_at_the_cap_naming_index_and_cap(hostile):
    server = hostile(endless)
    with HttpClient(timeout=10, retries=1) as http, IndexSource(IndexSettings(index_url=server.url), http=http) as src:
        with pytest.raises(IndexUnavailable) as info:
            src.files("foo")
    assert info.value.index == server.url.rstrip("/") or server.url in str(info.value)
    assert str(MAX_PAGE_BYTES) in str(info.value)
    # What the client read is at most the cap and a chunk; the rest is what the kernel's socket buffers took.
    assert server.sent <= MAX_PAGE_BYTES + CHUNK + len(LINE) + 16 * 1024 * 1024


@pytest.mark.parametrize("body", [_headers_then_trickle, _trickled_headers], ids=["body", "headers"])
def test_trickling_index_ends_by_the_deadline(hostile, body):
    server = hostile(body)
    deadline = time.monotonic() + 2.0
    with HttpClient(timeout=10, retries=3, backoff=0.01) as http, IndexSource(
        IndexSettings(index_url=server.url), http=http, deadline=deadline
    ) as src, ThreadPoolExecutor(1) as pool:
        future = pool.submit(src.files, "foo")
        # The caller's deadline ended it: DEADLINE_EXCEEDED (the index's own slowness past its fetch limit, with
        # no deadline, is UNAVAILABLE: the next test).
        with pytest.raises(DeadlineExceeded, match="deadline passed while fetching"):
            future.result(timeout=30)  # a bounded wait: without the budget this read would last hours
    assert time.monotonic() < deadline + 5


def test_budget_without_deadline_bounds_one_fetch(hostile):
    server = hostile(_headers_then_trickle)
    with HttpClient(timeout=10, retries=1) as http, ThreadPoolExecutor(1) as pool:
        future = pool.submit(http.get, server.url + "foo/", index=server.url, seconds=1.0)
        with pytest.raises(IndexUnavailable, match=r"within the 1\.0 s allowed"):
            future.result(timeout=30)


def test_declared_length_over_the_cap_is_refused_before_reading(hostile):
    def big(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10 * 1024 * 1024))
        handler.end_headers()
        handler.send(b"x" * 1024)

    server = hostile(big)
    with HttpClient(timeout=10, retries=1) as http:
        with pytest.raises(IndexUnavailable, match="over the cap of 1000 bytes"):
            http.get(server.url, index=server.url, max_bytes=1000)


@pytest.mark.parametrize("body", [_headers_then_trickle, _trickled_headers], ids=["body", "headers"])
def test_a_resolve_with_a_2s_deadline_against_a_trickling_index_ends_by_it(tmp_path, hostile, body):
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.core.config import PipIndexConfig
    from venvsmith.v1 import common_pb2, resolver_pb2

    server = hostile(body)
    engine = ResolverEngine(EngineSettings(home=tmp_path / "srv", pip=PipIndexConfig(index_url=server.url)))
    request = resolver_pb2.ResolveRequest(
        requirements=["foo"], index=common_pb2.IndexConfig(index_url=server.url, isolated=True)
    )
    try:
        with ThreadPoolExecutor(1) as pool:
            deadline = time.monotonic() + 2.0
            future = pool.submit(engine.resolve, request, deadline=deadline)
            with pytest.raises(ServiceError) as info:
                future.result(timeout=30)  # a bounded wait: without the budget this resolve would last hours
        assert info.value.status in ("DEADLINE_EXCEEDED", "UNAVAILABLE")
        assert time.monotonic() < deadline + 5
    finally:
        engine.close()


def test_a_gzip_bomb_page_is_cut_at_the_cap_of_decoded_bytes(hostile):
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    bomb = b"".join(packer.compress(LINE * 64) for _ in range(2 * MAX_PAGE_BYTES // (64 * len(LINE)))) + packer.flush()

    def gzipped(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.send(bomb)

    server = hostile(gzipped)
    with HttpClient(timeout=10, retries=1) as http, IndexSource(IndexSettings(index_url=server.url), http=http) as src:
        with pytest.raises(IndexUnavailable, match=f"over the cap of {MAX_PAGE_BYTES} bytes"):
            src.files("foo")
