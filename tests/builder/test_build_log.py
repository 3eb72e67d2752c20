"""One build's log (``builder_service.build_log.BuildLog``): bounded on disk and in memory however much a build
prints (head + tail with a marker), its lines streamed in order, the last lines of a step for errors."""

from __future__ import annotations

import os
import sys
import tracemalloc
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from builder_service.build_log import MAX_LINE_BYTES, TAIL_LINES, BuildLog
from builder_service.limits import BuildLimits, GiB, MiB, run_limited


def test_a_small_log_is_kept_whole(tmp_path):
    log = BuildLog(tmp_path / "log", max_bytes=MiB)
    log.begin("build_wheel of demo 1.0")
    log.write(b"hello\nworld\n")
    log.close()
    assert (tmp_path / "log").read_bytes() == b"+ build_wheel of demo 1.0\nhello\nworld\n"


def test_100_mb_of_output_stays_within_the_cap_on_disk_and_in_memory(tmp_path):
    cap = MiB
    path = tmp_path / "log"
    block = b"".join(b"line %07d of a chatty build\n" % i for i in range(2400))  # about 64 KiB
    tracemalloc.start()
    try:
        log = BuildLog(path, max_bytes=cap)
        log.write(b"FIRST\n")
        written = 0
        while written < 100 * MiB:
            log.write(block)
            written += len(block)
            assert path.stat().st_size <= cap  # never more on disk while it runs
        log.write(b"LAST\n")
        log.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * cap, peak
    data = path.read_bytes()
    assert len(data) <= cap + 200
    assert data.startswith(b"FIRST\nline 0000000 of")
    assert data.endswith(block[-1000:] + b"LAST\n")
    assert b"bytes of build output left out here" in data


def test_a_build_printing_100_mb_succeeds_with_a_bounded_log(tmp_path):
    code = ("import sys\nblock = b'z' * 1023 + b'\\n'\nfor _ in range(100 * 1024):\n"
            "    sys.stdout.buffer.write(block)\nprint('done printing', flush=True)\n")
    limits = BuildLimits(timeout_seconds=120, max_output_bytes=GiB)
    log = BuildLog(tmp_path / "log", max_bytes=MiB, kill_bytes=limits.max_output_bytes)
    tracemalloc.start()
    try:
        run_limited([sys.executable, "-c", code], cwd=tmp_path, env={"PATH": os.defpath}, limits=limits, log=log)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    log.close()
    assert peak < 3 * MiB, peak
    data = (tmp_path / "log").read_bytes()
    assert len(data) <= MiB + 200 and data.rstrip().endswith(b"done printing")


def test_output_beyond_the_kill_limit_stops_the_build(tmp_path):
    log = BuildLog(tmp_path / "log", max_bytes=4096, kill_bytes=10_000)
    log.write(b"x" * 9000)
    assert not log.overflowed
    log.write(b"x" * 2000)
    assert log.overflowed and log.total <= 10_000 + 200
    assert "output exceeded 10000 bytes" in log.tail_text()


def test_the_tail_is_the_last_lines_of_the_current_step(tmp_path):
    log = BuildLog(tmp_path / "log", max_bytes=MiB)
    log.begin("get_requires_for_build_wheel")
    log.write(b"earlier step\n")
    log.begin("build_wheel")
    log.write(b"".join(b"l%02d\n" % i for i in range(1, 51)) + b"partial")
    tail = log.tail_text().splitlines()
    assert tail == [f"l{i:02d}" for i in range(51 - TAIL_LINES + 1, 51)] + ["partial"]
    log.close()


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=400), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_lines_are_streamed_in_order_whatever_the_chunks(tmp_path_factory, text, cuts):
    streamed: list[str] = []
    path: Path = tmp_path_factory.mktemp("stream") / "log"
    log = BuildLog(path, max_bytes=MiB, on_lines=streamed.extend)
    data = text.replace("\r", "").encode()
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in zip(bounds, bounds[1:], strict=False):
        log.write(data[start:end])
    log.close()
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert streamed == [line.decode() for line in expected]
    assert path.read_bytes() == data


def test_a_line_without_end_is_streamed_in_bounded_pieces(tmp_path):
    streamed: list[str] = []
    log = BuildLog(tmp_path / "log", max_bytes=MiB, on_lines=streamed.extend)
    for _ in range(64):
        log.write(b"q" * 65536)
    log.close()
    assert all(len(line) <= MAX_LINE_BYTES for line in streamed)
    assert sum(map(len, streamed)) <= MiB + MAX_LINE_BYTES  # streaming stops at the log's cap, with a note
    assert "not streamed" in streamed[-1]
