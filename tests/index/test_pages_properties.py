"""Property tests: the page parsers never crash on junk, and generated pages round-trip in both formats."""

from __future__ import annotations

import html
import json
import string
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from packaging.version import Version

from venvsmith.core.index.pages import PageError, parse_html_page, parse_json_page, parse_links_page

PAGE = "https://index.example/simple/proj/"
INDEX = "https://index.example/simple/"

# ------------------------------------------------------------------------------------------- junk in

attribute_names = st.sampled_from(
    [
        "href",
        "data-yanked",
        "data-requires-python",
        "data-core-metadata",
        "data-dist-info-metadata",
        "rel",
        "x",
    ]
)
attribute_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["true", "false", "sha256=", "sha256=zz", "#sha256=", "../", "//", "?a=b#c", "%zz"]),
)
filenames = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[A-Za-z0-9._+-]{1,20}(\.whl|\.tar\.gz|\.zip)", fullmatch=True),
)


@st.composite
def anchors(draw) -> str:
    attrs = draw(st.lists(st.tuples(attribute_names, attribute_values), max_size=5))
    href = draw(st.one_of(filenames, st.text(max_size=30)))
    parts = [f'href="{html.escape(href)}"'] if draw(st.booleans()) else []
    for key, value in attrs:
        parts.append(key if value is None else f'{key}="{html.escape(value)}"')
    return f"<a {' '.join(parts)}>{html.escape(draw(st.text(max_size=10)))}</a>"


@given(st.lists(st.one_of(anchors(), st.text(max_size=30)), max_size=8))
def test_html_parser_never_crashes(pieces):
    text = "".join(pieces)
    for file in parse_html_page(text, PAGE, INDEX, canonicalize_name("proj")):
        assert file.name == "proj"
    parse_links_page(text.encode("utf-8", "surrogatepass"), "text/html", PAGE, INDEX)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
file_entries = st.fixed_dictionaries(
    {},
    optional={
        "filename": st.one_of(filenames, json_values),
        "url": st.one_of(filenames, json_values),
        "hashes": json_values,
        "requires-python": json_values,
        "yanked": json_values,
        "core-metadata": json_values,
        "dist-info-metadata": json_values,
        "size": json_values,
        "upload-time": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), json_values),
    },
)


@given(
    st.one_of(json_values, st.fixed_dictionaries({"files": st.lists(st.one_of(file_entries, json_values))}))
)
def test_json_parser_only_raises_page_error(document):
    try:
        files = parse_json_page(json.dumps(document), PAGE, INDEX, canonicalize_name("proj"))
    except PageError:
        return
    assert all(f.name == "proj" for f in files)


@given(st.binary(max_size=200))
def test_json_parser_on_random_bytes(body):
    try:
        parse_json_page(body, PAGE, INDEX, None)
    except PageError:
        pass


# ---------------------------------------------------------------------------------------- round trip

names = st.from_regex(r"[A-Za-z]([A-Za-z0-9]|[._-](?=[A-Za-z0-9])){0,12}", fullmatch=True)
versions = st.builds(
    lambda epoch, release, pre, post, dev, local: Version(
        (f"{epoch}!" if epoch else "")
        + ".".join(map(str, release))
        + (f"{pre[0]}{pre[1]}" if pre else "")
        + (f".post{post}" if post is not None else "")
        + (f".dev{dev}" if dev is not None else "")
        + (f"+{local}" if local else "")
    ),
    st.integers(0, 2),
    st.lists(st.integers(0, 30), min_size=1, max_size=4),
    st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(0, 5)),
    st.none() | st.integers(0, 5),
    st.none() | st.integers(0, 5),
    st.none() | st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
)
printable = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=30)
digests = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)


@st.composite
def listings(draw):
    name = draw(names)
    escaped = canonicalize_name(name).replace("-", "_")
    files = {}
    for _ in range(draw(st.integers(1, 5))):
        version = draw(versions)
        kind = draw(st.sampled_from(["wheel", "tar.gz", "zip"]))
        filename = (
            f"{escaped}-{version}-py3-none-any.whl" if kind == "wheel" else f"{escaped}-{version}.{kind}"
        )
        files[filename] = {
            "sha256": draw(digests),
            "requires_python": draw(st.none() | printable.map(str.strip).filter(bool)),
            "yanked": draw(st.none() | printable),
            "core": draw(st.sampled_from([None, True]) | digests),
            "base": draw(st.sampled_from(["../../files/", "/files/", "https://cdn.example/x/", ""])),
        }
    return name, files


def render_html(files) -> str:
    anchors = []
    for filename, info in files.items():
        href = f"{info['base']}{quote(filename)}#sha256={info['sha256']}"
        attrs = [f'href="{html.escape(href)}"']
        if info["requires_python"] is not None:
            attrs.append(f'data-requires-python="{html.escape(info["requires_python"])}"')
        if info["yanked"] is not None:
            attrs.append(f'data-yanked="{html.escape(info["yanked"])}"')
        if info["core"] is True:
            attrs.append('data-dist-info-metadata="true"')
        elif info["core"]:
            attrs.append(f'data-core-metadata="sha256={info["core"]}"')
        anchors.append(f"<a {' '.join(attrs)}>{html.escape(filename)}</a><br/>")
    return "<!DOCTYPE html><html><body>" + "\n".join(anchors) + "</body></html>"


def render_json(files) -> str:
    entries = []
    for filename, info in files.items():
        core = {"sha256": info["core"]} if isinstance(info["core"], str) else bool(info["core"])
        entries.append(
            {
                "filename": filename,
                "url": f"{info['base']}{quote(filename)}",
                "hashes": {"sha256": info["sha256"]},
                "requires-python": info["requires_python"],
                "yanked": True if info["yanked"] == "" else (info["yanked"] or False),
                "core-metadata": core,
            }
        )
    return json.dumps({"meta": {"api-version": "1.1"}, "files": entries})


@given(listings())
def test_generated_pages_round_trip_in_both_formats(listing):
    name, files = listing
    project = canonicalize_name(name)
    for parsed in (
        parse_html_page(render_html(files), PAGE, INDEX, project),
        parse_json_page(render_json(files), PAGE, INDEX, project),
    ):
        assert [f.filename for f in parsed] == list(files)
        for file in parsed:
            info = files[file.filename]
            assert file.name == project
            assert file.hashes == {"sha256": info["sha256"]}
            assert file.url.endswith("/" + quote(file.filename))
            assert "#" not in file.url
            assert file.requires_python == info["requires_python"]
            assert file.yanked == info["yanked"]
            assert file.core_metadata is bool(info["core"])
            expected_core = {"sha256": info["core"]} if isinstance(info["core"], str) else {}
            assert dict(file.core_metadata_hashes) == expected_core
