"""Property tests: any answer satisfies every requirement (checked independently with ``packaging``),
and "no solution" is only ever said when brute force finds none either."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver_service import resolve as resolve_module
from resolver_service.errors import NoSolution
from resolver_service.resolve import ResolutionRequest, resolve
from venvsmith.core.target import TargetEnvironment

from .memory import MemorySource

TARGET = TargetEnvironment.from_shorthand("3.11.4", "x86_64-manylinux_2_28")
NAMES = ["alpha", "beta", "gamma", "delta"]
VERSIONS = ["1.0", "1.5", "2.0", "3.0b1"]
MARKERS = ["", 'python_version >= "3.12"', 'sys_platform == "linux"', 'platform_machine == "arm64"']


@st.composite
def requirement(draw, exclude: str | None = None):
    name = draw(st.sampled_from([n for n in NAMES if n != exclude]))
    op = draw(st.sampled_from(["", ">=", "<", "==", "!=", "~="]))
    spec = "" if not op else f"{op}{draw(st.sampled_from(['1.0', '1.5', '2.0']))}"
    marker = draw(st.sampled_from(MARKERS))
    return f"{name}{spec}" + (f"; {marker}" if marker else "")


@st.composite
def universe(draw):
    index: dict[str, dict[str, list[str]]] = {}
    for name in NAMES:
        versions = draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=3, unique=True))
        index[name] = {v: draw(st.lists(requirement(exclude=name), max_size=2)) for v in versions}
    roots = draw(st.lists(requirement(), min_size=1, max_size=3))
    return index, roots


def _active(req: Requirement) -> bool:
    return req.marker is None or Marker(str(req.marker)).evaluate(dict(TARGET.markers))


def _satisfies(choice: dict[str, str], index, roots) -> bool:
    """Independent check: every active requirement of the roots and of each chosen version holds."""
    needed = [Requirement(r) for r in roots]
    for name, version in choice.items():
        needed += [Requirement(r) for r in index[name][version]]
    for req in needed:
        if not _active(req):
            continue
        chosen = choice.get(req.name)
        if chosen is None or not req.specifier.contains(Version(chosen), prereleases=True):
            return False
    return True


def _unjustified(choice: dict[str, str], index, roots) -> set[str] | None:
    """The chosen projects whose version ``packaging`` does not admit for the intersection of all requirements on
    that project (a pre-release is admitted only when a clause names one or no final release satisfies them
    all); ``None`` when the choice is no solution at all (a requirement fails, or a project is not reached)."""
    if not _satisfies(choice, index, roots):
        return None
    on: dict[str, SpecifierSet] = {}
    reached: set[str] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if not _active(req):
            continue
        on[req.name] = on.get(req.name, SpecifierSet()) & req.specifier
        if req.name not in reached:
            reached.add(req.name)
            todo += [Requirement(r) for r in index[req.name][choice[req.name]]]
    if reached != set(choice):
        return None
    return {n for n in choice if choice[n] not in set(on[n].filter(index[n]))}


def _strictly_admissible(choice: dict[str, str], index, roots) -> bool:
    """Brute force's notion of a solution, with the pre-release rule modelled independently: every active
    requirement holds, every chosen project is reached from the roots, and each chosen version is admitted."""
    return _unjustified(choice, index, roots) == set()


def _admissible(choice: dict[str, str], index, roots) -> bool:
    """An acceptable answer: strictly admissible, except that a pre-release the answer's requirements do not
    admit is also acceptable when it is necessary, i.e. no strictly admissible solution has a final release of
    that project (or leaves it out). The search may admit a pre-release that backtracking later made needless;
    the resolver then looks for an answer with a final release instead, and keeps the pre-release only when
    there is none."""
    unjustified = _unjustified(choice, index, roots)
    if unjustified is None:
        return False
    assert all(Version(choice[n]).is_prerelease for n in unjustified)  # a final release is always admitted
    return all(
        not any(
            other.get(n) is None or not Version(other[n]).is_prerelease
            for other in _choices(index)
            if _strictly_admissible(other, index, roots)
        )
        for n in unjustified
    )


def _choices(index):
    """Every assignment of a version (or nothing) to each project."""
    options = [[None, *vs] for vs in (list(index[n]) for n in NAMES)]
    for combo in itertools.product(*options):
        yield {n: v for n, v in zip(NAMES, combo, strict=True) if v is not None}


def _brute_force_has_solution(index, roots) -> bool:
    return any(_strictly_admissible(choice, index, roots) for choice in _choices(index))


#: Projects with only pre-releases: one the roots may take (nothing else satisfies), one whose deps conflict.
ONLY_PRERELEASES = {
    "alpha": {"3.0b1": ["beta>=1.5"]},
    "beta": {"3.0b1": [], "1.0": []},
    "gamma": {"3.0b1": ["delta<1.0"]},
    "delta": {"1.0": []},
}


#: beta 3.0b1 is pinned while gamma 1.5 asks for beta!=1.0; backtracking drops gamma 1.5 and beta 1.0 works.
BACKTRACKED_PRERELEASE = {
    "alpha": {"1.0": []},
    "beta": {"1.0": [], "2.0": [], "3.0b1": ["gamma<1.5"]},
    "gamma": {"1.5": ["beta!=1.0"], "1.0": [], "2.0": []},
    "delta": {"1.0": [], "1.5": ["gamma~=1.0"], "3.0b1": []},
}
#: alpha 1.0 -> beta 1.0 -> alpha!=1.0: no final alpha works, alpha 3.0b1 is necessary.
NECESSARY_PRERELEASE = {
    "alpha": {"1.0": ["beta"], "3.0b1": []},
    "beta": {"1.0": ["alpha!=1.0"]},
    "gamma": {"1.0": []},
    "delta": {"1.0": []},
}


@pytest.mark.parametrize("repin_limit", [resolve_module.REPIN_LIMIT, 0])
@settings(max_examples=150, deadline=None)
@given(case=universe())
@example(case=(ONLY_PRERELEASES, ["alpha"]))
@example(case=(ONLY_PRERELEASES, ["gamma"]))
@example(case=(ONLY_PRERELEASES, ["alpha", "beta<1.5"]))
@example(case=(BACKTRACKED_PRERELEASE, ["delta", "beta!=2.0"]))
@example(case=(NECESSARY_PRERELEASE, ["alpha"]))
def test_answers_satisfy_requirements_and_failures_are_real(repin_limit, case):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resolve_module, "REPIN_LIMIT", repin_limit)
        _check_answer(*case)


def _check_answer(index, roots) -> None:
    source = MemorySource()
    for name, versions in index.items():
        for version, deps in versions.items():
            source.add(name, version, deps)
    request = ResolutionRequest(tuple(Requirement(r) for r in roots), TARGET)
    try:
        result = resolve(request, source)
    except NoSolution:
        assert not _brute_force_has_solution(index, roots)
        return
    choice = {p.name: str(p.version) for p in result.pins}
    assert _admissible(choice, index, roots)
    # Nothing is pinned that no active requirement chain asks for.
    for pin in result.pins:
        assert pin.required_by


FINALS = ["1.0", "2.0", "3.0"]


@st.composite
def tight_requirement(draw, exclude: str | None = None):
    """Mostly exact pins and ranges: the shapes (cycles of ``==``) that need a proof rather than a search."""
    name = draw(st.sampled_from([n for n in NAMES if n != exclude]))
    op = draw(st.sampled_from(["==", "==", "!=", ">=", "<", ""]))
    return name if not op else f"{name}{op}{draw(st.sampled_from(FINALS))}"


@st.composite
def tight_universe(draw):
    index: dict[str, dict[str, list[str]]] = {}
    for name in NAMES:
        versions = draw(st.lists(st.sampled_from(FINALS), min_size=1, max_size=3, unique=True))
        index[name] = {v: draw(st.lists(tight_requirement(exclude=name), max_size=2)) for v in versions}
    roots = draw(st.lists(tight_requirement(), min_size=1, max_size=3))
    return index, roots


@pytest.mark.parametrize("repin_limit", [resolve_module.REPIN_LIMIT, 0])
@settings(max_examples=300, deadline=None)
@given(case=tight_universe())
def test_no_solution_exactly_when_brute_force_finds_none(repin_limit, case):
    """Final releases only, so brute force and the resolver agree on every candidate: a solution must be found
    whenever one exists, and "no solution" (never "gave up") answered whenever none does.

    With a re-pin limit of 0 the exhaustive check runs on every case that gets past the forced pins, so its
    proofs, and the solutions it steers the search to, are checked as well as the usual path.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resolve_module, "REPIN_LIMIT", repin_limit)
        _check_against_brute_force(*case)


def _check_against_brute_force(index, roots) -> None:
    source = MemorySource()
    for name, versions in index.items():
        for version, deps in versions.items():
            source.add(name, version, deps)
    request = ResolutionRequest(tuple(Requirement(r) for r in roots), TARGET)
    if _brute_force_has_solution(index, roots):
        result = resolve(request, source)
        assert _satisfies({p.name: str(p.version) for p in result.pins}, index, roots)
    else:
        with pytest.raises(NoSolution):
            resolve(request, source)
