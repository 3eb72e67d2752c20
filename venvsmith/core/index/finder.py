""":class:`IndexSource`: the :class:`~venvsmith.core.source.PackageSource` over real indexes.

Index strategy as uv has it: indexes in priority order are the extra indexes in the order given, then the
default index. ``first-index`` uses, for each name, only the first index that knows it (so a private extra
index cannot be shadowed by a public package of the same name); ``unsafe-best-match`` unions them all.
``package_index`` pins a name to one index. Files from find-links locations always join.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import IO, TypeVar
from urllib.parse import unquote, urldefrag, urlsplit

from packaging.utils import NormalizedName, canonicalize_name

from ..distfile import DistFile
from ..errors import IndexUnavailable, InvalidInput, ServiceError
from ..jsonlog import ContextThreadPool
from ..metadata import CoreMetadata
from .archives import archive_metadata
from .auth import Auth, Credential, redact, split_userinfo
from .cache import CachedPage, IndexCache, parse_cache_control
from .first_seen import with_first_seen
from .http import MAX_CONNECTIONS, HttpClient, unexpected_status
from .limits import MAX_PAGE_BYTES
from .local import find_links_files, is_file_url, location_path, static_index_files
from .metadata_fetch import MetadataFetcher, copy_and_hash, parse_metadata, require_static, verify_digests
from .pages import ACCEPT, PageError, fragment_hashes, parse_links_page, parse_project_page
from .project_status import UNUSABLE, ProjectStatus, page_project_status
from .provenance import MAX_DOCUMENT_BYTES, Identity, publisher_identities
from .settings import IndexSettings, _Index
from .stats import SourceStats

K = TypeVar("K")
V = TypeVar("V")

#: ``on_event(kind, name, detail)``: kind ``"page"`` (name = project, detail = "from <url> (<how>)") or
#: ``"metadata"`` (name = project, detail = "<version> from <filename> (<how>)").
EventCallback = Callable[[str, str, str], None]


class _SingleFlight:
    """Memoised, de-duplicated computations: concurrent callers for one key share one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[object, Future] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:  # stored and re-raised to every caller
                future.set_exception(exc)
        return future.result()

    def started(self, key: object) -> bool:
        """Whether ``key`` is computed or being computed (a hint: it may start right after a ``False``)."""
        return key in self._futures

    def done(self) -> dict[object, object]:
        """The results computed so far (failed and running ones left out)."""
        with self._lock:
            futures = list(self._futures.items())
        return {k: f.result() for k, f in futures if f.done() and f.exception() is None}

    def put(self, key: object, value: object = None, error: BaseException | None = None) -> None:
        """Record a result computed elsewhere (unless one is already there)."""
        future: Future = Future()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
        with self._lock:
            self._futures.setdefault(key, future)


@dataclass(frozen=True)
class _Page:
    body: bytes
    content_type: str
    final_url: str
    digest: str
    how: str


class IndexSource:
    """Lists files and reads metadata from the configured indexes and find-links locations.

    ``http`` and ``cache`` may be shared between sources (one per server process: pooled connections, one
    SQLite file, one parsed-page LRU); when omitted they are created from ``settings`` and closed by
    :meth:`close`. Thread-safe; each name is listed and each file's metadata read at most once per source.
    """

    def __init__(
        self,
        settings: IndexSettings,
        *,
        http: HttpClient | None = None,
        cache: IndexCache | None = None,
        on_event: EventCallback | None = None,
        workers: int = 16,
        deadline: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.settings = settings
        #: The caller's deadline (``time.monotonic()``): no index fetch of this source runs past it.
        self.deadline = deadline
        self.stats = SourceStats()
        self.on_event = on_event
        self._own_http = http is None
        self.http = http or HttpClient(
            timeout=settings.timeout,
            retries=settings.retries,
            ca_bundle=settings.ca_bundle,
            client_cert=settings.client_cert,
            max_connections=max_connections or MAX_CONNECTIONS,
        )
        self._own_cache = cache is None and settings.cache_dir is not None
        self.cache = (
            cache if cache is not None else (IndexCache(settings.cache_dir) if settings.cache_dir else None)
        )
        configured = settings.indexes()
        pinned = list(settings.package_index.values())
        self.auth = Auth(settings.credentials, [*configured, *pinned, *settings.find_links])
        self._indexes = [_Index.of(url) for url in configured]
        self._pinned = {
            canonicalize_name(name): _Index.of(url) for name, url in settings.package_index.items()
        }
        self._metadata = MetadataFetcher(self.http, self.auth, self.cache, self.stats, settings.offline, deadline)
        self._executor = ContextThreadPool(max_workers=workers, thread_name_prefix="index-source")
        self._files = _SingleFlight()
        self._metas = _SingleFlight()
        self._find_links = _SingleFlight()
        self._roots = _SingleFlight()
        #: PEP 792 statuses other than active, per name, in index order (see :meth:`project_statuses`).
        self._statuses: dict[NormalizedName, list[ProjectStatus]] = {}
        #: Names an index listed while later indexes were not asked for them (first-index).
        self._first_index_only: set[NormalizedName] = set()
        self._closed = False

    # -------------------------------------------------------------------------------- PackageSource

    def files(self, name: NormalizedName) -> Sequence[DistFile]:
        name = canonicalize_name(name)
        return self._files.get(name, lambda: tuple(self._list(name)))

    def metadata(self, file: DistFile) -> CoreMetadata:
        return self._metas.get(file, lambda: self._fetch_metadata(file))

    def prefetch_files(self, names: Iterable[NormalizedName]) -> None:
        for name in names:
            if not self._files.started(canonicalize_name(name)):  # else a no-op task
                self._submit(self.files, name)

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        for file in files:
            if not self._metas.started(file):
                self._submit(self.metadata, file)

    # ----------------------------------------------------------------------------------- listing

    def _list(self, name: NormalizedName) -> list[DistFile]:
        indexes = [self._pinned[name]] if name in self._pinned else self._indexes
        found: list[DistFile] = []
        for i, index in enumerate(indexes):
            files = self._index_files(index, name)
            if files is None:
                continue
            found.extend(files)
            if self.settings.strategy == "first-index":
                if i + 1 < len(indexes):
                    self._first_index_only.add(name)
                break
        found.extend(f for f in self._find_links_files() if f.name == name)
        return with_first_seen(_unique(found), self.cache)

    def first_index_only(self) -> frozenset[NormalizedName]:
        """Names found on an index before the last one, so that (first-index) later indexes were not asked."""
        return frozenset(self._first_index_only)

    def known_names(self) -> set[NormalizedName]:
        """Project names this source can tell exist, cheaply: those it listed files of, those of find-links files,
        the projects of ``file://`` trees, and the project list (root page) of an HTTP index when it is at most
        :data:`ROOT_PAGE_BYTES` (a public index's is far larger: not read). For "did you mean" hints."""
        names = {canonicalize_name(str(name)) for name, files in self._files.done().items() if files}
        names.update(f.name for f in self._find_links_files())
        for index in [*self._indexes, *self._pinned.values()]:
            names.update(self._roots.get(index.url, partial(self._root_names, index)))
        return names

    def _root_names(self, index: _Index) -> frozenset[NormalizedName]:
        """The projects of one index's root page, read once per source through the page cache (fresh: not
        fetched; stale: revalidated), capped at :data:`ROOT_PAGE_BYTES`; none when that fails."""
        from venvsmith.core.index.project_list import ROOT_PAGE_BYTES, ROOT_PAGE_SECONDS, local_names, parse_root_page

        if index.path is not None:
            return frozenset(local_names(index.path))
        try:
            page = self._page(index.url, index.display, max_bytes=ROOT_PAGE_BYTES, seconds=ROOT_PAGE_SECONDS)
        except ServiceError:  # too large, unreachable, refused: no hint
            return frozenset()
        if page is None:
            return frozenset()
        parse = lambda: frozenset(parse_root_page(page.body, page.content_type))  # noqa: E731
        if self.cache is None:
            return parse()
        return self.cache.parsed(("root", page.final_url, page.digest), parse)

    def project_statuses(self) -> dict[NormalizedName, tuple[ProjectStatus, ...]]:
        """PEP 792 statuses (other than active) the indexes gave the names listed so far.

        A quarantined project's files on that index were left out of :meth:`files` (and, under the
        first-index strategy, no later index was asked: the name is known to the first one).
        """
        return {name: tuple(found) for name, found in list(self._statuses.items())}

    def _index_files(self, index: _Index, name: NormalizedName) -> list[DistFile] | None:
        """Files of ``name`` on one index; ``None`` when the index does not know the name."""
        if index.path is not None:
            files = static_index_files(index.path, name, index.display)
            if files is not None:
                self.stats.add("pages_local")
                self._event("page", name, f"from {index.display} (local)")
            return files
        page_url = f"{index.url}{name}/"
        page = self._page(page_url, index.display)
        if page is None:
            return None
        self._event("page", name, f"from {redact(page.final_url)} ({page.how})")

        def parse() -> list[DistFile]:
            try:
                return parse_project_page(page.body, page.content_type, page.final_url, index.display, name)
            except PageError as exc:
                raise IndexUnavailable(
                    index.display, f"unreadable page {redact(page.final_url)}: {exc}"
                ) from None

        if self.cache is None:
            status = page_project_status(page.body, page.content_type, index.display)
            files = parse()
        else:
            status = self.cache.parsed(
                ("status", page.final_url, index.display, page.digest),
                lambda: page_project_status(page.body, page.content_type, index.display),
            )
            files = self.cache.parsed(("project", page.final_url, index.display, name, page.digest), parse)
        if status is not None:
            self._statuses.setdefault(name, []).append(status)
            if status.status in UNUSABLE:
                return []
        return files

    def _find_links_files(self) -> tuple[DistFile, ...]:
        """Every file of every find-links location, read once per source."""
        return self._find_links.get("all", lambda: tuple(self._read_find_links()))

    def _read_find_links(self) -> list[DistFile]:
        out: list[DistFile] = []
        for location in self.settings.find_links:
            display = redact(location)
            path = location_path(location)
            if path is not None:
                out.extend(find_links_files(path, display))
                self.stats.add("pages_local")
                continue
            url = split_userinfo(location)[0]
            page = self._page(url, display)
            if page is None:
                continue
            self._event("page", "", f"from {redact(page.final_url)} ({page.how})")
            out.extend(parse_links_page(page.body, page.content_type, page.final_url, display))
        return out

    def _page_cache_key(self, url: str) -> str:
        """Pages fetched with credentials are cached per credential: never served to another caller."""
        credential = self.auth.for_url(url)
        if credential is None:
            return url
        return f"{url}#credential={hashlib.sha256(credential.header().encode()).hexdigest()[:32]}"

    def _page(self, url: str, display: str, *, max_bytes: int = MAX_PAGE_BYTES, seconds: float | None = None
              ) -> _Page | None:
        """An index page through the page cache; ``None`` for 404/410 (or offline and not cached). ``max_bytes``
        and ``seconds`` bound the download (a larger page is an error)."""
        key = self._page_cache_key(url)
        # The stored body is read only when it will be used (fresh, offline, or revalidated): a page that
        # is downloaded again (no validators, or changed) replaces it anyway.
        cached = self.cache.get_page(key, body=False) if self.cache is not None else None
        if cached is not None and (self.settings.offline or cached.is_fresh()):
            cached = self.cache.get_page(key) if self.cache is not None else None
            if cached is not None:
                self.stats.add("pages_cached")
                return _Page(cached.body, cached.content_type, cached.final_url, cached.digest, "cache")
        if self.settings.offline:
            return None
        headers = {"Accept": ACCEPT, **(cached.validators() if cached is not None else {})}
        response = self.http.get(
            url, index=display, auth=self.auth, headers=headers, max_bytes=max_bytes, deadline=self.deadline,
            seconds=seconds,
        )
        now = time.time()
        storable, max_age = parse_cache_control(response.headers)
        if response.status_code == 304 and cached is not None and self.cache is not None:
            stored = self.cache.get_page(key)
            if stored is None or stored.digest != cached.digest:  # replaced meanwhile: ask again, unconditionally
                response = self.http.get(
                    url, index=display, auth=self.auth, headers={"Accept": ACCEPT}, max_bytes=max_bytes,
                    deadline=self.deadline, seconds=seconds,
                )
                now = time.time()
                storable, max_age = parse_cache_control(response.headers)
            else:
                self.stats.add("pages_revalidated")
                self.stats.add("pages_cached")
                cached = self.cache.refresh_page(stored, now, max_age)
                return _Page(cached.body, cached.content_type, cached.final_url, cached.digest, "revalidated")
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise unexpected_status(response, display)
        self.stats.add("pages_fetched")
        self.stats.add("bytes_downloaded", len(response.content))
        fetched = CachedPage(
            key,
            response.content,
            response.headers.get("content-type", ""),
            str(response.url),
            response.headers.get("etag"),
            response.headers.get("last-modified"),
            now,
            max_age,
        )
        if self.cache is not None and storable:
            fetched = self.cache.put_page(fetched)
        digest = fetched.digest or str(hash(fetched.body))
        return _Page(fetched.body, fetched.content_type, fetched.final_url, digest, "network")

    # ---------------------------------------------------------------------------------- metadata

    def _fetch_metadata(self, file: DistFile) -> CoreMetadata:
        meta, how = self._metadata.fetch(file)
        self._event("metadata", file.name, f"{file.version} from {file.filename} ({how})")
        return meta

    # --------------------------------------------------------------------------------- provenance

    def attestation_identities(self, files: Sequence[DistFile]) -> list[tuple[Identity, ...]]:
        """PEP 740 publisher identities of each file (``()`` for a file without a provenance document),
        fetched in parallel. Informational: a document that cannot be read, is too large or is not one
        gives ``()`` rather than failing the resolution that asked."""
        return list(self._executor.map(self._identities, files))

    def provenance_documents(self, files: Sequence[DistFile]) -> list[bytes | None]:
        """Each file's PEP 740 provenance document, fetched in parallel: ``None`` when the index serves none (no
        URL, not 200, unreadable); at most ``MAX_DOCUMENT_BYTES + 1`` bytes (so a larger one is seen as such).
        An index that cannot be reached raises its :class:`ServiceError`."""
        return list(self._executor.map(self._document, files))

    def _identities(self, file: DistFile) -> tuple[Identity, ...]:
        try:
            body = self._document(file)
        except ServiceError:
            return ()
        return publisher_identities(body) if body is not None else ()

    def _document(self, file: DistFile) -> bytes | None:
        url = file.provenance
        if not url:
            return None
        try:
            if is_file_url(url):
                # Only next to a file that is itself on disk: a remote index cannot make the server read
                # (and echo claims of) its local files.
                if not file.is_local:
                    return None
                with open(location_path(url) or "", "rb") as fh:
                    return fh.read(MAX_DOCUMENT_BYTES + 1)
            if self.settings.offline or not url.startswith(("http://", "https://")):
                return None
            with self.http.stream(url, index=file.index, auth=self.auth, deadline=self.deadline) as response:
                if response.status_code != 200:
                    return None
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        break
            return bytes(body[: MAX_DOCUMENT_BYTES + 1])
        except OSError:
            return None

    def resolve_file_url(self, url: str) -> DistFile:
        """A :class:`DistFile` for a direct URL requirement (``name @ https://.../x.whl`` or file://).

        The file is read or downloaded once to compute its sha256 (checked against a ``#sha256=`` fragment
        when present); its metadata is extracted at the same time, so :meth:`metadata` needs no request.
        """
        bare, fragment = urldefrag(url.strip())
        stripped, userinfo = split_userinfo(bare)
        where = redact(bare)
        filename = unquote(urlsplit(stripped).path.rsplit("/", 1)[-1])
        expected = fragment_hashes(fragment)
        if DistFile.from_listing(filename, stripped, "") is None:
            raise InvalidInput(redact(url), "not a wheel or sdist URL")
        path = location_path(stripped)
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    digests, size = copy_and_hash(iter(lambda: fh.read(1 << 20), b""), None, expected)
                    verify_digests(filename, expected, digests)
                    fh.seek(0)
                    return self._direct(fh, filename, path.absolute().as_uri(), digests["sha256"], size)
            except OSError as exc:
                raise IndexUnavailable(where, f"cannot read {path}: {exc.strerror or exc}") from None
        if self.settings.offline:
            raise IndexUnavailable(where, "offline: cannot download a direct URL")
        auth = Auth([Credential(stripped, *userinfo)]) if userinfo else self.auth
        fetcher = MetadataFetcher(self.http, auth, None, self.stats)
        with fetcher.download(stripped, where, filename, expected) as spool:
            return self._direct(spool, filename, stripped, spool.digests["sha256"], spool.size)

    def _direct(self, fileobj: IO[bytes], filename: str, url: str, sha256: str, size: int) -> DistFile:
        """The direct-URL file, with its metadata (or the error reading it) recorded for :meth:`metadata`."""
        file = DistFile.from_listing(filename, url, "", hashes={"sha256": sha256}, size=size, origin="direct")
        assert file is not None
        try:
            data = archive_metadata(fileobj, file)
            meta = parse_metadata(file, data)
            self.stats.add("metadata_fetched")
            if self.cache is not None:
                self.cache.put_metadata(sha256, data)
            require_static(file, meta)
            self._metas.put(file, meta)
        except ServiceError as exc:
            self._metas.put(file, error=exc)
        return file

    # ------------------------------------------------------------------------------------ plumbing

    def _submit(self, fn: Callable[[K], object], arg: K) -> None:
        if self._closed:
            return
        try:
            future = self._executor.submit(fn, arg)
        except RuntimeError:  # executor shut down concurrently
            return
        # Errors surface on the real call; a cancelled prefetch (the source closed) is no error.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _event(self, kind: str, name: str, detail: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, name, detail)
            except Exception:  # noqa: BLE001 - a progress observer must not break the resolution
                pass

    def close(self) -> None:
        """Stop prefetching and close what this source created."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._own_http:
            self.http.close()
        if self._own_cache and self.cache is not None:
            self.cache.close()

    def __enter__(self) -> IndexSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unique(files: Iterable[DistFile]) -> list[DistFile]:
    """Drop repeated listings of the same file, keeping the first (highest-priority) one.

    Files are equal when their :attr:`DistFile.key` is, whose first part is the file name, so only files
    sharing a name are compared (a listing's hashes are then decoded only for repeated names).
    """
    by_name: dict[str, DistFile | list[DistFile]] = {}
    out = []
    for file in files:
        held = by_name.get(file.filename)
        if held is None:
            by_name[file.filename] = file
        elif isinstance(held, list):
            if file in held:
                continue
            held.append(file)
        elif held == file:
            continue
        else:
            by_name[file.filename] = [held, file]
        out.append(file)
    return out
