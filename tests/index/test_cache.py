"""The SQLite page/metadata cache, Cache-Control parsing, range files and archive readers."""

from __future__ import annotations

import io
import random
import tarfile
import threading
import zipfile
from dataclasses import replace

import pytest

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import InvalidDistribution
from venvsmith.core.index.archives import sdist_pkg_info, wheel_metadata
from venvsmith.core.index.cache import CachedPage, IndexCache, parse_cache_control
from venvsmith.core.index.ranges import RangeFile, RangesUnsupported, parse_content_range


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=600, public", (True, 600.0)),
        ("public,max-age=60", (True, 60.0)),
        ('max-age="30"', (True, 30.0)),
        ("s-maxage=5", (True, None)),
        ("no-cache", (True, 0.0)),
        ("no-store, max-age=600", (False, None)),
        ("", (True, None)),
    ],
)
def test_parse_cache_control(value, expected):
    assert parse_cache_control({"cache-control": value}) == expected


def test_page_round_trip_freshness_and_validators(tmp_path):
    with IndexCache(tmp_path / "c") as cache:
        page = CachedPage(
            "https://i/simple/a/", b"body", "text/html", "https://i/simple/a/", '"e"', "lm", 100.0, 60
        )
        stored = cache.put_page(page)
        assert stored.digest and cache.get_page(page.url) == stored
        assert stored.is_fresh(now=159.0) and not stored.is_fresh(now=161.0)
        assert stored.validators() == {"If-None-Match": '"e"', "If-Modified-Since": "lm"}
        refreshed = cache.refresh_page(stored, 500.0, 10)
        assert cache.get_page(page.url).fetched_at == 500.0 and refreshed.is_fresh(now=505.0)
        assert cache.get_page("https://i/simple/other/") is None
        assert not CachedPage("u", b"", "", "u").is_fresh()


def _bodies(cache: IndexCache) -> list[bytes]:
    cache.flush()
    return sorted(bytes(row[0]) for row in cache._db.execute("SELECT body FROM page_bodies"))


def test_page_bodies_are_stored_once_and_dropped_when_unused(tmp_path):
    with IndexCache(tmp_path / "c") as cache:
        a = CachedPage("https://i/simple/a/", b"one", "text/html", "https://i/simple/a/", None, None, 1.0, None)
        cache.put_page(a)
        cache.put_page(replace(a, fetched_at=2.0, etag='"x"'))  # same body: only the head changes
        assert cache.get_page(a.url).fetched_at == 2.0 and cache.get_page(a.url).etag == '"x"'
        cache.put_page(replace(a, url="https://i/simple/b/"))  # another page with the same body
        assert _bodies(cache) == [b"one"]
        cache.put_page(replace(a, body=b"two", fetched_at=3.0))  # a's body changes; b still uses "one"
        assert _bodies(cache) == [b"one", b"two"]
        assert cache.get_page(a.url).body == b"two" and cache.get_page("https://i/simple/b/").body == b"one"
        assert cache.get_page(a.url, body=False).body == b"" and cache.get_page(a.url, body=False).digest
        cache.put_page(replace(a, url="https://i/simple/b/", body=b"three"))  # nobody uses "one" any more
        assert _bodies(cache) == [b"three", b"two"]


def test_a_cache_of_the_old_layout_is_replaced(tmp_path):
    import sqlite3

    (tmp_path / "c").mkdir()
    old = sqlite3.connect(tmp_path / "c" / IndexCache.FILENAME)
    old.executescript(
        "CREATE TABLE pages (url TEXT PRIMARY KEY, body BLOB NOT NULL, digest TEXT NOT NULL, content_type TEXT"
        " NOT NULL, final_url TEXT NOT NULL, etag TEXT, last_modified TEXT, fetched_at REAL NOT NULL, max_age REAL);"
        "INSERT INTO pages VALUES ('u', x'00', 'd', 't', 'u', NULL, NULL, 1.0, NULL);"
    )
    old.close()
    with IndexCache(tmp_path / "c") as cache:
        assert cache.get_page("u") is None
        stored = cache.put_page(CachedPage("u", b"new", "t", "u"))
        assert cache.get_page("u") == stored
        tables = {row[0] for row in cache._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "pages" not in tables


def test_metadata_is_shared_between_instances_and_threads(tmp_path):
    with IndexCache(tmp_path) as first:
        first.put_metadata("AB" * 32, b"Metadata-Version: 2.1\n")
    with IndexCache(tmp_path) as cache:
        assert cache.get_metadata("ab" * 32) == b"Metadata-Version: 2.1\n"

        def work(i: int) -> None:
            for j in range(20):
                cache.put_metadata(f"{i:02x}{j:02x}".ljust(64, "0"), b"x" * j)
                assert cache.get_metadata(f"{i:02x}{j:02x}".ljust(64, "0")) == b"x" * j

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


_CLOSE_WHILE_READING = """
import sys, threading
from pathlib import Path
from venvsmith.core.index.cache import IndexCache

failures = []
for attempt in range(40):
    cache = IndexCache(Path(sys.argv[1]) / str(attempt))
    cache.put_metadata("ab" * 32, b"x" * 4096)
    cache.flush()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            try:
                cache.get_metadata("ab" * 32)
            except Exception as exc:  # noqa: BLE001 - what a read during close() raises is the finding
                failures.append(repr(exc))
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    cache.close()
    stop.set()
    for thread in readers:
        thread.join()
print(len(failures), failures[:3])
sys.exit(1 if failures else 0)
"""


def test_closing_while_other_threads_read_never_breaks_their_reads(tmp_path):
    # In a child process: closing a connection another thread is executing on can crash the interpreter.
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _CLOSE_WHILE_READING, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])


def test_parsed_lru_memoises_and_evicts(tmp_path):
    calls = []
    with IndexCache(tmp_path, parsed_entries=2) as cache:
        for key in ["a", "a", "b", "c", "a"]:
            cache.parsed((key,), lambda key=key: calls.append(key) or key)
    assert calls == ["a", "b", "c", "a"]


# ------------------------------------------------------------------------------------------ ranges


def test_parse_content_range():
    assert parse_content_range("bytes 10-19/100") == (10, 19, 100)
    assert parse_content_range("bytes 0-9/*") == (0, 9, None)
    assert parse_content_range("bytes */100") is None
    assert parse_content_range(None) is None


def test_range_file_fetches_only_misses():
    data = random.Random(1).randbytes(100_000)
    fetched: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        fetched.append((start, end))
        return data[start:end]

    reader = RangeFile(len(data), fetch, (90_000, data[90_000:]), min_chunk=1000)
    reader.seek(-50, io.SEEK_END)
    assert reader.read() == data[-50:] and fetched == []
    reader.seek(10)
    assert reader.read(10) == data[10:20] and fetched == [(10, 1010)]
    assert reader.read(500) == data[20:520] and len(fetched) == 1
    reader.ensure(50_000, 60_000)
    reader.seek(50_000)
    assert reader.read(10_000) == data[50_000:60_000] and len(fetched) == 2


def test_range_file_detects_a_server_ignoring_ranges():
    reader = RangeFile(1000, lambda start, end: b"x" * 5000)
    with pytest.raises(RangesUnsupported):
        reader.read(10)


# ---------------------------------------------------------------------------------------- archives


def dist(filename: str) -> DistFile:
    file = DistFile.from_listing(filename, f"https://h/{filename}", "https://h/simple/")
    assert file is not None
    return file


def make_zip(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    buf.seek(0)
    return buf


def test_wheel_metadata_picks_the_own_dist_info():
    archive = make_zip(
        {
            "vendored-2.0.dist-info/METADATA": b"Name: vendored",
            "Foo_Bar-1.0.dist-info/METADATA": b"Name: Foo_Bar",
            "foo_bar/__init__.py": b"",
        }
    )
    assert wheel_metadata(archive, dist("foo_bar-1.0-py3-none-any.whl")) == b"Name: Foo_Bar"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"foo/__init__.py": b""}, "no .dist-info"),
        ({"foo-1.0.dist-info/RECORD": b""}, "no METADATA"),
        ({"a-1.dist-info/METADATA": b"", "b-1.dist-info/METADATA": b""}, "several .dist-info"),
    ],
)
def test_wheel_metadata_errors(members, message):
    with pytest.raises(InvalidDistribution, match=message):
        wheel_metadata(make_zip(members), dist("foo-1.0-py3-none-any.whl"))


def test_wheel_metadata_on_a_damaged_archive():
    with pytest.raises(InvalidDistribution, match="unreadable wheel"):
        wheel_metadata(io.BytesIO(b"PK not really"), dist("foo-1.0-py3-none-any.whl"))


def make_tar(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    buf.seek(0)
    return buf


def test_sdist_pkg_info_is_the_top_level_one():
    members = {
        "foo-1.0/src/foo.egg-info/PKG-INFO": b"nested",
        "./foo-1.0/PKG-INFO": b"top",
        "foo-1.0/setup.py": b"",
    }
    assert sdist_pkg_info(make_tar(members), dist("foo-1.0.tar.gz")) == b"top"
    assert sdist_pkg_info(make_zip({"foo-1.0/PKG-INFO": b"zip"}), dist("foo-1.0.zip")) == b"zip"
    with pytest.raises(InvalidDistribution, match="no top-level PKG-INFO"):
        sdist_pkg_info(make_tar({"foo-1.0/src/foo.egg-info/PKG-INFO": b""}), dist("foo-1.0.tar.gz"))
    with pytest.raises(InvalidDistribution, match="unreadable sdist"):
        sdist_pkg_info(io.BytesIO(b"\x1f\x8bnot gzip"), dist("foo-1.0.tar.gz"))


def test_heuristic_freshness_follows_rfc9111_and_is_capped():
    from venvsmith.core.index.cache import HEURISTIC_MAX_SECONDS, heuristic_freshness, parse_cache_control

    date = "Tue, 01 Oct 2024 12:00:00 GMT"
    assert heuristic_freshness({"last-modified": "Tue, 01 Oct 2024 11:00:00 GMT", "date": date}) == 360.0
    old = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert heuristic_freshness({"last-modified": old, "date": date}) == HEURISTIC_MAX_SECONDS
    assert heuristic_freshness({"date": date}) is None
    assert heuristic_freshness({"last-modified": "garbage", "date": date}) is None
    assert heuristic_freshness({"last-modified": date, "date": date, "expires": "0"}) is None
    assert parse_cache_control({"cache-control": "max-age=5", "last-modified": date}) == (True, 5.0)
    assert parse_cache_control({"cache-control": "no-cache", "last-modified": date}) == (True, 0.0)


def test_stores_are_written_behind_seen_at_once_and_flushed_on_close(tmp_path):
    page = CachedPage("https://i/simple/a/", b"body", "text/html", "https://i/simple/a/", '"e"', None, 1.0, 60.0)
    cache = IndexCache(tmp_path / "c")
    stored = cache.put_page(page)
    cache.put_metadata("AB" * 32, b"Metadata-Version: 2.1\n")
    cache.put_metadata_fields("ab" * 32, '[1,"x"]')
    assert cache.get_page(page.url) == stored  # this instance sees its own stores at once
    assert cache.get_page(page.url, body=False).body == b""
    assert cache.get_metadata("ab" * 32) == b"Metadata-Version: 2.1\n"
    assert cache.get_metadata_fields("ab" * 32) == ('[1,"x"]', None)
    assert cache.refresh_page(stored, 5.0, 120.0).fetched_at == 5.0
    assert cache.get_page(page.url).fetched_at == 5.0
    cache.close()
    cache.put_metadata("cd" * 32, b"late")  # after close: dropped, no error

    with IndexCache(tmp_path / "c") as again:  # another process, later
        assert again.get_page(page.url) == replace(stored, fetched_at=5.0, max_age=120.0)
        assert again.get_metadata_fields("ab" * 32) == ('[1,"x"]', None)
        assert again.get_metadata("cd" * 32) is None


def test_many_threads_storing_at_once(tmp_path):
    with IndexCache(tmp_path / "c") as cache:
        def store(i: int) -> None:
            for j in range(25):
                cache.put_metadata(f"{i:02x}{j:02x}".ljust(64, "0"), b"m%d-%d" % (i, j))

        threads = [threading.Thread(target=store, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cache.flush()
        assert cache._db.execute("SELECT COUNT(*) FROM metadata").fetchone()[0] == 16 * 25
        assert cache.get_metadata("0a07".ljust(64, "0")) == b"m10-7"


def test_a_page_refreshed_before_it_is_written_leaves_no_overlay(tmp_path):
    page = CachedPage("https://i/simple/a/", b"body", "text/html", "https://i/simple/a/", None, None, 1.0, 60.0)
    with IndexCache(tmp_path / "c") as cache:
        with cache._pending_lock:  # hold the writer back: both stores are pending together
            stored = cache.put_page(page)
            cache.refresh_page(stored, 7.0, 30.0)
        cache.flush()
        assert cache._pending_pages == {}
        assert cache.get_page(page.url).fetched_at == 7.0


def test_a_page_revalidated_after_it_was_written_is_seen_fresh_at_once(tmp_path):
    page = CachedPage("https://i/simple/a/", b"body", "text/html", "https://i/simple/a/", '"e"', None, 100.0, 60.0)
    with IndexCache(tmp_path / "c") as cache:
        stored = cache.put_page(page)
        cache.flush()  # written: no overlay left
        with cache._pending_lock:  # (re-entrant) hold the writer back: the revalidation stays queued
            cache.refresh_page(stored, 500.0, 10.0)
            assert cache._ops
            seen = cache.get_page(page.url)
            assert seen is not None and (seen.fetched_at, seen.max_age) == (500.0, 10.0)
            assert cache.get_page(page.url, body=False).fetched_at == 500.0
        cache.flush()
        assert not cache._pending_refreshes  # the overlay is dropped once written
        assert cache.get_page(page.url).fetched_at == 500.0


def test_no_reader_connects_while_a_corrupt_file_is_replaced(tmp_path, monkeypatch):
    """A read that needs a new connection while the corrupt file is moved aside waits for the new file: it never
    creates an empty one of its own (and fails on its missing tables) between the move and the new schema."""
    import sqlite3
    import threading

    import venvsmith.core.index.cache as cache_module

    url = "https://i/simple/a/"
    with IndexCache(tmp_path / "c") as cache:
        cache.put_page(CachedPage(url, b"body", "text/html", url, None, None, 1.0, None))
        cache.flush()
        assert cache.get_page(url) is not None
        moved, go_on = threading.Event(), threading.Event()
        real_move = cache_module.move_aside

        def held_move(path, exc):
            real_move(path, exc)
            moved.set()
            go_on.wait(10)  # the window: the old file gone, the new one not made yet

        monkeypatch.setattr(cache_module, "move_aside", held_move)
        with cache._readers_lock:
            cache._close_idle_readers()  # the next read must connect
        recovery = threading.Thread(target=cache._recover,
                                    args=(cache._generation, sqlite3.DatabaseError("file is not a database")))
        recovery.start()
        assert moved.wait(10)
        outcome: list = []

        def read() -> None:
            try:
                outcome.append(cache.get_page(url))
            except Exception as exc:  # noqa: BLE001 - what the test looks at
                outcome.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(0.3)  # it waits for the recovery (without the lock it would have read the missing file)
        go_on.set()
        recovery.join(10)
        reader.join(10)
        assert outcome == [None]  # the new, empty cache: a miss, no error
        assert cache.get_page(url) is None and cache._broken is None
