"""Retries of the HTTP client (urllib3.Retry): Retry-After honoured and capped, backoff with jitter, one budget of
tries, the request deadline; against a local server on 127.0.0.1 that answers a scripted list of statuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index import retry as retry_module
from venvsmith.core.index.http import HttpClient
from venvsmith.core.index.retry import IndexRetry, index_retry


class _ScriptedHandler(BaseHTTPRequestHandler):
    """Answers each request with the next (status, Retry-After) of ``script``; 200 ``ok`` once it is used up,
    or the last entry forever when ``forever``."""

    protocol_version = "HTTP/1.1"
    script: list[tuple[int, str | None]]
    forever: bool
    seen: list[float]

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self) -> None:
        self.seen.append(time.monotonic())
        if self.script:
            status, retry_after = self.script[0] if self.forever else self.script.pop(0)
        else:
            status, retry_after = 200, None
        body = b"ok" if status == 200 else b"busy"
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[str, list[float]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*script: tuple[int, str | None], forever: bool = False) -> tuple[str, list[float]]:
        seen: list[float] = []
        handler = type("Handler", (_ScriptedHandler,), {"script": list(script), "forever": forever, "seen": seen})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/simple/foo/", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _answer(headers: dict[str, str]) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=b"", headers=headers, status=503, preload_content=False)


def test_retry_after_is_honoured(scripted):
    url, seen = scripted((503, "1"))
    with HttpClient(timeout=5, retries=3, backoff=0) as client:
        response = client.get(url, index="idx")
    assert response.status_code == 200 and response.content == b"ok"
    assert len(seen) == 2 and seen[1] - seen[0] >= 0.95  # the server asked for one second


def test_a_long_retry_after_is_capped(scripted):
    url, seen = scripted((503, "3600"), (429, "3600"))
    slept: list[float] = []
    with HttpClient(timeout=5, retries=3, backoff=0, sleep=slept.append) as client:
        assert client.get(url, index="idx").status_code == 200
    assert slept == [retry_module.MAX_RETRY_AFTER, retry_module.MAX_RETRY_AFTER] and len(seen) == 3


def test_retry_after_is_capped_by_the_policy_and_the_deadline():
    policy = index_retry(3, backoff=0.1, max_redirects=10)
    assert policy.get_retry_after(_answer({"Retry-After": "3600"})) == retry_module.MAX_RETRY_AFTER
    assert policy.get_retry_after(_answer({"Retry-After": "2"})) == 2
    assert policy.get_retry_after(_answer({})) is None
    soon = policy.new(deadline=time.monotonic() + 3)
    assert 2 < soon.get_retry_after(_answer({"Retry-After": "3600"})) <= 3
    past = policy.new(deadline=time.monotonic() - 1)
    assert past.get_retry_after(_answer({"Retry-After": "3600"})) == 0


def test_a_malformed_retry_after_falls_back_to_the_backoff(scripted):
    url, seen = scripted((503, "soon, maybe"))
    slept: list[float] = []
    with HttpClient(timeout=5, retries=2, backoff=0.01, sleep=slept.append) as client:
        assert client.get(url, index="idx").status_code == 200
    assert len(seen) == 2 and all(delay <= 0.02 for delay in slept)


def test_a_retry_after_of_zero_wins_over_a_long_backoff(scripted):
    url, _ = scripted((503, "0"), (503, "0"))
    slept: list[float] = []
    with HttpClient(timeout=5, retries=3, backoff=30, sleep=slept.append) as client:
        assert client.get(url, index="idx").status_code == 200
    assert slept == []


def test_backoff_grows_with_jitter_and_is_bounded(scripted):
    url, seen = scripted((500, None), (502, None), (504, None))
    slept: list[float] = []
    with HttpClient(timeout=5, retries=4, backoff=0.5, sleep=slept.append) as client:
        assert client.get(url, index="idx").status_code == 200
    assert len(seen) == 4 and len(slept) == 2  # urllib3: the first retry is immediate
    assert 1.0 <= slept[0] <= 1.5 and 2.0 <= slept[1] <= 2.5  # backoff * 2**(n-1), plus up to `backoff`
    policy = index_retry(20, backoff=5, max_redirects=10)
    for _ in range(10):
        policy = policy.increment("GET", "/", response=_answer({}))
    assert policy.get_backoff_time() == retry_module.MAX_BACKOFF


def test_a_server_that_always_fails_is_unavailable_naming_the_index(scripted):
    url, seen = scripted((503, "0"), forever=True)
    with HttpClient(timeout=5, retries=3, backoff=0) as client:
        with pytest.raises(IndexUnavailable, match=r"HTTP 503 fetching .*gave up after 3 tries") as info:
            client.get(url, index="https://private.invalid/simple/")
    assert info.value.index == "https://private.invalid/simple/" and info.value.status == "UNAVAILABLE"
    assert "index https://private.invalid/simple/ is unavailable" in str(info.value)
    assert len(seen) == 3


def test_no_retry_past_the_deadline(scripted):
    url, seen = scripted((503, "3600"), forever=True)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with HttpClient(timeout=5, retries=5, backoff=0, deadline=0.5, sleep=sleep) as client:
        started = time.monotonic()
        with pytest.raises(IndexUnavailable, match="HTTP 503"):
            client.get(url, index="idx")
    assert time.monotonic() - started < 3
    assert sum(slept) <= 0.5 and len(seen) < 5


def test_failures_of_every_kind_share_one_budget():
    policy = index_retry(3, backoff=0, max_redirects=10)
    policy = policy.increment("GET", "/", error=urllib3.exceptions.ConnectTimeoutError("connect"))
    policy = policy.increment("GET", "/", response=_answer({}))
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        policy.increment("GET", "/", error=urllib3.exceptions.ReadTimeoutError(None, "/", "read"))
    assert info.value.tries == 3  # type: ignore[attr-defined]


def test_redirects_do_not_use_up_the_tries():
    policy = index_retry(2, backoff=0, max_redirects=10)
    moved = urllib3.HTTPResponse(body=b"", headers={"Location": "/other"}, status=301, preload_content=False)
    for _ in range(5):
        policy = policy.increment("GET", "/", response=moved)
    policy = policy.increment("GET", "/", response=_answer({}))  # the one retry left
    assert isinstance(policy, IndexRetry) and not policy.is_exhausted()
