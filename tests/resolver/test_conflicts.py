"""Unsatisfiable sets are proven so: forced pins propagated without search, small cycles enumerated."""

from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement

from resolver_service import conflicts
from resolver_service.errors import NoSolution, TooManyBacktracks
from resolver_service.resolve import ResolutionRequest, resolve
from venvsmith.core.target import TargetEnvironment

from .memory import MemorySource

LINUX_311 = TargetEnvironment.from_shorthand("3.11.7", "x86_64-manylinux_2_28")


class Events:
    """Counts the search's progress events (pins and rejections) reported through ``on_event``."""

    def __init__(self) -> None:
        self.pinned = 0
        self.backtracked = 0

    def __call__(self, kind: str, name: str, version: str, detail: str) -> None:
        if kind == "pinned":
            self.pinned += 1
        elif kind == "backtracked":
            self.backtracked += 1


def run(source, *reqs, events=None, **options):
    request = ResolutionRequest(tuple(Requirement(r) for r in reqs), LINUX_311, **options)
    return resolve(request, source, events)


def test_cycle_of_exact_requirements_is_proven_unsatisfiable():
    src = MemorySource()
    src.add("a", "1", ["b==1"])
    src.add("a", "2", ["b==2"])
    src.add("b", "1", ["a==2"])
    src.add("b", "2", ["a==1"])
    events = Events()
    with pytest.raises(NoSolution) as err:
        run(src, "a", "b", events=events)
    message = err.value.message
    for fact in ("a==1 depends on b==1", "a==2 depends on b==2", "b==1 depends on a==2", "b==2 depends on a==1"):
        assert fact in message
    assert "you require a, b" in message
    # Proven in a bounded number of steps, not by running into the round limit.
    assert events.pinned < 500


def test_cycle_with_a_way_out_is_resolved():
    src = MemorySource()
    src.add("a", "1", ["b==1"])
    src.add("a", "2", ["b==2"])
    src.add("b", "1", ["a==2"])
    src.add("b", "2", ["a==1"])
    src.add("a", "0.5")
    src.add("b", "0.5")
    res = run(src, "a", "b")
    assert {p.name: str(p.version) for p in res.pins} == {"a": "0.5", "b": "0.5"}


def _pins_conflict_shape() -> MemorySource:
    """The user pins ``x==1`` and ``y==2``; y 2 (an sdist here) needs ``x>=3``; ``u`` and ``v`` are unrelated."""
    src = MemorySource()
    src.add("x", "1")
    src.add("x", "3")
    src.add("y", "2", ["x>=3", "w"])
    src.add("w", "1")
    for i in range(60):
        src.add("u", f"{i}", [f"v<={i}", "w"])
        src.add("v", f"{i}")
    return src


@pytest.mark.parametrize("order", [("u", "x==1", "y==2"), ("y==2", "u", "x==1")])
def test_conflict_between_user_pins_found_without_touching_unrelated_packages(order):
    src = _pins_conflict_shape()
    events = Events()
    with pytest.raises(NoSolution) as err:
        run(src, *order, events=events)
    message = err.value.message
    assert "y==2 depends on x>=3" in message
    assert "you require x==1" in message
    assert events.pinned == 0 and events.backtracked == 0
    fetched = {f for kind, f in src.calls if kind == "metadata"}
    assert not any(f.startswith(("u-", "v-", "w-")) for f in fetched)


def test_forced_chain_is_followed_transitively():
    src = MemorySource()
    src.add("x", "1")
    src.add("x", "3")
    src.add("y", "2", ["z==5"])
    src.add("z", "5", ["x>=3"])
    src.add("z", "6")
    with pytest.raises(NoSolution) as err:
        run(src, "x==1", "y==2")
    message = err.value.message
    assert "y==2 depends on z==5" in message
    assert "z==5 depends on x>=3" in message


def test_pins_that_agree_still_resolve():
    src = _pins_conflict_shape()
    src.add("y", "1", ["x<2"])
    res = run(src, "x==1", "y==1")
    assert {p.name: str(p.version) for p in res.pins} == {"x": "1", "y": "1"}


def test_backtrack_count_in_the_message_is_the_real_one():
    src = MemorySource()
    for i in range(30):
        src.add("a", f"{i}.0", ["b==0"])
    src.add("b", "1.0")
    events = Events()
    with pytest.raises(TooManyBacktracks) as err:
        run(src, "a", events=events, max_backtracks=5)
    assert f"after {events.backtracked + 1} backtracks" in err.value.message


def test_left_over_cycle_unreachable_from_the_root_does_not_break_the_result():
    """Found by the brute-force property: resolvelib's own result builder recursed without end here."""
    src = MemorySource()
    src.add("alpha", "3.0", ["beta==3.0", "beta!=1.0"])
    src.add("alpha", "2.0", ["beta"])
    src.add("alpha", "1.0", ["delta"])
    src.add("beta", "3.0", ["delta==1.0", "gamma==1.0"])
    src.add("gamma", "2.0", ["alpha>=2.0"])
    src.add("gamma", "1.0")
    src.add("delta", "2.0")
    src.add("delta", "1.0", ["beta>=1.0"])
    src.add("delta", "3.0", ["gamma<2.0", "alpha<2.0"])
    res = run(src, "gamma<3.0")
    assert {p.name: str(p.version) for p in res.pins} == {"gamma": "1.0"}


def test_forced_extra_and_requires_python_conflicts_are_explained():
    src = MemorySource()
    src.add("x", "1", extras={"fast": ["y==2"]})
    src.add("y", "1")
    src.add("y", "2")
    src.add("new", "1", requires_python=">=3.12")
    src.add("new", "0.9")
    events = Events()
    with pytest.raises(NoSolution) as err:
        run(src, "x[fast]==1", "y==1", events=events)
    assert "x[fast]==1 depends on y==2" in err.value.message
    with pytest.raises(NoSolution) as err:
        run(src, "new==1", events=events)
    assert "Python 3.11.7" in err.value.message and "new==1 depends on Python>=3.12" in err.value.message
    assert events.pinned == 0


def test_unpinned_requests_are_left_to_the_search():
    src = MemorySource()
    src.add("x", "1")
    src.add("x", "3")
    src.add("y", "2", ["x>=3"])
    res = run(src, "x", "y==2")
    assert {p.name: str(p.version) for p in res.pins} == {"x": "3", "y": "2"}


def test_search_that_cannot_be_proven_reports_its_real_rounds(monkeypatch):
    """With the exhaustive check's budget spent, the search runs into its round limit and says how far it got."""
    monkeypatch.setattr(conflicts, "MAX_NODES", 1)
    src = MemorySource()
    src.add("a", "1", ["b==1"])
    src.add("a", "2", ["b==2"])
    src.add("b", "1", ["a==2"])
    src.add("b", "2", ["a==1"])
    events = Events()
    with pytest.raises(TooManyBacktracks) as err:
        run(src, "a", "b", events=events, max_backtracks=10)
    found = re.search(r"after (\d+) rounds \((\d+) candidates rejected\)", err.value.message)
    assert found is not None, err.value.message
    assert int(found[1]) >= 10 + 2 * 10 + 1000 and int(found[2]) == events.backtracked


def test_long_forced_chain_is_explained_within_a_bounded_message():
    src = MemorySource()
    for i in range(300):
        src.add(f"p{i}", "1", [f"p{i + 1}==1"])
        src.add(f"p{i}", "2")
    src.add("p300", "1", ["x>=3"])
    src.add("x", "1")
    src.add("x", "3")
    with pytest.raises(NoSolution) as err:
        run(src, "p0==1", "x==1")
    message = err.value.message
    assert "p300==1 depends on x>=3" in message and "earlier steps" in message
    assert len(message) < 8000


def test_constraint_that_leaves_one_version_forces_it():
    src = _pins_conflict_shape()
    events = Events()
    with pytest.raises(NoSolution) as err:
        run(src, "x", "y==2", constraints=(Requirement("x<2"),), events=events)
    assert "a constraint limits x<2" in err.value.message and "y==2 depends on x>=3" in err.value.message
    assert events.pinned == 0
