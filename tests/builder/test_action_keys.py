"""Action keys: typed values spelling the keys the action cache already holds (a key changes only with what it
names, so entries written before stay valid)."""

from __future__ import annotations

from builder_service.action_keys import (
    BuiltWheel,
    FetchedFile,
    LockWheels,
    PreparedMetadata,
    Wheelhouse,
    WheelMetadata,
    build_key,
    config_items,
)

SHA = "ab" * 32


def test_keys_keep_their_spelling():
    assert FetchedFile(SHA).key() == f"file:{SHA}"
    assert WheelMetadata(SHA, 10).key() == f"wheel-metadata:{SHA}:10"
    assert Wheelhouse("k" * 64).key() == f"wheelhouse:{'k' * 64}"
    assert LockWheels("k" * 64).key() == f"wheels:{'k' * 64}"
    assert PreparedMetadata(SHA, "t1").key() == f"metadata:{SHA}:t1"
    pins = ("numpy==2.0", "cython==3.0")
    assert BuiltWheel(SHA, "t1", pins, config_items({"a": "1"})).key() == "wheel-build:" + build_key(
        SHA, "t1", list(pins), {"a": "1"})


def test_metadata_keys_differ_by_config_settings_in_any_order():
    plain = PreparedMetadata(SHA, "t1").key()
    one = PreparedMetadata(SHA, "t1", config_items({"a": "1", "b": "2"})).key()
    assert one == PreparedMetadata(SHA, "t1", config_items({"b": "2", "a": "1"})).key()
    assert len({plain, one, PreparedMetadata(SHA, "t1", config_items({"a": "2", "b": "2"})).key()}) == 3
    assert one.startswith(plain + ":")
