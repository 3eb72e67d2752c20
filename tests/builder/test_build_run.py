"""One Build stream: an sdist's build dependencies do not depend on the order of the pins in the stream.

``ext`` builds against ``abidep`` (as a C extension builds against numpy) and records the ``abidep`` it was built
with in its wheel. The pinned set holds ``abidep`` 1.0 while the index's newest is 2.0: in either stream order the
build must use the pinned 1.0 (the ABI the venv will run) and give the same wheel, byte for byte.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from builder_service.build_run import BuildRun
from builder_service.engine import BuildEngine, BuilderSettings
from resolver_service.engine import EngineSettings, ResolverEngine
from tests.fixtures.index import IndexBuilder
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

RECORD_ABIDEP = """
import importlib.metadata
with open("ext/__init__.py", "w") as fh:
    fh.write("BUILT_AGAINST = %r\\n" % importlib.metadata.version("abidep"))
"""


@pytest.fixture(scope="module")
def index_url(tmp_path_factory) -> str:
    b = IndexBuilder(tmp_path_factory.mktemp("build-order-index"))
    b.add("abidep", "1.0")
    b.add("abidep", "2.0")
    b.add("ext", "1.0", kind="sdist", backend="intree", deps=["abidep"], build_requires=("abidep",),
          build_body=RECORD_ABIDEP)
    b.add("plain", "1.0")
    # The same, with abidep asked for by get_requires_for_build_wheel (as setuptools asks for setup_requires).
    b.add("dynext", "1.0", kind="sdist", backend="intree", deps=["abidep"], dynamic_build_requires=("abidep",),
          build_body=RECORD_ABIDEP.replace("ext/", "dynext/"))
    return b.simple_url()


def engine(home: Path, index_url: str) -> BuildEngine:
    resolver = ResolverEngine(EngineSettings(home=home, pip=PipIndexConfig(index_url=index_url)))
    return BuildEngine(BuilderSettings(home=home), resolver)


def built_ext(home: Path, index_url: str, order=list, project: str = "ext", abidep: str = "1.0") -> tuple[str, str]:
    """Build the pinned set of ``project``, ``abidep`` and ``plain`` with the pins sent in ``order(pins)``; the
    project's wheel digest and what it was built against."""
    eng = engine(home, index_url)
    try:
        config = common_pb2.IndexConfig(index_url=index_url)
        pins = list(eng.resolver.resolve(resolver_pb2.ResolveRequest(
            requirements=[project, f"abidep=={abidep}", "plain"], index=config)).pins)
        assert {p.name: p.version for p in pins} == {project: "1.0", "abidep": abidep, "plain": "1.0"}
        stream = [builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(
            target=common_pb2.TargetSpec(), options=builder_pb2.BuildOptions(wheels=True, index=config)))]
        stream += [builder_pb2.BuildRequest(pin=p) for p in order(pins)]
        stream.append(builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=len(pins))))
        results = [e.result for e in BuildRun(eng, iter(stream)).events() if e.WhichOneof("event") == "result"]
        wheel = next(w for w in results[0].wheels if w.filename.startswith(f"{project}-"))
        from builder_service.digest import Digest

        data = eng.store.path(Digest(wheel.digest.hash, wheel.digest.size_bytes)).read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return wheel.digest.hash, zf.read(f"{project}/__init__.py").decode()
    finally:
        eng.close()


def test_an_sdist_builds_against_the_pinned_build_requirement_in_either_order(tmp_path, index_url):
    def dep_first(pins):
        return sorted(pins, key=lambda p: p.name != "abidep")

    def sdist_first(pins):
        return sorted(pins, key=lambda p: p.name != "ext")

    first = built_ext(tmp_path / "a", index_url, dep_first)
    second = built_ext(tmp_path / "b", index_url, sdist_first)
    assert first[1] == second[1] == "BUILT_AGAINST = '1.0'\n"  # the pinned ABI, not the index's newest
    assert first[0] == second[0]


def test_a_build_requirement_the_backend_asks_for_is_the_pinned_one_in_every_set(tmp_path, index_url):
    """``get_requires_for_build_wheel``'s abidep is resolved under the pinned set: a set that pins another abidep
    does not get the wheel built against the first one (same sdist, same static build requirements)."""
    home = tmp_path / "home"
    one = built_ext(home, index_url, project="dynext", abidep="1.0")
    two = built_ext(home, index_url, project="dynext", abidep="2.0")
    assert (one[1], two[1]) == ("BUILT_AGAINST = '1.0'\n", "BUILT_AGAINST = '2.0'\n")
    assert built_ext(home, index_url, project="dynext", abidep="1.0") == one  # each build is kept


def test_wheels_start_at_once_and_an_sdist_build_waits_for_its_build_requirements(tmp_path, index_url):
    import queue
    import time

    eng = engine(tmp_path / "home", index_url)
    try:
        config = common_pb2.IndexConfig(index_url=index_url)
        pins = {p.name: p for p in eng.resolver.resolve(resolver_pb2.ResolveRequest(
            requirements=["ext", "abidep==1.0", "plain"], index=config)).pins}
        sent: queue.Queue = queue.Queue()

        def requests():
            while (item := sent.get()) is not None:
                yield item

        sent.put(builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(
            target=common_pb2.TargetSpec(), options=builder_pb2.BuildOptions(wheels=True, index=config))))
        sent.put(builder_pb2.BuildRequest(pin=pins["ext"]))
        sent.put(builder_pb2.BuildRequest(pin=pins["plain"]))
        events = BuildRun(eng, requests()).events()
        done = builder_pb2.PinProgress.DONE

        def until(name: str) -> None:
            for event in events:
                assert event.progress.state != builder_pb2.PinProgress.FAILED, event.progress.detail
                if event.progress.name == name and event.progress.state == done:
                    return

        until("plain")  # a wheel is fetched before the stream ends
        time.sleep(0.5)
        assert eng.counters["sdist_builds"] == 0  # ext needs abidep, not received yet
        sent.put(builder_pb2.BuildRequest(pin=pins["abidep"]))
        until("ext")  # built as soon as its build requirement is pinned, before the end
        sent.put(builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=3)))
        sent.put(None)
        results = [e.result for e in events if e.WhichOneof("event") == "result"]
        assert len(results) == 1 and len(results[0].wheels) == 3
    finally:
        eng.close()
