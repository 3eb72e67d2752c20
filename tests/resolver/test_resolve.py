"""The pure resolver core against an in-memory index: every packaging trap, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from packaging.requirements import Requirement

from resolver_service.errors import NoSolution, TooManyBacktracks
from resolver_service.resolve import ResolutionRequest, install_order, parse_requirement, resolve
from resolver_service.selection import BinaryPolicy, Prereleases, SelectionPolicy
from venvsmith.core.errors import DynamicMetadata, InvalidInput
from venvsmith.core.pin import lock_key
from venvsmith.core.target import TargetEnvironment

from .memory import MemorySource

LINUX_311 = TargetEnvironment.from_shorthand("3.11.7", "x86_64-manylinux_2_28")
WIN_312 = TargetEnvironment.from_shorthand("3.12", "windows")


def run(source, *reqs, target=LINUX_311, constraints=(), **policy):
    request = ResolutionRequest(
        requirements=tuple(Requirement(r) for r in reqs),
        constraints=tuple(Requirement(c) for c in constraints),
        target=target,
        policy=SelectionPolicy(**policy),
    )
    return resolve(request, source)


def pins(resolution):
    return {p.name: str(p.version) for p in resolution.pins}


@pytest.fixture
def src():
    return MemorySource()


def test_newest_versions_and_install_order(src):
    src.add("app", "1.0", ["lib>=1", "util"])
    src.add("lib", "1.0", ["util<3"])
    src.add("lib", "2.0", ["util<3"])
    src.add("util", "2.5")
    src.add("util", "3.0")
    res = run(src, "app")
    assert pins(res) == {"app": "1.0", "lib": "2.0", "util": "2.5"}
    order = [p.name for p in res.pins]
    assert order.index("util") < order.index("lib") < order.index("app")
    app = next(p for p in res.pins if p.name == "app")
    assert app.dependencies == ("lib", "util")
    util = next(p for p in res.pins if p.name == "util")
    assert "app -> app==1.0 -> util" in util.required_by
    assert any(c.endswith("lib==2.0 -> util<3") for c in util.required_by)


def test_backtracks_when_newest_dependency_conflicts(src):
    src.add("a", "2.0", ["c>=2"])
    src.add("a", "1.0", ["c<2"])
    src.add("c", "1.0")
    src.add("c", "2.0")
    res = run(src, "a", "c<2")
    assert pins(res) == {"a": "1.0", "c": "1.0"}
    assert res.backtracks >= 1


def test_conflict_explanation_names_both_chains(src):
    src.add("top", "1.0", ["left", "right"])
    src.add("left", "1.0", ["shared>=2"])
    src.add("right", "1.0", ["shared<2"])
    src.add("shared", "1.0")
    src.add("shared", "2.0")
    with pytest.raises(NoSolution) as err:
        run(src, "top")
    text = err.value.message
    assert "shared" in text
    assert "you require top -> top==1.0 -> left==1.0 requires shared>=2" in text
    assert "you require top -> top==1.0 -> right==1.0 requires shared<2" in text
    assert "1.0" in text and "2.0" in text


def test_unknown_project_explained(src):
    with pytest.raises(NoSolution, match="No files of nothere were found"):
        run(src, "nothere")


@pytest.mark.parametrize(
    ("available", "spec", "policy", "expected"),
    [
        (["1.0", "2.0b1"], "", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.0"),
        (["2.0b1"], "", Prereleases.IF_NECESSARY_OR_EXPLICIT, "2.0b1"),
        (["1.0", "2.0b1"], ">=2.0b1", Prereleases.IF_NECESSARY_OR_EXPLICIT, "2.0b1"),
        (["1.0", "2.0b1"], "", Prereleases.ALLOW, "2.0b1"),
        (["1.0", "1.1.dev1"], "", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.0"),
        (["1.0", "1.0.post1"], "", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.0.post1"),
        (["1.0", "1!0.5"], "", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1!0.5"),
        (["1.0", "1.0+local"], "==1.0", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.0+local"),
        (["1.2.1", "1.3.0", "1.2.5"], "!=1.3.*", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.2.5"),
        (["1.4.2", "1.5", "2.0"], "~=1.4", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.5"),
        (["1.0.0", "2.0"], "===1.0.0", Prereleases.IF_NECESSARY_OR_EXPLICIT, "1.0.0"),
    ],
)
def test_version_rules(src, available, spec, policy, expected):
    for v in available:
        src.add("pkg", v)
    res = run(src, f"pkg{spec}", prereleases=policy)
    assert pins(res)["pkg"] == expected


def test_prerelease_disallowed_is_unsatisfiable(src):
    src.add("pkg", "2.0b1")
    with pytest.raises(NoSolution):
        run(src, "pkg", prereleases=Prereleases.DISALLOW)


def test_yanked_only_when_pinned_exactly(src):
    src.add("pkg", "1.0")
    src.add("pkg", "2.0", yanked="broken build")
    assert pins(run(src, "pkg"))["pkg"] == "1.0"
    assert pins(run(src, "pkg>=1"))["pkg"] == "1.0"
    assert pins(run(src, "pkg==2.0"))["pkg"] == "2.0"
    with pytest.raises(NoSolution):
        run(src, "pkg==2.0", allow_yanked_pins=False)


def test_requires_python_of_file_checked_against_target_not_host(src):
    src.add("pkg", "1.0")
    src.add("pkg", "2.0", file_requires_python=">=3.12")
    assert pins(run(src, "pkg"))["pkg"] == "1.0"
    assert pins(run(src, "pkg", target=WIN_312))["pkg"] == "2.0"


def test_requires_python_from_metadata_backtracks_and_explains(src):
    src.add("pkg", "1.0", requires_python=">=3.8")
    src.add("pkg", "2.0", requires_python=">=3.13")
    assert pins(run(src, "pkg"))["pkg"] == "1.0"
    with pytest.raises(NoSolution) as err:
        run(src, "pkg==2.0")
    assert "Python 3.11.7" in err.value.message and ">=3.13" in err.value.message


def test_markers_are_evaluated_for_the_target(src):
    src.add("app", "1.0", ['winonly; sys_platform == "win32"', 'new; python_version >= "3.12"', "core"])
    src.add("winonly", "1.0")
    src.add("new", "1.0")
    src.add("core", "1.0")
    assert set(pins(run(src, "app"))) == {"app", "core"}
    assert set(pins(run(src, "app", target=WIN_312))) == {"app", "core", "winonly", "new"}
    assert set(pins(run(src, 'core; sys_platform == "win32"', "winonly"))) == {"winonly"}


def test_extras_bring_their_requirements_at_the_same_version(src):
    src.add("web", "2.0", ["core"], extras={"fast": ["speedups>=1", 'winfast; sys_platform == "win32"']})
    src.add("web", "1.0", ["core"], extras={"fast": ["speedups>=1"]})
    src.add("core", "1.0")
    src.add("speedups", "1.0")
    src.add("winfast", "1.0")
    res = run(src, "web[fast]", "web<2")
    assert pins(res) == {"web": "1.0", "core": "1.0", "speedups": "1.0"}
    web = next(p for p in res.pins if p.name == "web")
    assert web.extras == ("fast",)
    assert set(pins(run(src, "web[fast]", target=WIN_312))) == {"web", "core", "speedups", "winfast"}


def test_constraints_limit_but_do_not_add(src):
    src.add("a", "1.0", ["b"])
    src.add("b", "1.0")
    src.add("b", "2.0")
    src.add("unused", "1.0")
    res = run(src, "a", constraints=["b<2", "unused==1.0"])
    assert pins(res) == {"a": "1.0", "b": "1.0"}


def test_wheel_tags_for_target_and_best_tag_wins(src):
    win = src.add("native", "1.0", tag="cp311-cp311-win_amd64")
    old = src.add("native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    new = src.add("native", "1.0", tag="cp311-cp311-manylinux_2_28_x86_64")
    src.add("native", "2.0", tag="cp312-cp312-manylinux_2_28_x86_64")
    res = run(src, "native")
    assert res.pins[0].file == new
    assert old != new and win != new
    win_only = MemorySource()
    win_only.add("native", "1.0", tag="cp311-cp311-win_amd64")
    with pytest.raises(NoSolution, match="wheel tags not supported"):
        run(win_only, "native")


def test_binary_policies(src):
    src.add("mixed", "1.0", sdist=True, metadata_version="2.2")
    src.add("mixed", "1.0")
    src.add("sdistonly", "1.0", sdist=True, metadata_version="2.2")
    res = run(src, "mixed", binary=BinaryPolicy(no_binary=frozenset({"mixed"})))
    assert not res.pins[0].file.is_wheel
    res = run(src, "mixed")
    assert res.pins[0].file.is_wheel
    with pytest.raises(NoSolution, match="sdists excluded by only-binary"):
        run(src, "sdistonly", binary=BinaryPolicy(only_binary=frozenset({":all:"})))
    res = run(
        src,
        "sdistonly",
        binary=BinaryPolicy(only_binary=frozenset({":all:"}), no_binary=frozenset({"sdistonly"})),
    )
    assert pins(res) == {"sdistonly": "1.0"}


def test_dynamic_sdist_metadata_is_a_precondition_failure(src):
    src.add("dyn", "1.0", sdist=True, metadata_version="2.2", dynamic=["Requires-Dist"])
    with pytest.raises(DynamicMetadata) as err:
        run(src, "dyn")
    assert "dyn-1.0.tar.gz" in err.value.message
    old = MemorySource()
    old.add("dyn", "1.0", sdist=True, metadata_version="2.1")
    with pytest.raises(DynamicMetadata):
        run(old, "dyn")


def test_exclude_newer(src):
    src.add("pkg", "1.0", upload_time=datetime(2024, 1, 1, tzinfo=UTC))
    src.add("pkg", "2.0", upload_time=datetime(2024, 6, 1, tzinfo=UTC))
    assert pins(run(src, "pkg", exclude_newer=datetime(2024, 3, 1, tzinfo=UTC)))["pkg"] == "1.0"
    assert pins(run(src, "pkg"))["pkg"] == "2.0"


def test_inconsistent_metadata_is_skipped(src):
    src.add("pkg", "1.0")
    src.add("pkg", "2.0", metadata_name="other")
    assert pins(run(src, "pkg"))["pkg"] == "1.0"


def test_too_many_backtracks(src):
    for i in range(30):
        src.add("a", f"{i}.0", ["b==0"])
    src.add("b", "1.0")
    request = ResolutionRequest((Requirement("a"),), LINUX_311, max_backtracks=5)
    with pytest.raises((TooManyBacktracks, NoSolution)) as err:
        resolve(request, src)
    assert isinstance(err.value, TooManyBacktracks)


def test_lock_key_depends_on_pins_and_target(src):
    src.add("pkg", "1.0")
    a = run(src, "pkg")
    b = run(src, "pkg")
    assert lock_key(a.pins, LINUX_311) == lock_key(b.pins, LINUX_311)
    assert lock_key(a.pins, LINUX_311) != lock_key(a.pins, WIN_312)


def test_install_order_breaks_cycles_deterministically():
    assert list(install_order({"a": {"b"}, "b": {"a"}, "c": set()})) == ["c", "a", "b"]


@pytest.mark.parametrize("bad", ["", "pkg>=", "pkg[", "pkg; python_version >>> '3'", "pkg @ ftp://x/y.whl"])
def test_bad_requirements_are_invalid_input(bad):
    from venvsmith.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        parse_requirement(bad)
    if bad.strip():
        assert repr(bad.strip()) in str(err.value)
    else:  # nothing to echo: no ''
        assert str(err.value) == "empty requirement"


def test_yanked_local_version_not_chosen_when_an_unyanked_file_satisfies_the_pin(src):
    # PEP 440: ==2 matches 2+local; PEP 592: a yanked file only when no unyanked one satisfies the request.
    src.add("foo", "2")
    src.add("foo", "2+local", yanked="bad build")
    assert pins(run(src, "foo==2"))["foo"] == "2"
    assert pins(run(src, "foo", constraints=["foo==2"]))["foo"] == "2"
    assert pins(run(src, "foo==2+local"))["foo"] == "2+local"  # the user's own pin of the yanked file


def test_yanked_version_pinned_by_a_dependency_is_refused_and_explained(src):
    src.add("a", "1.0", ["c==2.0.0"])
    src.add("c", "1.0.0")
    src.add("c", "2.0.0", yanked="broken")
    with pytest.raises(NoSolution) as err:
        run(src, "a")
    message = err.value.message
    assert "a==1.0 requires c==2.0.0" in message
    assert "c 2.0.0 is yanked (broken)" in message
    assert "2.0.0 (yanked), 1.0.0" in message
    # The user's explicit opt-in: a requirement or a constraint pinning it.
    assert pins(run(src, "a", "c==2.0.0")) == {"a": "1.0", "c": "2.0.0"}
    assert pins(run(src, "a", constraints=["c===2.0.0"])) == {"a": "1.0", "c": "2.0.0"}
    # A loose user requirement is no opt-in.
    with pytest.raises(NoSolution):
        run(src, "a", "c>=2")


def test_yanked_version_pinned_with_extras(src):
    src.add("web", "1.0", extras={"fast": ["speedups"]})
    src.add("web", "2.0", extras={"fast": ["speedups"]}, yanked="oops")
    src.add("speedups", "1.0")
    assert pins(run(src, "web[fast]"))["web"] == "1.0"
    assert pins(run(src, "web[fast]==2.0"))["web"] == "2.0"


URL_INDEX = "memory://elsewhere/"


def test_url_constraint_restricts_the_project_to_that_file(src):
    src.add("app", "1.0", ["lib>=1"])
    src.add("lib", "1.0")
    src.add("lib", "3.0")
    pinned = src.add("lib", "2.0", index=URL_INDEX, listed=False)
    # Transitive: app needs lib; the constrained file wins over the newer index file.
    res = run(src, "app", constraints=[f"lib @ {pinned.url}"])
    assert pins(res) == {"app": "1.0", "lib": "2.0"}
    assert next(p for p in res.pins if p.name == "lib").file.url == pinned.url
    # Direct, and a constraint adds nothing by itself.
    assert pins(run(src, "lib", constraints=[f"lib @ {pinned.url}"])) == {"lib": "2.0"}
    with pytest.raises(InvalidInput) as err:  # the URL's file must be of the constrained project
        run(src, "app", constraints=[f"other @ {pinned.url}"])
    assert "other @ " in err.value.message


def test_url_constraint_contradicted_by_a_version_requirement_is_no_solution(src):
    src.add("app", "1.0", ["lib>=3"])
    src.add("lib", "3.0")
    pinned = src.add("lib", "2.0", index=URL_INDEX, listed=False)
    with pytest.raises(NoSolution) as err:
        run(src, "app", constraints=[f"lib @ {pinned.url}"])
    assert "lib>=3" in err.value.message and pinned.url in err.value.message
    with pytest.raises(NoSolution):
        run(src, "lib>=3", constraints=[f"lib @ {pinned.url}"])
    with pytest.raises(NoSolution):
        run(src, "lib", constraints=[f"lib @ {pinned.url}", "lib<2"])


def test_two_urls_for_one_project_are_invalid_input(src):
    one = src.add("lib", "1.0", index=URL_INDEX, listed=False)
    two = src.add("lib", "2.0", index=URL_INDEX, listed=False)
    with pytest.raises(InvalidInput) as err:
        run(src, "lib", constraints=[f"lib @ {one.url}", f"lib @ {two.url}"])
    assert one.url in err.value.message and two.url in str(err.value)
    with pytest.raises(InvalidInput) as err:
        run(src, f"lib @ {two.url}", constraints=[f"lib @ {one.url}"])
    assert one.url in err.value.message and two.url in str(err.value)
    # The same URL twice is fine.
    assert pins(run(src, f"lib @ {one.url}", constraints=[f"lib @ {one.url}"])) == {"lib": "1.0"}


def test_url_constraint_wheel_that_does_not_fit_the_target_is_refused(src):
    src.add("lib", "1.0")
    win = src.add("lib", "2.0", tag="cp311-cp311-win_amd64", index=URL_INDEX, listed=False)
    with pytest.raises(InvalidInput) as err:
        run(src, "lib", constraints=[f"lib @ {win.url}"])
    assert win.url in str(err.value) and "does not fit the target" in err.value.message
    with pytest.raises(InvalidInput):
        run(src, f"lib @ {win.url}")
    # A constraint whose marker is false for the target is not applied at all.
    assert pins(run(src, "lib", constraints=[f'lib @ {win.url} ; sys_platform == "win32"'])) == {"lib": "1.0"}


LINUX_39 = TargetEnvironment.from_shorthand("3.9", "x86_64-manylinux_2_28")


def test_requires_python_upper_bound_honoured_by_default_ignored_on_request(src):
    src.add("meta", "1.0")
    src.add("meta", "2.0", requires_python=">=3.6,<=3.8")  # in the metadata
    src.add("listed", "1.0")
    src.add("listed", "2.0", file_requires_python="<=3.8")  # in the index listing
    src.add("star", "1.0")
    src.add("star", "2.0", file_requires_python="==3.8.*")
    src.add("lower", "1.0")
    src.add("lower", "2.0", requires_python=">=3.10,<4")
    src.add("tilde", "1.0")
    src.add("tilde", "2.0", file_requires_python="~=3.10")
    everything = ("meta", "listed", "star", "lower", "tilde")
    assert pins(run(src, *everything, target=LINUX_39)) == dict.fromkeys(everything, "1.0")
    ignored = pins(run(src, *everything, target=LINUX_39, ignore_requires_python_upper_bound=True))
    # Only the lower bounds count then: 3.9 is below 3.10, so lower and tilde stay at 1.0.
    assert ignored == {"meta": "2.0", "listed": "2.0", "star": "2.0", "lower": "1.0", "tilde": "1.0"}
    with pytest.raises(NoSolution) as err:
        run(src, "meta==2.0", target=LINUX_39)
    assert "<=3.8" in err.value.message and "3.9" in err.value.message


def test_lower_bound_of_requires_python():
    from packaging.specifiers import SpecifierSet

    from resolver_service.selection import lower_bound

    cases = {
        ">=3.8,<4": ">=3.8",
        "<=3.8": "",
        "==3.8.*": ">=3.8",
        "~=3.10": ">=3.10",
        "==3.8.1": ">=3.8.1",
        ">3.7,!=3.9.*": ">3.7",
        "===3.8": "",
    }
    for spec, expected in cases.items():
        assert lower_bound(SpecifierSet(spec)) == SpecifierSet(expected), spec


def test_users_pin_of_a_yanked_version_holds_when_a_dependency_asks_for_extras(src):
    src.add("app", "1.0", ["web[fast]"])
    src.add("web", "1.0", extras={"fast": ["speedups"]})
    src.add("web", "2.0", extras={"fast": ["speedups"]}, yanked="oops")
    src.add("speedups", "1.0")
    assert pins(run(src, "app")) == {"app": "1.0", "web": "1.0", "speedups": "1.0"}
    assert pins(run(src, "app", "web==2.0")) == {"app": "1.0", "web": "2.0", "speedups": "1.0"}
    assert pins(run(src, "app", constraints=["web==2.0"])) == {"app": "1.0", "web": "2.0", "speedups": "1.0"}


def test_prerelease_pinned_on_the_way_is_replaced_by_a_final_release_when_one_works(src):
    # gamma 1.5 asks for beta!=1.0; with beta!=2.0 from the roots only beta 3.0b1 is left, and it is pinned.
    # Backtracking then drops gamma 1.5 (beta 3.0b1 needs gamma<1.5) but beta 3.0b1 still satisfies what is
    # left (beta!=2.0), which a final release (beta 1.0) satisfies too: the pre-release is not justified.
    index = {
        "alpha": {"1.0": []},
        "beta": {"1.0": [], "2.0": [], "3.0b1": ["gamma<1.5"]},
        "gamma": {"1.5": ["beta!=1.0"], "1.0": [], "2.0": []},
        "delta": {"1.0": [], "1.5": ["gamma~=1.0"], "3.0b1": []},
    }
    for name, versions in index.items():
        for version, deps in versions.items():
            src.add(name, version, deps)
    assert pins(run(src, "delta", "beta!=2.0")) == {"beta": "1.0", "gamma": "1.0", "delta": "1.5"}


def test_prerelease_stands_when_no_final_release_of_the_project_works(src):
    # alpha 1.0 -> beta 1.0 -> alpha!=1.0: no answer has a final alpha, so alpha 3.0b1 is necessary.
    src.add("alpha", "1.0", ["beta"])
    src.add("alpha", "3.0b1")
    src.add("beta", "1.0", ["alpha!=1.0"])
    resolution = run(src, "alpha")
    assert pins(resolution) == {"alpha": "3.0b1"}
    # The search that proved it rejected alpha 1.0 before ending "no solution": that counts into the budget.
    assert resolution.backtracks == 1


def test_needless_prerelease_of_a_project_required_with_extras_is_replaced_too(src):
    # As above, with beta required as beta[x]: the extras candidate's own ``==3.0b1`` on bare beta names the
    # pre-release only because it was pinned; it does not ask for it.
    for version, deps in {"1.0": [], "2.0": [], "3.0b1": ["gamma<1.5"]}.items():
        src.add("beta", version, deps, extras={"x": ["alpha"]})
    src.add("alpha", "1.0")
    for version, deps in {"1.5": ["beta[x]!=1.0"], "1.0": [], "2.0": []}.items():
        src.add("gamma", version, deps)
    for version, deps in {"1.0": [], "1.5": ["gamma~=1.0"], "3.0b1": []}.items():
        src.add("delta", version, deps)
    assert pins(run(src, "delta", "beta[x]!=2.0")) == {"alpha": "1.0", "beta": "1.0", "gamma": "1.0", "delta": "1.5"}
