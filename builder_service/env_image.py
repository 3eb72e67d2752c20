"""A built environment as an OCI image in the registry of ``--store oci://HOST:PORT/REPO-PREFIX``.

Repository ``REPO-PREFIX/envs``; the image manifest (``application/vnd.oci.image.manifest.v1+json``) has

* one layer, the venv archive as stored (our deterministic ``tar.zst`` is an
  ``application/vnd.oci.image.layer.v1.tar+zstd`` layer as is: its digest is the archive's ArtifactRef digest);
* an image config (``os``, ``architecture``, ``rootfs.diff_ids`` = the sha256 of the uncompressed tar), so that
  runtimes can mount it (Kubernetes image volumes) or copy from it (``COPY --from``);
* annotations: the lock key, the venv key (lock key + base interpreter + options), the interpreter.

It is tagged twice: ``<lock key>`` (64 hex: what people and standard tools name) and ``venv-<hex of the venv
key>`` (exact: what a builder looks up, since one lock key has one venv per interpreter and options). The wheels
are a second manifest (artifact type :data:`WHEELS_ARTIFACT`, the wheels as its layers) whose ``subject`` is the
environment, tagged by the referrers tag schema ``sha256-<hex of the environment manifest>`` (registries without
the referrers API still find it). So the registry is both the content store and the builders' "venv key ->
archive" map: a builder with an empty local cache serves an environment another replica built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from .action_cache import OutputRef
from .digest import CHUNK_SIZE, Digest
from .errors import RegistryUnavailable
from .store.oci import RegistryStore
from .store.pending import PendingPublications

__all__ = ["CONFIG_MEDIA", "LAYER_MEDIA", "MANIFEST_MEDIA", "WHEELS_ARTIFACT", "EnvironmentImage",
           "EnvironmentImages"]

MANIFEST_MEDIA = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+zstd"
EMPTY_MEDIA = "application/vnd.oci.empty.v1+json"
WHEELS_ARTIFACT = "application/vnd.venvsmith.wheels.v1"
WHEEL_LAYER_MEDIA = "application/vnd.venvsmith.wheel.v1+zip"
_ANN = "io.venvsmith."
_TITLE = "org.opencontainers.image.title"
log = logging.getLogger(__name__)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386", "i386": "386"}


@dataclass(frozen=True)
class EnvironmentImage:
    """What a lookup finds: the venv archive's digest and the manifest's annotations."""

    archive: Digest
    manifest: Digest
    annotations: dict[str, str]


def venv_tag(venv_key: str) -> str:
    """The exact tag of a venv key (``venv:<hex>`` -> ``venv-<hex>``)."""
    return venv_key.replace(":", "-", 1)


def diff_id(store: RegistryStore, archive: Digest) -> str:
    """sha256 of the archive's uncompressed tar (the image config's ``rootfs.diff_ids`` entry)."""
    sha = hashlib.sha256()
    with store.open(archive) as raw, zstandard.ZstdDecompressor().stream_reader(raw) as tar:
        while chunk := tar.read(CHUNK_SIZE):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def _descriptor(media: str, digest: Digest, annotations: dict[str, str] | None = None) -> dict[str, object]:
    d: dict[str, object] = {"mediaType": media, "digest": f"sha256:{digest.hash}", "size": digest.size_bytes}
    if annotations:
        d["annotations"] = annotations
    return d


def _json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class EnvironmentImages:
    """Publish and look up environment images through a :class:`RegistryStore`'s registry."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self.registry = store.registry
        self.repo = store.registry.repository("envs")
        #: Publications waiting for the registry (``<venv tag>.json``), kept across restarts.
        self.queue = PendingPublications(store, "pending-images", self._publish_doc)
        self.pending_dir = self.queue.directory

    def find(self, venv_key: str) -> EnvironmentImage | None:
        """:meth:`lookup`, None while the registry is down (the caller builds locally)."""
        try:
            return self.lookup(venv_key)
        except RegistryUnavailable as e:
            log.warning("%s; building locally", e)
            return None

    def publish_or_queue(self, lock_key: str, venv_key: str, archive: OutputRef, wheels: Sequence[OutputRef],
                         interpreter: str = "") -> None:
        """:meth:`publish`, or record the publication on disk for :meth:`flush_pending` while the registry is down.
        The blobs stay in the local cache meanwhile (they are queued for push by the store, which never evicts
        queued blobs)."""
        doc = {"lock_key": lock_key, "venv_key": venv_key, "interpreter": interpreter,
               "outputs": [[o.digest.hash, o.digest.size_bytes, o.media_type, o.kind, o.filename]
                           for o in [archive, *wheels]]}
        self.queue.publish_or_queue(venv_tag(venv_key), doc, [o.digest for o in [archive, *wheels]],
                                    f"environment {lock_key}")

    def flush_pending(self) -> int:
        """Publish the queued environments (stops at the first registry failure); how many were published."""
        return self.queue.flush()

    def _publish_doc(self, doc: dict) -> None:
        outputs = [OutputRef(Digest(h, n), media, kind, name) for h, n, media, kind, name in doc["outputs"]]
        self.publish(doc["lock_key"], doc["venv_key"], outputs[0], outputs[1:], doc["interpreter"])

    def publish(self, lock_key: str, venv_key: str, archive: OutputRef, wheels: Sequence[OutputRef],
                interpreter: str = "") -> Digest:
        """Push the environment image (and its wheels' referrer manifest); the image manifest's digest.
        Raises :class:`~builder_service.errors.RegistryUnavailable` when the registry is down."""
        reg, repo = self.registry, self.repo
        for blob in [archive, *wheels]:
            self.store.fetch(blob.digest)
            reg.push_blob(repo, blob.digest, self.store.blob_path(blob.digest), mount_from=self.store.repo)
        config = _json({"architecture": _ARCH.get(platform.machine().lower(), platform.machine().lower()),
                        "os": "linux", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": [diff_id(self.store, archive.digest)]}})
        config_digest = reg.push_bytes(repo, config)
        annotations = {f"{_ANN}lock-key": lock_key, f"{_ANN}venv-key": venv_key,
                       f"{_ANN}interpreter": interpreter, _TITLE: archive.filename}
        manifest = _json({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA,
                          "config": _descriptor(CONFIG_MEDIA, config_digest),
                          "layers": [_descriptor(LAYER_MEDIA, archive.digest, {_TITLE: archive.filename})],
                          "annotations": annotations})
        image = reg.put_manifest(repo, venv_tag(venv_key), manifest, MANIFEST_MEDIA)
        reg.put_manifest(repo, lock_key, manifest, MANIFEST_MEDIA)
        if wheels:
            empty = reg.push_bytes(repo, b"{}")
            referrer = _json({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA, "artifactType": WHEELS_ARTIFACT,
                              "config": _descriptor(EMPTY_MEDIA, empty),
                              "layers": [_descriptor(WHEEL_LAYER_MEDIA, w.digest, {_TITLE: w.filename})
                                         for w in wheels],
                              "subject": _descriptor(MANIFEST_MEDIA, image),
                              "annotations": {f"{_ANN}lock-key": lock_key}})
            reg.put_manifest(repo, f"sha256-{image.hash}", referrer, MANIFEST_MEDIA)
        return image

    def lookup(self, venv_key: str) -> EnvironmentImage | None:
        """The image of exactly this venv key, or None (raises ``RegistryUnavailable`` when the registry is down)."""
        found = self.registry.get_manifest(self.repo, venv_tag(venv_key), (MANIFEST_MEDIA,))
        if found is None:
            return None
        body, _media = found
        try:
            doc = json.loads(body)
            layer = doc["layers"][0]
            annotations = {str(k): str(v) for k, v in (doc.get("annotations") or {}).items()}
            if layer["mediaType"] != LAYER_MEDIA or annotations.get(f"{_ANN}venv-key") != venv_key:
                return None
            archive = Digest(layer["digest"].removeprefix("sha256:"), int(layer["size"]))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None
        return EnvironmentImage(archive, Digest.of_bytes(body), annotations)

    def wheels(self, image: Digest) -> list[tuple[str, Digest]] | None:
        """The (filename, digest) of the wheels of the environment image ``image`` (its referrer), or None."""
        found = self.registry.get_manifest(self.repo, f"sha256-{image.hash}", (MANIFEST_MEDIA,))
        if found is None:
            return None
        doc = json.loads(found[0])
        if doc.get("artifactType") != WHEELS_ARTIFACT or doc.get("subject", {}).get("digest") != f"sha256:{image.hash}":
            return None
        return [(layer.get("annotations", {}).get(_TITLE, ""),
                 Digest(layer["digest"].removeprefix("sha256:"), int(layer["size"]))) for layer in doc["layers"]]
