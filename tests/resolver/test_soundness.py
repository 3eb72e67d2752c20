"""resolvelib's backjumping can skip the one pin that resolves a conflict (resolvelib issue #206): "no solution"
is answered only when true, whether the bounded exhaustive check confirms it or, past its budget, a search that
backtracks chronologically does."""

from __future__ import annotations

import functools
from dataclasses import replace

import pytest
from packaging.requirements import Requirement

from resolver_service import conflicts, search
from resolver_service import resolve as resolve_module
from resolver_service.errors import NoSolution, TooManyBacktracks
from resolver_service.resolve import ResolutionRequest, resolve
from venvsmith.core.target import TargetEnvironment

from .memory import MemorySource

LINUX_311 = TargetEnvironment.from_shorthand("3.11.7", "x86_64-manylinux_2_28")

#: Found by the brute-force property: backjumping drops gamma 2.0's pin together with the one before it.
PROPERTY_CASE = {
    "alpha": {"2.0": ["delta==1.0"], "1.0": []},
    "beta": {"1.0": ["gamma"]},
    "gamma": {"2.0": ["alpha==2.0"], "1.0": []},
    "delta": {"1.0": ["gamma<1.0"], "2.0": [], "3.0": []},
}
#: The issue's reproducer: p2 1 then p1 2 (which pulls p0 2, wanting p2 2); p1 1 is skipped by the backjump.
ISSUE_CASE = {
    "p0": {"2": ["p2==2"]},
    "p1": {"2": ["p0==2"], "1": []},
    "p2": {"2": ["p1==3"], "1": ["p1>=1,<=2"]},
}


def _source(index) -> MemorySource:
    src = MemorySource()
    for name, versions in index.items():
        for version, deps in versions.items():
            src.add(name, version, deps)
    return src


def _pins(index, *reqs) -> dict[str, str]:
    request = ResolutionRequest(tuple(Requirement(r) for r in reqs), LINUX_311)
    return {p.name: str(p.version) for p in resolve(request, _source(index)).pins}


# max_nodes 0: the exhaustive check gives up at once, so the chronological search has to find the solution.
@pytest.mark.parametrize("max_nodes", [conflicts.MAX_NODES, 0])
@pytest.mark.parametrize(
    ("index", "root", "expected"),
    [
        (PROPERTY_CASE, "beta", {"beta": "1.0", "gamma": "1.0"}),
        (ISSUE_CASE, "p2", {"p2": "1", "p1": "1"}),
    ],
    ids=["property-case", "resolvelib-206"],
)
def test_solution_skipped_by_backjumping_is_found(monkeypatch, max_nodes, index, root, expected):
    monkeypatch.setattr(conflicts, "MAX_NODES", max_nodes)
    assert _pins(index, root) == expected


@pytest.mark.parametrize("max_nodes", [conflicts.MAX_NODES, 0])
def test_real_conflict_after_a_skipping_backjump_is_still_explained(monkeypatch, max_nodes):
    """Without p1 1 there is no solution: confirmed (by the check, or by the chronological search), and
    explained by resolvelib's conflict with its chains."""
    monkeypatch.setattr(conflicts, "MAX_NODES", max_nodes)
    index = {**ISSUE_CASE, "p1": {"2": ["p0==2"]}}
    with pytest.raises(NoSolution) as err:
        _pins(index, "p2")
    assert "No version of p" in err.value.message and "you require p2 -> " in err.value.message


@pytest.mark.parametrize("repin_limit", [resolve_module.REPIN_LIMIT, 0])
def test_url_constrained_file_is_a_candidate_of_the_proofs(monkeypatch, repin_limit):
    """The relaxed problem of the proofs takes a URL constraint's file (not in any listing) as the project's
    candidate, as the search does: with it there is a solution, and neither check may say otherwise."""
    monkeypatch.setattr(resolve_module, "REPIN_LIMIT", repin_limit)  # 0: the exhaustive check runs too
    src = MemorySource()
    src.add("app", "1.0", ["lib>=2,<3"])
    src.add("app", "0.5", ["lib==2.0"])
    src.add("lib", "1.0")
    src.add("lib", "3.0")
    pinned = src.add("lib", "2.0", index="memory://elsewhere/", listed=False)
    request = ResolutionRequest((Requirement("app"),), LINUX_311, constraints=(Requirement(f"lib @ {pinned.url}"),))
    res = resolve(request, src)
    assert {p.name: str(p.version) for p in res.pins} == {"app": "1.0", "lib": "2.0"}
    assert next(p for p in res.pins if p.name == "lib").file.url == pinned.url
    # Forced: app==1.0 leaves lib one candidate, the constrained file.
    request = replace(request, requirements=(Requirement("app==1.0"),))
    assert {p.name: str(p.version) for p in resolve(request, src).pins} == {"app": "1.0", "lib": "2.0"}


def test_chronological_search_does_not_answer_a_pin_without_its_requirements(monkeypatch):
    """Found by brute force with every search chronological: p1 2 (needs p0==1) is unpinned by p0 1's p1>=3,
    then satisfied again when p3 2's p0>=2 unpins p0 1; resolvelib had dropped p1 2's requirements, so it
    ended with p1 2 and p0 3. There is no solution."""
    monkeypatch.setattr(conflicts, "MAX_NODES", 0)
    monkeypatch.setattr(resolve_module, "Search", functools.partial(search.Search, chronological=True))
    index = {
        "p0": {"1": ["p3==2", "p1>=3"], "3": []},
        "p1": {"1": ["p5<1"], "2": ["p4!=3", "p0==1", "p4"], "3": ["p4>=3"]},
        "p2": {"1": ["p0==2", "p5"], "2": []},
        "p3": {"1": [], "2": ["p0>=2"], "3": ["p0==2"]},
        "p4": {"2": ["p3==3", "p3>=2", "p3<2"], "1": []},
        "p5": {"3": ["p0!=1"], "1": ["p3<3", "p3>=3"], "2": ["p2<1", "p3", "p3!=1"]},
    }
    with pytest.raises(NoSolution):
        _pins(index, "p1", "p2!=3")


def _two_sided_conflict(n: int) -> MemorySource:
    """a (via x) needs c<2, b needs c>=2: no solution, but backjumping skips pins on the way to the conflict,
    and the exhaustive check is kept from proving it here."""
    src = MemorySource()
    for i in range(n):
        src.add("a", f"{i}", ["x", "u"])
        src.add("x", f"{i}", ["c<2", "w"])
        src.add("b", f"{i}", ["c>=2", "v"])
        for name in ("u", "v", "w"):
            src.add(name, f"{i}")
    src.add("c", "1")
    src.add("c", "3")
    return src


def test_conflict_reached_by_skipping_is_confirmed_or_shown_as_unproven(monkeypatch):
    monkeypatch.setattr(conflicts, "MAX_NODES", 0)
    request = ResolutionRequest((Requirement("a"), Requirement("b")), LINUX_311, max_backtracks=1000)
    # Confirmed by the chronological search, and explained by the conflict with its chains.
    with pytest.raises(NoSolution) as err:
        resolve(request, _two_sided_conflict(5))
    assert "No version of c satisfies all of c<2, c>=2" in err.value.message
    assert "you require a -> a==4 -> x==4 requires c<2" in err.value.message
    # Out of budget before the confirmation ends: "gave up", with the conflict found, said to be no proof.
    with pytest.raises(TooManyBacktracks) as gave_up:
        resolve(replace(request, max_backtracks=300), _two_sided_conflict(5))
    assert "gave up after 301 backtracks" in gave_up.value.message
    assert "not a proof" in gave_up.value.message and "No version of c satisfies all of" in gave_up.value.message
