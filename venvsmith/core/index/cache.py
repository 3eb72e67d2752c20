"""SQLite cache of index pages (HTTP validators and freshness) and of core metadata (keyed by file sha256).

One database file, WAL mode so several processes can share it. Threads share two connections, each guarded
by its own lock: one for reads and one for writes, so that (WAL readers never wait for the writer) a lookup
is not held up behind a large page being stored. Parsed pages are kept in a small in-memory LRU keyed by the
body's digest, so a warm resolution neither refetches nor re-parses. With a shared tier (``--cache redis://...``,
:mod:`venvsmith.core.fleet.shared_cache`) every replica also shares the metadata (immutable, keyed by file sha256)
and the pages with their validators and freshness (a head keyed by a hash of the credential-free URL, the request's
``Accept`` and the credential's fingerprint; the body apart, by its digest): a local miss asks the tier, a store or
a revalidation writes through, so a replica that misses locally revalidates the page another fetched instead of
downloading it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

from ..fleet.shared_cache import MAX_VALUE_BYTES, CacheTier
from ..health import HealthState
from ..sqlite_recovery import is_corruption, move_aside, open_checked
from .auth import strip_userinfo
from .pages import ACCEPT

T = TypeVar("T")

#: Keys per ``first_seen`` query (below SQLite's host-parameter limit).
_SEEN_BATCH = 500

log = logging.getLogger(__name__)

#: The namespaces of the shared tier, one definition each: metadata by file sha256, its parsed fields (the same
#: key; :meth:`CoreMetadata.to_fields` carries its format), page heads by :func:`shared_page_key`, bodies by digest.
SHARED_METADATA = "metadata"
SHARED_METADATA_FIELDS = "metadata-fields"
SHARED_PAGE_HEADS = "index-page"
SHARED_PAGE_BODIES = "index-page-body"
#: How long a page stays in the shared tier after its last store or revalidation: a stale page is still worth
#: its validators (a conditional request answered 304 instead of a download).
SHARED_PAGE_SECONDS = 24 * 3600.0


def shared_page_key(key: str) -> str:
    """The shared tier's key of a page cached locally under ``key`` (its URL, ``#credential=<fingerprint>`` when
    fetched with credentials): a hash of the URL without user-info and of what the request sends that changes the
    answer (``Accept``, the credential's fingerprint), so neither a URL nor a secret is readable in Redis."""
    url, _, fingerprint = key.partition("#credential=")
    doc = json.dumps([strip_userinfo(url), ACCEPT, fingerprint])
    return hashlib.sha256(doc.encode()).hexdigest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS page_heads (
    url TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    content_type TEXT NOT NULL,
    final_url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL NOT NULL,
    max_age REAL
);
CREATE INDEX IF NOT EXISTS page_heads_digest ON page_heads (digest);
CREATE TABLE IF NOT EXISTS page_bodies (
    digest TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS metadata (
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS metadata_fields (
    sha256 TEXT PRIMARY KEY,
    fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS first_seen (
    file TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
DROP TABLE IF EXISTS pages;
"""


def _init_schema(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)


@dataclass(frozen=True)
class CachedPage:
    """An index page as last fetched, with what is needed to decide freshness and revalidate."""

    url: str
    body: bytes
    content_type: str
    final_url: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float = 0.0
    #: Seconds the page stays fresh after ``fetched_at``; ``None`` = revalidate on every use.
    max_age: float | None = None
    digest: str = ""

    def is_fresh(self, now: float | None = None) -> bool:
        if self.max_age is None:
            return False
        return (time.time() if now is None else now) < self.fetched_at + self.max_age

    def validators(self) -> dict[str, str]:
        """Headers for a conditional request."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def parse_cache_control(headers: Mapping[str, str]) -> tuple[bool, float | None]:
    """(storable, max-age seconds) from ``Cache-Control``; ``no-cache`` means revalidate every time."""
    value = headers.get("cache-control", "").lower()
    if "no-store" in value:
        return False, None
    if "no-cache" in value:
        return True, 0.0
    match = re.search(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", value)
    if match:
        return True, float(match.group(1))
    return True, heuristic_freshness(headers)


#: Upper bound of a heuristic freshness lifetime (the same as the common index default ``max-age=600``).
HEURISTIC_MAX_SECONDS = 600.0


def heuristic_freshness(headers: Mapping[str, str]) -> float | None:
    """RFC 9111 section 4.2.2: without explicit expiry, 10% of the time since ``Last-Modified``, capped.

    ``None`` (revalidate on every use) when the response has no ``Last-Modified`` or carries ``Expires``
    (an explicit expiry this cache does not interpret).
    """
    if "expires" in headers:
        return None
    last_modified = headers.get("last-modified")
    if not last_modified:
        return None
    try:
        modified = parsedate_to_datetime(last_modified).timestamp()
        date = parsedate_to_datetime(headers["date"]).timestamp() if headers.get("date") else time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, min(0.1 * (date - modified), HEURISTIC_MAX_SECONDS))


class IndexCache:
    """The on-disk cache under ``directory`` (created if needed); share one instance per process."""

    FILENAME = "index-cache.sqlite3"

    def __init__(
        self,
        directory: Path,
        parsed_entries: int = 8192,
        *,
        health: HealthState | None = None,
        clock: Callable[[], float] = time.time,
        shared: CacheTier | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        #: The tier shared with other replicas (metadata and pages), or None.
        self.shared = shared
        #: What "now" is for :meth:`first_seen` (injectable so tests need no sleeps).
        self.clock = clock
        self.path = directory / self.FILENAME
        self._health = health
        self._lock = threading.Lock()  # the writer connection
        #: Bumped on every recovery from a corrupt file: pooled readers of an older generation are closed.
        self._generation = 0
        #: Set when the file is corrupt and cannot be replaced: the cache then keeps nothing (a slower cache).
        self._broken: str | None = None
        self._db: sqlite3.Connection | None = None
        try:
            self._db = open_checked(self.path, _init_schema, lambda path: self._connect())
        except (sqlite3.DatabaseError, OSError) as exc:
            self._give_up(exc)
        # Readers: a pool of connections (WAL lets them read concurrently), one per concurrent reader thread.
        # A reader in use is only ever closed by the thread using it: closing a connection another thread is
        # executing on can crash the interpreter.
        self._readers: queue.SimpleQueue[tuple[int, sqlite3.Connection]] = queue.SimpleQueue()
        self._readers_lock = threading.Lock()
        self._readers_closed = False
        self._parsed_lock = threading.Lock()
        self._parsed: OrderedDict[tuple, object] = OrderedDict()
        self._parsed_max = parsed_entries
        # Write-behind: stores are queued and written by one thread in batched transactions (a resolution's
        # hundred small transactions queued on the writer were a large part of a cold resolution); until then
        # reads of this instance see them in the pending maps.
        self._pending_lock = threading.Condition()
        self._ops: list[tuple] = []
        self._pending_pages: dict[str, CachedPage] = {}
        #: Revalidations of pages already written, until they are written too (url -> the queued op).
        self._pending_refreshes: dict[str, tuple] = {}
        self._pending_meta: dict[str, bytes] = {}
        self._pending_fields: dict[str, str] = {}
        self._pending_seen: dict[str, float] = {}
        self._writing = False
        self._closed = False
        self._writer: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)

    def _read_one(self, sql: str, args: tuple) -> tuple | None:
        """One row of ``sql``; a corrupt file is replaced and the read retried once (then a miss)."""
        for attempt in (1, 2):
            if self._broken is not None:
                return None
            generation = self._generation
            try:
                return self._read_once(sql, args)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc) or attempt == 2:
                    raise
                self._recover(generation, exc)
        return None

    def _read_once(self, sql: str, args: tuple) -> tuple | None:
        try:
            generation, reader = self._readers.get_nowait()
        except queue.Empty:
            # Never while _recover replaces the file: a connection made between the move and the new schema
            # would create an empty file and read "no such table" from it.
            with self._readers_lock:
                generation, reader = self._generation, self._connect()
        try:
            return reader.execute(sql, args).fetchone()
        finally:
            with self._readers_lock:
                if self._readers_closed or generation != self._generation:
                    reader.close()  # the cache closed (or was replaced) while this read ran: not pooled again
                else:
                    self._readers.put((generation, reader))

    def _recover(self, generation: int, exc: BaseException) -> None:
        """Replace the corrupt file (unless another thread did since ``generation``); give up when that fails."""
        with self._lock:
            if generation != self._generation or self._broken is not None:
                return
            # The readers' lock is held until the new file has its schema: no reader connects in between (see
            # _read_once); readers of the old file see the new generation and close theirs.
            with self._readers_lock:
                self._generation += 1
                self._close_idle_readers()
                if self._db is not None:
                    self._db.close()
                    self._db = None
                try:
                    move_aside(self.path, exc)
                    self._db = open_checked(self.path, _init_schema, lambda path: self._connect())
                except (sqlite3.DatabaseError, OSError) as again:
                    self._give_up(again)
                    return
        if self._health is not None:
            self._health.set_ok(f"index cache {self.path}")

    def _give_up(self, exc: BaseException) -> None:
        self._broken = str(exc)
        log.error("index cache %s is unusable and cannot be replaced: %s", self.path, exc)
        if self._health is not None:
            self._health.set_broken(f"index cache {self.path}", str(exc))

    def _close_idle_readers(self) -> None:
        """Close the pooled readers (caller holds ``_readers_lock``); one in use is closed by its thread."""
        while True:
            try:
                self._readers.get_nowait()[1].close()
            except queue.Empty:
                break

    # ------------------------------------------------------------------------------------------ pages

    def get_page(self, url: str, *, body: bool = True) -> CachedPage | None:
        """The stored page; with ``body=False`` its body is left out (``b""``): enough to decide freshness
        and revalidate, without reading a large body that a new download may replace anyway."""
        with self._pending_lock:
            pending = self._pending_pages.get(url)
            refresh = self._pending_refreshes.get(url)
        if pending is not None:
            return pending if body else replace(pending, body=b"")
        head = "content_type, final_url, etag, last_modified, fetched_at, max_age, h.digest"
        if body:
            row = self._read_one(
                f"SELECT b.body, {head} FROM page_heads h JOIN page_bodies b ON b.digest = h.digest WHERE url = ?",
                (url,),
            )
        else:
            row = self._read_one(f"SELECT x'', {head} FROM page_heads h WHERE url = ?", (url,))
        if row is None:
            shared = self._shared_page(url) if self.shared is not None else None
            if shared is None:
                return None
            return shared if body else replace(shared, body=b"")
        page = CachedPage(url, bytes(row[0]), *row[1:])
        if refresh is not None:  # revalidated since it was written: this instance sees that at once too
            page = replace(page, fetched_at=refresh[2], max_age=refresh[3])
        return page

    def put_page(self, page: CachedPage, *, share: bool = True) -> CachedPage:
        """Store ``page`` (computing its digest), and unless ``share`` is false in the shared tier; return it
        with the digest filled in.

        Bodies are stored once per digest, apart from the validators and freshness, so storing a page whose
        body did not change (every download from an index that sends no validators) writes only its head.
        """
        page = replace(page, digest=hashlib.sha256(page.body).hexdigest())
        with self._pending_lock:
            self._pending_pages[page.url] = page
            self._pending_refreshes.pop(page.url, None)  # the new page supersedes a queued revalidation
            self._enqueue(("page", page))
        if share and self.shared is not None and len(page.body) <= MAX_VALUE_BYTES:
            self.shared.put(SHARED_PAGE_BODIES, page.digest, page.body, SHARED_PAGE_SECONDS)
            self._share_head(page)
        return page

    def _share_head(self, page: CachedPage) -> None:
        """Put ``page``'s head (validators, freshness, digest of its body) in the shared tier."""
        assert self.shared is not None
        head = {"digest": page.digest, "content_type": page.content_type, "final_url": strip_userinfo(page.final_url),
                "etag": page.etag, "last_modified": page.last_modified, "fetched_at": page.fetched_at,
                "max_age": page.max_age}
        self.shared.put(SHARED_PAGE_HEADS, shared_page_key(page.url), json.dumps(head).encode(), SHARED_PAGE_SECONDS)

    def _shared_page(self, url: str) -> CachedPage | None:
        """The page another replica stored under ``url`` (with its validators and freshness), kept locally too;
        None when the tier has no head, or no body matching the head's digest."""
        assert self.shared is not None
        raw = self.shared.get(SHARED_PAGE_HEADS, shared_page_key(url))
        if raw is None:
            return None
        try:
            head = json.loads(raw)
            digest = str(head["digest"])
            fields = (str(head["content_type"]), str(head["final_url"]), head.get("etag"), head.get("last_modified"),
                      float(head["fetched_at"]), None if head.get("max_age") is None else float(head["max_age"]))
        except (ValueError, KeyError, TypeError):
            return None
        body = self.shared.get(SHARED_PAGE_BODIES, digest)
        if body is None or hashlib.sha256(body).hexdigest() != digest:
            return None
        return self.put_page(CachedPage(url, body, *fields), share=False)

    def _write_page(self, db: sqlite3.Connection, page: CachedPage) -> None:
        head = (page.content_type, page.final_url, page.etag, page.last_modified, page.fetched_at, page.max_age)
        row = db.execute("SELECT digest FROM page_heads WHERE url = ?", (page.url,)).fetchone()
        old = row[0] if row is not None else None
        if old != page.digest:
            db.execute("INSERT OR IGNORE INTO page_bodies (digest, body) VALUES (?, ?)", (page.digest, page.body))
        db.execute(
            "INSERT OR REPLACE INTO page_heads"
            " (url, digest, content_type, final_url, etag, last_modified, fetched_at, max_age)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (page.url, page.digest, *head),
        )
        if old is not None and old != page.digest:
            db.execute(
                "DELETE FROM page_bodies WHERE digest = ? AND NOT EXISTS (SELECT 1 FROM page_heads WHERE digest = ?)",
                (old, old),
            )

    def refresh_page(self, page: CachedPage, fetched_at: float, max_age: float | None) -> CachedPage:
        """Record a successful revalidation (HTTP 304): the stored body is fresh again."""
        fresh = replace(page, fetched_at=fetched_at, max_age=max_age)
        with self._pending_lock:
            pending = self._pending_pages.get(page.url)
            if pending is not None:  # not written yet: write it again, fresh (the overlay is dropped once written)
                pending = self._pending_pages[page.url] = replace(pending, fetched_at=fetched_at, max_age=max_age)
                self._enqueue(("page", pending))
            else:
                op = ("refresh", page.url, fetched_at, max_age)
                self._pending_refreshes[page.url] = op
                self._enqueue(op)
        if self.shared is not None and fresh.digest:
            self._share_head(fresh)  # the body is there already (or was too large to share: then a miss)
        return fresh

    def parsed(self, key: tuple, parse: Callable[[], T]) -> T:
        """``parse()``'s result memoised in memory under ``key`` (include the page digest in it)."""
        with self._parsed_lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return self._parsed[key]  # type: ignore[return-value]
        value = parse()
        with self._parsed_lock:
            self._parsed[key] = value
            while len(self._parsed) > self._parsed_max:
                self._parsed.popitem(last=False)
        return value

    # --------------------------------------------------------------------------------------- metadata

    def peek_parsed(self, key: tuple) -> object | None:
        """What :meth:`parsed` holds under ``key``, or None (nothing computed)."""
        with self._parsed_lock:
            value = self._parsed.get(key)
            if value is not None:
                self._parsed.move_to_end(key)
            return value

    def get_metadata(self, sha256: str) -> bytes | None:
        with self._pending_lock:
            pending = self._pending_meta.get(sha256.lower())
        if pending is not None:
            return pending
        row = self._read_one("SELECT data FROM metadata WHERE sha256 = ?", (sha256.lower(),))
        if row:
            return bytes(row[0])
        data = self.shared.get(SHARED_METADATA, sha256.lower()) if self.shared is not None else None
        if data is not None:
            self.put_metadata(sha256, data, share=False)
        return data

    def get_metadata_fields(self, sha256: str) -> tuple[str | None, bytes | None]:
        """``(fields, None)`` when the parsed fields of the metadata stored under ``sha256`` are kept
        (``CoreMetadata.to_fields``), else ``(None, raw bytes or None)``: one query either way."""
        key = sha256.lower()
        with self._pending_lock:
            fields, data = self._pending_fields.get(key), self._pending_meta.get(key)
        if fields is not None:
            return fields, None
        row = self._read_one(
            "SELECT f.fields, CASE WHEN f.fields IS NULL THEN m.data END FROM (SELECT ? AS k) q"
            " LEFT JOIN metadata_fields f ON f.sha256 = q.k LEFT JOIN metadata m ON m.sha256 = q.k",
            (key,),
        )
        if row is None or (row[0] is None and row[1] is None):
            if data is None and self.shared is not None:
                return self._shared_fields(key)
            return None, data
        return row[0], None if row[1] is None else bytes(row[1])

    def _shared_fields(self, key: str) -> tuple[str | None, bytes | None]:
        """What the shared tier holds for ``key`` (its fields, else its raw bytes), kept locally too."""
        assert self.shared is not None
        shared_fields = self.shared.get(SHARED_METADATA_FIELDS, key)
        if shared_fields is not None:
            text = shared_fields.decode("utf-8", "replace")
            self.put_metadata_fields(key, text, share=False)
            return text, None
        data = self.shared.get(SHARED_METADATA, key)
        if data is not None:
            self.put_metadata(key, data, share=False)
        return None, data

    def put_metadata_fields(self, sha256: str, fields: str, *, share: bool = True) -> None:
        with self._pending_lock:
            self._pending_fields[sha256.lower()] = fields
            self._enqueue(("fields", sha256.lower(), fields))
        if share and self.shared is not None:
            self.shared.put(SHARED_METADATA_FIELDS, sha256.lower(), fields.encode(), None)

    def put_metadata(self, sha256: str, data: bytes, *, share: bool = True) -> None:
        with self._pending_lock:
            self._pending_meta[sha256.lower()] = data
            self._enqueue(("meta", sha256.lower(), data))
        if share and self.shared is not None:
            self.shared.put(SHARED_METADATA, sha256.lower(), data, None)

    # ------------------------------------------------------------------------------------ first seen

    def first_seen(self, files: Sequence[str]) -> dict[str, float]:
        """When this cache first saw each of ``files`` (keys naming a file: ``sha256:<hex>`` or ``url:<url>``).

        Files never seen before are recorded as seen now (:attr:`clock`) and that time returned: a listing
        that gives no upload time still has a time for ``exclude-newer`` (see :mod:`.first_seen`). Once
        recorded, a time never changes (only a cache file replaced after corruption forgets them).
        """
        out: dict[str, float] = {}
        with self._pending_lock:
            for key in files:
                seen = self._pending_seen.get(key)
                if seen is not None:
                    out[key] = seen
        wanted = [key for key in dict.fromkeys(files) if key not in out]
        for start in range(0, len(wanted), _SEEN_BATCH):
            batch = wanted[start : start + _SEEN_BATCH]
            out.update(self._read_seen(batch))
        missing = [key for key in wanted if key not in out]
        if missing:
            now = self.clock()
            with self._pending_lock:
                for key in missing:
                    # Another thread may have recorded it meanwhile: the first time wins.
                    out[key] = self._pending_seen.setdefault(key, now)
                    if out[key] == now:
                        self._enqueue(("seen", key, now))
        return out

    def _read_seen(self, keys: list[str]) -> dict[str, float]:
        marks = ",".join("?" * len(keys))
        for attempt in (1, 2):
            if self._broken is not None:
                return {}
            generation = self._generation
            try:
                return dict(self._read_all(f"SELECT file, seen_at FROM first_seen WHERE file IN ({marks})",
                                           tuple(keys)))
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc) or attempt == 2:
                    raise
                self._recover(generation, exc)
        return {}

    def _read_all(self, sql: str, args: tuple) -> list[tuple]:
        try:
            generation, reader = self._readers.get_nowait()
        except queue.Empty:
            generation, reader = self._generation, self._connect()
        try:
            return reader.execute(sql, args).fetchall()
        finally:
            with self._readers_lock:
                if self._readers_closed or generation != self._generation:
                    reader.close()
                else:
                    self._readers.put((generation, reader))

    # ------------------------------------------------------------------------------------ write-behind

    def _enqueue(self, op: tuple) -> None:
        """Queue a store (caller holds ``_pending_lock``); the writer thread starts on first use."""
        if self._closed:  # a late store (a prefetch finishing after close): a cache may drop it
            return
        self._ops.append(op)
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="index-cache-writer", daemon=True)
            self._writer.start()
        self._pending_lock.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._pending_lock:
                while not self._ops and not self._closed:
                    self._pending_lock.wait()
                if not self._ops:
                    return
                ops, self._ops = self._ops, []
                self._writing = True
            try:
                self._apply(ops)
            except Exception:  # noqa: BLE001 - a cache that cannot be written is only a slower cache
                log.warning("index cache: %d stores not written", len(ops), exc_info=True)
            finally:
                with self._pending_lock:
                    self._writing = False
                    for op in ops:  # what is on disk now needs no overlay (unless stored again since)
                        if op[0] == "page":
                            page: CachedPage = op[1]
                            if self._pending_pages.get(page.url) is page:
                                del self._pending_pages[page.url]
                        elif op[0] == "refresh" and self._pending_refreshes.get(op[1]) is op:
                            del self._pending_refreshes[op[1]]
                        elif op[0] == "meta" and self._pending_meta.get(op[1]) is op[2]:
                            del self._pending_meta[op[1]]
                        elif op[0] == "fields" and self._pending_fields.get(op[1]) is op[2]:
                            del self._pending_fields[op[1]]
                        elif op[0] == "seen" and self._pending_seen.get(op[1]) == op[2]:
                            del self._pending_seen[op[1]]
                    self._pending_lock.notify_all()

    def _apply(self, ops: list[tuple]) -> None:
        """Write ``ops`` in one transaction; a corrupt file is replaced and the write retried once."""
        for attempt in (1, 2):
            if self._broken is not None:
                return
            generation = self._generation
            try:
                self._apply_once(ops)
                return
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc) or attempt == 2:
                    raise
                self._recover(generation, exc)

    def _apply_once(self, ops: list[tuple]) -> None:
        with self._lock:
            db = self._db
            if db is None:
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    if op[0] == "page":
                        self._write_page(db, op[1])
                    elif op[0] == "refresh":
                        _, url, fetched_at, max_age = op
                        db.execute("UPDATE page_heads SET fetched_at = ?, max_age = ? WHERE url = ?",
                                   (fetched_at, max_age, url))
                    elif op[0] == "meta":
                        db.execute("INSERT OR IGNORE INTO metadata (sha256, data) VALUES (?, ?)", (op[1], op[2]))
                    elif op[0] == "fields":
                        db.execute(
                            "INSERT OR REPLACE INTO metadata_fields (sha256, fields) VALUES (?, ?)", (op[1], op[2])
                        )
                    elif op[0] == "seen":  # the first time wins (another process may have recorded it)
                        db.execute("INSERT OR IGNORE INTO first_seen (file, seen_at) VALUES (?, ?)", (op[1], op[2]))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def flush(self) -> None:
        """Wait until every queued store is written."""
        with self._pending_lock:
            while self._ops or self._writing:
                self._pending_lock.wait()

    def close(self) -> None:
        """Write what is queued, then close the connections."""
        with self._pending_lock:
            if self._closed:
                return
            self._closed = True
            self._pending_lock.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()
        with self._readers_lock:
            self._readers_closed = True
            self._close_idle_readers()
        with self._lock:
            if self._db is not None:
                self._db.close()

    def __enter__(self) -> IndexCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
