"""``-v``: what a command did, on stderr: each index request (fetched or from the cache), each pin, and the
time of each phase (reading the input, resolving, writing the answer)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from venvsmith.cli.messages import detail, plural
from venvsmith.v1 import resolver_pb2


@contextmanager
def phase(name: str, verbose: int) -> Iterator[None]:
    """Time the block; with ``-v`` print ``phase NAME: N ms`` on stderr after it."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if verbose:
            detail(f"phase {name}: {(time.perf_counter() - started) * 1000:.0f} ms")


def _progress_line(progress: resolver_pb2.ResolveProgress) -> str:
    kind = resolver_pb2.ResolveProgress.Kind.Name(progress.kind).lower()
    what = progress.name + (f"=={progress.version}" if progress.version else "")
    return f"  {kind:<16} {what}  {progress.detail}".rstrip()


def resolve_verbosely(client, request: resolver_pb2.ResolveRequest, timeout: float | None
                      ) -> resolver_pb2.ResolveResponse:
    """The answer of ``request`` through ``ResolveStream``, printing each event (index pages fetched or cached,
    metadata, pins, backtracks) as it comes, then the cache counters."""
    pins = []
    summary = resolver_pb2.ResolveSummary()
    for event in client.resolve_stream(request, timeout=timeout):
        which = event.WhichOneof("event")
        if which == "progress":
            detail(_progress_line(event.progress))
        elif which == "pin":
            pins.append(event.pin)
        elif which == "summary":
            summary = event.summary
    stats = summary.stats
    detail(f"  resolution cache {'hit' if stats.resolution_cache_hit else 'miss'}; index pages: "
           f"{stats.pages_fetched} fetched, {stats.pages_cached} from the cache; metadata: "
           f"{stats.metadata_fetched} fetched, {stats.metadata_cached} from the cache; "
           f"{plural(stats.backtracks, 'backtrack')}")
    return resolver_pb2.ResolveResponse(
        pins=pins, lock_key=summary.lock_key, requirements_txt=summary.requirements_txt,
        pylock_toml=summary.pylock_toml, environment=summary.environment, stats=summary.stats,
        expires_at=summary.expires_at, notes=summary.notes,
        signature=summary.signature if summary.HasField("signature") else None)
