"""Tests of the hermetic index toolkit itself: the dists it builds and the indexes it serves are right."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from tests.fixtures.dists import build_sdist, build_wheel, metadata_text, read_core_metadata, record_hash
from tests.fixtures.index import (
    HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    Dist,
    IndexBuilder,
    IndexServer,
    negotiate,
    parse_range,
    with_extra_marker,
)
from venvsmith.core.distfile import DistFile
from venvsmith.core.metadata import CoreMetadata

JSON_ACCEPT = {"Accept": JSON_CONTENT_TYPE}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client per module: creating a client (and its TLS context) costs tens of milliseconds."""
    with httpx.Client() as client:
        yield client


class _Anchors(HTMLParser):
    """Collect ``<a>`` elements of a PEP 503 page as (attrs, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.anchors.append((self._current, data))
            self._current = None


def anchors(page: str) -> dict[str, dict[str, str | None]]:
    parser = _Anchors()
    parser.feed(page)
    return {text: attrs for attrs, text in parser.anchors}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------- wheels


def test_wheel_filename_metadata_and_record(tmp_path: Path) -> None:
    path = build_wheel(
        tmp_path,
        "Foo.Bar-baz",
        "1.0.post1",
        requires_dist=["requests>=2", 'colorama; sys_platform == "win32"', 'rich; extra == "pretty"'],
        provides_extra=["pretty"],
        requires_python=">=3.8",
        console_scripts={"foo": "foo_bar_baz:main"},
    )
    assert path.name == "foo_bar_baz-1.0.post1-py3-none-any.whl"
    name, version, build, tags = parse_wheel_filename(path.name)
    assert (name, version, build) == ("foo-bar-baz", Version("1.0.post1"), ())
    assert {str(t) for t in tags} == {"py3-none-any"}

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        dist_info = "foo_bar_baz-1.0.post1.dist-info"
        assert names[-1] == f"{dist_info}/RECORD"
        assert "foo_bar_baz/__init__.py" in names
        meta = Metadata.from_email(zf.read(f"{dist_info}/METADATA"), validate=True)
        assert meta.name == "Foo.Bar-baz"
        assert str(meta.version) == "1.0.post1"
        assert str(meta.requires_python) == ">=3.8"
        assert [str(r) for r in meta.requires_dist or []] == [
            "requests>=2",
            'colorama; sys_platform == "win32"',
            'rich; extra == "pretty"',
        ]
        assert meta.provides_extra == ["pretty"]
        wheel = BytesParser().parsebytes(zf.read(f"{dist_info}/WHEEL"))
        assert wheel["Wheel-Version"] == "1.0"
        assert wheel["Root-Is-Purelib"] == "true"
        assert wheel.get_all("Tag") == ["py3-none-any"]
        assert (
            "[console_scripts]\nfoo = foo_bar_baz:main\n" == zf.read(f"{dist_info}/entry_points.txt").decode()
        )
        rows = list(csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode())))
        assert sorted(r[0] for r in rows) == sorted(names)
        for member, digest, size in rows:
            if member.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(member)
            assert digest == record_hash(data)
            assert int(size) == len(data)
            algo, b64 = digest.split("=", 1)
            assert base64.urlsafe_b64decode(b64 + "==") == hashlib.sha256(data).digest()
        assert '__version__ = "1.0.post1"' in zf.read("foo_bar_baz/__init__.py").decode()


def test_wheel_compressed_tag_set_build_tag_and_custom_files(tmp_path: Path) -> None:
    path = build_wheel(
        tmp_path,
        "native",
        "2.0",
        tag="cp311.cp312-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64",
        build_tag="1local",
        files={"native/__init__.py": b"", "native/_ext.abi3.so": b"\x7fELF"},
    )
    name, version, build, tags = parse_wheel_filename(path.name)
    assert build == (1, "local")
    assert len(tags) == 4
    with zipfile.ZipFile(path) as zf:
        wheel = BytesParser().parsebytes(zf.read("native-2.0.dist-info/WHEEL"))
        assert wheel["Root-Is-Purelib"] == "false"
        assert wheel["Build"] == "1local"
        assert sorted(wheel.get_all("Tag")) == sorted(str(t) for t in tags)
        assert "native/_ext.abi3.so" in zf.namelist()


def test_wheel_is_deterministic_and_installable(tmp_path: Path) -> None:
    a = build_wheel(tmp_path / "a", "pkg", "1.0", requires_dist=["dep"], console_scripts={"pkg": "pkg:main"})
    b = build_wheel(tmp_path / "b", "pkg", "1.0", requires_dist=["dep"], console_scripts={"pkg": "pkg:main"})
    assert a.read_bytes() == b.read_bytes()
    assert build_wheel(tmp_path / "c", "pkg", "1.1").read_bytes() != a.read_bytes()

    installer = pytest.importorskip("installer")
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    scheme = {k: str(tmp_path / "venv" / k) for k in ("purelib", "platlib", "headers", "scripts", "data")}
    destination = SchemeDictionaryDestination(scheme, interpreter="/usr/bin/python3", script_kind="posix")
    with WheelFile.open(a) as source:  # validates RECORD against the content
        installer.install(source, destination, {})
    assert (tmp_path / "venv/purelib/pkg/__init__.py").exists()
    assert (tmp_path / "venv/scripts/pkg").exists()


@given(
    name=st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,5}([-_.][A-Za-z0-9]{1,4}){0,2}", fullmatch=True),
    version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}((a|b|rc|\.post|\.dev)[0-9])?", fullmatch=True),
)
def test_wheel_and_sdist_filenames_round_trip(
    tmp_path_factory: pytest.TempPathFactory, name: str, version: str
):
    out = tmp_path_factory.mktemp("rt")
    wheel = build_wheel(out, name, version)
    assert parse_wheel_filename(wheel.name)[:2] == (canonicalize_name(name), Version(version))
    sdist = build_sdist(out, name, version)
    assert parse_sdist_filename(sdist.name) == (canonicalize_name(name), Version(version))


# ----------------------------------------------------------------------------------------- sdists


def test_sdist_pkg_info_dynamic_and_pyproject(tmp_path: Path) -> None:
    path = build_sdist(
        tmp_path,
        "Dyn.Pkg",
        "3.0",
        requires_dist=["packaging>=20", 'rich; (os_name == "nt") and extra == "pretty"'],
        provides_extra=["pretty"],
        requires_python=">=3.9",
        dynamic=["Requires-Dist"],
    )
    assert path.name == "dyn_pkg-3.0.tar.gz"
    assert parse_sdist_filename(path.name) == ("dyn-pkg", Version("3.0"))
    with tarfile.open(path) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert all(
            m.name.startswith("dyn_pkg-3.0") and m.uid == 0 and m.mtime == members[0].mtime for m in members
        )
        pkg_info = tf.extractfile("dyn_pkg-3.0/PKG-INFO").read()  # type: ignore[union-attr]
        pyproject = tomllib.loads(tf.extractfile("dyn_pkg-3.0/pyproject.toml").read().decode())  # type: ignore[union-attr]
        requirements = tf.extractfile("dyn_pkg-3.0/requirements.txt").read().decode()  # type: ignore[union-attr]
        extra_reqs = tf.extractfile("dyn_pkg-3.0/requirements-pretty.txt").read().decode()  # type: ignore[union-attr]
    meta = Metadata.from_email(pkg_info, validate=True)
    assert meta.metadata_version == "2.2"
    assert meta.dynamic == ["requires-dist"]
    assert not meta.requires_dist
    core = CoreMetadata.from_bytes(pkg_info, path.name)
    assert not core.dependencies_are_static
    assert pyproject["project"]["dynamic"] == ["dependencies", "optional-dependencies"]
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    assert requirements == "packaging>=20\n"
    assert extra_reqs == 'rich; os_name == "nt"\n'


def test_sdist_static_metadata_zip_and_legacy(tmp_path: Path) -> None:
    path = build_sdist(
        tmp_path, "static", "1.0", requires_dist=["a", 'b; extra == "x"'], provides_extra=["x"], fmt="zip"
    )
    assert path.name == "static-1.0.zip"
    pkg_info = read_core_metadata(path)
    assert pkg_info is not None
    core = CoreMetadata.from_bytes(pkg_info, path.name)
    assert core.dependencies_are_static
    assert [str(r) for r in core.requires_dist] == ["a", 'b; extra == "x"']
    with zipfile.ZipFile(path) as zf:
        pyproject = tomllib.loads(zf.read("static-1.0/pyproject.toml").decode())
    assert pyproject["project"]["dependencies"] == ["a"]
    assert pyproject["project"]["optional-dependencies"] == {"x": ["b"]}

    legacy = build_sdist(tmp_path / "legacy", "static", "1.0", include_pkg_info=False)
    assert read_core_metadata(legacy) is None
    again = build_sdist(tmp_path / "again", "static", "1.0", include_pkg_info=False)
    assert legacy.read_bytes() == again.read_bytes()


def test_metadata_text_renders_fields_in_order() -> None:
    text = metadata_text("x", "1", requires_python="<4,>=3.8", extra_lines=["Classifier: Private :: X"])
    assert text.startswith("Metadata-Version: 2.1\nName: x\nVersion: 1\n")
    assert "Requires-Python: <4,>=3.8\n" in text and text.endswith("Classifier: Private :: X\n\n")


# ---------------------------------------------------------------------------------------- Dist


def test_extra_markers_are_combined() -> None:
    assert with_extra_marker("a>=1", "x") == 'a>=1; extra == "x"'
    combined = with_extra_marker("b; python_version < '3.10' or os_name == 'nt'", "x")
    req = Requirement(combined)
    assert req.marker is not None
    env = {"python_version": "3.9", "os_name": "posix"}
    assert req.marker.evaluate({**env, "extra": "x"})
    assert not req.marker.evaluate({**env, "extra": "y"})
    assert not req.marker.evaluate({"python_version": "3.12", "os_name": "posix", "extra": "x"})
    assert Requirement(with_extra_marker("c @ https://e.invalid/c.whl", "x")).url == "https://e.invalid/c.whl"


def test_dist_metadata_sidecar_and_listing(index_builder: IndexBuilder) -> None:
    index_builder.add(
        "Pkg", "1.0", deps=["a"], extras={"fast": ["b; os_name == 'nt'"]}, requires_python=">=3.8,<4"
    )
    entry = index_builder.published("pkg")[0]
    sidecar = (index_builder.files_dir / f"{entry.filename}.metadata").read_bytes()
    assert sidecar == read_core_metadata(entry.path) == entry.metadata
    assert entry.sha256 == sha256(entry.path.read_bytes())
    core = CoreMetadata.from_bytes(sidecar, entry.filename)
    assert core.provides_extra == {"fast"}
    assert [str(r) for r in core.requires_dist] == ["a", 'b; os_name == "nt" and extra == "fast"']
    with pytest.raises(ValueError, match="already published"):
        index_builder.add("pkg", "1.0")


# ------------------------------------------------------------------------------- static layouts


def _populate(builder: IndexBuilder) -> None:
    builder.add_many(
        [
            Dist("Foo_Bar", "1.0", requires_python=">=3.8"),
            Dist("foo-bar", "1.0", kind="sdist", requires_python=">=3.8"),
            Dist("foo-bar", "0.9", yanked="broken <build>"),
            {"name": "other", "version": "2.0", "upload_time": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
        ]
    )


def test_find_links_dir_is_flat(index_builder: IndexBuilder) -> None:
    _populate(index_builder)
    directory = index_builder.find_links_dir()
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        e.filename for e in index_builder.published()
    )
    assert index_builder.find_links_url().startswith("file:///")
    for entry in index_builder.published():
        assert DistFile.from_listing(entry.filename, (directory / entry.filename).as_uri(), "fl") is not None


def test_file_simple_tree_is_a_valid_layout(index_builder: IndexBuilder) -> None:
    _populate(index_builder)
    url = index_builder.simple_url()
    assert url.startswith("file:///") and url.endswith("/simple/")
    root = Path(unquote(urlsplit(url).path))
    root_links = anchors((root / "index.html").read_text())
    assert set(root_links) == {"foo-bar", "other"}
    for project, attrs in root_links.items():
        page_url = urljoin(url, attrs["href"])
        page_path = Path(unquote(urlsplit(page_url).path)) / "index.html"
        page = page_path.read_text()
        links = anchors(page)
        assert set(links) == {e.filename for e in index_builder.published(project)}
        for filename, file_attrs in links.items():
            href = file_attrs["href"]
            assert href is not None and not href.startswith(("/", "file:"))
            target, _, fragment = urljoin(page_url, href).partition("#")
            data = Path(unquote(urlsplit(target).path)).read_bytes()
            assert fragment == f"sha256={sha256(data)}"
            assert DistFile.from_listing(filename, target, url) is not None
            if file_attrs.get("data-core-metadata"):
                assert file_attrs["data-core-metadata"] == file_attrs["data-dist-info-metadata"]
                sidecar = Path(unquote(urlsplit(target).path) + ".metadata").read_bytes()
                assert file_attrs["data-core-metadata"] == f"sha256={sha256(sidecar)}"
    page = (root / "foo-bar" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8"' in page
    assert 'data-yanked="broken &lt;build&gt;"' in page
    yanked = anchors(page)["foo_bar-0.9-py3-none-any.whl"]
    assert yanked["data-yanked"] == "broken <build>"
    assert "data-requires-python" not in yanked
    sdist = anchors(page)["foo_bar-1.0.tar.gz"]
    assert "data-core-metadata" not in sdist


# ------------------------------------------------------------------------------------------ server


@pytest.fixture
def populated(index_builder: IndexBuilder) -> IndexBuilder:
    _populate(index_builder)
    return index_builder


def test_server_json_and_html_by_accept(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    server = index_server(populated)
    with nullcontext(http) as client:
        html_resp = client.get(server.project_url("foo-bar"))
        assert html_resp.status_code == 200
        assert html_resp.headers["content-type"].startswith("text/html")
        assert html_resp.headers["cache-control"] == "max-age=600"
        assert 'data-requires-python="&gt;=3.8"' in html_resp.text

        resp = client.get(server.project_url("foo-bar"), headers=JSON_ACCEPT)
        assert resp.headers["content-type"] == JSON_CONTENT_TYPE
        doc = resp.json()
        assert doc["meta"]["api-version"] == "1.1"
        assert doc["name"] == "foo-bar"
        assert doc["versions"] == ["0.9", "1.0"]
        files = {f["filename"]: f for f in doc["files"]}
        wheel = files["foo_bar-1.0-py3-none-any.whl"]
        assert wheel["url"] == "../../files/foo_bar-1.0-py3-none-any.whl"
        assert wheel["requires-python"] == ">=3.8"
        assert wheel["yanked"] is False
        assert wheel["core-metadata"] == wheel["dist-info-metadata"]
        assert set(wheel["core-metadata"]) == {"sha256"}
        assert files["foo_bar-1.0.tar.gz"]["core-metadata"] is False
        assert files["foo_bar-0.9-py3-none-any.whl"]["yanked"] == "broken <build>"
        file_url = urljoin(resp.url.__str__(), wheel["url"])
        body = client.get(file_url).content
        assert sha256(body) == wheel["hashes"]["sha256"] and len(body) == wheel["size"]
        meta = client.get(file_url + ".metadata").content
        assert sha256(meta) == wheel["core-metadata"]["sha256"]

        other = client.get(server.project_url("other"), headers=JSON_ACCEPT).json()
        assert other["files"][0]["upload-time"] == "2024-01-02T03:04:05.000000Z"
        assert "upload-time" not in files["foo_bar-1.0.tar.gz"]

        root = client.get(server.url, headers=JSON_ACCEPT).json()
        assert root["projects"] == [{"name": "foo-bar"}, {"name": "other"}]
        assert set(anchors(client.get(server.url).text)) == {"foo-bar", "other"}

        vnd = client.get(server.url, headers={"Accept": HTML_CONTENT_TYPE})
        assert vnd.headers["content-type"] == HTML_CONTENT_TYPE
        assert client.get(server.project_url("nope")).status_code == 404


def test_negotiation_q_values_and_formats() -> None:
    both = frozenset({"json", "html"})
    assert negotiate(None, both) == "text-html"
    assert negotiate("*/*", both) == "text-html"
    assert negotiate("*/*", frozenset({"json"})) == "json"
    accept = f"{JSON_CONTENT_TYPE}, {HTML_CONTENT_TYPE};q=0.2, text/html;q=0.01"
    assert negotiate(accept, both) == "json"
    assert negotiate(accept, frozenset({"html"})) == "vnd-html"
    assert negotiate(f"text/html, {JSON_CONTENT_TYPE};q=0.5", both) == "text-html"
    assert negotiate(f"{JSON_CONTENT_TYPE};q=0", both) == "text-html"
    assert negotiate("application/xml", both) == "text-html"


def test_server_format_restriction(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    html_only = index_server(populated, formats={"html"})
    json_only = index_server(populated, formats={"json"})
    assert http.get(html_only.url, headers=JSON_ACCEPT).headers["content-type"].startswith("text/html")
    assert (
        http.get(json_only.url, headers={"Accept": "text/html"}).headers["content-type"] == JSON_CONTENT_TYPE
    )


def test_server_redirects(populated: IndexBuilder, index_server) -> None:
    server = index_server(populated)
    with httpx.Client(base_url=server.base_url) as client:
        for path in ("/simple/Foo_Bar/", "/simple/FOO.bar", "/simple/foo-bar"):
            resp = client.get(path)
            assert resp.status_code == 301, path
            assert resp.headers["location"] == "/simple/foo-bar/"
        assert client.get("/simple").headers["location"] == "/simple/"
        assert client.get("/simple/Foo_Bar/", follow_redirects=True).status_code == 200
        assert client.get("/simple/Unknown/", follow_redirects=True).status_code == 404
        assert client.get("/files/nope.whl").status_code == 404
        assert client.get("/files/foo_bar-1.0.tar.gz.metadata").status_code == 404


def test_server_ranges_and_head(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    server = index_server(populated)
    filename = "foo_bar-1.0-py3-none-any.whl"
    data = populated.file_path(filename).read_bytes()
    size = len(data)
    url = server.file_url(filename)
    with nullcontext(http) as client:
        head = client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(size)
        assert head.headers["accept-ranges"] == "bytes"

        part = client.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206
        assert part.content == data[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{size}"

        tail = client.get(url, headers={"Range": "bytes=-22"})
        assert tail.status_code == 206 and tail.content == data[-22:]
        assert tail.headers["content-range"] == f"bytes {size - 22}-{size - 1}/{size}"
        # the zip end-of-central-directory record is in the tail: a lazy reader's first fetch
        assert tail.content.startswith(b"PK\x05\x06")

        assert client.get(url, headers={"Range": f"bytes=-{size * 2}"}).content == data
        assert client.get(url, headers={"Range": f"bytes={size - 5}-"}).content == data[-5:]
        assert client.get(url, headers={"Range": f"bytes={size - 5}-{size * 3}"}).content == data[-5:]
        bad = client.get(url, headers={"Range": f"bytes={size}-"})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
        assert client.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 200

    no_ranges = index_server(populated, ranges=False)
    resp = http.get(no_ranges.file_url(filename), headers={"Range": "bytes=0-9"})
    assert resp.status_code == 200 and resp.content == data
    assert "accept-ranges" not in http.head(no_ranges.file_url(filename)).headers


def test_parse_range_edge_cases() -> None:
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=-0", 10) == "unsatisfiable"
    assert parse_range("bytes=5-2", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=x-1", 10) is None
    assert parse_range("bytes=-3", 0) == "unsatisfiable"


def test_server_etag_304(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    server = index_server(populated)
    url = server.project_url("foo-bar")
    with nullcontext(http) as client:
        first = client.get(url)
        etag = first.headers["etag"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        json_first = client.get(url, headers={**JSON_ACCEPT, "If-None-Match": etag})
        assert json_first.status_code == 200, "the JSON variant has its own ETag"
        populated.add("foo-bar", "2.0")  # a new upload changes the page
        changed = client.get(url, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and "foo_bar-2.0-py3-none-any.whl" in changed.text
        assert changed.headers["etag"] != etag
        file_url = server.file_url("foo_bar-2.0-py3-none-any.whl")
        file_etag = client.get(file_url).headers["etag"]
        assert client.get(file_url, headers={"If-None-Match": file_etag}).status_code == 304


def test_server_basic_and_bearer_auth(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    basic = index_server(populated, auth=("user", "p@ss"))
    denied = http.get(basic.url)
    assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic ")
    assert http.get(basic.url, auth=("user", "wrong")).status_code == 401
    assert http.get(basic.url, auth=("user", "p@ss")).status_code == 200
    assert basic.auth_url.startswith("http://user:p%40ss@127.0.0.1:")
    file_url = basic.file_url("foo_bar-1.0.tar.gz")
    assert http.get(file_url).status_code == 401
    assert http.get(file_url, auth=("user", "p@ss")).status_code == 200

    bearer = index_server(populated, token="s3cret")
    denied = http.get(bearer.url)
    assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer ")
    assert http.get(bearer.url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert http.get(bearer.url, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_server_fail_mode(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    server = index_server(populated, fail_status=503, fail_times=2)
    statuses = [http.get(server.url).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert server.failures == 2

    forever = index_server(populated, fail_status=500)
    assert {http.get(forever.url).status_code for _ in range(3)} == {500}
    forever.fail_status = None  # options can be flipped while running
    assert http.get(forever.url).status_code == 200

    files_only = index_server(populated, fail_status=503, fail_times=1, fail_match="/files/")
    assert http.get(files_only.url).status_code == 200
    assert http.get(files_only.file_url("foo_bar-1.0.tar.gz")).status_code == 503
    assert http.get(files_only.file_url("foo_bar-1.0.tar.gz")).status_code == 200


def test_server_delay(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    server = index_server(populated, delay=0.2)
    start = time.monotonic()
    assert http.get(server.url).status_code == 200
    assert time.monotonic() - start >= 0.2
    with pytest.raises(httpx.TimeoutException):
        http.get(server.url, timeout=0.05)


def test_server_request_log_and_live_updates(
    index_builder: IndexBuilder, index_server, http: httpx.Client
) -> None:
    server = index_server(index_builder)
    assert http.get(server.project_url("late")).status_code == 404
    index_builder.add("late", "1.0", deps=["x"])
    server.reset_log()
    with nullcontext(http) as client:
        doc = client.get(server.project_url("late"), headers=JSON_ACCEPT).json()
        (entry,) = doc["files"]
        meta_url = urljoin(server.project_url("late"), entry["url"]) + ".metadata"
        core = CoreMetadata.from_bytes(client.get(meta_url).content, entry["filename"])
        assert [str(r) for r in core.requires_dist] == ["x"]
        client.get(urljoin(server.project_url("late"), entry["url"]), headers={"Range": "bytes=-100"})
    assert server.paths() == [
        "/simple/late/",
        "/files/late-1.0-py3-none-any.whl.metadata",
        "/files/late-1.0-py3-none-any.whl",
    ]
    assert server.requests[0].headers["accept"] == JSON_CONTENT_TYPE
    assert server.requests[2].headers["range"] == "bytes=-100"
    assert server.metadata_fetches() == ["late-1.0-py3-none-any.whl"]
    assert server.downloads() == [], "only a range was read, never the whole wheel"

    index_builder.yank("late-1.0-py3-none-any.whl", "")
    assert http.get(server.project_url("late"), headers=JSON_ACCEPT).json()["files"][0]["yanked"] is True
    assert 'data-yanked=""' in http.get(server.project_url("late")).text


def test_server_find_links_page_and_tamper(populated: IndexBuilder, index_server, http: httpx.Client) -> None:
    server = index_server(populated)
    page = http.get(server.find_links_url)
    links = anchors(page.text)
    assert set(links) == {e.filename for e in populated.published()}
    entry = populated.published("other")[0]
    populated.tamper(entry.filename, b"not the published bytes")
    href = links[entry.filename]["href"]
    assert href is not None
    url, _, fragment = urljoin(server.find_links_url, href).partition("#")
    assert fragment == f"sha256={entry.sha256}"
    assert sha256(http.get(url).content) != entry.sha256


def test_server_stops_with_open_keepalive_connection(populated: IndexBuilder) -> None:
    server = IndexServer(populated).start()
    client = httpx.Client()
    assert client.get(server.url).status_code == 200
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 2
    with pytest.raises(httpx.TransportError):
        client.get(server.url)
    client.close()


def test_upload_time_is_utc_z(index_builder: IndexBuilder) -> None:
    tz = timezone(timedelta(hours=2))
    index_builder.add("t", "1", upload_time=datetime(2024, 5, 6, 12, 0, 0, 250000, tzinfo=tz))
    index_builder.add("t", "2", upload_time=datetime(2024, 5, 6, 12, 0, 0))
    files = index_builder.project_json("t")["files"]
    assert [f["upload-time"] for f in files] == ["2024-05-06T10:00:00.250000Z", "2024-05-06T12:00:00.000000Z"]
    assert json.loads(json.dumps(files))  # serialisable


def test_sdist_sidecar_override_and_unhashed_listing(index_builder: IndexBuilder) -> None:
    index_builder.add("s", "1.0", kind="sdist", deps=["a"], serve_metadata=True)
    index_builder.add(
        "s", "1.0", deps=["a"], metadata_override=b"Metadata-Version: 2.1\nName: s\nVersion: 9\n\n"
    )
    index_builder.add("s", "0.1", list_hash=False, serve_metadata=False)
    sdist, wheel = (index_builder.get(f) for f in ("s-1.0.tar.gz", "s-1.0-py3-none-any.whl"))
    assert sdist is not None and wheel is not None
    assert sdist.metadata == read_core_metadata(sdist.path)
    assert wheel.metadata is not None and b"Version: 9" in wheel.metadata
    assert wheel.metadata != read_core_metadata(wheel.path)
    doc = index_builder.project_json("s")
    files = {f["filename"]: f for f in doc["files"]}
    assert files["s-0.1-py3-none-any.whl"]["hashes"] == {}
    assert files["s-0.1-py3-none-any.whl"]["core-metadata"] is False
    assert files["s-1.0.tar.gz"]["core-metadata"] == {"sha256": sdist.metadata_sha256}
    links = anchors(index_builder.project_html("s"))
    assert links["s-0.1-py3-none-any.whl"]["href"] == "../../files/s-0.1-py3-none-any.whl"
    assert "data-core-metadata" not in links["s-0.1-py3-none-any.whl"]
    with pytest.raises(ValueError, match="Dynamic"):
        index_builder.add("w", "1", dynamic=["Requires-Dist"])
    with pytest.raises(ValueError, match="kind"):
        Dist("w", "1", kind="egg")  # type: ignore[arg-type]



def _listen_backlog(port: int) -> int:
    """The backlog of the socket listening on 127.0.0.1:``port`` (``ss``'s Send-Q of a LISTEN socket)."""
    import shutil
    import subprocess

    if shutil.which("ss") is None:
        pytest.skip("needs ss (iproute2)")
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


def test_fixture_http_servers_listen_with_a_backlog_for_concurrent_clients(index_builder) -> None:
    """socketserver's default backlog (5) drops connections of concurrent clients (each then waits a SYN retry)."""
    from tests.fixtures.hostile import Hostile

    hostile = Hostile(lambda handler: None)
    try:
        with IndexServer(index_builder) as server:
            assert _listen_backlog(server.port) >= 128
        assert _listen_backlog(hostile.server.server_address[1]) >= 128
    finally:
        hostile.close()
