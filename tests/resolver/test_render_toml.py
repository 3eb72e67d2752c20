"""The lock file's TOML writer: whatever the strings, ``tomllib`` reads back exactly what was written."""

from __future__ import annotations

import datetime
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver_service.render import dumps_toml

keys = st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.datetimes(timezones=st.just(datetime.UTC)),
    st.datetimes(),
    st.dates(),
)
inline = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
tables = st.dictionaries(keys, inline, max_size=6)


@given(top=st.dictionaries(keys, scalars, max_size=5), packages=st.lists(tables, min_size=1, max_size=4))
def test_round_trip(top: dict, packages: list) -> None:
    doc = {k: v for k, v in top.items() if k != "packages"}
    doc["packages"] = packages
    assert tomllib.loads(dumps_toml(doc)) == doc


def test_layout_is_readable() -> None:
    text = dumps_toml({"lock-version": "1.0", "packages": [{"name": "a", "wheels": [{"hashes": {"sha256": "ab"}}]}]})
    assert text == (
        'lock-version = "1.0"\n\n[[packages]]\nname = "a"\nwheels = [{ hashes = { sha256 = "ab" } }]\n'
    )


def test_refuses_what_it_cannot_write() -> None:
    with pytest.raises(TypeError):
        dumps_toml({"when": 1.5})
