"""Cooldown for indexes without upload times (first-seen), and PEP 792 project status, against local indexes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.errors import NoSolution
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.index.project_status import html_project_status, page_project_status
from venvsmith.v1 import common_pb2, resolver_pb2

T1 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
T2 = datetime(2025, 2, 1, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    yield engine
    engine.close()


def request(index_url: str, *reqs: str, exclude_newer: str = "", find_links: str = "") -> resolver_pb2.ResolveRequest:
    index = common_pb2.IndexConfig(index_url=index_url)
    if find_links:
        index = common_pb2.IndexConfig(no_index=True, find_links=[find_links])
    return resolver_pb2.ResolveRequest(
        requirements=list(reqs),
        index=index,
        target=common_pb2.TargetSpec(
            shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28")
        ),
        options=common_pb2.ResolutionOptions(exclude_newer=exclude_newer),
        no_cache=True,
    )


def pins(response) -> dict[str, str]:
    return {p.name: p.version for p in response.pins}


@pytest.mark.parametrize("formats", [("json",), ("html",)])
def test_exclude_newer_without_upload_times_uses_first_seen(engine, index_builder, index_server, formats):
    index_builder.add("pkg", "1.0")  # no upload time on the listing
    server = index_server(formats=formats, cache_control="no-cache")
    clock = Clock(T1)
    engine.index_cache.clock = clock
    first = engine.resolve(request(server.url, "pkg"))
    assert pins(first) == {"pkg": "1.0"}
    index_builder.add("pkg", "2.0")  # a new upload, first seen a month later
    clock.now = T2
    assert pins(engine.resolve(request(server.url, "pkg"))) == {"pkg": "2.0"}
    between = engine.resolve(request(server.url, "pkg", exclude_newer="2025-01-15T00:00:00Z"))
    assert pins(between) == {"pkg": "1.0"}
    assert any("first saw it, 2025-01-01T00:00:00+00:00" in n and "pkg==1.0" in n for n in between.notes)
    after = engine.resolve(request(server.url, "pkg", exclude_newer="2025-03-01T00:00:00Z"))
    assert pins(after) == {"pkg": "2.0"}
    # A file first seen now is newer than any past exclude-newer: the cooldown excludes it.
    with pytest.raises(NoSolution) as err:
        engine.resolve(request(server.url, "pkg", exclude_newer="2024-12-01T00:00:00Z"))
    assert "first seen by this resolver" in err.value.message


def test_first_seen_survives_a_new_engine(tmp_path, index_builder, index_server):
    index_builder.add("pkg", "1.0")
    server = index_server(cache_control="no-cache")
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    for now, expected in ((T1, "1.0"), (T2, "1.0")):
        engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
        engine.index_cache.clock = Clock(now)
        try:
            if now == T2:
                index_builder.add("pkg", "2.0")
            response = engine.resolve(request(server.url, "pkg", exclude_newer="2025-01-15T00:00:00Z"))
            assert pins(response) == {"pkg": expected}
        finally:
            engine.close()


def test_find_links_files_get_a_cooldown_too(engine, index_builder, index_server):
    index_builder.add("pkg", "1.0")
    server = index_server(cache_control="no-cache")
    clock = Clock(T1)
    engine.index_cache.clock = clock
    engine.resolve(request("", "pkg", find_links=server.find_links_url))
    index_builder.add("pkg", "2.0")
    clock.now = T2
    links = server.find_links_url
    response = engine.resolve(request("", "pkg", exclude_newer="2025-01-15T00:00:00Z", find_links=links))
    assert pins(response) == {"pkg": "1.0"}


@pytest.mark.parametrize("formats", [("json",), ("html",)])
def test_quarantined_project_is_no_solution_naming_status_and_reason(engine, index_builder, index_server, formats):
    index_builder.add("evil", "1.0")
    index_builder.set_status("evil", "quarantined", "malware reported")
    server = index_server(formats=formats)
    with pytest.raises(NoSolution) as err:
        engine.resolve(request(server.url, "evil"))
    assert "quarantined" in err.value.message and "malware reported" in err.value.message
    assert any(v.type == "PROJECT_STATUS" and v.subject == "evil" for v in err.value.violations())


@pytest.mark.parametrize("formats", [("json",), ("html",)])
def test_archived_project_is_used_with_a_note(engine, index_builder, index_server, formats):
    index_builder.add("old", "1.0")
    index_builder.set_status("old", "archived", "no longer maintained")
    server = index_server(formats=formats)
    response = engine.resolve(request(server.url, "old"))
    assert pins(response) == {"old": "1.0"}
    assert any("project old is archived" in n and "no longer maintained" in n for n in response.notes)


def test_html_meta_is_parsed_and_unknown_status_is_active():
    page = b'<html><head><meta name="pypi:project-status" content="deprecated">' \
           b'<meta name="pypi:project-status-reason" content="use new-thing"></head></html>'
    status = html_project_status(page, "idx")
    assert status is not None and (status.status, status.reason) == ("deprecated", "use new-thing")
    assert html_project_status(b'<meta name="pypi:project-status" content="whatever">', "idx") is None
    assert page_project_status(b'{"meta": {"api-version": "1.4"}, "files": [], '
                               b'"project-status": {"status": "active"}}', "application/json", "idx") is None
