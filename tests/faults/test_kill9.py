"""``kill -9`` of a real server at seeded-random moments while clients resolve and build, a few rounds on the same
home: after each restart nothing a client was told is done is lost, and nothing half-written is visible.

Builder (``serve builder``, which resolves too): every artifact whose ref a client received is still fetchable
and its bytes hash to its digest; every blob file's sha256 is its name; after a restart no temp file is left
outside the temp directories. Resolver (``serve resolver``): every answer a client received is answered again
the same after the restart, and its SQLite caches pass ``PRAGMA integrity_check``.
(One deterministic kill mid sdist build: ``tests/e2e/test_builder_failures.py``.)
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.fixtures.builder_server import BuilderProcess, ResolverProcess
from tests.fixtures.digests import sha256_file
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

SEED = 1103
ROUNDS = 4
CLIENTS = 3
#: Requirement sets the clients pick from: wheels with a large payload (blob writes take a while), sdists whose
#: in-tree backend sleeps a little (builds are often in flight at the kill).
SETS = [["w0"], ["w1", "w2"], ["s0"], ["s1", "w3"], ["w4", "s2"], ["top"]]
#: Files that may be left in a temp directory by a killed writer (and only there).
TEMP_NAME = re.compile(r"^(w-|l-|\.).*|.*\.(part|tmp)$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    rng = random.Random(SEED)
    b = IndexBuilder(tmp_path_factory.mktemp("kill9-index"))
    for i in range(5):
        b.add(f"w{i}", "1.0", files={f"w{i}/__init__.py": b"", f"w{i}/payload.bin": rng.randbytes(3 << 20)})
    for i in range(3):
        b.add(f"s{i}", "1.0", kind="sdist", backend="intree", build_body="import time; time.sleep(0.4)")
    b.add("top", "1.0", deps=["w0", "s0", "w3"])
    with IndexServer(b) as server:
        yield server


def build_request(index: IndexServer, reqs: list[str], venv: bool) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=index.url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=reqs, index=config),
        options=builder_pb2.BuildOptions(wheels=True, wheelhouse=True, venv_archive=venv, index=config))


def refs_of(result: builder_pb2.BuildResult) -> list[artifact_pb2.Digest]:
    refs = [w.digest for w in result.wheels]
    for ref in (result.wheelhouse, result.venv_archive, result.lock_file):
        if ref.digest.hash:
            refs.append(ref.digest)
    return refs


def assert_no_partial_blob(home: Path) -> None:
    """Every file under the store's ``cas/`` is a whole blob: named by its sha256, in its two-hex directory."""
    cas = home / "store" / "cas" / "sha256"
    for path in cas.rglob("*") if cas.exists() else ():
        if path.is_file():
            assert HEX64.match(path.name) and path.parent.name == path.name[:2], f"not a blob: {path}"
            assert sha256_file(path) == path.name, f"partial or corrupt blob {path}"


def assert_no_stray_temp_files(home: Path) -> None:
    """After a restart, temp-looking files exist only in a temp directory (the store's ``tmp/``, ``home/tmp``)."""
    temp_dirs = (home / "store" / "tmp", home / "tmp")
    stray = [p for p in home.rglob("*") if p.is_file() and TEMP_NAME.match(p.name)
             and not any(d in p.parents for d in temp_dirs)]
    assert not stray, f"temp files outside the temp directories: {stray}"


def fetch(server: BuilderProcess, digest: artifact_pb2.Digest) -> bytes:
    chunks = server.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=digest), timeout=60)
    return b"".join(c.data for c in chunks)


def clients_until_killed(server: BuilderProcess, index: IndexServer, rng: random.Random,
                         received: dict[str, artifact_pb2.Digest]) -> int:
    """``CLIENTS`` threads build random sets until the server is SIGKILLed at a random moment; the refs of every
    build that completed go into ``received``; returns how many completed."""
    done = []
    lock = threading.Lock()
    plans = [[(rng.choice(SETS), rng.random() < 0.5) for _ in range(20)] for _ in range(CLIENTS)]

    def client(plan) -> None:
        for reqs, venv in plan:
            try:
                events = list(server.stub.ResolveAndBuild(build_request(index, reqs, venv), timeout=60))
            except grpc.RpcError:
                return  # the server died under us
            result = next(e.build.result for e in events if e.WhichOneof("event") == "build"
                          and e.build.WhichOneof("event") == "result")
            with lock:
                done.append(reqs)
                for ref in refs_of(result):
                    received[ref.hash] = ref

    threads = [threading.Thread(target=client, args=(plan,), daemon=True) for plan in plans]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.3, 2.5))
    server.kill()
    for t in threads:
        t.join(60)
    return len(done)


def test_builder_killed_at_random_moments_loses_nothing_it_reported(tmp_path, index):
    rng = random.Random(SEED)
    home = tmp_path / "home"
    received: dict[str, artifact_pb2.Digest] = {}
    completed = []
    for _ in range(ROUNDS):
        server = BuilderProcess(home, "--sandbox", "none", allow=[index.base_url])
        assert_no_stray_temp_files(home)
        for ref in received.values():  # what earlier rounds reported is still there and verifies
            data = fetch(server, ref)
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (ref.hash, ref.size_bytes)
        completed.append(clients_until_killed(server, index, rng, received))
        assert_no_partial_blob(home)
    with BuilderProcess(home, "--sandbox", "none", allow=[index.base_url]) as server:
        assert_no_stray_temp_files(home)
        for ref in received.values():
            data = fetch(server, ref)
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (ref.hash, ref.size_bytes)
        # and it builds on the recovered store
        events = list(server.stub.ResolveAndBuild(build_request(index, ["top"], True), timeout=60))
        assert any(e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result" for e in events)
    assert_no_partial_blob(home)
    assert sum(completed) > 0 and received, f"no build completed before any kill: {completed}"


def resolve_until_killed(server: ResolverProcess, index: IndexServer, rng: random.Random,
                         answers: dict[tuple[str, ...], list[str]]) -> None:
    """``CLIENTS`` threads resolve random sets (cold ones too) until the server is SIGKILLed at a random moment;
    each answer received goes into ``answers``."""
    lock = threading.Lock()
    plans = [[(rng.choice(SETS), rng.random() < 0.3) for _ in range(30)] for _ in range(CLIENTS)]

    def client(plan) -> None:
        for reqs, no_cache in plan:
            request = resolver_pb2.ResolveRequest(requirements=reqs, index=common_pb2.IndexConfig(
                index_url=index.url), no_cache=no_cache)
            try:
                pins = server.resolver_stub.Resolve(request, timeout=60).pins
            except grpc.RpcError:
                return
            with lock:
                answers[tuple(reqs)] = sorted(f"{p.name}=={p.version} {p.sha256}" for p in pins)

    threads = [threading.Thread(target=client, args=(plan,), daemon=True) for plan in plans]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.1, 1.5))
    server.kill()
    for t in threads:
        t.join(60)


def test_resolver_killed_at_random_moments_answers_the_same_after_a_restart(tmp_path, index):
    rng = random.Random(SEED + 1)
    home = tmp_path / "home"
    answers: dict[tuple[str, ...], list[str]] = {}

    def same_answers(server: ResolverProcess) -> None:
        for reqs, pins in answers.items():
            request = resolver_pb2.ResolveRequest(requirements=list(reqs), index=common_pb2.IndexConfig(
                index_url=index.url))
            again = server.resolver_stub.Resolve(request, timeout=60).pins
            assert sorted(f"{p.name}=={p.version} {p.sha256}" for p in again) == pins, reqs

    for _ in range(3):
        server = ResolverProcess(home, allow=[index.base_url])
        same_answers(server)
        resolve_until_killed(server, index, rng, answers)
    with ResolverProcess(home, allow=[index.base_url]) as server:
        same_answers(server)
    assert answers, "no resolution completed before any kill"
    for path in home.rglob("*.sqlite3"):
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), path
