"""Core metadata of a :class:`DistFile`, cheapest way first, without running package code.

1. the metadata cache, keyed by the file's sha256 from the listing;
2. local files (file:// indexes, find-links directories): a ``.metadata`` sidecar or the archive itself;
3. PEP 658/714 ``<url>.metadata`` (its hash checked when the index gave one);
4. wheels over HTTP: range requests for the zip's central directory and the METADATA member, falling back
   to a whole download (its hash checked) when the server ignores ranges;
5. sdists over HTTP: a whole download, then the top-level PKG-INFO, accepted only when its dependencies are
   static (Metadata 2.2+, Requires-Dist not Dynamic).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Mapping
from typing import IO, cast

from ..distfile import DistFile
from ..errors import DynamicMetadata, IndexUnavailable, InvalidDistribution
from ..metadata import CoreMetadata
from .archives import archive_metadata, wheel_metadata
from .auth import Auth, redact
from .cache import IndexCache
from .http import HttpClient, Response, unexpected_status
from .limits import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_SECONDS, MAX_METADATA_BYTES, MAX_RANGE_BYTES
from .local import file_url_to_path, is_file_url
from .ranges import TAIL_BYTES, RangeFile, RangesUnsupported, parse_content_range
from .stats import SourceStats

#: Downloads larger than this spill from memory to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
#: Extra bytes fetched after a zip member's central-directory extent, for a longer local header.
LOCAL_HEADER_SLACK = 1024
#: Ask for bytes as stored: a content-encoded range is useless.
IDENTITY = {"Accept-Encoding": "identity"}


class MetadataFetcher:
    """Fetches and checks core metadata; stateless apart from the shared cache and counters."""

    def __init__(
        self,
        http: HttpClient,
        auth: Auth,
        cache: IndexCache | None,
        stats: SourceStats,
        offline: bool = False,
        deadline: float | None = None,
    ) -> None:
        #: The caller's deadline (``time.monotonic()``): no fetch runs past it.
        self.deadline = deadline
        self.http = http
        self.auth = auth
        self.cache = cache
        self.stats = stats
        self.offline = offline

    def fetch(self, file: DistFile) -> tuple[CoreMetadata, str]:
        """(metadata, how: ``cache``, ``local``, ``metadata-file``, ``range`` or ``download``)."""
        sha256 = file.sha256
        if self.cache is not None and sha256:
            # Parsed metadata is kept in memory by file hash (a server answers many requests): no database
            # read, no parsing. Only what parsed cleanly is kept; errors name the file, so they are redone.
            key = ("metadata", sha256.lower(), file.name, file.version, file.is_wheel)  # what the checks use
            meta = cast("CoreMetadata | None", self.cache.peek_parsed(key))  # what this key was stored with
            if meta is None:
                meta = self._from_cache(file, sha256)
                if meta is not None:
                    self.cache.parsed(key, lambda: meta)
            if meta is not None:
                self.stats.add("metadata_cached")
                return meta, "cache"
        data, how = self._read(file)
        self.stats.add("metadata_fetched")
        meta = parse_metadata(file, data)
        if self.cache is not None and sha256:
            self.cache.put_metadata(sha256, data)
            self.cache.put_metadata_fields(sha256, meta.to_fields())
        require_static(file, meta)
        return meta, how

    def _from_cache(self, file: DistFile, sha256: str) -> CoreMetadata | None:
        """Cached metadata of ``file``, checked: from its parsed fields, else parsed from its bytes (and the
        fields kept for next time); ``None`` when not cached."""
        assert self.cache is not None
        fields, data = self.cache.get_metadata_fields(sha256)
        meta = CoreMetadata.from_fields(fields) if fields is not None else None
        if meta is not None:
            check_describes(file, meta)
        else:
            if data is None and fields is not None:  # fields of another layout: the bytes are needed
                data = self.cache.get_metadata(sha256)
            if data is None:
                return None
            meta = parse_metadata(file, data)
            self.cache.put_metadata_fields(sha256, meta.to_fields())
        require_static(file, meta)
        return meta

    # ------------------------------------------------------------------------------------- sources

    def _read(self, file: DistFile) -> tuple[bytes, str]:
        if is_file_url(file.url):
            return self._read_local(file), "local"
        if self.offline:
            raise IndexUnavailable(
                _where(file), f"offline, and the metadata of {file.filename} is not cached"
            )
        if file.core_metadata:
            data = self._metadata_file(file)
            if data is not None:
                return data, "metadata-file"
        if file.is_wheel:
            return self._wheel_by_ranges(file)
        with self.download(file.url, _where(file), file.filename, file.hashes) as spool:
            return archive_metadata(spool, file), "download"

    def _read_local(self, file: DistFile) -> bytes:
        path = file_url_to_path(file.url)
        sidecar = path.with_name(path.name + ".metadata")
        try:
            if file.core_metadata and sidecar.is_file():
                data = sidecar.read_bytes()
                _check_hashes(file, data, file.core_metadata_hashes, f"core metadata {sidecar.name}")
                return data
            with open(path, "rb") as fh:
                return archive_metadata(fh, file)
        except OSError as exc:
            raise IndexUnavailable(_where(file), f"cannot read {path}: {exc.strerror or exc}") from None

    def _metadata_file(self, file: DistFile) -> bytes | None:
        """PEP 658 ``<url>.metadata``; ``None`` when the server does not have it after all."""
        url = file.url + ".metadata"
        response = self.http.get(
            url, index=_where(file), auth=self.auth, max_bytes=MAX_METADATA_BYTES, deadline=self.deadline
        )
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise unexpected_status(response, _where(file))
        data = response.content
        self.stats.add("bytes_downloaded", len(data))
        _check_hashes(file, data, file.core_metadata_hashes, f"core metadata {redact(url)}")
        return data

    def _wheel_by_ranges(self, file: DistFile) -> tuple[bytes, str]:
        """METADATA by a suffix range and one or two more; a whole download if the server ignores ranges."""
        index = _where(file)
        headers = {"Range": f"bytes=-{TAIL_BYTES}", **IDENTITY}
        with self.http.stream(
            file.url, index=index, auth=self.auth, headers=headers, deadline=self.deadline,
            seconds=MAX_DOWNLOAD_SECONDS,
        ) as response:
            response.max_bytes = MAX_RANGE_BYTES if response.status_code == 206 else MAX_DOWNLOAD_BYTES
            if response.status_code == 200:
                # The server ignored the range: this response is the whole file.
                with self._spool(response, file.filename, file.hashes) as spool:
                    return wheel_metadata(spool, file), "download"
            if response.status_code not in (206, 416):
                raise unexpected_status(response, index)
            tail = response.read() if response.status_code == 206 else b""
            extent = parse_content_range(response.headers.get("Content-Range"))
            self.stats.add("range_requests")
            self.stats.add("bytes_downloaded", len(tail))
        if extent is not None and extent[2] is not None and extent[1] - extent[0] + 1 == len(tail):
            reader = RangeFile(extent[2], lambda start, end: self._range(file, start, end), (extent[0], tail))

            def prefetch(info) -> None:
                end = info.header_offset + 30 + len(info.orig_filename.encode()) + len(info.extra)
                reader.ensure(info.header_offset, end + info.compress_size + LOCAL_HEADER_SLACK)

            try:
                return wheel_metadata(reader, file, before_read=prefetch), "range"
            except RangesUnsupported:
                pass
        with self.download(file.url, index, file.filename, file.hashes) as spool:
            return wheel_metadata(spool, file), "download"

    def _range(self, file: DistFile, start: int, end: int) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}", **IDENTITY}
        response = self.http.get(
            file.url, index=_where(file), auth=self.auth, headers=headers, max_bytes=MAX_RANGE_BYTES,
            deadline=self.deadline,
        )
        self.stats.add("range_requests")
        if response.status_code == 200:
            raise RangesUnsupported("the server answered a range request with the whole file")
        if response.status_code != 206:
            raise unexpected_status(response, _where(file))
        extent = parse_content_range(response.headers.get("Content-Range"))
        if extent is None or extent[0] != start:
            raise RangesUnsupported(f"the server sent range {response.headers.get('Content-Range')!r}")
        self.stats.add("bytes_downloaded", len(response.content))
        return response.content

    # ------------------------------------------------------------------------------------ downloads

    def download(self, url: str, index: str, filename: str, hashes: Mapping[str, str]) -> Download:
        """The whole file at ``url`` in a rewound temporary file, checked against ``hashes``.

        The returned file's ``digests`` attribute maps ``sha256`` (always) and each algorithm in ``hashes``
        to the hex digest of what was downloaded. Close it (or use it as a context manager) when done.
        """
        if is_file_url(url):
            raise ValueError("download() is for http(s) URLs")
        with self.http.stream(
            url, index=index, auth=self.auth, headers=IDENTITY, max_bytes=MAX_DOWNLOAD_BYTES, deadline=self.deadline,
            seconds=MAX_DOWNLOAD_SECONDS,
        ) as response:
            if response.status_code != 200:
                raise unexpected_status(response, index)
            return self._spool(response, filename, hashes)

    def _spool(self, response: Response, filename: str, hashes: Mapping[str, str]) -> Download:
        spool = Download(max_size=SPOOL_BYTES)
        try:
            digests, size = copy_and_hash(response.iter_bytes(), spool, hashes)
            verify_digests(filename, hashes, digests)
        except BaseException:
            spool.close()
            raise
        self.stats.add("downloads")
        self.stats.add("bytes_downloaded", size)
        spool.seek(0)
        spool.digests = digests
        spool.size = size
        return spool


class Download(tempfile.SpooledTemporaryFile[bytes]):
    """A downloaded file in a temporary file, with the ``digests`` (by algorithm) and ``size`` of its bytes."""

    digests: dict[str, str]
    size: int


def copy_and_hash(
    chunks: Iterable[bytes], out: IO[bytes] | None, hashes: Mapping[str, str]
) -> tuple[dict[str, str], int]:
    """Write ``chunks`` to ``out`` (when given); return the sha256 and ``hashes``' digests, and the size."""
    hashers = {name: hashlib.new(name) for name in {"sha256", *hashes}}
    size = 0
    for chunk in chunks:
        if out is not None:
            out.write(chunk)
        size += len(chunk)
        for hasher in hashers.values():
            hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}, size


def verify_digests(filename: str, expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    """Raise :class:`InvalidDistribution` when a digest differs from the one the index (or URL) gave."""
    for name, digest in expected.items():
        if actual[name] != digest.lower():
            raise InvalidDistribution(
                filename, f"the file does not match its {name} hash (expected {digest}, got {actual[name]})"
            )


# ------------------------------------------------------------------------------------------ checks


def parse_metadata(file: DistFile, data: bytes) -> CoreMetadata:
    """Parse ``data`` and check that it describes ``file`` (same project and version)."""
    meta = CoreMetadata.from_bytes(data, file.filename)
    check_describes(file, meta)
    return meta


def check_describes(file: DistFile, meta: CoreMetadata) -> None:
    """Refuse metadata of another project or version than ``file``'s name says."""
    if meta.name != file.name or meta.version != file.version:
        raise InvalidDistribution(
            file.filename, f"metadata describes {meta.name} {meta.version}, not {file.name} {file.version}"
        )


def require_static(file: DistFile, meta: CoreMetadata) -> None:
    """Refuse an sdist whose PKG-INFO cannot be trusted for dependencies."""
    if file.is_wheel or meta.dependencies_are_static:
        return
    why = f"Metadata-Version {meta.metadata_version}"
    why += ", Dynamic: Requires-Dist" if "requires-dist" in meta.dynamic else ", before static metadata (2.2)"
    raise DynamicMetadata(
        file.filename,
        f"{file.filename} has dynamic dependencies ({why}); reading them needs a build of it",
    )


def _check_hashes(file: DistFile, data: bytes, hashes: Mapping[str, str], what: str) -> None:
    for name in ("sha256", *sorted(hashes)):
        if name in hashes:
            actual = hashlib.new(name, data).hexdigest()
            if actual != hashes[name].lower():
                raise InvalidDistribution(
                    file.filename,
                    f"{what} does not match its {name} hash from the index"
                    f" (expected {hashes[name]}, got {actual})",
                )
            return


def _where(file: DistFile) -> str:
    """The index to name in errors about ``file``: its index, or the file URL for a direct reference."""
    return file.index or redact(file.url)
