"""The selection/target/provider memos give exactly what the plain computations give.

``select`` is checked against a reference built from the per-file ``_rejection`` / ``_file_rank`` rules it
inlines; ``best_tag_rank``'s per-frozenset memo against ranking tag by tag; ``python_verdict`` against
``SpecifierSet``; and the provider's specifier memo against ``SpecifierSet.contains``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver_service.provider import Provider
from resolver_service.selection import BinaryPolicy, SelectionPolicy, _file_rank, _rejection, python_verdict, select
from venvsmith.core import target as target_module
from venvsmith.core.distfile import DistFile
from venvsmith.core.target import TargetEnvironment

from .memory import MemorySource

LINUX = TargetEnvironment.from_shorthand("3.11", "x86_64-manylinux_2_28")
WINDOWS = TargetEnvironment.from_shorthand("3.8", "windows")
FOO = canonicalize_name("foo")


def reference_select(name, files, target, policy):
    """``select`` as it was before it was inlined: per-file rejection, then the best rank per version."""
    rejected: Counter[str] = Counter()
    best: dict = {}
    versions = set()
    for file in files:
        if file.name != name:
            continue
        versions.add(file.version)
        reason = _rejection(file, target, policy)
        if reason is not None:
            rejected[reason] += 1
            continue
        key = (file.is_yanked, *_file_rank(file, target))
        if file.version not in best or key < best[file.version][0]:
            best[file.version] = (key, file)
    by_version = sorted(((v, f) for v, (_, f) in best.items()), key=lambda vf: vf[0], reverse=True)
    return [(v, f.filename) for v, f in by_version], rejected, frozenset(versions)


TAGS = ["py3-none-any", "py2.py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp38-cp38-win_amd64",
        "cp311-abi3-macosx_11_0_arm64", "cp311-cp311-musllinux_1_1_x86_64", "pp310-pypy310_pp73-win_amd64",
        "cp37-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64"]
REQUIRES = [None, ">=3.8", ">=3.12", "<3.9", "~=3.10", "not a specifier", ">=3.8,<4", "==3.11.*"]
WHEN = [None, datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)]


@st.composite
def listings(draw):
    files = []
    for i in range(draw(st.integers(1, 25))):
        version = draw(st.sampled_from(["1.0", "1.0.0", "2.0", "2.0rc1", "3.1"]))
        sdist = draw(st.booleans())
        build = draw(st.sampled_from(["", "-1", "-2x"]))
        filename = f"foo-{version}.tar.gz" if sdist else f"foo-{version}{build}-{draw(st.sampled_from(TAGS))}.whl"
        if draw(st.integers(0, 9)) == 0:
            filename = filename.replace("foo-", "bar-")
        file = DistFile.from_listing(
            filename,
            f"https://files.example/{i}/{filename}",
            "idx",
            hashes={"sha256": f"{i:064x}"},
            requires_python=draw(st.sampled_from(REQUIRES)),
            yanked=draw(st.sampled_from([None, None, "", "bad"])),
            upload_time=draw(st.sampled_from(WHEN)),
            origin=draw(st.sampled_from(["index", "find-links"])),
        )
        files.append(file)
    return files


POLICIES = [
    SelectionPolicy(),
    SelectionPolicy(exclude_newer=datetime(2024, 1, 1, tzinfo=UTC), allow_yanked_pins=False),
    SelectionPolicy(binary=BinaryPolicy(no_binary=frozenset({":all:"}))),
    SelectionPolicy(binary=BinaryPolicy(no_binary=frozenset({"foo"}), only_binary=frozenset({":all:"}))),
    SelectionPolicy(binary=BinaryPolicy(only_binary=frozenset({"foo"}))),
]


@settings(max_examples=150, deadline=None)
@given(listings(), st.sampled_from(POLICIES), st.sampled_from([LINUX, WINDOWS]))
def test_select_is_the_per_file_reference(files, policy, target):
    selection = select(FOO, files, target, policy)
    assert ([(v, f.filename) for v, f in selection.by_version], selection.rejected, selection.all_versions) == (
        reference_select(FOO, files, target, policy)
    )


def test_best_tag_rank_memo_matches_ranking_tag_by_tag(monkeypatch):
    env = TargetEnvironment.from_shorthand("3.11", "x86_64-manylinux_2_28")
    for text in TAGS:
        tags = parse_tag(text)
        expected = min((env.tag_rank[t] for t in tags if t in env.tag_rank), default=None)
        assert env.best_tag_rank(tags) == expected  # computed
        assert env.best_tag_rank(tags) == expected  # remembered
        assert env.best_tag_rank(list(tags)) == expected  # not a frozenset: not remembered
    assert env.best_tag_rank(frozenset()) is None and env.best_tag_rank([]) is None
    other = TargetEnvironment.from_shorthand("3.8", "windows")  # memos are per target
    assert other.best_tag_rank(parse_tag("cp38-cp38-win_amd64")) == 0
    assert env.best_tag_rank(parse_tag("cp38-cp38-win_amd64")) is None
    monkeypatch.setattr(target_module, "_RANK_MEMO_MAX", 0)
    fresh = TargetEnvironment.from_shorthand("3.11", "x86_64-manylinux_2_28")
    assert fresh.best_tag_rank(frozenset({Tag("py3", "none", "any")})) is not None
    assert fresh._rank_memo == {}  # bounded
    assert fresh == env and hash(fresh) == hash(env)  # the memo is not part of the identity


@pytest.mark.parametrize("requires", [">=3.8", ">=3.12", "<3.9", "~=3.10", "nonsense", ">=3.8,<4", "==3.11.*"])
@pytest.mark.parametrize("python", ["3.11.0", "3.8.10", "3.13.0rc1"])
def test_python_verdict_is_specifier_set(requires, python):
    version = Version(python)
    try:
        ok = SpecifierSet(requires).contains(version, prereleases=True)
    except InvalidSpecifier:
        assert python_verdict(requires, version) == "invalid requires-python in the index listing"
        return
    verdict = python_verdict(requires, version)
    assert (verdict is None) == ok
    if not ok:
        assert verdict == f"requires Python {requires} (target is {version})"
    assert python_verdict(requires, version) == verdict


def test_python_verdict_keeps_spellings_apart_for_arbitrary_equality():
    assert python_verdict("===3.11", Version("3.11"), "3.11") is None
    assert python_verdict("===3.11", Version("3.11.0"), "3.11.0") == "requires Python ===3.11 (target is 3.11.0)"


@pytest.mark.parametrize(
    ("specifier", "versions"),
    [
        ("===1.0", ["1.0", "1.0.0", "1.0"]),
        ("==1.0", ["1.0", "1.0.0", "1.0.post1"]),
        (">=1.0,<2", ["0.9", "1.0", "2.0rc1", "1.5"]),
        ("==1.0.*", ["1", "1.0", "1.0.5", "1.1"]),
    ],
)
def test_provider_specifier_memo_is_contains(specifier, versions):
    provider = Provider(MemorySource(), LINUX, SelectionPolicy())
    spec = SpecifierSet(specifier)
    for text in versions * 2:
        version = Version(text)
        assert provider._contains(spec, version) == spec.contains(version, prereleases=True)
        assert provider._contains(SpecifierSet(specifier), version) == spec.contains(version, prereleases=True)
    assert (provider._contains_memo[spec] is None) == specifier.startswith("===")
