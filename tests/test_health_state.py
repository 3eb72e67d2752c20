"""HealthState: broken components, listeners, and one state following another (a server hosting two engines)."""

from __future__ import annotations

from venvsmith.core.health import HealthState


def test_listeners_see_every_change_of_serving():
    state, seen = HealthState(), []
    state.subscribe(seen.append)
    state.set_broken("cache a", "corrupt")
    state.set_broken("cache b", "corrupt")  # still broken: no new notice
    state.set_ok("cache a")
    assert not state.serving and state.broken() == {"cache b": "corrupt"}
    state.set_ok("cache b")
    assert seen == [True, False, True] and state.serving


def test_follow_reports_the_other_state_as_one_component():
    builder, resolver = HealthState(), HealthState()
    builder.follow(resolver, "resolver")
    assert builder.serving
    resolver.set_broken("index cache", "read-only directory")
    assert builder.broken() == {"resolver": "read-only directory"}
    resolver.set_ok("index cache")
    assert builder.serving


def test_degraded_components_are_details_not_a_state_change():
    resolver, builder = HealthState(), HealthState()
    seen: list[bool] = []
    builder.follow(resolver, "resolver")
    builder.subscribe(seen.append)
    resolver.set_degraded("shared cache redis://h:1/0", "unreachable")
    assert builder.serving and resolver.serving and seen == [True]  # no change announced
    assert builder.details() == "shared cache redis://h:1/0: unreachable"
    resolver.set_recovered("shared cache redis://h:1/0")
    assert builder.details() == resolver.details() == ""
