"""A read-only, seekable file over HTTP range requests, for reading a remote wheel's zip directory.

The first request (a suffix range for the file's tail) is made by the caller, who hands the bytes in; every
read outside what was fetched becomes one more range request of at least ``min_chunk`` bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

#: Bytes of the file's tail fetched first: the end-of-central-directory record and, for most wheels, the
#: whole central directory.
TAIL_BYTES = 64 * 1024
#: Smallest range fetched for a miss.
MIN_CHUNK = 16 * 1024

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


class RangesUnsupported(Exception):
    """The server answered a range request with the whole file or a wrong range."""


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``Content-Range: bytes a-b/total`` as (a, b inclusive, total or None)."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


class RangeFile(io.RawIOBase):
    """File-like view of ``length`` remote bytes; ``fetch(start, end)`` returns bytes ``[start, end)``."""

    def __init__(
        self,
        length: int,
        fetch: Callable[[int, int], bytes],
        initial: tuple[int, bytes] | None = None,
        min_chunk: int = MIN_CHUNK,
    ) -> None:
        super().__init__()
        self._length = length
        self._fetch = fetch
        self._min_chunk = min_chunk
        self._chunks: list[tuple[int, bytes]] = [initial] if initial else []
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self._length if size is None or size < 0 else min(self._length, self._pos + size)
        if end <= self._pos:
            return b""
        data = self._slice(self._pos, end)
        self._pos = end
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def ensure(self, start: int, end: int) -> None:
        """Fetch ``[start, end)`` in one request unless it is already held."""
        self._slice(max(0, start), min(self._length, end))

    def _slice(self, start: int, end: int) -> bytes:
        for chunk_start, chunk in self._chunks:
            if chunk_start <= start and end <= chunk_start + len(chunk):
                return chunk[start - chunk_start : end - chunk_start]
        fetch_end = min(self._length, max(end, start + self._min_chunk))
        data = self._fetch(start, fetch_end)
        if len(data) != fetch_end - start:
            raise RangesUnsupported(f"asked for {fetch_end - start} bytes at {start}, got {len(data)}")
        self._chunks.append((start, data))
        return data[: end - start]
