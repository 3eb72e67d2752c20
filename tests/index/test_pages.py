"""Parsing PEP 691 JSON and PEP 503 HTML project pages and find-links pages (pure, hand-written samples)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from venvsmith.core.index.pages import (
    PageError,
    content_kind,
    parse_html_page,
    parse_json_page,
    parse_links_page,
    parse_project_page,
)

PAGE = "https://index.example/simple/foo/"
INDEX = "https://index.example/simple/"
FOO = canonicalize_name("foo")
SHA = "a" * 64


def html(*anchors: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{''.join(anchors)}</body></html>"


def by_name(files):
    return {f.filename: f for f in files}


# ---------------------------------------------------------------------------------------------- HTML


def test_html_relative_urls_and_hash_fragment():
    page = html(
        f'<a href="../../files/foo-1.0-py3-none-any.whl#sha256={SHA.upper()}">foo-1.0-py3-none-any.whl</a>',
        '<a href="/abs/foo-1.0.tar.gz">foo-1.0.tar.gz</a>',
        '<a href="https://cdn.example/x/foo-2.0.zip#md5=0123456789abcdef0123456789abcdef">foo-2.0.zip</a>',
    )
    files = by_name(parse_html_page(page, PAGE, INDEX, FOO))
    wheel = files["foo-1.0-py3-none-any.whl"]
    assert wheel.url == "https://index.example/files/foo-1.0-py3-none-any.whl"
    assert wheel.hashes == {"sha256": SHA}  # lower-cased, fragment removed from the URL
    assert wheel.is_wheel and wheel.version == Version("1.0") and wheel.index == INDEX
    assert files["foo-1.0.tar.gz"].url == "https://index.example/abs/foo-1.0.tar.gz"
    assert not files["foo-1.0.tar.gz"].is_wheel and files["foo-1.0.tar.gz"].hashes == {}
    assert files["foo-2.0.zip"].hashes == {"md5": "0123456789abcdef" * 2}
    assert files["foo-2.0.zip"].origin == "index"


def test_html_base_href_is_resolved_against_the_page_and_only_the_first_counts():
    page = html(
        '<a href="foo-1.0-py3-none-any.whl">x</a>',
        head='<base href="../../packages/"><base href="https://other.example/">',
    )
    (file,) = parse_html_page(page, PAGE, INDEX, FOO)
    assert file.url == "https://index.example/packages/foo-1.0-py3-none-any.whl"


def test_html_page_url_after_redirect_is_the_base():
    page = html('<a href="foo-1.0.tar.gz">foo-1.0.tar.gz</a>')
    (file,) = parse_html_page(page, "https://mirror.example/pypi/simple/foo/", INDEX, FOO)
    assert file.url == "https://mirror.example/pypi/simple/foo/foo-1.0.tar.gz"


def test_html_requires_python_is_unescaped():
    page = html(
        '<a href="foo-1.0.tar.gz" data-requires-python="&gt;=3.8,&lt;4.0">a</a>',
        '<a href="foo-1.1.tar.gz" data-requires-python="&amp;gt;=3.9">b</a>',
        '<a href="foo-1.2.tar.gz" data-requires-python="">c</a>',
    )
    files = by_name(parse_html_page(page, PAGE, INDEX, FOO))
    assert files["foo-1.0.tar.gz"].requires_python == ">=3.8,<4.0"
    # Double-escaped values come out escaped once: exactly what the page said.
    assert files["foo-1.1.tar.gz"].requires_python == "&gt;=3.9"
    assert files["foo-1.2.tar.gz"].requires_python is None


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("", None),
        (" data-yanked", ""),
        (' data-yanked=""', ""),
        (' data-yanked="broken &amp; bad"', "broken & bad"),
    ],
)
def test_html_yanked_variants(attribute, expected):
    (file,) = parse_html_page(html(f'<a href="foo-1.0.tar.gz"{attribute}>x</a>'), PAGE, INDEX, FOO)
    assert file.yanked == expected
    assert file.is_yanked is (expected is not None)


@pytest.mark.parametrize(
    ("attributes", "present", "hashes"),
    [
        ("", False, {}),
        (' data-core-metadata="true"', True, {}),
        (f' data-core-metadata="sha256={SHA}"', True, {"sha256": SHA}),
        (f' data-dist-info-metadata="sha256={SHA}"', True, {"sha256": SHA}),  # PEP 714 legacy name
        (' data-dist-info-metadata="true"', True, {}),
        # Both: the new name wins.
        (
            f' data-core-metadata="sha256={SHA}" data-dist-info-metadata="sha256={"b" * 64}"',
            True,
            {"sha256": SHA},
        ),
        (' data-core-metadata="false"', False, {}),
        (' data-core-metadata="unknownhash=abc"', True, {}),
        (" data-core-metadata", True, {}),
    ],
)
def test_html_core_metadata_attributes(attributes, present, hashes):
    page = html(f'<a href="foo-1.0-py3-none-any.whl"{attributes}>x</a>')
    (file,) = parse_html_page(page, PAGE, INDEX, FOO)
    assert file.core_metadata is present
    assert dict(file.core_metadata_hashes) == hashes


def test_html_skips_non_distributions_other_projects_and_directories():
    page = html(
        '<a href="foo-1.0.tar.gz">ok</a>',
        '<a href="foo-1.0.egg">egg</a>',
        '<a href="foo-1.0.exe">exe</a>',
        '<a href="foo-1.0-py3-none-any.whl.metadata">sidecar</a>',
        '<a href="../">parent</a>',
        "<a>no href</a>",
        '<a href="">empty</a>',
        '<a href="foobar-1.0.tar.gz">prefix of another project</a>',
        '<a href="foo_bar-1.0-py3-none-any.whl">another project</a>',
        '<a href="not-a-version-x-y.whl">broken wheel name</a>',
    )
    files = parse_html_page(page, PAGE, INDEX, FOO)
    assert [f.filename for f in files] == ["foo-1.0.tar.gz"]


def test_html_name_match_is_canonical():
    page = html('<a href="Foo_Bar-1.0-py3-none-any.whl">x</a>', '<a href="foo.bar-2.0.tar.gz">y</a>')
    files = parse_html_page(page, "https://i.example/simple/foo-bar/", INDEX, canonicalize_name("Foo.Bar"))
    assert sorted(f.filename for f in files) == ["Foo_Bar-1.0-py3-none-any.whl", "foo.bar-2.0.tar.gz"]


def test_html_filename_is_unquoted_from_the_url_and_query_is_ignored():
    page = html('<a href="files/foo-1.0%2Blocal-py3-none-any.whl?download=1#sha256=' + SHA + '">x</a>')
    (file,) = parse_html_page(page, PAGE, INDEX, FOO)
    assert file.filename == "foo-1.0+local-py3-none-any.whl"
    assert file.version == Version("1.0+local")
    assert file.url.endswith("?download=1")
    assert file.hashes == {"sha256": SHA}


def test_html_credentials_are_stripped_from_file_urls():
    page = html('<a href="https://user:secret@files.example/foo-1.0.tar.gz">x</a>')
    (file,) = parse_html_page(page, PAGE, INDEX, FOO)
    assert file.url == "https://files.example/foo-1.0.tar.gz"
    assert "secret" not in repr(file) + file.url


def test_html_uppercase_tags_entities_in_href_and_unclosed_markup():
    page = '<A HREF="foo-1.0.tar.gz?a=1&amp;b=2" DATA-YANKED="x">x</A><a href="foo-2.0.tar.gz">'
    files = by_name(parse_html_page(page, PAGE, INDEX, FOO))
    assert files["foo-1.0.tar.gz"].url.endswith("foo-1.0.tar.gz?a=1&b=2")
    assert files["foo-1.0.tar.gz"].yanked == "x"
    assert "foo-2.0.tar.gz" in files


def test_html_build_tag_and_multi_tag_wheels():
    page = html('<a href="foo-1.0-1build-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl">x</a>')
    (file,) = parse_html_page(page, PAGE, INDEX, FOO)
    assert file.build_tag == (1, "build")
    assert len(file.tags) == 2


def test_html_charset_from_content_type():
    body = html('<a href="foo-1.0.tar.gz" data-yanked="caf\xe9">x</a>').encode("latin-1")
    (file,) = parse_project_page(body, "text/html; charset=ISO-8859-1", PAGE, INDEX, FOO)
    assert file.yanked == "caf\xe9"


# ---------------------------------------------------------------------------------------------- JSON


def json_page(*files: dict, meta: dict | None = None) -> bytes:
    return json.dumps({"meta": meta or {"api-version": "1.1"}, "name": "foo", "files": list(files)}).encode()


def test_json_fields():
    body = json_page(
        {
            "filename": "foo-1.0-py3-none-any.whl",
            "url": "../../files/foo-1.0-py3-none-any.whl",
            "hashes": {"sha256": SHA.upper(), "blake2b": "00", "bogus": "zz"},
            "requires-python": ">=3.8",
            "yanked": False,
            "core-metadata": {"sha256": "b" * 64},
            "size": 1234,
            "upload-time": "2024-03-01T12:30:45.123456Z",
        }
    )
    (file,) = parse_json_page(body, PAGE, INDEX, FOO)
    assert file.url == "https://index.example/files/foo-1.0-py3-none-any.whl"
    assert file.hashes == {"sha256": SHA}
    assert file.requires_python == ">=3.8"
    assert file.yanked is None
    assert file.core_metadata and file.core_metadata_hashes == {"sha256": "b" * 64}
    assert file.size == 1234
    assert file.upload_time == datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(False, None), (True, ""), ("security issue", "security issue"), ("", None), (None, None), (1, None)],
)
def test_json_yanked(value, expected):
    body = json_page({"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "hashes": {}, "yanked": value})
    (file,) = parse_json_page(body, PAGE, INDEX, FOO)
    assert file.yanked == expected


@pytest.mark.parametrize(
    ("entry", "present", "hashes"),
    [
        ({}, False, {}),
        ({"core-metadata": True}, True, {}),
        ({"core-metadata": False}, False, {}),
        ({"core-metadata": {"sha256": SHA}}, True, {"sha256": SHA}),
        ({"dist-info-metadata": {"sha256": SHA}}, True, {"sha256": SHA}),
        ({"dist-info-metadata": True}, True, {}),
        (
            {"core-metadata": {"sha256": SHA}, "dist-info-metadata": {"sha256": "b" * 64}},
            True,
            {"sha256": SHA},
        ),
        ({"core-metadata": False, "dist-info-metadata": True}, False, {}),
    ],
)
def test_json_core_metadata(entry, present, hashes):
    body = json_page({"filename": "foo-1.0-py3-none-any.whl", "url": "x/foo-1.0-py3-none-any.whl", **entry})
    (file,) = parse_json_page(body, PAGE, INDEX, FOO)
    assert file.core_metadata is present
    assert dict(file.core_metadata_hashes) == hashes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T12:30:45Z", datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-03-01T12:30:45.1Z", datetime(2024, 3, 1, 12, 30, 45, 100000, tzinfo=UTC)),
        ("2024-03-01T12:30:45.123456789Z", datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)),
        ("2024-03-01T14:30:45+02:00", datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-03-01T12:30:45", datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC)),
        ("yesterday", None),
        (1709296245, None),
    ],
)
def test_json_upload_time(value, expected):
    body = json_page({"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "upload-time": value})
    (file,) = parse_json_page(body, PAGE, INDEX, FOO)
    assert file.upload_time == expected


def test_json_skips_bad_entries_other_projects_and_non_dists():
    body = json_page(
        {"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "size": True},
        {"filename": "bar-1.0.tar.gz", "url": "bar-1.0.tar.gz"},
        {"filename": "foo-1.0.egg", "url": "foo-1.0.egg"},
        {"filename": 3, "url": "x"},
        {"url": "foo-2.0.tar.gz"},
        "not an object",
    )
    (file,) = parse_json_page(body, PAGE, INDEX, FOO)
    assert file.filename == "foo-1.0.tar.gz"
    assert file.size is None  # a bool is not a size


def test_json_hash_in_url_fragment_is_a_fallback():
    body = json_page({"filename": "foo-1.0.tar.gz", "url": f"foo-1.0.tar.gz#sha256={SHA}", "hashes": {}})
    (file,) = parse_json_page(body, PAGE, INDEX, FOO)
    assert file.hashes == {"sha256": SHA}
    assert file.url == "https://index.example/simple/foo/foo-1.0.tar.gz"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"meta": {"api-version": "1.0"}}',
        b'{"meta": {"api-version": "2.0"}, "files": []}',
    ],
)
def test_json_unusable_pages_raise_page_error(body):
    with pytest.raises(PageError):
        parse_json_page(body, PAGE, INDEX, FOO)


def test_json_minor_api_versions_are_accepted():
    body = json_page({"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz"}, meta={"api-version": "1.99"})
    assert len(parse_json_page(body, PAGE, INDEX, FOO)) == 1


# ----------------------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("content_type", "body", "kind"),
    [
        ("application/vnd.pypi.simple.v1+json", b"", "json"),
        ("application/vnd.pypi.simple.v1+json; charset=utf-8", b"", "json"),
        ("application/vnd.pypi.simple.latest+json", b"", "json"),
        ("application/vnd.pypi.simple.v1+html", b"{", "html"),
        ("text/html; charset=utf-8", b"{", "html"),
        ("", b'  {"files": []}', "json"),
        ("application/octet-stream", b"<html>", "html"),
    ],
)
def test_content_kind(content_type, body, kind):
    assert content_kind(content_type, body) == kind


def test_same_files_from_json_and_html():
    anchor = (
        f'<a href="../../files/foo-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8"'
        f' data-yanked="old" data-core-metadata="sha256={SHA}">x</a>'
    )
    entry = {
        "filename": "foo-1.0-py3-none-any.whl",
        "url": "../../files/foo-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "requires-python": ">=3.8",
        "yanked": "old",
        "core-metadata": {"sha256": SHA},
    }
    (from_html,) = parse_project_page(html(anchor).encode(), "text/html", PAGE, INDEX, FOO)
    (from_json,) = parse_project_page(
        json_page(entry), "application/vnd.pypi.simple.v1+json", PAGE, INDEX, FOO
    )
    for attribute in ("url", "hashes", "requires_python", "yanked", "core_metadata", "core_metadata_hashes"):
        assert getattr(from_html, attribute) == getattr(from_json, attribute), attribute


# ---------------------------------------------------------------------------------------- find-links


def test_links_page_keeps_every_project_and_marks_origin():
    page = html(
        '<a href="foo-1.0.tar.gz">a</a>',
        '<a href="sub/bar-2.0-py3-none-any.whl">b</a>',
        '<a href="README.txt">c</a>',
        '<a href="?C=M;O=A">sort</a>',
    ).encode()
    files = parse_links_page(
        page, "text/html", "https://host.example/wheels/", "https://host.example/wheels/"
    )
    assert [(f.name, f.url) for f in files] == [
        ("foo", "https://host.example/wheels/foo-1.0.tar.gz"),
        ("bar", "https://host.example/wheels/sub/bar-2.0-py3-none-any.whl"),
    ]
    assert {f.origin for f in files} == {"find-links"}
