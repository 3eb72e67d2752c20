"""A built environment as an OCI image in the registry of ``--store oci://HOST:PORT/REPO-PREFIX``.

Repository ``REPO-PREFIX/envs``; the image manifest (``application/vnd.oci.image.manifest.v1+json``) has

* one layer, the venv archive as stored (our deterministic ``tar.zst`` is an
  ``application/vnd.oci.image.layer.v1.tar+zstd`` layer as is: its digest is the archive's ArtifactRef digest);
* an image config (``os``, ``architecture``, ``rootfs.diff_ids`` = the sha256 of the uncompressed tar), so that
  runtimes can mount it (Kubernetes image volumes) or copy from it (``COPY --from``);
* annotations: the lock key, the venv key (lock key + base interpreter + options), the interpreter (path, version,
  implementation), the options (compiled bytecode, seeded pip) and the platform.

Tags: ``venv-<hex of the venv key>`` (exact: what a builder looks up, since one lock key has one venv per
interpreter and options), ``<lock key>.<32 hex of the venv key>`` (one per environment of a lock key: what the lock
key's index is rebuilt from), and ``<lock key>``: an OCI image index (:data:`INDEX_MEDIA`) listing every
environment of that lock key, each with its ``platform`` and the annotations naming interpreter and options,
updated by read-modify-write when one is published (:mod:`~builder_service.image_index`: concurrent publications
by replicas are merged, and one lost anyway is repaired by the next publication of that lock key). Pick one by
digest (``envs@sha256:...``) from the index; a runtime given the tag picks the first of the platform.

Two referrers name the environment as their ``subject``: the wheels (artifact type :data:`WHEELS_ARTIFACT`, the
wheels as its layers) and the lock document (:mod:`~builder_service.env_lock`: lock files and signed statements).
Registries without the referrers API find them by the referrers tag schema: the tag
``sha256-<hex of the environment manifest>`` is an image index of both. So the registry is both the content store
and the builders' "venv key -> archive" map: a builder with an empty local cache serves an environment another
replica built; with ``--trusted-key`` only one whose lock document has a build statement signed by a trusted key
(or its own ``--signing-key``) for exactly that venv key, archive and lock file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from venvsmith.core.signing import Signer, SigningKeyFile, TrustedKeys, UntrustedAnswer

from .action_cache import OutputRef
from .digest import CHUNK_SIZE, Digest
from .env_lock import LOCK_ARTIFACT, LockDocument, LockInputs, build_statement, check_statement, layers
from .errors import BlobNotFound, DigestMismatch, RegistryError, RegistryUnavailable
from .image_index import INDEX_MEDIA, Entries, read_index, update_index
from .store.oci import RegistryStore
from .store.pending import PendingPublications
from .venv_key import VenvKey

__all__ = ["CONFIG_MEDIA", "INDEX_MEDIA", "LAYER_MEDIA", "LOCK_ARTIFACT", "MANIFEST_MEDIA", "WHEELS_ARTIFACT",
           "EnvironmentImage", "EnvironmentImages", "environment_tag", "venv_tag"]

MANIFEST_MEDIA = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+zstd"
EMPTY_MEDIA = "application/vnd.oci.empty.v1+json"
WHEELS_ARTIFACT = "application/vnd.venvsmith.wheels.v1"
WHEEL_LAYER_MEDIA = "application/vnd.venvsmith.wheel.v1+zip"
_ANN = "io.venvsmith."
_TITLE = "org.opencontainers.image.title"
#: Largest lock-document blob (a signed statement) read to check it.
MAX_STATEMENT_BYTES = 4 << 20
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


def environment_tag(lock_key: str, venv_key: str) -> str:
    """The per-environment tag of a lock key (``<lock key>.<32 hex of the venv key>``, 97 characters)."""
    return f"{lock_key}.{venv_key.partition(':')[2][:32]}"


def architecture() -> str:
    """This host's architecture as OCI names it (``amd64``, ``arm64``, ...)."""
    return _ARCH.get(platform.machine().lower(), platform.machine().lower())


def labels_of(key: VenvKey) -> dict[str, str]:
    """The annotations naming a venv key's interpreter and options."""
    base = key.interpreter
    return {f"{_ANN}interpreter": base.path, f"{_ANN}python-version": base.version,
            f"{_ANN}implementation": base.implementation,
            f"{_ANN}compile-bytecode": "true" if key.compile_bytecode else "false", f"{_ANN}seed": key.seed_sha256}


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


def _venv_key_of(descriptor: dict) -> str | None:
    return (descriptor.get("annotations") or {}).get(f"{_ANN}venv-key") or None


def _artifact_of(descriptor: dict) -> str | None:
    return descriptor.get("artifactType") or None


def _index_entry(manifest: bytes, doc: dict) -> dict:
    """The lock-key index's descriptor of an environment manifest (``doc`` parsed from ``manifest``)."""
    annotations = {str(k): str(v) for k, v in (doc.get("annotations") or {}).items()
                   if k.startswith(_ANN) and k != f"{_ANN}lock-key"}
    os_name, _, arch = annotations.pop(f"{_ANN}platform", "linux/" + architecture()).partition("/")
    entry = _descriptor(MANIFEST_MEDIA, Digest.of_bytes(manifest), annotations)
    entry["platform"] = {"os": os_name, "architecture": arch}
    return entry


def _order(entry: dict) -> tuple[str, str, str]:
    a = entry.get("annotations") or {}
    return (a.get(f"{_ANN}interpreter", ""), a.get(f"{_ANN}compile-bytecode", ""), a.get(f"{_ANN}venv-key", ""))


class EnvironmentImages:
    """Publish and look up environment images through a :class:`RegistryStore`'s registry.

    ``signer`` (``--signing-key``) signs each image's build statement; with ``trusted`` (``--trusted-key``) a
    lookup finds only images whose statement one of those keys (or ``signer``'s) signed."""

    def __init__(self, store: RegistryStore, *, signer: Signer | SigningKeyFile | None = None,
                 trusted: TrustedKeys | None = None) -> None:
        self.store = store
        self.registry = store.registry
        self.repo = store.registry.repository("envs")
        self.signer = signer
        self.trusted = trusted
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

    def publish_or_queue(self, key: VenvKey, archive: OutputRef, wheels: Sequence[OutputRef], *,
                         lock: LockInputs | None = None, target_digest: str = "") -> None:
        """:meth:`publish`, or record the publication on disk for :meth:`flush_pending` while the registry is down.
        The blobs stay in the local cache meanwhile (they are queued for push by the store, which never evicts
        queued blobs). The lock document is ``lock``'s files and statements, and this builder's signed build
        statement when it has a signer."""
        lock_key, venv_key = key.lock_key, key.key()
        document = LockDocument()
        if lock is not None:
            document = lock.resolution.with_(files=[lock.lock_file])
            if self.signer is not None:
                document = document.with_(statements=[build_statement(
                    self.store, self.signer, lock_key=lock_key, venv_key=venv_key, target_digest=target_digest,
                    archive=archive, wheels=wheels, lock_file=lock.lock_file, base=key.interpreter)])
        labels = labels_of(key)
        doc = {"lock_key": lock_key, "venv_key": venv_key, "labels": labels, "lock": document.to_json(),
               "outputs": [[o.digest.hash, o.digest.size_bytes, o.media_type, o.kind, o.filename]
                           for o in [archive, *wheels]]}
        self.queue.publish_or_queue(venv_tag(venv_key), doc, [o.digest for o in [archive, *wheels, *document.blobs()]],
                                    f"environment {lock_key}")

    def flush_pending(self) -> int:
        """Publish the queued environments (stops at the first registry failure); how many were published."""
        return self.queue.flush()

    def _publish_doc(self, doc: dict) -> None:
        outputs = [OutputRef(Digest(h, n), media, kind, name) for h, n, media, kind, name in doc["outputs"]]
        labels = doc.get("labels") or {f"{_ANN}interpreter": doc.get("interpreter", "")}
        self.publish(doc["lock_key"], doc["venv_key"], outputs[0], outputs[1:],
                     lock=LockDocument.from_json(doc.get("lock") or {}), labels=labels)

    def publish(self, lock_key: str, venv_key: str, archive: OutputRef, wheels: Sequence[OutputRef],
                interpreter: str = "", *, lock: LockDocument | None = None,
                labels: dict[str, str] | None = None) -> Digest:
        """Push the environment image, its referrers (wheels, lock document) and its entry in the lock key's index;
        the image manifest's digest. Raises :class:`~builder_service.errors.RegistryUnavailable` when the registry
        is down."""
        reg, repo = self.registry, self.repo
        lock = lock or LockDocument()
        for blob in [archive, *wheels, *lock.blobs()]:
            self.store.fetch(blob.digest)
            reg.push_blob(repo, blob.digest, self.store.blob_path(blob.digest), mount_from=self.store.repo)
        arch = architecture()
        config = _json({"architecture": arch, "os": "linux", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": [diff_id(self.store, archive.digest)]}})
        config_digest = reg.push_bytes(repo, config)
        annotations = {f"{_ANN}interpreter": interpreter, **(labels or {}), f"{_ANN}lock-key": lock_key,
                       f"{_ANN}venv-key": venv_key, f"{_ANN}platform": f"linux/{arch}", _TITLE: archive.filename}
        manifest_doc = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA,
                        "config": _descriptor(CONFIG_MEDIA, config_digest),
                        "layers": [_descriptor(LAYER_MEDIA, archive.digest, {_TITLE: archive.filename})],
                        "annotations": annotations}
        manifest = _json(manifest_doc)
        image = reg.put_manifest(repo, venv_tag(venv_key), manifest, MANIFEST_MEDIA)
        reg.put_manifest(repo, environment_tag(lock_key, venv_key), manifest, MANIFEST_MEDIA)
        referrers: Entries = {}
        empty = reg.push_bytes(repo, b"{}") if wheels or lock.blobs() else None
        for artifact, layer_list in ((WHEELS_ARTIFACT, [_descriptor(WHEEL_LAYER_MEDIA, w.digest, {_TITLE: w.filename})
                                                        for w in wheels]),
                                     (LOCK_ARTIFACT, layers(lock))):
            if not layer_list or empty is None:
                continue
            body = _json({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA, "artifactType": artifact,
                          "config": _descriptor(EMPTY_MEDIA, empty), "layers": layer_list,
                          "subject": _descriptor(MANIFEST_MEDIA, image, None),
                          "annotations": {f"{_ANN}lock-key": lock_key}})
            digest = reg.put_manifest(repo, f"sha256:{Digest.of_bytes(body).hash}", body, MANIFEST_MEDIA)
            referrers[artifact] = {**_descriptor(MANIFEST_MEDIA, digest, {f"{_ANN}lock-key": lock_key}),
                                   "artifactType": artifact}
        if referrers:
            update_index(reg, repo, f"sha256-{image.hash}", referrers, _artifact_of)
        update_index(reg, repo, lock_key, {venv_key: _index_entry(manifest, manifest_doc)}, _venv_key_of,
                     known=lambda current: self._tagged(lock_key, current), order=_order,
                     annotations={f"{_ANN}lock-key": lock_key})
        return image

    def _tagged(self, lock_key: str, current: Entries) -> Entries:
        """The environments of ``lock_key`` that have their ``<lock key>.<hex>`` tag but no entry in ``current``
        (an update lost to a concurrent one): what repairs the index."""
        listed = {environment_tag(lock_key, k) for k in current}
        out: Entries = {}
        for tag in self.registry.tags(self.repo, f"{lock_key}."):
            if tag in listed:
                continue
            found = self.registry.get_manifest(self.repo, tag, (MANIFEST_MEDIA,))
            if found is None:
                continue
            try:
                doc = json.loads(found[0])
                venv_key = (doc.get("annotations") or {}).get(f"{_ANN}venv-key", "")
            except (ValueError, AttributeError):
                continue
            if venv_key and environment_tag(lock_key, venv_key) == tag:
                log.info("index %s:%s lacked %s; repaired", self.repo, lock_key, venv_key)
                out[venv_key] = _index_entry(found[0], doc)
        return out

    def index(self, lock_key: str) -> list[dict]:
        """The descriptors of the lock key's index (every environment published for it), in index order."""
        found = self.registry.get_manifest(self.repo, lock_key, (INDEX_MEDIA,))
        if found is None:
            return []
        entries = json.loads(found[0]).get("manifests")
        return entries if isinstance(entries, list) else []

    def lookup(self, venv_key: str) -> EnvironmentImage | None:
        """The image of exactly this venv key, or None (raises ``RegistryUnavailable`` when the registry is down);
        with ``trusted``, None too for an image whose lock document is not signed as the class says."""
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
        image = EnvironmentImage(archive, Digest.of_bytes(body), annotations)
        if self.trusted is not None:
            try:
                self._check(image, venv_key)
            except UntrustedAnswer as e:
                log.warning("%s; not used, building locally", e)
                return None
        return image

    def _check(self, image: EnvironmentImage, venv_key: str) -> None:
        """Raise :class:`UntrustedAnswer` unless the image's lock document is signed by a trusted key."""
        assert self.trusted is not None
        trusted = self.trusted
        if self.signer is not None:
            trusted = trusted.with_key(self.signer.private.public_key())
        referrer = self.referrer(image.manifest, LOCK_ARTIFACT)
        if referrer is None:
            raise UntrustedAnswer(f"environment image {venv_key}", "it has no lock document")
        check_statement(referrer, self._read_small, trusted, venv_key=venv_key,
                        lock_key=image.annotations.get(f"{_ANN}lock-key", ""), archive=image.archive)

    def _read_small(self, digest: Digest) -> bytes:
        if digest.size_bytes > MAX_STATEMENT_BYTES:
            raise UntrustedAnswer(f"blob {digest}", f"a signed statement larger than {MAX_STATEMENT_BYTES} bytes")
        out = bytearray()
        try:
            self.registry.pull_blob(self.repo, digest, out.extend)
        except (BlobNotFound, DigestMismatch, RegistryError) as e:
            raise UntrustedAnswer(f"blob {digest}", f"the signed statement cannot be read: {e}") from None
        return bytes(out)

    def referrer(self, image: Digest, artifact: str) -> dict | None:
        """The parsed referrer manifest of artifact type ``artifact`` of the environment image ``image``, or None."""
        entries, _ = read_index(self.registry, self.repo, f"sha256-{image.hash}", _artifact_of)
        entry = entries.get(artifact)
        if entry is None:
            return None
        found = self.registry.get_manifest(self.repo, str(entry.get("digest", "")), (MANIFEST_MEDIA,))
        if found is None:
            return None
        try:
            doc = json.loads(found[0])
        except ValueError:
            return None
        if doc.get("artifactType") != artifact or doc.get("subject", {}).get("digest") != f"sha256:{image.hash}":
            return None
        return doc

    def wheels(self, image: Digest) -> list[tuple[str, Digest]] | None:
        """The (filename, digest) of the wheels of the environment image ``image`` (its referrer), or None."""
        doc = self.referrer(image, WHEELS_ARTIFACT)
        if doc is None:
            return None
        return [(layer.get("annotations", {}).get(_TITLE, ""),
                 Digest(layer["digest"].removeprefix("sha256:"), int(layer["size"]))) for layer in doc["layers"]]

    def lock_document(self, image: Digest) -> dict | None:
        """The parsed lock-document referrer of the environment image ``image``, or None."""
        return self.referrer(image, LOCK_ARTIFACT)
