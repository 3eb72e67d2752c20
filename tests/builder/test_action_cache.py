"""ActionResult (de)serialisation and FilesystemActionCache: hits only while outputs exist, single-flight compute."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder_service.action_cache import (
    KINDS,
    ActionCache,
    ActionResult,
    FilesystemActionCache,
    InvalidActionResult,
    MissingOutputs,
    OutputRef,
)
from builder_service.digest import Digest
from builder_service.store import FilesystemStore
from tests.fixtures.concurrent import at_once

HEX = "0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FilesystemStore]:
    s = FilesystemStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path: Path, store: FilesystemStore) -> Iterator[FilesystemActionCache]:
    c = FilesystemActionCache(tmp_path / "store", store)
    yield c
    c.close()


def wheel_result(store: FilesystemStore, content: bytes = b"wheel", **meta: str) -> ActionResult:
    d = store.put_bytes(content)
    lock = store.put_bytes(b"pkg==1.0 --hash=sha256:...\n")
    return ActionResult(
        (
            OutputRef(d, "application/zip", "wheel", "pkg-1.0-py3-none-any.whl"),
            OutputRef(lock, "text/plain", "lock_file", "requirements.txt"),
        ),
        meta=meta,
    )


# -- ActionResult ----------------------------------------------------------------------------------------------------

digests = st.builds(Digest, st.text(alphabet=HEX, min_size=64, max_size=64), st.integers(0, 2**63 - 1))
outputs = st.builds(OutputRef, digests, st.text(max_size=30), st.sampled_from(sorted(KINDS)), st.text(max_size=40))
results = st.builds(
    ActionResult,
    st.lists(outputs, max_size=4).map(tuple),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
)


@given(results)
def test_action_result_json_round_trip(result: ActionResult) -> None:
    text = result.to_json()
    back = ActionResult.from_json(text)
    assert back == result
    assert back.to_json() == text
    assert hash(back) == hash(result)


def test_action_result_is_immutable_and_helpful() -> None:
    d = Digest.of_bytes(b"x")
    meta = {"lock_key": "abc"}
    r = ActionResult([OutputRef(d, "application/zip", "wheel", "x.whl")], 1.0, meta)  # type: ignore[arg-type]
    meta["lock_key"] = "changed"
    assert r.meta == {"lock_key": "abc"}
    assert isinstance(r.outputs, tuple)
    with pytest.raises(TypeError):
        r.meta["x"] = "y"  # type: ignore[index]
    assert r.digests == (d,)
    assert r.output("wheel") is r.outputs[0] and r.output("venv_archive") is None
    assert ActionResult(()).created_at == pytest.approx(time.time(), abs=60)


@pytest.mark.parametrize(
    "make",
    [
        lambda d: OutputRef(d, "application/zip", "egg", "x.egg"),
        lambda d: OutputRef("sha256:" + "a" * 64 + "/1", "application/zip", "wheel", "x.whl"),  # type: ignore[arg-type]
        lambda d: ActionResult((OutputRef(d, "t", "wheel", "x"),), meta={"n": 1}),  # type: ignore[dict-item]
        lambda d: ActionResult(("not an output",)),  # type: ignore[arg-type]
    ],
)
def test_invalid_construction(make) -> None:
    with pytest.raises(InvalidActionResult):
        make(Digest.of_bytes(b"x"))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version": 2, "outputs": [], "created_at": 1}',
        '{"version": 1, "outputs": {}, "created_at": 1}',
        '{"version": 1, "outputs": [], "created_at": "now"}',
        '{"version": 1, "outputs": [], "created_at": true}',
        '{"version": 1, "outputs": [], "created_at": 1, "meta": []}',
        '{"version": 1, "outputs": [{"digest": "sha256:zz/1"}], "created_at": 1}',
        '{"version": 1, "outputs": [{"digest": "sha256:' + "a" * 64 + '/1", "kind": "wheel"}], "created_at": 1}',
    ],
)
def test_from_json_rejects(text: str) -> None:
    with pytest.raises(InvalidActionResult):
        ActionResult.from_json(text)


# -- FilesystemActionCache -------------------------------------------------------------------------------------------


def test_is_an_action_cache(cache: FilesystemActionCache) -> None:
    assert isinstance(cache, ActionCache)


def test_round_trip_and_persistence(tmp_path: Path, store: FilesystemStore, cache: FilesystemActionCache) -> None:
    assert cache.get("lock:1") is None
    result = wheel_result(store, log="sha256:" + "0" * 64 + "/0")
    cache.put("lock:1", result)
    assert cache.get("lock:1") == result
    reopened = FilesystemActionCache(tmp_path / "store", store)
    assert reopened.get("lock:1") == result
    reopened.close()
    newer = wheel_result(store, b"wheel v2")
    cache.put("lock:1", newer)
    assert cache.get("lock:1") == newer
    assert cache.delete("lock:1") and cache.get("lock:1") is None and not cache.delete("lock:1")


def test_put_requires_outputs_in_store(store: FilesystemStore, cache: FilesystemActionCache) -> None:
    ghost = Digest.of_bytes(b"never stored")
    result = ActionResult((OutputRef(ghost, "application/zip", "wheel", "ghost.whl"),))
    with pytest.raises(MissingOutputs) as info:
        cache.put("k", result)
    assert info.value.key == "k" and info.value.digests == (ghost,)
    assert cache.get("k") is None


def test_evicted_output_is_a_miss(store: FilesystemStore, cache: FilesystemActionCache) -> None:
    result = wheel_result(store)
    cache.put("k", result)
    store.evict(0)
    assert cache.get("k") is None
    with sqlite3.connect(cache.path) as conn:  # the dangling entry is dropped
        assert conn.execute("SELECT count(*) FROM actions").fetchone()[0] == 0


def test_unreadable_entry_is_a_miss(store: FilesystemStore, cache: FilesystemActionCache) -> None:
    with sqlite3.connect(cache.path) as conn:
        conn.execute("INSERT INTO actions VALUES ('k', 'garbage', 0)")
    assert cache.get("k") is None


def test_invalid_key(cache: FilesystemActionCache) -> None:
    with pytest.raises(ValueError):
        cache.get("")


def test_get_or_compute_single_flight(store: FilesystemStore, cache: FilesystemActionCache) -> None:
    calls: list[int] = []

    def compute() -> ActionResult:
        calls.append(1)
        time.sleep(0.3)  # a long build; everyone else arrives meanwhile
        return wheel_result(store, lock_key="abc")

    got, errors = at_once(20, lambda _: cache.get_or_compute("lock:abc", compute))
    assert errors == []
    assert len(calls) == 1
    assert len(got) == 20 and len({r for r, _ in got}) == 1
    assert sum(computed for _, computed in got) == 1
    assert cache.get_or_compute("lock:abc", compute) == (got[0][0], False)
    assert len(calls) == 1


def test_get_or_compute_failure_is_not_cached(store: FilesystemStore, cache: FilesystemActionCache) -> None:
    def boom() -> ActionResult:
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", boom)
    assert cache.get("k") is None
    result, computed = cache.get_or_compute("k", lambda: wheel_result(store))
    assert computed and cache.get("k") == result


def test_get_or_compute_recomputes_after_eviction(store: FilesystemStore, cache: FilesystemActionCache) -> None:
    first, computed = cache.get_or_compute("k", lambda: wheel_result(store))
    assert computed
    store.evict(0)
    second, computed = cache.get_or_compute("k", lambda: wheel_result(store))
    assert computed and second.digests == first.digests and store.contains(first.digests[0])


# -- outputs held until recorded ---------------------------------------------------------------------------------


class EvictingStore(FilesystemStore):
    """A store in which another build evicts everything it can right after each blob lands (the race)."""

    def _stored(self, digest: Digest) -> None:
        super()._stored(digest)
        other_build = threading.Thread(target=self.evict, args=(0,))
        other_build.start()
        other_build.join()


def test_outputs_cannot_be_evicted_between_compute_and_record(tmp_path: Path):
    store = EvictingStore(tmp_path / "store")
    cache = FilesystemActionCache(tmp_path / "store", store)
    try:
        result, computed = cache.get_or_compute("k", lambda: wheel_result(store))
        assert computed and cache.get("k") == result
        # once recorded the outputs are no longer held: a later eviction may take them (and the entry misses)
        assert store.evict(0)
        assert cache.get("k") is None
    finally:
        cache.close()
        store.close()


def test_corrupt_action_cache_file_is_replaced(tmp_path: Path, store, caplog):
    first = FilesystemActionCache(tmp_path / "ac", store)
    result = wheel_result(store)
    first.put("k", result)
    first.close()
    (tmp_path / "ac" / "action_cache.sqlite3").write_bytes(b"\xde\xad" * 8192)
    with caplog.at_level("WARNING"):
        cache = FilesystemActionCache(tmp_path / "ac", store)
    try:
        assert cache.get("k") is None  # the entry is lost, not the service
        cache.put("k", result)
        assert cache.get("k") == result
        assert any("moved aside" in r.getMessage() for r in caplog.records)
        assert list((tmp_path / "ac").glob("action_cache.sqlite3.corrupt-*"))
    finally:
        cache.close()


def corrupt_open_cache(directory: Path) -> None:
    """Garbage over a cache file in use, its WAL and its shared-memory index (so the open connection notices)."""
    for name in ("action_cache.sqlite3", "action_cache.sqlite3-wal", "action_cache.sqlite3-shm"):
        path = directory / name
        if path.exists():
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.write(b"\xde\xad" * max(size, 8192))


def test_action_cache_corrupted_mid_run_is_replaced(tmp_path: Path, store, caplog):
    cache = FilesystemActionCache(tmp_path / "ac", store)
    try:
        result = wheel_result(store)
        cache.put("k", result)
        corrupt_open_cache(tmp_path / "ac")
        with caplog.at_level("WARNING"):
            assert cache.get("k") is None  # the entry is lost, not the service
        cache.put("k", result)
        assert cache.get("k") == result
        assert any("moved aside" in r.getMessage() for r in caplog.records)
    finally:
        cache.close()


def test_builder_health_follows_an_action_cache_that_cannot_be_replaced(tmp_path: Path):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from builder_service.engine import BuildEngine, BuilderSettings
    from builder_service.service import SERVICE_NAME, make_server
    from tests.e2e.test_cache_corruption import read_only

    engine = BuildEngine(BuilderSettings(home=tmp_path / "home"))
    server, port = make_server("127.0.0.1:0", engine)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status() -> int:
                return health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME)).status

            actions = engine.workspace.actions
            actions.put("k", wheel_result(engine.store))
            corrupt_open_cache(actions.root)
            with read_only(actions.root):
                with pytest.raises((sqlite3.DatabaseError, OSError)):
                    actions.get("k")
                assert status() == health_pb2.HealthCheckResponse.NOT_SERVING
            assert actions.get("k") is None  # recovered once the directory can be written again
            assert status() == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)
        engine.close()


# -- describe: which build output a digest is --------------------------------------------------------------------------


def test_describe_finds_outputs_and_forgets_deleted_entries(store: FilesystemStore, cache: FilesystemActionCache
                                                            ) -> None:
    result = wheel_result(store)
    cache.put("lock:one", result)
    wheel, lock = result.outputs
    unknown = store.put_bytes(b"a blob no build made")
    assert cache.describe([wheel.digest, lock.digest, unknown]) == {wheel.digest: wheel, lock.digest: lock}
    assert cache.delete("lock:one")
    assert cache.describe([wheel.digest]) == {}


def test_describe_indexes_a_cache_made_before_the_outputs_table(tmp_path: Path, store: FilesystemStore) -> None:
    import sqlite3

    first = FilesystemActionCache(tmp_path / "store", store)
    result = wheel_result(store)
    first.put("lock:old", result)
    path = first.path
    first.close()
    with sqlite3.connect(path) as conn:  # as an older builder left it: no outputs table
        conn.execute("DROP TABLE outputs")
    again = FilesystemActionCache(tmp_path / "store", store)
    try:
        assert again.describe([result.outputs[0].digest]) == {result.outputs[0].digest: result.outputs[0]}
    finally:
        again.close()
