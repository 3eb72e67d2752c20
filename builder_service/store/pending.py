"""Publications waiting for the registry of a :class:`~builder_service.store.oci.RegistryStore`.

What a builder publishes besides blobs (environment images, action results) is made of a document: while the
registry is down the document is kept on disk (``<store>/<directory>/<name>.json``, across restarts), its blobs
are queued for push (never evicted meanwhile), and :meth:`PendingPublications.flush` publishes the documents
after the store's own pending pushes went out (it is one of the store's ``after_flush`` hooks).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..digest import Digest
from ..errors import RegistryUnavailable
from .oci import RegistryStore

__all__ = ["PendingPublications"]

log = logging.getLogger(__name__)


class PendingPublications:
    """Documents that ``publish(doc)`` sends to the registry, queued on disk while it does not answer."""

    def __init__(self, store: RegistryStore, directory: str, publish: Callable[[dict[str, Any]], object]) -> None:
        self.store = store
        self.directory = store.root / directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._publish = publish
        store.after_flush.append(self.flush)

    def publish_or_queue(self, name: str, doc: dict[str, Any], blobs: Iterable[Digest], what: str) -> bool:
        """``publish(doc)``, or (registry down) the document kept as ``name`` and ``blobs`` queued for push;
        True when published now."""
        try:
            self._publish(doc)
        except RegistryUnavailable as e:
            log.warning("%s; %s queued for publishing", e, what)
            self.store.queue(blobs)
            path = self.directory / f"{name}.json"
            part = path.with_suffix(".part")
            part.write_text(json.dumps(doc))
            os.replace(part, path)  # a crash leaves a whole document or none
            return False
        return True

    def pending(self) -> list[str]:
        """The names of the documents waiting."""
        return [entry.stem for entry in sorted(self.directory.glob("*.json"))]

    def flush(self) -> int:
        """Publish the queued documents (stops at the first registry failure); how many were published."""
        done = 0
        for entry in sorted(self.directory.glob("*.json")):
            try:
                doc = json.loads(entry.read_text())
            except (OSError, ValueError) as e:  # unreadable (edited by hand): nothing to publish
                log.warning("dropping unreadable pending publication %s: %s", entry, e)
                entry.unlink(missing_ok=True)
                continue
            try:
                self._publish(doc)
            except RegistryUnavailable:
                break
            entry.unlink(missing_ok=True)
            done += 1
        return done
