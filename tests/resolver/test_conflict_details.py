"""A NoSolution carries its explanation as data, whichever part of the resolver proved it: the search's conflict
(with main's yanked and URL-constraint lines), forced pins propagated (conflicts.py), the bounded exhaustive check."""

from __future__ import annotations

import pytest

from resolver_service.errors import NoSolution
from venvsmith.core.errors import ErrorDetails

from .memory import MemorySource
from .test_conflicts import _pins_conflict_shape
from .test_conflicts import run as run_conflicts
from .test_resolve import URL_INDEX, run


def details(call) -> ErrorDetails:
    with pytest.raises(NoSolution) as err:
        call()
    found = ErrorDetails.from_status(err.value.to_status())
    assert found.reason == "NO_SOLUTION"
    return found


def test_forced_pins_conflict_carries_its_chains():
    found = details(lambda: run_conflicts(_pins_conflict_shape(), "x==1", "y==2"))
    assert sorted(found.chains) == ["x==1 (required by you)", "y==2 (required by you) -> x>=3 (required by y==2)"]
    assert {v.subject for v in found.violations} == {"x"}


def test_exhausted_combinations_carry_the_requirements_on_the_conflicting_projects():
    src = MemorySource()
    src.add("a", "1", ["b==1"])
    src.add("a", "2", ["b==2"])
    src.add("b", "1", ["a==2"])
    src.add("b", "2", ["a==1"])
    found = details(lambda: run_conflicts(src, "a", "b"))
    assert set(found.chains) == {
        "a (required by you)", "b (required by you)", "b==1 (required by a==1)", "b==2 (required by a==2)",
        "a==2 (required by b==1)", "a==1 (required by b==2)",
    }


def test_a_yanked_file_that_would_do_is_a_violation_of_its_own():
    src = MemorySource()
    src.add("a", "1.0", ["c==2.0.0"])
    src.add("c", "1.0.0")
    src.add("c", "2.0.0", yanked="broken")
    found = details(lambda: run(src, "a"))
    assert found.chains == ["a (required by you) -> c==2.0.0 (required by a==1.0)"]
    (yanked,) = [v for v in found.violations if v.type == "YANKED"]
    assert yanked.subject == "c" and "c 2.0.0 is yanked (broken)" in yanked.description


def test_a_url_constraint_is_one_of_the_chains():
    src = MemorySource()
    src.add("app", "1.0", ["lib>=3"])
    src.add("lib", "3.0")
    pinned = src.add("lib", "2.0", index=URL_INDEX, listed=False)
    found = details(lambda: run(src, "app", constraints=[f"lib @ {pinned.url}"]))
    assert f"lib @ {pinned.url} (a constraint, version 2.0)" in found.chains
    assert "app (required by you) -> lib>=3 (required by app==1.0)" in found.chains
