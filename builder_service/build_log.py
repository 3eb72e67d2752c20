"""One sdist build's log: the stdout and stderr of each of its steps, bounded on disk and in memory.

A :class:`BuildLog` keeps the first half of its cap on disk as it is written and the last half in memory (a
buffer trimmed as it grows); :meth:`BuildLog.close` appends that tail, after a marker line saying how many
bytes were left out between them. So a build that prints 100 MB leaves a log of at most the cap, and holds at
most about half the cap plus one read in memory. Alongside, it splits the output into lines: the last
:data:`TAIL_LINES` of the current step are what an error shows, and ``on_lines`` (a caller that asked to follow
the build) gets every line in order, up to the cap's worth of bytes. Used from one thread (the one running the
build's steps).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEFAULT_MAX_LOG_BYTES", "MAX_LINE_BYTES", "TAIL_CHARS", "TAIL_LINES", "BuildLog"]

#: Largest stored build log: what a person reads to see why a build failed fits with room to spare, and a
#: store full of logs stays a small part of the store.
DEFAULT_MAX_LOG_BYTES = 2 * 1024 * 1024
#: Lines of a failed step shown in its error (the last ones say what failed).
TAIL_LINES = 20
#: Characters of those lines kept at most (lines may be long).
TAIL_CHARS = 4000
#: A longer line (or output without line ends) is split into pieces of this size.
MAX_LINE_BYTES = 4096
#: The in-memory tail is trimmed once it holds this much more than it keeps.
_TRIM_SLACK = 256 * 1024


class BuildLog:
    """The log file at ``path`` (appended to) of at most ``max_bytes`` (plus a marker line).

    :param kill_bytes: output beyond this many bytes in all sets :attr:`overflowed` (the build is then killed);
        what is beyond it is not kept.
    :param on_lines: called with each batch of complete lines (``str``, no line ends), in order.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_LOG_BYTES, *, kill_bytes: int | None = None,
                 on_lines: Callable[[list[str]], None] | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - held until close()
        self.max_bytes = max_bytes
        self._head_room = max(max_bytes // 2 - self._file.tell(), 0)
        self._tail_bytes = max_bytes - max_bytes // 2
        self._tail = bytearray()
        self._dropped = 0
        #: Bytes of output seen (kept or not).
        self.total = 0
        self.kill_bytes = kill_bytes
        #: The output went past ``kill_bytes``.
        self.overflowed = False
        self._pending = bytearray()
        self._step: deque[str] = deque(maxlen=TAIL_LINES)
        self._on_lines = on_lines
        self._streamed = 0
        self._closed = False

    # -- writing --------------------------------------------------------------------------------------

    def begin(self, what: str) -> None:
        """A new step: a ``+ what`` line; :meth:`tail_text` shows this step's lines from now on."""
        self._end_line()
        self._step.clear()
        self.write(f"+ {what}\n".encode())

    def write(self, data: bytes) -> None:
        """Output of the current step."""
        if self.overflowed or not data:
            return
        if self.kill_bytes is not None and self.total + len(data) > self.kill_bytes:
            data = data[: max(self.kill_bytes - self.total, 0)]
            self.overflowed = True
        self._keep(data)
        self._split(data)
        if self.overflowed:
            note = f"\n[venvsmith: output exceeded {self.kill_bytes} bytes; the build was killed]\n".encode()
            self._keep(note)
            self._split(note)

    def _keep(self, data: bytes) -> None:
        self.total += len(data)
        if self._head_room:
            head = data[: self._head_room]
            self._file.write(head)
            self._file.flush()
            self._head_room -= len(head)
            data = data[len(head):]
        if data:
            self._tail += data
            extra = len(self._tail) - self._tail_bytes
            if extra > _TRIM_SLACK:
                del self._tail[:extra]
                self._dropped += extra

    def _split(self, data: bytes) -> None:
        self._pending += data
        *complete, rest = self._pending.split(b"\n")
        while len(rest) > MAX_LINE_BYTES:
            complete.append(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        self._pending = bytearray(rest)
        if complete:
            self._lines([bytes(line) for line in complete])

    def _end_line(self) -> None:
        """The partial line so far as a line (a step ended without a line end)."""
        if self._pending:
            line, self._pending = bytes(self._pending), bytearray()
            self._lines([line])

    def _lines(self, raw: list[bytes]) -> None:
        lines = [line.decode("utf-8", "replace").removesuffix("\r") for line in raw]
        self._step.extend(lines)
        if self._on_lines is None or self._streamed > self.max_bytes:
            return
        sent = []
        for line in lines:
            self._streamed += len(line) + 1
            if self._streamed > self.max_bytes:
                sent.append(f"[venvsmith: the rest of this build's output is not streamed (more than "
                            f"{self.max_bytes} bytes); its stored log keeps its first and last parts]")
                break
            sent.append(line)
        self._on_lines(sent)

    # -- reading --------------------------------------------------------------------------------------

    def tail_text(self) -> str:
        """The last :data:`TAIL_LINES` lines of the current step (and its partial last line), at most
        :data:`TAIL_CHARS` characters (the end kept)."""
        lines = list(self._step)
        if self._pending:
            lines.append(bytes(self._pending[-TAIL_CHARS:]).decode("utf-8", "replace"))
            lines = lines[-TAIL_LINES:]
        return "\n".join(lines)[-TAIL_CHARS:]

    def close(self) -> None:
        """Write the kept tail (after a marker when output was left out) and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._end_line()
        keep = self._tail[-self._tail_bytes:] if self._tail_bytes else b""
        dropped = self._dropped + len(self._tail) - len(keep)
        try:
            if dropped:
                self._file.write(f"\n[venvsmith: {dropped} bytes of build output left out here; the log keeps "
                                 f"its first {self.max_bytes // 2} and last {self._tail_bytes} bytes]\n".encode())
            self._file.write(keep)
        finally:
            self._file.close()
            self._tail = bytearray()
