"""The fleet's action results in a real registry: what replica A's action cache recorded, replica B's (empty
store, empty cache) finds, checks and adopts; signed entries are checked against B's trusted keys; registry down ->
local only, the publication queued and sent when it returns."""

from __future__ import annotations

import json
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from builder_service.action_cache import ActionResult, FilesystemActionCache, OutputRef
from builder_service.registry_actions import ACTION_ARTIFACT, RegistryActions, action_tag
from builder_service.store.oci import RegistryStore
from builder_service.store.registry import RegistryClient
from venvsmith.core.signing import Signer, TrustedKeys

KEY = "wheel-build:" + "ab" * 32


class Replica:
    """One builder's store and action cache, sharing its results through the registry."""

    def __init__(self, root, registry, *, signer=None, trusted=None) -> None:
        self.store = RegistryStore(root / "store", RegistryClient(f"oci://{registry.host}/acme"))
        self.actions = FilesystemActionCache(root / "actions", self.store, signer=signer, trusted=trusted)
        self.shared = RegistryActions(self.store)
        self.actions.shared = self.shared

    def close(self) -> None:
        self.actions.close()
        self.store.close()


def _built(replica: Replica) -> ActionResult:
    wheel = replica.store.put_bytes(b"PK a wheel built from an sdist")
    log = replica.store.put_bytes(b"build log")
    return ActionResult((OutputRef(wheel, "application/zip", "wheel", "p-1.0-py3-none-any.whl"),),
                        meta={"log": str(log)})


def test_a_result_recorded_on_a_is_found_and_adopted_by_b(tmp_path, registry):
    a, b = Replica(tmp_path / "a", registry), Replica(tmp_path / "b", registry)
    result = _built(a)
    a.actions.put(KEY, result)
    assert a.shared.published == 1
    found = b.actions.get(KEY)
    assert found is not None and found.outputs == result.outputs and dict(found.meta) == dict(result.meta)
    assert b.actions.adopted == 1 and not b.store.cached(result.digests[0])  # bytes pulled only when read
    with b.store.open(result.digests[0]) as f:  # pulled and verified
        assert f.read() == b"PK a wheel built from an sdist"
    assert b.actions.get(KEY) is not None and b.actions.adopted == 1  # the second read is local
    body, _ = _manifest(a, KEY)
    manifest = json.loads(body)
    assert manifest["artifactType"] == ACTION_ARTIFACT
    assert [(lay["digest"], lay["annotations"]["org.opencontainers.image.title"]) for lay in manifest["layers"]] == \
        [(f"sha256:{result.digests[0].hash}", "p-1.0-py3-none-any.whl")]
    assert b.actions.get("wheel-build:" + "cd" * 32) is None  # nobody published that one
    a.close()
    b.close()


def _manifest(replica: Replica, key: str):
    return replica.store.registry.get_manifest(replica.shared.repo, action_tag(key),
                                               ("application/vnd.oci.image.manifest.v1+json",))


def test_signed_entries_count_only_for_a_replica_trusting_the_signer(tmp_path, registry):
    signer = Signer.from_private(Ed25519PrivateKey.generate())
    stranger = Signer.from_private(Ed25519PrivateKey.generate())
    a = Replica(tmp_path / "a", registry, signer=signer)
    result = _built(a)
    a.actions.put(KEY, result)
    trusting = Replica(tmp_path / "t", registry, trusted=TrustedKeys([signer.private.public_key()]))
    suspicious = Replica(tmp_path / "s", registry, trusted=TrustedKeys([stranger.private.public_key()]))
    assert trusting.actions.get(KEY) is not None
    assert suspicious.actions.get(KEY) is None and suspicious.actions.adopted == 0
    # an unsigned entry published under the same key (another replica without a key) is a miss too
    unsigned = Replica(tmp_path / "u", registry)
    unsigned.actions.put(KEY, result)
    fresh = Replica(tmp_path / "f", registry, trusted=TrustedKeys([signer.private.public_key()]))
    assert fresh.actions.get(KEY) is None
    for r in (a, trusting, suspicious, unsigned, fresh):
        r.close()


def test_registry_down_local_only_then_the_queued_result_is_published(tmp_path, registry):
    a = Replica(tmp_path / "a", registry)
    registry.stop()
    result = _built(a)
    a.actions.put(KEY, result)  # recorded locally, the publication queued
    assert a.actions.get(KEY) == result
    assert a.shared.queue.pending() == [action_tag(KEY)[2:]] and a.shared.published == 0
    b = Replica(tmp_path / "b", registry)
    assert b.actions.get(KEY) is None  # a miss, no error: B works locally
    registry.start()
    assert b.actions.get(KEY) is None  # not published yet
    a.store.flush_pending()  # the pusher's round: blobs first, then the queued publications
    assert a.shared.queue.pending() == [] and a.shared.published == 1
    assert b.actions.get(KEY) is not None
    a.close()
    b.close()


def test_a_result_whose_outputs_the_registry_lost_is_a_miss(tmp_path, registry):
    a, b = Replica(tmp_path / "a", registry), Replica(tmp_path / "b", registry)
    result = _built(a)
    a.actions.put(KEY, result)
    for p in (registry.root / "data").rglob("data"):
        if p.is_file() and p.read_bytes() == b"PK a wheel built from an sdist":
            p.unlink()  # the registry lost the blob (both repositories link to the one copy)
    assert b.actions.get(KEY) is None
    a.close()
    b.close()


@given(st.text(min_size=1, max_size=400))
def test_every_action_key_has_a_valid_tag(key):
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", action_tag(key))
    assert action_tag(key) != action_tag(key + "x")

