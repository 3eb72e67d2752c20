"""Dependency hints: a resolution asks for the pages of what a project depended on last time before that
project's own page arrives (venvsmith.core.index.cache dependency_hints, Provider._speculate_one)."""

from __future__ import annotations

from packaging.requirements import Requirement

from resolver_service.resolve import ResolutionRequest, resolve
from venvsmith.core.target import TargetEnvironment

LINUX_311 = TargetEnvironment.from_shorthand("3.11.7", "x86_64-manylinux_2_28")
#: Seconds the root's page is held back by the server in the second resolution.
DELAY = 2.0


def _resolve(source, *reqs: str):
    request = ResolutionRequest(requirements=[Requirement(r) for r in reqs], target=LINUX_311, lookahead_workers=4)
    return {p.name: str(p.version) for p in resolve(request, source).pins}


def _asked(server, name: str) -> float:
    return min(r.at for r in server.requests if r.path.startswith(f"/simple/{name}/"))


def test_hinted_pages_are_asked_for_before_the_page_that_needs_them(index_builder, index_server, make_source):
    index_builder.add("app", "1.0", deps=["lib"])
    index_builder.add("lib", "1.0", deps=["base"])
    index_builder.add("base", "1.0")
    # The root's page is slow, and revalidated each time (as an index that sends no freshness).
    server = index_server(delay=DELAY, delay_match="/simple/app/", cache_control="max-age=0")
    first = make_source(cache=True, index_url=server.url)
    assert _resolve(first, "app") == {"app": "1.0", "lib": "1.0", "base": "1.0"}
    app = _asked(server, "app")
    assert _asked(server, "lib") > app + DELAY * 0.9  # no hint yet: lib is known from app's metadata only

    first.cache.flush()
    assert first.dependency_hint("app") == ["lib"] and first.dependency_hint("lib") == ["base"]
    assert first.dependency_hint("base") == []
    assert make_source(cache=True, index_url=index_server().url).dependency_hint("app") == []  # per index

    server.requests.clear()
    later = make_source(cache=True, index_url=server.url)
    assert _resolve(later, "app") == {"app": "1.0", "lib": "1.0", "base": "1.0"}
    app = _asked(server, "app")
    # lib's and base's pages were asked for while app's was still on its way.
    assert _asked(server, "lib") < app + DELAY * 0.9
    assert _asked(server, "base") < app + DELAY * 0.9


def test_a_changed_dependency_replaces_the_hint(index_builder, index_server, make_source):
    index_builder.add("app", "1.0", deps=["lib"])
    index_builder.add("lib", "1.0")
    index_builder.add("other", "1.0")
    server = index_server(cache_control="max-age=0")
    source = make_source(cache=True, index_url=server.url)
    _resolve(source, "app")
    source.cache.flush()
    assert source.dependency_hint("app") == ["lib"]
    index_builder.add("app", "2.0", deps=["other"])
    later = make_source(cache=True, index_url=server.url)
    assert _resolve(later, "app") == {"app": "2.0", "other": "1.0"}
    later.cache.flush()
    assert later.dependency_hint("app") == ["other"]
