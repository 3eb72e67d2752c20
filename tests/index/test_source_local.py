"""IndexSource over files on disk: file:// PEP 503 trees, find-links directories, pages and archives."""

from __future__ import annotations

import pytest
from packaging.version import Version

from tests.fixtures.index import Dist
from venvsmith.core.errors import DynamicMetadata, IndexUnavailable


def test_file_simple_tree(index_builder, make_source):
    index_builder.add("foo", "1.0", deps=["bar"], requires_python=">=3.8")
    index_builder.add(Dist("foo", "1.1", kind="sdist", yanked=""))
    index_builder.add("bar", "1.0")
    url = index_builder.simple_url()
    source = make_source(index_url=url)
    files = {f.filename: f for f in source.files("FOO")}
    assert set(files) == {"foo-1.0-py3-none-any.whl", "foo-1.1.tar.gz"}
    wheel = files["foo-1.0-py3-none-any.whl"]
    assert wheel.index == url and wheel.url == index_builder.file_path(wheel.filename).as_uri()
    assert wheel.sha256 == index_builder.get(wheel.filename).sha256
    assert wheel.requires_python == ">=3.8" and files["foo-1.1.tar.gz"].yanked == ""
    assert [str(r) for r in source.metadata(wheel).requires_dist] == ["bar"]
    assert source.metadata(files["foo-1.1.tar.gz"]).version == Version("1.1")
    assert list(source.files("unknown")) == []
    assert source.stats.pages_fetched == 0 and source.stats.pages_local == 1


def test_file_tree_with_unnormalised_directory_names_and_without_index_html(index_builder, make_source):
    index_builder.add("Foo.Bar", "1.0")
    root = index_builder.simple_dir()
    (root / "foo-bar").rename(root / "Foo.Bar")
    (root / "Foo.Bar" / "index.html").unlink()
    (root / "Foo.Bar" / "foo_bar-1.0-py3-none-any.whl").write_bytes(
        index_builder.file_path("foo_bar-1.0-py3-none-any.whl").read_bytes()
    )
    source = make_source(index_url=root.as_uri())
    (file,) = source.files("foo-bar")
    assert file.filename == "foo_bar-1.0-py3-none-any.whl"
    assert source.metadata(file).name == "foo-bar"


def test_find_links_directory(index_builder, make_source):
    index_builder.add("foo", "1.0", deps=["bar"])
    index_builder.add(Dist("foo", "1.1", kind="sdist", deps=["bar>1"]))
    index_builder.add("bar", "1.0")
    directory = index_builder.find_links_dir()
    (directory / "README.txt").write_text("not a dist")
    (directory / "nested").mkdir()
    source = make_source(find_links=[str(directory)])
    files = source.files("foo")
    assert sorted(f.filename for f in files) == ["foo-1.0-py3-none-any.whl", "foo-1.1.tar.gz"]
    assert {f.origin for f in files} == {"find-links"} and {f.index for f in files} == {str(directory)}
    assert all(f.sha256 is None and f.size for f in files)
    assert {str(source.metadata(f).version) for f in files} == {"1.0", "1.1"}
    assert source.stats.metadata_fetched == 2


def test_find_links_as_file_url_html_page_and_single_archive(index_builder, make_source, tmp_path):
    wheel = index_builder.add("foo", "1.0")
    index_builder.add("foo", "2.0")
    page = tmp_path / "links.html"
    page.write_text(index_builder.find_links_html(files_base=index_builder.files_dir.as_uri() + "/"))
    source = make_source(find_links=[index_builder.find_links_url(), str(page), str(wheel)])
    files = source.files("foo")
    by_origin = sorted((f.index, f.filename) for f in files)
    assert len(by_origin) == 5  # directory (2) + page (2) + archive (1)
    from_page = [f for f in files if f.index == str(page)]
    assert all(f.sha256 for f in from_page)  # the page carried hash fragments
    assert source.metadata(from_page[0]).name == "foo"


def test_missing_find_links_location_is_ignored(make_source, tmp_path):
    source = make_source(find_links=[str(tmp_path / "absent")])
    assert list(source.files("foo")) == []


def test_find_links_http_page(index_builder, index_server, make_source):
    index_builder.add("foo", "1.0")
    index_builder.add("bar", "1.0")
    server = index_server()
    source = make_source(find_links=[server.find_links_url])
    (foo,) = source.files("foo")
    (bar,) = source.files("bar")
    assert foo.url == server.file_url(foo.filename) and foo.origin == "find-links"
    assert foo.index == server.find_links_url
    assert server.paths() == ["/links/"]  # one fetch for all names
    assert source.metadata(foo).name == "foo"


def test_local_dynamic_sdist(index_builder, make_source):
    index_builder.add(Dist("foo", "1.0", kind="sdist", dynamic=["Requires-Dist"]))
    source = make_source(find_links=[str(index_builder.find_links_dir())])
    (file,) = source.files("foo")
    with pytest.raises(DynamicMetadata, match="foo-1.0.tar.gz has dynamic dependencies"):
        source.metadata(file)


def test_local_file_removed_after_listing(index_builder, make_source):
    index_builder.add("foo", "1.0")
    directory = index_builder.find_links_dir()
    source = make_source(find_links=[str(directory)])
    (file,) = source.files("foo")
    (directory / file.filename).unlink()
    with pytest.raises(IndexUnavailable, match="cannot read"):
        source.metadata(file)


def test_local_sidecar_metadata_is_used_and_checked(index_builder, make_source):
    index_builder.add(
        "foo", "1.0", metadata_override=b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nRequires-Dist: x\n"
    )
    source = make_source(index_url=index_builder.simple_url())
    (file,) = source.files("foo")
    assert file.core_metadata
    # The sidecar, not the archive (whose METADATA has no Requires-Dist), was read.
    assert [str(r) for r in source.metadata(file).requires_dist] == ["x"]


def test_file_tree_changes_are_seen_by_a_long_lived_process(index_builder, make_source):
    """Parsed pages and the tree's directory names are remembered in memory, but only while unchanged."""
    index_builder.add("foo", "1.0")
    root = index_builder.simple_dir()
    assert [f.filename for f in make_source(index_url=root.as_uri()).files("foo")] == ["foo-1.0-py3-none-any.whl"]
    assert list(make_source(index_url=root.as_uri()).files("Late.Comer")) == []

    index_builder.add("foo", "1.1")
    index_builder.add("Late.Comer", "2.0")
    root = index_builder.simple_dir()
    (root / "late-comer").rename(root / "Late.Comer")
    files = sorted(f.filename for f in make_source(index_url=root.as_uri()).files("foo"))
    assert files == ["foo-1.0-py3-none-any.whl", "foo-1.1-py3-none-any.whl"]
    assert [f.version for f in make_source(index_url=root.as_uri()).files("late-comer")] == [Version("2.0")]
