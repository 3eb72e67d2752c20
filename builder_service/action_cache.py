"""The "key -> result" map (Bazel ActionCache): what a build key produced, as digests into a :class:`Store`.

Keys are opaque strings chosen by the caller (a lock key, a wheel build key). A result only counts while every
output blob is still in the store: one whose blob was evicted is a miss, so the work is redone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from venvsmith.core import cancellation, observe
from venvsmith.core.health import HealthState
from venvsmith.core.singleflight import SingleFlight
from venvsmith.core.sqlite_recovery import is_corruption, move_aside, open_checked

from .action_result import (
    KINDS,
    ActionResult,
    ArtifactKindName,
    InvalidActionResult,
    MissingOutputs,
    Outcome,
    OutputRef,
)
from .digest import Digest
from .errors import RegistryUnavailable
from .store import Store

if TYPE_CHECKING:
    from venvsmith.core.fleet.flight import FleetFlight
    from venvsmith.core.signing import Signer, SigningKeyFile, TrustedKeys

__all__ = [
    "KINDS",
    "ActionCache",
    "ActionCacheBase",
    "ActionResult",
    "ArtifactKindName",
    "FilesystemActionCache",
    "InvalidActionResult",
    "MissingOutputs",
    "Outcome",
    "OutputRef",
    "SharedActions",
    "SharedEntry",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

@runtime_checkable
class ActionCache(Protocol):
    """Key -> :class:`ActionResult`; a hit guarantees the outputs were in the store when checked."""

    def get(self, key: str) -> ActionResult | None:
        """The result for ``key``, or None (also when an output blob is gone)."""
        ...

    def put(self, key: str, result: ActionResult) -> None:
        """Record ``result`` for ``key`` (replacing any previous one)."""
        ...

    def get_or_compute(self, key: str, compute: Callable[[], ActionResult]) -> tuple[ActionResult, bool]:
        """Cached result, or ``compute()`` once for all concurrent callers; True for the caller who ran it."""
        ...


class ActionCacheBase(ABC):
    """Single-flighted :meth:`get_or_compute` on top of a backend's ``get``/``put``."""

    def __init__(self) -> None:
        self._flights: SingleFlight[tuple[ActionResult, bool]] = SingleFlight()
        #: Single-flight across replicas (:class:`venvsmith.core.fleet.flight.FleetFlight`) for replicas whose
        #: action caches and stores are shared: set it and a build another replica is running is waited for
        #: (its result read through :meth:`get`) instead of run again. None: this process's callers only.
        self.fleet: FleetFlight | None = None

    @abstractmethod
    def get(self, key: str) -> ActionResult | None: ...

    def _holding_outputs(self) -> AbstractContextManager[object]:
        """A block during which the blobs ``compute()`` stores stay in the store (none: nothing held)."""
        return contextlib.nullcontext()

    @abstractmethod
    def put(self, key: str, result: ActionResult) -> None: ...

    def describe(self, digests: Iterable[Digest]) -> dict[Digest, OutputRef]:
        """The output (kind, media type, file name) of some build for each of ``digests`` known (none: {})."""
        return {}

    def get_or_compute(self, key: str, compute: Callable[[], ActionResult]) -> tuple[ActionResult, bool]:
        """``(result, computed_here)``: N concurrent callers of the same key run ``compute`` once.

        If ``compute`` raises, every caller waiting on that flight gets the exception and nothing is cached.
        """
        result, outcome = self.get_or_compute_outcome(key, compute)
        return result, outcome == "computed"

    def get_or_compute_outcome(self, key: str, compute: Callable[[], ActionResult],
                               joined: Callable[[], None] | None = None) -> tuple[ActionResult, Outcome]:
        """Like :meth:`get_or_compute`, telling how the result came: ``"computed"`` by this caller,
        ``"shared"`` (another caller's flight computed it while this one waited) or ``"cached"`` (stored before).

        ``compute`` runs for every caller sharing it (:func:`venvsmith.core.cancellation.current_caller`): once
        all of them are gone it stops (a build's process group is killed, :class:`Cancelled`) and nothing is
        cached; one caller going away leaves it to the others. ``joined()``: this caller waits for another's.
        """
        hit = self.get(key)
        observe.cache_lookup("action", hit is not None)
        if hit is not None:
            return hit, "cached"

        def run_and_store(should_stop: Callable[[], bool]) -> tuple[ActionResult, bool]:
            # Work nested in this one (a build requirement's wheel) is done for this flight's callers.
            with cancellation.stopping_when(should_stop), cancellation.serving(lambda: not should_stop()), \
                    self._holding_outputs():  # what compute() stores cannot be evicted before put() records it
                result = compute()
                self.put(key, result)
            return result, True

        def stored() -> tuple[ActionResult, bool] | None:
            again = self.get(key)
            return None if again is None else (again, False)

        def flight(should_stop: Callable[[], bool]) -> tuple[ActionResult, bool]:
            again = stored()  # a flight may have landed between our miss and now
            if again is not None:
                return again
            if self.fleet is None:
                return run_and_store(should_stop)
            return self.fleet.do(f"action:{key}", lambda lease: run_and_store(should_stop), stored,
                                 lambda: not should_stop())[0]

        (result, computed), shared = self._flights.do_shared(key, flight, cancellation.current_caller(), joined)
        if not computed:
            return result, "cached"
        return result, "shared" if shared else "computed"


@dataclass(frozen=True)
class SharedEntry:
    """An entry as it travels between replicas: the serialised result and its signature (``""``/``b""`` when
    unsigned), checked on read exactly as a local entry is."""

    text: str
    key_id: str = ""
    signature: bytes = b""


class SharedActions(Protocol):
    """Where a replica's action results reach the others (:mod:`~builder_service.registry_actions`): a local miss
    looks there; what is written locally is published there. Neither call raises for an unreachable backend (a
    lookup misses, a publication is queued)."""

    def lookup(self, key: str) -> SharedEntry | None: ...

    def publish(self, key: str, entry: SharedEntry, outputs: Sequence[OutputRef]) -> None: ...


def signed_payload(key: str, text: str) -> bytes:
    """What an entry's signature covers: its key and its serialised result (a signed result moved to another key
    does not verify)."""
    return json.dumps({"format": "venvsmith-action-signature/1", "key": key, "result": text},
                      sort_keys=True, separators=(",", ":")).encode("utf-8")


class FilesystemActionCache(ActionCacheBase):
    """:class:`ActionCache` in ``<root>/action_cache.sqlite3`` (WAL), checking outputs against ``store``.

    With ``signer`` every entry written is signed (ed25519, over :func:`signed_payload`); with ``trusted`` an
    entry counts only when one of those keys (or ``signer``'s) signed it: unsigned, forged or foreign entries are
    misses, recomputed and re-signed.

    With :attr:`shared` (the fleet's entries, :class:`SharedActions`) a local miss looks there: an entry found is
    checked as a local one (trusted signature, outputs in the store), then adopted (written here, signed by this
    builder's key); every :meth:`put` is also published there.
    """

    def __init__(self, root: str | os.PathLike[str], store: Store, *, filename: str = "action_cache.sqlite3",
                 health: HealthState | None = None, signer: Signer | SigningKeyFile | None = None,
                 trusted: TrustedKeys | None = None) -> None:
        super().__init__()
        self.signer = signer
        self.trusted = trusted  # consulted at each read: key files re-read when they change (rotation)
        self._health = health
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.path = self.root / filename
        self._lock = threading.Lock()
        self._conn = open_checked(self.path, _init_schema, _connect)
        #: The other replicas' entries (``--store oci://...``: the registry's), None: this cache only.
        self.shared: SharedActions | None = None
        #: Entries adopted from :attr:`shared` (for metrics and tests).
        self.adopted = 0

    def _on_disk(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation(conn)`` under the lock; a corrupt file (found mid-run) is moved aside, a fresh one opened
        and the operation retried once: the entries are lost, the outputs stay in the store."""
        with self._lock:
            try:
                return operation(self._conn)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                self._conn.close()
                try:
                    move_aside(self.path, exc)
                    self._conn = open_checked(self.path, _init_schema, _connect)
                except (sqlite3.DatabaseError, OSError) as again:
                    log.error("action cache %s is unusable and cannot be replaced: %s", self.path, again)
                    if self._health is not None:
                        self._health.set_broken(f"action cache {self.path}", str(again))
                    self._conn = _connect(self.path)  # the next operation tries again
                    raise
                if self._health is not None:
                    self._health.set_ok(f"action cache {self.path}")
                return operation(self._conn)

    def _holding_outputs(self) -> AbstractContextManager[object]:
        hold = getattr(self.store, "hold_writes", None)
        return hold() if hold is not None else contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"FilesystemActionCache({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get(self, key: str) -> ActionResult | None:
        _check_key(key)
        row = self._on_disk(lambda c: c.execute(
            "SELECT a.result, s.key_id, s.signature FROM actions a LEFT JOIN signatures s ON s.key = a.key "
            "WHERE a.key = ?", (key,)).fetchone())
        if row is not None:
            found = self._accepted(key, SharedEntry(row[0], row[1] or "", bytes(row[2] or b"")), str(self.path),
                                   local=True)
            if found is not None:
                return found
        return self._adopt(key)

    def _accepted(self, key: str, entry: SharedEntry, where: str, *, local: bool) -> ActionResult | None:
        """The result of ``entry`` (read from ``where``) when it counts: signed by a trusted key (with
        ``trusted``), readable, its outputs in the store. A ``local`` entry that does not is dropped."""
        text = entry.text
        if self.trusted is not None and not self._trusts(signed_payload(key, text), entry.key_id, entry.signature):
            log.warning("action cache %s: %r is a miss: its entry is not signed by a trusted key", where, key)
            return None  # recomputed; the fresh (signed) entry replaces it
        try:
            result = ActionResult.from_json(text)
        except InvalidActionResult as e:
            log.warning("action cache %s: dropping unreadable entry %r: %s", where, key, e)
            if local:
                self._drop(key, text)
            return None
        try:
            present = self.store.stat(result.digests)
        except RegistryUnavailable as e:  # cannot tell: a miss (built here, pushed later), the entry kept
            log.warning("action cache %s: %r is a miss for now: %s", where, key, e)
            return None
        if not all(present.values()):
            gone = [str(d) for d, ok in present.items() if not ok]
            log.info("action cache %s: %r is a miss, outputs gone: %s", where, key, gone)
            if local:
                self._drop(key, text)
            return None
        return result

    def _adopt(self, key: str) -> ActionResult | None:
        """The fleet's entry for ``key`` (:attr:`shared`) when it counts, written here; else None."""
        if self.shared is None:
            return None
        entry = self.shared.lookup(key)
        if entry is None:
            return None
        result = self._accepted(key, entry, f"{self.shared}", local=False)
        if result is None:
            return None
        try:
            self._write(key, result)
        except MissingOutputs:  # evicted meanwhile: a miss
            return None
        with self._lock:
            self.adopted += 1
        return result

    def describe(self, digests: Iterable[Digest]) -> dict[Digest, OutputRef]:
        """The output of a build for each of ``digests`` that one is (its entry found as :meth:`get` finds it:
        trusted, outputs present); one indexed lookup per digest (the ``outputs`` table), for ``venvsmith fetch``
        and StatArtifacts."""
        found: dict[Digest, OutputRef] = {}
        for digest in digests:
            def matching(c: sqlite3.Connection, d: str = str(digest)) -> list[str]:
                return [row[0] for row in c.execute(
                    "SELECT a.key FROM outputs o JOIN actions a ON a.key = o.key WHERE o.digest = ? "
                    "ORDER BY a.updated_at DESC LIMIT 8", (d,))]

            keys = self._on_disk(matching)
            for key in keys:
                result = self.get(key)
                ref = next((o for o in result.outputs if o.digest == digest), None) if result else None
                if ref is not None:
                    found[digest] = ref
                    break
        return found

    def _trusts(self, payload: bytes, signer_key_id: str, signature: bytes) -> bool:
        """A trusted key, or this builder's own current one, signed ``payload``."""
        assert self.trusted is not None
        if self.trusted.accepts(payload, signer_key_id, signature):
            return True
        if self.signer is None:
            return False
        from venvsmith.core.signing import TrustedKeys

        return TrustedKeys([self.signer.private.public_key()]).accepts(payload, signer_key_id, signature)

    def put(self, key: str, result: ActionResult) -> None:
        entry = self._write(key, result)
        if self.shared is not None:
            self.shared.publish(key, entry, result.outputs)

    def _write(self, key: str, result: ActionResult) -> SharedEntry:
        """Record ``result`` here (signed with ``signer``); the entry as written."""
        _check_key(key)
        missing = [d for d, ok in self.store.stat(result.digests).items() if not ok]
        if missing:
            raise MissingOutputs(key, missing)
        text = result.to_json()
        row = (key, text, time.time())
        signature = self.signer.sign(signed_payload(key, text)) if self.signer is not None else None

        def write(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("INSERT OR REPLACE INTO actions (key, result, updated_at) VALUES (?, ?, ?)", row)
                _index_outputs(c, key, result)
                if signature is None:
                    c.execute("DELETE FROM signatures WHERE key = ?", (key,))
                else:
                    c.execute("INSERT OR REPLACE INTO signatures (key, key_id, signature) VALUES (?, ?, ?)",
                              (key, *signature))
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

        self._on_disk(write)
        return SharedEntry(text, *signature) if signature is not None else SharedEntry(text)

    def delete(self, key: str) -> bool:
        """Forget ``key``; True if it was there."""
        def forget(c: sqlite3.Connection) -> bool:
            c.execute("DELETE FROM signatures WHERE key = ?", (key,))
            c.execute("DELETE FROM outputs WHERE key = ?", (key,))
            return c.execute("DELETE FROM actions WHERE key = ?", (key,)).rowcount > 0

        return self._on_disk(forget)

    def _drop(self, key: str, text: str) -> None:
        """Delete ``key`` only if it still holds ``text`` (a concurrent put of a fresh result wins)."""
        def drop(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM actions WHERE key = ? AND result = ?", (key, text)).rowcount:
                c.execute("DELETE FROM outputs WHERE key = ?", (key,))

        self._on_disk(drop)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)


def _init_schema(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS actions (key TEXT PRIMARY KEY, result TEXT NOT NULL, updated_at REAL NOT NULL)"
    )
    # The ed25519 signature of each signed entry (over signed_payload(key, result)); none: unsigned.
    conn.execute("CREATE TABLE IF NOT EXISTS signatures (key TEXT PRIMARY KEY, key_id TEXT NOT NULL, "
                 "signature BLOB NOT NULL)")
    # Which entries name a digest as an output (``describe``): kept with every write, filled once from the
    # entries of a cache made before the table existed.
    new = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outputs'").fetchone() is None
    conn.execute("CREATE TABLE IF NOT EXISTS outputs (digest TEXT NOT NULL, key TEXT NOT NULL, "
                 "PRIMARY KEY (digest, key)) WITHOUT ROWID")
    if new:
        for key, text in conn.execute("SELECT key, result FROM actions").fetchall():
            try:
                _index_outputs(conn, key, ActionResult.from_json(text))
            except (ValueError, KeyError, TypeError):
                continue  # an unreadable entry: get() drops it when asked; nothing to describe


def _index_outputs(conn: sqlite3.Connection, key: str, result: ActionResult) -> None:
    conn.execute("DELETE FROM outputs WHERE key = ?", (key,))
    conn.executemany("INSERT OR IGNORE INTO outputs (digest, key) VALUES (?, ?)",
                     [(str(o.digest), key) for o in result.outputs])


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"action key must be a non-empty str, got {key!r}")
