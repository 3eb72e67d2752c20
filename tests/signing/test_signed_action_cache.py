"""Signed action-cache entries: with trusted keys, an unsigned, forged or foreign entry is a miss, never a hit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from builder_service.action_cache import ActionResult, FilesystemActionCache, OutputRef
from builder_service.store import FilesystemStore
from tests.signing.keys import write_keypair
from venvsmith.core.signing import load_signer, load_trusted_keys

KEY = "lock-key-0123"


@pytest.fixture
def store(tmp_path: Path):
    s = FilesystemStore(tmp_path / "store")
    yield s
    s.close()


def result_of(store: FilesystemStore, content: bytes) -> ActionResult:
    return ActionResult((OutputRef(store.put_bytes(content), "application/zip", "wheel", "pkg-1.0-py3-none-any.whl"),))


def cache_with(tmp_path, store, signer=None, trusted=None) -> FilesystemActionCache:
    return FilesystemActionCache(tmp_path / "actions", store, signer=signer, trusted=trusted)


def forge(tmp_path: Path, key: str, result: ActionResult) -> None:
    """Write an entry straight into the cache file, as an attacker with write access to it would."""
    with sqlite3.connect(tmp_path / "actions" / "action_cache.sqlite3") as conn:
        conn.execute("INSERT OR REPLACE INTO actions (key, result, updated_at) VALUES (?, ?, 0)",
                     (key, result.to_json()))


def test_signed_entries_hit_and_forged_ones_are_misses_then_recomputed_and_signed(tmp_path, store):
    private, public = write_keypair(tmp_path / "keys", "builder")
    signer, trusted = load_signer(str(private)), load_trusted_keys([str(public)])
    cache = cache_with(tmp_path, store, signer, trusted)
    good = result_of(store, b"good wheel")
    computed = []

    def compute(result=good):
        computed.append(result)
        return result

    assert cache.get_or_compute_outcome(KEY, compute)[1] == "computed"
    assert cache.get_or_compute_outcome(KEY, compute)[1] == "cached"  # its own signed entry is a hit

    evil = result_of(store, b"evil wheel")
    forge(tmp_path, KEY, evil)  # the signature left in place covers the good result, not this one
    assert cache.get(KEY) is None
    result, outcome = cache.get_or_compute_outcome(KEY, compute)
    assert outcome == "computed" and result == good and len(computed) == 2
    assert cache.get(KEY) == good  # the recomputed entry is signed again

    forge(tmp_path, "other-key", evil)  # unsigned entry
    assert cache.get("other-key") is None
    cache.close()


def test_an_entry_signed_by_an_untrusted_key_is_a_miss(tmp_path, store):
    mallory = load_signer(str(write_keypair(tmp_path / "keys", "mallory")[0]))
    trusted = load_trusted_keys([str(write_keypair(tmp_path / "keys", "ci")[1])])
    forged = cache_with(tmp_path, store, mallory)
    forged.put(KEY, result_of(store, b"evil"))
    assert forged.get(KEY) is not None  # without trusted keys every entry counts
    forged.close()
    checking = cache_with(tmp_path, store, trusted=trusted)
    assert checking.get(KEY) is None
    checking.close()


def test_a_signed_entry_moved_to_another_key_does_not_verify(tmp_path, store):
    private, public = write_keypair(tmp_path / "keys", "builder")
    cache = cache_with(tmp_path, store, load_signer(str(private)), load_trusted_keys([str(public)]))
    cache.put("evil-key", result_of(store, b"evil"))
    with sqlite3.connect(tmp_path / "actions" / "action_cache.sqlite3") as conn:
        conn.execute("INSERT INTO actions SELECT ?, result, updated_at FROM actions WHERE key = ?", (KEY, "evil-key"))
        conn.execute("INSERT INTO signatures SELECT ?, key_id, signature FROM signatures WHERE key = ?",
                     (KEY, "evil-key"))
    assert cache.get("evil-key") is not None
    assert cache.get(KEY) is None
    cache.close()
