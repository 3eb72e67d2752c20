"""The index client's fast paths and caches give exactly what the general code gives.

Covers: memoised file-name parsing (vs ``packaging``), the absolute-URL fast path (vs ``urljoin``),
hash/time clean-up shortcuts, lazily decoded JSON listings (vs eagerly built files), orjson's fallback to
``json``, the GC pause, listing de-duplication, the page cache's body-less reads and unchanged-body writes,
and the HTTP client's lazy pool, trust-store errors and asyncio-bridged HTTP/2 mode.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
from datetime import UTC, datetime
from urllib.parse import urldefrag, urljoin

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.tags import parse_tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from venvsmith.core.distfile import DistFile, parse_tags, parse_version, split_sdist_filename, split_wheel_filename
from venvsmith.core.errors import IndexUnavailable
from venvsmith.core.index import http as http_module
from venvsmith.core.index import pages
from venvsmith.core.index.auth import strip_userinfo
from venvsmith.core.index.cache import CachedPage, IndexCache
from venvsmith.core.index.finder import _SingleFlight, _unique
from venvsmith.core.index.http import HttpClient
from venvsmith.core.index.pages import gc_paused, parse_json_page

SHA = "ab" * 32

# ------------------------------------------------------------------------------------ file names

WHEELS = [
    "foo-1.0-py3-none-any.whl",
    "Foo_Bar-2.0.post1-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "foo-1.0-12abc-py2.py3-none-any.whl",
    "foo-1.0-py3-none-any.WHL",
    "foo-1.0-py3-none.whl",
    "foo-1.0-1-2-py3-none-any.whl",
    "foo__bar-1.0-py3-none-any.whl",
    "-1.0-py3-none-any.whl",
    "foo-1.0-x-py3-none-any.whl",
    "foo-1.0-3cp-none-any.whl",
    "foo-notaversion-py3-none-any.whl",
    "foo-1.0-py3..py2-none-any.whl",
    "foo-1.0-PY3-None-ANY.whl",
]
SDISTS = ["foo-1.0.tar.gz", "foo-bar-2.0rc1.zip", "foo.tar.gz", "-1.0.tar.gz", "foo-x.y.tar.gz", "Foo.Bar-1!2.0.zip"]


def _outcome(parse, filename):
    try:
        return ("ok", parse(filename))
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        return ("error", type(exc))


@pytest.mark.parametrize("filename", WHEELS)
def test_split_wheel_filename_is_parse_wheel_filename(filename):
    assert _outcome(split_wheel_filename, filename) == _outcome(parse_wheel_filename, filename)


@pytest.mark.parametrize("filename", SDISTS)
def test_split_sdist_filename_is_parse_sdist_filename(filename):
    assert _outcome(split_sdist_filename, filename) == _outcome(parse_sdist_filename, filename)


_PART = st.text(alphabet="abcAB0123456789._!+*-", min_size=0, max_size=8)


@given(st.lists(_PART, min_size=1, max_size=7))
def test_split_wheel_filename_agrees_on_generated_names(parts):
    filename = "-".join(parts) + ".whl"
    assert _outcome(split_wheel_filename, filename) == _outcome(parse_wheel_filename, filename)


@given(st.lists(_PART, min_size=1, max_size=3), st.sampled_from([".tar.gz", ".zip"]))
def test_split_sdist_filename_agrees_on_generated_names(parts, suffix):
    filename = "-".join(parts) + suffix
    assert _outcome(split_sdist_filename, filename) == _outcome(parse_sdist_filename, filename)


def test_memoised_pieces_are_shared_objects():
    assert parse_version("1.0") is parse_version("1.0") and parse_version("1.0") == Version("1.0")
    assert parse_tags("py2.py3-none-any") is parse_tags("py2.py3-none-any")
    assert parse_tags("py2.py3-none-any") == parse_tag("py2.py3-none-any")
    first = split_wheel_filename("foo-1.0-py3-none-any.whl")
    second = split_wheel_filename("foo-1.0-py3-none-any.whl")
    assert first[1] is second[1] and first[3] is second[3]


# ------------------------------------------------------------------------------------------- URLs


def _slow_absolute(base: str, href: str) -> tuple[str, dict[str, str]]:
    url, fragment = urldefrag(urljoin(base, href))
    return strip_userinfo(url), pages.fragment_hashes(fragment)


URLS = [
    f"https://files.example/packages/ab/cd/foo-1.0-py3-none-any.whl#sha256={SHA}",
    "https://files.example/packages/foo-1.0.tar.gz",
    "http://files.example:8080/foo-1.0.tar.gz",
    "https://user:secret@files.example/foo-1.0.tar.gz",
    "https://files.example/foo-1.0.tar.gz?x=1",
    "https://files.example/a;b/foo-1.0.tar.gz;",
    "https://files.example/foo-1.0.tar.gz?",
    "https://files.example/foo-1.0.tar.gz#",
    "https://files.example/foo-1.0.tar.gz#md5=0123",
    "https:///foo-1.0.tar.gz",
    "https://[::1]/foo-1.0.tar.gz",
    "https://files.example/a b/foo-1.0.tar.gz",
    "https://files.example/a\tb/foo-1.0.tar.gz",
    "https://files.example/%C3%A9/foo-1.0.tar.gz",
    "https://files.exämple/foo-1.0.tar.gz",
    "https://files.example//foo-1.0.tar.gz",
    "HTTPS://files.example/foo-1.0.tar.gz",
    "httpx://files.example/foo-1.0.tar.gz",
    "../../packages/foo-1.0.tar.gz",
    "/abs/foo-1.0.tar.gz",
    "https://files.example",
    "https://files.example/x\\y/foo-1.0.tar.gz",
]


@pytest.mark.parametrize("base", ["https://index.example/simple/foo/", "http://index.example/simple/foo/"])
@pytest.mark.parametrize("href", URLS)
def test_absolute_fast_path_is_urljoin(base, href):
    assert pages._absolute(base, href) == _slow_absolute(base, href)


@given(
    st.sampled_from(["http://", "https://", "https://u:p@", "ftp://", ""]),
    st.text(alphabet=st.characters(min_codepoint=0x09, max_codepoint=0x7F), max_size=30),
    st.text(alphabet="abc/=#?;@[]%:. ", max_size=12),
)
def test_absolute_fast_path_agrees_on_generated_urls(scheme, rest, tail):
    href = scheme + rest + tail
    try:
        expected = _slow_absolute("https://index.example/simple/foo/", href)
    except ValueError:  # urljoin refuses it (e.g. an unbalanced IPv6 bracket): so must the fast path
        with pytest.raises(ValueError):
            pages._absolute("https://index.example/simple/foo/", href)
        return
    assert pages._absolute("https://index.example/simple/foo/", href) == expected


# -------------------------------------------------------------------------------- hashes and times


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"sha256": SHA}, {"sha256": SHA}),
        ({"sha256": SHA.upper()}, {"sha256": SHA}),
        ({"sha256": f" {SHA} "}, {"sha256": SHA}),
        ({"sha256": SHA[:-1] + "g"}, {}),
        ({"sha256": SHA + "0"}, {}),
        ({"SHA256": SHA, "md5": "0" * 32}, {"sha256": SHA, "md5": "0" * 32}),
        ({"sha256": 5}, {}),
        ({"sha256": SHA + "\n"}, {"sha256": SHA}),
        ([("sha256", SHA)], {}),
    ],
)
def test_clean_hashes(value, expected):
    assert pages._clean_hashes(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T12:00:00.123456Z", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T12:00:00.1234567Z", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T12:00:00.1234567", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("20240301T120000.1234567890Z", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T14:00:00.123456+02:00", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_time(value, expected):
    assert pages._parse_time(value) == expected


# ------------------------------------------------------------------------------- lazy JSON listings


def _entry(filename: str, **extra) -> dict:
    return {"filename": filename, "url": f"https://files.example/{filename}", **extra}


def _eager(file: DistFile) -> DistFile:
    """The same file built eagerly, field by field."""
    return DistFile(**{f.name: getattr(file, f.name) for f in dataclasses.fields(DistFile)})


ENTRIES = [
    _entry(
        "foo-1.0-py3-none-any.whl",
        hashes={"sha256": SHA.upper()},
        **{"requires-python": " >=3.8 ", "upload-time": "2024-03-01T12:00:00.123456Z", "size": 12},
        **{"core-metadata": {"sha256": SHA}, "yanked": "broken"},
    ),
    _entry("foo-1.0.tar.gz", hashes={}, yanked=True, size=True, **{"dist-info-metadata": True}),
    {"filename": "foo-2.0.tar.gz", "url": f"../../files/foo-2.0.tar.gz#sha256={SHA}", "size": -1},
    _entry("foo-3.0.zip", yanked="", **{"core-metadata": False, "upload-time": 7}),
]


def test_listed_files_equal_eagerly_built_files():
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": ENTRIES}).encode()
    files = parse_json_page(body, "https://index.example/simple/foo/", "idx", canonicalize_name("foo"))
    assert [f.filename for f in files] == [e["filename"] for e in ENTRIES]
    for file in files:
        eager = _eager(file)
        for field in dataclasses.fields(DistFile):
            assert getattr(file, field.name) == getattr(eager, field.name), field.name
        assert file == eager and hash(file) == hash(eager) and repr(file) == repr(eager)
    wheel, sdist, fragment, zipped = files
    assert wheel.hashes == {"sha256": SHA} and wheel.requires_python == ">=3.8" and wheel.yanked == "broken"
    assert wheel.upload_time == datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC) and wheel.size == 12
    assert wheel.core_metadata and wheel.core_metadata_hashes == {"sha256": SHA}
    assert sdist.yanked == "" and sdist.size is None and sdist.core_metadata and sdist.hashes == {}
    assert fragment.url == "https://index.example/files/foo-2.0.tar.gz" and fragment.hashes == {"sha256": SHA}
    assert zipped.yanked is None and zipped.upload_time is None and not zipped.core_metadata
    # Fresh mutable mappings per file, and dataclasses.replace still works.
    assert files[1].hashes is not files[3].hashes
    replaced = dataclasses.replace(wheel, url="https://elsewhere/x.whl")
    assert replaced.url == "https://elsewhere/x.whl" and replaced.hashes == {"sha256": SHA}


def test_listed_file_fields_decode_once_under_concurrent_reads():
    body = json.dumps({"files": [_entry(f"foo-{i}.0.tar.gz", hashes={"sha256": SHA}) for i in range(50)]})
    files = parse_json_page(body.encode(), "https://i/simple/foo/", "idx", None)
    barrier = threading.Barrier(8)
    seen: list = []

    def read() -> None:
        barrier.wait()
        seen.append([(f.sha256, f.size, f.upload_time, f.core_metadata) for f in files])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and all(s == seen[0] for s in seen) and seen[0][0] == (SHA, None, None, False)
    assert all("_listing" not in vars(f) for f in files)


@pytest.mark.parametrize("size", ["NaN", "1e400", "10000000000000000000000"])
def test_json_decoding_falls_back_to_the_json_module(size):
    entry = '{"filename": "foo-1.0.tar.gz", "url": "https://i/foo-1.0.tar.gz", "size": ' + size + "}"
    body = '{"files": [' + entry + "]}"
    for encoded in (body.encode(), body.encode("utf-16"), body):
        (file,) = parse_json_page(encoded, "https://i/simple/foo/", "idx", None)
        assert file.filename == "foo-1.0.tar.gz"


def test_invalid_json_is_a_page_error():
    with pytest.raises(pages.PageError, match="invalid JSON"):
        parse_json_page(b"{", "https://i/simple/foo/", "idx", None)


def test_gc_pause_nests_across_threads_and_restores_the_collector():
    assert gc.isenabled()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(5)
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread still holds its pause
    release.set()
    thread.join()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a collector disabled by the application stays disabled
    finally:
        gc.enable()


# ------------------------------------------------------------------------------------ de-duplication


def test_unique_keeps_the_first_listing_of_each_file():
    def file(filename: str, sha: str | None, url: str = "https://a/x") -> DistFile:
        listed = DistFile.from_listing(filename, url, "idx", hashes={"sha256": sha} if sha else {})
        assert listed is not None
        return listed

    a1 = file("foo-1.0.tar.gz", SHA)
    a2 = file("foo-1.0.tar.gz", SHA, "https://b/x")  # same file from elsewhere
    b = file("foo-1.0.tar.gz", "cd" * 32)  # same name, other content
    c1, c2 = file("foo-2.0.tar.gz", None), file("foo-2.0.tar.gz", None)
    c3 = file("foo-2.0.tar.gz", None, "https://b/x")
    d = file("foo-1.0-py3-none-any.whl", SHA)
    out = _unique([a1, a2, b, c1, c2, c3, d, b])
    assert [id(f) for f in out] == [id(a1), id(b), id(c1), id(c3), id(d)]
    assert out == list(dict.fromkeys([a1, a2, b, c1, c2, c3, d, b]))  # what the set-based version kept


def test_single_flight_started_tells_known_keys():
    flight = _SingleFlight()
    assert not flight.started("a")
    assert flight.get("a", lambda: 1) == 1 and flight.started("a")
    flight.put("b", 2)
    assert flight.started("b") and flight.get("b", lambda: 3) == 2


def test_prefetch_skips_names_and_files_already_requested(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server()
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    source.metadata(file)
    requests = len(server.requests)
    submitted = []
    source._submit = lambda fn, arg: submitted.append(arg)  # type: ignore[method-assign]
    source.prefetch_files(["Foo", "bar"])
    source.prefetch_metadata([file])
    assert submitted == ["bar"] and len(server.requests) == requests


# -------------------------------------------------------------------------------------- page cache


def test_page_cache_reads_without_body_and_keeps_an_unchanged_body(tmp_path):
    with IndexCache(tmp_path) as cache:
        page = CachedPage("https://i/simple/a/", b"body", "application/json", "https://i/simple/a/", None, None, 1.0)
        stored = cache.put_page(page)
        head = cache.get_page(page.url, body=False)
        assert head is not None and head.body == b"" and head.digest == stored.digest
        assert head.content_type == "application/json" and head.fetched_at == 1.0
        again = cache.put_page(CachedPage(page.url, b"body", "text/html", "https://i/2", '"e"', "lm", 2.0, 60))
        assert again.digest == stored.digest
        full = cache.get_page(page.url)
        assert full == again and full.body == b"body" and full.etag == '"e"' and full.max_age == 60
        changed = cache.put_page(CachedPage(page.url, b"new body", "text/html", "https://i/2", None, None, 3.0))
        assert cache.get_page(page.url) == changed and changed.digest != stored.digest
        assert cache.get_page("https://i/simple/none/", body=False) is None


def test_parsed_memo_does_not_wait_for_the_database(tmp_path):
    with IndexCache(tmp_path) as cache:
        with cache._lock:  # a large page being written
            assert cache.parsed(("k",), lambda: 1) == 1
            assert cache.get_metadata("ab" * 32) is None


# ------------------------------------------------------------------------------------- HTTP client


def test_user_agent_is_computed_lazily():
    assert http_module.USER_AGENT == http_module.user_agent()
    assert http_module.USER_AGENT.startswith("venvsmith/")
    with pytest.raises(AttributeError):
        http_module.NO_SUCH_CONSTANT  # noqa: B018


def test_client_pool_is_created_on_first_use_and_a_bad_ca_bundle_is_index_unavailable(tmp_path):
    client = HttpClient(ca_bundle=str(tmp_path / "missing.pem"), retries=1)
    try:
        assert client._transport is None
        with pytest.raises(IndexUnavailable, match="trust store"):
            client.get("https://index.invalid/simple/", index="https://index.invalid/simple/")
    finally:
        client.close()


def test_client_fetches_streams_and_retries(index_builder, index_server):
    index_builder.add("foo", "1.0")
    server = index_server(fail_status=503, fail_times=1, fail_match="/simple/foo/")
    filename = "foo-1.0-py3-none-any.whl"
    client = HttpClient(timeout=10, retries=3, backoff=0.01)
    try:
        page = client.get(server.project_url("foo"), index=server.url, headers={"Accept": pages.ACCEPT})
        assert page.status_code == 200 and filename in page.text and server.failures == 1
        with client.stream(server.file_url(filename), index=server.url) as response:
            assert response.status_code == 200
            streamed = b"".join(response.iter_bytes(1000))
        assert streamed == index_builder.file_path(filename).read_bytes()
        with client.stream(server.file_url(filename), index=server.url, headers={"Range": "bytes=0-9"}) as part:
            assert part.status_code == 206 and part.read() == streamed[:10]
        missing = client.get(f"{server.base_url}/files/nope.whl", index=server.url)
        assert missing.status_code == 404 and str(missing.url).endswith("/files/nope.whl")
    finally:
        client.close()
    with pytest.raises(RuntimeError):
        client.get(server.project_url("foo"), index=server.url)
