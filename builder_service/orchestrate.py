"""ResolveAndBuild: the resolver's pin stream fed straight into a Build stream, in one call."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from venvsmith.core.errors import ServiceError
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

from .build_run import BuildRun
from .engine import BuildEngine

ResolveStream = Callable[[resolver_pb2.ResolveRequest], Iterator[resolver_pb2.ResolveEvent]]
_BUILD_DONE = object()


class _Aborted(Exception):
    """The resolution failed; the build stream stops (the resolver's error is the one reported)."""


def resolve_and_build(
    engine: BuildEngine, request: builder_pb2.ResolveAndBuildRequest, resolve_stream: ResolveStream,
    is_active: Callable[[], bool] | None = None,
) -> Iterator[builder_pb2.ResolveAndBuildEvent]:
    """Resolver events, then build events, interleaved as they happen; the build starts on the first pin. Once
    ``is_active()`` is false (the caller cancelled, its deadline passed) the builds stop unless shared."""
    out: queue.SimpleQueue = queue.SimpleQueue()
    pins: queue.SimpleQueue = queue.SimpleQueue()
    answer = resolver_pb2.ResolveResponse()  # filled as the resolution streams; complete once its summary came
    summarized = threading.Event()

    def build_requests() -> Iterator[builder_pb2.BuildRequest]:
        yield builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(
            target=request.resolve.target, options=request.options))
        while True:
            item = pins.get()
            if isinstance(item, common_pb2.Pin):
                yield builder_pb2.BuildRequest(pin=item)
            elif isinstance(item, resolver_pb2.ResolveSummary):
                yield builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=item.pin_count,
                                                                        lock_key=item.lock_key))
                return
            else:
                raise _Aborted()

    def run_resolve() -> None:
        try:
            for event in resolve_stream(request.resolve):
                out.put(builder_pb2.ResolveAndBuildEvent(resolve=event))
                kind = event.WhichOneof("event")
                if kind == "pin":
                    answer.pins.append(event.pin)
                    pins.put(event.pin)
                elif kind == "summary":
                    s = event.summary
                    answer.MergeFrom(resolver_pb2.ResolveResponse(
                        lock_key=s.lock_key, requirements_txt=s.requirements_txt, pylock_toml=s.pylock_toml,
                        environment=s.environment, signature=s.signature))
                    summarized.set()
                    pins.put(event.summary)
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            # Field paths of the resolution's bad input are inside this request's `resolve`.
            out.put(exc.under("resolve.") if isinstance(exc, ServiceError | CallError) else exc)
            pins.put(None)

    def run_build() -> None:
        try:
            resolution = lambda: answer if summarized.is_set() else None  # noqa: E731
            for event in BuildRun(engine, build_requests(), is_active, resolution).events():
                out.put(builder_pb2.ResolveAndBuildEvent(build=event))
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001
            out.put(exc)
        finally:
            out.put(_BUILD_DONE)

    threading.Thread(target=run_resolve, name="rab-resolve", daemon=True).start()
    threading.Thread(target=run_build, name="rab-build", daemon=True).start()
    while (item := out.get()) is not _BUILD_DONE:
        if isinstance(item, BaseException):
            raise item
        yield item
