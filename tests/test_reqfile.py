"""Requirements files and pyproject.toml read on the client, checked against pip's own parser where it applies."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from venvsmith.core.reqfile import FormatControl, ParsedRequirements, RequirementsFileError, read_requirements


@pytest.fixture(scope="module")
def pip_session():
    from pip._internal.network.session import PipSession

    session = PipSession()
    yield session
    session.close()


def pip_parse(path: Path, session) -> tuple[list[str], list[str]]:
    """(requirements, constraints) as pip reads the file (local files only: nothing is fetched)."""
    from pip._internal.req.req_file import parse_requirements

    reqs: list[str] = []
    cons: list[str] = []
    for parsed in parse_requirements(str(path), session=session):
        (cons if parsed.constraint else reqs).append(parsed.requirement.strip())
    return reqs, cons


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_comments_blank_lines_and_continuations(tmp_path: Path, pip_session):
    path = write(tmp_path / "r.txt", """\
        # a comment line
        requests>=2.0   # trailing comment

        flask\\
        [async]>=2 ; python_version >= "3.8"
        # a comment ending in a backslash does not continue \\
        click
        numpy>=1.20,\\
          <2  \\
        # a comment line ends the continuation
        last==1 \\
    """)
    parsed = read_requirements(path)
    assert parsed.requirements == [
        "requests>=2.0", 'flask[async]>=2 ; python_version >= "3.8"', "click", "numpy>=1.20,  <2", "last==1",
    ]
    assert parsed.requirements == pip_parse(path, pip_session)[0]


def test_a_trailing_comment_swallows_the_continued_line_as_in_pip(tmp_path: Path, pip_session):
    path = write(tmp_path / "r.txt", "alpha # note \\\nbeta\ngamma\n")
    assert read_requirements(path).requirements == ["alpha", "gamma"] == pip_parse(path, pip_session)[0]


def test_hashes_are_stripped_on_the_same_and_on_continued_lines(tmp_path: Path, pip_session):
    path = write(tmp_path / "r.txt", """\
        one==1.0 --hash=sha256:aaaa --hash sha256:bbbb
        two==2.0 \\
            --hash=sha256:cccc \\
            --hash=sha256:dddd
            # via something
        three[x]==3.0; sys_platform == "linux" \\
            --hash=sha256:eeee
    """)
    parsed = read_requirements(path)
    assert parsed.requirements == ["one==1.0", "two==2.0", 'three[x]==3.0; sys_platform == "linux"']
    assert parsed.requirements == pip_parse(path, pip_session)[0]


def test_nested_requirements_and_constraints_with_relative_paths(tmp_path: Path, pip_session):
    write(tmp_path / "sub" / "base.txt", "-r ../common.txt\nbase-pkg\n--constraint deeper/pins.txt\n")
    write(tmp_path / "sub" / "deeper" / "pins.txt", "base-pkg<5\n-r more.txt\n")  # -r in a -c file: requirements
    write(tmp_path / "sub" / "deeper" / "more.txt", "from-constraint-file\n")
    write(tmp_path / "common.txt", "common>=1\n")
    top = write(tmp_path / "requirements.txt", "-r sub/base.txt\n-csub/deeper/pins.txt\ntop\n")
    parsed = read_requirements(top)
    assert parsed.requirements == ["common>=1", "base-pkg", "from-constraint-file", "from-constraint-file", "top"]
    assert parsed.constraints == ["base-pkg<5", "base-pkg<5"]
    assert (parsed.requirements, parsed.constraints) == pip_parse(top, pip_session)
    # A file read as constraints (-c on the command line) gives constraints; its -r includes stay requirements.
    as_constraints = read_requirements(tmp_path / "sub" / "deeper" / "pins.txt", constraint=True)
    assert as_constraints.constraints == ["base-pkg<5"] and as_constraints.requirements == ["from-constraint-file"]


def test_diamond_includes_are_not_a_loop(tmp_path: Path):
    write(tmp_path / "shared.txt", "shared\n")
    write(tmp_path / "a.txt", "-r shared.txt\n")
    write(tmp_path / "b.txt", "-r shared.txt\n")
    top = write(tmp_path / "top.txt", "-r a.txt\n-r b.txt\n")
    assert read_requirements(top).requirements == ["shared", "shared"]


def test_index_options(tmp_path: Path):
    (tmp_path / "wheels").mkdir()
    path = write(tmp_path / "r.txt", """\
        --index-url http://first.invalid/simple
        -i http://index.invalid/simple
        --extra-index-url=http://extra1.invalid/simple
        --extra-index-url http://extra2.invalid/simple
        -f wheels
        --find-links=file:///srv/links/
        --find-links http://links.invalid/
        -f not-here
        --no-index
        --pre
        --trusted-host index.invalid --prefer-binary
        --require-hashes
        pkg
    """)
    parsed = read_requirements(path)
    assert parsed.index_url == "http://index.invalid/simple"
    assert parsed.extra_index_urls == ["http://extra1.invalid/simple", "http://extra2.invalid/simple"]
    assert parsed.find_links == [str((tmp_path / "wheels").resolve()), "file:///srv/links/",
                                 "http://links.invalid/", "not-here"]
    assert parsed.no_index and parsed.pre and parsed.requirements == ["pkg"]


def test_binary_options_follow_pip_format_control(tmp_path: Path):
    path = write(tmp_path / "r.txt", """\
        --no-binary Foo_Bar,baz
        --only-binary=:all:
        --no-binary qux
        --only-binary baz
    """)
    parsed = read_requirements(path)
    assert parsed.no_binary == ["qux"]  # :all: cleared both sets; baz moved to only-binary
    assert parsed.only_binary == [":all:", "baz"]
    again = read_requirements(write(tmp_path / "s.txt", "--no-binary a,b\n--no-binary :none:\n--no-binary c\n"))
    assert again.no_binary == ["c"] and again.only_binary == []


def test_format_control_matches_pip():
    from pip._internal.models.format_control import FormatControl as PipFormatControl

    ops = [("no-binary", "a,B"), ("only-binary", "b"), ("only-binary", ":all:"), ("no-binary", "c,:none:,d"),
           ("only-binary", ":none:,e"), ("no-binary", "e")]
    ours = FormatControl()
    theirs = PipFormatControl(set(), set())
    for kind, value in ops:
        ours.add(kind, value)
        if kind == "no-binary":
            PipFormatControl.handle_mutual_excludes(value, theirs.no_binary, theirs.only_binary)
        else:
            PipFormatControl.handle_mutual_excludes(value, theirs.only_binary, theirs.no_binary)
        assert set(ours.no_binary) == theirs.no_binary and set(ours.only_binary) == theirs.only_binary


def test_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pip_session):
    monkeypatch.setenv("INDEX_TOKEN", "s3cret")
    monkeypatch.setenv("PKG_VERSION", "1.2")
    monkeypatch.setenv("EMPTY_VAR", "")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    path = write(tmp_path / "r.txt", """\
        --index-url http://user:${INDEX_TOKEN}@index.invalid/simple
        pkg==${PKG_VERSION}
        other==\\
        ${PKG_VERSION}
        third @ file:///x/${UNSET_VAR}/${EMPTY_VAR}/third-1.0.tar.gz
    """)
    parsed = read_requirements(path)
    assert parsed.index_url == "http://user:s3cret@index.invalid/simple"
    assert parsed.requirements == ["pkg==1.2", "other==1.2", "third @ file:///x/${UNSET_VAR}/${EMPTY_VAR}/third-1.0.tar.gz"]
    assert parsed.requirements == pip_parse(path, pip_session)[0]


def test_self_include_is_an_error_naming_the_line(tmp_path: Path):
    write(tmp_path / "a.txt", "pkg\n-r b.txt\n")
    write(tmp_path / "b.txt", "\n\n-r ./a.txt\n")
    with pytest.raises(RequirementsFileError) as err:
        read_requirements(tmp_path / "a.txt")
    assert err.value.path == str(tmp_path / "b.txt") and err.value.line == 3
    assert "a.txt" in str(err.value) and "itself" in str(err.value)
    write(tmp_path / "self.txt", "-c self.txt\n")
    with pytest.raises(RequirementsFileError, match=r"self\.txt:1: .*includes itself"):
        read_requirements(tmp_path / "self.txt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok\n\n--frobnicate yes\n", "r.txt:3: unsupported option --frobnicate"),
        ("-x\n", "r.txt:1: unsupported option -x"),
        ("pkg --install-option=--prefix\n", "r.txt:1: unsupported option --install-option"),
        ("pkg==1 --config-settings key=value\n", "r.txt:1: unsupported option --config-settings for a requirement"),
        ("a\nb\n-e ./src/project\n", "r.txt:3: editable requirement './src/project'"),
        ("--editable=git+https://example.invalid/x.git\n", "r.txt:1: editable requirement"),
        ("--index-url\n", "r.txt:1: --index-url requires a value"),
        ("--pre=yes\n", "r.txt:1: --pre takes no value"),
        ("--index-url 'unterminated\n", "r.txt:1: No closing quotation"),
        ("one\n-r missing.txt\n", "r.txt:2: cannot read --requirement file missing.txt"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str):
    write(tmp_path / "r.txt", text)
    with pytest.raises(RequirementsFileError) as err:
        read_requirements(tmp_path / "r.txt")
    assert message in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "r.txt"))


def test_missing_top_level_file(tmp_path: Path):
    with pytest.raises(RequirementsFileError) as err:
        read_requirements(tmp_path / "nope.txt")
    assert str(err.value) == f"{tmp_path / 'nope.txt'}: cannot read: No such file or directory"


def test_pyproject_dependencies(tmp_path: Path):
    project = write(tmp_path / "proj" / "pyproject.toml", """\
        [project]
        name = "demo"
        version = "0"
        dependencies = ["requests>=2", "tomli; python_version < '3.11'"]

        [project.optional-dependencies]
        test = ["pytest"]
    """)
    assert read_requirements(project).requirements == ["requests>=2", "tomli; python_version < '3.11'"]
    top = write(tmp_path / "r.txt", "-r proj/pyproject.toml\nextra\n-c proj/pyproject.toml\n")
    parsed = read_requirements(top)
    assert parsed.requirements == ["requests>=2", "tomli; python_version < '3.11'", "extra"]
    assert parsed.constraints == ["requests>=2", "tomli; python_version < '3.11'"]
    empty = write(tmp_path / "empty" / "pyproject.toml", "[project]\nname = 'x'\nversion = '0'\n")
    assert read_requirements(empty).requirements == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[project]\ndependencies = 'requests'\n", "must be a list of strings"),
        ("[project]\ndynamic = ['dependencies']\n", "dynamic"),
        ("[tool.x]\na = 1\n", r"no \[project\] table"),
        ("[project\n", "invalid TOML"),
    ],
)
def test_bad_pyproject(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "pyproject.toml", text)
    with pytest.raises(RequirementsFileError, match=message) as err:
        read_requirements(path)
    assert str(path) in str(err.value)


def test_reading_into_an_existing_result_accumulates(tmp_path: Path):
    out = ParsedRequirements()
    read_requirements(write(tmp_path / "a.txt", "a\n--extra-index-url http://a.invalid/\n"), out)
    read_requirements(write(tmp_path / "b.txt", "b\n--extra-index-url http://b.invalid/\n"), out, constraint=True)
    assert out.requirements == ["a"] and out.constraints == ["b"]
    assert out.extra_index_urls == ["http://a.invalid/", "http://b.invalid/"]


# ------------------------------------------------------------------------------------- round trip

_names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?", fullmatch=True)
_versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}((a|b|rc)[0-9])?", fullmatch=True)
_specifier = st.tuples(st.sampled_from(["==", ">=", "<=", "<", ">", "~=", "!="]), _versions).map(
    lambda t: t[0] + t[1] if t[0] != "~=" or "." in t[1] else ">=" + t[1])
_markers = st.sampled_from([
    'python_version >= "3.8"', "sys_platform == 'win32'", 'platform_machine != "arm64" and os_name == "posix"',
    "extra == 'test'", '(python_version < "3.12" or implementation_name == "pypy")',
])


@st.composite
def requirement_lines(draw) -> str:
    text = draw(_names)
    extras = draw(st.lists(_names, max_size=2, unique=True))
    if extras:
        text += "[" + ",".join(extras) + "]"
    specs = draw(st.lists(_specifier, max_size=3))
    if specs:
        text += draw(st.sampled_from(["", " "])) + ",".join(specs)
    if draw(st.booleans()):
        text += draw(st.sampled_from(["; ", " ; ", ";"])) + draw(_markers)
    Requirement(text)  # the generated line is valid PEP 508
    return text


_comments = st.text(  # a comment ending in a backslash would continue onto the next line
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\\"), max_size=20)
_hashes = st.lists(st.from_regex(r"[0-9a-f]{8}", fullmatch=True), max_size=2)


@st.composite
def requirement_files(draw) -> tuple[str, list[str]]:
    """A requirements file (as text) and the requirement strings it holds."""
    expected: list[str] = []
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["req", "comment", "blank"]))
        if kind == "comment":
            lines.append(draw(st.sampled_from(["#", "  #", "\t# "])) + draw(_comments))
            continue
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
            continue
        req = draw(requirement_lines())
        expected.append(req)
        split = draw(st.integers(0, len(req)))
        body = req
        if 0 < split < len(req) and draw(st.booleans()):  # continue the requirement itself on the next line
            body = req[:split] + "\\\n" + req[split:]
        hashes = draw(_hashes)
        for digest in hashes:
            body += draw(st.sampled_from([" ", " \\\n    "])) + draw(
                st.sampled_from(["--hash=sha256:", "--hash sha256:"])) + digest
        if draw(st.booleans()):
            body += draw(st.sampled_from([" #", "  # ", "\t#"])) + draw(_comments)
        lines.append(body)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"])), expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requirement_files())
def test_round_trip_of_generated_requirement_files(tmp_path: Path, pip_session, case):
    text, expected = case
    path = tmp_path / "generated.txt"
    path.write_text(text, encoding="utf-8")
    parsed = read_requirements(path)
    assert parsed.requirements == expected
    assert parsed.constraints == []
    assert pip_parse(path, pip_session)[0] == expected
