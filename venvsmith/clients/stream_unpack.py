"""A venv archive unpacked while it downloads: GetArtifact chunks -> sha256 -> zstd -> tar members -> files.

:func:`receive_venv` is the remote client's way to put a venv archive at a path. The bytes are not written to
a file first: each chunk is hashed and fed to the safe extractor of :mod:`builder_service.archive` (the same
checks as :func:`~builder_service.archive.unpack`: no member leaves the tree, member count and size bounds, a
pool of writer threads), which writes into a staging directory next to the destination. After the last member
the rest of the blob is read and the digest and size must be those of the ref; only then is the staging
directory renamed into place. Whatever fails (digest mismatch, unsafe member, full disk, a connection lost for
good) leaves nothing.

A stream that breaks mid-way (UNAVAILABLE: a connection reset, a server restarting) is resumed: GetArtifact
again with ``offset`` = the bytes received, the decompressor and the extraction carry on where they were. A
stream that stalls without breaking is bounded too: each GetArtifact call has a deadline of
:data:`STALL_SECONDS` plus its remaining bytes at :data:`MIN_RATE`, and a call past it is resumed the same way.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from venvsmith.core.resolution import CallError
from venvsmith.v1 import artifact_pb2, common_pb2

__all__ = ["MAX_STALLED_RESUMES", "MAX_TRAILING", "MIN_RATE", "STALL_SECONDS", "ChunkSource", "receive_venv"]

log = logging.getLogger(__name__)

#: Breaks in a row after which no byte came, before the download is given up (each resume first waits for the
#: channel with the client's own retries). A resume that brought bytes resets the count: progress is bounded by
#: the blob's size, so the loop ends either way.
MAX_STALLED_RESUMES = 3
#: Bytes read after the tar archive's end at most (a venv archive has a few: the zstd frame's end).
MAX_TRAILING = 1 << 20
#: A GetArtifact call's deadline: this many seconds, plus its remaining bytes at :data:`MIN_RATE` bytes/s (a
#: stream that stops without breaking, a peer that hangs, is then resumed instead of waited on for ever).
STALL_SECONDS = 60.0
MIN_RATE = 1 << 20
#: Statuses after which the same call may succeed: the connection broke, the server went away for a moment, or
#: the stream stalled past its deadline.
_RESUMABLE = frozenset({"UNAVAILABLE", "ABORTED", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED"})


class ChunkSource(Protocol):
    """Where blob bytes come from: :meth:`venvsmith.clients.builder.RemoteBuilder.read_chunks`."""

    def read_chunks(self, digest: common_pb2.Digest, offset: int = 0,
                    timeout: float | None = None) -> Iterator[artifact_pb2.Chunk]: ...


class _Download(io.RawIOBase):
    """The blob's bytes as a read-only stream, hashed as they pass; a broken GetArtifact stream is made again
    from the offset reached. Never yields more than the ref's size."""

    def __init__(self, source: ChunkSource, digest: common_pb2.Digest, note: Callable[[str], None] | None) -> None:
        super().__init__()
        self.source, self.digest, self.note = source, digest, note
        self.size = digest.size_bytes
        self.received = 0
        self.sha256 = hashlib.sha256()
        self.resumes = 0
        self._chunks: Iterator[artifact_pb2.Chunk] | None = None
        self._held = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._held:
            if self.received >= self.size:
                return 0
            self._next_chunk()
        n = min(len(buffer), len(self._held))
        buffer[:n] = self._held[:n]
        self._held = self._held[n:]
        return n

    def _next_chunk(self) -> None:
        stalled = 0
        while True:
            if self._chunks is None:
                deadline = STALL_SECONDS + (self.size - self.received) / MIN_RATE
                self._chunks = self.source.read_chunks(self.digest, self.received, deadline)
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._chunks = None
                raise CallError("DATA_LOSS", f"the server ended sha256:{self.digest.hash} at byte {self.received} "
                                             f"of {self.size}") from None
            except CallError as exc:
                self._chunks = None
                if exc.status not in _RESUMABLE or stalled >= MAX_STALLED_RESUMES:
                    raise
                stalled += 1
                self.resumes += 1
                message = (f"the download of the venv archive broke at byte {self.received} of {self.size} "
                           f"({exc.status}): resuming from there")
                log.info("%s", message)
                if self.note is not None:
                    self.note(message)
                continue
            if chunk.offset != self.received:
                raise CallError("DATA_LOSS", f"chunk at {chunk.offset}, expected {self.received}")
            if len(chunk.data) > self.size - self.received:
                raise CallError("DATA_LOSS", f"the server sent more than the {self.size} bytes of "
                                             f"sha256:{self.digest.hash}")
            if not chunk.data:
                continue
            self.sha256.update(chunk.data)
            self.received += len(chunk.data)
            self._held = memoryview(chunk.data)
            return

    def hang_up(self) -> None:
        """End the GetArtifact call in progress, if any."""
        chunks, self._chunks = self._chunks, None
        close = getattr(chunks, "close", None)
        if close is not None:
            close()

    def finish(self) -> None:
        """Read what the extractor left (the zstd frame's end, padding: bytes, not megabytes), then check digest
        and size. A ref that claims much more than the archive holds is refused once :data:`MAX_TRAILING`
        bytes past the archive's end were read, not downloaded to its end."""
        trailing = 0
        while block := self.read(1 << 16):
            trailing += len(block)
            if trailing > MAX_TRAILING:
                self.hang_up()
                raise CallError("DATA_LOSS", f"sha256:{self.digest.hash}/{self.size}: more than {MAX_TRAILING} "
                                             "bytes after the end of the archive: nothing unpacked")
        self.hang_up()
        if self.received != self.size or self.sha256.hexdigest() != self.digest.hash:
            raise CallError("DATA_LOSS", f"the downloaded venv archive is not sha256:{self.digest.hash}/{self.size} "
                                         f"(got sha256:{self.sha256.hexdigest()}/{self.received}): nothing unpacked")


def receive_venv(client: ChunkSource, ref: common_pb2.ArtifactRef, dest: Path,
                 note: Callable[[str], None] | None = None, read_only: bool = False) -> dict[str, list[int]]:
    """Unpack the venv archive ``ref`` into ``dest`` (absent or an empty directory), atomically, while it downloads.

    ``note`` is told each resumed break. ``read_only`` and the answer (the stat of each file written): as
    :func:`~builder_service.archive.unpack_stream`'s. Raises :class:`CallError` (DATA_LOSS for bytes that are not
    the ref's, the call's status for a download that cannot go on) or
    :class:`~builder_service.errors.UnsafeArchive`; on any failure nothing is left at ``dest`` or next to it.
    """
    from builder_service.archive import unpack_stream
    from builder_service.errors import UnsafeArchive

    download = _Download(client, ref.digest, note)
    try:
        return unpack_stream(download, Path(dest), source=Path(ref.filename or ref.digest.hash),
                             compressed=ref.digest.size_bytes, verify=download.finish, read_only=read_only)
    except UnsafeArchive as refused:
        # Bytes that are not the ref's are a transfer (or server) fault before they are a hostile archive: say so
        # when the digest tells (reading the rest, at most the ref's size).
        try:
            download.finish()
        except CallError as exc:
            if exc.status == "DATA_LOSS":
                raise exc from refused
        raise
    finally:
        download.hang_up()
