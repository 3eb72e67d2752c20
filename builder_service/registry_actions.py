"""The fleet's action results in the registry of ``--store oci://HOST:PORT/REPO-PREFIX``: what one replica fetched
or built (a wheel, an sdist's wheel, a wheelhouse, a venv archive...) is found by every other one.

Each result is a small OCI artifact in repository ``REPO-PREFIX/actions``, tagged ``a-<sha256 hex of the action
key>`` (a key is longer than a tag may be, and has ``:``): an image manifest with ``artifactType``
:data:`ACTION_ARTIFACT` whose config blob (:data:`CONFIG_MEDIA`) is the entry itself — the key, the
:class:`~builder_service.action_result.ActionResult` JSON as the local action cache stores it, and its signature
when the builder has ``--signing-key`` — and whose layers are the outputs (``org.opencontainers.image.title`` their
file names), mounted from ``REPO-PREFIX/blobs`` where the store keeps them. A reader checks the entry exactly as
a local one (``--trusted-key``, outputs in the store: the blobs are pulled, verified, only when used).

Registry down: a lookup is a miss (the work is done here), a publication is queued on disk with its blobs
(:class:`~builder_service.store.pending.PendingPublications`) and sent when the registry answers again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from .action_cache import OutputRef, SharedEntry
from .digest import Digest
from .env_image import LAYER_MEDIA, MANIFEST_MEDIA, WHEEL_LAYER_MEDIA
from .errors import BlobNotFound, DigestMismatch, RegistryUnavailable
from .store.oci import RegistryStore
from .store.pending import PendingPublications
from .store.registry import MAX_MANIFEST_BYTES

__all__ = ["ACTION_ARTIFACT", "CONFIG_MEDIA", "RegistryActions", "action_tag"]

log = logging.getLogger(__name__)

ACTION_ARTIFACT = "application/vnd.venvsmith.action-result.v1"
CONFIG_MEDIA = "application/vnd.venvsmith.action-result.v1+json"
OUTPUT_MEDIA = "application/octet-stream"
_FORMAT = "venvsmith-action/1"
_TITLE = "org.opencontainers.image.title"
_ANN = "io.venvsmith."
_LAYER_MEDIA = {"wheel": WHEEL_LAYER_MEDIA, "venv_archive": LAYER_MEDIA}


def action_tag(key: str) -> str:
    """The tag of an action key: ``a-`` and the sha256 hex of the key (a valid OCI tag for any key)."""
    return "a-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media: str, digest: Digest, annotations: dict[str, str] | None = None) -> dict[str, object]:
    d: dict[str, object] = {"mediaType": media, "digest": f"sha256:{digest.hash}", "size": digest.size_bytes}
    if annotations:
        d["annotations"] = annotations
    return d


class RegistryActions:
    """:class:`~builder_service.action_cache.SharedActions` in a :class:`RegistryStore`'s registry; thread-safe."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self.registry = store.registry
        self.repo = store.registry.repository("actions")
        #: Publications waiting for the registry (``<tag>.json``), kept across restarts.
        self.queue = PendingPublications(store, "pending-actions", self._publish_doc)
        #: Results published, lookups that found one (for metrics and tests).
        self.published = 0
        self.found = 0

    def __str__(self) -> str:
        return f"{self.registry.url}/actions"

    # -- reads ---------------------------------------------------------------------------------------------------

    def lookup(self, key: str) -> SharedEntry | None:
        """The entry published for ``key``, or None (none, malformed, or the registry down: work is done here)."""
        try:
            return self._lookup(key)
        except (RegistryUnavailable, BlobNotFound, DigestMismatch) as e:
            log.warning("action %r: no shared result (%s); working locally", key, e)
            return None

    def _lookup(self, key: str) -> SharedEntry | None:
        found = self.registry.get_manifest(self.repo, action_tag(key), (MANIFEST_MEDIA,))
        if found is None:
            return None
        try:
            manifest = json.loads(found[0])
            config = manifest["config"]
            if manifest.get("artifactType") != ACTION_ARTIFACT or config["mediaType"] != CONFIG_MEDIA:
                return None
            digest = Digest(str(config["digest"]).removeprefix("sha256:"), int(config["size"]))
            layers = [Digest(str(d["digest"]).removeprefix("sha256:"), int(d["size"])) for d in manifest["layers"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("action %r: ignoring a malformed manifest in %s: %s", key, self, e)
            return None
        if digest.size_bytes > MAX_MANIFEST_BYTES:
            return None
        body = bytearray()
        self.registry.pull_blob(self.repo, digest, body.extend)  # verified against its digest
        try:
            doc = json.loads(bytes(body))
            if doc.get("format") != _FORMAT or doc.get("key") != key or not isinstance(doc.get("result"), str):
                return None
            entry = SharedEntry(doc["result"], str(doc.get("key_id") or ""),
                                base64.b64decode(doc.get("signature") or ""))
            outputs = [o["digest"] for o in json.loads(entry.text)["outputs"]]
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("action %r: ignoring a malformed entry in %s: %s", key, self, e)
            return None
        if outputs != [str(d) for d in layers]:  # the layers keep the outputs referenced in the registry
            log.warning("action %r: ignoring an entry in %s whose layers are not its outputs", key, self)
            return None
        self.found += 1
        return entry

    # -- writes --------------------------------------------------------------------------------------------------

    def publish(self, key: str, entry: SharedEntry, outputs: Sequence[OutputRef]) -> None:
        """Publish the entry (its outputs as layers), or queue it while the registry is down."""
        doc = {"key": key, "result": entry.text, "key_id": entry.key_id,
               "signature": base64.b64encode(entry.signature).decode(),
               "outputs": [[o.digest.hash, o.digest.size_bytes, o.kind, o.filename] for o in outputs]}
        self.queue.publish_or_queue(action_tag(key)[2:], doc, [o.digest for o in outputs], f"action {key!r}")

    def _publish_doc(self, doc: dict[str, Any]) -> None:
        reg, store = self.registry, self.store
        layers = []
        for hexpart, size, kind, filename in doc["outputs"]:
            digest = Digest(hexpart, size)
            if store.cached(digest):
                store.push(digest)  # in the blobs repository first (queued there while the registry was down)
            if not reg.mount_blob(self.repo, digest, store.repo):
                store.fetch(digest)
                reg.push_blob(self.repo, digest, store.blob_path(digest))
            layers.append(_descriptor(_LAYER_MEDIA.get(kind, OUTPUT_MEDIA), digest, {_TITLE: filename}))
        config = _json({"format": _FORMAT, "key": doc["key"], "result": doc["result"], "key_id": doc["key_id"],
                        "signature": doc["signature"]})
        config_digest = reg.push_bytes(self.repo, config)
        manifest = _json({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA, "artifactType": ACTION_ARTIFACT,
                          "config": _descriptor(CONFIG_MEDIA, config_digest), "layers": layers,
                          "annotations": {f"{_ANN}action-key": doc["key"][:1024]}})
        reg.put_manifest(self.repo, action_tag(doc["key"]), manifest, MANIFEST_MEDIA)
        self.published += 1
