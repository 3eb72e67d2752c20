"""OCI image indexes (``application/vnd.oci.image.index.v1+json``) that several replicas update: read, merge, write,
check.

A registry has no compare-and-swap on tags, so an index tag is updated by read-modify-write: read the index, merge
the new descriptors into it (an entry is replaced by a new one with the same key), write it, and read it again; an
entry missing then (another replica wrote an index read before this one's write) is merged in again, a few times.
A write that lands after that check can still drop an entry: the caller passes every entry it can rebuild from
the registry itself (``known``), so the next update of the same tag, by any replica, repairs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from .store.registry import RegistryClient

__all__ = ["INDEX_MEDIA", "Entries", "read_index", "update_index"]

INDEX_MEDIA = "application/vnd.oci.image.index.v1+json"
#: Rounds of merge-and-write before leaving the repair to the next update.
ATTEMPTS = 4

log = logging.getLogger(__name__)

#: Descriptors by their key (a venv key, a referrer's artifact type and digest).
Entries = dict[str, dict]


def _json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def read_index(registry: RegistryClient, repo: str, tag: str, key_of: Callable[[dict], str | None],
               accept: tuple[str, ...] = (INDEX_MEDIA,)) -> tuple[Entries, dict]:
    """The index's descriptors by key (those ``key_of`` names) and the index's other fields; empty when the tag is
    missing or holds something else (it is then overwritten)."""
    found = registry.get_manifest(repo, tag, accept)
    if found is None:
        return {}, {}
    try:
        doc = json.loads(found[0])
        if doc.get("mediaType") != INDEX_MEDIA or not isinstance(doc.get("manifests"), list):
            return {}, {}
        entries: Entries = {}
        for d in doc["manifests"]:
            key = key_of(d) if isinstance(d, dict) else None
            if key:
                entries[key] = d
    except (ValueError, AttributeError, TypeError):
        return {}, {}
    return entries, {k: v for k, v in doc.items() if k not in ("manifests", "schemaVersion", "mediaType")}


def update_index(registry: RegistryClient, repo: str, tag: str, new: Mapping[str, dict],
                 key_of: Callable[[dict], str | None], *, known: Callable[[Entries], Entries] | None = None,
                 annotations: Mapping[str, str] | None = None,
                 order: Callable[[dict], tuple[str, ...]] | None = None) -> bool:
    """Merge ``new`` (and what ``known(current)`` returns: entries the index should have but lacks) into the index
    at ``tag``; True when a read after the write has them all. Raises ``RegistryUnavailable`` when the registry is
    down."""
    for attempt in range(ATTEMPTS):
        current, _rest = read_index(registry, repo, tag, key_of)
        wanted = dict(current)
        if known is not None and attempt == 0:
            wanted.update(known(current))
        wanted.update(new)
        if all(current.get(k) == d for k, d in wanted.items()):
            return True
        manifests = sorted(wanted.values(), key=order or (lambda d: (str(d.get("digest", "")),)))
        doc: dict[str, object] = {"schemaVersion": 2, "mediaType": INDEX_MEDIA, "manifests": manifests}
        if annotations:
            doc["annotations"] = dict(annotations)
        registry.put_manifest(repo, tag, _json(doc), INDEX_MEDIA)
        after, _ = read_index(registry, repo, tag, key_of)
        if all(after.get(k) == d for k, d in wanted.items()):
            return True
        log.info("index %s:%s changed under this update (attempt %d); merging again", repo, tag, attempt + 1)
    log.warning("index %s:%s: concurrent updates kept replacing it; the next update repairs it", repo, tag)
    return False
