"""Several indexes: first-index (uv's default), unsafe-best-match, per-package pinning, find-links joining."""

from __future__ import annotations

import pytest

from venvsmith.core.errors import IndexUnavailable, InvalidInput
from venvsmith.core.index import IndexSettings


@pytest.fixture
def two_indexes(index_builder_factory, index_server):
    """A private index (foo 1.0, internal 1.0) and a public one (foo 9.0, bar 1.0), both over HTTP."""
    private, public = index_builder_factory("private"), index_builder_factory("public")
    private.add("foo", "1.0")
    private.add("internal", "1.0")
    public.add("foo", "9.0")
    public.add("bar", "1.0")
    return index_server(private), index_server(public)


def versions(files):
    return sorted(str(f.version) for f in files)


def test_priority_order_is_extras_then_default():
    settings = IndexSettings(
        index_url="https://d/simple", extra_index_urls=["https://a/simple/", "https://b/"]
    )
    assert settings.indexes() == ["https://a/simple/", "https://b/", "https://d/simple"]
    assert IndexSettings(index_url="https://d/", extra_index_urls=["https://d"]).indexes() == ["https://d"]
    assert IndexSettings(index_url="https://d/", no_index=True).indexes() == []
    with pytest.raises(InvalidInput):
        IndexSettings(strategy="best")


def test_first_index_private_extra_index_wins(two_indexes, make_source):
    private, public = two_indexes
    source = make_source(index_url=public.url, extra_index_urls=[private.url])
    foo = source.files("foo")
    assert versions(foo) == ["1.0"] and {f.index for f in foo} == {private.url}
    assert public.paths() == []  # never asked: no dependency confusion


def test_first_index_falls_through_for_names_only_on_the_default(two_indexes, make_source):
    private, public = two_indexes
    source = make_source(index_url=public.url, extra_index_urls=[private.url])
    assert versions(source.files("bar")) == ["1.0"]
    assert private.paths() == ["/simple/bar/"] and public.paths() == ["/simple/bar/"]
    assert list(source.files("nowhere")) == []


def test_unsafe_best_match_unions_all_indexes(two_indexes, make_source):
    private, public = two_indexes
    source = make_source(index_url=public.url, extra_index_urls=[private.url], strategy="unsafe-best-match")
    foo = source.files("foo")
    assert versions(foo) == ["1.0", "9.0"]
    assert {str(f.version): f.index for f in foo} == {"1.0": private.url, "9.0": public.url}


def test_package_index_pins_a_name_to_one_index(two_indexes, make_source):
    private, public = two_indexes
    source = make_source(
        index_url=public.url,
        extra_index_urls=[private.url],
        strategy="unsafe-best-match",
        package_index={"Foo": public.url},
    )
    assert versions(source.files("foo")) == ["9.0"]
    assert private.paths() == []
    # A pinned name missing on its index is simply absent, the others are not asked.
    pinned = make_source(
        index_url=public.url, extra_index_urls=[private.url], package_index={"internal": public.url}
    )
    assert list(pinned.files("internal")) == []


def test_find_links_always_join(two_indexes, index_builder_factory, make_source):
    private, public = two_indexes
    local = index_builder_factory("local")
    local.add("foo", "5.0")
    local.add("bar", "5.0")
    links = [str(local.find_links_dir())]
    first = make_source(index_url=public.url, extra_index_urls=[private.url], find_links=links)
    assert versions(first.files("foo")) == ["1.0", "5.0"]
    best = make_source(
        index_url=public.url, extra_index_urls=[private.url], find_links=links, strategy="unsafe-best-match"
    )
    assert versions(best.files("foo")) == ["1.0", "5.0", "9.0"]
    pinned = make_source(index_url=public.url, find_links=links, package_index={"bar": public.url})
    assert versions(pinned.files("bar")) == ["1.0", "5.0"]


def test_no_index_uses_find_links_only(two_indexes, index_builder_factory, make_source):
    private, public = two_indexes
    local = index_builder_factory("local")
    local.add("foo", "5.0")
    source = make_source(index_url=public.url, find_links=[str(local.find_links_dir())], no_index=True)
    assert versions(source.files("foo")) == ["5.0"]
    assert public.paths() == []


def test_mixed_file_and_http_indexes(two_indexes, index_builder_factory, make_source):
    private, public = two_indexes
    static = index_builder_factory("static")
    static.add("foo", "3.0")
    source = make_source(index_url=public.url, extra_index_urls=[static.simple_url()])
    assert versions(source.files("foo")) == ["3.0"]
    assert versions(source.files("bar")) == ["1.0"]


def test_an_unavailable_index_fails_the_name_even_if_a_later_one_has_it(
    two_indexes, index_server, make_source
):
    private, public = two_indexes
    broken = index_server(private.builder, fail_status=503)
    source = make_source(index_url=public.url, extra_index_urls=[broken.url])
    with pytest.raises(IndexUnavailable) as info:
        source.files("bar")
    assert info.value.index == broken.url


def test_an_index_that_requires_a_login_is_an_error_not_a_fallthrough(two_indexes, index_server, make_source):
    private, public = two_indexes
    locked = index_server(private.builder, auth=("u", "p"))
    source = make_source(index_url=public.url, extra_index_urls=[locked.url])
    with pytest.raises(IndexUnavailable, match="authentication"):
        source.files("foo")
    assert public.paths() == []
