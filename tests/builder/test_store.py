"""Digest and FilesystemStore: verified writes, verified reads, single-flight, crash safety, LRU eviction."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder_service.digest import Digest
from builder_service.errors import BlobNotFound, BlobTooLarge, DigestMismatch, InvalidDigest, InvalidRange
from builder_service.store import FilesystemStore, Store
from tests.fixtures.concurrent import at_once

REPO = Path(__file__).resolve().parents[2]
HEX = "0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FilesystemStore]:
    s = FilesystemStore(tmp_path / "store")
    yield s
    s.close()


def blobs_on_disk(store: FilesystemStore) -> list[Path]:
    return sorted(p for p in (store.root / "cas").rglob("*") if p.is_file())


def tmp_files(store: FilesystemStore) -> list[Path]:
    return sorted((store.root / "tmp").iterdir())


def corrupt(store: FilesystemStore, digest: Digest) -> None:
    """Flip the last byte in place (same size, same inode)."""
    path = store.blob_path(digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# -- Digest ----------------------------------------------------------------------------------------------------------


def test_digest_of_bytes_and_file(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    f = tmp_path / "blob"
    f.write_bytes(data)
    d = Digest.of_bytes(data)
    assert Digest.of_file(f) == d
    assert d.size_bytes == len(data)
    assert str(d) == f"sha256:{d.hash}/{len(data)}"
    assert str(Digest.of_bytes(b"")) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0"


@pytest.mark.parametrize(
    "hash_, size",
    [("A" * 64, 1), ("a" * 63, 1), ("g" * 64, 1), ("a" * 64, -1), ("a" * 64, True), ("a" * 64, 1.0), (None, 1)],
)
def test_digest_rejects_invalid(hash_: object, size: object) -> None:
    with pytest.raises(InvalidDigest):
        Digest(hash_, size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256:" + "a" * 64,
        "a" * 64 + "/1",
        "sha256:" + "a" * 64 + "/-1",
        "sha256:" + "a" * 64 + "/01",
        "md5:" + "a" * 64 + "/1",
        "sha256:" + "A" * 64 + "/1",
        " sha256:" + "a" * 64 + "/1",
    ],
)
def test_digest_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        Digest.parse(text)
    assert info.value.value == text


@given(st.text(alphabet=HEX, min_size=64, max_size=64), st.integers(min_value=0, max_value=2**63 - 1))
def test_digest_str_parse_round_trip(hash_: str, size: int) -> None:
    d = Digest(hash_, size)
    assert Digest.parse(str(d)) == d


def test_digest_mismatch_message_and_fields() -> None:
    expected, actual = Digest.of_bytes(b"a"), Digest.of_bytes(b"bb")
    err = DigestMismatch("pkg-1.0.whl", expected, actual)
    assert (err.expected, err.actual, err.name) == (expected, actual, "pkg-1.0.whl")
    assert "pkg-1.0.whl" in str(err) and str(expected) in str(err)
    assert "more than 1 bytes" in str(DigestMismatch("x", expected, None))
    assert pickle.loads(pickle.dumps(err)).args == err.args


# -- writes ----------------------------------------------------------------------------------------------------------


def test_is_a_store(store: FilesystemStore) -> None:
    assert isinstance(store, Store)


def test_put_and_read_round_trip(store: FilesystemStore) -> None:
    data = b"hello wheel" * 1000
    d = store.put_bytes(data)
    assert d == Digest.of_bytes(data)
    assert store.contains(d)
    with store.open(d) as f:
        assert f.read() == data
    path = store.path(d)
    assert path == store.root / "cas" / "sha256" / d.hash[:2] / d.hash
    assert path.read_bytes() == data
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222, "blobs are read-only"
    assert store.usage() == len(data)
    assert tmp_files(store) == []


def test_put_same_content_twice_writes_once(store: FilesystemStore) -> None:
    d1 = store.put_bytes(b"x" * 10)
    ino = store.blob_path(d1).stat().st_ino
    d2 = store.put_stream([b"x" * 5, b"x" * 5])  # no expected digest: known only after hashing
    d3 = store.put_bytes(b"x" * 10, d1)
    assert d1 == d2 == d3
    assert store.blob_path(d1).stat().st_ino == ino, "an existing blob is not rewritten"
    assert (store.stats.writes, store.stats.reused) == (1, 2)
    assert tmp_files(store) == []


def test_empty_blob(store: FilesystemStore) -> None:
    d = store.put_stream([], Digest.of_bytes(b""))
    assert store.contains(d)
    assert store.open(d).read() == b""
    assert store.read_range(d, 0, 10) == b""


def test_put_file_copy_and_link(store: FilesystemStore, tmp_path: Path) -> None:
    src = tmp_path / "pkg-1.0-py3-none-any.whl"
    src.write_bytes(b"wheel bytes")
    d = store.put_file(src, Digest.of_bytes(b"wheel bytes"))
    assert store.blob_path(d).stat().st_ino != src.stat().st_ino
    src2 = tmp_path / "venv.tar.zst"
    src2.write_bytes(b"archive bytes")
    d2 = store.put_file(src2, link=True)
    assert store.blob_path(d2).stat().st_ino == src2.stat().st_ino, "hard-linked, not copied"
    assert store.open(d2).read() == b"archive bytes"
    assert tmp_files(store) == []


def test_put_file_link_verifies(store: FilesystemStore, tmp_path: Path) -> None:
    src = tmp_path / "bad.whl"
    src.write_bytes(b"tampered")
    with pytest.raises(DigestMismatch) as info:
        store.put_file(src, Digest.of_bytes(b"original"), link=True)
    assert info.value.name == "bad.whl"
    assert blobs_on_disk(store) == [] and tmp_files(store) == []
    assert src.read_bytes() == b"tampered"


def test_writer(store: FilesystemStore) -> None:
    with store.writer() as w:
        w.write(b"abc")
        w.write(memoryview(b"def"))
        assert w.digest is None
    assert w.digest == Digest.of_bytes(b"abcdef")
    with store.writer(w.digest) as w2:
        assert w2.already_present
        w2.write(b"ignored")
    assert w2.digest == w.digest


@pytest.mark.parametrize(
    "chunks",
    [[b"tampered!"], [b"short"], [b"original", b"+more"]],
    ids=["wrong-hash", "too-short", "too-long"],
)
def test_put_verifies_digest(store: FilesystemStore, chunks: list[bytes]) -> None:
    expected = Digest.of_bytes(b"original!")
    with pytest.raises(DigestMismatch) as info:
        store.put_stream(chunks, expected, name="pkg-1.0.tar.gz")
    err = info.value
    assert err.expected == expected and err.name == "pkg-1.0.tar.gz"
    if chunks == [b"original", b"+more"]:
        assert err.actual is None  # rejected as soon as it outgrew the expected size
    else:
        assert err.actual == Digest.of_bytes(b"".join(chunks))
    assert not store.contains(expected)
    assert blobs_on_disk(store) == [] and tmp_files(store) == [] and store.usage() == 0


def test_failed_stream_leaves_nothing(store: FilesystemStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("download dropped")

    with pytest.raises(ConnectionError):
        store.put_stream(chunks())
    assert blobs_on_disk(store) == [] and tmp_files(store) == []


def test_max_bytes(store: FilesystemStore) -> None:
    with pytest.raises(BlobTooLarge) as info:
        store.put_stream([b"x" * 6, b"x" * 6], max_bytes=10, name="huge.whl")
    assert (info.value.name, info.value.max_bytes) == ("huge.whl", 10)
    assert blobs_on_disk(store) == [] and tmp_files(store) == []
    assert store.put_stream([b"x" * 10], max_bytes=10) == Digest.of_bytes(b"x" * 10)


def test_writer_refuses_commit_after_swallowed_error(store: FilesystemStore) -> None:
    with pytest.raises(BlobTooLarge):
        with store.writer(max_bytes=3) as w:
            with pytest.raises(BlobTooLarge):
                w.write(b"toolong")
            w.write(b"ok")  # the writer stays failed
    assert blobs_on_disk(store) == []


# -- reads -----------------------------------------------------------------------------------------------------------


def test_open_missing(store: FilesystemStore) -> None:
    d = Digest.of_bytes(b"nope")
    with pytest.raises(BlobNotFound) as info:
        store.open(d)
    assert info.value.digest == d
    assert store.path(d) is None


def test_corrupt_blob_raises_at_end_and_is_removed(store: FilesystemStore) -> None:
    data = os.urandom(3 << 20)  # larger than the reader's 1 MiB buffer
    d = store.put_bytes(data)
    corrupt(store, d)
    f = store.open(d)
    got = f.read(1000)
    assert got == data[:1000], "bytes before the end are served; the error comes with the last read"
    with pytest.raises(DigestMismatch) as info:
        f.read()
    f.close()
    assert info.value.expected == d and info.value.actual is not None and info.value.actual.hash != d.hash
    assert d.hash in info.value.name
    assert not store.blob_path(d).exists() and not store.contains(d)
    assert store.stats.corrupt_removed == 1 and store.usage() == 0
    assert store.put_bytes(data, d) == d  # rewritable
    assert store.open(d).read() == data


def test_corrupt_blob_detected_on_exact_size_read(store: FilesystemStore) -> None:
    data = b"z" * 5000
    d = store.put_bytes(data)
    corrupt(store, d)
    with store.open(d) as f, pytest.raises(DigestMismatch):
        f.read(d.size_bytes)  # never asks for EOF, still verified


def test_wrong_sized_blob_is_absent_and_overwritten(store: FilesystemStore) -> None:
    d = store.put_bytes(b"0123456789")
    path = store.blob_path(d)
    path.chmod(0o644)
    path.write_bytes(b"01234")  # truncated by a crash or a disk problem
    assert not store.contains(d)
    assert store.stat([d]) == {d: False}
    with pytest.raises(BlobNotFound):
        store.open(d)
    with pytest.raises(BlobNotFound):
        store.read_range(d, 0, 3)
    assert store.put_bytes(b"0123456789", d) == d
    assert path.read_bytes() == b"0123456789"


def test_wrong_size_in_request_does_not_delete_blob(store: FilesystemStore) -> None:
    d = store.put_bytes(b"0123456789")
    bogus = Digest(d.hash, 3)
    assert not store.contains(bogus)
    with pytest.raises(BlobNotFound):
        store.open(bogus)
    assert store.contains(d)


def test_read_range(store: FilesystemStore) -> None:
    data = os.urandom(10_000)
    d = store.put_bytes(data)
    assert store.read_range(d, 0, 100) == data[:100]
    assert store.read_range(d, 4096, 1000) == data[4096:5096]
    assert store.read_range(d, 9_990, 100) == data[9_990:]
    assert store.read_range(d, 10_000, 100) == b""
    assert store.read_range(d, 5, 0) == b""
    resumed = b"".join(store.read_range(d, off, 3000) for off in range(0, d.size_bytes, 3000))
    assert resumed == data
    for offset, length in [(10_001, 1), (-1, 10), (0, -1)]:
        with pytest.raises(InvalidRange) as info:
            store.read_range(d, offset, length)
        assert (info.value.digest, info.value.offset) == (d, offset)
    with pytest.raises(BlobNotFound):
        store.read_range(Digest.of_bytes(b"missing"), 0, 1)


def test_stat(store: FilesystemStore) -> None:
    a, b = store.put_bytes(b"a"), store.put_bytes(b"b")
    missing = Digest.of_bytes(b"c")
    assert store.stat([a, missing, b]) == {a: True, missing: False, b: True}
    assert store.stat([]) == {}


def test_delete(store: FilesystemStore) -> None:
    d = store.put_bytes(b"bye")
    assert store.delete(d)
    assert not store.contains(d) and store.usage() == 0
    assert not store.delete(d)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilesystemStore]:
    """One store for all Hypothesis examples (function-scoped fixtures are not reset between examples)."""
    s = FilesystemStore(tmp_path_factory.mktemp("hyp") / "store")
    yield s
    s.close()


@given(chunks=st.lists(st.binary(max_size=3000), max_size=6))
def test_arbitrary_blobs_round_trip(shared_store: FilesystemStore, chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    d = shared_store.put_stream(chunks, Digest.of_bytes(data) if len(chunks) % 2 else None)
    assert d == Digest.of_bytes(data)
    assert shared_store.open(d).read() == data
    assert b"".join(shared_store.read_range(d, o, 777) for o in range(0, len(data), 777)) == data


# -- concurrency and crashes -----------------------------------------------------------------------------------------


def test_concurrent_put_same_blob_writes_once(store: FilesystemStore) -> None:
    data = os.urandom(200_000)
    expected = Digest.of_bytes(data)
    consumed: list[int] = []

    def chunks(i: int) -> Iterator[bytes]:
        consumed.append(i)
        yield data[:1000]
        time.sleep(0.2)  # the others pile up on the single-flight lock meanwhile
        yield data[1000:]

    results, errors = at_once(20, lambda i: store.put_stream(chunks(i), expected))
    assert errors == []
    assert results == [expected] * 20
    assert len(consumed) == 1, "only the first writer's stream was read"
    assert (store.stats.writes, store.stats.reused) == (1, 19)
    assert tmp_files(store) == []


def test_concurrent_put_without_expected_digest(store: FilesystemStore) -> None:
    data = os.urandom(50_000)
    results, errors = at_once(20, lambda _: store.put_stream([data[:20_000], data[20_000:]]))
    assert errors == []
    assert results == [Digest.of_bytes(data)] * 20
    assert store.stats.writes == 1 and len(blobs_on_disk(store)) == 1 and tmp_files(store) == []


_HALF_WRITER = textwrap.dedent(
    """
    import sys, time
    from builder_service.digest import Digest
    from builder_service.store import FilesystemStore

    data = bytes(range(256)) * 4096
    store = FilesystemStore(sys.argv[1])
    with store.writer(Digest.of_bytes(data)) as w:
        w.write(data[: len(data) // 2])
        w._file.flush()
        print("half", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.slow
def test_killed_writer_leaves_no_blob(tmp_path: Path) -> None:
    root = tmp_path / "store"
    data = bytes(range(256)) * 4096
    expected = Digest.of_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _HALF_WRITER, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "half"
        observer = FilesystemStore(root, stale_tmp_seconds=0)
        assert not observer.contains(expected)
        assert len(tmp_files(observer)) == 1
        assert observer.clean_tmp(0) == 0, "a live writer's temp file is left alone"
        observer.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    store = FilesystemStore(root, stale_tmp_seconds=0)
    assert store.stats.tmp_cleaned == 1 and tmp_files(store) == []
    assert not store.contains(expected) and blobs_on_disk(store) == []
    assert store.put_bytes(data, expected) == expected
    assert store.open(expected).read() == data
    store.close()


def test_fresh_stale_tmp_kept_by_default(tmp_path: Path) -> None:
    s = FilesystemStore(tmp_path / "s")
    (s.root / "tmp" / "w-recent").write_bytes(b"partial")
    old = s.root / "tmp" / "w-old"
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    s.close()
    s = FilesystemStore(tmp_path / "s")
    assert [p.name for p in tmp_files(s)] == ["w-recent"]
    s.close()


# -- index and eviction ----------------------------------------------------------------------------------------------


def test_lru_eviction_and_pinning(tmp_path: Path) -> None:
    s = FilesystemStore(tmp_path / "s", max_bytes=250, low_water=0.9)  # evict down to 225
    a, b = s.put_bytes(b"a" * 100), s.put_bytes(b"b" * 100)
    assert s.open(a).read()  # a is now more recent than b
    c = s.put_bytes(b"c" * 100)  # 300 > 250: evict LRU -> b
    assert s.stat([a, b, c]) == {a: True, b: False, c: True}
    assert s.usage() == 200 and s.stats.evicted == 1
    with s.pin([a]):  # LRU order is now a, c; a is pinned
        d = s.put_bytes(b"d" * 100)
        assert s.stat([a, c, d]) == {a: True, c: False, d: True}
        assert s.evict(0) == [d]
        assert s.contains(a)
    assert s.evict(0) == [a]
    assert s.usage() == 0 and blobs_on_disk(s) == []
    s.close()


def test_nested_pins(store: FilesystemStore) -> None:
    a = store.put_bytes(b"a")
    with store.pin([a]):
        with store.pin([a]):
            pass
        assert store.evict(0) == []
    assert store.evict(0) == [a]


def test_blob_larger_than_capacity_survives_its_own_put(tmp_path: Path) -> None:
    s = FilesystemStore(tmp_path / "s", max_bytes=50)
    old = s.put_bytes(b"o" * 10)
    big = s.put_bytes(b"x" * 100)
    assert s.contains(big) and not s.contains(old)
    s.close()


def test_index_rebuilt_when_missing_or_corrupt(tmp_path: Path) -> None:
    s = FilesystemStore(tmp_path / "s")
    a, b = s.put_bytes(b"a" * 10), s.put_bytes(b"b" * 20)
    s.close()
    for f in (tmp_path / "s").glob("index.sqlite3*"):
        f.unlink()
    s = FilesystemStore(tmp_path / "s")
    assert s.usage() == 30 and s.stat([a, b]) == {a: True, b: True}
    s.close()
    for f in (tmp_path / "s").glob("index.sqlite3*"):
        f.unlink()
    (tmp_path / "s" / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    s = FilesystemStore(tmp_path / "s")
    assert s.usage() == 30
    assert set(s.evict(0)) == {a, b}
    s.close()


def test_index_learns_blobs_written_by_another_instance(tmp_path: Path) -> None:
    s1, s2 = FilesystemStore(tmp_path / "s"), FilesystemStore(tmp_path / "s")
    d = s1.put_bytes(b"shared")
    assert s2.contains(d) and s2.open(d).read() == b"shared"
    assert s2.usage() == 6
    s1.close()
    s2.close()
