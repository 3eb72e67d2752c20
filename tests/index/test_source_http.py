"""IndexSource against the local HTTP index: page formats, metadata paths, auth, retries, caching."""

from __future__ import annotations

import hashlib
import random
import threading
from datetime import UTC, datetime

import pytest
from packaging.version import Version

from tests.fixtures.index import Dist
from venvsmith.core.errors import DynamicMetadata, IndexUnavailable, InvalidDistribution, InvalidInput
from venvsmith.core.index.auth import Credential

UPLOADED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def file_requests(server, filename: str):
    return [r for r in server.requests if r.path.split("?")[0] == f"/files/{filename}"]


# ------------------------------------------------------------------------------------------ listing


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_listing_in_both_formats(fmt, index_builder, index_server, make_source):
    index_builder.add("foo", "1.0", requires_python=">=3.8,<4", upload_time=UPLOADED)
    index_builder.add(Dist("foo", "1.1", kind="sdist", yanked="broken"))
    index_builder.add("other", "1.0")
    server = index_server(formats={fmt})
    source = make_source(index_url=server.url)

    files = {f.filename: f for f in source.files("Foo")}
    assert set(files) == {"foo-1.0-py3-none-any.whl", "foo-1.1.tar.gz"}
    wheel, sdist = files["foo-1.0-py3-none-any.whl"], files["foo-1.1.tar.gz"]
    published = index_builder.get(wheel.filename)
    assert wheel.url == server.file_url(wheel.filename)
    assert wheel.index == server.url and wheel.origin == "index"
    assert wheel.sha256 == published.sha256
    assert wheel.requires_python == ">=3.8,<4"
    assert wheel.core_metadata and wheel.core_metadata_hashes == {"sha256": published.metadata_sha256}
    assert wheel.yanked is None and sdist.yanked == "broken"
    assert not sdist.core_metadata
    if fmt == "json":  # PEP 700 fields exist only in JSON
        assert wheel.upload_time == UPLOADED and wheel.size == published.size
    (request,) = server.requests
    assert request.headers["accept"].startswith("application/vnd.pypi.simple.v1+json")
    assert "venvsmith" in request.headers["user-agent"]


def test_unknown_project_is_empty(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    source = make_source(index_url=index_server().url)
    assert list(source.files("nope")) == []


def test_index_url_without_trailing_slash(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server()
    source = make_source(index_url=server.url.rstrip("/"))
    assert [f.filename for f in source.files("foo")] == ["foo-1.0-py3-none-any.whl"]


def test_concurrent_and_prefetched_listings_share_one_request(
    index_builder, index_server, make_source, events
):
    index_builder.add("foo", "1.0")
    index_builder.add("bar", "1.0")
    server = index_server(delay=0.2)
    source = make_source(index_url=server.url)
    source.prefetch_files(["bar"])
    results = []
    threads = [threading.Thread(target=lambda: results.append(source.files("foo"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(r == results[0] for r in results)
    assert ("page", "foo", f"from {server.url}foo/ (network)") in events
    assert len(source.files("bar")) == 1
    assert sorted(server.paths()) == ["/simple/bar/", "/simple/foo/"]


# ----------------------------------------------------------------------------------------- metadata


def test_metadata_from_the_metadata_file_without_downloading_the_wheel(
    index_builder, index_server, make_source
):
    index_builder.add("foo", "1.0", deps=["bar>=2"], extras={"x": ["baz"]}, requires_python=">=3.9")
    server = index_server()
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    meta = source.metadata(file)
    assert meta.name == "foo" and meta.version == Version("1.0")
    assert [str(r) for r in meta.requires_dist] == ["bar>=2", 'baz; extra == "x"']
    assert str(meta.requires_python) == ">=3.9"
    assert server.metadata_fetches() == [file.filename]
    assert server.downloads() == [] and file_requests(server, file.filename) == []
    assert source.stats.metadata_fetched == 1
    assert source.metadata(file) is meta  # once per source
    assert len(server.metadata_fetches()) == 1


def test_metadata_by_range_requests_when_there_is_no_metadata_file(
    index_builder, index_server, make_source, events
):
    index_builder.add("foo", "1.0", deps=["bar"], serve_metadata=False)
    server = index_server()
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    assert not file.core_metadata
    assert [str(r) for r in source.metadata(file).requires_dist] == ["bar"]
    requests = file_requests(server, file.filename)
    assert requests and all("range" in r.headers for r in requests)
    assert server.downloads() == [] and server.metadata_fetches() == []
    assert ("metadata", "foo", "1.0 from foo-1.0-py3-none-any.whl (range)") in events


def test_advertised_metadata_file_that_is_missing_falls_back_to_ranges(
    index_builder, index_server, make_source
):
    index_builder.add("foo", "1.0", deps=["bar"])
    server = index_server()
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    assert file.core_metadata
    index_builder.get(file.filename).metadata = None  # the sidecar now answers 404
    assert [str(r) for r in source.metadata(file).requires_dist] == ["bar"]
    assert server.metadata_fetches() == [file.filename] and server.downloads() == []


def test_big_wheel_reads_central_directory_and_member_by_separate_ranges(
    index_builder, index_server, make_source
):
    # ~1500 members make a central directory larger than the 64 KiB tail; METADATA sits before it.
    members = {f"foo/module_with_a_rather_long_name_{i:05d}.py": b"x = 1\n" for i in range(1500)}
    members["foo/blob.bin"] = random.Random(0).randbytes(1 << 20)  # 1 MiB, incompressible
    index_builder.add("foo", "2.0", deps=["dep"], files=members, serve_metadata=False)
    server = index_server()
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    assert [str(r) for r in source.metadata(file).requires_dist] == ["dep"]
    requests = file_requests(server, file.filename)
    assert len(requests) >= 2 and all("range" in r.headers for r in requests)
    assert requests[0].headers["range"].startswith("bytes=-")
    assert server.downloads() == []
    assert source.stats.range_requests == len(requests)
    assert source.stats.bytes_downloaded < index_builder.get(file.filename).size / 2


def test_whole_download_when_the_server_ignores_ranges(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0", deps=["bar"], serve_metadata=False)
    server = index_server(ranges=False)
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    assert [str(r) for r in source.metadata(file).requires_dist] == ["bar"]
    assert len(file_requests(server, file.filename)) == 1  # the range request's 200 is the download
    assert source.stats.downloads == 1


def test_whole_download_is_checked_against_the_listed_hash(index_builder, index_server, make_source):
    path = index_builder.add("foo", "1.0", serve_metadata=False)
    other = index_builder.add("foo", "9.0", serve_metadata=False)
    index_builder.tamper(path.name, other.read_bytes())
    source = make_source(index_url=index_server(ranges=False).url)
    file = next(f for f in source.files("foo") if f.version == Version("1.0"))
    with pytest.raises(InvalidDistribution, match="does not match its sha256 hash") as info:
        source.metadata(file)
    assert info.value.filename == "foo-1.0-py3-none-any.whl"


def test_metadata_file_hash_mismatch_is_an_error(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    source = make_source(index_url=index_server().url)
    (file,) = source.files("foo")
    # The sidecar changes after the listing gave its hash.
    index_builder.get(
        file.filename
    ).metadata = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nRequires-Dist: evil\n"
    with pytest.raises(InvalidDistribution, match="core metadata .* does not match its sha256 hash") as info:
        source.metadata(file)
    assert info.value.filename == file.filename


def test_metadata_that_names_another_project_is_rejected(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0", metadata_override=b"Metadata-Version: 2.1\nName: bar\nVersion: 1.0\n")
    source = make_source(index_url=index_server().url)
    (file,) = source.files("foo")
    with pytest.raises(InvalidDistribution, match="describes bar 1.0, not foo 1.0"):
        source.metadata(file)


def test_sdist_with_static_pkg_info(index_builder, index_server, make_source):
    index_builder.add(Dist("foo", "1.0", kind="sdist", deps=["bar<3"], metadata_version="2.2"))
    server = index_server()
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    assert [str(r) for r in source.metadata(file).requires_dist] == ["bar<3"]
    assert server.downloads() == ["foo-1.0.tar.gz"]


@pytest.mark.parametrize(
    ("dist", "detail"),
    [
        (
            Dist("foo", "1.0", kind="sdist", dynamic=["Requires-Dist"]),
            "Metadata-Version 2.2, Dynamic: Requires-Dist",
        ),
        (Dist("foo", "1.0", kind="sdist", metadata_version="2.1"), "Metadata-Version 2.1"),
        (
            Dist("foo", "1.0", kind="sdist", sdist_format="zip", dynamic=["Requires-Dist"]),
            "Dynamic: Requires-Dist",
        ),
    ],
)
def test_sdist_with_dynamic_dependencies(dist, detail, index_builder, index_server, make_source):
    index_builder.add(dist)
    source = make_source(index_url=index_server().url)
    (file,) = source.files("foo")
    with pytest.raises(DynamicMetadata, match="needs a build") as info:
        source.metadata(file)
    assert info.value.filename == file.filename
    assert detail in info.value.message and file.filename in info.value.message
    assert info.value.status == "FAILED_PRECONDITION"


def test_sdist_with_dynamic_metadata_other_than_dependencies_is_fine(
    index_builder, index_server, make_source
):
    index_builder.add(Dist("foo", "1.0", kind="sdist", dynamic=["Description"], deps=["bar"]))
    source = make_source(index_url=index_server().url)
    (file,) = source.files("foo")
    assert [str(r) for r in source.metadata(file).requires_dist] == ["bar"]


def test_prefetched_metadata_is_joined(index_builder, index_server, make_source):
    for version in ("1.0", "1.1", "1.2"):
        index_builder.add("foo", version)
    server = index_server(delay=0.05)
    source = make_source(index_url=server.url)
    files = source.files("foo")
    source.prefetch_metadata(files)
    assert [str(source.metadata(f).version) for f in files] == ["1.0", "1.1", "1.2"]
    assert sorted(server.metadata_fetches()) == [f.filename for f in files]


# ---------------------------------------------------------------------------------------------- auth


def test_basic_auth_from_user_info_in_the_index_url(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0", serve_metadata=False)
    server = index_server(auth=("alice", "s3cr:t"))
    source = make_source(index_url=server.auth_url)
    (file,) = source.files("foo")
    assert "alice" not in file.url and "s3cr" not in file.url
    assert file.index == f"http://****@127.0.0.1:{server.port}/simple/"
    assert source.metadata(file).name == "foo"  # the file host needs the same login
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in server.requests)


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_auth_from_credentials(kind, index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    if kind == "basic":
        server = index_server(auth=("bob", "pw"))
        credential = Credential(server.url, "bob", "pw")
    else:
        server = index_server(token="t0ken")
        credential = Credential(server.url, token="t0ken")
    source = make_source(index_url=server.url, credentials=[credential])
    (file,) = source.files("foo")
    assert source.metadata(file).name == "foo"


def test_missing_credentials_make_the_index_unavailable(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(auth=("alice", "right"))
    source = make_source(index_url=server.url)
    with pytest.raises(
        IndexUnavailable, match="authentication failed .*401.*no credentials were sent"
    ) as info:
        source.files("foo")
    assert info.value.status == "UNAVAILABLE" and info.value.index == server.url


def test_rejected_credentials_are_redacted(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(auth=("alice", "right"))
    source = make_source(index_url=f"http://alice:hunter2@127.0.0.1:{server.port}/simple/")
    with pytest.raises(IndexUnavailable, match="credentials were rejected") as info:
        source.files("foo")
    assert "hunter2" not in str(info.value) and "alice" not in str(info.value)
    assert info.value.index == f"http://****@127.0.0.1:{server.port}/simple/"


# -------------------------------------------------------------------------------------------- retries


def test_rate_limit_is_retried(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(fail_status=429, fail_times=1)
    assert len(make_source(index_url=server.url).files("foo")) == 1


def test_transient_503_is_retried(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(fail_status=503, fail_times=2)
    source = make_source(index_url=server.url)
    assert len(source.files("foo")) == 1
    assert server.failures == 2


def test_persistent_503_names_the_redacted_index(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(fail_status=503, auth=("u", "topsecret"))
    source = make_source(index_url=server.auth_url)
    with pytest.raises(IndexUnavailable, match="HTTP 503.*gave up after 3 tries") as info:
        source.files("foo")
    assert server.failures == 3
    assert info.value.index == f"http://****@127.0.0.1:{server.port}/simple/"
    assert "topsecret" not in str(info.value)
    # The failure is remembered for this source: no second round of retries.
    with pytest.raises(IndexUnavailable):
        source.files("foo")
    assert server.failures == 3


def test_metadata_fetch_failure_is_index_unavailable(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(fail_status=500, fail_match=".metadata")
    source = make_source(index_url=server.url)
    (file,) = source.files("foo")
    with pytest.raises(IndexUnavailable, match="HTTP 500"):
        source.metadata(file)


def test_unreachable_index(index_builder, index_server, make_source):
    server = index_server()
    url = server.url
    server.stop()
    source = make_source(index_url=url)
    with pytest.raises(IndexUnavailable, match="ConnectError.*gave up after 3 tries") as info:
        source.files("foo")
    assert info.value.index == url


# ---------------------------------------------------------------------------------------------- cache


def test_fresh_cached_page_needs_no_request(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(cache_control="max-age=600")
    first = make_source(index_url=server.url, cache=True)
    assert len(first.files("foo")) == 1 and first.stats.pages_fetched == 1
    server.reset_log()
    second = make_source(index_url=server.url, cache=True)
    assert len(second.files("foo")) == 1
    assert server.paths() == []
    assert second.stats.pages_cached == 1 and second.stats.pages_fetched == 0


def test_stale_cached_page_is_revalidated(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(cache_control="max-age=0")
    make_source(index_url=server.url, cache=True).files("foo")
    server.reset_log()
    second = make_source(index_url=server.url, cache=True)
    assert len(second.files("foo")) == 1
    (request,) = server.requests
    assert request.headers.get("if-none-match")
    assert second.stats.pages_revalidated == 1 and second.stats.pages_cached == 1
    assert second.stats.pages_fetched == 0
    # A new upload changes the page: the conditional request gets the new body.
    index_builder.add("foo", "2.0")
    third = make_source(index_url=server.url, cache=True)
    assert len(third.files("foo")) == 2 and third.stats.pages_fetched == 1


def test_cached_metadata_needs_no_request(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0", serve_metadata=False)
    server = index_server()
    first = make_source(index_url=server.url, cache=True)
    (file,) = first.files("foo")
    first.metadata(file)
    server.reset_log()
    second = make_source(index_url=server.url, cache=True)
    (file,) = second.files("foo")
    assert second.metadata(file).name == "foo"
    assert server.paths() == []
    assert second.stats.metadata_cached == 1 and second.stats.metadata_fetched == 0


def test_offline_uses_stale_pages_and_cached_metadata_only(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    index_builder.add("bar", "1.0")
    server = index_server(cache_control="no-cache")
    online = make_source(index_url=server.url, cache=True)
    online.metadata(online.files("foo")[0])
    online.files("bar")
    server.reset_log()
    offline = make_source(index_url=server.url, cache=True, offline=True)
    assert offline.metadata(offline.files("foo")[0]).name == "foo"
    assert list(offline.files("baz")) == []
    with pytest.raises(IndexUnavailable, match="offline"):
        offline.metadata(offline.files("bar")[0])
    assert server.paths() == []


# ---------------------------------------------------------------------------------------- direct URLs


def test_resolve_file_url_over_http(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0", deps=["bar"])
    server = index_server()
    published = index_builder.get("foo-1.0-py3-none-any.whl")
    source = make_source()
    file = source.resolve_file_url(server.file_url(published.filename) + f"#sha256={published.sha256}")
    assert (file.sha256, file.size, file.index, file.origin) == (
        published.sha256,
        published.size,
        "",
        "direct",
    )
    assert file.url == server.file_url(published.filename)
    server.reset_log()
    assert [str(r) for r in source.metadata(file).requires_dist] == ["bar"]
    assert server.paths() == []


def test_resolve_file_url_checks_the_fragment_hash(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server()
    source = make_source()
    with pytest.raises(InvalidDistribution, match="sha256"):
        source.resolve_file_url(server.file_url("foo-1.0-py3-none-any.whl") + "#sha256=" + "0" * 64)


def test_resolve_file_url_local_and_errors(index_builder, make_source, tmp_path):
    path = index_builder.add(Dist("foo", "1.0", kind="sdist", dynamic=["Requires-Dist"]))
    source = make_source()
    file = source.resolve_file_url(path.as_uri())
    assert file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DynamicMetadata):
        source.metadata(file)
    with pytest.raises(InvalidInput):
        source.resolve_file_url("https://h.example/not-a-dist.txt")
    with pytest.raises(IndexUnavailable, match="cannot read"):
        source.resolve_file_url((tmp_path / "missing-1.0.tar.gz").as_uri())


def test_cached_metadata_is_read_from_its_parsed_fields(index_builder, index_server, make_source, tmp_path):
    """A new process reads cached metadata from the fields kept next to the raw bytes; fields it cannot read
    (another layout, damage) are rebuilt from the bytes."""
    import sqlite3

    index_builder.add("foo", "1.0", deps=["bar>=2", "qux; python_version < '3'"], extras={"x": ["baz"]},
                      requires_python=">=3.9")
    server = index_server()
    (file,) = make_source(index_url=server.url, cache=True).files("foo")
    reader = make_source(index_url=server.url, cache=True)
    first = reader.metadata(file)
    reader.cache.flush()  # stores are written behind
    db_path = tmp_path / "cache" / "index-cache.sqlite3"

    def fields() -> str | None:
        with sqlite3.connect(db_path) as db:
            row = db.execute("SELECT fields FROM metadata_fields").fetchone()
        return row[0] if row else None

    def same(meta) -> bool:
        return (meta.name, meta.version, [str(r) for r in meta.requires_dist], meta.requires_python,
                meta.provides_extra, meta.metadata_version, meta.dynamic) == (
            first.name, first.version, [str(r) for r in first.requires_dist], first.requires_python,
            first.provides_extra, first.metadata_version, first.dynamic)

    kept = fields()
    assert kept is not None
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE metadata_fields SET fields = '[99]'")
    source = make_source(index_url=server.url, cache=True)
    assert same(source.metadata(file)) and source.stats.metadata_cached == 1
    source.cache.flush()
    assert fields() == kept  # rebuilt from the bytes

    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM metadata")  # only the fields are left: they are what is read
    source = make_source(index_url=server.url, cache=True)
    assert same(source.metadata(file)) and source.stats.metadata_cached == 1
    assert len(server.metadata_fetches()) == 1


def test_the_root_page_for_hints_goes_through_the_page_cache(index_builder, index_server, make_source):
    """``known_names`` (the "did you mean" hints, asked on every failed resolution) reads the root page once per
    source and, while it is fresh, not again in a later source over the same cache; stale, it is revalidated."""
    index_builder.add("foo", "1.0")
    index_builder.add("bar", "1.0")
    server = index_server()
    first = make_source(index_url=server.url, cache=True)
    assert {"foo", "bar"} <= first.known_names()
    assert {"foo", "bar"} <= first.known_names()
    later = make_source(index_url=server.url, cache=True)
    assert {"foo", "bar"} <= later.known_names()
    assert server.paths().count("/simple/") == 1


def test_a_stale_root_page_is_revalidated(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    server = index_server(cache_control="no-cache")
    assert "foo" in make_source(index_url=server.url, cache=True).known_names()
    assert "foo" in make_source(index_url=server.url, cache=True).known_names()
    asked = [r for r in server.requests if r.path == "/simple/"]
    assert len(asked) == 2 and "if-none-match" in asked[1].headers  # the second one conditional (304)
